// SPDX-License-Identifier: MIT
#include "testing/models/platform/platform.h"

#include <fmt/core.h>

namespace strata::sim {

Result<std::unique_ptr<Platform>> Platform::create(const Config& config) {
  std::unique_ptr<Platform> p(new Platform);
  p->mem_ = STRATA_TRY(PhysMem::create({.ram = {{config.ram_base, config.ram_size}}}));
  p->dma_ = std::make_unique<SimDmaAllocator>(*p->mem_, config.dma_coherent);
  p->irq_ = STRATA_TRY(SimInterruptController::create(
      *p->mem_, {.lines = config.lines, .msi_doorbell = config.msi_doorbell}));
  return p;
}

Result<std::unique_ptr<Platform>> Platform::create() { return create(Config{}); }

std::string Platform::describe() const {
  return fmt::format(
      "{}dma: {}coherent, {} KiB pages up to order {}\nirq: {} wired lines, "
      "MSI doorbell at {:#x}\n",
      mem_->describe(), dma_->coherent() ? "" : "non-", kPageSize / 1024, dma_->max_order(),
      irq_->lines(), irq_->msi_doorbell());
}

}  // namespace strata::sim
