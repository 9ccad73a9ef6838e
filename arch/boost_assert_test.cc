// SPDX-License-Identifier: MIT
// A failed Boost precondition is a strata panic, not assert()'s abort (kernels have neither
// __assert_fail nor stderr).
#include <doctest/doctest.h>

#include <boost/assert.hpp>
#include <boost/intrusive/list.hpp>
#include <string>

#include "testing/hosted/hosted.h"

namespace strata {
namespace {

// Safe-link hooks check, with BOOST_ASSERT, that a node is not inserted twice.
struct Node
    : boost::intrusive::list_base_hook<boost::intrusive::link_mode<boost::intrusive::safe_link>> {};

TEST_CASE("BOOST_ASSERT panics through the OS port with the failed expression") {
  std::string msg = hosted::panic_message_of([] { BOOST_ASSERT(1 + 1 == 3); });
  CHECK(msg.find("Boost assertion 1 + 1 == 3") != std::string::npos);
  CHECK(msg.find("arch/boost_assert_test.cc") != std::string::npos);
  msg = hosted::panic_message_of([] { BOOST_ASSERT_MSG(false, "why"); });
  CHECK(msg.find("false: why") != std::string::npos);
}

TEST_CASE("Boost.Intrusive's own checks reach it: a node linked twice") {
  std::string msg = hosted::panic_message_of([] {
    Node node;
    boost::intrusive::list<Node> list;
    list.push_back(node);
    list.push_back(node);
  });
  CHECK(msg.find("Boost assertion") != std::string::npos);
}

}  // namespace
}  // namespace strata
