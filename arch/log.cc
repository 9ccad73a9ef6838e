// SPDX-License-Identifier: MIT
#include "arch/log.h"

#include <string.h>

#include "arch/bug.h"
#include "arch/port.h"

namespace strata {

void vlog(LogLevel level, std::string_view prefix, fmt::string_view format, fmt::format_args args) {
  char line[kLogLineMax];
  size_t len = 0;
  if (!prefix.empty()) {
    auto r = fmt::format_to_n(line, sizeof(line), "{}: ", prefix);
    len = r.size < sizeof(line) ? r.size : sizeof(line);
  }
  auto r = fmt::vformat_to_n(line + len, sizeof(line) - len, format, args);
  if (r.size > sizeof(line) - len) {
    // Truncated: mark it so a reader does not take the cut line for the whole message.
    len = sizeof(line);
    memcpy(line + len - 3, "...", 3);
  } else {
    len += r.size;
  }
  strata_os_log(static_cast<int>(level), line, len);
}

namespace detail {

void warn_on(const char* where) {
  vlog(LogLevel::warning, {}, "WARNING at {}", fmt::make_format_args(where));
}

}  // namespace detail

}  // namespace strata
