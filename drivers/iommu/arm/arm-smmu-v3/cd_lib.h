// SPDX-License-Identifier: MIT
// The SMMUv3 Context Descriptor library (cd-lib), part 1: what a CD says (IHI 0070 5.4).
//
// The CD library is the piece of the arm-smmu-v3 driver that the virtio-iommu nested series
// pulled out so that the iommu-pasid-table library, and through it VFIO and a paravirtual IOMMU,
// can program SMMUv3 stage-1 contexts without the rest of the driver. It has three parts, one
// job per header:
//
//   cd_lib.h          a CD's contents: the bits the SMMU uses (for the entry writer) and the
//                     builder of a stage-1 CD from a PasidStage1 or an io-pgtable s1 config
//   cd_table.h        CD tables in DMA memory: linear or 2-level, writing and clearing CDs
//                     hitlessly, and the CMD_CFGI_CD invalidations that go with it
//   cd_pasid_table.h  PasidTableOps over CdTable (PasidTableFmt::arm_smmuv3_cd)
//
// Everything here is pure: no memory, no locks, no commands.
#pragma once

#include <stdint.h>

#include "arch/result.h"
#include "arch/smmuv3/cd.h"
#include "core/io-pgtable/io_pgtable.h"
#include "core/pasid-table/pasid_table.h"

namespace strata::arm_smmu_v3 {

// Sets used[0..7] to the bits of `cd` (8 words, CPU byte order) that the SMMU uses for the
// configuration `cd` describes: every bit except those IHI 0070 5.4 declares IGNORED for it.
// This is the CD's EntryWriter::get_used. Too many used bits make updates break-before-make
// that could be hitless; too few let the SMMU act on a half-written CD. The rules (5.4):
//  - V == 0: only V is used ("the entire rest of the structure is IGNORED", 5.4 V).
//  - EPD0 == 1: T0SZ, TG0, IR0, OR0, SH0 and TTB0 are IGNORED (5.4 EPD0, 5.4.1.1); EPD1 == 1:
//    T1SZ, TG1, IR1, OR1, SH1 and TTB1 (5.4 EPD1). Both: ENDI too (5.4 ENDI).
//  - HA == 1: AFFD is IGNORED (5.4 AFFD).
//  - AA64 == 1 (VMSAv8-64): UWXN is IGNORED (5.4 UWXN); HWU059-HWU062 are IGNORED unless HAD0
//    == 1 and HWU159-HWU162 unless HAD1 == 1 (5.4 HWU059: "IGNORED ... when CD.HAD0 == 0"; with
//    SMMU_IDR5.D128 bit 65 is DisCH0 and bits [127:126] SKL0, which apply only when AA64 selects
//    VMSAv9-128, so with AA64 == 1 they are unused whatever the SMMU implements).
//  - NSCFG0 and NSCFG1 are IGNORED: they are used only for a CD reached from a Secure STE
//    (5.4 NSCFG0), and this library programs Non-secure streams.
// Everything else counts as used, including Reserved (RES0) bits and fields RES0 for a feature
// the SMMU may lack: an SMMU may treat a CD with one of them set as ILLEGAL (chapter 5), so
// they are part of what it acts on.
//
// Decided ambiguities:
//  - The StreamWorld is NS-EL1 or NS-EL2-E2H, the two that tag with ASIDs and have TTB1 (what
//    Linux and strata's driver program). Under any-EL2 or EL3, EPD0/EPD1 are IGNORED with an
//    effective value of 0 (5.4 EPD0), so the EPDx rules above would drop bits the SMMU uses: a
//    CD table behind such a stream needs a StreamWorld-aware get_used.
//  - AA64 == 0 selects VMSAv8-32 LPAE or VMSAv9-128 depending on SMMU_IDR5.D128, which a CD
//    alone does not say: the rules that depend on the format (TG0/TG1, HA/HD, IPS ignored with
//    VMSAv8-32; DisCH/SKL under EPDx with VMSAv9-128) are not applied, all those bits count as
//    used. Only the AA64 == 1 rules are.
//  - Fields the spec makes IGNORED through a property of the STE (ASID under any-EL2, PARTID and
//    PMG without STE.S1MPAM, PIIU/PIIP without permission indirection) or of the SMMU
//    (HAD0/HAD1 without SMMU_IDR3.HAD, HWUxxx without SMMU_IDR3.PBHA) count as used.
//  - The IMPLEMENTATION DEFINED bits [351:320] count as used.
void cd_get_used(const uint64_t* cd, uint64_t* used);

// Choices of the stage-1 CD that a PasidStage1 does not describe.
struct CdS1Options {
  // CD.S (5.5): faults stall rather than terminate. Only for a master with stalls enabled
  // (STE.S1STALLD == 0 and an SMMU whose SMMU_IDR0.STALL_MODEL allows it).
  bool stall = false;
  // CD.ASET == 0 (5.4 ASET): the ASID is shared with a process on the PE (SVA with broadcast
  // TLB maintenance). Otherwise ASET == 1: an SMMU-private ASID, which broadcast TLBIs of a
  // coincidentally equal PE ASID do not touch.
  bool shared_asid = false;
};

// Builds the stage-1 CD for `s1` (IHI 0070 5.4), in CPU byte order, with only used bits set
// (cd_get_used), ready for CdTable::write_cd:
//   V = 1, AA64 = 1 (VMSAv8-64), T0SZ, TG0, IR0 (IRGN0), OR0 (ORGN0), SH0, IPS and TTB0 from
//   the description, EPD0 = 0 and EPD1 = 1 (one table, TTB1 unused), MAIR0 = MAIR[31:0] and
//   MAIR1 = MAIR[63:32], ASID, ASET = !shared_asid, R = 1 and A = 1 (faults recorded, the
//   transaction aborted: 5.5), S = stall, HA = HD = 1 with PASID_S1_HW_DIRTY (io-pgtable's
//   writable-clean leaves need hardware dirty-state updates), ENDI = 0 (io-pgtable's tables
//   are little-endian on every CPU: its descriptors are dma_write64'd).
// -EINVAL, with nothing built, for a description the CD cannot hold: a format other than
// arm_64_lpae_s1, a flag outside PASID_S1_FLAGS, a field that does not fit its CD field, TG0
// 0b11 or SH0 0b01 (Reserved), a TTB0 not 16-byte aligned or at or above 2^52 (VMSAv8-64 TTB0
// holds address bits [51:4]), an ASID above 16 bits. The description may come from outside
// the trust boundary (a guest's stage-1 through VFIO): whatever passes here is a CD the SMMU
// either uses or rejects with C_BAD_CD (a T0SZ out of the SMMU's range, say), never a
// strata crash. Whether the SMMU implements what the CD asks for (HTTU for HA/HD, 16-bit ASIDs,
// the granule, the IPS) is the caller's to check against the ID registers.
Result<smmuv3::CD> make_s1_cd(const PasidStage1& s1, const CdS1Options& options = {});

// The CD for what io-pgtable programmed (cfg.arm_lpae_s1 of an arm_64_lpae_s1 table), through
// PasidStage1::from_io_pgtable.
Result<smmuv3::CD> make_s1_cd(const IoPgtableCfg& cfg, uint32_t asid,
                              const CdS1Options& options = {});

}  // namespace strata::arm_smmu_v3
