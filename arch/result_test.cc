// SPDX-License-Identifier: MIT
#include "arch/result.h"

#include <doctest/doctest.h>
#include <fmt/core.h>

#include <string>

#include "testing/hosted/hosted.h"

namespace strata {
namespace {

Result<int> parse_digit(char c) {
  if (c < '0' || c > '9') return Error(-EINVAL);
  return c - '0';
}

Result<int> sum_digits(const char* s) {
  int sum = 0;
  for (; *s; s++) sum += STRATA_TRY(parse_digit(*s));
  return sum;
}

Result<void> check_even(int v) {
  if (v % 2) return Error(-ERANGE);
  return ok();
}

Result<int> half_if_even(int v) {
  STRATA_TRY(check_even(v));
  return v / 2;
}

// A move-only value, as DmaBuffer and Box are.
struct MoveOnly {
  explicit MoveOnly(int v) : v(v) {}
  MoveOnly(MoveOnly&& o) : v(o.v) { o.v = -1; }
  MoveOnly(const MoveOnly&) = delete;
  int v;
};

Result<MoveOnly> make_move_only(bool fail) {
  if (fail) return Error(-ENOMEM);
  return MoveOnly(7);
}

Result<int> unwrap_move_only(bool fail) {
  MoveOnly m = STRATA_TRY(make_move_only(fail));
  return m.v;
}

TEST_CASE("errno values are Linux's") {
  // typed in from include/uapi/asm-generic/errno-base.h and errno.h
  CHECK(EPERM == 1);
  CHECK(ENOENT == 2);
  CHECK(EIO == 5);
  CHECK(ENOMEM == 12);
  CHECK(EFAULT == 14);
  CHECK(EBUSY == 16);
  CHECK(EEXIST == 17);
  CHECK(ENODEV == 19);
  CHECK(EINVAL == 22);
  CHECK(ENOSPC == 28);
  CHECK(ERANGE == 34);
  CHECK(EOVERFLOW == 75);
  CHECK(EOPNOTSUPP == 95);
  CHECK(ETIMEDOUT == 110);
}

TEST_CASE("errors have printable names") {
  CHECK(std::string(errno_name(-EINVAL)) == "EINVAL");
  CHECK(std::string(errno_name(ETIMEDOUT)) == "ETIMEDOUT");
  CHECK(errno_name(-4095) == nullptr);
  CHECK(std::string(Error(-EOPNOTSUPP).name()) == "EOPNOTSUPP");
  CHECK(std::string(Error(-4095).name()) == "E?");
  CHECK(fmt::format("{}", Error(-ENOMEM)) == "-ENOMEM");
  CHECK(Error(-EBUSY).code() == -16);
}

TEST_CASE("an Error must be negative") {
  CHECK(hosted::panic_message_of([] { (void)Error(EINVAL); }).find("BUG") != std::string::npos);
  CHECK(hosted::panic_message_of([] { (void)Error(0); }).find("BUG") != std::string::npos);
}

TEST_CASE("Result carries a value or an error") {
  auto good = parse_digit('7');
  REQUIRE(good.ok());
  CHECK(good.value() == 7);
  CHECK(*good == 7);
  auto bad = parse_digit('x');
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error() == Error(-EINVAL));
}

TEST_CASE("STRATA_TRY returns the first error and yields values otherwise") {
  auto r = sum_digits("123");
  REQUIRE(r.ok());
  CHECK(r.value() == 6);
  auto e = sum_digits("12x4");
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().code() == -EINVAL);

  auto h = half_if_even(10);
  REQUIRE(h.ok());
  CHECK(h.value() == 5);
  CHECK(half_if_even(3).error().code() == -ERANGE);
}

TEST_CASE("STRATA_TRY moves move-only values") {
  CHECK(unwrap_move_only(false).value() == 7);
  CHECK(unwrap_move_only(true).error().code() == -ENOMEM);
}

TEST_CASE("misusing a Result is a strata bug, caught") {
  CHECK(hosted::panic_message_of([] { (void)parse_digit('x').value(); }).find("BUG") !=
        std::string::npos);
  CHECK(hosted::panic_message_of([] { (void)parse_digit('1').error(); }).find("BUG") !=
        std::string::npos);
  CHECK(hosted::panic_message_of([] { (void)check_even(2).error(); }).find("BUG") !=
        std::string::npos);
}

}  // namespace
}  // namespace strata
