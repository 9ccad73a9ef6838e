// SPDX-License-Identifier: MIT
#include "testing/models/smmuv3/stream.h"

#include <algorithm>

#include "arch/bug.h"

namespace strata::sim::smmuv3 {
namespace {

using arch::CD;
using arch::EventRecord;
using arch::EventType;
using arch::FetchFaultRecord;
using arch::L1CD;
using arch::L1STD;
using arch::STE;
using arch::TranslationFaultRecord;

constexpr uint64_t bits_below(unsigned n) {
  return n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1;
}

// IMPLEMENTATION DEFINED bits, per 64-bit word: STE [127:116], [159:144], [271:256] (5.2); CD
// [351:320] (5.4). The model gives them no meaning, so they are IGNORED, unlike Reserved bits.
constexpr uint64_t kSteImpdef[STE::kWords] = {
    0, 0xfff0'0000'0000'0000, 0xffff'0000, 0, 0xffff, 0, 0, 0};
constexpr uint64_t kCdImpdef[CD::kWords] = {0, 0, 0, 0, 0, 0xffff'ffff, 0, 0};

constexpr const char* kWordNames[8] = {"word 0", "word 1", "word 2", "word 3",
                                       "word 4", "word 5", "word 6", "word 7"};

// The first word of `d` with a Reserved (non-specified, not IMPLEMENTATION DEFINED) bit set, or
// nullptr. Chapter 5: "An implementation either detects non-zero values in non-specified fields
// and considers the structure invalid, or ignores the Reserved field entirely"; the model detects.
template <typename D>
const char* reserved_word(const D& d, const uint64_t (&impdef)[D::kWords]) {
  for (unsigned i = 0; i < D::kWords; ++i)
    if (d.word(i) & ~(D::Fields::declared(i) | impdef[i])) return kWordNames[i];
  return nullptr;
}

// Collects the first field that is RES0 for this SMMU and yet set.
template <typename D>
class Res0Check {
 public:
  explicit Res0Check(const D& d) : d_(d) {}
  template <typename F>
  void check(bool res0) {
    if (!field_ && res0 && d_.template get<F>() != 0) field_ = F::kName;
  }
  const char* field() const { return field_; }

 private:
  const D& d_;
  const char* field_ = nullptr;
};

EventType fault_event(FaultType t) {
  switch (t) {
    case FaultType::translation: return EventType::F_TRANSLATION;
    case FaultType::addr_size: return EventType::F_ADDR_SIZE;
    case FaultType::access: return EventType::F_ACCESS;
    case FaultType::permission: return EventType::F_PERMISSION;
    case FaultType::walk_eabt: return EventType::F_WALK_EABT;
    case FaultType::none: break;
  }
  STRATA_BUG("no event for a walk that did not fault");
}

// The common header: event number, StreamID, and the SubstreamID when the transaction had one.
EventRecord header(EventType type, const StreamRequest& req) {
  EventRecord e;
  e.set<EventRecord::Type>(static_cast<uint64_t>(type)).set<EventRecord::StreamID>(req.sid);
  if (req.ssv) e.set<EventRecord::SSV>(1).set<EventRecord::SubstreamID>(req.ssid);
  return e;
}

// What the lookup functions share while one lookup runs.
class Lookup {
 public:
  Lookup(PhysMem& mem, const Caps& caps, const StreamRequest& req, ConfigResult& r)
      : mem_(mem), caps_(caps), req_(req), r_(r) {}

  // C_BAD_STREAMID, recorded only with SMMU_CR2.RECINVSID (7.3.3).
  ConfigResult& bad_streamid(LookupError why, bool recinvsid) {
    r_.error = why;
    r_.event = header(EventType::C_BAD_STREAMID, req_);
    r_.record = recinvsid;
    return r_;
  }
  // F_STE_FETCH / F_CD_FETCH: FetchAddr is the structure's PA, bits [55:OAS] RES0 (7.3.4).
  ConfigResult& fetch_fault(LookupError why, uint64_t pa) {
    r_.error = why;
    auto f = arch::descriptor_cast<FetchFaultRecord>(header(event_for(why), req_));
    f.set<FetchFaultRecord::FetchAddr>(pa & bits_below(caps_.oas_bits) & ~uint64_t{7});
    r_.event = arch::descriptor_cast<EventRecord>(f);
    return r_;
  }
  // C_BAD_STE, C_BAD_CD, F_STREAM_DISABLED, C_BAD_SUBSTREAMID.
  ConfigResult& config_error(LookupError why, CfgError cfg = CfgError::none,
                             const char* detail = nullptr, uint32_t recorded_ssid = 0) {
    r_.error = why;
    r_.cfg_error = cfg;
    r_.detail = detail;
    const EventType type = event_for(why);
    if (type == EventType::F_STREAM_DISABLED) {
      // 7.3.7: StreamID only, no SSV or SubstreamID field.
      r_.event = EventRecord{};
      r_.event.set<EventRecord::Type>(static_cast<uint64_t>(type))
          .set<EventRecord::StreamID>(req_.sid);
    } else if (type == EventType::C_BAD_SUBSTREAMID) {
      // 7.3.9: the SubstreamID is always valid, there is no SSV qualifier.
      r_.event = EventRecord{};
      r_.event.set<EventRecord::Type>(static_cast<uint64_t>(type))
          .set<EventRecord::StreamID>(req_.sid)
          .set<EventRecord::SubstreamID>(recorded_ssid);
    } else {
      r_.event = header(type, req_);
    }
    return r_;
  }
  // A stage-2 fault translating an L1CD or CD address (CLASS CD, 7.3.12-16). The walker filled
  // the access attributes (the STE-overridden ones it was given) and the IPA.
  ConfigResult& cd_s2_fault(const Walk& w, const StreamConfig& ste) {
    r_.error = LookupError::cd_s2_fault;
    r_.fault = w.fault;
    r_.fault.input_addr = req_.input_addr;
    const Fault& f = r_.fault;
    auto t = arch::descriptor_cast<TranslationFaultRecord>(header(fault_event(f.type), req_));
    t.set<TranslationFaultRecord::PnU>(f.PnU)
        .set<TranslationFaultRecord::InD>(f.InD)
        .set<TranslationFaultRecord::RnW>(f.RnW)
        .set<TranslationFaultRecord::S2>(1)
        .set<TranslationFaultRecord::CLASS>(arch::kClassCd)
        .set<TranslationFaultRecord::InputAddr>(f.input_addr);
    // F_WALK_EABT has FetchAddr where the others have IPA; its position is not in
    // arch/smmuv3/event.h yet, so the record leaves it to the event writer (r_.fault has it).
    if (f.type != FaultType::walk_eabt)
      t.set<TranslationFaultRecord::IPA>(f.ipa & bits_below(caps_.oas_bits) & ~uint64_t{0xfff});
    r_.event = arch::descriptor_cast<EventRecord>(t);
    // 5.5: R and S govern the four translation-related faults only; S implies a record.
    const bool translation_related = f.type != FaultType::walk_eabt;
    r_.stall = translation_related && ste.S2S;
    r_.record = !translation_related || ste.S2R || ste.S2S;
    return r_;
  }

  // One 64-bit single-copy-atomic read; false on an external abort.
  bool read(uint64_t pa, uint64_t& v) {
    Result<uint64_t> w = mem_.read64(pa);
    if (!w.ok()) return false;
    v = *w;
    return true;
  }
  // A whole 8-word structure, word by word as the SMMU reads it.
  template <typename D>
  bool read_struct(uint64_t pa, D& d) {
    for (unsigned i = 0; i < D::kWords; ++i) {
      uint64_t v;
      ++r_.stats.reads;
      if (!read(pa + 8 * i, v)) return false;
      d.set_word(i, v);
    }
    return true;
  }

  PhysMem& mem() { return mem_; }
  const Caps& caps() const { return caps_; }
  const StreamRequest& req() const { return req_; }
  ConfigResult& result() { return r_; }

 private:
  PhysMem& mem_;
  const Caps& caps_;
  const StreamRequest& req_;
  ConfigResult& r_;
};

}  // namespace

Caps walker_caps(const Config& c) {
  return Caps{.oas_bits = c.oas_bits(),
              .gran4k = c.gran4k,
              .gran16k = c.gran16k,
              .gran64k = c.gran64k,
              .vax = c.vax == arch::kVax52,
              .httu = c.httu,
              .stt = c.stt,
              .xnx = c.xnx,
              .had = c.had,
              .e0pd = c.e0pd};
}

StreamTableRegs StreamTableRegs::read(const Registers& regs) {
  return StreamTableRegs{.STRTAB_BASE = regs.read<arch::STRTAB_BASE>(),
                         .STRTAB_BASE_CFG = regs.read<arch::STRTAB_BASE_CFG>(),
                         .CR2 = regs.read<arch::CR2>()};
}

const char* name(StreamMode m) {
  switch (m) {
    case StreamMode::abort: return "abort";
    case StreamMode::bypass: return "bypass";
    case StreamMode::s1: return "stage 1";
    case StreamMode::s2: return "stage 2";
    case StreamMode::nested: return "nested";
  }
  return "?";
}

const char* name(StreamWorld w) {
  switch (w) {
    case StreamWorld::none: return "none";
    case StreamWorld::ns_el1: return "NS-EL1";
    case StreamWorld::ns_el2: return "NS-EL2";
    case StreamWorld::ns_el2_e2h: return "NS-EL2-E2H";
  }
  return "?";
}

const char* name(LookupError e) {
  switch (e) {
    case LookupError::none: return "none";
    case LookupError::sid_out_of_range: return "sid_out_of_range";
    case LookupError::l1std_span_invalid: return "l1std_span_invalid";
    case LookupError::l1std_span_large: return "l1std_span_large";
    case LookupError::sid_beyond_span: return "sid_beyond_span";
    case LookupError::l1std_reserved: return "l1std_reserved";
    case LookupError::ste_fetch_abort: return "ste_fetch_abort";
    case LookupError::ste_invalid: return "ste_invalid";
    case LookupError::ste_reserved: return "ste_reserved";
    case LookupError::ste_res0: return "ste_res0";
    case LookupError::config_s1_unsupported: return "config_s1_unsupported";
    case LookupError::config_s2_unsupported: return "config_s2_unsupported";
    case LookupError::eats_split_illegal: return "eats_split_illegal";
    case LookupError::eats_s2s: return "eats_s2s";
    case LookupError::strw_reserved: return "strw_reserved";
    case LookupError::s1stalld_illegal: return "s1stalld_illegal";
    case LookupError::s1cdmax_too_large: return "s1cdmax_too_large";
    case LookupError::s1fmt_2level_no_cd2l: return "s1fmt_2level_no_cd2l";
    case LookupError::s1contextptr_range: return "s1contextptr_range";
    case LookupError::s2s_unsupported: return "s2s_unsupported";
    case LookupError::s2s_forced: return "s2s_forced";
    case LookupError::s2_illegal: return "s2_illegal";
    case LookupError::s2vmid_too_wide: return "s2vmid_too_wide";
    case LookupError::substream_required: return "substream_required";
    case LookupError::substream0_reserved: return "substream0_reserved";
    case LookupError::ssid_without_stage1: return "ssid_without_stage1";
    case LookupError::ssid_unsupported: return "ssid_unsupported";
    case LookupError::ssid_disabled: return "ssid_disabled";
    case LookupError::ssid_out_of_range: return "ssid_out_of_range";
    case LookupError::l1cd_invalid: return "l1cd_invalid";
    case LookupError::l1cd_reserved: return "l1cd_reserved";
    case LookupError::l1cd_range: return "l1cd_range";
    case LookupError::cd_fetch_abort: return "cd_fetch_abort";
    case LookupError::cd_s2_fault: return "cd_s2_fault";
    case LookupError::cd_invalid: return "cd_invalid";
    case LookupError::cd_reserved: return "cd_reserved";
    case LookupError::cd_res0: return "cd_res0";
    case LookupError::cd_stall_disabled: return "cd_stall_disabled";
    case LookupError::cd_term_model: return "cd_term_model";
    case LookupError::cd_stall_unsupported: return "cd_stall_unsupported";
    case LookupError::cd_stall_forced: return "cd_stall_forced";
    case LookupError::cd_asid_too_wide: return "cd_asid_too_wide";
    case LookupError::s1_illegal: return "s1_illegal";
  }
  return "?";
}

EventType event_for(LookupError e) {
  using L = LookupError;
  switch (e) {
    case L::sid_out_of_range:
    case L::l1std_span_invalid:
    case L::l1std_span_large:
    case L::sid_beyond_span:
    case L::l1std_reserved: return EventType::C_BAD_STREAMID;
    case L::ste_fetch_abort: return EventType::F_STE_FETCH;
    case L::substream_required:
    case L::substream0_reserved: return EventType::F_STREAM_DISABLED;
    case L::ssid_without_stage1:
    case L::ssid_unsupported:
    case L::ssid_disabled:
    case L::ssid_out_of_range:
    case L::l1cd_invalid:
    case L::l1cd_reserved:
    case L::l1cd_range: return EventType::C_BAD_SUBSTREAMID;
    case L::cd_fetch_abort: return EventType::F_CD_FETCH;
    case L::cd_invalid:
    case L::cd_reserved:
    case L::cd_res0:
    case L::cd_stall_disabled:
    case L::cd_term_model:
    case L::cd_stall_unsupported:
    case L::cd_stall_forced:
    case L::cd_asid_too_wide:
    case L::s1_illegal: return EventType::C_BAD_CD;
    case L::ste_invalid:
    case L::ste_reserved:
    case L::ste_res0:
    case L::config_s1_unsupported:
    case L::config_s2_unsupported:
    case L::eats_split_illegal:
    case L::eats_s2s:
    case L::strw_reserved:
    case L::s1stalld_illegal:
    case L::s1cdmax_too_large:
    case L::s1fmt_2level_no_cd2l:
    case L::s1contextptr_range:
    case L::s2s_unsupported:
    case L::s2s_forced:
    case L::s2_illegal:
    case L::s2vmid_too_wide: return EventType::C_BAD_STE;
    case L::none:
    case L::cd_s2_fault: break;  // no event, or the walk fault's own
  }
  STRATA_BUG("event_for: no single event for this reason");
}

Access StreamConfig::override_access(Access a) const {
  // 5.2 PRIVCFG/INSTCFG: 0b00 and the Reserved 0b01 use the incoming attribute. INSTCFG only
  // affects reads: the SMMU treats every write as Data (13.1.2).
  if (PRIVCFG == arch::kPrivcfgUnpriv) a.priv = false;
  if (PRIVCFG == arch::kPrivcfgPriv) a.priv = true;
  if (INSTCFG == arch::kInstcfgData) a.instr = false;
  if (INSTCFG == arch::kInstcfgInstr) a.instr = true;
  if (a.write) a.instr = false;
  return a;
}

ConfigLookup::ConfigLookup(const Config& config) : config_(config), caps_(walker_caps(config)) {}

// ---------------------------------------------------------------------------------------------
// STE (5.2). The checks follow SteIllegal() (5.2.2) in order, with the Reserved and RES0-field
// checks (the model's choice, see stream.h) after the Config checks.

ConfigLookup::SteDecode ConfigLookup::decode_ste(const STE& ste, bool e2h) const {
  SteDecode out;
  StreamConfig& c = out.cfg;
  const Config& k = config_;
  auto fail = [&](LookupError e, CfgError cfg = CfgError::none, const char* detail = nullptr) {
    out.error = e;
    out.cfg_error = cfg;
    out.detail = detail;
    return out;
  };

  // V == 0: C_BAD_STE for a transaction (5.2 V).
  if (!ste.get<STE::V>()) return fail(LookupError::ste_invalid);
  c.Config = static_cast<uint8_t>(ste.get<STE::Config>());
  // Config 0b0xx: abort without an event; every other field is IGNORED (5.2.1).
  if (!(c.Config & 0b100)) return out;
  const bool s1 = c.Config & 0b001;
  const bool s2 = c.Config & 0b010;
  c.mode = s1 && s2 ? StreamMode::nested
           : s1     ? StreamMode::s1
           : s2     ? StreamMode::s2
                    : StreamMode::bypass;
  if (s1 && !k.s1p) return fail(LookupError::config_s1_unsupported);
  if (s2 && !k.s2p) return fail(LookupError::config_s2_unsupported);

  if (const char* word = reserved_word(ste, kSteImpdef))
    return fail(LookupError::ste_reserved, CfgError::none, word);

  // Fields RES0 in this SMMU's Non-secure STEs. S1* fields are IGNORED when stage 1 bypasses,
  // S2* fields (but S2VMID) and the other stage-2 controls when stage 2 bypasses (5.2 V): those
  // are checked only when their stage translates.
  Res0Check<STE> r0(ste);
  // Features the model never has: IDR3.S1PI/S2PI/S2PO/MPAM/DPT/THE/PBHA = 0, IDR5.DS/D128 = 0,
  // HTTU < 0b11, no VMS, and Secure/Realm-only fields.
  r0.check<STE::S1PIE>(s1);
  r0.check<STE::S1MPAM>(s1);
  r0.check<STE::PARTID>(true);
  r0.check<STE::PMG>(true);
  r0.check<STE::MPAM_NS>(true);
  r0.check<STE::VMSPtr>(true);
  r0.check<STE::MECID>(true);
  r0.check<STE::DPT_VMATCH>(true);
  r0.check<STE::S2HAFT>(s2);
  r0.check<STE::S2PIE>(s2);
  r0.check<STE::S2POE>(s2);
  r0.check<STE::S2POI>(s2);
  r0.check<STE::S2SL0_2>(s2);
  r0.check<STE::S2DS>(s2);
  r0.check<STE::S2SKL>(s2);
  r0.check<STE::AssuredOnly>(s2);
  r0.check<STE::TL0>(s2);
  r0.check<STE::TL1>(s2);
  r0.check<STE::S2NSW>(s2);
  r0.check<STE::S2NSA>(s2);
  r0.check<STE::S2SW>(s2);
  r0.check<STE::S2SA>(s2);
  r0.check<STE::S_S2T0SZ>(s2);
  r0.check<STE::S_S2SL0>(s2);
  r0.check<STE::S_S2TG>(s2);
  r0.check<STE::S_S2SL0_2>(s2);
  r0.check<STE::S_S2TTB>(s2);
  r0.check<STE::S_S2SKL>(s2);
  // Features the Config decides.
  r0.check<STE::S2FWB>(s2 && !k.fwb);            // "Prior to SMMUv3.2 this field is RES0"
  r0.check<STE::S2HWU59>(s2 && k.version == 0);  // "In SMMUv3.0 this field is RES0"
  r0.check<STE::S2HWU60>(s2 && k.version == 0);
  r0.check<STE::S2HWU61>(s2 && k.version == 0);
  r0.check<STE::S2HWU62>(s2 && k.version == 0);
  r0.check<STE::DRE>(k.version == 0);
  r0.check<STE::DCP>(k.version == 0);
  r0.check<STE::PPAR>(!k.pri || k.ssidsize == 0);
  r0.check<STE::STRW>(!k.s1p || !k.hyp);
  r0.check<STE::MTCFG>(!k.attr_types_ovr);
  r0.check<STE::ALLOCCFG>(!k.attr_types_ovr);
  r0.check<STE::SHCFG>(!k.attr_types_ovr);
  r0.check<STE::MemAttr>(!k.attr_types_ovr || !ste.get<STE::MTCFG>());
  r0.check<STE::PRIVCFG>(!k.attr_perms_ovr);
  r0.check<STE::INSTCFG>(!k.attr_perms_ovr);
  if (r0.field()) return fail(LookupError::ste_res0, CfgError::none, r0.field());

  // ATS (5.2 EATS), for a Non-secure STE with IDR0.ATS and Config[1:0] != 0b00.
  const uint64_t eats = ste.get<STE::EATS>();
  const bool s2s = ste.get<STE::S2S>();
  const bool ats_used = k.ats && (s1 || s2);
  if (ats_used) {
    // Split-stage ATS needs Config 0b111, S2S == 0 and IDR0.NS1ATS == 0 ("S2S is not
    // IGNORED" even when stage 2 bypasses).
    if (eats == arch::kEatsS1Chk && (c.Config != 0b111 || s2s || !k.split_stage_ats))
      return fail(LookupError::eats_split_illegal);
    if (eats == arch::kEatsTrans && s2s && s2) return fail(LookupError::eats_s2s);
    // 0b11 (DPT) is Reserved without IDR3.DPT and behaves as 0b00.
  }
  c.EATS = static_cast<uint8_t>(ats_used && eats != arch::kEatsDpt ? eats : 0);

  // StreamWorld (5.2 STRW): STRW is used only for stage 1-only STEs of an SMMU with Hyp.
  c.STRW = static_cast<uint8_t>(ste.get<STE::STRW>());
  const bool strw_used = k.s1p && k.hyp && c.Config == 0b101;
  if (strw_used && (c.STRW & 1)) return fail(LookupError::strw_reserved);
  if (c.mode == StreamMode::bypass)
    c.world = StreamWorld::none;
  else if (strw_used && c.STRW == arch::kStrwEl2)
    c.world = e2h ? StreamWorld::ns_el2_e2h : StreamWorld::ns_el2;
  else
    c.world = StreamWorld::ns_el1;
  if (c.world == StreamWorld::ns_el2) c.unimplemented = "StreamWorld NS-EL2";
  if (c.world == StreamWorld::ns_el2_e2h) c.unimplemented = "StreamWorld NS-EL2-E2H";

  // Stage 1.
  if (s1) {
    c.S1STALLD = ste.get<STE::S1STALLD>();
    if (c.S1STALLD && k.stall_model != arch::kStallModelStallAndTerminate)
      return fail(LookupError::s1stalld_illegal);
    // S1CDMax, S1Fmt and S1DSS are IGNORED without substreams (IDR1.SSIDSIZE == 0).
    const unsigned cdmax = k.ssidsize ? static_cast<unsigned>(ste.get<STE::S1CDMax>()) : 0;
    if (cdmax > k.ssidsize) return fail(LookupError::s1cdmax_too_large);
    const uint64_t fmt = ste.get<STE::S1Fmt>();
    if (cdmax && !k.cd2l && (fmt == arch::kS1Fmt4KL2 || fmt == arch::kS1Fmt64KL2))
      return fail(LookupError::s1fmt_2level_no_cd2l);
    // 3.4.3: an S1ContextPtr beyond the OAS (a PA) or the IAS (an IPA, nested) is C_BAD_STE
    // in SMMUv3.1 and later, and the model's choice among the v3.0 behaviours. IAS == OAS here.
    const uint64_t ptr = ste.get<STE::S1ContextPtr>();
    if (ptr >> caps_.ias_bits()) return fail(LookupError::s1contextptr_range);
    c.S1CDMax = static_cast<uint8_t>(cdmax);
    c.S1Fmt = static_cast<uint8_t>(cdmax == 0 || fmt == 0b11 ? arch::kS1FmtLinear : fmt);
    // The table is aligned to its size (linear), or the L1 table to its size or 64 bytes: the
    // bits below are RES0 and the model treats them as zero (5.2 S1Fmt).
    unsigned align = 6;
    if (c.S1Fmt == arch::kS1FmtLinear) {
      align = cdmax + 6;
    } else {
      const unsigned l2 = c.S1Fmt == arch::kS1Fmt4KL2 ? arch::kCdL2Bits4K : arch::kCdL2Bits64K;
      if (cdmax > l2) align = std::max(6u, cdmax - l2 + 3);
    }
    c.S1ContextPtr = ptr & ~bits_below(align);
    const uint64_t dss = ste.get<STE::S1DSS>();
    c.S1DSS = static_cast<uint8_t>(cdmax == 0 || dss == 0b11 ? arch::kS1dssTerminate : dss);
    c.S1CIR = static_cast<uint8_t>(ste.get<STE::S1CIR>());
    c.S1COR = static_cast<uint8_t>(ste.get<STE::S1COR>());
    c.S1CSH = static_cast<uint8_t>(ste.get<STE::S1CSH>());
  }

  // Stage 2.
  if (s2) {
    if (s2s && k.stall_model == arch::kStallModelTerminate)
      return fail(LookupError::s2s_unsupported);
    if (!s2s && k.stall_model == arch::kStallModelStallForced) return fail(LookupError::s2s_forced);
    c.s2cfg = S2Cfg{.S2T0SZ = static_cast<uint8_t>(ste.get<STE::S2T0SZ>()),
                    .S2SL0 = static_cast<uint8_t>(ste.get<STE::S2SL0>()),
                    .S2TG = static_cast<uint8_t>(ste.get<STE::S2TG>()),
                    .S2PS = static_cast<uint8_t>(ste.get<STE::S2PS>()),
                    .S2AA64 = ste.get<STE::S2AA64>() != 0,
                    .S2ENDI = ste.get<STE::S2ENDI>() != 0,
                    .S2AFFD = ste.get<STE::S2AFFD>() != 0,
                    .S2PTW = ste.get<STE::S2PTW>() != 0,
                    .S2HD = ste.get<STE::S2HD>() != 0,
                    .S2HA = ste.get<STE::S2HA>() != 0,
                    .S2TTB = ste.get<STE::S2TTB>()};
    const Decoded<Stage2> d = decode_s2(c.s2cfg, caps_);
    if (!d.ok()) return fail(LookupError::s2_illegal, d.error);
    c.s2 = d.stage;
    c.S2FWB = ste.get<STE::S2FWB>();
    c.S2S = s2s;
    c.S2R = ste.get<STE::S2R>();
  }

  // S2VMID is IGNORED without stage 2 in the SMMU, for bypass, and outside NS-EL1
  // (IgnoreSTES2VMID, 5.2.2); where it is used, 8-bit VMIDs leave [15:8] ILLEGAL if set.
  const uint64_t vmid = ste.get<STE::S2VMID>();
  const bool vmid_used = k.s2p && c.world == StreamWorld::ns_el1;
  if (vmid_used && !k.vmid16 && (vmid >> 8)) return fail(LookupError::s2vmid_too_wide);
  c.S2VMID = static_cast<uint16_t>(vmid_used ? vmid : 0);

  // Attributes, for bypass and for the transaction (chapter 13).
  c.DRE = ste.get<STE::DRE>();
  c.DCP = ste.get<STE::DCP>();
  c.PPAR = ste.get<STE::PPAR>();
  c.MEV = ste.get<STE::MEV>();
  c.MTCFG = ste.get<STE::MTCFG>();
  c.MemAttr = static_cast<uint8_t>(ste.get<STE::MemAttr>());
  c.ALLOCCFG = static_cast<uint8_t>(ste.get<STE::ALLOCCFG>());
  c.SHCFG = static_cast<uint8_t>(k.attr_types_ovr ? ste.get<STE::SHCFG>() : arch::kShcfgIncoming);
  c.PRIVCFG = static_cast<uint8_t>(ste.get<STE::PRIVCFG>());
  c.INSTCFG = static_cast<uint8_t>(ste.get<STE::INSTCFG>());
  return out;
}

// ---------------------------------------------------------------------------------------------
// CD (5.4). The checks follow CdIllegal() (5.4.2) in order, the translation fields through the
// walker's decode_s1, with the Reserved and RES0-field checks after V.

ConfigLookup::CdDecode ConfigLookup::decode_cd(const CD& cd, const StreamConfig& ste) const {
  CdDecode out;
  SubstreamConfig& c = out.cfg;
  const Config& k = config_;
  auto fail = [&](LookupError e, CfgError cfg = CfgError::none, const char* detail = nullptr) {
    out.error = e;
    out.cfg_error = cfg;
    out.detail = detail;
    return out;
  };

  if (!cd.get<CD::V>()) return fail(LookupError::cd_invalid);
  if (const char* word = reserved_word(cd, kCdImpdef))
    return fail(LookupError::cd_reserved, CfgError::none, word);

  // StreamWorld NS-EL2 has one translation table: TTB1 is unreachable, its fields RES0, EPDx
  // IGNORED with an effective value of 0, E0PDx RES0, the ASID IGNORED (5.4.1).
  const bool el2 = ste.world == StreamWorld::ns_el2;
  Res0Check<CD> r0(cd);
  r0.check<CD::E0PD0>(!k.e0pd || el2);
  r0.check<CD::E0PD1>(!k.e0pd || el2);
  r0.check<CD::HAFT>(true);    // IDR0.HTTU != 0b11
  r0.check<CD::PnCH>(true);    // IDR3.THE == 0
  r0.check<CD::EPAN>(true);    // IDR3.EPAN == 0
  r0.check<CD::DS>(true);      // IDR5.DS == 0
  r0.check<CD::PIE>(true);     // IDR3.S1PI == 0
  r0.check<CD::AIE>(true);     // IDR3.AIE == 0
  r0.check<CD::PARTID>(true);  // no MPAM
  r0.check<CD::PMG>(true);
  r0.check<CD::PIIU>(true);  // permission indirection disabled
  r0.check<CD::PIIP>(true);
  r0.check<CD::HWU059>(k.version == 0);  // "In SMMUv3.0 this field is RES0"
  r0.check<CD::HWU060>(k.version == 0);
  r0.check<CD::HWU061>(k.version == 0);
  r0.check<CD::HWU062>(k.version == 0);
  r0.check<CD::HWU159>(k.version == 0);
  r0.check<CD::HWU160>(k.version == 0);
  r0.check<CD::HWU161>(k.version == 0);
  r0.check<CD::HWU162>(k.version == 0);
  r0.check<CD::T1SZ>(el2);
  r0.check<CD::TG1>(el2);
  r0.check<CD::IR1>(el2);
  r0.check<CD::OR1>(el2);
  r0.check<CD::SH1>(el2);
  r0.check<CD::TBI1>(el2);
  r0.check<CD::HAD1>(el2);
  r0.check<CD::NSCFG1>(el2);
  r0.check<CD::TTB1>(el2);
  if (r0.field()) return fail(LookupError::cd_res0, CfgError::none, r0.field());

  // Fault configuration (5.5).
  c.A = cd.get<CD::A>();
  c.R = cd.get<CD::R>();
  c.S = cd.get<CD::S>();
  if (ste.S1STALLD && c.S) return fail(LookupError::cd_stall_disabled);
  if (k.term_model && !c.A) return fail(LookupError::cd_term_model);
  if (k.stall_model == arch::kStallModelTerminate && c.S)
    return fail(LookupError::cd_stall_unsupported);
  if (k.stall_model == arch::kStallModelStallForced && !c.S)
    return fail(LookupError::cd_stall_forced);

  // ASID: IGNORED in NS-EL2; elsewhere 8-bit ASIDs leave [15:8] ILLEGAL if set.
  const uint64_t asid = cd.get<CD::ASID>();
  if (!el2 && !k.asid16 && (asid >> 8)) return fail(LookupError::cd_asid_too_wide);

  c.s1cfg = S1Cfg{.T0SZ = static_cast<uint8_t>(cd.get<CD::T0SZ>()),
                  .TG0 = static_cast<uint8_t>(cd.get<CD::TG0>()),
                  .EPD0 = !el2 && cd.get<CD::EPD0>(),
                  .ENDI = cd.get<CD::ENDI>() != 0,
                  .T1SZ = static_cast<uint8_t>(cd.get<CD::T1SZ>()),
                  .TG1 = static_cast<uint8_t>(cd.get<CD::TG1>()),
                  .EPD1 = el2 || cd.get<CD::EPD1>(),  // NS-EL2: TTB1 unreachable
                  .IPS = static_cast<uint8_t>(cd.get<CD::IPS>()),
                  .AFFD = cd.get<CD::AFFD>() != 0,
                  .WXN = cd.get<CD::WXN>() != 0,
                  .UWXN = cd.get<CD::UWXN>() != 0,
                  .TBI0 = cd.get<CD::TBI0>() != 0,
                  .TBI1 = cd.get<CD::TBI1>() != 0,
                  .PAN = cd.get<CD::PAN>() != 0,
                  .AA64 = cd.get<CD::AA64>() != 0,
                  .HD = cd.get<CD::HD>() != 0,
                  .HA = cd.get<CD::HA>() != 0,
                  .TTB0 = cd.get<CD::TTB0>(),
                  .HAD0 = cd.get<CD::HAD0>() != 0,
                  .E0PD0 = cd.get<CD::E0PD0>() != 0,
                  .TTB1 = cd.get<CD::TTB1>(),
                  .HAD1 = cd.get<CD::HAD1>() != 0,
                  .E0PD1 = cd.get<CD::E0PD1>() != 0};
  const Decoded<Stage1> d = decode_s1(c.s1cfg, caps_);
  if (!d.ok()) return fail(LookupError::s1_illegal, d.error);
  c.s1 = d.stage;
  c.ASID = static_cast<uint16_t>(el2 ? 0 : asid);
  c.ASET = cd.get<CD::ASET>();
  c.MAIR = cd.get<CD::MAIR1>() << 32 | cd.get<CD::MAIR0>();
  c.AMAIR = cd.get<CD::AMAIR1>() << 32 | cd.get<CD::AMAIR0>();
  c.UWXN = cd.get<CD::UWXN>();
  c.unimplemented = ste.unimplemented;
  return out;
}

// ---------------------------------------------------------------------------------------------
// The lookups.

ConfigResult ConfigLookup::lookup(PhysMem& mem, const StreamTableRegs& regs,
                                  const StreamRequest& req) const {
  ConfigResult r = lookup_ste(mem, regs, req);
  if (!r.ok() || r.ste->mode == StreamMode::abort) return r;
  const LookupStats ste_stats = r.stats;
  r = lookup_cd(mem, *r.ste, req);
  r.stats.l1_reads = static_cast<uint8_t>(r.stats.l1_reads + ste_stats.l1_reads);
  r.stats.reads = static_cast<uint8_t>(r.stats.reads + ste_stats.reads);
  return r;
}

ConfigResult ConfigLookup::lookup_ste(PhysMem& mem, const StreamTableRegs& regs,
                                      const StreamRequest& req) const {
  STRATA_BUG_ON(req.ssid >> 20);  // a SubstreamID is 20 bits: a harness bug otherwise
  ConfigResult r;
  Lookup l(mem, caps_, req, r);
  const bool recinvsid = regs.CR2.get<arch::CR2::RECINVSID>();
  const unsigned oas = caps_.oas_bits;

  // 6.3.25: StreamIDs are range-checked against MIN(LOG2SIZE, SIDSIZE), which also bounds the
  // index calculations; the base alignment follows the literal LOG2SIZE (6.3.24).
  const unsigned log2size =
      static_cast<unsigned>(regs.STRTAB_BASE_CFG.get<arch::STRTAB_BASE_CFG::LOG2SIZE>());
  const unsigned eff_log2size = std::min(log2size, config_.sidsize);
  const uint64_t sid = req.sid;
  if (sid >> eff_log2size) return l.bad_streamid(LookupError::sid_out_of_range, recinvsid);
  const uint64_t addr = regs.STRTAB_BASE.get<arch::STRTAB_BASE::ADDR>();
  // FMT: 0b01 is 2-level when IDR0.ST_LEVEL says so; Reserved values (and FMT without
  // ST_LEVEL, where it is RES0) behave as linear.
  const bool two_level =
      config_.st_2level &&
      regs.STRTAB_BASE_CFG.get<arch::STRTAB_BASE_CFG::FMT>() == arch::kStrtabFmt2Level;
  uint64_t ste_addr;
  if (!two_level) {
    ste_addr = (addr & ~bits_below(log2size + 6)) + sid * sizeof(STE);
  } else {
    // SPLIT: 6, 8 or 10; other values behave as 6.
    unsigned split =
        static_cast<unsigned>(regs.STRTAB_BASE_CFG.get<arch::STRTAB_BASE_CFG::SPLIT>());
    if (split != arch::kSplit4K && split != arch::kSplit16K && split != arch::kSplit64K)
      split = arch::kSplit4K;
    // The L1 table: MAX(1, 2^(LOG2SIZE - SPLIT)) descriptors, aligned to its size or 64 bytes.
    const unsigned l1_align = log2size > split ? std::max(6u, log2size - split + 3) : 6;
    const uint64_t l1_addr =
        (addr & ~bits_below(l1_align)) + arch::strtab_l1_index(req.sid, split) * sizeof(L1STD);
    uint64_t desc = 0;
    ++r.stats.l1_reads;
    if ((l1_addr >> oas) || !l.read(l1_addr, desc))
      return l.fetch_fault(LookupError::ste_fetch_abort, l1_addr);
    L1STD l1;
    l1.set_word(0, desc);
    // 5.1.1, 7.3.3: an L1STD that does not cover the StreamID makes it invalid.
    if (desc & ~L1STD::Fields::declared(0))
      return l.bad_streamid(LookupError::l1std_reserved, recinvsid);
    const unsigned span = static_cast<unsigned>(l1.get<L1STD::Span>());
    if (arch::l1std_span_entries(span) == 0)
      return l.bad_streamid(LookupError::l1std_span_invalid, recinvsid);
    if (span > split + 1) return l.bad_streamid(LookupError::l1std_span_large, recinvsid);
    const uint64_t l2_index = arch::strtab_l2_index(req.sid, split);
    if (l2_index >= arch::l1std_span_entries(span))
      return l.bad_streamid(LookupError::sid_beyond_span, recinvsid);
    // L2Ptr[5 + (Span - 1):0] are treated as 0: the array is aligned to its size (5.1).
    ste_addr = (l1.get<L1STD::L2Ptr>() & ~bits_below(span + 5)) + l2_index * sizeof(STE);
  }

  arch::STE ste;
  if ((ste_addr >> oas) || !l.read_struct(ste_addr, ste))
    return l.fetch_fault(LookupError::ste_fetch_abort, ste_addr);
  SteDecode d = decode_ste(ste, regs.CR2.get<arch::CR2::E2H>());
  if (d.error != LookupError::none) return l.config_error(d.error, d.cfg_error, d.detail);
  r.ste = d.cfg;
  return r;
}

ConfigResult ConfigLookup::lookup_cd(PhysMem& mem, const StreamConfig& ste,
                                     const StreamRequest& req) const {
  STRATA_BUG_ON(req.ssid >> 20);
  ConfigResult r;
  r.ste = ste;
  Lookup l(mem, caps_, req, r);
  if (ste.mode == StreamMode::abort) return r;

  // Substream checks (5.2 S1Fmt, S1CDMax, S1DSS; 7.3.7, 7.3.9).
  uint32_t index = 0;  // the CD to use
  if (req.ssv) {
    if (!ste.stage1()) return l.config_error(LookupError::ssid_without_stage1, {}, {}, req.ssid);
    if (config_.ssidsize == 0)
      return l.config_error(LookupError::ssid_unsupported, {}, {}, req.ssid);
    if (ste.S1CDMax == 0) return l.config_error(LookupError::ssid_disabled, {}, {}, req.ssid);
    if (req.ssid >> ste.S1CDMax)
      return l.config_error(LookupError::ssid_out_of_range, {}, {}, req.ssid);
    if (ste.S1DSS == arch::kS1dssSsid0 && req.ssid == 0)
      return l.config_error(LookupError::substream0_reserved);
    index = req.ssid;
  } else {
    if (!ste.stage1()) return r;
    if (ste.S1CDMax != 0) {
      if (ste.S1DSS == arch::kS1dssTerminate)
        return l.config_error(LookupError::substream_required);
      // Bypass stage 1 as though Config were 0b1x0: no CD is fetched.
      if (ste.S1DSS == arch::kS1dssBypass) return r;
      // kS1dssSsid0: the CD of Substream 0.
    }
  }

  // A structure address (an IPA when stage 2 translates) to its PA. A stage-2 fault is
  // reported as CLASS CD with the structure's IPA; the check is a Data read (walk_s2).
  const Access access = ste.override_access(req.access);
  auto to_pa = [&](uint64_t addr, uint64_t& pa) {
    if (!ste.stage2()) {
      pa = addr;
      return true;
    }
    const Walk w = walk_s2(l.mem(), ste.s2, addr, access, FaultClass::cd);
    r.stats.s2_reads = static_cast<uint16_t>(r.stats.s2_reads + w.stats.s2_reads);
    if (!w.ok()) {
      l.cd_s2_fault(w, ste);
      return false;
    }
    pa = w.tr.oa;
    return true;
  };

  uint64_t cd_addr;
  if (ste.S1Fmt == arch::kS1FmtLinear) {
    cd_addr = ste.S1ContextPtr + uint64_t{index} * sizeof(CD);
  } else {
    const unsigned l2_bits = ste.S1Fmt == arch::kS1Fmt4KL2 ? arch::kCdL2Bits4K : arch::kCdL2Bits64K;
    const uint64_t l1_addr = ste.S1ContextPtr + uint64_t{index >> l2_bits} * sizeof(L1CD);
    uint64_t l1_pa;
    if (!to_pa(l1_addr, l1_pa)) return r;
    uint64_t desc = 0;
    ++r.stats.l1_reads;
    if (!l.read(l1_pa, desc)) return l.fetch_fault(LookupError::cd_fetch_abort, l1_pa);
    L1CD l1;
    l1.set_word(0, desc);
    // 5.3.1, 7.3.9: an unusable L1CD is C_BAD_SUBSTREAMID, with the CD's index.
    if (!l1.get<L1CD::V>()) return l.config_error(LookupError::l1cd_invalid, {}, {}, index);
    // L2Ptr[11:0] are taken as zero; for 64KB level 2 tables L2Ptr[15:12] are RES0 (5.2 S1Fmt).
    const uint64_t l2_align = l2_bits == arch::kCdL2Bits4K ? 12 : 16;
    uint64_t l2 = l1.get<L1CD::L2Ptr>();
    if ((desc & ~L1CD::Fields::declared(0)) || (l2 & bits_below(l2_align)))
      return l.config_error(LookupError::l1cd_reserved, {}, {}, index);
    // 3.4.3: an L2Ptr beyond the OAS (PA) or IAS (IPA) is C_BAD_SUBSTREAMID.
    if (l2 >> caps_.ias_bits()) return l.config_error(LookupError::l1cd_range, {}, {}, index);
    cd_addr = l2 + (index & bits_below(l2_bits)) * sizeof(CD);
  }

  uint64_t cd_pa;
  if (!to_pa(cd_addr, cd_pa)) return r;
  arch::CD cd;
  if (!l.read_struct(cd_pa, cd)) return l.fetch_fault(LookupError::cd_fetch_abort, cd_pa);
  CdDecode d = decode_cd(cd, ste);
  if (d.error != LookupError::none) return l.config_error(d.error, d.cfg_error, d.detail);
  d.cfg.ssid = index;
  d.cfg.cd_addr = cd_addr;
  d.cfg.cd_pa = cd_pa;
  r.cd = d.cfg;
  return r;
}

}  // namespace strata::sim::smmuv3

fmt::format_context::iterator fmt::formatter<strata::sim::smmuv3::ConfigResult>::format(
    const strata::sim::smmuv3::ConfigResult& r, fmt::format_context& ctx) const {
  using namespace strata::sim::smmuv3;
  if (r.ok()) {
    auto out = fmt::format_to(ctx.out(), "ok: {}", name(r.ste->mode));
    if (r.cd) out = fmt::format_to(out, ", CD {} ASID {:#x}", r.cd->ssid, r.cd->ASID);
    if (r.ste->stage2()) out = fmt::format_to(out, ", VMID {:#x}", r.ste->S2VMID);
    return out;
  }
  auto out = fmt::format_to(ctx.out(), "{} ({}", r.event_type(), name(r.error));
  if (r.cfg_error != CfgError::none) out = fmt::format_to(out, ": {}", name(r.cfg_error));
  if (r.detail) out = fmt::format_to(out, ": {}", r.detail);
  out =
      fmt::format_to(out, ") StreamID {:#x}", r.event.get<strata::smmuv3::EventRecord::StreamID>());
  if (r.error == LookupError::cd_s2_fault) out = fmt::format_to(out, " [{}]", r.fault);
  if (!r.record) out = fmt::format_to(out, " (not recorded)");
  return out;
}
