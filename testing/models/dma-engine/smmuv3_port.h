// SPDX-License-Identifier: MIT
// A DmaPort behind the SMMUv3 model: every transaction is translated (or bypassed, or
// terminated) by Smmuv3::dma_read/dma_write, which record the events the configuration asks
// for in the SMMU's Event queue.
#pragma once

#include "testing/models/dma-engine/dma_port.h"
#include "testing/models/smmuv3/smmuv3.h"

namespace strata::sim::dma_engine {

class Smmuv3DmaPort final : public DmaPort {
 public:
  // `smmu` must outlive the port.
  explicit Smmuv3DmaPort(smmuv3::Smmuv3& smmu) : smmu_(smmu) {}

  // A page terminated RAZ/WI (CD.A == 0) is not a failure: it reads as zeros and drops writes,
  // and the transfer goes on, as the SMMU says.
  DmaOutcome read(const DmaStream& stream, uint64_t addr, void* buf, size_t len) override;
  DmaOutcome write(const DmaStream& stream, uint64_t addr, const void* buf, size_t len) override;

 private:
  smmuv3::Smmuv3& smmu_;
};

}  // namespace strata::sim::dma_engine
