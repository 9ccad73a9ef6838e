// SPDX-License-Identifier: MIT
// What the SMMUv3 model implements, as its ID registers report it (IHI 0070, 6.3.1-6.3.8).
//
// A Config is the feature set of one SMMUv3.0, v3.1 or v3.2 implementation. The default is a
// typical SMMUv3.2 serving PCIe devices: both stages (nesting),
// 2-level stream and CD tables, 16-bit ASIDs and VMIDs, range invalidation, hardware Access
// flag and dirty state updates, ATS and PRI, MSIs and WFE events, coherent accesses, 48-bit
// OAS, every granule, full-size queues, 16-bit StreamIDs and 20-bit SubstreamIDs.
//
// Fields are named after the ID register fields they set. Some fields are fixed by what the
// model can do rather than configurable: VMSAv8-64 tables only (IDR0.TTF = 0b10), little-endian
// walks only (IDR0.TTENDIAN = 0b10), no ATOS/VATOS, no ECMDQ, no Secure or Realm state, no
// MPAM, no DPT, no 128-bit descriptors (IDR5.D128 = 0) and no LPA2 (IDR5.DS = 0), no HAFT
// (IDR0.HTTU <= 0b10), no preset tables or queues.
#pragma once

#include <stdint.h>

#include "arch/result.h"
#include "arch/smmuv3/defs.h"
#include "arch/smmuv3/regs.h"

namespace strata::sim::smmuv3 {

struct Config {
  // AIDR.ArchMinorRev: SMMUv3.<version>, 0..2.
  unsigned version = 2;

  // SMMU_IDR0.
  bool s1p = true;        // S1P: stage 1 translation
  bool s2p = true;        // S2P: stage 2 translation (with S1P: nesting)
  bool st_2level = true;  // ST_LEVEL = 0b01: 2-level stream tables (linear always)
  bool cd2l = true;       // CD2L: 2-level CD tables
  bool asid16 = true;     // ASID16
  bool vmid16 = true;     // VMID16
  bool vmw = false;       // VMW: VMID wildcards in TLB invalidations (needs S2P)
  unsigned httu = ::strata::smmuv3::kHttuAccessDirty;  // HTTU: 0 none, 1 AF, 2 AF and dirty
  bool btm = false;              // BTM: broadcast TLB maintenance (the model receives none)
  bool hyp = true;               // Hyp: EL2 stage 1 contexts, CMD_TLBI_EL2_* (needs S1P and S2P)
  bool ats = true;               // ATS
  bool split_stage_ats = false;  // !NS1ATS: STE.EATS == 0b10 (needs ATS, S1P, S2P)
  bool pri = true;               // PRI: the PRI queue (needs ATS)
  bool msi = true;               // MSI: message-signalled interrupts and CMD_SYNC MSIs
  bool sev = true;               // SEV: WFE wake-up events (CMD_SYNC SIG_SEV)
  bool cohacc = true;            // COHACC: IO-coherent table walks, fetches, queues and MSIs
  unsigned stall_model = ::strata::smmuv3::kStallModelStallAndTerminate;  // STALL_MODEL
  bool term_model = false;  // TERM_MODEL: terminated transactions always abort (CD.A == 1)

  // SMMU_IDR1.
  unsigned sidsize = 16;       // SIDSIZE: StreamID bits, 0..32
  unsigned ssidsize = 20;      // SSIDSIZE: SubstreamID bits, 0..20
  unsigned cmdqs = 19;         // CMDQS: log2 of the largest Command queue, 0..19
  unsigned eventqs = 19;       // EVENTQS
  unsigned priqs = 19;         // PRIQS (with PRI)
  bool attr_types_ovr = true;  // ATTR_TYPES_OVR: GBPA/STE MTCFG, SHCFG, ALLOCCFG overrides
  bool attr_perms_ovr = true;  // ATTR_PERMS_OVR: GBPA/STE INSTCFG, PRIVCFG overrides

  // SMMU_IDR3.
  bool had = true;      // HAD: CD.HAD0/1 (mandatory with S1P from v3.1)
  bool xnx = true;      // XNX: stage 2 XN[1:0] (mandatory with S2P from v3.1)
  bool pps = false;     // PPS: PRI overflow auto-responses carry the PASID without STE.PPAR
  bool fwb = true;      // FWB: STE.S2FWB (1 in v3.2 and later)
  bool stt = false;     // STT: small translation tables
  bool ril = true;      // RIL: range invalidation and TTL hints (1 in v3.2 and later)
  unsigned bbml = 1;    // BBML: break-before-make level (1 or 2 in v3.2 and later)
  bool e0pd = false;    // E0PD: CD.E0PD0/1
  bool ptwnnc = false;  // PTWNNC: S2PTW == 0 walks to Device memory as Normal-NC

  // SMMU_IDR5.
  unsigned oas = ::strata::smmuv3::kAddrSize48;  // OAS encoding: 32..52 bits
  bool gran4k = true;
  bool gran16k = true;
  bool gran64k = true;
  unsigned vax = ::strata::smmuv3::kVax48;  // VAX: 48 or (v3.1+, with GRAN64K) 52-bit VAs
  unsigned stall_max = 32;                  // STALL_MAX (RES0 without the Stall model)

  // SMMU_IIDR: IMPLEMENTATION DEFINED. Zero by default, so that a driver applies no product's
  // errata workarounds; a test can claim a product (MMU-600: Arm, ProductID 0x483).
  unsigned iidr_implementer = 0;
  unsigned iidr_product = 0;
  unsigned iidr_variant = 0;
  unsigned iidr_revision = 0;

  // SMMU_GBPA at reset (IMPLEMENTATION DEFINED): ABORT clear, SHCFG "use incoming". An
  // implementation may reset ABORT to 1 for a default-deny policy (6.3.14).
  bool gbpa_abort_at_reset = false;

  // The OAS in bits.
  unsigned oas_bits() const { return ::strata::smmuv3::address_size_bits(oas); }

  // Why the combination is not one the architecture permits for `version` or the model
  // implements ("HTTU 0b11 (HAFT) is not implemented"), or nullptr when it is valid.
  const char* invalid_reason() const;
  // -EINVAL when invalid_reason() is not null.
  Result<void> validate() const;

  // Presets.
  static Config smmuv3_2() { return Config{}; }
  // An SMMUv3.0 (no v3.1/v3.2 features): 8-bit ASIDs/VMIDs, no RIL/FWB/HAD/XNX/BBML, no PRI.
  static Config smmuv3_0();
  // Stage 1 only / stage 2 only variants of the default.
  static Config stage1_only();
  static Config stage2_only();
};

}  // namespace strata::sim::smmuv3
