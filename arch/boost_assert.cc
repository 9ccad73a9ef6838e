// SPDX-License-Identifier: MIT
// Boost's assertion handler, for the header-only Boost libraries strata uses (Boost.Intrusive).
//
// Boost checks its preconditions with BOOST_ASSERT, which is assert() by default, and a kernel
// has no __assert_fail. Every target that uses Boost is built with BOOST_ENABLE_ASSERT_HANDLER
// (third_party/boost.BUILD), so a failed check calls these instead: a broken container
// invariant is a strata bug, and panics like one. One definition for the whole tree keeps every
// instantiation of a Boost template identical (no per-header switching of BOOST_ASSERT).
#include <boost/assert.hpp>

#include <fmt/core.h>

#include "arch/port.h"

namespace boost {
namespace {

[[noreturn]] void fail(const char* expr, const char* msg, const char* function, const char* file,
                       long line) {
  char text[256];
  auto r = fmt::format_to_n(text, sizeof(text) - 1, "BUG at {}:{}: Boost assertion {}{}{} in {}",
                            file, line, expr, msg ? ": " : "", msg ? msg : "", function);
  text[r.size < sizeof(text) - 1 ? r.size : sizeof(text) - 1] = '\0';
  strata_os_panic(text);
}

}  // namespace

void assertion_failed(const char* expr, const char* function, const char* file, long line) {
  fail(expr, nullptr, function, file, line);
}

void assertion_failed_msg(const char* expr, const char* msg, const char* function, const char* file,
                          long line) {
  fail(expr, msg, function, file, line);
}

}  // namespace boost
