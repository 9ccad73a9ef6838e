// SPDX-License-Identifier: MIT
// Test helper for the golden tests: where a field really lands. bits_of<T, F>() sets field F of
// an empty T (a register or a multi-word descriptor) to all ones through T::set, then scans the
// resulting words for the lowest and highest bit set, as absolute positions across the structure.
// A test compares that with the [hi:lo] typed in from the specification, so a wrong position, a
// wrong width or a field in the wrong word fails, whatever the header claims.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <ostream>

#include "arch/reg.h"

namespace strata::smmuv3::golden {

struct Bits {
  unsigned hi = 0, lo = 0;
  bool contiguous = true;  // every bit in [hi:lo] was set
  bool operator==(const Bits&) const = default;
};

inline std::ostream& operator<<(std::ostream& os, const Bits& b) {
  os << "[" << b.hi << ":" << b.lo << "]";
  if (!b.contiguous) os << " (not contiguous)";
  return os;
}

// Bits{hi, lo} as the specification writes a field: [hi:lo].
constexpr Bits at(unsigned hi, unsigned lo) { return Bits{hi, lo, true}; }
constexpr Bits at(unsigned bit) { return Bits{bit, bit, true}; }

template <typename T>
constexpr size_t words_of() {
  if constexpr (requires { T::kWords; })
    return T::kWords;
  else
    return 1;
}

template <typename T>
constexpr uint64_t word_of(const T& t, size_t i) {
  if constexpr (requires { T::kWords; })
    return t.word(i);
  else
    return i == 0 ? static_cast<uint64_t>(t.value()) : 0;
}

template <typename T, typename F>
Bits bits_of() {
  T t{};
  const uint64_t ones = F::kKind == reg::Kind::address ? F::kMask : (F::kMask >> F::kShift);
  t.template set<F>(ones);
  Bits b;
  bool found = false;
  unsigned count = 0;
  for (size_t w = 0; w < words_of<T>(); w++) {
    const uint64_t v = word_of(t, w);
    for (unsigned i = 0; i < 64; i++) {
      if (!(v >> i & 1)) continue;
      const unsigned pos = static_cast<unsigned>(w * 64 + i);
      if (!found) b.lo = pos;
      b.hi = pos;
      found = true;
      count++;
    }
  }
  b.contiguous = found && count == b.hi - b.lo + 1;
  return b;
}

}  // namespace strata::smmuv3::golden
