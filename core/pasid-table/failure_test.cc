// SPDX-License-Identifier: MIT
// Allocation failures in the iommu-pasid-table library and the fake vendor under it: each
// DMA allocation (SimDmaAllocator::fail_nth) and each kmalloc (hosted::fail_kmalloc_nth) of
// PasidTable::alloc, and of a first write into a new leaf table, is made to fail in turn until
// the call succeeds. Every failure is -ENOMEM and leaves no allocation behind, the table's memory
// as the walker sees it unchanged, no sync issued and the live state as it was.
#include <stdint.h>

#include <memory>
#include <vector>

#include <doctest/doctest.h>

#include "core/pasid-table/pasid_table.h"
#include "testing/fake-iommu/fake_pasid_table.h"
#include "testing/hosted/hosted.h"
#include "testing/models/platform/platform.h"

namespace strata {
namespace {

using testing::FakePasidTableOps;
namespace fp = testing::fake_pasid;

PasidStage1 s1_for(ioasid_t pasid) {
  PasidStage1 s1 = {};
  s1.pgtable_fmt = IoPgtableFmt::arm_64_lpae_s1;
  s1.ttbr = 0x40000000 + uint64_t{pasid} * 0x1000;
  s1.tcr = {16, 0, 1, 1, 3, 5};
  s1.mair = 0x04ff44;
  s1.asid = pasid & 0xffff;
  return s1;
}

struct Fixture {
  Fixture() : platform(sim::Platform::create().release_value()) {}
  ~Fixture() {
    hosted::fail_kmalloc_nth(-1);
    platform->dma().fail_nth(-1);
    for (const auto& e : ops.protocol_errors()) FAIL_CHECK("fake vendor: " << e);
  }

  PasidTableCfg cfg(unsigned bits, bool two_level) {
    return {PasidTableFmt::fake, bits, two_level, &platform->dma()};
  }
  // The table's memory as the walker reaches it (root pointers and present leaves).
  std::vector<uint64_t> image(const PasidTable& t) {
    auto& mem = platform->mem();
    std::vector<uint64_t> out;
    if (!t.two_level()) {
      for (uint32_t i = 0; i < t.nr_entries() * fp::kEntryWords; i++)
        out.push_back(mem.read64(t.base() + i * 8).value());
      return out;
    }
    for (unsigned l = 0; l < t.nr_entries() / fp::kLeafEntries; l++) {
      const uint64_t ptr = mem.read64(t.base() + l * 8).value();
      out.push_back(ptr);
      if (!(ptr & fp::kRootV)) continue;
      for (unsigned i = 0; i < fp::kLeafEntries * fp::kEntryWords; i++)
        out.push_back(mem.read64((ptr & fp::kRootAddrMask) + i * 8).value());
    }
    return out;
  }

  std::unique_ptr<sim::Platform> platform;
  FakePasidTableOps ops;
};

struct TableShape {
  unsigned bits;
  bool two_level;
  int kmallocs;  // in alloc: the core's bitmap and table, the fake's state (+ its leaf array)
};
constexpr TableShape kShapes[] = {{0, false, 3}, {4, false, 3}, {10, true, 4}, {20, true, 4}};

TEST_CASE_FIXTURE(Fixture, "PasidTable::alloc with each DMA allocation failing in turn") {
  for (const TableShape& shape : kShapes) {
    CAPTURE(shape.bits);
    const long kmallocs = hosted::kmalloc_live();
    const size_t dma_live = platform->dma().live_allocations();
    int failures = 0;
    for (long n = 0;; n++) {
      platform->dma().fail_nth(n);
      auto r = PasidTable::alloc(ops, cfg(shape.bits, shape.two_level), nullptr);
      platform->dma().fail_nth(-1);
      if (r.ok()) break;
      failures++;
      CHECK(r.error().code() == -ENOMEM);
      CHECK(hosted::kmalloc_live() == kmallocs);
      CHECK(platform->dma().live_allocations() == dma_live);
      CHECK(ops.tables_live() == 0);
    }
    CHECK(failures == 1);           // the root (linear: the whole table)
    CHECK(ops.tables_live() == 0);  // the successful table went out of scope
    CHECK(hosted::kmalloc_live() == kmallocs);
    CHECK(platform->dma().live_allocations() == dma_live);
  }
}

TEST_CASE_FIXTURE(Fixture, "PasidTable::alloc with each kmalloc failing in turn") {
  for (const TableShape& shape : kShapes) {
    CAPTURE(shape.bits);
    const long kmallocs = hosted::kmalloc_live();
    const size_t dma_live = platform->dma().live_allocations();
    int failures = 0;
    for (long n = 0;; n++) {
      hosted::fail_kmalloc_nth(n);
      auto r = PasidTable::alloc(ops, cfg(shape.bits, shape.two_level), nullptr);
      hosted::fail_kmalloc_nth(-1);
      if (r.ok()) {
        // Usable after the failures before it.
        REQUIRE(r.value()->set_entry(0, s1_for(0)).ok());
        break;
      }
      failures++;
      CHECK(r.error().code() == -ENOMEM);
      CHECK(hosted::kmalloc_live() == kmallocs);
      CHECK(platform->dma().live_allocations() == dma_live);
      CHECK(ops.tables_live() == 0);
    }
    CHECK(failures == shape.kmallocs);
    CHECK(hosted::kmalloc_live() == kmallocs);
    CHECK(platform->dma().live_allocations() == dma_live);
  }
}

TEST_CASE_FIXTURE(Fixture, "a first write into a new leaf with each allocation failing in turn") {
  Box<PasidTable> t = PasidTable::alloc(ops, cfg(10, true), nullptr).release_value();
  REQUIRE(t->two_level());
  // Some state to keep: two entries in leaf 0.
  REQUIRE(t->set_entry(1, s1_for(1)).ok());
  REQUIRE(t->set_entry(2, s1_for(2)).ok());
  ops.clear_syncs();
  const std::vector<uint64_t> before = image(*t);
  const long kmallocs = hosted::kmalloc_live();
  const size_t dma_live = platform->dma().live_allocations();
  const uint64_t writes = ops.writes();

  auto unchanged = [&](ioasid_t pasid) {
    CHECK(image(*t) == before);
    CHECK(hosted::kmalloc_live() == kmallocs);
    CHECK(platform->dma().live_allocations() == dma_live);
    CHECK(ops.syncs().empty());
    CHECK(ops.writes() == writes);
    CHECK_FALSE(t->live(pasid));
    CHECK(t->nr_live() == 2);
  };

  int failures = 0;
  for (long n = 0;; n++) {
    platform->dma().fail_nth(n);
    auto r = t->set_entry(300, s1_for(300));  // leaf 4
    platform->dma().fail_nth(-1);
    if (r.ok()) break;
    failures++;
    CHECK(r.error().code() == -ENOMEM);
    unchanged(300);
  }
  CHECK(failures == 1);  // the leaf table
  CHECK(t->live(300));
  CHECK(ops.syncs() == std::vector<FakePasidTableOps::SyncCall>{{300, false}});

  // The whole failing path in one go: every DMA allocation fails, repeatedly.
  ops.clear_syncs();
  const std::vector<uint64_t> with_300 = image(*t);
  platform->dma().fail_all(true);
  for (int i = 0; i < 3; i++) CHECK(t->set_entry(700, s1_for(700)).error().code() == -ENOMEM);
  platform->dma().fail_all(false);
  CHECK(image(*t) == with_300);
  CHECK(ops.syncs().empty());
  CHECK_FALSE(t->live(700));

  // kmalloc: neither set_entry nor clear_entry allocates CPU memory, so no kmalloc failure can
  // reach them; a first write into a new leaf and a clear both succeed with the next kmalloc
  // set to fail (and it is still pending afterwards).
  const long count = hosted::kmalloc_count();
  hosted::fail_kmalloc_nth(0);
  REQUIRE(t->set_entry(900, s1_for(900)).ok());
  REQUIRE(t->clear_entry(900).ok());
  REQUIRE(t->clear_entry(300).ok());
  CHECK(hosted::kmalloc_count() == count);
  CHECK(kmalloc(8) == nullptr);  // the injected failure was never consumed until now
  hosted::fail_kmalloc_nth(-1);

  // Clearing cannot fail for memory either: with every DMA allocation failing, it succeeds.
  platform->dma().fail_all(true);
  REQUIRE(t->clear_entry(1).ok());
  platform->dma().fail_all(false);
  CHECK(t->nr_live() == 1);
}

TEST_CASE_FIXTURE(Fixture, "tables torn down after failed writes give every page back") {
  const long kmallocs = hosted::kmalloc_live();
  const size_t dma_live = platform->dma().live_allocations();
  const uint64_t free_bytes = platform->dma().free_bytes();
  {
    Box<PasidTable> t = PasidTable::alloc(ops, cfg(12, true), nullptr).release_value();
    for (ioasid_t p = 0; p < 4096; p += 97) {
      // Every third write has its DMA allocation fail once, if it makes one (a new leaf).
      platform->dma().fail_nth(p % 3 == 0 ? 0 : -1);
      auto r = t->set_entry(p, s1_for(p));
      platform->dma().fail_nth(-1);
      if (!r.ok()) {
        CHECK(r.error().code() == -ENOMEM);
        REQUIRE(t->set_entry(p, s1_for(p)).ok());
      }
    }
    CHECK(t->nr_live() == (4096 + 96) / 97);
  }
  CHECK(platform->dma().live_allocations() == dma_live);
  CHECK(platform->dma().free_bytes() == free_bytes);
  CHECK(hosted::kmalloc_live() == kmallocs);
}

}  // namespace
}  // namespace strata
