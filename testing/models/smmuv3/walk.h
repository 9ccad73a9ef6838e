// SPDX-License-Identifier: MIT
// The SMMUv3 model's translation table walker: VMSAv8-64 stage 1 and stage 2, alone or nested,
// as an SMMU walks them (IHI 0070 3.4 "Address sizes", 5.2 STE, 5.4 CD, 7.3 "Event records";
// Arm ARM DDI 0487 chapter D8, "The AArch64 Virtual Memory System Architecture").
//
// The model is the referee for the driver, so this is its own reading of the architecture: it
// shares only the descriptor definitions of arch/lpae/pte.h with the rest of strata, never
// core/io-pgtable. Every descriptor is fetched through the simulated bus (sim::PhysMem), never
// through a host pointer, so a table pointer outside RAM is an external abort as on silicon.
//
// Two steps, as the hardware does them:
//   1. decode_s1() / decode_s2() check a CD's / STE's translation fields once, when the
//      configuration is fetched, and precompute the walk geometry. A rejected configuration is
//      a CfgError, which the STE/CD decoder reports as C_BAD_CD / C_BAD_STE: the spec calls
//      these combinations ILLEGAL and they never start a walk. The decoded Stage1/Stage2 is
//      what a configuration cache holds.
//   2. walk_s1() / walk_s2() translate one address and return a Translation or a Fault record
//      carrying everything an F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION or
//      F_WALK_EABT event needs (stage, CLASS, InputAddr, IPA, FetchAddr, RnW/InD/PnU, TTRnW).
//
// Config error or walk fault (IHI 0070 3.4, 5.2, 5.4, 7.3.14):
//   CfgError (C_BAD_CD / C_BAD_STE)          | Fault
//   -----------------------------------------+--------------------------------------------------
//   AA64/S2AA64 = 0 (no VMSAv8-32 tables)    | input beyond TxSZ, wrong sign extension, EPDx = 1,
//   ENDI/S2ENDI = 1 (little-endian tables)   |   E0PDx: translation (stage 1); IPA beyond
//   TGx/S2TG reserved or not in IDR5.GRAN*   |   S2T0SZ: translation (stage 2)
//   TxSZ/S2T0SZ outside [min, max]           | invalid descriptor, reserved L3 type, block at a
//   S2SL0 invalid for the granule/OAS, or    |   level the granule cannot hold: translation
//     inconsistent with S2T0SZ (more than    | next-level table or output address above the
//     16 concatenated start tables, or none) |   effective IPS/S2PS: addr_size at that stage
//   TTBx/S2TTB above the effective IPS/S2PS, | stage 1 bypassed, input above IAS: addr_size,
//     or above 48 bits with 4K/16K           |   stage 1, CLASS IN (walk_s1_bypass)
//   HA/S2HA without IDR0.HTTU, HD/S2HD       | AF = 0 without HA and AFFD: access
//     without HTTU = 2                       | AP/XN/S2AP/PAN/WXN refuse: permission
//                                            | descriptor fetch or update aborted: walk_eabt
//
// Fault order within a stage follows IHI 0070 7.3.22: range check; per level walk_eabt,
// translation, addr_size; then access, then permission on the leaf. Nested: each stage-1
// descriptor's IPA is translated by stage 2 first (a fault there is stage 2, CLASS TT, IPA =
// the descriptor's IPA), stage 1's access and permission checks come before stage 2 translates
// the output IPA (CLASS IN).
//
// Hardware updates (HTTU, IHI 0070 3.13; Arm ARM D8 "Hardware updates of the translation
// tables"): with HA an AF = 0 leaf gets AF set; with HD a write to a writable-clean leaf (DBM = 1
// and AP[2] = 1 at stage 1, S2AP[1] = 0 at stage 2) makes it dirty. Both are one compare-and-
// swap of the descriptor (sim::PhysMem::cmpxchg64), done only when the access passes every check
// of its stage (IHI 0070 3.13.2 leaves it UNKNOWN whether a permission fault still sets AF;
// this model does not set it). In a nested walk the stage-1 update is a write to an IPA, so
// stage 2 translates it again as a write (a refusal is a stage-2 fault, CLASS TT, TTRnW = 0).
// When the swap loses a race (the descriptor changed since it was read), the stage's walk starts
// again from its base, so the checks are made on what memory now holds. A swap that aborts is
// F_WALK_EABT ("fetching (or updating)", IHI 0070 7.3.12).
//
// What it implements: 4K, 16K and 64K granules at both stages; every start level the TxSZ
// and S2SL0 allow, including up to 16 concatenated stage-2 start tables and STT's small tables
// (IDR3.STT); 52-bit OA and 52-bit VA (IDR5.VAX) with the 64K granule; 64K level-1 blocks when
// OAS = 52; TTB1 with T1SZ/TG1/EPD1/TBI1; TBI; hierarchical table attributes (APTable,
// UXNTable, PXNTable) and HADx (IDR3.HAD); WXN, PAN, E0PDx (IDR3.E0PD); stage-2 XN with and
// without FEAT_XNX (IDR3.XNX); S2PTW; AFFD/S2AFFD; HA/HD/S2HA/S2HD.
//
// What it does not: VMSAv8-32 LPAE and VMSAv9-128 tables; FEAT_LPA2 (CD.DS, STE.S2DS, level
// -1); big-endian tables; StreamWorlds other than NS-EL1 (EL2/EL3 single-privilege regimes);
// Secure and Realm state; EPAN, permission indirection and overlays; HAFT; S2FWB; the
// Contiguous bit (a TLB hint, ignored); memory-attribute combining (the Translation reports each
// stage's raw attributes for the caller to combine).
#pragma once

#include <stdint.h>

#include <fmt/core.h>

#include "testing/models/platform/phys_mem.h"

namespace strata::sim::smmuv3 {

// What the SMMU implements, from its ID registers, as far as the walker cares.
struct Caps {
  unsigned oas_bits = 48;  // SMMU_IDR5.OAS decoded: 32, 36, 40, 42, 44, 48 or 52
  bool gran4k = true;      // SMMU_IDR5.GRAN4K
  bool gran16k = true;     // SMMU_IDR5.GRAN16K
  bool gran64k = true;     // SMMU_IDR5.GRAN64K
  bool vax = false;        // SMMU_IDR5.VAX == 0b01: 52-bit VA with the 64K granule
  unsigned httu = 0;       // SMMU_IDR0.HTTU: 0 none, 1 Access flag, 2 Access flag and dirty state
  bool stt = false;        // SMMU_IDR3.STT: small translation tables (TxSZ up to 48)
  bool xnx = false;        // SMMU_IDR3.XNX: stage-2 XN[0] distinguishes EL0 and EL1 execution
  bool had = false;        // SMMU_IDR3.HAD: CD.HADx disable hierarchical attributes
  bool e0pd = false;       // SMMU_IDR3.E0PD: CD.E0PDx

  // The intermediate address size (IHI 0070 3.4): the model implements VMSAv8-64 tables only
  // (IDR0.TTF = 0b10), so IAS = OAS.
  unsigned ias_bits() const { return oas_bits; }
};

// The stage-1 translation fields of a CD (IHI 0070 5.4), named as the CD spells them. The STE/CD
// decoder fills it from the CD's words; fields the walker does not use (ASID, MAIR, R/A/S, ...)
// are not here.
struct S1Cfg {
  uint8_t T0SZ = 0;    // TTB0 region size: 2^(64 - T0SZ) bytes
  uint8_t TG0 = 0;     // TTB0 granule: 0 4K, 1 64K, 2 16K, 3 reserved
  bool EPD0 = false;   // TTB0 walks disabled: addresses it covers get a translation fault
  bool ENDI = false;   // big-endian tables
  uint8_t T1SZ = 0;    // TTB1 region size
  uint8_t TG1 = 0;     // TTB1 granule: 0 reserved, 1 16K, 2 4K, 3 64K
  bool EPD1 = true;    // TTB1 walks disabled
  uint8_t IPS = 0;     // output (intermediate physical) address size: IDR5.OAS encoding
  bool AFFD = false;   // Access flag fault disable: AF = 0 is treated as 1 (when HA = 0)
  bool WXN = false;    // write implies execute-never
  bool UWXN = false;   // IGNORED for VMSAv8-64 tables; kept so the decoder can copy every field
  bool TBI0 = false;   // top byte ignore, TTB0
  bool TBI1 = false;   // top byte ignore, TTB1
  bool PAN = false;    // privileged access never
  bool AA64 = true;    // VMSAv8-64 tables (0 selects VMSAv8-32 LPAE, not implemented)
  bool HD = false;     // hardware update of dirty state
  bool HA = false;     // hardware update of the Access flag
  uint64_t TTB0 = 0;   // TTB0 base address, bits [51:4] (an IPA when stage 2 translates)
  bool HAD0 = false;   // hierarchical attributes disabled for TTB0 (IDR3.HAD)
  bool E0PD0 = false;  // unprivileged accesses through TTB0 fault (IDR3.E0PD)
  uint64_t TTB1 = 0;
  bool HAD1 = false;
  bool E0PD1 = false;
};

// The stage-2 translation fields of an STE (IHI 0070 5.2), named as the STE spells them.
struct S2Cfg {
  uint8_t S2T0SZ = 0;   // IPA region size: 2^(64 - S2T0SZ) bytes
  uint8_t S2SL0 = 0;    // starting level, encoded as VTCR_EL2.SL0 (depends on S2TG)
  uint8_t S2TG = 0;     // granule: 0 4K, 1 64K, 2 16K, 3 reserved
  uint8_t S2PS = 0;     // output address size: IDR5.OAS encoding
  bool S2AA64 = true;   // VMSAv8-64 tables (0 selects VMSAv8-32 LPAE, not implemented)
  bool S2ENDI = false;  // big-endian tables
  bool S2AFFD = false;  // Access flag fault disable (when S2HA = 0)
  bool S2PTW = false;   // protected table walk: CD fetches and stage-1 walks to Device fault
  bool S2HD = false;    // hardware update of dirty state
  bool S2HA = false;    // hardware update of the Access flag
  uint64_t S2TTB = 0;   // table base address, bits [51:4]
};

// Why a configuration is ILLEGAL (C_BAD_CD for stage 1, C_BAD_STE for stage 2).
enum class CfgError : uint8_t {
  none,
  aa32_tables,          // AA64/S2AA64 = 0: VMSAv8-32 LPAE is not implemented (IDR0.TTF[0] = 0)
  big_endian,           // ENDI/S2ENDI = 1: little-endian tables only (IDR0.TTENDIAN = 0b10)
  granule_reserved,     // TGx/S2TG holds the reserved encoding
  granule_unsupported,  // a granule IDR5 does not advertise
  tsz_out_of_range,     // TxSZ/S2T0SZ below the minimum or above the maximum
  sl0_invalid,          // S2SL0 names a start level the granule and OAS cannot have
  sl0_inconsistent,     // S2SL0 and S2T0SZ disagree: start level resolves 0 or > stride+4 bits
  ttb_out_of_range,     // TTBx/S2TTB beyond the effective IPS/S2PS, or 48 bits with 4K/16K
  ha_unsupported,       // HA/S2HA = 1 but IDR0.HTTU = 0
  hd_unsupported,       // HD/S2HD = 1 but IDR0.HTTU < 2
};
const char* name(CfgError e);

// One translation table base (TTB0, TTB1 or S2TTB) as the walker uses it.
struct TableGeometry {
  uint64_t ttb = 0;         // base, aligned as the SMMU aligns it (low bits treated as zero)
  uint8_t granule = 0;      // log2 of the granule: 12, 14 or 16
  uint8_t ia_bits = 0;      // input address size, 64 - TxSZ
  uint8_t start_level = 0;  // 0..3
  uint8_t start_bits = 0;   // index bits resolved at the start level (> stride: concatenated)
  bool disabled = false;    // EPDx: no walk, a translation fault
  bool tbi = false;         // TBIx
  bool had = false;         // HADx (only when IDR3.HAD)
  bool e0pd = false;        // E0PDx (only when IDR3.E0PD)
};

// A CD's stage 1, checked and decoded (decode_s1 makes one): what a configuration cache holds.
struct Stage1 {
  TableGeometry tt[2];   // TTB0, TTB1
  uint8_t ps_bits = 0;   // effective IPS: min(CD.IPS, OAS)
  uint8_t oas_bits = 0;  // SMMU OAS (64K level-1 blocks need 52)
  bool affd = false, wxn = false, pan = false;
  bool ha = false, hd = false;  // effective: HD without HA behaves as neither (IHI 0070 5.4)
};

// An STE's stage 2, checked and decoded (decode_s2 makes one).
struct Stage2 {
  TableGeometry tt;
  uint8_t ps_bits = 0;  // effective S2PS: min(STE.S2PS, OAS)
  uint8_t oas_bits = 0;
  bool affd = false, ptw = false, xnx = false;
  bool ha = false, hd = false;
};

template <typename T>
struct Decoded {
  T stage{};
  CfgError error = CfgError::none;
  bool ok() const { return error == CfgError::none; }
};

Decoded<Stage1> decode_s1(const S1Cfg& cd, const Caps& caps);
Decoded<Stage2> decode_s2(const S2Cfg& ste, const Caps& caps);

// A transaction's access attributes, after the STE's INSTCFG/PRIVCFG overrides. The SMMU
// treats every write as Data (IHI 0070 13.1.2), so instr is ignored when write is set.
struct Access {
  bool write = false;  // !RnW
  bool instr = false;  // InD
  bool priv = false;   // PnU
};

enum class FaultType : uint8_t {
  none,
  translation,  // F_TRANSLATION
  addr_size,    // F_ADDR_SIZE
  access,       // F_ACCESS
  permission,   // F_PERMISSION
  walk_eabt,    // F_WALK_EABT
};
const char* name(FaultType t);

// The event record's CLASS field: what the faulting stage was translating.
enum class FaultClass : uint8_t {
  cd = 0,  // a CD fetch (stage 2 only)
  tt = 1,  // a stage-1 translation table descriptor (stage 2 faults; any F_WALK_EABT of stage 1)
  in = 2,  // the transaction's input address
};
const char* name(FaultClass c);

struct Fault {
  FaultType type = FaultType::none;
  uint8_t stage = 0;                // 1 or 2 (the record's S2 bit is stage == 2)
  FaultClass cls = FaultClass::in;  // CLASS
  int8_t level = 0;                 // lookup level (not in the record; for logs and tests)
  bool RnW = true;                  // of the input transaction
  bool InD = false;
  bool PnU = false;
  bool TTRnW = true;        // CLASS TT: 1 a descriptor read, 0 an HTTU descriptor write
  uint64_t input_addr = 0;  // InputAddr, as presented to the SMMU
  uint64_t ipa = 0;         // IPA: stage-2 faults only (CLASS CD/TT: the structure's IPA)
  uint64_t fetch_addr = 0;  // FetchAddr: walk_eabt only, the descriptor's PA
};

// Stage-1 leaf permissions as the descriptor held them after this walk's update, with the
// hierarchical attributes collected on the way down (zero when HADx disables them).
struct S1Perm {
  uint8_t AP = 0;       // AP[2:1]: bit 1 read-only, bit 0 unprivileged access
  uint8_t APTable = 0;  // OR of the tables' APTable[1:0]
  bool UXN = false, PXN = false;
  bool UXNTable = false, PXNTable = false;
  bool DBM = false;
};

struct S2Perm {
  uint8_t S2AP = 0;  // bit 0 read, bit 1 write
  uint8_t XN = 0;    // XN[1:0]
  bool DBM = false;
};

// Whether a stage permits an access (Arm ARM D8 permission model; IHI 0070 5.4 WXN/PAN). With
// hardware dirty-state update on, a writable-clean leaf counts as writable: the walk that
// allows the write is the one that makes the leaf dirty, so a TLB entry that is still clean must
// send a write back to the walker.
bool s1_permits(const Stage1& s1, const S1Perm& perm, Access access);
bool s2_permits(const Stage2& s2, const S2Perm& perm, Access access);

struct Translation {
  uint64_t oa = 0;        // output address: a PA
  uint64_t ipa = 0;       // stage 2's input: stage 1's output when nested, the input address for
                          // stage 2 alone, equal to oa for stage 1 alone
  uint8_t size_log2 = 0;  // the translation's span: the smaller of the stages' leaves
  uint8_t s1_level = 0, s1_size_log2 = 0;  // zero when stage 1 did not translate
  uint8_t s2_level = 0, s2_size_log2 = 0;  // zero when stage 2 did not translate
  bool has_s1 = false, has_s2 = false;
  // Stage-1 leaf attributes.
  uint8_t AttrIndx = 0;
  uint8_t SH = 0;
  bool nG = false;  // tagged with the ASID
  S1Perm s1_perm;
  // Stage-2 leaf attributes.
  uint8_t MemAttr = 0;
  uint8_t S2SH = 0;
  S2Perm s2_perm;
};

// Work done by one walk, for benchmarks and tests.
struct WalkStats {
  uint16_t s1_reads = 0;  // stage-1 descriptor fetches
  uint16_t s2_reads = 0;  // stage-2 descriptor fetches (including those for stage-1 tables)
  uint16_t updates = 0;   // HTTU compare-and-swaps attempted
  uint16_t retries = 0;   // walks restarted after a lost compare-and-swap
};

struct Walk {
  Translation tr;  // valid when ok()
  Fault fault;     // valid when !ok()
  WalkStats stats;
  bool ok() const { return fault.type == FaultType::none; }
};

// Stage 1 at `va`, then, when `s2` is given (nested, STE.Config = 0b111), stage 2 for every
// stage-1 descriptor fetch and for the output.
Walk walk_s1(PhysMem& mem, const Stage1& s1, uint64_t va, Access access,
             const Stage2* s2 = nullptr);

// Stage 2 alone at `ipa`. `cls` is what the IPA is for: IN for a transaction's address; CD for a
// CD or L1CD fetch (checked as a Data read, subject to S2PTW; the caller sets the fault's
// input_addr to the transaction's). Stage-1 table fetches (TT) happen inside walk_s1.
Walk walk_s2(PhysMem& mem, const Stage2& s2, uint64_t ipa, Access access,
             FaultClass cls = FaultClass::in);

// STE.Config = 0b110 (or S1DSS bypass with stage 2): stage 1 bypassed, so an input above the IAS
// is a stage-1 Address Size fault (IHI 0070 3.4), then stage 2 translates it as an IPA.
Walk walk_s1_bypass(PhysMem& mem, const Stage2& s2, uint64_t addr, Access access,
                    unsigned ias_bits);

}  // namespace strata::sim::smmuv3

// "F_TRANSLATION stage 2 CLASS TT level 1 InputAddr 0x... IPA 0x... RnW InD=0 PnU=0 ..."
template <>
struct fmt::formatter<strata::sim::smmuv3::Fault> {
  constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
  fmt::format_context::iterator format(const strata::sim::smmuv3::Fault& f,
                                       fmt::format_context& ctx) const;
};
