// SPDX-License-Identifier: MIT
#include "testing/models/dma-engine/dma_engine.h"

#include <fmt/core.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "arch/bug.h"

namespace strata::sim::dma_engine {
namespace {

// A doorbell written while this thread delivers an engine's completion interrupt: its job, to
// run once the handler has returned (see "Interrupt rules" in dma_engine.h).
struct Chained {
  DmaTestEngine* engine;
  Job job;
};
// Set while the thread is inside DmaTestEngine::signal(); the jobs chained meanwhile.
thread_local std::vector<Chained>* t_chained = nullptr;

// Bytes from `addr` to the end of its 4 KiB page.
uint64_t page_rest(uint64_t addr) { return kPageSize - (addr & (kPageSize - 1)); }

FaultKind fault_of(DmaOutcome::Status s) {
  return s == DmaOutcome::Status::kAbort ? FaultKind::kAbort : FaultKind::kBusError;
}

}  // namespace

Result<std::unique_ptr<DmaTestEngine>> DmaTestEngine::create(DmaPort& port,
                                                             const Options& options) {
  if (options.line < -1) return Error(-EINVAL);
  if (options.line >= 0 &&
      (!options.irq || static_cast<unsigned>(options.line) >= options.irq->lines()))
    return Error(-EINVAL);
  std::unique_ptr<DmaTestEngine> e(new DmaTestEngine(port, options));
  if (options.mode == Mode::kAsync) e->thread_ = std::thread([p = e.get()] { p->worker(); });
  return e;
}

DmaTestEngine::DmaTestEngine(DmaPort& port, const Options& options)
    : port_(port),
      options_(options),
      regs_(options.name, options.stream_id, options.line >= 0,
            [this](uint32_t op) { doorbell(op); }) {}

DmaTestEngine::~DmaTestEngine() {
  wait_idle();
  if (thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      cv_.notify_all();
    }
    thread_.join();
  }
}

// ---------------------------------------------------------------------------------------------
// Accepting jobs.

void DmaTestEngine::doorbell(uint32_t op) {
  if (op == static_cast<uint32_t>(Op::kNop)) return;
  // The parameters as they are now: a later write changes the next job, not this one.
  const auto ss = SUBSTREAMID::from_value(static_cast<uint32_t>(regs_.value(SUBSTREAMID::kOffset)));
  const auto ctrl = CTRL::from_value(static_cast<uint32_t>(regs_.value(CTRL::kOffset)));
  const Job job{
      .op = static_cast<Op>(op),
      .src = regs_.value(SRC::kOffset),
      .dst = regs_.value(DST::kOffset),
      .len = regs_.value(LEN::kOffset),
      .pattern = regs_.value(PATTERN::kOffset),
      .ssv = ss.get<SUBSTREAMID::SSV>() != 0,
      .ssid = static_cast<uint32_t>(ss.get<SUBSTREAMID::SSID>()),
      .priv = ctrl.get<CTRL::PRIV>() != 0,
      .instr = ctrl.get<CTRL::INSTR>() != 0,
      .irq = ctrl.get<CTRL::IRQEN>() != 0,
      .msi = ctrl.get<CTRL::MSIEN>() != 0,
      .msi_addr = regs_.value(MSI_ADDR::kOffset),
      .msi_data = static_cast<uint32_t>(regs_.value(MSI_DATA::kOffset)),
  };
  if (!accept(job, nullptr)) {
    regs_.report_guest_error(CMD::kOffset,
                             fmt::format("CMD.OP {} written while BUSY: ignored", op));
    return;
  }
  if (op > static_cast<uint32_t>(Op::kChecksum))
    regs_.report_guest_error(CMD::kOffset, fmt::format("CMD.OP {} is not an operation", op));
  if (options_.mode == Mode::kAsync) return;
  if (t_chained) {
    t_chained->push_back({this, job});
    return;
  }
  execute(job, nullptr);
}

bool DmaTestEngine::accept(const Job& job, Waiter* waiter) {
  std::lock_guard<std::mutex> lock(mu_);
  if (busy_) {
    regs_.modify(STATUS::kOffset, 0, STATUS::BUSY_ERR::kMask);
    counters_.busy_errors++;
    return false;
  }
  busy_ = true;
  ++in_flight_;
  regs_.set(DONE::kOffset, 0);
  regs_.set(FAULT_ADDR::kOffset, 0);
  regs_.set(CHECKSUM::kOffset, kFnvBasis);
  regs_.modify(STATUS::kOffset,
               STATUS::STATE::kMask | STATUS::FAULT::kMask | STATUS::FAULT_WRITE::kMask,
               STATUS{}.set<STATUS::STATE>(static_cast<uint32_t>(State::kBusy)).value());
  if (options_.mode == Mode::kAsync) {
    STRATA_BUG_ON(pending_.has_value());  // busy_ admits one job at a time
    pending_ = Pending{job, waiter};
    cv_.notify_all();
  }
  return true;
}

JobResult DmaTestEngine::run(const Job& job) {
  if (t_chained) STRATA_BUG("dma-engine: direct API called from an interrupt handler");
  Waiter w;
  if (!accept(job, &w)) return JobResult{.state = State::kBusy};
  if (options_.mode == Mode::kSync) {
    execute(job, &w);
  } else {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return w.finished; });
  }
  return w.result;
}

JobResult DmaTestEngine::copy(uint64_t src, uint64_t dst, uint64_t len, bool ssv, uint32_t ssid) {
  return run(Job{.op = Op::kCopy, .src = src, .dst = dst, .len = len, .ssv = ssv, .ssid = ssid});
}

JobResult DmaTestEngine::fill(uint64_t dst, uint64_t len, uint64_t pattern, bool ssv,
                              uint32_t ssid) {
  return run(
      Job{.op = Op::kFill, .dst = dst, .len = len, .pattern = pattern, .ssv = ssv, .ssid = ssid});
}

JobResult DmaTestEngine::checksum(uint64_t src, uint64_t len, bool ssv, uint32_t ssid) {
  return run(Job{.op = Op::kChecksum, .src = src, .len = len, .ssv = ssv, .ssid = ssid});
}

void DmaTestEngine::worker() {
  for (;;) {
    Pending p;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return pending_.has_value() || stop_; });
      if (!pending_) return;
      p = *pending_;
      pending_.reset();
    }
    execute(p.job, p.waiter);
  }
}

// ---------------------------------------------------------------------------------------------
// Running them.

void DmaTestEngine::execute(const Job& job, Waiter* waiter) {
  JobResult r = transfer(job);

  // Publish: every result register is final before STATE leaves BUSY, so a driver that polls
  // STATE (or takes the interrupt) reads a consistent job.
  {
    std::lock_guard<std::mutex> lock(mu_);
    regs_.set(DONE::kOffset, r.done);
    regs_.set(FAULT_ADDR::kOffset, r.fault_addr);
    regs_.set(CHECKSUM::kOffset, r.checksum);
    regs_.set(COMPLETIONS::kOffset,
              (regs_.value(COMPLETIONS::kOffset) + 1) & COMPLETIONS::COUNT::kMask);
    regs_.modify(STATUS::kOffset,
                 STATUS::STATE::kMask | STATUS::FAULT::kMask | STATUS::FAULT_WRITE::kMask,
                 STATUS{}
                     .set<STATUS::STATE>(static_cast<uint32_t>(r.state))
                     .set<STATUS::FAULT>(static_cast<uint32_t>(r.fault))
                     .set<STATUS::FAULT_WRITE>(r.fault_write)
                     .value());
    busy_ = false;
  }
  counters_.jobs++;
  counters_.bytes += r.done;
  if (r.state == State::kFault) counters_.faults++;

  // Interrupts, with doorbells their handlers write on this thread held back (chained).
  std::vector<Chained> chained;
  const bool outermost = t_chained == nullptr;
  if (outermost) t_chained = &chained;
  r.msi_aborted = !signal(job);
  if (outermost) t_chained = nullptr;

  {
    // Notified under the lock: once in_flight_ reads 0 the engine may be destroyed.
    std::lock_guard<std::mutex> lock(mu_);
    if (waiter) {
      waiter->result = r;
      waiter->finished = true;
    }
    --in_flight_;
    cv_.notify_all();
  }
  for (const Chained& c : chained) c.engine->execute(c.job, nullptr);
}

JobResult DmaTestEngine::transfer(const Job& job) {
  JobResult r;
  r.state = State::kDone;
  const DmaStream wstream{
      .sid = options_.stream_id, .ssv = job.ssv, .ssid = job.ssid, .priv = job.priv};
  DmaStream rstream = wstream;
  rstream.instr = job.instr;

  // Ends the job at a transaction that failed at `addr`.
  auto fail = [&r](DmaOutcome::Status s, bool write, uint64_t addr) {
    r.state = State::kFault;
    r.fault = fault_of(s);
    r.fault_write = write;
    r.fault_addr = addr;
  };

  uint8_t buf[kPageSize];
  switch (job.op) {
    case Op::kCopy:
      while (r.done < job.len) {
        const uint64_t src = job.src + r.done;
        const uint64_t dst = job.dst + r.done;
        const size_t chunk =
            static_cast<size_t>(std::min({job.len - r.done, page_rest(src), page_rest(dst)}));
        const DmaOutcome rd = port_.read(rstream, src, buf, chunk);
        // What was read before a read failure is still written: those bytes were transferred.
        DmaOutcome wr;
        if (rd.done) wr = port_.write(wstream, dst, buf, rd.done);
        r.checksum = fnv1a(r.checksum, buf, wr.done);
        r.done += wr.done;
        if (!wr.ok()) {
          fail(wr.status, true, dst + wr.done);
          break;
        }
        if (!rd.ok()) {
          fail(rd.status, false, src + rd.done);
          break;
        }
        regs_.set(DONE::kOffset, r.done);
      }
      break;

    case Op::kFill:
      while (r.done < job.len) {
        const uint64_t dst = job.dst + r.done;
        const size_t chunk = static_cast<size_t>(std::min(job.len - r.done, page_rest(dst)));
        for (size_t i = 0; i < chunk; ++i)
          buf[i] = static_cast<uint8_t>(job.pattern >> (8 * ((r.done + i) % 8)));
        const DmaOutcome wr = port_.write(wstream, dst, buf, chunk);
        r.checksum = fnv1a(r.checksum, buf, wr.done);
        r.done += wr.done;
        if (!wr.ok()) {
          fail(wr.status, true, dst + wr.done);
          break;
        }
        regs_.set(DONE::kOffset, r.done);
      }
      break;

    case Op::kChecksum:
      while (r.done < job.len) {
        const uint64_t src = job.src + r.done;
        const size_t chunk = static_cast<size_t>(std::min(job.len - r.done, page_rest(src)));
        const DmaOutcome rd = port_.read(rstream, src, buf, chunk);
        r.checksum = fnv1a(r.checksum, buf, rd.done);
        r.done += rd.done;
        if (!rd.ok()) {
          fail(rd.status, false, src + rd.done);
          break;
        }
        regs_.set(DONE::kOffset, r.done);
      }
      break;

    default:
      r.state = State::kFault;
      r.fault = FaultKind::kBadCommand;
      break;
  }
  return r;
}

bool DmaTestEngine::signal(const Job& job) {
  if (job.irq && options_.line >= 0) {
    counters_.irqs++;
    options_.irq->raise(static_cast<unsigned>(options_.line));
  }
  if (!job.msi || job.msi_addr == 0) return true;
  counters_.msis++;
  const uint8_t data[4] = {
      static_cast<uint8_t>(job.msi_data), static_cast<uint8_t>(job.msi_data >> 8),
      static_cast<uint8_t>(job.msi_data >> 16), static_cast<uint8_t>(job.msi_data >> 24)};
  // PCIe MSIs carry the requester's StreamID but no PASID.
  const DmaStream stream{.sid = options_.stream_id};
  if (port_.write(stream, job.msi_addr, data, sizeof(data)).ok()) return true;
  counters_.msi_aborts++;
  regs_.modify(STATUS::kOffset, 0, STATUS::MSI_ABT::kMask);
  return false;
}

// ---------------------------------------------------------------------------------------------
// Test controls.

void DmaTestEngine::wait_idle() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return in_flight_ == 0; });
}

bool DmaTestEngine::busy() const {
  return STATUS::from_value(static_cast<uint32_t>(regs_.value(STATUS::kOffset)))
             .get<STATUS::STATE>() == static_cast<uint32_t>(State::kBusy);
}

bool DmaTestEngine::idle() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_flight_ == 0;
}

void DmaTestEngine::reset() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return in_flight_ == 0; });
  regs_.reset();
}

EngineCounters DmaTestEngine::counters() const {
  return EngineCounters{
      .jobs = counters_.jobs.load(),
      .faults = counters_.faults.load(),
      .bytes = counters_.bytes.load(),
      .busy_errors = counters_.busy_errors.load(),
      .irqs = counters_.irqs.load(),
      .msis = counters_.msis.load(),
      .msi_aborts = counters_.msi_aborts.load(),
  };
}

}  // namespace strata::sim::dma_engine
