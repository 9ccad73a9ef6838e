// SPDX-License-Identifier: MIT
// Golden values for the SMMUv3 registers in arch/smmuv3/regs.h. Every expected offset, field
// position, RES0 mask and encoding below is typed in from the specification; none is derived
// from regs.h, so a wrong number there fails here. bits_of<R, F>() (golden.h) finds where a field
// really lands by setting it through R. Sources, per fact:
//   [SPEC]  Arm IHI 0070 (the SMMUv3.4 issue with RME and D128): 6.2.1 / 6.2.2 register maps,
//           6.3.n register formats ("FIELD, bits [hi:lo]" headings), 3.5 queues
//   [LNX]   Linux drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.h (ARM_SMMU_*, IDR*_, CR*_, GERROR_*)
//   [FBSD]  FreeBSD sys/arm64/iommu/smmureg.h (SMMU_*, IDR*_, CR*_)
//   [REF]   /work/shared/reference/hw-smmuv3-vtd.md part A.1, A.2, A.8, A.9
#include "arch/smmuv3/regs.h"

#include <doctest/doctest.h>
#include <fmt/core.h>

#include <string>

#include "arch/smmuv3/golden.h"
#include "testing/hosted/hosted.h"

namespace strata::smmuv3 {
namespace {

using golden::at;
using golden::bits_of;

TEST_CASE("page 0 and page 1 register offsets and widths") {
  // [SPEC 6.2.1][LNX ARM_SMMU_*][FBSD SMMU_*][REF A.1]
  CHECK(IDR0::kOffset == 0x0000);
  CHECK(IDR1::kOffset == 0x0004);
  CHECK(IDR2::kOffset == 0x0008);
  CHECK(IDR3::kOffset == 0x000c);
  CHECK(IDR4::kOffset == 0x0010);
  CHECK(IDR5::kOffset == 0x0014);
  CHECK(IIDR::kOffset == 0x0018);
  CHECK(AIDR::kOffset == 0x001c);
  CHECK(CR0::kOffset == 0x0020);
  CHECK(CR0ACK::kOffset == 0x0024);
  CHECK(CR1::kOffset == 0x0028);
  CHECK(CR2::kOffset == 0x002c);
  CHECK(STATUSR::kOffset == 0x0040);
  CHECK(GBPA::kOffset == 0x0044);
  CHECK(AGBPA::kOffset == 0x0048);
  CHECK(IRQ_CTRL::kOffset == 0x0050);
  CHECK(IRQ_CTRLACK::kOffset == 0x0054);
  CHECK(GERROR::kOffset == 0x0060);
  CHECK(GERRORN::kOffset == 0x0064);
  CHECK(GERROR_IRQ_CFG0::kOffset == 0x0068);
  CHECK(GERROR_IRQ_CFG1::kOffset == 0x0070);
  CHECK(GERROR_IRQ_CFG2::kOffset == 0x0074);
  CHECK(STRTAB_BASE::kOffset == 0x0080);
  CHECK(STRTAB_BASE_CFG::kOffset == 0x0088);
  CHECK(CMDQ_BASE::kOffset == 0x0090);
  CHECK(CMDQ_PROD::kOffset == 0x0098);
  CHECK(CMDQ_CONS::kOffset == 0x009c);
  CHECK(EVENTQ_BASE::kOffset == 0x00a0);
  CHECK(EVENTQ_IRQ_CFG0::kOffset == 0x00b0);
  CHECK(EVENTQ_IRQ_CFG1::kOffset == 0x00b8);
  CHECK(EVENTQ_IRQ_CFG2::kOffset == 0x00bc);
  CHECK(PRIQ_BASE::kOffset == 0x00c0);
  CHECK(PRIQ_IRQ_CFG0::kOffset == 0x00d0);
  CHECK(PRIQ_IRQ_CFG1::kOffset == 0x00d8);
  CHECK(PRIQ_IRQ_CFG2::kOffset == 0x00dc);
  // Page 1 at 0x10000 [SPEC 6.2.2][FBSD SMMU_EVENTQ_PROD 0x100A8][REF A.1].
  CHECK(kPage1Offset == 0x10000);
  CHECK(kRegisterSpaceBytes == 0x20000);
  CHECK(EVENTQ_PROD::kOffset == 0x100a8);
  CHECK(EVENTQ_CONS::kOffset == 0x100ac);
  CHECK(PRIQ_PROD::kOffset == 0x100c8);
  CHECK(PRIQ_CONS::kOffset == 0x100cc);

  // 64-bit: the *_BASE and *_IRQ_CFG0 registers; all others 32-bit [SPEC 6.2.1].
  CHECK(sizeof(STRTAB_BASE::Word) == 8);
  CHECK(sizeof(CMDQ_BASE::Word) == 8);
  CHECK(sizeof(EVENTQ_BASE::Word) == 8);
  CHECK(sizeof(PRIQ_BASE::Word) == 8);
  CHECK(sizeof(GERROR_IRQ_CFG0::Word) == 8);
  CHECK(sizeof(EVENTQ_IRQ_CFG0::Word) == 8);
  CHECK(sizeof(PRIQ_IRQ_CFG0::Word) == 8);
  CHECK(sizeof(IDR0::Word) == 4);
  CHECK(sizeof(CR0::Word) == 4);
  CHECK(sizeof(STRTAB_BASE_CFG::Word) == 4);
  CHECK(sizeof(CMDQ_PROD::Word) == 4);
  CHECK(sizeof(EVENTQ_CONS::Word) == 4);
  CHECK(sizeof(GERROR_IRQ_CFG1::Word) == 4);
  CHECK(sizeof(PRIQ_IRQ_CFG2::Word) == 4);
  // A snapshot is exactly its register, shared field bases add nothing.
  static_assert(sizeof(CR0) == 4 && sizeof(GERRORN) == 4 && sizeof(IRQ_CTRLACK) == 4);
  static_assert(sizeof(CMDQ_BASE) == 8 && sizeof(PRIQ_IRQ_CFG0) == 8);
}

TEST_CASE("IDR0 fields") {
  // [SPEC 6.3.1][LNX IDR0_*][FBSD IDR0_*][REF A.2]
  CHECK(bits_of<IDR0, IDR0::S2P>() == at(0));
  CHECK(bits_of<IDR0, IDR0::S1P>() == at(1));
  CHECK(bits_of<IDR0, IDR0::TTF>() == at(3, 2));
  CHECK(bits_of<IDR0, IDR0::COHACC>() == at(4));
  CHECK(bits_of<IDR0, IDR0::BTM>() == at(5));
  CHECK(bits_of<IDR0, IDR0::HTTU>() == at(7, 6));
  CHECK(bits_of<IDR0, IDR0::DORMHINT>() == at(8));
  CHECK(bits_of<IDR0, IDR0::Hyp>() == at(9));
  CHECK(bits_of<IDR0, IDR0::ATS>() == at(10));
  CHECK(bits_of<IDR0, IDR0::NS1ATS>() == at(11));
  CHECK(bits_of<IDR0, IDR0::ASID16>() == at(12));
  CHECK(bits_of<IDR0, IDR0::MSI>() == at(13));
  CHECK(bits_of<IDR0, IDR0::SEV>() == at(14));
  CHECK(bits_of<IDR0, IDR0::ATOS>() == at(15));
  CHECK(bits_of<IDR0, IDR0::PRI>() == at(16));
  CHECK(bits_of<IDR0, IDR0::VMW>() == at(17));
  CHECK(bits_of<IDR0, IDR0::VMID16>() == at(18));
  CHECK(bits_of<IDR0, IDR0::CD2L>() == at(19));
  CHECK(bits_of<IDR0, IDR0::VATOS>() == at(20));
  CHECK(bits_of<IDR0, IDR0::TTENDIAN>() == at(22, 21));
  CHECK(bits_of<IDR0, IDR0::ATSRECERR>() == at(23));
  CHECK(bits_of<IDR0, IDR0::STALL_MODEL>() == at(25, 24));
  CHECK(bits_of<IDR0, IDR0::TERM_MODEL>() == at(26));
  CHECK(bits_of<IDR0, IDR0::ST_LEVEL>() == at(28, 27));
  CHECK(bits_of<IDR0, IDR0::RME_IMPL>() == at(30));
  CHECK(IDR0::res0() == 0xa0000000);  // bits 31, 29 [SPEC]

  // Encodings [SPEC 6.3.1][LNX IDR0_TTF_*, IDR0_STALL_MODEL_*, IDR0_TTENDIAN_*][FBSD].
  CHECK(kTtfAArch32 == 1);
  CHECK(kTtfAArch64 == 2);
  CHECK(kTtfAArch32And64 == 3);
  CHECK(kHttuNone == 0);
  CHECK(kHttuAccess == 1);
  CHECK(kHttuAccessDirty == 2);
  CHECK(kHttuAccessDirtyTable == 3);
  CHECK(kTtendianMixed == 0);
  CHECK(kTtendianLe == 2);
  CHECK(kTtendianBe == 3);
  CHECK(kStallModelStallAndTerminate == 0);
  CHECK(kStallModelTerminate == 1);
  CHECK(kStallModelStallForced == 2);
  CHECK(kStLevelLinear == 0);
  CHECK(kStLevel2Level == 1);

  // An SMMU with S1P, S2P, TTF=AArch64, ATS, NS1ATS, ASID16, VMID16, no CD2L, no Hyp,
  // TTENDIAN=LE, STALL_MODEL=terminate, ST_LEVEL=2-level -> hand-assembled word.
  const auto idr0 = IDR0::from_value(0x09441c0b);
  CHECK(idr0.get<IDR0::S2P>() == 1);
  CHECK(idr0.get<IDR0::S1P>() == 1);
  CHECK(idr0.get<IDR0::TTF>() == kTtfAArch64);
  CHECK(idr0.get<IDR0::COHACC>() == 0);
  CHECK(idr0.get<IDR0::ATS>() == 1);
  CHECK(idr0.get<IDR0::NS1ATS>() == 1);
  CHECK(idr0.get<IDR0::ASID16>() == 1);
  CHECK(idr0.get<IDR0::VMID16>() == 1);
  CHECK(idr0.get<IDR0::CD2L>() == 0);
  CHECK(idr0.get<IDR0::TTENDIAN>() == kTtendianLe);
  CHECK(idr0.get<IDR0::STALL_MODEL>() == kStallModelTerminate);
  CHECK(idr0.get<IDR0::ST_LEVEL>() == kStLevel2Level);
  CHECK(idr0.get<IDR0::Hyp>() == 0);
}

TEST_CASE("IDR1, IDR2, IDR3, IDR4, IDR5, IIDR, AIDR fields") {
  // IDR1 [SPEC 6.3.2][LNX IDR1_*][FBSD IDR1_*][REF A.2]
  CHECK(bits_of<IDR1, IDR1::SIDSIZE>() == at(5, 0));
  CHECK(bits_of<IDR1, IDR1::SSIDSIZE>() == at(10, 6));
  CHECK(bits_of<IDR1, IDR1::PRIQS>() == at(15, 11));
  CHECK(bits_of<IDR1, IDR1::EVENTQS>() == at(20, 16));
  CHECK(bits_of<IDR1, IDR1::CMDQS>() == at(25, 21));
  CHECK(bits_of<IDR1, IDR1::ATTR_PERMS_OVR>() == at(26));
  CHECK(bits_of<IDR1, IDR1::ATTR_TYPES_OVR>() == at(27));
  CHECK(bits_of<IDR1, IDR1::REL>() == at(28));
  CHECK(bits_of<IDR1, IDR1::QUEUES_PRESET>() == at(29));
  CHECK(bits_of<IDR1, IDR1::TABLES_PRESET>() == at(30));
  CHECK(bits_of<IDR1, IDR1::ECMDQ>() == at(31));
  CHECK(IDR1::res0() == 0);

  // IDR2 [SPEC 6.3.3]
  CHECK(bits_of<IDR2, IDR2::BA_VATOS>() == at(9, 0));
  CHECK(IDR2::res0() == 0xfffffc00);

  // IDR3 [SPEC 6.3.4][LNX IDR3_RIL bit 10][FBSD IDR3_RIL][REF A.2]
  CHECK(bits_of<IDR3, IDR3::HAD>() == at(2));
  CHECK(bits_of<IDR3, IDR3::PBHA>() == at(3));
  CHECK(bits_of<IDR3, IDR3::XNX>() == at(4));
  CHECK(bits_of<IDR3, IDR3::PPS>() == at(5));
  CHECK(bits_of<IDR3, IDR3::MPAM>() == at(7));
  CHECK(bits_of<IDR3, IDR3::FWB>() == at(8));
  CHECK(bits_of<IDR3, IDR3::STT>() == at(9));
  CHECK(bits_of<IDR3, IDR3::RIL>() == at(10));
  CHECK(bits_of<IDR3, IDR3::BBML>() == at(12, 11));
  CHECK(bits_of<IDR3, IDR3::E0PD>() == at(13));
  CHECK(bits_of<IDR3, IDR3::PTWNNC>() == at(14));
  CHECK(bits_of<IDR3, IDR3::DPT>() == at(15));
  CHECK(bits_of<IDR3, IDR3::PASIDTT>() == at(16));
  CHECK(bits_of<IDR3, IDR3::EPAN>() == at(17));
  CHECK(bits_of<IDR3, IDR3::S1PI>() == at(18));
  CHECK(bits_of<IDR3, IDR3::S2PI>() == at(19));
  CHECK(bits_of<IDR3, IDR3::S2PO>() == at(20));
  CHECK(bits_of<IDR3, IDR3::THE>() == at(21));
  CHECK(bits_of<IDR3, IDR3::MTEPERM>() == at(22));
  CHECK(bits_of<IDR3, IDR3::AIE>() == at(23));
  CHECK(IDR3::res0() == 0xff000043);  // bits 31:24, 6, 1:0

  // IDR4 is IMPLEMENTATION DEFINED [SPEC 6.3.5].
  CHECK(bits_of<IDR4, IDR4::IMPDEF>() == at(31, 0));

  // IDR5 [SPEC 6.3.6][LNX IDR5_*][FBSD IDR5_*][REF A.2]
  CHECK(bits_of<IDR5, IDR5::OAS>() == at(2, 0));
  CHECK(bits_of<IDR5, IDR5::GRAN4K>() == at(4));
  CHECK(bits_of<IDR5, IDR5::GRAN16K>() == at(5));
  CHECK(bits_of<IDR5, IDR5::GRAN64K>() == at(6));
  CHECK(bits_of<IDR5, IDR5::DS>() == at(7));
  CHECK(bits_of<IDR5, IDR5::D128>() == at(8));
  CHECK(bits_of<IDR5, IDR5::VAX>() == at(11, 10));
  CHECK(bits_of<IDR5, IDR5::STALL_MAX>() == at(31, 16));
  CHECK(IDR5::res0() == 0x0000f208);  // bits 15:12, 9, 3
  CHECK(kVax48 == 0);
  CHECK(kVax52 == 1);
  CHECK(kVax56 == 2);

  // IIDR [SPEC 6.3.7][LNX IIDR_*][FBSD SMMU_ProductID_*][REF A.1]
  CHECK(bits_of<IIDR, IIDR::Implementer>() == at(11, 0));
  CHECK(bits_of<IIDR, IIDR::Revision>() == at(15, 12));
  CHECK(bits_of<IIDR, IIDR::Variant>() == at(19, 16));
  CHECK(bits_of<IIDR, IIDR::ProductID>() == at(31, 20));
  CHECK(kImplementerArm == 0x43b);
  // MMU-600 r0p0-ish: ProductID 0x483, Arm.
  const auto iidr = IIDR::from_value(0x4830043b);
  CHECK(iidr.get<IIDR::ProductID>() == 0x483);
  CHECK(iidr.get<IIDR::Implementer>() == kImplementerArm);

  // AIDR [SPEC 6.3.8]: ArchMajorRev[7:4], ArchMinorRev[3:0]; SMMUv3.2 reads 0x02.
  CHECK(bits_of<AIDR, AIDR::ArchMinorRev>() == at(3, 0));
  CHECK(bits_of<AIDR, AIDR::ArchMajorRev>() == at(7, 4));
  CHECK(AIDR::res0() == 0xffffff00);
  CHECK(AIDR::from_value(0x02).get<AIDR::ArchMinorRev>() == 2);
}

TEST_CASE("address size encodings (IDR5.OAS, CD.IPS, STE.S2PS)") {
  // [SPEC 6.3.6 OAS table, 5.4 IPS, 5.2 S2PS][LNX IDR5_OAS_*_BIT][FBSD IDR5_OAS_*][REF C.5]
  CHECK(kAddrSize32 == 0);
  CHECK(kAddrSize36 == 1);
  CHECK(kAddrSize40 == 2);
  CHECK(kAddrSize42 == 3);
  CHECK(kAddrSize44 == 4);
  CHECK(kAddrSize48 == 5);
  CHECK(kAddrSize52 == 6);
  CHECK(kAddrSize56 == 7);
  CHECK(address_size_bits(0) == 32);
  CHECK(address_size_bits(1) == 36);
  CHECK(address_size_bits(2) == 40);
  CHECK(address_size_bits(3) == 42);
  CHECK(address_size_bits(4) == 44);
  CHECK(address_size_bits(5) == 48);
  CHECK(address_size_bits(6) == 52);
  CHECK(address_size_bits(7) == 56);
  CHECK(address_size_bits(8) == 0);
}

TEST_CASE("CR0/CR0ACK, CR1, CR2, STATUSR, GBPA, AGBPA fields") {
  // CR0 [SPEC 6.3.9][LNX CR0_*][FBSD CR0_*][REF A.1]; CR0ACK has the same fields [SPEC 6.3.10].
  CHECK(bits_of<CR0, CR0::SMMUEN>() == at(0));
  CHECK(bits_of<CR0, CR0::PRIQEN>() == at(1));
  CHECK(bits_of<CR0, CR0::EVENTQEN>() == at(2));
  CHECK(bits_of<CR0, CR0::CMDQEN>() == at(3));
  CHECK(bits_of<CR0, CR0::ATSCHK>() == at(4));
  CHECK(bits_of<CR0, CR0::VMW>() == at(8, 6));
  CHECK(bits_of<CR0, CR0::DPT_WALK_EN>() == at(10));
  CHECK(CR0::res0() == 0xfffffa20);  // bits 31:11, 9, 5
  CHECK(bits_of<CR0ACK, CR0ACK::SMMUEN>() == at(0));
  CHECK(bits_of<CR0ACK, CR0ACK::CMDQEN>() == at(3));
  CHECK(bits_of<CR0ACK, CR0ACK::VMW>() == at(8, 6));

  // CR1 [SPEC 6.3.11][LNX CR1_*][FBSD CR1_*]
  CHECK(bits_of<CR1, CR1::QUEUE_IC>() == at(1, 0));
  CHECK(bits_of<CR1, CR1::QUEUE_OC>() == at(3, 2));
  CHECK(bits_of<CR1, CR1::QUEUE_SH>() == at(5, 4));
  CHECK(bits_of<CR1, CR1::TABLE_IC>() == at(7, 6));
  CHECK(bits_of<CR1, CR1::TABLE_OC>() == at(9, 8));
  CHECK(bits_of<CR1, CR1::TABLE_SH>() == at(11, 10));
  CHECK(CR1::res0() == 0xfffff000);
  // Cacheability: 0 NC, 1 WB, 2 WT [SPEC][LNX CR1_CACHE_*]; shareability 0/2/3 [SPEC].
  CHECK(kCr1CacheNc == 0);
  CHECK(kCr1CacheWb == 1);
  CHECK(kCr1CacheWt == 2);
  CHECK(kShNsh == 0);
  CHECK(kShOsh == 2);
  CHECK(kShIsh == 3);

  // CR2 [SPEC 6.3.12][LNX CR2_*][FBSD CR2_*]
  CHECK(bits_of<CR2, CR2::E2H>() == at(0));
  CHECK(bits_of<CR2, CR2::RECINVSID>() == at(1));
  CHECK(bits_of<CR2, CR2::PTM>() == at(2));
  CHECK(bits_of<CR2, CR2::REC_CFG_ATS>() == at(3));
  CHECK(CR2::res0() == 0xfffffff0);

  // STATUSR [SPEC 6.3.13]
  CHECK(bits_of<STATUSR, STATUSR::DORMANT>() == at(0));
  CHECK(STATUSR::res0() == 0xfffffffe);

  // GBPA [SPEC 6.3.14][LNX GBPA_UPDATE 31, GBPA_ABORT 20][REF A.1]
  CHECK(bits_of<GBPA, GBPA::MemAttr>() == at(3, 0));
  CHECK(bits_of<GBPA, GBPA::MTCFG>() == at(4));
  CHECK(bits_of<GBPA, GBPA::ALLOCCFG>() == at(11, 8));
  CHECK(bits_of<GBPA, GBPA::SHCFG>() == at(13, 12));
  CHECK(bits_of<GBPA, GBPA::PRIVCFG>() == at(17, 16));
  CHECK(bits_of<GBPA, GBPA::INSTCFG>() == at(19, 18));
  CHECK(bits_of<GBPA, GBPA::ABORT>() == at(20));
  CHECK(bits_of<GBPA, GBPA::Update>() == at(31));
  CHECK(GBPA::res0() == 0x7fe0c0e0);  // bits 30:21, 15:14, 7:5
  // QEMU's reset value 0x1000 is SHCFG = "use incoming" [REF A.1].
  CHECK(GBPA::from_value(0x1000).get<GBPA::SHCFG>() == kShcfgIncoming);

  // AGBPA is IMPLEMENTATION DEFINED [SPEC 6.3.15].
  CHECK(bits_of<AGBPA, AGBPA::IMPDEF>() == at(31, 0));
}

TEST_CASE("IRQ_CTRL/IRQ_CTRLACK and GERROR/GERRORN bits") {
  // [SPEC 6.3.16, 6.3.18][LNX IRQ_CTRL_*][FBSD IRQ_CTRL_*][REF A.1]
  CHECK(bits_of<IRQ_CTRL, IRQ_CTRL::GERROR_IRQEN>() == at(0));
  CHECK(bits_of<IRQ_CTRL, IRQ_CTRL::PRIQ_IRQEN>() == at(1));
  CHECK(bits_of<IRQ_CTRL, IRQ_CTRL::EVENTQ_IRQEN>() == at(2));
  CHECK(IRQ_CTRL::res0() == 0xfffffff8);
  CHECK(bits_of<IRQ_CTRLACK, IRQ_CTRLACK::EVENTQ_IRQEN>() == at(2));

  // [SPEC 6.3.19, 6.3.20][LNX GERROR_*][REF A.9]
  CHECK(bits_of<GERROR, GERROR::CMDQ_ERR>() == at(0));
  CHECK(bits_of<GERROR, GERROR::EVENTQ_ABT_ERR>() == at(2));
  CHECK(bits_of<GERROR, GERROR::PRIQ_ABT_ERR>() == at(3));
  CHECK(bits_of<GERROR, GERROR::MSI_CMDQ_ABT_ERR>() == at(4));
  CHECK(bits_of<GERROR, GERROR::MSI_EVENTQ_ABT_ERR>() == at(5));
  CHECK(bits_of<GERROR, GERROR::MSI_PRIQ_ABT_ERR>() == at(6));
  CHECK(bits_of<GERROR, GERROR::MSI_GERROR_ABT_ERR>() == at(7));
  CHECK(bits_of<GERROR, GERROR::SFM_ERR>() == at(8));
  CHECK(bits_of<GERROR, GERROR::CMDQP_ERR>() == at(9));
  CHECK(bits_of<GERROR, GERROR::DPT_ERR>() == at(10));
  CHECK(GERROR::res0() == 0xfffff802);  // bits 31:11, 1
  CHECK(bits_of<GERRORN, GERRORN::SFM_ERR>() == at(8));
  CHECK(bits_of<GERRORN, GERRORN::CMDQ_ERR>() == at(0));

  // Active = GERROR ^ GERRORN [SPEC 6.3.19]: CMDQ_ERR raised, SFM_ERR acknowledged.
  CHECK(active_errors(GERROR::from_value(0x101), GERRORN::from_value(0x100)) == 0x1);
  CHECK(active_errors(GERROR::from_value(0x0), GERRORN::from_value(0x4)) == 0x4);
  CHECK(active_errors(GERROR::from_value(0x1fd), GERRORN::from_value(0x1fd)) == 0);
  // Linux's error mask 0x1FD is exactly bits 0, 2..8 [LNX GERROR_ERR_MASK].
  CHECK((GERROR{}
             .set<GERROR::CMDQ_ERR>(1)
             .set<GERROR::EVENTQ_ABT_ERR>(1)
             .set<GERROR::PRIQ_ABT_ERR>(1)
             .set<GERROR::MSI_CMDQ_ABT_ERR>(1)
             .set<GERROR::MSI_EVENTQ_ABT_ERR>(1)
             .set<GERROR::MSI_PRIQ_ABT_ERR>(1)
             .set<GERROR::MSI_GERROR_ABT_ERR>(1)
             .set<GERROR::SFM_ERR>(1)
             .value()) == 0x1fd);
}

TEST_CASE("MSI configuration registers") {
  // *_IRQ_CFG0: ADDR[55:2] [SPEC 6.3.21, 6.3.30, 6.3.34][LNX MSI_CFG0_ADDR_MASK [51:2]].
  CHECK(bits_of<GERROR_IRQ_CFG0, GERROR_IRQ_CFG0::ADDR>() == at(55, 2));
  CHECK(bits_of<EVENTQ_IRQ_CFG0, EVENTQ_IRQ_CFG0::ADDR>() == at(55, 2));
  CHECK(bits_of<PRIQ_IRQ_CFG0, PRIQ_IRQ_CFG0::ADDR>() == at(55, 2));
  CHECK(GERROR_IRQ_CFG0::res0() == 0xff00000000000003);
  // *_IRQ_CFG1: DATA[31:0] [SPEC 6.3.22, 6.3.31].
  CHECK(bits_of<GERROR_IRQ_CFG1, GERROR_IRQ_CFG1::DATA>() == at(31, 0));
  CHECK(bits_of<EVENTQ_IRQ_CFG1, EVENTQ_IRQ_CFG1::DATA>() == at(31, 0));
  CHECK(bits_of<PRIQ_IRQ_CFG1, PRIQ_IRQ_CFG1::DATA>() == at(31, 0));
  // *_IRQ_CFG2: MemAttr[3:0], SH[5:4]; PRIQ adds LO[31] [SPEC 6.3.23, 6.3.32, 6.3.36][LNX].
  CHECK(bits_of<GERROR_IRQ_CFG2, GERROR_IRQ_CFG2::MemAttr>() == at(3, 0));
  CHECK(bits_of<GERROR_IRQ_CFG2, GERROR_IRQ_CFG2::SH>() == at(5, 4));
  CHECK(bits_of<EVENTQ_IRQ_CFG2, EVENTQ_IRQ_CFG2::SH>() == at(5, 4));
  CHECK(bits_of<PRIQ_IRQ_CFG2, PRIQ_IRQ_CFG2::MemAttr>() == at(3, 0));
  CHECK(bits_of<PRIQ_IRQ_CFG2, PRIQ_IRQ_CFG2::SH>() == at(5, 4));
  CHECK(bits_of<PRIQ_IRQ_CFG2, PRIQ_IRQ_CFG2::LO>() == at(31));
  CHECK(GERROR_IRQ_CFG2::res0() == 0xffffffc0);
  CHECK(PRIQ_IRQ_CFG2::res0() == 0x7fffffc0);
  // Device-nGnRE 0b0001, Normal WB 0b1111 [SPEC 5.2 MemAttr][LNX ARM_SMMU_MEMATTR_*].
  CHECK(kMemAttrDeviceNGnRE == 0x1);
  CHECK(kMemAttrNormalWb == 0xf);

  // Linux's MSI set-up: doorbell 0x8000_0040, Device-nGnRE -> CFG2 == 0x1 [REF A.10].
  CHECK(EVENTQ_IRQ_CFG0{}.set<EVENTQ_IRQ_CFG0::ADDR>(0x80000040).value() == 0x80000040);
  CHECK(EVENTQ_IRQ_CFG2{}.set<EVENTQ_IRQ_CFG2::MemAttr>(kMemAttrDeviceNGnRE).value() == 0x1);
  CHECK(PRIQ_IRQ_CFG2{}
            .set<PRIQ_IRQ_CFG2::LO>(1)
            .set<PRIQ_IRQ_CFG2::SH>(kShIsh)
            .set<PRIQ_IRQ_CFG2::MemAttr>(kMemAttrNormalWb)
            .value() == 0x8000003f);
}

TEST_CASE("stream table base registers") {
  // [SPEC 6.3.24][LNX STRTAB_BASE_RA 62, ADDR [51:6]][FBSD][REF A.1]
  CHECK(bits_of<STRTAB_BASE, STRTAB_BASE::ADDR>() == at(55, 6));
  CHECK(bits_of<STRTAB_BASE, STRTAB_BASE::RA>() == at(62));
  CHECK(STRTAB_BASE::res0() == 0xbf0000000000003f);
  // [SPEC 6.3.25][LNX STRTAB_BASE_CFG_*][FBSD]
  CHECK(bits_of<STRTAB_BASE_CFG, STRTAB_BASE_CFG::LOG2SIZE>() == at(5, 0));
  CHECK(bits_of<STRTAB_BASE_CFG, STRTAB_BASE_CFG::SPLIT>() == at(10, 6));
  CHECK(bits_of<STRTAB_BASE_CFG, STRTAB_BASE_CFG::FMT>() == at(17, 16));
  CHECK(STRTAB_BASE_CFG::res0() == 0xfffcf800);  // bits 31:18, 15:11
  CHECK(kStrtabFmtLinear == 0);
  CHECK(kStrtabFmt2Level == 1);
  // SPLIT 6/8/10 for 4KB/16KB/64KB L2 tables [SPEC 6.3.25][FBSD STRTAB_BASE_CFG_SPLIT_*].
  CHECK(kSplit4K == 6);
  CHECK(kSplit16K == 8);
  CHECK(kSplit64K == 10);

  // Linux's 2-level table: FMT 1, SPLIT 8, LOG2SIZE 16 -> 0x10210; RA with the table at
  // 0x8000000040 -> 0x4000008000000040.
  CHECK(STRTAB_BASE_CFG{}
            .set<STRTAB_BASE_CFG::FMT>(kStrtabFmt2Level)
            .set<STRTAB_BASE_CFG::SPLIT>(kSplit16K)
            .set<STRTAB_BASE_CFG::LOG2SIZE>(16)
            .value() == 0x10210);
  CHECK(STRTAB_BASE{}.set<STRTAB_BASE::ADDR>(0x8000000040).set<STRTAB_BASE::RA>(1).value() ==
        0x4000008000000040);
  // A 56-bit table address is representable (SMMUv3.4 OAS 56).
  CHECK(STRTAB_BASE{}.set<STRTAB_BASE::ADDR>(0x00ffffffffffffc0).value() == 0x00ffffffffffffc0);
}

TEST_CASE("queue base, PROD and CONS registers") {
  // *_BASE [SPEC 6.3.26, 6.3.29, 6.3.33][LNX Q_BASE_* (RWA bit 62, ADDR [51:5])][FBSD][REF A.1]
  CHECK(bits_of<CMDQ_BASE, CMDQ_BASE::LOG2SIZE>() == at(4, 0));
  CHECK(bits_of<CMDQ_BASE, CMDQ_BASE::ADDR>() == at(55, 5));
  CHECK(bits_of<CMDQ_BASE, CMDQ_BASE::RA>() == at(62));
  CHECK(bits_of<EVENTQ_BASE, EVENTQ_BASE::LOG2SIZE>() == at(4, 0));
  CHECK(bits_of<EVENTQ_BASE, EVENTQ_BASE::ADDR>() == at(55, 5));
  CHECK(bits_of<EVENTQ_BASE, EVENTQ_BASE::WA>() == at(62));
  CHECK(bits_of<PRIQ_BASE, PRIQ_BASE::LOG2SIZE>() == at(4, 0));
  CHECK(bits_of<PRIQ_BASE, PRIQ_BASE::ADDR>() == at(55, 5));
  CHECK(bits_of<PRIQ_BASE, PRIQ_BASE::WA>() == at(62));
  CHECK(CMDQ_BASE::res0() == 0xbf00000000000000);
  CHECK(PRIQ_BASE::res0() == 0xbf00000000000000);

  // PROD/CONS [SPEC 6.3.27, 6.3.28, page-1 registers 6.3.95-98][LNX CMDQ_CONS_ERR [30:24],
  // Q_OVERFLOW_FLAG bit 31][FBSD CMDQ_CONS_ERR_*][REF A.1, A.8]
  CHECK(bits_of<CMDQ_PROD, CMDQ_PROD::WR>() == at(19, 0));
  CHECK(CMDQ_PROD::res0() == 0xfff00000);
  CHECK(bits_of<CMDQ_CONS, CMDQ_CONS::RD>() == at(19, 0));
  CHECK(bits_of<CMDQ_CONS, CMDQ_CONS::ERR>() == at(30, 24));
  CHECK(CMDQ_CONS::res0() == 0x80f00000);
  CHECK(bits_of<EVENTQ_PROD, EVENTQ_PROD::WR>() == at(19, 0));
  CHECK(bits_of<EVENTQ_PROD, EVENTQ_PROD::OVFLG>() == at(31));
  CHECK(bits_of<EVENTQ_CONS, EVENTQ_CONS::RD>() == at(19, 0));
  CHECK(bits_of<EVENTQ_CONS, EVENTQ_CONS::OVACKFLG>() == at(31));
  CHECK(bits_of<PRIQ_PROD, PRIQ_PROD::WR>() == at(19, 0));
  CHECK(bits_of<PRIQ_PROD, PRIQ_PROD::OVFLG>() == at(31));
  CHECK(bits_of<PRIQ_CONS, PRIQ_CONS::RD>() == at(19, 0));
  CHECK(bits_of<PRIQ_CONS, PRIQ_CONS::OVACKFLG>() == at(31));
  CHECK(EVENTQ_PROD::res0() == 0x7ff00000);
  CHECK(PRIQ_CONS::res0() == 0x7ff00000);

  // Entry sizes 16/32/16 bytes, at most 2^19 entries [SPEC 4.1.1, 7.3, 6.3.2][LNX *_ENT_SZ_SHIFT].
  CHECK(kCmdqEntryBytes == 16);
  CHECK(kEventqEntryBytes == 32);
  CHECK(kPriqEntryBytes == 16);
  CHECK(kMaxQueueLog2Size == 19);

  // A 256-entry command queue at 0x8_4000_1000 with RA: 0x4000000840001000 | 8.
  CHECK(CMDQ_BASE{}
            .set<CMDQ_BASE::RA>(1)
            .set<CMDQ_BASE::ADDR>(0x840001000)
            .set<CMDQ_BASE::LOG2SIZE>(8)
            .value() == 0x4000000840001008);
  // CMDQ_CONS after a CERROR_ILL at index 5, wrap 1 (qs 8): ERR 1 << 24 | 0x105.
  const auto cons = CMDQ_CONS::from_value(0x01000105);
  CHECK(cons.get<CMDQ_CONS::ERR>() == 1);
  CHECK(cons.get<CMDQ_CONS::RD>() == 0x105);
}

TEST_CASE("queue index, wrap and space arithmetic") {
  // [SPEC 6.3.27/28: index [QS-1:0], wrap [QS]; space if RD != WR || RD_WRAP == WR_WRAP]
  // [REF A.8][LNX Q_IDX/Q_WRP/queue_has_space]
  CHECK(queue_ptr_mask(8) == 0x1ff);
  CHECK(queue_ptr_mask(0) == 0x1);
  CHECK(queue_ptr_mask(19) == 0xfffff);
  CHECK(queue_index(0x1a5, 8) == 0xa5);
  CHECK(queue_wrap(0x1a5, 8) == 1);
  CHECK(queue_wrap(0x0a5, 8) == 0);
  CHECK(queue_index(0x800001a5, 8) == 0xa5);  // OVFLG ignored
  CHECK(queue_wrap(0x800001a5, 8) == 1);

  // Empty: equal index and wrap. Full: equal index, different wrap.
  CHECK(queue_empty(0x010, 0x010, 8));
  CHECK_FALSE(queue_full(0x010, 0x010, 8));
  CHECK(queue_full(0x110, 0x010, 8));
  CHECK(queue_full(0x010, 0x110, 8));
  CHECK_FALSE(queue_empty(0x110, 0x010, 8));
  CHECK(queue_used(0x110, 0x010, 8) == 256);
  CHECK(queue_free(0x110, 0x010, 8) == 0);
  // Producer wrapped past the end: prod = wrap 1 index 5, cons = wrap 0 index 0xff: 6 used.
  CHECK(queue_used(0x105, 0x0ff, 8) == 6);
  CHECK(queue_free(0x105, 0x0ff, 8) == 250);
  // Consumer wrapped too: prod wrap 0 index 3, cons wrap 1 index 0xfe: 5 used.
  CHECK(queue_used(0x003, 0x1fe, 8) == 5);
  // Upper bits (OVFLG, CMDQ_CONS.ERR) do not count.
  CHECK(queue_used(0x80000105, 0x010000ff, 8) == 6);
  CHECK(queue_empty(0x80000020, 0x00000020, 8));

  // Advancing toggles the wrap flag past the end and keeps the bits above it.
  CHECK(queue_advance(0x0fe, 1, 8) == 0x0ff);
  CHECK(queue_advance(0x0ff, 1, 8) == 0x100);
  CHECK(queue_advance(0x1ff, 1, 8) == 0x000);
  CHECK(queue_advance(0x1fe, 4, 8) == 0x002);
  CHECK(queue_advance(0x800001ff, 1, 8) == 0x80000000);
  CHECK(queue_advance(0x010, 256, 8) == 0x110);
  // A one-entry queue has no index bits: the wrap flag is bit 0 [SPEC 6.3.27].
  CHECK(queue_advance(0, 1, 0) == 1);
  CHECK(queue_advance(1, 1, 0) == 0);
  CHECK(queue_full(1, 0, 0));
  CHECK(queue_empty(1, 1, 0));
  // The largest queue, 2^19 entries.
  CHECK(queue_advance(0x7ffff, 1, 19) == 0x80000);
  CHECK(queue_full(0x80000, 0x00000, 19));

  // Beyond the architected sizes is a strata bug.
  std::string msg = hosted::panic_message_of([] { (void)queue_ptr_mask(20); });
  CHECK(msg.find("2^19") != std::string::npos);
  msg = hosted::panic_message_of([] { (void)queue_advance(0, 257, 8); });
  CHECK(msg.find("more than its size") != std::string::npos);
}

TEST_CASE("registers go to their offsets; write_to clears RES0") {
  struct Recorder : RegisterModel {
    uint64_t mmio_read(uint64_t offset, unsigned size) override {
      last_offset = offset;
      last_size = size;
      return ~uint64_t{0};
    }
    void mmio_write(uint64_t offset, uint64_t value, unsigned size) override {
      last_offset = offset;
      last_size = size;
      last_value = value;
    }
    uint64_t last_offset = 0, last_value = 0;
    unsigned last_size = 0;
  } rec;
  Mmio io = Mmio::model(rec, kRegisterSpaceBytes);

  // Page 1 registers through the page-0 based block.
  EVENTQ_CONS::from_value(0xffffffff).write_to(io);
  CHECK(rec.last_offset == 0x100ac);
  CHECK(rec.last_size == 4);
  CHECK(rec.last_value == 0x800fffff);  // RES0 bits 30:20 cleared
  auto prod = PRIQ_PROD::read_from(io);
  CHECK(rec.last_offset == 0x100c8);
  CHECK(prod.get<PRIQ_PROD::OVFLG>() == 1);

  CR0::from_value(0xffffffff).write_to(io);
  CHECK(rec.last_offset == 0x20);
  CHECK(rec.last_value == 0x5df);  // bits 10, 8:6, 4:0
  GBPA{}.set<GBPA::Update>(1).set<GBPA::ABORT>(1).write_to(io);
  CHECK(rec.last_offset == 0x44);
  CHECK(rec.last_value == 0x80100000);
  STRTAB_BASE::from_value(~uint64_t{0}).write_to(io);
  CHECK(rec.last_offset == 0x80);
  CHECK(rec.last_size == 8);
  CHECK(rec.last_value == 0x40ffffffffffffc0);
  GERROR_IRQ_CFG0::from_value(~uint64_t{0}).write_to(io);
  CHECK(rec.last_offset == 0x68);
  CHECK(rec.last_size == 8);
  CHECK(rec.last_value == 0x00fffffffffffffc);
  GERRORN::from_value(0x101).write_to(io);
  CHECK(rec.last_offset == 0x64);
  CHECK(rec.last_value == 0x101);
}

TEST_CASE("Linux's reset sequence values") {
  // CR1: queues and tables Inner Shareable, Write-Back [REF A.10 step 3]:
  // QUEUE_IC 1 | QUEUE_OC 1<<2 | QUEUE_SH 3<<4 | TABLE_IC 1<<6 | TABLE_OC 1<<8 | TABLE_SH 3<<10.
  CHECK(CR1{}
            .set<CR1::QUEUE_IC>(kCr1CacheWb)
            .set<CR1::QUEUE_OC>(kCr1CacheWb)
            .set<CR1::QUEUE_SH>(kShIsh)
            .set<CR1::TABLE_IC>(kCr1CacheWb)
            .set<CR1::TABLE_OC>(kCr1CacheWb)
            .set<CR1::TABLE_SH>(kShIsh)
            .value() == 0xd75);
  // CR2 = PTM | RECINVSID [REF A.10 step 4].
  CHECK(CR2{}.set<CR2::PTM>(1).set<CR2::RECINVSID>(1).value() == 0x6);
  // CR0 = SMMUEN | EVENTQEN | CMDQEN | ATSCHK.
  CHECK(CR0{}
            .set<CR0::SMMUEN>(1)
            .set<CR0::EVENTQEN>(1)
            .set<CR0::CMDQEN>(1)
            .set<CR0::ATSCHK>(1)
            .value() == 0x1d);
  // IRQ_CTRL = EVENTQ_IRQEN | GERROR_IRQEN (| PRIQ_IRQEN).
  CHECK(IRQ_CTRL{}.set<IRQ_CTRL::EVENTQ_IRQEN>(1).set<IRQ_CTRL::GERROR_IRQEN>(1).value() == 0x5);
  CHECK(IRQ_CTRL{}.set<IRQ_CTRL::PRIQ_IRQEN>(1).value() == 0x2);
}

TEST_CASE("registers print by field name and flag undeclared bits") {
  CHECK(fmt::format("{}", CR0::from_value(0xd)) == "CR0 0x0000000d {SMMUEN EVENTQEN CMDQEN}");
  CHECK(fmt::format("{}", CR0ACK::from_value(0x20)) == "CR0ACK 0x00000020 {undeclared=0x20}");
  CHECK(fmt::format("{}", GERROR::from_value(0x103)) ==
        "GERROR 0x00000103 {CMDQ_ERR SFM_ERR undeclared=0x2}");
  CHECK(fmt::format("{}", CMDQ_CONS::from_value(0x01000105)) ==
        "CMDQ_CONS 0x01000105 {RD=0x105 ERR=0x1}");
  CHECK(fmt::format("{}", EVENTQ_BASE::from_value(0x4000000080000007)) ==
        "EVENTQ_BASE 0x4000000080000007 {LOG2SIZE=0x7 ADDR=0x80000000 WA}");
  CHECK(fmt::format("{}", IDR5::from_value(0x00020075)) ==
        "IDR5 0x00020075 {OAS=0x5 GRAN4K GRAN16K GRAN64K STALL_MAX=0x2}");
}

}  // namespace
}  // namespace strata::smmuv3
