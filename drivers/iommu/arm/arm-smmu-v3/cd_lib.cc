// SPDX-License-Identifier: MIT
// A CD's contents: used bits and the stage-1 builder (cd_lib.h has the rules and choices).
#include "drivers/iommu/arm/arm-smmu-v3/cd_lib.h"

#include "arch/bug.h"
#include "drivers/iommu/arm/arm-smmu-v3/entry_writer.h"

namespace strata::arm_smmu_v3 {
namespace {

using smmuv3::CD;

static_assert(CD::kWords == kEntryQwords);

template <typename F>
uint64_t field(const uint64_t* cd) {
  return F::extract(cd[F::kWord]);
}

// Marks the fields unused.
template <typename... Fs>
void drop(uint64_t* used) {
  ((used[Fs::kWord] &= ~Fs::kMask), ...);
}

// VMSAv8-64 TTB0 holds address bits [51:4] (5.4 TTB0: bits [119:116] are RES0 unless AA64
// selects VMSAv9-128).
constexpr uint64_t kTtb0Limit = uint64_t{1} << 52;

}  // namespace

void cd_get_used(const uint64_t* cd, uint64_t* used) {
  for (unsigned i = 0; i < kEntryQwords; i++) used[i] = 0;
  used[CD::V::kWord] = CD::V::kMask;
  if (!field<CD::V>(cd)) return;  // 5.4 V: the rest is IGNORED

  for (unsigned i = 0; i < kEntryQwords; i++) used[i] = ~uint64_t{0};
  const bool epd0 = field<CD::EPD0>(cd), epd1 = field<CD::EPD1>(cd);
  // 5.4 EPD0 / EPD1, 5.4.1.1: no walks through TTBx, and validity checks are not made on the
  // fields it disables.
  if (epd0) drop<CD::T0SZ, CD::TG0, CD::IR0, CD::OR0, CD::SH0, CD::TTB0>(used);
  if (epd1) drop<CD::T1SZ, CD::TG1, CD::IR1, CD::OR1, CD::SH1, CD::TTB1>(used);
  // 5.4 ENDI: no table is walked at all.
  if (epd0 && epd1) drop<CD::ENDI>(used);
  // 5.4 AFFD: with hardware Access flag updates there is no Access flag fault to disable.
  if (field<CD::HA>(cd)) drop<CD::AFFD>(used);
  // 5.4 NSCFG0/NSCFG1: Secure STEs only.
  drop<CD::NSCFG0, CD::NSCFG1>(used);
  if (field<CD::AA64>(cd)) {
    // 5.4 UWXN: IGNORED with VMSAv8-64 (every EL0-writable region is PXN there).
    drop<CD::UWXN>(used);
    // 5.4 HWU059-HWU062 / HWU159-HWU162: IGNORED while hierarchical attributes are enabled.
    // Each HADx sits in the same word as its HWU bits, so a change of both is one store.
    if (!field<CD::HAD0>(cd)) drop<CD::HWU059, CD::HWU060, CD::HWU061, CD::HWU062>(used);
    if (!field<CD::HAD1>(cd)) drop<CD::HWU159, CD::HWU160, CD::HWU161, CD::HWU162>(used);
  }
}

Result<CD> make_s1_cd(const PasidStage1& s1, const CdS1Options& options) {
  if (s1.pgtable_fmt != IoPgtableFmt::arm_64_lpae_s1) return Error(-EINVAL);
  if (s1.flags & ~PASID_S1_FLAGS) return Error(-EINVAL);
  const PasidStage1::Tcr& tcr = s1.tcr;
  // Each value must fit its field; TG0 0b11 and SH0 0b01 are Reserved encodings (5.4), which
  // software must not rely on.
  if (!CD::T0SZ::fits(tcr.t0sz) || !CD::TG0::fits(tcr.tg0) || tcr.tg0 == 0b11 ||
      !CD::IR0::fits(tcr.irgn0) || !CD::OR0::fits(tcr.orgn0) || !CD::SH0::fits(tcr.sh0) ||
      tcr.sh0 == 0b01 || !CD::IPS::fits(tcr.ips) || !CD::ASID::fits(s1.asid))
    return Error(-EINVAL);
  if (!CD::TTB0::fits(s1.ttbr) || s1.ttbr >= kTtb0Limit) return Error(-EINVAL);

  const bool dirty = s1.flags & PASID_S1_HW_DIRTY;
  CD cd;
  cd.set<CD::T0SZ>(tcr.t0sz)
      .set<CD::TG0>(tcr.tg0)
      .set<CD::IR0>(tcr.irgn0)
      .set<CD::OR0>(tcr.orgn0)
      .set<CD::SH0>(tcr.sh0)
      .set<CD::EPD1>(1)
      .set<CD::V>(1)
      .set<CD::IPS>(tcr.ips)
      .set<CD::AA64>(1)
      .set<CD::HD>(dirty)
      .set<CD::HA>(dirty)
      .set<CD::S>(options.stall)
      .set<CD::R>(1)
      .set<CD::A>(1)
      .set<CD::ASET>(!options.shared_asid)
      .set<CD::ASID>(s1.asid)
      .set<CD::TTB0>(s1.ttbr)
      .set<CD::MAIR0>(s1.mair & 0xffffffff)
      .set<CD::MAIR1>(s1.mair >> 32);

  // The entry writer's contract: a target sets used bits only (else what it leaves in memory
  // is not what the SMMU reads).
  uint64_t words[kEntryQwords], used[kEntryQwords];
  for (unsigned i = 0; i < kEntryQwords; i++) words[i] = cd.word(i);
  cd_get_used(words, used);
  for (unsigned i = 0; i < kEntryQwords; i++) STRATA_BUG_ON(words[i] & ~used[i]);
  return cd;
}

Result<CD> make_s1_cd(const IoPgtableCfg& cfg, uint32_t asid, const CdS1Options& options) {
  const PasidStage1 s1 =
      STRATA_TRY(PasidStage1::from_io_pgtable(IoPgtableFmt::arm_64_lpae_s1, cfg, asid));
  return make_s1_cd(s1, options);
}

}  // namespace strata::arm_smmu_v3
