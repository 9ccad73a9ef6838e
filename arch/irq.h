// SPDX-License-Identifier: MIT
// Interrupt hook-up: wired lines and MSIs.
//
// A driver connects a handler to a wired line (SMMUv3 "eventq"/"gerror" SPIs) or allocates an
// MSI: a message (doorbell address + data) that it programs into the device's IRQ_CFG
// registers, and that raises the handler when the device writes it. The platform implements
// InterruptController; Irq owns one registration.
#pragma once

#include <stdint.h>

#include <utility>

#include "arch/result.h"

namespace strata {

// Runs in the OS's interrupt context: must not sleep.
using IrqHandler = void (*)(void* ctx);

// What the device writes to raise an MSI (Linux's struct msi_msg).
struct MsiMsg {
  uint64_t address = 0;
  uint32_t data = 0;
};

class InterruptController {
 public:
  // -EINVAL for a line that does not exist, -EBUSY for one already taken.
  virtual Result<void> request_irq(unsigned line, IrqHandler handler, void* ctx) = 0;
  // When it returns, no call of the line's handler is running or will start.
  virtual void free_irq(unsigned line) = 0;
  // -ENOSPC when no vector is left; -EOPNOTSUPP without MSI support.
  virtual Result<MsiMsg> alloc_msi(IrqHandler handler, void* ctx) = 0;
  // As free_irq, for the vector `msg` raises.
  virtual void free_msi(const MsiMsg& msg) = 0;

 protected:
  ~InterruptController() = default;  // never owned through this interface
};

// One connected handler; disconnects it on destruction.
class Irq {
 public:
  Irq() = default;
  static Result<Irq> request(InterruptController& ic, unsigned line, IrqHandler handler, void* ctx);
  static Result<Irq> request_msi(InterruptController& ic, IrqHandler handler, void* ctx);

  Irq(Irq&& o) : ic_(std::exchange(o.ic_, nullptr)), line_(o.line_), msi_(o.msi_), msg_(o.msg_) {}
  Irq& operator=(Irq&& o) {
    if (this != &o) {
      reset();
      ic_ = std::exchange(o.ic_, nullptr);
      line_ = o.line_;
      msi_ = o.msi_;
      msg_ = o.msg_;
    }
    return *this;
  }
  Irq(const Irq&) = delete;
  Irq& operator=(const Irq&) = delete;
  ~Irq() { reset(); }

  void reset();
  explicit operator bool() const { return ic_ != nullptr; }
  bool is_msi() const { return msi_; }
  // The message to program into the device; only for an MSI.
  const MsiMsg& msi_msg() const;

 private:
  InterruptController* ic_ = nullptr;
  unsigned line_ = 0;
  bool msi_ = false;
  MsiMsg msg_;
};

}  // namespace strata
