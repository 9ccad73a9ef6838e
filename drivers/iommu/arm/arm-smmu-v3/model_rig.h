// SPDX-License-Identifier: MIT
// The driver tests' rig against the SMMUv3 model: a simulated machine (testing/models/platform),
// the model on its memory and interrupt controller, Mmio over the model's registers, and the
// bounded waits a driver makes for the SMMU. The driver objects under test (a Cmdq, an OutQueue)
// are the suites' own, built on top (cmdq_test_rig.h).
//
// Suites that build the SMMU's structures by hand with the model's own harness, which brings its
// own machine, use harness_rig.h instead.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "arch/irq.h"
#include "arch/mmio.h"
#include "arch/smmuv3/cmd.h"
#include "arch/smmuv3/regs.h"
#include "testing/models/platform/platform.h"
#include "testing/models/smmuv3/smmuv3.h"

namespace strata::arm_smmu_v3::test {

namespace hw = ::strata::smmuv3;
using sim::Platform;
using sim::smmuv3::Config;
using sim::smmuv3::IrqLines;
using sim::smmuv3::Smmuv3;
using sim::smmuv3::Threading;

// How long any wait on the SMMU lasts before the test calls it a failure. Generous, because a
// sanitizer build on a loaded machine is slow; a passing test never waits this long.
inline constexpr std::chrono::milliseconds kTimeout{30'000};
inline constexpr uint64_t kTimeoutUs = std::chrono::microseconds(kTimeout).count();
// Register page 0: the global and Command queue registers (CmdqConfig::page0).
inline constexpr size_t kPage0Bytes = 0x10000;

// The modes in which the model runs by itself: kSync (inside the register write) and kAsync (on
// its own thread).
inline constexpr Threading kModes[] = {Threading::kSync, Threading::kAsync};

// Waits until `done` holds, for at most `timeout`, as a driver polls; `between` runs between
// tries (see model_step()).
inline bool wait_until(const std::function<bool()>& done,
                       const std::function<void()>& between = nullptr,
                       std::chrono::milliseconds timeout = kTimeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    if (between) between();
    std::this_thread::yield();
  }
  return true;
}

// What a poll must do between its tries for the model to make progress: in kManual the model
// works only when told to, so process(); in the other modes nothing.
inline std::function<void()> model_step(Smmuv3& model, Threading threading) {
  if (threading != Threading::kManual) return nullptr;
  return [&model] { model.queues().process(); };
}

struct ModelRigOptions {
  Threading threading = Threading::kSync;
  Config config = Config::smmuv3_2();
  // The model's wired interrupt outputs, as lines of the platform's interrupt controller.
  IrqLines lines = {};
  // Non-coherent DMA memory makes the driver clean what the SMMU reads (sync_for_device).
  bool dma_coherent = true;
};

class ModelRig {
 public:
  explicit ModelRig(const ModelRigOptions& o = {}) : options(o) {
    auto p = Platform::create(Platform::Config{.dma_coherent = o.dma_coherent});
    REQUIRE(p.ok());
    platform = p.release_value();
    auto s = Smmuv3::create(
        o.config, platform->mem(),
        Smmuv3::Options{.threading = o.threading, .irq = &platform->irq(), .lines = o.lines});
    REQUIRE(s.ok());
    model = s.release_value();
    io = Mmio::model(model->regs(), hw::kRegisterSpaceBytes);
  }
  ~ModelRig() { teardown(); }

  sim::SimDmaAllocator& dma() { return platform->dma(); }
  sim::SimInterruptController& irq() { return platform->irq(); }
  Mmio page0() const { return io.window(0, kPage0Bytes); }

  // Waits until `done` holds, running the model in kManual.
  bool poll(const std::function<bool()>& done) {
    return wait_until(done, model_step(*model, options.threading));
  }
  // kManual: the model consumes what it has been given.
  void process() { model->queues().process(); }

  // Writes `value` and waits for the ACK register to show it: the Update of CR0 and IRQ_CTRL
  // (6.3.9), as Linux's arm_smmu_write_reg_sync.
  bool write_ack(uint64_t reg, uint64_t ack, uint32_t value) {
    io.writel(value, reg);
    return poll([&] { return io.readl(ack) == value; });
  }
  // Sets (on) or clears the bits of `mask` in CR0, keeping the others.
  bool set_cr0_bits(uint32_t mask, bool on) {
    return set_bits(hw::CR0::kOffset, hw::CR0ACK::kOffset, mask, on);
  }
  bool set_irq_ctrl_bits(uint32_t mask, bool on) {
    return set_bits(hw::IRQ_CTRL::kOffset, hw::IRQ_CTRLACK::kOffset, mask, on);
  }

  // Connects `handler` to a wired line (ModelRigOptions::lines) until teardown().
  void request_irq(unsigned line, IrqHandler handler, void* ctx) {
    REQUIRE(irq().request_irq(line, handler, ctx).ok());
    irq_lines_.push_back(line);
  }

  uint64_t executed(hw::Opcode op) const { return model->counters().command(op); }
  uint32_t gerror_active() const {
    return hw::active_errors(hw::GERROR::read_from(io), hw::GERRORN::read_from(io));
  }

  // Stops the SMMU as a driver's shutdown does (CR0 = 0), masks its interrupts (IRQ_CTRL = 0),
  // each waited for, then frees the interrupt lines. A rig that owns memory the SMMU reads or
  // writes (a queue, a table) calls this first in its destructor, so that the SMMU has stopped
  // before that memory goes; calling it again is harmless.
  void teardown() {
    CHECK(write_ack(hw::CR0::kOffset, hw::CR0ACK::kOffset, 0));
    CHECK(write_ack(hw::IRQ_CTRL::kOffset, hw::IRQ_CTRLACK::kOffset, 0));
    for (unsigned line : irq_lines_) irq().free_irq(line);
    irq_lines_.clear();
  }

  const ModelRigOptions options;
  // Declared in the order they are built: the model goes before the machine it lives on.
  std::unique_ptr<Platform> platform;
  std::unique_ptr<Smmuv3> model;
  Mmio io;  // pages 0 and 1

 private:
  bool set_bits(uint64_t reg, uint64_t ack, uint32_t mask, bool on) {
    const uint32_t v = io.readl(reg);
    return write_ack(reg, ack, on ? v | mask : v & ~mask);
  }

  std::vector<unsigned> irq_lines_;
};

}  // namespace strata::arm_smmu_v3::test
