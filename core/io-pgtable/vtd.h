// SPDX-License-Identifier: MIT
// Intel VT-d formats for the engine: second stage (legacy and scalable-mode second-level
// tables, and the parent of a nested domain) and first stage (the x86-64 paging format of
// scalable-mode first-level and nested translation).
#pragma once

#include <stdint.h>

#include "arch/vtd/pte.h"
#include "core/io-pgtable/io_pgtable.h"

namespace strata {

class VtdSlFormat {
 public:
  uint64_t leaf_bits(int prot, bool last) const {
    uint64_t pte = 0;
    if (prot & IOMMU_READ) pte |= vtd::SlPte::R::kMask;
    if (prot & IOMMU_WRITE) pte |= vtd::SlPte::W::kMask;
    if (!last) pte |= vtd::SlPte::PS::kMask;
    return pte;
  }
  // Non-leaf entries grant everything: access is the AND over the walk.
  uint64_t table_bits(phys_addr_t table) const {
    return table | vtd::SlPte::R::kMask | vtd::SlPte::W::kMask;
  }
  uint64_t oa_bits(phys_addr_t pa) const { return pa; }
  phys_addr_t oa(uint64_t pte) const { return pte & vtd::SlPte::ADDR::kMask; }
  bool linear_oa() const { return true; }
  // No present bit: R or W makes an entry present.
  bool valid(uint64_t pte) const { return pte & (vtd::SlPte::R::kMask | vtd::SlPte::W::kMask); }
  // With second-stage A/D enabled in the PASID entry (SSADE), the hardware sets D on a write.
  bool dirty(uint64_t pte) const { return pte & vtd::SlPte::D::kMask; }
  uint64_t clean(uint64_t pte) const { return pte & ~vtd::SlPte::D::kMask; }
};

class VtdFlFormat {
 public:
  explicit VtdFlFormat(uint64_t quirks) : quirks_(quirks) {}

  uint64_t leaf_bits(int prot, bool last) const {
    // Accessed is set up front so the hardware never has to write it; so is Dirty for writable
    // pages, unless dirty tracking wants the hardware to set it (Linux does the same).
    uint64_t pte = vtd::FlPte::P::kMask | vtd::FlPte::A::kMask;
    if (prot & IOMMU_WRITE) {
      pte |= vtd::FlPte::RW::kMask;
      if (!(quirks_ & IO_PGTABLE_QUIRK_DIRTY)) pte |= vtd::FlPte::D::kMask;
    }
    if (!(prot & IOMMU_PRIV)) pte |= vtd::FlPte::US::kMask;
    if (prot & IOMMU_NOEXEC) pte |= vtd::FlPte::XD::kMask;
    if (!last) pte |= vtd::FlPte::PS::kMask;
    return pte;
  }
  uint64_t table_bits(phys_addr_t table) const {
    return table | vtd::FlPte::P::kMask | vtd::FlPte::RW::kMask | vtd::FlPte::US::kMask |
           vtd::FlPte::A::kMask;
  }
  uint64_t oa_bits(phys_addr_t pa) const { return pa; }
  phys_addr_t oa(uint64_t pte) const { return pte & vtd::FlPte::ADDR::kMask; }
  bool linear_oa() const { return true; }
  bool valid(uint64_t pte) const { return pte & vtd::FlPte::P::kMask; }
  bool dirty(uint64_t pte) const { return pte & vtd::FlPte::D::kMask; }
  uint64_t clean(uint64_t pte) const { return pte & ~vtd::FlPte::D::kMask; }

 private:
  uint64_t quirks_;
};

// Validates cfg for a VT-d table (ias 39/48/57 for 3/4/5 levels; first stage 48/57), narrows
// its page sizes to 4K/2M/1G, allocates the root and fills cfg.vtd.
Result<Box<IoPgtable>> alloc_vtd_pgtable(bool first_stage, IoPgtableCfg& cfg);

}  // namespace strata
