// SPDX-License-Identifier: MIT
// The SMMUv3 model's configuration lookup: from a transaction's (StreamID, SubstreamID) to the
// decoded translation configuration, or the architected event that stops it (IHI 0070 3.3
// "Data structures and translation procedure", 5.1-5.5, 6.3.24-25, 7.3.3-7.3.11).
//
// The lookup follows the hardware's steps, reading every structure through the bus (PhysMem)
// in 64-bit single-copy-atomic words:
//
//   1. Stream table (3.3.1, 5.1, 6.3.24-25): STRTAB_BASE_CFG.FMT selects a linear table or a
//      2-level one (L1STD by StreamID[LOG2SIZE-1:SPLIT], STE by StreamID[SPLIT-1:0]).
//      C_BAD_STREAMID for a StreamID >= 2^LOG2SIZE (LOG2SIZE capped at IDR1.SIDSIZE) or one an
//      L1STD does not cover (Span 0 or Reserved, Span > SPLIT + 1, StreamID[SPLIT-1:0] >=
//      2^(Span-1)); it is recorded only when SMMU_CR2.RECINVSID is set. F_STE_FETCH when a fetch
//      of the L1STD or STE aborts or its address is beyond the OAS.
//   2. STE decode (5.2, 5.2.2 SteIllegal, 5.5): C_BAD_STE for V == 0 and for every ILLEGAL
//      combination, the stage-2 ones through the walker's decode_s2(). Config 0b0xx aborts
//      without an event (a valid configuration: StreamMode::abort).
//   3. Substream checks (5.2 S1CDMax/S1DSS, 7.3.7, 7.3.9): C_BAD_SUBSTREAMID for a SubstreamID
//      with stage 1 disabled, substreams unsupported or disabled, or beyond 2^S1CDMax;
//      F_STREAM_DISABLED for a transaction without one when S1DSS terminates, or with
//      SubstreamID 0 when S1DSS gives CD 0 to the others. S1DSS bypass skips stage 1.
//   4. CD fetch (5.3, 5.4): a single CD, a linear CD table or a 2-level one (L1CD.V == 0 or an
//      L2Ptr beyond the address size: C_BAD_SUBSTREAMID). In a nested STE every L1CD and CD
//      address is an IPA that stage 2 translates first (walk_s2, CLASS CD): a stage-2 fault
//      there is that fault, S2 == 1, CLASS CD, IPA the structure's. A fetch that aborts is
//      F_CD_FETCH.
//   5. CD decode (5.4.2 CdIllegal): C_BAD_CD for V == 0 and every ILLEGAL combination, the
//      translation ones through the walker's decode_s1().
//
// Choices among the behaviours the spec permits (the model is the referee, so it takes the
// strict one each time):
//  - Non-specified (Reserved) bits of an STE, CD, L1STD or L1CD are checked (chapter 5: "an
//    implementation either detects non-zero values ... and considers the structure invalid, or
//    ignores the Reserved field"): C_BAD_STE, C_BAD_CD, C_BAD_STREAMID, C_BAD_SUBSTREAMID. The
//    IMPLEMENTATION DEFINED fields are IGNORED (the model defines none). Fields that are RES0
//    because this SMMU lacks their feature (S2FWB without IDR3.FWB, STRW without IDR0.Hyp, the
//    Secure, Realm, MPAM, DPT, THE, PBHA-in-v3.0, permission indirection and overlay fields,
//    ...) are treated the same way, unless the configuration makes them IGNORED (S1 fields with
//    stage 1 bypassed, S2 fields with stage 2 bypassed, TTBx fields under EPDx).
//  - Out-of-range structure addresses (3.4.3): S1ContextPtr beyond the OAS/IAS is C_BAD_STE,
//    L1CD.L2Ptr beyond it C_BAD_SUBSTREAMID (the SMMUv3.1 behaviours, taken for v3.0 too), an
//    STE address beyond the OAS F_STE_FETCH (not truncation). FetchAddr bits at and above the
//    OAS are RES0 in the record (7.3.4), so they read as zero there.
//  - Low bits of S1ContextPtr and L1STD.L2Ptr below their table's alignment are treated as zero
//    (5.1, 5.2 S1Fmt), never used to reach another entry.
//  - STE.EATS == 0b01 with S2S == 1 is ILLEGAL only when stage 2 translates, in SMMUv3.0 too
//    (Arm's recommendation for the CONSTRAINED UNPREDICTABLE case).
//  - The record of C_BAD_SUBSTREAMID carries the SubstreamID without SSV (7.3.9), 0 when the
//    CD of Substream 0 was being fetched for a transaction without one (S1DSS == 0b10); that of
//    F_STREAM_DISABLED carries only the StreamID (7.3.7's figure has no SSV or SubstreamID).
//
// What it does not: Secure and Realm stream tables (Non-secure only); StreamWorlds other than
// NS-EL1 decode, but the walker does not implement EL2 regimes, so such a configuration carries
// an "unimplemented" note; VMSAv8-32 and VMSAv9-128 tables, LPA2 (DS), permission indirection,
// MPAM and DPT are absent features (their fields are RES0, ILLEGAL when set); the STE.CONT hint
// (a caching hint: every StreamID is looked up on its own); stalls (a stage-2 fault on a CD fetch
// says whether it may stall, the caller stalls it); F_WALK_EABT's FetchAddr, whose record
// position arch/smmuv3/event.h does not declare yet (the walker's Fault in the result has it).
//
// No caching here: each call reads memory afresh and is pure apart from those reads (no state,
// safe from any thread), so that a configuration cache and a test oracle can both re-run it.
#pragma once

#include <stdint.h>

#include <optional>

#include <fmt/core.h>

#include "arch/smmuv3/cd.h"
#include "arch/smmuv3/event.h"
#include "arch/smmuv3/regs.h"
#include "arch/smmuv3/ste.h"
#include "testing/models/platform/phys_mem.h"
#include "testing/models/smmuv3/config.h"
#include "testing/models/smmuv3/registers.h"
#include "testing/models/smmuv3/walk.h"

namespace strata::sim::smmuv3 {

namespace arch = ::strata::smmuv3;

// The walker's view of a Config's features.
Caps walker_caps(const Config& config);

// The registers the configuration lookup reads (latched while SMMUEN == 1, so constant while the
// SMMU is enabled): the stream table base and geometry, and CR2's E2H and RECINVSID.
struct StreamTableRegs {
  arch::STRTAB_BASE STRTAB_BASE;
  arch::STRTAB_BASE_CFG STRTAB_BASE_CFG;
  arch::CR2 CR2;

  // Their current values in the model's register file.
  static StreamTableRegs read(const Registers& regs);
};

// One transaction as the configuration lookup sees it.
struct StreamRequest {
  uint32_t sid = 0;         // StreamID
  bool ssv = false;         // SSV: the transaction carries a SubstreamID
  uint32_t ssid = 0;        // SubstreamID, 20 bits; IGNORED without ssv
  uint64_t input_addr = 0;  // InputAddr, for the record of a stage-2 fault on a CD fetch
  Access access{};          // incoming RnW/InD/PnU, before STE.PRIVCFG/INSTCFG
};

// STE.Config (5.2), as the SMMU acts on it: 0b001-0b011 behave as 0b000.
enum class StreamMode : uint8_t {
  abort,   // 0b0xx: abort, no event
  bypass,  // 0b100: both stages bypass
  s1,      // 0b101: stage 1 translates, stage 2 bypass
  s2,      // 0b110: stage 1 bypass, stage 2 translates
  nested,  // 0b111: both stages translate
};
const char* name(StreamMode m);

// StreamWorld (3.3.3, 5.2 STRW) of a Non-secure STE.
enum class StreamWorld : uint8_t {
  none,        // Config abort or bypass: no translation regime
  ns_el1,      // NS-EL1: ASID and VMID tagged
  ns_el2,      // NS-EL2: one TTB, no ASID (not implemented by the walker)
  ns_el2_e2h,  // NS-EL2-E2H: ASID tagged (not implemented by the walker)
};
const char* name(StreamWorld w);

// A checked STE (5.2), the fields named as the STE spells them. Values are the effective ones
// where the spec gives a field an effective value (Reserved encodings, IGNORED fields read as 0
// here); fields of a stage the Config bypasses are 0.
struct StreamConfig {
  uint8_t Config = 0;  // STE.Config as programmed
  StreamMode mode = StreamMode::abort;
  StreamWorld world = StreamWorld::none;  // from STRW, CR2.E2H and Config
  // Stage 1 (Config 0b1x1).
  uint8_t S1Fmt = 0;  // CD table format: 0 linear (also 0b11, and single CD), 1 4KB L2, 2 64KB L2
  uint64_t S1ContextPtr = 0;  // CD, CD table or L1CD table (an IPA when nested), aligned as used
  uint8_t S1CDMax = 0;        // log2 of the number of CDs; 0: one CD, substreams disabled
  uint8_t S1DSS = 0;          // default substream: 0 terminate, 1 bypass, 2 CD 0 (0b11 -> 0)
  uint8_t S1CIR = 0, S1COR = 0, S1CSH = 0;  // CD fetch attributes
  bool S1STALLD = false;                    // stage 1 stalls disabled
  // Stream attributes.
  bool DRE = false;      // destructive reads permitted
  bool DCP = false;      // directed cache prefetch permitted
  bool PPAR = false;     // PRI auto-responses carry the PASID
  bool MEV = false;      // events may be merged
  uint8_t EATS = 0;      // effective: 0 when ATS is absent, stage 1 and 2 bypass, or 0b11 (no DPT)
  uint8_t STRW = 0;      // StreamWorld control as programmed (when used)
  uint8_t MemAttr = 0;   // memory type override (with MTCFG)
  bool MTCFG = false;    // apply MemAttr
  uint8_t ALLOCCFG = 0;  // allocation hint override (0b1RWT)
  uint8_t SHCFG = 0;     // shareability override (kShcfg*)
  uint8_t PRIVCFG = 0;   // privilege override (kPrivcfg*; 0b01 behaves as 0b00)
  uint8_t INSTCFG = 0;   // instruction/data override (kInstcfg*; 0b01 behaves as 0b00)
  // Stage 2 (Config 0b11x).
  uint16_t S2VMID = 0;  // VMID tag: 0 when IGNORED (no stage 2, not NS-EL1, no translation)
  bool S2FWB = false;   // stage 2 forced write-back
  bool S2S = false;     // stage 2 faults stall
  bool S2R = false;     // stage 2 faults are recorded
  S2Cfg s2cfg;          // the stage-2 fields as read
  Stage2 s2;            // decoded by decode_s2 (valid when stage2())
  // A feature this configuration uses that the model does not implement (for the caller's
  // "unimplemented" log), or nullptr.
  const char* unimplemented = nullptr;

  bool stage1() const { return mode == StreamMode::s1 || mode == StreamMode::nested; }
  bool stage2() const { return mode == StreamMode::s2 || mode == StreamMode::nested; }
  // The transaction's attributes after STE.PRIVCFG/INSTCFG (13.1.2: a write is always Data).
  Access override_access(Access incoming) const;
};

// A checked CD (5.4), the fields named as the CD spells them.
struct SubstreamConfig {
  uint32_t ssid = 0;     // the CD's index (0 for S1DSS == 0b10 traffic without SubstreamID)
  uint64_t cd_addr = 0;  // where the STE/L1CD located the CD (an IPA when nested)
  uint64_t cd_pa = 0;    // the PA it was fetched from
  uint16_t ASID = 0;     // effective: 0 when IGNORED (StreamWorld NS-EL2)
  bool ASET = false;     // ASID not shared with the PE
  bool A = false, R = false, S = false;  // fault configuration (5.5)
  uint64_t MAIR = 0;                     // {MAIR1, MAIR0}
  uint64_t AMAIR = 0;                    // {AMAIR1, AMAIR0}
  bool UWXN = false;                     // IGNORED with VMSAv8-64; kept as read
  S1Cfg s1cfg;                           // the translation fields as read (EPDx effective)
  Stage1 s1;                             // decoded by decode_s1
  const char* unimplemented = nullptr;
};

// Why a lookup ended without a configuration: which rule, for logs and tests. The event each
// reason raises is event_for(reason).
enum class LookupError : uint8_t {
  none,
  // C_BAD_STREAMID (3.3.1, 5.1.1, 7.3.3).
  sid_out_of_range,    // StreamID >= 2^MIN(LOG2SIZE, SIDSIZE)
  l1std_span_invalid,  // L1STD.Span 0 or Reserved (12-31)
  l1std_span_large,    // L1STD.Span > SPLIT + 1
  sid_beyond_span,     // StreamID[SPLIT-1:0] >= 2^(Span-1)
  l1std_reserved,      // L1STD Reserved bits set
  // F_STE_FETCH (7.3.4).
  ste_fetch_abort,  // the L1STD or STE fetch aborted, or its address is beyond the OAS
  // C_BAD_STE (5.2, 5.2.2, 7.3.5).
  ste_invalid,            // STE.V == 0
  ste_reserved,           // a Reserved bit set (detail: the word)
  ste_res0,               // a field RES0 for this SMMU set (detail: its name)
  config_s1_unsupported,  // Config 0b1x1 without IDR0.S1P
  config_s2_unsupported,  // Config 0b11x without IDR0.S2P
  eats_split_illegal,     // EATS 0b10 without Config 0b111, with S2S, or with NS1ATS
  eats_s2s,               // EATS 0b01 with S2S and stage 2 translating
  strw_reserved,          // STRW 0bx1 when STRW is used
  s1stalld_illegal,       // S1STALLD with a STALL_MODEL other than 0b00
  s1cdmax_too_large,      // S1CDMax > IDR1.SSIDSIZE
  s1fmt_2level_no_cd2l,   // S1Fmt 0b01/0b10 without IDR0.CD2L
  s1contextptr_range,     // S1ContextPtr beyond the OAS (stage 1 only) or IAS (nested)
  s2s_unsupported,        // S2S with STALL_MODEL 0b01
  s2s_forced,             // S2S == 0 with STALL_MODEL 0b10
  s2_illegal,             // decode_s2 rejected the stage-2 fields (cfg_error says why)
  s2vmid_too_wide,        // S2VMID[15:8] != 0 without IDR0.VMID16
  // F_STREAM_DISABLED (7.3.7).
  substream_required,   // no SubstreamID, S1CDMax > 0, S1DSS == 0b00
  substream0_reserved,  // SubstreamID 0 with S1DSS == 0b10
  // C_BAD_SUBSTREAMID (7.3.9).
  ssid_without_stage1,  // a SubstreamID with Config 0b1x0
  ssid_unsupported,     // a SubstreamID with IDR1.SSIDSIZE == 0
  ssid_disabled,        // a SubstreamID with S1CDMax == 0
  ssid_out_of_range,    // SubstreamID >= 2^S1CDMax
  l1cd_invalid,         // L1CD.V == 0
  l1cd_reserved,        // L1CD Reserved bits (or L2Ptr[15:12] of a 64KB L2 table) set
  l1cd_range,           // L1CD.L2Ptr beyond the OAS (stage 1 only) or IAS (nested)
  // F_CD_FETCH (7.3.10).
  cd_fetch_abort,  // the L1CD or CD fetch aborted
  // A stage-2 fault translating an L1CD or CD address, CLASS CD (7.3.12-16).
  cd_s2_fault,
  // C_BAD_CD (5.4, 5.4.2, 7.3.11).
  cd_invalid,            // CD.V == 0
  cd_reserved,           // a Reserved bit set (detail: the word)
  cd_res0,               // a field RES0 for this SMMU set (detail: its name)
  cd_stall_disabled,     // CD.S with STE.S1STALLD
  cd_term_model,         // CD.A == 0 with IDR0.TERM_MODEL
  cd_stall_unsupported,  // CD.S with STALL_MODEL 0b01
  cd_stall_forced,       // CD.S == 0 with STALL_MODEL 0b10
  cd_asid_too_wide,      // ASID[15:8] != 0 without IDR0.ASID16
  s1_illegal,            // decode_s1 rejected the translation fields (cfg_error says why)
};
const char* name(LookupError e);
// The event a lookup error raises.
arch::EventType event_for(LookupError e);

// Memory reads made by one lookup.
struct LookupStats {
  uint8_t l1_reads = 0;   // L1STD and L1CD reads
  uint8_t reads = 0;      // STE and CD word reads
  uint16_t s2_reads = 0;  // stage-2 descriptor reads translating CD and L1CD addresses
};

// The outcome of a lookup: a configuration (ok()), or the event that stops the transaction.
struct ConfigResult {
  LookupError error = LookupError::none;
  CfgError cfg_error = CfgError::none;  // s2_illegal and s1_illegal: the walker's reason
  const char* detail = nullptr;         // ste_res0/cd_res0: the field; *_reserved: the word

  // Decoded so far: the STE when the lookup got past C_BAD_STE (always when ok()); the CD when
  // stage 1 translates this transaction (not for S1DSS == 0b01 bypass).
  std::optional<StreamConfig> ste;
  std::optional<SubstreamConfig> cd;

  // !ok(): the record, every field 7.3 defines for the event filled; view it with
  // descriptor_cast as arch::FetchFaultRecord or arch::TranslationFaultRecord as its type says.
  // Stall and STAG are left 0 for the caller.
  arch::EventRecord event;
  bool record = true;  // false: terminate without a record (RECINVSID == 0; S2R == S2S == 0)
  bool stall = false;  // cd_s2_fault eligible to stall (STE.S2S): the caller holds it
  Fault fault;         // cd_s2_fault: the walker's fault (FetchAddr of an F_WALK_EABT)

  LookupStats stats;

  bool ok() const { return error == LookupError::none; }
  // Stage 1 translates this transaction (a CD was used).
  bool stage1() const { return cd.has_value(); }
  // Stage 2 translates this transaction.
  bool stage2() const { return ste && ste->stage2(); }
  arch::EventType event_type() const { return static_cast<arch::EventType>(event.type()); }
};

// The lookup for one SMMU's feature set. Holds nothing but the Config; every call is pure
// apart from the memory it reads, and safe from any thread.
class ConfigLookup {
 public:
  explicit ConfigLookup(const Config& config);

  // Steps 1-5: the whole configuration of a transaction.
  ConfigResult lookup(PhysMem& mem, const StreamTableRegs& regs, const StreamRequest& req) const;
  // Steps 1-2: the STE (req.ssv/ssid only fill records).
  ConfigResult lookup_ste(PhysMem& mem, const StreamTableRegs& regs,
                          const StreamRequest& req) const;
  // Steps 3-5, given the decoded STE (a configuration cache's hit): `ste` is copied into the
  // result.
  ConfigResult lookup_cd(PhysMem& mem, const StreamConfig& ste, const StreamRequest& req) const;

  // Pure decoders: the checks of one fetched structure. `e2h` is SMMU_CR2.E2H.
  struct SteDecode {
    StreamConfig cfg;
    LookupError error = LookupError::none;
    CfgError cfg_error = CfgError::none;
    const char* detail = nullptr;
  };
  SteDecode decode_ste(const arch::STE& ste, bool e2h) const;
  struct CdDecode {
    SubstreamConfig cfg;
    LookupError error = LookupError::none;
    CfgError cfg_error = CfgError::none;
    const char* detail = nullptr;
  };
  CdDecode decode_cd(const arch::CD& cd, const StreamConfig& ste) const;

  const Config& config() const { return config_; }
  const Caps& caps() const { return caps_; }

 private:
  const Config config_;
  const Caps caps_;
};

}  // namespace strata::sim::smmuv3

// "C_BAD_STE (s2_illegal: sl0_inconsistent) StreamID 0x5" or "ok: nested, CD 3".
template <>
struct fmt::formatter<strata::sim::smmuv3::ConfigResult> {
  constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
  fmt::format_context::iterator format(const strata::sim::smmuv3::ConfigResult& r,
                                       fmt::format_context& ctx) const;
};
