// SPDX-License-Identifier: MIT
// Arm SMMUv3 encodings shared by the registers and the in-memory structures (Arm IHI 0070,
// "SMMU architecture version 3", issue with SMMUv3.4 / RME / D128; section numbers below are
// that issue's). The other headers of this package hold one block each:
//
//   regs.h   the programming interface: register pages 0 and 1 (chapter 6), queue indexes
//   ste.h    the Stream table: STE and L1STD (5.1, 5.2)
//   cd.h     Context descriptors: CD and L1CD (5.3, 5.4)
//   cmd.h    commands (chapter 4) and command errors (7.1)
//   event.h  event records (7.3) and PRI queue records (chapter 8)
//
// Shared definitions only. The arm-smmu-v3 driver builds structures and commands from them and
// the SMMUv3 model decodes them with its own code; every offset, position and encoding is pinned
// by the *_test.cc golden tests beside them, typed in from the specification. The definitions
// follow the newest issue (56-bit addresses, D128, MPAM, RME fields): an older SMMU treats the
// extra bits as RES0, which is the model's check to make, not a reason to hide the field.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace strata::smmuv3 {

// Address sizes as SMMU_IDR5.OAS (6.3.6), CD.IPS (5.4) and STE.S2PS (5.2) encode them.
// 0b110 (52 bits) is Reserved in SMMUv3.0, 0b111 (56 bits) before SMMUv3.4.
inline constexpr uint64_t kAddrSize32 = 0b000, kAddrSize36 = 0b001, kAddrSize40 = 0b010,
                          kAddrSize42 = 0b011, kAddrSize44 = 0b100, kAddrSize48 = 0b101,
                          kAddrSize52 = 0b110, kAddrSize56 = 0b111;

// The number of address bits an OAS/IPS/S2PS encoding selects (0 for a value that does not fit
// the 3-bit field).
constexpr unsigned address_size_bits(uint64_t enc) {
  constexpr unsigned kBits[8] = {32, 36, 40, 42, 44, 48, 52, 56};
  return enc < 8 ? kBits[enc] : 0;
}

// Shareability: STE.S1CSH/S2SH0 (5.2), CD.SH0/SH1 (5.4), SMMU_CR1.*_SH (6.3.11),
// SMMU_*_IRQ_CFG2.SH (6.3.23), CMD_SYNC.MSH (4.7.3). 0b01 is Reserved (behaves as 0b00).
inline constexpr uint64_t kShNsh = 0b00, kShOsh = 0b10, kShIsh = 0b11;

// Translation table walk cacheability: CD.IR0/OR0/IR1/OR1 (5.4), STE.S2IR0/S2OR0 (5.2).
// Not the CR1 encoding (regs.h): here 0b01 and 0b11 are both Write-Back.
inline constexpr uint64_t kWalkNc = 0b00;      // Non-cacheable
inline constexpr uint64_t kWalkWbRaWa = 0b01;  // Write-Back, read- and write-allocate
inline constexpr uint64_t kWalkWtRa = 0b10;    // Write-Through, read-allocate
inline constexpr uint64_t kWalkWbRa = 0b11;    // Write-Back, read-allocate, no write-allocate

// Memory types as STE.MemAttr (5.2), SMMU_GBPA.MemAttr (6.3.14), SMMU_*_IRQ_CFG2.MemAttr and
// CMD_SYNC.MSIAttr encode them: the VMSAv8-64 stage-2 MemAttr[3:0] encoding.
inline constexpr uint64_t kMemAttrDeviceNGnRE = 0b0001;  // Device-nGnRE
inline constexpr uint64_t kMemAttrNormalWb = 0b1111;     // Normal, inner and outer Write-Back

// Attribute overrides for bypassing or incoming traffic: STE.{SHCFG, PRIVCFG, INSTCFG} (5.2)
// and SMMU_GBPA (6.3.14). 0b01 of PRIVCFG/INSTCFG is Reserved (behaves as "use incoming").
inline constexpr uint64_t kShcfgNsh = 0b00, kShcfgIncoming = 0b01, kShcfgOsh = 0b10,
                          kShcfgIsh = 0b11;
inline constexpr uint64_t kPrivcfgIncoming = 0b00, kPrivcfgUnpriv = 0b10, kPrivcfgPriv = 0b11;
inline constexpr uint64_t kInstcfgIncoming = 0b00, kInstcfgData = 0b10, kInstcfgInstr = 0b11;

// The same words viewed as another structure of the same size: a command or an event record is
// read as its common header first, then as the layout its opcode or event number selects.
template <typename To, typename From>
requires(To::kWords == From::kWords) constexpr To descriptor_cast(const From& from) {
  To to;
  for (size_t i = 0; i < To::kWords; i++) to.data[i] = from.data[i];
  return to;
}

}  // namespace strata::smmuv3
