// SPDX-License-Identifier: MIT
// A guest with a passthrough device behind a nested SMMUv3, seen from the host: its RAM (host
// memory it sees at guest-physical addresses), the stage-1 page table and the Context Descriptor
// its own arm-smmu-v3 driver builds in that RAM (with strata's io-pgtable and cd-lib, as a
// guest OS would), and the STE words it writes into its vSMMU's stream table. Every pointer in
// those structures is an IPA: the SMMU reaches them through the host's stage 2, which maps the
// guest's RAM (kGpa..kGpa + kSize) onto ram_hpa().
//
//   auto guest = STRATA_TRY(Guest::create(sys->platform()));
//   STRATA_TRY(iommu_map(*s2, Guest::kGpa, guest->ram_hpa(), Guest::kSize, prot));
//   auto nested = STRATA_TRY(
//       iommu_domain_alloc_nested(dev, *s2, &guest->ste(), sizeof(guest->ste())));
//   STRATA_TRY(guest->map(iova, gpa, size, prot));
//   ... DMA ...
//   // The VMM forwards what the guest writes into its vSMMU's CMDQ:
//   STRATA_TRY(guest->unmap(iova, size, [&](const smmuv3::Command* c, size_t n) {
//     return static_cast<ArmSmmuDomain&>(*nested).cache_invalidate_user(c, n);
//   }));
//
// The guest has one CD (STE.S1CDMax == 0: no SubstreamIDs) with ASID kAsid and maps 4 KiB pages
// only, so its io-pgtable never replaces an emptied table by a block and never needs the
// flush_walk callback; its invalidations are the explicit ones of unmap().
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <functional>
#include <memory>

#include "arch/dma.h"
#include "arch/result.h"
#include "arch/smmuv3/cd.h"
#include "arch/smmuv3/cmd.h"
#include "core/io-pgtable/io_pgtable.h"
#include "drivers/iommu/arm/arm-smmu-v3/arm_smmu_v3.h"
#include "testing/sim/arm_platform.h"
#include "testing/sim/guest_memory.h"

namespace strata::sim {

class Guest {
 public:
  static constexpr phys_addr_t kGpa = 0x8000'0000;  // the guest's RAM, guest-physical
  static constexpr uint64_t kSize = 16 << 20;
  static constexpr uint32_t kAsid = 7;

  // The guest's commands on their way to the host: what the VMM does with a trapped vSMMU
  // CMDQ (for a nested domain, ArmSmmuDomain::cache_invalidate_user).
  using Cmdq = std::function<Result<void>(const ::strata::smmuv3::Command* cmds, size_t n)>;

  // Carves the guest's RAM out of the platform's (2 MiB aligned, so that stage 2 can map it
  // with blocks) and builds the stage-1 table, the CD and the STE words in it. -ENOMEM when
  // the platform's RAM is short; io-pgtable's and cd-lib's errors.
  static Result<std::unique_ptr<Guest>> create(ArmPlatform& platform);
  Guest(const Guest&) = delete;
  Guest& operator=(const Guest&) = delete;

  // Where the host keeps the guest's RAM: stage 2 maps [kGpa, kGpa + kSize) here.
  phys_addr_t ram_hpa() const { return ram_.phys(); }
  GuestMemory& mem() { return *mem_; }

  // The guest's stage 1: its io-pgtable (TTB0 and the walk's attributes in pgtbl_cfg()), its
  // CD as built (at cd_ipa() in guest memory) and its STE words 0 and 1 as it wrote them
  // (little-endian), Config stage 1 translate with S1ContextPtr = cd_ipa(): the data of
  // iommu_domain_alloc_nested, Linux's struct iommu_hwpt_arm_smmuv3.
  IoPgtable& pgtbl() { return *pgtbl_; }
  const IoPgtableCfg& pgtbl_cfg() const { return cfg_; }
  phys_addr_t cd_ipa() const { return cd_.phys; }
  const ::strata::smmuv3::CD& cd() const { return cd_words_; }
  const arm_smmu_v3::ArmSmmuNestedData& ste() const { return ste_; }

  // Maps [iova, iova + size) to [gpa, gpa + size) in 4 KiB pages. -EINVAL for a range that is
  // not page aligned or not in the guest's RAM; io-pgtable's errors (a partial mapping stays).
  Result<void> map(uint64_t iova, phys_addr_t gpa, uint64_t size, int prot);

  // Unmaps [iova, iova + size) (4 KiB pages, as mapped), then invalidates as the guest's driver
  // must before it reuses the pages: CMD_TLBI_NH_ASID for kAsid through `cmdq` (the host adds
  // its VMID and the CMD_SYNC), and only then frees the tables the unmap released. -ENOENT if
  // part of the range was not mapped (what was, is unmapped and invalidated); `cmdq`'s error.
  Result<void> unmap(uint64_t iova, uint64_t size, const Cmdq& cmdq);

  // CMD_TLBI_NH_ASID for the guest's ASID, as its driver writes it into the vSMMU's CMDQ.
  ::strata::smmuv3::Command tlbi_nh_asid() const;

  // The host's view of guest-physical `gpa`; nullptr outside the guest's RAM.
  uint8_t* host_ptr(phys_addr_t gpa) const;

 private:
  Guest() = default;

  DmaBuffer ram_;
  std::unique_ptr<GuestMemory> mem_;
  // The guest maps 4 KiB pages only: io-pgtable never calls it (see the top of the file).
  IommuFlushOps flush_ops_{.tlb_flush_walk = [](uint64_t, size_t, size_t, void*) {}};
  IoPgtableCfg cfg_ = {};
  Box<IoPgtable> pgtbl_;
  DmaRegion cd_ = {};
  ::strata::smmuv3::CD cd_words_;
  arm_smmu_v3::ArmSmmuNestedData ste_ = {};
};

}  // namespace strata::sim
