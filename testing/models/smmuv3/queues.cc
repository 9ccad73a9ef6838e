// SPDX-License-Identifier: MIT
#include "testing/models/smmuv3/queues.h"

#include <algorithm>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "arch/bug.h"
#include "arch/log.h"

namespace strata::sim::smmuv3 {

using arch::Command;
using arch::CommandError;
using arch::Opcode;

namespace {

// The WR/RD field of every PROD and CONS register: index and wrap flag, [19:0].
constexpr uint32_t kIndexMask = arch::CMDQ_PROD::WR::kMask;

// Physical and IPA address fields of commands are Address[55:12] (MSIAddress [55:2]), with
// [55:52] RES0 in SMMUv3.1 to v3.3 and [55:48] RES0 in SMMUv3.0 (4.1.6).
unsigned pa_field_bits(const Config& c) { return c.version == 0 ? 48 : 52; }

CommandCheck ill(const char* why) { return CommandCheck{CommandError::CERROR_ILL, why}; }

constexpr const char* kRes0 = "a RES0 field is not zero";
constexpr const char* kSSec = "SSec set on the Non-secure Command queue";

// Whether every bit outside D's declared fields (and the `extra` ones) is zero. An SMMU may
// either check RES0 fields or ignore them (4.1.5); the model checks, to catch drivers that
// set bits the architecture does not define.
template <typename D>
bool res0_clear(const Command& cmd, uint64_t extra0 = 0, uint64_t extra1 = 0) {
  return (cmd.word(0) & ~(D::Fields::declared(0) | extra0)) == 0 &&
         (cmd.word(1) & ~(D::Fields::declared(1) | extra1)) == 0;
}

// A command layout with an SSec field (4.1.6): SSec == 1 on the Non-secure queue is ILLEGAL.
template <typename D>
CommandCheck check_ssec_and_res0(const Command& cmd, uint64_t extra1 = 0) {
  if (arch::descriptor_cast<D>(cmd).template get<typename D::SSec>()) return ill(kSSec);
  if (!res0_clear<D>(cmd, 0, extra1)) return ill(kRes0);
  return {};
}

// The TLB invalidations (4.4). Each command uses only some of CmdTlbi's fields; the others are
// RES0 in its layout.
CommandCheck check_tlbi(const Command& cmd, const Config& c) {
  using T = arch::CmdTlbi;
  const T t = arch::descriptor_cast<T>(cmd);
  constexpr uint64_t kRange0 = T::NUM::kMask | T::SCALE::kMask;
  constexpr uint64_t kRange1 = T::Leaf::kMask | T::TTL::kMask | T::TG::kMask | T::Address::kMask;
  uint64_t allowed0 = T::Op::kMask;
  uint64_t allowed1 = 0;
  bool by_address = false;
  bool ipa = false;
  switch (static_cast<Opcode>(cmd.opcode())) {
    case Opcode::CMD_TLBI_NH_ALL:
    case Opcode::CMD_TLBI_NH_ASID:
    case Opcode::CMD_TLBI_NH_VA:
    case Opcode::CMD_TLBI_NH_VAA:
      // 4.4.2: CERROR_ILL on a stage 2-only SMMU. VMID is RES0 without stage 2, but a stage
      // 1-only SMMU "is not required to check" it, and the model does not.
      if (!c.s1p) return ill("stage 1 TLB invalidation without IDR0.S1P");
      allowed0 |= T::VMID::kMask;
      if (cmd.opcode() == static_cast<uint8_t>(Opcode::CMD_TLBI_NH_ASID) ||
          cmd.opcode() == static_cast<uint8_t>(Opcode::CMD_TLBI_NH_VA))
        allowed0 |= T::ASID::kMask;
      by_address = cmd.opcode() == static_cast<uint8_t>(Opcode::CMD_TLBI_NH_VA) ||
                   cmd.opcode() == static_cast<uint8_t>(Opcode::CMD_TLBI_NH_VAA);
      break;
    case Opcode::CMD_TLBI_EL3_ALL:
    case Opcode::CMD_TLBI_EL3_VA:
      return ill("EL3 TLB invalidation on the Non-secure Command queue");
    case Opcode::CMD_TLBI_EL2_ALL:
    case Opcode::CMD_TLBI_EL2_ASID:
    case Opcode::CMD_TLBI_EL2_VA:
    case Opcode::CMD_TLBI_EL2_VAA:
      if (!c.hyp) return ill("EL2 TLB invalidation without IDR0.Hyp");
      if (cmd.opcode() == static_cast<uint8_t>(Opcode::CMD_TLBI_EL2_ASID) ||
          cmd.opcode() == static_cast<uint8_t>(Opcode::CMD_TLBI_EL2_VA))
        allowed0 |= T::ASID::kMask;
      by_address = cmd.opcode() == static_cast<uint8_t>(Opcode::CMD_TLBI_EL2_VA) ||
                   cmd.opcode() == static_cast<uint8_t>(Opcode::CMD_TLBI_EL2_VAA);
      break;
    case Opcode::CMD_TLBI_S12_VMALL:
    case Opcode::CMD_TLBI_S2_IPA:
      // 4.4.3: CERROR_ILL without stage 2.
      if (!c.s2p) return ill("stage 2 TLB invalidation without IDR0.S2P");
      allowed0 |= T::VMID::kMask;
      by_address = ipa = cmd.opcode() == static_cast<uint8_t>(Opcode::CMD_TLBI_S2_IPA);
      break;
    case Opcode::CMD_TLBI_NSNH_ALL:  // valid with either stage or both (4.4.4.1)
      break;
    default: STRATA_BUG("not a TLB invalidation opcode");
  }
  if (by_address) {
    allowed0 |= kRange0;
    allowed1 |= kRange1;
  }
  // TTL128 needs 128-bit descriptors (IDR5.D128), which the model does not implement.
  if ((t.word(0) & ~allowed0) || (t.word(1) & ~allowed1)) return ill(kRes0);
  if (!by_address) return {};

  // Range invalidation and the level hint (4.4.1.1).
  const uint64_t num = t.get<T::NUM>(), scale = t.get<T::SCALE>();
  const uint64_t ttl = t.get<T::TTL>(), tg = t.get<T::TG>();
  if (!c.ril && (num | scale | ttl | tg)) return ill("NUM, SCALE, TTL or TG without IDR3.RIL");
  if (tg == arch::kTlbiTgNone && (num | scale | ttl))
    return ill("NUM, SCALE or TTL with TG == 0b00 (RES0)");
  if (tg != arch::kTlbiTgNone && num == 0 && scale == 0 && ttl == 0)
    return ill("TG with NUM == 0, SCALE == 0 and TTL == 0 is Reserved");
  if (scale & 0x20) return ill("SCALE[5] is RES0 without IDR5.DS");
  if (tg == arch::kTlbiTg16K && ttl == 0b01)
    return ill("TTL == 0b01 with a 16KB TG is Reserved without IDR5.DS");
  if (ipa && (t.get<T::Address>() >> pa_field_bits(c)))
    return ill("IPA bits above the implemented physical address field");
  return {};
}

}  // namespace

CommandCheck check_command(const Command& cmd, const Config& c) {
  switch (static_cast<Opcode>(cmd.opcode())) {
    case Opcode::CMD_PREFETCH_CONFIG: return check_ssec_and_res0<arch::CmdPrefetchConfig>(cmd);
    case Opcode::CMD_PREFETCH_ADDR:
      // Stride and NS lie between Size and Address, at positions only the specification's
      // figure gives (arch/smmuv3/cmd.h does not declare them): bits [75:69] are not checked.
      return check_ssec_and_res0<arch::CmdPrefetchAddr>(cmd, uint64_t{0x7f} << 5);
    case Opcode::CMD_CFGI_STE: return check_ssec_and_res0<arch::CmdCfgiSte>(cmd);
    case Opcode::CMD_CFGI_STE_RANGE:  // and CMD_CFGI_ALL
      return check_ssec_and_res0<arch::CmdCfgiSteRange>(cmd);
    case Opcode::CMD_CFGI_CD:
      if (!c.s1p) return ill("CMD_CFGI_CD without IDR0.S1P");
      return check_ssec_and_res0<arch::CmdCfgiCd>(cmd);
    case Opcode::CMD_CFGI_CD_ALL:
      if (!c.s1p) return ill("CMD_CFGI_CD_ALL without IDR0.S1P");
      return check_ssec_and_res0<arch::CmdCfgiCdAll>(cmd);
    case Opcode::CMD_CFGI_VMS_PIDM: return ill("CMD_CFGI_VMS_PIDM without IDR3.MPAM");  // 4.3.5
    case Opcode::CMD_TLBI_NH_ALL:
    case Opcode::CMD_TLBI_NH_ASID:
    case Opcode::CMD_TLBI_NH_VA:
    case Opcode::CMD_TLBI_NH_VAA:
    case Opcode::CMD_TLBI_EL3_ALL:
    case Opcode::CMD_TLBI_EL3_VA:
    case Opcode::CMD_TLBI_EL2_ALL:
    case Opcode::CMD_TLBI_EL2_ASID:
    case Opcode::CMD_TLBI_EL2_VA:
    case Opcode::CMD_TLBI_EL2_VAA:
    case Opcode::CMD_TLBI_S12_VMALL:
    case Opcode::CMD_TLBI_S2_IPA:
    case Opcode::CMD_TLBI_NSNH_ALL: return check_tlbi(cmd, c);
    case Opcode::CMD_ATC_INV: {
      using A = arch::CmdAtcInv;
      if (!c.ats) return ill("CMD_ATC_INV without IDR0.ATS");  // 4.5.1
      if (!res0_clear<A>(cmd)) return ill(kRes0);
      // "Values greater than 52 are permitted, but not required, to raise a CERROR_ILL."
      if (arch::descriptor_cast<A>(cmd).get<A::Size>() > A::kSizeAll)
        return ill("CMD_ATC_INV Size above 52");
      return {};
    }
    case Opcode::CMD_PRI_RESP: {
      using P = arch::CmdPriResp;
      if (!c.pri) return ill("CMD_PRI_RESP without IDR0.PRI");  // 4.5.2
      if (!res0_clear<P>(cmd)) return ill(kRes0);
      if (arch::descriptor_cast<P>(cmd).get<P::Resp>() == 0b11)
        return ill("CMD_PRI_RESP Resp 0b11 is Reserved");
      return {};
    }
    case Opcode::CMD_RESUME:
      if (c.stall_model == arch::kStallModelTerminate)
        return ill("CMD_RESUME without the Stall model");  // 4.7.1
      return check_ssec_and_res0<arch::CmdResume>(cmd);
    case Opcode::CMD_STALL_TERM:
      if (c.stall_model == arch::kStallModelTerminate)
        return ill("CMD_STALL_TERM without the Stall model");  // 4.7.2
      return check_ssec_and_res0<arch::CmdStallTerm>(cmd);
    case Opcode::CMD_SYNC: {
      using S = arch::CmdSync;
      const S s = arch::descriptor_cast<S>(cmd);
      if (s.get<S::CS>() == 0b11) return ill("CMD_SYNC CS 0b11 is Reserved");  // 4.7.3
      if (!res0_clear<S>(cmd)) return ill(kRes0);
      if (s.get<S::MSIAddress>() >> pa_field_bits(c))
        return ill("MSIAddress bits above the implemented physical address field");
      return {};
    }
  }
  if (cmd.opcode() >= 0x80 && cmd.opcode() <= 0x8f)
    return ill("IMPLEMENTATION DEFINED opcode (the model implements none)");
  // Reserved, and the Secure-queue-only, DPT and other opcodes of features the model lacks.
  return ill("Reserved opcode");
}

const char* name(Threading t) {
  switch (t) {
    case Threading::kSync: return "sync";
    case Threading::kAsync: return "async";
    case Threading::kManual: return "manual";
  }
  return "?";
}

const char* name(EventResult r) {
  switch (r) {
    case EventResult::kWritten: return "written";
    case EventResult::kNotWritable: return "not writable";
    case EventResult::kOverflow: return "overflow";
    case EventResult::kFull: return "full";
    case EventResult::kAborted: return "aborted";
  }
  return "?";
}

// Interrupts raised while a model lock is held wait in the thread's outermost scope and are
// delivered when it ends, after every lock is released. Scopes nest: only the outermost one
// delivers, so an interrupt raised by a handler (an MSI abort, a register write the handler
// makes) joins the list and is delivered after the handler returns.
class Queues::IrqScope {
 public:
  IrqScope() {
    if (!current_) {
      current_ = &own_;
      outermost_ = true;
    }
  }
  ~IrqScope() {
    if (!outermost_) return;
    // deliver() may append (by value: the vector may grow under us).
    for (size_t i = 0; i < own_.size(); i++) {
      const PendingIrq irq = own_[i];
      irq.queues->deliver(irq);
    }
    current_ = nullptr;
  }
  IrqScope(const IrqScope&) = delete;
  IrqScope& operator=(const IrqScope&) = delete;

  static void add(const PendingIrq& irq) {
    if (!current_) STRATA_BUG("smmuv3 model: interrupt raised outside an IrqScope");
    current_->push_back(irq);
  }

 private:
  static thread_local std::vector<PendingIrq>* current_;
  std::vector<PendingIrq> own_;
  bool outermost_ = false;
};

thread_local std::vector<Queues::PendingIrq>* Queues::IrqScope::current_ = nullptr;

Result<std::unique_ptr<Queues>> Queues::create(Registers& regs, PhysMem& mem,
                                               CommandExecutor& executor, const Options& options) {
  for (int line :
       {options.lines.eventq, options.lines.priq, options.lines.gerror, options.lines.cmdq_sync}) {
    if (line < 0) continue;
    if (!options.irq || static_cast<unsigned>(line) >= options.irq->lines()) return Error(-EINVAL);
  }
  std::unique_ptr<Queues> q(new Queues(regs, mem, executor, options));
  regs.set_listener(q.get());
  if (options.threading == Threading::kAsync)
    q->thread_ = std::thread([p = q.get()] { p->worker(); });
  return q;
}

Queues::Queues(Registers& regs, PhysMem& mem, CommandExecutor& executor, const Options& options)
    : regs_(regs),
      mem_(mem),
      executor_(executor),
      options_(options),
      config_(regs.config()),
      gbpa_(static_cast<uint32_t>(regs.value(arch::GBPA::kOffset) & ~arch::GBPA::Update::kMask)) {}

Queues::~Queues() {
  if (thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(work_mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    thread_.join();
  }
  regs_.set_listener(nullptr);
}

void Queues::update_requested() { kick(); }
void Queues::cmdq_prod_written() { kick(); }
void Queues::gerror_acknowledged(uint32_t) { kick(); }

void Queues::kick() {
  switch (options_.threading) {
    case Threading::kSync: process(); return;
    case Threading::kAsync: {
      {
        std::lock_guard<std::mutex> lock(work_mu_);
        work_ = true;
      }
      work_cv_.notify_all();
      return;
    }
    case Threading::kManual: {
      std::lock_guard<std::mutex> lock(work_mu_);
      work_ = true;
      return;
    }
  }
}

void Queues::worker() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(work_mu_);
      work_cv_.wait(lock, [this] { return work_ || stop_; });
      if (stop_) return;
      work_ = false;
      busy_ = true;
    }
    process();
    {
      std::lock_guard<std::mutex> lock(work_mu_);
      busy_ = false;
    }
    work_cv_.notify_all();
  }
}

void Queues::wait_idle() {
  switch (options_.threading) {
    case Threading::kSync: return;
    case Threading::kManual: process(); return;
    case Threading::kAsync: {
      std::unique_lock<std::mutex> lock(work_mu_);
      work_cv_.wait(lock, [this] { return (!work_ && !busy_) || stop_; });
      return;
    }
  }
}

void Queues::process() {
  if (options_.threading == Threading::kManual) {
    std::lock_guard<std::mutex> lock(work_mu_);
    work_ = false;
  }
  for (bool more = true; more;) {
    IrqScope irqs;  // declared before the lock: delivers after it is released
    std::lock_guard<std::mutex> lock(mu_);
    more = step_locked();
  }
}

bool Queues::step_locked() {
  apply_updates_locked();
  return consume_locked();
}

void Queues::latch_out_queue_locked(OutQueue& q, uint64_t base_reg, unsigned max_qs,
                                    uint64_t prod_offset, size_t entry_bytes) {
  q.qs = std::min<unsigned>(arch::QueueBaseFields::LOG2SIZE::extract(base_reg), max_qs);
  // Aligned to the larger of the queue's size and 32 bytes (6.3.26).
  const uint64_t bytes = std::max<uint64_t>(uint64_t{entry_bytes} << q.qs, 32);
  q.base = arch::QueueBaseFields::ADDR::extract(base_reg) & ~(bytes - 1);
  q.prod = static_cast<uint32_t>(regs_.value(prod_offset)) & arch::queue_ptr_mask(q.qs);
  // Bits above the wrap flag are RAZ in the SMMU-owned index (6.3.95).
  regs_.modify(prod_offset, kIndexMask, q.prod);
  q.enabled = true;
  q.inconsistent_reported = false;
}

// Completes the Updates software asked for (6.3.9, 6.3.14, 6.3.16). Each field's side effects
// are done before its ACK shows the new value.
void Queues::apply_updates_locked() {
  using namespace arch;
  const uint32_t cr0 = static_cast<uint32_t>(regs_.value(CR0::kOffset)) & regs_.cr0_mask();
  const uint32_t ack = static_cast<uint32_t>(regs_.value(CR0ACK::kOffset));
  if (cr0 != ack) {
    const uint32_t changed = cr0 ^ ack;
    if (changed & CR0::CMDQEN::kMask) {
      // 1 -> 0 completes when no command is in progress: none is, under mu_.
      cmdq_.enabled = cr0 & CR0::CMDQEN::kMask;
      if (cmdq_.enabled) {
        const CMDQ_BASE base = regs_.read<CMDQ_BASE>();
        cmdq_.qs = std::min<unsigned>(base.get<CMDQ_BASE::LOG2SIZE>(), config_.cmdqs);
        const uint64_t bytes = std::max<uint64_t>(uint64_t{kCmdqEntryBytes} << cmdq_.qs, 32);
        cmdq_.base = base.get<CMDQ_BASE::ADDR>() & ~(bytes - 1);
        cmdq_.cons =
            static_cast<uint32_t>(regs_.value(CMDQ_CONS::kOffset)) & queue_ptr_mask(cmdq_.qs);
        cmdq_.inconsistent_reported = false;
        publish_cons_locked();
      }
    }
    if (changed & CR0::EVENTQEN::kMask) {
      std::lock_guard<std::mutex> lock(evtq_mu_);
      if (cr0 & CR0::EVENTQEN::kMask)
        latch_out_queue_locked(evtq_, regs_.value(EVENTQ_BASE::kOffset), config_.eventqs,
                               EVENTQ_PROD::kOffset, kEventqEntryBytes);
      else
        evtq_.enabled = false;
    }
    // The effective PRIQEN is PRIQEN && SMMUEN (6.3.9.5).
    constexpr uint32_t kPriOn = CR0::PRIQEN::kMask | CR0::SMMUEN::kMask;
    const bool pri_on = (cr0 & kPriOn) == kPriOn, pri_was = (ack & kPriOn) == kPriOn;
    if (config_.pri && pri_on != pri_was) {
      std::lock_guard<std::mutex> lock(priq_mu_);
      if (pri_on)
        latch_out_queue_locked(priq_, regs_.value(PRIQ_BASE::kOffset), config_.priqs,
                               PRIQ_PROD::kOffset, kPriqEntryBytes);
      else
        priq_.enabled = false;
    }
    if (options_.on_cr0_update) options_.on_cr0_update(ack, cr0);
    regs_.set(CR0ACK::kOffset, cr0);
    counters_.updates++;
  }

  // IRQ_CTRL: the enables take effect for occurrences after the Update (6.3.16); interrupts
  // check IRQ_CTRLACK both when raised and when delivered.
  const uint32_t irq =
      static_cast<uint32_t>(regs_.value(IRQ_CTRL::kOffset)) & regs_.irq_ctrl_mask();
  if (irq != regs_.value(IRQ_CTRLACK::kOffset)) {
    regs_.set(IRQ_CTRLACK::kOffset, irq);
    counters_.updates++;
  }

  // GBPA: the guard lets only a write with Update set through, and none while Update is set.
  const uint32_t gbpa = static_cast<uint32_t>(regs_.value(GBPA::kOffset));
  if (gbpa & GBPA::Update::kMask) {
    gbpa_.store(gbpa & ~GBPA::Update::kMask, std::memory_order_relaxed);
    regs_.modify(GBPA::kOffset, GBPA::Update::kMask, 0);
    counters_.updates++;
  }
}

void Queues::publish_cons_locked() {
  regs_.modify(arch::CMDQ_CONS::kOffset, kIndexMask, cmdq_.cons);
}

// Consumes commands from CONS towards PROD (4.1.2, 4.1.4). Stops after a CMD_SYNC, so that its
// completion signal is delivered before later commands run, and returns true then.
bool Queues::consume_locked() {
  using namespace arch;
  if (!cmdq_.enabled) return false;
  if (regs_.active_gerrors() & GERROR::CMDQ_ERR::kMask) return false;  // 7.1: stopped

  const unsigned qs = cmdq_.qs;
  const uint32_t entries = uint32_t{1} << qs;
  const uint32_t prod = static_cast<uint32_t>(regs_.value(CMDQ_PROD::kOffset)) & queue_ptr_mask(qs);
  const uint32_t used = queue_used(prod, cmdq_.cons, qs);
  if (used > entries) {
    // An inconsistent PROD (3.5.1): the model consumes nothing while it lasts, one of the
    // CONSTRAINED UNPREDICTABLE behaviours.
    if (!cmdq_.inconsistent_reported) {
      regs_.report_guest_error(
          CMDQ_PROD::kOffset,
          fmt::format("CMDQ_PROD {:#x} inconsistent with CMDQ_CONS {:#x} (2^{} entries): "
                      "nothing consumed",
                      prod, cmdq_.cons, qs));
      cmdq_.inconsistent_reported = true;
    }
    return false;
  }
  cmdq_.inconsistent_reported = false;

  bool was_full = used == entries;
  while (!queue_empty(prod, cmdq_.cons, qs)) {
    const uint64_t addr = cmdq_.base + uint64_t{queue_index(cmdq_.cons, qs)} * kCmdqEntryBytes;
    Result<uint64_t> w0 = mem_.read64(addr);
    Result<uint64_t> w1 = mem_.read64(addr + 8);
    if (!w0.ok() || !w1.ok()) {
      // 7.1: CONS may not move past a command whose fetch aborted.
      command_error_locked(CommandError::CERROR_ABT, "command fetch aborted", 0, 0);
      return false;
    }
    Command cmd;
    cmd.set_word(0, *w0).set_word(1, *w1);
    const CommandCheck check = check_command(cmd, config_);
    if (!check.ok()) {
      command_error_locked(check.error, check.why, *w0, *w1);
      return false;
    }
    const bool sync = cmd.opcode() == static_cast<uint8_t>(Opcode::CMD_SYNC);
    switch (executor_.execute(cmd)) {
      case ExecStatus::kDone: break;
      case ExecStatus::kIllegal:
        command_error_locked(CommandError::CERROR_ILL, "refused by the executor", *w0, *w1);
        return false;
      case ExecStatus::kAtcInvTimeout:
        if (!sync) STRATA_BUG("smmuv3 model: kAtcInvTimeout for a command other than CMD_SYNC");
        // 4.7.3: the CMD_SYNC is not consumed and sends no completion signal.
        command_error_locked(CommandError::CERROR_ATC_INV_SYNC, "CMD_ATC_INV timed out", *w0, *w1);
        return false;
    }
    cmdq_.cons = queue_advance(cmdq_.cons, 1, qs);
    // Counted before CONS shows it, so that a driver that saw CONS move sees the count too.
    counters_.commands++;
    if (sync) counters_.syncs++;
    publish_cons_locked();
    if (was_full) {
      // 4.1.2: a WFE wake-up when a queue software could have seen full becomes non-full.
      was_full = false;
      if (config_.sev) counters_.sev++;
    }
    if (sync) {
      signal_sync_locked(descriptor_cast<CmdSync>(cmd));
      return true;
    }
  }
  return false;
}

void Queues::command_error_locked(CommandError err, const char* why, uint64_t w0, uint64_t w1) {
  using namespace arch;
  // 7.1: the reason is visible in CONS.ERR before GERROR shows the error; RD stays on the
  // command.
  regs_.modify(CMDQ_CONS::kOffset, CMDQ_CONS::ERR::kMask,
               CMDQ_CONS::ERR::insert(0, static_cast<uint8_t>(err)));
  counters_.command_errors++;
  const std::string message =
      fmt::format("{} at CMDQ_CONS {:#x}: {} [{:#018x}, {:#018x}]", err, cmdq_.cons, why, w0, w1);
  if (err == CommandError::CERROR_ATC_INV_SYNC)
    dev_log(LogLevel::notice, regs_.name(), "command error: {}", message);  // a device's fault
  else
    regs_.report_guest_error(CMDQ_CONS::kOffset, "command error: " + message);
  raise_gerror(GERROR::CMDQ_ERR::kMask);
}

// CMD_SYNC's completion signal (4.7.3), after CONS has moved past it.
void Queues::signal_sync_locked(const arch::CmdSync& sync) {
  using S = arch::CmdSync;
  switch (sync.get<S::CS>()) {
    case arch::kCsNone: return;
    case arch::kCsSev:
      if (config_.sev) counters_.sev++;  // without IDR0.SEV, SIG_SEV is SIG_NONE
      return;
    case arch::kCsIrq: {
      // The zero check covers the whole field, not only the bits below the OAS; the write
      // goes to the address truncated to the OAS.
      const uint64_t address = sync.get<S::MSIAddress>();
      if (config_.msi && address != 0)
        queue_irq(IrqKind::kSyncMsi, address & regs_.oas_mask(),
                  static_cast<uint32_t>(sync.get<S::MSIData>()));
      if (options_.lines.cmdq_sync >= 0) queue_irq(IrqKind::kSyncWired);
      return;
    }
  }
}

EventResult Queues::record_event(const arch::EventRecord& record, bool stall) {
  using namespace arch;
  IrqScope irqs;
  std::lock_guard<std::mutex> lock(evtq_mu_);
  OutQueue& q = evtq_;
  // 7.2.1: writable when enabled, not full and no EVENTQ_ABT_ERR.
  if (!q.enabled || (regs_.active_gerrors() & GERROR::EVENTQ_ABT_ERR::kMask)) {
    if (!stall) counters_.events_discarded++;
    return EventResult::kNotWritable;
  }
  const uint32_t entries = uint32_t{1} << q.qs;
  const uint32_t cons_reg = static_cast<uint32_t>(regs_.value(EVENTQ_CONS::kOffset));
  uint32_t used = queue_used(q.prod, cons_reg, q.qs);
  if (used > entries) {
    // An inconsistent CONS (3.5.1): treated as a full queue.
    if (!q.inconsistent_reported) {
      regs_.report_guest_error(EVENTQ_CONS::kOffset,
                               fmt::format("EVENTQ_CONS {:#x} inconsistent with EVENTQ_PROD {:#x} "
                                           "(2^{} entries): queue treated as full",
                                           cons_reg & kIndexMask, q.prod, q.qs));
      q.inconsistent_reported = true;
    }
    used = entries;
  }
  if (used == entries) {
    if (stall) return EventResult::kFull;  // never discarded, no overflow (7.4)
    counters_.event_overflows++;
    // 7.4: toggle OVFLG unless an overflow is already unacknowledged.
    const uint32_t prod_reg = static_cast<uint32_t>(regs_.value(EVENTQ_PROD::kOffset));
    if (((prod_reg ^ cons_reg) & EVENTQ_PROD::OVFLG::kMask) == 0)
      regs_.modify(EVENTQ_PROD::kOffset, EVENTQ_PROD::OVFLG::kMask,
                   ~prod_reg & EVENTQ_PROD::OVFLG::kMask);
    return EventResult::kOverflow;
  }

  const uint64_t addr = q.base + uint64_t{queue_index(q.prod, q.qs)} * kEventqEntryBytes;
  for (size_t i = 0; i < EventRecord::kWords; i++) {
    if (!mem_.write64(addr + 8 * i, record.word(i)).ok()) {
      // A synchronous abort (7.2.2): PROD does not cover the record.
      counters_.events_discarded++;
      raise_gerror(GERROR::EVENTQ_ABT_ERR::kMask);
      return EventResult::kAborted;
    }
  }
  const bool was_empty = used == 0;
  q.prod = queue_advance(q.prod, 1, q.qs);
  regs_.modify(EVENTQ_PROD::kOffset, kIndexMask, q.prod);  // the record is visible from here
  counters_.events++;
  if (was_empty) queue_irq(IrqKind::kEventq);  // 3.18.2: empty to non-empty
  return EventResult::kWritten;
}

PriResult Queues::record_page_request(const arch::PriRecord& request) {
  using namespace arch;
  IrqScope irqs;
  std::lock_guard<std::mutex> lock(priq_mu_);
  OutQueue& q = priq_;
  const bool last = request.get<PriRecord::Last>();
  // A Stop Marker (chapter 8: a PASID, Last == 1, W == R == 0) gets no response, automatic or
  // not (8.1, 8.2): where a Page Request would be answered, it is only discarded.
  const bool stop_marker = request.get<PriRecord::SSV>() && last && !request.get<PriRecord::R>() &&
                           !request.get<PriRecord::W>();
  // 8.2: with the effective PRIQEN 0 or PRIQ_ABT_ERR active, every request is discarded with
  // an automatic Response Failure.
  if (!config_.pri || !q.enabled || (regs_.active_gerrors() & GERROR::PRIQ_ABT_ERR::kMask)) {
    counters_.pri_discarded++;
    if (stop_marker) return PriResult{.kind = PriResult::Kind::kDiscarded};
    return PriResult{.kind = PriResult::Kind::kAutoResponse,
                     .response_code = PriResult::kResponseFailure};
  }
  const uint32_t entries = uint32_t{1} << q.qs;
  const uint32_t cons_reg = static_cast<uint32_t>(regs_.value(PRIQ_CONS::kOffset));
  const uint32_t prod_reg = static_cast<uint32_t>(regs_.value(PRIQ_PROD::kOffset));
  bool overflow = ((prod_reg ^ cons_reg) & PRIQ_PROD::OVFLG::kMask) != 0;
  uint32_t used = queue_used(q.prod, cons_reg, q.qs);
  if (used > entries) {
    if (!q.inconsistent_reported) {
      regs_.report_guest_error(PRIQ_CONS::kOffset,
                               fmt::format("PRIQ_CONS {:#x} inconsistent with PRIQ_PROD {:#x} "
                                           "(2^{} entries): queue treated as full",
                                           cons_reg & kIndexMask, q.prod, q.qs));
      q.inconsistent_reported = true;
    }
    used = entries;
  }
  if (!overflow && used == entries) {
    // 8.1: a request that finds the queue full enters the overflow condition.
    regs_.modify(PRIQ_PROD::kOffset, PRIQ_PROD::OVFLG::kMask, ~prod_reg & PRIQ_PROD::OVFLG::kMask);
    counters_.pri_overflows++;
    overflow = true;
  }
  const bool last_only = regs_.value(PRIQ_IRQ_CFG2::kOffset) & PRIQ_IRQ_CFG2::LO::kMask;
  if (overflow) {
    // 8.1: while the overflow lasts nothing is written; a Last request gets an automatic
    // Success response (whether it carries the PASID depends on IDR3.PPS and STE.PPAR, which
    // the caller decides), and with LO its interrupt.
    counters_.pri_discarded++;
    if (!last || stop_marker)
      return PriResult{.kind = PriResult::Kind::kDiscarded, .overflow = true};
    if (last_only) queue_irq(IrqKind::kPriq);
    return PriResult{.kind = PriResult::Kind::kAutoResponse,
                     .response_code = PriResult::kSuccess,
                     .overflow = true};
  }

  const uint64_t addr = q.base + uint64_t{queue_index(q.prod, q.qs)} * kPriqEntryBytes;
  for (size_t i = 0; i < PriRecord::kWords; i++) {
    if (!mem_.write64(addr + 8 * i, request.word(i)).ok()) {
      // 8.2: a synchronous abort answers the request with a Response Failure.
      counters_.pri_discarded++;
      raise_gerror(GERROR::PRIQ_ABT_ERR::kMask);
      if (stop_marker) return PriResult{.kind = PriResult::Kind::kDiscarded};
      return PriResult{.kind = PriResult::Kind::kAutoResponse,
                       .response_code = PriResult::kResponseFailure};
    }
  }
  const bool was_empty = used == 0;
  q.prod = queue_advance(q.prod, 1, q.qs);
  regs_.modify(PRIQ_PROD::kOffset, kIndexMask, q.prod);
  counters_.pri_records++;
  if (last_only ? last : was_empty) queue_irq(IrqKind::kPriq);  // PRIQ_IRQ_CFG2.LO
  return PriResult{};
}

void Queues::raise_gerror(uint32_t bits) {
  if (regs_.activate_gerrors(bits & regs_.gerror_mask())) queue_irq(IrqKind::kGerror);
}

namespace {

// The enable, the MSI registers and the MSI abort error of one interrupt source.
struct Source {
  uint32_t irqen;
  uint64_t cfg0, cfg1;
  uint32_t abt_err;
};

}  // namespace

void Queues::queue_irq(IrqKind kind, uint64_t address, uint32_t data) {
  using namespace arch;
  uint32_t irqen = 0;
  switch (kind) {
    case IrqKind::kGerror: irqen = IRQ_CTRL::GERROR_IRQEN::kMask; break;
    case IrqKind::kEventq: irqen = IRQ_CTRL::EVENTQ_IRQEN::kMask; break;
    case IrqKind::kPriq: irqen = IRQ_CTRL::PRIQ_IRQEN::kMask; break;
    case IrqKind::kSyncMsi:
    case IrqKind::kSyncWired: break;  // CMD_SYNC interrupts have no enable
  }
  // An interrupt relates only to occurrences after its source's enable was Updated (6.3.16).
  if (irqen && !(regs_.value(IRQ_CTRLACK::kOffset) & irqen)) return;
  IrqScope::add(PendingIrq{this, kind, address, data});
}

void Queues::deliver(const PendingIrq& irq) {
  using namespace arch;
  Source s{};
  int line = -1;
  switch (irq.kind) {
    case IrqKind::kSyncWired: pulse(options_.lines.cmdq_sync); return;
    case IrqKind::kSyncMsi:
      counters_.sync_msis++;
      if (!msi_write(irq.address, irq.data)) raise_gerror(GERROR::MSI_CMDQ_ABT_ERR::kMask);
      return;
    case IrqKind::kGerror:
      s = {IRQ_CTRL::GERROR_IRQEN::kMask, GERROR_IRQ_CFG0::kOffset, GERROR_IRQ_CFG1::kOffset,
           GERROR::MSI_GERROR_ABT_ERR::kMask};
      line = options_.lines.gerror;
      break;
    case IrqKind::kEventq:
      s = {IRQ_CTRL::EVENTQ_IRQEN::kMask, EVENTQ_IRQ_CFG0::kOffset, EVENTQ_IRQ_CFG1::kOffset,
           GERROR::MSI_EVENTQ_ABT_ERR::kMask};
      line = options_.lines.eventq;
      break;
    case IrqKind::kPriq:
      s = {IRQ_CTRL::PRIQ_IRQEN::kMask, PRIQ_IRQ_CFG0::kOffset, PRIQ_IRQ_CFG1::kOffset,
           GERROR::MSI_PRIQ_ABT_ERR::kMask};
      line = options_.lines.priq;
      break;
  }
  // Disabled since it was raised: the Update that disabled it has completed, after which no
  // interrupt of the source may become visible (6.3.16).
  if (!(regs_.value(IRQ_CTRLACK::kOffset) & s.irqen)) return;
  pulse(line);
  if (!config_.msi) return;
  // ADDR == 0 sends no MSI (3.18.2); the registers store only the bits below the OAS.
  const uint64_t address = regs_.value(s.cfg0) & GERROR_IRQ_CFG0::ADDR::kMask;
  if (address == 0) return;
  // GERROR's own MSI aborting activates MSI_GERROR_ABT_ERR, whose GERROR interrupt is not
  // raised again while that error stays active: no loop.
  if (!msi_write(address, static_cast<uint32_t>(regs_.value(s.cfg1)))) raise_gerror(s.abt_err);
}

void Queues::pulse(int line) {
  if (line < 0 || !options_.irq) return;
  counters_.wired_irqs++;
  options_.irq->raise(static_cast<unsigned>(line));
}

bool Queues::msi_write(uint64_t address, uint32_t data) {
  counters_.msis++;
  if (mem_.write32(address, data).ok()) return true;
  counters_.msi_aborts++;
  return false;
}

Counters Queues::counters() const {
  Counters c;
  c.commands = counters_.commands.load();
  c.syncs = counters_.syncs.load();
  c.sync_msis = counters_.sync_msis.load();
  c.sev = counters_.sev.load();
  c.command_errors = counters_.command_errors.load();
  c.events = counters_.events.load();
  c.event_overflows = counters_.event_overflows.load();
  c.events_discarded = counters_.events_discarded.load();
  c.pri_records = counters_.pri_records.load();
  c.pri_discarded = counters_.pri_discarded.load();
  c.pri_overflows = counters_.pri_overflows.load();
  c.wired_irqs = counters_.wired_irqs.load();
  c.msis = counters_.msis.load();
  c.msi_aborts = counters_.msi_aborts.load();
  c.updates = counters_.updates.load();
  return c;
}

}  // namespace strata::sim::smmuv3
