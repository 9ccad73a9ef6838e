// SPDX-License-Identifier: MIT
// The PASID allocator's contract (pasid.h): ranges, PASID 0, quotas, exhaustion, isolation
// between sets, bad input, reuse, and what destroying a set or a space does.
#include <stdint.h>

#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "core/pasid/pasid.h"
#include "testing/hosted/hosted.h"

namespace strata {
namespace {

Box<PasidSpace> space_of(ioasid_t min, ioasid_t max) {
  auto r = PasidSpace::create(min, max);
  REQUIRE(r.ok());
  return r.release_value();
}

Box<PasidSet> set_of(PasidSpace& space, unsigned quota) {
  auto r = PasidSet::create(space, quota);
  REQUIRE(r.ok());
  return r.release_value();
}

int code_of(const Result<ioasid_t>& r) { return r.ok() ? 0 : r.error().code(); }
int code_of(const Result<void>& r) { return r.ok() ? 0 : r.error().code(); }
int code_of(const Result<void*>& r) { return r.ok() ? 0 : r.error().code(); }

TEST_CASE("space creation: PASID 0 and 20 bits are enforced") {
  CHECK(PasidSpace::create(0, 10).error().code() == -EINVAL);  // RID_PASID
  CHECK(PasidSpace::create(5, 4).error().code() == -EINVAL);
  CHECK(PasidSpace::create(1, kPasidMax + 1).error().code() == -EINVAL);
  CHECK(PasidSpace::create(1, ~ioasid_t{0}).error().code() == -EINVAL);
  auto full = PasidSpace::create();
  REQUIRE(full.ok());
  CHECK(full.value()->min() == 1);
  CHECK(full.value()->max() == kPasidMax);
  auto one = PasidSpace::create(kPasidMax, kPasidMax);
  REQUIRE(one.ok());
  Box<PasidSet> s = set_of(*one.value(), 4);
  CHECK(s->alloc(0, ~ioasid_t{0}, nullptr).value() == kPasidMax);
  CHECK(code_of(s->alloc(0, ~ioasid_t{0}, nullptr)) == -ENOSPC);
}

TEST_CASE("set creation: quota 0 is refused") {
  Box<PasidSpace> space = space_of(1, 100);
  CHECK(PasidSet::create(*space, 0).error().code() == -EINVAL);
}

TEST_CASE("every PASID of the full space, and never 0") {
  Box<PasidSpace> space = space_of(1, kPasidMax);
  Box<PasidSet> s = set_of(*space, kPasidMax + 10);
  std::vector<bool> seen(kPasidMax + 1);
  for (ioasid_t i = 0; i < kPasidMax; i++) {
    auto r = s->alloc(0, kPasidMax, nullptr);
    REQUIRE(r.ok());
    REQUIRE(r.value() != kNoPasid);
    REQUIRE(r.value() <= kPasidMax);
    REQUIRE(!seen[r.value()]);
    seen[r.value()] = true;
  }
  CHECK(code_of(s->alloc(0, kPasidMax, nullptr)) == -ENOSPC);
  CHECK(s->used() == kPasidMax);
  CHECK(space->allocated() == kPasidMax);
  CHECK(s->used() < s->quota());  // namespace exhaustion, not the quota
  s->free_all();
  CHECK(s->used() == 0);
  CHECK(space->allocated() == 0);
}

TEST_CASE("the caller's range is honoured, intersected with the space's") {
  Box<PasidSpace> space = space_of(16, 1000);
  Box<PasidSet> s = set_of(*space, 1000);
  for (int i = 0; i < 50; i++) {
    ioasid_t p = s->alloc(100, 199, nullptr).value();
    CHECK(p >= 100);
    CHECK(p <= 199);
  }
  // Below the space: clipped to its min.
  ioasid_t low = s->alloc(1, 20, nullptr).value();
  CHECK(low >= 16);
  CHECK(low <= 20);
  // Above the space: clipped to its max.
  ioasid_t high = s->alloc(995, 5000, nullptr).value();
  CHECK(high >= 995);
  CHECK(high <= 1000);
  // Empty intersections and inverted ranges.
  CHECK(code_of(s->alloc(1, 15, nullptr)) == -EINVAL);
  CHECK(code_of(s->alloc(1001, 2000, nullptr)) == -EINVAL);
  CHECK(code_of(s->alloc(200, 100, nullptr)) == -EINVAL);
  CHECK(s->used() == 52);
  // A single-PASID range.
  ioasid_t single = s->alloc(500, 500, nullptr).value();
  CHECK(single == 500);
  CHECK(code_of(s->alloc(500, 500, nullptr)) == -ENOSPC);
}

TEST_CASE("next-fit: a freed PASID is not reused at once; the search wraps") {
  Box<PasidSpace> space = space_of(1, 8);
  Box<PasidSet> s = set_of(*space, 8);
  CHECK(s->alloc(1, 8, nullptr).value() == 1);
  CHECK(s->alloc(1, 8, nullptr).value() == 2);
  REQUIRE(s->free(1).ok());
  CHECK(s->alloc(1, 8, nullptr).value() == 3);
  for (ioasid_t want = 4; want <= 8; want++) CHECK(s->alloc(1, 8, nullptr).value() == want);
  CHECK(s->alloc(1, 8, nullptr).value() == 1);  // wrapped
  CHECK(code_of(s->alloc(1, 8, nullptr)) == -ENOSPC);
}

TEST_CASE("the quota is enforced exactly") {
  Box<PasidSpace> space = space_of(1, 1000);
  Box<PasidSet> s = set_of(*space, 7);
  std::vector<ioasid_t> got;
  for (int i = 0; i < 7; i++) got.push_back(s->alloc(1, 1000, nullptr).value());
  CHECK(s->used() == 7);
  CHECK(s->quota() == 7);
  CHECK(code_of(s->alloc(1, 1000, nullptr)) == -ENOSPC);
  CHECK(s->used() == s->quota());  // how a caller tells the quota from the namespace
  CHECK(space->allocated() == 7);
  // Another set is not limited by this one's quota.
  Box<PasidSet> t = set_of(*space, 3);
  for (int i = 0; i < 3; i++) CHECK(t->alloc(1, 1000, nullptr).ok());
  CHECK(code_of(t->alloc(1, 1000, nullptr)) == -ENOSPC);
  // Freeing one makes room for exactly one.
  REQUIRE(s->free(got[3]).ok());
  CHECK(s->used() == 6);
  CHECK(s->alloc(1, 1000, nullptr).ok());
  CHECK(code_of(s->alloc(1, 1000, nullptr)) == -ENOSPC);
}

TEST_CASE("namespace exhaustion is shared by the sets of a space") {
  Box<PasidSpace> space = space_of(1, 10);
  Box<PasidSet> a = set_of(*space, 100);
  Box<PasidSet> b = set_of(*space, 100);
  for (int i = 0; i < 6; i++) REQUIRE(a->alloc(1, 10, nullptr).ok());
  for (int i = 0; i < 4; i++) REQUIRE(b->alloc(1, 10, nullptr).ok());
  CHECK(code_of(a->alloc(1, 10, nullptr)) == -ENOSPC);
  CHECK(code_of(b->alloc(1, 10, nullptr)) == -ENOSPC);
  CHECK(a->used() < a->quota());
  CHECK(space->allocated() == 10);
  // Full in a sub-range, while the rest of the space has room.
  a->free_all();
  Box<PasidSet> c = set_of(*space, 100);
  // b holds 7..10 (next-fit after a's 1..6).
  CHECK(code_of(c->alloc(7, 10, nullptr)) == -ENOSPC);
  CHECK(c->alloc(1, 10, nullptr).ok());
}

TEST_CASE("find returns the private pointer; free then realloc") {
  Box<PasidSpace> space = space_of(1, 4);
  Box<PasidSet> s = set_of(*space, 4);
  int x = 0, y = 0;
  ioasid_t a = s->alloc(1, 4, &x).value();
  ioasid_t b = s->alloc(1, 4, &y).value();
  ioasid_t c = s->alloc(1, 4, nullptr).value();
  CHECK(s->find(a).value() == &x);
  CHECK(s->find(b).value() == &y);
  CHECK(s->find(c).value() == nullptr);
  REQUIRE(s->free(b).ok());
  CHECK(code_of(s->find(b)) == -ENOENT);
  CHECK(code_of(s->free(b)) == -ENOENT);  // twice
  ioasid_t d = s->alloc(1, 4, &y).value();
  ioasid_t e = s->alloc(1, 4, &x).value();
  CHECK(d == 4);
  CHECK(e == b);  // the freed one, once nothing else is left
  CHECK(s->find(e).value() == &x);
  CHECK(s->used() == 4);
}

TEST_CASE("a set can neither free nor find another set's PASIDs") {
  Box<PasidSpace> space = space_of(1, 100);
  Box<PasidSet> guest1 = set_of(*space, 10);
  Box<PasidSet> guest2 = set_of(*space, 10);
  int secret = 0;
  ioasid_t p1 = guest1->alloc(1, 100, &secret).value();
  ioasid_t p2 = guest2->alloc(1, 100, nullptr).value();
  // The same answer as for a PASID nobody holds: another set's PASID is invisible.
  CHECK(code_of(guest2->free(p1)) == -ENOENT);
  CHECK(code_of(guest2->find(p1)) == -ENOENT);
  CHECK(code_of(guest2->find(50)) == -ENOENT);
  CHECK(guest2->free_range(1, 100).value() == 1);  // only its own p2
  CHECK(guest1->find(p1).value() == &secret);
  CHECK(guest1->used() == 1);
  CHECK(code_of(guest1->find(p2)) == -ENOENT);
  CHECK(space->allocated() == 1);
  // A guest cannot take a PASID that is held by another set either.
  Box<PasidSet> guest3 = set_of(*space, 10);
  CHECK(code_of(guest3->alloc(p1, p1, nullptr)) == -ENOSPC);
}

TEST_CASE("bad PASIDs get clean errors") {
  Box<PasidSpace> space = space_of(10, 100);
  Box<PasidSet> s = set_of(*space, 10);
  REQUIRE(s->alloc(10, 100, nullptr).ok());
  for (ioasid_t bad :
       {ioasid_t{0}, ioasid_t{9}, ioasid_t{101}, kPasidMax, kPasidMax + 1, ~ioasid_t{0}}) {
    CAPTURE(bad);
    CHECK(code_of(s->free(bad)) == -EINVAL);
    CHECK(code_of(s->find(bad)) == -EINVAL);
  }
  CHECK(code_of(s->free(50)) == -ENOENT);
  CHECK(s->free_range(100, 10).error().code() == -EINVAL);
  CHECK(s->free_range(0, 9).value() == 0);
  CHECK(s->used() == 1);
}

TEST_CASE("free_range frees this set's PASIDs in the range") {
  Box<PasidSpace> space = space_of(1, 100);
  Box<PasidSet> s = set_of(*space, 100);
  for (int i = 0; i < 20; i++) REQUIRE(s->alloc(1, 100, nullptr).ok());  // 1..20
  CHECK(s->free_range(5, 9).value() == 5);
  CHECK(s->used() == 15);
  CHECK(code_of(s->find(5)) == -ENOENT);
  CHECK(code_of(s->find(9)) == -ENOENT);
  CHECK(s->find(4).ok());
  CHECK(s->find(10).ok());
  CHECK(s->free_range(5, 9).value() == 0);
  CHECK(s->free_range(0, ~ioasid_t{0}).value() == 15);
  CHECK(space->allocated() == 0);
}

TEST_CASE("destroying a set returns its PASIDs to the space, and its memory") {
  const long live = hosted::kmalloc_live();
  {
    Box<PasidSpace> space = space_of(1, 32);
    Box<PasidSet> keep = set_of(*space, 32);
    REQUIRE(keep->alloc(1, 32, nullptr).ok());
    {
      Box<PasidSet> s = set_of(*space, 32);
      for (int i = 0; i < 31; i++) REQUIRE(s->alloc(1, 32, nullptr).ok());
      CHECK(space->allocated() == 32);
      CHECK(code_of(keep->alloc(1, 32, nullptr)) == -ENOSPC);
    }
    CHECK(space->allocated() == 1);
    std::set<ioasid_t> again;
    for (int i = 0; i < 31; i++) again.insert(keep->alloc(1, 32, nullptr).value());
    CHECK(again.size() == 31);
    CHECK(keep->used() == 32);
  }
  CHECK(hosted::kmalloc_live() == live);
}

TEST_CASE("destroying a space with a live set is a BUG") {
  std::string msg = hosted::panic_message_of([] {
    auto space = PasidSpace::create(1, 10).release_value();
    auto set = PasidSet::create(*space, 1).release_value();
    space.reset();
    (void)set.release();  // unreachable: the reset panics
  });
  CHECK(msg.find("PasidSpace destroyed while PasidSets of it exist") != std::string::npos);
}

}  // namespace
}  // namespace strata
