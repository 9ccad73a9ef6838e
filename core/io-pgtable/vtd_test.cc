// SPDX-License-Identifier: MIT
// VT-d second-stage and first-stage tables through io-pgtable: configuration, golden entry bits
// (typed in from the VT-d spec's second-stage entry and the SDM's x86-64 paging entry),
// levels, super pages, dirty state.
#include <doctest/doctest.h>

#include <memory>
#include <vector>

#include "core/io-pgtable/io_pgtable.h"
#include "testing/models/platform/platform.h"

namespace strata {
namespace {

struct Fixture {
  Fixture() : platform(sim::Platform::create().release_value()) {}
  IoPgtableCfg cfg(unsigned ias, uint64_t pgsizes = SZ_4K | SZ_2M | SZ_1G) {
    IoPgtableCfg c;
    c.pgsize_bitmap = pgsizes;
    c.ias = ias;
    c.oas = 48;
    c.dma = &platform->dma();
    return c;
  }
  // The entry a VT-d walker reads for `iova` at `level` (1 = leaf table), from the root.
  uint64_t entry(uint64_t root, unsigned levels, uint64_t iova, unsigned level) {
    uint64_t table = root;
    for (unsigned l = levels;; l--) {
      const uint64_t idx = (iova >> (12 + 9 * (l - 1))) & 511;
      const uint64_t e = platform->mem().read64(table + idx * 8).value();
      if (l == level) return e;
      table = e & 0x000ffffffffff000;  // ADDR[51:12]
    }
  }
  std::unique_ptr<sim::Platform> platform;
};

struct Recorder : DirtyBitmap {
  void record(uint64_t iova, uint64_t size) override { ranges.push_back({iova, size}); }
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
};

TEST_CASE_FIXTURE(Fixture, "second stage: levels from the address width; invalid configs") {
  for (auto [ias, levels] : {std::pair{39u, 3u}, {48u, 4u}, {57u, 5u}}) {
    auto c = cfg(ias);
    auto pt = IoPgtable::alloc(IoPgtableFmt::intel_vtd_sl, c);
    REQUIRE(pt.ok());
    CHECK(c.vtd.levels == levels);
    CHECK(c.vtd.pgd % 4096 == 0);
    CHECK(c.pgsize_bitmap == (SZ_4K | SZ_2M | SZ_1G));
  }
  auto bad_width = cfg(40);
  CHECK(IoPgtable::alloc(IoPgtableFmt::intel_vtd_sl, bad_width).error().code() == -EINVAL);
  auto no_4k = cfg(48, SZ_2M);
  CHECK(IoPgtable::alloc(IoPgtableFmt::intel_vtd_sl, no_4k).error().code() == -EINVAL);
  auto fl3 = cfg(39);  // x86-64 paging has no 3-level form
  CHECK(IoPgtable::alloc(IoPgtableFmt::intel_vtd_fl, fl3).error().code() == -EINVAL);
  auto no_dma = cfg(48);
  no_dma.dma = nullptr;
  CHECK(IoPgtable::alloc(IoPgtableFmt::intel_vtd_sl, no_dma).error().code() == -EINVAL);
  // Super pages are only those offered (SLLPS).
  auto only_2m = cfg(48, SZ_4K | SZ_2M);
  Box<IoPgtable> pt = IoPgtable::alloc(IoPgtableFmt::intel_vtd_sl, only_2m).release_value();
  CHECK(only_2m.pgsize_bitmap == (SZ_4K | SZ_2M));
  CHECK(pt->map_pages(0x40000000, 0x40000000, SZ_1G, 1, IOMMU_READ).error().code() == -EINVAL);
}

TEST_CASE_FIXTURE(Fixture, "second stage: golden leaf and non-leaf entries") {
  auto c = cfg(48);
  Box<IoPgtable> pt = IoPgtable::alloc(IoPgtableFmt::intel_vtd_sl, c).release_value();
  REQUIRE(pt->map_pages(0x7654000, 0x123456000, SZ_4K, 1, IOMMU_READ | IOMMU_WRITE).ok());
  // 4K leaf: ADDR[51:12] = 0x123456000, W (bit 1), R (bit 0).
  CHECK(entry(c.vtd.pgd, 4, 0x7654000, 1) == 0x0000000123456003);
  // Non-leaf entries: next table's address, R and W, PS clear.
  const uint64_t pde = entry(c.vtd.pgd, 4, 0x7654000, 2);
  CHECK((pde & 0xfff) == 0x003);
  CHECK(pt->iova_to_phys(0x7654321).value() == 0x123456321);

  // 2M super page, read-only: PS (bit 7) | R.
  REQUIRE(pt->map_pages(0x40000000, 0x80200000, SZ_2M, 1, IOMMU_READ).ok());
  CHECK(entry(c.vtd.pgd, 4, 0x40000000, 2) == 0x0000000080200081);
  // 1G super page, write-only: PS | W.
  REQUIRE(pt->map_pages(0x80000000, 0xc0000000, SZ_1G, 1, IOMMU_WRITE).ok());
  CHECK(entry(c.vtd.pgd, 4, 0x80000000, 3) == 0x00000000c0000082);
  CHECK(pt->iova_to_phys(0x80000000 + 0x12345678).value() == 0xc0000000 + 0x12345678);
}

TEST_CASE_FIXTURE(Fixture, "second stage: 5 levels reach the top of a 57-bit space; 3 stop at 39") {
  auto c5 = cfg(57);
  Box<IoPgtable> pt5 = IoPgtable::alloc(IoPgtableFmt::intel_vtd_sl, c5).release_value();
  const uint64_t top = (uint64_t{1} << 57) - SZ_4K;
  REQUIRE(pt5->map_pages(top, 0x5000, SZ_4K, 1, IOMMU_READ).ok());
  CHECK(pt5->iova_to_phys(top + 7).value() == 0x5007);
  CHECK(entry(c5.vtd.pgd, 5, top, 1) == 0x5001);
  CHECK(pt5->map_pages(uint64_t{1} << 57, 0x5000, SZ_4K, 1, IOMMU_READ).error().code() == -ERANGE);

  auto c3 = cfg(39);
  Box<IoPgtable> pt3 = IoPgtable::alloc(IoPgtableFmt::intel_vtd_sl, c3).release_value();
  // A request running past the last table maps up to its end (the caller loops and is then
  // refused at the boundary).
  CHECK(pt3->map_pages((uint64_t{1} << 39) - SZ_2M, 0x200000, SZ_2M, 2, IOMMU_READ).value() ==
        SZ_2M);
  CHECK(pt3->map_pages(uint64_t{1} << 39, 0x5000, SZ_4K, 1, IOMMU_READ).error().code() == -ERANGE);
  // The 2M block covers the last 4K page of the space: mapping it is -EEXIST.
  CHECK(pt3->map_pages((uint64_t{1} << 39) - SZ_4K, 0x5000, SZ_4K, 1, IOMMU_READ).error().code() ==
        -EEXIST);
}

TEST_CASE_FIXTURE(Fixture, "second stage: dirty bits set by the hardware are read and cleared") {
  auto c = cfg(48);
  Box<IoPgtable> pt = IoPgtable::alloc(IoPgtableFmt::intel_vtd_sl, c).release_value();
  REQUIRE(pt->map_pages(0x100000, 0x200000, SZ_4K, 8, IOMMU_READ | IOMMU_WRITE).ok());
  Recorder none;
  REQUIRE(pt->read_and_clear_dirty(0x100000, 8 * SZ_4K, 0, none).ok());
  CHECK(none.ranges.empty());

  // The hardware sets D (bit 9) on pages 2 and 5, as with second-stage A/D enabled.
  for (uint64_t page : {2, 5}) {
    const uint64_t iova = 0x100000 + page * SZ_4K;
    const uint64_t pte = entry(c.vtd.pgd, 4, iova, 1);
    const uint64_t table = entry(c.vtd.pgd, 4, iova, 2) & 0x000ffffffffff000;
    REQUIRE(platform->mem().write64(table + ((iova >> 12) & 511) * 8, pte | (1 << 9)).ok());
  }
  Recorder peek;
  REQUIRE(pt->read_and_clear_dirty(0x100000, 8 * SZ_4K, IOMMU_DIRTY_NO_CLEAR, peek).ok());
  CHECK(peek.ranges.size() == 2);
  Recorder got;
  REQUIRE(pt->read_and_clear_dirty(0x100000, 8 * SZ_4K, 0, got).ok());
  REQUIRE(got.ranges.size() == 2);
  CHECK(got.ranges[0] == std::pair<uint64_t, uint64_t>{0x102000, SZ_4K});
  CHECK(got.ranges[1] == std::pair<uint64_t, uint64_t>{0x105000, SZ_4K});
  CHECK((entry(c.vtd.pgd, 4, 0x102000, 1) & (1 << 9)) == 0);
  Recorder after;
  REQUIRE(pt->read_and_clear_dirty(0x100000, 8 * SZ_4K, 0, after).ok());
  CHECK(after.ranges.empty());
  CHECK(pt->read_and_clear_dirty(0x100000, 0, 0, after).error().code() == -EINVAL);
}

TEST_CASE_FIXTURE(Fixture, "first stage: golden x86-64 paging entries") {
  auto c = cfg(48);
  Box<IoPgtable> pt = IoPgtable::alloc(IoPgtableFmt::intel_vtd_fl, c).release_value();
  CHECK(c.vtd.levels == 4);
  REQUIRE(pt->map_pages(0x7654000, 0xabcde000, SZ_4K, 1, IOMMU_READ | IOMMU_WRITE).ok());
  // P | R/W | U/S | A (bit 5) | D (bit 6): accessed and dirty set up front.
  CHECK(entry(c.vtd.pgd, 4, 0x7654000, 1) == 0x00000000abcde067);
  // Non-leaf: P | R/W | U/S | A, PS clear.
  CHECK((entry(c.vtd.pgd, 4, 0x7654000, 2) & 0xfff) == 0x027);
  // Read-only, privileged-only, no-execute 1G page: P | A | PS (bit 7) | XD (bit 63).
  REQUIRE(
      pt->map_pages(0x40000000, 0x80000000, SZ_1G, 1, IOMMU_READ | IOMMU_PRIV | IOMMU_NOEXEC).ok());
  CHECK(entry(c.vtd.pgd, 4, 0x40000000, 3) == 0x80000000800000a1);

  // With dirty tracking the hardware sets D: writable leaves start clean.
  auto cd = cfg(57);
  cd.quirks = IO_PGTABLE_QUIRK_DIRTY;
  Box<IoPgtable> ptd = IoPgtable::alloc(IoPgtableFmt::intel_vtd_fl, cd).release_value();
  CHECK(cd.vtd.levels == 5);
  REQUIRE(ptd->map_pages(0x1000, 0x2000, SZ_4K, 1, IOMMU_READ | IOMMU_WRITE).ok());
  CHECK(entry(cd.vtd.pgd, 5, 0x1000, 1) == 0x2027);
}

}  // namespace
}  // namespace strata
