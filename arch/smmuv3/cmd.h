// SPDX-License-Identifier: MIT
// Arm SMMUv3 commands (IHI 0070, chapter 4) and Command queue errors (7.1).
//
// A command is 16 bytes, two little-endian 64-bit words, with the opcode in bits [7:0]. Fields
// overlap between commands (bits [31:12] are the SubstreamID of a CFGI but NUM and SCALE of a
// TLBI), so each command layout is its own descriptor type; Command is the common header a
// consumer reads first, then views as the layout the opcode selects (descriptor_cast, defs.h).
// Positions are absolute bit numbers across the 128-bit command: bit 64 is bit 0 of word 1.
//
// Common fields (4.1.6): SSec is 0 on the Non-secure queue (1 there is CERROR_ILL); SSV says
// whether SubstreamID is supplied; virtual addresses are Address[63:12], physical and IPA ones
// Address[55:12] (MSIAddress [55:2]) with the bits above the implemented size RES0. All other
// bits are RES0 and an SMMU may reject a command that sets one (CERROR_ILL, 4.1.5).
#pragma once

#include <stdint.h>

#include <fmt/core.h>

#include "arch/bug.h"
#include "arch/reg.h"
#include "arch/smmuv3/defs.h"

namespace strata::smmuv3 {

// Command opcodes (4.1.1). The enumerators are spelled as the specification names the commands.
enum class Opcode : uint8_t {
  CMD_PREFETCH_CONFIG = 0x01,
  CMD_PREFETCH_ADDR = 0x02,
  CMD_CFGI_STE = 0x03,
  CMD_CFGI_STE_RANGE = 0x04,  // CMD_CFGI_ALL is CMD_CFGI_STE_RANGE with Range == 31 (4.3.4)
  CMD_CFGI_CD = 0x05,
  CMD_CFGI_CD_ALL = 0x06,
  CMD_CFGI_VMS_PIDM = 0x07,
  CMD_TLBI_NH_ALL = 0x10,
  CMD_TLBI_NH_ASID = 0x11,
  CMD_TLBI_NH_VA = 0x12,
  CMD_TLBI_NH_VAA = 0x13,
  CMD_TLBI_EL3_ALL = 0x18,
  CMD_TLBI_EL3_VA = 0x1a,
  CMD_TLBI_EL2_ALL = 0x20,
  CMD_TLBI_EL2_ASID = 0x21,
  CMD_TLBI_EL2_VA = 0x22,
  CMD_TLBI_EL2_VAA = 0x23,
  CMD_TLBI_S12_VMALL = 0x28,
  CMD_TLBI_S2_IPA = 0x2a,
  CMD_TLBI_NSNH_ALL = 0x30,
  CMD_ATC_INV = 0x40,
  CMD_PRI_RESP = 0x41,
  CMD_RESUME = 0x44,
  CMD_STALL_TERM = 0x45,
  CMD_SYNC = 0x46,
};

// CMD_CFGI_ALL shares CMD_CFGI_STE_RANGE's opcode (4.1.1). QEMU's enum once gave it 0x07, which
// the specification assigns to CMD_CFGI_VMS_PIDM.
inline constexpr Opcode CMD_CFGI_ALL = Opcode::CMD_CFGI_STE_RANGE;

// The opcode's name, or nullptr for a Reserved or IMPLEMENTATION DEFINED (0x80-0x8F) opcode.
constexpr const char* opcode_name(uint8_t op) {
  switch (static_cast<Opcode>(op)) {
    case Opcode::CMD_PREFETCH_CONFIG: return "CMD_PREFETCH_CONFIG";
    case Opcode::CMD_PREFETCH_ADDR: return "CMD_PREFETCH_ADDR";
    case Opcode::CMD_CFGI_STE: return "CMD_CFGI_STE";
    case Opcode::CMD_CFGI_STE_RANGE: return "CMD_CFGI_STE_RANGE";
    case Opcode::CMD_CFGI_CD: return "CMD_CFGI_CD";
    case Opcode::CMD_CFGI_CD_ALL: return "CMD_CFGI_CD_ALL";
    case Opcode::CMD_CFGI_VMS_PIDM: return "CMD_CFGI_VMS_PIDM";
    case Opcode::CMD_TLBI_NH_ALL: return "CMD_TLBI_NH_ALL";
    case Opcode::CMD_TLBI_NH_ASID: return "CMD_TLBI_NH_ASID";
    case Opcode::CMD_TLBI_NH_VA: return "CMD_TLBI_NH_VA";
    case Opcode::CMD_TLBI_NH_VAA: return "CMD_TLBI_NH_VAA";
    case Opcode::CMD_TLBI_EL3_ALL: return "CMD_TLBI_EL3_ALL";
    case Opcode::CMD_TLBI_EL3_VA: return "CMD_TLBI_EL3_VA";
    case Opcode::CMD_TLBI_EL2_ALL: return "CMD_TLBI_EL2_ALL";
    case Opcode::CMD_TLBI_EL2_ASID: return "CMD_TLBI_EL2_ASID";
    case Opcode::CMD_TLBI_EL2_VA: return "CMD_TLBI_EL2_VA";
    case Opcode::CMD_TLBI_EL2_VAA: return "CMD_TLBI_EL2_VAA";
    case Opcode::CMD_TLBI_S12_VMALL: return "CMD_TLBI_S12_VMALL";
    case Opcode::CMD_TLBI_S2_IPA: return "CMD_TLBI_S2_IPA";
    case Opcode::CMD_TLBI_NSNH_ALL: return "CMD_TLBI_NSNH_ALL";
    case Opcode::CMD_ATC_INV: return "CMD_ATC_INV";
    case Opcode::CMD_PRI_RESP: return "CMD_PRI_RESP";
    case Opcode::CMD_RESUME: return "CMD_RESUME";
    case Opcode::CMD_STALL_TERM: return "CMD_STALL_TERM";
    case Opcode::CMD_SYNC: return "CMD_SYNC";
  }
  return nullptr;
}

// The common header: every command's opcode.
struct Command : reg::Descriptor<Command, 2, "CMD"> {
  using Op = reg::Field<7, 0, "Opcode">;
  using Fields = reg::FieldList<Op>;

  constexpr uint8_t opcode() const { return static_cast<uint8_t>(get<Op>()); }
};

static_assert(sizeof(Command) == 16);

namespace detail {

// A command layout with its opcode set.
template <typename C>
constexpr C make_command(Opcode op) {
  C c;
  c.template set<typename C::Op>(static_cast<uint8_t>(op));
  return c;
}

}  // namespace detail

// CMD_PREFETCH_CONFIG (4.2.1).
struct CmdPrefetchConfig : reg::Descriptor<CmdPrefetchConfig, 2, "CMD_PREFETCH_CONFIG"> {
  using Op = Command::Op;
  using SSec = reg::Bit<10, "SSec">;  // StreamID is Secure
  using SSV = reg::Bit<11, "SSV">;    // SubstreamID valid
  using SubstreamID = reg::Field<31, 12, "SubstreamID">;
  using StreamID = reg::Field<63, 32, "StreamID">;
  using Fields = reg::FieldList<Op, SSec, SSV, SubstreamID, StreamID>;
  static constexpr CmdPrefetchConfig make() {
    return detail::make_command<CmdPrefetchConfig>(Opcode::CMD_PREFETCH_CONFIG);
  }
};

// CMD_PREFETCH_ADDR (4.2.2). Its NS and Stride parameters are not declared: their positions are
// only in the specification's figure, which no second source confirmed.
struct CmdPrefetchAddr : reg::Descriptor<CmdPrefetchAddr, 2, "CMD_PREFETCH_ADDR"> {
  using Op = Command::Op;
  using SSec = reg::Bit<10, "SSec">;
  using SSV = reg::Bit<11, "SSV">;
  using SubstreamID = reg::Field<31, 12, "SubstreamID">;
  using StreamID = reg::Field<63, 32, "StreamID">;
  using Size = reg::Field<68, 64, "Size">;        // 2^Size translations
  using Address = reg::Addr<127, 76, "Address">;  // VA or IPA [63:12]
  using Fields = reg::FieldList<Op, SSec, SSV, SubstreamID, StreamID, Size, Address>;
  static constexpr CmdPrefetchAddr make() {
    return detail::make_command<CmdPrefetchAddr>(Opcode::CMD_PREFETCH_ADDR);
  }
};

// CMD_CFGI_STE (4.3.1): invalidate the STE of StreamID; Leaf == 0 also the L1STD covering it.
struct CmdCfgiSte : reg::Descriptor<CmdCfgiSte, 2, "CMD_CFGI_STE"> {
  using Op = Command::Op;
  using SSec = reg::Bit<10, "SSec">;
  using StreamID = reg::Field<63, 32, "StreamID">;
  using Leaf = reg::Bit<64, "Leaf">;  // only the STE, not the L1STD
  using Fields = reg::FieldList<Op, SSec, StreamID, Leaf>;
  static constexpr CmdCfgiSte make() {
    return detail::make_command<CmdCfgiSte>(Opcode::CMD_CFGI_STE);
  }
};

// CMD_CFGI_STE_RANGE (4.3.2): the 2^(Range+1) StreamIDs aligned around StreamID. With Range
// == 31 it is CMD_CFGI_ALL (4.3.4), StreamID ignored.
struct CmdCfgiSteRange : reg::Descriptor<CmdCfgiSteRange, 2, "CMD_CFGI_STE_RANGE"> {
  using Op = Command::Op;
  using SSec = reg::Bit<10, "SSec">;
  using StreamID = reg::Field<63, 32, "StreamID">;
  using Range = reg::Field<68, 64, "Range">;
  using Fields = reg::FieldList<Op, SSec, StreamID, Range>;
  static constexpr CmdCfgiSteRange make() {
    return detail::make_command<CmdCfgiSteRange>(Opcode::CMD_CFGI_STE_RANGE);
  }
  // CMD_CFGI_ALL.
  static constexpr CmdCfgiSteRange make_all() { return make().set<Range>(kRangeAll); }
  static constexpr uint64_t kRangeAll = 31;
};

// CMD_CFGI_CD (4.3.3): the CD of (StreamID, SubstreamID); Leaf == 0 also the L1CD.
struct CmdCfgiCd : reg::Descriptor<CmdCfgiCd, 2, "CMD_CFGI_CD"> {
  using Op = Command::Op;
  using SSec = reg::Bit<10, "SSec">;
  using SubstreamID = reg::Field<31, 12, "SubstreamID">;
  using StreamID = reg::Field<63, 32, "StreamID">;
  using Leaf = reg::Bit<64, "Leaf">;
  using Fields = reg::FieldList<Op, SSec, SubstreamID, StreamID, Leaf>;
  static constexpr CmdCfgiCd make() { return detail::make_command<CmdCfgiCd>(Opcode::CMD_CFGI_CD); }
};

// CMD_CFGI_CD_ALL (4.3.5): every CD (and L1CD) cached for StreamID.
struct CmdCfgiCdAll : reg::Descriptor<CmdCfgiCdAll, 2, "CMD_CFGI_CD_ALL"> {
  using Op = Command::Op;
  using SSec = reg::Bit<10, "SSec">;
  using StreamID = reg::Field<63, 32, "StreamID">;
  using Fields = reg::FieldList<Op, SSec, StreamID>;
  static constexpr CmdCfgiCdAll make() {
    return detail::make_command<CmdCfgiCdAll>(Opcode::CMD_CFGI_CD_ALL);
  }
};

// The TLB invalidations (4.4): CMD_TLBI_{NH,EL2,EL3,S12,S2,NSNH}_*, one layout. A command uses
// the fields its scope names (VMID for NH_* and S12/S2, ASID for *_ASID/*_VA, the address and
// range fields for *_VA/*_VAA/S2_IPA) and the others are RES0. Range invalidation (4.4.1.1,
// IDR3.RIL): with TG != 0 the command covers (NUM + 1) * 2^SCALE granules from Address and TTL
// hints the leaf level; TG == 0 is a single-address invalidation and NUM, SCALE, TTL are RES0.
// CMD_TLBI_S2_IPA's Address is an IPA, bits [55:12].
struct CmdTlbi : reg::Descriptor<CmdTlbi, 2, "CMD_TLBI"> {
  using Op = Command::Op;
  using NUM = reg::Field<16, 12, "NUM">;      // range: NUM + 1 granules per 2^SCALE
  using SCALE = reg::Field<25, 20, "SCALE">;  // range scale; bit 25 only with IDR5.DS
  using VMID = reg::Field<47, 32, "VMID">;
  using ASID = reg::Field<63, 48, "ASID">;
  using Leaf = reg::Bit<64, "Leaf">;              // last-level entries only
  using TTL128 = reg::Bit<71, "TTL128">;          // TTL refers to 128-bit descriptors
  using TTL = reg::Field<73, 72, "TTL">;          // level hint of the leaf (0: unknown)
  using TG = reg::Field<75, 74, "TG">;            // granule of the entries (kTlbiTg*)
  using Address = reg::Addr<127, 76, "Address">;  // VA [63:12], or IPA [55:12]
  using Fields = reg::FieldList<Op, NUM, SCALE, VMID, ASID, Leaf, TTL128, TTL, TG, Address>;
  // `op` must be one of the CMD_TLBI_* opcodes.
  static constexpr CmdTlbi make(Opcode op) {
    switch (op) {
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
      case Opcode::CMD_TLBI_NSNH_ALL: return detail::make_command<CmdTlbi>(op);
      default: STRATA_BUG("not a TLB invalidation opcode");
    }
  }
};

// CmdTlbi.TG: 0b00 means "any granule, no range, no TTL".
inline constexpr uint64_t kTlbiTgNone = 0b00, kTlbiTg4K = 0b01, kTlbiTg16K = 0b10,
                          kTlbiTg64K = 0b11;

// CMD_ATC_INV (4.5.1): invalidate a device's ATC for Address plus 4KB * 2^Size.
struct CmdAtcInv : reg::Descriptor<CmdAtcInv, 2, "CMD_ATC_INV"> {
  using Op = Command::Op;
  using Global = reg::Bit<9, "Global">;  // PCIe Global Invalidate (with SSV only)
  using SSV = reg::Bit<11, "SSV">;
  using SubstreamID = reg::Field<31, 12, "SubstreamID">;
  using StreamID = reg::Field<63, 32, "StreamID">;
  using Size = reg::Field<69, 64, "Size">;        // span 4KB * 2^Size; 52 = everything
  using Address = reg::Addr<127, 76, "Address">;  // [63:12], aligned to the span
  using Fields = reg::FieldList<Op, Global, SSV, SubstreamID, StreamID, Size, Address>;
  static constexpr CmdAtcInv make() { return detail::make_command<CmdAtcInv>(Opcode::CMD_ATC_INV); }
  static constexpr uint64_t kSizeAll = 52;
};

// CMD_PRI_RESP (4.5.2): complete a page request group.
struct CmdPriResp : reg::Descriptor<CmdPriResp, 2, "CMD_PRI_RESP"> {
  using Op = Command::Op;
  using SSV = reg::Bit<11, "SSV">;
  using SubstreamID = reg::Field<31, 12, "SubstreamID">;
  using StreamID = reg::Field<63, 32, "StreamID">;
  using PRGIndex = reg::Field<72, 64, "PRGIndex">;  // page request group index
  using Resp = reg::Field<77, 76, "Resp">;          // kPriResp*
  using Fields = reg::FieldList<Op, SSV, SubstreamID, StreamID, PRGIndex, Resp>;
  static constexpr CmdPriResp make() {
    return detail::make_command<CmdPriResp>(Opcode::CMD_PRI_RESP);
  }
};

// CMD_PRI_RESP.Resp (4.5.2); 0b11 is ILLEGAL. (Linux names 0 and 1 DENY and FAIL.)
inline constexpr uint64_t kPriRespFailure = 0b00;  // ResponseFailure: permanent error
inline constexpr uint64_t kPriRespInvalid = 0b01;  // InvalidRequest: a page failed
inline constexpr uint64_t kPriRespSuccess = 0b10;  // Success

// CMD_RESUME (4.7.1): retry or terminate a stalled transaction (StreamID, STAG from the event).
struct CmdResume : reg::Descriptor<CmdResume, 2, "CMD_RESUME"> {
  using Op = Command::Op;
  using SSec = reg::Bit<10, "SSec">;
  using Ac = reg::Bit<12, "Ac">;  // Action: 1 retry, 0 terminate
  using Ab = reg::Bit<13, "Ab">;  // Abort: when terminating, 1 abort, 0 RAZ/WI
  using StreamID = reg::Field<63, 32, "StreamID">;
  using STAG = reg::Field<79, 64, "STAG">;  // stall tag, as in the event record
  using Fields = reg::FieldList<Op, SSec, Ac, Ab, StreamID, STAG>;
  static constexpr CmdResume make() { return detail::make_command<CmdResume>(Opcode::CMD_RESUME); }
};

// CMD_STALL_TERM (4.7.2): terminate every stalled transaction of StreamID.
struct CmdStallTerm : reg::Descriptor<CmdStallTerm, 2, "CMD_STALL_TERM"> {
  using Op = Command::Op;
  using SSec = reg::Bit<10, "SSec">;
  using StreamID = reg::Field<63, 32, "StreamID">;
  using Fields = reg::FieldList<Op, SSec, StreamID>;
  static constexpr CmdStallTerm make() {
    return detail::make_command<CmdStallTerm>(Opcode::CMD_STALL_TERM);
  }
};

// CMD_SYNC (4.7.3): completes when every earlier command has; then signals per CS. With CS ==
// SIG_IRQ and MSIAddress != 0 it writes MSIData to MSIAddress (Linux points it at the CMD_SYNC's
// own queue slot and polls for the zeroed first word).
struct CmdSync : reg::Descriptor<CmdSync, 2, "CMD_SYNC"> {
  using Op = Command::Op;
  using CS = reg::Field<13, 12, "CS">;                  // completion signal (kCs*)
  using MSH = reg::Field<23, 22, "MSH">;                // MSI shareability (kSh*)
  using MSIAttr = reg::Field<27, 24, "MSIAttr">;        // MSI memory type (kMemAttr*)
  using MSIData = reg::Field<63, 32, "MSIData">;        // MSI payload
  using MSIAddress = reg::Addr<119, 66, "MSIAddress">;  // MSI target [55:2]
  using Fields = reg::FieldList<Op, CS, MSH, MSIAttr, MSIData, MSIAddress>;
  static constexpr CmdSync make() { return detail::make_command<CmdSync>(Opcode::CMD_SYNC); }
};

// CMD_SYNC.CS; 0b11 is Reserved.
inline constexpr uint64_t kCsNone = 0b00;  // SIG_NONE: poll CMDQ_CONS
inline constexpr uint64_t kCsIrq = 0b01;   // SIG_IRQ: MSI (or wired interrupt)
inline constexpr uint64_t kCsSev = 0b10;   // SIG_SEV: WFE wake-up event

static_assert(sizeof(CmdTlbi) == 16 && sizeof(CmdSync) == 16);

// SMMU_CMDQ_CONS.ERR reason codes (7.1).
enum class CommandError : uint8_t {
  CERROR_NONE = 0x00,          // no error (never reported)
  CERROR_ILL = 0x01,           // illegal command: Reserved opcode, field or value
  CERROR_ABT = 0x02,           // external abort on command fetch
  CERROR_ATC_INV_SYNC = 0x03,  // a CMD_SYNC saw a CMD_ATC_INV time out
};

constexpr const char* command_error_name(uint8_t err) {
  switch (static_cast<CommandError>(err)) {
    case CommandError::CERROR_NONE: return "CERROR_NONE";
    case CommandError::CERROR_ILL: return "CERROR_ILL";
    case CommandError::CERROR_ABT: return "CERROR_ABT";
    case CommandError::CERROR_ATC_INV_SYNC: return "CERROR_ATC_INV_SYNC";
  }
  return nullptr;
}

}  // namespace strata::smmuv3

// Opcodes and command errors print by name ("CMD_SYNC"), unknown values in hex ("opcode 0x8f").
template <>
struct fmt::formatter<strata::smmuv3::Opcode> {
  constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
  auto format(strata::smmuv3::Opcode op, fmt::format_context& ctx) const {
    const uint8_t v = static_cast<uint8_t>(op);
    if (const char* name = strata::smmuv3::opcode_name(v))
      return fmt::format_to(ctx.out(), "{}", name);
    return fmt::format_to(ctx.out(), "opcode {:#04x}", v);
  }
};

template <>
struct fmt::formatter<strata::smmuv3::CommandError> {
  constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
  auto format(strata::smmuv3::CommandError err, fmt::format_context& ctx) const {
    const uint8_t v = static_cast<uint8_t>(err);
    if (const char* name = strata::smmuv3::command_error_name(v))
      return fmt::format_to(ctx.out(), "{}", name);
    return fmt::format_to(ctx.out(), "CERROR {:#04x}", v);
  }
};
