// SPDX-License-Identifier: MIT
// The invalidation commands chosen per range, checked field by field.
#include "drivers/iommu/arm/arm-smmu-v3/tlb_inv.h"

#include <doctest/doctest.h>

#include <vector>

#include "arch/errno.h"
#include "core/io-pgtable/io_pgtable.h"

namespace strata::arm_smmu_v3 {
namespace {

namespace hw = ::strata::smmuv3;
using hw::CmdAtcInv;
using hw::CmdTlbi;
using hw::Opcode;

struct Recorder final : CmdSink {
  std::vector<hw::Command> cmds;
  int fail_at = -1;
  Result<void> add(const hw::Command& c) override {
    if (static_cast<int>(cmds.size()) == fail_at) return Error(-ETIMEDOUT);
    cmds.push_back(c);
    return {};
  }
  CmdTlbi tlbi(size_t i) const { return hw::descriptor_cast<CmdTlbi>(cmds.at(i)); }
  Opcode op(size_t i) const { return static_cast<Opcode>(cmds.at(i).opcode()); }
};

ArmSmmuFeatures with_ril(bool ril) {
  ArmSmmuFeatures f;
  f.range_inv = ril;
  return f;
}

const TlbTag kS1{.kind = TlbTag::Kind::s1, .asid = 7, .vmid = 0};
const TlbTag kS2{.kind = TlbTag::Kind::s2, .vmid = 9};
const TlbTag kParent{.kind = TlbTag::Kind::s2_nest_parent, .vmid = 9};

TEST_CASE("one 4K page without range invalidation: one NH_VA, leaf") {
  Recorder r;
  REQUIRE(arm_smmu_tlb_inv_range(
              r, with_ril(false), kS1,
              {.iova = 0x10000, .size = SZ_4K, .granule = SZ_4K, .tg_shift = 12, .leaf = true})
              .ok());
  REQUIRE(r.cmds.size() == 1);
  CHECK(r.op(0) == Opcode::CMD_TLBI_NH_VA);
  CHECK(r.tlbi(0).get<CmdTlbi::ASID>() == 7);
  CHECK(r.tlbi(0).get<CmdTlbi::Leaf>() == 1);
  CHECK(r.tlbi(0).get<CmdTlbi::Address>() == 0x10000);
  CHECK(r.tlbi(0).get<CmdTlbi::TG>() == 0);  // no range: TG, NUM, SCALE, TTL RES0
  CHECK(r.tlbi(0).get<CmdTlbi::TTL>() == 0);
}

TEST_CASE("per-granule commands up to the limit, then the whole ASID or VMID") {
  Recorder r;
  REQUIRE(arm_smmu_tlb_inv_range(
              r, with_ril(false), kS1,
              {.iova = 0, .size = 16 * SZ_4K, .granule = SZ_4K, .tg_shift = 12, .leaf = true})
              .ok());
  REQUIRE(r.cmds.size() == 16);
  for (size_t i = 0; i < 16; i++) CHECK(r.tlbi(i).get<CmdTlbi::Address>() == i * SZ_4K);

  Recorder big;
  REQUIRE(arm_smmu_tlb_inv_range(
              big, with_ril(false), kS1,
              {.iova = 0, .size = SZ_1G, .granule = SZ_4K, .tg_shift = 12, .leaf = true})
              .ok());
  REQUIRE(big.cmds.size() == 1);
  CHECK(big.op(0) == Opcode::CMD_TLBI_NH_ASID);
  CHECK(big.tlbi(0).get<CmdTlbi::ASID>() == 7);

  Recorder s2;
  REQUIRE(arm_smmu_tlb_inv_range(
              s2, with_ril(false), kParent,
              {.iova = 0, .size = SZ_1G, .granule = SZ_4K, .tg_shift = 12, .leaf = true})
              .ok());
  REQUIRE(s2.cmds.size() == 1);
  CHECK(s2.op(0) == Opcode::CMD_TLBI_S12_VMALL);
  CHECK(s2.tlbi(0).get<CmdTlbi::VMID>() == 9);

  // A 2M block is one command even without range invalidation.
  Recorder block;
  REQUIRE(arm_smmu_tlb_inv_range(
              block, with_ril(false), kS2,
              {.iova = SZ_2M, .size = SZ_2M, .granule = SZ_2M, .tg_shift = 12, .leaf = true})
              .ok());
  REQUIRE(block.cmds.size() == 1);
  CHECK(block.op(0) == Opcode::CMD_TLBI_S2_IPA);
}

TEST_CASE("range invalidation: NUM and SCALE, TG and TTL") {
  Recorder r;
  // 97 pages: 25 runs of 4 pages, one command that goes 3 pages past the end.
  REQUIRE(
      arm_smmu_tlb_inv_range(
          r, with_ril(true), kS1,
          {.iova = 0x100000, .size = 97 * SZ_4K, .granule = SZ_4K, .tg_shift = 12, .leaf = true})
          .ok());
  REQUIRE(r.cmds.size() == 1);
  CHECK(r.tlbi(0).get<CmdTlbi::NUM>() == 24);   // 25 runs
  CHECK(r.tlbi(0).get<CmdTlbi::SCALE>() == 2);  // of 4 pages
  CHECK(r.tlbi(0).get<CmdTlbi::Address>() == 0x100000);
  CHECK(r.tlbi(0).get<CmdTlbi::TG>() == hw::kTlbiTg4K);
  CHECK(r.tlbi(0).get<CmdTlbi::TTL>() == 3);  // 4K leaves are level 3
  CHECK(r.tlbi(0).get<CmdTlbi::Leaf>() == 1);

  // Up to 32 pages are exact runs of one page.
  Recorder p;
  REQUIRE(
      arm_smmu_tlb_inv_range(
          p, with_ril(true), kS1,
          {.iova = 0x100000, .size = 32 * SZ_4K, .granule = SZ_4K, .tg_shift = 12, .leaf = true})
          .ok());
  REQUIRE(p.cmds.size() == 1);
  CHECK(p.tlbi(0).get<CmdTlbi::NUM>() == 31);
  CHECK(p.tlbi(0).get<CmdTlbi::SCALE>() == 0);

  // 1 GiB of 4K pages: 2^18 pages, 32 runs of 2^13, one command.
  Recorder g;
  REQUIRE(arm_smmu_tlb_inv_range(
              g, with_ril(true), kS1,
              {.iova = SZ_1G, .size = SZ_1G, .granule = SZ_4K, .tg_shift = 12, .leaf = true})
              .ok());
  REQUIRE(g.cmds.size() == 1);
  CHECK(g.tlbi(0).get<CmdTlbi::SCALE>() == 13);
  CHECK(g.tlbi(0).get<CmdTlbi::NUM>() == 31);

  // A 2M block leaf is level 2; a 1G block level 1; 32M with 16K tables level 2.
  Recorder b;
  REQUIRE(arm_smmu_tlb_inv_range(
              b, with_ril(true), kS1,
              {.iova = 0, .size = SZ_2M, .granule = SZ_2M, .tg_shift = 12, .leaf = true})
              .ok());
  CHECK(b.tlbi(0).get<CmdTlbi::TTL>() == 2);
  Recorder b1;
  REQUIRE(arm_smmu_tlb_inv_range(
              b1, with_ril(true), kS1,
              {.iova = 0, .size = SZ_1G, .granule = SZ_1G, .tg_shift = 12, .leaf = true})
              .ok());
  CHECK(b1.tlbi(0).get<CmdTlbi::TTL>() == 1);
  Recorder b16;
  REQUIRE(arm_smmu_tlb_inv_range(
              b16, with_ril(true), kS1,
              {.iova = 0, .size = SZ_32M, .granule = SZ_32M, .tg_shift = 14, .leaf = true})
              .ok());
  CHECK(b16.tlbi(0).get<CmdTlbi::TG>() == hw::kTlbiTg16K);
  CHECK(b16.tlbi(0).get<CmdTlbi::TTL>() == 2);

  // Not leaf-only: no TTL hint.
  Recorder t;
  REQUIRE(arm_smmu_tlb_inv_range(
              t, with_ril(true), kS1,
              {.iova = 0, .size = SZ_2M, .granule = SZ_4K, .tg_shift = 12, .leaf = false})
              .ok());
  CHECK(t.tlbi(0).get<CmdTlbi::Leaf>() == 0);
  CHECK(t.tlbi(0).get<CmdTlbi::TTL>() == 0);
}

TEST_CASE("range invalidation: leaves of several sizes get no TTL hint") {
  Recorder r;
  REQUIRE(arm_smmu_tlb_inv_range(r, with_ril(true), kS1,
                                 {.iova = 0,
                                  .size = 2 * SZ_2M + SZ_4K,
                                  .granule = SZ_4K,
                                  .tg_shift = 12,
                                  .leaf = true,
                                  .mixed = true})
              .ok());
  // 1025 pages: 17 runs of 64 (63 pages past the end), in one command without a hint.
  REQUIRE(r.cmds.size() == 1);
  CHECK(r.tlbi(0).get<CmdTlbi::TG>() == hw::kTlbiTg4K);
  CHECK(r.tlbi(0).get<CmdTlbi::TTL>() == 0);
  CHECK(r.tlbi(0).get<CmdTlbi::Leaf>() == 1);
  CHECK(r.tlbi(0).get<CmdTlbi::NUM>() == 16);
  CHECK(r.tlbi(0).get<CmdTlbi::SCALE>() == 6);

  // A single page without a hint would be TG with NUM, SCALE and TTL 0, which is Reserved:
  // it goes as the plain form.
  Recorder u;
  REQUIRE(arm_smmu_tlb_inv_range(u, with_ril(true), kS1,
                                 {.iova = 0x5000,
                                  .size = SZ_4K,
                                  .granule = SZ_4K,
                                  .tg_shift = 12,
                                  .leaf = true,
                                  .mixed = true})
              .ok());
  REQUIRE(u.cmds.size() == 1);
  CHECK(u.tlbi(0).get<CmdTlbi::TG>() == hw::kTlbiTgNone);
  CHECK(u.tlbi(0).get<CmdTlbi::NUM>() == 0);
  CHECK(u.tlbi(0).get<CmdTlbi::Address>() == 0x5000);

  // The same for a single page whose table went too (not leaf-only).
  Recorder t;
  REQUIRE(arm_smmu_tlb_inv_range(
              t, with_ril(true), kS1,
              {.iova = 0x5000, .size = SZ_4K, .granule = SZ_4K, .tg_shift = 12, .leaf = false})
              .ok());
  REQUIRE(t.cmds.size() == 1);
  CHECK(t.tlbi(0).get<CmdTlbi::TG>() == hw::kTlbiTgNone);
  CHECK(t.tlbi(0).get<CmdTlbi::Leaf>() == 0);
  // The gather says when that is.
  IotlbGather g;
  g.add_range(0, SZ_2M, SZ_2M);
  CHECK_FALSE(g.mixed_granules());
  g.add_range(SZ_2M, SZ_2M, SZ_2M);
  CHECK_FALSE(g.mixed_granules());
  g.add_range(2 * SZ_2M, SZ_4K, SZ_4K);
  CHECK(g.mixed_granules());
  CHECK(g.granule() == SZ_4K);
  g.reset();
  CHECK_FALSE(g.mixed_granules());
}

TEST_CASE("every range is covered by one command, exactly or by less than 1/16 more") {
  for (uint64_t pages = 1; pages < 70000; pages += 37) {
    Recorder r;
    const uint64_t base = 0x40000000 + pages * SZ_4K;
    REQUIRE(
        arm_smmu_tlb_inv_range(
            r, with_ril(true), kS2,
            {.iova = base, .size = pages * SZ_4K, .granule = SZ_4K, .tg_shift = 12, .leaf = true})
            .ok());
    REQUIRE(r.cmds.size() == 1);
    const CmdTlbi c = r.tlbi(0);
    CHECK(c.get<CmdTlbi::Address>() == base);
    const uint64_t covered = (c.get<CmdTlbi::NUM>() + 1) << c.get<CmdTlbi::SCALE>();
    CHECK(covered >= pages);
    if (pages <= 32)
      CHECK(covered == pages);
    else
      CHECK((covered - pages) * 16 < pages);
  }
  // Powers of two and counts of few adjacent bits are exact.
  for (uint64_t pages : {uint64_t{64}, uint64_t{1} << 20, uint64_t{31} << 7, uint64_t{17} << 30}) {
    Recorder r;
    REQUIRE(arm_smmu_tlb_inv_range(
                r, with_ril(true), kS1,
                {.iova = 0, .size = pages * SZ_4K, .granule = SZ_4K, .tg_shift = 12, .leaf = true})
                .ok());
    REQUIRE(r.cmds.size() == 1);
    CHECK(((r.tlbi(0).get<CmdTlbi::NUM>() + 1) << r.tlbi(0).get<CmdTlbi::SCALE>()) == pages);
  }
  // Past 32 * 2^31 granules SCALE is at its 5-bit limit: more commands, back to back.
  Recorder big;
  const uint64_t huge = (uint64_t{32} << 31) + 5;
  REQUIRE(arm_smmu_tlb_inv_range(
              big, with_ril(true), kS1,
              {.iova = 0, .size = huge * SZ_4K, .granule = SZ_4K, .tg_shift = 12, .leaf = true})
              .ok());
  REQUIRE(big.cmds.size() == 2);
  CHECK(big.tlbi(0).get<CmdTlbi::SCALE>() == 31);
  CHECK(big.tlbi(0).get<CmdTlbi::NUM>() == 31);
  CHECK(big.tlbi(1).get<CmdTlbi::Address>() == (uint64_t{32} << 31) * SZ_4K);
  CHECK(big.tlbi(1).get<CmdTlbi::NUM>() == 4);
  CHECK(big.tlbi(1).get<CmdTlbi::SCALE>() == 0);
}

TEST_CASE("a nesting parent's stage 2 range is followed by NH_ALL for its VMID") {
  Recorder r;
  REQUIRE(arm_smmu_tlb_inv_range(
              r, with_ril(true), kParent,
              {.iova = 0, .size = SZ_4K, .granule = SZ_4K, .tg_shift = 12, .leaf = true})
              .ok());
  REQUIRE(r.cmds.size() == 2);
  CHECK(r.op(0) == Opcode::CMD_TLBI_S2_IPA);
  CHECK(r.op(1) == Opcode::CMD_TLBI_NH_ALL);
  CHECK(r.tlbi(1).get<CmdTlbi::VMID>() == 9);
}

TEST_CASE("bad ranges and a failing sink") {
  Recorder r;
  const ArmSmmuFeatures f = with_ril(false);
  CHECK(arm_smmu_tlb_inv_range(
            r, f, kS1, {.iova = 1, .size = SZ_4K, .granule = SZ_4K, .tg_shift = 12, .leaf = true})
            .error()
            .code() == -EINVAL);
  CHECK(arm_smmu_tlb_inv_range(
            r, f, kS1, {.iova = 0, .size = SZ_4K, .granule = SZ_4K, .tg_shift = 13, .leaf = true})
            .error()
            .code() == -EINVAL);
  CHECK(
      arm_smmu_tlb_inv_range(
          r, f, kS1, {.iova = 0, .size = SZ_4K, .granule = 3 * SZ_4K, .tg_shift = 12, .leaf = true})
          .error()
          .code() == -EINVAL);
  CHECK(r.cmds.empty());
  Recorder failing;
  failing.fail_at = 2;
  CHECK(arm_smmu_tlb_inv_range(
            failing, f, kS1,
            {.iova = 0, .size = 8 * SZ_4K, .granule = SZ_4K, .tg_shift = 12, .leaf = true})
            .error()
            .code() == -ETIMEDOUT);
}

TEST_CASE("ATC invalidation spans") {
  auto span = [](uint64_t iova, uint64_t size) {
    return hw::descriptor_cast<CmdAtcInv>(arm_smmu_atc_inv_cmd(3, true, 5, iova, size));
  };
  CmdAtcInv c = span(0x5000, SZ_4K);
  CHECK(c.get<CmdAtcInv::Op>() == static_cast<uint8_t>(Opcode::CMD_ATC_INV));
  CHECK(c.get<CmdAtcInv::StreamID>() == 3);
  CHECK(c.get<CmdAtcInv::SSV>() == 1);
  CHECK(c.get<CmdAtcInv::SubstreamID>() == 5);
  CHECK(c.get<CmdAtcInv::Size>() == 0);
  CHECK(c.get<CmdAtcInv::Address>() == 0x5000);
  // Pages 0x7 and 0x8 differ in bit 3: a 16-page span at 0.
  c = span(0x7000, 2 * SZ_4K);
  CHECK(c.get<CmdAtcInv::Size>() == 4);
  CHECK(c.get<CmdAtcInv::Address>() == 0);
  c = span(SZ_2M, SZ_2M);
  CHECK(c.get<CmdAtcInv::Size>() == 9);
  CHECK(c.get<CmdAtcInv::Address>() == SZ_2M);
  c = hw::descriptor_cast<CmdAtcInv>(arm_smmu_atc_inv_cmd(3, false, 0, 0, 0));
  CHECK(c.get<CmdAtcInv::Size>() == CmdAtcInv::kSizeAll);
  CHECK(c.get<CmdAtcInv::SSV>() == 0);
  CHECK(c.get<CmdAtcInv::Address>() == 0);
}

}  // namespace
}  // namespace strata::arm_smmu_v3
