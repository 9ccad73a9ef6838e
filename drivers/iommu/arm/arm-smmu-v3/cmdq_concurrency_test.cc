// SPDX-License-Identifier: MIT
// The Command queue with several submitting threads, against the SMMUv3 model in kSync (the
// owner's CMDQ_PROD write runs the model) and kAsync (the model thread consumes), with CMD_SYNC
// completion by MSI and by polling. Small queues, so that producers wrap, find the queue full
// and gather each other's commands. Run under ThreadSanitizer.
#include <stdint.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "arch/smmuv3/cmd.h"
#include "arch/smmuv3/regs.h"
#include "drivers/iommu/arm/arm-smmu-v3/cmdq.h"
#include "drivers/iommu/arm/arm-smmu-v3/cmdq_test_rig.h"
#include "drivers/iommu/arm/arm-smmu-v3/model_rig.h"
#include "testing/models/smmuv3/queue_harness.h"

namespace strata::arm_smmu_v3 {
namespace {

namespace hw = ::strata::smmuv3;
using hw::Opcode;
using test::cfgi_ste;
using test::cfgi_ste_cmd;
using test::illegal_cmd;
using test::Rig;
using test::RigOptions;

constexpr unsigned kThreads = 4;
constexpr unsigned kIters = 120;

uint32_t sid_of(unsigned thread, unsigned seq) { return (thread << 16) | seq; }

TEST_CASE("threads submit at once: every command is executed exactly once") {
  test::for_each_mode([&](RigOptions o) {
    o.log2_entries = 4;  // 16 slots for 4 threads: wraps, full queues
    Rig rig(o);

    std::atomic<uint64_t> sent{0}, failures{0};
    auto submitter = [&](unsigned thread) {
      unsigned seq = 0;
      for (unsigned i = 0; i < kIters; i++) {
        const unsigned k = 1 + (i * 7 + thread) % 9;  // 1..9 commands
        std::vector<hw::Command> cmds;
        for (unsigned j = 0; j < k; j++) cmds.push_back(cfgi_ste_cmd(sid_of(thread, seq++)));
        bool ok = true;
        switch (i % 4) {
          case 0: ok = rig.cmdq->issue_cmdlist(cmds.data(), k, true).ok(); break;
          case 1: {
            CmdqBatch batch(*rig.cmdq);
            for (const hw::Command& c : cmds) batch.add(c);
            ok = batch.submit().ok();
            break;
          }
          case 2: ok = rig.cmdq->issue_cmdlist(cmds.data(), k, false).ok(); break;
          case 3:
            ok = rig.cmdq->issue_cmdlist(cmds.data(), k, false).ok() && rig.cmdq->issue_sync().ok();
            break;
        }
        if (!ok) failures++;
        sent += k;
      }
    };
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < kThreads; i++) threads.emplace_back(submitter, i);
    for (std::thread& th : threads) th.join();
    REQUIRE(rig.cmdq->issue_sync().ok());

    CHECK(failures.load() == 0);
    CHECK(rig.executed(Opcode::CMD_CFGI_STE) == sent.load());
    const CmdqCounters c = rig.cmdq->counters();
    CHECK(c.commands == sent.load());
    CHECK(rig.executed(Opcode::CMD_SYNC) == c.syncs);
    CHECK(c.prod_writes <= c.reservations);
    CHECK(c.timeouts == 0);
    CHECK(rig.gerror_active() == 0);
    CHECK(hw::queue_empty(rig.io.readl(hw::CMDQ_PROD::kOffset),
                          rig.io.readl(hw::CMDQ_CONS::kOffset), rig.cmdq->log2_entries()));
    const std::string stats = std::string(test::mode_name(o.threading)) +
                              (o.msi ? " msi: " : " poll: ") + std::to_string(c.reservations) +
                              " reservations, " + std::to_string(c.prod_writes) +
                              " CMDQ_PROD writes, " + std::to_string(c.full) + " full";
    MESSAGE(stats);
  });
}

// The model's queues with a recording executor: every command seen, in the order executed.
TEST_CASE("exactly once and in each thread's order, by StreamID") {
  namespace qh = sim::smmuv3::test;
  test::for_each_mode([&](RigOptions o) {
    qh::Harness h(o.threading);
    Box<Cmdq> cmdq = test::make_cmdq(CmdqConfig{.page0 = h.io.window(0, test::kPage0Bytes),
                                                .dma = &h.platform->dma(),
                                                .log2_entries = 3,
                                                .msi = o.msi,
                                                .timeout_us = test::kTimeoutUs,
                                                .name = "smmu-order"});
    REQUIRE(cmdq->reset().ok());
    REQUIRE(h.enable(hw::CR0::CMDQEN::kMask));

    std::atomic<uint64_t> failures{0};
    std::vector<unsigned> per_thread(kThreads, 0);
    auto submitter = [&](unsigned thread) {
      unsigned seq = 0;
      for (unsigned i = 0; i < kIters; i++) {
        const unsigned k = 1 + (i + thread) % 5;
        hw::Command cmds[5];
        for (unsigned j = 0; j < k; j++) cmds[j] = cfgi_ste_cmd(sid_of(thread, seq++));
        if (!cmdq->issue_cmdlist(cmds, k, i % 3 != 0).ok()) failures++;
      }
      if (!cmdq->issue_sync().ok()) failures++;
      per_thread[thread] = seq;
    };
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < kThreads; i++) threads.emplace_back(submitter, i);
    for (std::thread& th : threads) th.join();
    CHECK(failures.load() == 0);

    std::vector<unsigned> next(kThreads, 0);
    size_t syncs = 0;
    bool in_order = true;
    for (const hw::Command& c : h.exec.commands()) {
      if (c.opcode() == static_cast<uint8_t>(Opcode::CMD_SYNC)) {
        syncs++;
        continue;
      }
      REQUIRE(c.opcode() == static_cast<uint8_t>(Opcode::CMD_CFGI_STE));
      const uint32_t sid = static_cast<uint32_t>(
          hw::descriptor_cast<hw::CmdCfgiSte>(c).get<hw::CmdCfgiSte::StreamID>());
      const unsigned thread = sid >> 16, seq = sid & 0xffff;
      REQUIRE(thread < kThreads);
      if (seq != next[thread]) in_order = false;
      next[thread] = seq + 1;
    }
    CHECK(in_order);
    CHECK(next == per_thread);
    CHECK(syncs == cmdq->counters().syncs);
    REQUIRE(h.disable(hw::CR0::CMDQEN::kMask));
  });
}

TEST_CASE("illegal commands from one thread fail its CMD_SYNCs only") {
  test::for_each_mode([&](RigOptions o) {
    o.log2_entries = 4;
    Rig rig(o);

    std::atomic<uint64_t> legal{0}, wrong{0}, eio{0};
    auto submitter = [&](unsigned thread) {
      unsigned seq = 0;
      for (unsigned i = 0; i < kIters; i++) {
        const unsigned k = 1 + (i + thread) % 6;
        const bool bad = thread == 0 && i % 4 == 1;
        hw::Command cmds[6];
        for (unsigned j = 0; j < k; j++) {
          const uint32_t sid = sid_of(thread, seq++);
          cmds[j] = bad && j == k / 2 ? illegal_cmd(sid) : cfgi_ste_cmd(sid);
        }
        legal += bad ? k - 1 : k;
        Result<void> r = rig.cmdq->issue_cmdlist(cmds, k, true);
        if (r.ok() == bad) wrong++;
        if (!r.ok() && r.error() == Error(-EIO)) eio++;
      }
    };
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < kThreads; i++) threads.emplace_back(submitter, i);
    for (std::thread& th : threads) th.join();

    CHECK(wrong.load() == 0);
    CHECK(eio.load() == kIters / 4);
    CHECK(rig.cmdq->counters().command_errors == kIters / 4);
    CHECK(rig.executed(Opcode::CMD_CFGI_STE) == legal.load());
    CHECK(rig.gerror_active() == 0);
    REQUIRE(rig.cmdq->issue_cmd_with_sync(cfgi_ste(0xffff)).ok());
  });
}

}  // namespace
}  // namespace strata::arm_smmu_v3
