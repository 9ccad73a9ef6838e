// SPDX-License-Identifier: MIT
// Assertions for strata's own invariants (Linux's BUG_ON / WARN_ON).
//
// These are for bugs in strata only. Bad input from outside the trust boundary (a guest's
// tables, a uAPI caller's structs) never reaches them: it gets an error code or an
// architected fault. The macros are prefixed so they cannot collide with a host kernel's own.
#pragma once

#include "arch/port.h"

#define STRATA_STRINGIFY_(x) #x
#define STRATA_STRINGIFY(x) STRATA_STRINGIFY_(x)

#define STRATA_BUG_ON(cond)                                                          \
  do {                                                                               \
    if (__builtin_expect(!!(cond), 0))                                               \
      strata_os_panic("BUG at " __FILE__ ":" STRATA_STRINGIFY(__LINE__) ": " #cond); \
  } while (0)

#define STRATA_BUG(msg) strata_os_panic("BUG at " __FILE__ ":" STRATA_STRINGIFY(__LINE__) ": " msg)

namespace strata::detail {
void warn_on(const char* where);
}

// Logs a warning with the location and evaluates to the condition, so it can guard a recovery
// path: if (STRATA_WARN_ON(!ok)) return Error(-EINVAL);
#define STRATA_WARN_ON(cond)                                                         \
  ({                                                                                 \
    const bool strata_warn_ = !!(cond);                                              \
    if (__builtin_expect(strata_warn_, 0))                                           \
      ::strata::detail::warn_on(__FILE__ ":" STRATA_STRINGIFY(__LINE__) ": " #cond); \
    strata_warn_;                                                                    \
  })
