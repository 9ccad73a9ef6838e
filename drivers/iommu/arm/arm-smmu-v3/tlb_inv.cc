// SPDX-License-Identifier: MIT
#include "drivers/iommu/arm/arm-smmu-v3/tlb_inv.h"

#include "arch/errno.h"

namespace strata::arm_smmu_v3 {
namespace {

namespace hw = ::strata::smmuv3;
using hw::CmdTlbi;
using hw::Opcode;

uint64_t tg_field(unsigned tg_shift) {
  switch (tg_shift) {
    case 12: return hw::kTlbiTg4K;
    case 14: return hw::kTlbiTg16K;
    case 16: return hw::kTlbiTg64K;
    default: return hw::kTlbiTgNone;
  }
}

// TTL (4.4.1.1): the level of the leaves, for a leaf of `granule` bytes in tables of 2^tg_shift
// bytes: each level resolves tg_shift - 3 bits, level 3 maps one granule.
uint64_t ttl_of(uint64_t granule, unsigned tg_shift) {
  const unsigned bits = static_cast<unsigned>(__builtin_ctzll(granule));
  const unsigned per_level = tg_shift - 3;
  const unsigned up = (bits - tg_shift) / per_level;           // levels above 3
  if ((bits - tg_shift) % per_level != 0 || up > 3) return 0;  // not a leaf size: no hint
  return 3 - up;
}

CmdTlbi base_cmd(const TlbTag& tag) {
  switch (tag.kind) {
    case TlbTag::Kind::s1:
      return CmdTlbi::make(Opcode::CMD_TLBI_NH_VA)
          .set<CmdTlbi::ASID>(tag.asid)
          .set<CmdTlbi::VMID>(tag.vmid);
    case TlbTag::Kind::s2:
    case TlbTag::Kind::s2_nest_parent:
      return CmdTlbi::make(Opcode::CMD_TLBI_S2_IPA).set<CmdTlbi::VMID>(tag.vmid);
  }
  STRATA_BUG("bad TlbTag kind");
}

Result<void> add(CmdSink& sink, const CmdTlbi& c) {
  return sink.add(hw::descriptor_cast<hw::Command>(c));
}

// After stage 2 changes, the combined entries of nested stage 1s (top comment).
Result<void> nest_parent_tail(CmdSink& sink, const TlbTag& tag) {
  if (tag.kind != TlbTag::Kind::s2_nest_parent) return {};
  return add(sink, CmdTlbi::make(Opcode::CMD_TLBI_NH_ALL).set<CmdTlbi::VMID>(tag.vmid));
}

}  // namespace

Result<void> arm_smmu_tlb_inv_all(CmdSink& sink, const TlbTag& tag) {
  if (tag.kind == TlbTag::Kind::s1)
    return add(sink, CmdTlbi::make(Opcode::CMD_TLBI_NH_ASID)
                         .set<CmdTlbi::ASID>(tag.asid)
                         .set<CmdTlbi::VMID>(tag.vmid));
  // 4.4.5: every stage 1, stage 2 and combined entry of the VMID.
  return add(sink, CmdTlbi::make(Opcode::CMD_TLBI_S12_VMALL).set<CmdTlbi::VMID>(tag.vmid));
}

Result<void> arm_smmu_tlb_inv_range(CmdSink& sink, const ArmSmmuFeatures& f, const TlbTag& tag,
                                    const TlbInvRange& r) {
  const uint64_t tg = tg_field(r.tg_shift);
  if (tg == hw::kTlbiTgNone || r.granule == 0 || (r.granule & (r.granule - 1)) != 0 ||
      r.granule < (uint64_t{1} << r.tg_shift) || (r.iova & ((uint64_t{1} << r.tg_shift) - 1)) ||
      (r.size & ((uint64_t{1} << r.tg_shift) - 1)))
    return Error(-EINVAL);
  if (r.size == 0) return {};

  CmdTlbi cmd = base_cmd(tag);
  cmd.set<CmdTlbi::Leaf>(r.leaf);
  const uint64_t end = r.iova + r.size;

  if (f.range_inv) {
    // 4.4.1.1: TG gives the granule of the range, NUM and SCALE its length; TTL may only hint
    // the level when every entry invalidated is a leaf of that size.
    cmd.set<CmdTlbi::TG>(tg);
    const bool hint = r.leaf && !r.mixed;
    if (hint) cmd.set<CmdTlbi::TTL>(ttl_of(r.granule, r.tg_shift));
    uint64_t pages = r.size >> r.tg_shift;
    uint64_t iova = r.iova;
    while (pages) {
      // The smallest SCALE at which the count fits NUM's 32 runs, rounded up: one command
      // for any range, over-invalidating fewer than pages / 16 granules (top comment).
      // (SCALE is 5 bits without IDR5.DS; past 32 * 2^31 granules, more commands.)
      const unsigned width = pages > 1 ? 64 - static_cast<unsigned>(__builtin_clzll(pages - 1)) : 0;
      const unsigned scale = width > 5 ? (width - 5 > 31 ? 31 : width - 5) : 0;
      uint64_t num = (pages + (uint64_t{1} << scale) - 1) >> scale;
      if (num > 32) num = 32;
      cmd.set<CmdTlbi::NUM>(num - 1).set<CmdTlbi::SCALE>(scale).set<CmdTlbi::Address>(iova);
      // One granule with no level hint: TG with NUM, SCALE and TTL all 0 is Reserved (4.4.1.1),
      // so it goes as the plain form (TG 0), which invalidates the address at any level.
      if (!hint && num == 1 && scale == 0)
        STRATA_TRY(add(sink, CmdTlbi(cmd).set<CmdTlbi::TG>(hw::kTlbiTgNone)));
      else
        STRATA_TRY(add(sink, cmd));
      const uint64_t covered = num << scale;
      if (covered >= pages) break;
      pages -= covered;
      iova += covered << r.tg_shift;
    }
    return nest_parent_tail(sink, tag);
  }

  if ((r.size / r.granule) > kMaxTlbiOps) {
    STRATA_TRY(arm_smmu_tlb_inv_all(sink, tag));
    return {};  // S12_VMALL covers the combined entries too
  }
  for (uint64_t iova = r.iova; iova < end; iova += r.granule)
    STRATA_TRY(add(sink, CmdTlbi(cmd).set<CmdTlbi::Address>(iova)));
  return nest_parent_tail(sink, tag);
}

hw::Command arm_smmu_atc_inv_cmd(uint32_t sid, bool ssv, uint32_t ssid, uint64_t iova,
                                 uint64_t size) {
  using hw::CmdAtcInv;
  CmdAtcInv c = CmdAtcInv::make().set<CmdAtcInv::StreamID>(sid);
  if (ssv) c.set<CmdAtcInv::SSV>(1).set<CmdAtcInv::SubstreamID>(ssid);
  if (size == 0) {
    c.set<CmdAtcInv::Size>(CmdAtcInv::kSizeAll);
    return hw::descriptor_cast<hw::Command>(c);
  }
  // The smallest span 4KB * 2^Size, aligned to itself, that holds both the first and the last
  // byte: the highest bit in which the first and last 4KB page numbers differ decides it.
  const uint64_t first = iova >> 12, last = (iova + size - 1) >> 12;
  const uint64_t diff = first ^ last;
  unsigned log2span = diff == 0 ? 0 : 64 - static_cast<unsigned>(__builtin_clzll(diff));
  if (log2span >= CmdAtcInv::kSizeAll) {
    c.set<CmdAtcInv::Size>(CmdAtcInv::kSizeAll);
    return hw::descriptor_cast<hw::Command>(c);
  }
  const uint64_t base = (first >> log2span) << log2span << 12;
  c.set<CmdAtcInv::Size>(log2span).set<CmdAtcInv::Address>(base);
  return hw::descriptor_cast<hw::Command>(c);
}

}  // namespace strata::arm_smmu_v3
