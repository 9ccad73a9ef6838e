// SPDX-License-Identifier: MIT
// Golden values for the Context Descriptor definitions in arch/smmuv3/cd.h. Expected positions
// are the "[hi:lo]" of each field heading in the specification; expected words are computed by
// hand. None is derived from cd.h. Sources, per fact:
//   [SPEC]  Arm IHI 0070 (SMMUv3.4 issue with RME/D128): 5.2 (S1Fmt), 5.3 L1CD, 5.4 CD
//   [LNX]   Linux arm-smmu-v3.h CTXDESC_CD_*, CTXDESC_L1_DESC_* (word-relative masks)
//   [FBSD]  FreeBSD sys/arm64/iommu/smmureg.h CD0_*, CD1_TTB0 (word-relative shifts)
//   [QEMU]  qemu smmuv3-internal.h CD_* extractors, tg2granule
//   [REF]   /work/shared/reference/hw-smmuv3-vtd.md part A.5, C.5
#include "arch/smmuv3/cd.h"

#include <doctest/doctest.h>
#include <fmt/core.h>

#include <type_traits>

#include "arch/smmuv3/golden.h"

namespace strata::smmuv3 {
namespace {

using golden::at;
using golden::bits_of;

static_assert(sizeof(CD) == 64 && std::is_trivially_copyable_v<CD>);
static_assert(sizeof(L1CD) == 8 && std::is_trivially_copyable_v<L1CD>);

TEST_CASE("CD word 0: translation controls, V, ASID") {
  // [SPEC 5.4][LNX CTXDESC_CD_0_*][FBSD CD0_*][REF A.5]
  CHECK(bits_of<CD, CD::T0SZ>() == at(5, 0));
  CHECK(bits_of<CD, CD::TG0>() == at(7, 6));
  CHECK(bits_of<CD, CD::IR0>() == at(9, 8));
  CHECK(bits_of<CD, CD::OR0>() == at(11, 10));
  CHECK(bits_of<CD, CD::SH0>() == at(13, 12));
  CHECK(bits_of<CD, CD::EPD0>() == at(14));
  CHECK(bits_of<CD, CD::ENDI>() == at(15));
  CHECK(bits_of<CD, CD::T1SZ>() == at(21, 16));
  CHECK(bits_of<CD, CD::TG1>() == at(23, 22));
  CHECK(bits_of<CD, CD::IR1>() == at(25, 24));
  CHECK(bits_of<CD, CD::OR1>() == at(27, 26));
  CHECK(bits_of<CD, CD::SH1>() == at(29, 28));
  CHECK(bits_of<CD, CD::EPD1>() == at(30));
  CHECK(bits_of<CD, CD::V>() == at(31));
  CHECK(bits_of<CD, CD::IPS>() == at(34, 32));
  CHECK(bits_of<CD, CD::AFFD>() == at(35));
  CHECK(bits_of<CD, CD::WXN>() == at(36));
  CHECK(bits_of<CD, CD::UWXN>() == at(37));
  CHECK(bits_of<CD, CD::TBI0>() == at(38));
  CHECK(bits_of<CD, CD::TBI1>() == at(39));
  CHECK(bits_of<CD, CD::PAN>() == at(40));
  CHECK(bits_of<CD, CD::AA64>() == at(41));
  CHECK(bits_of<CD, CD::HD>() == at(42));
  CHECK(bits_of<CD, CD::HA>() == at(43));
  CHECK(bits_of<CD, CD::S>() == at(44));
  CHECK(bits_of<CD, CD::R>() == at(45));
  CHECK(bits_of<CD, CD::A>() == at(46));
  CHECK(bits_of<CD, CD::ASET>() == at(47));
  CHECK(bits_of<CD, CD::ASID>() == at(63, 48));
}

TEST_CASE("CD words 1 to 7") {
  // [SPEC 5.4][LNX CTXDESC_CD_1_TTB0_MASK [51:4] of word 1][FBSD CD1_TTB0][QEMU CD_HAD][REF A.5]
  CHECK(bits_of<CD, CD::NSCFG0>() == at(64));
  CHECK(bits_of<CD, CD::HAD0>() == at(65));
  CHECK(bits_of<CD, CD::E0PD0>() == at(66));
  CHECK(bits_of<CD, CD::HAFT>() == at(67));
  CHECK(bits_of<CD, CD::TTB0>() == at(119, 68));  // [115:68] for VMSAv8-64
  CHECK(bits_of<CD, CD::PnCH>() == at(122));
  CHECK(bits_of<CD, CD::EPAN>() == at(123));
  CHECK(bits_of<CD, CD::HWU059>() == at(124));
  CHECK(bits_of<CD, CD::HWU060>() == at(125));
  CHECK(bits_of<CD, CD::HWU061>() == at(126));
  CHECK(bits_of<CD, CD::HWU062>() == at(127));
  CHECK(bits_of<CD, CD::NSCFG1>() == at(128));
  CHECK(bits_of<CD, CD::HAD1>() == at(129));
  CHECK(bits_of<CD, CD::E0PD1>() == at(130));
  CHECK(bits_of<CD, CD::AIE>() == at(131));
  CHECK(bits_of<CD, CD::TTB1>() == at(183, 132));
  CHECK(bits_of<CD, CD::DS>() == at(186));
  CHECK(bits_of<CD, CD::PIE>() == at(187));
  CHECK(bits_of<CD, CD::HWU159>() == at(188));
  CHECK(bits_of<CD, CD::HWU160>() == at(189));
  CHECK(bits_of<CD, CD::HWU161>() == at(190));
  CHECK(bits_of<CD, CD::HWU162>() == at(191));
  CHECK(bits_of<CD, CD::MAIR0>() == at(223, 192));
  CHECK(bits_of<CD, CD::MAIR1>() == at(255, 224));
  CHECK(bits_of<CD, CD::AMAIR0>() == at(287, 256));
  CHECK(bits_of<CD, CD::AMAIR1>() == at(319, 288));
  CHECK(bits_of<CD, CD::PARTID>() == at(367, 352));
  CHECK(bits_of<CD, CD::PMG>() == at(375, 368));
  CHECK(bits_of<CD, CD::PIIU>() == at(431, 384));
  CHECK(bits_of<CD, CD::PIIP>() == at(495, 448));

  // RES0 and IMPLEMENTATION DEFINED bits are in no field: [121:120], [185:184], [351:320],
  // [383:376], [447:432], [511:496] [SPEC 5.4].
  CHECK(CD::Fields::declared(0) == 0xffffffffffffffff);
  CHECK(CD::Fields::declared(1) == 0xfcffffffffffffff);
  CHECK(CD::Fields::declared(2) == 0xfcffffffffffffff);
  CHECK(CD::Fields::declared(3) == 0xffffffffffffffff);
  CHECK(CD::Fields::declared(4) == 0xffffffffffffffff);
  CHECK(CD::Fields::declared(5) == 0x00ffffff00000000);
  CHECK(CD::Fields::declared(6) == 0x0000ffffffffffff);
  CHECK(CD::Fields::declared(7) == 0x0000ffffffffffff);
}

TEST_CASE("CD encodings") {
  // TG0: 0 4KB, 1 64KB, 2 16KB; TG1: 1 16KB, 2 4KB, 3 64KB [SPEC 5.4][FBSD CD0_TG0_*/CD0_TG1_*]
  // [QEMU tg2granule][REF A.5, C.5]
  CHECK(kTg0_4K == 0);
  CHECK(kTg0_64K == 1);
  CHECK(kTg0_16K == 2);
  CHECK(kTg1_16K == 1);
  CHECK(kTg1_4K == 2);
  CHECK(kTg1_64K == 3);
  // IR0/OR0: 0 NC, 1 WB RA WA, 2 WT RA, 3 WB RA no-WA [SPEC 5.4][FBSD CD0_IR0_*].
  CHECK(kWalkNc == 0);
  CHECK(kWalkWbRaWa == 1);
  CHECK(kWalkWtRa == 2);
  CHECK(kWalkWbRa == 3);
  // Level 2 CD tables index SubstreamID[5:0] (4KB, 64 CDs) or [9:0] (64KB) [SPEC 5.2 S1Fmt]
  // [LNX CTXDESC_L2_ENTRIES 1024][REF A.5].
  CHECK(kCdL2Bits4K == 6);
  CHECK(kCdL2Bits64K == 10);
}

TEST_CASE("the CD Linux builds, as golden words") {
  // 48-bit VA (T0SZ 16), 4KB granule, WBWA ISH walks, no TTB1 (EPD1), 48-bit IPS, AArch64,
  // record and abort faults, private ASID set, ASID 0x42, V [REF A.5]. Word 0: 0x10 | 1 << 8 |
  // 1 << 10 | 3 << 12 | 1 << 30 | 1 << 31 | 5 << 32 | 1 << 41 | 1 << 45 | 1 << 46 | 1 << 47 |
  // 0x42 << 48. MAIR: attr0 0x44 (NC), attr1 0xff (WB), attr2 0x04 (Device-nGnRE).
  CD cd;
  cd.set<CD::T0SZ>(16)
      .set<CD::TG0>(kTg0_4K)
      .set<CD::IR0>(kWalkWbRaWa)
      .set<CD::OR0>(kWalkWbRaWa)
      .set<CD::SH0>(kShIsh)
      .set<CD::EPD1>(1)
      .set<CD::V>(1)
      .set<CD::IPS>(kAddrSize48)
      .set<CD::AA64>(1)
      .set<CD::R>(1)
      .set<CD::A>(1)
      .set<CD::ASET>(1)
      .set<CD::ASID>(0x42)
      .set<CD::TTB0>(0x80001000)
      .set<CD::MAIR0>(0x0004ff44);
  CHECK(cd.word(0) == 0x0042e205c0003510);
  CHECK(cd.word(1) == 0x0000000080001000);
  CHECK(cd.word(2) == 0);
  CHECK(cd.word(3) == 0x000000000004ff44);
  for (size_t i = 4; i < 8; i++) CHECK(cd.word(i) == 0);
  CHECK(cd.get<CD::TTB0>() == 0x80001000);
  CHECK(cd.get<CD::ASID>() == 0x42);
  CHECK(cd.get<CD::V>() == 1);
}

TEST_CASE("every other CD field, as golden words") {
  // Word 0: TG0 64KB 1 << 6 | EPD0 1 << 14 | ENDI 1 << 15 | T1SZ 25 << 16 | TG1 4KB 2 << 22 |
  // IR1 3 << 24 | OR1 2 << 26 | SH1 2 << 28 = 0x2b99c040; AFFD 35, WXN 36, UWXN 37, TBI0 38,
  // TBI1 39, PAN 40, HD 42, HA 43, S 44 = 0x1df8 << 32.
  CD cd;
  cd.set<CD::TG0>(kTg0_64K)
      .set<CD::EPD0>(1)
      .set<CD::ENDI>(1)
      .set<CD::T1SZ>(25)
      .set<CD::TG1>(kTg1_4K)
      .set<CD::IR1>(kWalkWbRa)
      .set<CD::OR1>(kWalkWtRa)
      .set<CD::SH1>(kShOsh)
      .set<CD::AFFD>(1)
      .set<CD::WXN>(1)
      .set<CD::UWXN>(1)
      .set<CD::TBI0>(1)
      .set<CD::TBI1>(1)
      .set<CD::PAN>(1)
      .set<CD::HD>(1)
      .set<CD::HA>(1)
      .set<CD::S>(1);
  CHECK(cd.word(0) == 0x00001df82b99c040);

  // Word 1: NSCFG0, HAD0, E0PD0, HAFT (0xf), TTB0 0x00ab_cdef_1234_5670 (a 56-bit address),
  // PnCH 58, EPAN 59, HWU059..062 60..63 (word-relative) -> 0xfcabcdef1234567f.
  cd.set<CD::NSCFG0>(1)
      .set<CD::HAD0>(1)
      .set<CD::E0PD0>(1)
      .set<CD::HAFT>(1)
      .set<CD::TTB0>(0x00abcdef12345670)
      .set<CD::PnCH>(1)
      .set<CD::EPAN>(1)
      .set<CD::HWU059>(1)
      .set<CD::HWU060>(1)
      .set<CD::HWU061>(1)
      .set<CD::HWU062>(1);
  CHECK(cd.word(1) == 0xfcabcdef1234567f);

  // Word 2: NSCFG1, HAD1, E0PD1, AIE, TTB1 0x8000_0000, DS 58, PIE 59, HWU159..162 60..63.
  cd.set<CD::NSCFG1>(1)
      .set<CD::HAD1>(1)
      .set<CD::E0PD1>(1)
      .set<CD::AIE>(1)
      .set<CD::TTB1>(0x80000000)
      .set<CD::DS>(1)
      .set<CD::PIE>(1)
      .set<CD::HWU159>(1)
      .set<CD::HWU160>(1)
      .set<CD::HWU161>(1)
      .set<CD::HWU162>(1);
  CHECK(cd.word(2) == 0xfc0000008000000f);

  // Words 3-7: MAIR1:MAIR0, AMAIR1:AMAIR0, PARTID at word bit 32, PMG at 48, PIIU, PIIP.
  cd.set<CD::MAIR0>(0x0004ff44)
      .set<CD::MAIR1>(0xdeadbeef)
      .set<CD::AMAIR0>(0x11223344)
      .set<CD::AMAIR1>(0x55667788)
      .set<CD::PARTID>(0x1234)
      .set<CD::PMG>(0x56)
      .set<CD::PIIU>(0x123456789abc)
      .set<CD::PIIP>(0xfedcba987654);
  CHECK(cd.word(3) == 0xdeadbeef0004ff44);
  CHECK(cd.word(4) == 0x5566778811223344);
  CHECK(cd.word(5) == 0x0056123400000000);
  CHECK(cd.word(6) == 0x0000123456789abc);
  CHECK(cd.word(7) == 0x0000fedcba987654);
  // Nothing above changed word 0.
  CHECK(cd.word(0) == 0x00001df82b99c040);
}

TEST_CASE("L1CD") {
  // V[0], L2Ptr[55:12] [SPEC 5.3][LNX CTXDESC_L1_DESC_V, L2PTR_MASK [51:12]][REF A.5]
  CHECK(bits_of<L1CD, L1CD::V>() == at(0));
  CHECK(bits_of<L1CD, L1CD::L2Ptr>() == at(55, 12));
  CHECK(L1CD::Fields::declared(0) == 0x00fffffffffff001);
  CHECK(L1CD{}.set<L1CD::V>(1).set<L1CD::L2Ptr>(0x80010000).word(0) == 0x80010001);
}

TEST_CASE("CDs print by field name") {
  CD cd;
  cd.set<CD::V>(1).set<CD::ASID>(7).set<CD::TTB0>(0x1000);
  CHECK(fmt::format("{}", cd) ==
        "CD [0x0007000080000000, 0x0000000000001000, 0x0000000000000000, "
        "0x0000000000000000, 0x0000000000000000, 0x0000000000000000, "
        "0x0000000000000000, 0x0000000000000000] {V ASID=0x7 TTB0=0x1000}");
  cd.set_word(5, 0x1);  // IMPLEMENTATION DEFINED bits [351:320]: in no field
  CHECK(fmt::format("{}", cd).ends_with("{V ASID=0x7 TTB0=0x1000 undeclared[5]=0x1}"));
  CHECK(fmt::format("{}", L1CD{}.set<L1CD::V>(1).set<L1CD::L2Ptr>(0x80010000)) ==
        "L1CD [0x0000000080010001] {V L2Ptr=0x80010000}");
}

}  // namespace
}  // namespace strata::smmuv3
