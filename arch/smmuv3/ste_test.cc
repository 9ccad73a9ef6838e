// SPDX-License-Identifier: MIT
// Golden values for the Stream table definitions in arch/smmuv3/ste.h. Every expected position
// is the "[hi:lo]" of the field's heading in the specification, and every expected word is
// computed by hand; none is derived from ste.h. Sources, per fact:
//   [SPEC]  Arm IHI 0070 (SMMUv3.4 issue with RME/D128): 5.1 L1STD, 5.2 STE, 6.3.25
//   [LNX]   Linux arm-smmu-v3.h STRTAB_STE_*, STRTAB_L1_DESC_* (word-relative masks)
//   [FBSD]  FreeBSD sys/arm64/iommu/smmureg.h STE0_* .. STE3_* (word-relative shifts)
//   [QEMU]  NVIDIA/QEMU smmuv3-internal.h STE_* (32-bit-word extractors)
//   [REF]   /work/shared/reference/hw-smmuv3-vtd.md part A.3, A.4
#include "arch/smmuv3/ste.h"

#include <doctest/doctest.h>
#include <fmt/core.h>

#include <cstring>
#include <type_traits>

#include "arch/smmuv3/golden.h"

namespace strata::smmuv3 {
namespace {

using golden::at;
using golden::bits_of;

static_assert(sizeof(STE) == 64 && std::is_trivially_copyable_v<STE>);
static_assert(sizeof(L1STD) == 8 && std::is_trivially_copyable_v<L1STD>);

TEST_CASE("STE word 0") {
  // [SPEC 5.2][LNX STRTAB_STE_0_*][FBSD STE0_*][REF A.4]
  CHECK(bits_of<STE, STE::V>() == at(0));
  CHECK(bits_of<STE, STE::Config>() == at(3, 1));
  CHECK(bits_of<STE, STE::S1Fmt>() == at(5, 4));
  CHECK(bits_of<STE, STE::S1ContextPtr>() == at(55, 6));  // Linux/FreeBSD/[REF]: [51:6]
  CHECK(bits_of<STE, STE::S1CDMax>() == at(63, 59));
}

TEST_CASE("STE word 1") {
  // [SPEC 5.2][LNX STRTAB_STE_1_* (word bits: S1DSS 1:0, S1CIR 3:2, S1COR 5:4, S1CSH 7:6,
  // S1STALLD 27, EATS 29:28, STRW 31:30, SHCFG 45:44)][FBSD STE1_* (all of word 1)][REF A.4]
  CHECK(bits_of<STE, STE::S1DSS>() == at(65, 64));
  CHECK(bits_of<STE, STE::S1CIR>() == at(67, 66));
  CHECK(bits_of<STE, STE::S1COR>() == at(69, 68));
  CHECK(bits_of<STE, STE::S1CSH>() == at(71, 70));
  CHECK(bits_of<STE, STE::S2HWU59>() == at(72));
  CHECK(bits_of<STE, STE::S2HWU60>() == at(73));
  CHECK(bits_of<STE, STE::S2HWU61>() == at(74));
  CHECK(bits_of<STE, STE::S2HWU62>() == at(75));
  CHECK(bits_of<STE, STE::DRE>() == at(76));
  CHECK(bits_of<STE, STE::CONT>() == at(80, 77));
  CHECK(bits_of<STE, STE::DCP>() == at(81));
  CHECK(bits_of<STE, STE::PPAR>() == at(82));
  CHECK(bits_of<STE, STE::MEV>() == at(83));
  CHECK(bits_of<STE, STE::SW_RESERVED>() == at(87, 84));
  CHECK(bits_of<STE, STE::S1PIE>() == at(88));
  CHECK(bits_of<STE, STE::S2FWB>() == at(89));
  CHECK(bits_of<STE, STE::S1MPAM>() == at(90));
  CHECK(bits_of<STE, STE::S1STALLD>() == at(91));
  CHECK(bits_of<STE, STE::EATS>() == at(93, 92));
  CHECK(bits_of<STE, STE::STRW>() == at(95, 94));
  CHECK(bits_of<STE, STE::MemAttr>() == at(99, 96));
  CHECK(bits_of<STE, STE::MTCFG>() == at(100));
  CHECK(bits_of<STE, STE::ALLOCCFG>() == at(104, 101));
  CHECK(bits_of<STE, STE::SHCFG>() == at(109, 108));
  CHECK(bits_of<STE, STE::NSCFG>() == at(111, 110));
  CHECK(bits_of<STE, STE::PRIVCFG>() == at(113, 112));
  CHECK(bits_of<STE, STE::INSTCFG>() == at(115, 114));
}

TEST_CASE("STE word 2: stage 2 controls") {
  // [SPEC 5.2][LNX STRTAB_STE_2_* (VTCR group 50:32, S2AA64 51, S2ENDI 52, S2PTW 54, S2R 58)]
  // [FBSD STE2_* (S2AFFD 53, S2S 57)][QEMU STE_S2HD/S2HA/S2S/S2R in word[5]][REF A.4]
  CHECK(bits_of<STE, STE::S2VMID>() == at(143, 128));
  CHECK(bits_of<STE, STE::S2T0SZ>() == at(165, 160));
  CHECK(bits_of<STE, STE::S2SL0>() == at(167, 166));
  CHECK(bits_of<STE, STE::S2IR0>() == at(169, 168));
  CHECK(bits_of<STE, STE::S2OR0>() == at(171, 170));
  CHECK(bits_of<STE, STE::S2SH0>() == at(173, 172));
  CHECK(bits_of<STE, STE::S2TG>() == at(175, 174));
  CHECK(bits_of<STE, STE::S2PS>() == at(178, 176));
  CHECK(bits_of<STE, STE::S2AA64>() == at(179));
  CHECK(bits_of<STE, STE::S2ENDI>() == at(180));
  CHECK(bits_of<STE, STE::S2AFFD>() == at(181));
  CHECK(bits_of<STE, STE::S2PTW>() == at(182));
  CHECK(bits_of<STE, STE::S2HD>() == at(183));
  CHECK(bits_of<STE, STE::S2HA>() == at(184));
  CHECK(bits_of<STE, STE::S2S>() == at(185));
  CHECK(bits_of<STE, STE::S2R>() == at(186));
  CHECK(bits_of<STE, STE::S2HAFT>() == at(187));
  CHECK(bits_of<STE, STE::S2PIE>() == at(188));
  CHECK(bits_of<STE, STE::S2POE>() == at(189));
  CHECK(bits_of<STE, STE::DPT_VMATCH>() == at(191, 190));
}

TEST_CASE("STE words 3 to 7") {
  // [SPEC 5.2][LNX STRTAB_STE_3_S2TTB_MASK [51:4] of word 3][FBSD STE3_S2TTB][REF A.4]
  CHECK(bits_of<STE, STE::S2NSW>() == at(192));
  CHECK(bits_of<STE, STE::S2NSA>() == at(193));
  CHECK(bits_of<STE, STE::S2SL0_2>() == at(194));
  CHECK(bits_of<STE, STE::S2DS>() == at(195));
  CHECK(bits_of<STE, STE::S2TTB>() == at(247, 196));  // [243:196] for VMSAv8-64
  CHECK(bits_of<STE, STE::S2SKL>() == at(254, 253));
  CHECK(bits_of<STE, STE::PARTID>() == at(287, 272));
  CHECK(bits_of<STE, STE::S_S2T0SZ>() == at(293, 288));
  CHECK(bits_of<STE, STE::S_S2SL0>() == at(295, 294));
  CHECK(bits_of<STE, STE::S_S2TG>() == at(303, 302));
  CHECK(bits_of<STE, STE::MECID>() == at(319, 304));
  CHECK(bits_of<STE, STE::PMG>() == at(327, 320));
  CHECK(bits_of<STE, STE::MPAM_NS>() == at(328));
  CHECK(bits_of<STE, STE::AssuredOnly>() == at(329));
  CHECK(bits_of<STE, STE::TL0>() == at(330));
  CHECK(bits_of<STE, STE::TL1>() == at(331));
  CHECK(bits_of<STE, STE::VMSPtr>() == at(375, 332));
  CHECK(bits_of<STE, STE::S2SW>() == at(384));
  CHECK(bits_of<STE, STE::S2SA>() == at(385));
  CHECK(bits_of<STE, STE::S_S2SL0_2>() == at(386));
  CHECK(bits_of<STE, STE::S_S2TTB>() == at(439, 388));
  CHECK(bits_of<STE, STE::S_S2SKL>() == at(446, 445));
  CHECK(bits_of<STE, STE::S2POI>() == at(511, 448));

  // Bits the specification leaves RES0 or IMPLEMENTATION DEFINED are in no field: word 0
  // [58:56], word 1 [107:105] and [127:116], word 2 [159:144], word 3 [252:248] and 255, word 4
  // [271:256] and [301:296], word 5 [383:376], word 6 387 and [447:440] [SPEC 5.2].
  CHECK(STE::Fields::declared(0) == 0xf8ffffffffffffff);
  CHECK(STE::Fields::declared(1) == 0x000ff1ffffffffff);
  CHECK(STE::Fields::declared(2) == 0xffffffff0000ffff);
  CHECK(STE::Fields::declared(3) == 0x60ffffffffffffff);
  CHECK(STE::Fields::declared(4) == 0xffffc0ffffff0000);
  CHECK(STE::Fields::declared(5) == 0x00ffffffffffffff);
  CHECK(STE::Fields::declared(6) == 0x60fffffffffffff7);
  CHECK(STE::Fields::declared(7) == 0xffffffffffffffff);
}

TEST_CASE("STE encodings") {
  // Config [SPEC 5.2][LNX STRTAB_STE_0_CFG_*][FBSD STE0_CONFIG_*][REF A.4]
  CHECK(kConfigAbort == 0b000);
  CHECK(kConfigBypass == 0b100);
  CHECK(kConfigS1Trans == 0b101);
  CHECK(kConfigS2Trans == 0b110);
  CHECK(kConfigNested == 0b111);
  // S1Fmt [SPEC 5.2][LNX STRTAB_STE_0_S1FMT_*][FBSD STE0_S1FMT_4KB_L2/64KB_L2]
  CHECK(kS1FmtLinear == 0);
  CHECK(kS1Fmt4KL2 == 1);
  CHECK(kS1Fmt64KL2 == 2);
  // S1DSS [SPEC 5.2][LNX STRTAB_STE_1_S1DSS_*][FBSD STE1_S1DSS_*]
  CHECK(kS1dssTerminate == 0);
  CHECK(kS1dssBypass == 1);
  CHECK(kS1dssSsid0 == 2);
  // S1CIR/S1COR [SPEC 5.2][LNX STRTAB_STE_1_S1C_CACHE_*][FBSD STE1_S1CIR_*]
  CHECK(kS1cNc == 0);
  CHECK(kS1cWbRa == 1);
  CHECK(kS1cWtRa == 2);
  CHECK(kS1cWb == 3);
  // EATS [SPEC 5.2][LNX STRTAB_STE_1_EATS_*][FBSD STE1_EATS_*]
  CHECK(kEatsAbort == 0);
  CHECK(kEatsTrans == 1);
  CHECK(kEatsS1Chk == 2);
  CHECK(kEatsDpt == 3);
  // STRW [SPEC 5.2][LNX STRTAB_STE_1_STRW_*][FBSD STE1_STRW_*]
  CHECK(kStrwNsEl1 == 0);
  CHECK(kStrwEl2 == 2);
  // SHCFG, PRIVCFG, INSTCFG [SPEC 5.2, 6.3.14][LNX STRTAB_STE_1_SHCFG_INCOMING][FBSD STE1_SHCFG_*]
  CHECK(kShcfgNsh == 0);
  CHECK(kShcfgIncoming == 1);
  CHECK(kShcfgOsh == 2);
  CHECK(kShcfgIsh == 3);
  CHECK(kPrivcfgIncoming == 0);
  CHECK(kPrivcfgUnpriv == 2);
  CHECK(kPrivcfgPriv == 3);
  CHECK(kInstcfgIncoming == 0);
  CHECK(kInstcfgData == 2);
  CHECK(kInstcfgInstr == 3);
  // S2TG [SPEC 5.2][REF A.4]; S2IR0/S2OR0 [SPEC 5.2][FBSD STE2_S2IR0_*].
  CHECK(kS2Tg4K == 0);
  CHECK(kS2Tg64K == 1);
  CHECK(kS2Tg16K == 2);
  CHECK(kWalkNc == 0);
  CHECK(kWalkWbRaWa == 1);
  CHECK(kWalkWtRa == 2);
  CHECK(kWalkWbRa == 3);
}

TEST_CASE("STEs Linux builds, as golden words") {
  // Abort: V, Config 0 -> word 0 = 0x1. Bypass: V, Config 0b100 -> 0x9, and SHCFG "use
  // incoming" (1 << 44 of word 1) [REF A.3].
  STE abort;
  abort.set<STE::V>(1).set<STE::Config>(kConfigAbort);
  CHECK(abort.word(0) == 0x1);
  STE bypass;
  bypass.set<STE::V>(1).set<STE::Config>(kConfigBypass).set<STE::SHCFG>(kShcfgIncoming);
  CHECK(bypass.word(0) == 0x9);
  CHECK(bypass.word(1) == 0x0000100000000000);

  // Stage 1 with a 2-level (64KB leaf) CD table at 0x80000000, 2^20 CDs, CD 0 for untagged
  // traffic, WBRA ISH CD fetches, full ATS. Word 0: 1 | 5 << 1 | 2 << 4 | ptr | 20 << 59.
  // Word 1: S1DSS 2 | S1CIR 1 << 2 | S1COR 1 << 4 | S1CSH 3 << 6 | EATS 1 << 28.
  STE s1;
  s1.set<STE::V>(1)
      .set<STE::Config>(kConfigS1Trans)
      .set<STE::S1Fmt>(kS1Fmt64KL2)
      .set<STE::S1ContextPtr>(0x80000000)
      .set<STE::S1CDMax>(20)
      .set<STE::S1DSS>(kS1dssSsid0)
      .set<STE::S1CIR>(kS1cWbRa)
      .set<STE::S1COR>(kS1cWbRa)
      .set<STE::S1CSH>(kShIsh)
      .set<STE::STRW>(kStrwNsEl1)
      .set<STE::EATS>(kEatsTrans);
  CHECK(s1.word(0) == 0xa00000008000002b);
  CHECK(s1.word(1) == 0x00000000100000d6);
  for (size_t i = 2; i < 8; i++) CHECK(s1.word(i) == 0);

  // Stage 2: VMID 0x42, 40-bit IPA (T0SZ 24), start level 1 (SL0 1, 4KB), WBWA ISH walks, 48-bit
  // PA (PS 5), AArch64, S2PTW, S2R; tables at 0x8_1234_5000. Word 2 upper half: 0x18 | 1 << 6 |
  // 1 << 8 | 1 << 10 | 3 << 12 | 5 << 16 | 1 << 19 | 1 << 22 | 1 << 26 = 0x044d3558.
  STE s2;
  s2.set<STE::V>(1)
      .set<STE::Config>(kConfigS2Trans)
      .set<STE::SHCFG>(kShcfgIncoming)
      .set<STE::S2VMID>(0x42)
      .set<STE::S2T0SZ>(24)
      .set<STE::S2SL0>(1)
      .set<STE::S2IR0>(kWalkWbRaWa)
      .set<STE::S2OR0>(kWalkWbRaWa)
      .set<STE::S2SH0>(kShIsh)
      .set<STE::S2TG>(kS2Tg4K)
      .set<STE::S2PS>(kAddrSize48)
      .set<STE::S2AA64>(1)
      .set<STE::S2PTW>(1)
      .set<STE::S2R>(1)
      .set<STE::S2TTB>(0x812345000);
  CHECK(s2.word(0) == 0xd);
  CHECK(s2.word(1) == 0x0000100000000000);
  CHECK(s2.word(2) == 0x044d355800000042);
  CHECK(s2.word(3) == 0x0000000812345000);
  CHECK(s2.get<STE::S2TTB>() == 0x812345000);
  CHECK(s2.get<STE::S2PS>() == kAddrSize48);

  // The byte image the SMMU fetches: little-endian words.
  unsigned char bytes[64];
  memcpy(bytes, &s2, sizeof(bytes));
  CHECK(bytes[0] == 0x0d);
  CHECK(bytes[13] == 0x10);  // SHCFG, bit 108 = byte 13 bit 4
  CHECK(bytes[16] == 0x42);  // S2VMID, bit 128
  CHECK(bytes[20] == 0x58);  // S2T0SZ | S2SL0, bit 160
  CHECK(bytes[21] == 0x35);
  CHECK(bytes[22] == 0x4d);
  CHECK(bytes[23] == 0x04);
  CHECK(bytes[25] == 0x50);  // S2TTB, bit 196
  CHECK(bytes[26] == 0x34);
  CHECK(bytes[27] == 0x12);
  CHECK(bytes[28] == 0x08);

  // Nested: both stages, the CD table pointer is an IPA.
  STE nested = s2;
  nested.set<STE::Config>(kConfigNested).set<STE::S1ContextPtr>(0x40000000);
  CHECK(nested.word(0) == 0x000000004000000f);
}

TEST_CASE("every word 1 attribute field at once") {
  // S2HWU59..62 0xf << 8, DRE 1 << 12, CONT 0xf << 13, DCP 1 << 17, PPAR 1 << 18, MEV 1 << 19,
  // SW_RESERVED 5 << 20, S1PIE 1 << 24, S2FWB 1 << 25, S1MPAM 1 << 26, S1STALLD 1 << 27,
  // EATS 2 << 28, STRW 2 << 30 -> low half 0xaf5fff00. MemAttr 0xf, MTCFG 1 << 4, ALLOCCFG
  // 0b1110 << 5, SHCFG 3 << 12, NSCFG 3 << 14, PRIVCFG 2 << 16, INSTCFG 3 << 18 -> high half
  // 0x000ef1df (word-relative bit numbers, word 1 = STE bits [127:64]).
  STE ste;
  ste.set<STE::S2HWU59>(1)
      .set<STE::S2HWU60>(1)
      .set<STE::S2HWU61>(1)
      .set<STE::S2HWU62>(1)
      .set<STE::DRE>(1)
      .set<STE::CONT>(0xf)
      .set<STE::DCP>(1)
      .set<STE::PPAR>(1)
      .set<STE::MEV>(1)
      .set<STE::SW_RESERVED>(5)
      .set<STE::S1PIE>(1)
      .set<STE::S2FWB>(1)
      .set<STE::S1MPAM>(1)
      .set<STE::S1STALLD>(1)
      .set<STE::EATS>(kEatsS1Chk)
      .set<STE::STRW>(kStrwEl2)
      .set<STE::MemAttr>(kMemAttrNormalWb)
      .set<STE::MTCFG>(1)
      .set<STE::ALLOCCFG>(0b1110)
      .set<STE::SHCFG>(kShcfgIsh)
      .set<STE::NSCFG>(3)
      .set<STE::PRIVCFG>(kPrivcfgUnpriv)
      .set<STE::INSTCFG>(kInstcfgInstr);
  CHECK(ste.word(0) == 0);
  CHECK(ste.word(1) == 0x000ef1dfaf5fff00);
  CHECK(ste.word(2) == 0);
}

TEST_CASE("L1STD and stream table geometry") {
  // [SPEC 5.1][LNX STRTAB_L1_DESC_SPAN [4:0], L2PTR [51:6]][QEMU l2ptr = word & ~0x1f][REF A.3]
  CHECK(bits_of<L1STD, L1STD::Span>() == at(4, 0));
  CHECK(bits_of<L1STD, L1STD::L2Ptr>() == at(55, 6));
  CHECK(L1STD::Fields::declared(0) == 0x00ffffffffffffdf);  // bit 5, [63:56] RES0
  // Linux: SPLIT 8, Span = SPLIT + 1 = 9, L2 array at 0x80004000 -> 0x80004009 [REF A.3].
  CHECK(L1STD{}.set<L1STD::Span>(9).set<L1STD::L2Ptr>(0x80004000).word(0) == 0x80004009);
  // Span: 0 invalid, 1..11 -> 2^(Span-1) STEs, 12..31 Reserved (behave as 0) [SPEC 5.1].
  CHECK(kSpanMax == 11);
  CHECK(l1std_span_entries(0) == 0);
  CHECK(l1std_span_entries(1) == 1);
  CHECK(l1std_span_entries(7) == 64);
  CHECK(l1std_span_entries(9) == 256);
  CHECK(l1std_span_entries(11) == 1024);
  CHECK(l1std_span_entries(12) == 0);
  CHECK(l1std_span_entries(31) == 0);
  // L1 index StreamID[LOG2SIZE-1:SPLIT], L2 index StreamID[SPLIT-1:0] [SPEC 6.3.25][REF A.3].
  CHECK(strtab_l1_index(0x12345, 8) == 0x123);
  CHECK(strtab_l2_index(0x12345, 8) == 0x45);
  CHECK(strtab_l1_index(0x12345, 6) == 0x48d);
  CHECK(strtab_l2_index(0x12345, 6) == 0x05);
  CHECK(strtab_l1_index(0xffffffff, 10) == 0x3fffff);
  CHECK(strtab_l2_index(0xffffffff, 10) == 0x3ff);
}

TEST_CASE("STEs print by field name and flag undeclared bits") {
  STE ste;
  ste.set<STE::V>(1).set<STE::Config>(kConfigS2Trans).set<STE::S2VMID>(0x42);
  ste.set_word(1, 0x0010000000000000);  // bit 116: IMPLEMENTATION DEFINED, in no field
  CHECK(fmt::format("{}", ste) ==
        "STE [0x000000000000000d, 0x0010000000000000, 0x0000000000000042, "
        "0x0000000000000000, 0x0000000000000000, 0x0000000000000000, "
        "0x0000000000000000, 0x0000000000000000] {V Config=0x6 S2VMID=0x42 "
        "undeclared[1]=0x10000000000000}");
  CHECK(fmt::format("{}", L1STD{}.set<L1STD::Span>(9).set<L1STD::L2Ptr>(0x80004000)) ==
        "L1STD [0x0000000080004009] {Span=0x9 L2Ptr=0x80004000}");
}

}  // namespace
}  // namespace strata::smmuv3
