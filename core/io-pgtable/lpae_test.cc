// SPDX-License-Identifier: MIT
// LPAE stage 1 and stage 2 through io-pgtable: configuration, golden descriptor bits (typed in
// from the Arm ARM's descriptor layout), map/unmap/lookup at every page size.
#include <doctest/doctest.h>

#include <memory>

#include "arch/dma.h"
#include "core/io-pgtable/io_pgtable.h"
#include "testing/models/platform/platform.h"

namespace strata {
namespace {

struct Fixture {
  Fixture() : platform(sim::Platform::create().release_value()) {}
  IoPgtableCfg s1_cfg(uint64_t pgsizes = SZ_4K | SZ_2M | SZ_1G, unsigned ias = 48,
                      unsigned oas = 48) {
    IoPgtableCfg cfg;
    cfg.pgsize_bitmap = pgsizes;
    cfg.ias = ias;
    cfg.oas = oas;
    cfg.dma = &platform->dma();
    return cfg;
  }
  // The raw descriptor the walker would read for `iova` at `depth` (from the root, by phys).
  uint64_t pte(uint64_t root_phys, unsigned g, unsigned levels, unsigned root_bits, uint64_t iova,
               unsigned depth) {
    uint64_t table = root_phys;
    for (unsigned d = 0;; d++) {
      const unsigned bits = d == 0 ? root_bits : g - 3;
      const unsigned shift = g + (levels - 1 - d) * (g - 3);
      const uint64_t idx = (iova >> shift) & ((uint64_t{1} << bits) - 1);
      const uint64_t e = platform->mem().read64(table + idx * 8).value();
      if (d == depth) return e;
      table = e & 0x0000fffffffff000 & ~((uint64_t{1} << g) - 1);
    }
  }
  std::unique_ptr<sim::Platform> platform;
};

TEST_CASE_FIXTURE(Fixture, "stage-1 4K config: narrowed sizes and TCR/MAIR outputs") {
  auto cfg = s1_cfg(SZ_4K | SZ_16K | SZ_2M | SZ_1G | SZ_512M);
  auto pt = IoPgtable::alloc(IoPgtableFmt::arm_64_lpae_s1, cfg);
  REQUIRE(pt.ok());
  CHECK(cfg.pgsize_bitmap == (SZ_4K | SZ_2M | SZ_1G));
  CHECK(cfg.arm_lpae_s1.t0sz == 16);
  CHECK(cfg.arm_lpae_s1.tg0 == 0);
  CHECK(cfg.arm_lpae_s1.ips == 5);    // 48 bits
  CHECK(cfg.arm_lpae_s1.sh0 == 3);    // inner shareable walks (coherent)
  CHECK(cfg.arm_lpae_s1.irgn0 == 1);  // write-back write-allocate
  CHECK(cfg.arm_lpae_s1.mair == 0x04ff44);
  CHECK(cfg.arm_lpae_s1.ttbr % 4096 == 0);
}

TEST_CASE_FIXTURE(Fixture, "stage-1 4K page: golden bits, lookup, -EEXIST, unmap with gather") {
  auto cfg = s1_cfg();
  Box<IoPgtable> pt = IoPgtable::alloc(IoPgtableFmt::arm_64_lpae_s1, cfg).release_value();
  const uint64_t ttbr = cfg.arm_lpae_s1.ttbr;

  auto m = pt->map_pages(0x12345000, 0x80001000, SZ_4K, 1, IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE);
  REQUIRE(m.ok());
  CHECK(m.value() == SZ_4K);
  // Page descriptor, typed from the Arm ARM layout: OA 0x80001000 | UXN/PXN clear | nG (bit 11)
  // | AF (bit 10) | SH = 0b11 (bits 9:8) | AP = 0b01 (bit 6, EL0 access, writable) |
  // AttrIndx = 1 (bits 4:2) | type 0b11.
  CHECK(pte(ttbr, 12, 4, 9, 0x12345000, 3) == 0x0000000080001f47);
  // The table descriptors above it: type 0b11 and the next table's address.
  CHECK((pte(ttbr, 12, 4, 9, 0x12345000, 0) & 0x3) == 0x3);
  CHECK(pt->iova_to_phys(0x12345abc).value() == 0x80001abc);
  CHECK(pt->iova_to_phys(0x12346000).error().code() == -ENOENT);

  // Mapping over it changes nothing.
  CHECK(pt->map_pages(0x12344000, 0x90000000, SZ_4K, 4, IOMMU_READ).error().code() == -EEXIST);
  CHECK(pt->iova_to_phys(0x12344000).error().code() == -ENOENT);
  CHECK(pt->iova_to_phys(0x12345000).value() == 0x80001000);

  IotlbGather gather;
  auto u = pt->unmap_pages(0x12345000, SZ_4K, 1, gather);
  REQUIRE(u.ok());
  CHECK(u.value() == SZ_4K);
  CHECK(gather.start() == 0x12345000);
  CHECK(gather.end() == 0x12345fff);
  CHECK(gather.granule() == SZ_4K);
  CHECK(gather.leaf_only());
  CHECK(pte(ttbr, 12, 4, 9, 0x12345000, 3) == 0);
  CHECK(pt->iova_to_phys(0x12345000).error().code() == -ENOENT);
}

TEST_CASE_FIXTURE(Fixture, "512 pages per call fill one leaf table; blocks; table teardown") {
  auto cfg = s1_cfg();
  Box<IoPgtable> pt = IoPgtable::alloc(IoPgtableFmt::arm_64_lpae_s1, cfg).release_value();
  const long before = static_cast<long>(platform->dma().live_allocations());

  // 512 pages from 0x40000000: exactly one leaf table.
  CHECK(pt->map_pages(0x40000000, 0x100000000, SZ_4K, 512, IOMMU_READ).value() == SZ_2M);
  // Overlapping the filled table is refused; a request running past a table maps to its end.
  CHECK(pt->map_pages(0x401ff000, 0x200000000, SZ_4K, 4, IOMMU_READ).error().code() == -EEXIST);
  CHECK(pt->map_pages(0x405fe000, 0x200000000, SZ_4K, 4, IOMMU_READ).value() == 2 * SZ_4K);
  for (uint64_t off : {0ul, 0x1000ul, 0x1ff000ul})
    CHECK(pt->iova_to_phys(0x40000000 + off).value() == 0x100000000 + off);

  // A 2M block and a 1G block.
  CHECK(pt->map_pages(0x80000000, 0x300000000, SZ_2M, 1, IOMMU_READ).value() == SZ_2M);
  CHECK(pt->map_pages(0xc0000000, 0x400000000, SZ_1G, 1, IOMMU_WRITE).value() == SZ_1G);
  CHECK(pt->iova_to_phys(0x801fffff).value() == 0x3001fffff);
  CHECK(pt->iova_to_phys(0xc1234567).value() == 0x401234567);
  // Block descriptors: type 0b01.
  CHECK((pte(cfg.arm_lpae_s1.ttbr, 12, 4, 9, 0x80000000, 2) & 3) == 1);
  CHECK((pte(cfg.arm_lpae_s1.ttbr, 12, 4, 9, 0xc0000000, 1) & 3) == 1);

  // Unmapping 4K inside a block would cut it: refused, nothing changes.
  IotlbGather gather;
  CHECK(pt->unmap_pages(0x80001000, SZ_4K, 1, gather).error().code() == -EINVAL);
  CHECK(gather.empty());
  CHECK(pt->iova_to_phys(0x80001000).value() == 0x300001000);

  // Unmapping the 2M range at 0x40000000 as a block removes the whole leaf table: walk caches
  // must go, and the page is freed only after release_freelist().
  CHECK(pt->unmap_pages(0x40000000, SZ_2M, 1, gather).value() == SZ_2M);
  CHECK_FALSE(gather.leaf_only());
  CHECK(pt->iova_to_phys(0x40000000).error().code() == -ENOENT);
  const auto live = platform->dma().live_allocations();
  gather.release_freelist();
  CHECK(platform->dma().live_allocations() == live - 1);
  (void)before;
}

}  // namespace
}  // namespace strata
