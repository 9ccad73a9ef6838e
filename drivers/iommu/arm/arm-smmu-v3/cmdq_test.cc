// SPDX-License-Identifier: MIT
// The Command queue against the SMMUv3 model: commands consumed, CMD_SYNC completion by polling
// and by MSI in the model's threading modes, wrap, a full queue, timeouts, command errors and
// allocation failures. Concurrent submission is in cmdq_concurrency_test.cc.
#include "drivers/iommu/arm/arm-smmu-v3/cmdq.h"

#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "arch/dma.h"
#include "arch/smmuv3/cmd.h"
#include "arch/smmuv3/regs.h"
#include "drivers/iommu/arm/arm-smmu-v3/cmdq_test_rig.h"
#include "drivers/iommu/arm/arm-smmu-v3/model_rig.h"
#include "testing/hosted/hosted.h"
#include "testing/models/smmuv3/queue_harness.h"

namespace strata::arm_smmu_v3 {
namespace {

namespace hw = ::strata::smmuv3;
using hw::Opcode;
using sim::smmuv3::Threading;
using test::cfgi_ste;
using test::cfgi_ste_cmd;
using test::illegal_cmd;
using test::kModes;
using test::Rig;
using test::RigOptions;

TEST_CASE("create caps the size at IDR1.CMDQS; reset programs CMDQ_BASE, PROD and CONS") {
  RigOptions o;
  o.config.cmdqs = 5;
  o.log2_entries = 8;
  o.enable = false;
  Rig rig(o);
  CHECK(rig.cmdq->log2_entries() == 5);
  CHECK(rig.cmdq->entries() == 32);
  const auto base = hw::CMDQ_BASE::from_value(rig.cmdq->base_reg());
  CHECK(base.get<hw::CMDQ_BASE::LOG2SIZE>() == 5);
  CHECK(base.get<hw::CMDQ_BASE::RA>() == 1);
  // 6.3.26: aligned to the queue's size (32 x 16 bytes).
  CHECK((base.get<hw::CMDQ_BASE::ADDR>() & (32 * 16 - 1)) == 0);
  CHECK(base.get<hw::CMDQ_BASE::ADDR>() != 0);

  const auto programmed = hw::CMDQ_BASE::read_from(rig.io);
  CHECK(programmed.get<hw::CMDQ_BASE::ADDR>() == base.get<hw::CMDQ_BASE::ADDR>());
  CHECK(programmed.get<hw::CMDQ_BASE::LOG2SIZE>() == 5);
  CHECK(rig.io.readl(hw::CMDQ_PROD::kOffset) == 0);
  CHECK(rig.io.readl(hw::CMDQ_CONS::kOffset) == 0);

  // While the queue is enabled its registers are read-only: reset() refuses.
  REQUIRE(rig.set_cmdqen(true));
  CHECK(rig.cmdq->reset().error() == Error(-EBUSY));
  REQUIRE(rig.set_cmdqen(false));
  CHECK(rig.cmdq->reset().ok());
}

TEST_CASE("create refuses a missing allocator, and issue_cmdlist a missing command array") {
  Rig rig;
  auto bad = Cmdq::create(CmdqConfig{.page0 = rig.page0()});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error() == Error(-EINVAL));
  auto no_regs = Cmdq::create(CmdqConfig{.page0 = Mmio(), .dma = &rig.platform->dma()});
  REQUIRE_FALSE(no_regs.ok());
  CHECK(no_regs.error() == Error(-EINVAL));
  CHECK(rig.cmdq->issue_cmdlist(nullptr, 2, true).error() == Error(-EINVAL));
  // Nothing at all is a no-op.
  CHECK(rig.cmdq->issue_cmdlist(nullptr, 0, false).ok());
  CHECK(rig.cmdq->counters().reservations == 0);
}

TEST_CASE("commands are consumed and a CMD_SYNC completes, by polling and by MSI") {
  test::for_each_mode([&](RigOptions o) {
    Rig rig(o);
    CHECK(rig.cmdq->msi() == o.msi);
    const uint64_t msis_before = rig.model->queues().counters().sync_msis;

    for (uint32_t sid = 0; sid < 3; sid++) REQUIRE(rig.cmdq->issue_cmd(cfgi_ste(sid)).ok());
    REQUIRE(rig.cmdq->issue_sync().ok());
    // The CMD_SYNC completed: everything before it has been executed (4.7.3).
    CHECK(rig.executed(Opcode::CMD_CFGI_STE) == 3);
    CHECK(rig.executed(Opcode::CMD_SYNC) == 1);

    REQUIRE(rig.cmdq->issue_cmd_with_sync(cfgi_ste(9)).ok());
    CHECK(rig.executed(Opcode::CMD_CFGI_STE) == 4);
    CHECK(rig.executed(Opcode::CMD_SYNC) == 2);
    // MSI completion is the SMMU's write into the CMD_SYNC's own slot.
    CHECK(rig.model->queues().counters().sync_msis - msis_before == (o.msi ? 2u : 0u));
    CHECK(rig.model->queues().counters().msi_aborts == 0);

    const CmdqCounters c = rig.cmdq->counters();
    CHECK(c.commands == 4);
    CHECK(c.syncs == 2);
    CHECK(c.reservations == 5);
    CHECK(c.prod_writes == 5);  // one thread: every reservation is its own owner
    CHECK(c.full == 0);
    CHECK(c.timeouts == 0);
    CHECK(rig.gerror_active() == 0);
  });
}

TEST_CASE("MSI completion needs IDR0.MSI: without it CMDQ_CONS is polled") {
  RigOptions o;
  o.config.msi = false;
  o.msi = true;
  Rig rig(o);
  CHECK_FALSE(rig.cmdq->msi());
  REQUIRE(rig.cmdq->issue_cmd_with_sync(cfgi_ste(1)).ok());
  CHECK(rig.executed(Opcode::CMD_SYNC) == 1);
  CHECK(rig.model->queues().counters().sync_msis == 0);
}

TEST_CASE("a non-coherent SMMU: commands are cleaned to memory, completion is polled") {
  RigOptions o;
  o.dma_coherent = false;
  o.msi = true;
  Rig rig(o);
  CHECK_FALSE(rig.cmdq->msi());  // the CPU could not poll a word the SMMU writes past its cache
  const uint64_t cleans = rig.platform->dma().sync_for_device_calls();
  const hw::Command cmds[] = {cfgi_ste_cmd(1), cfgi_ste_cmd(2)};
  REQUIRE(rig.cmdq->issue_cmdlist(cmds, 2, true).ok());
  CHECK(rig.platform->dma().sync_for_device_calls() > cleans);
  CHECK(rig.executed(Opcode::CMD_CFGI_STE) == 2);
  CHECK(rig.executed(Opcode::CMD_SYNC) == 1);
}

TEST_CASE("the queue wraps many times; a list longer than the queue is split") {
  test::for_each_mode([&](RigOptions o) {
    o.log2_entries = 3;  // 8 slots
    Rig rig(o);
    uint64_t total = 0;
    for (unsigned i = 0; i < 300; i++) {
      const unsigned k = i % 8;  // 0..7 commands, then a CMD_SYNC
      std::vector<hw::Command> cmds;
      for (unsigned j = 0; j < k; j++) cmds.push_back(cfgi_ste_cmd(i * 8 + j));
      REQUIRE(rig.cmdq->issue_cmdlist(cmds.data(), cmds.size(), true).ok());
      total += k;
      REQUIRE(rig.executed(Opcode::CMD_CFGI_STE) == total);
      REQUIRE(rig.executed(Opcode::CMD_SYNC) == i + 1);
    }
    // 100 commands through an 8-slot queue: several reservations, one CMD_SYNC at the end.
    std::vector<hw::Command> many;
    for (uint32_t sid = 0; sid < 100; sid++) many.push_back(cfgi_ste_cmd(sid));
    REQUIRE(rig.cmdq->issue_cmdlist(many.data(), many.size(), true).ok());
    CHECK(rig.executed(Opcode::CMD_CFGI_STE) == total + 100);
    CHECK(rig.executed(Opcode::CMD_SYNC) == 301);
    // PROD and CONS agree, wrap flags included.
    CHECK(hw::queue_empty(rig.io.readl(hw::CMDQ_PROD::kOffset),
                          rig.io.readl(hw::CMDQ_CONS::kOffset), 3));
  });
}

TEST_CASE("CmdqBatch: commands gathered, submitted with one CMD_SYNC") {
  for (bool msi : {false, true}) {
    CAPTURE(msi);
    RigOptions o;
    o.msi = msi;
    o.log2_entries = 5;
    Rig rig(o);
    CmdqBatch batch(*rig.cmdq);
    // Nothing added: nothing issued, not even a CMD_SYNC.
    REQUIRE(batch.submit().ok());
    CHECK(rig.cmdq->counters().reservations == 0);
    CHECK(rig.executed(Opcode::CMD_SYNC) == 0);

    for (uint32_t sid = 0; sid < 200; sid++) batch.add(cfgi_ste(sid));
    CHECK(batch.pending() == 200 - 3 * CmdqBatch::kMaxCommands);
    // add() already submitted three full batches, without a CMD_SYNC.
    CHECK(rig.executed(Opcode::CMD_CFGI_STE) == 3 * CmdqBatch::kMaxCommands);
    CHECK(rig.executed(Opcode::CMD_SYNC) == 0);
    REQUIRE(batch.submit().ok());
    CHECK(batch.pending() == 0);
    CHECK(rig.executed(Opcode::CMD_CFGI_STE) == 200);
    CHECK(rig.executed(Opcode::CMD_SYNC) == 1);
    CHECK(rig.cmdq->counters().syncs == 1);

    // Reused: a second batch, a second CMD_SYNC; an explicit sync is one more.
    batch.add(cfgi_ste(500));
    REQUIRE(batch.submit().ok());
    CHECK(rig.executed(Opcode::CMD_SYNC) == 2);
    REQUIRE(batch.submit().ok());
    CHECK(rig.executed(Opcode::CMD_SYNC) == 2);
    REQUIRE(rig.cmdq->issue_sync().ok());
    CHECK(rig.executed(Opcode::CMD_SYNC) == 3);
    CHECK(rig.executed(Opcode::CMD_CFGI_STE) == 201);
  }
}

TEST_CASE("a full queue waits until the SMMU drains it") {
  test::for_each_completion(Threading::kManual, [&](RigOptions o) {
    o.log2_entries = 2;  // 4 slots
    Rig rig(o);
    // Fill the queue: the model consumes nothing until process().
    const hw::Command first[] = {cfgi_ste_cmd(0), cfgi_ste_cmd(1), cfgi_ste_cmd(2),
                                 cfgi_ste_cmd(3)};
    REQUIRE(rig.cmdq->issue_cmdlist(first, 3, false).ok());
    REQUIRE(rig.cmdq->issue_cmdlist(first + 3, 1, false).ok());
    CHECK(rig.executed(Opcode::CMD_CFGI_STE) == 0);

    std::atomic<bool> done{false};
    std::atomic<int> result{1};
    std::thread producer([&] {
      const hw::Command more[] = {cfgi_ste_cmd(4), cfgi_ste_cmd(5)};
      Result<void> r = rig.cmdq->issue_cmdlist(more, 2, true);
      result = r.ok() ? 0 : r.error().code();
      done = true;
    });
    // The producer found no room and is waiting for it, with nothing consumed. A bounded wait,
    // never a timing assertion; the model must not run meanwhile.
    REQUIRE(test::wait_until([&] { return rig.cmdq->counters().full >= 1; }));
    CHECK_FALSE(done.load());
    CHECK(rig.executed(Opcode::CMD_CFGI_STE) == 0);
    // The SMMU drains the queue; the producer reserves, publishes, and its CMD_SYNC completes.
    REQUIRE(rig.poll([&] { return done.load(); }));
    producer.join();
    CHECK(result.load() == 0);
    CHECK(rig.executed(Opcode::CMD_CFGI_STE) == 6);
    CHECK(rig.executed(Opcode::CMD_SYNC) == 1);
    CHECK(rig.cmdq->counters().timeouts == 0);
  });
}

TEST_CASE("a full queue that is never drained times out") {
  RigOptions o;
  o.threading = Threading::kManual;
  o.log2_entries = 2;
  o.timeout_us = 20'000;
  Rig rig(o);
  const hw::Command cmds[] = {cfgi_ste_cmd(0), cfgi_ste_cmd(1), cfgi_ste_cmd(2), cfgi_ste_cmd(3)};
  REQUIRE(rig.cmdq->issue_cmdlist(cmds, 4, false).ok());
  hosted::LogCapture log;
  CHECK(rig.cmdq->issue_cmd(cfgi_ste(4)).error() == Error(-ETIMEDOUT));
  CHECK(log.contains("command queue full"));
  CHECK(rig.cmdq->counters().full == 1);
  CHECK(rig.cmdq->counters().timeouts == 1);
  // Nothing was reserved: once drained, the queue works again.
  rig.model->queues().process();
  REQUIRE(rig.cmdq->issue_cmd(cfgi_ste(4)).ok());
  rig.model->queues().process();
  CHECK(rig.executed(Opcode::CMD_CFGI_STE) == 5);
}

TEST_CASE("a CMD_SYNC the SMMU never completes is -ETIMEDOUT, promptly") {
  test::for_each_completion(Threading::kManual, [&](RigOptions o) {
    o.timeout_us = 20'000;
    Rig rig(o);
    hosted::LogCapture log;
    CHECK(rig.cmdq->issue_cmd_with_sync(cfgi_ste(1)).error() == Error(-ETIMEDOUT));
    CHECK(log.contains("CMD_SYNC timeout"));
    CHECK(rig.cmdq->counters().timeouts == 1);
    // Nothing was lost: the SMMU runs the commands (both CMD_SYNCs too) when it gets to them.
    CHECK(rig.cmdq->issue_sync().error() == Error(-ETIMEDOUT));
    CHECK(rig.executed(Opcode::CMD_CFGI_STE) == 0);
    rig.model->queues().process();
    CHECK(rig.executed(Opcode::CMD_CFGI_STE) == 1);
    CHECK(rig.executed(Opcode::CMD_SYNC) == 2);
  });
}

TEST_CASE("an illegal command: CERROR_ILL, the GERROR handler recovers, its submitter sees -EIO") {
  test::for_each_mode([&](RigOptions o) {
    Rig rig(o);
    hosted::LogCapture log;
    const hw::Command cmds[] = {cfgi_ste_cmd(1), illegal_cmd(2), cfgi_ste_cmd(3)};
    CHECK(rig.cmdq->issue_cmdlist(cmds, 3, true).error() == Error(-EIO));
    // Logged with both words, the command replaced by a CMD_SYNC, the error acknowledged.
    CHECK(log.contains("CERROR_ILL"));
    CHECK(log.contains(fmt::format("{:#018x}", illegal_cmd(2).word(0))));
    CHECK(rig.gerror_active() == 0);
    CHECK(rig.executed(Opcode::CMD_CFGI_STE) == 2);
    CHECK(rig.cmdq->counters().command_errors == 1);
    CHECK(rig.cmdq->counters().failed_syncs == 1);

    // The queue goes on: later commands complete and their CMD_SYNC reports success.
    REQUIRE(rig.cmdq->issue_cmd_with_sync(cfgi_ste(4)).ok());
    CHECK(rig.executed(Opcode::CMD_CFGI_STE) == 3);

    // A Reserved opcode too, alone with its CMD_SYNC.
    const hw::Command reserved = test::reserved_opcode_cmd();
    CHECK(rig.cmdq->issue_cmd_with_sync(reserved).error() == Error(-EIO));
    CHECK(rig.cmdq->counters().command_errors == 2);
    CHECK(rig.gerror_active() == 0);

    // An error in a submission without a CMD_SYNC is not someone else's: a later, separate
    // CMD_SYNC succeeds.
    REQUIRE(rig.cmdq->issue_cmd(illegal_cmd(5)).ok());
    REQUIRE(rig.cmdq->issue_sync().ok());
    CHECK(rig.cmdq->counters().command_errors == 3);
    CHECK(rig.executed(Opcode::CMD_CFGI_STE) == 3);
    CHECK(rig.gerror_active() == 0);
  });
}

TEST_CASE("a CmdqBatch whose early, sync-less part held the illegal command reports -EIO") {
  Rig rig;
  CmdqBatch batch(*rig.cmdq);
  for (uint32_t i = 0; i < 70; i++) batch.add(i == 3 ? illegal_cmd(i) : cfgi_ste_cmd(i));
  CHECK(batch.pending() == 70 - CmdqBatch::kMaxCommands);
  CHECK(batch.submit().error() == Error(-EIO));
  CHECK(rig.executed(Opcode::CMD_CFGI_STE) == 69);
  // The batch is clean again.
  batch.add(cfgi_ste(100));
  CHECK(batch.submit().ok());
}

// A driver with no GERROR interrupt (no wired line, no MSI) gives the Cmdq its GERROR handler
// to poll: a waiter whose CMD_SYNC does not complete runs it, and recovers the queue.
RigOptions without_gerror_irq(RigOptions o) {
  o.gerror_irq = false;
  o.gerror_poll = true;
  o.timeout_us = 5'000'000;  // a broken poll fails in seconds, not kTimeout per call
  return o;
}

TEST_CASE("no GERROR interrupt and no poll: an illegal command stops the queue for good") {
  RigOptions o;
  o.gerror_irq = false;
  o.timeout_us = 20'000;
  Rig rig(o);
  hosted::LogCapture log;
  CHECK(rig.cmdq->issue_cmd_with_sync(illegal_cmd(1)).error() == Error(-ETIMEDOUT));
  CHECK(rig.cmdq->issue_cmd_with_sync(cfgi_ste(2)).error() == Error(-ETIMEDOUT));
  CHECK((rig.gerror_active() & hw::GERROR::CMDQ_ERR::kMask) != 0);
  CHECK(rig.cmdq->counters().command_errors == 0);
  CHECK(rig.executed(Opcode::CMD_CFGI_STE) == 0);
}

TEST_CASE("no GERROR interrupt: a CMD_SYNC waiter polls GERROR, -EIO, the queue goes on") {
  test::for_each_mode([&](RigOptions o) {
    Rig rig(without_gerror_irq(o));
    hosted::LogCapture log;
    const hw::Command cmds[] = {cfgi_ste_cmd(1), illegal_cmd(2), cfgi_ste_cmd(3)};
    CHECK(rig.cmdq->issue_cmdlist(cmds, 3, true).error() == Error(-EIO));
    CHECK(log.contains("CERROR_ILL"));
    CHECK(rig.gerror_active() == 0);
    CHECK(rig.executed(Opcode::CMD_CFGI_STE) == 2);
    CHECK(rig.poller.runs.load() >= 1);
    CHECK(rig.cmdq->counters().command_errors == 1);
    CHECK(rig.cmdq->counters().failed_syncs == 1);

    REQUIRE(rig.cmdq->issue_cmd_with_sync(cfgi_ste(4)).ok());
    CHECK(rig.executed(Opcode::CMD_CFGI_STE) == 3);

    // An error in a submission without a CMD_SYNC: the next waiter handles it, and its own
    // CMD_SYNC succeeds.
    REQUIRE(rig.cmdq->issue_cmd(illegal_cmd(5)).ok());
    REQUIRE(rig.cmdq->issue_sync().ok());
    CHECK(rig.cmdq->counters().command_errors == 2);
    CHECK(rig.cmdq->counters().timeouts == 0);
    CHECK(rig.gerror_active() == 0);
  });
}

TEST_CASE("no GERROR interrupt: a producer waiting for room polls GERROR and the queue drains") {
  test::for_each_mode([&](RigOptions o) {
    o.log2_entries = 2;  // 4 slots
    Rig rig(without_gerror_irq(o));
    hosted::LogCapture log;
    // The queue stops at its first slot and fills up behind it; nobody waits for a CMD_SYNC.
    const hw::Command cmds[] = {illegal_cmd(0), cfgi_ste_cmd(1), cfgi_ste_cmd(2), cfgi_ste_cmd(3)};
    REQUIRE(rig.cmdq->issue_cmdlist(cmds, 4, false).ok());
    // No room until the error is handled: the producer's wait handles it.
    REQUIRE(rig.cmdq->issue_cmd_with_sync(cfgi_ste(4)).ok());
    CHECK(rig.cmdq->counters().full == 1);
    CHECK(rig.cmdq->counters().command_errors == 1);
    CHECK(rig.cmdq->counters().timeouts == 0);
    CHECK(rig.executed(Opcode::CMD_CFGI_STE) == 4);
    CHECK(log.contains("CERROR_ILL"));
    CHECK(rig.gerror_active() == 0);
  });
}

TEST_CASE("no GERROR interrupt: concurrent waiters poll GERROR; each gets its own result") {
  constexpr unsigned kThreads = 4;
  constexpr unsigned kPerThread = 40;
  for (Threading t : kModes) {
    for (bool msi : {false, true}) {
      CAPTURE(test::mode_name(t));
      CAPTURE(msi);
      RigOptions o;
      o.threading = t;
      o.msi = msi;
      o.log2_entries = 4;  // small: producers also wait for room
      o = without_gerror_irq(o);
      o.timeout_us = test::kTimeoutUs;  // many threads on a loaded machine: the usual margin
      Rig rig(o);
      hosted::LogCapture log;
      std::atomic<unsigned> wrong{0};
      std::vector<std::thread> threads;
      for (unsigned i = 0; i < kThreads; i++) {
        threads.emplace_back([&, i] {
          for (unsigned k = 0; k < kPerThread; k++) {
            const uint32_t sid = i * kPerThread + k;
            const bool bad = k % 5 == 2;
            Result<void> r =
                rig.cmdq->issue_cmd_with_sync(bad ? illegal_cmd(sid) : cfgi_ste_cmd(sid));
            if (bad ? r.ok() || r.error().code() != -EIO : !r.ok()) wrong++;
          }
        });
      }
      for (std::thread& th : threads) th.join();
      CHECK(wrong.load() == 0);
      const CmdqCounters c = rig.cmdq->counters();
      CHECK(c.command_errors == kThreads * kPerThread / 5);
      CHECK(c.failed_syncs == kThreads * kPerThread / 5);
      CHECK(rig.poller.runs.load() >= c.command_errors);  // one run of the handler each at least
      CHECK(c.timeouts == 0);
      CHECK(rig.executed(Opcode::CMD_CFGI_STE) == kThreads * kPerThread * 4 / 5);
      CHECK(rig.gerror_active() == 0);
    }
  }
}

TEST_CASE("handle_cmdq_gerror does nothing without GERROR.CMDQ_ERR") {
  Rig rig;
  CHECK_FALSE(rig.cmdq->handle_cmdq_gerror());
  CHECK(rig.cmdq->counters().command_errors == 0);
  CHECK(rig.io.readl(hw::GERRORN::kOffset) == 0);
}

// CERROR_ATC_INV_SYNC needs an SMMU whose ATC invalidation times out, which the assembled model
// cannot do (it has no ATC): the model's queues with a recording executor stand in for it.
TEST_CASE("CERROR_ATC_INV_SYNC: the CMD_SYNC is retried and its submitter sees -EIO") {
  namespace qh = sim::smmuv3::test;
  for (Threading t : kModes) {
    CAPTURE(test::mode_name(t));
    qh::Harness::Setup setup;
    setup.threading = t;
    setup.lines.gerror = test::kGerrorLine;
    qh::Harness h(setup);
    Box<Cmdq> cmdq = test::make_cmdq(CmdqConfig{.page0 = h.io.window(0, test::kPage0Bytes),
                                                .dma = &h.platform->dma(),
                                                .log2_entries = 4,
                                                .timeout_us = test::kTimeoutUs,
                                                .name = "smmu-atc"});
    REQUIRE(h.irq().request_irq(test::kGerrorLine, test::gerror_handler, cmdq.get()).ok());
    REQUIRE(h.write_irq_ctrl(hw::IRQ_CTRL::GERROR_IRQEN::kMask));
    REQUIRE(cmdq->reset().ok());
    REQUIRE(h.enable(hw::CR0::CMDQEN::kMask));

    std::atomic<int> syncs_seen{0};
    h.exec.set_hook([&](const hw::Command& c) {
      if (c.opcode() != static_cast<uint8_t>(Opcode::CMD_SYNC))
        return sim::smmuv3::ExecStatus::kDone;
      return syncs_seen++ == 0 ? sim::smmuv3::ExecStatus::kAtcInvTimeout
                               : sim::smmuv3::ExecStatus::kDone;
    });
    hosted::LogCapture log;
    const auto atc = hw::CmdAtcInv::make().set<hw::CmdAtcInv::StreamID>(4).set<hw::CmdAtcInv::Size>(
        hw::CmdAtcInv::kSizeAll);
    CHECK(cmdq->issue_cmd_with_sync(atc).error() == Error(-EIO));
    CHECK(log.contains("ATC invalidation timed out"));
    // The same CMD_SYNC was executed twice: refused, then retried after the acknowledgement.
    CHECK(syncs_seen.load() == 2);
    CHECK(h.gerror_active() == 0);
    CHECK(cmdq->issue_sync().ok());
    CHECK(syncs_seen.load() == 3);

    REQUIRE(h.disable(hw::CR0::CMDQEN::kMask));
    h.irq().free_irq(test::kGerrorLine);
  }
}

// DMA memory the SMMU cannot reach: every command fetch is an external abort.
class UnreachableDma final : public DmaAllocator {
 public:
  Result<DmaRegion> alloc(size_t size, size_t align) override {
    void* cpu = aligned_alloc(4096, (size + 4095) & ~size_t{4095});
    if (!cpu) return Error(-ENOMEM);
    memset(cpu, 0, size);
    CHECK((kNowhere & (align - 1)) == 0);
    return DmaRegion{.cpu = cpu, .phys = kNowhere, .size = size};
  }
  void free(const DmaRegion& region) override { ::free(region.cpu); }
  bool coherent() const override { return true; }

  static constexpr phys_addr_t kNowhere = 0x2000'0000;  // no RAM, no window
};

TEST_CASE("CERROR_ABT that persists stops the queue without a hang") {
  UnreachableDma dma;  // outlives the rig, whose Cmdq frees into it
  RigOptions o;
  o.log2_entries = 3;
  o.msi = false;
  o.timeout_us = 20'000;
  o.dma = &dma;
  Rig rig(o);
  REQUIRE(rig.io.readl(hw::CR0ACK::kOffset) == hw::CR0::CMDQEN::kMask);  // kSync: at once

  hosted::LogCapture log;
  CHECK(rig.cmdq->issue_cmd_with_sync(cfgi_ste(1)).error() == Error(-ETIMEDOUT));
  CHECK(log.contains("aborted; replacing it with CMD_SYNC"));
  CHECK(log.contains("aborted again"));
  // Left unacknowledged: the queue stays stopped until a reset.
  CHECK((rig.gerror_active() & hw::GERROR::CMDQ_ERR::kMask) != 0);
  CHECK(rig.cmdq->counters().command_errors == 2);

  rig.io.writel(0, hw::CR0::kOffset);
  REQUIRE(rig.io.readl(hw::CR0ACK::kOffset) == 0);
}

TEST_CASE("CERROR_ABT that persists, without a GERROR interrupt: handled once, not every poll") {
  UnreachableDma dma;
  RigOptions o;
  o.log2_entries = 3;
  o.msi = false;
  o.dma = &dma;
  o = without_gerror_irq(o);
  o.timeout_us = 20'000;  // some 2000 polls
  Rig rig(o);
  hosted::LogCapture log;
  CHECK(rig.cmdq->issue_cmd_with_sync(cfgi_ste(1)).error() == Error(-ETIMEDOUT));
  CHECK((rig.gerror_active() & hw::GERROR::CMDQ_ERR::kMask) != 0);
  CHECK(rig.poller.runs.load() > 2);
  // The abort, then the abort again; later polls find the queue stopped and leave it so.
  CHECK(rig.cmdq->counters().command_errors == 2);
  size_t again = 0;
  for (const auto& line : log.lines())
    again += line.text.find("aborted again") != std::string::npos;
  CHECK(again == 1);

  rig.io.writel(0, hw::CR0::kOffset);
  REQUIRE(rig.io.readl(hw::CR0ACK::kOffset) == 0);
}

TEST_CASE("allocation failures at create are -ENOMEM and leak nothing") {
  Rig rig;  // the model and its registers; the rig's own Cmdq is already made
  auto& dma = rig.platform->dma();
  const CmdqConfig cfg{.page0 = rig.page0(), .dma = &dma};
  const size_t dma_live = dma.live_allocations();
  const long kmalloc_live = hosted::kmalloc_live();

  SUBCASE("the queue memory") {
    dma.fail_nth(0);
    auto r = Cmdq::create(cfg);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == Error(-ENOMEM));
  }
  SUBCASE("the Cmdq object") {
    hosted::fail_kmalloc_nth(0);
    auto r = Cmdq::create(cfg);
    hosted::fail_kmalloc_nth(-1);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == Error(-ENOMEM));
  }
  SUBCASE("the valid map") {
    hosted::fail_kmalloc_nth(1);
    auto r = Cmdq::create(cfg);
    hosted::fail_kmalloc_nth(-1);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == Error(-ENOMEM));
  }
  CHECK(dma.live_allocations() == dma_live);
  CHECK(hosted::kmalloc_live() == kmalloc_live);

  // And with nothing failing, a second Cmdq is made and freed cleanly.
  {
    auto r = Cmdq::create(cfg);
    REQUIRE(r.ok());
    CHECK(dma.live_allocations() == dma_live + 1);
  }
  CHECK(dma.live_allocations() == dma_live);
  CHECK(hosted::kmalloc_live() == kmalloc_live);
}

}  // namespace
}  // namespace strata::arm_smmu_v3
