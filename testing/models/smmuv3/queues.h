// SPDX-License-Identifier: MIT
// The SMMUv3 model's queues (IHI 0070 3.5, chapter 4, 7.1-7.5, chapter 8) and the register
// Updates that gate them.
//
// What it implements:
//  - Updates (6.3.9, 6.3.14, 6.3.16): a write of CR0, IRQ_CTRL or GBPA is completed by the
//    model, after which CR0ACK / IRQ_CTRLACK show the written fields and GBPA.Update reads 0.
//    Queue enables latch the queue's base, size (capped at the IDR1 maximum) and the index the
//    SMMU owns; an Update of CMDQEN to 0 completes once no command is in progress.
//  - The Command queue: when CMDQEN is set, PROD != CONS and no command error is active, the
//    model fetches 16-byte commands through PhysMem at CMDQ_BASE, checks each (check_command:
//    Reserved opcode, RES0 field, a value invalid for the Config) and hands it to the
//    CommandExecutor. A failed check, an executor refusal (CERROR_ILL), a fetch abort
//    (CERROR_ABT) or a CMD_SYNC that finds a timed-out CMD_ATC_INV (CERROR_ATC_INV_SYNC) stops
//    the queue with CONS.RD at the command and CONS.ERR set, then activates GERROR.CMDQ_ERR
//    (with its interrupt). The architected recovery (7.1): software fixes or replaces the
//    command (or moves PROD back to CONS), then acknowledges through GERRORN; the model
//    re-fetches from CONS. CMD_SYNC completes after every earlier command (the executor
//    returns only then), advances CONS, and signals per CS: nothing (poll CONS), a WFE event
//    (counted; with IDR0.SEV), or an interrupt: an MSI of MSIData to MSIAddress through the bus
//    when MSIs are supported and MSIAddress != 0, and a pulse on the cmdq_sync wired line when
//    one is connected. A CMD_SYNC MSI that aborts activates GERROR.MSI_CMDQ_ABT_ERR. A SEV is
//    also sent when a full Command queue becomes non-full (4.1.2).
//  - The Event queue producer (record_event): 32-byte records written at EVENTQ_PROD when the
//    queue is writable (7.2.1: enabled, not full, no EVENTQ_ABT_ERR). A full queue discards the
//    record and toggles PROD.OVFLG unless an overflow is already unacknowledged (7.4); a stall
//    record is not discarded but returned to the caller to retry (3.5.3). A write abort is
//    synchronous (7.2.2): PROD stays, GERROR.EVENTQ_ABT_ERR activates. The interrupt is raised
//    when the queue goes from empty to non-empty (3.18.2).
//  - The PRI queue producer (record_page_request, chapter 8): while the effective PRIQEN
//    (PRIQEN and SMMUEN) is 0 or PRIQ_ABT_ERR is active every request is discarded with an
//    automatic Response Failure; a full queue enters overflow (PROD.OVFLG), and while it lasts
//    requests are discarded, Last ones with an automatic Success response (8.1). Stop Markers
//    are never answered. The interrupt follows PRIQ_IRQ_CFG2.LO: on empty to non-empty, or on
//    every request with Last set.
//  - Interrupts (3.18): each of GERROR, EVENTQ and PRIQ, when enabled in IRQ_CTRLACK, pulses
//    its wired line (when one is connected) and sends an MSI of *_IRQ_CFG1 to *_IRQ_CFG0
//    (when MSIs are supported and the address is not zero); an aborted MSI activates the
//    GERROR.MSI_*_ABT_ERR bit.
//  - Three threading modes: kSync consumes and completes Updates inline, in the register write
//    that asks for it (deterministic); kAsync does it on a model thread woken by those writes;
//    kManual does it only when the owner calls process() (for tests that look at the state in
//    between). Recording events and page requests is always synchronous, on the device's thread.
//  - Counters for tests and benchmarks.
//
// What it does not: ECMDQ; the Secure and Realm queues; event merging; stalled transactions
// (a stall record that finds the queue unwritable is handed back, and holding and retrying it
// is the caller's job); the PASID of an overflow auto-response (it depends on STE.PPAR, which is
// the caller's to read); memory attributes (CR1, *_IRQ_CFG2 and CMD_SYNC MSIAttr/MSH are
// stored but every access is coherent); asynchronous external aborts. The PRI automatic
// responses are reported to the caller, which sends them (Smmuv3::page_request, ats.h).
//
// Interrupts are delivered after the model has dropped its locks, on the thread that caused
// them, before the entry point that caused them returns (a register write in kSync, process()
// in kManual, the model thread's loop in kAsync, record_event()). A handler may therefore call
// the model, as a GERROR handler that writes GERRORN does; interrupts it causes in turn are
// delivered after it returns, never nested inside it (SimInterruptController forbids that).
#pragma once

#include <stdint.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "arch/result.h"
#include "arch/smmuv3/cmd.h"
#include "arch/smmuv3/event.h"
#include "testing/models/platform/interrupt_controller.h"
#include "testing/models/platform/phys_mem.h"
#include "testing/models/smmuv3/config.h"
#include "testing/models/smmuv3/registers.h"

namespace strata::sim::smmuv3 {

// What the executor made of one command.
enum class ExecStatus : uint8_t {
  kDone,           // done; for CMD_SYNC: every earlier command has completed
  kIllegal,        // the command is ILLEGAL for the executor's state: CERROR_ILL
  kAtcInvTimeout,  // CMD_SYNC only: an earlier CMD_ATC_INV timed out: CERROR_ATC_INV_SYNC
};

// Carries out the commands (the configuration cache, TLB and ATS code implements it).
class CommandExecutor {
 public:
  // One command that passed check_command(), in queue order. CMD_SYNC is passed too, so that
  // the executor can finish whatever earlier commands left in flight: the queue signals the
  // CMD_SYNC's completion only after execute() returns kDone for it. Runs on the consuming
  // thread with the command queue's lock held: it may record events and page requests and
  // read registers, but must not write the model's registers (their hooks take that lock).
  virtual ExecStatus execute(const ::strata::smmuv3::Command& cmd) = 0;

 protected:
  ~CommandExecutor() = default;
};

// The architected checks of one command on the Non-secure Command queue of an SMMU with
// `config` (4.1.3, 4.1.5, 4.1.6 and each command's section): error is CERROR_NONE, or
// CERROR_ILL with what was wrong.
struct CommandCheck {
  ::strata::smmuv3::CommandError error = ::strata::smmuv3::CommandError::CERROR_NONE;
  const char* why = nullptr;
  bool ok() const { return error == ::strata::smmuv3::CommandError::CERROR_NONE; }
};
CommandCheck check_command(const ::strata::smmuv3::Command& cmd, const Config& config);

enum class Threading : uint8_t { kSync, kAsync, kManual };
const char* name(Threading t);

// The model's wired interrupt outputs: lines of a SimInterruptController, -1 for none.
struct IrqLines {
  int eventq = -1;
  int priq = -1;
  int gerror = -1;
  int cmdq_sync = -1;  // CMD_SYNC with CS == SIG_IRQ (3.18.2: a unique wired output)
};

// What record_event() did with a record.
enum class EventResult : uint8_t {
  kWritten,      // visible at PROD
  kNotWritable,  // EVENTQEN == 0 or EVENTQ_ABT_ERR active: discarded (a stall: retry later)
  kOverflow,     // the queue was full: discarded, overflow flagged (PROD.OVFLG)
  kFull,         // a stall record and the queue was full: not recorded, retry later
  kAborted,      // the record's write aborted: discarded, GERROR.EVENTQ_ABT_ERR
};
const char* name(EventResult r);

// What record_page_request() did with a page request (8.1, 8.2).
struct PriResult {
  enum class Kind : uint8_t {
    kRecorded,      // written to the PRI queue
    kAutoResponse,  // discarded, with an automatic PRG Response of `response_code`
    kDiscarded,     // discarded silently (overflow, Last == 0)
  };
  // PCIe PRG Response codes of the automatic responses.
  static constexpr uint8_t kSuccess = 0b0000, kResponseFailure = 0b1111;

  Kind kind = Kind::kRecorded;
  uint8_t response_code = 0;
  bool overflow = false;  // the request found the queue full or in overflow
};

struct Counters {
  uint64_t commands = 0;          // commands consumed (CONS moved past them), CMD_SYNC included
  uint64_t syncs = 0;             // CMD_SYNCs completed
  uint64_t sync_msis = 0;         // CMD_SYNC MSI writes made (aborted ones included)
  uint64_t sev = 0;               // WFE wake-up events sent
  uint64_t command_errors = 0;    // CERROR_* raised
  uint64_t events = 0;            // event records written
  uint64_t event_overflows = 0;   // event records discarded on a full queue
  uint64_t events_discarded = 0;  // event records discarded on an unwritable queue or abort
  uint64_t pri_records = 0;       // page requests written
  uint64_t pri_discarded = 0;     // page requests discarded (overflow, disabled, abort)
  uint64_t pri_overflows = 0;     // times the PRI queue entered overflow
  uint64_t wired_irqs = 0;        // pulses on wired lines
  uint64_t msis = 0;              // MSI writes, every source (aborted ones included)
  uint64_t msi_aborts = 0;        // MSI writes the bus aborted
  uint64_t updates = 0;           // CR0, IRQ_CTRL and GBPA Updates completed
};

class Queues final : public RegisterListener {
 public:
  struct Options {
    Threading threading = Threading::kSync;
    // Where the wired lines go; null for no wired interrupts (MSIs only).
    SimInterruptController* irq = nullptr;
    IrqLines lines = {};
    // Called while an Update of CR0 completes, before CR0ACK shows it, with the old and new
    // CR0ACK values: the side effects the rest of the model attaches to SMMUEN, ATSCHK or VMW
    // (6.3.9). Runs with the command queue's lock held, like CommandExecutor::execute.
    std::function<void(uint32_t old_ack, uint32_t new_ack)> on_cr0_update = nullptr;
  };

  // Attaches to `regs` (as its listener). `regs`, `mem`, `executor` and the interrupt
  // controller must outlive the Queues. -EINVAL for a wired line the controller does not have.
  static Result<std::unique_ptr<Queues>> create(Registers& regs, PhysMem& mem,
                                                CommandExecutor& executor, const Options& options);
  // Stops the model thread and detaches from the registers. The guest and devices must have
  // stopped using the model.
  ~Queues();
  Queues(const Queues&) = delete;
  Queues& operator=(const Queues&) = delete;

  // kManual: completes pending Updates and consumes commands until the queue is empty, stopped
  // or disabled. In the other modes it may be called too (it does what the model would).
  void process();
  // kAsync: waits until the model thread has nothing left to do (a test convenience).
  void wait_idle();

  // A device's transaction produced an event (7.2); `stall` says the transaction is stalled
  // and so the record must not be discarded when the queue cannot take it.
  EventResult record_event(const ::strata::smmuv3::EventRecord& record, bool stall = false);
  // A PCIe Page Request arrived (chapter 8).
  PriResult record_page_request(const ::strata::smmuv3::PriRecord& request);

  Counters counters() const;
  // The bypass attributes in effect (SMMU_GBPA without Update, as last applied).
  uint32_t gbpa() const { return gbpa_.load(std::memory_order_relaxed); }
  Threading threading() const { return options_.threading; }

  // RegisterListener.
  void update_requested() override;
  void cmdq_prod_written() override;
  void gerror_acknowledged(uint32_t bits) override;

 private:
  class IrqScope;  // collects a thread's interrupts until its locks are dropped (queues.cc)
  enum class IrqKind : uint8_t { kGerror, kEventq, kPriq, kSyncMsi, kSyncWired };
  struct PendingIrq {
    Queues* queues;
    IrqKind kind;
    uint64_t address;  // kSyncMsi
    uint32_t data;     // kSyncMsi
  };

  // An output queue's latched configuration and the index the SMMU owns.
  struct OutQueue {
    bool enabled = false;
    uint64_t base = 0;
    unsigned qs = 0;    // LOG2SIZE, capped
    uint32_t prod = 0;  // WR and wrap
    bool inconsistent_reported = false;
  };

  Queues(Registers& regs, PhysMem& mem, CommandExecutor& executor, const Options& options);

  void kick();
  void worker();
  // One step of process(), with mu_ held: completes pending Updates, then consumes commands up
  // to the next CMD_SYNC. Returns whether there may be more to consume.
  bool step_locked();
  void apply_updates_locked();
  bool consume_locked();
  void command_error_locked(::strata::smmuv3::CommandError err, const char* why, uint64_t w0,
                            uint64_t w1);
  void signal_sync_locked(const ::strata::smmuv3::CmdSync& sync);
  void publish_cons_locked();
  // With the queue's lock held: latches an output queue's base, size and PROD at its enable.
  void latch_out_queue_locked(OutQueue& q, uint64_t base_reg, unsigned max_qs, uint64_t prod_offset,
                              size_t entry_bytes);

  // Interrupts: queued while locks are held, delivered by the outermost IrqScope.
  void queue_irq(IrqKind kind, uint64_t address = 0, uint32_t data = 0);
  void deliver(const PendingIrq& irq);
  void raise_gerror(uint32_t bits);
  void pulse(int line);
  // An MSI write through the bus; false when it aborted.
  bool msi_write(uint64_t address, uint32_t data);

  Registers& regs_;
  PhysMem& mem_;
  CommandExecutor& executor_;
  const Options options_;
  const Config& config_;

  // Lock order: mu_ (Updates and the Command queue) -> evtq_mu_, priq_mu_ -> the Registers'
  // locks. No model lock is held while an interrupt is delivered.
  std::mutex mu_;
  struct {
    bool enabled = false;
    uint64_t base = 0;
    unsigned qs = 0;    // LOG2SIZE, capped at IDR1.CMDQS
    uint32_t cons = 0;  // RD and wrap: the SMMU's index
    bool inconsistent_reported = false;
  } cmdq_;  // guarded by mu_

  std::mutex evtq_mu_;
  OutQueue evtq_;  // guarded by evtq_mu_

  std::mutex priq_mu_;
  OutQueue priq_;  // guarded by priq_mu_; enabled is the effective PRIQEN (PRIQEN && SMMUEN)

  std::atomic<uint32_t> gbpa_;

  // The model thread (kAsync) and work flag (kAsync, kManual).
  std::mutex work_mu_;
  std::condition_variable work_cv_;
  bool work_ = false;  // guarded by work_mu_: something to process
  bool busy_ = false;  // guarded by work_mu_: the model thread is processing
  bool stop_ = false;  // guarded by work_mu_
  std::thread thread_;

  struct AtomicCounters {
    std::atomic<uint64_t> commands{0}, syncs{0}, sync_msis{0}, sev{0}, command_errors{0}, events{0},
        event_overflows{0}, events_discarded{0}, pri_records{0}, pri_discarded{0}, pri_overflows{0},
        wired_irqs{0}, msis{0}, msi_aborts{0}, updates{0};
  } counters_;
};

}  // namespace strata::sim::smmuv3
