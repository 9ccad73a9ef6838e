// SPDX-License-Identifier: MIT
#include "testing/models/platform/interrupt_controller.h"

#include <mutex>
#include <string>

#include <fmt/core.h>

#include "arch/port.h"

namespace strata::sim {
namespace {

[[noreturn]] void panic(const std::string& msg) { strata_os_panic(msg.c_str()); }

}  // namespace

Result<uint64_t> SimInterruptController::Doorbell::read(uint64_t, unsigned) {
  return uint64_t{0};  // write-only: reads as zero
}

Result<void> SimInterruptController::Doorbell::write(uint64_t offset, unsigned size,
                                                     uint64_t value) {
  // The register is 32 bits wide; a narrower write is not a message (external abort).
  if (offset != 0 || size != 4) return Error(-EFAULT);
  ic_.raise_msi(static_cast<uint32_t>(value));
  return ok();
}

SimInterruptController::SimInterruptController(PhysMem& mem, const Config& config)
    : mem_(mem), config_(config), lines_(new Slot[config.lines]) {}

Result<std::unique_ptr<SimInterruptController>> SimInterruptController::create(
    PhysMem& mem, const Config& config) {
  if (config.msi_vectors > kMaxMsiVectors || config.msi_doorbell % 4) return Error(-EINVAL);
  std::unique_ptr<SimInterruptController> ic(new SimInterruptController(mem, config));
  if (config.msi_vectors) {
    // Mapped once the controller has its final address: the window points back at it.
    STRATA_TRY(mem.map_window(config.msi_doorbell, 4, ic->doorbell_, "msi-doorbell"));
    ic->doorbell_mapped_ = true;
  }
  return ic;
}

Result<std::unique_ptr<SimInterruptController>> SimInterruptController::create(PhysMem& mem) {
  return create(mem, Config{});
}

SimInterruptController::~SimInterruptController() {
  if (doorbell_mapped_) mem_.unmap_window(config_.msi_doorbell);
}

Result<void> SimInterruptController::request_irq(unsigned line, IrqHandler handler, void* ctx) {
  if (line >= config_.lines || !handler) return Error(-EINVAL);
  std::unique_lock<std::shared_mutex> lock(lock_);
  Slot& slot = lines_[line];
  if (slot.handler) return Error(-EBUSY);
  slot.handler = handler;
  slot.ctx = ctx;
  return ok();
}

void SimInterruptController::free_irq(unsigned line) {
  std::unique_lock<std::shared_mutex> lock(lock_);
  if (line >= config_.lines || !lines_[line].handler)
    panic(fmt::format("sim: free_irq({}): line not requested", line));
  lines_[line].handler = nullptr;
  lines_[line].ctx = nullptr;
}

Result<MsiMsg> SimInterruptController::alloc_msi(IrqHandler handler, void* ctx) {
  if (!config_.msi_vectors) return Error(-EOPNOTSUPP);
  if (!handler) return Error(-EINVAL);
  std::unique_lock<std::shared_mutex> lock(lock_);
  for (uint32_t vector = 0; vector < config_.msi_vectors; ++vector) {
    Slot& slot = msi_[vector];
    if (slot.handler) continue;
    slot.handler = handler;
    slot.ctx = ctx;
    return MsiMsg{config_.msi_doorbell, vector};
  }
  return Error(-ENOSPC);
}

void SimInterruptController::free_msi(const MsiMsg& msg) {
  std::unique_lock<std::shared_mutex> lock(lock_);
  if (!config_.msi_vectors || msg.address != config_.msi_doorbell ||
      msg.data >= config_.msi_vectors || !msi_[msg.data].handler)
    panic(fmt::format("sim: free_msi({:#x}, {}): vector not allocated", msg.address, msg.data));
  msi_[msg.data].handler = nullptr;
  msi_[msg.data].ctx = nullptr;
}

void SimInterruptController::dispatch(Slot& slot) {
  std::shared_lock<std::shared_mutex> lock(lock_);
  if (!slot.handler) {
    spurious_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  slot.delivered.fetch_add(1, std::memory_order_relaxed);
  slot.handler(slot.ctx);
}

void SimInterruptController::raise(unsigned line) {
  if (line >= config_.lines) panic(fmt::format("sim: raise({}): no such line", line));
  dispatch(lines_[line]);
}

void SimInterruptController::raise_msi(uint32_t data) {
  if (data >= config_.msi_vectors) {
    spurious_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  dispatch(msi_[data]);
}

uint64_t SimInterruptController::delivered(unsigned line) const {
  return line < config_.lines ? lines_[line].delivered.load(std::memory_order_relaxed) : 0;
}

uint64_t SimInterruptController::msi_delivered(uint32_t vector) const {
  return vector < config_.msi_vectors ? msi_[vector].delivered.load(std::memory_order_relaxed) : 0;
}

}  // namespace strata::sim
