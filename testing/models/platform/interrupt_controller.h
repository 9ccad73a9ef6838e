// SPDX-License-Identifier: MIT
// The simulated machine's interrupt controller: wired lines and an MSI doorbell.
//
// What it implements: arch/irq.h's InterruptController. Wired lines are edge-triggered: a device
// model calls raise(line) and the handler runs synchronously on the model's thread. MSIs work
// as with a GICv2m frame or an ITS translater: a 32-bit write of the vector number to the
// doorbell, by any bus master through PhysMem, raises that vector. An interrupt with no handler
// connected is counted as spurious and dropped.
//
// What it does not: priorities, masking, pending state, affinity, level-triggered lines or
// interrupt remapping. A raise with no handler is lost, not held until one connects.
#pragma once

#include <stdint.h>

#include <array>
#include <atomic>
#include <memory>
#include <shared_mutex>

#include "arch/irq.h"
#include "testing/models/platform/phys_mem.h"

namespace strata::sim {

class SimInterruptController final : public InterruptController {
 public:
  static constexpr unsigned kMaxMsiVectors = 64;

  struct Config {
    unsigned lines = 64;  // wired lines 0..lines-1
    // MSI vectors 0..msi_vectors-1, at most kMaxMsiVectors; 0 means no MSI support.
    unsigned msi_vectors = kMaxMsiVectors;
    phys_addr_t msi_doorbell = 0x0800'0000;  // a 4-byte window, 4-byte aligned
  };

  // Maps the doorbell into `mem`, which must outlive the controller. -EINVAL for a bad config,
  // -EBUSY when the doorbell overlaps RAM or another window.
  static Result<std::unique_ptr<SimInterruptController>> create(PhysMem& mem, const Config& config);
  static Result<std::unique_ptr<SimInterruptController>> create(PhysMem& mem);
  // Unmaps the doorbell (waiting for doorbell writes in flight). Handlers still connected are
  // simply forgotten; by then nothing may raise a wired line.
  ~SimInterruptController();
  SimInterruptController(const SimInterruptController&) = delete;
  SimInterruptController& operator=(const SimInterruptController&) = delete;

  // Handler rules: a handler must not free its own line or vector, as free waits for it to
  // return; and it must not synchronously raise another interrupt on this controller (a
  // nested shared lock of std::shared_mutex is undefined, and blocks behind a waiting free on
  // writer-preferring implementations). Freeing a line or vector that is not connected is a
  // driver bug: panics.
  Result<void> request_irq(unsigned line, IrqHandler handler, void* ctx) override;
  void free_irq(unsigned line) override;
  Result<MsiMsg> alloc_msi(IrqHandler handler, void* ctx) override;
  void free_msi(const MsiMsg& msg) override;

  // For device models: an edge on a wired line. A line that does not exist is a model bug:
  // panics.
  void raise(unsigned line);
  // What a doorbell write of `data` does; a vector that does not exist or is not allocated is
  // spurious (the data came from whatever the driver programmed into the device).
  void raise_msi(uint32_t data);

  // Handler calls since creation, per wired line and per MSI vector; 0 for one that does not
  // exist.
  uint64_t delivered(unsigned line) const;
  uint64_t msi_delivered(uint32_t vector) const;
  // Interrupts dropped for want of a handler.
  uint64_t spurious() const { return spurious_.load(std::memory_order_relaxed); }

  unsigned lines() const { return config_.lines; }
  phys_addr_t msi_doorbell() const { return config_.msi_doorbell; }

 private:
  // The doorbell register (GICv2m's MSI_SETSPI_NS): write-only, 32 bits, at offset 0.
  class Doorbell final : public WindowHandler {
   public:
    explicit Doorbell(SimInterruptController& ic) : ic_(ic) {}
    Result<uint64_t> read(uint64_t offset, unsigned size) override;
    Result<void> write(uint64_t offset, unsigned size, uint64_t value) override;

   private:
    SimInterruptController& ic_;
  };

  struct Slot {
    // Written under the exclusive lock, read under the shared one.
    IrqHandler handler = nullptr;
    void* ctx = nullptr;
    // Bumped by concurrent dispatches, all holding the lock shared.
    std::atomic<uint64_t> delivered{0};
  };

  SimInterruptController(PhysMem& mem, const Config& config);
  // Calls the slot's handler, or counts a spurious interrupt.
  void dispatch(Slot& slot);

  PhysMem& mem_;
  const Config config_;
  Doorbell doorbell_{*this};
  bool doorbell_mapped_ = false;

  // Dispatch holds it shared for the handler call; request and free hold it exclusive, so
  // when free returns every call that saw the old handler has finished and no new one can
  // see it.
  mutable std::shared_mutex lock_;
  std::unique_ptr<Slot[]> lines_;
  std::array<Slot, kMaxMsiVectors> msi_;
  std::atomic<uint64_t> spurious_{0};
};

}  // namespace strata::sim
