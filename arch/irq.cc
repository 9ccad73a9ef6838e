// SPDX-License-Identifier: MIT
#include "arch/irq.h"

#include "arch/bug.h"

namespace strata {

Result<Irq> Irq::request(InterruptController& ic, unsigned line, IrqHandler handler, void* ctx) {
  STRATA_TRY(ic.request_irq(line, handler, ctx));
  Irq irq;
  irq.ic_ = &ic;
  irq.line_ = line;
  return irq;
}

Result<Irq> Irq::request_msi(InterruptController& ic, IrqHandler handler, void* ctx) {
  MsiMsg msg = STRATA_TRY(ic.alloc_msi(handler, ctx));
  Irq irq;
  irq.ic_ = &ic;
  irq.msi_ = true;
  irq.msg_ = msg;
  return irq;
}

void Irq::reset() {
  InterruptController* ic = std::exchange(ic_, nullptr);
  if (!ic) return;
  if (msi_)
    ic->free_msi(msg_);
  else
    ic->free_irq(line_);
}

const MsiMsg& Irq::msi_msg() const {
  STRATA_BUG_ON(!msi_);
  return msg_;
}

}  // namespace strata
