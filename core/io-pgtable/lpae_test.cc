// SPDX-License-Identifier: MIT
// LPAE stage 1 and stage 2 through io-pgtable: configuration, golden descriptor bits (typed in
// from the Arm ARM's descriptor layout), map/unmap/lookup at every page size.
#include <doctest/doctest.h>

#include <memory>
#include <vector>

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
}

struct Recorder : DirtyBitmap {
  void record(uint64_t iova, uint64_t size) override { ranges.push_back({iova, size}); }
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
};

TEST_CASE_FIXTURE(Fixture, "impossible configurations are refused") {
  const IoPgtableFmt s1 = IoPgtableFmt::arm_64_lpae_s1;
  auto ias31 = s1_cfg(SZ_4K, 31);
  CHECK(IoPgtable::alloc(s1, ias31).error().code() == -EINVAL);
  auto ias49 = s1_cfg(SZ_4K, 49);
  CHECK(IoPgtable::alloc(s1, ias49).error().code() == -EINVAL);
  auto oas50 = s1_cfg(SZ_4K, 48, 50);  // not an IPS encoding
  CHECK(IoPgtable::alloc(s1, oas50).error().code() == -EINVAL);
  auto oas52_4k = s1_cfg(SZ_4K, 48, 52);  // 52-bit OA needs the 64K granule here
  CHECK(IoPgtable::alloc(s1, oas52_4k).error().code() == -EINVAL);
  auto no_granule = s1_cfg(SZ_2M | SZ_1G);
  CHECK(IoPgtable::alloc(s1, no_granule).error().code() == -EINVAL);
  auto no_dma = s1_cfg();
  no_dma.dma = nullptr;
  CHECK(IoPgtable::alloc(s1, no_dma).error().code() == -EINVAL);
  // Nothing was left allocated by the refusals.
  CHECK(platform->dma().live_allocations() == 0);
}

TEST_CASE_FIXTURE(Fixture, "bad arguments are -EINVAL and change nothing") {
  auto cfg = s1_cfg(SZ_4K | SZ_2M, 39);
  Box<IoPgtable> pt = IoPgtable::alloc(IoPgtableFmt::arm_64_lpae_s1, cfg).release_value();
  const int rw = IOMMU_READ | IOMMU_WRITE;
  CHECK(pt->map_pages(0x1000, 0x2000, SZ_1G, 1, rw).error().code() == -EINVAL);  // size not offered
  CHECK(pt->map_pages(0x1000, 0x2000, 3 * SZ_4K, 1, rw).error().code() ==
        -EINVAL);                                                                // not a power of 2
  CHECK(pt->map_pages(0x1800, 0x2000, SZ_4K, 1, rw).error().code() == -EINVAL);  // iova misaligned
  CHECK(pt->map_pages(0x1000, 0x2800, SZ_4K, 1, rw).error().code() == -EINVAL);  // pa misaligned
  CHECK(pt->map_pages(0x1000, 0x2000, SZ_4K, 0, rw).error().code() == -EINVAL);  // no pages
  CHECK(pt->map_pages(0x1000, 0x2000, SZ_4K, 1, 0).error().code() == -EINVAL);   // no access
  // Beyond the input or output size: -ERANGE, as Linux.
  CHECK(pt->map_pages(uint64_t{1} << 39, 0x2000, SZ_4K, 1, rw).error().code() == -ERANGE);
  CHECK(pt->map_pages(0x1000, uint64_t{1} << 48, SZ_4K, 1, rw).error().code() == -ERANGE);
  CHECK(pt->map_pages(0x1000, (uint64_t{1} << 48) - SZ_4K, SZ_4K, 2, rw).error().code() == -ERANGE);
  IotlbGather gather;
  CHECK(pt->unmap_pages(0x1800, SZ_4K, 1, gather).error().code() == -EINVAL);
  CHECK(pt->unmap_pages(uint64_t{1} << 40, SZ_4K, 1, gather).error().code() == -ERANGE);
  CHECK(pt->iova_to_phys(uint64_t{1} << 39).error().code() == -ERANGE);
  // Unmapping a hole unmaps nothing and records nothing.
  CHECK(pt->unmap_pages(0x1000, SZ_4K, 1, gather).value() == 0);
  CHECK(gather.empty());
  CHECK(pt->iova_to_phys(0x1000).error().code() == -ENOENT);
}

TEST_CASE_FIXTURE(Fixture, "16K granule: 2-entry level-0 root, 16K pages and 32M blocks") {
  auto cfg = s1_cfg(SZ_16K | SZ_32M);
  Box<IoPgtable> pt = IoPgtable::alloc(IoPgtableFmt::arm_64_lpae_s1, cfg).release_value();
  CHECK(cfg.pgsize_bitmap == (SZ_16K | SZ_32M));
  CHECK(cfg.arm_lpae_s1.tg0 == 2);
  // 48 bits with 16K: levels 0..3, level 0 indexes one bit (47).
  REQUIRE(pt->map_pages(0x800000004000, 0x12340000, SZ_16K, 1, IOMMU_READ).ok());
  CHECK(pt->iova_to_phys(0x800000004abc).value() == 0x12340abc);
  // Page: OA | nG | AF | SH outer (no IOMMU_CACHE: 0b10) | AP = 0b11 (read-only, EL0) |
  // AttrIndx 0 (non-cacheable) | 0b11.
  CHECK(pte(cfg.arm_lpae_s1.ttbr, 14, 4, 1, 0x800000004000, 3) == 0x0000000012340ec3);
  REQUIRE(pt->map_pages(0x2000000, 0x4000000, SZ_32M, 1, IOMMU_READ | IOMMU_WRITE).ok());
  CHECK((pte(cfg.arm_lpae_s1.ttbr, 14, 4, 1, 0x2000000, 2) & 3) == 1);  // block
  CHECK(pt->iova_to_phys(0x3ffffff).value() == 0x5ffffff);
}

TEST_CASE_FIXTURE(Fixture, "64K granule with a 52-bit output: OA[51:48] in bits 15:12") {
  auto cfg = s1_cfg(SZ_64K | SZ_512M, 48, 52);
  Box<IoPgtable> pt = IoPgtable::alloc(IoPgtableFmt::arm_64_lpae_s1, cfg).release_value();
  CHECK(cfg.arm_lpae_s1.tg0 == 1);
  CHECK(cfg.arm_lpae_s1.ips == 6);
  const uint64_t pa = 0x000f123456780000;  // above 2^48
  REQUIRE(pt->map_pages(0x10000, pa, SZ_64K, 3, IOMMU_READ | IOMMU_CACHE).value() == 3 * SZ_64K);
  // OA[47:16] = 0x12345678 in place, OA[51:48] = 0xf in bits 15:12, nG | AF | SH inner |
  // AP 0b11 | AttrIndx 1 | 0b11.
  CHECK(pte(cfg.arm_lpae_s1.ttbr, 16, 3, 6, 0x10000, 2) == 0x000012345678ffc7);
  CHECK(pt->iova_to_phys(0x10000 + 0x1234).value() == pa + 0x1234);
  // Consecutive pages: the 52-bit form is not linear, so each entry is built on its own.
  CHECK(pt->iova_to_phys(0x30000).value() == pa + 2 * SZ_64K);
}

TEST_CASE_FIXTURE(Fixture, "stage 2: concatenated start tables, SL0 and golden descriptors") {
  IoPgtableCfg cfg = s1_cfg(SZ_4K | SZ_2M | SZ_1G, 40, 40);
  Box<IoPgtable> pt = IoPgtable::alloc(IoPgtableFmt::arm_64_lpae_s2, cfg).release_value();
  // 40 bits with 4K would start at level 0 with 2 entries: instead two concatenated level-1
  // tables (8 KiB, aligned to 8 KiB), SL0 = 1 (4K: start level = 2 - SL0).
  CHECK(cfg.arm_lpae_s2.concat == 2);
  CHECK(cfg.arm_lpae_s2.sl0 == 1);
  CHECK(cfg.arm_lpae_s2.t0sz == 24);
  CHECK(cfg.arm_lpae_s2.ps == 2);
  CHECK(cfg.arm_lpae_s2.vttbr % 8192 == 0);
  REQUIRE(pt->map_pages(0x8000000000 - SZ_4K, 0x87654000, SZ_4K, 1,
                        IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE)
              .ok());
  // OA | AF | SH inner | S2AP read+write (bits 7:6) | MemAttr 0xf (bits 5:2) | page.
  CHECK(pte(cfg.arm_lpae_s2.vttbr, 12, 3, 10, 0x8000000000 - SZ_4K, 2) == 0x00000000876547ff);
  // Device memory, read-only, no execute: XN = 0b10 (bit 54), MemAttr 0x1, SH outer.
  REQUIRE(
      pt->map_pages(0x40000000, 0x9000000, SZ_2M, 1, IOMMU_READ | IOMMU_MMIO | IOMMU_NOEXEC).ok());
  CHECK(pte(cfg.arm_lpae_s2.vttbr, 12, 3, 10, 0x40000000, 1) == 0x0040000009000645);
  CHECK(pt->iova_to_phys(0x8000000000 - 1).value() == 0x87654fff);

  // 48 bits: a full level-0 table, no concatenation; SL0 = 2.
  IoPgtableCfg cfg48 = s1_cfg(SZ_4K | SZ_2M | SZ_1G, 48, 48);
  Box<IoPgtable> pt48 = IoPgtable::alloc(IoPgtableFmt::arm_64_lpae_s2, cfg48).release_value();
  CHECK(cfg48.arm_lpae_s2.concat == 1);
  CHECK(cfg48.arm_lpae_s2.sl0 == 2);
  // 64K granule, 42 bits: levels 2 and 3 only, SL0 = 1 (64K: start level = 3 - SL0).
  IoPgtableCfg cfg64 = s1_cfg(SZ_64K | SZ_512M, 42, 48);
  Box<IoPgtable> pt64 = IoPgtable::alloc(IoPgtableFmt::arm_64_lpae_s2, cfg64).release_value();
  CHECK(cfg64.arm_lpae_s2.sl0 == 1);
  CHECK(cfg64.arm_lpae_s2.tg == 1);
}

TEST_CASE_FIXTURE(Fixture, "dirty tracking: DBM leaves, writable-clean after clearing") {
  for (IoPgtableFmt fmt : {IoPgtableFmt::arm_64_lpae_s1, IoPgtableFmt::arm_64_lpae_s2}) {
    const bool s2 = fmt == IoPgtableFmt::arm_64_lpae_s2;
    INFO(s2);
    auto cfg = s1_cfg();
    cfg.quirks = IO_PGTABLE_QUIRK_DIRTY;
    Box<IoPgtable> pt = IoPgtable::alloc(fmt, cfg).release_value();
    const uint64_t root = s2 ? cfg.arm_lpae_s2.vttbr : cfg.arm_lpae_s1.ttbr;
    REQUIRE(pt->map_pages(0x200000, 0x300000, SZ_4K, 4, IOMMU_READ | IOMMU_WRITE).ok());
    REQUIRE(pt->map_pages(0x400000, 0x500000, SZ_4K, 1, IOMMU_READ).ok());
    const uint64_t dbm = uint64_t{1} << 51;
    CHECK((pte(root, 12, 4, 9, 0x200000, 3) & dbm) == dbm);
    CHECK((pte(root, 12, 4, 9, 0x400000, 3) & dbm) == 0);  // read-only: never dirty

    // New writable mappings start writable-dirty: all four are reported and made clean.
    Recorder first;
    REQUIRE(pt->read_and_clear_dirty(0x200000, (4 * SZ_4K), 0, first).ok());
    CHECK(first.ranges.size() == 4);
    // Writable-clean: S1 AP[2] (bit 7) set; S2 S2AP[1] (bit 7) clear.
    const uint64_t clean = pte(root, 12, 4, 9, 0x201000, 3);
    CHECK((clean & 0x80) == (s2 ? 0 : 0x80));
    CHECK(pt->iova_to_phys(0x201000).value() == 0x301000);

    // The SMMU's first write through page 2 makes it writable again (HTTU).
    const uint64_t table = pte(root, 12, 4, 9, 0x202000, 2) & 0x0000fffffffff000;
    const uint64_t p2 = pte(root, 12, 4, 9, 0x202000, 3);
    REQUIRE(platform->mem().write64(table + 2 * 8, s2 ? p2 | 0x80 : p2 & ~uint64_t{0x80}).ok());
    Recorder peek, second, third;
    REQUIRE(pt->read_and_clear_dirty(0x200000, (4 * SZ_4K), IOMMU_DIRTY_NO_CLEAR, peek).ok());
    REQUIRE(pt->read_and_clear_dirty(0x200000, (4 * SZ_4K), 0, second).ok());
    REQUIRE(pt->read_and_clear_dirty(0x200000, (4 * SZ_4K), 0, third).ok());
    CHECK(peek.ranges.size() == 1);
    REQUIRE(second.ranges.size() == 1);
    CHECK(second.ranges[0] == std::pair<uint64_t, uint64_t>{0x202000, SZ_4K});
    CHECK(third.ranges.empty());
  }
}

TEST_CASE("a non-coherent walker gets every written entry cleaned to memory") {
  sim::Platform::Config pc;
  pc.dma_coherent = false;
  auto platform = sim::Platform::create(pc).release_value();
  IoPgtableCfg cfg;
  cfg.pgsize_bitmap = SZ_4K | SZ_2M;
  cfg.ias = cfg.oas = 48;
  cfg.coherent_walk = false;
  cfg.dma = &platform->dma();
  Box<IoPgtable> pt = IoPgtable::alloc(IoPgtableFmt::arm_64_lpae_s1, cfg).release_value();
  // Walks are non-cacheable and outer-shareable.
  CHECK(cfg.arm_lpae_s1.irgn0 == 0);
  CHECK(cfg.arm_lpae_s1.sh0 == 2);
  const uint64_t before = platform->dma().sync_for_device_calls();
  // A fresh subtree: three new tables and the root entry pointing at them.
  REQUIRE(pt->map_pages(0x1000, 0x2000, SZ_4K, 1, IOMMU_READ).ok());
  CHECK(platform->dma().sync_for_device_calls() == before + 4);
  // Into an existing leaf table: one clean of the written entries.
  REQUIRE(pt->map_pages(0x2000, 0x3000, SZ_4K, 2, IOMMU_READ).ok());
  CHECK(platform->dma().sync_for_device_calls() == before + 5);
  IotlbGather gather;
  REQUIRE(pt->unmap_pages(0x1000, SZ_4K, 3, gather).ok());
  CHECK(platform->dma().sync_for_device_calls() == before + 6);
}

}  // namespace
}  // namespace strata
