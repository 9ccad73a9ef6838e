// SPDX-License-Identifier: MIT
// Test support shared by io-pgtable's differential, failure and concurrency suites: the
// configurations they run, each with its tree as the specifications give it (typed in, not asked
// of the library), the geometry of that tree, and the architected decoding of its entries
// (arch/lpae/pte.h, arch/vtd/pte.h, not io-pgtable's code). What only one suite needs (the
// differential suite's windows, the failure suite's map sizes) stays in that suite.
#pragma once

#include <stdint.h>

#include <ostream>
#include <string>

#include "arch/lpae/pte.h"
#include "arch/vtd/pte.h"
#include "core/io-pgtable/io_pgtable.h"
#include "testing/models/platform/platform.h"

namespace strata::pgtable_test {

// Prints as 0x<hex> on an ostream (INFO, MESSAGE, FAIL_CHECK).
struct Hex {
  uint64_t v;
};
inline std::ostream& operator<<(std::ostream& os, Hex h) {
  const auto flags = os.flags();
  os << "0x" << std::hex << h.v;
  os.flags(flags);
  return os;
}

// The same as a string, for messages built on worker threads.
inline std::string hex(uint64_t v) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  do {
    s.insert(s.begin(), digits[v & 15]);
    v >>= 4;
  } while (v);
  return "0x" + s;
}

enum class Kind { lpae_s1, lpae_s2, vtd_sl, vtd_fl };

constexpr uint64_t k4K = SZ_4K | SZ_2M | SZ_1G;

// One configuration, with the tree the specifications give for it typed in (not asked of the
// library): a table of 2^(g-3) entries per non-root level, the root's entries, the level count.
struct FormatCase {
  const char* name;
  IoPgtableFmt fmt;
  Kind kind;
  uint64_t pgsizes;  // asked for, and what the table must narrow them to
  unsigned ias;
  unsigned oas;
  unsigned granule_shift;
  unsigned levels;
  unsigned root_entries;
  bool coherent_walk;
};

// Every configuration the suites run, in the order they run them.
inline constexpr FormatCase kAllFormats[] = {
    {"arm_64_lpae_s1 4K", IoPgtableFmt::arm_64_lpae_s1, Kind::lpae_s1, k4K, 48, 48, 12, 4, 512,
     true},
    {"arm_64_lpae_s1 16K", IoPgtableFmt::arm_64_lpae_s1, Kind::lpae_s1, SZ_16K | SZ_32M, 48, 48, 14,
     4, 2, true},
    {"arm_64_lpae_s1 64K", IoPgtableFmt::arm_64_lpae_s1, Kind::lpae_s1, SZ_64K | SZ_512M, 48, 48,
     16, 3, 64, true},
    {"arm_64_lpae_s2 4K", IoPgtableFmt::arm_64_lpae_s2, Kind::lpae_s2, k4K, 48, 48, 12, 4, 512,
     true},
    {"arm_64_lpae_s2 64K", IoPgtableFmt::arm_64_lpae_s2, Kind::lpae_s2, SZ_64K | SZ_512M, 48, 48,
     16, 3, 64, true},
    // ias 40 with 4K: a level-0 table of 2 entries is replaced by 2 concatenated level-1 tables,
    // one 1024-entry root.
    {"arm_64_lpae_s2 4K ias40 (2 concatenated)", IoPgtableFmt::arm_64_lpae_s2, Kind::lpae_s2, k4K,
     40, 48, 12, 3, 1024, true},
    // 3 levels: the root is the 1 GiB level.
    {"intel_vtd_sl ias39", IoPgtableFmt::intel_vtd_sl, Kind::vtd_sl, k4K, 39, 48, 12, 3, 512, true},
    {"intel_vtd_sl ias48", IoPgtableFmt::intel_vtd_sl, Kind::vtd_sl, k4K, 48, 48, 12, 4, 512, true},
    {"intel_vtd_fl ias48", IoPgtableFmt::intel_vtd_fl, Kind::vtd_fl, k4K, 48, 48, 12, 4, 512, true},
    // The same tree as the first, with the cache-maintenance paths of a non-coherent walker.
    {"arm_64_lpae_s1 4K non-coherent walk", IoPgtableFmt::arm_64_lpae_s1, Kind::lpae_s1, k4K, 48,
     48, 12, 4, 512, false},
};

// The same by name, for a suite that lists the ones it runs with extras of its own.
inline constexpr const FormatCase& kLpaeS1_4K = kAllFormats[0];
inline constexpr const FormatCase& kLpaeS1_16K = kAllFormats[1];
inline constexpr const FormatCase& kLpaeS1_64K = kAllFormats[2];
inline constexpr const FormatCase& kLpaeS2_4K = kAllFormats[3];
inline constexpr const FormatCase& kLpaeS2_64K = kAllFormats[4];
inline constexpr const FormatCase& kLpaeS2_4KIas40 = kAllFormats[5];
inline constexpr const FormatCase& kVtdSlIas39 = kAllFormats[6];
inline constexpr const FormatCase& kVtdSlIas48 = kAllFormats[7];
inline constexpr const FormatCase& kVtdFlIas48 = kAllFormats[8];
inline constexpr const FormatCase& kLpaeS1_4KNonCoherent = kAllFormats[9];

// The tree's shape: depth d = 0 is the root.
struct Geometry {
  unsigned g, levels, root_entries;
  unsigned shift(unsigned d) const { return g + (levels - 1 - d) * (g - 3); }
  uint64_t size(unsigned d) const { return uint64_t{1} << shift(d); }
  uint64_t entries(unsigned d) const { return d == 0 ? root_entries : uint64_t{1} << (g - 3); }
  int depth_of(uint64_t pgsize) const {
    for (unsigned d = 0; d < levels; d++)
      if (size(d) == pgsize) return static_cast<int>(d);
    return -1;
  }
  // The smallest page.
  uint64_t page() const { return size(levels - 1); }
  // Bytes one leaf table maps.
  uint64_t leaf_span() const { return size(levels - 2); }
};

inline Geometry geometry_of(const FormatCase& c) {
  return {c.granule_shift, c.levels, c.root_entries};
}

inline IoPgtableCfg make_cfg(const FormatCase& c, sim::Platform& platform) {
  IoPgtableCfg cfg;
  cfg.pgsize_bitmap = c.pgsizes;
  cfg.ias = c.ias;
  cfg.oas = c.oas;
  cfg.coherent_walk = c.coherent_walk;
  cfg.dma = &platform.dma();
  return cfg;
}

// The root table's physical address, from what alloc() returned in cfg.
inline uint64_t root_of(const FormatCase& c, const IoPgtableCfg& cfg) {
  switch (c.kind) {
    case Kind::lpae_s1: return cfg.arm_lpae_s1.ttbr;
    case Kind::lpae_s2: return cfg.arm_lpae_s2.vttbr;
    case Kind::vtd_sl:
    case Kind::vtd_fl: return cfg.vtd.pgd;
  }
  return 0;
}

// The address in an entry (a leaf's output address, or a table's), without judging the entry.
inline uint64_t address_of(const FormatCase& c, uint64_t pte) {
  if (c.kind == Kind::lpae_s1 || c.kind == Kind::lpae_s2) return lpae::oa_of(pte, c.granule_shift);
  return pte & vtd::SlPte::ADDR::kMask;  // the same bits 51:12 in both VT-d formats
}

// The next-level table an entry at `depth` points to, or 0 for an invalid entry or a leaf.
inline uint64_t table_of(const FormatCase& c, uint64_t pte, unsigned depth) {
  if (depth == c.levels - 1 || pte == 0) return 0;
  switch (c.kind) {
    case Kind::lpae_s1:
    case Kind::lpae_s2:
      // Levels 0-2: bits[1:0] 0b11 table, 0b01 block.
      if ((pte & lpae::kTypeMask) != lpae::kTypeTable) return 0;
      return address_of(c, pte);
    case Kind::vtd_sl:
      if (!(pte & (vtd::SlPte::R::kMask | vtd::SlPte::W::kMask)) || (pte & vtd::SlPte::PS::kMask))
        return 0;
      return address_of(c, pte);
    case Kind::vtd_fl:
      if (!(pte & vtd::FlPte::P::kMask) || (pte & vtd::FlPte::PS::kMask)) return 0;
      return address_of(c, pte);
  }
  return 0;
}

}  // namespace strata::pgtable_test
