// SPDX-License-Identifier: MIT
// The simulator's demo (`strata-sim demo`): nested translation for a guest with an assigned
// device, on the simulated Arm system (arm_system.h: RAM, the SMMUv3 model with its
// stale-translation oracle armed, a DMA test engine, the arm-smmu-v3 driver and the iommu core).
//
// It does what a VMM does for VFIO/iommufd nesting and shows what the hardware sees at each step:
// the host claims the device's group and gives the guest a stage-2 (nest parent) domain over its
// RAM; the guest builds its stage-1 table and CD in that RAM (guest.h) and hands over its STE
// words; the host installs the nested STE; the engine copies through both stages; the guest
// unmaps and invalidates through the host; a DMA to the unmapped IOVA faults and the fault
// reaches the device's owner; a command a guest may not send is refused; the host takes a page
// back from stage 2 under the live stream; teardown. STEs, Command queue entries and Event queue
// records are read back from memory as the SMMU sees them; every claim the account makes is
// checked, and a failed check is marked in it and fails the demo.
#pragma once

#include <cstdint>
#include <string>

namespace strata::sim {

struct DemoReport {
  bool ok = false;         // every check held
  std::string transcript;  // the account, for a human
  // The SMMU model's counters at the end.
  uint64_t translations = 0;  // transactions translated (one per DMA page)
  uint64_t tlb_hits = 0;
  uint64_t tlb_misses = 0;
  uint64_t walks = 0;
  uint64_t tlb_invalidated = 0;  // TLB entries removed by CMD_TLBI_*
  uint64_t events = 0;           // event records written to the Event queue
  // Commands the model executed, by opcode (the driver's probe included).
  uint64_t cmd_cfgi_ste = 0;
  uint64_t cmd_tlbi_nh_asid = 0;
  uint64_t cmd_tlbi_nh_all = 0;
  uint64_t cmd_tlbi_s2_ipa = 0;
  uint64_t cmd_sync = 0;
  // Faults: those the driver reported to the core, those the device's handler received, and
  // guest commands cache_invalidate_user refused.
  uint64_t faults_reported = 0;
  uint64_t faults_delivered = 0;
  uint64_t guest_commands_refused = 0;
  // The oracle's reports of translations served from stale caches (must be 0).
  uint64_t stale_reports = 0;
};

DemoReport run_demo();

}  // namespace strata::sim
