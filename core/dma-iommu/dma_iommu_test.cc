// SPDX-License-Identifier: MIT
// The DMA API's contract (dma_iommu.h) over the fake IOMMU and its 16K granule: what the
// device reaches after a map (the domain's page tables, and memory through them), the
// invalidations an unmap makes (strict: one iotlb_sync; lazy: none until the flush queue
// flushes the whole domain), which IOVAs are handed out (never a reserved region, never one
// whose invalidation is pending), scatterlists, MSI doorbells, and that every allocation is
// returned when the device goes (the fixture checks kmalloc and DMA allocations).
#include <stdint.h>
#include <string.h>

#include <set>
#include <vector>

#include <doctest/doctest.h>

#include "core/dma-iommu/dma_test_support.h"
#include "testing/hosted/hosted.h"

namespace strata::dmatest {
namespace {

constexpr DmaDirection kBidi = DmaDirection::bidirectional;
constexpr uint64_t k16K = SZ_16K;
constexpr uint64_t kMask = k16K - 1;

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; i++) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

TEST_CASE("init: a cookie per DMA domain, -EINVAL for other domains") {
  Env env;
  Device& dev = env.probe("dev0");
  Domain& domain = dma_domain(dev);
  CHECK(domain.type() == DomainType::dma);
  IovaDomain* iovad = iommu_dma_iova_domain(domain);
  REQUIRE(iovad != nullptr);
  CHECK(iovad->granule() == k16K);
  CHECK(iovad->start_pfn() == 1);
  CHECK(iommu_dma_flush_queue(domain) == nullptr);  // strict

  // Again for the same device: the same cookie, and nothing allocated (its regions are
  // reserved already).
  const long live = hosted::kmalloc_live();
  CHECK(iommu_dma_init_domain(domain, dev).ok());
  CHECK(iommu_dma_iova_domain(domain) == iovad);
  CHECK(hosted::kmalloc_live() == live);

  // A paging domain is not the DMA API's.
  Result<Box<Domain>> paging = iommu_paging_domain_alloc(dev);
  REQUIRE(paging.ok());
  CHECK(code_of(iommu_dma_init_domain(*paging.value(), dev)) == -EINVAL);
  CHECK(iommu_dma_iova_domain(*paging.value()) == nullptr);

  // A device that is not probed.
  Device stray(DeviceDesc{.name = "stray", .fwspec = {.iommu = &env.fake()}});
  CHECK(code_of(iommu_dma_init_domain(domain, stray)) == -ENODEV);
  CHECK(code_of(iommu_dma_map_buffer(stray, env.ram(), 64, kBidi)) == -ENODEV);
}

TEST_CASE("init: a domain of another IOMMU is -EINVAL") {
  Env env;
  Device& dev = env.probe("dev0");
  fake::FakeIommu other({.name = "fake1", .dma = &env.dma()});
  REQUIRE(iommu_device_register(other, {}).ok());
  {
    Device dev1(DeviceDesc{.name = "dev1", .fwspec = {.iommu = &other, .ids = {1}, .num_ids = 1}});
    REQUIRE(iommu_probe_device(dev1).ok());
    CHECK(code_of(iommu_dma_init_domain(dma_domain(dev1), dev)) == -EINVAL);
    CHECK(code_of(iommu_dma_init_domain(dma_domain(dev), dev1)) == -EINVAL);
    iommu_release_device(dev1);
  }
  CHECK(iommu_device_unregister(other).ok());
}

TEST_CASE("init: a lazy domain gets a flush queue") {
  Env env(Mode::lazy);
  Device& dev = env.probe("dev0");
  Domain& domain = dma_domain(dev);
  CHECK(domain.type() == DomainType::dma_fq);
  CHECK(iommu_dma_flush_queue(domain) != nullptr);
}

TEST_CASE("without iommu_dma_init_domain the DMA API is -ENODEV") {
  Env env;
  Device& dev = env.probe("dev0", nullptr, /*init=*/false);
  CHECK(code_of(iommu_dma_map_buffer(dev, env.ram(), 4096, kBidi)) == -ENODEV);
  DmaSg sg[1] = {{.phys = env.ram(), .length = 4096}};
  CHECK(code_of(iommu_dma_map_sg(dev, sg, 1, kBidi)) == -ENODEV);
  CHECK(code_of(iommu_dma_prepare_msi(dev, 0x0900'0000)) == -ENODEV);
  iommu_dma_flush(dma_domain(dev));  // nothing to flush
}

TEST_CASE("identity domain: DMA addresses are physical addresses") {
  fake::FakeIommu::Options opts;
  opts.required_type["id0"] = DomainType::identity;
  Env env(Mode::strict, opts);
  Device& dev = env.probe("id0");
  Domain& domain = dma_domain(dev);
  REQUIRE(domain.type() == DomainType::identity);
  CHECK(code_of(iommu_dma_init_domain(domain, dev)) == -EINVAL);

  Result<dma_addr_t> a = iommu_dma_map_buffer(dev, env.ram() + 0x1234, 100, kBidi);
  REQUIRE(a.ok());
  CHECK(a.value() == env.ram() + 0x1234);
  iommu_dma_unmap_buffer(dev, a.value(), 100, kBidi);

  DmaSg sg[2] = {{.phys = env.ram(), .length = 0x4000}, {.phys = env.ram() + 0x4000, .length = 8}};
  Result<unsigned> n = iommu_dma_map_sg(dev, sg, 2, kBidi);
  REQUIRE(n.ok());
  CHECK(n.value() == 2);  // not merged: dma-direct does not merge either
  CHECK(sg[0].dma_address == env.ram());
  CHECK(sg[1].dma_address == env.ram() + 0x4000);
  CHECK(sg[1].dma_length == 8);
  iommu_dma_unmap_sg(dev, sg, 2, kBidi);

  CHECK(iommu_dma_prepare_msi(dev, 0x0900'0040).value() == 0x0900'0040);
  CHECK(env.fake().iotlb_syncs == 0);
}

TEST_CASE("dma_info_to_prot: the device reads what goes to it, writes what comes from it") {
  CHECK(dma_info_to_prot(DmaDirection::to_device, false, 0).value() == IOMMU_READ);
  CHECK(dma_info_to_prot(DmaDirection::from_device, false, 0).value() == IOMMU_WRITE);
  CHECK(dma_info_to_prot(DmaDirection::bidirectional, false, 0).value() ==
        (IOMMU_READ | IOMMU_WRITE));
  CHECK(dma_info_to_prot(DmaDirection::to_device, true, 0).value() == (IOMMU_READ | IOMMU_CACHE));
  CHECK(dma_info_to_prot(DmaDirection::from_device, false, DMA_ATTR_PRIVILEGED).value() ==
        (IOMMU_WRITE | IOMMU_PRIV));
  CHECK(dma_info_to_prot(DmaDirection::to_device, false,
                         DMA_ATTR_SKIP_CPU_SYNC | DMA_ATTR_WEAK_ORDERING | DMA_ATTR_NO_WARN)
            .value() == IOMMU_READ);
  CHECK(code_of(dma_info_to_prot(DmaDirection::none, false, 0)) == -EINVAL);
  CHECK(code_of(dma_info_to_prot(static_cast<DmaDirection>(7), false, 0)) == -EINVAL);
  CHECK(code_of(dma_info_to_prot(DmaDirection::to_device, false, 1UL << 3)) == -EINVAL);
}

TEST_CASE("map_buffer: a 4 KiB buffer at an offset inside a 16K granule") {
  Env env;
  Device& dev = env.probe("dev0");
  Domain& domain = dma_domain(dev);
  const phys_addr_t phys = env.ram() + 0x5000;  // 0x1000 into its 16K granule
  Result<dma_addr_t> r = iommu_dma_map_buffer(dev, phys, 4096, kBidi);
  REQUIRE(r.ok());
  const dma_addr_t dma = r.value();
  CHECK((dma & kMask) == 0x1000);  // same offset within the granule
  CHECK(translate(dev, dma).value() == phys);
  CHECK(translate(dev, dma + 4095).value() == phys + 4095);
  // The whole granule is mapped (Linux maps whole IOMMU pages too).
  CHECK(translate(dev, dma - 0x1000).value() == phys - 0x1000);
  CHECK(translate(dev, (dma & ~kMask) + k16K - 1).value() == (phys & ~kMask) + k16K - 1);
  CHECK_FALSE(translate(dev, (dma & ~kMask) + k16K).ok());

  // The device's writes land in the buffer, and it reads what the CPU wrote.
  const std::vector<uint8_t> out = pattern(4096, 3);
  REQUIRE(device_write(env, dev, dma, out.data(), out.size()));
  std::vector<uint8_t> seen(4096);
  REQUIRE(env.mem().read(phys, seen.data(), seen.size()).ok());
  CHECK(seen == out);
  const std::vector<uint8_t> in = pattern(4096, 99);
  REQUIRE(env.mem().write(phys, in.data(), in.size()).ok());
  REQUIRE(device_read(env, dev, dma, seen.data(), seen.size()));
  CHECK(seen == in);

  IovaDomain& iovad = *iommu_dma_iova_domain(domain);
  CHECK(live_iova_ranges(iovad) == 1);
  iommu_dma_unmap_buffer(dev, dma, 4096, kBidi);
  CHECK_FALSE(translate(dev, dma).ok());
  CHECK(live_iova_ranges(iovad) == 0);
  check_iovad(domain);
}

TEST_CASE("map_buffer: a buffer across a granule boundary maps both granules") {
  Env env;
  Device& dev = env.probe("dev0");
  const phys_addr_t phys = env.ram() + 0x3000;
  const dma_addr_t dma = iommu_dma_map_buffer(dev, phys, 0x2000, kBidi).value();
  CHECK((dma & kMask) == 0x3000);
  for (uint64_t off : {0x0ull, 0xfffull, 0x1000ull, 0x1fffull})
    CHECK(translate(dev, dma + off).value() == phys + off);
  const std::vector<uint8_t> out = pattern(0x2000, 5);
  REQUIRE(device_write(env, dev, dma, out.data(), out.size()));
  std::vector<uint8_t> seen(out.size());
  REQUIRE(env.mem().read(phys, seen.data(), seen.size()).ok());
  CHECK(seen == out);
  iommu_dma_unmap_buffer(dev, dma, 0x2000, kBidi);
  CHECK_FALSE(translate(dev, dma).ok());
  CHECK_FALSE(translate(dev, dma + 0x1fff).ok());
}

TEST_CASE("map_page: page + offset") {
  Env env;
  Device& dev = env.probe("dev0");
  const dma_addr_t dma =
      iommu_dma_map_page(dev, env.ram() + 0x10000, 0x4100, 0x100, DmaDirection::to_device).value();
  CHECK((dma & kMask) == 0x100);
  CHECK(translate(dev, dma).value() == env.ram() + 0x14100);
  iommu_dma_unmap_page(dev, dma, 0x100, DmaDirection::to_device);
  CHECK_FALSE(translate(dev, dma).ok());
}

TEST_CASE("map: bad arguments are -EINVAL and take no IOVA") {
  Env env;
  Device& dev = env.probe("dev0");
  IovaDomain& iovad = *iommu_dma_iova_domain(dma_domain(dev));
  CHECK(code_of(iommu_dma_map_buffer(dev, env.ram(), 0, kBidi)) == -EINVAL);
  CHECK(code_of(iommu_dma_map_buffer(dev, env.ram(), 64, DmaDirection::none)) == -EINVAL);
  CHECK(code_of(iommu_dma_map_buffer(dev, env.ram(), 64, kBidi, 1UL << 20)) == -EINVAL);
  CHECK(code_of(iommu_dma_map_buffer(dev, UINT64_MAX - 10, 64, kBidi)) == -EINVAL);
  CHECK(code_of(iommu_dma_map_page(dev, UINT64_MAX - 10, 20, 1, kBidi)) == -EINVAL);
  CHECK(code_of(iommu_dma_map_buffer(dev, 0, SIZE_MAX, kBidi)) == -EINVAL);
  CHECK(live_iova_ranges(iovad) == 0);
  CHECK(env.fake().sync_maps == 0);
}

TEST_CASE("strict: each unmap waits for one iotlb_sync of its range; the IOVA is free at once") {
  Env env;
  Device& dev = env.probe("dev0");
  Domain& domain = dma_domain(dev);
  IovaDomain& iovad = *iommu_dma_iova_domain(domain);
  const size_t sizes[] = {1, 4096, 0x4000, 0x4001, 0x10000, 0x30000};
  for (size_t size : sizes) {
    CAPTURE(size);
    const phys_addr_t phys = env.ram() + 0x2000;
    const dma_addr_t dma = iommu_dma_map_buffer(dev, phys, size, kBidi).value();
    env.fake().clear_invalidations();
    const uint64_t syncs = env.fake().iotlb_syncs;
    iommu_dma_unmap_buffer(dev, dma, size, kBidi);
    CHECK(env.fake().iotlb_syncs == syncs + 1);
    CHECK(env.fake().flush_alls == 0);
    const std::vector<Invalidation> inv = env.fake().invalidations();
    REQUIRE(inv.size() == 1);
    CHECK(inv[0].kind == Invalidation::range);
    CHECK(inv[0].domain == &domain);
    CHECK(inv[0].start == (dma & ~kMask));
    CHECK(inv[0].end == ((dma + size - 1) | kMask));
    CHECK(inv[0].leaf_only);
    CHECK(live_iova_ranges(iovad) == 0);
  }
  check_iovad(domain);
}

TEST_CASE("lazy: no invalidation until the ring fills, then one flush_iotlb_all") {
  Env env(Mode::lazy);
  Device& dev = env.probe("dev0");
  Domain& domain = dma_domain(dev);
  FlushQueue& fq = *iommu_dma_flush_queue(domain);
  fq.set_timeout_ns(UINT64_MAX);  // no time-driven flush in this test
  IovaDomain& iovad = *iommu_dma_iova_domain(domain);
  const unsigned capacity = fq.config().entries - 1;

  // Every call from this loop queues on the same ring (the ring is picked by the stack).
  std::set<dma_addr_t> queued;
  for (unsigned i = 0; i <= capacity; i++) {
    const dma_addr_t dma = iommu_dma_map_buffer(dev, env.ram() + i * 0x1000, 4096, kBidi).value();
    // Never an IOVA whose invalidation is pending.
    CHECK(queued.count(dma & ~kMask) == 0);
    iommu_dma_unmap_buffer(dev, dma, 4096, kBidi);
    CHECK_FALSE(translate(dev, dma).ok());  // the page-table entry is gone at once
    queued.insert(dma & ~kMask);
    CHECK(env.fake().iotlb_syncs == 0);
    if (i < capacity) {
      CHECK(env.fake().flush_alls == 0);
      CHECK(fq.pending() == i + 1);
      CHECK(live_iova_ranges(iovad) == i + 1);  // held by the queue, not reusable
    }
  }
  // The unmap that found its ring full flushed once, freed the ring, and queued itself.
  CHECK(env.fake().flush_alls == 1);
  CHECK(fq.pending() == 1);
  CHECK(live_iova_ranges(iovad) == 1);
  const std::vector<Invalidation> inv = env.fake().invalidations();
  REQUIRE(inv.size() == 1);
  CHECK(inv[0].kind == Invalidation::all);
  CHECK(inv[0].domain == &domain);

  iommu_dma_flush(domain);
  CHECK(env.fake().flush_alls == 2);
  CHECK(fq.pending() == 0);
  CHECK(live_iova_ranges(iovad) == 0);
  CHECK(env.fake().iotlb_syncs == 0);
  check_iovad(domain);
}

TEST_CASE("lazy: an IOVA is not handed out again before the flush that covers its unmap") {
  Env env(Mode::lazy);
  Device& dev = env.probe("dev0");
  Domain& domain = dma_domain(dev);
  FlushQueue& fq = *iommu_dma_flush_queue(domain);
  fq.set_timeout_ns(UINT64_MAX);
  IovaDomain& iovad = *iommu_dma_iova_domain(domain);

  std::set<dma_addr_t> pending;
  for (int round = 0; round < 3; round++) {
    CAPTURE(round);
    for (int i = 0; i < 60; i++) {
      const size_t size = 4096 << (i % 3);  // 1, 2 and 4 granules' worth with offsets
      const dma_addr_t dma =
          iommu_dma_map_buffer(dev, env.ram() + 0x800 + i * 0x4000, size, kBidi).value();
      const dma_addr_t lo = dma & ~kMask;
      const dma_addr_t hi = (dma + size - 1) | kMask;
      for (dma_addr_t p : pending) CHECK((p < lo || p > hi));
      iommu_dma_unmap_buffer(dev, dma, size, kBidi);
      for (dma_addr_t p = lo; p < hi; p += k16K) pending.insert(p);
    }
    CHECK(env.fake().flush_alls == static_cast<uint64_t>(round));
    CHECK(live_iova_ranges(iovad) == 60);
    iommu_dma_flush(domain);
    CHECK(env.fake().flush_alls == static_cast<uint64_t>(round + 1));
    CHECK(live_iova_ranges(iovad) == 0);
    pending.clear();
  }
  CHECK(env.fake().iotlb_syncs == 0);
}

TEST_CASE("lazy: the queue flushes when the last flush is older than its timeout") {
  Env env(Mode::lazy);
  Device& dev = env.probe("dev0");
  Domain& domain = dma_domain(dev);
  FlushQueue& fq = *iommu_dma_flush_queue(domain);
  fq.set_timeout_ns(0);  // every clock check finds the timeout passed
  const unsigned interval = fq.config().time_check_interval;
  for (unsigned i = 0; i < interval + 1; i++) {
    const dma_addr_t dma = iommu_dma_map_buffer(dev, env.ram(), 4096, kBidi).value();
    iommu_dma_unmap_buffer(dev, dma, 4096, kBidi);
  }
  // The clock is read on every interval-th call that finds entries queued.
  CHECK(env.fake().flush_alls == 1);
  CHECK(fq.pending() < interval);
}

TEST_CASE("table pages an unmap frees are kept until the invalidation") {
  for (Mode mode : {Mode::strict, Mode::lazy}) {
    CAPTURE(static_cast<int>(mode));
    Env env(mode);
    Device& dev = env.probe("dev0");
    Domain& domain = dma_domain(dev);
    // 32 MiB at a 16K-aligned but not 32M-aligned address: 16K pages filling one leaf table
    // (the IOVA is size-aligned), which the unmap removes whole.
    const phys_addr_t phys = env.ram() + k16K;
    const dma_addr_t dma = iommu_dma_map_buffer(dev, phys, SZ_32M, kBidi).value();
    CHECK((dma & (SZ_32M - 1)) == 0);
    CHECK(translate(dev, dma + SZ_32M - 1).value() == phys + SZ_32M - 1);
    const size_t tables = env.dma().live_allocations();
    env.fake().clear_invalidations();
    iommu_dma_unmap_buffer(dev, dma, SZ_32M, kBidi);
    CHECK_FALSE(translate(dev, dma).ok());
    if (mode == Mode::strict) {
      CHECK(env.dma().live_allocations() == tables - 1);
      const std::vector<Invalidation> inv = env.fake().invalidations();
      REQUIRE(inv.size() == 1);
      CHECK_FALSE(inv[0].leaf_only);  // walk caches too
    } else {
      CHECK(env.dma().live_allocations() == tables);  // the walker may still read it
      CHECK(env.fake().flush_alls == 0);
      iommu_dma_flush(domain);
      CHECK(env.fake().flush_alls == 1);
      CHECK(env.dma().live_allocations() == tables - 1);
    }
  }
}

// The fake with a 4 GiB aperture and one region of each kind.
fake::FakeIommu::Options small_space() {
  fake::FakeIommu::Options opts;
  opts.ias = 32;
  opts.resv = {
      kSwMsiRegion,
      kDirectRegion,
      {.start = 0xc000'0000, .length = 0x100'0000, .type = ResvType::reserved},
      {.start = 0xfee0'0000, .length = 0x10'0000, .type = ResvType::msi},
  };
  return opts;
}

TEST_CASE("reserved regions are never handed out; a full space is -ENOMEM") {
  for (Mode mode : {Mode::strict, Mode::lazy}) {
    CAPTURE(static_cast<int>(mode));
    Env env(mode, small_space());
    Device& dev = env.probe("dev0");
    Domain& domain = dma_domain(dev);
    if (FlushQueue* fq = iommu_dma_flush_queue(domain)) fq->set_timeout_ns(UINT64_MAX);
    const ReservedRegions regions = iommu_group_get(dev)->reserved_regions();
    REQUIRE(regions.size() == 4);

    // The direct region was identity-mapped by the probe.
    CHECK(translate(dev, 0x1000'0000).value() == 0x1000'0000);
    CHECK(translate(dev, 0x1000'ffff).value() == 0x1000'ffff);

    // 32 MiB buffers (32M blocks: the physical addresses are 32M-aligned) until the space is
    // full. Of the 128 size-aligned 32M slots of 4 GiB, the one holding IOVA 0 and the four
    // holding a region are not usable.
    std::vector<dma_addr_t> got;
    for (;;) {
      const phys_addr_t phys = uint64_t{1} << 40 | got.size() * SZ_32M;
      Result<dma_addr_t> r = iommu_dma_map_buffer(dev, phys, SZ_32M, kBidi);
      if (!r.ok()) {
        CHECK(r.error().code() == -ENOMEM);
        break;
      }
      CHECK(translate(dev, r.value() + 0x1234).value() == phys + 0x1234);
      got.push_back(r.value());
      REQUIRE(got.size() <= 128);
    }
    CHECK(got.size() == 123);
    for (dma_addr_t a : got) {
      CHECK(a != 0);
      CHECK(regions.find_overlap(a, SZ_32M, ~0u) == nullptr);
    }
    // The direct mapping survived the neighbours' maps.
    CHECK(translate(dev, 0x1000'0000).value() == 0x1000'0000);
    check_iovad(domain);

    // Unmapping one makes room again, at once when strict, and for a lazy domain because a
    // full space flushes the queue and retries.
    iommu_dma_unmap_buffer(dev, got.back(), SZ_32M, kBidi);
    const uint64_t flushes = env.fake().flush_alls;
    Result<dma_addr_t> again = iommu_dma_map_buffer(dev, 0, SZ_32M, kBidi);
    REQUIRE(again.ok());
    CHECK(again.value() == got.back());
    CHECK(env.fake().flush_alls == flushes + (mode == Mode::lazy ? 1 : 0));
    got.back() = again.value();
    for (dma_addr_t a : got) iommu_dma_unmap_buffer(dev, a, SZ_32M, kBidi);
    iommu_dma_flush(domain);
    CHECK(live_iova_ranges(*iommu_dma_iova_domain(domain)) == 0);
  }
}

TEST_CASE("scatterlist: one IOVA range, segments merged at granule boundaries") {
  for (Mode mode : {Mode::strict, Mode::lazy}) {
    CAPTURE(static_cast<int>(mode));
    Env env(mode);
    Device& dev = env.probe("dev0");
    Domain& domain = dma_domain(dev);
    if (FlushQueue* fq = iommu_dma_flush_queue(domain)) fq->set_timeout_ns(UINT64_MAX);
    const phys_addr_t ram = env.ram();
    DmaSg sg[4] = {
        {.phys = ram + 0x1000, .length = 0x3000},   // ends at a granule boundary
        {.phys = ram + 0x8000, .length = 0x4000},   // a whole granule: continues segment 0
        {.phys = ram + 0x10200, .length = 0x100},   // starts inside a granule: new segment
        {.phys = ram + 0x20000, .length = 0x4000},  // the one before ended early: new segment
    };
    Result<unsigned> n = iommu_dma_map_sg(dev, sg, 4, DmaDirection::from_device);
    REQUIRE(n.ok());
    REQUIRE(n.value() == 3);
    const dma_addr_t base = sg[0].dma_address & ~kMask;
    CHECK(sg[0].dma_address == base + 0x1000);
    CHECK(sg[0].dma_length == 0x7000);
    CHECK(sg[1].dma_address == base + 0x8200);
    CHECK(sg[1].dma_length == 0x100);
    CHECK(sg[2].dma_address == base + 0xc000);
    CHECK(sg[2].dma_length == 0x4000);
    CHECK(sg[3].dma_length == 0);
    CHECK(sg[0].phys == ram + 0x1000);  // the input is untouched
    CHECK(sg[3].length == 0x4000);

    // DMA segment 0 covers input segments 0 and 1, back to back.
    CHECK(translate(dev, sg[0].dma_address).value() == ram + 0x1000);
    CHECK(translate(dev, sg[0].dma_address + 0x2fff).value() == ram + 0x3fff);
    CHECK(translate(dev, sg[0].dma_address + 0x3000).value() == ram + 0x8000);
    CHECK(translate(dev, sg[0].dma_address + 0x6fff).value() == ram + 0xbfff);
    CHECK(translate(dev, sg[1].dma_address).value() == ram + 0x10200);
    CHECK(translate(dev, sg[2].dma_address + 0x3fff).value() == ram + 0x23fff);
    const std::vector<uint8_t> out = pattern(0x7000, 11);
    REQUIRE(device_write(env, dev, sg[0].dma_address, out.data(), out.size()));
    std::vector<uint8_t> a(0x3000), b(0x4000);
    REQUIRE(env.mem().read(ram + 0x1000, a.data(), a.size()).ok());
    REQUIRE(env.mem().read(ram + 0x8000, b.data(), b.size()).ok());
    CHECK(memcmp(a.data(), out.data(), a.size()) == 0);
    CHECK(memcmp(b.data(), out.data() + a.size(), b.size()) == 0);

    IovaDomain& iovad = *iommu_dma_iova_domain(domain);
    CHECK(live_iova_ranges(iovad) == 1);
    const uint64_t syncs = env.fake().iotlb_syncs;
    iommu_dma_unmap_sg(dev, sg, 4, DmaDirection::from_device);
    CHECK(env.fake().iotlb_syncs == syncs + (mode == Mode::strict ? 1 : 0));
    for (uint64_t off = 0; off < 0x10000; off += k16K) CHECK_FALSE(translate(dev, base + off).ok());
    iommu_dma_flush(domain);
    CHECK(live_iova_ranges(iovad) == 0);
    check_iovad(domain);
  }
}

TEST_CASE("scatterlist: bad input") {
  Env env;
  Device& dev = env.probe("dev0");
  DmaSg sg[2] = {{.phys = env.ram(), .length = 0x100, .dma_address = 5, .dma_length = 5},
                 {.phys = env.ram() + 0x4000, .length = 0}};
  CHECK(code_of(iommu_dma_map_sg(dev, sg, 0, kBidi)) == -EINVAL);
  CHECK(code_of(iommu_dma_map_sg(dev, sg, 2, kBidi)) == -EINVAL);
  CHECK(sg[0].dma_length == 0);
  sg[1] = {.phys = UINT64_MAX - 4, .length = 8};
  CHECK(code_of(iommu_dma_map_sg(dev, sg, 2, kBidi)) == -EINVAL);
  sg[1] = {.phys = env.ram(), .length = 8};
  CHECK(code_of(iommu_dma_map_sg(dev, sg, 2, DmaDirection::none)) == -EINVAL);
  CHECK(live_iova_ranges(*iommu_dma_iova_domain(dma_domain(dev))) == 0);
  // One segment of many granules.
  sg[0] = {.phys = env.ram() + 0x3ff0, .length = 0x8020};
  REQUIRE(iommu_dma_map_sg(dev, sg, 1, kBidi).value() == 1);
  CHECK(translate(dev, sg[0].dma_address + 0x801f).value() == env.ram() + 0x3ff0 + 0x801f);
  iommu_dma_unmap_sg(dev, sg, 1, kBidi);
  CHECK(live_iova_ranges(*iommu_dma_iova_domain(dma_domain(dev))) == 0);
}

TEST_CASE("MSI: doorbell pages mapped once, inside the sw_msi window") {
  fake::FakeIommu::Options opts;
  opts.resv = {{.start = 0x0800'0000,
                .length = 0x1'0000,
                .prot = IOMMU_WRITE | IOMMU_MMIO,
                .type = ResvType::sw_msi},
               {.start = 0xfee0'0000, .length = 0x10'0000, .type = ResvType::msi}};
  Env env(Mode::strict, opts);
  Device& dev = env.probe("dev0");
  const uint64_t maps = env.fake().sync_maps;

  const dma_addr_t a = iommu_dma_prepare_msi(dev, 0x0900'0040).value();
  CHECK(a == 0x0800'0040);
  CHECK(translate(dev, a).value() == 0x0900'0040);
  CHECK(env.fake().sync_maps == maps + 1);
  // The same doorbell page again: the same mapping, nothing new.
  CHECK(iommu_dma_prepare_msi(dev, 0x0900'0040).value() == a);
  CHECK(iommu_dma_prepare_msi(dev, 0x0900'3000).value() == 0x0800'3000);
  CHECK(env.fake().sync_maps == maps + 1);
  // Other doorbells take the next granules; the 64K window holds four.
  CHECK(iommu_dma_prepare_msi(dev, 0x0a00'0000).value() == 0x0800'4000);
  CHECK(iommu_dma_prepare_msi(dev, 0x0b00'0008).value() == 0x0800'8008);
  CHECK(iommu_dma_prepare_msi(dev, 0x0c00'0000).value() == 0x0800'c000);
  CHECK(code_of(iommu_dma_prepare_msi(dev, 0x0d00'0000)) == -ENOSPC);
  CHECK(translate(dev, 0x0800'c000).value() == 0x0c00'0000);
  // A doorbell in the hardware MSI window needs no mapping.
  CHECK(iommu_dma_prepare_msi(dev, 0xfee0'1000).value() == 0xfee0'1000);
  // Streaming DMA never gets the window.
  for (int i = 0; i < 16; i++) {
    const dma_addr_t d = iommu_dma_map_buffer(dev, env.ram(), 4096, kBidi).value();
    CHECK((d < 0x0800'0000 || d >= 0x0801'0000));
  }
}

TEST_CASE("MSI: a DMA domain without an sw_msi region is -EINVAL") {
  Env env;
  Device& dev = env.probe("dev0");
  CHECK(code_of(iommu_dma_prepare_msi(dev, 0x0900'0000)) == -EINVAL);
}

TEST_CASE("groups: the devices of a group share the cookie") {
  fake::FakeIommu::Options opts;
  opts.resv = {kSwMsiRegion};
  Env env(Mode::lazy, opts);
  // Two functions of a multifunction device without ACS: one group.
  const PciDev f0{.bus = 1, .devfn = 0, .multifunction = true};
  const PciDev f1{.bus = 1, .devfn = 1, .multifunction = true};
  Device& a = env.probe("f0", &f0);
  const long live = hosted::kmalloc_live();
  Device& b = env.probe("f1", &f1);
  REQUIRE(a.group() == b.group());
  REQUIRE(&dma_domain(a) == &dma_domain(b));
  CHECK(hosted::kmalloc_live() == live);  // no second cookie, no second reservation
  // One doorbell mapping for both.
  CHECK(iommu_dma_prepare_msi(a, 0x0900'0000).value() ==
        iommu_dma_prepare_msi(b, 0x0900'0000).value());
  // Mappings of either are in one space and one queue.
  const dma_addr_t x = iommu_dma_map_buffer(a, env.ram(), 64, kBidi).value();
  const dma_addr_t y = iommu_dma_map_buffer(b, env.ram(), 64, kBidi).value();
  CHECK((x & ~kMask) != (y & ~kMask));
  iommu_dma_unmap_buffer(a, x, 64, kBidi);
  iommu_dma_unmap_buffer(b, y, 64, kBidi);
  CHECK(iommu_dma_flush_queue(dma_domain(a))->pending() == 2);
}

TEST_CASE("destroying the domain frees the cookie, its queue and what the queue holds") {
  fake::FakeIommu::Options opts;
  opts.resv = {kSwMsiRegion};
  Env env(Mode::lazy, opts);
  Device& dev = env.probe("dev0");
  Domain& domain = dma_domain(dev);
  iommu_dma_flush_queue(domain)->set_timeout_ns(UINT64_MAX);
  REQUIRE(iommu_dma_prepare_msi(dev, 0x0900'0000).ok());
  const dma_addr_t big = iommu_dma_map_buffer(dev, env.ram() + k16K, SZ_32M, kBidi).value();
  std::vector<dma_addr_t> small;
  for (int i = 0; i < 10; i++)
    small.push_back(iommu_dma_map_buffer(dev, env.ram() + i * 64, 64, kBidi).value());
  iommu_dma_unmap_buffer(dev, big, SZ_32M, kBidi);  // a table page waits in the queue
  for (int i = 0; i < 5; i++) iommu_dma_unmap_buffer(dev, small[i], 64, kBidi);
  CHECK(iommu_dma_flush_queue(domain)->pending() == 6);
  // Five mappings are still live: a driver bug, but the domain's pages go with it anyway.
  const uint64_t flushes = env.fake().flush_alls;
  env.release(dev);
  CHECK(env.fake().flush_alls == flushes);  // the domain is gone: nothing to invalidate
  CHECK(env.fake().live_domains == 0);
  // ~Env checks that every kmalloc and DMA allocation came back.
}

TEST_CASE("unmapping what the DMA API did not map warns and keeps the IOVA out") {
  for (Mode mode : {Mode::strict, Mode::lazy}) {
    CAPTURE(static_cast<int>(mode));
    Env env(mode);
    Device& dev = env.probe("dev0");
    Domain& domain = dma_domain(dev);
    IovaDomain& iovad = *iommu_dma_iova_domain(domain);
    const dma_addr_t a = iommu_dma_map_buffer(dev, env.ram(), 4096, kBidi).value();
    {
      hosted::LogCapture log;
      iommu_dma_unmap_buffer(dev, 0x1234'0000, 4096, kBidi);  // never mapped
      CHECK(log.contains("WARNING at"));
    }
    iommu_dma_unmap_buffer(dev, a, 4096, kBidi);
    {
      hosted::LogCapture log;
      iommu_dma_unmap_buffer(dev, a, 4096, kBidi);  // twice
      CHECK(log.contains("WARNING at"));
    }
    iommu_dma_flush(domain);
    check_iovad(domain);
    CHECK(live_iova_ranges(iovad) == 0);
    // Handed out once more, then no more.
    const dma_addr_t b = iommu_dma_map_buffer(dev, env.ram(), 4096, kBidi).value();
    const dma_addr_t c = iommu_dma_map_buffer(dev, env.ram(), 4096, kBidi).value();
    CHECK((b & ~kMask) != (c & ~kMask));
    iommu_dma_unmap_buffer(dev, b, 4096, kBidi);
    iommu_dma_unmap_buffer(dev, c, 4096, kBidi);
  }
}

}  // namespace
}  // namespace strata::dmatest
