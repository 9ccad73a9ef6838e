// SPDX-License-Identifier: MIT
// Byte order of in-memory hardware structures. SMMUv3 and VT-d structures are little-endian
// (SMMUv3 can be configured big-endian per table; strata does not use that).
#pragma once

#include <stdint.h>

#include <bit>

namespace strata {

constexpr uint64_t cpu_to_le64(uint64_t v) {
  if constexpr (std::endian::native == std::endian::little) return v;
  return __builtin_bswap64(v);
}
constexpr uint64_t le64_to_cpu(uint64_t v) { return cpu_to_le64(v); }

}  // namespace strata
