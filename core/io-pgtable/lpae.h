// SPDX-License-Identifier: MIT
// VMSAv8-64 long-descriptor formats for the engine: stage 1 (an SMMUv3 CD's TTB0) and stage 2
// (an STE's S2TTB). Attribute choices follow Linux's io-pgtable-arm so that drivers and models
// agree with a Linux guest's expectations.
#pragma once

#include <stdint.h>

#include "arch/lpae/pte.h"
#include "core/io-pgtable/io_pgtable.h"

namespace strata {

class LpaeFormat {
 public:
  LpaeFormat(bool stage2, unsigned granule_shift, bool oa52, uint64_t quirks)
      : stage2_(stage2),
        g_(granule_shift),
        oa52_(oa52),
        quirks_(quirks),
        oa_mask_(((uint64_t{1} << 48) - 1) & ~((uint64_t{1} << granule_shift) - 1)) {}

  uint64_t leaf_bits(int prot, bool last) const;
  uint64_t table_bits(phys_addr_t table) const {
    uint64_t pte = lpae::oa_bits(table, g_) | lpae::kTypeTable;
    if (!stage2_ && (quirks_ & IO_PGTABLE_QUIRK_ARM_NS)) pte |= lpae::TablePte::NSTable::kMask;
    return pte;
  }
  uint64_t oa_bits(phys_addr_t pa) const { return lpae::oa_bits(pa, g_); }
  phys_addr_t oa(uint64_t pte) const { return oa52_ ? lpae::oa_of(pte, g_) : pte & oa_mask_; }
  // With the 64K granule and a 52-bit OA, OA[51:48] sit below the page frame.
  bool linear_oa() const { return !oa52_; }
  bool valid(uint64_t pte) const { return pte & 1; }

  // Hardware dirty state (HTTU, IHI 0070 "HTTU"): a DBM entry is writable-clean while
  // read-only (S1 AP[2] = 1; S2 S2AP[1] = 0), and the SMMU makes it writable on the first write.
  bool dirty(uint64_t pte) const {
    if (!(pte & lpae::S1Pte::DBM::kMask)) return false;
    return stage2_ ? (pte & (lpae::kS2apWrite << lpae::S2Pte::S2AP::kShift)) != 0
                   : (pte & (uint64_t{0b10} << lpae::S1Pte::AP::kShift)) == 0;
  }
  uint64_t clean(uint64_t pte) const {
    return stage2_ ? pte & ~(lpae::kS2apWrite << lpae::S2Pte::S2AP::kShift)
                   : pte | (uint64_t{0b10} << lpae::S1Pte::AP::kShift);
  }

 private:
  bool stage2_;
  unsigned g_;
  bool oa52_;
  uint64_t quirks_;
  uint64_t oa_mask_;  // OA[47:g] in place: the whole output address unless oa52_
};

// Validates cfg for an LPAE stage-1 or stage-2 table, narrows its page sizes, allocates the
// root and fills the output registers.
Result<Box<IoPgtable>> alloc_lpae_pgtable(bool stage2, IoPgtableCfg& cfg);

}  // namespace strata
