// SPDX-License-Identifier: MIT
// The IOVA allocator's contract (iova.h): top-down placement, alignment, limits, exhaustion,
// reservations, find/free, the rcache, and bad input.
#include "core/iova/iova.h"

#include <stdint.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "testing/hosted/hosted.h"

namespace strata {
namespace {

constexpr unsigned long kPfn32 = (1UL << 32 >> 12) - 1;  // the last 4 KiB page below 4 GiB

Box<IovaDomain> domain(unsigned long start_pfn = 1, size_t granule = 4096) {
  auto r = IovaDomain::create(granule, start_pfn);
  REQUIRE(r.ok());
  return r.release_value();
}

Iova* alloc(IovaDomain& d, unsigned long size, unsigned long limit, bool aligned = false) {
  auto r = d.alloc_iova(size, limit, aligned);
  REQUIRE_MESSAGE(r.ok(), "alloc_iova(", size, ", ", limit, ") failed");
  return r.value();
}

// The rcache slot follows the stack frame of whoever calls alloc_iova_fast / free_iova_fast
// (iova.cc, "The rcache"): these helpers are inlined into the test bodies, so that the
// allocations and frees of one test use one slot and a freed pfn comes back LIFO.
__attribute__((always_inline)) inline unsigned long alloc_fast(IovaDomain& d, unsigned long size,
                                                               unsigned long limit,
                                                               bool flush = true) {
  auto r = d.alloc_iova_fast(size, limit, flush);
  REQUIRE_MESSAGE(r.ok(), "alloc_iova_fast(", size, ", ", limit, ") failed");
  return r.value();
}

void check(IovaDomain& d) {
  const char* broken = d.check_invariants();
  CHECK_MESSAGE(broken == nullptr, std::string(broken ? broken : ""));
}

std::vector<std::pair<unsigned long, unsigned long>> ranges(IovaDomain& d) {
  std::vector<std::pair<unsigned long, unsigned long>> v;
  d.for_each_iova([&](const Iova& i) { v.emplace_back(i.pfn_lo, i.pfn_hi); });
  return v;
}

TEST_CASE("create checks the granule and start_pfn") {
  for (size_t g : {size_t{0}, size_t{2048}, size_t{4097}, size_t{6144}}) {
    auto r = IovaDomain::create(g, 1);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == -EINVAL);
  }
  auto zero = IovaDomain::create(4096, 0);
  REQUIRE_FALSE(zero.ok());
  CHECK(zero.error().code() == -EINVAL);

  auto d = domain(1, 65536);
  CHECK(d->granule() == 65536);
  CHECK(d->shift() == 16);
  CHECK(d->max_pfn() == (~0UL >> 16));
  CHECK(d->iova_pfn(0x12345678) == 0x1234);
  CHECK(d->iova_offset(0x12345678) == 0x5678);
  CHECK(d->iova_align(1) == 65536);
  check(*d);
}

TEST_CASE("allocations are placed top-down, at the highest free place") {
  auto d = domain();
  Iova* a = alloc(*d, 1, kPfn32);
  CHECK(a->pfn_lo == kPfn32);
  CHECK(a->pfn_hi == kPfn32);
  Iova* b = alloc(*d, 1, kPfn32);
  CHECK(b->pfn_lo == kPfn32 - 1);
  // 4 pfns aligned to 4, below kPfn32 - 1: the top aligned block ends at kPfn32 - 4.
  Iova* c = alloc(*d, 4, kPfn32, true);
  CHECK(c->pfn_lo == kPfn32 - 7);
  CHECK(c->size() == 4);
  // The hole left between b and c is the highest free place for 2 pfns.
  Iova* e = alloc(*d, 2, kPfn32);
  CHECK(e->pfn_lo == kPfn32 - 3);
  // A freed range in the middle is reused before anything lower.
  const unsigned long hole = b->pfn_lo;
  d->__free_iova(b);
  CHECK(alloc(*d, 1, kPfn32)->pfn_lo == hole);
  // Without a limit below max_pfn, the top of the space.
  CHECK(alloc(*d, 1, ~0UL)->pfn_lo == d->max_pfn());
  check(*d);
}

TEST_CASE("size_aligned aligns to the size rounded up to a power of two") {
  auto d = domain();
  const unsigned long limit = 0x10000 - 2;  // odd tops force the alignment to bite
  for (unsigned long size : {1UL, 2UL, 3UL, 5UL, 8UL, 13UL, 32UL, 100UL, 1000UL}) {
    Iova* i = alloc(*d, size, limit, true);
    unsigned long align = 1;
    while (align < size) align <<= 1;
    CHECK(i->pfn_lo % align == 0);
    CHECK(i->size() == size);
    CHECK(i->pfn_hi <= limit);
  }
  // Unaligned: exactly at the top.
  auto d2 = domain();
  Iova* u = alloc(*d2, 3, limit);
  CHECK(u->pfn_hi == limit);
  check(*d);
  check(*d2);
}

TEST_CASE("limits: a 32-bit device is served below 4 GiB") {
  auto d = domain();
  Iova* high = alloc(*d, 16, ~0UL, true);
  CHECK(high->pfn_hi == d->max_pfn());
  Iova* low = alloc(*d, 16, kPfn32, true);
  CHECK(low->pfn_hi == kPfn32);
  // A limit above max_pfn is max_pfn.
  Iova* next = alloc(*d, 1, ~0UL - 5);
  CHECK(next->pfn_hi == high->pfn_lo - 1);
  // A limit inside an allocation: below it.
  Iova* under = alloc(*d, 1, kPfn32 - 3);
  CHECK(under->pfn_lo == kPfn32 - 16);
  // The very top can be reserved like anything else.
  auto top = domain();
  CHECK(top->reserve_iova(top->max_pfn() - 1, top->max_pfn()).ok());
  CHECK(alloc(*top, 1, ~0UL)->pfn_lo == top->max_pfn() - 2);
  check(*top);
  // Odd limits: the range always ends at or below them.
  for (unsigned long limit = 1000; limit < 1100; limit += 7) {
    Iova* i = alloc(*d, 5, limit, true);
    CHECK(i->pfn_hi <= limit);
    CHECK(i->pfn_lo % 8 == 0);
  }
  check(*d);
}

TEST_CASE("exhaustion is -ENOMEM and changes nothing; freeing recovers") {
  const long live = hosted::kmalloc_live();
  {
    auto d = domain(16);
    std::vector<Iova*> all;
    for (int i = 0; i < 16; i++) all.push_back(alloc(*d, 1, 31));
    CHECK(all.back()->pfn_lo == 16);
    const auto before = ranges(*d);
    const long live_before = hosted::kmalloc_live();
    auto r = d->alloc_iova(1, 31, false);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == -ENOMEM);
    CHECK(ranges(*d) == before);
    CHECK(hosted::kmalloc_live() == live_before);
    // Too big for the whole range.
    auto big = d->alloc_iova(17, 31, false);
    CHECK(big.error().code() == -ENOMEM);
    // Room for 2 that alignment defeats: [20, 21] is free but a 2-aligned pair needs 20 or 22.
    d->free_iova(21);
    d->free_iova(22);
    auto misaligned = d->alloc_iova(2, 31, true);
    CHECK(misaligned.error().code() == -ENOMEM);
    CHECK(alloc(*d, 2, 31, false)->pfn_lo == 21);
    d->free_iova(21);
    d->free_iova(23);
    CHECK(alloc(*d, 2, 31, true)->pfn_lo == 22);
    check(*d);
  }
  CHECK(hosted::kmalloc_live() == live);
}

TEST_CASE("bad input to the tree is -EINVAL or a warning, never a change") {
  auto d = domain(16);
  CHECK(d->alloc_iova(0, 100, false).error().code() == -EINVAL);
  CHECK(d->alloc_iova(1, 15, false).error().code() == -EINVAL);
  CHECK(d->alloc_iova_fast(0, 100, true).error().code() == -EINVAL);
  CHECK(d->alloc_iova_fast(1, 15, true).error().code() == -EINVAL);
  CHECK(d->reserve_iova(10, 9).error().code() == -EINVAL);
  CHECK(d->reserve_iova(1, d->max_pfn() + 1).error().code() == -EINVAL);

  Iova* a = alloc(*d, 4, 100);
  Iova* r = d->reserve_iova(50, 60).value();
  unsigned long fast = alloc_fast(*d, 1, 100);
  const auto before = ranges(*d);
  hosted::LogCapture log;
  d->free_iova(10);          // below start, nothing there
  d->free_iova(70);          // free
  d->free_iova(55);          // reserved
  d->free_iova(fast);        // from alloc_iova_fast: free_iova_fast only
  d->__free_iova(r);         // reserved
  d->free_iova_fast(0, 1);   // pfn 0 is never allocated
  d->free_iova_fast(81, 2);  // misaligned for its size class
  d->free_iova_fast(a->pfn_lo, 0);
  d->free_iova_fast(70, 64);  // not cacheable, and not allocated
  CHECK(ranges(*d) == before);
  int warnings = 0;
  for (const auto& line : log.lines())
    if (line.text.find("WARNING") != std::string::npos) warnings++;
  CHECK(warnings == 9);
  check(*d);
}

TEST_CASE("find_iova and free_iova") {
  auto d = domain();
  Iova* a = alloc(*d, 8, 0x1000, true);  // [0xff8, 0xfff]
  Iova* b = alloc(*d, 3, 0x1000);        // [0xff5, 0xff7]
  CHECK(d->find_iova(0xff8) == a);
  CHECK(d->find_iova(0xffc) == a);
  CHECK(d->find_iova(0xfff) == a);
  CHECK(d->find_iova(0x1000) == nullptr);
  CHECK(d->find_iova(0xff5) == b);
  CHECK(d->find_iova(0xff4) == nullptr);
  CHECK(d->find_iova(0) == nullptr);
  CHECK(d->find_iova(~0UL) == nullptr);
  // Any pfn inside a range frees it.
  d->free_iova(0xffd);
  CHECK(d->find_iova(0xff8) == nullptr);
  CHECK(d->find_iova(0xff6) == b);
  d->__free_iova(b);
  CHECK(ranges(*d).empty());
  check(*d);
}

TEST_CASE("reserve_iova keeps ranges out of every allocation") {
  auto d = domain(1);
  // The MSI window below 4 GiB and a hole in a small space.
  Iova* msi = d->reserve_iova(0xfee00, 0xfeeff).value();
  CHECK(msi->reserved());
  CHECK(d->reserve_iova(0x100, 0x1ff).ok());
  for (int i = 0; i < 0x200; i++) {
    auto r = d->alloc_iova(1, 0x2ff, false);
    if (!r.ok()) {
      CHECK(r.error().code() == -ENOMEM);
      break;
    }
    CHECK((r.value()->pfn_lo < 0x100 || r.value()->pfn_lo > 0x1ff));
  }
  // 0x2ff - 0x100 + 1 pfns were free below 0x2ff, minus the reservation.
  int allocated = 0;
  d->for_each_iova([&](const Iova& i) { allocated += !i.reserved() && i.pfn_hi <= 0x2ff; });
  CHECK(allocated == 0x2ff - 0x100);
  // A large allocation whose highest aligned place would cover the MSI window goes below it.
  Iova* big = alloc(*d, 0x200, 0xfefff, true);
  CHECK(big->pfn_lo == 0xfec00);
  check(*d);
}

TEST_CASE("reserve_iova merges overlapping reservations") {
  auto d = domain(16);
  Iova* a = d->reserve_iova(100, 110).value();
  Iova* b = d->reserve_iova(120, 130).value();
  CHECK(a != b);
  // Inside an existing one: that one.
  CHECK(d->reserve_iova(102, 105).value() == a);
  // Across both and beyond: one reservation covering the union.
  Iova* m = d->reserve_iova(105, 140).value();
  CHECK(m->pfn_lo == 100);
  CHECK(m->pfn_hi == 140);
  CHECK(ranges(*d) == std::vector<std::pair<unsigned long, unsigned long>>{{100, 140}});
  // Extending downwards.
  Iova* down = d->reserve_iova(90, 100).value();
  CHECK(down->pfn_lo == 90);
  CHECK(down->pfn_hi == 140);
  // Adjacent is not overlapping: a second reservation.
  CHECK(d->reserve_iova(141, 150).value() != down);
  // Below start_pfn is allowed (and changes nothing for allocations).
  CHECK(d->reserve_iova(0, 20).ok());
  check(*d);
  for (int i = 0; i < 40; i++) {
    auto r = d->alloc_iova(1, 160, false);
    REQUIRE(r.ok());
    CHECK((r.value()->pfn_lo < 90 || r.value()->pfn_lo > 150));
    CHECK(r.value()->pfn_lo >= 21);
  }
  check(*d);
}

TEST_CASE("reserve_iova over a live allocation is -EBUSY; cached ranges are drained") {
  auto d = domain(16);
  Iova* live = alloc(*d, 4, 100);
  const auto before = ranges(*d);
  auto r = d->reserve_iova(90, 98);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == -EBUSY);
  CHECK(ranges(*d) == before);
  CHECK(d->find_iova(live->pfn_lo) == live);

  // A live fast allocation blocks it too.
  unsigned long fast = alloc_fast(*d, 1, 50);
  CHECK(d->reserve_iova(fast, fast).error().code() == -EBUSY);
  // Once freed it only sits in the rcache, which reserve_iova drains.
  d->free_iova_fast(fast, 1);
  CHECK(d->cached_pfns() == 1);
  Iova* res = d->reserve_iova(fast - 1, fast + 1).value();
  CHECK(res->pfn_lo == fast - 1);
  CHECK(d->cached_pfns() == 0);
  check(*d);
}

TEST_CASE("rcache: a freed pfn is handed back by the next allocation of its size") {
  const long live = hosted::kmalloc_live();
  {
    auto d = domain();
    // A miss: from the tree, top-down.
    const unsigned long p = alloc_fast(*d, 1, kPfn32);
    CHECK(p == kPfn32);
    const unsigned long q = alloc_fast(*d, 1, kPfn32);
    CHECK(q == kPfn32 - 1);
    d->free_iova_fast(p, 1);
    CHECK(d->cached_pfns() == 1);
    // Cached ranges stay allocated in the tree.
    CHECK(d->find_iova(p) != nullptr);
    CHECK(alloc_fast(*d, 1, kPfn32) == p);
    CHECK(d->cached_pfns() == 0);

    // Sizes round up to a power of two, so 3 and 4 share a class and an alignment.
    const unsigned long t = alloc_fast(*d, 3, kPfn32);
    CHECK(t % 4 == 0);
    CHECK(d->find_iova(t)->size() == 4);
    d->free_iova_fast(t, 3);
    CHECK(alloc_fast(*d, 4, kPfn32) == t);
    // Another class does not take it.
    d->free_iova_fast(t, 4);
    const unsigned long two = alloc_fast(*d, 2, kPfn32);
    CHECK(two != t);
    CHECK(d->cached_pfns() == 1);

    // A cached pfn above a device's limit is not handed to it.
    const unsigned long hi = alloc_fast(*d, 1, ~0UL);
    d->free_iova_fast(hi, 1);
    const unsigned long lo = alloc_fast(*d, 1, kPfn32);
    CHECK(lo <= kPfn32);
    CHECK(d->cached_pfns() == 2);
    CHECK(alloc_fast(*d, 1, ~0UL) == hi);

    // Hits allocate nothing: alloc+free pairs on a warm cache never call kmalloc.
    const long count = hosted::kmalloc_count();
    for (int i = 0; i < 1000; i++) {
      const unsigned long x = alloc_fast(*d, 1 + i % 32, kPfn32);
      d->free_iova_fast(x, 1 + i % 32);
    }
    const long warm = hosted::kmalloc_count();
    for (int i = 0; i < 1000; i++) {
      const unsigned long x = alloc_fast(*d, 1 + i % 32, kPfn32);
      d->free_iova_fast(x, 1 + i % 32);
    }
    CHECK(hosted::kmalloc_count() == warm);
    CHECK(warm > count);

    // Sizes above 32 pfns are neither rounded nor cached.
    const unsigned long big = alloc_fast(*d, 33, kPfn32);
    CHECK(d->find_iova(big)->size() == 33);
    CHECK(big % 64 == 0);
    d->free_iova_fast(big, 33);
    CHECK(d->find_iova(big) == nullptr);
    check(*d);
  }
  CHECK(hosted::kmalloc_live() == live);
}

TEST_CASE("rcache: magazines, the depot, and what does not fit") {
  const long live = hosted::kmalloc_live();
  {
    auto d = domain();
    const unsigned long slot_pfns = 2 * IovaDomain::kMagSize;
    const unsigned long depot_pfns = IovaDomain::kMaxGlobalMags * IovaDomain::kMagSize;
    const unsigned long n = slot_pfns + depot_pfns + 300;
    std::vector<unsigned long> pfns;
    for (unsigned long i = 0; i < n; i++) pfns.push_back(alloc_fast(*d, 2, ~0UL));
    std::set<unsigned long> distinct(pfns.begin(), pfns.end());
    CHECK(distinct.size() == n);
    for (unsigned long p : pfns) d->free_iova_fast(p, 2);
    // The slot and the depot are full; the rest went back to the tree.
    const unsigned long cached = d->cached_pfns();
    CHECK(cached <= slot_pfns + depot_pfns);
    CHECK(cached >= depot_pfns);
    check(*d);
    unsigned long in_tree = 0;
    d->for_each_iova([&](const Iova&) { in_tree++; });
    CHECK(in_tree == cached);
    // Everything cached comes back from the cache, from the slot and then the depot.
    std::set<unsigned long> again;
    for (unsigned long i = 0; i < cached; i++) again.insert(alloc_fast(*d, 2, ~0UL));
    CHECK(again.size() == cached);
    CHECK(d->cached_pfns() == 0);
    for (unsigned long p : again) CHECK(distinct.count(p) == 1);
    for (unsigned long p : again) d->free_iova_fast(p, 2);
    check(*d);
    d->free_cached_iovas();
    CHECK(d->cached_pfns() == 0);
    CHECK(ranges(*d).empty());
    check(*d);
  }
  CHECK(hosted::kmalloc_live() == live);
}

TEST_CASE("rcache: a full tree flushes the caches when asked") {
  const long live = hosted::kmalloc_live();
  {
    auto d = domain(64);
    const unsigned long limit = 127;  // 64 pfns
    std::vector<unsigned long> pfns;
    for (int i = 0; i < 64; i++) pfns.push_back(alloc_fast(*d, 1, limit));
    CHECK(d->alloc_iova_fast(1, limit, true).error().code() == -ENOMEM);
    for (unsigned long p : pfns) d->free_iova_fast(p, 1);
    CHECK(d->cached_pfns() == 64);
    // A different size cannot use the cached pfns: without a flush there is no room...
    auto no = d->alloc_iova_fast(2, limit, false);
    REQUIRE_FALSE(no.ok());
    CHECK(no.error().code() == -ENOMEM);
    CHECK(d->cached_pfns() == 64);
    // ...with one, everything cached goes back to the tree and the allocation succeeds.
    const unsigned long two = alloc_fast(*d, 2, limit, true);
    CHECK(two == 126);
    CHECK(d->cached_pfns() == 0);
    unsigned long n = 0;
    d->for_each_iova([&](const Iova&) { n++; });
    CHECK(n == 1);
    // And the whole space is usable again.
    for (int i = 0; i < 62; i++) alloc_fast(*d, 1, limit, false);
    CHECK(d->alloc_iova_fast(1, limit, true).error().code() == -ENOMEM);
    check(*d);
  }
  CHECK(hosted::kmalloc_live() == live);
}

TEST_CASE("the destructor frees ranges, reservations and cached magazines") {
  const long live = hosted::kmalloc_live();
  {
    auto d = domain();
    CHECK(d->reserve_iova(0x100, 0x200).ok());
    for (int i = 0; i < 10; i++) alloc(*d, 7, kPfn32, i % 2);
    std::vector<unsigned long> pfns;
    for (int i = 0; i < 1000; i++) pfns.push_back(alloc_fast(*d, 1 + i % 40, ~0UL));
    for (int i = 0; i < 1000; i += 2) d->free_iova_fast(pfns[i], 1 + i % 40);
    CHECK(d->cached_pfns() > 0);
    check(*d);
  }
  CHECK(hosted::kmalloc_live() == live);
}

}  // namespace
}  // namespace strata
