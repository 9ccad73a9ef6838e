// SPDX-License-Identifier: MIT
// Concurrent map_pages / unmap_pages on disjoint ranges (io_pgtable.h: "may run in parallel
// from any number of threads, without a table-wide lock"), for every format and granule.
//
// The ranges are disjoint but deliberately share tables: threads own interleaved page-granular
// slices of the same leaf tables, around a boundary where every table below the root is missing,
// so they race to install the same tables (engine.h: the CAS of the child slot, the loser frees
// its private subtree and descends into the winner's). Afterwards every translation is checked,
// the number of table pages is exactly what the mapped pages need (no loser's page left behind,
// no table installed twice), and destroying the table returns every DMA page and kmalloc.
// Run under ThreadSanitizer: bazel test --config=tsan //core/io-pgtable:concurrency_test
//
// The last case targets a window in the engine's lock-free descent (see its comment): while the
// engine has it, that case fails on nearly every run and the other two now and then.
#include <stdint.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "arch/cpu.h"
#include "core/io-pgtable/io_pgtable.h"
#include "core/io-pgtable/pgtable_test_support.h"
#include "testing/hosted/hosted.h"
#include "testing/models/platform/platform.h"

namespace strata::pgtable_test {
namespace {

// ThreadSanitizer slows the threads down several times: fewer rounds under it.
#if defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

// Half-way up the input space: a boundary of root entries, so that a range crossing it needs
// a new table at every depth below the root.
uint64_t boundary_of(const FormatCase& c) { return uint64_t{1} << (c.ias - 1); }

// The tables (depth >= 1, iova base) that mapping `pages` needs.
std::set<std::pair<unsigned, uint64_t>> tables_for(const FormatCase& c,
                                                   const std::vector<uint64_t>& pages) {
  const Geometry geo = geometry_of(c);
  std::set<std::pair<unsigned, uint64_t>> tables;
  for (uint64_t iova : pages)
    for (unsigned d = 1; d < c.levels; d++) tables.insert({d, iova & ~(geo.size(d - 1) - 1)});
  return tables;
}

// Output address of `iova` in generation `salt`: distinct per generation, aligned, < 2^48.
uint64_t pa_of(uint64_t iova, unsigned salt) { return iova ^ (uint64_t{salt & 0xff} << 40); }

// Persistent workers released together: run() publishes a task, every worker spins at a start
// line until all have arrived, runs the task, and run() returns when all are done.
class Workers {
 public:
  explicit Workers(unsigned n) : n_(n) {
    for (unsigned i = 0; i < n; i++) threads_.emplace_back([this, i] { loop(i); });
  }
  ~Workers() {
    stop_.store(true, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_acq_rel);
    for (std::thread& t : threads_) t.join();
  }
  unsigned size() const { return n_; }

  void run(std::function<void(unsigned)> task) {
    task_ = std::move(task);
    done_.store(0, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_acq_rel);
    while (done_.load(std::memory_order_acquire) != n_) std::this_thread::yield();
  }

 private:
  void loop(unsigned tid) {
    uint64_t seen = 0;
    for (;;) {
      uint64_t gen;
      while ((gen = generation_.load(std::memory_order_acquire)) == seen) std::this_thread::yield();
      seen = gen;
      if (stop_.load(std::memory_order_acquire)) return;
      // The start line: nobody starts before everyone is here.
      arrived_.fetch_add(1, std::memory_order_acq_rel);
      for (unsigned spins = 0; arrived_.load(std::memory_order_acquire) < n_ * gen; spins++) {
        if (spins < 1000)
          cpu_relax();
        else
          std::this_thread::yield();
      }
      task_(tid);
      done_.fetch_add(1, std::memory_order_acq_rel);
    }
  }

  const unsigned n_;
  std::vector<std::thread> threads_;
  std::function<void(unsigned)> task_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> arrived_{0};
  std::atomic<unsigned> done_{0};
  std::atomic<bool> stop_{false};
};

// Errors found on worker threads, reported by the main thread (doctest's INFO context is
// per thread).
class Errors {
 public:
  void add(std::string e) {
    std::lock_guard<std::mutex> lock(lock_);
    if (list_.size() < kKept) list_.push_back(std::move(e));
    count_++;
  }
  // On the main thread, after the workers are done.
  void report() {
    std::lock_guard<std::mutex> lock(lock_);
    for (const std::string& e : list_) FAIL_CHECK(e);
    if (count_ > list_.size()) FAIL_CHECK((count_ - list_.size()) << " more errors");
    list_.clear();
    count_ = 0;
  }

 private:
  static constexpr size_t kKept = 8;
  std::mutex lock_;
  std::vector<std::string> list_;
  size_t count_ = 0;
};

// Maps [iova, iova + pages) as a caller does: map_pages again from where the last call stopped.
void map_range(IoPgtable& pt, const FormatCase& c, uint64_t iova, uint64_t pages, unsigned salt,
               Errors& errors) {
  const uint64_t page = geometry_of(c).page();
  while (pages) {
    auto r = pt.map_pages(iova, pa_of(iova, salt), page, pages, IOMMU_READ | IOMMU_WRITE);
    if (!r.ok() || r.value() == 0 || r.value() % page || r.value() / page > pages) {
      errors.add(std::string(c.name) + ": map_pages(" + hex(iova) + ", " + std::to_string(pages) +
                 " pages) = " + (r.ok() ? hex(r.value()) : std::to_string(r.error().code())));
      return;
    }
    iova += r.value();
    pages -= r.value() / page;
  }
}

void unmap_range(IoPgtable& pt, const FormatCase& c, uint64_t iova, uint64_t pages,
                 Errors& errors) {
  const uint64_t page = geometry_of(c).page();
  while (pages) {
    IotlbGather gather;
    auto r = pt.unmap_pages(iova, page, pages, gather);
    const bool leaf_only = gather.leaf_only();
    gather.release_freelist();
    if (!r.ok() || r.value() == 0 || r.value() % page || r.value() / page > pages || !leaf_only) {
      errors.add(std::string(c.name) + ": unmap_pages(" + hex(iova) + ", " + std::to_string(pages) +
                 " pages) = " + (r.ok() ? hex(r.value()) : std::to_string(r.error().code())));
      return;
    }
    iova += r.value();
    pages -= r.value() / page;
  }
}

struct Counters {
  long dma;
  long kmalloc;
};
Counters counters(sim::Platform& platform) {
  return {static_cast<long>(platform.dma().live_allocations()), hosted::kmalloc_live()};
}

Box<IoPgtable> alloc_table(const FormatCase& c, sim::Platform& platform) {
  IoPgtableCfg cfg = make_cfg(c, platform);
  auto r = IoPgtable::alloc(c.fmt, cfg);
  REQUIRE(r.ok());
  REQUIRE(cfg.pgsize_bitmap == c.pgsizes);
  return r.release_value();
}

constexpr unsigned kThreads = 4;

// ---------------------------------------------------------------------------------------------

TEST_CASE("4 threads map, remap and unmap interleaved slices of shared tables") {
  const int rounds = kSanitized ? 10 : 40;
  Workers workers(kThreads);
  for (const FormatCase& c : kAllFormats) {
    SUBCASE(c.name) {
      const std::string name = c.name;
      INFO(name);
      auto platform = sim::Platform::create().release_value();
      const Counters base = counters(*platform);
      const Geometry geo = geometry_of(c);
      const uint64_t page = geo.page(), span = geo.leaf_span(), b = boundary_of(c);

      // Pieces of 128 pages straddling leaf-table boundaries: two below the boundary where all
      // tables are missing, two above it. Each piece is cut into slices of 1 to 8 pages, dealt
      // round-robin to the threads, so neighbouring slices in a leaf table belong to different
      // threads.
      struct Slice {
        uint64_t iova, pages;
      };
      std::vector<Slice> slices[kThreads];
      std::vector<uint64_t> pages;
      std::mt19937_64 rng(0xc0ffee);
      unsigned next = 0;
      for (uint64_t piece :
           {b - span - 64 * page, b - 64 * page, b + span - 64 * page, b + 2 * span - 64 * page}) {
        for (uint64_t p = 0; p < 128;) {
          const uint64_t n = std::min<uint64_t>(1 + rng() % 8, 128 - p);
          slices[next++ % kThreads].push_back({piece + p * page, n});
          for (uint64_t k = 0; k < n; k++) pages.push_back(piece + (p + k) * page);
          p += n;
        }
      }
      const auto tables = tables_for(c, pages);
      const long ntables = static_cast<long>(tables.size());
      Errors errors;
      uint64_t loser_pages = 0;

      auto verify = [&](IoPgtable& pt, int salt) {  // salt < 0: nothing mapped
        for (uint64_t iova : pages) {
          auto r = pt.iova_to_phys(iova + page - 1);
          const bool good = salt < 0 ? !r.ok() && r.error().code() == -ENOENT
                                     : r.ok() && r.value() == pa_of(iova, salt) + page - 1;
          if (!good) {
            FAIL_CHECK("iova_to_phys(" << Hex{iova + page - 1} << ") after salt " << salt << " = "
                                       << (r.ok() ? r.value() : uint64_t(r.error().code())));
            return;
          }
        }
      };

      for (int round = 0; round < rounds; round++) {
        CAPTURE(round);
        const uint64_t allocs0 = platform->dma().total_allocations();
        Box<IoPgtable> pt = alloc_table(c, *platform);
        // Twice per table: first with every table missing, then with the (empty) tables left
        // by the first pass.
        for (int pass = 0; pass < 2; pass++) {
          const unsigned salt = static_cast<unsigned>(round * 4 + pass * 2);
          workers.run([&](unsigned t) {
            for (const Slice& s : slices[t]) map_range(*pt, c, s.iova, s.pages, salt, errors);
          });
          errors.report();
          verify(*pt, static_cast<int>(salt));
          const Counters now = counters(*platform);
          CHECK(now.dma - base.dma == 1 + ntables);
          CHECK(now.kmalloc - base.kmalloc == 2 + ntables);

          // Each thread unmaps and remaps its slices one by one while the others do the same.
          workers.run([&](unsigned t) {
            for (const Slice& s : slices[t]) {
              unmap_range(*pt, c, s.iova, s.pages, errors);
              map_range(*pt, c, s.iova, s.pages, salt + 1, errors);
            }
          });
          errors.report();
          verify(*pt, static_cast<int>(salt + 1));

          workers.run([&](unsigned t) {
            for (const Slice& s : slices[t]) unmap_range(*pt, c, s.iova, s.pages, errors);
          });
          errors.report();
          verify(*pt, -1);
          CHECK(counters(*platform).dma - base.dma == 1 + ntables);
        }
        // Pages allocated beyond the tables kept: what CAS losers allocated and freed.
        loser_pages += platform->dma().total_allocations() - allocs0 - 1 - tables.size();
        pt.reset();
        const Counters after = counters(*platform);
        CHECK(after.dma == base.dma);
        CHECK(after.kmalloc == base.kmalloc);
      }
      MESSAGE(name << ": " << pages.size() << " pages in " << tables.size() << " tables; "
                   << loser_pages << " table pages allocated by CAS losers and freed");
    }
  }
}

TEST_CASE("threads race to install the same missing tables in an empty region") {
  const int iterations = kSanitized ? 150 : 600;
  Workers workers(kThreads);
  for (const FormatCase& c : kAllFormats) {
    SUBCASE(c.name) {
      const std::string name = c.name;
      INFO(name);
      auto platform = sim::Platform::create().release_value();
      const Counters base = counters(*platform);
      const Geometry geo = geometry_of(c);
      const uint64_t page = geo.page(), span = geo.leaf_span(), b = boundary_of(c);
      Errors errors;
      uint64_t loser_pages = 0, contended = 0;

      for (int it = 0; it < iterations; it++) {
        CAPTURE(it);
        // Every thread maps its own pages right above the boundary, where nothing exists yet:
        // all in one leaf table, each in its own leaf table, or runs of 3 pages back to back.
        std::vector<uint64_t> first(kThreads), count(kThreads);
        for (unsigned t = 0; t < kThreads; t++) {
          switch (it % 3) {
            case 0: first[t] = b + (5 * t + 1) * page, count[t] = 1; break;
            case 1: first[t] = b + t * span + 7 * page, count[t] = 1; break;
            case 2: first[t] = b + 3 * t * page, count[t] = 3; break;
          }
        }
        std::vector<uint64_t> pages;
        for (unsigned t = 0; t < kThreads; t++)
          for (uint64_t k = 0; k < count[t]; k++) pages.push_back(first[t] + k * page);
        const auto tables = tables_for(c, pages);

        const uint64_t allocs0 = platform->dma().total_allocations();
        Box<IoPgtable> pt = alloc_table(c, *platform);
        workers.run([&](unsigned t) {
          auto r = pt->map_pages(first[t], pa_of(first[t], t), page, count[t], IOMMU_READ);
          if (!r.ok() || r.value() != count[t] * page)
            errors.add(name + ": map_pages(" + hex(first[t]) +
                       ") = " + (r.ok() ? hex(r.value()) : std::to_string(r.error().code())));
        });
        errors.report();
        for (unsigned t = 0; t < kThreads; t++)
          for (uint64_t k = 0; k < count[t]; k++) {
            auto r = pt->iova_to_phys(first[t] + k * page);
            CHECK((r.ok() && r.value() == pa_of(first[t], t) + k * page));
          }
        CHECK(counters(*platform).dma - base.dma == 1 + static_cast<long>(tables.size()));
        const uint64_t lost = platform->dma().total_allocations() - allocs0 - 1 - tables.size();
        loser_pages += lost;
        contended += lost != 0;
        pt.reset();
        const Counters after = counters(*platform);
        REQUIRE(after.dma == base.dma);
        REQUIRE(after.kmalloc == base.kmalloc);
      }
      MESSAGE(name << ": " << iterations << " races, " << contended << " with CAS losers, "
                   << loser_pages << " loser table pages freed, nothing leaked");
    }
  }
}

// A barrier for threads that each have a CPU: spins, yielding only when it waits long.
class SpinBarrier {
 public:
  explicit SpinBarrier(unsigned n) : n_(n) {}
  void wait() {
    const unsigned gen = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
      count_.store(0, std::memory_order_relaxed);
      gen_.fetch_add(1, std::memory_order_release);
      return;
    }
    for (unsigned spins = 0; gen_.load(std::memory_order_acquire) == gen; spins++) {
      if (spins < 2000)
        cpu_relax();
      else
        std::this_thread::yield();
    }
  }

 private:
  const unsigned n_;
  std::atomic<unsigned> count_{0};
  std::atomic<unsigned> gen_{0};
};

// The race the cases above run into now and then, made likely. Two threads walk through 64
// leaf-table regions whose leaf tables are missing: in each, one maps a page and the other maps
// another page (or, in every fourth region, unmaps a page that is not mapped), each after a
// short random spin so that their relative timing keeps changing. Between rounds the leaf tables
// are removed again. About one race in 10^4 to 10^5 hits the window on a 2-CPU x86 host, so
// the 77k races per format make a miss of all ten formats very unlikely.
//
// Regression: the walk used to read the child slot, find it empty, then read the hardware entry
// and take any non-zero entry for a block. A concurrent mapper publishing a table in that entry
// between the two loads (CAS of the slot, then the entry) made the new table look like a block:
// the map of a disjoint range failed with -EEXIST, the unmap of a hole with -EINVAL. Now a
// non-zero entry is re-examined through the slot (engine.h child_of(): the slot is always set
// before the entry, whose store is a release), and both calls succeed.
TEST_CASE("a table published next to a mapper is not mistaken for a block") {
  // Per round each thread walks through kRegions leaf-table regions, racing the other for each
  // missing leaf table; the threads drift against each other, sweeping the window.
  constexpr unsigned kRegions = 64;
  const int rounds_wanted = kSanitized ? 400 : 1200;
  for (const FormatCase& c : kAllFormats) {
    SUBCASE(c.name) {
      const std::string name = c.name;
      INFO(name);
      auto platform = sim::Platform::create().release_value();
      const Counters base = counters(*platform);
      const Geometry geo = geometry_of(c);
      const uint64_t page = geo.page(), span = geo.leaf_span(), b = boundary_of(c);
      Box<IoPgtable> pt = alloc_table(c, *platform);
      // The tables above the leaf tables exist from here on; the races are for the leaf tables.
      REQUIRE(pt->map_pages(b + kRegions * span, b, page, 1, IOMMU_READ).ok());

      Errors errors;
      SpinBarrier barrier(2);
      std::atomic<bool> stop{false};
      std::atomic<int> rounds{0};
      std::atomic<unsigned> failures{0};
      auto body = [&](unsigned t) {
        std::minstd_rand jitter(t + 1);
        for (int round = 0; round < rounds_wanted; round++) {
          barrier.wait();
          if (stop.load(std::memory_order_relaxed)) break;
          for (unsigned region = 0; region < kRegions; region++) {
            for (unsigned spin = jitter() % 32; spin; spin--) cpu_relax();
            const uint64_t iova = b + region * span + (8 * t + 1) * page;
            if (t == 1 && region % 4 == 3) {
              IotlbGather gather;
              auto r = pt->unmap_pages(iova, page, 1, gather);
              gather.release_freelist();
              if (!r.ok() || r.value() != 0) {
                failures.fetch_add(1);
                errors.add(name + ": round " + std::to_string(round) + ": unmap_pages(" +
                           hex(iova) + ") of a hole = " +
                           (r.ok() ? hex(r.value()) : std::to_string(r.error().code())));
              }
            } else {
              auto r = pt->map_pages(iova, pa_of(iova, t), page, 1, IOMMU_READ);
              if (!r.ok() || r.value() != page) {
                failures.fetch_add(1);
                errors.add(name + ": round " + std::to_string(round) + ": map_pages(" + hex(iova) +
                           ") = " + (r.ok() ? hex(r.value()) : std::to_string(r.error().code())));
              }
            }
          }
          barrier.wait();
          if (t == 0) {
            // Remove the leaf tables: an entry at the leaf-table size that is a table goes whole.
            for (unsigned region = 0; region < kRegions; region++) {
              IotlbGather gather;
              auto r = pt->unmap_pages(b + region * span, span, 1, gather);
              gather.release_freelist();
              if (!r.ok() || r.value() != span) {
                errors.add(name + ": removing a leaf table failed");
                failures.fetch_add(1);
              }
            }
            rounds.store(round + 1, std::memory_order_relaxed);
            if (failures.load()) stop.store(true, std::memory_order_relaxed);
          }
        }
      };
      std::thread other(body, 1);
      body(0);
      other.join();
      errors.report();
      MESSAGE(name << ": " << rounds.load() * kRegions << " races in " << rounds.load()
                   << " rounds, " << failures.load() << " spurious failures");
      pt.reset();
      CHECK(counters(*platform).dma == base.dma);
      CHECK(counters(*platform).kmalloc == base.kmalloc);
    }
  }
}

}  // namespace
}  // namespace strata::pgtable_test
