// SPDX-License-Identifier: MIT
// set_entry and clear_entry of disjoint PASIDs from several threads at once (pasid_table.h:
// "set_entry and clear_entry of different PASIDs may be called from any number of threads").
//
// The threads' PASIDs interleave (thread t owns the PASIDs p with p % kThreads == t), so every
// leaf table holds PASIDs of every thread: the threads race to allocate the leaves and write
// neighbouring entries. The fake vendor reports any overlap of the ops of one table (the
// core's lock must serialise them), a write or clear not followed by its sync, and a leaf-only
// sync after a new leaf. Afterwards every entry in memory is what its owner last wrote, each
// leaf was allocated once, and the syncs add up. A reader thread polls live() and nr_live()
// meanwhile. A second case allocates, uses and frees tables of one vendor from several threads.
// Run under ThreadSanitizer: bazel test --config=tsan //core/pasid-table:concurrency_test
#include <stdint.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "core/pasid-table/pasid_table.h"
#include "testing/fake-iommu/fake_pasid_table.h"
#include "testing/hosted/hosted.h"
#include "testing/models/platform/platform.h"

namespace strata {
namespace {

using testing::FakePasidTableOps;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int kRounds = 100;
#else
constexpr int kRounds = 400;
#endif
constexpr int kThreads = 4;
constexpr unsigned kBits = 10;
constexpr ioasid_t kEntries = 1u << kBits;

// A description unique to (pasid, generation), so a stale or misplaced entry is caught.
PasidStage1 s1_for(ioasid_t pasid, uint32_t gen) {
  PasidStage1 s1 = {};
  s1.pgtable_fmt = gen % 2 ? IoPgtableFmt::intel_vtd_fl : IoPgtableFmt::arm_64_lpae_s1;
  s1.ttbr = 0x40000000 + (uint64_t{pasid} << 20) + (uint64_t{gen % 256} << 12);
  s1.tcr = {16, 0, 1, 1, 3, 5};
  s1.mair = gen;
  s1.asid = pasid;
  s1.levels = gen % 2 ? 4 : 0;
  return s1;
}

TEST_CASE("set/replace/clear of disjoint PASIDs from several threads on one table") {
  auto platform = sim::Platform::create().release_value();
  const long kmallocs = hosted::kmalloc_live();
  const size_t dma_live = platform->dma().live_allocations();
  {
    FakePasidTableOps ops;
    Box<PasidTable> t =
        PasidTable::alloc(ops, {PasidTableFmt::fake, kBits, true, &platform->dma()}, nullptr)
            .release_value();
    REQUIRE(t->two_level());

    // Per PASID: the generation last written, or 0 when cleared. Each slot belongs to one
    // thread until the threads are joined.
    std::vector<uint32_t> expected(kEntries, 0);
    std::atomic<int> errors{0};
    std::atomic<long> sets{0}, replaces{0}, clears{0};
    std::atomic<bool> done{false};

    auto worker = [&](int id) {
      std::mt19937 rng(id + 1);
      std::vector<ioasid_t> mine;
      for (ioasid_t p = id; p < kEntries; p += kThreads) mine.push_back(p);
      uint32_t gen = 1;
      for (int round = 0; round < kRounds; round++) {
        std::shuffle(mine.begin(), mine.end(), rng);
        for (ioasid_t p : mine) {
          const bool was_live = expected[p] != 0;
          if (was_live && rng() % 3 == 0) {
            if (!t->clear_entry(p).ok()) errors++;
            expected[p] = 0;
            clears++;
          } else {
            if (!t->set_entry(p, s1_for(p, gen)).ok()) errors++;
            expected[p] = gen++;
            (was_live ? replaces : sets)++;
          }
          if (t->live(p) != (expected[p] != 0)) errors++;
          // Read back through the bus: the entry this thread just wrote, whatever the others
          // are doing to the rest of its leaf.
          auto e = testing::fake_pasid_read(platform->mem(), *t, p);
          if (!e.ok() || e.value().valid != (expected[p] != 0) ||
              (expected[p] && e.value().s1 != s1_for(p, expected[p])))
            errors++;
        }
      }
    };
    auto reader = [&] {
      std::mt19937 rng(99);
      while (!done.load()) {
        if (t->nr_live() > kEntries) errors++;
        (void)t->live(rng() % (kEntries + 8));  // out of range included: false, no fault
      }
    };

    std::thread poll(reader);
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; i++) threads.emplace_back(worker, i);
    for (auto& th : threads) th.join();
    done = true;
    poll.join();

    CHECK(errors.load() == 0);
    for (const auto& e : ops.protocol_errors()) FAIL_CHECK("fake vendor: " << e);
    unsigned live = 0;
    for (ioasid_t p = 0; p < kEntries; p++) {
      CAPTURE(p);
      auto e = testing::fake_pasid_read(platform->mem(), *t, p).release_value();
      CHECK(e.valid == (expected[p] != 0));
      CHECK(t->live(p) == (expected[p] != 0));
      if (expected[p]) {
        CHECK(e.s1 == s1_for(p, expected[p]));
        live++;
      }
    }
    CHECK(t->nr_live() == live);
    // Every leaf allocated exactly once, and announced by exactly one non-leaf sync.
    CHECK(ops.leaf_tables_allocated() == kEntries / testing::fake_pasid::kLeafEntries);
    CHECK(platform->dma().live_allocations() == dma_live + 1 + 16);
    const auto syncs = ops.syncs();
    long nonleaf = 0;
    for (const auto& s : syncs) nonleaf += !s.leaf;
    CHECK(nonleaf == 16);
    // One sync per set and clear, two per replacement (break-before-make).
    CHECK(static_cast<long>(syncs.size()) == sets + clears + 2 * replaces);
    CHECK(ops.writes() == static_cast<uint64_t>(sets + replaces));
    CHECK(ops.clears() == static_cast<uint64_t>(clears));
  }
  CHECK(platform->dma().live_allocations() == dma_live);
  CHECK(hosted::kmalloc_live() == kmallocs);
}

TEST_CASE("tables of one vendor allocated, used and freed from several threads") {
  auto platform = sim::Platform::create().release_value();
  const long kmallocs = hosted::kmalloc_live();
  const size_t dma_live = platform->dma().live_allocations();
  FakePasidTableOps ops;
  std::atomic<int> errors{0};
  auto worker = [&](int id) {
    for (int round = 0; round < kRounds; round++) {
      auto r = PasidTable::alloc(ops, {PasidTableFmt::fake, 8, round % 2 == 0, &platform->dma()},
                                 nullptr);
      if (!r.ok()) {
        errors++;
        continue;
      }
      Box<PasidTable> t = r.release_value();
      for (ioasid_t p = id; p < 256; p += 17) {
        if (!t->set_entry(p, s1_for(p, round + 1)).ok()) errors++;
      }
      for (ioasid_t p = id; p < 256; p += 34) {
        if (!t->clear_entry(p).ok()) errors++;
      }
      for (ioasid_t p = id; p < 256; p++) {
        auto e = testing::fake_pasid_read(platform->mem(), *t, p);
        const bool want = (p - id) % 17 == 0 && (p - id) % 34 != 0;
        if (!e.ok() || e.value().valid != want || t->live(p) != want) errors++;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; i++) threads.emplace_back(worker, i);
  for (auto& th : threads) th.join();
  CHECK(errors.load() == 0);
  for (const auto& e : ops.protocol_errors()) FAIL_CHECK("fake vendor: " << e);
  CHECK(ops.tables_allocated() == static_cast<uint64_t>(kThreads * kRounds));
  CHECK(ops.tables_live() == 0);
  CHECK(platform->dma().live_allocations() == dma_live);
  CHECK(hosted::kmalloc_live() == kmallocs);
}

}  // namespace
}  // namespace strata
