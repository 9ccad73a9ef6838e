// SPDX-License-Identifier: MIT
// A device fault handler that keeps what the core hands it (what VFIO would queue for the
// VMM), for the end-to-end tests and the demo:
//
//   FaultLog log;
//   STRATA_TRY(iommu_register_device_fault_handler(dev, &FaultLog::handler, &log));
#pragma once

#include <mutex>
#include <utility>
#include <vector>

#include "core/fault.h"

namespace strata::sim {

struct FaultLog {
  std::mutex mu;
  std::vector<IommuFault> faults;

  static Result<void> handler(const IommuFault& f, void* data) {
    auto* log = static_cast<FaultLog*>(data);
    std::lock_guard<std::mutex> g(log->mu);
    log->faults.push_back(f);
    return {};
  }
  // The faults so far, oldest first; the log is empty afterwards.
  std::vector<IommuFault> take() {
    std::lock_guard<std::mutex> g(mu);
    return std::exchange(faults, {});
  }
};

}  // namespace strata::sim
