// SPDX-License-Identifier: MIT
// The core under concurrency (run under ThreadSanitizer by CI): maps and unmaps of disjoint
// ranges from several threads while the group moves between domains (which changes the
// reserved regions each domain honours), and probe/release of devices of one group racing
// with attach and PASID attach.
#include <atomic>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "core/core_test_support.h"

namespace strata {
namespace {

using fake::FakeIommu;
using test::code_of;
using test::CoreFixture;
using test::ProbedDevice;

constexpr int RW = IOMMU_READ | IOMMU_WRITE;

TEST_CASE("maps on disjoint ranges race with the group moving between domains") {
  CoreFixture f({.resv = {{.start = 0x0800'0000, .length = SZ_1M, .type = ResvType::sw_msi}}});
  Box<Domain> one, two;
  ProbedDevice d(f.desc("d"));
  Group& group = *d.dev.group();
  one = iommu_paging_domain_alloc(d.dev).release_value();
  two = iommu_paging_domain_alloc(d.dev).release_value();
  REQUIRE(iommu_group_claim_dma_owner(group, &f).ok());
  REQUIRE(iommu_attach_group(*one, group).ok());

  constexpr int kThreads = 4;
  constexpr int kRounds = 200;
  std::atomic<bool> stop{false};
  std::atomic<int> refused{0};
  std::thread mover([&] {
    while (!stop.load()) {
      CHECK(iommu_group_replace_domain(group, *two).ok());
      // Refused while a mapper has `one` mapping inside the window (it mapped it while the
      // group was on `two`): the group then stays on `two`.
      Result<void> r = iommu_group_replace_domain(group, *one);
      CHECK((r.ok() || code_of(r) == -EADDRINUSE));
    }
  });
  std::vector<std::thread> mappers;
  for (int t = 0; t < kThreads; t++) {
    mappers.emplace_back([&, t] {
      Domain& d1 = *one;
      const uint64_t base = uint64_t(1 + t) << 32;
      for (int i = 0; i < kRounds; i++) {
        const uint64_t iova = base + uint64_t(i % 16) * SZ_32M;
        CHECK(iommu_map(d1, iova, 0x4000'0000, 2 * SZ_16K, RW).ok());
        CHECK(iommu_iova_to_phys(d1, iova + SZ_16K).value() == 0x4000'0000 + SZ_16K);
        CHECK(iommu_unmap(d1, iova, 2 * SZ_16K).value() == 2 * SZ_16K);
        // The MSI window: refused whenever the group is attached to `one`, allowed otherwise;
        // either way the domain ends up as it was.
        Result<void> r = iommu_map(d1, 0x0800'0000 + uint64_t(t) * SZ_16K, 0x4000'0000, SZ_16K, RW);
        if (r.ok()) {
          CHECK(iommu_unmap(d1, 0x0800'0000 + uint64_t(t) * SZ_16K, SZ_16K).value() == SZ_16K);
        } else {
          CHECK(code_of(r) == -EADDRINUSE);
          refused++;
        }
      }
    });
  }
  for (std::thread& t : mappers) t.join();
  stop = true;
  mover.join();
  // Nothing was left in the window.
  CHECK(iommu_group_replace_domain(group, *one).ok());
  iommu_group_release_dma_owner(group);
}

TEST_CASE("devices of one group come and go while it is attached and PASIDs move") {
  CoreFixture f;
  Box<Domain> user;
  PciDev rp{.bus = 0, .devfn = 0x08, .type = PciType::root_port, .secondary_bus = 1};
  PciDev a{.bus = 1, .devfn = 0x00, .upstream = &rp};
  PciDev b{.bus = 1, .devfn = 0x08, .upstream = &rp};
  ProbedDevice anchor(f.desc("a", &a, 8));  // keeps the group alive
  Group& group = *anchor.dev.group();
  user = iommu_paging_domain_alloc(anchor.dev).release_value();
  REQUIRE(iommu_group_claim_dma_owner(group, &f).ok());
  REQUIRE(iommu_attach_group(*user, group).ok());

  std::thread churn([&] {
    for (int i = 0; i < 100; i++) {
      Device dev(f.desc("b", &b, 8));
      REQUIRE(iommu_probe_device(dev).ok());
      // A device joining a user-owned group lands in the user's domain, PASIDs included (the
      // fake finds a PASID missing or left behind when it is removed or released).
      CHECK(f.fake.installed(dev) == user.get());
      iommu_release_device(dev);
    }
  });
  for (int i = 0; i < 200; i++) {
    CHECK(iommu_attach_device_pasid(*user, anchor.dev, 1).ok());
    CHECK(f.fake.installed_pasid(anchor.dev, 1) == user.get());
    iommu_detach_device_pasid(*user, anchor.dev, 1);
  }
  churn.join();
  CHECK(group.nr_devices() == 1);
  iommu_group_release_dma_owner(group);
}

}  // namespace
}  // namespace strata
