// SPDX-License-Identifier: MIT
#include "testing/sim/guest.h"

#include "arch/endian.h"
#include "drivers/iommu/arm/arm-smmu-v3/cd_lib.h"

namespace strata::sim {

namespace hw = ::strata::smmuv3;

Result<std::unique_ptr<Guest>> Guest::create(ArmPlatform& platform) {
  std::unique_ptr<Guest> g(new Guest());
  g->ram_ = STRATA_TRY(DmaBuffer::alloc(platform.dma(), kSize, SZ_2M));
  g->mem_ = std::make_unique<GuestMemory>(platform.mem(), g->ram_.phys(), kGpa, kSize);

  // What the guest's driver asks of io-pgtable for a stage-1 domain of its vSMMU.
  g->cfg_.pgsize_bitmap = SZ_4K | SZ_2M | SZ_1G;
  g->cfg_.ias = 48;
  g->cfg_.oas = 48;
  g->cfg_.dma = g->mem_.get();
  g->cfg_.tlb = &g->flush_ops_;
  g->pgtbl_ = STRATA_TRY(IoPgtable::alloc(IoPgtableFmt::arm_64_lpae_s1, g->cfg_));

  // One CD (S1CDMax 0), 64-byte aligned as a CD table must be (5.2 S1ContextPtr).
  g->cd_ = STRATA_TRY(g->mem_->alloc(sizeof(uint64_t) * hw::CD::kWords, 64));
  g->cd_words_ = STRATA_TRY(arm_smmu_v3::make_s1_cd(g->cfg_, kAsid));
  // V is in word 0: write it last, as any CD writer must for a CD the SMMU may fetch.
  auto* cd = static_cast<uint64_t*>(g->cd_.cpu);
  for (size_t i = hw::CD::kWords; i-- > 0;) dma_write64(cd + i, g->cd_words_.word(i));

  const hw::STE ste = arm_smmu_v3::make_cdtable_ste(arm_smmu_v3::SteFeatures{},
                                                    arm_smmu_v3::SteCdTable{.cdtab = g->cd_.phys});
  // As the guest writes it into its vSMMU's stream table: little-endian.
  g->ste_.ste[0] = cpu_to_le64(ste.word(0));
  g->ste_.ste[1] = cpu_to_le64(ste.word(1));
  return g;
}

Result<void> Guest::map(uint64_t iova, phys_addr_t gpa, uint64_t size, int prot) {
  if ((iova | gpa | size) & (SZ_4K - 1) || gpa < kGpa || size > kSize || gpa - kGpa > kSize - size)
    return Error(-EINVAL);
  // map_pages maps what fits in one leaf table per call.
  for (uint64_t done = 0; done < size;) {
    const size_t n =
        STRATA_TRY(pgtbl_->map_pages(iova + done, gpa + done, SZ_4K, (size - done) / SZ_4K, prot));
    if (n == 0) return Error(-EINVAL);
    done += n;
  }
  return {};
}

Result<void> Guest::unmap(uint64_t iova, uint64_t size, const Cmdq& cmdq) {
  if ((iova | size) & (SZ_4K - 1)) return Error(-EINVAL);
  IotlbGather gather;
  bool hole = false;
  Result<void> r = {};
  // unmap_pages stops at a table's end and at a hole: go on past either.
  for (uint64_t done = 0; done < size;) {
    auto n = pgtbl_->unmap_pages(iova + done, SZ_4K, (size - done) / SZ_4K, gather);
    if (!n.ok()) {
      r = n.error();
      break;
    }
    hole |= n.value() == 0;
    done += n.value() ? n.value() : SZ_4K;
  }
  // The invalidation before the tables the unmap released are freed: the SMMU may be walking
  // them until the host's CMD_SYNC has completed. (Freed or not, GuestMemory never reuses
  // them, so a failed invalidation cannot make the SMMU walk reused memory.)
  const hw::Command inv = tlbi_nh_asid();
  Result<void> sent = cmdq(&inv, 1);
  gather.release_freelist();
  if (!r.ok()) return r;
  if (!sent.ok()) return sent;
  return hole ? Result<void>(Error(-ENOENT)) : Result<void>();
}

hw::Command Guest::tlbi_nh_asid() const {
  return hw::descriptor_cast<hw::Command>(
      hw::CmdTlbi::make(hw::Opcode::CMD_TLBI_NH_ASID).set<hw::CmdTlbi::ASID>(kAsid));
}

uint8_t* Guest::host_ptr(phys_addr_t gpa) const {
  if (gpa < kGpa || gpa - kGpa >= kSize) return nullptr;
  return static_cast<uint8_t*>(ram_.cpu()) + (gpa - kGpa);
}

}  // namespace strata::sim
