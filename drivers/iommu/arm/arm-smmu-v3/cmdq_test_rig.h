// SPDX-License-Identifier: MIT
// The Command queue's test rig, on model_rig.h's machine and model: a Cmdq over the model's
// registers, the GERROR interrupt wired to Cmdq::handle_cmdq_gerror() as a driver's GERROR
// handler would call it (or, for a driver without one, that handler given to the Cmdq's
// waiters as its GERROR poll), and CMDQEN set the way a driver's reset sequence sets it.
#pragma once

#include <stdint.h>

#include <atomic>

#include <doctest/doctest.h>

#include "arch/dma.h"
#include "arch/smmuv3/cmd.h"
#include "arch/smmuv3/regs.h"
#include "drivers/iommu/arm/arm-smmu-v3/cmdq.h"
#include "drivers/iommu/arm/arm-smmu-v3/model_rig.h"

namespace strata::arm_smmu_v3::test {

inline constexpr unsigned kGerrorLine = 7;

inline const char* mode_name(Threading t) { return sim::smmuv3::name(t); }

// What a GERROR handler does for the Command queue; the model delivers it on the thread whose
// register write raised it.
inline void gerror_handler(void* ctx) { static_cast<Cmdq*>(ctx)->handle_cmdq_gerror(); }

// The same handler for a driver without a GERROR interrupt (Cmdq::set_gerror_poll), counting
// its runs; the Cmdq runs it in one waiter at a time.
struct GerrorPoller {
  static void poll(void* ctx) {
    auto* p = static_cast<GerrorPoller*>(ctx);
    p->runs.fetch_add(1, std::memory_order_relaxed);
    p->cmdq->handle_cmdq_gerror();
  }

  Cmdq* cmdq = nullptr;
  std::atomic<uint64_t> runs{0};  // polls that ran the handler
};

// Cmdq::create, which the test expects to succeed.
inline Box<Cmdq> make_cmdq(const CmdqConfig& cfg) {
  auto q = Cmdq::create(cfg);
  REQUIRE(q.ok());
  return q.release_value();
}

struct RigOptions : ModelRigOptions {
  unsigned log2_entries = 8;
  bool msi = true;
  uint64_t timeout_us = kTimeoutUs;
  bool enable = true;  // set CMDQEN after reset()
  // Where the queue lives; null for the platform's DMA memory.
  DmaAllocator* dma = nullptr;
  // The GERROR interrupt connected and enabled (IRQ_CTRL.GERROR_IRQEN); without it, command
  // errors are handled only if `gerror_poll` gives the Cmdq the handler to poll.
  bool gerror_irq = true;
  bool gerror_poll = false;
};

// Runs `scenario(RigOptions)` with the model in `threading` and CMD_SYNC completion polled, then
// by MSI; a failure names the combination.
template <typename Fn>
void for_each_completion(Threading threading, Fn&& scenario) {
  for (bool msi : {false, true}) {
    CAPTURE(mode_name(threading));
    CAPTURE(msi);
    RigOptions o;
    o.threading = threading;
    o.msi = msi;
    scenario(o);
  }
}
// The same in each mode in which the model runs by itself.
template <typename Fn>
void for_each_mode(Fn&& scenario) {
  for (Threading t : kModes) for_each_completion(t, scenario);
}

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

struct Rig : ModelRig {
  explicit Rig(const RigOptions& o = {}) : ModelRig(with_gerror_line(o)) {
    cmdq = make_cmdq(CmdqConfig{.page0 = page0(),
                                .dma = o.dma ? o.dma : &dma(),
                                .log2_entries = o.log2_entries,
                                .msi = o.msi,
                                .timeout_us = o.timeout_us,
                                .name = "smmu-test"});
    if (o.gerror_irq) {
      request_irq(kGerrorLine, gerror_handler, cmdq.get());
      REQUIRE(set_irq_ctrl_bits(hw::IRQ_CTRL::GERROR_IRQEN::kMask, true));
    }
    if (o.gerror_poll) {
      poller.cmdq = cmdq.get();
      cmdq->set_gerror_poll(&GerrorPoller::poll, &poller);
    }
    REQUIRE(cmdq->reset().ok());
    if (o.enable) REQUIRE(set_cmdqen(true));
  }
  // The SMMU stops reading the queue, and its GERROR handler is gone, before the queue goes.
  ~Rig() { teardown(); }

  bool set_cmdqen(bool on) { return set_cr0_bits(hw::CR0::CMDQEN::kMask, on); }

  GerrorPoller poller;  // RigOptions::gerror_poll
  Box<Cmdq> cmdq;

 private:
  static ModelRigOptions with_gerror_line(const RigOptions& o) {
    ModelRigOptions m = o;
    if (o.gerror_irq) m.lines.gerror = static_cast<int>(kGerrorLine);
    return m;
  }
};

}  // namespace strata::arm_smmu_v3::test
