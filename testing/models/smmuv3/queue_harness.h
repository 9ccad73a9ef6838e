// SPDX-License-Identifier: MIT
// A driver's-eye harness for the SMMUv3 model's register and queue tests: a simulated machine,
// the model (Registers + Queues) with a recording CommandExecutor, and small helpers that
// program the registers and build queue entries in simulated memory by hand, as a driver would,
// through Mmio and the CPU's view of RAM. Deliberately not the driver: a model test must not
// share a driver's misunderstanding.
#pragma once

#include <stdint.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "arch/dma.h"
#include "arch/mmio.h"
#include "arch/smmuv3/cmd.h"
#include "arch/smmuv3/event.h"
#include "arch/smmuv3/regs.h"
#include "testing/models/platform/platform.h"
#include "testing/models/smmuv3/queues.h"
#include "testing/models/smmuv3/registers.h"

namespace strata::sim::smmuv3::test {

namespace arch = ::strata::smmuv3;

// The threading modes a scenario runs in.
inline constexpr Threading kDriverModes[] = {Threading::kSync, Threading::kAsync};

// Records every command, in order, and answers as told.
class RecordingExecutor final : public CommandExecutor {
 public:
  ExecStatus execute(const arch::Command& cmd) override {
    std::function<ExecStatus(const arch::Command&)> hook;
    {
      std::lock_guard<std::mutex> lock(mu_);
      commands_.push_back(cmd);
      hook = hook_;
    }
    return hook ? hook(cmd) : ExecStatus::kDone;
  }
  // Decides the status of each command from now on (null: kDone). Runs under the model's
  // command queue lock.
  void set_hook(std::function<ExecStatus(const arch::Command&)> hook) {
    std::lock_guard<std::mutex> lock(mu_);
    hook_ = std::move(hook);
  }
  std::vector<arch::Command> commands() const {
    std::lock_guard<std::mutex> lock(mu_);
    return commands_;
  }
  size_t count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return commands_.size();
  }
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    commands_.clear();
  }

 private:
  mutable std::mutex mu_;
  std::vector<arch::Command> commands_;
  std::function<ExecStatus(const arch::Command&)> hook_;
};

// Counts the calls of an interrupt handler.
struct IrqCount {
  std::atomic<int> calls{0};
  static void handler(void* ctx) { static_cast<IrqCount*>(ctx)->calls++; }
};

inline constexpr phys_addr_t kRamBase = 0x4000'0000;
inline constexpr uint64_t kRamSize = 64 << 20;
// Fixed places in RAM for the queues the tests build (each 1 MiB, enough for 2^16 commands).
inline constexpr phys_addr_t kCmdqPa = kRamBase + 0x10'0000;
inline constexpr phys_addr_t kEventqPa = kRamBase + 0x20'0000;
inline constexpr phys_addr_t kPriqPa = kRamBase + 0x30'0000;
inline constexpr phys_addr_t kScratchPa = kRamBase + 0x40'0000;  // MSI targets and the like
// Nothing answers here: an access is an external abort.
inline constexpr phys_addr_t kNowhere = 0x2000'0000;

struct Harness {
  struct Setup {
    Threading threading = Threading::kSync;
    Config config = Config::smmuv3_2();
    IrqLines lines = {};
    std::function<void(uint32_t, uint32_t)> on_cr0_update = nullptr;
  };

  Harness() : Harness(Setup{}) {}
  explicit Harness(Threading t) : Harness(Setup{.threading = t}) {}
  explicit Harness(const Setup& setup) : threading(setup.threading) {
    auto p = Platform::create(Platform::Config{.ram_base = kRamBase, .ram_size = kRamSize});
    REQUIRE(p.ok());
    platform = p.release_value();
    auto r = Registers::create(setup.config, "smmu-test");
    REQUIRE(r.ok());
    regs = r.release_value();
    auto q = Queues::create(*regs, platform->mem(), exec,
                            Queues::Options{.threading = setup.threading,
                                            .irq = &platform->irq(),
                                            .lines = setup.lines,
                                            .on_cr0_update = setup.on_cr0_update});
    REQUIRE(q.ok());
    queues = q.release_value();
    io = Mmio::model(*regs, arch::kRegisterSpaceBytes);
  }
  ~Harness() {
    queues.reset();  // stops the model thread before the rest goes
  }

  PhysMem& mem() { return platform->mem(); }
  SimInterruptController& irq() { return platform->irq(); }

  // Waits, as a driver polls, until `done` holds: a bounded spin in kAsync, process() between
  // tries in kManual, a single look in kSync (where the model has finished before the write
  // returned).
  bool poll(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
      if (done()) return true;
      switch (threading) {
        case Threading::kSync: return false;
        case Threading::kManual: queues->process(); break;
        case Threading::kAsync: std::this_thread::yield(); break;
      }
      if (std::chrono::steady_clock::now() > deadline) return false;
    }
  }

  // Register helpers, as a driver writes them.
  uint32_t readl(uint64_t off) const { return io.readl(off); }
  uint64_t readq(uint64_t off) const { return io.readq(off); }
  void writel(uint32_t v, uint64_t off) const { io.writel(v, off); }
  void writeq(uint64_t v, uint64_t off) const { io.writeq(v, off); }

  // CR0 = value, then poll CR0ACK until it matches (Linux's arm_smmu_write_reg_sync).
  bool write_cr0(uint32_t value) {
    writel(value, arch::CR0::kOffset);
    return poll([&] { return readl(arch::CR0ACK::kOffset) == value; });
  }
  bool write_irq_ctrl(uint32_t value) {
    writel(value, arch::IRQ_CTRL::kOffset);
    return poll([&] { return readl(arch::IRQ_CTRLACK::kOffset) == value; });
  }
  // The GBPA protocol (6.3.14.1): wait for Update == 0, write with Update, wait again.
  bool write_gbpa(uint32_t value) {
    if (!poll([&] { return !(readl(arch::GBPA::kOffset) & arch::GBPA::Update::kMask); }))
      return false;
    writel(value | arch::GBPA::Update::kMask, arch::GBPA::kOffset);
    return poll([&] { return !(readl(arch::GBPA::kOffset) & arch::GBPA::Update::kMask); });
  }
  uint32_t cr0() const { return readl(arch::CR0::kOffset); }
  bool enable(uint32_t cr0_bits) { return write_cr0(cr0() | cr0_bits); }
  bool disable(uint32_t cr0_bits) { return write_cr0(cr0() & ~cr0_bits); }

  // The Command queue at `pa` with 2^log2size entries, empty, enabled.
  void setup_cmdq(unsigned log2size, phys_addr_t pa = kCmdqPa) {
    cmdq_pa = pa;
    cmdq_qs = log2size;
    arch::CMDQ_BASE::from_value(0)
        .set<arch::CMDQ_BASE::ADDR>(pa)
        .set<arch::CMDQ_BASE::LOG2SIZE>(log2size)
        .write_to(io);
    writel(0, arch::CMDQ_PROD::kOffset);
    writel(0, arch::CMDQ_CONS::kOffset);
    prod = 0;
    REQUIRE(enable(arch::CR0::CMDQEN::kMask));
  }
  void setup_eventq(unsigned log2size, phys_addr_t pa = kEventqPa) {
    eventq_pa = pa;
    eventq_qs = log2size;
    arch::EVENTQ_BASE::from_value(0)
        .set<arch::EVENTQ_BASE::ADDR>(pa)
        .set<arch::EVENTQ_BASE::LOG2SIZE>(log2size)
        .write_to(io);
    writel(0, arch::EVENTQ_PROD::kOffset);
    writel(0, arch::EVENTQ_CONS::kOffset);
    REQUIRE(enable(arch::CR0::EVENTQEN::kMask));
  }
  void setup_priq(unsigned log2size, phys_addr_t pa = kPriqPa) {
    priq_pa = pa;
    priq_qs = log2size;
    arch::PRIQ_BASE::from_value(0)
        .set<arch::PRIQ_BASE::ADDR>(pa)
        .set<arch::PRIQ_BASE::LOG2SIZE>(log2size)
        .write_to(io);
    writel(0, arch::PRIQ_PROD::kOffset);
    writel(0, arch::PRIQ_CONS::kOffset);
    REQUIRE(enable(arch::CR0::PRIQEN::kMask | arch::CR0::SMMUEN::kMask));
  }

  // Writes one command at the driver's PROD (without ringing the doorbell); returns its slot.
  template <typename C>
  uint32_t put(const C& cmd) {
    const uint32_t slot = prod;
    write_slot(arch::queue_index(slot, cmdq_qs), arch::descriptor_cast<arch::Command>(cmd));
    prod = arch::queue_advance(prod, 1, cmdq_qs);
    return slot;
  }
  void write_slot(uint32_t index, const arch::Command& cmd) {
    auto* p = static_cast<uint8_t*>(mem().host_ptr(cmdq_pa + uint64_t{index} * 16, 16));
    REQUIRE(p != nullptr);
    dma_write64(p, cmd.word(0));
    dma_write64(p + 8, cmd.word(1));
  }
  void ring() { writel(prod, arch::CMDQ_PROD::kOffset); }
  uint32_t cons() const { return readl(arch::CMDQ_CONS::kOffset); }
  // Polls CMDQ_CONS until the queue is empty (CONS.RD == PROD), or a command error shows.
  bool drain() {
    return poll([&] {
      return arch::queue_empty(prod, cons(), cmdq_qs) ||
             (gerror_active() & arch::GERROR::CMDQ_ERR::kMask);
    });
  }
  uint32_t gerror_active() const {
    return arch::active_errors(arch::GERROR::read_from(io), arch::GERRORN::read_from(io));
  }
  // Acknowledges every active global error, as Linux's GERROR handler does.
  void ack_gerrors() { writel(readl(arch::GERROR::kOffset), arch::GERRORN::kOffset); }

  // The CPU's view of a 32-byte event record at `index` of the Event queue.
  arch::EventRecord event_at(uint32_t index) {
    arch::EventRecord rec;
    auto* p = static_cast<uint8_t*>(mem().host_ptr(eventq_pa + uint64_t{index} * 32, 32));
    REQUIRE(p != nullptr);
    for (size_t i = 0; i < arch::EventRecord::kWords; i++) rec.set_word(i, dma_read64(p + 8 * i));
    return rec;
  }
  arch::PriRecord pri_at(uint32_t index) {
    arch::PriRecord rec;
    auto* p = static_cast<uint8_t*>(mem().host_ptr(priq_pa + uint64_t{index} * 16, 16));
    REQUIRE(p != nullptr);
    for (size_t i = 0; i < arch::PriRecord::kWords; i++) rec.set_word(i, dma_read64(p + 8 * i));
    return rec;
  }
  uint32_t read_scratch32(uint64_t offset = 0) {
    auto* p = mem().host_ptr(kScratchPa + offset, 4);
    REQUIRE(p != nullptr);
    return static_cast<uint32_t>(__atomic_load_n(static_cast<uint32_t*>(p), __ATOMIC_ACQUIRE));
  }

  const Threading threading;
  std::unique_ptr<Platform> platform;
  std::unique_ptr<Registers> regs;
  RecordingExecutor exec;
  std::unique_ptr<Queues> queues;
  Mmio io;

  phys_addr_t cmdq_pa = kCmdqPa, eventq_pa = kEventqPa, priq_pa = kPriqPa;
  unsigned cmdq_qs = 0, eventq_qs = 0, priq_qs = 0;
  uint32_t prod = 0;  // the driver's copy of CMDQ_PROD
};

// Commands built from the architected layouts.
inline arch::CmdSync sync_cmd(uint64_t cs = arch::kCsNone) {
  return arch::CmdSync::make().set<arch::CmdSync::CS>(cs);
}
inline arch::CmdSync sync_msi(uint64_t address, uint32_t data) {
  return arch::CmdSync::make()
      .set<arch::CmdSync::CS>(arch::kCsIrq)
      .set<arch::CmdSync::MSIAddress>(address)
      .set<arch::CmdSync::MSIData>(data)
      .set<arch::CmdSync::MSIAttr>(arch::kMemAttrDeviceNGnRE);
}
inline arch::CmdCfgiSte cfgi_ste(uint32_t sid) {
  return arch::CmdCfgiSte::make().set<arch::CmdCfgiSte::StreamID>(sid);
}

}  // namespace strata::sim::smmuv3::test
