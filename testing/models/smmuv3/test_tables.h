// SPDX-License-Identifier: MIT
// Hand-built translation tables for the walker's tests and benchmark. Deliberately small and
// independent of core/io-pgtable: descriptors are assembled from arch/lpae/pte.h's fields, and
// table placement follows the geometry the test states, so a walker bug cannot be hidden by a
// matching builder bug in a shared library.
#pragma once

#include <stdint.h>
#include <stdlib.h>

#include <cstdio>

#include "arch/lpae/pte.h"
#include "testing/models/platform/phys_mem.h"
#include "testing/models/smmuv3/walk.h"

namespace strata::sim::smmuv3::test {

[[noreturn]] inline void die(const char* what) {
  fprintf(stderr, "test_tables: %s\n", what);
  abort();
}

// A bump allocator of zeroed table memory in simulated RAM. `delta` places the tables in
// another address space: the walker sees a table at `addr`, which lives at PA `addr + delta`
// (stage-1 tables in IPA space behind a stage 2 that maps IPA x to PA x + delta).
class Tables {
 public:
  Tables(PhysMem& mem, uint64_t pool_pa, uint64_t pool_size, uint64_t delta = 0)
      : mem_(mem), next_(pool_pa), end_(pool_pa + pool_size), delta_(delta) {}

  // A table of `bytes`, aligned to its size (at least 64 bytes); returns the walker's address.
  uint64_t alloc(uint64_t bytes) {
    const uint64_t align = bytes < 64 ? 64 : bytes;
    const uint64_t pa = (next_ + align - 1) & ~(align - 1);
    if (pa + bytes > end_) die("table pool exhausted");
    next_ = pa + bytes;
    for (uint64_t off = 0; off < bytes; off += 8) put_pa(pa + off, 0);
    return pa - delta_;
  }

  void put(uint64_t addr, uint64_t desc) { put_pa(addr + delta_, desc); }
  uint64_t get(uint64_t addr) const {
    Result<uint64_t> r = mem_.read64(addr + delta_);
    if (!r.ok()) die("read outside RAM");
    return *r;
  }
  uint64_t delta() const { return delta_; }
  PhysMem& mem() const { return mem_; }

 private:
  void put_pa(uint64_t pa, uint64_t desc) {
    if (!mem_.write64(pa, desc).ok()) die("write outside RAM");
  }

  PhysMem& mem_;
  uint64_t next_, end_, delta_;
};

// Where one translation table tree starts: the same facts a TableGeometry holds, stated by the
// test rather than decoded.
struct Tree {
  uint64_t root;
  unsigned granule;  // log2: 12, 14, 16
  unsigned start_level;
  unsigned start_bits;  // index bits at the start level (beyond granule - 3: concatenated)
};

// Descriptor words. `attrs` are the upper and lower attribute bits, already in place.
inline uint64_t table_desc(uint64_t next, unsigned g, uint64_t attrs = 0) {
  return lpae::oa_bits(next, g) | lpae::kTypeTable | attrs;
}
inline uint64_t leaf_desc(uint64_t oa, unsigned g, unsigned level, uint64_t attrs) {
  return lpae::oa_bits(oa, g) | (level == 3 ? lpae::kTypePage : lpae::kTypeBlock) | attrs;
}

// Common leaf attributes: stage 1 AF, inner-shareable, write-back, RW at both privileges,
// and stage 2 AF, RW, Normal WB.
inline constexpr uint64_t kS1Rw = lpae::S1Pte::AF::kMask |
                                  (lpae::kShInner << lpae::S1Pte::SH::kShift) |
                                  (uint64_t{lpae::kAttrIdxWb} << lpae::S1Pte::AttrIndx::kShift) |
                                  (lpae::kApRwUnpriv << lpae::S1Pte::AP::kShift);
inline constexpr uint64_t kS2Rw =
    lpae::S2Pte::AF::kMask | (lpae::kShInner << lpae::S2Pte::SH::kShift) |
    (lpae::kMemAttrNormalWb << lpae::S2Pte::MemAttr::kShift) |
    ((lpae::kS2apRead | lpae::kS2apWrite) << lpae::S2Pte::S2AP::kShift);

// Installs `leaf` for input address `ia` at `level` of `tree`, creating the missing tables
// (full granule-sized ones below the start level), and returns the leaf's address in the tree's
// address space. `table_attrs` go into every table descriptor created on the way. An existing
// table descriptor is reused; anything else in the way is a test bug.
inline uint64_t map(Tables& t, const Tree& tree, uint64_t ia, unsigned level, uint64_t leaf,
                    uint64_t table_attrs = 0) {
  const unsigned g = tree.granule;
  uint64_t table = tree.root;
  unsigned bits = tree.start_bits;
  for (unsigned l = tree.start_level;; ++l) {
    const unsigned shift = lpae::level_shift(g, l);
    const uint64_t slot = table + ((ia >> shift) & ((uint64_t{1} << bits) - 1)) * 8;
    if (l == level) {
      t.put(slot, leaf);
      return slot;
    }
    uint64_t desc = t.get(slot);
    if (!(desc & 1)) {
      desc = table_desc(t.alloc(uint64_t{1} << g), g, table_attrs);
      t.put(slot, desc);
    } else if ((desc & lpae::kTypeMask) != lpae::kTypeTable) {
      die("map: a leaf is in the way");
    }
    table = lpae::oa_of(desc, g);
    bits = g - 3;
  }
}

// A root table for `tree`-to-be: 2^start_bits descriptors.
inline uint64_t alloc_root(Tables& t, unsigned start_bits) {
  return t.alloc(uint64_t{8} << start_bits);
}

}  // namespace strata::sim::smmuv3::test
