// SPDX-License-Identifier: MIT
// The DMA test engine's register block (regs.h) as data over sim::RegisterFile: reset values,
// writable, write-one-to-clear and write-only bits, and the CMD doorbell hook.
#pragma once

#include <stdint.h>

#include <functional>
#include <string>

#include "testing/models/dma-engine/regs.h"
#include "testing/models/regs/register_file.h"

namespace strata::sim::dma_engine {

class EngineRegisters final : public RegisterFile {
 public:
  // Called on the writing thread after a guest write of CMD has been stored (RegisterFile's
  // hook rules: no lock held), with the OP written.
  using Doorbell = std::function<void(uint32_t op)>;

  // `wired` says whether a completion line is connected (IDR1.WIRED).
  EngineRegisters(std::string name, uint32_t stream_id, bool wired, Doorbell doorbell);
};

}  // namespace strata::sim::dma_engine
