// SPDX-License-Identifier: MIT
// VMSAv8-64 translation table descriptors, as an SMMUv3 walks them (Arm ARM, DDI 0487,
// "Translation table descriptor formats"; IHI 0070 for the SMMU's use of them).
//
// Shared definitions only: io-pgtable builds descriptors from them and the SMMUv3 model decodes
// them with its own walker. Expected values are pinned by arch/lpae/pte_test.cc, typed in from
// the specification.
//
// Geometry: a granule of 2^g bytes (g = 12, 14, 16) holds 2^(g-3) descriptors; the level-l
// index is addr[g + (3-l)(g-3) + (g-3) - 1 : g + (3-l)(g-3)]. bits[1:0] are the type: at
// levels 0-2, 0b11 table and 0b01 block; at level 3, 0b11 page (0b01 is reserved, treated as
// invalid). Bit 0 clear is an invalid (fault) descriptor.
#pragma once

#include <stdint.h>

#include "arch/reg.h"

namespace strata::lpae {

inline constexpr unsigned kGranule4K = 12, kGranule16K = 14, kGranule64K = 16;
inline constexpr unsigned kMaxLevels = 4;

// Bits [1:0] of a valid descriptor.
inline constexpr uint64_t kTypeMask = 0x3;
inline constexpr uint64_t kTypeTable = 0x3;  // levels 0-2
inline constexpr uint64_t kTypePage = 0x3;   // level 3
inline constexpr uint64_t kTypeBlock = 0x1;  // levels 1-2 (level 1 with 64K only for 52-bit OA)

// The level-l shift for granule 2^g: addresses below it index inside one level-l entry.
constexpr unsigned level_shift(unsigned g, unsigned level) { return g + (3 - level) * (g - 3); }

// Stage-1 block or page descriptor (lower and upper attributes).
struct S1Pte : reg::Descriptor<S1Pte, 1, "S1 PTE"> {
  using Type = reg::Field<1, 0, "Type">;          // 0b11 page (L3), 0b01 block
  using AttrIndx = reg::Field<4, 2, "AttrIndx">;  // MAIR index
  using NS = reg::Bit<5, "NS">;                   // non-secure output
  using AP = reg::Field<7, 6, "AP">;              // AP[2:1]: bit 7 read-only, bit 6 EL0 access
  using SH = reg::Field<9, 8, "SH">;              // 0 NSH, 2 OSH, 3 ISH
  using AF = reg::Bit<10, "AF">;                  // access flag
  using nG = reg::Bit<11, "nG">;                  // not global: tagged with the ASID
  using OA = reg::Addr<47, 12, "OA">;             // output address (4K granule; see oa_* below)
  using DBM = reg::Bit<51, "DBM">;                // dirty bit modifier
  using Contiguous = reg::Bit<52, "Contiguous">;
  using PXN = reg::Bit<53, "PXN">;  // privileged execute-never
  using UXN = reg::Bit<54, "UXN">;  // unprivileged execute-never (XN at EL2)
  using Fields = reg::FieldList<Type, AttrIndx, NS, AP, SH, AF, nG, OA, DBM, Contiguous, PXN, UXN>;
};

// AP[2:1] as the field holds them (bit 7 = AP[2], bit 6 = AP[1]).
inline constexpr uint64_t kApRw = 0b00;        // read/write, EL1 only
inline constexpr uint64_t kApRwUnpriv = 0b01;  // read/write, any EL
inline constexpr uint64_t kApRo = 0b10;        // read-only, EL1 only
inline constexpr uint64_t kApRoUnpriv = 0b11;  // read-only, any EL

// Stage-2 block or page descriptor.
struct S2Pte : reg::Descriptor<S2Pte, 1, "S2 PTE"> {
  using Type = reg::Field<1, 0, "Type">;
  using MemAttr = reg::Field<5, 2, "MemAttr">;  // 0xf Normal WB, 0x5 Normal NC, 0x1 Device-nGnRE
  using S2AP = reg::Field<7, 6, "S2AP">;        // bit 6 read, bit 7 write
  using SH = reg::Field<9, 8, "SH">;
  using AF = reg::Bit<10, "AF">;
  using OA = reg::Addr<47, 12, "OA">;
  using DBM = reg::Bit<51, "DBM">;
  using Contiguous = reg::Bit<52, "Contiguous">;
  using XN = reg::Field<54, 53, "XN">;  // execute-never (2 bits with FEAT_XNX; 0b10 = XN)
  using Fields = reg::FieldList<Type, MemAttr, S2AP, SH, AF, OA, DBM, Contiguous, XN>;
};

inline constexpr uint64_t kS2apRead = 0b01;
inline constexpr uint64_t kS2apWrite = 0b10;
inline constexpr uint64_t kMemAttrNormalWb = 0xf;
inline constexpr uint64_t kMemAttrNormalNc = 0x5;
inline constexpr uint64_t kMemAttrDevice = 0x1;  // Device-nGnRE

// Table descriptor (levels 0-2) with the stage-1 hierarchical attributes.
struct TablePte : reg::Descriptor<TablePte, 1, "table PTE"> {
  using Type = reg::Field<1, 0, "Type">;
  using NLTA = reg::Addr<47, 12, "NLTA">;  // next-level table address (4K granule)
  using PXNTable = reg::Bit<59, "PXNTable">;
  using UXNTable = reg::Bit<60, "UXNTable">;
  using APTable = reg::Field<62, 61, "APTable">;
  using NSTable = reg::Bit<63, "NSTable">;
  using Fields = reg::FieldList<Type, NLTA, PXNTable, UXNTable, APTable, NSTable>;
};

// Shareability encodings (SH, and TCR/VTCR SH fields).
inline constexpr uint64_t kShNon = 0, kShOuter = 2, kShInner = 3;

// MAIR attribute bytes strata's stage-1 formats program (Linux's choice, so one MAIR serves
// every domain): index 0 Normal non-cacheable, 1 Normal write-back RW-allocate, 2 Device-nGnRE.
inline constexpr uint64_t kMairNc = 0x44, kMairWbRwa = 0xff, kMairDevice = 0x04;
inline constexpr unsigned kAttrIdxNc = 0, kAttrIdxWb = 1, kAttrIdxDev = 2;

// The output address of a block, page or table descriptor for granule 2^g, as a physical
// address. Bits [47:g] hold OA[47:g]; with the 64K granule and a 52-bit OA, descriptor bits
// [15:12] hold OA[51:48] (Arm ARM, the 64KB-granule descriptor with 52-bit OA).
constexpr uint64_t oa_of(uint64_t pte, unsigned g) {
  const uint64_t lo = pte & (((uint64_t{1} << 48) - 1) & ~((uint64_t{1} << g) - 1));
  if (g != kGranule64K) return lo;
  return lo | ((pte & 0xf000) << 36);
}
// The descriptor bits holding physical address `pa` (aligned to the granule).
constexpr uint64_t oa_bits(uint64_t pa, unsigned g) {
  const uint64_t lo = pa & (((uint64_t{1} << 48) - 1) & ~((uint64_t{1} << g) - 1));
  if (g != kGranule64K) return lo;
  return lo | ((pa >> 36) & 0xf000);
}

}  // namespace strata::lpae
