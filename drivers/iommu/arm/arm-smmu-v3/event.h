// SPDX-License-Identifier: MIT
// Event queue records decoded (IHI 0070 7.3), and turned into the core's fault reports.
//
// Which events are faults of a device's DMA, and so reported through
// iommu_report_device_fault() as IOMMU_FAULT_DMA_UNRECOV (the reason mapping of the
// virtio-iommu / VFIO nesting series, so a VMM can forward them to a guest's vSMMU):
//   F_TRANSLATION   -> PTE_FETCH         F_ADDR_SIZE  -> OOR_ADDRESS
//   F_ACCESS        -> ACCESS            F_PERMISSION -> PERMISSION
//   F_WALK_EABT     -> WALK_EABT         F_CD_FETCH   -> PASID_FETCH
//   C_BAD_CD        -> BAD_PASID_ENTRY   C_BAD_SUBSTREAMID -> PASID_INVALID
//   F_STREAM_DISABLED, F_TRANSL_FORBIDDEN, F_BAD_ATS_TREQ, F_UUT -> UNKNOWN
// The rest (C_BAD_STREAMID, C_BAD_STE, F_STE_FETCH, conflicts, IMPLEMENTATION DEFINED events)
// are the host's own configuration problems: logged, never handed to a device's handler.
#pragma once

#include <stdint.h>

#include "arch/smmuv3/event.h"
#include "core/fault.h"

namespace strata::arm_smmu_v3 {

struct ArmSmmuEvent {
  uint8_t id = 0;  // the event number (smmuv3::EventType or IMPLEMENTATION DEFINED)
  uint32_t sid = 0;
  bool ssv = false;
  uint32_t ssid = 0;
  // Translation faults and F_WALK_EABT (7.3.12-16); F_UUT has the attributes and InputAddr.
  bool has_addr = false;
  uint64_t addr = 0;    // InputAddr
  bool read = false;    // RnW
  bool instr = false;   // InD
  bool priv = false;    // PnU
  bool stage2 = false;  // S2
  unsigned cls = 0;     // CLASS (kClass*)
  bool stall = false;   // Stall, with STAG
  uint16_t stag = 0;
  bool has_ipa = false;  // a stage 2 translation fault: IPA [55:12]
  uint64_t ipa = 0;
  bool has_fetch_addr = false;  // F_WALK_EABT, F_STE_FETCH, F_CD_FETCH: the PA fetched
  uint64_t fetch_addr = 0;
};

// Decodes the four words of an Event queue record (CPU byte order).
ArmSmmuEvent arm_smmu_decode_event(const uint64_t* words);

// Whether `e` is reported against the device (top comment) and, if so, the report.
bool arm_smmu_event_to_fault(const ArmSmmuEvent& e, IommuFault& fault);

}  // namespace strata::arm_smmu_v3
