// SPDX-License-Identifier: MIT
// A driver's-eye harness for the DMA test engine's own tests: a simulated machine, one engine
// straight on physical memory (or on a port the test gives), and helpers that program its
// registers through Mmio as a driver would.
#pragma once

#include <stdint.h>
#include <string.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include <doctest/doctest.h>

#include "arch/mmio.h"
#include "testing/models/dma-engine/dma_engine.h"
#include "testing/models/dma-engine/dma_port.h"
#include "testing/models/dma-engine/regs.h"
#include "testing/models/platform/platform.h"

namespace strata::sim::dma_engine::test {

inline constexpr phys_addr_t kRamBase = 0x4000'0000;
inline constexpr uint64_t kRamSize = uint64_t{64} << 20;
inline constexpr phys_addr_t kRamEnd = kRamBase + kRamSize;
// Nothing answers here: an access is a bus error.
inline constexpr phys_addr_t kNowhere = 0x2000'0000;
inline constexpr unsigned kLine = 9;
inline constexpr uint32_t kSid = 0x42;

inline constexpr Mode kModes[] = {Mode::kSync, Mode::kAsync};

// Bytes no test writes by accident: byte i of a buffer seeded `seed`.
inline uint8_t test_byte(uint64_t i, unsigned seed) {
  return static_cast<uint8_t>((i * 131 + seed * 17 + (i >> 8)) ^ 0x5a);
}

// A port that can hold transfers: while held, every read or write waits, inside the port, until
// release(). Lets a test look at (and ring) an engine that is certainly BUSY.
class HoldingPort final : public DmaPort {
 public:
  explicit HoldingPort(DmaPort& next) : next_(next) {}

  void hold() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = true;
  }
  void release() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = false;
    cv_.notify_all();
  }
  // Waits until some transfer is waiting in the port.
  void wait_entered() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return waiting_ > 0; });
  }

  DmaOutcome read(const DmaStream& s, uint64_t addr, void* buf, size_t len) override {
    gate();
    return next_.read(s, addr, buf, len);
  }
  DmaOutcome write(const DmaStream& s, uint64_t addr, const void* buf, size_t len) override {
    gate();
    return next_.write(s, addr, buf, len);
  }

 private:
  void gate() {
    std::unique_lock<std::mutex> lock(mu_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return !held_; });
    --waiting_;
  }

  DmaPort& next_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
  unsigned waiting_ = 0;
};

class Rig {
 public:
  struct Setup {
    Mode mode = Mode::kSync;
    int line = kLine;
    bool holding = false;  // put a HoldingPort between the engine and memory
  };

  explicit Rig(Mode mode) : Rig(Setup{.mode = mode}) {}
  explicit Rig(const Setup& setup) : mode(setup.mode) {
    auto p = Platform::create(Platform::Config{.ram_base = kRamBase, .ram_size = kRamSize});
    REQUIRE(p.ok());
    platform = p.release_value();
    direct = std::make_unique<DirectDmaPort>(platform->mem());
    if (setup.holding) holding = std::make_unique<HoldingPort>(*direct);
    DmaPort& port = holding ? static_cast<DmaPort&>(*holding) : *direct;
    auto e = DmaTestEngine::create(port, DmaTestEngine::Options{.stream_id = kSid,
                                                                .mode = setup.mode,
                                                                .irq = &platform->irq(),
                                                                .line = setup.line,
                                                                .name = "dmae-test"});
    REQUIRE(e.ok());
    engine = e.release_value();
    io = engine->mmio();
  }
  ~Rig() { engine.reset(); }

  PhysMem& mem() { return platform->mem(); }
  SimInterruptController& irq() { return platform->irq(); }

  // The CPU's view of RAM.
  uint8_t* ram(phys_addr_t pa, size_t len = 1) {
    auto* p = static_cast<uint8_t*>(mem().host_ptr(pa, len));
    REQUIRE(p != nullptr);
    return p;
  }
  void fill_ram(phys_addr_t pa, size_t len, unsigned seed) {
    uint8_t* p = ram(pa, len);
    for (size_t i = 0; i < len; ++i) p[i] = test_byte(i, seed);
  }
  std::vector<uint8_t> bytes(phys_addr_t pa, size_t len) {
    const uint8_t* p = ram(pa, len);
    return std::vector<uint8_t>(p, p + len);
  }
  static std::vector<uint8_t> expected(size_t len, unsigned seed) {
    std::vector<uint8_t> v(len);
    for (size_t i = 0; i < len; ++i) v[i] = test_byte(i, seed);
    return v;
  }

  // A job's parameters through the registers, as a driver programs them.
  void program(const Job& j) const {
    SUBSTREAMID{}.set<SUBSTREAMID::SSV>(j.ssv).set<SUBSTREAMID::SSID>(j.ssid).write_to(io);
    CTRL{}
        .set<CTRL::IRQEN>(j.irq)
        .set<CTRL::MSIEN>(j.msi)
        .set<CTRL::PRIV>(j.priv)
        .set<CTRL::INSTR>(j.instr)
        .write_to(io);
    io.writeq(j.pattern, PATTERN::kOffset);
    io.writeq(j.src, SRC::kOffset);
    io.writeq(j.dst, DST::kOffset);
    io.writeq(j.len, LEN::kOffset);
    io.writeq(j.msi_addr, MSI_ADDR::kOffset);
    io.writel(j.msi_data, MSI_DATA::kOffset);
  }
  void ring(Op op) const { CMD{}.set<CMD::OP>(static_cast<uint32_t>(op)).write_to(io); }
  // Programs, rings and waits for the job (and its interrupts) to be over.
  void run(const Job& j) {
    program(j);
    ring(j.op);
    engine->wait_idle();
  }

  STATUS status() const { return STATUS::read_from(io); }
  State state() const { return static_cast<State>(status().get<STATUS::STATE>()); }
  FaultKind fault() const { return static_cast<FaultKind>(status().get<STATUS::FAULT>()); }
  uint64_t done() const { return io.readq(DONE::kOffset); }
  uint64_t fault_addr() const { return io.readq(FAULT_ADDR::kOffset); }
  uint64_t checksum() const { return io.readq(CHECKSUM::kOffset); }
  uint32_t completions() const { return io.readl(COMPLETIONS::kOffset); }

  const Mode mode;
  std::unique_ptr<Platform> platform;
  std::unique_ptr<DirectDmaPort> direct;
  std::unique_ptr<HoldingPort> holding;
  std::unique_ptr<DmaTestEngine> engine;
  Mmio io;
};

}  // namespace strata::sim::dma_engine::test
