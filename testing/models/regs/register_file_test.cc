// SPDX-License-Identifier: MIT
#include "testing/models/regs/register_file.h"

#include <stdint.h>

#include <atomic>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "arch/mmio.h"
#include "arch/reg.h"
#include "testing/hosted/hosted.h"

namespace strata::sim {
namespace {

// A made-up device shaped like SMMUv3's control block: a control register acknowledged by a
// read-only twin (CR0 -> CR0ACK), a 64-bit base register, a doorbell and a 64-bit error
// register with write-one-to-clear bits in both halves. Offsets 0x28..0x3c are a hole.
constexpr uint64_t kIdr = 0x00;
constexpr uint64_t kCr0 = 0x20;
constexpr uint64_t kCr0Ack = 0x24;
constexpr uint64_t kHole = 0x30;
constexpr uint64_t kBase = 0x40;
constexpr uint64_t kProd = 0x48;
constexpr uint64_t kGerror = 0x50;
constexpr uint64_t kEvt = 0x60;
constexpr size_t kBlockSize = 0x100;

struct CR0 : reg::Register<CR0, uint32_t, kCr0, "CR0"> {
  using EN = reg::Bit<0, "EN">;                   // enable (writable)
  using QEN = reg::Bit<1, "QEN">;                 // queue enable (writable)
  using KICK = reg::Bit<4, "KICK">;               // command strobe (write-only)
  using ERR = reg::Field<9, 8, "ERR">;            // error flags (write-one-to-clear)
  using VERSION = reg::Field<31, 24, "VERSION">;  // read-only, set by the model
  using Fields = reg::FieldList<EN, QEN, KICK, ERR, VERSION>;
};
constexpr uint32_t kCr0Wmask = 0x13;
constexpr uint32_t kCr0W1c = 0x300;
constexpr uint32_t kCr0Wo = 0x10;
constexpr uint32_t kCr0Reset = 0x03000000;

struct CR0ACK : reg::Register<CR0ACK, uint32_t, kCr0Ack, "CR0ACK"> {
  using EN = reg::Bit<0, "EN">;
  using QEN = reg::Bit<1, "QEN">;
  using Fields = reg::FieldList<EN, QEN>;
};

struct BASE : reg::Register<BASE, uint64_t, kBase, "BASE"> {
  using ADDR = reg::Addr<51, 6, "ADDR">;  // table address, 64-byte aligned
  using RA = reg::Bit<62, "RA">;          // read-allocate hint
  using VALID = reg::Bit<63, "VALID">;    // read-only: the model accepted the table
  using Fields = reg::FieldList<ADDR, RA, VALID>;
};
constexpr uint64_t kBaseWmask = 0x000fffffffffffc0ull | (1ull << 62);

// GERROR: bits 0 and 32 W1C, 1 and 33 writable, 2 and 34 read-only (set at reset).
constexpr uint64_t kGerrorW1c = (1ull << 32) | 1;
constexpr uint64_t kGerrorWmask = (1ull << 33) | 2;
constexpr uint64_t kGerrorReset = (1ull << 34) | 4;

struct Hooked {
  uint64_t offset;
  uint64_t old_value;
  uint64_t new_value;
  bool operator==(const Hooked&) const = default;
};

// The device with hooks: CR0 is acknowledged into CR0ACK, PROD and GERROR log their writes.
class Device {
 public:
  Device() : regs("dev") {
    regs.define32(kIdr, "IDR", 0x12345678, 0);
    regs.define32(kCr0, "CR0", kCr0Reset, kCr0Wmask, kCr0W1c, kCr0Wo)
        .on_write([this](uint64_t old_value, uint64_t new_value) {
          log.push_back({kCr0, old_value, new_value});
          regs.set(kCr0Ack, new_value & (CR0::EN::kMask | CR0::QEN::kMask));
        });
    regs.define32(kCr0Ack, "CR0ACK", 0, 0);
    regs.define64(kBase, "BASE", 0, kBaseWmask);
    regs.define32(kProd, "PROD", 0, 0x000fffff).on_write([this](uint64_t o, uint64_t n) {
      log.push_back({kProd, o, n});
    });
    regs.define64(kGerror, "GERROR", kGerrorReset, kGerrorWmask, kGerrorW1c)
        .on_write([this](uint64_t o, uint64_t n) {
          log.push_back({kGerror, o, n});
        });
    // A read-to-clear event count: the read hook returns the count and the model clears it,
    // calling back into the file from the hook.
    regs.define32(kEvt, "EVT", 0, 0).on_read([this](uint64_t v) {
      regs.set(kEvt, 0);
      return v;
    });
  }

  RegisterFile regs;
  std::vector<Hooked> log;
  Mmio io() { return Mmio::model(regs, kBlockSize); }
};

TEST_CASE("reset values read back through the model backend") {
  Device d;
  const Mmio io = d.io();
  CHECK(io.readl(kIdr) == 0x12345678);
  CHECK(io.readl(kCr0) == kCr0Reset);
  CHECK(io.readl_relaxed(kCr0Ack) == 0);
  CHECK(io.readq(kBase) == 0);
  CHECK(io.readq_relaxed(kGerror) == kGerrorReset);
  CHECK(d.regs.guest_error_count() == 0);
  CHECK(d.regs.name(kCr0) == "CR0");
  CHECK(d.regs.defined(kBase));
  CHECK_FALSE(d.regs.defined(kHole));
}

TEST_CASE("a write stores only the writable bits") {
  Device d;
  const Mmio io = d.io();
  io.writel(0xffffffff, kCr0);
  // EN, QEN and KICK stored; VERSION kept; ERR (W1C, clear) stays clear; KICK reads as zero.
  CHECK(d.regs.value(kCr0) == (kCr0Reset | kCr0Wmask));
  CHECK(io.readl(kCr0) == (kCr0Reset | 0x3));
  io.writel(0, kCr0);
  CHECK(d.regs.value(kCr0) == kCr0Reset);

  io.writel(0xffffffff, kIdr);  // wholly read-only
  CHECK(io.readl(kIdr) == 0x12345678);
  io.writel(0x2, kCr0);
  io.writel(0xffffffff, kCr0Ack);
  CHECK(io.readl(kCr0Ack) == 0x2);  // the model's acknowledgement, not the guest's value
}

TEST_CASE("write-one-to-clear clears only the bits written as one") {
  Device d;
  const Mmio io = d.io();
  d.regs.modify(kCr0, 0, 0x300);  // the model raises both error flags
  CHECK(io.readl(kCr0) == (kCr0Reset | 0x300));
  io.writel(0, kCr0);  // zero leaves W1C bits alone
  CHECK(io.readl(kCr0) == (kCr0Reset | 0x300));
  io.writel(0x100, kCr0);
  CHECK(io.readl(kCr0) == (kCr0Reset | 0x200));
  io.writel(0x301, kCr0);  // clearing and setting in one write
  CHECK(io.readl(kCr0) == (kCr0Reset | 0x1));
  io.writel(0x300, kCr0);  // a one on an already clear W1C bit never sets it
  CHECK(io.readl(kCr0) == kCr0Reset);
}

TEST_CASE("read-only bits ignore writes but the model sets them") {
  Device d;
  const Mmio io = d.io();
  io.writel(0x00000001, kCr0);  // VERSION written as 0
  CHECK(CR0::read_from(io).get<CR0::VERSION>() == 0x03);
  d.regs.set(kCr0, (d.regs.value(kCr0) & ~CR0::VERSION::kMask) | (0x07u << 24));
  CHECK(CR0::read_from(io).get<CR0::VERSION>() == 0x07);
  CHECK(CR0::read_from(io).get<CR0::EN>() == 1);  // the guest's bit survived the model's set
  d.regs.set(kBase, BASE::VALID::kMask);
  io.writeq(0, kBase);
  CHECK(BASE::read_from(io).get<BASE::VALID>() == 1);
}

TEST_CASE("write-only bits read as zero but are stored") {
  Device d;
  const Mmio io = d.io();
  io.writel(CR0::KICK::kMask, kCr0);
  CHECK(d.regs.value(kCr0) == (kCr0Reset | CR0::KICK::kMask));
  CHECK(io.readl(kCr0) == kCr0Reset);
  CHECK(d.log.back() == Hooked{kCr0, kCr0Reset, kCr0Reset | CR0::KICK::kMask});
}

TEST_CASE("a 64-bit register is accessible as two 32-bit halves") {
  Device d;
  const Mmio io = d.io();

  SUBCASE("halves store into their own bits") {
    io.writel(0x89abcdc0, kBase);
    CHECK(io.readq(kBase) == 0x89abcdc0);
    io.writel(0x40012345, kBase + 4);
    CHECK(io.readq(kBase) == 0x4001234589abcdc0);
    CHECK(io.readl(kBase) == 0x89abcdc0);
    CHECK(io.readl(kBase + 4) == 0x40012345);
    io.writel(0xffffffff, kBase + 4);  // bits 52..61 and 63 are read-only
    CHECK(io.readq(kBase) == ((0xffffffffull << 32 | 0x89abcdc0) & kBaseWmask));
    io.writel(0, kBase);  // the high half is untouched by a low-half write
    CHECK(io.readq(kBase) == ((0xffffffffull << 32) & kBaseWmask));
  }

  SUBCASE("each half applies the masks to its bits and the hook sees 64 bits") {
    const uint64_t raised = kGerrorReset | kGerrorW1c;  // both W1C flags up
    d.regs.set(kGerror, raised);
    io.writel(0xffffffff, kGerror + 4);  // clears bit 32 only, sets 33, 34 is read-only
    CHECK(io.readq(kGerror) == (kGerrorReset | 1 | (1ull << 33)));
    REQUIRE(d.log.size() == 1);
    CHECK(d.log[0] == Hooked{kGerror, raised, kGerrorReset | 1 | (1ull << 33)});

    io.writel(0xffffffff, kGerror);  // clears bit 0 only, sets 1
    CHECK(io.readq(kGerror) == (kGerrorReset | 2 | (1ull << 33)));
    CHECK(io.readl(kGerror + 4) == 0x6);
    CHECK(io.readl(kGerror) == 0x6);

    io.writeq(0, kGerror);  // a full-width write of zero clears the writable bits
    CHECK(io.readq(kGerror) == kGerrorReset);
    CHECK(d.log.size() == 3);
  }

  CHECK(d.regs.guest_error_count() == 0);
}

TEST_CASE("holes and 64-bit accesses to 32-bit registers are RAZ/WI guest errors") {
  Device d;
  const Mmio io = d.io();
  hosted::LogCapture capture;
  const auto before = d.regs.snapshot();

  CHECK(io.readl(kHole) == 0);
  io.writel(0xdeadbeef, kHole);
  CHECK(io.readq(kHole) == 0);
  CHECK(io.readl(kHole + 0x4) == 0);
  // writeq over CR0 and CR0ACK touches neither.
  io.writeq(0xffffffffffffffff, kCr0);
  CHECK(io.readq(kCr0) == 0);
  CHECK(d.regs.snapshot() == before);
  CHECK(d.log.empty());  // a dropped write runs no hook

  CHECK(d.regs.guest_error_count() == 6);
  const auto errors = d.regs.guest_errors();
  REQUIRE(errors.size() == 3);  // once per offset
  CHECK(errors[0].offset == kHole);
  CHECK_FALSE(errors[0].write);
  CHECK(errors[0].size == 4);
  CHECK(errors[0].message.find("no register") != std::string::npos);
  CHECK(errors[1].offset == kHole + 4);
  CHECK(errors[2].offset == kCr0);
  CHECK(errors[2].write);
  CHECK(errors[2].size == 8);
  CHECK(errors[2].message.find("64-bit write of 0xffffffffffffffff at 0x20") != std::string::npos);
  CHECK(errors[2].message.find("CR0") != std::string::npos);
  CHECK(errors[2].message.find("RAZ/WI") != std::string::npos);
  CHECK(capture.contains("dev: guest error: 32-bit read at 0x30: no register at this offset"));

  d.regs.clear_guest_errors();
  CHECK(d.regs.guest_error_count() == 0);
  CHECK(d.regs.guest_errors().empty());
}

TEST_CASE("a guard makes a register read-only while the state it names holds") {
  // BASE is writable only while CR0ACK.QEN is 0 (SMMUv3's "when SMMU_CR0.CMDQEN == 0 and
  // SMMU_CR0ACK.CMDQEN == 0, accesses to SMMU_CMDQ_BASE are RW, otherwise RO"); its RA bit
  // stays writable. GERROR's W1C bit 0 is refused while bit 2 reads as one.
  Device d;
  int base_hooks = 0;
  d.regs.define32(0x80, "LOCKED", 0, 0xff)
      .guard([](const RegisterFile::LockedView& regs, uint64_t, uint64_t) {
        return RegisterFile::GuardResult{
            .writable = (regs.value(kCr0Ack) & CR0ACK::QEN::kMask) ? 0 : ~uint64_t{0},
            .why = "locked while QEN"};
      })
      .on_write([&](uint64_t, uint64_t) { base_hooks++; });
  d.regs.define64(0x88, "PARTLY", 0, ~uint64_t{0})
      .guard([](const RegisterFile::LockedView& regs, uint64_t, uint64_t) {
        const bool locked = regs.value(kCr0Ack) & CR0ACK::QEN::kMask;
        return RegisterFile::GuardResult{.writable = locked ? uint64_t{1} << 62 : ~uint64_t{0},
                                         .why = "ADDR locked"};
      });
  const Mmio io = d.io();
  hosted::LogCapture capture;

  io.writel(0x12, 0x80);
  io.writeq(0x1000, 0x88);
  CHECK(io.readl(0x80) == 0x12);
  CHECK(io.readq(0x88) == 0x1000);
  CHECK(base_hooks == 1);
  CHECK(d.regs.guest_error_count() == 0);

  CR0::read_from(io).set<CR0::QEN>(1).write_to(io);  // the hook acknowledges into CR0ACK
  io.writel(0x34, 0x80);
  CHECK(io.readl(0x80) == 0x12);
  CHECK(base_hooks == 1);  // an ignored write has no side effect
  io.writel(0x12, 0x80);   // the same value changes nothing: not an error
  CHECK(base_hooks == 1);
  CHECK(d.regs.guest_error_count() == 1);
  // A 64-bit write and its halves: the unguarded bit 62 is stored, the address is not.
  io.writeq((uint64_t{1} << 62) | 0x2000, 0x88);
  CHECK(io.readq(0x88) == ((uint64_t{1} << 62) | 0x1000));
  io.writel(0x4000'0000, 0x8c);  // the high half alone, bit 62 unchanged: no error
  CHECK(io.readq(0x88) == ((uint64_t{1} << 62) | 0x1000));
  io.writel(0, 0x8c);  // clears bit 62, the only writable one of that half
  CHECK(io.readq(0x88) == 0x1000);
  CHECK(d.regs.guest_error_count() == 2);
  const auto errors = d.regs.guest_errors();
  REQUIRE(errors.size() == 2);
  CHECK(errors[0].offset == 0x80);
  CHECK(errors[0].write);
  CHECK(errors[0].message == "32-bit write of 0x34 at 0x80 LOCKED: locked while QEN (ignored)");
  CHECK(errors[1].offset == 0x88);
  CHECK(errors[1].message.find("ADDR locked (ignored)") != std::string::npos);
  CHECK(capture.contains("guest error: 32-bit write of 0x34 at 0x80 LOCKED"));

  CR0::read_from(io).set<CR0::QEN>(0).write_to(io);
  io.writel(0x56, 0x80);
  CHECK(io.readl(0x80) == 0x56);
  CHECK(base_hooks == 2);
}

TEST_CASE("the model reports guest errors it finds beyond one access") {
  Device d;
  hosted::LogCapture capture;
  d.regs.report_guest_error(kProd, "PROD moved backwards");
  d.regs.report_guest_error(kProd, "PROD moved backwards again");
  CHECK(d.regs.guest_error_count() == 2);
  const auto errors = d.regs.guest_errors();
  REQUIRE(errors.size() == 1);  // the first per offset
  CHECK(errors[0].offset == kProd);
  CHECK(errors[0].size == 4);
  CHECK(errors[0].message == "PROD moved backwards");
  CHECK(capture.contains("dev: guest error: PROD moved backwards"));
}

TEST_CASE("side effects are observed in program order") {
  Device d;
  const Mmio io = d.io();

  // Enable, then read the acknowledgement: the hook ran before writel returned.
  CR0::read_from(io).set<CR0::EN>(1).write_to(io);
  CHECK(CR0ACK::read_from(io).get<CR0ACK::EN>() == 1);
  CR0::read_from(io).set<CR0::QEN>(1).write_to(io);
  CHECK(io.readl(kCr0Ack) == 0x3);
  CR0::read_from(io).set<CR0::EN>(0).set<CR0::QEN>(0).write_to(io);
  CHECK(io.readl(kCr0Ack) == 0);

  // Every write runs the hook once, in order, even one that changes nothing.
  d.log.clear();
  const std::vector<uint32_t> prods = {1, 2, 2, 7, 0x000fffff, 0x00100000};
  for (uint32_t p : prods) io.writel(p, kProd);
  std::vector<Hooked> want;
  uint64_t old_value = 0;
  for (uint32_t p : prods) {
    const uint64_t stored = p & 0x000fffff;
    want.push_back({kProd, old_value, stored});
    old_value = stored;
  }
  CHECK(d.log == want);
}

TEST_CASE("hooks may call back into the file") {
  Device d;
  const Mmio io = d.io();

  SUBCASE("a read hook clears its register") {
    d.regs.set(kEvt, 5);
    CHECK(io.readl(kEvt) == 5);
    CHECK(io.readl(kEvt) == 0);
  }

  SUBCASE("a write hook makes guest accesses and waits for another thread that does") {
    RegisterFile regs("reentrant");
    regs.define32(0x0, "DOORBELL", 0, 0xffffffff);
    regs.define32(0x4, "STATUS", 0, 0xffffffff);
    regs.define32(0x8, "COUNT", 0, 0);
    const Mmio rio = Mmio::model(regs, 0x10);
    regs.define32(0xc, "KICK", 0, 0xffffffff).on_write([&](uint64_t, uint64_t n) {
      rio.writel(static_cast<uint32_t>(n), 0x4);  // same thread, nested access
      std::thread worker([&] {
        rio.writel(rio.readl(0x4) + 1, 0x0);  // another thread's accesses during the hook
        regs.modify(0x8, 0, 1);
      });
      worker.join();
    });
    rio.writel(41, 0xc);
    CHECK(rio.readl(0x4) == 41);
    CHECK(rio.readl(0x0) == 42);
    CHECK(rio.readl(0x8) == 1);
  }
}

TEST_CASE("typed registers over the register file") {
  Device d;
  const Mmio io = d.io();
  BASE::from_value(0).set<BASE::ADDR>(0x0000123456789a40).set<BASE::RA>(1).write_to(io);
  const BASE base = BASE::read_from(io);
  CHECK(base.get<BASE::ADDR>() == 0x0000123456789a40);
  CHECK(base.get<BASE::RA>() == 1);
  CHECK(base.get<BASE::VALID>() == 0);

  d.regs.modify(kCr0, 0, 0x200);
  CHECK(CR0::read_from(io).value() == (kCr0Reset | 0x200));
  // Read-modify-write writes the W1C flag back as one and so clears it: how a driver
  // acknowledges an error through a typed register.
  CR0::read_from(io).set<CR0::EN>(1).write_to(io);
  CHECK(CR0::read_from(io).get<CR0::ERR>() == 0);
  CHECK(CR0::read_from(io).get<CR0::EN>() == 1);
}

TEST_CASE("reset restores every register and runs no hook") {
  Device d;
  const Mmio io = d.io();
  const auto at_reset = d.regs.snapshot();
  const std::string dump_at_reset = d.regs.dump();

  io.writel(0x13, kCr0);
  io.writeq(0x40000000000fffc0, kBase);
  io.writel(9, kProd);
  io.writel(2, kGerror);
  d.regs.set(kIdr, 0);
  d.regs.set(kEvt, 3);
  CHECK(d.regs.snapshot() != at_reset);
  const size_t hooks = d.log.size();

  d.regs.reset();
  CHECK(d.regs.snapshot() == at_reset);
  CHECK(d.regs.dump() == dump_at_reset);
  CHECK(d.log.size() == hooks);
  CHECK(io.readl(kIdr) == 0x12345678);
  CHECK(io.readl(kCr0Ack) == 0);
  CHECK(d.regs.dump().find("0x0020 CR0 = 0x03000000\n") != std::string::npos);
  CHECK(d.regs.dump().find("0x0040 BASE = 0x0000000000000000\n") != std::string::npos);
}

TEST_CASE("concurrent guests and model updates") {
  RegisterFile regs("mt");
  constexpr uint64_t kStatus = 0x0;  // one W1C flag per thread, raised by the model
  constexpr uint64_t kDoorbell = 0x8;
  constexpr uint64_t kRing = 0x10;
  regs.define32(kStatus, "STATUS", 0, 0, 0xffffffff);
  regs.define64(kDoorbell, "DOORBELL", 0, ~0ull);
  std::atomic<uint64_t> rings{0};
  regs.define32(kRing, "RING", 0, 0xffffffff).on_write([&](uint64_t, uint64_t) {
    (void)regs.value(kDoorbell);  // hooks of different threads run concurrently with accesses
    rings++;
  });
  const Mmio io = Mmio::model(regs, 0x20);
  std::atomic<int> mistakes{0};  // counted, not CHECKed: assertions stay on the test thread

  constexpr unsigned kThreads = 4;
  constexpr uint32_t kIters = 2000;
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      const uint32_t mine = 1u << t;
      for (uint32_t i = 0; i < kIters; i++) {
        regs.modify(kStatus, 0, mine);  // the model raises this thread's flag
        if ((io.readl(kStatus) & mine) == 0) mistakes++;
        io.writel(mine, kStatus);  // the guest acknowledges only its own flag
        if ((io.readl(kStatus) & mine) != 0) mistakes++;
        io.writel(i, kRing);
        io.writeq(uint64_t{t} << 32 | i, kDoorbell);
        (void)io.readl(kDoorbell + 4);
      }
      regs.modify(kStatus, 0, mine);
    });
  }
  for (auto& th : threads) th.join();
  CHECK(mistakes == 0);
  CHECK(rings == kThreads * kIters);
  CHECK(regs.value(kStatus) == (1u << kThreads) - 1);         // no flag lost or cleared by another
  CHECK((regs.value(kDoorbell) & 0xffffffff) == kIters - 1);  // a whole 64-bit write, untorn
  CHECK(regs.guest_error_count() == 0);
}

TEST_CASE("definition mistakes are model bugs") {
  auto bug = [](auto define) {
    return hosted::panic_message_of([&] {
      RegisterFile regs("bad");
      regs.define64(0x10, "Q", 0, ~0ull);
      define(regs);
    });
  };
  CHECK(bug([](RegisterFile& r) { r.define32(0x10, "X", 0, 0); }).find("BUG") == 0);
  CHECK(bug([](RegisterFile& r) { r.define32(0x14, "X", 0, 0); }).find("BUG") == 0);
  CHECK(bug([](RegisterFile& r) { r.define64(0x8, "X", 0, 0); }).empty());           // fits
  CHECK(bug([](RegisterFile& r) { r.define64(0x4, "X", 0, 0); }).find("BUG") == 0);  // unaligned
  CHECK(bug([](RegisterFile& r) { r.define32(0x0, "X", 0, 1, 1); }).find("BUG") == 0);
  CHECK(bug([](RegisterFile& r) { r.set(0x20, 0); }).find("BUG") == 0);
  CHECK(bug([](RegisterFile& r) {
          r.define32(0x0, "X", 0, 0);
          r.set(0x0, 1ull << 32);
        }).find("BUG") == 0);
}

}  // namespace
}  // namespace strata::sim
