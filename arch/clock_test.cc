// SPDX-License-Identifier: MIT
#include "arch/clock.h"

#include <doctest/doctest.h>

namespace strata {
namespace {

TEST_CASE("monotonic_ns does not go backwards") {
  uint64_t prev = monotonic_ns();
  for (int i = 0; i < 1000; i++) {
    uint64_t now = monotonic_ns();
    CHECK(now >= prev);
    prev = now;
  }
}

TEST_CASE("poll_timeout returns the value that satisfied the condition") {
  int reads = 0;
  auto r = poll_timeout([&] { return ++reads; }, [](int v) { return v == 5; }, 1000000);
  REQUIRE(r.ok());
  CHECK(r.value() == 5);
  CHECK(reads == 5);
}

TEST_CASE("poll_timeout gives -ETIMEDOUT when the condition never holds") {
  const uint64_t start = monotonic_ns();
  auto r = poll_timeout([] { return 0u; }, [](unsigned v) { return v == 1; }, 2000);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == -ETIMEDOUT);
  CHECK(monotonic_ns() - start >= 2000 * 1000);
}

}  // namespace
}  // namespace strata
