// SPDX-License-Identifier: MIT
#include "arch/memory.h"

#include <doctest/doctest.h>

#include <cstdint>

#include "testing/hosted/hosted.h"

namespace strata {
namespace {

struct Counted {
  explicit Counted(int* alive) : alive(alive) { ++*alive; }
  ~Counted() { --*alive; }
  int* alive;
  alignas(64) char payload[100];
};

TEST_CASE("make_box places, aligns and destroys") {
  const long live = hosted::kmalloc_live();
  int alive = 0;
  {
    auto r = make_box<Counted>(&alive);
    REQUIRE(r.ok());
    Box<Counted> box = r.release_value();
    CHECK(alive == 1);
    CHECK(reinterpret_cast<uintptr_t>(box.get()) % 64 == 0);
    CHECK(hosted::kmalloc_live() == live + 1);

    Box<Counted> moved = std::move(box);
    CHECK_FALSE(box);
    CHECK(moved);
    CHECK(alive == 1);
  }
  CHECK(alive == 0);
  CHECK(hosted::kmalloc_live() == live);
}

TEST_CASE("allocation failure is -ENOMEM, and nothing is constructed") {
  int alive = 0;
  hosted::fail_kmalloc_nth(0);
  auto r = make_box<Counted>(&alive);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == -ENOMEM);
  CHECK(alive == 0);
  // The injection fails once only.
  CHECK(make_box<Counted>(&alive).ok());
  CHECK(alive == 0);
}

TEST_CASE("fail_kmalloc_nth fails exactly the n-th allocation") {
  hosted::fail_kmalloc_nth(2);
  void* a = kmalloc(8);
  void* b = kmalloc(8);
  void* c = kmalloc(8);
  void* d = kmalloc(8);
  CHECK(a);
  CHECK(b);
  CHECK(c == nullptr);
  CHECK(d);
  kfree(a);
  kfree(b);
  kfree(d);
  kfree(nullptr);  // allowed, as in Linux
}

TEST_CASE("kzalloc zeroes, Box reset and move-assign free") {
  const long live = hosted::kmalloc_live();
  auto* p = static_cast<unsigned char*>(kzalloc(256, 128));
  REQUIRE(p);
  CHECK(reinterpret_cast<uintptr_t>(p) % 128 == 0);
  bool all_zero = true;
  for (int i = 0; i < 256; i++) all_zero &= p[i] == 0;
  CHECK(all_zero);
  kfree(p);

  int alive = 0;
  Box<Counted> a = make_box<Counted>(&alive).release_value();
  Box<Counted> b = make_box<Counted>(&alive).release_value();
  CHECK(alive == 2);
  a = std::move(b);  // the old a is destroyed
  CHECK(alive == 1);
  a.reset();
  CHECK(alive == 0);
  CHECK(hosted::kmalloc_live() == live);
}

}  // namespace
}  // namespace strata
