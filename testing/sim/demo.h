// SPDX-License-Identifier: MIT
// The simulator's demo: boots the simulated platform and exercises the hardware abstraction
// over it, writing a readable account. Later issues add the IOMMU models, the drivers and the
// nested-translation scenario to it.
#pragma once

#include <cstdint>
#include <string>

namespace strata::sim {

struct DemoReport {
  bool ok = false;         // every step behaved as the platform promises
  std::string transcript;  // what the demo did, for a human
  // Counters at the end, for tests.
  uint64_t dma_allocations = 0;
  uint64_t live_dma_allocations = 0;
  uint64_t interrupts_delivered = 0;
  uint64_t spurious_interrupts = 0;
  uint64_t bus_faults = 0;
};

DemoReport run_demo();

}  // namespace strata::sim
