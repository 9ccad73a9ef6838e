// SPDX-License-Identifier: MIT
// Golden values for the VT-d page-table entry definitions in arch/vtd/pte.h. Every expected
// value below is typed in from the specifications' bit positions, with entry words computed by
// hand: none is derived from pte.h, so a wrong position there fails here. Sources, per fact:
//   [VTD]   Intel VT-d spec 216409, chapter 9 ("Format for Second-Stage Paging Entries",
//           first-stage entries in the x86-64 format), and 3.6/3.7 (levels, SAGAW widths)
//   [SDM]   Intel SDM vol. 3 section 4.5 (4-level and 5-level paging entry formats)
//   [EDK2]  edk2 IntelVTdDxe VTd.h (VTD_SECOND_LEVEL_PAGING_ENTRY, VTD_FIRST_LEVEL_PAGING_ENTRY)
//   [VBOX]  VirtualBox include/VBox/iommu-intel.h (VTD_BF_SL_PTE/PDE2M/PDPE1G_*)
//   [LNX]   Linux intel/iommu.h DMA_PTE_* / DMA_FL_PTE_* / DMA_SL_PTE_DIRTY, generic_pt
//           fmt/vtdss.h VTDSS_FMT_*, x86 pgtable_types.h _PAGE_BIT_*
//   [QEMU]  QEMU hw/i386/intel_iommu_internal.h VTD_SL_* / VTD_SPTE_*
//   [REF]   /work/shared/reference/hw-smmuv3-vtd.md part B.5
#include "arch/vtd/pte.h"

#include <doctest/doctest.h>
#include <fmt/core.h>

namespace strata::vtd {
namespace {

TEST_CASE("second-stage entry masks") {
  CHECK(SlPte::R::kMask == 0x1);                    // R, bit 0 [VTD][EDK2][VBOX][LNX]
  CHECK(SlPte::W::kMask == 0x2);                    // W, bit 1 [VTD][EDK2][VBOX][LNX]
  CHECK(SlPte::X::kMask == 0x4);                    // X, bit 2 [VTD Fig. 9-8][EDK2][VBOX]
  CHECK(SlPte::EMT::kMask == 0x38);                 // EMT, bits 5:3 (leaf) [EDK2][VBOX]
  CHECK(SlPte::IPAT::kMask == 0x40);                // IPAT, bit 6 (leaf) [EDK2][VBOX]
  CHECK(SlPte::PS::kMask == 0x80);                  // PS, bit 7 [EDK2][VBOX][LNX][QEMU]
  CHECK(SlPte::A::kMask == 0x100);                  // A, bit 8 [VBOX][LNX VTDSS_FMT_A]
  CHECK(SlPte::D::kMask == 0x200);                  // D, bit 9 [VBOX][LNX DMA_SL_PTE_DIRTY_BIT]
  CHECK(SlPte::SNP::kMask == 0x800);                // SNP, bit 11 [EDK2][LNX DMA_PTE_SNP][QEMU]
  CHECK(SlPte::ADDR::kMask == 0x000ffffffffff000);  // ADDR, bits 51:12 [EDK2][VBOX][LNX]
  CHECK(SlPte::TM::kMask == 1ull << 62);            // TM, bit 62 [EDK2][QEMU][REF]
  CHECK(SlPte::EMT::kShift == 3);
}

TEST_CASE("first-stage (x86-64 paging) entry masks") {
  CHECK(FlPte::P::kMask == 0x1);                    // P, bit 0 [SDM][EDK2][LNX DMA_FL_PTE_PRESENT]
  CHECK(FlPte::RW::kMask == 0x2);                   // R/W, bit 1 [SDM][EDK2][LNX _PAGE_BIT_RW]
  CHECK(FlPte::US::kMask == 0x4);                   // U/S, bit 2 [SDM][EDK2][LNX DMA_FL_PTE_US]
  CHECK(FlPte::PWT::kMask == 0x8);                  // PWT, bit 3 [SDM][EDK2][LNX _PAGE_BIT_PWT]
  CHECK(FlPte::PCD::kMask == 0x10);                 // PCD, bit 4 [SDM][EDK2][LNX _PAGE_BIT_PCD]
  CHECK(FlPte::A::kMask == 0x20);                   // A, bit 5 [SDM][EDK2][LNX DMA_FL_PTE_ACCESS]
  CHECK(FlPte::D::kMask == 0x40);                   // D, bit 6 [SDM][EDK2][LNX DMA_FL_PTE_DIRTY]
  CHECK(FlPte::PS::kMask == 0x80);                  // PS, bit 7 [SDM][EDK2][LNX _PAGE_BIT_PSE]
  CHECK(FlPte::G::kMask == 0x100);                  // G, bit 8 [SDM][EDK2][LNX _PAGE_BIT_GLOBAL]
  CHECK(FlPte::ADDR::kMask == 0x000ffffffffff000);  // bits 51:12 (M-1:12, M <= 52) [SDM][EDK2]
  CHECK(FlPte::XD::kMask == 1ull << 63);            // XD, bit 63 [SDM][EDK2][LNX DMA_FL_PTE_XD]
}

TEST_CASE("second-stage entries build golden words") {
  // 4K leaf (SS-PTE): R|W|SNP at 0x123456000 -> bits 0, 1, 11 = 0x803.
  const SlPte pte =
      SlPte{}.set<SlPte::R>(1).set<SlPte::W>(1).set<SlPte::SNP>(1).set<SlPte::ADDR>(0x123456000);
  CHECK(pte.word(0) == 0x0000000123456803);
  CHECK(fmt::format("{}", pte) == "SL PTE [0x0000000123456803] {R W SNP ADDR=0x123456000}");

  // 2 MiB leaf in an SS-PDE: R|W|PS|A|D|SNP at 0x80200000 -> 0x3 | 0x80 | 0x300 | 0x800.
  const SlPte pde = SlPte{}
                        .set<SlPte::R>(1)
                        .set<SlPte::W>(1)
                        .set<SlPte::PS>(1)
                        .set<SlPte::A>(1)
                        .set<SlPte::D>(1)
                        .set<SlPte::SNP>(1)
                        .set<SlPte::ADDR>(0x80200000);
  CHECK(pde.word(0) == 0x0000000080200b83);

  // 1 GiB leaf in an SS-PDPTE: R|W, EMT = 6 (WB, bits 5:3 = 110), IPAT, PS, TM (bit 62), at
  // 256 GiB -> 0x3 | 0x30 | 0x40 | 0x80 = 0xf3.
  const SlPte pdpte = SlPte{}
                          .set<SlPte::R>(1)
                          .set<SlPte::W>(1)
                          .set<SlPte::EMT>(6)
                          .set<SlPte::IPAT>(1)
                          .set<SlPte::PS>(1)
                          .set<SlPte::TM>(1)
                          .set<SlPte::ADDR>(0x4000000000);
  CHECK(pdpte.word(0) == 0x40000040000000f3);

  // Non-leaf: R|W pointing at the next table, PS clear.
  const SlPte table = SlPte{}.set<SlPte::R>(1).set<SlPte::W>(1).set<SlPte::ADDR>(0x76543000);
  CHECK(table.word(0) == 0x0000000076543003);
  CHECK(table.get<SlPte::PS>() == 0);

  // Decoding a hand-written word at the top of a 52-bit address: R|X, ADDR 0xfedcba9876000.
  const SlPte hi = SlPte{}.set_word(0, 0x000fedcba9876005);
  CHECK(hi.get<SlPte::R>() == 1);
  CHECK(hi.get<SlPte::W>() == 0);
  CHECK(hi.get<SlPte::X>() == 1);
  CHECK(hi.get<SlPte::ADDR>() == 0x000fedcba9876000);
}

TEST_CASE("first-stage entries build golden words") {
  // 4K leaf: P|R/W|U/S|A|D with XD at 0xabcde000 -> 0x1 | 0x2 | 0x4 | 0x20 | 0x40 = 0x67.
  const FlPte pte = FlPte{}
                        .set<FlPte::P>(1)
                        .set<FlPte::RW>(1)
                        .set<FlPte::US>(1)
                        .set<FlPte::A>(1)
                        .set<FlPte::D>(1)
                        .set<FlPte::ADDR>(0xabcde000)
                        .set<FlPte::XD>(1);
  CHECK(pte.word(0) == 0x80000000abcde067);
  CHECK(fmt::format("{}", pte) == "FL PTE [0x80000000abcde067] {P R/W U/S A D ADDR=0xabcde000 XD}");

  // 1 GiB leaf in a PDPTE: P|R/W|A|D|PS|G at 3 GiB -> 0x1e3.
  const FlPte pdpte = FlPte{}
                          .set<FlPte::P>(1)
                          .set<FlPte::RW>(1)
                          .set<FlPte::A>(1)
                          .set<FlPte::D>(1)
                          .set<FlPte::PS>(1)
                          .set<FlPte::G>(1)
                          .set<FlPte::ADDR>(0xc0000000);
  CHECK(pdpte.word(0) == 0x00000000c00001e3);

  // 2 MiB leaf in a PDE, uncached: P|R/W|PWT|PCD|PS at 0x100200000 -> 0x9b.
  const FlPte pde = FlPte{}
                        .set<FlPte::P>(1)
                        .set<FlPte::RW>(1)
                        .set<FlPte::PWT>(1)
                        .set<FlPte::PCD>(1)
                        .set<FlPte::PS>(1)
                        .set<FlPte::ADDR>(0x100200000);
  CHECK(pde.word(0) == 0x000000010020009b);

  // Non-leaf: P|R/W|U/S|A pointing at the next table.
  const FlPte table = FlPte{}
                          .set<FlPte::P>(1)
                          .set<FlPte::RW>(1)
                          .set<FlPte::US>(1)
                          .set<FlPte::A>(1)
                          .set<FlPte::ADDR>(0x12345000);
  CHECK(table.word(0) == 0x0000000012345027);
}

TEST_CASE("level geometry and address widths") {
  // 512 entries of a 4 KiB table per level: level l indexes addr[12 + 9l - 1 : 12 + 9(l-1)]
  // [VTD 3.7][SDM 4.5][REF B.5].
  CHECK(kPageShift == 12);
  CHECK(kLevelStride == 9);
  CHECK(level_shift(1) == 12);  // SS-PTE / PTE: 4 KiB
  CHECK(level_shift(2) == 21);  // PDE: 2 MiB
  CHECK(level_shift(3) == 30);  // PDPTE: 1 GiB
  CHECK(level_shift(4) == 39);  // PML4E: 512 GiB
  CHECK(level_shift(5) == 48);  // PML5E: 256 TiB
  // SAGAW: 3-level = 39-bit, 4-level = 48-bit, 5-level = 57-bit AGAW [VTD CAP.SAGAW]
  // [LNX ADDR_WIDTH_4LEVEL 48 / ADDR_WIDTH_5LEVEL 57][REF B.5 width = 30 + 9 * agaw].
  CHECK(width_of_levels(3) == 39);
  CHECK(width_of_levels(4) == 48);
  CHECK(width_of_levels(5) == 57);
}

}  // namespace
}  // namespace strata::vtd
