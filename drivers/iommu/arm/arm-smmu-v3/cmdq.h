// SPDX-License-Identifier: MIT
// The arm-smmu-v3 driver's Command queue (IHI 0070 3.5, chapter 4, 6.3.26-6.3.28, 7.1): many
// CPUs submit commands at once without a lock on the common path, a batch ends with one
// CMD_SYNC, and its submitter waits for that CMD_SYNC by polling memory (MSI) or CMDQ_CONS.
// The design is Linux's arm_smmu_cmdq_issue_cmdlist (the "lock-free" cmdq); the code is ours.
//
//   CmdqConfig cfg{.page0 = regs.window(0, 0x10000), .dma = &smmu_dma, .log2_entries = 10,
//                  .msi = idr0_msi && idr0_cohacc, .name = "smmu0"};
//   Box<Cmdq> cmdq = STRATA_TRY(Cmdq::create(cfg));
//   STRATA_TRY(cmdq->reset());            // CMDQ_BASE, CMDQ_PROD = 0, CMDQ_CONS = 0
//   ... the driver sets CR0.CMDQEN and waits for CR0ACK.CMDQEN ...
//   CmdqBatch batch(*cmdq);
//   batch.add(CmdCfgiSte::make().set<CmdCfgiSte::StreamID>(sid));
//   STRATA_TRY(batch.submit());           // the commands, then one CMD_SYNC, waited for
//
// Where a command goes. The queue is 2^log2_entries slots of 16 bytes in DMA memory (4.1.1).
// PROD and CONS hold an index and, one bit above it, a wrap flag; equal means empty, equal
// indexes with different wraps means full (3.5, 6.3.27, 6.3.28). Software owns PROD, the SMMU
// owns CONS. Internally every position is a 31-bit free-running count ("extended position");
// the register value is its low log2_entries + 1 bits, and a register value read back is
// extended again against the cached CONS, which is never more than a queue's length behind.
//
// Submission, in five steps (issue_cmdlist):
//  1. Reserve. One 64-bit atomic word holds (PROD, a snapshot of CONS, an owner flag). A
//     producer that sees room for its n commands (+1 for a CMD_SYNC) moves PROD on by a
//     compare-and-swap and sets the owner flag; if the flag was clear it is the owner. No
//     room: it waits for the SMMU (below). The reservation word is the only location every
//     producer compare-and-swaps.
//  2. Write. The producer writes its commands into its slots with 64-bit single-copy-atomic
//     stores (dma_write64), and, if it asked for a sync, a CMD_SYNC in its last slot.
//  3. Mark valid. One bit per slot, flipped once per lap, says the slot is written (a slot is
//     valid when its bit differs from the lap's wrap flag, so no one ever clears the map).
//  4. Publish (the owner only). The owner waits until the previous owner has written PROD,
//     clears the owner flag (which closes its gathering window: every reservation since its
//     own is now its job), waits until every slot up to the PROD it saw is valid, and writes
//     that PROD to SMMU_CMDQ_PROD once, a writel that orders the commands before it. The next
//     reservation finds the flag clear and becomes the next owner. So one register write
//     covers every producer that came while the previous one was being made.
//  5. Wait (a producer that asked for a sync). With MSIs (IDR0.MSI, coherent access:
//     6.3.1), the CMD_SYNC has CS = SIG_IRQ, MSIAddress = the physical address of its own slot
//     and MSIData = 0 (4.7.3): the SMMU signals completion by overwriting the slot's first 32
//     bits with 0, which the producer polls in memory, without a register read. Without, CS =
//     SIG_NONE and the producer polls SMMU_CMDQ_CONS until it has passed the CMD_SYNC. Both end
//     after the configured timeout with -ETIMEDOUT and a log line, never a hang. The queue is
//     consumed in order and a CMD_SYNC completes only after every command before it (4.7.3),
//     so a completed CMD_SYNC says every earlier command, anyone's, is done.
//
// Space. The cached CONS in the reservation word is refreshed from SMMU_CMDQ_CONS by a producer
// that finds the queue full, or moved on by a CMD_SYNC waiter that saw its CMD_SYNC complete.
// A slot may be reused only when the cached CONS has passed it, and that is what the one small
// lock (Linux's cmdq->lock, a reader/writer count in one atomic) protects: every CMD_SYNC
// waiter holds it shared from before its CMD_SYNC is marked valid until it stops waiting, and
// the cached CONS moves only (a) under it exclusively (a full queue's producer, which takes it
// with trylock, never waits for it) or (b) when the last shared holder leaves, to the position
// its own CMD_SYNC proved consumed. So while a waiter waits, no producer can be handed its
// CMD_SYNC's slot, and the MSI the SMMU writes there can never land in someone else's command;
// and the cached CONS is frozen, so a CONS value read back extends without ambiguity. The
// common path (a reservation with room) takes no lock; a sync takes the count shared, which
// only waits while a full-queue producer reads CMDQ_CONS. One case is not covered, as in
// Linux: a CMD_SYNC that timed out gives its slot up, so if the SMMU completes it after all,
// late, its MSI may land in a command written there since. An SMMU that takes a second over a
// CMD_SYNC is broken and needs a reset anyway.
//
// Command errors (7.1). An illegal command stops the queue with CONS on it, CONS.ERR giving the
// reason (6.3.28), and GERROR.CMDQ_ERR active (6.3.19); the SMMU consumes nothing more until
// software toggles GERRORN.CMDQ_ERR to match (6.3.20, 7.5), then re-fetches from CONS. The
// driver's GERROR handler calls handle_cmdq_gerror(), which reads CONS.ERR and:
//  - CERROR_ILL (and unknown codes): logs the command, both words, and replaces it in the
//    queue with a CMD_SYNC (SIG_NONE), as Linux does, so that the queue can go on;
//  - CERROR_ABT (the fetch aborted): logs and replaces it likewise; if the same slot aborts
//    again the queue memory is unreachable, and the error is left unacknowledged: the queue
//    stays stopped and waiters time out (a reset is needed), rather than looping for ever;
//    until reset() the error is then not handled (or logged) again, however often asked;
//  - CERROR_ATC_INV_SYNC (a CMD_SYNC found a CMD_ATC_INV timed out): logs; the CMD_SYNC is
//    left in place and is executed again after the acknowledgement (7.1);
// records the failed command's position, then acknowledges by toggling GERRORN.CMDQ_ERR, and
// the SMMU re-fetches from CONS. A submitter whose CMD_SYNC completes checks the positions
// recorded since it started: if one of its own commands (or its CMD_SYNC, for
// CERROR_ATC_INV_SYNC) failed, it gets -EIO. Commands submitted without a sync have nobody to
// tell: the log is all. Errors are recorded in a small ring; a submitter that finds more errors
// than the ring holds since it started cannot tell and reports -EIO rather than success.
//
// Without a GERROR interrupt. The SMMU may have none (no wired line, no MSI: Linux then only
// warns that errors will not be reported), and then nothing would ever acknowledge a command
// error: the queue would stay stopped and every later CMD_SYNC time out. So a driver without
// one gives the cmdq its GERROR handler (set_gerror_poll()), and every wait for the SMMU here,
// a CMD_SYNC waiter's and a full-queue producer's, calls it once it has waited kGerrorPollNs
// without its condition holding, and again at most every kGerrorPollNs: the handler reads
// GERROR and GERRORN (6.3.19, 6.3.20) and handles whatever is active, as the interrupt would
// have, and the waiter goes on polling. Waiters get there concurrently, so the cmdq serialises
// the calls (a try-lock, with interrupts off: whoever finds it taken just polls on). A wait
// that completes within
// kGerrorPollNs never reads GERROR, and submission itself never does.
//
// Who writes what. The cmdq writes CMDQ_BASE, CMDQ_PROD and CMDQ_CONS (reset() only, with the
// queue disabled) and CMDQ_PROD (owners). The driver writes CR0 (CMDQEN), IRQ_CTRL and the
// GERROR interrupt hook-up, or, without one, sets the GERROR poll. GERRORN.CMDQ_ERR is toggled
// by handle_cmdq_gerror(), GERRORN's other bits by the driver's GERROR handler, run by its
// interrupt or by the cmdq's waiters through the poll, never both. That handler must be the
// only caller of handle_cmdq_gerror() / handle_cmdq_error() at a time (one handler at a time,
// as an interrupt handler is; the cmdq's try-lock sees to it for the poll): GERRORN is written
// read-modify-write, and the error ring and the abort record have one writer.
//
// Concurrency and context. issue_*() and CmdqBatch may be called from any number of threads
// (and from interrupt handlers, as the exclusive section runs with interrupts off); they spin,
// never sleep. handle_cmdq_gerror() takes no lock and never waits for a producer, so it may
// run inside a producer's CMDQ_PROD write (the model delivers its GERROR interrupt there, and
// an SMMU's wired interrupt may arrive on that CPU), and inside a wait: the GERROR poll runs
// in a CMD_SYNC waiter that holds the count shared, and in a full-queue producer that holds
// nothing; so the poll must neither submit commands nor wait for a producer. Lock order: the
// count is a leaf. It is held shared across the owner's CMDQ_PROD write when the owner asked
// for a sync, and exclusively across one CMDQ_CONS read; the GERROR handler never takes it.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "arch/dma.h"
#include "arch/memory.h"
#include "arch/mmio.h"
#include "arch/result.h"
#include "arch/smmuv3/cmd.h"
#include "arch/smmuv3/defs.h"
#include "drivers/iommu/arm/arm-smmu-v3/features.h"

namespace strata::arm_smmu_v3 {

struct CmdqConfig {
  // Register page 0 (CMDQ_BASE/PROD/CONS, GERROR/GERRORN, IDR0/IDR1 are all there).
  Mmio page0;
  // Where the queue lives; must outlive the Cmdq.
  DmaAllocator* dma = nullptr;
  // Requested size, log2 of the entries; capped at IDR1.CMDQS (6.3.2). At least 1.
  unsigned log2_entries = 8;
  // CMD_SYNC completion by MSI to the CMD_SYNC's own slot. Used only when IDR0.MSI and
  // IDR0.COHACC are set and the DmaAllocator is coherent (the CPU polls a word the SMMU
  // writes); otherwise completion is polled in CMDQ_CONS.
  bool msi = true;
  // How long a CMD_SYNC, or a producer waiting for room, waits before -ETIMEDOUT (Linux's
  // ARM_SMMU_POLL_TIMEOUT_US is 1 s).
  uint64_t timeout_us = 1'000'000;
  // Log prefix ("smmu0"); copied, at most 31 characters kept.
  const char* name = "smmu";
};

// Counters for tests and benchmarks, as one snapshot.
struct CmdqCounters {
  uint64_t commands = 0;        // caller commands written into the queue
  uint64_t syncs = 0;           // CMD_SYNCs appended by the cmdq
  uint64_t reservations = 0;    // successful reservations (a sync-only call counts too)
  uint64_t prod_writes = 0;     // CMDQ_PROD writes: reservations / prod_writes is the batching
  uint64_t full = 0;            // times a producer found no room and waited
  uint64_t timeouts = 0;        // -ETIMEDOUT returned (no room, or a CMD_SYNC)
  uint64_t command_errors = 0;  // GERROR.CMDQ_ERR handled
  uint64_t failed_syncs = 0;    // CMD_SYNC waits that returned -EIO (a command of theirs failed)
};

class CmdqBatch;

class Cmdq {
  struct Token {};  // make_box needs a public constructor; only create() can name this

 public:
  // -EINVAL for a missing allocator or register page, or a size below 1 (after the cap),
  // -EOPNOTSUPP for an SMMU with preset queues (IDR1.QUEUES_PRESET: embedded implementations),
  // -ENOMEM when an allocation fails (nothing is leaked). Reads IDR0 and IDR1; writes no
  // register.
  static Result<Box<Cmdq>> create(const CmdqConfig& config);
  // The SMMU must have stopped reading the queue (CR0ACK.CMDQEN == 0) and no call may be in
  // progress: the memory is freed.
  ~Cmdq();
  Cmdq(const Cmdq&) = delete;
  Cmdq& operator=(const Cmdq&) = delete;

  // SMMU_CMDQ_BASE (6.3.26): the queue's physical address (aligned to its size, at least 32
  // bytes), LOG2SIZE and the read-allocate hint RA.
  uint64_t base_reg() const { return base_reg_; }
  // Empties the queue and programs CMDQ_BASE = base_reg(), CMDQ_PROD = 0 and CMDQ_CONS = 0, as
  // the reset sequence needs before CR0.CMDQEN is set (those registers are writable only while
  // the queue is disabled, 6.3.26-6.3.28). -EBUSY while CR0ACK.CMDQEN is 1. No call may be in
  // progress.
  Result<void> reset();

  unsigned log2_entries() const { return qs_; }
  uint32_t entries() const { return uint32_t{1} << qs_; }
  // Whether CMD_SYNC completion is signalled by MSI (else CMDQ_CONS is polled).
  bool msi() const { return msi_; }

  // Submits `n` commands in order (n may be 0 with `sync`). With `sync`, appends one CMD_SYNC
  // and returns when it has completed, i.e. when every command before it has (4.7.3): -EIO
  // when one of these commands was illegal (CERROR_ILL), could not be fetched (CERROR_ABT) or
  // the CMD_SYNC found an ATC invalidation timed out (CERROR_ATC_INV_SYNC); -ETIMEDOUT after
  // the timeout (commands already published stay in the queue). Without `sync`, returns once
  // the commands are in the queue and published.
  // More commands than the queue holds go in several reservations (the CMD_SYNC, one, after
  // the last). -EINVAL for n > 0 without commands.
  Result<void> issue_cmdlist(const smmuv3::Command* cmds, size_t n, bool sync);
  Result<void> issue_cmd(const smmuv3::Command& cmd) { return issue_cmdlist(&cmd, 1, false); }
  Result<void> issue_cmd_with_sync(const smmuv3::Command& cmd) {
    return issue_cmdlist(&cmd, 1, true);
  }
  Result<void> issue_sync() { return issue_cmdlist(nullptr, 0, true); }
  // Any command layout of arch/smmuv3/cmd.h (CmdCfgiSte, CmdTlbi, ...).
  template <typename C>
  requires(C::kWords == 2) Result<void> issue_cmd(const C& cmd) {
    return issue_cmd(smmuv3::descriptor_cast<smmuv3::Command>(cmd));
  }
  template <typename C>
  requires(C::kWords == 2) Result<void> issue_cmd_with_sync(const C& cmd) {
    return issue_cmd_with_sync(smmuv3::descriptor_cast<smmuv3::Command>(cmd));
  }

  // For the driver's GERROR handler (6.3.19, 7.1, 7.5): if GERROR.CMDQ_ERR is active (GERROR
  // and GERRORN differ in it), handles the command error (the file comment says how) and
  // acknowledges it by toggling GERRORN.CMDQ_ERR alone; GERRORN's other bits are written back
  // as read, so the caller acknowledges its own errors afterwards. Returns whether CMDQ_ERR was
  // active. Never waits for a producer.
  bool handle_cmdq_gerror();
  // The error handling alone, without the acknowledgement, for a driver that reads and writes
  // GERROR/GERRORN itself: call it while CMDQ_ERR is active, then acknowledge only if it
  // returned true (false: the queue must stay stopped, see CERROR_ABT above).
  bool handle_cmdq_error();

  // How long a wait for the SMMU goes without progress before it calls the GERROR poll, and
  // then the least time between its calls, per waiter. A CMD_SYNC normally completes in a few
  // microseconds; a command error is rare, and waits this long for its acknowledgement.
  static constexpr uint64_t kGerrorPollNs = 10'000;
  // For a driver without a GERROR interrupt (the file comment says how it is used): `poll(ctx)`
  // runs the driver's GERROR handler (7.5), which calls handle_cmdq_gerror() or
  // handle_cmdq_error() for CMDQ_ERR. The cmdq calls it from one waiter at a time, with
  // interrupts off. It must not submit commands or wait for a producer. nullptr (the default):
  // no polling, a GERROR interrupt handles errors. No call may be in progress.
  void set_gerror_poll(void (*poll)(void* ctx), void* ctx) {
    gerror_poll_ = poll;
    gerror_poll_ctx_ = ctx;
  }

  CmdqCounters counters() const;

  // Implementation, public for make_box only.
  Cmdq(Token, const CmdqConfig& config, unsigned qs, bool msi);

 private:
  friend class CmdqBatch;

  // The ranges of positions a submission (a call, or a CmdqBatch) reserved, and the error ring
  // count when it started: what its CMD_SYNC checks errors against.
  class ErrorWatch {
   public:
    static constexpr unsigned kMaxRanges = 8;
    void arm(const Cmdq& cmdq);
    // Records [start, end). Past kMaxRanges the last range is widened to cover the new one,
    // which may take in other producers' commands in between (only ever a false -EIO, for a
    // submission of more than kMaxRanges reservations that overlaps another's bad command).
    void add(uint32_t start, uint32_t end);
    bool contains(uint32_t pos) const;
    bool armed() const { return armed_; }
    uint64_t snapshot() const { return snapshot_; }
    void clear() { *this = ErrorWatch(); }

   private:
    bool armed_ = false;
    uint64_t snapshot_ = 0;
    unsigned nranges_ = 0;
    uint32_t start_[kMaxRanges] = {};
    uint32_t end_[kMaxRanges] = {};
  };

  static constexpr unsigned kErrorRing = 32;  // recorded command-error positions

  Result<void> issue(const smmuv3::Command* cmds, size_t n, bool sync, ErrorWatch& watch);
  // One reservation: n + sync <= entries().
  Result<void> issue_one(const smmuv3::Command* cmds, size_t n, bool sync, ErrorWatch& watch);
  // Waits until the reservation word `llq` shows room for `need` slots; updates `llq`.
  Result<void> wait_for_space(uint64_t& llq, uint32_t need);
  // Waits for the CMD_SYNC at `pos`; returns a position CONS is known to have reached.
  Result<uint32_t> wait_for_sync(uint32_t pos);
  // In a wait for the SMMU, at time `now`: calls the GERROR poll, if there is one, once `now`
  // has reached `next_poll`, and moves `next_poll` on.
  void poll_gerror(uint64_t now, uint64_t& next_poll);
  // -EIO if an error recorded since `watch` was armed hit one of its positions.
  Result<void> check_errors(const ErrorWatch& watch) const;

  void write_slot(uint32_t pos, const smmuv3::Command& cmd);
  smmuv3::Command read_slot(uint32_t pos) const;
  smmuv3::Command make_sync(uint32_t pos) const;
  // Cache maintenance of [start, end) for a non-coherent SMMU.
  void sync_slots_for_device(uint32_t start, uint32_t end) const;
  void set_valid(uint32_t start, uint32_t end);
  void poll_valid(uint32_t start, uint32_t end) const;

  // A CMDQ_CONS.RD value as an extended position, against a cached CONS read before it.
  uint32_t extend_cons(uint32_t hw_cons, uint32_t cached) const;
  // SMMU_CMDQ_CONS as an extended position (the cached CONS must not move meanwhile: held
  // shared or exclusively).
  uint32_t read_cons() const;
  // Moves the cached CONS on to `pos` unless it is already there or beyond (or `pos` lies
  // beyond PROD: a register value that cannot be true is not believed).
  void advance_cons(uint32_t pos);
  void record_error(uint32_t pos);

  // The reader/writer count (Linux's arm_smmu_cmdq_{shared,exclusive}_*).
  void shared_lock();
  void shared_unlock();
  bool shared_tryunlock();  // false: the caller is the last holder (and still holds it)
  bool exclusive_trylock(unsigned long& flags);
  void exclusive_unlock(unsigned long flags);

  uint32_t hw_ptr(uint32_t pos) const { return pos & ptr_mask_; }
  uint32_t index(uint32_t pos) const { return pos & (entries() - 1); }
  uint8_t* slot_ptr(uint32_t pos) const {
    return queue_.as<uint8_t>() + size_t{index(pos)} * kEntryBytes;
  }

  static constexpr size_t kEntryBytes = 16;

  // Fixed at creation.
  const Mmio io_;
  DmaAllocator* const dma_;
  const unsigned qs_;
  const uint32_t ptr_mask_;  // index and wrap flag: the PROD/CONS register field
  const bool msi_;
  const uint64_t timeout_us_;
  char name_[32] = {};
  DmaBuffer queue_;
  std::atomic<uint64_t>* valid_map_ = nullptr;  // kzalloc'd, one bit per slot
  size_t valid_words_ = 0;
  uint64_t base_reg_ = 0;
  // Set while no call is in progress (set_gerror_poll); read by waiters.
  void (*gerror_poll_)(void* ctx) = nullptr;
  void* gerror_poll_ctx_ = nullptr;
  std::atomic<bool> gerror_polling_{false};  // held by the waiter running gerror_poll_

  // The reservation word: bits [30:0] PROD, bit 31 the owner flag, bits [62:32] cached CONS.
  alignas(64) std::atomic<uint64_t> llq_{0};
  // The PROD the last owner wrote to the register: the next owner's start.
  alignas(64) std::atomic<uint32_t> owner_prod_{0};
  // The reader/writer count: > 0 shared holders, negative while held exclusively.
  alignas(64) std::atomic<int> lock_{0};

  // Command errors: positions, and how many were ever recorded. Written only by the GERROR
  // handler, one error at a time (the queue stays stopped until the acknowledgement).
  alignas(64) std::atomic<uint64_t> errors_recorded_{0};
  std::atomic<uint32_t> error_pos_[kErrorRing] = {};
  std::atomic<uint32_t> last_abort_pos_{0};
  std::atomic<bool> last_abort_valid_{false};
  // The same slot aborted twice: the error is left unacknowledged until reset(), and is not
  // handled again meanwhile (a GERROR poll would otherwise log it every kGerrorPollNs).
  std::atomic<bool> stopped_{false};

  struct AtomicCounters {
    std::atomic<uint64_t> commands{0}, syncs{0}, reservations{0}, prod_writes{0}, full{0},
        timeouts{0}, command_errors{0}, failed_syncs{0};
  };
  alignas(64) AtomicCounters counters_;
};

// Linux's arm_smmu_cmdq_batch: commands gathered on the stack and submitted together, ending
// in one CMD_SYNC. add() submits the gathered commands without a sync when the batch is full;
// submit() submits the rest with the CMD_SYNC and waits for it. A CMD_SYNC error (-EIO) covers
// every command added since the last submit(), including those add() already submitted.
// One thread uses a batch; it is not reusable across Cmdqs.
class CmdqBatch {
 public:
  static constexpr size_t kMaxCommands = kCmdqBatchEntries;  // features.h: the queue fits two

  explicit CmdqBatch(Cmdq& cmdq) : cmdq_(cmdq) {}
  CmdqBatch(const CmdqBatch&) = delete;
  CmdqBatch& operator=(const CmdqBatch&) = delete;

  // An error of an early submission is kept and reported by submit().
  void add(const smmuv3::Command& cmd);
  template <typename C>
  requires(C::kWords == 2) void add(const C& cmd) {
    add(smmuv3::descriptor_cast<smmuv3::Command>(cmd));
  }
  // Submits what is left with one CMD_SYNC and waits for it. A batch to which nothing was
  // added since the last submit() issues nothing, not even a CMD_SYNC (Cmdq::issue_sync() is
  // the explicit one). Returns the first error since the last submit(); the batch is then
  // empty again.
  Result<void> submit();
  // Commands gathered and not yet submitted.
  size_t pending() const { return num_; }

 private:
  Cmdq& cmdq_;
  Cmdq::ErrorWatch watch_;
  size_t num_ = 0;
  bool submitted_ = false;  // add() submitted commands since the last submit()
  int error_ = 0;           // the first error since the last submit(), 0 for none
  smmuv3::Command cmds_[kMaxCommands];
};

}  // namespace strata::arm_smmu_v3
