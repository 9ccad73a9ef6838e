// SPDX-License-Identifier: MIT
// What an SMMUv3 can do, read from its ID registers (IHI 0070 6.3.1-6.3.8), and what the driver
// refuses (Linux's arm_smmu_device_hw_probe).
//
// The driver refuses (-ENXIO, with a log line naming the reason) an SMMU that:
//  - translates at neither stage (IDR0.S1P == S2P == 0);
//  - cannot walk VMSAv8-64 tables (IDR0.TTF without AArch64): io-pgtable has no VMSAv8-32;
//  - walks big-endian tables only (IDR0.TTENDIAN == 0b11) on a little-endian CPU, or
//    little-endian only on a big-endian one: the driver writes every structure in CPU order;
//  - forces stalls (IDR0.STALL_MODEL == 0b10): the driver has no CMD_RESUME / CMD_STALL_TERM,
//    so a stalled transaction would never complete;
//  - has preset tables or queues (IDR1.TABLES_PRESET / QUEUES_PRESET: "embedded"
//    implementations whose structures the driver cannot place);
//  - has a Command queue too small for one batch plus its CMD_SYNC (IDR1.CMDQS);
//  - has an unknown output address size (IDR5.OAS Reserved encoding) or no granule at all.
// Features the driver does not use are not reported (ATOS, VATOS, MPAM, ECMDQ, DPT, RME, ...).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "arch/mmio.h"
#include "arch/result.h"

namespace strata::arm_smmu_v3 {

// The driver's largest command batch (before a CMD_SYNC is appended): the Command queue must
// hold a full batch plus the sync, so it needs at least 2 * kCmdqBatchEntries entries (Linux's
// CMDQ_BATCH_ENTRIES check).
inline constexpr unsigned kCmdqBatchEntries = 64;

struct ArmSmmuFeatures {
  // IDR0.
  bool trans_s1 = false;          // S1P
  bool trans_s2 = false;          // S2P
  bool nesting = false;           // S1P && S2P: Config 0b111 STEs
  bool two_level_strtab = false;  // ST_LEVEL == 0b01
  bool two_level_cdtab = false;   // CD2L
  bool coherent = false;          // COHACC: table walks, structure fetches, queues and MSIs snoop
  bool btm = false;               // BTM (the driver still issues TLBIs; recorded for the record)
  bool hyp = false;               // Hyp: EL2 StreamWorlds
  bool hw_access = false;         // HTTU >= 0b01: CD.HA / STE.S2HA
  bool hw_dirty = false;          // HTTU >= 0b10: CD.HD / STE.S2HD
  bool ats = false;               // ATS
  bool pri = false;               // PRI (only with ATS)
  bool msi = false;               // MSI: MSIs for queues and CMD_SYNC
  bool sev = false;               // SEV
  bool stalls = false;            // STALL_MODEL 0b00: stalls supported (CD.S / STE.S2S)
  unsigned asid_bits = 8;         // ASID16 ? 16 : 8
  unsigned vmid_bits = 8;         // VMID16 ? 16 : 8
  // IDR1.
  unsigned sid_bits = 0;        // SIDSIZE
  unsigned ssid_bits = 0;       // SSIDSIZE
  unsigned cmdq_shift = 0;      // CMDQS: log2 of the largest Command queue
  unsigned evtq_shift = 0;      // EVENTQS
  unsigned priq_shift = 0;      // PRIQS (meaningful with PRI)
  bool attr_types_ovr = false;  // ATTR_TYPES_OVR: STE SHCFG etc. are not RES0
  // IDR3.
  bool range_inv = false;  // RIL: CMD_TLBI_* range forms and TTL hints
  bool fwb = false;        // FWB: STE.S2FWB
  bool pps = false;        // PPS: PRI auto-responses carry the PASID regardless of PPAR
  unsigned bbml = 0;       // BBML
  // IDR5.
  unsigned oas = 0;            // output address bits (OAS)
  unsigned ias = 0;            // stage 2 input (IPA) bits: the OAS, as Linux sizes it
  unsigned va_bits = 48;       // stage 1 input bits: VAX 48, 52 or 56
  uint64_t pgsize_bitmap = 0;  // page and block sizes of the supported granules
  unsigned stall_max = 0;      // STALL_MAX
  // AIDR, IIDR.
  unsigned arch_minor = 0;  // SMMUv3.<arch_minor>
  uint32_t iidr = 0;
};

// Reads page 0's ID registers. -ENXIO for an SMMU the driver refuses (top comment), logged
// under `name`.
Result<ArmSmmuFeatures> arm_smmu_probe_features(const Mmio& page0, const char* name);

// The output address bits of an IDR5.OAS / STE.S2PS / CD.IPS encoding, 0 for Reserved.
unsigned arm_smmu_addr_size_bits(uint64_t encoding);

}  // namespace strata::arm_smmu_v3
