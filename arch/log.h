// SPDX-License-Identifier: MIT
// Logging through fmt with Linux's levels and device prefixes (dev_err, pr_info, ...).
//
// Messages are formatted into a fixed buffer on the stack (no allocation) and handed to the
// OS port's strata_os_log as one line. Library code includes only <fmt/core.h>: the format
// engine then stays in libfmt (fmt::detail::vformat_to) instead of being instantiated into
// strata's objects, and with it fmt's allocating buffers. See Documentation/porting.md.
#pragma once

#include <string_view>

#include <fmt/core.h>

namespace strata {

enum class LogLevel : int {
  err = 3,
  warning = 4,
  notice = 5,
  info = 6,
  debug = 7,
};

// Longest line handed to the sink, newline excluded; longer messages are cut and end in "...".
inline constexpr size_t kLogLineMax = 480;

// `prefix` names the device ("smmu0"); empty for pr_*.
void vlog(LogLevel level, std::string_view prefix, fmt::string_view format, fmt::format_args args);

template <typename... Args>
void dev_log(LogLevel level, std::string_view dev, fmt::format_string<Args...> format,
             Args&&... args) {
  vlog(level, dev, format, fmt::make_format_args(args...));
}

template <typename... Args>
void dev_err(std::string_view dev, fmt::format_string<Args...> format, Args&&... args) {
  vlog(LogLevel::err, dev, format, fmt::make_format_args(args...));
}
template <typename... Args>
void dev_warn(std::string_view dev, fmt::format_string<Args...> format, Args&&... args) {
  vlog(LogLevel::warning, dev, format, fmt::make_format_args(args...));
}
template <typename... Args>
void dev_info(std::string_view dev, fmt::format_string<Args...> format, Args&&... args) {
  vlog(LogLevel::info, dev, format, fmt::make_format_args(args...));
}
template <typename... Args>
void dev_dbg(std::string_view dev, fmt::format_string<Args...> format, Args&&... args) {
  vlog(LogLevel::debug, dev, format, fmt::make_format_args(args...));
}

template <typename... Args>
void pr_err(fmt::format_string<Args...> format, Args&&... args) {
  vlog(LogLevel::err, {}, format, fmt::make_format_args(args...));
}
template <typename... Args>
void pr_warn(fmt::format_string<Args...> format, Args&&... args) {
  vlog(LogLevel::warning, {}, format, fmt::make_format_args(args...));
}
template <typename... Args>
void pr_info(fmt::format_string<Args...> format, Args&&... args) {
  vlog(LogLevel::info, {}, format, fmt::make_format_args(args...));
}

}  // namespace strata
