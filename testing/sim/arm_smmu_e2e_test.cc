// SPDX-License-Identifier: MIT
// End to end: the arm-smmu-v3 driver and the iommu core over the SMMUv3 model, with DMA test
// engines issuing the traffic. Every scenario runs in both of the model's threading modes with
// the stale-translation oracle armed: a translation served from a cache that memory no longer
// agrees with fails the test, whatever else it checks.
#include <string.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "arch/endian.h"
#include "arch/smmuv3/regs.h"
#include "core/dma-iommu/dma_iommu.h"
#include "core/iommu.h"
#include "drivers/iommu/arm/arm-smmu-v3/arm_smmu_v3.h"
#include "testing/sim/arm_system.h"
#include "testing/sim/ats_function.h"
#include "testing/sim/fault_log.h"
#include "testing/sim/guest.h"

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
    FAIL_CHECK("stale translation from the " << std::string(r.source) << ": cached " << r.cached
                                             << ", memory " << r.fresh);
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

// A user-owned group (what VFIO does before attaching its own domains).
struct Owned {
  Group& group;
  int cookie = 0;
  explicit Owned(Device& dev) : group(*dev.group()) {
    REQUIRE(iommu_group_claim_dma_owner(group, &cookie).ok());
  }
  ~Owned() { iommu_group_release_dma_owner(group); }
};

Box<Domain> paging_domain(Device& dev, uint32_t flags = 0) {
  auto r = iommu_paging_domain_alloc(dev, flags);
  REQUIRE(r.ok());
  return r.release_value();
}

constexpr int kRw = IOMMU_READ | IOMMU_WRITE;

TEST_CASE("detach and re-attach: blocked in between, translating again after") {
  for (Threading t : kModes) {
    CAPTURE(smmuv3::name(t));
    auto sys = make_system(t);
    Device& dev = sys->engine_dev(0);
    Buffer buf = alloc_buffer(*sys, 2 * 4096, 0);
    const uint64_t iova = 0x1234'0000;
    {
      Owned owned(dev);
      Box<Domain> d = paging_domain(dev);
      REQUIRE(iommu_map(*d, iova, buf.phys(), 2 * 4096, kRw).ok());
      REQUIRE(iommu_attach_group(*d, owned.group).ok());
      CHECK(sys->engine(0).fill(iova, 4096, 0x1111111111111111).ok());
      CHECK(buf.cpu()[0] == 0x11);

      iommu_detach_group(*d, owned.group);  // to the blocking domain
      CHECK_FALSE(sys->engine(0).fill(iova, 4096, 0x2222222222222222).ok());
      CHECK(buf.cpu()[0] == 0x11);

      REQUIRE(iommu_attach_group(*d, owned.group).ok());
      CHECK(sys->engine(0).fill(iova + 4096, 4096, 0x3333333333333333).ok());
      CHECK(buf.cpu()[4096] == 0x33);
      iommu_detach_group(*d, owned.group);
      REQUIRE(iommu_unmap(*d, iova, 2 * 4096).ok());
    }
    // Back in the default DMA domain: the old IOVA means nothing there.
    CHECK_FALSE(sys->engine(0).fill(iova, 4096, 0x4444444444444444).ok());
    CHECK(buf.cpu()[0] == 0x11);
    check_no_stale(*sys);
  }
}

TEST_CASE("stage 2: a nest-parent domain attached alone translates with an S2-only STE") {
  for (Threading t : kModes) {
    CAPTURE(smmuv3::name(t));
    auto sys = make_system(t);
    Device& dev = sys->engine_dev(0);
    Buffer buf = alloc_buffer(*sys, 4096, 0);
    Owned owned(dev);
    Box<Domain> s2 = paging_domain(dev, IOMMU_DOMAIN_ALLOC_NEST_PARENT);
    auto& as2 = static_cast<ArmSmmuDomain&>(*s2);
    CHECK(as2.stage() == ArmSmmuDomain::Stage::s2);
    CHECK(as2.vmid() != 0);
    REQUIRE(iommu_map(*s2, 0x8000'0000, buf.phys(), 4096, kRw).ok());
    REQUIRE(iommu_attach_group(*s2, owned.group).ok());
    auto ste = sys->smmu().strtab().read_ste(sys->platform().engine_stream_id(0));
    REQUIRE(ste.ok());
    CHECK(ste.value().get<hw::STE::Config>() == hw::kConfigS2Trans);
    CHECK(ste.value().get<hw::STE::S2VMID>() == as2.vmid());

    CHECK(sys->engine(0).fill(0x8000'0000, 4096, 0x5a5a5a5a5a5a5a5a).ok());
    CHECK(buf.cpu()[4095] == 0x5a);
    REQUIRE(iommu_unmap(*s2, 0x8000'0000, 4096).ok());
    CHECK(sys->model().counters().command(hw::Opcode::CMD_TLBI_S2_IPA) > 0);
    CHECK_FALSE(sys->engine(0).fill(0x8000'0000, 4096, 0).ok());
    CHECK(buf.cpu()[0] == 0x5a);
    iommu_detach_group(*s2, owned.group);
    check_no_stale(*sys);
  }
}

TEST_CASE("52-bit addresses: paging domains sized to what io-pgtable can build, and DMA") {
  // 4K granule: io-pgtable's 52-bit output needs 64K, so both stages get 48-bit tables.
  ArmSystemConfig cfg;
  cfg.platform.smmu.oas = hw::kAddrSize52;
  auto sys = make_system(Threading::kSync, cfg);
  REQUIRE(sys->smmu().features().oas == 52);
  Device& dev = sys->engine_dev(0);
  Buffer buf = alloc_buffer(*sys, 4096, 0);
  Owned owned(dev);
  for (uint32_t flags : {0u, IOMMU_DOMAIN_ALLOC_NEST_PARENT}) {
    CAPTURE(flags);
    Box<Domain> d = paging_domain(dev, flags);
    auto& ad = static_cast<ArmSmmuDomain&>(*d);
    CHECK(ad.pgtbl_cfg().ias == 48);
    CHECK(ad.pgtbl_cfg().oas == 48);
    REQUIRE(iommu_map(*d, 0x8000'0000, buf.phys(), 4096, kRw).ok());
    REQUIRE(iommu_attach_group(*d, owned.group).ok());
    CHECK(sys->engine(0).fill(0x8000'0000, 4096, 0x6b6b6b6b6b6b6b6b).ok());
    CHECK(buf.cpu()[4095] == 0x6b);
    iommu_detach_group(*d, owned.group);
    REQUIRE(iommu_unmap(*d, 0x8000'0000, 4096).ok());
  }
  check_no_stale(*sys);

  // 64K the only granule: the full 52-bit output.
  ArmSystemConfig cfg64 = cfg;
  cfg64.platform.smmu.gran4k = cfg64.platform.smmu.gran16k = false;
  auto sys64 = make_system(Threading::kSync, cfg64);
  Device& dev64 = sys64->engine_dev(0);
  Owned owned64(dev64);
  Box<Domain> d64 = paging_domain(dev64, IOMMU_DOMAIN_ALLOC_NEST_PARENT);
  CHECK(static_cast<ArmSmmuDomain&>(*d64).pgtbl_cfg().oas == 52);
  CHECK((d64->pgsize_bitmap() & SZ_64K) != 0);
}

TEST_CASE("dirty tracking: stage-1 domains only, as capable() says") {
  auto sys = make_system(Threading::kSync);
  Device& dev = sys->engine_dev(0);
  REQUIRE(sys->smmu().features().hw_dirty);
  CHECK(device_iommu_capable(dev, IommuCap::dirty_tracking));
  Box<Domain> d = paging_domain(dev, IOMMU_DOMAIN_ALLOC_DIRTY_TRACKING);
  CHECK(static_cast<ArmSmmuDomain&>(*d).stage() == ArmSmmuDomain::Stage::s1);
  // A nest parent would need STE.S2HA/S2HD, which the driver never sets.
  CHECK(iommu_paging_domain_alloc(
            dev, IOMMU_DOMAIN_ALLOC_DIRTY_TRACKING | IOMMU_DOMAIN_ALLOC_NEST_PARENT)
            .error()
            .code() == -EOPNOTSUPP);

  // Without stage 1, nothing can track dirty state.
  ArmSystemConfig cfg;
  cfg.platform.smmu = smmuv3::Config::stage2_only();
  auto s2only = make_system(Threading::kSync, cfg);
  Device& dev2 = s2only->engine_dev(0);
  CHECK_FALSE(device_iommu_capable(dev2, IommuCap::dirty_tracking));
  CHECK(iommu_paging_domain_alloc(dev2, IOMMU_DOMAIN_ALLOC_DIRTY_TRACKING).error().code() ==
        -EOPNOTSUPP);
}

std::unique_ptr<Guest> make_guest(ArmSystem& sys) {
  auto r = Guest::create(sys.platform());
  REQUIRE(r.ok());
  return r.release_value();
}

TEST_CASE("nested: the guest's stage 1 (in guest memory, IPA pointers) over the host's stage 2") {
  for (Threading t : kModes) {
    CAPTURE(smmuv3::name(t));
    auto sys = make_system(t);
    Device& dev = sys->engine_dev(0);
    FaultLog log;
    REQUIRE(iommu_register_device_fault_handler(dev, &FaultLog::handler, &log).ok());
    Owned owned(dev);
    auto guest = make_guest(*sys);

    // The host's stage 2: guest RAM at its guest-physical addresses.
    Box<Domain> s2 = paging_domain(dev, IOMMU_DOMAIN_ALLOC_NEST_PARENT);
    REQUIRE(iommu_map(*s2, Guest::kGpa, guest->ram_hpa(), Guest::kSize, kRw).ok());

    // The guest maps two IOVAs onto its buffers.
    const phys_addr_t src_gpa = Guest::kGpa + (8 << 20), dst_gpa = Guest::kGpa + (9 << 20);
    const uint64_t src_iova = 0x10'0000'0000, dst_iova = 0x20'0000'0000;
    REQUIRE(guest->map(src_iova, src_gpa, 2 * SZ_4K, kRw).ok());
    REQUIRE(guest->map(dst_iova, dst_gpa, 2 * SZ_4K, kRw).ok());
    for (unsigned i = 0; i < 8192; i++)
      guest->host_ptr(src_gpa)[i] = static_cast<uint8_t>(i ^ 0x5c);

    auto nested = iommu_domain_alloc_nested(dev, *s2, &guest->ste(), sizeof(guest->ste()));
    REQUIRE(nested.ok());
    Domain& n = *nested.value();
    REQUIRE(iommu_attach_group(n, owned.group).ok());
    auto ste = sys->smmu().strtab().read_ste(sys->platform().engine_stream_id(0));
    REQUIRE(ste.ok());
    CHECK(ste.value().get<hw::STE::Config>() == hw::kConfigNested);
    CHECK(ste.value().get<hw::STE::S1ContextPtr>() == guest->cd_ipa());  // an IPA

    CHECK(sys->engine(0).copy(src_iova, dst_iova, 8192).ok());
    CHECK(memcmp(guest->host_ptr(src_gpa), guest->host_ptr(dst_gpa), 8192) == 0);

    // The guest unmaps and invalidates through the host (its vSMMU's command queue).
    auto& an = static_cast<ArmSmmuDomain&>(n);
    auto vsmmu_cmdq = [&](const hw::Command* cmds, size_t count) {
      return an.cache_invalidate_user(cmds, count);
    };
    REQUIRE(guest->unmap(dst_iova, 2 * SZ_4K, vsmmu_cmdq).ok());
    memset(guest->host_ptr(dst_gpa), 0, 8192);
    auto res = sys->engine(0).copy(src_iova, dst_iova, 4096);
    CHECK_FALSE(res.ok());
    CHECK(res.fault_addr == dst_iova);
    CHECK(guest->host_ptr(dst_gpa)[0] == 0);
    sys->flush_events();
    auto faults = log.take();
    REQUIRE(faults.size() == 1);
    CHECK(faults[0].event.reason == IOMMU_FAULT_REASON_PTE_FETCH);
    CHECK(faults[0].event.addr == dst_iova);

    // Commands a guest may not send are refused whole.
    const hw::Command bad[2] = {
        guest->tlbi_nh_asid(),
        hw::descriptor_cast<hw::Command>(hw::CmdTlbi::make(hw::Opcode::CMD_TLBI_NSNH_ALL))};
    const uint64_t before = sys->smmu().cmdq().counters().commands;
    CHECK(an.cache_invalidate_user(bad, 2).error().code() == -EINVAL);
    CHECK(sys->smmu().cmdq().counters().commands == before);

    iommu_detach_group(n, owned.group);
    nested.value().reset();
    REQUIRE(iommu_unmap(*s2, Guest::kGpa, Guest::kSize).ok());
    REQUIRE(iommu_unregister_device_fault_handler(dev).ok());
    check_no_stale(*sys);
  }
}

TEST_CASE("nested: guest TLBIs the SMMU would reject are refused; the range form works") {
  // 8-bit ASIDs, so that an ASID above 255 is one the SMMU would not match (4.4).
  ArmSystemConfig cfg;
  cfg.platform.smmu.asid16 = false;
  auto sys = make_system(Threading::kSync, cfg);
  Device& dev = sys->engine_dev(0);
  Owned owned(dev);
  auto guest = make_guest(*sys);
  Box<Domain> s2 = paging_domain(dev, IOMMU_DOMAIN_ALLOC_NEST_PARENT);
  REQUIRE(iommu_map(*s2, Guest::kGpa, guest->ram_hpa(), Guest::kSize, kRw).ok());
  auto nested = iommu_domain_alloc_nested(dev, *s2, &guest->ste(), sizeof(guest->ste()));
  REQUIRE(nested.ok());
  REQUIRE(iommu_attach_group(*nested.value(), owned.group).ok());
  auto& an = static_cast<ArmSmmuDomain&>(*nested.value());

  using T = hw::CmdTlbi;
  auto cmd = [](const T& t) { return hw::descriptor_cast<hw::Command>(t); };
  const uint64_t iova = 0x10'0000'0000;
  const T va = T::make(hw::Opcode::CMD_TLBI_NH_VA)
                   .set<T::ASID>(Guest::kAsid)
                   .set<T::Address>(iova)
                   .set<T::Leaf>(1);
  const hw::Command bad[] = {
      // Range fields in commands that have none (RES0 in their layouts).
      cmd(T::make(hw::Opcode::CMD_TLBI_NH_ASID).set<T::ASID>(Guest::kAsid).set<T::NUM>(3)),
      cmd(T::make(hw::Opcode::CMD_TLBI_NH_ALL).set<T::ASID>(Guest::kAsid)),
      cmd(T::make(hw::Opcode::CMD_TLBI_NH_VAA).set<T::ASID>(Guest::kAsid).set<T::Address>(iova)),
      // TG with NUM, SCALE and TTL 0 is Reserved; NUM, SCALE and TTL need TG (4.4.1.1).
      cmd(T(va).set<T::TG>(hw::kTlbiTg4K)),
      cmd(T(va).set<T::TTL>(3)),
      cmd(T(va).set<T::TG>(hw::kTlbiTg16K).set<T::TTL>(1)),
      // SCALE[5] is RES0 without IDR5.DS.
      cmd(T(va).set<T::TG>(hw::kTlbiTg4K).set<T::SCALE>(32)),
      // An ASID wider than IDR0.ASID16 allows.
      cmd(T(va).set<T::ASID>(0x107)),
      // An ATC span beyond 2^52 (4.5.1).
      hw::descriptor_cast<hw::Command>(hw::CmdAtcInv::make().set<hw::CmdAtcInv::Size>(60)),
  };
  const uint64_t before = sys->smmu().cmdq().counters().commands;
  for (size_t i = 0; i < std::size(bad); i++) {
    CAPTURE(i);
    CHECK(an.cache_invalidate_user(&bad[i], 1).error().code() == -EINVAL);
  }
  CHECK(sys->smmu().cmdq().counters().commands == before);
  CHECK(sys->smmu().counters().gerrors == 0);

  // The guest unmaps two pages and invalidates them with one range TLBI (TG 4K, NUM 1, TTL 3)
  // instead of its usual CMD_TLBI_NH_ASID: the host passes it on, and the pages fault.
  const phys_addr_t gpa = Guest::kGpa + (8 << 20);
  REQUIRE(guest->map(iova, gpa, 2 * SZ_4K, kRw).ok());
  CHECK(sys->engine(0).fill(iova, 2 * SZ_4K, 0x1111111111111111).ok());
  const hw::Command range =
      cmd(T(va).set<T::TG>(hw::kTlbiTg4K).set<T::NUM>(1).set<T::TTL>(3).set<T::Leaf>(0));
  REQUIRE(
      guest
          ->unmap(iova, 2 * SZ_4K,
                  [&](const hw::Command*, size_t) { return an.cache_invalidate_user(&range, 1); })
          .ok());
  CHECK_FALSE(sys->engine(0).fill(iova + SZ_4K, 8, 0x2222222222222222).ok());
  CHECK(guest->host_ptr(gpa + SZ_4K)[0] == 0x11);
  CHECK(sys->smmu().counters().gerrors == 0);

  iommu_detach_group(*nested.value(), owned.group);
  nested.value().reset();
  REQUIRE(iommu_unmap(*s2, Guest::kGpa, Guest::kSize).ok());
  check_no_stale(*sys);
}

TEST_CASE("nested ATS: the guest's EATS decides, and stage-2 changes empty the ATC") {
  for (Threading t : kModes) {
    CAPTURE(smmuv3::name(t));
    auto sys = make_system(t);
    AtsFunction fn(*sys, /*pri=*/false);
    REQUIRE(iommu_probe_device(fn.dev).ok());
    {
      Owned owned(fn.dev);
      auto guest = make_guest(*sys);
      Box<Domain> s2 = paging_domain(fn.dev, IOMMU_DOMAIN_ALLOC_NEST_PARENT);
      REQUIRE(iommu_map(*s2, Guest::kGpa, guest->ram_hpa(), Guest::kSize, kRw).ok());
      const uint64_t iova = 0x10'0000'0000;
      const phys_addr_t gpa = Guest::kGpa + (8 << 20);
      REQUIRE(guest->map(iova, gpa, SZ_4K, kRw).ok());
      const uint64_t v = 0x0123456789abcdef;

      // The guest's STE without EATS: no ATS for the function, its DMA untranslated.
      {
        auto nested = iommu_domain_alloc_nested(fn.dev, *s2, &guest->ste(), sizeof(guest->ste()));
        REQUIRE(nested.ok());
        REQUIRE(iommu_attach_group(*nested.value(), owned.group).ok());
        CHECK(sys->smmu().strtab().read_ste(AtsFunction::kSid).value().get<hw::STE::EATS>() ==
              hw::kEatsAbort);
        auto out = fn.ep.write(false, 0, iova, &v, sizeof(v));
        CHECK(out.ok());
        CHECK(out.path == smmuv3::SimAtsDevice::Path::kUntranslated);
        CHECK_FALSE(fn.ep.atc_holds(false, 0, iova));
        iommu_detach_group(*nested.value(), owned.group);
      }

      // With EATS 0b01: the ATC caches the guest's IOVA -> PA.
      arm_smmu_v3::ArmSmmuNestedData data = guest->ste();
      data.ste[1] = cpu_to_le64(hw::STE{}
                                    .set_word(1, le64_to_cpu(data.ste[1]))
                                    .set<hw::STE::EATS>(hw::kEatsTrans)
                                    .word(1));
      auto nested = iommu_domain_alloc_nested(fn.dev, *s2, &data, sizeof(data));
      REQUIRE(nested.ok());
      REQUIRE(iommu_attach_group(*nested.value(), owned.group).ok());
      CHECK(sys->smmu().strtab().read_ste(AtsFunction::kSid).value().get<hw::STE::EATS>() ==
            hw::kEatsTrans);
      auto out = fn.ep.write(false, 0, iova, &v, sizeof(v));
      CHECK(out.ok());
      CHECK(out.path == smmuv3::SimAtsDevice::Path::kTranslated);
      CHECK(fn.ep.atc_holds(false, 0, iova));
      uint64_t got = 0;
      memcpy(&got, guest->host_ptr(gpa), sizeof(got));
      CHECK(got == v);

      // The host takes the guest's RAM out of stage 2. The ATC entry was made through it,
      // under an IOVA no IPA range names: the parent's invalidation must empty the ATC.
      REQUIRE(iommu_unmap(*s2, Guest::kGpa, Guest::kSize).ok());
      CHECK_FALSE(fn.ep.atc_holds(false, 0, iova));
      memset(guest->host_ptr(gpa), 0, sizeof(v));
      CHECK_FALSE(fn.ep.write(false, 0, iova, &v, sizeof(v)).ok());
      CHECK(guest->host_ptr(gpa)[0] == 0);

      iommu_detach_group(*nested.value(), owned.group);
    }
    iommu_release_device(fn.dev);
    check_no_stale(*sys);
  }
}

TEST_CASE("nested: a guest STE the host cannot accept is refused at allocation") {
  auto sys = make_system(Threading::kSync);
  Device& dev = sys->engine_dev(0);
  auto guest = make_guest(*sys);
  Box<Domain> s2 = paging_domain(dev, IOMMU_DOMAIN_ALLOC_NEST_PARENT);
  Box<Domain> s1 = paging_domain(dev);

  arm_smmu_v3::ArmSmmuNestedData bad = guest->ste();
  CHECK(iommu_domain_alloc_nested(dev, *s2, &bad, sizeof(bad) - 1).error().code() == -EINVAL);
  CHECK(iommu_domain_alloc_nested(dev, *s1, &bad, sizeof(bad)).error().code() == -EINVAL);
  // Config: stage 2 translation is the host's to give.
  bad.ste[0] =
      cpu_to_le64((le64_to_cpu(bad.ste[0]) & ~(uint64_t{7} << 1)) | (hw::kConfigS2Trans << 1));
  CHECK(iommu_domain_alloc_nested(dev, *s2, &bad, sizeof(bad)).error().code() == -EINVAL);
}

TEST_CASE("PASID: a stage-1 domain on a SubstreamID beside the device's DMA domain") {
  for (Threading t : kModes) {
    CAPTURE(smmuv3::name(t));
    auto sys = make_system(t, ArmSystemConfig{.engine_pasid_bits = 8});
    Device& dev = sys->engine_dev(0);
    REQUIRE(dev.max_pasids() == 256);
    Buffer a = alloc_buffer(*sys, 4096, 0);
    Buffer b = alloc_buffer(*sys, 4096, 0);
    Box<Domain> pd = paging_domain(dev);
    const uint64_t iova = 0x4000'0000'0000 >> 4;
    REQUIRE(iommu_map(*pd, iova, a.phys(), 4096, kRw).ok());
    REQUIRE(iommu_attach_device_pasid(*pd, dev, 5).ok());

    CHECK(sys->engine(0).fill(iova, 4096, 0x0505050505050505, true, 5).ok());
    CHECK(a.cpu()[0] == 0x05);
    // The RID traffic still goes through the DMA domain.
    auto d = iommu_dma_map_buffer(dev, b.phys(), 4096, DmaDirection::from_device);
    REQUIRE(d.ok());
    CHECK(sys->engine(0).fill(d.value(), 4096, 0x0b0b0b0b0b0b0b0b).ok());
    CHECK(b.cpu()[0] == 0x0b);
    // Another PASID has no CD.
    CHECK_FALSE(sys->engine(0).fill(iova, 4096, 0x0606060606060606, true, 6).ok());

    iommu_detach_device_pasid(*pd, dev, 5);
    CHECK_FALSE(sys->engine(0).fill(iova, 4096, 0x0707070707070707, true, 5).ok());
    CHECK(a.cpu()[0] == 0x05);
    iommu_dma_unmap_buffer(dev, d.value(), 4096, DmaDirection::from_device);
    REQUIRE(iommu_unmap(*pd, iova, 4096).ok());
    check_no_stale(*sys);
  }
}

TEST_CASE("concurrent map/unmap from two threads while the device runs DMA") {
  for (Threading t : kModes) {
    CAPTURE(smmuv3::name(t));
    auto sys = make_system(t);
    Device& dev = sys->engine_dev(0);
    Buffer src = alloc_buffer(*sys, 4096, 0x77);
    Buffer dst = alloc_buffer(*sys, 4096, 0);
    auto s = iommu_dma_map_buffer(dev, src.phys(), 4096, DmaDirection::to_device);
    auto d = iommu_dma_map_buffer(dev, dst.phys(), 4096, DmaDirection::from_device);
    REQUIRE(s.ok());
    REQUIRE(d.ok());

    std::atomic<bool> stop{false};
    std::atomic<unsigned> dma_ok{0}, dma_bad{0}, map_errors{0};
    std::thread device([&] {
      while (!stop.load()) {
        if (sys->engine(0).copy(s.value(), d.value(), 4096).ok())
          dma_ok++;
        else
          dma_bad++;
      }
    });
    auto mapper = [&](unsigned seed) {
      Buffer mine = alloc_buffer(*sys, 8 * 4096, 0);
      for (unsigned i = 0; i < 200; i++) {
        const size_t len = 4096 * (1 + (i + seed) % 8);
        auto m = iommu_dma_map_buffer(dev, mine.phys(), len, DmaDirection::bidirectional);
        if (!m.ok()) {
          map_errors++;
          continue;
        }
        iommu_dma_unmap_buffer(dev, m.value(), len, DmaDirection::bidirectional);
      }
    };
    std::thread m1(mapper, 1), m2(mapper, 2);
    m1.join();
    m2.join();
    stop = true;
    device.join();
    CHECK(map_errors == 0);
    CHECK(dma_bad == 0);
    CHECK(dma_ok > 0);
    CHECK(dst.cpu()[100] == 0x77);
    iommu_dma_unmap_buffer(dev, s.value(), 4096, DmaDirection::to_device);
    iommu_dma_unmap_buffer(dev, d.value(), 4096, DmaDirection::from_device);
    check_no_stale(*sys);
  }
}

}  // namespace
}  // namespace strata::sim
