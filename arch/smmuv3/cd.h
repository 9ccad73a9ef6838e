// SPDX-License-Identifier: MIT
// Arm SMMUv3 Context Descriptors: the CD (IHI 0070, 5.4) and the Level 1 Context Descriptor
// (5.3) of a 2-level CD table.
//
// A CD holds a stage 1 context: the TCR-like walk controls of TTB0 and TTB1, the table bases,
// MAIR/AMAIR, the ASID and the fault configuration (A/R/S, 5.5). With STE.Config == nested the
// CD table and the walks it describes are in the guest's IPA space, which is how a guest owns its
// stage 1. Field positions are absolute bit numbers across the 64-byte structure, as 5.4 numbers
// them. Where the D128 (VMSAv9-128) feature renames a bit (HAD0/DisCH0, HWU061-062/SKL0, ...)
// the VMSAv8-64 name is used.
//
// The SMMU reads a CD in 64-bit single-copy atomic words; a live CD is changed with V written
// last (or first, to invalidate) and a CMD_CFGI_CD between (5.4.1).
#pragma once

#include <stdint.h>

#include "arch/reg.h"
#include "arch/smmuv3/defs.h"

namespace strata::smmuv3 {

// CD (5.4): 64 bytes.
struct CD : reg::Descriptor<CD, 8, "CD"> {
  // Word 0: TCR_ELx-like controls, V, ASID.
  using T0SZ = reg::Field<5, 0, "T0SZ">;    // TTB0 VA size: 64 - T0SZ bits
  using TG0 = reg::Field<7, 6, "TG0">;      // TTB0 granule (kTg0*)
  using IR0 = reg::Field<9, 8, "IR0">;      // TTB0 walk inner cacheability (kWalk*)
  using OR0 = reg::Field<11, 10, "OR0">;    // TTB0 walk outer cacheability
  using SH0 = reg::Field<13, 12, "SH0">;    // TTB0 walk shareability (kSh*)
  using EPD0 = reg::Bit<14, "EPD0">;        // no TTB0 walks: TLB miss -> F_TRANSLATION
  using ENDI = reg::Bit<15, "ENDI">;        // 1: big-endian tables
  using T1SZ = reg::Field<21, 16, "T1SZ">;  // TTB1 VA size
  using TG1 = reg::Field<23, 22, "TG1">;    // TTB1 granule (kTg1*, not the TG0 encoding)
  using IR1 = reg::Field<25, 24, "IR1">;    // TTB1 walk inner cacheability
  using OR1 = reg::Field<27, 26, "OR1">;    // TTB1 walk outer cacheability
  using SH1 = reg::Field<29, 28, "SH1">;    // TTB1 walk shareability
  using EPD1 = reg::Bit<30, "EPD1">;        // no TTB1 walks
  using V = reg::Bit<31, "V">;              // valid
  using IPS = reg::Field<34, 32, "IPS">;    // output size (kAddrSize*)
  using AFFD = reg::Bit<35, "AFFD">;        // access flag fault disable
  using WXN = reg::Bit<36, "WXN">;          // writable implies execute-never
  using UWXN = reg::Bit<37, "UWXN">;        // user-writable implies PXN (VMSAv8-32)
  using TBI0 = reg::Bit<38, "TBI0">;        // top byte ignore, TTB0
  using TBI1 = reg::Bit<39, "TBI1">;        // top byte ignore, TTB1
  using PAN = reg::Bit<40, "PAN">;          // privileged access never
  using AA64 = reg::Bit<41, "AA64">;        // 1: VMSAv8-64 tables
  using HD = reg::Bit<42, "HD">;            // hardware dirty-state update
  using HA = reg::Bit<43, "HA">;            // hardware access-flag update
  using S = reg::Bit<44, "S">;              // faults stall (5.5)
  using R = reg::Bit<45, "R">;              // faults are recorded (5.5)
  using A = reg::Bit<46, "A">;              // terminated transactions abort (else RAZ/WI)
  using ASET = reg::Bit<47, "ASET">;        // ASID not shared with the PE (no BTM)
  using ASID = reg::Field<63, 48, "ASID">;  // address space ID
  // Word 1: TTB0.
  using NSCFG0 = reg::Bit<64, "NSCFG0">;    // Secure: NS of the TTB0 start-level fetch
  using HAD0 = reg::Bit<65, "HAD0">;        // hierarchical attributes disabled, TTB0
  using E0PD0 = reg::Bit<66, "E0PD0">;      // unprivileged access to TTB0 faults
  using HAFT = reg::Bit<67, "HAFT">;        // access flag in table descriptors
  using TTB0 = reg::Addr<119, 68, "TTB0">;  // TTB0 base [55:4] ([51:4] VMSAv8-64)
  using PnCH = reg::Bit<122, "PnCH">;       // protected attribute enable
  using EPAN = reg::Bit<123, "EPAN">;       // enhanced PAN
  using HWU059 = reg::Bit<124, "HWU059">;   // TTB0 descriptor bit 59 is hardware use
  using HWU060 = reg::Bit<125, "HWU060">;   // ... bit 60
  using HWU061 = reg::Bit<126, "HWU061">;   // ... bit 61 (SKL0[0] with D128)
  using HWU062 = reg::Bit<127, "HWU062">;   // ... bit 62 (SKL0[1] with D128)
  // Word 2: TTB1.
  using NSCFG1 = reg::Bit<128, "NSCFG1">;    // Secure: NS of the TTB1 start-level fetch
  using HAD1 = reg::Bit<129, "HAD1">;        // hierarchical attributes disabled, TTB1
  using E0PD1 = reg::Bit<130, "E0PD1">;      // unprivileged access to TTB1 faults
  using AIE = reg::Bit<131, "AIE">;          // attribute index extension (AttrIndx[3])
  using TTB1 = reg::Addr<183, 132, "TTB1">;  // TTB1 base [55:4]
  using DS = reg::Bit<186, "DS">;            // 52-bit with 4KB/16KB (TCR.DS)
  using PIE = reg::Bit<187, "PIE">;          // stage 1 permission indirection
  using HWU159 = reg::Bit<188, "HWU159">;    // TTB1 descriptor bit 59 is hardware use
  using HWU160 = reg::Bit<189, "HWU160">;    // ... bit 60
  using HWU161 = reg::Bit<190, "HWU161">;    // ... bit 61 (SKL1[0] with D128)
  using HWU162 = reg::Bit<191, "HWU162">;    // ... bit 62 (SKL1[1] with D128)
  // Words 3-4: attribute indirection, {MAIR1, MAIR0} is MAIR_ELx.
  using MAIR0 = reg::Field<223, 192, "MAIR0">;    // MAIR bits [31:0] (Attr0..3)
  using MAIR1 = reg::Field<255, 224, "MAIR1">;    // MAIR bits [63:32] (Attr4..7)
  using AMAIR0 = reg::Field<287, 256, "AMAIR0">;  // IMPLEMENTATION DEFINED, 0 if unknown
  using AMAIR1 = reg::Field<319, 288, "AMAIR1">;
  // Word 5 (bits [351:320] IMPLEMENTATION DEFINED).
  using PARTID = reg::Field<367, 352, "PARTID">;  // MPAM partition ID (STE.S1MPAM)
  using PMG = reg::Field<375, 368, "PMG">;        // MPAM performance monitor group
  // Words 6-7: permission indirection.
  using PIIU = reg::Field<431, 384, "PIIU">;  // 16 x 3-bit unprivileged permissions
  using PIIP = reg::Field<495, 448, "PIIP">;  // 16 x 3-bit privileged permissions

  using Fields = reg::FieldList<
      T0SZ, TG0, IR0, OR0, SH0, EPD0, ENDI, T1SZ, TG1, IR1, OR1, SH1, EPD1, V, IPS, AFFD, WXN, UWXN,
      TBI0, TBI1, PAN, AA64, HD, HA, S, R, A, ASET, ASID,                           // word 0
      NSCFG0, HAD0, E0PD0, HAFT, TTB0, PnCH, EPAN, HWU059, HWU060, HWU061, HWU062,  // word 1
      NSCFG1, HAD1, E0PD1, AIE, TTB1, DS, PIE, HWU159, HWU160, HWU161, HWU162,      // word 2
      MAIR0, MAIR1, AMAIR0, AMAIR1, PARTID, PMG, PIIU, PIIP>;                       // words 3-7
};

static_assert(sizeof(CD) == 64);

// CD.TG0 (TCR_ELx.TG0 encoding): 0b11 is Reserved.
inline constexpr uint64_t kTg0_4K = 0b00, kTg0_64K = 0b01, kTg0_16K = 0b10;
// CD.TG1 (TCR_ELx.TG1 encoding, different from TG0): 0b00 is Reserved.
inline constexpr uint64_t kTg1_16K = 0b01, kTg1_4K = 0b10, kTg1_64K = 0b11;

// L1CD (5.3): one per 64 or 1024 SubstreamIDs of a 2-level CD table; 8 bytes.
struct L1CD : reg::Descriptor<L1CD, 1, "L1CD"> {
  using V = reg::Bit<0, "V">;                // L2Ptr valid
  using L2Ptr = reg::Addr<55, 12, "L2Ptr">;  // level 2 CD table (IPA if nested)
  using Fields = reg::FieldList<V, L2Ptr>;
};

static_assert(sizeof(L1CD) == 8);

// SubstreamID bits that index a level 2 CD table, by STE.S1Fmt (5.2): a 4KB table holds 64 CDs,
// a 64KB table 1024. The L1CD is indexed by SubstreamID[S1CDMax-1:bits].
inline constexpr unsigned kCdL2Bits4K = 6, kCdL2Bits64K = 10;

}  // namespace strata::smmuv3
