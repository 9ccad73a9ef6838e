// SPDX-License-Identifier: MIT
// The SMMUv3 model's translation fault records: a walker Fault (walk.h) as the Event queue
// record of IHI 0070 7.3.12-7.3.16 (F_WALK_EABT, F_TRANSLATION, F_ADDR_SIZE, F_ACCESS,
// F_PERMISSION), and the fault configuration of 5.5 that decides whether it is recorded and how
// the transaction ends.
//
// Fields filled (7.3, 7.3.12-16): Type; StreamID; SSV and SubstreamID as the transaction had
// them; RnW, InD, PnU (the post-STE-override attributes, InD == 0 for a write); S2; CLASS;
// InputAddr as presented (all 64 bits, tag byte included); IPA [55:12] for a stage-2 fault of any
// CLASS (bits at and above the OAS RES0); TTRnW when CLASS == TT (UNKNOWN otherwise: written as 0);
// for F_WALK_EABT, FetchAddr [55:3], the PA of the descriptor whose fetch or update aborted, in
// place of the IPA (bits at and above the OAS RES0). Stall and STAG are 0: the model does not
// stall transactions. Reason (IMPLEMENTATION DEFINED) is 0.

#pragma once

#include <stdint.h>

#include "arch/reg.h"
#include "arch/smmuv3/event.h"
#include "testing/models/smmuv3/stream.h"
#include "testing/models/smmuv3/walk.h"

namespace strata::sim::smmuv3 {

// The event a walker fault type raises.
arch::EventType fault_event_type(FaultType t);

// The record of `f`, for the transaction (sid, ssv, ssid), on an SMMU of `oas_bits`.
arch::EventRecord fault_record(const Fault& f, uint32_t sid, bool ssv, uint32_t ssid,
                               unsigned oas_bits);

// What 5.5 makes of a fault: whether it is recorded, whether the transaction would stall, and
// whether termination aborts (else RAZ/WI).
struct FaultDisposition {
  bool record = true;
  bool stall = false;
  bool abort = true;
};
// `cd` is the CD that configured stage 1, or null (stage 1 bypassed or not reached).
FaultDisposition fault_disposition(const Fault& f, const StreamConfig& ste,
                                   const SubstreamConfig* cd);

}  // namespace strata::sim::smmuv3
