// SPDX-License-Identifier: MIT
// Arm SMMUv3 Stream table: the Stream Table Entry (IHI 0070, 5.2) and the Level 1 Stream Table
// Descriptor (5.1), with the stream table geometry of SMMU_STRTAB_BASE_CFG (6.3.25).
//
// Field positions are absolute bit numbers across the structure, as 5.2 numbers them: STE.S2VMID
// is bits [143:128], which is word 2 bits [15:0]. The SMMU reads an STE in 64-bit single-copy
// atomic words (3.21.3), so a writer that must keep a live STE consistent orders its word
// updates and syncs between them (the driver's job, see STYLE.md "Build descriptors purely").
//
// Stage 1 fields (S1*) are IGNORED when Config selects stage 1 bypass, stage 2 fields (S2*,
// except S2VMID) when Config selects stage 2 bypass. Fields marked "Secure" or "Realm" are RES0
// in a Non-secure STE; they are declared so that the model can check them.
#pragma once

#include <stdint.h>

#include "arch/reg.h"
#include "arch/smmuv3/defs.h"

namespace strata::smmuv3 {

// STE (5.2): 64 bytes.
struct STE : reg::Descriptor<STE, 8, "STE"> {
  // Word 0.
  using V = reg::Bit<0, "V">;                             // valid
  using Config = reg::Field<3, 1, "Config">;              // stream configuration (kConfig*)
  using S1Fmt = reg::Field<5, 4, "S1Fmt">;                // CD table format (kS1Fmt*)
  using S1ContextPtr = reg::Addr<55, 6, "S1ContextPtr">;  // CD or L1CD table (IPA if nested)
  using S1CDMax = reg::Field<63, 59, "S1CDMax">;          // log2(number of CDs), 0: one CD
  // Word 1.
  using S1DSS = reg::Field<65, 64, "S1DSS">;              // default substream (kS1dss*)
  using S1CIR = reg::Field<67, 66, "S1CIR">;              // CD fetch inner cacheability (kS1c*)
  using S1COR = reg::Field<69, 68, "S1COR">;              // CD fetch outer cacheability
  using S1CSH = reg::Field<71, 70, "S1CSH">;              // CD fetch shareability (kSh*)
  using S2HWU59 = reg::Bit<72, "S2HWU59">;                // S2 descriptor bit 59 is hardware use
  using S2HWU60 = reg::Bit<73, "S2HWU60">;                // ... bit 60
  using S2HWU61 = reg::Bit<74, "S2HWU61">;                // ... bit 61
  using S2HWU62 = reg::Bit<75, "S2HWU62">;                // ... bit 62
  using DRE = reg::Bit<76, "DRE">;                        // destructive read enable
  using CONT = reg::Field<80, 77, "CONT">;                // contiguous hint: 2^CONT equal STEs
  using DCP = reg::Bit<81, "DCP">;                        // directed cache prefetch
  using PPAR = reg::Bit<82, "PPAR">;                      // PRI auto-responses carry the PASID
  using MEV = reg::Bit<83, "MEV">;                        // merge events
  using SW_RESERVED = reg::Field<87, 84, "SW_RESERVED">;  // IGNORED by the SMMU
  using S1PIE = reg::Bit<88, "S1PIE">;                    // CDs may enable permission indirection
  using S2FWB = reg::Bit<89, "S2FWB">;                    // stage 2 forced write-back
  using S1MPAM = reg::Bit<90, "S1MPAM">;                  // MPAM IDs from the CD
  using S1STALLD = reg::Bit<91, "S1STALLD">;              // stage 1 stalls disabled
  using EATS = reg::Field<93, 92, "EATS">;                // PCIe ATS (kEats*)
  using STRW = reg::Field<95, 94, "STRW">;                // StreamWorld (kStrw*)
  using MemAttr = reg::Field<99, 96, "MemAttr">;          // memory type override (kMemAttr*)
  using MTCFG = reg::Bit<100, "MTCFG">;                   // apply MemAttr
  using ALLOCCFG = reg::Field<104, 101, "ALLOCCFG">;      // 0b1RWT: allocation hint override
  using SHCFG = reg::Field<109, 108, "SHCFG">;            // shareability (kShcfg*)
  using NSCFG = reg::Field<111, 110, "NSCFG">;            // NS attribute (Secure/Realm streams)
  using PRIVCFG = reg::Field<113, 112, "PRIVCFG">;        // privilege override (kPrivcfg*)
  using INSTCFG = reg::Field<115, 114, "INSTCFG">;        // inst/data override (kInstcfg*)
  // Word 2: the stage 2 translation controls, VTCR_EL2's equivalent.
  using S2VMID = reg::Field<143, 128, "S2VMID">;          // VMID
  using S2T0SZ = reg::Field<165, 160, "S2T0SZ">;          // IPA size: 64 - S2T0SZ bits
  using S2SL0 = reg::Field<167, 166, "S2SL0">;            // walk start level (VTCR_EL2.SL0)
  using S2IR0 = reg::Field<169, 168, "S2IR0">;            // walk inner cacheability (kWalk*)
  using S2OR0 = reg::Field<171, 170, "S2OR0">;            // walk outer cacheability
  using S2SH0 = reg::Field<173, 172, "S2SH0">;            // walk shareability (kSh*)
  using S2TG = reg::Field<175, 174, "S2TG">;              // granule (kS2Tg*)
  using S2PS = reg::Field<178, 176, "S2PS">;              // output size (kAddrSize*)
  using S2AA64 = reg::Bit<179, "S2AA64">;                 // 1: VMSAv8-64 tables
  using S2ENDI = reg::Bit<180, "S2ENDI">;                 // 1: big-endian tables
  using S2AFFD = reg::Bit<181, "S2AFFD">;                 // access flag fault disable
  using S2PTW = reg::Bit<182, "S2PTW">;                   // S1 walks to S2 Device memory fault
  using S2HD = reg::Bit<183, "S2HD">;                     // hardware dirty-state update
  using S2HA = reg::Bit<184, "S2HA">;                     // hardware access-flag update
  using S2S = reg::Bit<185, "S2S">;                       // stage 2 faults stall
  using S2R = reg::Bit<186, "S2R">;                       // stage 2 faults are recorded
  using S2HAFT = reg::Bit<187, "S2HAFT">;                 // access flag in table descriptors
  using S2PIE = reg::Bit<188, "S2PIE">;                   // stage 2 permission indirection
  using S2POE = reg::Bit<189, "S2POE">;                   // stage 2 permission overlay
  using DPT_VMATCH = reg::Field<191, 190, "DPT_VMATCH">;  // VMID match for DPT checks
  // Word 3.
  using S2NSW = reg::Bit<192, "S2NSW">;         // Secure: NS of walks via S2TTB
  using S2NSA = reg::Bit<193, "S2NSA">;         // Secure: NS of output via S2TTB
  using S2SL0_2 = reg::Bit<194, "S2SL0_2">;     // bit 2 of the start level (DS)
  using S2DS = reg::Bit<195, "S2DS">;           // 52-bit with 4KB/16KB (VTCR.DS)
  using S2TTB = reg::Addr<247, 196, "S2TTB">;   // table base [55:4] ([51:4] VMSAv8-64)
  using S2SKL = reg::Field<254, 253, "S2SKL">;  // skip levels (VMSAv9-128)
  // Word 4.
  using PARTID = reg::Field<287, 272, "PARTID">;      // MPAM partition ID
  using S_S2T0SZ = reg::Field<293, 288, "S_S2T0SZ">;  // Secure IPA size
  using S_S2SL0 = reg::Field<295, 294, "S_S2SL0">;    // Secure walk start level
  using S_S2TG = reg::Field<303, 302, "S_S2TG">;      // Secure granule
  using MECID = reg::Field<319, 304, "MECID">;        // Realm: memory encryption context
  // Word 5.
  using PMG = reg::Field<327, 320, "PMG">;           // MPAM performance monitor group
  using MPAM_NS = reg::Bit<328, "MPAM_NS">;          // Non-secure PARTID space
  using AssuredOnly = reg::Bit<329, "AssuredOnly">;  // stage 2 AssuredOnly checks
  using TL0 = reg::Bit<330, "TL0">;                  // stage 2 TopLevel0 check
  using TL1 = reg::Bit<331, "TL1">;                  // stage 2 TopLevel1 check
  using VMSPtr = reg::Addr<375, 332, "VMSPtr">;      // virtual machine structure [55:12]
  // Word 6.
  using S2SW = reg::Bit<384, "S2SW">;               // Secure: NS of walks via S_S2TTB
  using S2SA = reg::Bit<385, "S2SA">;               // Secure: NS of output via S_S2TTB
  using S_S2SL0_2 = reg::Bit<386, "S_S2SL0_2">;     // Secure start level bit 2
  using S_S2TTB = reg::Addr<439, 388, "S_S2TTB">;   // Secure stage 2 table base
  using S_S2SKL = reg::Field<446, 445, "S_S2SKL">;  // Secure skip levels
  // Word 7.
  using S2POI = reg::Field<511, 448, "S2POI">;  // 16 x 4-bit overlay permissions

  using Fields =
      reg::FieldList<V, Config, S1Fmt, S1ContextPtr, S1CDMax,  // word 0
                     S1DSS, S1CIR, S1COR, S1CSH, S2HWU59, S2HWU60, S2HWU61, S2HWU62, DRE, CONT, DCP,
                     PPAR, MEV, SW_RESERVED, S1PIE, S2FWB, S1MPAM, S1STALLD, EATS, STRW, MemAttr,
                     MTCFG, ALLOCCFG, SHCFG, NSCFG, PRIVCFG, INSTCFG,  // word 1
                     S2VMID, S2T0SZ, S2SL0, S2IR0, S2OR0, S2SH0, S2TG, S2PS, S2AA64, S2ENDI, S2AFFD,
                     S2PTW, S2HD, S2HA, S2S, S2R, S2HAFT, S2PIE, S2POE, DPT_VMATCH,  // word 2
                     S2NSW, S2NSA, S2SL0_2, S2DS, S2TTB, S2SKL,                      // word 3
                     PARTID, S_S2T0SZ, S_S2SL0, S_S2TG, MECID,                       // word 4
                     PMG, MPAM_NS, AssuredOnly, TL0, TL1, VMSPtr,                    // word 5
                     S2SW, S2SA, S_S2SL0_2, S_S2TTB, S_S2SKL,                        // word 6
                     S2POI>;                                                         // word 7
};

static_assert(sizeof(STE) == 64);

// STE.Config: 0b001-0b011 are Reserved and behave as 0b000.
inline constexpr uint64_t kConfigAbort = 0b000;    // abort, no event
inline constexpr uint64_t kConfigBypass = 0b100;   // both stages bypass
inline constexpr uint64_t kConfigS1Trans = 0b101;  // stage 1 translates, stage 2 bypass
inline constexpr uint64_t kConfigS2Trans = 0b110;  // stage 1 bypass, stage 2 translates
inline constexpr uint64_t kConfigNested = 0b111;   // both stages translate
// STE.S1Fmt (with S1CDMax > 0): 0b11 is Reserved and behaves as linear.
inline constexpr uint64_t kS1FmtLinear = 0b00;  // linear CD table
inline constexpr uint64_t kS1Fmt4KL2 = 0b01;    // L1CD table -> 4KB L2 tables of 64 CDs
inline constexpr uint64_t kS1Fmt64KL2 = 0b10;   // L1CD table -> 64KB L2 tables of 1024 CDs
// STE.S1DSS: traffic without a SubstreamID when S1CDMax > 0.
inline constexpr uint64_t kS1dssTerminate = 0b00;  // abort, F_STREAM_DISABLED
inline constexpr uint64_t kS1dssBypass = 0b01;     // bypass stage 1
inline constexpr uint64_t kS1dssSsid0 = 0b10;      // use CD 0 (unavailable to SubstreamID 0)
// STE.S1CIR/S1COR: CD fetch cacheability.
inline constexpr uint64_t kS1cNc = 0b00;    // Normal Non-cacheable
inline constexpr uint64_t kS1cWbRa = 0b01;  // Write-Back, read-allocate
inline constexpr uint64_t kS1cWtRa = 0b10;  // Write-Through, read-allocate
inline constexpr uint64_t kS1cWb = 0b11;    // Write-Back, no read-allocate
// STE.EATS.
inline constexpr uint64_t kEatsAbort = 0b00;  // ATS requests fail (F_BAD_ATS_TREQ)
inline constexpr uint64_t kEatsTrans = 0b01;  // full ATS: all enabled stages
inline constexpr uint64_t kEatsS1Chk = 0b10;  // split-stage ATS: ATC holds IPAs
inline constexpr uint64_t kEatsDpt = 0b11;    // full ATS with DPT checks
// STE.STRW for a Non-secure STE: 0bx1 is ILLEGAL.
inline constexpr uint64_t kStrwNsEl1 = 0b00;  // NS-EL1
inline constexpr uint64_t kStrwEl2 = 0b10;    // NS-EL2, or NS-EL2-E2H if SMMU_CR2.E2H
// STE.S2TG (VTCR_EL2.TG0 encoding): 0b11 is Reserved.
inline constexpr uint64_t kS2Tg4K = 0b00, kS2Tg64K = 0b01, kS2Tg16K = 0b10;

// L1STD (5.1): one per 2^SPLIT StreamIDs of a 2-level stream table; 8 bytes.
struct L1STD : reg::Descriptor<L1STD, 1, "L1STD"> {
  using Span = reg::Field<4, 0, "Span">;    // 0: invalid; 1..11: 2^(Span-1) STEs
  using L2Ptr = reg::Addr<55, 6, "L2Ptr">;  // level 2 array, aligned to its size
  using Fields = reg::FieldList<Span, L2Ptr>;
};

static_assert(sizeof(L1STD) == 8);

inline constexpr unsigned kSpanMax = 11;  // Span 12..31 are Reserved and behave as 0

// The STEs an L1STD with this Span covers (0 for an invalid or Reserved Span).
constexpr uint64_t l1std_span_entries(uint64_t span) {
  return span >= 1 && span <= kSpanMax ? uint64_t{1} << (span - 1) : 0;
}
// 2-level stream table indexes (6.3.25): the L1STD by StreamID[LOG2SIZE-1:SPLIT], the STE in its
// level 2 array by StreamID[SPLIT-1:0].
constexpr uint32_t strtab_l1_index(uint32_t sid, unsigned split) {
  return split >= 32 ? 0 : sid >> split;
}
constexpr uint32_t strtab_l2_index(uint32_t sid, unsigned split) {
  return split >= 32 ? sid : sid & ((uint32_t{1} << split) - 1);
}

}  // namespace strata::smmuv3
