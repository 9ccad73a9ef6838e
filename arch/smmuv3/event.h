// SPDX-License-Identifier: MIT
// Arm SMMUv3 Event queue records (IHI 0070, 7.3) and PRI queue records (chapter 8).
//
// An event record is 32 bytes, four little-endian 64-bit words, with the event number in bits
// [7:0]. As for commands, the layouts differ per event, so EventRecord is the common header
// (number, SubstreamID, StreamID) and each family of events has its own descriptor type, viewed
// with descriptor_cast (defs.h). Only layouts confirmed by a second source are declared:
//
//   EventRecord             C_BAD_STREAMID, C_BAD_STE, C_BAD_SUBSTREAMID (no SSV), C_BAD_CD,
//                           F_STREAM_DISABLED, and the header of every other event
//   UutRecord               F_UUT (7.3.2)
//   FetchFaultRecord        F_STE_FETCH, F_CD_FETCH, F_VMS_FETCH (7.3.4, 7.3.10, 7.3.20)
//   WalkEabtRecord          F_WALK_EABT (7.3.12)
//   TranslationFaultRecord  F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION (7.3.13-16)
//
// Not declared yet (the positions are only in the specification's figures): F_PERMISSION's
// Overlay/AssuredOnly/DirtyBit, NSIPA (Secure event queue only), E_PAGE_REQUEST's permission
// flags and Span, F_TLB_CONFLICT and F_CFG_CONFLICT Reason.
#pragma once

#include <stdint.h>

#include <fmt/core.h>

#include "arch/reg.h"
#include "arch/smmuv3/defs.h"

namespace strata::smmuv3 {

// Event numbers (7.3.2-7.3.21), spelled as the specification names the events.
enum class EventType : uint8_t {
  F_UUT = 0x01,               // unsupported upstream transaction
  C_BAD_STREAMID = 0x02,      // StreamID out of range of the stream table
  F_STE_FETCH = 0x03,         // external abort fetching an STE
  C_BAD_STE = 0x04,           // STE invalid or ILLEGAL
  F_BAD_ATS_TREQ = 0x05,      // ATS translation request refused
  F_STREAM_DISABLED = 0x06,   // transaction without (or with) SubstreamID refused by S1DSS
  F_TRANSL_FORBIDDEN = 0x07,  // ATS Translated traffic refused
  C_BAD_SUBSTREAMID = 0x08,   // SubstreamID out of range or substreams disabled
  F_CD_FETCH = 0x09,          // external abort fetching a CD
  C_BAD_CD = 0x0a,            // CD invalid or ILLEGAL
  F_WALK_EABT = 0x0b,         // external abort on a table walk
  F_TRANSLATION = 0x10,       // translation fault
  F_ADDR_SIZE = 0x11,         // address size fault
  F_ACCESS = 0x12,            // access flag fault
  F_PERMISSION = 0x13,        // permission fault
  F_TLB_CONFLICT = 0x20,      // TLB conflict
  F_CFG_CONFLICT = 0x21,      // configuration cache conflict
  E_PAGE_REQUEST = 0x24,      // speculative page request hint
  F_VMS_FETCH = 0x25,         // external abort fetching a VMS
};

// IMPLEMENTATION DEFINED events (7.3.21).
inline constexpr uint8_t kImpdefEventFirst = 0xe0, kImpdefEventLast = 0xef;

// The event's name ("F_TRANSLATION"), "IMPDEF_EVENTn" for 0xE0-0xEF, nullptr if Reserved.
constexpr const char* event_name(uint8_t type) {
  switch (static_cast<EventType>(type)) {
    case EventType::F_UUT: return "F_UUT";
    case EventType::C_BAD_STREAMID: return "C_BAD_STREAMID";
    case EventType::F_STE_FETCH: return "F_STE_FETCH";
    case EventType::C_BAD_STE: return "C_BAD_STE";
    case EventType::F_BAD_ATS_TREQ: return "F_BAD_ATS_TREQ";
    case EventType::F_STREAM_DISABLED: return "F_STREAM_DISABLED";
    case EventType::F_TRANSL_FORBIDDEN: return "F_TRANSL_FORBIDDEN";
    case EventType::C_BAD_SUBSTREAMID: return "C_BAD_SUBSTREAMID";
    case EventType::F_CD_FETCH: return "F_CD_FETCH";
    case EventType::C_BAD_CD: return "C_BAD_CD";
    case EventType::F_WALK_EABT: return "F_WALK_EABT";
    case EventType::F_TRANSLATION: return "F_TRANSLATION";
    case EventType::F_ADDR_SIZE: return "F_ADDR_SIZE";
    case EventType::F_ACCESS: return "F_ACCESS";
    case EventType::F_PERMISSION: return "F_PERMISSION";
    case EventType::F_TLB_CONFLICT: return "F_TLB_CONFLICT";
    case EventType::F_CFG_CONFLICT: return "F_CFG_CONFLICT";
    case EventType::E_PAGE_REQUEST: return "E_PAGE_REQUEST";
    case EventType::F_VMS_FETCH: return "F_VMS_FETCH";
  }
  if (type >= kImpdefEventFirst && type <= kImpdefEventLast) return "IMPDEF_EVENTn";
  return nullptr;
}

// The common header (7.3).
struct EventRecord : reg::Descriptor<EventRecord, 4, "EVENT"> {
  using Type = reg::Field<7, 0, "Type">;  // event number (EventType)
  using SSV = reg::Bit<11, "SSV">;        // SubstreamID valid
  using SubstreamID = reg::Field<31, 12, "SubstreamID">;
  using StreamID = reg::Field<63, 32, "StreamID">;
  using Fields = reg::FieldList<Type, SSV, SubstreamID, StreamID>;

  constexpr uint8_t type() const { return static_cast<uint8_t>(get<Type>()); }
};

static_assert(sizeof(EventRecord) == 32);

// F_UUT (7.3.2): the InD/PnU are the incoming attributes, not the STE-overridden ones.
struct UutRecord : reg::Descriptor<UutRecord, 4, "F_UUT"> {
  using Type = EventRecord::Type;
  using SSV = EventRecord::SSV;
  using SubstreamID = EventRecord::SubstreamID;
  using StreamID = EventRecord::StreamID;
  using Reason = reg::Field<79, 64, "Reason">;          // IMPLEMENTATION DEFINED cause
  using PnU = reg::Bit<97, "PnU">;                      // 1: privileged
  using InD = reg::Bit<98, "InD">;                      // 1: instruction
  using RnW = reg::Bit<99, "RnW">;                      // 1: read
  using InputAddr = reg::Field<191, 128, "InputAddr">;  // address input to the SMMU
  using Fields = reg::FieldList<Type, SSV, SubstreamID, StreamID, Reason, PnU, InD, RnW, InputAddr>;
};

// F_STE_FETCH, F_CD_FETCH, F_VMS_FETCH: an external abort (or, with RME, a granule protection
// check fault) fetching a configuration structure.
struct FetchFaultRecord : reg::Descriptor<FetchFaultRecord, 4, "FETCH_FAULT"> {
  using Type = EventRecord::Type;
  using SSV = EventRecord::SSV;
  using SubstreamID = EventRecord::SubstreamID;
  using StreamID = EventRecord::StreamID;
  using Reason = reg::Field<79, 64, "Reason">;         // IMPLEMENTATION DEFINED cause
  using GPCF = reg::Bit<80, "GPCF">;                   // granule protection check fault
  using FetchAddr = reg::Addr<247, 195, "FetchAddr">;  // PA fetched, bits [55:3]
  using Fields = reg::FieldList<Type, SSV, SubstreamID, StreamID, Reason, GPCF, FetchAddr>;
};

// F_WALK_EABT (7.3.12): an external abort fetching or updating a translation table descriptor.
// The attribute and S2/CLASS fields sit where the translation faults have them; FetchAddr, the
// PA of the descriptor, takes the upper words where those have the IPA. Unlike the translation
// faults, a stage 1 walk abort is S2 == 0 with CLASS TT (not IN), and there is no Stall.
struct WalkEabtRecord : reg::Descriptor<WalkEabtRecord, 4, "F_WALK_EABT"> {
  using Type = EventRecord::Type;
  using SSV = EventRecord::SSV;
  using SubstreamID = EventRecord::SubstreamID;
  using StreamID = EventRecord::StreamID;
  using Reason = reg::Field<79, 64, "Reason">;          // IMPLEMENTATION DEFINED cause
  using PnU = reg::Bit<97, "PnU">;                      // 1: privileged (post-STE override)
  using InD = reg::Bit<98, "InD">;                      // 1: instruction (post-STE override)
  using RnW = reg::Bit<99, "RnW">;                      // of the input transaction, 1: read
  using S2 = reg::Bit<103, "S2">;                       // a stage 2 descriptor aborted
  using CLASS = reg::Field<105, 104, "CLASS">;          // kClass*
  using InputAddr = reg::Field<191, 128, "InputAddr">;  // address input to the SMMU
  using FetchAddr = reg::Addr<247, 195, "FetchAddr">;   // descriptor PA [55:3]
  using Fields = reg::FieldList<Type, SSV, SubstreamID, StreamID, Reason, PnU, InD, RnW, S2, CLASS,
                                InputAddr, FetchAddr>;
};

static_assert(sizeof(WalkEabtRecord) == 32);

// F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION (7.3.13-16): a translation fault at either
// stage. CLASS says what was being translated: a CD fetch (stage 2 of the CD's IPA), a stage 1
// table walk (stage 2 of the descriptor's IPA) or the input address; IPA is valid when S2 == 1.
// With Stall == 1 the transaction waits for CMD_RESUME (StreamID, STAG) or CMD_STALL_TERM.
struct TranslationFaultRecord : reg::Descriptor<TranslationFaultRecord, 4, "TRANSLATION_FAULT"> {
  using Type = EventRecord::Type;
  using SSV = EventRecord::SSV;
  using SubstreamID = EventRecord::SubstreamID;
  using StreamID = EventRecord::StreamID;
  using STAG = reg::Field<79, 64, "STAG">;              // stall tag, for CMD_RESUME
  using Stall = reg::Bit<95, "Stall">;                  // the transaction is stalled
  using PnU = reg::Bit<97, "PnU">;                      // 1: privileged (post-STE override)
  using InD = reg::Bit<98, "InD">;                      // 1: instruction (post-STE override)
  using RnW = reg::Bit<99, "RnW">;                      // 1: read
  using S2 = reg::Bit<103, "S2">;                       // the fault is at stage 2
  using CLASS = reg::Field<105, 104, "CLASS">;          // kClass*
  using TTRnW = reg::Bit<108, "TTRnW">;                 // F_PERMISSION, CLASS TT: 1 read
  using InputAddr = reg::Field<191, 128, "InputAddr">;  // address input to the SMMU
  using IPA = reg::Addr<247, 204, "IPA">;               // stage 2 faults: IPA [55:12]
  using Fields = reg::FieldList<Type, SSV, SubstreamID, StreamID, STAG, Stall, PnU, InD, RnW, S2,
                                CLASS, TTRnW, InputAddr, IPA>;
};

static_assert(sizeof(TranslationFaultRecord) == 32);

// TranslationFaultRecord.CLASS (7.3); 0b11 is Reserved.
inline constexpr uint64_t kClassCd = 0b00;  // CD fetch
inline constexpr uint64_t kClassTt = 0b01;  // stage 1 translation table fetch
inline constexpr uint64_t kClassIn = 0b10;  // the input address

// PRI queue record (chapter 8): one PCIe Page Request, 16 bytes. The field names are the
// specification's (StreamID, SSV, SubstreamID, Page address, PRGIndex, Last/W/R/X/Priv); the
// positions come from Linux's PRIQ_* (arm-smmu-v3.h), the only source found that spells them out.
struct PriRecord : reg::Descriptor<PriRecord, 2, "PRI"> {
  using StreamID = reg::Field<31, 0, "StreamID">;
  using SubstreamID = reg::Field<51, 32, "SubstreamID">;  // UNKNOWN when SSV == 0
  using Priv = reg::Bit<58, "Priv">;                      // privileged access requested
  using X = reg::Bit<59, "X">;                            // execute requested
  using R = reg::Bit<60, "R">;                            // read requested
  using W = reg::Bit<61, "W">;                            // write requested
  using Last = reg::Bit<62, "Last">;                      // last request of its group
  using SSV = reg::Bit<63, "SSV">;                        // request carried a PASID
  using PRGIndex = reg::Field<72, 64, "PRGIndex">;        // page request group index
  using Address = reg::Addr<127, 76, "Address">;          // page address [63:12]
  using Fields = reg::FieldList<StreamID, SubstreamID, Priv, X, R, W, Last, SSV, PRGIndex, Address>;
};

static_assert(sizeof(PriRecord) == 16);

}  // namespace strata::smmuv3

// Event numbers print by name ("F_TRANSLATION"), Reserved ones in hex ("event 0x42").
template <>
struct fmt::formatter<strata::smmuv3::EventType> {
  constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
  auto format(strata::smmuv3::EventType type, fmt::format_context& ctx) const {
    const uint8_t v = static_cast<uint8_t>(type);
    if (const char* name = strata::smmuv3::event_name(v))
      return fmt::format_to(ctx.out(), "{}", name);
    return fmt::format_to(ctx.out(), "event {:#04x}", v);
  }
};
