// SPDX-License-Identifier: MIT
// The engine's programmer-visible contract: the layout typed in from the table in regs.h and
// Documentation/models/dma-engine.md (not derived from the types), reset values, read-only and
// write-one-to-clear bits, holes.
#include "testing/models/dma-engine/regs.h"

#include <string.h>

#include <doctest/doctest.h>

#include "testing/models/dma-engine/engine_harness.h"

namespace strata::sim::dma_engine {
namespace {

using test::Rig;

TEST_CASE("register offsets and widths, as documented") {
  CHECK(kRegisterBlockBytes == 0x1000);
  CHECK(IDR0::kOffset == 0x000);
  CHECK(IDR1::kOffset == 0x004);
  CHECK(STREAMID::kOffset == 0x008);
  CHECK(SUBSTREAMID::kOffset == 0x00c);
  CHECK(CTRL::kOffset == 0x010);
  CHECK(PATTERN::kOffset == 0x018);
  CHECK(SRC::kOffset == 0x020);
  CHECK(DST::kOffset == 0x028);
  CHECK(LEN::kOffset == 0x030);
  CHECK(MSI_ADDR::kOffset == 0x038);
  CHECK(MSI_DATA::kOffset == 0x040);
  CHECK(CMD::kOffset == 0x044);
  CHECK(STATUS::kOffset == 0x048);
  CHECK(COMPLETIONS::kOffset == 0x04c);
  CHECK(DONE::kOffset == 0x050);
  CHECK(FAULT_ADDR::kOffset == 0x058);
  CHECK(CHECKSUM::kOffset == 0x060);
  CHECK(sizeof(PATTERN::Word) == 8);
  CHECK(sizeof(SRC::Word) == 8);
  CHECK(sizeof(DST::Word) == 8);
  CHECK(sizeof(LEN::Word) == 8);
  CHECK(sizeof(MSI_ADDR::Word) == 8);
  CHECK(sizeof(DONE::Word) == 8);
  CHECK(sizeof(FAULT_ADDR::Word) == 8);
  CHECK(sizeof(CHECKSUM::Word) == 8);
  CHECK(sizeof(CMD::Word) == 4);
  CHECK(sizeof(STATUS::Word) == 4);
}

TEST_CASE("field positions and encodings, as documented") {
  CHECK(IDR1::SSIDSIZE::kMask == 0x1f);
  CHECK(IDR1::MSI::kMask == 0x100);
  CHECK(IDR1::WIRED::kMask == 0x200);
  CHECK(IDR1::VERSION::kMask == 0xff000000);
  CHECK(SUBSTREAMID::SSID::kMask == 0x000fffff);
  CHECK(SUBSTREAMID::SSV::kMask == 0x80000000);
  CHECK(CTRL::IRQEN::kMask == 0x1);
  CHECK(CTRL::MSIEN::kMask == 0x2);
  CHECK(CTRL::PRIV::kMask == 0x4);
  CHECK(CTRL::INSTR::kMask == 0x8);
  CHECK(CMD::OP::kMask == 0xf);
  CHECK(STATUS::STATE::kMask == 0x3);
  CHECK(STATUS::FAULT::kMask == 0x70);
  CHECK(STATUS::FAULT_WRITE::kMask == 0x100);
  CHECK(STATUS::BUSY_ERR::kMask == 0x10000);
  CHECK(STATUS::MSI_ABT::kMask == 0x20000);
  CHECK(MSI_ADDR::ADDR::kMask == 0xfffffffffffffffc);
  CHECK(static_cast<unsigned>(Op::kNop) == 0);
  CHECK(static_cast<unsigned>(Op::kCopy) == 1);
  CHECK(static_cast<unsigned>(Op::kFill) == 2);
  CHECK(static_cast<unsigned>(Op::kChecksum) == 3);
  CHECK(static_cast<unsigned>(State::kIdle) == 0);
  CHECK(static_cast<unsigned>(State::kBusy) == 1);
  CHECK(static_cast<unsigned>(State::kDone) == 2);
  CHECK(static_cast<unsigned>(State::kFault) == 3);
  CHECK(static_cast<unsigned>(FaultKind::kNone) == 0);
  CHECK(static_cast<unsigned>(FaultKind::kAbort) == 1);
  CHECK(static_cast<unsigned>(FaultKind::kBusError) == 2);
  CHECK(static_cast<unsigned>(FaultKind::kBadCommand) == 3);
}

TEST_CASE("CHECKSUM is FNV-1a 64: the published test vectors") {
  CHECK(fnv1a(kFnvBasis, "", 0) == 0xcbf29ce484222325);
  CHECK(fnv1a(kFnvBasis, "a", 1) == 0xaf63dc4c8601ec8c);
  CHECK(fnv1a(kFnvBasis, "foobar", 6) == 0x85944171f73967e8);
  // Incremental, as the engine computes it page by page.
  CHECK(fnv1a(fnv1a(kFnvBasis, "foo", 3), "bar", 3) == 0x85944171f73967e8);
}

TEST_CASE("reset values") {
  for (int line : {static_cast<int>(test::kLine), -1}) {
    CAPTURE(line);
    Rig r(Rig::Setup{.line = line});
    const Mmio& io = r.io;
    CHECK(io.readl(0x000) == 0x45414d44);
    CHECK(io.readl(0x004) == (line >= 0 ? 0x01000314u : 0x01000114u));
    CHECK(io.readl(0x008) == test::kSid);
    CHECK(io.readl(0x00c) == 0);
    CHECK(io.readl(0x010) == 0);
    for (uint64_t off : {0x018, 0x020, 0x028, 0x030, 0x038, 0x050, 0x058, 0x060})
      CHECK(io.readq(off) == 0);
    CHECK(io.readl(0x040) == 0);
    CHECK(io.readl(0x044) == 0);
    CHECK(io.readl(0x048) == 0);
    CHECK(io.readl(0x04c) == 0);
    // "DMAE" as bytes from offset 0.
    const uint32_t id = io.readl(0x000);
    char s[4];
    memcpy(s, &id, 4);
    CHECK(memcmp(s, "DMAE", 4) == 0);
    CHECK(r.engine->regs().guest_error_count() == 0);
  }
}

TEST_CASE("writable bits: what a write of all ones stores") {
  Rig r(test::kModes[0]);
  const Mmio& io = r.io;
  io.writel(~0u, SUBSTREAMID::kOffset);
  io.writel(~0u, CTRL::kOffset);
  io.writeq(~uint64_t{0}, MSI_ADDR::kOffset);
  io.writel(~0u, MSI_DATA::kOffset);
  for (uint64_t off : {PATTERN::kOffset, SRC::kOffset, DST::kOffset, LEN::kOffset})
    io.writeq(~uint64_t{0}, off);
  CHECK(io.readl(SUBSTREAMID::kOffset) == 0x800fffff);
  CHECK(io.readl(CTRL::kOffset) == 0xf);
  CHECK(io.readq(MSI_ADDR::kOffset) == 0xfffffffffffffffc);
  CHECK(io.readl(MSI_DATA::kOffset) == 0xffffffff);
  for (uint64_t off : {PATTERN::kOffset, SRC::kOffset, DST::kOffset, LEN::kOffset})
    CHECK(io.readq(off) == ~uint64_t{0});
  CHECK(r.engine->regs().guest_error_count() == 0);
}

TEST_CASE("writes to read-only registers are ignored") {
  Rig r(test::kModes[0]);
  // A job first, so the result registers hold something to keep.
  r.fill_ram(test::kRamBase, 64, 1);
  r.run(Job{.op = Op::kCopy, .src = test::kRamBase, .dst = test::kRamBase + 0x1000, .len = 64});
  REQUIRE(r.state() == State::kDone);
  const auto before = r.engine->regs().snapshot();
  const Mmio& io = r.io;
  for (uint64_t off : {IDR0::kOffset, IDR1::kOffset, STREAMID::kOffset, COMPLETIONS::kOffset})
    io.writel(0xa5a5a5a5, off);
  // STATUS: the read-only fields are kept; the W1C bits are clear, and writing 1 to a clear
  // W1C bit leaves it clear.
  io.writel(~0u, STATUS::kOffset);
  for (uint64_t off : {DONE::kOffset, FAULT_ADDR::kOffset, CHECKSUM::kOffset})
    io.writeq(0x5a5a5a5a5a5a5a5a, off);
  CHECK(r.engine->regs().snapshot() == before);
  CHECK(r.engine->regs().guest_error_count() == 0);
  CHECK(r.state() == State::kDone);
  CHECK(r.done() == 64);
}

TEST_CASE("CMD is write-only; OP 0 does nothing") {
  Rig r(test::kModes[0]);
  r.ring(Op::kNop);
  CHECK(r.io.readl(CMD::kOffset) == 0);
  CHECK(r.state() == State::kIdle);
  CHECK(r.completions() == 0);
  r.run(Job{.op = Op::kFill, .dst = test::kRamBase, .len = 8});
  CHECK(r.io.readl(CMD::kOffset) == 0);  // the stored OP is hidden
  CHECK(r.completions() == 1);
}

TEST_CASE("holes read as zero, ignore writes and are guest errors") {
  Rig r(test::kModes[0]);
  const auto before = r.engine->regs().snapshot();
  for (uint64_t off : {0x014, 0x068, 0x100, 0xffc}) {
    CAPTURE(off);
    CHECK(r.io.readl(off) == 0);
    r.io.writel(0xffffffff, off);
  }
  // A 64-bit access to a 32-bit register is RAZ/WI too.
  CHECK(r.io.readq(IDR0::kOffset) == 0);
  CHECK(r.engine->regs().snapshot() == before);
  CHECK(r.engine->regs().guest_error_count() == 9);
}

TEST_CASE("a 64-bit register is two 32-bit halves") {
  Rig r(test::kModes[0]);
  r.io.writel(0x89abcdef, SRC::kOffset);
  r.io.writel(0x01234567, SRC::kOffset + 4);
  CHECK(r.io.readq(SRC::kOffset) == 0x0123456789abcdef);
  CHECK(r.io.readl(SRC::kOffset + 4) == 0x01234567);
}

TEST_CASE("reset() puts every register back; counters are kept") {
  for (Mode mode : test::kModes) {
    CAPTURE(name(mode));
    Rig r(mode);
    const auto reset_state = r.engine->regs().snapshot();
    r.fill_ram(test::kRamBase, 100, 2);
    r.run(Job{.op = Op::kChecksum, .src = test::kRamBase, .len = 100, .ssv = true, .ssid = 5});
    REQUIRE(r.completions() == 1);
    CHECK(r.engine->regs().snapshot() != reset_state);
    r.engine->reset();
    CHECK(r.engine->regs().snapshot() == reset_state);
    CHECK(r.engine->counters().jobs == 1);
  }
}

}  // namespace
}  // namespace strata::sim::dma_engine
