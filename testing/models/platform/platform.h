// SPDX-License-Identifier: MIT
// The simulated machine: physical memory, DMA memory for drivers, and the interrupt controller.
//
// The default machine has 1 GiB of RAM at 0x4000_0000, 64 wired lines and an MSI doorbell at
// 0x0800_0000. Device models (IOMMUs, PCI devices) attach to mem() and irq(); the drivers under
// test get dma() and irq() as their DmaAllocator and InterruptController.
#pragma once

#include <stdint.h>

#include <memory>
#include <string>

#include "testing/models/platform/dma_allocator.h"
#include "testing/models/platform/interrupt_controller.h"
#include "testing/models/platform/phys_mem.h"

namespace strata::sim {

class Platform {
 public:
  struct Config {
    phys_addr_t ram_base = 0x4000'0000;
    uint64_t ram_size = uint64_t{1} << 30;
    unsigned lines = 64;
    phys_addr_t msi_doorbell = 0x0800'0000;
    bool dma_coherent = true;
  };

  // Errors from PhysMem::create and SimInterruptController::create (-EINVAL, -ENOMEM, -EBUSY).
  static Result<std::unique_ptr<Platform>> create(const Config& config);
  static Result<std::unique_ptr<Platform>> create();
  Platform(const Platform&) = delete;
  Platform& operator=(const Platform&) = delete;

  PhysMem& mem() { return *mem_; }
  SimDmaAllocator& dma() { return *dma_; }
  SimInterruptController& irq() { return *irq_; }

  std::string describe() const;

 private:
  Platform() = default;

  // Declared in the order they are built, so destroyed in reverse: the interrupt controller
  // first, which unmaps its doorbell window from mem_ and waits out MSI writes in flight; then
  // the allocator, which only refers to mem_; mem_, which unmaps the RAM, last. Device models
  // and drivers using the platform must be gone before it is.
  std::unique_ptr<PhysMem> mem_;
  std::unique_ptr<SimDmaAllocator> dma_;
  std::unique_ptr<SimInterruptController> irq_;
};

}  // namespace strata::sim
