// SPDX-License-Identifier: MIT
// alloc_iova_fast / free_iova_fast from several threads at once (iova.h: "every call may run
// from any number of threads"), in a space small enough that it fills up, so the rcache's
// slots, depot, drains and the flush-and-retry all run concurrently with the tree.
//
// Every pfn of the space has an owner word: a thread claims each pfn of a range it was given
// (compare-exchange from 0) and must find it unowned, so a range handed to two threads at once
// fails at once. Ranges are also passed between threads, so frees come from other slots than
// the allocations. Afterwards every range is freed, the caches flushed, the tree holds only
// the reservation, and destroying the domain returns every allocation.
// Run under ThreadSanitizer: bazel test --config=tsan //core/iova:concurrency_test
#include <stdint.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "core/iova/iova.h"
#include "testing/hosted/hosted.h"

namespace strata {
namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int kRounds = 50000;
#else
constexpr int kRounds = 200000;
#endif

constexpr unsigned long kStart = 1;
constexpr unsigned long kSpace = 1UL << 14;  // pfns [1, kSpace) are allocatable
constexpr unsigned long kReservedLo = 0x1000, kReservedHi = 0x10ff;

struct Range {
  unsigned long pfn;
  unsigned long size;     // as passed to alloc_iova_fast
  unsigned long rounded;  // what it occupies
  bool tree;              // from alloc_iova (freed with free_iova), not the fast path
};

class Owners {
 public:
  Owners() : owner_(new std::atomic<int>[kSpace]) {
    for (unsigned long i = 0; i < kSpace; i++) owner_[i].store(0);
  }
  // Claims every pfn of r for `who`; false if any was owned already.
  bool claim(const Range& r, int who) {
    bool ok = true;
    for (unsigned long p = r.pfn; p < r.pfn + r.rounded; p++) {
      int expected = 0;
      if (p >= kSpace || !owner_[p].compare_exchange_strong(expected, who)) ok = false;
    }
    return ok;
  }
  void release(const Range& r, int who) {
    for (unsigned long p = r.pfn; p < r.pfn + r.rounded; p++) {
      int expected = who;
      owner_[p].compare_exchange_strong(expected, 0);
    }
  }
  // Hands a range to another thread: the new owner takes each pfn over.
  void transfer(const Range& r, int from, int to) {
    for (unsigned long p = r.pfn; p < r.pfn + r.rounded; p++) {
      int expected = from;
      owner_[p].compare_exchange_strong(expected, to);
    }
  }

 private:
  std::unique_ptr<std::atomic<int>[]> owner_;
};

unsigned long rounded_size(unsigned long size) {
  if (size > IovaDomain::kMaxCachedSize) return size;
  unsigned long p = 1;
  while (p < size) p <<= 1;
  return p;
}

void run(int threads) {
  const long live = hosted::kmalloc_live();
  {
    auto made = IovaDomain::create(4096, kStart);
    REQUIRE(made.ok());
    Box<IovaDomain> d = made.release_value();
    REQUIRE(d->reserve_iova(kReservedLo, kReservedHi).ok());
    Owners owners;
    std::atomic<int> overlaps{0}, out_of_limit{0}, misaligned{0}, nomem{0}, errors{0};

    // Ranges in transit between threads.
    std::mutex handoff_mutex;
    std::vector<std::vector<Range>> handoff(threads);

    auto worker = [&](int id) {
      const int who = id + 1;
      std::mt19937_64 rng(0x10fa + id);
      auto in = [&](unsigned long lo, unsigned long hi) {
        return std::uniform_int_distribution<unsigned long>(lo, hi)(rng);
      };
      std::vector<Range> mine;
      auto free_range = [&](const Range& r) {
        owners.release(r, who);
        if (r.tree)
          d->free_iova(r.pfn);
        else
          d->free_iova_fast(r.pfn, r.size);
      };
      for (int round = 0; round < kRounds; round++) {
        const unsigned long op = in(0, 99);
        if (op < 50 || mine.empty()) {
          // Mostly the cacheable sizes, a few larger; a quarter limited to half the space.
          const unsigned long size = in(0, 9) ? in(1, 32) : in(33, 200);
          const unsigned long limit = in(0, 3) ? kSpace - 1 : kSpace / 2 - 1;
          const bool tree = in(0, 19) == 0;
          Range r{0, size, tree ? size : rounded_size(size), tree};
          if (tree) {
            auto got = d->alloc_iova(size, limit, false);
            if (!got.ok()) {
              (got.error().code() == -ENOMEM ? nomem : errors)++;
              continue;
            }
            r.pfn = got.value()->pfn_lo;
          } else {
            auto got = d->alloc_iova_fast(size, limit, in(0, 1));
            if (!got.ok()) {
              (got.error().code() == -ENOMEM ? nomem : errors)++;
              continue;
            }
            r.pfn = got.value();
            if (r.pfn % (size > IovaDomain::kMaxCachedSize ? 1 : r.rounded) != 0) misaligned++;
          }
          if (r.pfn < kStart || r.pfn + r.rounded - 1 > limit) out_of_limit++;
          if (!owners.claim(r, who)) overlaps++;
          mine.push_back(r);
        } else if (op < 90) {
          const size_t k = in(0, mine.size() - 1);
          const Range r = mine[k];
          mine[k] = mine.back();
          mine.pop_back();
          free_range(r);
        } else if (op < 97) {
          // Pass one to the next thread, and take what others passed here.
          const size_t k = in(0, mine.size() - 1);
          const Range r = mine[k];
          mine[k] = mine.back();
          mine.pop_back();
          const int to = (id + 1) % threads;
          owners.transfer(r, who, to + 1);
          std::lock_guard<std::mutex> lock(handoff_mutex);
          handoff[to].push_back(r);
        } else if (op < 99) {
          std::lock_guard<std::mutex> lock(handoff_mutex);
          for (const Range& r : handoff[id]) mine.push_back(r);
          handoff[id].clear();
        } else {
          if (in(0, 9) == 0) d->free_cached_iovas();
        }
      }
      for (const Range& r : mine) free_range(r);
    };

    std::vector<std::thread> pool;
    for (int i = 0; i < threads; i++) pool.emplace_back(worker, i);
    for (auto& t : pool) t.join();
    // What was still in transit belongs to its addressee, which has stopped.
    for (int id = 0; id < threads; id++)
      for (const Range& r : handoff[id]) {
        owners.release(r, id + 1);
        if (r.tree)
          d->free_iova(r.pfn);
        else
          d->free_iova_fast(r.pfn, r.size);
      }

    MESSAGE(threads, " threads: ", nomem.load(), " allocations found the space full");
    CHECK(overlaps == 0);
    CHECK(out_of_limit == 0);
    CHECK(misaligned == 0);
    CHECK(errors == 0);
    CHECK(nomem > 0);  // the space did fill up
    const char* broken = d->check_invariants();
    CHECK_MESSAGE(broken == nullptr, std::string(broken ? broken : ""));
    d->free_cached_iovas();
    CHECK(d->cached_pfns() == 0);
    std::vector<std::pair<unsigned long, unsigned long>> left;
    d->for_each_iova([&](const Iova& i) { left.emplace_back(i.pfn_lo, i.pfn_hi); });
    CHECK(left == std::vector<std::pair<unsigned long, unsigned long>>{{kReservedLo, kReservedHi}});
  }
  CHECK(hosted::kmalloc_live() == live);
}

TEST_CASE("two threads") { run(2); }
TEST_CASE("four threads") { run(4); }

}  // namespace
}  // namespace strata
