// SPDX-License-Identifier: MIT
// A DMA test engine: a device model that copies, fills and checksums memory at the IOVAs it is
// given and signals completion, in the spirit of Arm's SMMUv3 Test Engine. End-to-end tests
// program it as a driver would (its registers, regs.h, through Mmio::model) and let it DMA
// through the IOMMU model, then check memory, its status and the IOMMU's event stream.
//
// What it implements:
//  - The register block of regs.h (layout, reset values, read-only, write-one-to-clear and
//    write-only bits), one block per engine, on sim::RegisterFile (registers.h).
//  - Jobs: COPY, FILL and CHECKSUM, started by a CMD doorbell write that latches the job's
//    parameter registers, so a driver may reprogram them while the job runs without changing
//    it. One job at a time: a doorbell while BUSY is ignored, sets STATUS.BUSY_ERR and is
//    recorded as a guest error; the running job is not disturbed. An unknown OP ends the job at
//    once with FAULT = BAD_CMD, also a guest error.
//  - DMA through a DmaPort (dma_port.h): behind the SMMUv3 model (Smmuv3DmaPort) or straight to
//    physical memory (DirectDmaPort). Transactions never cross a 4 KiB page of the source or the
//    destination; COPY reads a piece then writes it, in ascending address order (overlapping
//    ranges copy forward, as memcpy, not memmove). The first transaction that fails ends the
//    job with STATE = FAULT, FAULT = ABORT (the IOMMU terminated it) or BUS_ERROR (nothing
//    answered), FAULT_WRITE, FAULT_ADDR at its first byte, and DONE counting the bytes
//    transferred before it: a COPY whose destination faults at page k has written exactly the
//    bytes before page k.
//  - Completion: STATUS leaves BUSY (DONE, FAULT_ADDR, CHECKSUM and COMPLETIONS already final),
//    then, per the latched CTRL, a pulse on the wired line and an MSI: a 32-bit write of
//    MSI_DATA to MSI_ADDR made as a DMA transaction of the engine's StreamID without a
//    SubstreamID, so behind an SMMU it is translated like any other (the OS maps its doorbell).
//    An MSI that fails sets STATUS.MSI_ABT.
//  - Two execution modes: kSync runs the job inside the doorbell write, on the writer's thread
//    (deterministic: when writel returns, the job has completed and its interrupt has been
//    delivered); kAsync hands it to the engine's own thread (wait_idle() for tests).
//  - A direct C++ API (run, copy, fill, checksum) for tests that do not want to go through
//    registers: the same job, status registers and interrupts as a doorbell, returning the
//    outcome.
//
// What it does not: queues of jobs, scatter-gather, strides, ATS/PRI (page requests), stalls
// (a stalled transaction never reaches the engine: the SMMU model terminates it), memory
// attributes, or a bus window of its registers (a driver reaches them through Mmio::model).
//
// Interrupt rules. SimInterruptController forbids a handler to raise another interrupt
// synchronously. So a doorbell written on a thread that is delivering an engine's completion
// interrupt (a handler that chains the next job, in either mode) is accepted at once (STATE
// BUSY) but, in kSync, its job runs only after the handler has returned, still before the
// outermost doorbell write returns. The handler of any other device must not write a kSync
// engine's doorbell (the job's DMA may raise the IOMMU's interrupts inside it); the direct API
// and wait_idle() must not be called from an interrupt handler at all.
//
// Locking: mu_ guards the job state (busy_, pending_, in-flight count); the register file's
// own lock is taken under it (mu_ -> RegisterFile::mutex_). No engine lock is held during DMA
// or while an interrupt is delivered.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "arch/mmio.h"
#include "arch/result.h"
#include "testing/models/dma-engine/dma_port.h"
#include "testing/models/dma-engine/registers.h"
#include "testing/models/dma-engine/regs.h"
#include "testing/models/platform/interrupt_controller.h"

namespace strata::sim::dma_engine {

enum class Mode : uint8_t { kSync, kAsync };
constexpr const char* name(Mode m) { return m == Mode::kSync ? "sync" : "async"; }

// One job: what the parameter registers hold when the doorbell rings.
struct Job {
  Op op = Op::kCopy;
  uint64_t src = 0;       // SRC
  uint64_t dst = 0;       // DST
  uint64_t len = 0;       // LEN
  uint64_t pattern = 0;   // PATTERN
  bool ssv = false;       // SUBSTREAMID.SSV
  uint32_t ssid = 0;      // SUBSTREAMID.SSID (20 bits)
  bool priv = false;      // CTRL.PRIV
  bool instr = false;     // CTRL.INSTR
  bool irq = false;       // CTRL.IRQEN
  bool msi = false;       // CTRL.MSIEN
  uint64_t msi_addr = 0;  // MSI_ADDR
  uint32_t msi_data = 0;  // MSI_DATA
};

// How a job ended, as the status registers then show it.
struct JobResult {
  // kDone or kFault; kBusy when the engine refused the job because another one was running.
  State state = State::kIdle;
  FaultKind fault = FaultKind::kNone;
  bool fault_write = false;
  uint64_t done = 0;              // DONE
  uint64_t fault_addr = 0;        // FAULT_ADDR
  uint64_t checksum = kFnvBasis;  // CHECKSUM
  bool msi_aborted = false;       // the completion MSI did not complete (STATUS.MSI_ABT)
  bool ok() const { return state == State::kDone; }
};

struct EngineCounters {
  uint64_t jobs = 0;         // jobs completed (DONE or FAULT)
  uint64_t faults = 0;       // of those, ended in FAULT (BAD_CMD included)
  uint64_t bytes = 0;        // bytes transferred, all jobs
  uint64_t busy_errors = 0;  // jobs refused because one was running
  uint64_t irqs = 0;         // pulses on the wired line
  uint64_t msis = 0;         // completion MSI writes made (failed ones included)
  uint64_t msi_aborts = 0;   // completion MSI writes that failed
};

class DmaTestEngine {
 public:
  struct Options {
    uint32_t stream_id = 0;  // STREAMID: fixed by the platform
    Mode mode = Mode::kSync;
    SimInterruptController* irq = nullptr;  // the wired line's controller; null for none
    int line = -1;                          // the wired completion line; -1 for none
    std::string name = "dma-engine";        // prefixes log lines and guest errors
  };

  // -EINVAL for a line the controller does not have (or a line without a controller). `port`
  // and the interrupt controller must outlive the engine.
  static Result<std::unique_ptr<DmaTestEngine>> create(DmaPort& port, const Options& options);
  // Waits for jobs in flight, then stops the engine thread.
  ~DmaTestEngine();
  DmaTestEngine(const DmaTestEngine&) = delete;
  DmaTestEngine& operator=(const DmaTestEngine&) = delete;

  // The guest's view: Mmio::model(regs(), kRegisterBlockBytes).
  Mmio mmio() { return Mmio::model(regs_, kRegisterBlockBytes); }
  EngineRegisters& regs() { return regs_; }

  uint32_t stream_id() const { return options_.stream_id; }
  Mode mode() const { return options_.mode; }
  int line() const { return options_.line; }
  const std::string& name() const { return options_.name; }

  // The direct API: the job as if its parameters had been programmed and the doorbell rung
  // (the parameter registers themselves are left alone); waits for it to complete and returns
  // how it ended, or state kBusy when another job was running.
  JobResult run(const Job& job);
  JobResult copy(uint64_t src, uint64_t dst, uint64_t len, bool ssv = false, uint32_t ssid = 0);
  JobResult fill(uint64_t dst, uint64_t len, uint64_t pattern, bool ssv = false, uint32_t ssid = 0);
  JobResult checksum(uint64_t src, uint64_t len, bool ssv = false, uint32_t ssid = 0);

  // Waits until every accepted job has completed and its interrupts have been delivered.
  void wait_idle();
  // STATUS.STATE is BUSY.
  bool busy() const;
  // No job is accepted and unfinished (wait_idle() would return at once).
  bool idle() const;
  // Waits for jobs in flight, then puts the registers back to their reset values. Counters and
  // guest errors are kept.
  void reset();

  EngineCounters counters() const;

 private:
  // A job the engine thread will run; `waiter` is the direct API's, null for a doorbell.
  struct Waiter {
    JobResult result;
    bool finished = false;  // guarded by mu_
  };
  struct Pending {
    Job job;
    Waiter* waiter = nullptr;
  };

  DmaTestEngine(DmaPort& port, const Options& options);

  // The CMD hook.
  void doorbell(uint32_t op);
  // Accepts the job unless one is running (then BUSY_ERR); true when accepted. In kAsync the
  // job goes to the engine thread; in kSync the caller runs it.
  bool accept(const Job& job, Waiter* waiter);
  // Runs an accepted job to its end: DMA, status, interrupts, and then any job a handler
  // chained on this thread.
  void execute(const Job& job, Waiter* waiter);
  // The DMA, page by page, with DONE kept up to date.
  JobResult transfer(const Job& job);
  // Pulses the line and writes the MSI the job asks for; false when the MSI failed.
  bool signal(const Job& job);
  void worker();

  DmaPort& port_;
  const Options options_;
  EngineRegisters regs_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool busy_ = false;               // a job accepted and not yet published
  uint64_t in_flight_ = 0;          // jobs accepted and not finished (interrupts included)
  std::optional<Pending> pending_;  // kAsync: the job the engine thread runs next
  bool stop_ = false;
  std::thread thread_;

  struct AtomicCounters {
    std::atomic<uint64_t> jobs{0}, faults{0}, bytes{0}, busy_errors{0}, irqs{0}, msis{0},
        msi_aborts{0};
  } counters_;
};

}  // namespace strata::sim::dma_engine
