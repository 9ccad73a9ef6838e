// SPDX-License-Identifier: MIT
// The SMMUv3 model's queues, driven as a driver drives them: commands written into simulated
// memory by hand and the doorbell rung, completions awaited by polling CONS, a WFE event or an
// MSI, errors recovered as IHI 0070 7.1 describes; event and PRI records produced as a device's
// transactions would and consumed from memory. Scenarios run in both threading modes.
#include "testing/models/smmuv3/queues.h"

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "arch/dma.h"
#include "arch/irq.h"
#include "arch/smmuv3/cmd.h"
#include "arch/smmuv3/event.h"
#include "testing/hosted/hosted.h"
#include "testing/models/smmuv3/queue_harness.h"

namespace strata::sim::smmuv3 {
namespace {

using namespace test;
using arch::CommandError;
using arch::Opcode;

constexpr uint32_t kCmdqErr = arch::GERROR::CMDQ_ERR::kMask;

uint32_t cons_err(uint32_t cons) { return arch::CMDQ_CONS::ERR::extract(cons); }

arch::Command raw(uint64_t w0, uint64_t w1 = 0) {
  arch::Command c;
  c.set_word(0, w0).set_word(1, w1);
  return c;
}

template <typename C>
CommandCheck check(const C& cmd, const Config& config = Config{}) {
  return check_command(arch::descriptor_cast<arch::Command>(cmd), config);
}

// ---------------------------------------------------------------------------------------------
// The architected command checks (4.1.3, 4.1.5 and each command's section).

TEST_CASE("valid commands pass the checks") {
  using T = arch::CmdTlbi;
  CHECK(check(arch::CmdPrefetchConfig::make().set<arch::CmdPrefetchConfig::StreamID>(7)).ok());
  CHECK(check(arch::CmdPrefetchAddr::make().set<arch::CmdPrefetchAddr::Address>(0x1234'5000)).ok());
  CHECK(check(cfgi_ste(3).set<arch::CmdCfgiSte::Leaf>(1)).ok());
  CHECK(check(arch::CmdCfgiSteRange::make_all()).ok());
  CHECK(check(arch::CmdCfgiCd::make().set<arch::CmdCfgiCd::SubstreamID>(5)).ok());
  CHECK(check(arch::CmdCfgiCdAll::make()).ok());
  CHECK(check(T::make(Opcode::CMD_TLBI_NH_ALL).set<T::VMID>(3)).ok());
  CHECK(check(T::make(Opcode::CMD_TLBI_NH_ASID).set<T::VMID>(3).set<T::ASID>(9)).ok());
  CHECK(check(T::make(Opcode::CMD_TLBI_NH_VA)
                  .set<T::ASID>(9)
                  .set<T::Leaf>(1)
                  .set<T::Address>(0xffff'8000'1234'5000))
            .ok());
  // A range: 4KB granule, (NUM + 1) << SCALE pages, TTL level 3.
  CHECK(check(T::make(Opcode::CMD_TLBI_NH_VA)
                  .set<T::NUM>(3)
                  .set<T::SCALE>(2)
                  .set<T::TG>(arch::kTlbiTg4K)
                  .set<T::TTL>(3)
                  .set<T::Address>(0x10'0000))
            .ok());
  CHECK(check(T::make(Opcode::CMD_TLBI_NH_VAA).set<T::Address>(0x2000)).ok());
  CHECK(check(T::make(Opcode::CMD_TLBI_EL2_ALL)).ok());
  CHECK(check(T::make(Opcode::CMD_TLBI_EL2_ASID).set<T::ASID>(1)).ok());
  CHECK(check(T::make(Opcode::CMD_TLBI_EL2_VA).set<T::ASID>(1).set<T::Address>(0x3000)).ok());
  CHECK(check(T::make(Opcode::CMD_TLBI_S12_VMALL).set<T::VMID>(0xffff)).ok());
  CHECK(check(T::make(Opcode::CMD_TLBI_S2_IPA).set<T::VMID>(1).set<T::Address>(0x000f'ffff'f000))
            .ok());
  CHECK(check(T::make(Opcode::CMD_TLBI_NSNH_ALL)).ok());
  CHECK(check(arch::CmdAtcInv::make().set<arch::CmdAtcInv::Size>(52)).ok());
  CHECK(check(arch::CmdPriResp::make().set<arch::CmdPriResp::Resp>(arch::kPriRespSuccess)).ok());
  CHECK(check(arch::CmdResume::make().set<arch::CmdResume::Ac>(1).set<arch::CmdResume::STAG>(4))
            .ok());
  CHECK(check(arch::CmdStallTerm::make()).ok());
  CHECK(check(sync_cmd()).ok());
  CHECK(check(sync_cmd(arch::kCsSev)).ok());
  CHECK(check(sync_msi(0x000f'ffff'fffc, 0xffff'ffff).set<arch::CmdSync::MSH>(arch::kShIsh)).ok());
}

TEST_CASE("illegal commands are CERROR_ILL, with the reason") {
  using T = arch::CmdTlbi;
  auto illegal = [](const CommandCheck& r, const char* needle) {
    CHECK(r.error == CommandError::CERROR_ILL);
    REQUIRE(r.why != nullptr);
    CHECK(std::string(r.why).find(needle) != std::string::npos);
  };
  const Config c;
  illegal(check_command(raw(0x00), c), "Reserved opcode");
  illegal(check_command(raw(0x08), c), "Reserved opcode");
  illegal(check_command(raw(0x50), c), "Reserved opcode");  // Secure queue only
  illegal(check_command(raw(0x8f), c), "IMPLEMENTATION DEFINED");
  illegal(check_command(raw(0xff), c), "Reserved opcode");
  // RES0 fields, in either word.
  illegal(check_command(raw(0x46 | (1u << 8)), c), "RES0");
  illegal(check(cfgi_ste(1).set_word(1, 0x2)), "RES0");
  illegal(check(T::make(Opcode::CMD_TLBI_NH_ALL).set<T::ASID>(1)), "RES0");  // no ASID here
  illegal(check(T::make(Opcode::CMD_TLBI_NH_VAA).set<T::ASID>(1)), "RES0");
  illegal(check(T::make(Opcode::CMD_TLBI_EL2_ASID).set<T::VMID>(1)), "RES0");
  illegal(check(T::make(Opcode::CMD_TLBI_NSNH_ALL).set<T::Address>(0x1000)), "RES0");
  illegal(check(T::make(Opcode::CMD_TLBI_NH_VA).set<T::TTL128>(1).set<T::TG>(1).set<T::TTL>(3)),
          "RES0");
  // SSec on the Non-secure queue.
  illegal(check(cfgi_ste(1).set<arch::CmdCfgiSte::SSec>(1)), "SSec");
  illegal(check(arch::CmdPrefetchConfig::make().set<arch::CmdPrefetchConfig::SSec>(1)), "SSec");
  illegal(check(arch::CmdResume::make().set<arch::CmdResume::SSec>(1)), "SSec");
  // Range invalidation rules.
  illegal(check(T::make(Opcode::CMD_TLBI_NH_VA).set<T::TG>(arch::kTlbiTg4K)), "Reserved");
  illegal(check(T::make(Opcode::CMD_TLBI_NH_VA).set<T::NUM>(1)), "TG == 0b00");
  illegal(check(T::make(Opcode::CMD_TLBI_NH_VA).set<T::TTL>(2)), "TG == 0b00");
  illegal(check(T::make(Opcode::CMD_TLBI_NH_VA).set<T::TG>(1).set<T::SCALE>(0x20)), "SCALE[5]");
  illegal(check(T::make(Opcode::CMD_TLBI_NH_VA).set<T::TG>(arch::kTlbiTg16K).set<T::TTL>(1)),
          "16KB");
  Config no_ril = Config::smmuv3_0();
  illegal(check(T::make(Opcode::CMD_TLBI_NH_VA).set<T::TG>(1).set<T::TTL>(3), no_ril), "RIL");
  illegal(check(T::make(Opcode::CMD_TLBI_S2_IPA).set<T::Address>(uint64_t{1} << 52)), "IPA");
  CHECK(check(T::make(Opcode::CMD_TLBI_S2_IPA).set<T::Address>(uint64_t{1} << 51)).ok());
  illegal(check(T::make(Opcode::CMD_TLBI_S2_IPA).set<T::Address>(uint64_t{1} << 50), no_ril),
          "IPA");  // v3.0: [55:48] RES0
  // Commands of stages and features the SMMU does not have.
  illegal(check(T::make(Opcode::CMD_TLBI_EL3_ALL)), "EL3");
  illegal(check(T::make(Opcode::CMD_TLBI_NH_ASID), Config::stage2_only()), "S1P");
  illegal(check(arch::CmdCfgiCd::make(), Config::stage2_only()), "S1P");
  illegal(check(T::make(Opcode::CMD_TLBI_S2_IPA), Config::stage1_only()), "S2P");
  illegal(check(T::make(Opcode::CMD_TLBI_S12_VMALL), Config::stage1_only()), "S2P");
  illegal(check(T::make(Opcode::CMD_TLBI_EL2_ALL), Config::stage1_only()), "Hyp");
  illegal(check_command(raw(0x07), c), "MPAM");  // CMD_CFGI_VMS_PIDM
  Config no_pci = c;
  no_pci.ats = no_pci.pri = no_pci.pps = false;
  illegal(check(arch::CmdAtcInv::make(), no_pci), "ATS");
  illegal(check(arch::CmdPriResp::make(), no_pci), "PRI");
  Config no_stall = c;
  no_stall.stall_model = arch::kStallModelTerminate;
  illegal(check(arch::CmdResume::make(), no_stall), "Stall");
  illegal(check(arch::CmdStallTerm::make(), no_stall), "Stall");
  // Reserved values.
  illegal(check(arch::CmdPriResp::make().set<arch::CmdPriResp::Resp>(0b11)), "Resp");
  illegal(check(arch::CmdAtcInv::make().set<arch::CmdAtcInv::Size>(53)), "Size");
  illegal(check(sync_cmd(0b11)), "CS");
  illegal(check(sync_msi(uint64_t{1} << 52, 0)), "MSIAddress");
}

// ---------------------------------------------------------------------------------------------
// Command consumption.

TEST_CASE("the Command queue wraps, many times, with both wrap states") {
  for (Threading t : kDriverModes) {
    INFO("threading: ", std::string(name(t)));
    Harness h(t);
    h.setup_cmdq(3);  // 8 entries
    uint32_t sid = 0;
    bool seen_wrap[2] = {false, false};
    // Batches of 1..8 commands (8 fills the queue exactly), 40 of them: about 20 wraps.
    for (int round = 0; round < 40; round++) {
      const int n = 1 + round % 8;
      for (int i = 0; i < n; i++) h.put(cfgi_ste(sid++));
      h.ring();
      REQUIRE(h.drain());
      const uint32_t cons = h.cons();
      CHECK((cons & 0xf) == h.prod);  // RD and RD_WRAP caught up with PROD
      CHECK(cons_err(cons) == 0);
      seen_wrap[arch::queue_wrap(cons, 3)] = true;
    }
    CHECK(seen_wrap[0]);
    CHECK(seen_wrap[1]);
    const auto cmds = h.exec.commands();
    REQUIRE(cmds.size() == sid);
    for (uint32_t i = 0; i < sid; i++)
      CHECK(arch::descriptor_cast<arch::CmdCfgiSte>(cmds[i]).get<arch::CmdCfgiSte::StreamID>() ==
            i);
    CHECK(h.queues->counters().commands == sid);
    CHECK(h.gerror_active() == 0);
    CHECK(h.regs->guest_error_count() == 0);
  }
}

TEST_CASE("a full queue that drains sends a WFE wake-up") {
  Harness h(Threading::kManual);
  h.setup_cmdq(2);
  for (int i = 0; i < 4; i++) h.put(cfgi_ste(i));
  h.ring();
  CHECK(arch::queue_full(h.prod, h.cons(), 2));  // nothing consumed yet
  h.queues->process();
  CHECK(arch::queue_empty(h.prod, h.cons(), 2));
  CHECK(h.queues->counters().sev == 1);
}

TEST_CASE("nothing is consumed while CMDQEN is clear") {
  Harness h(Threading::kManual);
  h.setup_cmdq(4);
  h.queues->process();
  CHECK(h.disable(arch::CR0::CMDQEN::kMask));
  h.put(cfgi_ste(1));
  h.ring();
  h.queues->process();
  CHECK(h.exec.count() == 0);
  CHECK(arch::queue_index(h.cons(), 4) == 0);
  CHECK(h.enable(arch::CR0::CMDQEN::kMask));  // 6.3.9.3: then processing begins
  CHECK(h.exec.count() == 1);
  CHECK(arch::queue_empty(h.prod, h.cons(), 4));
}

// Runs `scenario` in each driver threading mode on a fresh harness with a 32-entry Command
// queue, checking that every command before a CMD_SYNC had been executed when the executor saw
// the CMD_SYNC (batches of three commands and a CMD_SYNC).
template <typename F>
void sync_scenario(F&& scenario) {
  for (Threading t : kDriverModes) {
    INFO("threading: ", std::string(name(t)));
    Harness h(t);
    h.setup_cmdq(5);
    std::atomic<int> syncs_seen_early{0};
    h.exec.set_hook([&](const arch::Command& cmd) {
      if (cmd.opcode() == static_cast<uint8_t>(Opcode::CMD_SYNC) && h.exec.count() % 4 != 0)
        syncs_seen_early++;
      return ExecStatus::kDone;
    });
    scenario(h);
    CHECK(syncs_seen_early == 0);
    CHECK(h.gerror_active() == 0);
    CHECK(h.regs->guest_error_count() == 0);
  }
}

TEST_CASE("CMD_SYNC completion by polling CONS (SIG_NONE)") {
  sync_scenario([](Harness& h) {
    for (int i = 0; i < 3; i++) h.put(cfgi_ste(i));
    const uint32_t sync = h.put(sync_cmd());
    h.ring();
    // Consumed once CONS has moved past it.
    CHECK(h.poll([&] { return arch::queue_used(h.cons(), sync, 5) == 1; }));
    const Counters c = h.queues->counters();
    CHECK(c.syncs == 1);
    CHECK(c.commands == 4);
    CHECK(c.sev == 0);
    CHECK(c.sync_msis == 0);
  });
}

TEST_CASE("CMD_SYNC completion by a WFE event (SIG_SEV)") {
  sync_scenario([](Harness& h) {
    for (int round = 1; round <= 3; round++) {
      for (int i = 0; i < 3; i++) h.put(cfgi_ste(i));
      h.put(sync_cmd(arch::kCsSev));
      h.ring();
      CHECK(h.poll([&] { return h.queues->counters().sev == static_cast<uint64_t>(round); }));
      CHECK(arch::queue_empty(h.prod, h.cons(), 5));
    }
  });
}

TEST_CASE("CMD_SYNC completion by an MSI to the interrupt controller's doorbell (SIG_IRQ)") {
  sync_scenario([](Harness& h) {
    IrqCount count;
    auto msi = Irq::request_msi(h.irq(), IrqCount::handler, &count);
    REQUIRE(msi.ok());
    const MsiMsg msg = msi->msi_msg();
    for (int round = 0; round < 5; round++) {
      for (int i = 0; i < 3; i++) h.put(cfgi_ste(i));
      h.put(sync_msi(msg.address, msg.data));
      h.ring();
      CHECK(h.poll([&] { return count.calls == round + 1; }));
    }
    CHECK(h.queues->counters().sync_msis == 5);
    CHECK(h.irq().msi_delivered(msg.data) == 5);
  });
}

TEST_CASE("CMD_SYNC completion by an MSI to memory: Linux's MSIData 0 to the command's slot") {
  sync_scenario([](Harness& h) {
    for (int round = 0; round < 10; round++) {
      for (int i = 0; i < 3; i++) h.put(cfgi_ste(i));
      const uint32_t slot = arch::queue_index(h.prod, 5);
      const phys_addr_t slot_pa = kCmdqPa + uint64_t{slot} * 16;
      h.put(sync_msi(slot_pa, 0));
      auto* word = static_cast<uint32_t*>(h.mem().host_ptr(slot_pa, 4));
      CHECK(__atomic_load_n(word, __ATOMIC_ACQUIRE) != 0);  // the opcode is there
      h.ring();
      CHECK(h.poll([&] { return __atomic_load_n(word, __ATOMIC_ACQUIRE) == 0; }));
    }
    CHECK(h.queues->counters().sync_msis == 10);
  });
}

TEST_CASE("a CMD_SYNC's MSI arrives only after CONS has passed it") {
  for (Threading t : kDriverModes) {
    INFO("threading: ", std::string(name(t)));
    Harness h(t);
    h.setup_cmdq(4);
    struct Ctx {
      Harness* h;
      uint32_t sync;
      std::atomic<int> calls{0}, late{0};
    } ctx{&h, 0};
    auto msi = Irq::request_msi(
        h.irq(),
        [](void* p) {
          auto* c = static_cast<Ctx*>(p);
          // The handler reads CONS, as a driver's would: the CMD_SYNC is consumed.
          if (arch::queue_used(c->h->cons(), c->sync, 4) == 0) c->late++;
          c->calls++;
        },
        &ctx);
    REQUIRE(msi.ok());
    h.put(cfgi_ste(1));
    ctx.sync = h.put(sync_msi(msi->msi_msg().address, msi->msi_msg().data));
    h.ring();
    CHECK(h.poll([&] { return ctx.calls == 1; }));
    CHECK(ctx.late == 0);
  }
}

TEST_CASE("CMD_SYNC interrupt on a wired line, and SEV without IDR0.SEV") {
  Harness::Setup setup{.threading = Threading::kSync};
  setup.lines.cmdq_sync = 12;
  setup.config.sev = false;
  Harness h(setup);
  IrqCount count;
  REQUIRE(h.irq().request_irq(12, IrqCount::handler, &count).ok());
  h.setup_cmdq(3);
  h.put(sync_cmd(arch::kCsIrq));  // MSIAddress 0: no MSI, the wired line only
  h.put(sync_cmd(arch::kCsSev));  // no SEV without IDR0.SEV: SIG_NONE
  h.ring();
  CHECK(count.calls == 1);
  CHECK(h.queues->counters().sync_msis == 0);
  CHECK(h.queues->counters().sev == 0);
  CHECK(h.queues->counters().syncs == 2);
  h.irq().free_irq(12);
}

TEST_CASE("a CMD_SYNC MSI the bus aborts is MSI_CMDQ_ABT_ERR") {
  Harness h;
  h.setup_cmdq(3);
  h.put(sync_msi(kNowhere, 1));
  h.ring();
  CHECK(arch::queue_empty(h.prod, h.cons(), 3));  // the CMD_SYNC is consumed regardless
  CHECK(h.gerror_active() == arch::GERROR::MSI_CMDQ_ABT_ERR::kMask);
  CHECK(h.queues->counters().msi_aborts == 1);
  h.ack_gerrors();
  CHECK(h.gerror_active() == 0);
}

// The GERROR interrupt of a harness, on wired line 5 and as an MSI.
struct GerrorIrqs {
  explicit GerrorIrqs(Harness& h) : ic(h.irq()) {
    REQUIRE(h.irq().request_irq(5, IrqCount::handler, &wired).ok());
    auto m = Irq::request_msi(h.irq(), IrqCount::handler, &msi);
    REQUIRE(m.ok());
    irq = m.release_value();
    h.writeq(irq.msi_msg().address, arch::GERROR_IRQ_CFG0::kOffset);
    h.writel(irq.msi_msg().data, arch::GERROR_IRQ_CFG1::kOffset);
    h.writel(arch::kMemAttrDeviceNGnRE, arch::GERROR_IRQ_CFG2::kOffset);
    REQUIRE(h.write_irq_ctrl(arch::IRQ_CTRL::GERROR_IRQEN::kMask));
  }
  ~GerrorIrqs() { ic.free_irq(5); }
  SimInterruptController& ic;
  IrqCount wired, msi;
  Irq irq;
};

Harness::Setup with_gerror_line(Threading t) {
  Harness::Setup s{.threading = t};
  s.lines.gerror = 5;
  return s;
}

TEST_CASE("an illegal command stops the queue: CERROR_ILL, GERROR, interrupt, then recovery") {
  for (Threading t : kDriverModes) {
    INFO("threading: ", std::string(name(t)));
    Harness h(with_gerror_line(t));
    GerrorIrqs irqs(h);
    h.setup_cmdq(3);
    h.put(cfgi_ste(1));
    const uint32_t bad = h.put(raw(0x0a));  // a Reserved opcode
    h.put(cfgi_ste(3));
    h.put(sync_cmd());
    h.ring();
    REQUIRE(h.poll([&] { return h.gerror_active() & kCmdqErr; }));
    CHECK(h.poll([&] { return irqs.wired.calls == 1 && irqs.msi.calls == 1; }));
    // CONS points at the bad command, ERR says why; nothing after it ran.
    const uint32_t cons = h.cons();
    CHECK((cons & 0xf) == bad);
    CHECK(cons_err(cons) == static_cast<uint32_t>(CommandError::CERROR_ILL));
    CHECK(h.exec.count() == 1);

    // Ringing the doorbell again does not restart it while the error is active.
    h.ring();
    CHECK(h.exec.count() == 1);
    CHECK((h.cons() & 0xf) == bad);

    // Recovery (7.1): replace the command (Linux writes a CMD_SYNC), then acknowledge.
    h.write_slot(arch::queue_index(bad, 3), arch::descriptor_cast<arch::Command>(sync_cmd()));
    h.ack_gerrors();
    CHECK(h.drain());
    CHECK(arch::queue_empty(h.prod, h.cons(), 3));
    CHECK(h.gerror_active() == 0);
    const auto cmds = h.exec.commands();
    REQUIRE(cmds.size() == 4);
    CHECK(cmds[1].opcode() == 0x46);
    CHECK(cmds[2].opcode() == 0x03);
    CHECK(h.queues->counters().command_errors == 1);
    CHECK(irqs.wired.calls == 1);
    // A guest error, naming the command.
    const auto errors = h.regs->guest_errors();
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].message.find("CERROR_ILL") != std::string::npos);
    CHECK(errors[0].message.find("Reserved opcode") != std::string::npos);
  }
}

TEST_CASE("recovery by moving PROD back to CONS while the error is active") {
  Harness h;
  h.setup_cmdq(3);
  h.put(cfgi_ste(1));
  const uint32_t bad = h.put(raw(0x03, 0x4));  // CMD_CFGI_STE with a RES0 bit
  h.put(cfgi_ste(2));
  h.ring();
  REQUIRE(h.gerror_active() == kCmdqErr);
  // 7.1: PROD may move back as far as CONS, discarding the unconsumed commands.
  h.prod = bad;
  h.ring();
  h.ack_gerrors();
  CHECK(arch::queue_empty(h.prod, h.cons(), 3));
  h.put(cfgi_ste(9));
  h.ring();
  CHECK(h.exec.count() == 2);
  CHECK(h.regs->guest_error_count() == 1);  // the command error; moving PROD back is allowed
}

TEST_CASE("the driver's GERROR handler recovers from inside the interrupt") {
  // Linux's arm_smmu_gerror_handler runs in the interrupt: it fixes the command and writes
  // GERRORN, which restarts the queue while the model is delivering that very interrupt.
  for (Threading t : kDriverModes) {
    INFO("threading: ", std::string(name(t)));
    Harness h(with_gerror_line(t));
    struct Ctx {
      Harness* h;
      std::atomic<int> calls{0};
    } ctx{&h};
    REQUIRE(h.irq()
                .request_irq(
                    5,
                    [](void* p) {
                      auto* c = static_cast<Ctx*>(p);
                      Harness& h = *c->h;
                      const uint32_t gerror = h.readl(arch::GERROR::kOffset);
                      if ((gerror ^ h.readl(arch::GERRORN::kOffset)) & kCmdqErr) {
                        const uint32_t cons = h.cons();
                        if (cons_err(cons) == static_cast<uint32_t>(CommandError::CERROR_ILL))
                          h.write_slot(arch::queue_index(cons, h.cmdq_qs),
                                       arch::descriptor_cast<arch::Command>(sync_cmd()));
                      }
                      h.writel(gerror, arch::GERRORN::kOffset);
                      c->calls++;
                    },
                    &ctx)
                .ok());
    REQUIRE(h.write_irq_ctrl(arch::IRQ_CTRL::GERROR_IRQEN::kMask));
    h.setup_cmdq(4);
    for (int round = 0; round < 3; round++) {
      h.put(cfgi_ste(1));
      h.put(raw(0x46, uint64_t{1} << 63));  // CMD_SYNC with a RES0 bit
      h.put(cfgi_ste(2));
      h.ring();
      CHECK(h.poll([&] { return arch::queue_empty(h.prod, h.cons(), 4); }));
    }
    CHECK(ctx.calls == 3);
    CHECK(h.exec.count() == 9);
    CHECK(h.gerror_active() == 0);
    h.irq().free_irq(5);
  }
}

TEST_CASE("a command fetch abort is CERROR_ABT; CONS stays on the command") {
  for (Threading t : kDriverModes) {
    INFO("threading: ", std::string(name(t)));
    Harness h(t);
    h.setup_cmdq(3, kNowhere);
    h.prod = arch::queue_advance(h.prod, 2, 3);  // two commands "written" where nothing answers
    h.ring();
    REQUIRE(h.poll([&] { return h.gerror_active() & kCmdqErr; }));
    CHECK(cons_err(h.cons()) == static_cast<uint32_t>(CommandError::CERROR_ABT));
    CHECK((h.cons() & 0xf) == 0);
    CHECK(h.exec.count() == 0);
    // Recovery: disable the queue, point it at memory, reset the indexes, enable, acknowledge.
    CHECK(h.disable(arch::CR0::CMDQEN::kMask));
    h.setup_cmdq(3);
    h.ack_gerrors();
    h.put(cfgi_ste(4));
    h.put(sync_cmd());
    h.ring();
    CHECK(h.drain());
    CHECK(h.exec.count() == 2);
    CHECK(h.gerror_active() == 0);
  }
}

TEST_CASE("a CMD_SYNC that finds a timed-out CMD_ATC_INV is CERROR_ATC_INV_SYNC") {
  Harness h;
  h.setup_cmdq(3);
  IrqCount count;
  auto msi = Irq::request_msi(h.irq(), IrqCount::handler, &count);
  REQUIRE(msi.ok());
  bool timed_out = true;
  h.exec.set_hook([&](const arch::Command& cmd) {
    if (cmd.opcode() == static_cast<uint8_t>(Opcode::CMD_SYNC) && timed_out) {
      timed_out = false;
      return ExecStatus::kAtcInvTimeout;
    }
    return ExecStatus::kDone;
  });
  h.put(arch::CmdAtcInv::make().set<arch::CmdAtcInv::Size>(arch::CmdAtcInv::kSizeAll));
  const uint32_t sync = h.put(sync_msi(msi->msi_msg().address, msi->msi_msg().data));
  h.ring();
  // Not consumed, no completion signal (4.7.3).
  CHECK((h.cons() & 0xf) == sync);
  CHECK(cons_err(h.cons()) == static_cast<uint32_t>(CommandError::CERROR_ATC_INV_SYNC));
  CHECK(h.gerror_active() == kCmdqErr);
  CHECK(count.calls == 0);
  CHECK(h.regs->guest_error_count() == 0);  // not the driver's mistake
  // Acknowledged, the same CMD_SYNC is fetched again and completes.
  h.ack_gerrors();
  CHECK(arch::queue_empty(h.prod, h.cons(), 3));
  CHECK(count.calls == 1);
}

TEST_CASE("a command the executor refuses is CERROR_ILL") {
  Harness h;
  h.setup_cmdq(3);
  h.exec.set_hook([](const arch::Command& cmd) {
    return cmd.opcode() == static_cast<uint8_t>(Opcode::CMD_PRI_RESP) ? ExecStatus::kIllegal
                                                                      : ExecStatus::kDone;
  });
  h.put(cfgi_ste(1));
  const uint32_t bad = h.put(arch::CmdPriResp::make());
  h.ring();
  CHECK((h.cons() & 0xf) == bad);
  CHECK(cons_err(h.cons()) == static_cast<uint32_t>(CommandError::CERROR_ILL));
}

TEST_CASE("an inconsistent PROD is not consumed") {
  Harness h;
  h.setup_cmdq(3);
  h.writel(0x9, arch::CMDQ_PROD::kOffset);  // WR 1 with the wrap flag set: 9 entries ahead
  CHECK(h.exec.count() == 0);
  CHECK(h.regs->guest_error_count() == 1);
  const auto errors = h.regs->guest_errors();
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message.find("inconsistent") != std::string::npos);
  h.writel(0, arch::CMDQ_PROD::kOffset);
  h.put(cfgi_ste(1));
  h.ring();
  CHECK(h.exec.count() == 1);
}

TEST_CASE("CMDQEN cleared in the middle leaves CONS at the first unprocessed command") {
  Harness h(Threading::kManual);
  h.setup_cmdq(4);
  h.queues->process();
  for (int i = 0; i < 6; i++) h.put(cfgi_ste(i));
  h.put(sync_cmd());
  h.put(cfgi_ste(7));
  h.ring();
  h.writel(0, arch::CR0::kOffset);  // in the same breath: the Update comes first
  h.queues->process();
  CHECK(h.readl(arch::CR0ACK::kOffset) == 0);
  CHECK(h.exec.count() == 0);
  CHECK(arch::queue_index(h.cons(), 4) == 0);
  // Software may now move CONS (the queue is disabled).
  h.writel(6, arch::CMDQ_CONS::kOffset);
  CHECK(h.enable(arch::CR0::CMDQEN::kMask));
  CHECK(h.exec.count() == 2);  // the CMD_SYNC and the last one
}

// ---------------------------------------------------------------------------------------------
// The Event queue.

arch::EventRecord make_event(uint32_t sid, arch::EventType type = arch::EventType::F_TRANSLATION) {
  arch::EventRecord e;
  e.set<arch::EventRecord::Type>(static_cast<uint8_t>(type)).set<arch::EventRecord::StreamID>(sid);
  e.set_word(2, 0x1000 * sid);  // InputAddr of a translation fault
  return e;
}

void event_irq_scenario(Threading t);
void event_overflow_scenario(Threading t);

TEST_CASE("event records are written at PROD; the interrupt marks empty to non-empty") {
  for (Threading t : kDriverModes) {
    INFO("threading: ", std::string(name(t)));
    event_irq_scenario(t);
  }
}

void event_irq_scenario(Threading t) {
  Harness::Setup setup{.threading = t};
  setup.lines.eventq = 6;
  Harness h(setup);
  IrqCount wired, msi;
  REQUIRE(h.irq().request_irq(6, IrqCount::handler, &wired).ok());
  auto m = Irq::request_msi(h.irq(), IrqCount::handler, &msi);
  REQUIRE(m.ok());
  h.writeq(m->msi_msg().address, arch::EVENTQ_IRQ_CFG0::kOffset);
  h.writel(m->msi_msg().data, arch::EVENTQ_IRQ_CFG1::kOffset);

  // Before EVENTQEN: discarded, no overflow.
  CHECK(h.queues->record_event(make_event(1)) == EventResult::kNotWritable);
  h.setup_eventq(3);
  // An event before the interrupt is enabled raises none, then or later (6.3.16).
  CHECK(h.queues->record_event(make_event(2)) == EventResult::kWritten);
  REQUIRE(h.write_irq_ctrl(arch::IRQ_CTRL::EVENTQ_IRQEN::kMask));
  CHECK(wired.calls == 0);
  h.writel(1, arch::EVENTQ_CONS::kOffset);  // consumed
  CHECK(h.queues->record_event(make_event(3)) == EventResult::kWritten);
  CHECK(h.queues->record_event(make_event(4)) == EventResult::kWritten);
  CHECK(wired.calls == 1);  // only the empty to non-empty transition
  CHECK(msi.calls == 1);
  CHECK(h.readl(arch::EVENTQ_PROD::kOffset) == 3);
  CHECK(h.event_at(0).get<arch::EventRecord::StreamID>() == 2);
  const arch::EventRecord e = h.event_at(2);
  CHECK(e.type() == static_cast<uint8_t>(arch::EventType::F_TRANSLATION));
  CHECK(e.get<arch::EventRecord::StreamID>() == 4);
  CHECK(e.word(2) == 0x4000);
  h.writel(3, arch::EVENTQ_CONS::kOffset);
  CHECK(h.queues->record_event(make_event(5)) == EventResult::kWritten);
  CHECK(wired.calls == 2);
  CHECK(h.queues->counters().events == 4);
  CHECK(h.queues->counters().events_discarded == 1);
  h.irq().free_irq(6);
}

TEST_CASE("Event queue overflow: discard, OVFLG once, recovery when the driver consumes") {
  for (Threading t : kDriverModes) {
    INFO("threading: ", std::string(name(t)));
    event_overflow_scenario(t);
  }
}

void event_overflow_scenario(Threading t) {
  Harness h(t);
  h.setup_eventq(2);  // 4 entries
  const Mmio page1 = h.io.window(arch::kPage1Offset, arch::kPage1Offset);
  constexpr uint32_t kOvflg = arch::EVENTQ_PROD::OVFLG::kMask;
  for (uint32_t i = 0; i < 4; i++)
    CHECK(h.queues->record_event(make_event(i)) == EventResult::kWritten);
  CHECK(page1.readl(0xa8) == 0x4);  // full: index 0, wrap 1
  // A stall record is never discarded and causes no overflow (7.4).
  CHECK(h.queues->record_event(make_event(9), true) == EventResult::kFull);
  CHECK((page1.readl(0xa8) & kOvflg) == 0);
  // The first discard toggles OVFLG; further ones do not while it is unacknowledged.
  CHECK(h.queues->record_event(make_event(10)) == EventResult::kOverflow);
  CHECK(page1.readl(0xa8) == (kOvflg | 0x4));
  CHECK(h.queues->record_event(make_event(11)) == EventResult::kOverflow);
  CHECK(page1.readl(0xa8) == (kOvflg | 0x4));
  CHECK(h.queues->counters().event_overflows == 2);
  // The records in the queue are intact.
  for (uint32_t i = 0; i < 4; i++) CHECK(h.event_at(i).get<arch::EventRecord::StreamID>() == i);

  // The driver consumes two and acknowledges the overflow in the same write.
  page1.writel(kOvflg | 0x2, 0xac);
  CHECK(h.queues->record_event(make_event(12)) == EventResult::kWritten);
  CHECK(h.event_at(0).get<arch::EventRecord::StreamID>() == 12);
  CHECK(page1.readl(0xa8) == (kOvflg | 0x5));
  CHECK(h.queues->record_event(make_event(13)) == EventResult::kWritten);
  // Full again: a new overflow toggles OVFLG back to 0.
  CHECK(h.queues->record_event(make_event(14)) == EventResult::kOverflow);
  CHECK(page1.readl(0xa8) == 0x6);
  CHECK(h.regs->guest_error_count() == 0);
}

TEST_CASE("an Event queue write abort is EVENTQ_ABT_ERR; the queue is unwritable until acked") {
  Harness h;
  h.setup_eventq(2, kNowhere);
  CHECK(h.queues->record_event(make_event(1)) == EventResult::kAborted);
  CHECK(h.readl(arch::EVENTQ_PROD::kOffset) == 0);  // synchronous: PROD does not move
  CHECK(h.gerror_active() == arch::GERROR::EVENTQ_ABT_ERR::kMask);
  CHECK(h.queues->record_event(make_event(2)) == EventResult::kNotWritable);
  CHECK(h.queues->record_event(make_event(2), true) == EventResult::kNotWritable);
  // Software re-initialises the queue and acknowledges.
  CHECK(h.disable(arch::CR0::EVENTQEN::kMask));
  h.setup_eventq(2);
  h.ack_gerrors();
  CHECK(h.queues->record_event(make_event(3)) == EventResult::kWritten);
}

TEST_CASE("an inconsistent EVENTQ_CONS makes the queue full") {
  Harness h;
  h.setup_eventq(2);
  h.writel(0x2, arch::EVENTQ_CONS::kOffset);  // ahead of PROD 0, same wrap
  CHECK(h.queues->record_event(make_event(1)) == EventResult::kOverflow);
  CHECK(h.regs->guest_error_count() == 1);
}

// ---------------------------------------------------------------------------------------------
// The PRI queue.

arch::PriRecord page_request(uint32_t sid, uint32_t prgi, bool last, uint64_t address = 0x5000) {
  arch::PriRecord r;
  r.set<arch::PriRecord::StreamID>(sid)
      .set<arch::PriRecord::PRGIndex>(prgi)
      .set<arch::PriRecord::Last>(last)
      .set<arch::PriRecord::R>(1)
      .set<arch::PriRecord::Address>(address);
  return r;
}

void pri_scenario(Threading t);

TEST_CASE("PRI queue: records, Last-only interrupts, overflow auto-responses, recovery") {
  for (Threading t : kDriverModes) {
    INFO("threading: ", std::string(name(t)));
    pri_scenario(t);
  }
}

void pri_scenario(Threading t) {
  Harness::Setup setup{.threading = t};
  setup.lines.priq = 7;
  Harness h(setup);
  IrqCount wired;
  REQUIRE(h.irq().request_irq(7, IrqCount::handler, &wired).ok());
  using Kind = PriResult::Kind;

  // PRIQEN without SMMUEN is not effective: a Response Failure for every request (8.2).
  PriResult r = h.queues->record_page_request(page_request(1, 1, false));
  CHECK(r.kind == Kind::kAutoResponse);
  CHECK(r.response_code == PriResult::kResponseFailure);

  h.setup_priq(2);
  REQUIRE(h.write_irq_ctrl(arch::IRQ_CTRL::PRIQ_IRQEN::kMask));
  CHECK(h.queues->record_page_request(page_request(1, 1, false)).kind == Kind::kRecorded);
  CHECK(wired.calls == 1);  // LO == 0: empty to non-empty
  CHECK(h.queues->record_page_request(page_request(1, 1, true)).kind == Kind::kRecorded);
  CHECK(wired.calls == 1);
  const arch::PriRecord rec = h.pri_at(1);
  CHECK(rec.get<arch::PriRecord::StreamID>() == 1);
  CHECK(rec.get<arch::PriRecord::Last>() == 1);
  CHECK(rec.get<arch::PriRecord::Address>() == 0x5000);
  CHECK(rec.get<arch::PriRecord::PRGIndex>() == 1);

  // LO: an interrupt for every Last request.
  REQUIRE(h.write_irq_ctrl(0));
  h.writel(arch::PRIQ_IRQ_CFG2::LO::kMask, arch::PRIQ_IRQ_CFG2::kOffset);
  REQUIRE(h.write_irq_ctrl(arch::IRQ_CTRL::PRIQ_IRQEN::kMask));
  CHECK(h.queues->record_page_request(page_request(2, 2, false)).kind == Kind::kRecorded);
  CHECK(wired.calls == 1);
  CHECK(h.queues->record_page_request(page_request(2, 2, true)).kind == Kind::kRecorded);
  CHECK(wired.calls == 2);
  CHECK(h.readl(arch::PRIQ_PROD::kOffset) == 0x4);  // full

  // Full: the overflow condition starts; nothing is written while it lasts (8.1).
  r = h.queues->record_page_request(page_request(3, 3, false));
  CHECK(r.kind == Kind::kDiscarded);
  CHECK(r.overflow);
  CHECK(h.readl(arch::PRIQ_PROD::kOffset) == (arch::PRIQ_PROD::OVFLG::kMask | 0x4));
  r = h.queues->record_page_request(page_request(3, 3, true));
  CHECK(r.kind == Kind::kAutoResponse);
  CHECK(r.response_code == PriResult::kSuccess);
  CHECK(wired.calls == 3);  // LO: the discarded Last request interrupts too
  // Space alone does not end it: the driver must acknowledge.
  h.writel(0x2, arch::PRIQ_CONS::kOffset);
  CHECK(h.queues->record_page_request(page_request(4, 4, true)).kind == Kind::kAutoResponse);
  h.writel(arch::PRIQ_CONS::OVACKFLG::kMask | 0x4, arch::PRIQ_CONS::kOffset);
  CHECK(h.queues->record_page_request(page_request(5, 5, true)).kind == Kind::kRecorded);
  CHECK(h.pri_at(0).get<arch::PriRecord::StreamID>() == 5);
  const Counters c = h.queues->counters();
  CHECK(c.pri_records == 5);
  CHECK(c.pri_overflows == 1);
  CHECK(c.pri_discarded == 4);
  h.irq().free_irq(7);
}

TEST_CASE("a PRI queue write abort is PRIQ_ABT_ERR with a Response Failure") {
  Harness h;
  h.setup_priq(2, kNowhere);
  PriResult r = h.queues->record_page_request(page_request(1, 1, true));
  CHECK(r.kind == PriResult::Kind::kAutoResponse);
  CHECK(r.response_code == PriResult::kResponseFailure);
  CHECK(h.gerror_active() == arch::GERROR::PRIQ_ABT_ERR::kMask);
  CHECK(h.queues->record_page_request(page_request(1, 2, true)).response_code ==
        PriResult::kResponseFailure);
}

// ---------------------------------------------------------------------------------------------
// Threading.

TEST_CASE("updates and doorbells wait for process() in manual mode") {
  Harness h(Threading::kManual);
  arch::CMDQ_BASE::from_value(0)
      .set<arch::CMDQ_BASE::ADDR>(kCmdqPa)
      .set<arch::CMDQ_BASE::LOG2SIZE>(4)
      .write_to(h.io);
  h.cmdq_qs = 4;
  h.writel(arch::CR0::CMDQEN::kMask, arch::CR0::kOffset);
  CHECK(h.readl(arch::CR0ACK::kOffset) == 0);
  h.queues->process();
  CHECK(h.readl(arch::CR0ACK::kOffset) == arch::CR0::CMDQEN::kMask);
  h.put(cfgi_ste(1));
  h.ring();
  CHECK(h.exec.count() == 0);
  h.queues->wait_idle();
  CHECK(h.exec.count() == 1);
}

TEST_CASE("async: two driver threads share the queue under a lock, a device records events") {
  // TSan-clean concurrent use: two threads submit batches ending in a CMD_SYNC whose MSI writes
  // a per-thread completion word (Linux's polled MSI), under a driver lock as real drivers
  // take one for the queue's PROD; a third thread produces events; a fourth reads registers.
  Harness h(Threading::kAsync);
  h.setup_cmdq(4);  // 16 entries: the submitters wrap it many times and wait for space
  h.setup_eventq(4);
  std::mutex driver_lock;
  constexpr int kBatches = 150;
  constexpr int kPerBatch = 3;
  std::atomic<bool> stop{false};

  auto submitter = [&](int id) {
    const phys_addr_t done_pa = kScratchPa + 64 * id;
    auto* done = static_cast<uint32_t*>(h.mem().host_ptr(done_pa, 4));
    for (uint32_t seq = 1; seq <= kBatches; seq++) {
      {
        std::lock_guard<std::mutex> lock(driver_lock);
        // Wait for room, reading CONS as the driver does.
        while (arch::queue_free(h.prod, h.cons(), h.cmdq_qs) < kPerBatch + 1)
          std::this_thread::yield();
        for (int i = 0; i < kPerBatch; i++) h.put(cfgi_ste(id * 1000 + i));
        h.put(sync_msi(done_pa, seq));
        h.ring();
      }
      while (__atomic_load_n(done, __ATOMIC_ACQUIRE) != seq) std::this_thread::yield();
    }
  };
  std::thread a(submitter, 1), b(submitter, 2);
  std::thread device([&] {
    uint32_t sid = 0;
    while (!stop) {
      (void)h.queues->record_event(make_event(sid++));
      if (sid % 8 == 0) {  // consume everything, as the driver's event thread would
        h.writel(h.readl(arch::EVENTQ_PROD::kOffset) & 0x1f, arch::EVENTQ_CONS::kOffset);
      }
      std::this_thread::yield();
    }
  });
  std::thread reader([&] {
    while (!stop) {
      (void)h.readl(arch::CMDQ_CONS::kOffset);
      (void)h.readl(arch::GERROR::kOffset);
      (void)h.queues->counters();
      std::this_thread::yield();
    }
  });
  a.join();
  b.join();
  stop = true;
  device.join();
  reader.join();

  const Counters c = h.queues->counters();
  CHECK(c.commands == 2 * kBatches * (kPerBatch + 1));
  CHECK(c.syncs == 2 * kBatches);
  CHECK(c.sync_msis == 2 * kBatches);
  CHECK(c.command_errors == 0);
  CHECK(h.exec.count() == c.commands);
  CHECK(h.gerror_active() == 0);
  CHECK(h.regs->guest_error_count() == 0);
  CHECK(c.events > 0);
}

TEST_CASE("async: the model thread stops with work pending") {
  auto h = std::make_unique<Harness>(Threading::kAsync);
  h->setup_cmdq(6);
  for (int i = 0; i < 60; i++) h->put(cfgi_ste(i));
  h->ring();
  h.reset();  // joins the model thread wherever it is
}

TEST_CASE("on_cr0_update sees each CR0 Update before CR0ACK does") {
  std::vector<std::pair<uint32_t, uint32_t>> seen;
  Harness* hp = nullptr;
  bool ack_early = false;
  Harness::Setup setup{.threading = Threading::kSync};
  setup.on_cr0_update = [&](uint32_t old_ack, uint32_t new_ack) {
    seen.emplace_back(old_ack, new_ack);
    if (hp && hp->regs->value(arch::CR0ACK::kOffset) == new_ack) ack_early = true;
  };
  Harness h(setup);
  hp = &h;
  CHECK(h.write_cr0(arch::CR0::SMMUEN::kMask));
  CHECK(h.write_cr0(arch::CR0::SMMUEN::kMask | arch::CR0::ATSCHK::kMask));
  REQUIRE(seen.size() == 2);
  CHECK(seen[0] == std::make_pair(0u, 1u));
  CHECK(seen[1] == std::make_pair(1u, 0x11u));
  CHECK_FALSE(ack_early);
}

TEST_CASE("wired lines the controller lacks are refused") {
  auto p = Platform::create(Platform::Config{.ram_base = kRamBase, .ram_size = kRamSize});
  REQUIRE(p.ok());
  auto r = Registers::create(Config{});
  REQUIRE(r.ok());
  RecordingExecutor exec;
  auto q = Queues::create(**r, (*p)->mem(), exec,
                          Queues::Options{.irq = &(*p)->irq(), .lines = {.eventq = 64}});
  CHECK(!q.ok());
  auto q2 = Queues::create(**r, (*p)->mem(), exec, Queues::Options{.lines = {.gerror = 1}});
  CHECK(!q2.ok());
}

}  // namespace
}  // namespace strata::sim::smmuv3
