// SPDX-License-Identifier: MIT
// Allocation failures in io-pgtable: every allocation point in a large map fails once in turn;
// each time the failing map_pages call changes nothing, the caller can undo what the earlier
// calls mapped, and nothing leaks (io_pgtable.h: "a failed allocation -ENOMEM; ... nothing was
// changed").
//
// A table page costs two allocations (table.h): the metadata (kmalloc) and the page the
// hardware walks (the DmaAllocator). Each is failed in turn through the hosted port's
// fail_kmalloc_nth and the simulated allocator's fail_nth. "Changed nothing" is checked on the
// bytes the hardware would walk: every table page reachable from the root is read back through
// the platform's physical memory and decoded with the architected encodings (arch/lpae/pte.h,
// arch/vtd/pte.h), not with io-pgtable's code.
#include <stdint.h>

#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "core/io-pgtable/io_pgtable.h"
#include "core/io-pgtable/pgtable_test_support.h"
#include "testing/hosted/hosted.h"
#include "testing/models/platform/platform.h"

namespace strata::pgtable_test {
namespace {

// A configuration and how large a map the failures are injected into.
struct LargeMapCase : FormatCase {
  // The large map covers this many leaf tables' worth of pages.
  unsigned leaf_tables;
};

// 64 MiB of 4K pages, 256 MiB of 16K pages, 2 GiB of 64K pages.
const LargeMapCase kCases[] = {
    {kLpaeS1_4K, 32},  {kLpaeS1_16K, 8},  {kLpaeS1_64K, 4},
    {kLpaeS2_4K, 32},  {kLpaeS2_64K, 4},  {kLpaeS2_4KIas40, 32},
    {kVtdSlIas39, 32}, {kVtdSlIas48, 32}, {kVtdFlIas48, 32},
};

// ---------------------------------------------------------------------------------------------
// The tree as the hardware sees it.

struct TableImage {
  unsigned depth;
  uint64_t base;  // the first iova it translates
  std::vector<uint64_t> entries;
};
// Every reachable table page by physical address, the root included.
using Snapshot = std::map<uint64_t, TableImage>;

void snapshot_table(sim::PhysMem& mem, const FormatCase& c, uint64_t table, unsigned depth,
                    uint64_t base, Snapshot& out) {
  TableImage& image = out[table];
  image.depth = depth;
  image.base = base;
  const Geometry geo = geometry_of(c);
  image.entries.resize(geo.entries(depth));
  // One bus read per table page (PhysMem::read: what read64 returns, entry by entry).
  REQUIRE(mem.read(table, image.entries.data(), image.entries.size() * 8).ok());
  for (uint64_t& e : image.entries) e = le64_to_cpu(e);
  for (uint64_t i = 0; i < image.entries.size(); i++)
    if (uint64_t next = table_of(c, image.entries[i], depth))
      snapshot_table(mem, c, next, depth + 1, base + i * geo.size(depth), out);
}

Snapshot snapshot(sim::PhysMem& mem, const FormatCase& c, uint64_t root) {
  Snapshot out;
  snapshot_table(mem, c, root, 0, 0, out);
  return out;
}

// The first difference between two snapshots, or "" when they are equal.
std::string difference(const Snapshot& a, const Snapshot& b) {
  for (const auto& [phys, image] : a) {
    auto it = b.find(phys);
    if (it == b.end()) return "table " + std::to_string(phys) + " is gone";
    for (size_t i = 0; i < image.entries.size(); i++)
      if (image.entries[i] != it->second.entries[i])
        return "table at depth " + std::to_string(image.depth) + " entry " + std::to_string(i) +
               ": " + std::to_string(image.entries[i]) + " -> " +
               std::to_string(it->second.entries[i]);
  }
  for (const auto& [phys, image] : b)
    if (!a.count(phys)) return "new table at depth " + std::to_string(image.depth);
  return "";
}

std::set<std::pair<unsigned, uint64_t>> tables_in(const Snapshot& s) {
  std::set<std::pair<unsigned, uint64_t>> out;
  for (const auto& [phys, image] : s)
    if (image.depth) out.insert({image.depth, image.base});
  return out;
}

// The tables (depth >= 1, iova base) that a mapping of [iova, iova + size) at the page size
// needs.
std::set<std::pair<unsigned, uint64_t>> tables_for(const FormatCase& c, uint64_t iova,
                                                   uint64_t size) {
  const Geometry geo = geometry_of(c);
  std::set<std::pair<unsigned, uint64_t>> out;
  for (unsigned d = 1; d < c.levels; d++)
    for (uint64_t a = iova & ~(geo.size(d - 1) - 1); a < iova + size; a += geo.size(d - 1))
      out.insert({d, a});
  return out;
}

struct Counters {
  long dma;
  long kmalloc;
  bool operator==(const Counters&) const = default;
};
std::ostream& operator<<(std::ostream& os, const Counters& c) {
  return os << "{dma " << c.dma << ", kmalloc " << c.kmalloc << "}";
}

// ---------------------------------------------------------------------------------------------

enum class Inject { dma, kmalloc };

class LargeMapFailures {
 public:
  explicit LargeMapFailures(const LargeMapCase& c)
      : c_(c), platform_(sim::Platform::create().release_value()) {
    const Geometry geo = geometry_of(c);
    page_ = geo.page();
    span_ = geo.leaf_span();
    // Half-way up the input space: a boundary of root entries. The range crosses it, so one
    // call there needs a new table at every depth below the root (a chain of 2 or 3).
    boundary_ = uint64_t{1} << (c.ias - 1);
    size_ = c.leaf_tables * span_;
    // Starts half-way into a leaf table that a pre-existing page already holds.
    start_ = boundary_ - size_ / 2 + span_ / 2;
    block_ = (start_ & ~(span_ - 1)) - 2 * span_;
    far_ = 3 * span_ + 5 * page_;
    big_ = geo.entries(c.levels - 2) * span_;  // the largest page size, where there is one
  }

  void run(Inject inject) {
    const char* what = inject == Inject::dma ? "DMA allocation" : "kmalloc";
    const Counters baseline = counters();
    unsigned failed_calls = 0;
    size_t needed = 0;
    for (long k = 0;; k++) {
      INFO(std::string(what) << " #" << k << " fails");
      Box<IoPgtable> pt = build();
      const Snapshot before = snapshot(platform_->mem(), c_, root_);
      const std::vector<int64_t> probes_before = probe(*pt);
      const Counters counts_before = counters();
      const auto new_tables_full = new_tables(before, start_, size_);
      needed = new_tables_full.size();

      if (inject == Inject::dma)
        platform_->dma().fail_nth(k);
      else
        hosted::fail_kmalloc_nth(k);

      // The large map, as a caller loops over map_pages.
      uint64_t iova = start_;
      int err = 0;
      while (iova < start_ + size_) {
        const Snapshot pre_call = snapshot(platform_->mem(), c_, root_);
        const Counters counts_pre_call = counters();
        auto r = pt->map_pages(iova, pa_of(iova), page_, (start_ + size_ - iova) / page_,
                               IOMMU_READ | IOMMU_WRITE);
        if (!r.ok()) {
          err = r.error().code();
          INFO("map_pages(", Hex{iova}, ") failed");
          // The failing call itself changed nothing.
          CHECK(difference(pre_call, snapshot(platform_->mem(), c_, root_)) == "");
          CHECK(counters() == counts_pre_call);
          break;
        }
        REQUIRE(r.value() > 0);
        REQUIRE(r.value() % page_ == 0);
        iova += r.value();
      }
      platform_->dma().fail_nth(-1);
      hosted::fail_kmalloc_nth(-1);
      const uint64_t mapped = iova - start_;

      if (err == 0) {
        // The injected failure lies beyond the last allocation: every point has been hit.
        for (uint64_t a = start_; a < start_ + size_; a += page_) {
          auto r = pt->iova_to_phys(a);
          REQUIRE((r.ok() && r.value() == pa_of(a)));
        }
        CHECK(counters().dma == counts_before.dma + static_cast<long>(needed));
        CHECK(counters().kmalloc == counts_before.kmalloc + static_cast<long>(needed));
      } else {
        CHECK(err == -ENOMEM);
        failed_calls++;
      }

      // Undo what the large map mapped, as the caller does on error.
      for (uint64_t a = start_; a < start_ + mapped;) {
        IotlbGather gather;
        auto r = pt->unmap_pages(a, page_, (start_ + mapped - a) / page_, gather);
        REQUIRE(r.ok());
        REQUIRE(r.value() > 0);
        CHECK(gather.leaf_only());
        gather.release_freelist();
        a += r.value();
      }

      // The table is as before, except for the tables the successful calls added, which
      // unmapping pages does not free: exactly the tables [start, start + mapped) needs that did
      // not exist before; each is empty (leaf tables) or points only to other new tables, and
      // each costs one DMA page and one kmalloc.
      CHECK(probe(*pt) == probes_before);
      const Snapshot after = snapshot(platform_->mem(), c_, root_);
      const auto expected_new = new_tables(before, start_, mapped);
      check_only_new_tables(before, after, expected_new);
      const long n = static_cast<long>(expected_new.size());
      CHECK(counters() == Counters{counts_before.dma + n, counts_before.kmalloc + n});

      pt.reset();
      REQUIRE(counters() == baseline);
      if (err == 0) break;
    }
    // One failing call per allocation the whole map makes: one DMA page and one kmalloc for
    // each table it needs.
    CHECK(failed_calls == needed);
    MESSAGE(std::string(c_.name) << ": " << std::string(what) << ": " << failed_calls
                                 << " allocation points failed in turn (" << size_ / page_
                                 << " pages, " << needed << " new tables)");
  }

 private:
  Counters counters() const {
    return {static_cast<long>(platform_->dma().live_allocations()), hosted::kmalloc_live()};
  }
  uint64_t pa_of(uint64_t iova) const { return 0x4000'0000 + (iova - start_); }

  // A table with mappings the large map must not disturb: a page sharing the first leaf table
  // of the range, a block in the table above it, a page far away, and a block of the largest
  // size where the format has three sizes.
  Box<IoPgtable> build() {
    IoPgtableCfg cfg = make_cfg(c_, *platform_);
    auto made = IoPgtable::alloc(c_.fmt, cfg);
    REQUIRE(made.ok());
    Box<IoPgtable> pt = made.release_value();
    REQUIRE(cfg.pgsize_bitmap == c_.pgsizes);
    root_ = root_of(c_, cfg);
    const int rw = IOMMU_READ | IOMMU_WRITE;
    REQUIRE(pt->map_pages(start_ - page_, 0x1000'0000, page_, 1, rw).value() == page_);
    REQUIRE(pt->map_pages(block_, 0x2000'0000, span_, 1, IOMMU_READ).value() == span_);
    REQUIRE(pt->map_pages(far_, 0x3000'0000, page_, 1, rw).value() == page_);
    if (c_.pgsizes & big_) REQUIRE(pt->map_pages(2 * big_, 0, big_, 1, rw).value() == big_);
    return pt;
  }

  // Translations of mapped and unmapped addresses in and around everything above.
  std::vector<int64_t> probe(IoPgtable& pt) {
    std::vector<int64_t> out;
    for (uint64_t iova :
         {start_ - page_, start_ - 1, block_, block_ + span_ - 1, far_, far_ + page_ - 1,
          far_ + page_, 2 * big_ + big_ / 2, start_, start_ + size_ / 2, boundary_ - page_,
          boundary_, start_ + size_ - 1, start_ + size_, block_ + span_}) {
      auto r = pt.iova_to_phys(iova);
      out.push_back(r.ok() ? static_cast<int64_t>(r.value()) : r.error().code());
    }
    return out;
  }

  std::set<std::pair<unsigned, uint64_t>> new_tables(const Snapshot& before, uint64_t iova,
                                                     uint64_t size) const {
    std::set<std::pair<unsigned, uint64_t>> out;
    if (!size) return out;
    const auto existing = tables_in(before);
    for (const auto& t : tables_for(c_, iova, size))
      if (!existing.count(t)) out.insert(t);
    return out;
  }

  void check_only_new_tables(const Snapshot& before, const Snapshot& after,
                             const std::set<std::pair<unsigned, uint64_t>>& expected_new) {
    std::set<std::pair<unsigned, uint64_t>> added;
    for (const auto& [phys, image] : after) {
      auto old = before.find(phys);
      if (old == before.end()) {
        added.insert({image.depth, image.base});
        // A new table holds nothing but (new) tables.
        for (uint64_t e : image.entries)
          if (e && (!table_of(c_, e, image.depth) || before.count(table_of(c_, e, image.depth))))
            FAIL_CHECK("new table at depth " << image.depth << " base " << Hex{image.base}
                                             << " holds " << Hex{e});
        continue;
      }
      CHECK(old->second.depth == image.depth);
      for (size_t i = 0; i < image.entries.size(); i++) {
        const uint64_t was = old->second.entries[i], is = image.entries[i];
        if (was == is) continue;
        // The only change an old table may show: an empty entry now pointing to a new table.
        const uint64_t next = table_of(c_, is, image.depth);
        if (was != 0 || !next || before.count(next))
          FAIL_CHECK("table at depth " << image.depth << " base " << Hex{image.base} << " entry "
                                       << i << ": " << Hex{was} << " -> " << Hex{is});
      }
    }
    for (const auto& [phys, image] : before)
      if (!after.count(phys)) FAIL_CHECK("table at depth " << image.depth << " disappeared");
    CHECK(added == expected_new);
  }

  const LargeMapCase& c_;
  std::unique_ptr<sim::Platform> platform_;
  uint64_t root_ = 0;
  uint64_t page_, span_, boundary_, size_, start_, block_, far_, big_;
};

TEST_CASE("every allocation of a large map fails once in turn: no change, no leak") {
  for (const LargeMapCase& c : kCases) {
    SUBCASE(c.name) {
      LargeMapFailures test(c);
      SUBCASE("DMA allocations") { test.run(Inject::dma); }
      SUBCASE("kmallocs") { test.run(Inject::kmalloc); }
    }
  }
}

// A failed table allocation and a later success in the same call: the first table of a chain
// is allocated, the second fails, and the call must free the first (engine.h
// publish_subtree). Exercised above for chains of two and three; here also when the whole
// input space is empty, right after alloc().
TEST_CASE("a chain of new tables is freed when its last allocation fails") {
  for (const LargeMapCase& c : kCases) {
    SUBCASE(c.name) {
      auto platform = sim::Platform::create().release_value();
      const long dma0 = static_cast<long>(platform->dma().live_allocations());
      const long km0 = hosted::kmalloc_live();
      IoPgtableCfg cfg = make_cfg(c, *platform);
      Box<IoPgtable> pt = IoPgtable::alloc(c.fmt, cfg).release_value();
      const long dma1 = static_cast<long>(platform->dma().live_allocations());
      const long km1 = hosted::kmalloc_live();
      const uint64_t page = geometry_of(c).page();
      // levels - 1 tables below the root are needed; fail each of them, by each allocator.
      for (long k = 0; k < static_cast<long>(c.levels) - 1; k++) {
        for (bool dma : {true, false}) {
          CAPTURE(k);
          CAPTURE(dma);
          if (dma)
            platform->dma().fail_nth(k);
          else
            hosted::fail_kmalloc_nth(k);
          auto r = pt->map_pages(page * 3, 0x5000'0000, page, 2, IOMMU_READ);
          platform->dma().fail_nth(-1);
          hosted::fail_kmalloc_nth(-1);
          REQUIRE_FALSE(r.ok());
          CHECK(r.error().code() == -ENOMEM);
          CHECK(static_cast<long>(platform->dma().live_allocations()) == dma1);
          CHECK(hosted::kmalloc_live() == km1);
          CHECK(pt->iova_to_phys(page * 3).error().code() == -ENOENT);
        }
      }
      CHECK(pt->map_pages(page * 3, 0x5000'0000, page, 2, IOMMU_READ).value() == 2 * page);
      CHECK(pt->iova_to_phys(page * 4 + 1).value() == 0x5000'0000 + page + 1);
      pt.reset();
      CHECK(static_cast<long>(platform->dma().live_allocations()) == dma0);
      CHECK(hosted::kmalloc_live() == km0);
    }
  }
}

// alloc() itself: the root, or the Pgtable object, cannot be allocated.
TEST_CASE("alloc() fails cleanly when the root or the object cannot be allocated") {
  for (const LargeMapCase& c : kCases) {
    SUBCASE(c.name) {
      auto platform = sim::Platform::create().release_value();
      const long dma0 = static_cast<long>(platform->dma().live_allocations());
      const long km0 = hosted::kmalloc_live();
      // kmallocs: the root's metadata, then the object; DMA: the root page.
      for (int point = 0; point < 3; point++) {
        CAPTURE(point);
        IoPgtableCfg cfg = make_cfg(c, *platform);
        if (point < 2)
          hosted::fail_kmalloc_nth(point);
        else
          platform->dma().fail_nth(0);
        auto r = IoPgtable::alloc(c.fmt, cfg);
        platform->dma().fail_nth(-1);
        hosted::fail_kmalloc_nth(-1);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().code() == -ENOMEM);
        CHECK(static_cast<long>(platform->dma().live_allocations()) == dma0);
        CHECK(hosted::kmalloc_live() == km0);
      }
    }
  }
}

}  // namespace
}  // namespace strata::pgtable_test
