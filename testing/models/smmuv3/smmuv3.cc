// SPDX-License-Identifier: MIT
#include "testing/models/smmuv3/smmuv3.h"

#include <string.h>

#include <algorithm>
#include <utility>

#include <fmt/format.h>

#include "arch/bug.h"
#include "arch/log.h"
#include "testing/models/smmuv3/fault_events.h"
#include "testing/models/smmuv3/stages.h"

namespace strata::sim::smmuv3 {

using arch::Command;
using arch::Opcode;

namespace {

std::atomic<uint64_t> g_next_id{1};

// The calling thread's front cache for the instance it used last.
struct ThreadFront {
  uint64_t owner = 0;
  FrontCache* front = nullptr;
};
thread_local ThreadFront t_front;

void bump(std::atomic<uint64_t>& c) { FrontCounters::bump(c); }

}  // namespace

Result<std::unique_ptr<Smmuv3>> Smmuv3::create(const Config& config, PhysMem& mem,
                                               const Options& options) {
  Result<std::unique_ptr<Registers>> regs = Registers::create(config, options.name);
  if (!regs.ok()) return regs.error();
  std::unique_ptr<Smmuv3> s(new Smmuv3(config, mem, options));
  s->regs_ = regs.release_value();
  if (Result<void> q = s->make_queues(); !q.ok()) return q.error();
  s->set_oracle(options.oracle);
  return s;
}

Smmuv3::Smmuv3(const Config& config, PhysMem& mem, const Options& options)
    : config_(config),
      mem_(mem),
      options_(options),
      caps_(walker_caps(config)),
      id_(g_next_id.fetch_add(1)),
      config_cache_(config, options.config_cache),
      tlb_(options.tlb_sets, options.tlb_ways) {}

Smmuv3::~Smmuv3() {
  // The model thread calls execute(), which uses the caches: it goes first.
  queues_.reset();
}

Result<void> Smmuv3::make_queues() {
  Result<std::unique_ptr<Queues>> q =
      Queues::create(*regs_, mem_, *this,
                     Queues::Options{.threading = options_.threading,
                                     .irq = options_.irq,
                                     .lines = options_.lines,
                                     .on_cr0_update = [this](uint32_t old_ack, uint32_t new_ack) {
                                       cr0_updated(old_ack, new_ack);
                                     }});
  if (!q.ok()) return q.error();
  queues_ = q.release_value();
  return {};
}

void Smmuv3::reset() {
  queues_.reset();  // stops the model thread and detaches from the registers
  regs_->reset();
  smmuen_.store(false, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    strtab_ = StreamTableRegs{};
  }
  config_cache_.invalidate_all();
  tlb_.invalidate_all();
  atc_invs_->retire_all();
  atschk_.store(false);
  vmw_reported_.store(false);
  if (!make_queues().ok()) STRATA_BUG("smmuv3 model: Queues::create failed on reset");
}

// Runs while an Update of CR0 completes, before CR0ACK shows it (Queues' lock held).
void Smmuv3::cr0_updated(uint32_t old_ack, uint32_t new_ack) {
  using arch::CR0;
  const bool was = old_ack & CR0::SMMUEN::kMask, now = new_ack & CR0::SMMUEN::kMask;
  if (now && !was) {
    // 6.3.24-25, 6.3.12: read-only from now on, so one copy serves every lookup.
    std::lock_guard<std::mutex> lock(state_mu_);
    strtab_ = StreamTableRegs::read(*regs_);
  }
  if (now != was) smmuen_.store(now, std::memory_order_release);
  // ATSCHK is read from here on by the Translated transactions and Translation Requests that
  // look at STE.EATS (3.9.2: "STEs (pre)fetched after this point" use the new value; the model
  // caches no ATSCHK, so every later one does).
  atschk_.store(CR0::ATSCHK::extract(new_ack) != 0, std::memory_order_release);
  if (CR0::VMW::extract(new_ack) != 0 && !vmw_reported_.exchange(true))
    regs_->report_unimplemented("SMMU_CR0.VMW: VMID wildcards (VMIDs match exactly)");
}

StreamTableRegs Smmuv3::strtab() const {
  std::lock_guard<std::mutex> lock(state_mu_);
  return strtab_;
}

FrontCache& Smmuv3::front() {
  if (t_front.owner == id_) return *t_front.front;
  std::lock_guard<std::mutex> lock(threads_mu_);
  std::unique_ptr<FrontCache>& f = fronts_[std::this_thread::get_id()];
  if (!f) f = std::make_unique<FrontCache>();
  t_front = ThreadFront{.owner = id_, .front = f.get()};
  return *f;
}

// ---------------------------------------------------------------------------------------------
// The DMA port.

Translated Smmuv3::translate(const DmaRequest& req) {
  FrontCache& f = front();
  Source source = Source::none;
  Translated t;
  resolve(req, f, t, source);
  finish(t, req, source, f);
  return t;
}

void Smmuv3::terminate_silently(Translated& t) {
  t.status = Translated::Status::kAbort;
  t.term = std::make_shared<Translated::Termination>();
}

void Smmuv3::resolve(const DmaRequest& req, FrontCache& f, Translated& t, Source& source) {
  if (req.translated) return resolve_translated(req, f, t, source);
  FrontCounters& c = f.counters;
  if (!smmuen_.load(std::memory_order_acquire)) {
    // 3.4, 6.3.14: SMMUEN == 0, traffic follows GBPA; an address beyond the OAS aborts, with no
    // event.
    bump(c.bypassed);
    if ((queues_->gbpa() & arch::GBPA::ABORT::kMask) || (req.iova >> caps_.oas_bits)) {
      terminate_silently(t);
      bump(c.terminated);
      return;
    }
    t.pa = req.iova;
    return;
  }

  bump(c.translations);
  f.sync(config_cache_.generation(), tlb_.generation());
  const uint32_t key = FrontCache::substream_key(req.ssv, req.ssid);
  const unsigned bit = access_bit(req.access);
  if (const FrontCache::Entry* e = f.find(req.sid, key, req.iova, bit)) {
    bump(c.front_hits);
    bump(c.tlb_hits);
    t.pa = e->oa_base | (req.iova & ((uint64_t{1} << e->size_log2) - 1));
    t.size_log2 = e->size_log2;
    t.cached = true;
    source = Source::tlb;
    return;
  }

  // The configuration: the thread's last one, or through the configuration cache.
  ConfigCache::Lookup fetched;
  const ConfigCache::Lookup* lk;
  if (const FrontCache::ConfigFront* cf = f.find_config(req.sid, key)) {
    lk = &cf->lookup;
    bump(c.config_hits);
    t.cached = true;
  } else {
    fetched = config_cache_.lookup(mem_, strtab(),
                                   StreamRequest{.sid = req.sid,
                                                 .ssv = req.ssv,
                                                 .ssid = req.ssid,
                                                 .input_addr = req.iova,
                                                 .access = req.access});
    bump(fetched.cached() ? c.config_hits : c.config_misses);
    t.cached = fetched.cached();
    if (fetched.result->ok()) f.fill_config(req.sid, key, fetched);
    lk = &fetched;
  }
  if (t.cached) source = Source::config;
  const ConfigResult& r = *lk->result;
  if (r.ste && r.ste->unimplemented) regs_->report_unimplemented(r.ste->unimplemented);
  if (!r.ok()) {
    terminate_config(t, r, req);
    bump(c.terminated);
    return;
  }
  const StreamConfig& ste = *r.ste;
  if (ste.mode == StreamMode::abort) {  // 5.2: abort, no event
    terminate_silently(t);
    bump(c.terminated);
    return;
  }
  const Access access = ste.override_access(req.access);
  if (ste.mode == StreamMode::bypass) {
    // 3.4: both stages bypass; an address beyond the OAS is a stage 1 Address Size fault.
    if (req.iova >> caps_.oas_bits) {
      terminate_fault(t, bypass_addr_size_fault(req.iova, access), r, req);
      bump(c.terminated);
      return;
    }
    t.pa = req.iova;
    return;
  }

  TlbContext ctx;
  const bool translates = tlb_context(r, ctx);
  const uint64_t addr =
      ctx.kind == TlbKind::s2 || !r.cd ? req.iova : tlb_tag_address(r.cd->s1, req.iova);
  if (translates) {
    TlbEntry e;
    if (tlb_.lookup(ctx, addr, e) && !(access.write && clean_for_write(e))) {
      bump(c.tlb_hits);
      t.cached = true;
      source = Source::tlb;
      const Fault pf = check_permissions(e, req.iova, access);
      if (pf.type != FaultType::none) {
        terminate_fault(t, pf, r, req);
        bump(c.terminated);
        return;
      }
      t.pa = e.pa_of(req.iova);
      t.size_log2 = e.size_log2;
      f.fill(req.sid, key, req.iova, e.size_log2, e.oa_base, bit);
      return;
    }
    bump(c.tlb_misses);
    bump(c.walks);
  }

  const uint64_t tlb_gen = f.tlb_generation();
  const StageWalk sw = walk_stages(mem_, r, req.iova, access, caps_);
  if (!sw.walk.ok()) {
    terminate_fault(t, sw.walk.fault, r, req);
    bump(c.terminated);
    return;
  }
  t.pa = sw.walk.tr.oa;
  t.size_log2 = sw.walk.tr.size_log2;
  if (!sw.bypassed) {
    const TlbEntry e = make_tlb_entry(sw.ctx, addr, sw.walk.tr, sw.s1, sw.s2);
    tlb_.insert(e, tlb_gen);
    f.fill(req.sid, key, req.iova, e.size_log2, e.oa_base, bit);
  }
  return;
}

void Smmuv3::terminate_config(Translated& t, const ConfigResult& r, const DmaRequest& req) {
  t.status = Translated::Status::kAbort;  // 5.5: configuration errors abort
  t.term = std::make_shared<Translated::Termination>();
  Translated::Termination& term = *t.term;
  term.config_error = r.error;
  term.has_event = true;
  term.record = r.record;
  if (r.error == LookupError::cd_s2_fault) {
    // A stage-2 fault on a CD or L1CD fetch: the walker's fault, as its own record (which
    // carries F_WALK_EABT's FetchAddr).
    term.fault = r.fault;
    term.event = fault_record(r.fault, req.sid, req.ssv, req.ssid, caps_.oas_bits);
    if (r.stall) regs_->report_unimplemented("stalled transactions (STE.S2S): terminated instead");
  } else {
    term.event = r.event;
  }
}

void Smmuv3::terminate_fault(Translated& t, const Fault& f, const ConfigResult& r,
                             const DmaRequest& req) {
  const FaultDisposition d = fault_disposition(f, *r.ste, r.cd ? &*r.cd : nullptr);
  t.status = d.abort ? Translated::Status::kAbort : Translated::Status::kRazWi;
  t.term = std::make_shared<Translated::Termination>();
  Translated::Termination& term = *t.term;
  term.fault = f;
  term.has_event = true;
  term.record = d.record;
  term.event = fault_record(f, req.sid, req.ssv, req.ssid, caps_.oas_bits);
  if (d.stall)
    regs_->report_unimplemented("stalled transactions (CD.S / STE.S2S): terminated instead");
}

void Smmuv3::finish(Translated& t, const DmaRequest& req, Source source, FrontCache& f) {
  if (t.term && t.term->has_event && t.term->record) {
    t.term->queue_result = queues_->record_event(t.term->event);
    t.term->recorded = true;
    bump(f.counters.events);
  }
  if (source == Source::none || !oracle_.load(std::memory_order_relaxed)) return;
  const Outcome served = outcome_of(t);
  const Outcome fresh = req.translated ? fresh_translated_outcome(req) : fresh_outcome(req);
  if (served == fresh) return;
  keep_report(StaleReport{.req = req,
                          .source = source == Source::tlb ? "TLB" : "configuration cache",
                          .cached = describe(served),
                          .fresh = describe(fresh)});
}

void Smmuv3::keep_report(StaleReport report) {
  const DmaRequest& req = report.req;
  dev_log(LogLevel::notice, regs_->name(),
          "oracle: stale translation, StreamID {:#x} SSV {} SubstreamID {:#x} address {:#x}{}: "
          "{} served {}, memory gives {}",
          req.sid, int{req.ssv}, req.ssid, req.iova, req.translated ? " (Translated)" : "",
          report.source, report.cached, report.fresh);
  stale_count_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(reports_mu_);
  reports_.push_back(std::move(report));
}

Smmuv3::Outcome Smmuv3::outcome_of(const Translated& t) {
  Outcome o;
  o.status = t.status;
  o.pa = t.ok() ? t.pa : 0;
  o.has_event = t.has_event();
  o.event = t.has_event() ? t.term->event.type() : 0;
  return o;
}

// The same transaction translated from memory alone: no cache, no hardware update.
Smmuv3::Outcome Smmuv3::fresh_outcome(const DmaRequest& req) {
  Outcome o;
  const ConfigResult r = config_cache_.lookup_engine().lookup(mem_, strtab(),
                                                              StreamRequest{.sid = req.sid,
                                                                            .ssv = req.ssv,
                                                                            .ssid = req.ssid,
                                                                            .input_addr = req.iova,
                                                                            .access = req.access});
  auto fault = [&](const Fault& f) {
    const FaultDisposition d = fault_disposition(f, *r.ste, r.cd ? &*r.cd : nullptr);
    o.status = d.abort ? Translated::Status::kAbort : Translated::Status::kRazWi;
    o.has_event = true;
    o.event = static_cast<uint8_t>(fault_event_type(f.type));
    return o;
  };
  if (!r.ok()) {
    o.status = Translated::Status::kAbort;
    o.has_event = true;
    o.event = r.error == LookupError::cd_s2_fault
                  ? static_cast<uint8_t>(fault_event_type(r.fault.type))
                  : r.event.type();
    return o;
  }
  const Access access = r.ste->override_access(req.access);
  switch (r.ste->mode) {
    case StreamMode::abort: o.status = Translated::Status::kAbort; return o;
    case StreamMode::bypass:
      if (req.iova >> caps_.oas_bits) return fault(bypass_addr_size_fault(req.iova, access));
      o.pa = req.iova;
      return o;
    default: break;
  }
  const StageWalk sw = walk_stages(mem_, r, req.iova, access, caps_, /*hw_updates=*/false);
  if (!sw.walk.ok()) return fault(sw.walk.fault);
  o.pa = sw.walk.tr.oa;
  return o;
}

std::string Smmuv3::describe(const Outcome& o) {
  if (o.status == Translated::Status::kOk) return fmt::format("PA {:#x}", o.pa);
  std::string s = o.status == Translated::Status::kAbort ? "abort" : "RAZ/WI";
  if (o.has_event) s += fmt::format(" {}", static_cast<arch::EventType>(o.event));
  return s;
}

DmaResult Smmuv3::dma_read(uint32_t sid, bool ssv, uint32_t ssid, uint64_t iova, void* buf,
                           size_t len, Access access) {
  return dma_read(DmaRequest{.sid = sid, .ssv = ssv, .ssid = ssid, .iova = iova, .access = access},
                  buf, len);
}

DmaResult Smmuv3::dma_write(uint32_t sid, bool ssv, uint32_t ssid, uint64_t iova, const void* buf,
                            size_t len, Access access) {
  return dma_write(DmaRequest{.sid = sid, .ssv = ssv, .ssid = ssid, .iova = iova, .access = access},
                   buf, len);
}

DmaResult Smmuv3::dma_read(const DmaRequest& req, void* buf, size_t len) {
  DmaRequest r = req;
  r.access.write = false;
  return dma(r, static_cast<uint8_t*>(buf), len, false);
}

DmaResult Smmuv3::dma_write(const DmaRequest& req, const void* buf, size_t len) {
  DmaRequest r = req;
  r.access.write = true;
  r.access.instr = false;
  // Only read from: the const is dropped to share the page loop with dma_read.
  return dma(r, static_cast<uint8_t*>(const_cast<void*>(buf)), len, true);
}

DmaResult Smmuv3::dma(const DmaRequest& first, uint8_t* buf, size_t len, bool write) {
  FrontCache& f = front();
  DmaResult res;
  while (res.done < len) {
    DmaRequest req = first;
    req.iova = first.iova + res.done;
    Source source = Source::none;
    Translated t;
    gate_enter();
    resolve(req, f, t, source);
    // The page (or larger span) this transaction may cover: a terminated one covers the
    // smallest granule.
    const unsigned size_log2 = t.ok() ? t.size_log2 : 12;
    const uint64_t mask = (uint64_t{1} << size_log2) - 1;
    const size_t chunk =
        static_cast<size_t>(std::min<uint64_t>(len - res.done, mask - (req.iova & mask) + 1));
    bool bus_error = false;
    if (t.ok()) {
      // RAM is accessed inside the gate, so a CMD_SYNC waits for it; a device window is not
      // (its handler may raise an interrupt whose handler issues commands).
      const bool ram = mem_.host_ptr(t.pa, chunk) != nullptr;
      if (!ram) gate_exit();
      const Result<void> a =
          write ? mem_.write(t.pa, buf + res.done, chunk) : mem_.read(t.pa, buf + res.done, chunk);
      if (ram) gate_exit();
      bus_error = !a.ok();
    } else {
      gate_exit();
      if (t.status == Translated::Status::kRazWi && !write) memset(buf + res.done, 0, chunk);
    }
    finish(t, req, source, f);
    if (t.status == Translated::Status::kAbort) {
      res.status = DmaResult::Status::kAbort;
      res.fault = t;
      return res;
    }
    if (bus_error) {
      res.status = DmaResult::Status::kBusError;
      res.bus_pa = t.pa;
      return res;
    }
    res.done += chunk;
  }
  return res;
}

void Smmuv3::gate_enter() {
  std::unique_lock<std::mutex> lock(gate_mu_);
  gate_cv_.wait(lock, [this] { return !gate_draining_; });
  ++gate_active_;
}

void Smmuv3::gate_exit() {
  std::lock_guard<std::mutex> lock(gate_mu_);
  if (--gate_active_ == 0 && gate_draining_) gate_cv_.notify_all();
}

void Smmuv3::gate_drain() {
  std::unique_lock<std::mutex> lock(gate_mu_);
  gate_draining_ = true;
  gate_cv_.wait(lock, [this] { return gate_active_ == 0; });
  gate_draining_ = false;
  gate_cv_.notify_all();
}

// ---------------------------------------------------------------------------------------------
// Commands.

ExecStatus Smmuv3::execute(const Command& cmd) {
  commands_[cmd.opcode()].fetch_add(1, std::memory_order_relaxed);
  // The stream table geometry for L1STD invalidations: the latched registers while enabled,
  // the current ones otherwise.
  auto geometry = [&] {
    return smmuen_.load(std::memory_order_acquire) ? strtab() : StreamTableRegs::read(*regs_);
  };
  switch (static_cast<Opcode>(cmd.opcode())) {
    case Opcode::CMD_PREFETCH_CONFIG: {
      // 4.2.1: may fill the configuration cache; errors are not reported. Nothing is fetched
      // while SMMUEN == 0 (3.21.3).
      using P = arch::CmdPrefetchConfig;
      const P p = arch::descriptor_cast<P>(cmd);
      if (smmuen_.load(std::memory_order_acquire))
        (void)config_cache_.lookup(
            mem_, strtab(),
            StreamRequest{.sid = static_cast<uint32_t>(p.get<P::StreamID>()),
                          .ssv = p.get<P::SSV>() != 0,
                          .ssid = static_cast<uint32_t>(p.get<P::SubstreamID>())});
      break;
    }
    case Opcode::CMD_PREFETCH_ADDR: break;  // a hint; the model does not prefetch translations
    case Opcode::CMD_CFGI_STE: {
      using C = arch::CmdCfgiSte;
      const C c = arch::descriptor_cast<C>(cmd);
      config_cache_.invalidate_ste(geometry(), static_cast<uint32_t>(c.get<C::StreamID>()),
                                   c.get<C::Leaf>() != 0);
      break;
    }
    case Opcode::CMD_CFGI_STE_RANGE: {  // and CMD_CFGI_ALL (Range == 31)
      using C = arch::CmdCfgiSteRange;
      const C c = arch::descriptor_cast<C>(cmd);
      const unsigned range = static_cast<unsigned>(c.get<C::Range>());
      if (range == C::kRangeAll)
        config_cache_.invalidate_all();
      else
        config_cache_.invalidate_ste_range(geometry(), static_cast<uint32_t>(c.get<C::StreamID>()),
                                           range);
      break;
    }
    case Opcode::CMD_CFGI_CD: {
      using C = arch::CmdCfgiCd;
      const C c = arch::descriptor_cast<C>(cmd);
      config_cache_.invalidate_cd(static_cast<uint32_t>(c.get<C::StreamID>()),
                                  static_cast<uint32_t>(c.get<C::SubstreamID>()),
                                  c.get<C::Leaf>() != 0);
      break;
    }
    case Opcode::CMD_CFGI_CD_ALL: {
      using C = arch::CmdCfgiCdAll;
      config_cache_.invalidate_cd_all(
          static_cast<uint32_t>(arch::descriptor_cast<C>(cmd).get<C::StreamID>()));
      break;
    }
    case Opcode::CMD_TLBI_NH_ALL:
    case Opcode::CMD_TLBI_NH_ASID:
    case Opcode::CMD_TLBI_NH_VA:
    case Opcode::CMD_TLBI_NH_VAA:
    case Opcode::CMD_TLBI_EL2_ALL:
    case Opcode::CMD_TLBI_EL2_ASID:
    case Opcode::CMD_TLBI_EL2_VA:
    case Opcode::CMD_TLBI_EL2_VAA:
    case Opcode::CMD_TLBI_S12_VMALL:
    case Opcode::CMD_TLBI_S2_IPA:
    case Opcode::CMD_TLBI_NSNH_ALL: {
      const TlbiScope scope = decode_tlbi(arch::descriptor_cast<arch::CmdTlbi>(cmd), config_,
                                          regs_->read<arch::CR2>().get<arch::CR2::E2H>() != 0);
      tlb_invalidated_.fetch_add(tlb_.invalidate(scope), std::memory_order_relaxed);
      break;
    }
    case Opcode::CMD_ATC_INV: execute_atc_inv(cmd); break;
    case Opcode::CMD_PRI_RESP: execute_pri_resp(cmd); break;
    case Opcode::CMD_RESUME:  // no transaction is ever stalled
    case Opcode::CMD_STALL_TERM: break;
    case Opcode::CMD_SYNC:
      // 3.9.1.4, 4.5.1: complete once every earlier CMD_ATC_INV has its Invalidate Completion;
      // one that never comes stops the queue with CERROR_ATC_INV_SYNC.
      if (!wait_atc_invalidations()) return ExecStatus::kAtcInvTimeout;
      // 3.21.1, 4.7.3: complete once every transaction that may have used an invalidated entry
      // is done. The invalidations above finished inside execute(); DMA still in flight is not.
      gate_drain();
      break;
    default: break;  // what check_command let through and the model has no work for
  }
  return ExecStatus::kDone;
}

// ---------------------------------------------------------------------------------------------
// Diagnostics.

Smmuv3Counters Smmuv3::counters() const {
  Smmuv3Counters out;
  {
    std::lock_guard<std::mutex> lock(threads_mu_);
    for (const auto& [id, f] : fronts_) {
      const FrontCounters& c = f->counters;
      auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
      out.translations += get(c.translations);
      out.bypassed += get(c.bypassed);
      out.front_hits += get(c.front_hits);
      out.tlb_hits += get(c.tlb_hits);
      out.tlb_misses += get(c.tlb_misses);
      out.walks += get(c.walks);
      out.config_hits += get(c.config_hits);
      out.config_misses += get(c.config_misses);
      out.terminated += get(c.terminated);
      out.events += get(c.events);
      out.ats_translation_requests += get(c.ats_requests);
      out.ats_translated += get(c.translated);
    }
  }
  out.tlb_invalidated = tlb_invalidated_.load(std::memory_order_relaxed);
  out.tlb_hint_mismatches = tlb_.hint_mismatches();
  out.stale_reports = stale_count_.load(std::memory_order_relaxed);
  out.atc_invalidations_delivered = atc_inv_delivered_.load(std::memory_order_relaxed);
  out.atc_invalidations_dropped = atc_inv_dropped_.load(std::memory_order_relaxed);
  out.atc_invalidation_timeouts = atc_invs_->timed_out();
  out.atc_invalidations_late = atc_invs_->late();
  out.page_requests = page_requests_.load(std::memory_order_relaxed);
  out.prg_responses_delivered = prg_delivered_.load(std::memory_order_relaxed);
  out.prg_responses_dropped = prg_dropped_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < out.commands.size(); ++i)
    out.commands[i] = commands_[i].load(std::memory_order_relaxed);
  return out;
}

std::vector<StaleReport> Smmuv3::stale_reports() const {
  std::lock_guard<std::mutex> lock(reports_mu_);
  return reports_;
}

void Smmuv3::clear_stale_reports() {
  std::lock_guard<std::mutex> lock(reports_mu_);
  reports_.clear();
}

}  // namespace strata::sim::smmuv3
