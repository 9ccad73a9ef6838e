// SPDX-License-Identifier: MIT
// Several sets of one space used from several threads at once (pasid.h: "every call may run
// from any number of threads"), in a space small enough that it fills up, so allocation,
// exhaustion and frees race across sets on the space's bitmap.
//
// Every PASID of the space has an owner word: a thread claims each PASID it was given
// (compare-exchange from 0) and must find it unowned, so a PASID handed out twice fails at
// once; it releases the word before freeing the PASID. Each thread also checks that find()
// returns its own private pointer and that another set's PASIDs are invisible to it, and
// one pair of threads shares a set to race on the quota. Afterwards every set is destroyed
// and the space holds nothing.
// Run under ThreadSanitizer: bazel test --config=tsan //core/pasid:concurrency_test
#include <stdint.h>

#include <atomic>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "core/pasid/pasid.h"
#include "testing/hosted/hosted.h"

namespace strata {
namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int kRounds = 20000;
#else
constexpr int kRounds = 100000;
#endif

constexpr ioasid_t kMin = 1, kMax = 256;
constexpr int kThreads = 4;
constexpr unsigned kQuota = 96;  // 3 sets * 96 > 255: the space runs out before the quotas

TEST_CASE("alloc/free churn on one space from several threads") {
  const long live = hosted::kmalloc_live();
  Box<PasidSpace> space = PasidSpace::create(kMin, kMax).release_value();
  // Threads 0 and 1 share set 0 (racing on its quota); threads 2 and 3 have sets 1 and 2.
  Box<PasidSet> sets[3];
  for (auto& s : sets) s = PasidSet::create(*space, kQuota).release_value();
  auto set_of = [&](int t) { return sets[t < 2 ? 0 : t - 1].get(); };

  auto owner = std::make_unique<std::atomic<int>[]>(kMax + 1);
  for (ioasid_t p = 0; p <= kMax; p++) owner[p].store(0);
  std::atomic<int> errors{0};
  std::atomic<long> enospc{0};

  auto worker = [&](int t) {
    PasidSet* set = set_of(t);
    PasidSet* other = set_of((t + 2) % kThreads);  // a set this thread does not use
    std::mt19937 rng(t + 1);
    std::vector<ioasid_t> held;
    int cookie = 0;
    for (int i = 0; i < kRounds; i++) {
      if (held.empty() || rng() % 2) {
        ioasid_t lo = kMin + rng() % 64;
        auto r = set->alloc(lo, kMax, &cookie);
        if (!r.ok()) {
          if (r.error().code() != -ENOSPC) errors++;
          enospc++;
          continue;
        }
        const ioasid_t p = r.value();
        int expect = 0;
        if (p < lo || p > kMax || !owner[p].compare_exchange_strong(expect, t + 1)) errors++;
        held.push_back(p);
      } else {
        const size_t k = rng() % held.size();
        const ioasid_t p = held[k];
        held[k] = held.back();
        held.pop_back();
        if (owner[p].load() != t + 1) errors++;
        auto f = set->find(p);
        if (!f.ok() || f.value() != &cookie) errors++;
        if (other != set) {
          // Invisible to a set that does not hold it, whatever that set is doing.
          auto g = other->find(p);
          if (g.ok() || g.error().code() != -ENOENT) errors++;
          auto h = other->free(p);
          if (h.ok() || h.error().code() != -ENOENT) errors++;
        }
        owner[p].store(0);
        if (!set->free(p).ok()) errors++;
      }
      if (set->used() > set->quota()) errors++;
    }
    for (ioasid_t p : held) {
      owner[p].store(0);
      if (!set->free(p).ok()) errors++;
    }
  };

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) threads.emplace_back(worker, t);
  for (auto& th : threads) th.join();

  CHECK(errors.load() == 0);
  CHECK(enospc.load() > 0);  // the space or a quota did fill up
  for (auto& s : sets) CHECK(s->used() == 0);
  CHECK(space->allocated() == 0);
  for (auto& s : sets) s.reset();
  space.reset();
  CHECK(hosted::kmalloc_live() == live);
}

}  // namespace
}  // namespace strata
