// SPDX-License-Identifier: MIT
// The Command queue's test rig: a simulated machine, the SMMUv3 model on its memory, a Cmdq over
// the model's registers, the GERROR interrupt wired to Cmdq::handle_cmdq_gerror() as a driver's
// GERROR handler would call it, and CMDQEN set the way a driver's reset sequence sets it.
#pragma once

#include <stdint.h>

#include <chrono>
#include <memory>
#include <thread>

#include <doctest/doctest.h>

#include "arch/mmio.h"
#include "arch/smmuv3/cmd.h"
#include "arch/smmuv3/regs.h"
#include "drivers/iommu/arm/arm-smmu-v3/cmdq.h"
#include "testing/models/platform/platform.h"
#include "testing/models/smmuv3/smmuv3.h"

namespace strata::arm_smmu_v3::test {

namespace hw = ::strata::smmuv3;
using sim::Platform;
using sim::smmuv3::Config;
using sim::smmuv3::Smmuv3;
using sim::smmuv3::Threading;

inline constexpr unsigned kGerrorLine = 7;
inline constexpr size_t kPage0Bytes = 0x10000;

inline const char* mode_name(Threading t) { return sim::smmuv3::name(t); }

// What a GERROR handler does for the Command queue; the model delivers it on the thread whose
// register write raised it.
inline void gerror_handler(void* ctx) { static_cast<Cmdq*>(ctx)->handle_cmdq_gerror(); }

struct RigOptions {
  Threading threading = Threading::kSync;
  Config config = Config::smmuv3_2();
  unsigned log2_entries = 8;
  bool msi = true;
  uint64_t timeout_us = 60'000'000;  // generous: sanitizers and two CPUs make waits long
  bool gerror_irq = true;
  bool enable = true;  // set CMDQEN after reset()
  bool dma_coherent = true;
};

inline hw::CmdCfgiSte cfgi_ste(uint32_t sid) {
  return hw::CmdCfgiSte::make().set<hw::CmdCfgiSte::StreamID>(sid);
}
inline hw::Command cfgi_ste_cmd(uint32_t sid) {
  return hw::descriptor_cast<hw::Command>(cfgi_ste(sid));
}
// A command the model rejects with CERROR_ILL: CMD_CFGI_STE with a RES0 bit (bit 20) set.
inline hw::Command illegal_cmd(uint32_t sid) {
  hw::Command c = cfgi_ste_cmd(sid);
  c.set_word(0, c.word(0) | (uint64_t{1} << 20));
  return c;
}
// A Reserved opcode (0x08): CERROR_ILL too.
inline hw::Command reserved_opcode_cmd() {
  hw::Command c;
  c.set<hw::Command::Op>(0x08);
  return c;
}

struct Rig {
  explicit Rig(const RigOptions& o = {}) : options(o) {
    auto p = Platform::create(Platform::Config{.dma_coherent = o.dma_coherent});
    REQUIRE(p.ok());
    platform = p.release_value();
    Smmuv3::Options mo{.threading = o.threading, .irq = &platform->irq()};
    if (o.gerror_irq) mo.lines.gerror = kGerrorLine;
    auto s = Smmuv3::create(o.config, platform->mem(), mo);
    REQUIRE(s.ok());
    model = s.release_value();
    io = Mmio::model(model->regs(), hw::kRegisterSpaceBytes);
    auto q = Cmdq::create(CmdqConfig{.page0 = io.window(0, kPage0Bytes),
                                     .dma = &platform->dma(),
                                     .log2_entries = o.log2_entries,
                                     .msi = o.msi,
                                     .timeout_us = o.timeout_us,
                                     .name = "smmu-test"});
    REQUIRE(q.ok());
    cmdq = q.release_value();
    if (o.gerror_irq) {
      REQUIRE(platform->irq().request_irq(kGerrorLine, gerror_handler, cmdq.get()).ok());
      REQUIRE(write_ack(hw::IRQ_CTRL::kOffset, hw::IRQ_CTRLACK::kOffset,
                        hw::IRQ_CTRL::GERROR_IRQEN::kMask));
    }
    REQUIRE(cmdq->reset().ok());
    if (o.enable) REQUIRE(set_cmdqen(true));
  }
  ~Rig() {
    // The SMMU stops reading the queue before its memory goes.
    if (io.readl(hw::CR0ACK::kOffset) & hw::CR0::CMDQEN::kMask) CHECK(set_cmdqen(false));
    if (options.gerror_irq) platform->irq().free_irq(kGerrorLine);
    cmdq.reset();
    model.reset();
  }

  // Writes `value` and waits for the ACK register to show it (6.3.9), driving the model in
  // kManual.
  bool write_ack(uint64_t reg, uint64_t ack, uint32_t value) {
    io.writel(value, reg);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (io.readl(ack) != value) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      if (options.threading == Threading::kManual) model->queues().process();
      std::this_thread::yield();
    }
    return true;
  }
  bool set_cmdqen(bool on) {
    const uint32_t cr0 = io.readl(hw::CR0::kOffset);
    return write_ack(hw::CR0::kOffset, hw::CR0ACK::kOffset,
                     on ? cr0 | hw::CR0::CMDQEN::kMask : cr0 & ~hw::CR0::CMDQEN::kMask);
  }

  uint64_t executed(hw::Opcode op) const { return model->counters().command(op); }
  uint32_t gerror_active() const {
    return hw::active_errors(hw::GERROR::read_from(io), hw::GERRORN::read_from(io));
  }

  RigOptions options;
  std::unique_ptr<Platform> platform;
  std::unique_ptr<Smmuv3> model;
  Mmio io;
  Box<Cmdq> cmdq;
};

}  // namespace strata::arm_smmu_v3::test
