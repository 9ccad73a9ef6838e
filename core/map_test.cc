// SPDX-License-Identifier: MIT
// iommu_map / iommu_unmap (iommu.h): splitting into the largest pages, all-or-nothing maps,
// one iotlb_sync per unmap, holes, aperture, reserved regions on user domains and direct
// regions on DMA domains. The fake driver maps with 16K pages and 32M blocks, and records
// every map_pages / unmap_pages call and every invalidation.
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "core/core_test_support.h"

namespace strata::fake {
doctest::String toString(const FakeIommu::PageCall& c) {
  return fmt::format("{}({:#x}, {:#x}, {:#x} x {})", c.map ? "map" : "unmap", c.iova, c.paddr,
                     c.pgsize, c.pgcount)
      .c_str();
}
}  // namespace strata::fake

namespace strata {
namespace {

using fake::FakeIommu;
using fake::Invalidation;
using test::code_of;
using test::CoreFixture;
using test::ProbedDevice;
using PageCall = FakeIommu::PageCall;

constexpr int RW = IOMMU_READ | IOMMU_WRITE;

// A claimed group with a paging domain of its own.
struct UserDomain : CoreFixture {
  explicit UserDomain(FakeIommu::Options opts = {}) : CoreFixture(std::move(opts)) {
    domain = iommu_paging_domain_alloc(dev.dev).release_value();
    REQUIRE(iommu_group_claim_dma_owner(*dev.dev.group(), this).ok());
    REQUIRE(iommu_attach_group(*domain, *dev.dev.group()).ok());
    fake.clear_page_calls();
  }
  ~UserDomain() { iommu_group_release_dma_owner(*dev.dev.group()); }

  Box<Domain> domain;  // before dev: outlives it
  ProbedDevice dev{desc("d")};
};

TEST_CASE("map splits a range into the largest pages both addresses allow") {
  UserDomain f;
  Domain& d = *f.domain;
  const uint64_t iova = SZ_32M - 2 * SZ_16K;
  const phys_addr_t pa = 0x8000'0000 - 2 * SZ_16K;  // equally offset within 32M
  const size_t size = 2 * SZ_16K + 2 * SZ_32M + SZ_16K;
  REQUIRE(iommu_map(d, iova, pa, size, RW).ok());
  CHECK(f.fake.page_calls() == std::vector<PageCall>{
                                   {true, iova, pa, SZ_16K, 2},
                                   {true, SZ_32M, 0x8000'0000, SZ_32M, 2},
                                   {true, 3 * SZ_32M, 0x8000'0000 + 2 * SZ_32M, SZ_16K, 1},
                               });
  CHECK(f.fake.sync_maps == 1);
  for (uint64_t off :
       {uint64_t{0}, uint64_t{SZ_16K + 5}, uint64_t{2 * SZ_16K + SZ_32M + 123}, uint64_t{size - 1}})
    CHECK(iommu_iova_to_phys(d, iova + off).value() == pa + off);

  f.fake.clear_page_calls();
  f.fake.clear_invalidations();
  CHECK(iommu_unmap(d, iova, size).value() == size);
  CHECK(f.fake.page_calls() == std::vector<PageCall>{
                                   {false, iova, 0, SZ_16K, 2},
                                   {false, SZ_32M, 0, SZ_32M, 2},
                                   {false, 3 * SZ_32M, 0, SZ_16K, 1},
                               });
  // One invalidation for the whole call, covering it, at the smallest page size unmapped.
  const std::vector<Invalidation> inv = f.fake.invalidations();
  REQUIRE(inv.size() == 1);
  CHECK(inv[0].kind == Invalidation::range);
  CHECK(inv[0].start == iova);
  CHECK(inv[0].end == iova + size - 1);
  CHECK(inv[0].granule == SZ_16K);
  CHECK(code_of(iommu_iova_to_phys(d, SZ_32M)) == -ENOENT);
}

TEST_CASE("addresses offset differently within a block never get blocks") {
  UserDomain f;
  REQUIRE(iommu_map(*f.domain, SZ_32M, 0x8000'0000 + SZ_16K, 2 * SZ_32M, RW).ok());
  CHECK(f.fake.page_calls().size() >= 2);  // io-pgtable maps one leaf table per call
  for (const PageCall& c : f.fake.page_calls()) CHECK(c.pgsize == SZ_16K);
  CHECK(iommu_iova_to_phys(*f.domain, 2 * SZ_32M).value() == 0x8000'0000 + SZ_16K + SZ_32M);
  CHECK(iommu_iova_to_phys(*f.domain, 3 * SZ_32M - 1).value() ==
        0x8000'0000 + SZ_16K + 2 * SZ_32M - 1);
}

TEST_CASE("map refuses bad ranges and non-paging domains") {
  UserDomain f;
  Domain& d = *f.domain;
  CHECK(code_of(iommu_map(d, 0x1000, 0x4000'0000, SZ_16K, RW)) == -EINVAL);  // 4K-aligned
  CHECK(code_of(iommu_map(d, 0, 0x4000'1000, SZ_16K, RW)) == -EINVAL);
  CHECK(code_of(iommu_map(d, 0, 0x4000'0000, SZ_4K, RW)) == -EINVAL);
  CHECK(code_of(iommu_map(d, 0, 0x4000'0000, 0, RW)) == -EINVAL);
  CHECK(code_of(iommu_map(d, ~uint64_t{0} - SZ_16K + 1, 0, 2 * SZ_16K, RW)) == -EINVAL);  // wraps
  // The aperture is the 48-bit input range.
  CHECK(code_of(iommu_map(d, uint64_t{1} << 48, 0x4000'0000, SZ_16K, RW)) == -ERANGE);
  CHECK(code_of(iommu_map(d, (uint64_t{1} << 48) - SZ_16K, 0, 2 * SZ_16K, RW)) == -ERANGE);
  CHECK(code_of(iommu_unmap(d, 0x1000, SZ_16K)) == -EINVAL);
  CHECK(f.fake.page_calls().empty());

  CoreFixture g({}, {.def_domain_type = DomainType::identity});
  ProbedDevice id(g.desc("id"));
  Domain& idd = *iommu_get_domain_for_dev(id.dev);
  CHECK(code_of(iommu_map(idd, 0, 0x4000'0000, SZ_16K, RW)) == -EINVAL);
  CHECK(code_of(iommu_unmap(idd, 0, SZ_16K)) == -EINVAL);
  CHECK(iommu_iova_to_phys(idd, 0x1234'5678).value() == 0x1234'5678);
}

TEST_CASE("a map that fails part-way leaves nothing mapped") {
  UserDomain f;
  Domain& d = *f.domain;
  REQUIRE(iommu_map(d, SZ_32M, 0x9000'0000, SZ_16K, RW).ok());
  const uint64_t syncs = f.fake.iotlb_syncs;
  // The first piece (below 32M, another leaf table) maps; the second hits the live entry.
  CHECK(code_of(iommu_map(d, SZ_32M - SZ_16K, 0x8000'0000, 2 * SZ_16K, RW)) == -EEXIST);
  CHECK(code_of(iommu_iova_to_phys(d, SZ_32M - SZ_16K)) == -ENOENT);
  CHECK(iommu_iova_to_phys(d, SZ_32M).value() == 0x9000'0000);
  CHECK(f.fake.iotlb_syncs == syncs + 1);  // the undo was invalidated
}

TEST_CASE("unmap: stops at a hole, one iotlb_sync per call, none for nothing") {
  UserDomain f;
  Domain& d = *f.domain;
  REQUIRE(iommu_map(d, 0, 0x4000'0000, SZ_16K, RW).ok());
  REQUIRE(iommu_map(d, 2 * SZ_16K, 0x4000'8000, SZ_16K, RW).ok());
  CHECK(iommu_unmap(d, 0, 3 * SZ_16K).value() == SZ_16K);
  CHECK(f.fake.iotlb_syncs == 1);
  CHECK(iommu_iova_to_phys(d, 2 * SZ_16K).value() == 0x4000'8000);
  CHECK(iommu_unmap(d, 0, SZ_16K).value() == 0);
  CHECK(f.fake.iotlb_syncs == 1);
  // Part of a block cannot be unmapped: the rest would briefly vanish under live DMA.
  REQUIRE(iommu_map(d, SZ_32M, 0x8000'0000, SZ_32M, RW).ok());
  CHECK(code_of(iommu_unmap(d, SZ_32M, SZ_16K)) == -EINVAL);
  CHECK(iommu_iova_to_phys(d, SZ_32M + 5).value() == 0x8000'0005);
}

TEST_CASE("iommu_unmap_fast leaves the invalidation to the caller") {
  UserDomain f;
  Domain& d = *f.domain;
  REQUIRE(iommu_map(d, 0, 0x4000'0000, 4 * SZ_16K, RW).ok());
  IotlbGather gather;
  CHECK(iommu_unmap_fast(d, 0, 2 * SZ_16K, gather).value() == 2 * SZ_16K);
  CHECK(iommu_unmap_fast(d, 2 * SZ_16K, 2 * SZ_16K, gather).value() == 2 * SZ_16K);
  CHECK(f.fake.iotlb_syncs == 0);
  iommu_iotlb_sync(d, gather);
  CHECK(f.fake.iotlb_syncs == 1);
  CHECK(gather.empty());
  const std::vector<Invalidation> inv = f.fake.invalidations();
  REQUIRE(inv.size() == 1);
  CHECK(inv[0].end == 4 * SZ_16K - 1);
  iommu_flush_iotlb_all(d);
  CHECK(f.fake.flush_alls == 1);
}

// ---- Reserved regions ----

FakeIommu::Options with_resv() {
  return {
      .resv = {
          {.start = 0x0800'0000,
           .length = SZ_1M,
           .prot = RW | IOMMU_MMIO,
           .type = ResvType::sw_msi},
          {.start = 0x0010'0000, .length = 4 * SZ_16K, .prot = RW, .type = ResvType::direct},
          {.start = 0x0020'0000, .length = SZ_16K, .prot = RW, .type = ResvType::direct_relaxable},
          {.start = 0xf000'0000, .length = 16 * SZ_1M, .type = ResvType::reserved},
      }};
}

TEST_CASE("ReservedRegions: bad regions, duplicates, a full set, and a probe it fails") {
  ReservedRegions set;
  CHECK(code_of(set.add({.start = 0x1000, .length = 0})) == -EINVAL);
  CHECK(code_of(set.add({.start = ~uint64_t{0} - 0xfff, .length = 0x2000})) == -EINVAL);
  REQUIRE(set.add({.start = 0x1000, .length = 0x1000, .type = ResvType::msi}).ok());
  REQUIRE(set.add({.start = 0x1000, .length = 0x1000, .type = ResvType::msi}).ok());
  CHECK(set.size() == 1);  // kept once
  // Same window, another type: a second region.
  REQUIRE(set.add({.start = 0x1000, .length = 0x1000, .type = ResvType::reserved}).ok());
  CHECK(set.size() == 2);
  CHECK(set.find_overlap(0x1fff, 1, resv_mask(ResvType::msi)) == &set[0]);
  CHECK(set.find_overlap(0x2000, 1, kResvNoMap) == nullptr);
  CHECK(set.find_overlap(0x1000, 0, kResvNoMap) == nullptr);  // an empty range touches nothing
  for (uint64_t i = set.size(); i < ReservedRegions::kMax; i++)
    REQUIRE(set.add({.start = 0x10'0000 * (i + 1), .length = 0x1000}).ok());
  CHECK(code_of(set.add({.start = 0xdead'0000, .length = 0x1000})) == -ENOSPC);
  CHECK(set.size() == ReservedRegions::kMax);

  // A driver reporting more regions than a set holds fails the probe, cleanly.
  FakeIommu::Options opts;
  for (unsigned i = 0; i <= ReservedRegions::kMax; i++)
    opts.resv.push_back({.start = 0x10'0000 * (i + 1), .length = SZ_16K});
  CoreFixture f(std::move(opts));
  Device d(f.desc("d"));
  CHECK(code_of(iommu_probe_device(d)) == -ENOSPC);
  CHECK(d.group() == nullptr);
  CHECK(!f.fake.probed(d));
}

TEST_CASE("user domains refuse maps over the group's reserved regions") {
  UserDomain f(with_resv());
  Domain& d = *f.domain;
  CHECK(code_of(iommu_map(d, 0x0800'0000, 0x4000'0000, SZ_16K, RW)) == -EADDRINUSE);
  CHECK(code_of(iommu_map(d, 0x0800'0000 + SZ_1M - SZ_16K, 0x4000'0000, 2 * SZ_16K, RW)) ==
        -EADDRINUSE);  // overlapping its last page
  CHECK(code_of(iommu_map(d, 0x0010'0000, 0x0010'0000, SZ_16K, RW)) == -EADDRINUSE);
  CHECK(code_of(iommu_map(d, 0xf000'0000, 0x4000'0000, SZ_32M, RW)) == -EADDRINUSE);
  CHECK(f.fake.page_calls().empty());
  // A relaxable direct region may be given up for a user, and right next to a window is fine.
  CHECK(iommu_map(d, 0x0020'0000, 0x4000'0000, SZ_16K, RW).ok());
  CHECK(iommu_map(d, 0x0800'0000 + SZ_1M, 0x4000'0000, SZ_16K, RW).ok());
  CHECK(iommu_map(d, 0x0800'0000 - SZ_16K, 0x4000'0000, SZ_16K, RW).ok());
}

TEST_CASE("a domain that maps a group's reserved region cannot take the group") {
  CoreFixture f(with_resv());
  Box<Domain> domain;
  ProbedDevice dev(f.desc("d"));
  Group& group = *dev.dev.group();
  domain = iommu_paging_domain_alloc(dev.dev).release_value();
  // Not attached to anything yet: nothing to honour.
  REQUIRE(iommu_map(*domain, 0x0800'0000 + SZ_16K, 0x4000'0000, SZ_16K, RW).ok());
  REQUIRE(iommu_group_claim_dma_owner(group, &f).ok());
  const Domain* blocked = f.fake.installed(dev.dev);
  CHECK(code_of(iommu_attach_group(*domain, group)) == -EADDRINUSE);
  CHECK(f.fake.installed(dev.dev) == blocked);
  REQUIRE(iommu_unmap(*domain, 0x0800'0000 + SZ_16K, SZ_16K).ok());
  REQUIRE(iommu_attach_group(*domain, group).ok());
  CHECK(code_of(iommu_map(*domain, 0x0800'0000, 0x4000'0000, SZ_16K, RW)) == -EADDRINUSE);
  // Detached, the domain is free of the group's regions again.
  iommu_detach_group(*domain, group);
  CHECK(iommu_map(*domain, 0x0800'0000, 0x4000'0000, SZ_16K, RW).ok());
  iommu_group_release_dma_owner(group);
}

TEST_CASE("a device joining a group on a user domain brings its regions, or stays out") {
  CoreFixture f({.device_resv = {
                     {"b", {{.start = 0x0900'0000, .length = SZ_1M, .type = ResvType::sw_msi}}}}});
  Box<Domain> user;
  PciDev rp{.bus = 0, .devfn = 0x08, .type = PciType::root_port, .secondary_bus = 1};
  PciDev a{.bus = 1, .devfn = 0x00, .upstream = &rp}, b{.bus = 1, .devfn = 0x08, .upstream = &rp};
  ProbedDevice da(f.desc("a", &a));
  Group& group = *da.dev.group();
  user = iommu_paging_domain_alloc(da.dev).release_value();
  REQUIRE(iommu_group_claim_dma_owner(group, &f).ok());
  REQUIRE(iommu_attach_group(*user, group).ok());
  REQUIRE(iommu_map(*user, 0x0900'0000, 0x4000'0000, SZ_16K, RW).ok());
  Device db(f.desc("b", &b));
  CHECK(code_of(iommu_probe_device(db)) == -EADDRINUSE);
  CHECK(db.group() == nullptr);
  REQUIRE(iommu_unmap(*user, 0x0900'0000, SZ_16K).value() == SZ_16K);
  REQUIRE(iommu_probe_device(db).ok());
  CHECK(f.fake.installed(db) == user.get());
  CHECK(code_of(iommu_map(*user, 0x0900'0000, 0x4000'0000, SZ_16K, RW)) == -EADDRINUSE);
  iommu_release_device(db);
  iommu_group_release_dma_owner(group);
}

TEST_CASE("a group on a nested domain constrains the parent's stage 2") {
  CoreFixture f(with_resv());
  Box<Domain> parent, nested;
  ProbedDevice dev(f.desc("d"));
  Group& group = *dev.dev.group();
  parent = iommu_paging_domain_alloc(dev.dev, IOMMU_DOMAIN_ALLOC_NEST_PARENT).release_value();
  const uint64_t ste = 1;
  nested = iommu_domain_alloc_nested(dev.dev, *parent, &ste, sizeof(ste)).release_value();
  REQUIRE(iommu_group_claim_dma_owner(group, &f).ok());
  // The guest's stage 1 hands out what it likes; the host's stage 2 must leave the group's
  // windows alone, or a guest address would reach the doorbell's IPA through it.
  REQUIRE(iommu_map(*parent, 0x0800'0000, 0x4000'0000, SZ_16K, RW).ok());
  CHECK(code_of(iommu_attach_group(*nested, group)) == -EADDRINUSE);
  REQUIRE(iommu_unmap(*parent, 0x0800'0000, SZ_16K).value() == SZ_16K);
  REQUIRE(iommu_attach_group(*nested, group).ok());
  CHECK(code_of(iommu_map(*parent, 0x0800'0000, 0x4000'0000, SZ_16K, RW)) == -EADDRINUSE);
  CHECK(iommu_map(*parent, 0x0900'0000, 0x4000'0000, SZ_16K, RW).ok());
  iommu_group_release_dma_owner(group);
  CHECK(iommu_map(*parent, 0x0800'0000, 0x4000'0000, SZ_16K, RW).ok());
  nested.reset();
}

TEST_CASE("probe identity-maps direct regions in the default DMA domain, once per group") {
  CoreFixture f(with_resv());
  PciDev rp{.bus = 0, .devfn = 0x08, .type = PciType::root_port, .secondary_bus = 1};
  PciDev a{.bus = 1, .devfn = 0x00, .upstream = &rp}, b{.bus = 1, .devfn = 0x08, .upstream = &rp};
  ProbedDevice da(f.desc("a", &a));
  Domain& def = *iommu_get_domain_for_dev(da.dev);
  REQUIRE(def.type() == DomainType::dma);
  for (uint64_t off = 0; off < 4 * SZ_16K; off += SZ_16K)
    CHECK(iommu_iova_to_phys(def, 0x0010'0000 + off).value() == 0x0010'0000 + off);
  CHECK(iommu_iova_to_phys(def, 0x0020'0000).value() == 0x0020'0000);
  // Windows that are not direct stay unmapped.
  CHECK(code_of(iommu_iova_to_phys(def, 0x0800'0000)) == -ENOENT);
  // A second device of the group (no ACS at the root port) finds them mapped already.
  f.fake.clear_page_calls();
  ProbedDevice db(f.desc("b", &b));
  CHECK(db.dev.group() == da.dev.group());
  CHECK(f.fake.page_calls().empty());
  CHECK(da.dev.group()->reserved_regions().size() == 4);  // the same regions, kept once
}

TEST_CASE("a direct region the default domain cannot map fails the probe whole") {
  FakeIommu::Options opts = with_resv();
  opts.resv.push_back(
      {.start = 0x0030'0000, .length = SZ_16K, .prot = RW, .type = ResvType::direct});
  CoreFixture f(std::move(opts));
  PciDev rp{.bus = 0, .devfn = 0x08, .type = PciType::root_port, .secondary_bus = 1};
  PciDev a{.bus = 1, .devfn = 0x00, .upstream = &rp}, b{.bus = 1, .devfn = 0x08, .upstream = &rp};
  ProbedDevice da(f.desc("a", &a));
  Domain& def = *iommu_get_domain_for_dev(da.dev);
  // Someone took the second device's direct page for something else.
  REQUIRE(iommu_unmap(def, 0x0030'0000, SZ_16K).value() == SZ_16K);
  REQUIRE(iommu_map(def, 0x0030'0000, 0x4000'0000, SZ_16K, RW).ok());
  Device dbd(f.desc("b", &b));
  CHECK(code_of(iommu_probe_device(dbd)) == -EEXIST);
  CHECK(dbd.group() == nullptr);
  CHECK(da.dev.group()->nr_devices() == 1);
  CHECK(iommu_iova_to_phys(def, 0x0010'0000).value() == 0x0010'0000);  // a's stay
}

}  // namespace
}  // namespace strata
