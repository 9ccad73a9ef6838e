// SPDX-License-Identifier: MIT
// A PCIe function with ATS (and, unless told otherwise, PRI) behind the ArmSystem's SMMU,
// beside the platform's engines: the Device the core probes and the model endpoint with its ATC
// (sim_ats_device.h) at the same StreamID. Not probed: the test calls iommu_probe_device.
#pragma once

#include <stdint.h>

#include "core/device.h"
#include "testing/models/smmuv3/sim_ats_device.h"
#include "testing/sim/arm_system.h"

namespace strata::sim {

struct AtsFunction {
  static constexpr uint32_t kSid = 0x100;
  PciDev pci{.bus = 1, .devfn = 0};
  Device dev;
  smmuv3::SimAtsDevice ep;

  // `pri`: what firmware says of the function's PRI (DeviceDesc::pri).
  explicit AtsFunction(ArmSystem& sys, bool pri = true)
      : dev(DeviceDesc{.name = "ats-fn",
                       .fwspec = {.iommu = &sys.smmu(), .ids = {kSid}, .num_ids = 1},
                       .pci = &pci,
                       .ats = true,
                       .pri = pri}),
        ep(sys.model(), kSid) {}
};

}  // namespace strata::sim
