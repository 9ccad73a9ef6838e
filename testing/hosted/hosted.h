// SPDX-License-Identifier: MIT
// Test controls of the hosted OS port (testing/hosted/hosted.cc implements arch/port.h).
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::hosted {

// kmalloc failure injection: the n-th kmalloc from now (0 = the next one) returns NULL, once.
// A negative n cancels. Applies to every thread.
void fail_kmalloc_nth(long n);
// kmallocs not yet freed; a test compares it before and after to find leaks.
long kmalloc_live();
// kmallocs made since the process started (successful ones).
long kmalloc_count();

// Collects every log line while it exists (lines are still echoed to stderr at or above
// STRATA_LOG_LEVEL, default 4 = warning). Nestable; each capture sees every line.
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  struct Line {
    int level;
    std::string text;
  };
  std::vector<Line> lines() const;
  // Whether some line contains `needle`.
  bool contains(std::string_view needle) const;

  struct State;  // defined in hosted.cc

 private:
  State* state_;
};

// Runs `fn` in a forked child and returns the message it panicked with (strata_os_panic),
// or an empty string if it returned normally. For tests of strata's BUG checks.
std::string panic_message_of(const std::function<void()>& fn);

}  // namespace strata::hosted
