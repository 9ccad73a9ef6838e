// SPDX-License-Identifier: MIT
// Monotonic time and polling with a timeout (Linux's readx_poll_timeout).
#pragma once

#include <stdint.h>

#include "arch/cpu.h"
#include "arch/port.h"
#include "arch/result.h"

namespace strata {

inline uint64_t monotonic_ns() { return strata_os_monotonic_ns(); }

// Calls `read` until `done(value)` holds or `timeout_us` passes, and returns the last value
// read, or -ETIMEDOUT. The condition is checked once more after the deadline, so a slow host
// that was descheduled across the deadline does not report a timeout for a condition that holds.
template <typename Read, typename Done>
auto poll_timeout(Read read, Done done, uint64_t timeout_us) -> Result<decltype(read())> {
  const uint64_t deadline = monotonic_ns() + timeout_us * 1000;
  for (;;) {
    const bool expired = monotonic_ns() > deadline;
    auto value = read();
    if (done(value)) return value;
    if (expired) return Error(-ETIMEDOUT);
    cpu_relax();
  }
}

}  // namespace strata
