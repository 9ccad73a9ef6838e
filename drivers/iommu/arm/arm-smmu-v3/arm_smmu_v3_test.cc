// SPDX-License-Identifier: MIT
// The driver proper against the SMMUv3 model: what the reset sequence leaves in the registers,
// the error paths of probe, device probe and attach, global errors, MSIs and hw_info. The
// end-to-end DMA scenarios are in testing/sim/arm_smmu_e2e_test.cc.
#include "drivers/iommu/arm/arm-smmu-v3/arm_smmu_v3.h"

#include <doctest/doctest.h>

#include "arch/smmuv3/regs.h"
#include "core/iommu.h"
#include "testing/hosted/hosted.h"
#include "testing/sim/arm_system.h"

namespace strata::arm_smmu_v3 {
namespace {

namespace hw = ::strata::smmuv3;
using sim::ArmSystem;
using sim::ArmSystemConfig;

std::unique_ptr<ArmSystem> make_system(ArmSystemConfig cfg = {}) {
  auto r = ArmSystem::create(cfg);
  REQUIRE(r.ok());
  return r.release_value();
}

TEST_CASE("IdAllocator: lowest free ID first, freed IDs come back, -ENOSPC when full") {
  IdAllocator ids;
  REQUIRE(ids.init(1, 3).ok());
  CHECK(ids.init(1, 3).error().code() == -EINVAL);
  CHECK(ids.alloc().value() == 1);
  CHECK(ids.alloc().value() == 2);
  CHECK(ids.alloc().value() == 3);
  CHECK(ids.alloc().error().code() == -ENOSPC);
  ids.free(2);
  CHECK(ids.in_use() == 2);
  CHECK(ids.alloc().value() == 2);
  IdAllocator wide;
  REQUIRE(wide.init(1, 65535).ok());
  for (uint32_t i = 1; i <= 65535; i++) REQUIRE(wide.alloc().value() == i);
  CHECK(wide.alloc().error().code() == -ENOSPC);
}

TEST_CASE("reset: the registers the sequence leaves behind") {
  auto sys = make_system();
  Mmio io = sys->platform().smmu_mmio();
  const auto cr1 = hw::CR1::read_from(io);
  // The platform's DMA is coherent and the model has COHACC: write-back, inner shareable.
  CHECK(cr1.get<hw::CR1::QUEUE_IC>() == hw::kCr1CacheWb);
  CHECK(cr1.get<hw::CR1::TABLE_OC>() == hw::kCr1CacheWb);
  CHECK(cr1.get<hw::CR1::TABLE_SH>() == hw::kShIsh);
  const auto cr2 = hw::CR2::read_from(io);
  CHECK(cr2.get<hw::CR2::PTM>() == 1);
  CHECK(cr2.get<hw::CR2::RECINVSID>() == 1);
  CHECK(hw::STRTAB_BASE::read_from(io).value() == sys->smmu().strtab().strtab_base().value());
  CHECK(hw::CMDQ_BASE::read_from(io).value() == sys->smmu().cmdq().base_reg());
  const uint32_t cr0 = io.readl(hw::CR0ACK::kOffset);
  CHECK(cr0 == (hw::CR0::SMMUEN::kMask | hw::CR0::CMDQEN::kMask | hw::CR0::EVENTQEN::kMask |
                hw::CR0::PRIQEN::kMask | hw::CR0::ATSCHK::kMask));
  CHECK(io.readl(hw::IRQ_CTRLACK::kOffset) ==
        (hw::IRQ_CTRL::GERROR_IRQEN::kMask | hw::IRQ_CTRL::EVENTQ_IRQEN::kMask |
         hw::IRQ_CTRL::PRIQ_IRQEN::kMask));
  CHECK((io.readl(hw::GBPA::kOffset) & hw::GBPA::ABORT::kMask) != 0);
  // Everything cached before the reset invalidated: CFGI_ALL and TLBI_NSNH_ALL.
  CHECK(sys->model().counters().command(hw::Opcode::CMD_CFGI_STE_RANGE) == 1);
  CHECK(sys->model().counters().command(hw::Opcode::CMD_TLBI_NSNH_ALL) == 1);
  // No MSIs programmed with wired lines.
  CHECK(hw::GERROR_IRQ_CFG0::read_from(io).value() == 0);
}

TEST_CASE("probe: an SMMU left enabled by firmware is reset, and its old tables abandoned") {
  auto platform = sim::ArmPlatform::create(sim::ArmPlatform::Config{.engines = 0});
  REQUIRE(platform.ok());
  sim::ArmPlatform& p = *platform.value();
  Mmio io = p.smmu_mmio();
  io.writel(hw::CR0::SMMUEN::kMask, hw::CR0::kOffset);
  REQUIRE(io.readl(hw::CR0ACK::kOffset) == hw::CR0::SMMUEN::kMask);
  hosted::LogCapture logs;
  auto smmu = ArmSmmuV3::probe(ArmSmmuConfig{.name = "smmu-fw", .regs = io, .dma = &p.dma()});
  REQUIRE(smmu.ok());
  CHECK(logs.contains("SMMU currently enabled"));
  CHECK((io.readl(hw::CR0ACK::kOffset) & hw::CR0::SMMUEN::kMask) != 0);
  smmu.value().reset();
  // Teardown: translation off, incoming DMA aborted.
  CHECK(io.readl(hw::CR0ACK::kOffset) == 0);
  CHECK((io.readl(hw::GBPA::kOffset) & hw::GBPA::ABORT::kMask) != 0);
}

TEST_CASE("probe: -EINVAL without registers or allocator") {
  auto platform = sim::ArmPlatform::create(sim::ArmPlatform::Config{.engines = 0});
  REQUIRE(platform.ok());
  CHECK(ArmSmmuV3::probe(ArmSmmuConfig{.regs = platform.value()->smmu_mmio()}).error().code() ==
        -EINVAL);
  CHECK(ArmSmmuV3::probe(ArmSmmuConfig{.dma = &platform.value()->dma()}).error().code() == -EINVAL);
}

TEST_CASE(
    "device probe: StreamIDs beyond the table, shared with another device, or another "
    "IOMMU's") {
  auto sys = make_system(ArmSystemConfig{.platform = {.engines = 1}});
  auto probe = [&](const char* name, uint32_t sid, IommuDevice* iommu) {
    auto dev = std::make_unique<Device>(
        DeviceDesc{.name = name, .fwspec = {.iommu = iommu, .ids = {sid}, .num_ids = 1}});
    auto r = iommu_probe_device(*dev);
    if (r.ok()) iommu_release_device(*dev);
    return r.ok() ? 0 : r.error().code();
  };
  CHECK(probe("too-far", 1u << 16, &sys->smmu()) == -ERANGE);
  CHECK(probe("twin", sys->platform().engine_stream_id(0), &sys->smmu()) == -EEXIST);
  CHECK(probe("fine", 0x400, &sys->smmu()) == 0);
  // The core never asks for a device that is not ours, but the driver refuses it.
  Device other(DeviceDesc{.name = "other", .fwspec = {.iommu = nullptr, .ids = {1}, .num_ids = 1}});
  CHECK(sys->smmu().probe_device(other).error().code() == -ENODEV);
}

TEST_CASE("release: the device's STE goes back to abort") {
  auto sys = make_system();
  const uint32_t sid = sys->platform().engine_stream_id(0);
  CHECK(sys->smmu().strtab().read_ste(sid).value().get<hw::STE::Config>() == hw::kConfigS1Trans);
  sys->release(0);
  const hw::STE ste = sys->smmu().strtab().read_ste(sid).value();
  CHECK(ste.get<hw::STE::V>() == 1);
  CHECK(ste.get<hw::STE::Config>() == hw::kConfigAbort);
  CHECK_FALSE(sys->engine(0).fill(0x1000, 4096, 0).ok());
}

TEST_CASE("attach: stage 2 and PASIDs exclude each other (no CD table in an S2 STE)") {
  auto sys = make_system(ArmSystemConfig{.engine_pasid_bits = 4});
  Device& dev = sys->engine_dev(0);
  int owner = 0;
  REQUIRE(iommu_group_claim_dma_owner(*dev.group(), &owner).ok());
  Box<Domain> s1 = iommu_paging_domain_alloc(dev).release_value();
  Box<Domain> s2 = iommu_paging_domain_alloc(dev, IOMMU_DOMAIN_ALLOC_NEST_PARENT).release_value();
  CHECK(static_cast<ArmSmmuDomain&>(*s1).asid() != 0);
  CHECK(static_cast<ArmSmmuDomain&>(*s2).vmid() != 0);

  REQUIRE(iommu_attach_device_pasid(*s1, dev, 3).ok());
  CHECK(iommu_attach_group(*s2, *dev.group()).error().code() == -EBUSY);
  // A stage-2 domain cannot serve a PASID.
  CHECK(iommu_attach_device_pasid(*s2, dev, 4).error().code() == -EOPNOTSUPP);
  iommu_detach_device_pasid(*s1, dev, 3);

  REQUIRE(iommu_attach_group(*s2, *dev.group()).ok());
  CHECK(iommu_attach_device_pasid(*s1, dev, 3).error().code() == -EBUSY);
  iommu_detach_group(*s2, *dev.group());
  iommu_group_release_dma_owner(*dev.group());
}

TEST_CASE("GERROR: an illegal command fails its submitter with -EIO and the queue goes on") {
  auto sys = make_system();
  hw::Command bad =
      hw::descriptor_cast<hw::Command>(hw::CmdCfgiSte::make().set<hw::CmdCfgiSte::StreamID>(0x10));
  bad.set_word(0, bad.word(0) | (uint64_t{1} << 20));  // a RES0 bit: CERROR_ILL
  CHECK(sys->smmu().cmdq().issue_cmd_with_sync(bad).error().code() == -EIO);
  CHECK(sys->smmu().counters().gerrors >= 1);
  Mmio io = sys->platform().smmu_mmio();
  CHECK(io.readl(hw::GERROR::kOffset) == io.readl(hw::GERRORN::kOffset));  // acknowledged
  CHECK(sys->smmu().cmdq().issue_sync().ok());
  CHECK(sys->engine(0).fill(0x1000, 4096, 0).ok() == false);  // still translating (unmapped)
}

TEST_CASE("MSIs: GERROR and the Event queue signal by MSI, and faults still arrive") {
  auto sys = make_system(ArmSystemConfig{.msi = true});
  Mmio io = sys->platform().smmu_mmio();
  CHECK(hw::GERROR_IRQ_CFG0::read_from(io).value() == sys->platform().irq().msi_doorbell());
  CHECK(hw::EVENTQ_IRQ_CFG0::read_from(io).value() == sys->platform().irq().msi_doorbell());
  CHECK(hw::EVENTQ_IRQ_CFG2::read_from(io).value() == hw::kMemAttrDeviceNGnRE);
  const uint64_t before = sys->smmu().counters().events;
  CHECK_FALSE(sys->engine(0).fill(0x1000, 4096, 0).ok());
  sys->flush_events();
  CHECK(sys->smmu().counters().events == before + 1);
}

TEST_CASE("events: a StreamID with no device is logged, not reported") {
  auto sys = make_system();
  hosted::LogCapture logs;
  // C_BAD_STREAMID (CR2.RECINVSID): a StreamID beyond the stream table.
  (void)sys->model().translate(1u << 17, false, 0, 0x1000, {});
  sys->flush_events();
  CHECK(sys->smmu().counters().faults_logged >= 1);
  CHECK(logs.contains("C_BAD_STREAMID"));
}

TEST_CASE("hw_info: the ID registers as read, IOMMU_HW_INFO_TYPE_ARM_SMMUV3") {
  auto sys = make_system();
  Device& dev = sys->engine_dev(0);
  IommuHwInfoArmSmmuv3 info = {};
  uint32_t type = 0;
  auto n = iommu_get_hw_info(dev, &info, sizeof(info), &type);
  REQUIRE(n.ok());
  CHECK(n.value() == sizeof(info));
  CHECK(type == IOMMU_HW_INFO_TYPE_ARM_SMMUV3);
  Mmio io = sys->platform().smmu_mmio();
  CHECK(info.idr[0] == io.readl(hw::IDR0::kOffset));
  CHECK(info.idr[5] == io.readl(hw::IDR5::kOffset));
  CHECK(info.aidr == io.readl(hw::AIDR::kOffset));
  ReservedRegions regions;
  REQUIRE(iommu_get_resv_regions(dev, regions).ok());
  REQUIRE(regions.size() == 1);
  CHECK(regions[0].type == ResvType::sw_msi);
  CHECK(regions[0].start == kMsiIovaBase);
}

}  // namespace
}  // namespace strata::arm_smmu_v3
