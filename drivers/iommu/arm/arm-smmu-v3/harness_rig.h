// SPDX-License-Identifier: MIT
// The driver tests' rig for suites that build the SMMU's structures by hand with the model's own
// harness (smmuv3_harness.h's Machine: STEs, CDs, translation tables and queues at fixed
// addresses, deliberately not the driver's code), which brings its own machine and model; the
// bounded waits are model_rig.h's. Not to be included with queue_harness.h, whose names clash.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <chrono>
#include <mutex>

#include <doctest/doctest.h>

#include "arch/dma.h"
#include "arch/smmuv3/regs.h"
#include "drivers/iommu/arm/arm-smmu-v3/model_rig.h"
#include "testing/models/smmuv3/smmuv3_harness.h"

namespace strata::arm_smmu_v3::test {

// DMA memory for the driver's structures from the upper half of the Machine's RAM: the harness
// keeps its queues and hand-built structures at fixed addresses below +128 MiB. Handed out in
// order and never reused; a rig lives for one scenario. (The platform's allocator would do, if
// the harness's range were first taken from it: zeroing 128 MiB per rig made the suites slow.)
class HarnessDma final : public DmaAllocator {
 public:
  explicit HarnessDma(sim::PhysMem& mem) : mem_(mem) {}
  Result<DmaRegion> alloc(size_t size, size_t align) override {
    std::lock_guard<std::mutex> g(mu_);
    const phys_addr_t pa = (next_ + align - 1) & ~(phys_addr_t{align} - 1);
    if (size == 0 || pa + size > kEnd) return Error(-ENOMEM);
    next_ = pa + size;
    void* cpu = mem_.host_ptr(pa, size);
    memset(cpu, 0, size);
    return DmaRegion{cpu, pa, size};
  }
  void free(const DmaRegion&) override {}
  bool coherent() const override { return true; }

 private:
  static constexpr phys_addr_t kBase = sim::smmuv3::test::kRamBase;
  static constexpr phys_addr_t kEnd = kBase + sim::smmuv3::test::kRamSize;
  sim::PhysMem& mem_;
  std::mutex mu_;
  phys_addr_t next_ = kBase + (uint64_t{128} << 20);
};

// The model harness's Machine, with the driver code under test beside the hand-built structures:
// its DMA memory, invalidations through the harness's Command queue, and the model's
// stale-translation oracle (on in the Machine) read out.
class HarnessRig {
 public:
  using Machine = sim::smmuv3::test::Machine;

  explicit HarnessRig(Threading threading)
      : m(Machine::Setup{.threading = threading}), dma_(m.mem()) {}
  ~HarnessRig() { teardown(); }

  DmaAllocator& dma() { return dma_; }

  // Ends the commands put on the harness's Command queue (Machine::put_cmd) with a CMD_SYNC,
  // rings, and waits for the SMMU to consume them, as a driver waits for its CMD_SYNC: -EIO for
  // a command error (GERROR.CMDQ_ERR), -ETIMEDOUT after `timeout`.
  Result<void> issue_sync(std::chrono::milliseconds timeout = kTimeout) {
    m.put_cmd(sim::smmuv3::test::sync_cmd());
    m.writel(m.prod, hw::CMDQ_PROD::kOffset);
    const bool consumed = wait_until(
        [&] {
          return hw::queue_empty(m.prod, m.readl(hw::CMDQ_CONS::kOffset), Machine::kQs) ||
                 cmdq_err();
        },
        model_step(m.model(), m.threading), timeout);
    if (cmdq_err()) return Error(-EIO);
    if (!consumed) return Error(-ETIMEDOUT);
    return ok();
  }

  // Whether the oracle reported a stale translation since the last call (and forgets them).
  bool stale_reported() {
    const bool any = !m.model().stale_reports().empty();
    m.model().clear_stale_reports();
    return any;
  }

  // Stops the SMMU (CR0 = 0) before the memory it reads goes: a rig that owns such memory calls
  // this first in its destructor; calling it again is harmless.
  void teardown() { CHECK(m.write_cr0(0)); }

  Machine m;

 private:
  bool cmdq_err() const { return (m.gerror_active() & hw::GERROR::CMDQ_ERR::kMask) != 0; }

  HarnessDma dma_;
};

}  // namespace strata::arm_smmu_v3::test
