// SPDX-License-Identifier: MIT
// Failure injected at every point of probe, ownership, attach, PASID attach and map: each
// failure returns the injected error and leaves the devices, groups, domains and mappings as
// they were, with nothing leaked. Three sources of failure, each walked from the first point
// to the last: DMA memory (page tables), kmalloc (core objects), and the driver's ops.
#include <functional>
#include <vector>

#include <doctest/doctest.h>

#include "core/core_test_support.h"

namespace strata {
namespace {

using fake::FakeIommu;
using test::code_of;
using test::CoreFixture;
using test::ProbedDevice;

enum class Source { dma, kmalloc, driver };

struct Injector {
  CoreFixture& f;
  Source source;

  void arm(long n) {
    switch (source) {
      case Source::dma: f.platform->dma().fail_nth(n); break;
      case Source::kmalloc: hosted::fail_kmalloc_nth(n); break;
      case Source::driver: f.fake.fail_nth_op(n, -EIO); break;
    }
  }
  void disarm() {
    f.platform->dma().fail_nth(-1);
    hosted::fail_kmalloc_nth(-1);
    f.fake.fail_nth_op(-1, 0);
  }
  int expected() const { return source == Source::driver ? -EIO : -ENOMEM; }
};

// Runs op with the n-th injection point failing, for n = 0, 1, ... until op succeeds; after
// each failure, unchanged() must hold. Returns how many points failed.
int walk(Injector inj, const std::function<Result<void>()>& op,
         const std::function<void()>& unchanged) {
  for (int n = 0; n < 200; n++) {
    inj.arm(n);
    Result<void> r = op();
    inj.disarm();
    if (r.ok()) return n;
    CAPTURE(n);
    CHECK(code_of(r) == inj.expected());
    unchanged();
  }
  FAIL("never succeeded");
  return -1;
}

const Source kSources[] = {Source::dma, Source::kmalloc, Source::driver};

FakeIommu::Options with_direct() {
  return {.resv = {{.start = 0x0010'0000,
                    .length = 2 * SZ_16K,
                    .prot = IOMMU_READ,
                    .type = ResvType::direct},
                   {.start = 0x0800'0000, .length = SZ_1M, .type = ResvType::sw_msi}}};
}

TEST_CASE("probe: a new group, and joining an existing one") {
  for (Source source : kSources) {
    CAPTURE(static_cast<int>(source));
    CoreFixture f(with_direct());
    PciDev rp{.bus = 0, .devfn = 0x08, .type = PciType::root_port, .secondary_bus = 1};
    PciDev a{.bus = 1, .devfn = 0x00, .upstream = &rp};
    PciDev b{.bus = 1, .devfn = 0x08, .upstream = &rp};
    const size_t dma0 = f.platform->dma().live_allocations();
    const long km0 = hosted::kmalloc_live();

    Device da(f.desc("a", &a));
    const int points = walk(
        {f, source}, [&] { return iommu_probe_device(da); },
        [&] {
          CHECK(da.group() == nullptr);
          CHECK(da.iommu() == nullptr);
          CHECK(!f.fake.probed(da));
          CHECK(f.fake.live_domains == 0);
          CHECK(f.platform->dma().live_allocations() == dma0);
          CHECK(hosted::kmalloc_live() == km0);
        });
    CHECK(points > 0);
    Domain* def = iommu_get_domain_for_dev(da);
    REQUIRE(def);

    const size_t dma1 = f.platform->dma().live_allocations();
    const long km1 = hosted::kmalloc_live();
    Device db(f.desc("b", &b));
    const int join_points = walk(
        {f, source}, [&] { return iommu_probe_device(db); },
        [&] {
          CHECK(db.group() == nullptr);
          CHECK(da.group()->nr_devices() == 1);
          CHECK(!f.fake.probed(db));
          CHECK(f.fake.installed(da) == def);
          CHECK(iommu_iova_to_phys(*def, 0x0010'0000).value() == 0x0010'0000);
          CHECK(f.platform->dma().live_allocations() == dma1);
          CHECK(hosted::kmalloc_live() == km1);
        });
    // Joining a group whose direct regions are mapped allocates nothing; only the driver fails.
    CHECK(join_points == (source == Source::driver ? 3 : 0));  // probe, resv, attach
    CHECK(db.group() == da.group());
    iommu_release_device(db);
    iommu_release_device(da);
    CHECK(f.platform->dma().live_allocations() == dma0);
    CHECK(hosted::kmalloc_live() == km0);
  }
}

TEST_CASE("claim, attach and replace on a group of two") {
  for (Source source : kSources) {
    CAPTURE(static_cast<int>(source));
    CoreFixture f;
    Box<Domain> user, other;
    PciDev rp{.bus = 0, .devfn = 0x08, .type = PciType::root_port, .secondary_bus = 1};
    PciDev a{.bus = 1, .devfn = 0x00, .upstream = &rp};
    PciDev b{.bus = 1, .devfn = 0x08, .upstream = &rp};
    ProbedDevice da(f.desc("a", &a)), db(f.desc("b", &b));
    Group& group = *da.dev.group();
    Domain* def = group.default_domain();
    int vfio;

    walk(
        {f, source}, [&] { return iommu_group_claim_dma_owner(group, &vfio); },
        [&] {
          CHECK(!group.dma_owner_claimed());
          CHECK(f.fake.installed(da.dev) == def);
          CHECK(f.fake.installed(db.dev) == def);
        });
    const Domain* blocked = f.fake.installed(da.dev);
    CHECK(blocked != def);

    const int attach_points = walk(
        {f, source},
        [&]() -> Result<void> {
          user = STRATA_TRY(iommu_paging_domain_alloc(da.dev));
          return iommu_attach_group(*user, group);
        },
        [&] {
          user.reset();
          CHECK(f.fake.installed(da.dev) == blocked);
          CHECK(f.fake.installed(db.dev) == blocked);
          CHECK(group.domain() == blocked);
        });
    CHECK(attach_points > 0);
    CHECK(f.fake.installed(db.dev) == user.get());

    walk(
        {f, source},
        [&]() -> Result<void> {
          other = STRATA_TRY(iommu_paging_domain_alloc(da.dev));
          return iommu_group_replace_domain(group, *other);
        },
        [&] {
          other.reset();
          CHECK(f.fake.installed(da.dev) == user.get());
          CHECK(f.fake.installed(db.dev) == user.get());
          CHECK(user->users() == 1);
        });
    iommu_group_release_dma_owner(group);
    CHECK(f.fake.installed(db.dev) == def);
  }
}

TEST_CASE("PASID attach and nested allocation") {
  for (Source source : kSources) {
    CAPTURE(static_cast<int>(source));
    CoreFixture f;
    Box<Domain> parent, nested;
    ProbedDevice d(f.desc("d", nullptr, 8));
    parent = iommu_paging_domain_alloc(d.dev, IOMMU_DOMAIN_ALLOC_NEST_PARENT).release_value();
    walk(
        {f, source}, [&] { return iommu_attach_device_pasid(*parent, d.dev, 3); },
        [&] {
          CHECK(f.fake.installed_pasids(d.dev) == 0);
          CHECK(iommu_get_domain_for_dev_pasid(d.dev, 3) == nullptr);
          CHECK(parent->users() == 0);
        });
    CHECK(f.fake.installed_pasid(d.dev, 3) == parent.get());
    iommu_detach_device_pasid(*parent, d.dev, 3);

    const uint64_t data = 0x1234;
    walk(
        {f, source},
        [&]() -> Result<void> {
          nested = STRATA_TRY(iommu_domain_alloc_nested(d.dev, *parent, &data, sizeof(data)));
          return {};
        },
        [&] { CHECK(parent->users() == 0); });
    CHECK(parent->users() == 1);
  }
}

TEST_CASE("map across several tables") {
  for (Source source : kSources) {
    CAPTURE(static_cast<int>(source));
    CoreFixture f;
    Box<Domain> domain;
    ProbedDevice d(f.desc("d"));
    domain = iommu_paging_domain_alloc(d.dev).release_value();
    REQUIRE(iommu_map(*domain, 0x1'0000'0000, 0x4000'0000, SZ_16K, IOMMU_READ).ok());
    // 16K pages either side of a 32M boundary, then 32M blocks, in a fresh part of the tree.
    const uint64_t iova = 0x40'0000'0000 - SZ_32M - SZ_16K;
    const size_t size = SZ_16K + SZ_32M + SZ_16K;
    walk(
        {f, source},
        [&] {
          return iommu_map(*domain, iova, 0x4000'0000 - SZ_32M - SZ_16K, size,
                           IOMMU_READ | IOMMU_WRITE);
        },
        [&] {
          for (uint64_t off = 0; off < size; off += SZ_16K)
            CHECK(code_of(iommu_iova_to_phys(*domain, iova + off)) == -ENOENT);
          CHECK(iommu_iova_to_phys(*domain, 0x1'0000'0000).value() == 0x4000'0000);
        });
    CHECK(iommu_iova_to_phys(*domain, iova + SZ_16K).value() == 0x4000'0000 - SZ_32M);
    CHECK(iommu_unmap(*domain, iova, size).value() == size);
  }
}

}  // namespace
}  // namespace strata
