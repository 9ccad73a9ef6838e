// SPDX-License-Identifier: MIT
// The DMA test engine on its own, straight on physical memory (DirectDmaPort): every job kind,
// faults, completion interrupts, both execution modes, and the busy rules. Each scenario is
// driven through the registers as a driver would, unless it is about the direct API.
#include "testing/models/dma-engine/dma_engine.h"

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "arch/irq.h"
#include "testing/models/dma-engine/engine_harness.h"

namespace strata::sim::dma_engine {
namespace {

using test::kLine;
using test::kModes;
using test::kNowhere;
using test::kRamBase;
using test::kRamEnd;
using test::Rig;

constexpr phys_addr_t kSrc = kRamBase + 0x10'0000;
constexpr phys_addr_t kDst = kRamBase + 0x20'0000;

uint64_t fnv(const std::vector<uint8_t>& v) { return fnv1a(kFnvBasis, v.data(), v.size()); }

// What a completion handler saw.
struct Seen {
  Rig* rig = nullptr;
  std::atomic<int> hits{0};
  std::atomic<uint32_t> state{0};
  std::atomic<uint32_t> completions{0};
};
void on_completion(void* ctx) {
  auto* s = static_cast<Seen*>(ctx);
  s->state = s->rig->status().get<STATUS::STATE>();
  s->completions = s->rig->completions();
  s->hits++;
}

TEST_CASE("COPY through the registers: the bytes, DONE, CHECKSUM and COMPLETIONS") {
  for (Mode mode : kModes) {
    CAPTURE(name(mode));
    Rig r(mode);
    r.fill_ram(kSrc, 0x3000, 1);
    r.run(Job{.op = Op::kCopy, .src = kSrc, .dst = kDst, .len = 0x3000});
    CHECK(r.state() == State::kDone);
    CHECK(r.fault() == FaultKind::kNone);
    CHECK(r.done() == 0x3000);
    CHECK(r.fault_addr() == 0);
    CHECK(r.completions() == 1);
    CHECK(r.bytes(kDst, 0x3000) == Rig::expected(0x3000, 1));
    CHECK(r.checksum() == fnv(Rig::expected(0x3000, 1)));
    const EngineCounters c = r.engine->counters();
    CHECK(c.jobs == 1);
    CHECK(c.bytes == 0x3000);
    CHECK(c.faults == 0);
    CHECK(r.engine->regs().guest_error_count() == 0);
  }
}

TEST_CASE("COPY: unaligned, page-crossing ranges; nothing written outside") {
  for (Mode mode : kModes) {
    CAPTURE(name(mode));
    Rig r(mode);
    constexpr uint64_t kLen = 0x2f17;
    const phys_addr_t src = kSrc + 0x123;
    const phys_addr_t dst = kDst + 0xff1;
    r.fill_ram(src, kLen, 2);
    // Guards on either side of the destination.
    r.fill_ram(dst - 64, 64, 9);
    r.fill_ram(dst + kLen, 64, 10);
    r.run(Job{.op = Op::kCopy, .src = src, .dst = dst, .len = kLen});
    CHECK(r.state() == State::kDone);
    CHECK(r.done() == kLen);
    CHECK(r.bytes(dst, kLen) == Rig::expected(kLen, 2));
    CHECK(r.bytes(dst - 64, 64) == Rig::expected(64, 9));
    CHECK(r.bytes(dst + kLen, 64) == Rig::expected(64, 10));
    CHECK(r.checksum() == fnv(Rig::expected(kLen, 2)));
  }
}

TEST_CASE("FILL: PATTERN repeated from the first byte, little-endian") {
  for (Mode mode : kModes) {
    CAPTURE(name(mode));
    Rig r(mode);
    constexpr uint64_t kPattern = 0x8877665544332211;
    constexpr uint64_t kLen = 4096 + 3;
    const phys_addr_t dst = kDst + 0xffd;
    r.fill_ram(dst + kLen, 16, 3);
    r.run(Job{.op = Op::kFill, .dst = dst, .len = kLen, .pattern = kPattern});
    CHECK(r.state() == State::kDone);
    CHECK(r.done() == kLen);
    std::vector<uint8_t> want(kLen);
    for (size_t i = 0; i < kLen; ++i) want[i] = static_cast<uint8_t>(0x11 * (i % 8 + 1));
    CHECK(r.bytes(dst, kLen) == want);
    CHECK(r.bytes(dst + kLen, 16) == Rig::expected(16, 3));
    CHECK(r.checksum() == fnv(want));
  }
}

TEST_CASE("CHECKSUM: reads LEN bytes, writes nothing") {
  for (Mode mode : kModes) {
    CAPTURE(name(mode));
    Rig r(mode);
    r.fill_ram(kSrc + 7, 5000, 4);
    r.fill_ram(kDst, 5000, 5);
    // DST is programmed, but a CHECKSUM never writes.
    r.run(Job{.op = Op::kChecksum, .src = kSrc + 7, .dst = kDst, .len = 5000});
    CHECK(r.state() == State::kDone);
    CHECK(r.done() == 5000);
    CHECK(r.checksum() == fnv(Rig::expected(5000, 4)));
    CHECK(r.bytes(kDst, 5000) == Rig::expected(5000, 5));
  }
}

TEST_CASE("length 0: done at once, with its completion interrupt") {
  for (Mode mode : kModes) {
    CAPTURE(name(mode));
    Rig r(mode);
    Seen seen{.rig = &r};
    auto irq = Irq::request(r.irq(), kLine, on_completion, &seen);
    REQUIRE(irq.ok());
    r.fill_ram(kDst, 16, 6);
    for (Op op : {Op::kCopy, Op::kFill, Op::kChecksum})
      r.run(
          Job{.op = op, .src = kSrc, .dst = kDst, .len = 0, .pattern = ~uint64_t{0}, .irq = true});
    CHECK(r.state() == State::kDone);
    CHECK(r.done() == 0);
    CHECK(r.checksum() == kFnvBasis);
    CHECK(r.completions() == 3);
    CHECK(seen.hits == 3);
    CHECK(r.bytes(kDst, 16) == Rig::expected(16, 6));
  }
}

TEST_CASE("bus error: a read from an address nothing answers") {
  for (Mode mode : kModes) {
    CAPTURE(name(mode));
    Rig r(mode);
    Seen seen{.rig = &r};
    auto irq = Irq::request(r.irq(), kLine, on_completion, &seen);
    REQUIRE(irq.ok());
    r.fill_ram(kDst, 64, 7);
    r.run(Job{.op = Op::kCopy, .src = kNowhere + 0x10, .dst = kDst, .len = 64, .irq = true});
    CHECK(r.state() == State::kFault);
    CHECK(r.fault() == FaultKind::kBusError);
    CHECK(r.status().get<STATUS::FAULT_WRITE>() == 0);
    CHECK(r.fault_addr() == kNowhere + 0x10);
    CHECK(r.done() == 0);
    CHECK(r.bytes(kDst, 64) == Rig::expected(64, 7));
    // A fault is a completion too: the handler sees it.
    CHECK(seen.hits == 1);
    CHECK(seen.state == static_cast<uint32_t>(State::kFault));
    CHECK(r.engine->counters().faults == 1);
  }
}

TEST_CASE("bus error: a copy that runs off the end of RAM stops there") {
  for (Mode mode : kModes) {
    CAPTURE(name(mode));
    Rig r(mode);
    const phys_addr_t dst = kRamEnd - 0x1800;
    r.fill_ram(kSrc, 0x3000, 8);
    r.run(Job{.op = Op::kCopy, .src = kSrc, .dst = dst, .len = 0x3000});
    CHECK(r.state() == State::kFault);
    CHECK(r.fault() == FaultKind::kBusError);
    CHECK(r.status().get<STATUS::FAULT_WRITE>() == 1);
    CHECK(r.fault_addr() == kRamEnd);
    CHECK(r.done() == 0x1800);
    CHECK(r.bytes(dst, 0x1800) == Rig::expected(0x1800, 8));
    CHECK(r.checksum() == fnv(Rig::expected(0x1800, 8)));
    // A FILL and a CHECKSUM stop at the same place.
    r.run(Job{.op = Op::kFill, .dst = dst + 0x800, .len = 0x3000, .pattern = 0});
    CHECK(r.fault() == FaultKind::kBusError);
    CHECK(r.done() == 0x1000);
    CHECK(r.fault_addr() == kRamEnd);
    r.run(Job{.op = Op::kChecksum, .src = dst, .len = 0x3000});
    CHECK(r.fault() == FaultKind::kBusError);
    CHECK(r.status().get<STATUS::FAULT_WRITE>() == 0);
    CHECK(r.done() == 0x1800);
  }
}

TEST_CASE("completion on the wired line, when CTRL.IRQEN asks for it") {
  for (Mode mode : kModes) {
    CAPTURE(name(mode));
    Rig r(mode);
    Seen seen{.rig = &r};
    auto irq = Irq::request(r.irq(), kLine, on_completion, &seen);
    REQUIRE(irq.ok());
    r.run(Job{.op = Op::kFill, .dst = kDst, .len = 100, .irq = true});
    CHECK(seen.hits == 1);
    // The handler saw the job over: STATE and COMPLETIONS are final before the interrupt.
    CHECK(seen.state == static_cast<uint32_t>(State::kDone));
    CHECK(seen.completions == 1);
    CHECK(r.irq().delivered(kLine) == 1);
    r.run(Job{.op = Op::kFill, .dst = kDst, .len = 100, .irq = false});
    CHECK(seen.hits == 1);
    CHECK(r.engine->counters().irqs == 1);
  }
  // No line connected: IDR1.WIRED is 0 and IRQEN raises nothing.
  Rig r(Rig::Setup{.line = -1});
  r.run(Job{.op = Op::kFill, .dst = kDst, .len = 100, .irq = true});
  CHECK(r.state() == State::kDone);
  CHECK(r.engine->counters().irqs == 0);
  CHECK(r.irq().spurious() == 0);
}

TEST_CASE("completion MSI: MSI_DATA written to MSI_ADDR; an aborted one sets MSI_ABT") {
  for (Mode mode : kModes) {
    CAPTURE(name(mode));
    Rig r(mode);
    Seen seen{.rig = &r};
    auto msi = Irq::request_msi(r.irq(), on_completion, &seen);
    REQUIRE(msi.ok());
    const MsiMsg msg = msi->msi_msg();
    r.run(Job{.op = Op::kCopy,
              .src = kSrc,
              .dst = kDst,
              .len = 256,
              .msi = true,
              .msi_addr = msg.address,
              .msi_data = msg.data});
    CHECK(seen.hits == 1);
    CHECK(seen.state == static_cast<uint32_t>(State::kDone));
    CHECK(r.irq().msi_delivered(msg.data) == 1);
    CHECK(r.status().get<STATUS::MSI_ABT>() == 0);

    // MSI_ADDR 0 sends nothing, MSIEN or not.
    r.run(Job{.op = Op::kCopy, .src = kSrc, .dst = kDst, .len = 16, .msi = true});
    CHECK(seen.hits == 1);
    CHECK(r.engine->counters().msis == 1);

    // An MSI to nowhere: the job is done, the MSI is not.
    r.run(Job{.op = Op::kCopy,
              .src = kSrc,
              .dst = kDst,
              .len = 16,
              .msi = true,
              .msi_addr = kNowhere,
              .msi_data = msg.data});
    CHECK(r.state() == State::kDone);
    CHECK(r.status().get<STATUS::MSI_ABT>() == 1);
    CHECK(seen.hits == 1);
    CHECK(r.engine->counters().msi_aborts == 1);
    // Write-one-to-clear.
    r.io.writel(STATUS::MSI_ABT::kMask, STATUS::kOffset);
    CHECK(r.status().get<STATUS::MSI_ABT>() == 0);
    CHECK(r.state() == State::kDone);
  }
}

TEST_CASE("a doorbell while BUSY is refused with BUSY_ERR; the running job is untouched") {
  for (Mode mode : kModes) {
    CAPTURE(name(mode));
    Rig r(Rig::Setup{.mode = mode, .holding = true});
    r.fill_ram(kSrc, 0x2000, 11);
    r.fill_ram(kDst + 0x10'0000, 0x2000, 12);
    r.holding->hold();
    // The first job. In kSync the doorbell write runs the job, so it is rung from a thread.
    std::thread first([&] {
      r.program(Job{.op = Op::kCopy, .src = kSrc, .dst = kDst, .len = 0x2000});
      r.ring(Op::kCopy);
    });
    r.holding->wait_entered();
    CHECK(r.state() == State::kBusy);
    CHECK(r.engine->busy());

    // The driver reprograms everything and rings again: refused.
    r.program(Job{.op = Op::kFill, .dst = kDst + 0x10'0000, .len = 0x2000, .pattern = 0});
    r.ring(Op::kFill);
    CHECK(r.state() == State::kBusy);
    CHECK(r.status().get<STATUS::BUSY_ERR>() == 1);
    // The direct API is refused the same way.
    CHECK(r.engine->copy(kSrc, kDst, 8).state == State::kBusy);

    r.holding->release();
    first.join();
    r.engine->wait_idle();
    // The first job ran with the parameters of its own doorbell.
    CHECK(r.state() == State::kDone);
    CHECK(r.done() == 0x2000);
    CHECK(r.completions() == 1);
    CHECK(r.bytes(kDst, 0x2000) == Rig::expected(0x2000, 11));
    CHECK(r.bytes(kDst + 0x10'0000, 0x2000) == Rig::expected(0x2000, 12));
    CHECK(r.status().get<STATUS::BUSY_ERR>() == 1);  // sticky
    CHECK(r.engine->counters().busy_errors == 2);
    CHECK(r.engine->regs().guest_error_count() == 1);  // the refused doorbell

    r.io.writel(STATUS::BUSY_ERR::kMask, STATUS::kOffset);
    CHECK(r.status().get<STATUS::BUSY_ERR>() == 0);
    // Rung again when idle, the refused job's parameters (still in the registers) run.
    r.ring(Op::kFill);
    r.engine->wait_idle();
    CHECK(r.state() == State::kDone);
    CHECK(r.completions() == 2);
    CHECK(r.bytes(kDst + 0x10'0000, 0x2000) == std::vector<uint8_t>(0x2000, 0));
  }
}

TEST_CASE("an unknown OP ends the job at once with BAD_CMD") {
  for (Mode mode : kModes) {
    CAPTURE(name(mode));
    Rig r(mode);
    Seen seen{.rig = &r};
    auto irq = Irq::request(r.irq(), kLine, on_completion, &seen);
    REQUIRE(irq.ok());
    r.fill_ram(kDst, 64, 13);
    r.program(Job{.src = kSrc, .dst = kDst, .len = 64, .irq = true});
    r.io.writel(0x7, CMD::kOffset);
    r.engine->wait_idle();
    CHECK(r.state() == State::kFault);
    CHECK(r.fault() == FaultKind::kBadCommand);
    CHECK(r.done() == 0);
    CHECK(r.completions() == 1);
    CHECK(seen.hits == 1);
    CHECK(r.bytes(kDst, 64) == Rig::expected(64, 13));
    CHECK(r.engine->regs().guest_error_count() == 1);
  }
}

TEST_CASE("the direct API: the job's outcome, as the status registers show it") {
  for (Mode mode : kModes) {
    CAPTURE(name(mode));
    Rig r(mode);
    r.fill_ram(kSrc, 0x1800, 14);
    JobResult c = r.engine->copy(kSrc, kDst + 0x10, 0x1800);
    CHECK(c.ok());
    CHECK(c.done == 0x1800);
    CHECK(c.checksum == fnv(Rig::expected(0x1800, 14)));
    CHECK(r.done() == c.done);
    CHECK(r.checksum() == c.checksum);
    CHECK(r.bytes(kDst + 0x10, 0x1800) == Rig::expected(0x1800, 14));

    JobResult s = r.engine->checksum(kDst + 0x10, 0x1800);
    CHECK(s.ok());
    CHECK(s.checksum == c.checksum);

    JobResult f = r.engine->fill(kRamEnd - 8, 16, 0x0102030405060708);
    CHECK(f.state == State::kFault);
    CHECK(f.fault == FaultKind::kBusError);
    CHECK(f.fault_write);
    CHECK(f.done == 8);
    CHECK(f.fault_addr == kRamEnd);
    CHECK(r.fault_addr() == kRamEnd);
    CHECK(r.ram(kRamEnd - 8)[0] == 0x08);

    // The parameter registers are the driver's: the direct API leaves them alone.
    CHECK(r.io.readq(SRC::kOffset) == 0);
    CHECK(r.io.readq(DST::kOffset) == 0);
    CHECK(r.io.readq(LEN::kOffset) == 0);
    CHECK(r.completions() == 3);
  }
}

// The stream attributes of every transaction, on the way to memory.
class RecordingPort final : public DmaPort {
 public:
  explicit RecordingPort(DmaPort& next) : next_(next) {}
  struct Seen {
    DmaStream stream;
    uint64_t addr;
    size_t len;
    bool write;
  };
  DmaOutcome read(const DmaStream& s, uint64_t addr, void* buf, size_t len) override {
    record({s, addr, len, false});
    return next_.read(s, addr, buf, len);
  }
  DmaOutcome write(const DmaStream& s, uint64_t addr, const void* buf, size_t len) override {
    record({s, addr, len, true});
    return next_.write(s, addr, buf, len);
  }
  std::vector<Seen> seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

 private:
  void record(const Seen& s) {
    std::lock_guard<std::mutex> lock(mu_);
    seen_.push_back(s);
  }
  DmaPort& next_;
  std::mutex mu_;
  std::vector<Seen> seen_;
};

TEST_CASE("transactions: the StreamID, SubstreamID and CTRL attributes; at most a page each") {
  for (Mode mode : kModes) {
    CAPTURE(name(mode));
    auto platform = Platform::create(Platform::Config{.ram_base = kRamBase, .ram_size = 64 << 20});
    REQUIRE(platform.ok());
    DirectDmaPort direct((*platform)->mem());
    RecordingPort port(direct);
    auto msi = Irq::request_msi((*platform)->irq(), [](void*) {}, nullptr);
    REQUIRE(msi.ok());
    auto created = DmaTestEngine::create(port, {.stream_id = 0x77, .mode = mode});
    REQUIRE(created.ok());
    DmaTestEngine& e = **created;
    e.run(Job{.op = Op::kCopy,
              .src = kSrc + 0x800,
              .dst = kDst + 0xc00,
              .len = 0x1000,
              .ssv = true,
              .ssid = 0xabcde,
              .priv = true,
              .instr = true,
              .msi = true,
              .msi_addr = msi->msi_msg().address,
              .msi_data = msi->msi_msg().data});
    const auto seen = port.seen();
    // Pieces end at the next page boundary of either side: 0x400 (the destination's), 0x400
    // (the source's), then the last 0x800; then the MSI.
    REQUIRE(seen.size() == 7);
    const uint64_t pieces[] = {0x400, 0x400, 0x800};
    uint64_t at = 0;
    for (size_t i = 0; i < 6; i += 2) {
      CAPTURE(i);
      CHECK_FALSE(seen[i].write);
      CHECK(seen[i + 1].write);
      CHECK(seen[i].addr == kSrc + 0x800 + at);
      CHECK(seen[i + 1].addr == kDst + 0xc00 + at);
      CHECK(seen[i].len == pieces[i / 2]);
      CHECK(seen[i + 1].len == pieces[i / 2]);
      at += pieces[i / 2];
      for (const auto* s : {&seen[i], &seen[i + 1]}) {
        CHECK(s->stream.sid == 0x77);
        CHECK(s->stream.ssv);
        CHECK(s->stream.ssid == 0xabcde);
        CHECK(s->stream.priv);
      }
      CHECK(seen[i].stream.instr);  // reads only
      CHECK_FALSE(seen[i + 1].stream.instr);
    }
    // The MSI: the engine's StreamID, no SubstreamID, a 4-byte write.
    CHECK(seen[6].write);
    CHECK(seen[6].addr == msi->msi_msg().address);
    CHECK(seen[6].len == 4);
    CHECK(seen[6].stream.sid == 0x77);
    CHECK_FALSE(seen[6].stream.ssv);
    CHECK((*platform)->irq().msi_delivered(msi->msi_msg().data) == 1);
  }
}

// A handler that chains a second job from the first one's completion, and checks it is never
// entered while already running.
struct Chain {
  Rig* rig = nullptr;
  std::atomic<int> depth{0};
  std::atomic<bool> nested{false};
  std::atomic<int> hits{0};
};
void on_chain(void* ctx) {
  auto* c = static_cast<Chain*>(ctx);
  if (c->depth.fetch_add(1) > 0) c->nested = true;
  if (c->hits.fetch_add(1) == 0) {
    c->rig->program(
        Job{.op = Op::kFill, .dst = kDst + 0x5000, .len = 0x100, .pattern = 0x1111, .irq = true});
    c->rig->ring(Op::kFill);
  }
  c->depth.fetch_sub(1);
}

TEST_CASE("a completion handler may ring the next job; its interrupt is never nested") {
  for (Mode mode : kModes) {
    CAPTURE(name(mode));
    Rig r(mode);
    Chain chain{.rig = &r};
    auto irq = Irq::request(r.irq(), kLine, on_chain, &chain);
    REQUIRE(irq.ok());
    r.program(Job{.op = Op::kFill, .dst = kDst, .len = 0x100, .pattern = 0x2222, .irq = true});
    r.ring(Op::kFill);
    if (mode == Mode::kSync) {
      // Both jobs ran, and both interrupts were delivered, before the doorbell write returned.
      CHECK(r.completions() == 2);
      CHECK(chain.hits == 2);
    }
    r.engine->wait_idle();
    CHECK(r.completions() == 2);
    CHECK(chain.hits == 2);
    CHECK_FALSE(chain.nested);
    CHECK(r.ram(kDst)[0] == 0x22);
    CHECK(r.ram(kDst + 0x5000)[0] == 0x11);
    CHECK(r.engine->counters().busy_errors == 0);
  }
}

TEST_CASE("concurrent jobs from several threads: each one runs whole or is refused") {
  for (Mode mode : kModes) {
    CAPTURE(name(mode));
    Rig r(mode);
    constexpr unsigned kThreads = 6, kJobs = 20;
    r.fill_ram(kSrc, 0x2000, 15);
    std::atomic<uint64_t> ran{0}, refused{0};
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (unsigned j = 0; j < kJobs; ++j) {
          const phys_addr_t dst = kDst + (uint64_t{t * kJobs + j} << 13);
          const JobResult res = r.engine->copy(kSrc, dst, 0x2000);
          if (res.state == State::kBusy) {
            refused++;
            continue;
          }
          CHECK(res.ok());
          CHECK(res.done == 0x2000);
          ran++;
        }
      });
    }
    for (std::thread& t : threads) t.join();
    r.engine->wait_idle();
    CHECK(ran + refused == kThreads * kJobs);
    CHECK(ran >= 1);
    const EngineCounters c = r.engine->counters();
    CHECK(c.jobs == ran);
    CHECK(c.busy_errors == refused);
    CHECK(c.bytes == ran * 0x2000);
    CHECK(r.completions() == ran);
    CHECK(r.state() == State::kDone);
  }
}

}  // namespace
}  // namespace strata::sim::dma_engine
