// SPDX-License-Identifier: MIT
#include "testing/models/smmuv3/fault_events.h"

#include "arch/bug.h"

namespace strata::sim::smmuv3 {
namespace {

using arch::EventRecord;
using arch::EventType;
using arch::TranslationFaultRecord;
using arch::WalkEabtRecord;

constexpr uint64_t bits_below(unsigned n) {
  return n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1;
}

uint64_t class_field(FaultClass c) {
  switch (c) {
    case FaultClass::cd: return arch::kClassCd;
    case FaultClass::tt: return arch::kClassTt;
    case FaultClass::in: return arch::kClassIn;
  }
  return arch::kClassIn;
}

}  // namespace

EventType fault_event_type(FaultType t) {
  switch (t) {
    case FaultType::translation: return EventType::F_TRANSLATION;
    case FaultType::addr_size: return EventType::F_ADDR_SIZE;
    case FaultType::access: return EventType::F_ACCESS;
    case FaultType::permission: return EventType::F_PERMISSION;
    case FaultType::walk_eabt: return EventType::F_WALK_EABT;
    case FaultType::none: break;
  }
  STRATA_BUG("fault_event_type: no fault");
}

EventRecord fault_record(const Fault& f, uint32_t sid, bool ssv, uint32_t ssid, unsigned oas_bits) {
  EventRecord header;
  header.set<EventRecord::Type>(static_cast<uint64_t>(fault_event_type(f.type)))
      .set<EventRecord::StreamID>(sid);
  if (ssv) header.set<EventRecord::SSV>(1).set<EventRecord::SubstreamID>(ssid);
  const uint64_t oas_mask = bits_below(oas_bits);

  if (f.type == FaultType::walk_eabt) {
    auto r = arch::descriptor_cast<WalkEabtRecord>(header);
    r.set<WalkEabtRecord::PnU>(f.PnU)
        .set<WalkEabtRecord::InD>(f.InD && f.RnW)
        .set<WalkEabtRecord::RnW>(f.RnW)
        .set<WalkEabtRecord::S2>(f.stage == 2)
        .set<WalkEabtRecord::CLASS>(class_field(f.cls))
        .set<WalkEabtRecord::InputAddr>(f.input_addr)
        .set<WalkEabtRecord::FetchAddr>(f.fetch_addr & oas_mask & ~uint64_t{7} & bits_below(56));
    return arch::descriptor_cast<EventRecord>(r);
  }

  auto r = arch::descriptor_cast<TranslationFaultRecord>(header);
  r.set<TranslationFaultRecord::PnU>(f.PnU)
      .set<TranslationFaultRecord::InD>(f.InD && f.RnW)  // 7.3.13: InD == 0 when RnW == 0
      .set<TranslationFaultRecord::RnW>(f.RnW)
      .set<TranslationFaultRecord::S2>(f.stage == 2)
      .set<TranslationFaultRecord::CLASS>(class_field(f.cls))
      .set<TranslationFaultRecord::InputAddr>(f.input_addr);
  // TTRnW is valid when CLASS == TT (7.3.16) and UNKNOWN otherwise.
  if (f.cls == FaultClass::tt) r.set<TranslationFaultRecord::TTRnW>(f.TTRnW);
  // IPA: stage-2 faults only (UNKNOWN at stage 1); for CLASS CD and TT it is the structure's or
  // descriptor's IPA, for CLASS IN the transaction's.
  if (f.stage == 2)
    r.set<TranslationFaultRecord::IPA>(f.ipa & oas_mask & bits_below(56) & ~uint64_t{0xfff});
  return arch::descriptor_cast<EventRecord>(r);
}

FaultDisposition fault_disposition(const Fault& f, const StreamConfig& ste,
                                   const SubstreamConfig* cd) {
  // 5.5: A, R and S govern the four Translation-related faults; any other fault (F_WALK_EABT
  // here) is recorded and aborts.
  FaultDisposition d;
  if (f.type == FaultType::walk_eabt) return d;
  if (f.stage == 2) {
    // Stage 2 has no A flag: termination always aborts.
    d.stall = ste.S2S;
    d.record = ste.S2R || ste.S2S;
    return d;
  }
  if (cd) {
    d.stall = cd->S;
    d.record = cd->R || cd->S;  // "The stall is always reported and the R bit is ignored"
    d.abort = cd->A;
  }
  // A stage-1 fault without a CD is the Address Size fault of a bypassed stage 1 (3.4): no CD
  // holds fault configuration for it, so the model records it and aborts.
  return d;
}

}  // namespace strata::sim::smmuv3
