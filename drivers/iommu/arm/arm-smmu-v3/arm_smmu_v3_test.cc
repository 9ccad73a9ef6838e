// SPDX-License-Identifier: MIT
// The driver proper against the SMMUv3 model: what the reset sequence leaves in the registers,
// the error paths of probe, device probe and attach, global errors, MSIs and hw_info. The
// end-to-end DMA scenarios are in testing/sim/arm_smmu_e2e_test.cc.
#include "drivers/iommu/arm/arm-smmu-v3/arm_smmu_v3.h"

#include <atomic>

#include <doctest/doctest.h>

#include "arch/smmuv3/regs.h"
#include "core/dma-iommu/dma_iommu.h"
#include "core/iommu.h"
#include "core/iopf.h"
#include "testing/hosted/hosted.h"
#include "testing/models/smmuv3/sim_ats_device.h"
#include "testing/sim/arm_system.h"
#include "testing/sim/ats_function.h"

namespace strata::arm_smmu_v3 {
namespace {

namespace hw = ::strata::smmuv3;
using sim::ArmSystem;
using sim::ArmSystemConfig;
using sim::AtsFunction;

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

TEST_CASE("ATS: EATS in the STE, the ATC filled by Translation Requests and invalidated on unmap") {
  for (auto t : {sim::smmuv3::Threading::kSync, sim::smmuv3::Threading::kAsync}) {
    CAPTURE(sim::smmuv3::name(t));
    auto sys = make_system(ArmSystemConfig{.platform = {.threading = t, .oracle = true}});
    AtsFunction fn(*sys);
    REQUIRE(iommu_probe_device(fn.dev).ok());
    Domain* dma = iommu_get_dma_domain(fn.dev);
    REQUIRE(iommu_dma_init_domain(*dma, fn.dev).ok());
    CHECK(sys->smmu().strtab().read_ste(AtsFunction::kSid).value().get<hw::STE::EATS>() ==
          hw::kEatsTrans);

    auto buf = DmaBuffer::alloc(sys->platform().dma(), 4096, 4096).release_value();
    auto iova = iommu_dma_map_buffer(fn.dev, buf.phys(), 4096, DmaDirection::bidirectional);
    REQUIRE(iova.ok());
    const uint64_t v = 0x1122334455667788;
    auto out = fn.ep.write(false, 0, iova.value(), &v, sizeof(v));
    CHECK(out.ok());
    CHECK(out.path == sim::smmuv3::SimAtsDevice::Path::kTranslated);
    CHECK(fn.ep.atc_holds(false, 0, iova.value()));
    CHECK(*buf.as<uint64_t>() == v);

    const uint64_t atc_invs = sys->smmu().counters().atc_invalidations;
    iommu_dma_unmap_buffer(fn.dev, iova.value(), 4096, DmaDirection::bidirectional);
    CHECK(sys->smmu().counters().atc_invalidations > atc_invs);
    CHECK_FALSE(fn.ep.atc_holds(false, 0, iova.value()));
    CHECK_FALSE(fn.ep.write(false, 0, iova.value(), &v, sizeof(v)).ok());
    CHECK(sys->model().stale_reports().empty());
    iommu_release_device(fn.dev);
  }
}

// Resolves page requests by mapping the page, as a VMM or SVA's fault handler would.
struct MappingHandler final : IopfHandler {
  Domain* domain = nullptr;
  phys_addr_t pa = 0;
  std::atomic<unsigned> groups{0};
  IommuPageResponseCode handle_iopf(Device& dev, const IopfGroup& group) override {
    (void)dev;
    groups++;
    const uint64_t page = group.last().addr & ~uint64_t{4095};
    return iommu_map(*domain, page, pa, 4096, IOMMU_READ | IOMMU_WRITE).ok()
               ? IOMMU_PAGE_RESP_SUCCESS
               : IOMMU_PAGE_RESP_INVALID;
  }
};

TEST_CASE("PRI: a page request goes through the PRI queue and IOPF, the answer by CMD_PRI_RESP") {
  auto sys = make_system(ArmSystemConfig{.platform = {.oracle = true}});
  AtsFunction fn(*sys);
  REQUIRE(iommu_probe_device(fn.dev).ok());
  REQUIRE(iommu_dev_enable_feature(fn.dev, IommuDevFeature::iopf).ok());
  CHECK(iommu_dev_enable_feature(fn.dev, IommuDevFeature::iopf).error().code() == -EBUSY);
  int owner = 0;
  REQUIRE(iommu_group_claim_dma_owner(*fn.dev.group(), &owner).ok());
  Box<Domain> d = iommu_paging_domain_alloc(fn.dev).release_value();
  auto buf = DmaBuffer::alloc(sys->platform().dma(), 4096, 4096).release_value();
  MappingHandler handler;
  handler.domain = d.get();
  handler.pa = buf.phys();
  d->set_iopf_handler(&handler);
  REQUIRE(iommu_attach_group(*d, *fn.dev.group()).ok());

  const uint64_t iova = 0x7000'0000;
  const uint64_t v = 42;
  // Not mapped yet: the ATS Translation Request fails, so the function asks for the page.
  CHECK_FALSE(fn.ep.write(false, 0, iova, &v, sizeof(v)).ok());
  auto pr = fn.ep.page_request(sim::smmuv3::PageRequest{
      .sid = AtsFunction::kSid, .address = iova, .prg_index = 3, .last = true, .write = true});
  CHECK(pr.kind == sim::smmuv3::PriResult::Kind::kRecorded);
  sys->flush_events();
  sys->flush_events();  // the IOPF worker's answer may need a second pass
  CHECK(handler.groups == 1);
  const auto responses = fn.ep.prg_responses();
  REQUIRE(responses.size() == 1);
  CHECK(responses[0].prg_index == 3);
  CHECK(responses[0].response_code == sim::smmuv3::kPrgSuccess);
  CHECK_FALSE(responses[0].automatic);
  CHECK(sys->smmu().counters().page_requests == 1);
  CHECK(sys->smmu().counters().page_responses == 1);
  // Retried after the response: the page is there now.
  CHECK(fn.ep.write(false, 0, iova, &v, sizeof(v)).ok());
  CHECK(*buf.as<uint64_t>() == v);

  iommu_detach_group(*d, *fn.dev.group());
  REQUIRE(iopf_queue_flush_dev(fn.dev).ok());
  iommu_group_release_dma_owner(*fn.dev.group());
  REQUIRE(iommu_dev_disable_feature(fn.dev, IommuDevFeature::iopf).ok());
  REQUIRE(iommu_unmap(*d, iova, 4096).ok());
  iommu_release_device(fn.dev);
  CHECK(sys->model().stale_reports().empty());
}

// Regression: an unmap of 2 MiB blocks and a 4 KiB page gathered both sizes, and the range
// TLBIs carried TTL = 3 (4 KiB leaves) for the blocks too, which an SMMU may then skip (4.4.1.1).
TEST_CASE("invalidation: a range of mixed leaf sizes gets no TTL hint") {
  auto sys = make_system(ArmSystemConfig{.platform = {.oracle = true}});
  Device& dev = sys->engine_dev(0);
  int owner = 0;
  REQUIRE(iommu_group_claim_dma_owner(*dev.group(), &owner).ok());
  Box<Domain> d = iommu_paging_domain_alloc(dev).release_value();
  REQUIRE(iommu_attach_group(*d, *dev.group()).ok());
  const uint64_t iova = 0x4000'0000, size = (4 << 20) + 4096;
  REQUIRE(iommu_map(*d, iova, 0x4000'0000, size, IOMMU_READ | IOMMU_WRITE).ok());
  REQUIRE(sys->engine(0).checksum(iova, 64).ok());                // a 2 MiB block
  REQUIRE(sys->engine(0).checksum(iova + size - 4096, 64).ok());  // the 4 KiB page
  const uint64_t before = sys->model().counters().tlb_hint_mismatches;
  const uint64_t errors = sys->smmu().cmdq().counters().command_errors;
  REQUIRE(iommu_unmap(*d, iova, size).value() == size);
  CHECK(sys->model().counters().tlb_hint_mismatches == before);
  // Every command legal (a Reserved encoding would be CERROR_ILL, and nothing invalidated).
  CHECK(sys->smmu().cmdq().counters().command_errors == errors);
  CHECK_FALSE(sys->engine(0).checksum(iova, 64).ok());
  CHECK_FALSE(sys->engine(0).checksum(iova + size - 4096, 64).ok());
  CHECK(sys->model().stale_reports().empty());
  iommu_detach_group(*d, *dev.group());
  iommu_group_release_dma_owner(*dev.group());
}

// A function that sends page requests although the driver did not take it for a PRI one (or
// has not enabled IOPF for it): the core answers the group INVALID at once, and the driver
// must still send that answer, or the function waits for it for ever.
TEST_CASE("PRI: a page request of a device without IOPF is answered InvalidRequest") {
  auto sys = make_system();
  AtsFunction fn(*sys, /*pri=*/false);
  REQUIRE(iommu_probe_device(fn.dev).ok());
  CHECK(iommu_dev_enable_feature(fn.dev, IommuDevFeature::iopf).error().code() == -ENODEV);
  auto pr = fn.ep.page_request(sim::smmuv3::PageRequest{
      .sid = AtsFunction::kSid, .address = 0x5000, .prg_index = 9, .last = true, .read = true});
  CHECK(pr.kind == sim::smmuv3::PriResult::Kind::kRecorded);
  sys->flush_events();
  const auto responses = fn.ep.prg_responses();
  REQUIRE(responses.size() == 1);
  CHECK(responses[0].prg_index == 9);
  CHECK(responses[0].response_code == sim::smmuv3::kPrgInvalidRequest);
  CHECK_FALSE(responses[0].automatic);
  iommu_release_device(fn.dev);
}

// Without a GERROR interrupt (no lines, no MSIs) nothing would acknowledge a command error and
// the Command queue would stay stopped: its waits run the GERROR handler instead.
TEST_CASE("GERROR without an interrupt: an illegal command is -EIO and the queue goes on") {
  for (auto t : {sim::smmuv3::Threading::kSync, sim::smmuv3::Threading::kAsync}) {
    CAPTURE(sim::smmuv3::name(t));
    auto platform =
        sim::ArmPlatform::create(sim::ArmPlatform::Config{.threading = t, .engines = 0});
    REQUIRE(platform.ok());
    sim::ArmPlatform& p = *platform.value();
    Mmio io = p.smmu_mmio();
    hosted::LogCapture logs;
    // A short timeout: were the queue left stopped, each wait would fail in half a second.
    auto probed = ArmSmmuV3::probe(ArmSmmuConfig{
        .name = "smmu-noirq", .regs = io, .dma = &p.dma(), .irq = nullptr, .timeout_us = 500'000});
    REQUIRE(probed.ok());
    ArmSmmuV3& smmu = *probed.value();
    CHECK(logs.contains("no GERROR interrupt"));
    CHECK(io.readl(hw::IRQ_CTRLACK::kOffset) == 0);

    hw::Command bad = hw::descriptor_cast<hw::Command>(
        hw::CmdCfgiSte::make().set<hw::CmdCfgiSte::StreamID>(0x10));
    bad.set_word(0, bad.word(0) | (uint64_t{1} << 20));  // a RES0 bit: CERROR_ILL
    CHECK(smmu.cmdq().issue_cmd_with_sync(bad).error().code() == -EIO);
    CHECK(logs.contains("CERROR_ILL"));
    CHECK(smmu.counters().gerrors == 1);
    CHECK(io.readl(hw::GERROR::kOffset) == io.readl(hw::GERRORN::kOffset));  // acknowledged
    CHECK(smmu.cfgi_ste(0x10, true).ok());  // CMD_CFGI_STE and its CMD_SYNC
    CHECK(smmu.cmdq().issue_sync().ok());
    CHECK(smmu.cmdq().counters().command_errors == 1);
    CHECK(smmu.cmdq().counters().timeouts == 0);
    CHECK(smmu.counters().gerrors == 1);
    probed.value().reset();
    CHECK(io.readl(hw::CR0ACK::kOffset) == 0);
  }
}

}  // namespace
}  // namespace strata::arm_smmu_v3
