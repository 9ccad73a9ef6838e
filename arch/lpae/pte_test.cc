// SPDX-License-Identifier: MIT
// Golden values for the VMSAv8-64 descriptor definitions in arch/lpae/pte.h. Every expected
// value below is typed in from the specification's bit positions (Arm ARM DDI 0487,
// "Translation table descriptor formats", and the stage 1 / stage 2 attribute fields), with the
// descriptor words computed by hand: none is derived from pte.h, so a wrong position there fails
// here. Sources, named per fact:
//   [ARM]   Arm ARM DDI 0487 D4.3 (descriptor formats, stage 1/2 attribute fields; the
//           "Translation granule" tables; the 64KB-granule descriptor with 52-bit OA)
//   [DEN24] Arm Cortex-A Series Programmer's Guide for ARMv8-A (DEN0024A) 12.4.2 (granules)
//   [LNX]   Linux io-pgtable-arm.c ARM_LPAE_PTE_* / ARM_LPAE_MAIR_ATTR_*, and arm64
//           pgtable-hwdef.h (PTE_S2_XN = 2 << 53 "XN[1:0]", PTE_ADDR_HIGH = 0xf << 12 for 64K)
//   [QEMU]  QEMU hw/arm/smmu-internal.h (PTE_APTABLE, NSTable)
//   [REF]   /work/shared/reference/hw-smmuv3-vtd.md part C
#include "arch/lpae/pte.h"

#include <doctest/doctest.h>
#include <fmt/core.h>

namespace strata::lpae {
namespace {

TEST_CASE("stage-1 block/page attribute masks") {
  CHECK(S1Pte::Type::kMask == 0x3);               // bits[1:0] [ARM][REF]
  CHECK(S1Pte::AttrIndx::kMask == 0x1c);          // AttrIndx[2:0], bits[4:2] [ARM][LNX]
  CHECK(S1Pte::NS::kMask == 1ull << 5);           // NS, bit[5] [ARM][LNX]
  CHECK(S1Pte::AP::kMask == 0xc0);                // AP[2:1], bits[7:6] [ARM][LNX]
  CHECK(S1Pte::SH::kMask == 0x300);               // SH[1:0], bits[9:8] [ARM][LNX]
  CHECK(S1Pte::AF::kMask == 1ull << 10);          // AF, bit[10] [ARM][LNX]
  CHECK(S1Pte::nG::kMask == 1ull << 11);          // nG, bit[11] [ARM][LNX]
  CHECK(S1Pte::OA::kMask == 0x0000fffffffff000);  // OA[47:12] (4K granule) [ARM][REF]
  CHECK(S1Pte::DBM::kMask == 1ull << 51);         // DBM, bit[51] [ARM][LNX ARM_LPAE_PTE_DBM]
  CHECK(S1Pte::Contiguous::kMask == 1ull << 52);  // Contiguous, bit[52] [ARM][LNX]
  CHECK(S1Pte::PXN::kMask == 1ull << 53);         // PXN, bit[53] [ARM][LNX]
  CHECK(S1Pte::UXN::kMask == 1ull << 54);         // UXN/XN, bit[54] [ARM][LNX]
  CHECK(S1Pte::AP::kShift == 6);
  // AP[2:1] as held in bits[7:6]: AP[2] (bit 7) = read-only, AP[1] (bit 6) = EL0 access [ARM]
  // [LNX ARM_LPAE_PTE_AP_UNPRIV = 1 << 6, ARM_LPAE_PTE_AP_RDONLY = 2 << 6].
  CHECK(kApRw == 0b00);
  CHECK(kApRwUnpriv == 0b01);
  CHECK(kApRo == 0b10);
  CHECK(kApRoUnpriv == 0b11);
  // SH: 0b00 Non-shareable, 0b10 Outer, 0b11 Inner [ARM][LNX ARM_LPAE_TCR_SH_*].
  CHECK(kShNon == 0);
  CHECK(kShOuter == 2);
  CHECK(kShInner == 3);
  // MAIR attribute bytes [ARM MAIR_ELx encodings][LNX ARM_LPAE_MAIR_ATTR_*]: Normal inner+outer
  // Non-cacheable 0x44, Normal WB non-transient RW-allocate 0xff, Device-nGnRE 0x04. The
  // indices are a convention (Linux's ARM_LPAE_MAIR_ATTR_IDX_NC/CACHE/DEV = 0/1/2), not the spec.
  CHECK(kMairNc == 0x44);
  CHECK(kMairWbRwa == 0xff);
  CHECK(kMairDevice == 0x04);
  CHECK(kAttrIdxNc == 0);
  CHECK(kAttrIdxWb == 1);
  CHECK(kAttrIdxDev == 2);
}

TEST_CASE("stage-2 attribute masks and encodings") {
  CHECK(S2Pte::Type::kMask == 0x3);               // bits[1:0] [ARM]
  CHECK(S2Pte::MemAttr::kMask == 0x3c);           // MemAttr[3:0], bits[5:2] [ARM][LNX]
  CHECK(S2Pte::S2AP::kMask == 0xc0);              // S2AP[1:0], bits[7:6] [ARM][LNX HAP_*]
  CHECK(S2Pte::SH::kMask == 0x300);               // SH[1:0], bits[9:8] [ARM]
  CHECK(S2Pte::AF::kMask == 1ull << 10);          // AF, bit[10] [ARM]
  CHECK(S2Pte::OA::kMask == 0x0000fffffffff000);  // OA[47:12] [ARM]
  CHECK(S2Pte::DBM::kMask == 1ull << 51);         // DBM, bit[51] [ARM][REF C.3]
  CHECK(S2Pte::Contiguous::kMask == 1ull << 52);  // Contiguous, bit[52] [ARM]
  CHECK(S2Pte::XN::kMask == 3ull << 53);          // XN[1:0], bits[54:53] [ARM FEAT_XNX][LNX]
  // S2AP[0] (bit 6) = read, S2AP[1] (bit 7) = write [ARM][LNX HAP_READ 1<<6, HAP_WRITE 2<<6].
  CHECK(kS2apRead == 0b01);
  CHECK(kS2apWrite == 0b10);
  // MemAttr[3:2] outer, [1:0] inner: 0b11 WB, 0b01 NC; 0b00xx Device, 0b0001 = nGnRE [ARM]
  // [LNX ARM_LPAE_PTE_MEMATTR_OIWB/NC/DEV = 0xf/0x5/0x1].
  CHECK(kMemAttrNormalWb == 0xf);
  CHECK(kMemAttrNormalNc == 0x5);
  CHECK(kMemAttrDevice == 0x1);
}

TEST_CASE("table descriptor masks and descriptor types") {
  CHECK(TablePte::Type::kMask == 0x3);
  CHECK(TablePte::NLTA::kMask == 0x0000fffffffff000);  // next-level table address [ARM]
  CHECK(TablePte::PXNTable::kMask == 1ull << 59);      // PXNTable, bit[59] [ARM D4.3.3]
  CHECK(TablePte::UXNTable::kMask == 1ull << 60);      // UXNTable/XNTable, bit[60] [ARM D4.3.3]
  CHECK(TablePte::APTable::kMask == 3ull << 61);       // APTable[1:0], bits[62:61] [ARM][QEMU]
  CHECK(TablePte::NSTable::kMask == 1ull << 63);       // NSTable, bit[63] [ARM][QEMU]
  // bits[1:0]: 0b11 table (levels 0-2) / page (level 3), 0b01 block [ARM][LNX][REF C.1].
  CHECK(kTypeMask == 0x3);
  CHECK(kTypeTable == 0x3);
  CHECK(kTypePage == 0x3);
  CHECK(kTypeBlock == 0x1);
}

TEST_CASE("stage-1 page and blocks build golden words") {
  // 4K page: read/write at any EL (AP 0b01), AttrIndx 1, Inner Shareable, AF, nG, OA
  // 0x12345000, execute-never at both ELs. Bits: 1:0=11, 4:2=001, 7:6=01, 9:8=11, 10, 11,
  // 47:12 = OA, 53, 54 -> low 12 bits 0xf47, top 0x0060 [ARM].
  const S1Pte page = S1Pte{}
                         .set<S1Pte::Type>(kTypePage)
                         .set<S1Pte::AttrIndx>(1)
                         .set<S1Pte::AP>(kApRwUnpriv)
                         .set<S1Pte::SH>(kShInner)
                         .set<S1Pte::AF>(1)
                         .set<S1Pte::nG>(1)
                         .set<S1Pte::OA>(0x12345000)
                         .set<S1Pte::PXN>(1)
                         .set<S1Pte::UXN>(1);
  CHECK(page.word(0) == 0x0060000012345f47);
  CHECK(page.get<S1Pte::OA>() == 0x12345000);
  CHECK(fmt::format("{}", page) ==
        "S1 PTE [0x0060000012345f47] {Type=0x3 AttrIndx=0x1 AP=0x1 SH=0x3 AF nG OA=0x12345000 "
        "PXN UXN}");

  // 2 MiB level-2 block (type 0b01): Device (AttrIndx 2), read-only any EL (AP 0b11), Outer
  // Shareable, AF, global, XN; OA 0x40200000 -> 0x6c9 = 0b01 | 2<<2 | 3<<6 | 2<<8 | 1<<10.
  const S1Pte block2m = S1Pte{}
                            .set<S1Pte::Type>(kTypeBlock)
                            .set<S1Pte::AttrIndx>(2)
                            .set<S1Pte::AP>(kApRoUnpriv)
                            .set<S1Pte::SH>(kShOuter)
                            .set<S1Pte::AF>(1)
                            .set<S1Pte::OA>(0x40200000)
                            .set<S1Pte::PXN>(1)
                            .set<S1Pte::UXN>(1);
  CHECK(block2m.word(0) == 0x00600000402006c9);

  // 1 GiB level-1 block: AttrIndx 1, EL1-only read/write (AP 0b00), Inner Shareable, AF, nG,
  // DBM (bit 51) and Contiguous (bit 52), executable; OA 0xc0000000.
  const S1Pte block1g = S1Pte{}
                            .set<S1Pte::Type>(kTypeBlock)
                            .set<S1Pte::AttrIndx>(1)
                            .set<S1Pte::AP>(kApRw)
                            .set<S1Pte::SH>(kShInner)
                            .set<S1Pte::AF>(1)
                            .set<S1Pte::nG>(1)
                            .set<S1Pte::OA>(0xc0000000)
                            .set<S1Pte::DBM>(1)
                            .set<S1Pte::Contiguous>(1);
  CHECK(block1g.word(0) == 0x00180000c0000f05);

  // Decoding a hand-written word: NS (bit 5) and read-only EL1 (AP 0b10 = bit 7).
  const S1Pte ns = S1Pte{}.set_word(0, 0x00000000abcde4a3);
  CHECK(ns.get<S1Pte::Type>() == 0x3);
  CHECK(ns.get<S1Pte::NS>() == 1);
  CHECK(ns.get<S1Pte::AP>() == kApRo);
  CHECK(ns.get<S1Pte::AF>() == 1);
  CHECK(ns.get<S1Pte::AttrIndx>() == 0);
  CHECK(ns.get<S1Pte::OA>() == 0xabcde000);
}

TEST_CASE("stage-2 page and block build golden words") {
  // 4K page: S2AP read+write (bits 7:6 = 11), MemAttr 0xf (bits 5:2 = 1111), Inner Shareable,
  // AF, XN[1:0] = 0b10 (bit 54); OA 0x87654000 -> low 0x7ff [ARM][LNX].
  const S2Pte page = S2Pte{}
                         .set<S2Pte::Type>(kTypePage)
                         .set<S2Pte::MemAttr>(kMemAttrNormalWb)
                         .set<S2Pte::S2AP>(kS2apRead | kS2apWrite)
                         .set<S2Pte::SH>(kShInner)
                         .set<S2Pte::AF>(1)
                         .set<S2Pte::OA>(0x87654000)
                         .set<S2Pte::XN>(0b10);
  CHECK(page.word(0) == 0x00400000876547ff);

  // 2 MiB block: Device-nGnRE (MemAttr 0b0001), read-only, non-shareable, AF, XN; OA 4 GiB.
  const S2Pte block = S2Pte{}
                          .set<S2Pte::Type>(kTypeBlock)
                          .set<S2Pte::MemAttr>(kMemAttrDevice)
                          .set<S2Pte::S2AP>(kS2apRead)
                          .set<S2Pte::AF>(1)
                          .set<S2Pte::OA>(0x100000000)
                          .set<S2Pte::XN>(0b10);
  CHECK(block.word(0) == 0x0040000100000445);
  CHECK(fmt::format("{}", block) ==
        "S2 PTE [0x0040000100000445] {Type=0x1 MemAttr=0x1 S2AP=0x1 AF OA=0x100000000 XN=0x2}");
}

TEST_CASE("table descriptors build golden words") {
  // NSTable (63) and APTable = 0b01 (bit 61: no EL0 access below) over a table at 0x456789000.
  const TablePte t1 = TablePte{}
                          .set<TablePte::Type>(kTypeTable)
                          .set<TablePte::NLTA>(0x456789000)
                          .set<TablePte::APTable>(0b01)
                          .set<TablePte::NSTable>(1);
  CHECK(t1.word(0) == 0xa000000456789003);
  // PXNTable (59), UXNTable (60), APTable = 0b10 (bit 62: read-only below).
  const TablePte t2 = TablePte{}
                          .set<TablePte::Type>(kTypeTable)
                          .set<TablePte::NLTA>(0xfedcba000)
                          .set<TablePte::PXNTable>(1)
                          .set<TablePte::UXNTable>(1)
                          .set<TablePte::APTable>(0b10);
  CHECK(t2.word(0) == 0x5800000fedcba003);
  CHECK(t2.get<TablePte::NLTA>() == 0xfedcba000);
}

TEST_CASE("level shifts for each granule") {
  // 4K: L0 VA[47:39], L1 [38:30], L2 [29:21], L3 [20:12] [ARM][DEN24][REF C.1].
  CHECK(level_shift(kGranule4K, 0) == 39);
  CHECK(level_shift(kGranule4K, 1) == 30);
  CHECK(level_shift(kGranule4K, 2) == 21);
  CHECK(level_shift(kGranule4K, 3) == 12);
  // 16K: L0 VA[47] (2 entries), L1 [46:36], L2 [35:25] (32 MiB block), L3 [24:14] [ARM][DEN24].
  CHECK(level_shift(kGranule16K, 0) == 47);
  CHECK(level_shift(kGranule16K, 1) == 36);
  CHECK(level_shift(kGranule16K, 2) == 25);
  CHECK(level_shift(kGranule16K, 3) == 14);
  // 64K: L1 4 TiB per entry, L2 512 MiB block, L3 64 KiB page [ARM][DEN24][REF C.1].
  CHECK(level_shift(kGranule64K, 1) == 42);
  CHECK(level_shift(kGranule64K, 2) == 29);
  CHECK(level_shift(kGranule64K, 3) == 16);
  CHECK(kGranule4K == 12);
  CHECK(kGranule16K == 14);
  CHECK(kGranule64K == 16);
  CHECK(kMaxLevels == 4);
}

TEST_CASE("output address <-> descriptor bits, including the 64K granule's 52-bit OA") {
  // 4K and 16K: OA[47:g] in place, attribute bits ignored [ARM].
  CHECK(oa_bits(0x0000123456789000, kGranule4K) == 0x0000123456789000);
  CHECK(oa_of(0x0060123456789f47, kGranule4K) == 0x0000123456789000);
  CHECK(oa_of(0x006012345678cf47, kGranule16K) == 0x000012345678c000);
  CHECK(oa_bits(0x000012345678c000, kGranule16K) == 0x000012345678c000);
  // 64K with a 52-bit OA: descriptor bits[47:16] = OA[47:16], bits[15:12] = OA[51:48] [ARM]
  // [LNX PTE_ADDR_HIGH = 0xf << 12, shifted by 36][REF C.1]. PA 0x000f_1234_5678_0000.
  CHECK(oa_bits(0x000f123456780000, kGranule64K) == 0x000012345678f000);
  CHECK(oa_of(0x000012345678f000, kGranule64K) == 0x000f123456780000);
  CHECK(oa_of(0x006012345678ff07, kGranule64K) == 0x000f123456780000);  // attributes ignored
  // The same descriptor under the 4K granule: bits[15:12] are OA[15:12] themselves.
  CHECK(oa_of(0x000012345678f000, kGranule4K) == 0x000012345678f000);
  CHECK(oa_bits(0x0008000000010000, kGranule64K) == 0x0000000000018000);  // OA[51] -> bit 15
  CHECK(oa_bits(0x0001000000000000, kGranule64K) == 0x0000000000001000);  // OA[48] -> bit 12
  for (uint64_t pa :
       {0x0ull, 0x10000ull, 0x0000ffffffff0000ull, 0x000f123456780000ull, 0x000fffffffff0000ull})
    CHECK(oa_of(oa_bits(pa, kGranule64K), kGranule64K) == pa);

  // A stage-1 64K page at that PA: the OA field carries the packed bits.
  const S1Pte page = S1Pte{}
                         .set<S1Pte::Type>(kTypePage)
                         .set<S1Pte::AttrIndx>(1)
                         .set<S1Pte::SH>(kShInner)
                         .set<S1Pte::AF>(1)
                         .set<S1Pte::nG>(1)
                         .set<S1Pte::OA>(oa_bits(0x000f123456780000, kGranule64K))
                         .set<S1Pte::PXN>(1)
                         .set<S1Pte::UXN>(1);
  CHECK(page.word(0) == 0x006012345678ff07);
  // And a stage-2 one (RW, MemAttr 0xf, inner, AF) at PA 0x000f_abcd_ef01_0000.
  const S2Pte s2 = S2Pte{}
                       .set<S2Pte::Type>(kTypePage)
                       .set<S2Pte::MemAttr>(kMemAttrNormalWb)
                       .set<S2Pte::S2AP>(kS2apRead | kS2apWrite)
                       .set<S2Pte::SH>(kShInner)
                       .set<S2Pte::AF>(1)
                       .set<S2Pte::OA>(oa_bits(0x000fabcdef010000, kGranule64K));
  CHECK(s2.word(0) == 0x0000abcdef01f7ff);
  CHECK(oa_of(s2.word(0), kGranule64K) == 0x000fabcdef010000);
}

}  // namespace
}  // namespace strata::lpae
