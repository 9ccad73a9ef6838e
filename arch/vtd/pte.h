// SPDX-License-Identifier: MIT
// Intel VT-d page-table entries (VT-d spec 216409, chapter 9 "Translation Structure Formats":
// second-stage entries, and first-stage entries in the x86-64 paging format).
//
// Shared definitions only: io-pgtable builds entries from them and the VT-d model decodes them
// with its own walker. Expected values are pinned by arch/vtd/pte_test.cc, typed in from the
// specification.
//
// Both stages use 4 KiB tables of 512 entries; level 1 is the leaf table (PTE), level 2 the PDE
// (2 MiB page with PS), level 3 the PDPE (1 GiB page with PS), 4 the PML4E, 5 the PML5E. The
// level-l index is addr[12 + 9l - 1 : 12 + 9(l-1)].
#pragma once

#include <stdint.h>

#include "arch/reg.h"

namespace strata::vtd {

inline constexpr unsigned kPageShift = 12;
inline constexpr unsigned kLevelStride = 9;

constexpr unsigned level_shift(unsigned level) { return kPageShift + kLevelStride * (level - 1); }

// Second-stage entry. There is no present bit: an entry with R or W set is present.
struct SlPte : reg::Descriptor<SlPte, 1, "SL PTE"> {
  using R = reg::Bit<0, "R">;              // read
  using W = reg::Bit<1, "W">;              // write
  using X = reg::Bit<2, "X">;              // execute (deprecated after VT-d 4.1)
  using EMT = reg::Field<5, 3, "EMT">;     // extended memory type
  using IPAT = reg::Bit<6, "IPAT">;        // ignore PAT
  using PS = reg::Bit<7, "PS">;            // page size: a 2 MiB / 1 GiB leaf in a PDE / PDPE
  using A = reg::Bit<8, "A">;              // accessed (with second-stage A/D enabled)
  using D = reg::Bit<9, "D">;              // dirty (leaf entries, with A/D enabled)
  using SNP = reg::Bit<11, "SNP">;         // snoop
  using ADDR = reg::Addr<51, 12, "ADDR">;  // page frame or next-level table
  using TM = reg::Bit<62, "TM">;           // transient mapping
  using Fields = reg::FieldList<R, W, X, EMT, IPAT, PS, A, D, SNP, ADDR, TM>;
};

// First-stage entry: the x86-64 paging format (Intel SDM vol. 3, 4.5).
struct FlPte : reg::Descriptor<FlPte, 1, "FL PTE"> {
  using P = reg::Bit<0, "P">;              // present
  using RW = reg::Bit<1, "R/W">;           // writable
  using US = reg::Bit<2, "U/S">;           // user-mode access
  using PWT = reg::Bit<3, "PWT">;          // page-level write-through
  using PCD = reg::Bit<4, "PCD">;          // page-level cache disable
  using A = reg::Bit<5, "A">;              // accessed
  using D = reg::Bit<6, "D">;              // dirty (leaf entries)
  using PS = reg::Bit<7, "PS">;            // page size: a 2 MiB / 1 GiB leaf in a PDE / PDPE
  using G = reg::Bit<8, "G">;              // global
  using ADDR = reg::Addr<51, 12, "ADDR">;  // page frame or next-level table
  using XD = reg::Bit<63, "XD">;           // execute disable (needs the PASID entry's NXE)
  using Fields = reg::FieldList<P, RW, US, PWT, PCD, A, D, PS, G, ADDR, XD>;
};

// Levels for a second-stage address width: SAGAW bit 1 = 39-bit 3-level, bit 2 = 48-bit
// 4-level, bit 3 = 57-bit 5-level (agaw = levels - 2, width = 30 + 9 * agaw).
constexpr unsigned width_of_levels(unsigned levels) { return 30 + 9 * (levels - 2); }

}  // namespace strata::vtd
