// SPDX-License-Identifier: MIT
// Random operations on an IovaDomain and on a plain reference (a std::map of intervals searched
// gap by gap from the top), compared after every step.
//
// The tree is deterministic: alloc_iova must return exactly the reference's highest fit,
// reserve_iova exactly its merged reservation or -EBUSY, find_iova the same range. The fast
// path is not (what the rcache holds decides), so there the checks are that every range lies
// within its limit, is aligned, overlaps nothing live, that -ENOMEM after a flush means the
// reference has no room either, and that once the caches are flushed the tree holds exactly
// the reference's ranges. check_invariants runs throughout.
#include <stdint.h>

#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "core/iova/iova.h"
#include "testing/hosted/hosted.h"

namespace strata {
namespace {

unsigned long pow2_ceil(unsigned long n) {
  unsigned long p = 1;
  while (p < n) p <<= 1;
  return p;
}

struct Range {
  unsigned long hi;
  bool reserved;
};

// The reference: ranges by pfn_lo.
class Reference {
 public:
  explicit Reference(unsigned long start_pfn) : start_(start_pfn) {}

  // The highest place for `size` pfns ending at or below limit, gap by gap from the top.
  std::optional<unsigned long> place(unsigned long size, unsigned long limit, bool aligned) const {
    const unsigned long align = aligned ? pow2_ceil(size) : 1;
    unsigned long next_lo = limit + 1;  // the gap under consideration ends at next_lo - 1
    auto it = ranges_.upper_bound(limit);
    for (;;) {
      unsigned long gap_lo = start_;
      const bool bottom = it == ranges_.begin();
      if (!bottom) {
        auto below = std::prev(it);
        if (below->second.hi + 1 > gap_lo) gap_lo = below->second.hi + 1;
      }
      if (next_lo > gap_lo && next_lo - gap_lo >= size) {
        const unsigned long pfn = (next_lo - size) & ~(align - 1);
        if (pfn >= gap_lo) return pfn;
      }
      if (bottom) return std::nullopt;
      --it;
      if (it->first < next_lo) next_lo = it->first;
      if (next_lo <= start_) return std::nullopt;
    }
  }

  void insert(unsigned long lo, unsigned long hi, bool reserved) {
    CHECK(overlapping(lo, hi).empty());
    ranges_[lo] = {hi, reserved};
  }

  std::vector<unsigned long> overlapping(unsigned long lo, unsigned long hi) const {
    std::vector<unsigned long> v;
    auto it = ranges_.upper_bound(hi);
    while (it != ranges_.begin()) {
      --it;
      if (it->second.hi < lo) break;
      v.insert(v.begin(), it->first);
    }
    return v;
  }

  // reserve_iova's semantics: -EBUSY over an allocation, else the union with every
  // overlapping reservation.
  std::optional<std::pair<unsigned long, unsigned long>> reserve(unsigned long lo,
                                                                 unsigned long hi) {
    const auto over = overlapping(lo, hi);
    for (unsigned long k : over)
      if (!ranges_.at(k).reserved) return std::nullopt;
    unsigned long new_lo = lo, new_hi = hi;
    for (unsigned long k : over) {
      if (k < new_lo) new_lo = k;
      if (ranges_.at(k).hi > new_hi) new_hi = ranges_.at(k).hi;
      ranges_.erase(k);
    }
    ranges_[new_lo] = {new_hi, true};
    return std::make_pair(new_lo, new_hi);
  }

  std::optional<std::pair<unsigned long, unsigned long>> find(unsigned long pfn) const {
    auto it = ranges_.upper_bound(pfn);
    if (it == ranges_.begin()) return std::nullopt;
    --it;
    if (it->second.hi < pfn) return std::nullopt;
    return std::make_pair(it->first, it->second.hi);
  }

  void erase(unsigned long lo) { CHECK(ranges_.erase(lo) == 1); }
  const std::map<unsigned long, Range>& ranges() const { return ranges_; }

 private:
  unsigned long start_;
  std::map<unsigned long, Range> ranges_;
};

std::map<unsigned long, Range> tree_of(IovaDomain& d) {
  std::map<unsigned long, Range> m;
  d.for_each_iova([&](const Iova& i) { m[i.pfn_lo] = {i.pfn_hi, i.reserved()}; });
  return m;
}

bool same(const std::map<unsigned long, Range>& a, const std::map<unsigned long, Range>& b) {
  if (a.size() != b.size()) return false;
  for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib)
    if (ia->first != ib->first || ia->second.hi != ib->second.hi ||
        ia->second.reserved != ib->second.reserved)
      return false;
  return true;
}

void check(IovaDomain& d) {
  const char* broken = d.check_invariants();
  REQUIRE_MESSAGE(broken == nullptr, std::string(broken ? broken : ""));
}

struct Params {
  unsigned seed;
  size_t granule;
  unsigned long start_pfn;
  unsigned long space;  // every limit is below this
  int ops;
};

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int kOps = 8000;
#else
constexpr int kOps = 30000;
#endif

const Params kParams[] = {
    {1, 4096, 1, 2048, kOps},
    {2, 4096, 16, 4096, kOps},
    {3, 65536, 5, 1024, kOps},
    {4, 4096, 1, 1 << 16, kOps / 2},
};

class Random {
 public:
  explicit Random(unsigned seed) : rng_(seed) {}
  unsigned long in(unsigned long lo, unsigned long hi) {
    return std::uniform_int_distribution<unsigned long>(lo, hi)(rng_);
  }
  bool chance(int percent) { return in(0, 99) < static_cast<unsigned long>(percent); }
  // Mostly small, sometimes large: the sizes a DMA API sees.
  unsigned long size() {
    const unsigned long r = in(0, 99);
    if (r < 60) return in(1, 4);
    if (r < 90) return in(5, 64);
    return in(65, 400);
  }

 private:
  std::mt19937_64 rng_;
};

TEST_CASE("alloc_iova, free_iova, reserve_iova and find_iova match the reference exactly") {
  for (const Params& p : kParams) {
    CAPTURE(p.seed);
    const long live = hosted::kmalloc_live();
    {
      auto made = IovaDomain::create(p.granule, p.start_pfn);
      REQUIRE(made.ok());
      Box<IovaDomain> d = made.release_value();
      Reference ref(p.start_pfn);
      Random rnd(p.seed);
      std::vector<Iova*> allocated;
      int nomem = 0;
      for (int op = 0; op < p.ops; op++) {
        CAPTURE(op);
        const unsigned long r = rnd.in(0, 99);
        if (r < 45) {
          const unsigned long size = rnd.size();
          const bool aligned = rnd.chance(50);
          const unsigned long limit = rnd.chance(50)   ? p.space - 1
                                      : rnd.chance(50) ? p.space / 2 - 1
                                                       : rnd.in(p.start_pfn, p.space - 1);
          CAPTURE(size);
          CAPTURE(limit);
          CAPTURE(aligned);
          const auto want = ref.place(size, limit, aligned);
          auto got = d->alloc_iova(size, limit, aligned);
          if (!want) {
            REQUIRE_FALSE(got.ok());
            CHECK(got.error().code() == -ENOMEM);
            nomem++;
          } else {
            REQUIRE(got.ok());
            CHECK(got.value()->pfn_lo == *want);
            CHECK(got.value()->size() == size);
            ref.insert(*want, *want + size - 1, false);
            allocated.push_back(got.value());
          }
        } else if (r < 85) {
          if (allocated.empty()) continue;
          const size_t k = rnd.in(0, allocated.size() - 1);
          Iova* victim = allocated[k];
          allocated[k] = allocated.back();
          allocated.pop_back();
          ref.erase(victim->pfn_lo);
          if (rnd.chance(50))
            d->free_iova(rnd.in(victim->pfn_lo, victim->pfn_hi));
          else
            d->__free_iova(victim);
        } else if (r < 90) {
          const unsigned long lo = rnd.in(0, p.space - 1);
          const unsigned long hi = lo + rnd.in(0, 40);
          CAPTURE(lo);
          CAPTURE(hi);
          const auto want = ref.reserve(lo, hi);
          auto got = d->reserve_iova(lo, hi);
          if (!want) {
            REQUIRE_FALSE(got.ok());
            CHECK(got.error().code() == -EBUSY);
          } else {
            REQUIRE(got.ok());
            CHECK(got.value()->reserved());
            CHECK(got.value()->pfn_lo == want->first);
            CHECK(got.value()->pfn_hi == want->second);
          }
        } else if (r < 99) {
          const unsigned long pfn = rnd.in(0, p.space);
          const auto want = ref.find(pfn);
          Iova* got = d->find_iova(pfn);
          if (!want) {
            CHECK(got == nullptr);
          } else {
            REQUIRE(got != nullptr);
            CHECK(got->pfn_lo == want->first);
            CHECK(got->pfn_hi == want->second);
          }
        } else {
          // Bad input: size 0 and a limit below start_pfn.
          CHECK(d->alloc_iova(0, p.space - 1, false).error().code() == -EINVAL);
          if (p.start_pfn > 1)
            CHECK(d->alloc_iova(1, p.start_pfn - 1, false).error().code() == -EINVAL);
        }
        if (op % 500 == 0) {
          check(*d);
          REQUIRE(same(tree_of(*d), ref.ranges()));
        }
      }
      check(*d);
      REQUIRE(same(tree_of(*d), ref.ranges()));
      CHECK(nomem > 0);  // the space did fill up now and then
    }
    CHECK(hosted::kmalloc_live() == live);
  }
}

TEST_CASE("the fast path never overlaps, honours limits and alignment, and flushes") {
  for (const Params& p : kParams) {
    CAPTURE(p.seed);
    const long live = hosted::kmalloc_live();
    {
      auto made = IovaDomain::create(p.granule, p.start_pfn);
      REQUIRE(made.ok());
      Box<IovaDomain> d = made.release_value();
      Reference ref(p.start_pfn);  // live ranges and reservations; cached ranges are free
      Random rnd(p.seed + 100);
      struct Fast {
        unsigned long pfn, size;
      };
      std::vector<Fast> fast;
      std::vector<Iova*> tree;
      for (int op = 0; op < p.ops; op++) {
        CAPTURE(op);
        const unsigned long r = rnd.in(0, 99);
        if (r < 40) {
          const unsigned long size = rnd.chance(80) ? rnd.in(1, 32) : rnd.size();
          const unsigned long limit = rnd.chance(50)   ? p.space - 1
                                      : rnd.chance(50) ? p.space / 2 - 1
                                                       : rnd.in(p.start_pfn, p.space - 1);
          const bool flush = rnd.chance(70);
          CAPTURE(size);
          CAPTURE(limit);
          auto got = d->alloc_iova_fast(size, limit, flush);
          const unsigned long rounded = size <= IovaDomain::kMaxCachedSize ? pow2_ceil(size) : size;
          if (!got.ok()) {
            CHECK(got.error().code() == -ENOMEM);
            // After a flush the tree holds exactly the live ranges: no room there either.
            if (flush) CHECK_FALSE(ref.place(rounded, limit, true).has_value());
            continue;
          }
          const unsigned long pfn = got.value();
          CHECK(pfn >= p.start_pfn);
          CHECK(pfn + rounded - 1 <= limit);
          CHECK(pfn % pow2_ceil(rounded) == 0);
          REQUIRE(ref.overlapping(pfn, pfn + rounded - 1).empty());
          ref.insert(pfn, pfn + rounded - 1, false);
          fast.push_back({pfn, size});
        } else if (r < 80) {
          if (fast.empty()) continue;
          const size_t k = rnd.in(0, fast.size() - 1);
          const Fast f = fast[k];
          fast[k] = fast.back();
          fast.pop_back();
          ref.erase(f.pfn);
          d->free_iova_fast(f.pfn, f.size);
        } else if (r < 88) {
          // The tree path alongside: valid, but not exactly predictable (cached ranges are
          // allocated in the tree).
          const unsigned long size = rnd.size();
          auto got = d->alloc_iova(size, p.space - 1, rnd.chance(50));
          if (got.ok()) {
            REQUIRE(ref.overlapping(got.value()->pfn_lo, got.value()->pfn_hi).empty());
            ref.insert(got.value()->pfn_lo, got.value()->pfn_hi, false);
            tree.push_back(got.value());
          }
        } else if (r < 95) {
          if (tree.empty()) continue;
          const size_t k = rnd.in(0, tree.size() - 1);
          ref.erase(tree[k]->pfn_lo);
          d->__free_iova(tree[k]);
          tree[k] = tree.back();
          tree.pop_back();
        } else if (r < 97) {
          const unsigned long lo = rnd.in(0, p.space - 1);
          const unsigned long hi = lo + rnd.in(0, 8);
          const auto want = ref.reserve(lo, hi);
          auto got = d->reserve_iova(lo, hi);
          // Cached ranges are drained first, so only live ranges make it -EBUSY.
          REQUIRE(got.ok() == want.has_value());
          if (want) {
            CHECK(got.value()->pfn_lo == want->first);
            CHECK(got.value()->pfn_hi == want->second);
          }
        } else {
          d->free_cached_iovas();
          CHECK(d->cached_pfns() == 0);
          REQUIRE(same(tree_of(*d), ref.ranges()));
        }
        if (op % 500 == 0) check(*d);
      }
      check(*d);
      d->free_cached_iovas();
      REQUIRE(same(tree_of(*d), ref.ranges()));
      for (const Fast& f : fast) d->free_iova_fast(f.pfn, f.size);
      for (Iova* t : tree) d->__free_iova(t);
      d->free_cached_iovas();
      for (const auto& [lo, range] : tree_of(*d)) CHECK(range.reserved);
      check(*d);
    }
    CHECK(hosted::kmalloc_live() == live);
  }
}

}  // namespace
}  // namespace strata
