// SPDX-License-Identifier: MIT
#include "drivers/iommu/arm/arm-smmu-v3/cmdq.h"

#include <limits.h>
#include <string.h>

#include <new>

#include "arch/bug.h"
#include "arch/clock.h"
#include "arch/cpu.h"
#include "arch/log.h"
#include "arch/port.h"
#include "arch/smmuv3/regs.h"

namespace strata::arm_smmu_v3 {

namespace hw = ::strata::smmuv3;

namespace {

// Extended positions: 31-bit free-running counts of slots. 2^31 is a multiple of every queue's
// 2 * 2^log2size, so a register value is the position's low bits and the wrap flag is the bit
// above the index, across the 2^31 wrap too.
constexpr uint32_t kPosMask = 0x7fff'ffff;
constexpr uint32_t kOwnedFlag = 0x8000'0000;  // in the PROD half of the reservation word
constexpr uint32_t kPosHalf = 0x4000'0000;

constexpr uint32_t pos_add(uint32_t pos, uint32_t n) { return (pos + n) & kPosMask; }
// How far `a` is past `b` (mod 2^31).
constexpr uint32_t pos_sub(uint32_t a, uint32_t b) { return (a - b) & kPosMask; }
// Whether `a` is strictly later than `b`. Positions compared are never 2^30 apart.
constexpr bool pos_after(uint32_t a, uint32_t b) {
  const uint32_t d = pos_sub(a, b);
  return d != 0 && d < kPosHalf;
}

constexpr uint32_t llq_prod(uint64_t v) { return static_cast<uint32_t>(v) & kPosMask; }
constexpr bool llq_owned(uint64_t v) { return (v & kOwnedFlag) != 0; }
constexpr uint32_t llq_cons(uint64_t v) { return static_cast<uint32_t>(v >> 32) & kPosMask; }
constexpr uint64_t llq_make(uint32_t prod, bool owned, uint32_t cons) {
  return (uint64_t{cons} << 32) | prod | (owned ? kOwnedFlag : 0);
}

// The wrap flag of `pos` in a queue of 2^qs entries (6.3.27).
constexpr uint32_t lap_parity(uint32_t pos, unsigned qs) { return (pos >> qs) & 1; }

// The bits [lo, lo + n) of a 64-bit word, n in 1..64.
constexpr uint64_t bit_range(unsigned lo, unsigned n) {
  return (n == 64 ? ~uint64_t{0} : ((uint64_t{1} << n) - 1)) << lo;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Creation and reset.

Cmdq::Cmdq(Token, const CmdqConfig& config, unsigned qs, bool msi)
    : io_(config.page0),
      dma_(config.dma),
      qs_(qs),
      ptr_mask_(hw::queue_ptr_mask(qs)),
      msi_(msi),
      timeout_us_(config.timeout_us) {
  const char* name = config.name ? config.name : "smmu";
  for (size_t i = 0; i + 1 < sizeof(name_) && name[i]; i++) name_[i] = name[i];
}

Cmdq::~Cmdq() { kfree(valid_map_); }

Result<Box<Cmdq>> Cmdq::create(const CmdqConfig& config) {
  if (!config.dma || config.page0.size() < hw::CMDQ_CONS::kOffset + 4) return Error(-EINVAL);
  const hw::IDR0 idr0 = hw::IDR0::read_from(config.page0);
  const hw::IDR1 idr1 = hw::IDR1::read_from(config.page0);
  const char* name = config.name ? config.name : "smmu";
  if (idr1.get<hw::IDR1::QUEUES_PRESET>()) {
    // The queue bases are fixed by the implementation (6.3.2): not supported, as in Linux.
    dev_err(name, "command queue: preset queue bases (IDR1.QUEUES_PRESET) not supported");
    return Error(-EOPNOTSUPP);
  }
  unsigned qs = config.log2_entries;
  const unsigned max_qs = static_cast<unsigned>(idr1.get<hw::IDR1::CMDQS>());
  if (qs > max_qs) qs = max_qs;
  if (qs > hw::kMaxQueueLog2Size) qs = hw::kMaxQueueLog2Size;
  // A CMD_SYNC and at least one command must fit in one reservation.
  if (qs < 1) return Error(-EINVAL);
  // The SMMU's MSI lands in memory the CPU polls: it must be coherent with the CPU's view
  // (Linux's ARM_SMMU_OPT_MSIPOLL needs IDR0.MSI and IDR0.COHACC).
  const bool msi = config.msi && idr0.get<hw::IDR0::MSI>() && idr0.get<hw::IDR0::COHACC>() &&
                   config.dma->coherent();

  Box<Cmdq> q = STRATA_TRY(make_box<Cmdq>(Token{}, config, qs, msi));
  const uint32_t entries = uint32_t{1} << qs;
  q->valid_words_ = (entries + 63) / 64;
  void* map =
      kzalloc(q->valid_words_ * sizeof(std::atomic<uint64_t>), alignof(std::atomic<uint64_t>));
  if (!map) return Error(-ENOMEM);
  q->valid_map_ = static_cast<std::atomic<uint64_t>*>(map);
  for (size_t i = 0; i < q->valid_words_; i++) new (&q->valid_map_[i]) std::atomic<uint64_t>(0);

  // 6.3.26: the base is aligned to the queue's size, and to at least 32 bytes.
  const size_t bytes = size_t{entries} * kEntryBytes;
  q->queue_ = STRATA_TRY(DmaBuffer::alloc(*config.dma, bytes, bytes < 32 ? 32 : bytes));
  q->base_reg_ = hw::CMDQ_BASE::from_value(0)
                     .set<hw::CMDQ_BASE::ADDR>(q->queue_.phys())
                     .set<hw::CMDQ_BASE::LOG2SIZE>(qs)
                     .set<hw::CMDQ_BASE::RA>(1)
                     .value();
  return q;
}

Result<void> Cmdq::reset() {
  if (hw::CR0ACK::read_from(io_).get<hw::CR0ACK::CMDQEN>()) return Error(-EBUSY);
  llq_.store(0, std::memory_order_relaxed);
  owner_prod_.store(0, std::memory_order_relaxed);
  lock_.store(0, std::memory_order_relaxed);
  last_abort_valid_.store(false, std::memory_order_relaxed);
  stopped_.store(false, std::memory_order_relaxed);
  for (size_t i = 0; i < valid_words_; i++) valid_map_[i].store(0, std::memory_order_relaxed);
  // The SMMU is not reading the queue (CMDQEN == 0): plain stores are enough.
  memset(queue_.cpu(), 0, queue_.size());
  queue_.sync_for_device(0, queue_.size());
  // The writes below are ordered after the stores above (writeq/writel, arch/mmio.h).
  hw::CMDQ_BASE::from_value(base_reg_).write_to(io_);
  hw::CMDQ_PROD::from_value(0).write_to(io_);
  hw::CMDQ_CONS::from_value(0).write_to(io_);
  return ok();
}

// ---------------------------------------------------------------------------------------------
// Submission.

Result<void> Cmdq::issue_cmdlist(const hw::Command* cmds, size_t n, bool sync) {
  if (n > 0 && !cmds) return Error(-EINVAL);
  ErrorWatch watch;
  return issue(cmds, n, sync, watch);
}

Result<void> Cmdq::issue(const hw::Command* cmds, size_t n, bool sync, ErrorWatch& watch) {
  // One reservation holds at most entries() - 1 commands, so that its CMD_SYNC fits too.
  const size_t max_chunk = entries() - 1;
  while (n > max_chunk) {
    STRATA_TRY(issue_one(cmds, max_chunk, false, watch));
    cmds += max_chunk;
    n -= max_chunk;
  }
  if (n == 0 && !sync) return ok();
  return issue_one(cmds, n, sync, watch);
}

Result<void> Cmdq::issue_one(const hw::Command* cmds, size_t n, bool sync, ErrorWatch& watch) {
  const uint32_t total = static_cast<uint32_t>(n) + (sync ? 1 : 0);
  STRATA_BUG_ON(total == 0 || total > entries());
  // Before any of our commands can be consumed, so every error they cause is after it.
  if (!watch.armed()) watch.arm(*this);

  // 1. Reserve [start, start + total). Acquire: the slots were freed by whoever moved the
  // cached CONS (a release), after the SMMU had read them.
  uint64_t old = llq_.load(std::memory_order_acquire);
  for (;;) {
    const uint32_t used = pos_sub(llq_prod(old), llq_cons(old));
    if (entries() - used < total) {
      STRATA_TRY(wait_for_space(old, total));
      continue;
    }
    const uint64_t reserved = llq_make(pos_add(llq_prod(old), total), true, llq_cons(old));
    if (llq_.compare_exchange_weak(old, reserved, std::memory_order_acquire,
                                   std::memory_order_acquire))
      break;
  }
  const bool owner = !llq_owned(old);
  const uint32_t start = llq_prod(old);
  const uint32_t end = pos_add(start, total);
  watch.add(start, end);
  counters_.reservations.fetch_add(1, std::memory_order_relaxed);
  counters_.commands.fetch_add(n, std::memory_order_relaxed);

  // 2. Write the commands, and the CMD_SYNC in the last slot.
  for (uint32_t i = 0; i < n; i++) write_slot(pos_add(start, i), cmds[i]);
  const uint32_t sync_pos = pos_add(start, static_cast<uint32_t>(n));
  if (sync) {
    write_slot(sync_pos, make_sync(sync_pos));
    counters_.syncs.fetch_add(1, std::memory_order_relaxed);
  }
  sync_slots_for_device(start, end);
  // A waiter holds the count shared before its CMD_SYNC can be published, so the cached CONS
  // cannot pass the CMD_SYNC's slot (and the slot be handed out again) while it waits.
  if (sync) shared_lock();

  // 3. Mark the slots valid; the release orders the command stores before the bits.
  dma_wmb();
  set_valid(start, end);

  // 4. The owner publishes everything gathered since its reservation.
  if (owner) {
    // a. PROD must never move backwards: wait for the previous owner's write.
    while (owner_prod_.load(std::memory_order_acquire) != start) cpu_relax();
    // b. Close the gathering window: the next reservation becomes the next owner.
    const uint32_t prod =
        llq_prod(llq_.fetch_and(~uint64_t{kOwnedFlag}, std::memory_order_relaxed));
    // c. Wait for the producers gathered to have written their slots (acquire: their command
    // stores happen before our register write).
    poll_valid(start, prod);
    // d. One CMDQ_PROD write covers them all; writel orders the queue stores before it.
    io_.writel(hw_ptr(prod), hw::CMDQ_PROD::kOffset);
    counters_.prod_writes.fetch_add(1, std::memory_order_relaxed);
    // e. Hand over to the next owner.
    owner_prod_.store(prod, std::memory_order_release);
  }
  if (!sync) return ok();

  // 5. Wait for the CMD_SYNC.
  Result<uint32_t> done = wait_for_sync(sync_pos);
  if (!shared_tryunlock()) {
    // The last waiter: no CMD_SYNC is waited for, so the cached CONS may move on to what ours
    // proved consumed.
    if (done.ok()) advance_cons(done.value());
    shared_unlock();
  }
  if (!done.ok()) return done.error();
  Result<void> checked = check_errors(watch);
  if (!checked.ok()) counters_.failed_syncs.fetch_add(1, std::memory_order_relaxed);
  return checked;
}

Result<void> Cmdq::wait_for_space(uint64_t& llq, uint32_t need) {
  counters_.full.fetch_add(1, std::memory_order_relaxed);
  const uint64_t start = monotonic_ns();
  const uint64_t deadline = start + timeout_us_ * 1000;
  uint64_t next_poll = start + kGerrorPollNs;
  for (;;) {
    const uint64_t now = monotonic_ns();
    const bool expired = now > deadline;
    // One producer at a time reads CMDQ_CONS; the others watch the cached copy.
    unsigned long flags;
    if (exclusive_trylock(flags)) {
      advance_cons(read_cons());
      exclusive_unlock(flags);
    }
    llq = llq_.load(std::memory_order_acquire);
    if (entries() - pos_sub(llq_prod(llq), llq_cons(llq)) >= need) return ok();
    if (expired) {
      counters_.timeouts.fetch_add(1, std::memory_order_relaxed);
      dev_err(name_, "command queue full for {} us [prod {:#x}, hwprod {:#x}, hwcons {:#x}]",
              timeout_us_, hw_ptr(llq_prod(llq)), io_.readl_relaxed(hw::CMDQ_PROD::kOffset),
              io_.readl_relaxed(hw::CMDQ_CONS::kOffset));
      return Error(-ETIMEDOUT);
    }
    // A queue stopped by a command error (7.1) drains only once the error is handled.
    poll_gerror(now, next_poll);
    cpu_relax();
  }
}

Result<uint32_t> Cmdq::wait_for_sync(uint32_t pos) {
  const uint64_t start = monotonic_ns();
  const uint64_t deadline = start + timeout_us_ * 1000;
  uint64_t next_poll = start + kGerrorPollNs;
  const uint8_t* slot = slot_ptr(pos);
  for (;;) {
    const uint64_t now = monotonic_ns();
    const bool expired = now > deadline;
    if (msi_) {
      // The SMMU writes MSIData (0) over the first 32 bits of the slot (4.7.3).
      if ((dma_read64(slot) & 0xffff'ffff) == 0) {
        dma_rmb();
        return pos_add(pos, 1);
      }
    } else {
      // The cached CONS is frozen while we hold the count shared (cmdq.h).
      const uint32_t cons = read_cons();
      if (pos_after(cons, pos)) return cons;
    }
    if (expired) break;
    // A command error before our CMD_SYNC (7.1) stops the queue until it is handled.
    poll_gerror(now, next_poll);
    cpu_relax();
  }
  counters_.timeouts.fetch_add(1, std::memory_order_relaxed);
  dev_err(name_, "CMD_SYNC timeout at {:#x} [hwprod {:#x}, hwcons {:#x}]", hw_ptr(pos),
          io_.readl_relaxed(hw::CMDQ_PROD::kOffset), io_.readl_relaxed(hw::CMDQ_CONS::kOffset));
  return Error(-ETIMEDOUT);
}

void Cmdq::poll_gerror(uint64_t now, uint64_t& next_poll) {
  if (!gerror_poll_ || now < next_poll) return;
  // One waiter at a time runs the handler, as an interrupt handler would be run; the others go
  // back to their own wait (what stopped them is being handled). Interrupts are off while it
  // runs, so that an interrupt handler submitting a CMD_SYNC on this CPU cannot spin until its
  // timeout on a handler it interrupted. Acquire and release: what one run wrote (the error
  // ring, the abort record, GERRORN) is seen by the next, as if one CPU ran them all.
  if (!gerror_polling_.load(std::memory_order_relaxed)) {
    const unsigned long flags = strata_os_irq_save();
    if (!gerror_polling_.exchange(true, std::memory_order_acquire)) {
      gerror_poll_(gerror_poll_ctx_);
      gerror_polling_.store(false, std::memory_order_release);
    }
    strata_os_irq_restore(flags);
  }
  // From the end of the call: a slow handler (or one that waited for the try-lock's holder)
  // does not make the next call come at once.
  next_poll = monotonic_ns() + kGerrorPollNs;
}

Result<void> Cmdq::check_errors(const ErrorWatch& watch) const {
  // The GERROR handler records an error before acknowledging it, and our CMD_SYNC completes
  // only after every error before it was acknowledged: every error of ours is counted here.
  const uint64_t now = errors_recorded_.load(std::memory_order_acquire);
  const uint64_t since = now - watch.snapshot();
  if (since == 0) return ok();
  if (since > kErrorRing) return Error(-EIO);  // overwritten: cannot tell, so not success
  for (uint64_t k = watch.snapshot(); k < now; k++) {
    if (watch.contains(error_pos_[k % kErrorRing].load(std::memory_order_relaxed)))
      return Error(-EIO);
  }
  // The entries read must not have been overwritten meanwhile.
  if (errors_recorded_.load(std::memory_order_acquire) - watch.snapshot() > kErrorRing)
    return Error(-EIO);
  return ok();
}

// ---------------------------------------------------------------------------------------------
// Slots and the valid map.

void Cmdq::write_slot(uint32_t pos, const hw::Command& cmd) {
  uint8_t* p = slot_ptr(pos);
  dma_write64(p, cmd.word(0));
  dma_write64(p + 8, cmd.word(1));
}

hw::Command Cmdq::read_slot(uint32_t pos) const {
  const uint8_t* p = slot_ptr(pos);
  queue_.sync_for_cpu(size_t{index(pos)} * kEntryBytes, kEntryBytes);
  hw::Command cmd;
  cmd.set_word(0, dma_read64(p)).set_word(1, dma_read64(p + 8));
  return cmd;
}

hw::Command Cmdq::make_sync(uint32_t pos) const {
  hw::CmdSync sync = hw::CmdSync::make();
  if (msi_) {
    // 4.7.3: SIG_IRQ with an MSIAddress sends MSIData there; Normal write-back inner
    // shareable, as the CPU polls the slot through its cache.
    sync.set<hw::CmdSync::CS>(hw::kCsIrq)
        .set<hw::CmdSync::MSH>(hw::kShIsh)
        .set<hw::CmdSync::MSIAttr>(hw::kMemAttrNormalWb)
        .set<hw::CmdSync::MSIData>(0)
        .set<hw::CmdSync::MSIAddress>(queue_.phys() + size_t{index(pos)} * kEntryBytes);
  } else {
    sync.set<hw::CmdSync::CS>(hw::kCsNone);
  }
  return hw::descriptor_cast<hw::Command>(sync);
}

void Cmdq::sync_slots_for_device(uint32_t start, uint32_t end) const {
  if (dma_->coherent()) return;
  // At most two pieces: up to the end of the queue, then from its start.
  uint32_t pos = start;
  while (pos != end) {
    const uint32_t idx = index(pos);
    uint32_t n = pos_sub(end, pos);
    if (n > entries() - idx) n = entries() - idx;
    queue_.sync_for_device(size_t{idx} * kEntryBytes, size_t{n} * kEntryBytes);
    pos = pos_add(pos, n);
  }
}

// The slots of [start, end), a word of the map at a time, never across the end of the queue
// (the lap, and so the meaning of a bit, changes there).
void Cmdq::set_valid(uint32_t start, uint32_t end) {
  uint32_t pos = start;
  while (pos != end) {
    const uint32_t idx = index(pos);
    const unsigned bit = idx % 64;
    uint32_t n = pos_sub(end, pos);
    if (n > 64 - bit) n = 64 - bit;
    if (n > entries() - idx) n = entries() - idx;
    // Each slot's bit flips once per lap.
    valid_map_[idx / 64].fetch_xor(bit_range(bit, n), std::memory_order_release);
    pos = pos_add(pos, n);
  }
}

void Cmdq::poll_valid(uint32_t start, uint32_t end) const {
  uint32_t pos = start;
  while (pos != end) {
    const uint32_t idx = index(pos);
    const unsigned bit = idx % 64;
    uint32_t n = pos_sub(end, pos);
    if (n > 64 - bit) n = 64 - bit;
    if (n > entries() - idx) n = entries() - idx;
    const uint64_t mask = bit_range(bit, n);
    // Valid: the bit differs from the lap's wrap flag (all ones on even laps, zeros on odd).
    const uint64_t want = lap_parity(pos, qs_) ? 0 : mask;
    while ((valid_map_[idx / 64].load(std::memory_order_acquire) & mask) != want) cpu_relax();
    pos = pos_add(pos, n);
  }
}

// ---------------------------------------------------------------------------------------------
// The cached CONS.

uint32_t Cmdq::extend_cons(uint32_t hw_cons, uint32_t cached) const {
  // The SMMU's CONS is at or past a cached CONS read before it, and at most a queue's length
  // past it, since no PROD was reserved further (a reservation checks for room against the
  // cached CONS in the same word). So the distance modulo 2 * entries() is the true distance.
  return pos_add(cached, (hw_cons - cached) & ptr_mask_);
}

uint32_t Cmdq::read_cons() const {
  // The cached value first: the acquire keeps the register read after it.
  const uint32_t cached = llq_cons(llq_.load(std::memory_order_acquire));
  return extend_cons(io_.readl(hw::CMDQ_CONS::kOffset), cached);
}

void Cmdq::advance_cons(uint32_t pos) {
  uint64_t old = llq_.load(std::memory_order_relaxed);
  for (;;) {
    const uint32_t cons = llq_cons(old);
    if (!pos_after(pos, cons)) return;
    // CONS past PROD: not a value the SMMU can have; keep the cached one.
    if (pos_sub(pos, cons) > pos_sub(llq_prod(old), cons)) return;
    const uint64_t moved = (old & 0xffff'ffffu) | (uint64_t{pos} << 32);
    // Release: the slots now free were read by the SMMU before a producer reuses them.
    if (llq_.compare_exchange_weak(old, moved, std::memory_order_release,
                                   std::memory_order_relaxed))
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// The reader/writer count. Shared: CMD_SYNC waiters. Exclusive: a producer refreshing the
// cached CONS from the register. An increment made while the count is held exclusively
// (negative) is simply wiped by the exclusive unlock, after which the incrementer retries.

void Cmdq::shared_lock() {
  if (lock_.fetch_add(1, std::memory_order_acquire) >= 0) return;
  int v = lock_.load(std::memory_order_relaxed);
  for (;;) {
    while (v < 0) {
      cpu_relax();
      v = lock_.load(std::memory_order_relaxed);
    }
    if (lock_.compare_exchange_weak(v, v + 1, std::memory_order_acquire, std::memory_order_relaxed))
      return;
  }
}

void Cmdq::shared_unlock() { lock_.fetch_sub(1, std::memory_order_release); }

bool Cmdq::shared_tryunlock() {
  // A race between two holders that both see 2 only leaves the cached CONS where it is.
  if (lock_.load(std::memory_order_relaxed) == 1) return false;
  shared_unlock();
  return true;
}

bool Cmdq::exclusive_trylock(unsigned long& flags) {
  // Interrupts off: a handler on this CPU that submits a CMD_SYNC would spin on the count.
  flags = strata_os_irq_save();
  int unlocked = 0;
  if (lock_.compare_exchange_strong(unlocked, INT_MIN, std::memory_order_acquire,
                                    std::memory_order_relaxed))
    return true;
  strata_os_irq_restore(flags);
  return false;
}

void Cmdq::exclusive_unlock(unsigned long flags) {
  lock_.store(0, std::memory_order_release);
  strata_os_irq_restore(flags);
}

// ---------------------------------------------------------------------------------------------
// Command errors (7.1).

void Cmdq::record_error(uint32_t pos) {
  const uint64_t n = errors_recorded_.load(std::memory_order_relaxed);
  error_pos_[n % kErrorRing].store(pos, std::memory_order_relaxed);
  errors_recorded_.store(n + 1, std::memory_order_release);
}

bool Cmdq::handle_cmdq_error() {
  using hw::CommandError;
  // Left unacknowledged on purpose (CERROR_ABT twice): nothing has changed until reset().
  if (stopped_.load(std::memory_order_relaxed)) return false;
  const hw::CMDQ_CONS cons_reg = hw::CMDQ_CONS::read_from(io_);
  const uint32_t hw_cons = static_cast<uint32_t>(cons_reg.get<hw::CMDQ_CONS::RD>()) & ptr_mask_;
  const uint8_t err = static_cast<uint8_t>(cons_reg.get<hw::CMDQ_CONS::ERR>());
  // The queue is stopped at the command: the SMMU's CONS stays put, and any cached CONS is
  // at or behind it.
  const uint32_t pos = extend_cons(hw_cons, llq_cons(llq_.load(std::memory_order_acquire)));
  const hw::Command cmd = read_slot(pos);
  counters_.command_errors.fetch_add(1, std::memory_order_relaxed);

  switch (static_cast<CommandError>(err)) {
    case CommandError::CERROR_NONE:
      // GERROR.CMDQ_ERR without a reason: nothing to fix; acknowledge.
      dev_err(name_, "command queue error without a reason (CMDQ_CONS {:#x})", cons_reg.value());
      return true;
    case CommandError::CERROR_ATC_INV_SYNC:
      // 7.1: the CMD_SYNC is not consumed; it runs again after the acknowledgement.
      dev_err(name_, "CMD_SYNC at {:#x}: an ATC invalidation timed out; retrying the CMD_SYNC",
              hw_cons);
      last_abort_valid_.store(false, std::memory_order_relaxed);
      record_error(pos);
      return true;
    case CommandError::CERROR_ABT:
      if (last_abort_valid_.load(std::memory_order_relaxed) &&
          last_abort_pos_.load(std::memory_order_relaxed) == pos) {
        // The CMD_SYNC put there cannot be fetched either: the queue memory is unreachable.
        dev_err(name_, "command fetch at {:#x} aborted again: command queue stopped, reset needed",
                hw_cons);
        stopped_.store(true, std::memory_order_relaxed);
        return false;
      }
      last_abort_pos_.store(pos, std::memory_order_relaxed);
      last_abort_valid_.store(true, std::memory_order_relaxed);
      dev_err(name_, "command fetch at {:#x} aborted; replacing it with CMD_SYNC", hw_cons);
      break;
    case CommandError::CERROR_ILL:
    default:
      last_abort_valid_.store(false, std::memory_order_relaxed);
      dev_err(name_, "{} at {:#x}: {} [{:#018x}, {:#018x}]; replacing it with CMD_SYNC",
              static_cast<CommandError>(err), hw_cons, static_cast<hw::Opcode>(cmd.opcode()),
              cmd.word(0), cmd.word(1));
      break;
  }
  // Recorded before the acknowledgement restarts the queue (see check_errors).
  record_error(pos);
  // Linux's arm_smmu_cmdq_skip_err: a CMD_SYNC with no signal takes the command's place. The
  // SMMU is stopped, and nobody else writes a published slot.
  write_slot(
      pos, hw::descriptor_cast<hw::Command>(hw::CmdSync::make().set<hw::CmdSync::CS>(hw::kCsNone)));
  sync_slots_for_device(pos, pos_add(pos, 1));
  return true;
}

bool Cmdq::handle_cmdq_gerror() {
  const hw::GERROR gerror = hw::GERROR::read_from(io_);
  const hw::GERRORN gerrorn = hw::GERRORN::read_from(io_);
  if (!(hw::active_errors(gerror, gerrorn) & hw::GERROR::CMDQ_ERR::kMask)) return false;
  // writel orders the fix-up's queue store before the acknowledgement (7.1: the SMMU
  // re-fetches from CONS after it).
  if (handle_cmdq_error())
    hw::GERRORN::from_value(gerrorn.value() ^ hw::GERRORN::CMDQ_ERR::kMask).write_to(io_);
  return true;
}

CmdqCounters Cmdq::counters() const {
  CmdqCounters c;
  c.commands = counters_.commands.load(std::memory_order_relaxed);
  c.syncs = counters_.syncs.load(std::memory_order_relaxed);
  c.reservations = counters_.reservations.load(std::memory_order_relaxed);
  c.prod_writes = counters_.prod_writes.load(std::memory_order_relaxed);
  c.full = counters_.full.load(std::memory_order_relaxed);
  c.timeouts = counters_.timeouts.load(std::memory_order_relaxed);
  c.command_errors = counters_.command_errors.load(std::memory_order_relaxed);
  c.failed_syncs = counters_.failed_syncs.load(std::memory_order_relaxed);
  return c;
}

// ---------------------------------------------------------------------------------------------
// ErrorWatch and CmdqBatch.

void Cmdq::ErrorWatch::arm(const Cmdq& cmdq) {
  armed_ = true;
  snapshot_ = cmdq.errors_recorded_.load(std::memory_order_acquire);
}

void Cmdq::ErrorWatch::add(uint32_t start, uint32_t end) {
  if (nranges_ == kMaxRanges) {
    end_[kMaxRanges - 1] = end;
    return;
  }
  start_[nranges_] = start;
  end_[nranges_] = end;
  nranges_++;
}

bool Cmdq::ErrorWatch::contains(uint32_t pos) const {
  for (unsigned i = 0; i < nranges_; i++) {
    if (pos_sub(pos, start_[i]) < pos_sub(end_[i], start_[i])) return true;
  }
  return false;
}

void CmdqBatch::add(const hw::Command& cmd) {
  if (num_ == kMaxCommands) {
    Result<void> r = cmdq_.issue(cmds_, num_, false, watch_);
    if (!r.ok() && error_ == 0) error_ = r.error().code();
    num_ = 0;
    submitted_ = true;
  }
  cmds_[num_++] = cmd;
}

Result<void> CmdqBatch::submit() {
  if (num_ == 0 && !submitted_) return ok();
  Result<void> r = cmdq_.issue(cmds_, num_, true, watch_);
  const int first = error_ != 0 ? error_ : (r.ok() ? 0 : r.error().code());
  num_ = 0;
  submitted_ = false;
  error_ = 0;
  watch_.clear();
  if (first != 0) return Error(first);
  return ok();
}

}  // namespace strata::arm_smmu_v3
