// SPDX-License-Identifier: MIT
// kmalloc failures in the PASID allocator: a scripted sequence that reaches every allocation
// point (the space's bitmap and the space itself, a set, a PASID's node) is run once per
// allocation, with that allocation failing (hosted::fail_kmalloc_nth). Each time the failing
// call is -ENOMEM and changed nothing (the sets' PASIDs, their private pointers and the
// space's count are as before), and tearing everything down returns every allocation.
#include <stdint.h>

#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "core/pasid/pasid.h"
#include "testing/hosted/hosted.h"

namespace strata {
namespace {

constexpr ioasid_t kMin = 1, kMax = 200;

// Every PASID of the space with the set holding it (0 none, 1 or 2) and its private pointer.
using Snapshot = std::vector<std::pair<int, void*>>;

Snapshot snapshot(const PasidSpace& space, const PasidSet* a, const PasidSet* b) {
  Snapshot s(kMax + 1, {0, nullptr});
  for (ioasid_t p = kMin; p <= kMax; p++) {
    int owners = 0;
    if (a) {
      if (auto r = a->find(p); r.ok()) s[p] = {1, r.value()}, owners++;
    }
    if (b) {
      if (auto r = b->find(p); r.ok()) s[p] = {2, r.value()}, owners++;
    }
    CHECK(owners <= 1);
  }
  s[0] = {static_cast<int>(space.allocated()), nullptr};
  return s;
}

// Returns how many calls failed with -ENOMEM.
int run_sequence() {
  int failures = 0;
  auto made = PasidSpace::create(kMin, kMax);
  if (!made.ok()) {
    CHECK(made.error().code() == -ENOMEM);
    return 1;
  }
  Box<PasidSpace> space = made.release_value();

  Box<PasidSet> sets[2];
  for (auto& s : sets) {
    auto r = PasidSet::create(*space, 50);
    if (!r.ok()) {
      CHECK(r.error().code() == -ENOMEM);
      failures++;
      continue;
    }
    s = r.release_value();
  }
  static int cookies[64];
  for (int i = 0; i < 64; i++) {
    PasidSet* s = sets[i % 2].get();
    if (!s) continue;
    const Snapshot before = snapshot(*space, sets[0].get(), sets[1].get());
    const unsigned used = s->used();
    auto r = s->alloc(kMin + i, kMax, &cookies[i]);
    if (!r.ok()) {
      CHECK(r.error().code() == -ENOMEM);
      CHECK(s->used() == used);
      CHECK(snapshot(*space, sets[0].get(), sets[1].get()) == before);
      failures++;
      continue;
    }
    CHECK(s->find(r.value()).value() == &cookies[i]);
    // Churn: free some, so later allocations reuse and wrap.
    if (i % 3 == 0) CHECK(s->free(r.value()).ok());
  }
  if (sets[0]) (void)sets[0]->free_range(kMin, kMax / 2).value();
  // Teardown in the required order: the sets, then the space.
  for (auto& s : sets) s.reset();
  CHECK(space->allocated() == 0);
  return failures;
}

TEST_CASE("every kmalloc failing in turn") {
  const long live = hosted::kmalloc_live();
  const long before = hosted::kmalloc_count();
  CHECK(run_sequence() == 0);
  const long total = hosted::kmalloc_count() - before;
  CHECK(hosted::kmalloc_live() == live);
  REQUIRE(total > 40);  // the sequence reaches every kind of allocation several times

  for (long n = 0; n < total; n++) {
    CAPTURE(n);
    hosted::fail_kmalloc_nth(n);
    CHECK(run_sequence() == 1);
    hosted::fail_kmalloc_nth(-1);
    CHECK(hosted::kmalloc_live() == live);
  }
}

}  // namespace
}  // namespace strata
