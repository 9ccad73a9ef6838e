// SPDX-License-Identifier: MIT
// Failures at every allocation of the DMA API: a script (init for two devices of a group, maps
// of a buffer, a large buffer and a scatterlist, an MSI doorbell, unmaps, maps again, a flush)
// runs once per allocation point with that allocation failing: every kmalloc
// (hosted::fail_kmalloc_nth), every DMA allocation (SimDmaAllocator::fail_nth: page tables),
// and every failable op of the fake driver (FakeIommu::fail_nth_op: get_resv_regions). Each
// failing call must return the error and leave the domain as it was (no cookie after a failed
// first init; the same IOVA allocations, reservations and translations after anything else);
// the script goes on with what succeeded; and releasing the devices returns every allocation
// (the fixture checks kmalloc_live and the DMA allocator's live allocations).
#include <stdint.h>

#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "core/dma-iommu/dma_test_support.h"
#include "testing/hosted/hosted.h"

namespace strata::dmatest {
namespace {

constexpr DmaDirection kBidi = DmaDirection::bidirectional;

enum class Inject { none, kmalloc, dma, op };

fake::FakeIommu::Options regions() {
  fake::FakeIommu::Options opts;
  opts.resv = {
      kSwMsiRegion,
      kDirectRegion,
      {.start = 0xffff'0000'0000, .length = 0x1'0000'0000, .type = ResvType::reserved},
  };
  return opts;
}

struct Mapping {
  dma_addr_t dma;
  phys_addr_t phys;
  size_t size;
};

// What must not change when a call fails.
struct Snapshot {
  bool cookie = false;
  std::vector<std::pair<unsigned long, unsigned long>> reserved;
  unsigned long live = 0;
  bool operator==(const Snapshot&) const = default;
};

Snapshot snapshot(Domain& domain) {
  Snapshot s;
  IovaDomain* iovad = iommu_dma_iova_domain(domain);
  if (!iovad) return s;
  s.cookie = true;
  iovad->for_each_iova([&](const Iova& i) {
    if (i.reserved()) s.reserved.emplace_back(i.pfn_lo, i.pfn_hi);
  });
  s.live = live_iova_ranges(*iovad);
  return s;
}

struct Counts {
  long kmallocs = 0;
  uint64_t dma_allocs = 0;
  int failures = 0;
};

// Runs the script with `inject` armed at the n-th allocation; returns what it allocated after
// arming and how many calls failed.
Counts run(Mode mode, Inject inject, long n) {
  Counts counts;
  Env env(mode, regions());
  const PciDev f0{.bus = 1, .devfn = 0, .multifunction = true};
  const PciDev f1{.bus = 1, .devfn = 1, .multifunction = true};
  Device& a = env.probe("f0", &f0, /*init=*/false);
  Device& b = env.probe("f1", &f1, /*init=*/false);
  Domain& domain = dma_domain(a);
  REQUIRE(&dma_domain(b) == &domain);
  // The probe identity-mapped the direct region.
  REQUIRE(translate(a, 0x1000'0000).value() == 0x1000'0000);

  std::vector<Mapping> live;
  auto check_live = [&] {
    for (const Mapping& m : live) {
      CHECK(translate(a, m.dma).value() == m.phys);
      CHECK(translate(a, m.dma + m.size - 1).value() == m.phys + m.size - 1);
    }
    CHECK(translate(a, 0x1000'ffff).value() == 0x1000'ffff);
    if (iommu_dma_iova_domain(domain)) check_iovad(domain);
  };
  // A call that may fail: on failure, nothing changed.
  auto fallible = [&](const char* what, auto&& call) {
    CAPTURE(what);
    const Snapshot before = snapshot(domain);
    auto r = call();
    if (!r.ok()) {
      const int code = r.error().code();
      CHECK((code == -ENOMEM || code == -EIO));
      CHECK(snapshot(domain) == before);
      counts.failures++;
    }
    check_live();
    return r;
  };

  const long kmallocs = hosted::kmalloc_count();
  const uint64_t dma_allocs = env.dma().total_allocations();
  switch (inject) {
    case Inject::none: break;
    case Inject::kmalloc: hosted::fail_kmalloc_nth(n); break;
    case Inject::dma: env.dma().fail_nth(n); break;
    case Inject::op: env.fake().fail_nth_op(n, -EIO); break;
  }

  const bool ready = fallible("init f0", [&] { return iommu_dma_init_domain(domain, a); }).ok();
  const bool ready_b = fallible("init f1", [&] { return iommu_dma_init_domain(domain, b); }).ok();
  if (ready || ready_b) {
    Device& dev = ready ? a : b;
    if (FlushQueue* fq = iommu_dma_flush_queue(domain)) fq->set_timeout_ns(UINT64_MAX);
    auto map = [&](const char* what, phys_addr_t phys, size_t size) {
      Result<dma_addr_t> r =
          fallible(what, [&] { return iommu_dma_map_buffer(dev, phys, size, kBidi); });
      if (r.ok()) live.push_back({r.value(), phys, size});
    };
    map("map 4K", env.ram() + 0x5000, 4096);
    map("map 32M", env.ram() + SZ_16K, SZ_32M);
    map("map 100", env.ram() + 0x123, 100);

    DmaSg sg[3] = {{.phys = env.ram() + 0x1000, .length = 0x3000},
                   {.phys = env.ram() + 0x40000, .length = 0x8000},
                   {.phys = env.ram() + 0x80010, .length = 0x10}};
    Result<unsigned> nsg = fallible("map_sg", [&] { return iommu_dma_map_sg(dev, sg, 3, kBidi); });
    if (nsg.ok()) {
      REQUIRE(nsg.value() == 2);
      CHECK(translate(dev, sg[0].dma_address + 0x3000).value() == env.ram() + 0x40000);
      CHECK(sg[2].dma_length == 0);
    } else {
      CHECK(sg[0].dma_length == 0);
    }

    Result<dma_addr_t> msi =
        fallible("prepare_msi", [&] { return iommu_dma_prepare_msi(dev, 0x0900'0040); });
    if (msi.ok()) CHECK(translate(dev, msi.value()).value() == 0x0900'0040);

    // Unmap everything (a free may allocate an rcache magazine; failing that is invisible),
    // then map again from what the unmaps gave back.
    for (const Mapping& m : live) iommu_dma_unmap_buffer(dev, m.dma, m.size, kBidi);
    for (const Mapping& m : live) CHECK_FALSE(translate(dev, m.dma).ok());
    live.clear();
    if (nsg.ok()) iommu_dma_unmap_sg(dev, sg, 3, kBidi);
    check_live();
    for (int i = 0; i < 4; i++) map("map again", env.ram() + i * 0x10000, 0x10000);
    iommu_dma_flush(domain);
    for (const Mapping& m : live) iommu_dma_unmap_buffer(dev, m.dma, m.size, kBidi);
    live.clear();
    iommu_dma_flush(domain);
    CHECK(live_iova_ranges(*iommu_dma_iova_domain(domain)) == 0);
  } else {
    CHECK(iommu_dma_iova_domain(domain) == nullptr);
    CHECK(code_of(iommu_dma_map_buffer(a, env.ram(), 64, kBidi)) == -ENODEV);
  }

  hosted::fail_kmalloc_nth(-1);
  env.dma().fail_nth(-1);
  env.fake().fail_nth_op(-1, 0);
  counts.kmallocs = hosted::kmalloc_count() - kmallocs;
  counts.dma_allocs = env.dma().total_allocations() - dma_allocs;
  return counts;
  // ~Env releases the devices (the domain and its cookie go) and checks for leaks.
}

TEST_CASE("every allocation of init and map may fail, and nothing leaks") {
  for (Mode mode : {Mode::strict, Mode::lazy}) {
    CAPTURE(static_cast<int>(mode));
    const Counts clean = run(mode, Inject::none, 0);
    CHECK(clean.failures == 0);
    REQUIRE(clean.kmallocs > 0);
    REQUIRE(clean.dma_allocs > 0);
    MESSAGE("mode " << static_cast<int>(mode) << ": " << clean.kmallocs << " kmallocs, "
                    << clean.dma_allocs << " DMA allocations");

    int failed = 0;
    for (long n = 0; n < clean.kmallocs; n++) {
      CAPTURE(n);
      failed += run(mode, Inject::kmalloc, n).failures > 0;
    }
    // Most kmallocs are on a map or init path; some (rcache magazines) only cost the cache.
    CHECK(failed > clean.kmallocs / 2);

    for (long n = 0; n < static_cast<long>(clean.dma_allocs); n++) {
      CAPTURE(n);
      CHECK(run(mode, Inject::dma, n).failures == 1);
    }

    for (long n = 0;; n++) {
      CAPTURE(n);
      const int failures = run(mode, Inject::op, n).failures;
      if (failures == 0) break;
      CHECK(failures == 1);
      REQUIRE(n < 8);
    }
  }
}

}  // namespace
}  // namespace strata::dmatest
