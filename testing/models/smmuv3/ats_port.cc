// SPDX-License-Identifier: MIT
// The SMMU side of PCIe ATS and PRI (IHI 0070 3.9.1, 4.5, chapter 8, 13.6, 13.7): ATS
// Translation Requests, Translated transactions, CMD_ATC_INV with the CMD_SYNC that waits for
// it, CMD_PRI_RESP and the PRI queue's automatic responses. Part of Smmuv3 (smmuv3.h).
//
// Translation Requests (3.9.1.2) use the configuration cache and the TLB like any transaction
// and may fill them, but are never cached anywhere else: an ATC filled from a stale TLB entry
// stays wrong until both CMD_TLBI_* and CMD_ATC_INV have run, which is the order 3.9.1 and 4.5.1
// require of software. They record no event but F_BAD_ATS_TREQ.
//
// Choices where the spec leaves one (the strict one each time):
//  - NW == 1 is never granted Write, even on a page already dirty (13.7 permits either), except
//    in 13.6.4's identity response, for which the spec gives W == 1.
//  - A Translated address beyond the OAS is aborted without an event, not truncated (3.9.1.1).
//  - A Translated transaction (SMMU_IDR3.PASIDTT == 0: SSV == 0) with ATSCHK == 1 is checked
//    against the STE only (V, Config, EATS): F_STREAM_DISABLED and C_BAD_SUBSTREAMID apply to
//    Translated transactions only with PASIDTT == 1 (7.3.7, 7.3.9), which this SMMU lacks.
//  - CMD_ATC_INV and CMD_PRI_RESP with SSV == 1 on an SMMU without substreams have no effect
//    (4.5.1, 4.5.2: CONSTRAINED UNPREDICTABLE between that and "as though SSV == 0").
//  - A stage-1-only stream whose stage 1 S1DSS skips answers with a 4 KB identity span (13.6.4
//    permits up to the OAS).
//  - SMMU_CR2.REC_CFG_ATS is not implemented (IDR0.ATSRECERR == 0), so configuration errors of
//    Translation Requests, Translated transactions and STE.PPAR checks are never recorded.
#include <fmt/format.h>

#include "arch/log.h"
#include "testing/models/smmuv3/ats_events.h"
#include "testing/models/smmuv3/fault_events.h"
#include "testing/models/smmuv3/smmuv3.h"
#include "testing/models/smmuv3/stages.h"

namespace strata::sim::smmuv3 {

using arch::Command;
using arch::EventRecord;
using arch::EventType;

namespace {

void bump(std::atomic<uint64_t>& c) { FrontCounters::bump(c); }

// Whether every stage of a cached translation permits `a`.
bool permits(const TlbEntry& e, Access a) {
  return (!e.has_s1() || s1_permits(e.s1, e.tr.s1_perm, a)) &&
         (!e.has_s2() || s2_permits(e.s2, e.tr.s2_perm, a));
}

AtsCompletion completion(AtsCompletion::Status status) {
  AtsCompletion c;
  c.status = status;
  return c;
}

}  // namespace

uint8_t Smmuv3::stu_log2() const {
  // 3.9.1: the STU is the smallest granule the SMMU implements (SMMU_IDR5).
  return config_.gran4k ? 12 : config_.gran16k ? 14 : 16;
}

// STE.EATS as it applies now (5.2, 3.9.2): the decoder made 0b11 (no DPT) and the IGNORED
// cases 0b00; split-stage behaves as 0b00 while ATSCHK == 0.
uint8_t Smmuv3::effective_eats(const StreamConfig& ste) const {
  if (ste.EATS == arch::kEatsS1Chk && !ats_check()) return arch::kEatsAbort;
  return ste.EATS;
}

void Smmuv3::attach_endpoint(uint32_t sid, Endpoint* endpoint) {
  std::lock_guard<std::mutex> lock(endpoints_mu_);
  if (endpoint)
    endpoints_[sid] = endpoint;
  else
    endpoints_.erase(sid);
}

void Smmuv3::detach_endpoint(uint32_t sid) {
  std::lock_guard<std::mutex> lock(endpoints_mu_);
  endpoints_.erase(sid);
}

// ---------------------------------------------------------------------------------------------
// ATS Translation Requests (3.9.1.2, 13.6, 13.7).

AtsCompletion Smmuv3::bad_ats_treq(const AtsTranslationRequest& req, FrontCache& f) {
  // 7.3.6: recorded whatever the stream's fault configuration; the answer is UR.
  BadAtsTreqRecord rec;
  rec.set<BadAtsTreqRecord::Type>(static_cast<uint64_t>(EventType::F_BAD_ATS_TREQ))
      .set<BadAtsTreqRecord::StreamID>(req.sid)
      .set<BadAtsTreqRecord::SSV>(req.ssv)
      .set<BadAtsTreqRecord::SubstreamID>(req.ssv ? req.ssid & 0xfffff : 0)
      .set<BadAtsTreqRecord::InputAddr>(req.address);
  queues_->record_event(arch::descriptor_cast<EventRecord>(rec));
  bump(f.counters.events);
  return completion(AtsCompletion::Status::kUnsupportedRequest);
}

AtsCompletion Smmuv3::ats_translate(const AtsTranslationRequest& in) {
  FrontCache& f = front();
  FrontCounters& c = f.counters;
  bump(c.ats_requests);
  AtsTranslationRequest req = in;
  req.address &= ~uint64_t{0xfff};
  // 13.7.1: without a PASID there is no Priv or Exe (they travel in the prefix).
  if (!req.ssv) req.exe = req.priv = false;
  req.ssid = req.ssv ? req.ssid : 0;

  // An SMMU without IDR0.ATS has no ATS interface (3.9.1): nothing but UR comes back.
  if (!config_.ats) return completion(AtsCompletion::Status::kUnsupportedRequest);
  // 3.9.1.2, 7.3.6: SMMUEN == 0 disables ATS: UR and F_BAD_ATS_TREQ.
  if (!smmuen_.load(std::memory_order_acquire)) return bad_ats_treq(req, f);

  const ConfigCache::Lookup lk = config_cache_.lookup(mem_, strtab(),
                                                      StreamRequest{.sid = req.sid,
                                                                    .ssv = req.ssv,
                                                                    .ssid = req.ssid,
                                                                    .input_addr = req.address,
                                                                    .access = {.priv = req.priv}});
  bump(lk.cached() ? c.config_hits : c.config_misses);
  const ConfigResult& r = *lk.result;
  if (r.ste && r.ste->unimplemented) regs_->report_unimplemented(r.ste->unimplemented);
  AtsCompletion denied;  // 3.9.1.2: Success, R == W == Exe == 0, one STU
  denied.status = AtsCompletion::Status::kSuccess;
  denied.size_log2 = stu_log2();
  denied.Priv = req.priv;
  if (r.ste) {
    // 5.2 Config: 0b0xx refuses silently with UR; 0b100 makes EATS effectively 0b00, which
    // refuses with UR and F_BAD_ATS_TREQ (5.2 EATS, 7.3.6). Checked before the substream steps:
    // they are about translating, which the STE does not allow.
    if (r.ste->mode == StreamMode::abort)
      return completion(AtsCompletion::Status::kUnsupportedRequest);
    if (r.ste->mode == StreamMode::bypass || effective_eats(*r.ste) == arch::kEatsAbort)
      return bad_ats_treq(req, f);
  }
  if (!r.ok()) {
    // 3.9.1.2: configuration errors are CA (5.2: "STE.V == 0 ... CA status. No event"). A
    // stage-2 fault on a CD fetch is translation-related (Success, no access), except an
    // external abort (F_WALK_EABT: CA).
    if (r.error == LookupError::cd_s2_fault && r.fault.type != FaultType::walk_eabt) return denied;
    return completion(AtsCompletion::Status::kCompleterAbort);
  }

  const StreamConfig& ste = *r.ste;
  const bool split = effective_eats(ste) == arch::kEatsS1Chk;
  TlbContext ctx;
  if (!tlb_context(r, ctx)) {
    // 13.6.4: stage 1 skipped (S1DSS) and no stage 2: an identity span, R == W == 1 (whatever
    // NW says: the spec gives W == 1 here), after the IAS check of the bypassed stage 1 (3.4).
    if (req.address >> caps_.ias_bits()) return denied;
    AtsCompletion id;
    id.status = AtsCompletion::Status::kSuccess;
    id.translated_address = req.address;
    id.size_log2 = stu_log2();
    id.R = id.W = true;
    return id;
  }

  // 13.7.1: the permissions are those of the effective privilege (STE.PRIVCFG) and, for R and
  // Exe, the effective instruction/data attribute (STE.INSTCFG): a read as the STE overrides
  // it, a write, and an instruction fetch.
  const Access rd = ste.override_access(Access{.priv = req.priv});
  const Access wr = ste.override_access(Access{.write = true, .priv = req.priv});
  const Access ex = ste.override_access(Access{.instr = true, .priv = req.priv});
  const uint64_t tag =
      ctx.kind == TlbKind::s2 ? req.address : tlb_tag_address(r.cd->s1, req.address);

  // A walk with `a` that fills the TLB, as any transaction's walk does (3.9.1: "might ... cause
  // SMMU TLB entries to be inserted"), and makes the hardware updates `a` earns (3.13.7).
  auto walk = [&](Access a, TlbEntry& out) {
    bump(c.walks);
    const uint64_t gen = tlb_.generation();
    const StageWalk sw = walk_stages(mem_, r, req.address, a, caps_);
    if (!sw.walk.ok()) return sw.walk.fault;
    out = make_tlb_entry(sw.ctx, tag, sw.walk.tr, sw.s1, sw.s2);
    tlb_.insert(out, gen);
    return Fault{};
  };

  TlbEntry e;
  if (tlb_.lookup(ctx, tag, e)) {
    bump(c.tlb_hits);
  } else {
    bump(c.tlb_misses);
    // The first of a read and (NW == 0) a write that every check passes gives the translation;
    // its walk sets AF, which 13.7 ties to a response granting something. No execute probe:
    // Exe is granted only with R (13.7.1), and an execute-only page grants nothing.
    const Access probes[2] = {rd, wr};
    const unsigned n = req.nw ? 1 : 2;
    bool have = false;
    for (unsigned i = 0; i < n && !have; ++i) {
      const Fault ft = walk(probes[i], e);
      if (ft.type == FaultType::none) {
        have = true;
      } else if (ft.type == FaultType::walk_eabt) {
        return completion(AtsCompletion::Status::kCompleterAbort);  // 3.9.1.2: F_WALK_EABT
      } else if (ft.type != FaultType::permission || ft.cls != FaultClass::in) {
        // 3.9.1.2: Translation, Address Size and Access faults at either stage, and every
        // stage-2 fault of a stage-1 table walk, grant nothing.
        return denied;
      }
      // A Permission fault on the address refuses that access only; try the next.
    }
    if (!have) return denied;
  }

  AtsCompletion out;
  out.status = AtsCompletion::Status::kSuccess;
  out.R = permits(e, rd);
  out.Exe = req.exe && out.R && permits(e, ex);  // 13.7.1: granting X implies granting R
  out.W = !req.nw && permits(e, wr);
  if (out.W && clean_for_write(e)) {
    // 13.7: NW == 0 to a writable-clean page marks it dirty before granting Write.
    TlbEntry dirty;
    if (walk(wr, dirty).type == FaultType::none)
      e = dirty;
    else
      out.W = false;
  }
  if (!out.R && !out.W && !out.Exe) return denied;
  out.Priv = req.priv;  // 13.7.1: the request's, whatever PRIVCFG did
  out.size_log2 = e.size_log2;
  // 13.6.3: split-stage ATS returns stage 1's output, an IPA.
  out.translated_address = (split ? e.ipa_of(tag) : e.pa_of(tag)) & ~e.span_mask();
  return out;
}

// ---------------------------------------------------------------------------------------------
// ATS Translated transactions (3.9.1.3, 13.6.3).

void Smmuv3::terminate_transl_forbidden(Translated& t, const DmaRequest& req) {
  t.status = Translated::Status::kAbort;
  t.term = std::make_shared<Translated::Termination>();
  t.term->has_event = true;
  t.term->record = true;  // 7.3.8: recorded whatever the configuration, even with SMMUEN == 0
  TranslForbiddenRecord rec;
  rec.set<TranslForbiddenRecord::Type>(static_cast<uint64_t>(EventType::F_TRANSL_FORBIDDEN))
      .set<TranslForbiddenRecord::StreamID>(req.sid)
      .set<TranslForbiddenRecord::RnW>(!req.access.write)
      .set<TranslForbiddenRecord::InputAddr>(req.iova);
  t.term->event = arch::descriptor_cast<EventRecord>(rec);
}

namespace {

// 3.9.1.3, 13.7: without SMMU_IDR3.PASIDTT a Translated transaction is Data, Unprivileged and
// without SubstreamID.
DmaRequest as_translated(const DmaRequest& in) {
  DmaRequest req = in;
  req.ssv = false;
  req.ssid = 0;
  req.access.priv = false;
  req.access.instr = false;
  return req;
}

}  // namespace

void Smmuv3::resolve_translated(const DmaRequest& in, FrontCache& f, Translated& t,
                                Source& source) {
  FrontCounters& c = f.counters;
  bump(c.translated);
  const DmaRequest req = as_translated(in);
  auto terminate = [&] {
    terminate_silently(t);
    bump(c.terminated);
  };
  // 3.9.1.3: with SMMUEN == 0 Translated traffic is refused, whatever GBPA says.
  if (!smmuen_.load(std::memory_order_acquire)) {
    terminate_transl_forbidden(t, req);
    bump(c.terminated);
    return;
  }
  // Bypassing Translated traffic gets the address size check of 3.9.1.1.
  auto pass = [&] {
    if (req.iova >> caps_.oas_bits) return terminate();
    t.pa = req.iova;
  };
  // 5.2 EATS: with ATSCHK == 0 Translated traffic bypasses without looking at the STE.
  if (!ats_check()) return pass();

  const ConfigCache::Lookup lk = config_cache_.lookup_ste(
      mem_, strtab(), StreamRequest{.sid = req.sid, .input_addr = req.iova, .access = req.access});
  bump(lk.cached() ? c.config_hits : c.config_misses);
  if (lk.cached()) {
    t.cached = true;
    source = Source::config;
  }
  const ConfigResult& r = *lk.result;
  // 3.9.1.3, 5.2 V: C_BAD_STREAMID, F_STE_FETCH and C_BAD_STE abort, recorded only with
  // CR2.REC_CFG_ATS.
  if (!r.ok()) return terminate();
  const StreamConfig& ste = *r.ste;
  if (ste.unimplemented) regs_->report_unimplemented(ste.unimplemented);
  if (ste.mode == StreamMode::abort) return terminate();  // 5.2 Config: aborted, no event
  const uint8_t eats = ste.mode == StreamMode::bypass ? arch::kEatsAbort : effective_eats(ste);
  if (eats == arch::kEatsAbort) {  // 5.2 EATS, 7.3.8
    terminate_transl_forbidden(t, req);
    bump(c.terminated);
    return;
  }
  if (eats != arch::kEatsS1Chk) return pass();  // full ATS: the address is a PA

  // Split-stage (13.6.3): the address is an IPA for stage 2, with STE.PRIVCFG/INSTCFG applied
  // first (13.7); the IAS check is a stage 1 Address Size fault (3.9.1.3 item 10) and faults
  // are recorded as for any transaction. Stage-2-only TLB entries of the VMID serve it.
  const Access access = ste.override_access(req.access);
  const TlbContext ctx{.kind = TlbKind::s2, .world = ste.world, .vmid = ste.S2VMID};
  TlbEntry e;
  if (tlb_.lookup(ctx, req.iova, e) && !(access.write && clean_for_write(e))) {
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
    return;
  }
  bump(c.tlb_misses);
  bump(c.walks);
  const uint64_t gen = tlb_.generation();
  const Walk w = walk_s1_bypass(mem_, ste.s2, req.iova, access, caps_.ias_bits());
  if (!w.ok()) {
    terminate_fault(t, w.fault, r, req);
    bump(c.terminated);
    return;
  }
  t.pa = w.tr.oa;
  t.size_log2 = w.tr.size_log2;
  tlb_.insert(make_tlb_entry(ctx, req.iova, w.tr, nullptr, &ste.s2), gen);
}

// resolve_translated() from memory alone, for the oracle.
Smmuv3::Outcome Smmuv3::fresh_translated_outcome(const DmaRequest& in) {
  const DmaRequest req = as_translated(in);
  Outcome o;
  auto forbidden = [&] {
    o.status = Translated::Status::kAbort;
    o.has_event = true;
    o.event = static_cast<uint8_t>(EventType::F_TRANSL_FORBIDDEN);
    return o;
  };
  auto pass = [&] {
    if (req.iova >> caps_.oas_bits)
      o.status = Translated::Status::kAbort;
    else
      o.pa = req.iova;
    return o;
  };
  if (!smmuen_.load(std::memory_order_acquire)) return forbidden();
  if (!ats_check()) return pass();
  const ConfigResult r = config_cache_.lookup_engine().lookup_ste(
      mem_, strtab(), StreamRequest{.sid = req.sid, .input_addr = req.iova, .access = req.access});
  if (!r.ok() || r.ste->mode == StreamMode::abort) {
    o.status = Translated::Status::kAbort;
    return o;
  }
  const StreamConfig& ste = *r.ste;
  const uint8_t eats = ste.mode == StreamMode::bypass ? arch::kEatsAbort : effective_eats(ste);
  if (eats == arch::kEatsAbort) return forbidden();
  if (eats != arch::kEatsS1Chk) return pass();
  const Walk w = walk_s1_bypass(mem_, without_hw_updates(ste.s2), req.iova,
                                ste.override_access(req.access), caps_.ias_bits());
  if (!w.ok()) {
    const FaultDisposition d = fault_disposition(w.fault, ste, nullptr);
    o.status = d.abort ? Translated::Status::kAbort : Translated::Status::kRazWi;
    o.has_event = true;
    o.event = static_cast<uint8_t>(fault_event_type(w.fault.type));
    return o;
  }
  o.pa = w.tr.oa;
  return o;
}

// ---------------------------------------------------------------------------------------------
// The ATC oracle.

bool Smmuv3::check_atc(const DmaRequest& untranslated, uint64_t translated) {
  if (!oracle_.load(std::memory_order_relaxed)) return true;
  const DmaRequest& u = untranslated;
  // What a Translation Request for the same address would give now, from memory alone.
  std::string fresh;
  bool split = false;
  if (!smmuen_.load(std::memory_order_acquire)) {
    fresh = "UR (SMMUEN == 0)";
  } else {
    const ConfigResult r = config_cache_.lookup_engine().lookup(
        mem_, strtab(),
        StreamRequest{
            .sid = u.sid, .ssv = u.ssv, .ssid = u.ssid, .input_addr = u.iova, .access = u.access});
    if (r.ste && (r.ste->mode == StreamMode::abort || r.ste->mode == StreamMode::bypass ||
                  effective_eats(*r.ste) == arch::kEatsAbort)) {
      fresh = "UR (ATS disabled by the STE)";
    } else if (!r.ok()) {
      fresh = fmt::format("CA ({})", r.event_type());
    } else {
      split = effective_eats(*r.ste) == arch::kEatsS1Chk;
      const StageWalk sw = walk_stages(mem_, r, u.iova, r.ste->override_access(u.access), caps_,
                                       /*hw_updates=*/false);
      if (!sw.walk.ok()) {
        fresh = fmt::format("no access ({} stage {})", fault_event_type(sw.walk.fault.type),
                            sw.walk.fault.stage);
      } else {
        const uint64_t want = split ? sw.walk.tr.ipa : sw.walk.tr.oa;
        if (want == translated) return true;
        fresh = fmt::format("{} {:#x}", split ? "IPA" : "PA", want);
      }
    }
  }
  keep_report(StaleReport{.req = u,
                          .source = "ATC",
                          .cached = fmt::format("{} {:#x}", split ? "IPA" : "PA", translated),
                          .fresh = std::move(fresh)});
  return false;
}

// ---------------------------------------------------------------------------------------------
// Commands (4.5) and the PRI queue's responses (chapter 8).

void Smmuv3::execute_atc_inv(const Command& cmd) {
  using A = arch::CmdAtcInv;
  const A a = arch::descriptor_cast<A>(cmd);
  // 4.5.1: IGNORED while SMMUEN == 0.
  if (!smmuen_.load(std::memory_order_acquire)) {
    atc_inv_dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  AtcInvalidation inv;
  inv.sid = static_cast<uint32_t>(a.get<A::StreamID>());
  inv.ssv = a.get<A::SSV>() != 0;
  if (inv.ssv && config_.ssidsize == 0) {
    regs_->report_guest_error(arch::CMDQ_CONS::kOffset,
                              "CMD_ATC_INV with SSV == 1 on an SMMU without substreams: no effect");
    atc_inv_dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  inv.ssid = inv.ssv ? static_cast<uint32_t>(a.get<A::SubstreamID>()) : 0;
  inv.global = inv.ssv && a.get<A::Global>();  // IGNORED without SSV
  // check_command refused Size > 52; 52 is the whole 2^64 space.
  inv.size_log2 = static_cast<uint8_t>(12 + a.get<A::Size>());
  const uint64_t mask = inv.size_log2 >= 64 ? ~uint64_t{0} : (uint64_t{1} << inv.size_log2) - 1;
  inv.address = a.get<A::Address>() & ~mask;  // "aligned to its size by the SMMU"

  std::lock_guard<std::mutex> lock(endpoints_mu_);
  const auto it = endpoints_.find(inv.sid);
  if (it == endpoints_.end()) {
    atc_inv_dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  atc_inv_delivered_.fetch_add(1, std::memory_order_relaxed);
  it->second->atc_invalidate(inv, AtcInvDone(atc_invs_, atc_invs_->issue()));
}

bool Smmuv3::wait_atc_invalidations() { return atc_invs_->wait_issued(options_.atc_inv_timeout); }

void Smmuv3::execute_pri_resp(const Command& cmd) {
  using P = arch::CmdPriResp;
  const P p = arch::descriptor_cast<P>(cmd);
  // 4.5.2: IGNORED while SMMUEN == 0.
  if (!smmuen_.load(std::memory_order_acquire)) {
    prg_dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  PrgResponse resp;
  resp.sid = static_cast<uint32_t>(p.get<P::StreamID>());
  // 4.5.2, chapter 8: the response carries a PASID exactly when SSV == 1. (STE.PPAR only
  // concerns the automatic responses of 8.1.)
  resp.ssv = p.get<P::SSV>() != 0;
  if (resp.ssv && config_.ssidsize == 0) {
    regs_->report_guest_error(
        arch::CMDQ_CONS::kOffset,
        "CMD_PRI_RESP with SSV == 1 on an SMMU without substreams: no effect");
    prg_dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  resp.ssid = resp.ssv ? static_cast<uint32_t>(p.get<P::SubstreamID>()) : 0;
  resp.prg_index = static_cast<uint16_t>(p.get<P::PRGIndex>());
  switch (p.get<P::Resp>()) {  // 8.3; 0b11 is ILLEGAL (check_command)
    case arch::kPriRespFailure: resp.response_code = kPrgResponseFailure; break;
    case arch::kPriRespInvalid: resp.response_code = kPrgInvalidRequest; break;
    default: resp.response_code = kPrgSuccess; break;
  }
  deliver_prg_response(resp);
}

void Smmuv3::deliver_prg_response(const PrgResponse& response) {
  std::lock_guard<std::mutex> lock(endpoints_mu_);
  const auto it = endpoints_.find(response.sid);
  if (it == endpoints_.end()) {
    prg_dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  prg_delivered_.fetch_add(1, std::memory_order_relaxed);
  it->second->prg_response(response);
}

PriResult Smmuv3::page_request(const PageRequest& in) {
  page_requests_.fetch_add(1, std::memory_order_relaxed);
  PageRequest req = in;
  // Chapter 8: SSV is 0 when the SMMU has no substreams, and X and Priv are 0 without SSV.
  if (config_.ssidsize == 0) req.ssv = false;
  if (!req.ssv) {
    req.ssid = 0;
    req.exe = req.priv = false;
  }
  req.ssid &= 0xfffff;  // 3.9: a wider PASID "might be truncated"
  req.prg_index &= 0x1ff;
  using R = arch::PriRecord;
  R rec;
  rec.set<R::StreamID>(req.sid)
      .set<R::SubstreamID>(req.ssid)
      .set<R::Priv>(req.priv)
      .set<R::X>(req.exe)
      .set<R::R>(req.read)
      .set<R::W>(req.write)
      .set<R::Last>(req.last)
      .set<R::SSV>(req.ssv)
      .set<R::PRGIndex>(req.prg_index)
      .set<R::Address>(req.address & ~uint64_t{0xfff});
  PriResult res = queues_->record_page_request(rec);
  if (res.kind != PriResult::Kind::kAutoResponse) return res;

  // 8.2: same StreamID and PRG index; a PASID only on an overflow's Success response to a
  // request that had one, with IDR3.PPS or STE.PPAR.
  PrgResponse resp{.sid = req.sid,
                   .prg_index = req.prg_index,
                   .response_code = res.response_code,
                   .automatic = true};
  if (res.overflow && res.response_code == kPrgSuccess && req.ssv) {
    if (config_.pps) {
      resp.ssv = true;
    } else {
      // 8.1: an STE that cannot be checked (SMMUEN == 0, C_BAD_STREAMID, F_STE_FETCH,
      // C_BAD_STE) makes it a Response Failure without PASID.
      bool ppar = false, usable = false;
      if (smmuen_.load(std::memory_order_acquire)) {
        const ConfigCache::Lookup lk = config_cache_.lookup_ste(
            mem_, strtab(), StreamRequest{.sid = req.sid, .ssv = true, .ssid = req.ssid});
        usable = lk.result->ok();
        ppar = usable && lk.result->ste->PPAR;
      }
      if (!usable) resp.response_code = kPrgResponseFailure;
      resp.ssv = ppar;
    }
    resp.ssid = resp.ssv ? req.ssid : 0;
  }
  res.response_code = resp.response_code;
  deliver_prg_response(resp);
  return res;
}

}  // namespace strata::sim::smmuv3
