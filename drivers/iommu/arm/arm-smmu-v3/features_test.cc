// SPDX-License-Identifier: MIT
// The driver's reading of the ID registers, against the SMMUv3 model's presets, and its refusals
// against ID values set by hand in the model's register file.
#include "drivers/iommu/arm/arm-smmu-v3/features.h"

#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "arch/errno.h"
#include "arch/log.h"
#include "arch/smmuv3/regs.h"
#include "core/io-pgtable/io_pgtable.h"
#include "testing/hosted/hosted.h"
#include "testing/models/smmuv3/config.h"
#include "testing/models/smmuv3/registers.h"

namespace strata::arm_smmu_v3 {
namespace {

namespace hw = ::strata::smmuv3;
using sim::smmuv3::Config;
using sim::smmuv3::Registers;

std::unique_ptr<Registers> regs_of(const Config& c) {
  auto r = Registers::create(c);
  REQUIRE(r.ok());
  return r.release_value();
}

Result<ArmSmmuFeatures> probe(Registers& r) {
  return arm_smmu_probe_features(Mmio::model(r, hw::kRegisterSpaceBytes), "smmu-test");
}

TEST_CASE("an SMMUv3.2 with every feature") {
  auto r = regs_of(Config::smmuv3_2());
  auto f = probe(*r);
  REQUIRE(f.ok());
  CHECK(f->trans_s1);
  CHECK(f->trans_s2);
  CHECK(f->nesting);
  CHECK(f->two_level_strtab);
  CHECK(f->two_level_cdtab);
  CHECK(f->coherent);
  CHECK(f->hw_access);
  CHECK(f->hw_dirty);
  CHECK(f->ats);
  CHECK(f->pri);
  CHECK(f->msi);
  CHECK(f->sev);
  CHECK(f->stalls);
  CHECK(f->asid_bits == 16);
  CHECK(f->vmid_bits == 16);
  CHECK(f->sid_bits == 16);
  CHECK(f->ssid_bits == 20);
  CHECK(f->cmdq_shift == 19);
  CHECK(f->range_inv);
  CHECK(f->fwb);
  CHECK(f->oas == 48);
  CHECK(f->ias == 48);
  CHECK(f->va_bits == 48);
  CHECK(f->pgsize_bitmap == (SZ_4K | SZ_2M | SZ_1G | SZ_16K | SZ_32M | SZ_64K | SZ_512M));
  CHECK(f->arch_minor == 2);
}

TEST_CASE("an SMMUv3.0 and single-stage SMMUs") {
  auto v30 = regs_of(Config::smmuv3_0());
  auto f = probe(*v30);
  REQUIRE(f.ok());
  CHECK(f->arch_minor == 0);
  CHECK_FALSE(f->range_inv);  // RIL is v3.2
  CHECK_FALSE(f->fwb);

  auto s1 = regs_of(Config::stage1_only());
  auto f1 = probe(*s1);
  REQUIRE(f1.ok());
  CHECK(f1->trans_s1);
  CHECK_FALSE(f1->trans_s2);
  CHECK_FALSE(f1->nesting);

  auto s2 = regs_of(Config::stage2_only());
  auto f2 = probe(*s2);
  REQUIRE(f2.ok());
  CHECK_FALSE(f2->trans_s1);
  CHECK(f2->trans_s2);
  CHECK_FALSE(f2->nesting);
}

TEST_CASE("small ID values: 8-bit ASIDs and VMIDs, 4K only, 40-bit OAS, 52-bit VAs") {
  Config c;
  c.asid16 = false;
  c.vmid16 = false;
  c.gran16k = false;
  c.oas = hw::kAddrSize40;
  c.vax = hw::kVax52;
  c.gran4k = true;
  c.gran64k = true;
  auto r = regs_of(c);
  auto f = probe(*r);
  REQUIRE(f.ok());
  CHECK(f->asid_bits == 8);
  CHECK(f->vmid_bits == 8);
  CHECK(f->oas == 40);
  CHECK(f->va_bits == 52);
  CHECK(f->pgsize_bitmap == (SZ_4K | SZ_2M | SZ_1G | SZ_64K | SZ_512M));
}

// Refusals: the ID register is overwritten in the model (the model's own view, as a broken or
// exotic implementation would report it).
template <typename R>
void patch(Registers& regs, uint64_t clear, uint64_t set) {
  regs.set(R::kOffset, (regs.value(R::kOffset) & ~clear) | set);
}

TEST_CASE("what the driver refuses, with -ENXIO") {
  auto r = regs_of(Config::smmuv3_2());
  SUBCASE("no stage at all") {
    patch<hw::IDR0>(*r, hw::IDR0::S1P::kMask | hw::IDR0::S2P::kMask, 0);
  }
  SUBCASE("AArch32 tables only") {
    patch<hw::IDR0>(*r, hw::IDR0::TTF::kMask, hw::IDR0::TTF::insert(0, hw::kTtfAArch32));
  }
  SUBCASE("big-endian walks only") {
    patch<hw::IDR0>(*r, hw::IDR0::TTENDIAN::kMask, hw::IDR0::TTENDIAN::insert(0, hw::kTtendianBe));
  }
  SUBCASE("TTENDIAN Reserved") {
    patch<hw::IDR0>(*r, hw::IDR0::TTENDIAN::kMask, hw::IDR0::TTENDIAN::insert(0, 0b01));
  }
  SUBCASE("preset tables") { patch<hw::IDR1>(*r, 0, hw::IDR1::TABLES_PRESET::kMask); }
  SUBCASE("preset queues") { patch<hw::IDR1>(*r, 0, hw::IDR1::QUEUES_PRESET::kMask); }
  SUBCASE("a Command queue of 64 entries") {
    patch<hw::IDR1>(*r, hw::IDR1::CMDQS::kMask, hw::IDR1::CMDQS::insert(0, 6));
  }
  SUBCASE("no granule") {
    patch<hw::IDR5>(
        *r, hw::IDR5::GRAN4K::kMask | hw::IDR5::GRAN16K::kMask | hw::IDR5::GRAN64K::kMask, 0);
  }
  auto f = probe(*r);
  REQUIRE_FALSE(f.ok());
  CHECK(f.error().code() == -ENXIO);
}

// IDR0.STALL_MODEL == 0b10: every faulting transaction would stall, and the driver has
// no CMD_RESUME or CMD_STALL_TERM to end a stall (IHI 0070 6.3.1).
TEST_CASE("stalls forced (STALL_MODEL 0b10) are refused, with -ENXIO and an error line") {
  Config c;
  c.stall_model = hw::kStallModelStallForced;
  auto r = regs_of(c);
  hosted::LogCapture log;
  auto f = probe(*r);
  REQUIRE_FALSE(f.ok());
  CHECK(f.error().code() == -ENXIO);
  bool logged = false;
  for (const auto& line : log.lines()) {
    if (line.level == static_cast<int>(LogLevel::err) &&
        line.text.find("smmu-test") != std::string::npos &&
        line.text.find("IDR0.STALL_MODEL") != std::string::npos)
      logged = true;
  }
  CHECK(logged);
}

TEST_CASE("STALL_MODEL 0b00 (stall and terminate) and 0b01 (terminate only) probe") {
  Config c;
  SUBCASE("0b00") {
    c.stall_model = hw::kStallModelStallAndTerminate;
    auto r = regs_of(c);
    auto f = probe(*r);
    REQUIRE(f.ok());
    CHECK(f->stalls);
  }
  SUBCASE("0b01") {
    c.stall_model = hw::kStallModelTerminate;
    auto r = regs_of(c);
    auto f = probe(*r);
    REQUIRE(f.ok());
    CHECK_FALSE(f->stalls);
  }
}

// PRI is an extension of PCIe ATS (IHI 0070 3.9, 8): IDR0.PRI is RES0 without IDR0.ATS, which
// the model's Config enforces, so a broken implementation's IDR0 is patched in by hand.
TEST_CASE("PRI is reported only with ATS") {
  auto r = regs_of(Config::smmuv3_2());
  SUBCASE("PRI without ATS") {
    patch<hw::IDR0>(*r, hw::IDR0::ATS::kMask, hw::IDR0::PRI::kMask);
    auto f = probe(*r);
    REQUIRE(f.ok());
    CHECK_FALSE(f->ats);
    CHECK_FALSE(f->pri);
  }
  SUBCASE("PRI with ATS") {
    patch<hw::IDR0>(*r, 0, hw::IDR0::ATS::kMask | hw::IDR0::PRI::kMask);
    auto f = probe(*r);
    REQUIRE(f.ok());
    CHECK(f->ats);
    CHECK(f->pri);
  }
}

TEST_CASE("a Command queue of exactly two batches is enough") {
  auto r = regs_of(Config::smmuv3_2());
  patch<hw::IDR1>(*r, hw::IDR1::CMDQS::kMask, hw::IDR1::CMDQS::insert(0, 7));
  auto f = probe(*r);
  REQUIRE(f.ok());
  CHECK(f->cmdq_shift == 7);
}

TEST_CASE("address size encodings") {
  CHECK(arm_smmu_addr_size_bits(hw::kAddrSize32) == 32);
  CHECK(arm_smmu_addr_size_bits(hw::kAddrSize44) == 44);
  CHECK(arm_smmu_addr_size_bits(hw::kAddrSize52) == 52);
  CHECK(arm_smmu_addr_size_bits(hw::kAddrSize56) == 56);
  CHECK(arm_smmu_addr_size_bits(8) == 0);
}

}  // namespace
}  // namespace strata::arm_smmu_v3
