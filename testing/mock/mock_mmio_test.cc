// SPDX-License-Identifier: MIT
// MockMmio, and Mmio itself: both backends, window(), and the BUG checks on bad offsets.
#include "testing/mock/mock_mmio.h"

#include <stdint.h>
#include <string.h>

#include <array>
#include <functional>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "arch/mmio.h"
#include "arch/reg.h"
#include "testing/hosted/hosted.h"

namespace strata::testing {
namespace {

bool contains(const std::string& s, const std::string& needle) {
  return s.find(needle) != std::string::npos;
}

TEST_CASE("a sequence in the expected order verifies clean") {
  MockMmio mock;
  mock.expect_read(0x0, 0x12345678)
      .expect_write(0x20, 0x1)
      .expect_read(0x24, 0x1)
      .expect_write(0x88, 0x0000000180000040, 8)
      .expect_read(0x88, 0x0000000180000040, 8);
  const Mmio io = mock.mmio();
  CHECK(io.readl(0x0) == 0x12345678);
  io.writel(0x1, 0x20);
  CHECK(io.readl_relaxed(0x24) == 0x1);
  io.writeq_relaxed(0x0000000180000040, 0x88);
  CHECK(io.readq(0x88) == 0x0000000180000040);
  CHECK(mock.verify().empty());
}

TEST_CASE("each kind of mismatch is reported with its offset and values") {
  MockMmio mock;
  const Mmio io = mock.mmio();

  SUBCASE("wrong offset") {
    mock.expect_write(0x20, 0x1);
    io.writel(0x1, 0x24);
    const auto f = mock.verify();
    REQUIRE(f.size() == 1);
    CHECK(f[0] ==
          "access #0: expected 32-bit write of 0x00000001 at 0x20, got 32-bit write of "
          "0x00000001 at 0x24");
  }
  SUBCASE("wrong value") {
    mock.expect_write(0x20, 0xd);
    io.writel(0x5, 0x20);
    const auto f = mock.verify();
    REQUIRE(f.size() == 1);
    CHECK(contains(f[0], "expected 32-bit write of 0x0000000d at 0x20"));
    CHECK(contains(f[0], "got 32-bit write of 0x00000005 at 0x20"));
  }
  SUBCASE("wrong size") {
    mock.expect_read(0x88, 0x40, 8);
    CHECK(io.readl(0x88) == 0);  // a mismatched read returns 0
    const auto f = mock.verify();
    REQUIRE(f.size() == 1);
    CHECK(f[0] == "access #0: expected 64-bit read at 0x88, got 32-bit read at 0x88");
  }
  SUBCASE("wrong kind") {
    mock.expect_read(0x24, 0x1);
    io.writel(0x1, 0x24);
    const auto f = mock.verify();
    REQUIRE(f.size() == 1);
    CHECK(f[0] ==
          "access #0: expected 32-bit read at 0x24, got 32-bit write of 0x00000001 at 0x24");
  }
  SUBCASE("one access too many") {
    mock.expect_read(0x0, 0x7);
    CHECK(io.readl(0x0) == 0x7);
    CHECK(io.readq(0x8) == 0);
    const auto f = mock.verify();
    REQUIRE(f.size() == 1);
    CHECK(f[0] == "access #1: unexpected 64-bit read at 0x8: all 1 expectations consumed");
  }
  SUBCASE("a mismatch consumes its expectation, so later accesses still line up") {
    mock.expect_write(0x20, 0x1).expect_read(0x24, 0x1);
    io.writel(0x3, 0x20);
    CHECK(io.readl(0x24) == 0x1);
    const auto f = mock.verify();
    REQUIRE(f.size() == 1);
    CHECK(contains(f[0], "access #0:"));
  }
}

TEST_CASE("expectations not consumed are reported") {
  MockMmio mock;
  mock.expect_write(0x20, 0x1).expect_read(0x24, 0x1).expect_write(0x40, 0xabc, 8);
  mock.mmio().writel(0x1, 0x20);
  const auto f = mock.verify();
  REQUIRE(f.size() == 2);
  CHECK(f[0] == "expectation #1 not consumed: 32-bit read at 0x24 (would return 0x00000001)");
  CHECK(f[1] == "expectation #2 not consumed: 64-bit write of 0x0000000000000abc at 0x40");

  mock.clear();
  CHECK(mock.verify().empty());
  mock.expect_read(0x0, 0x2);
  CHECK(mock.mmio().readl(0x0) == 0x2);
  CHECK(mock.verify().empty());
}

// Typed registers with reserved-zero bits: write_to() must clear them whatever the snapshot
// holds (a read-modify-write of a register whose RES0 bits read back as junk).
struct CTRL : reg::Register<CTRL, uint32_t, 0x30, "CTRL"> {
  using EN = reg::Bit<0, "EN">;
  using MODE = reg::Field<5, 4, "MODE">;
  using Fields = reg::FieldList<EN, MODE>;
  static constexpr uint32_t kRes0 = 0xffff0000;
};

struct TABLE_BASE : reg::Register<TABLE_BASE, uint64_t, 0x38, "TABLE_BASE"> {
  using ADDR = reg::Addr<51, 12, "ADDR">;
  using Fields = reg::FieldList<ADDR>;
  static constexpr uint64_t kRes0 = 0xfff0000000000000;
};

TEST_CASE("typed write_to() clears the register's RES0 bits") {
  MockMmio mock;
  mock.expect_read(0x30, 0xabcd0001)
      .expect_write(0x30, 0x00000021)
      .expect_write(0x30, 0x0000ffff)
      .expect_write(0x38, 0x000ffffffffff000, 8)
      .expect_write(0x38, 0x0000001234567000, 8);
  const Mmio io = mock.mmio();
  CTRL::read_from(io).set<CTRL::MODE>(2).write_to(io);
  CTRL::from_value(0xffffffff).write_to_relaxed(io);
  TABLE_BASE::from_value(~0xfffull).write_to(io);  // ADDR all ones, RES0 bits set
  TABLE_BASE::from_value(0).set<TABLE_BASE::ADDR>(0x1234567000).write_to_relaxed(io);
  const auto f = mock.verify();
  CHECK(f.empty());
  for (const auto& m : f) MESSAGE(m);
}

// The real backend over ordinary host memory: every access must touch exactly its bytes.
class HostBlock {
 public:
  static constexpr uint8_t kFill = 0xa5;
  HostBlock() { memset(words_.data(), kFill, sizeof(words_)); }
  Mmio io() { return Mmio::real(words_.data(), sizeof(words_)); }
  // The bytes outside [offset, offset + n) still hold the fill pattern.
  bool untouched_except(size_t offset, size_t n) const {
    for (size_t i = 0; i < sizeof(words_); i++) {
      if (i >= offset && i < offset + n) continue;
      if (bytes()[i] != kFill) return false;
    }
    return true;
  }
  uint32_t u32(size_t offset) const {
    uint32_t v;
    memcpy(&v, bytes() + offset, sizeof(v));
    return v;
  }
  uint64_t u64(size_t offset) const {
    uint64_t v;
    memcpy(&v, bytes() + offset, sizeof(v));
    return v;
  }
  void put64(size_t offset, uint64_t v) { memcpy(bytes_mut() + offset, &v, sizeof(v)); }

 private:
  const uint8_t* bytes() const { return reinterpret_cast<const uint8_t*>(words_.data()); }
  uint8_t* bytes_mut() { return reinterpret_cast<uint8_t*>(words_.data()); }
  std::array<uint64_t, 8> words_;  // 64 bytes, 8-aligned like a register block
};

TEST_CASE("the real backend accesses exactly the addressed bytes") {
  HostBlock b;
  const Mmio io = b.io();
  CHECK_FALSE(io.is_model());
  CHECK(io.size() == 64);

  SUBCASE("writel") {
    io.writel(0x11223344, 12);
    CHECK(b.u32(12) == 0x11223344);
    CHECK(b.untouched_except(12, 4));
    CHECK(io.readl(12) == 0x11223344);
    CHECK(io.readl_relaxed(12) == 0x11223344);
    CHECK(io.readl(8) == 0xa5a5a5a5);
  }
  SUBCASE("writel_relaxed") {
    io.writel_relaxed(0xcafef00d, 60);  // the last word of the block
    CHECK(b.u32(60) == 0xcafef00d);
    CHECK(b.untouched_except(60, 4));
  }
  SUBCASE("writeq") {
    io.writeq(0x0123456789abcdef, 16);
    CHECK(b.u64(16) == 0x0123456789abcdef);
    CHECK(b.untouched_except(16, 8));
    CHECK(io.readq(16) == 0x0123456789abcdef);
    CHECK(io.readl(16) == b.u32(16));
    CHECK(io.readl(20) == b.u32(20));
  }
  SUBCASE("writeq_relaxed") {
    io.writeq_relaxed(0xfedcba9876543210, 0);
    CHECK(b.u64(0) == 0xfedcba9876543210);
    CHECK(b.untouched_except(0, 8));
    CHECK(io.readq_relaxed(0) == 0xfedcba9876543210);
  }
  SUBCASE("reads see what is in memory") {
    b.put64(40, 0x8877665544332211);
    CHECK(io.readq(40) == 0x8877665544332211);
    CHECK(io.readq_relaxed(40) == 0x8877665544332211);
    CHECK(io.readl(40) == b.u32(40));
    CHECK(io.readl_relaxed(44) == b.u32(44));
    CHECK(b.untouched_except(40, 8));
  }
  SUBCASE("window() offsets into the block") {
    const Mmio w = io.window(32, 16);
    CHECK(w.size() == 16);
    w.writel(0x55667788, 4);
    CHECK(b.u32(36) == 0x55667788);
    w.writeq(0x1122334455667788, 8);
    CHECK(b.u64(40) == 0x1122334455667788);
    CHECK(b.untouched_except(36, 12));
    CHECK(io.readl(36) == w.readl(4));
    const Mmio ww = w.window(8, 8);
    CHECK(ww.readq(0) == 0x1122334455667788);
  }
}

TEST_CASE("window() over a model adds its offset") {
  MockMmio mock;
  mock.expect_read(0x10008, 0x5)
      .expect_write(0x1000c, 0x6)
      .expect_write(0x10020, 0x7, 8)
      .expect_read(0x10104, 0x8);
  const Mmio io = mock.mmio();
  CHECK(io.is_model());
  const Mmio page1 = io.window(0x10000, 0x10000);
  CHECK(page1.is_model());
  CHECK(page1.readl(0x8) == 0x5);
  page1.writel(0x6, 0xc);
  page1.writeq_relaxed(0x7, 0x20);
  CHECK(page1.window(0x100, 0x10).readl_relaxed(0x4) == 0x8);  // windows nest
  CHECK(mock.verify().empty());
}

TEST_CASE("out-of-range and misaligned accesses are BUGs") {
  std::array<uint64_t, 8> words{};
  const Mmio io = Mmio::real(words.data(), sizeof(words));
  auto bug = [](const std::function<void()>& fn) { return hosted::panic_message_of(fn); };

  CHECK(contains(bug([&] { (void)io.readl(64); }), "BUG"));
  CHECK(contains(bug([&] { io.writeq(0, 4); }), "BUG"));
  CHECK(contains(bug([&] { (void)io.readq(60); }), "BUG"));  // straddles the end
  CHECK(contains(bug([&] { io.writel(0, 2); }), "BUG"));
  CHECK(contains(bug([&] { (void)io.window(32, 40); }), "BUG"));
  CHECK(contains(bug([&] { (void)io.window(32, 16).readl(16); }), "BUG"));
  CHECK(bug([&] { (void)io.readl(60); }).empty());  // the last word is fine

  MockMmio mock;
  const Mmio model = mock.mmio(0x100);
  CHECK(contains(bug([&] { (void)model.readl(0x100); }), "BUG"));
  CHECK(contains(bug([&] { model.writeq(0, 0x84); }), "BUG"));
}

}  // namespace
}  // namespace strata::testing
