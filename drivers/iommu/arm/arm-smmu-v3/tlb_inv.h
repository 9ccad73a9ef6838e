// SPDX-License-Identifier: MIT
// TLB and ATC invalidation commands for a range of a domain (IHI 0070 4.4, 4.5.1; Linux's
// __arm_smmu_tlb_inv_range and arm_smmu_atc_inv_to_cmd).
//
// The choice per range, by size:
//  - With range invalidation (IDR3.RIL), a command covers (NUM + 1) * 2^SCALE granules from
//    Address (4.4.1.1), and one command covers any range: SCALE is the smallest at which the
//    granule count fits NUM's 32 runs, the count rounded up to whole runs. That is exact for
//    any count up to 32 and any count whose set bits lie within five adjacent bits (a power of
//    two, say); otherwise fewer than count / 16 granules past the end go too. Linux instead
//    sends one exact command per run size (up to one per set bit of the count: 4 MiB + 4 KiB is
//    two TLBIs there). Invalidating more than required is permitted (4.4) and costs only
//    refills of whatever is mapped just past the range; a queue slot and an SMMU range walk
//    per extra command are paid on every unmap. TTL says which level the leaves are at when
//    the caller knows (a leaf-only invalidation of `granule`-sized leaves), which lets the SMMU
//    skip the rest; past the range it may skip anything, since nothing there must go.
//  - Without it, one command per `granule`: cheap for a page, but a 1 GiB unmap of 4 KiB pages
//    would be 262144 commands. Past kMaxTlbiOps commands the whole ASID (CMD_TLBI_NH_ASID) or
//    VMID (CMD_TLBI_S12_VMALL) is invalidated instead: one command, at the price of refills.
//  - Leaf = 1 when only leaf entries changed (an unmap that freed no table); table walks
//    cached for the range must go too when a table was freed, so Leaf = 0 then.
//  - A stage 2 domain that is a nesting parent has combined stage 1+2 entries cached under
//    its VMID: CMD_TLBI_S2_IPA need not remove those (4.4.6, and the model's strict reading),
//    so the range is followed by CMD_TLBI_NH_ALL for the VMID, as Linux does.
// ATC: one CMD_ATC_INV for the smallest naturally aligned power-of-two span that covers the
// range (4.5.1: Address is aligned to 4KB * 2^Size), per StreamID and SubstreamID.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "arch/result.h"
#include "arch/smmuv3/cmd.h"
#include "drivers/iommu/arm/arm-smmu-v3/features.h"

namespace strata::arm_smmu_v3 {

// Where commands go: a command queue batch, or a test's recorder.
class CmdSink {
 public:
  virtual Result<void> add(const ::strata::smmuv3::Command& cmd) = 0;

 protected:
  ~CmdSink() = default;  // never owned through this interface
};

// Commands past which a per-granule invalidation becomes a whole ASID/VMID one (Linux's
// CMDQ_MAX_TLBI_OPS for 4 KiB pages).
inline constexpr uint64_t kMaxTlbiOps = 512;

// What a domain's TLB entries are tagged with.
struct TlbTag {
  enum class Kind {
    s1,              // stage 1: ASID (and VMID 0 for a host domain)
    s2,              // stage 2: VMID
    s2_nest_parent,  // stage 2 that nested stage 1s use: VMID, combined entries too
  };
  Kind kind;
  uint16_t asid = 0;
  uint16_t vmid = 0;
};

struct TlbInvRange {
  uint64_t iova;
  uint64_t size;
  uint64_t granule;    // the size of the leaves the range maps (one command each without RIL)
  unsigned tg_shift;   // the domain's translation granule: 12, 14 or 16
  bool leaf;           // only leaf entries changed
  bool mixed = false;  // leaves of several sizes: `granule` is the smallest, no TTL hint
};

// Adds the invalidation of `r` for `tag` to `sink` (top comment). -EINVAL for a range or
// granule that is not granule-aligned or a tg_shift that is not a granule.
Result<void> arm_smmu_tlb_inv_range(CmdSink& sink, const ArmSmmuFeatures& f, const TlbTag& tag,
                                    const TlbInvRange& r);

// Adds the invalidation of everything tagged `tag`: CMD_TLBI_NH_ASID, or CMD_TLBI_S12_VMALL.
Result<void> arm_smmu_tlb_inv_all(CmdSink& sink, const TlbTag& tag);

// The CMD_ATC_INV covering [iova, iova + size) for a stream (size 0: the whole ATC).
::strata::smmuv3::Command arm_smmu_atc_inv_cmd(uint32_t sid, bool ssv, uint32_t ssid, uint64_t iova,
                                               uint64_t size);

}  // namespace strata::arm_smmu_v3
