// SPDX-License-Identifier: MIT
// The event records of ATS (IHI 0070 7.3.6 F_BAD_ATS_TREQ, 7.3.8 F_TRANSL_FORBIDDEN), kept in
// the model until arch/smmuv3/event.h declares them.
//
// Positions: the common header (Type [7:0], SSV [11], SubstreamID [31:12], StreamID [63:32]) is
// 7.3's. F_TRANSL_FORBIDDEN's figure gives RnW at bit 99 and InputAddr[63:0] at [191:128].
// F_BAD_ATS_TREQ's figure is an image in the text the model was written from: its R/W/X/PRIV
// and Span fields are left 0, and the request's address is written at [191:128] where every
// other record has InputAddr. An ATS Translation Request's address is 4 KB aligned, so this
// also matches an InputAddr[63:12] at [191:140] (to be checked against the figure).
#pragma once

#include <stdint.h>

#include "arch/reg.h"
#include "arch/smmuv3/event.h"

namespace strata::sim::smmuv3 {

namespace arch = ::strata::smmuv3;

struct BadAtsTreqRecord : reg::Descriptor<BadAtsTreqRecord, 4, "F_BAD_ATS_TREQ"> {
  using Type = arch::EventRecord::Type;
  using SSV = arch::EventRecord::SSV;
  using SubstreamID = arch::EventRecord::SubstreamID;
  using StreamID = arch::EventRecord::StreamID;
  using InputAddr = reg::Field<191, 128, "InputAddr">;  // the Translation Request's address
  using Fields = reg::FieldList<Type, SSV, SubstreamID, StreamID, InputAddr>;
};

// The Translated transaction is treated as SSV == 0 (SMMU_IDR3.PASIDTT == 0, 3.9.1.3).
struct TranslForbiddenRecord : reg::Descriptor<TranslForbiddenRecord, 4, "F_TRANSL_FORBIDDEN"> {
  using Type = arch::EventRecord::Type;
  using StreamID = arch::EventRecord::StreamID;
  using RnW = reg::Bit<99, "RnW">;                      // 1: read
  using InputAddr = reg::Field<191, 128, "InputAddr">;  // the Translated address
  using Fields = reg::FieldList<Type, StreamID, RnW, InputAddr>;
};

static_assert(sizeof(BadAtsTreqRecord) == 32 && sizeof(TranslForbiddenRecord) == 32);

}  // namespace strata::sim::smmuv3
