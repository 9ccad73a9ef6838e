// SPDX-License-Identifier: MIT
// End to end: the arm-smmu-v3 driver and the iommu core over the SMMUv3 model, with DMA test
// engines issuing the traffic. Every scenario runs in both of the model's threading modes with
// the stale-translation oracle armed: a translation served from a cache that memory no longer
// agrees with fails the test, whatever else it checks.
#include <string.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "arch/smmuv3/regs.h"
#include "core/dma-iommu/dma_iommu.h"
#include "core/iommu.h"
#include "drivers/iommu/arm/arm-smmu-v3/arm_smmu_v3.h"
#include "drivers/iommu/arm/arm-smmu-v3/cd_lib.h"
#include "testing/sim/arm_system.h"
#include "testing/sim/guest_memory.h"

namespace strata::sim {
namespace {

namespace hw = ::strata::smmuv3;
using arm_smmu_v3::ArmSmmuDomain;
using smmuv3::Threading;

constexpr Threading kModes[] = {Threading::kSync, Threading::kAsync};

std::unique_ptr<ArmSystem> make_system(Threading t, ArmSystemConfig cfg = {}) {
  cfg.platform.threading = t;
  cfg.platform.oracle = true;
  auto r = ArmSystem::create(cfg);
  REQUIRE(r.ok());
  return r.release_value();
}

// Faults the core hands to a device's handler.
struct FaultLog {
  std::mutex mu;
  std::vector<IommuFault> faults;

  static Result<void> handler(const IommuFault& f, void* data) {
    auto* log = static_cast<FaultLog*>(data);
    std::lock_guard<std::mutex> g(log->mu);
    log->faults.push_back(f);
    return {};
  }
  std::vector<IommuFault> take() {
    std::lock_guard<std::mutex> g(mu);
    return std::move(faults);
  }
};

struct Buffer {
  DmaBuffer buf;
  phys_addr_t phys() const { return buf.phys(); }
  uint8_t* cpu() const { return buf.as<uint8_t>(); }
};

Buffer alloc_buffer(ArmSystem& sys, size_t size, uint8_t fill) {
  auto r = DmaBuffer::alloc(sys.platform().dma(), size, 4096);
  REQUIRE(r.ok());
  Buffer b{r.release_value()};
  memset(b.cpu(), fill, size);
  return b;
}

void check_no_stale(ArmSystem& sys) {
  const auto reports = sys.model().stale_reports();
  for (const auto& r : reports)
    FAIL_CHECK("stale translation from the " << r.source << ": cached " << r.cached << ", memory "
                                             << r.fresh);
  CHECK(reports.empty());
}

TEST_CASE("probe: the SMMU is enabled, the engine's STE points at its default domain's CD") {
  for (Threading t : kModes) {
    CAPTURE(smmuv3::name(t));
    auto sys = make_system(t);
    Mmio page0 = sys->platform().smmu_mmio();
    const uint32_t cr0ack = page0.readl(hw::CR0ACK::kOffset);
    CHECK((cr0ack & hw::CR0::SMMUEN::kMask) != 0);
    CHECK((cr0ack & hw::CR0::CMDQEN::kMask) != 0);
    CHECK((cr0ack & hw::CR0::EVENTQEN::kMask) != 0);
    CHECK((page0.readl(hw::IRQ_CTRLACK::kOffset) & hw::IRQ_CTRL::EVENTQ_IRQEN::kMask) != 0);
    CHECK((page0.readl(hw::GBPA::kOffset) & hw::GBPA::ABORT::kMask) != 0);

    Device& dev = sys->engine_dev(0);
    Domain* d = iommu_get_dma_domain(dev);
    REQUIRE(d != nullptr);
    CHECK(d->type() == DomainType::dma);
    CHECK(static_cast<ArmSmmuDomain*>(d)->stage() == ArmSmmuDomain::Stage::s1);
    auto ste = sys->smmu().strtab().read_ste(sys->platform().engine_stream_id(0));
    REQUIRE(ste.ok());
    CHECK(ste.value().get<hw::STE::V>() == 1);
    CHECK(ste.value().get<hw::STE::Config>() == hw::kConfigS1Trans);
    CHECK(sys->model().counters().command(hw::Opcode::CMD_CFGI_STE) > 0);
  }
}

TEST_CASE(
    "DMA API: map, device copy, memory checked, unmap; then the IOVA faults and nothing is "
    "written") {
  for (Threading t : kModes) {
    CAPTURE(smmuv3::name(t));
    auto sys = make_system(t);
    Device& dev = sys->engine_dev(0);
    FaultLog log;
    REQUIRE(iommu_register_device_fault_handler(dev, &FaultLog::handler, &log).ok());

    Buffer src = alloc_buffer(*sys, 3 * 4096, 0xa5);
    Buffer dst = alloc_buffer(*sys, 3 * 4096, 0x00);
    for (size_t i = 0; i < 3 * 4096; i++) src.cpu()[i] = static_cast<uint8_t>(i * 7 + 1);

    auto s = iommu_dma_map_buffer(dev, src.phys(), 3 * 4096, DmaDirection::to_device);
    auto d = iommu_dma_map_buffer(dev, dst.phys(), 3 * 4096, DmaDirection::from_device);
    REQUIRE(s.ok());
    REQUIRE(d.ok());
    CHECK(s.value() != src.phys());  // translated, not identity

    auto res = sys->engine(0).copy(s.value(), d.value(), 3 * 4096);
    CHECK(res.ok());
    CHECK(memcmp(src.cpu(), dst.cpu(), 3 * 4096) == 0);

    // The device reads only what it was given: a write through the read-only mapping faults.
    memset(dst.cpu(), 0, 3 * 4096);
    res = sys->engine(0).copy(d.value(), s.value(), 4096);
    CHECK_FALSE(res.ok());
    CHECK(src.cpu()[0] == 1);

    iommu_dma_unmap_buffer(dev, d.value(), 3 * 4096, DmaDirection::from_device);
    res = sys->engine(0).copy(s.value(), d.value(), 4096);
    CHECK_FALSE(res.ok());
    CHECK(res.fault_addr == d.value());
    for (size_t i = 0; i < 4096; i++) REQUIRE(dst.cpu()[i] == 0);

    sys->flush_events();
    const auto faults = log.take();
    REQUIRE(faults.size() == 2);
    // The write to the read-only mapping, then the write to the unmapped IOVA.
    CHECK(faults[0].type == IOMMU_FAULT_DMA_UNRECOV);
    CHECK(faults[0].event.reason == IOMMU_FAULT_REASON_PERMISSION);
    CHECK(faults[0].event.addr == s.value());
    CHECK((faults[0].event.perm & IOMMU_FAULT_PERM_WRITE) != 0);
    CHECK(faults[1].event.reason == IOMMU_FAULT_REASON_PTE_FETCH);
    CHECK(faults[1].event.addr == d.value());
    CHECK((faults[1].event.flags & IOMMU_FAULT_UNRECOV_ADDR_VALID) != 0);
    CHECK(sys->smmu().counters().faults_reported == 2);

    iommu_dma_unmap_buffer(dev, s.value(), 3 * 4096, DmaDirection::to_device);
    REQUIRE(iommu_unregister_device_fault_handler(dev).ok());
    check_no_stale(*sys);
  }
}

}  // namespace
}  // namespace strata::sim
