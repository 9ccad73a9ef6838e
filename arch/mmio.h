// SPDX-License-Identifier: MIT
// Register access: 32- and 64-bit reads and writes at offsets of a register block.
//
// One concrete class with two backends (Documentation/arch.md, "Why one Mmio class"):
//  - real: volatile single-instruction accesses through arch/<cpu>/io.h;
//  - model: every access is a call into a RegisterModel (testing/models), which implements the
//    register semantics (read side effects, write-one-to-clear, read-only fields, doorbells).
// The choice is a predictable branch on one pointer: drivers stay non-templated and their hot
// paths (command submission, queue polling) non-virtual on real hardware, where the branch
// costs nothing next to an uncached access. Over a model the ordered forms issue the same
// barriers as on hardware, so driver code sees identical ordering rules.
//
// Ordering follows Linux's names:
//  readl/readq    later normal-memory reads (a DMA buffer) happen after the register read
//  writel/writeq  earlier normal-memory writes (a queue entry) are visible before the write
//  *_relaxed      ordered only against other accesses to the same device
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "arch/bug.h"
#include "arch/cpu.h"

namespace strata {

// The model backend's target. Offsets are relative to the model's block and aligned to `size`
// (4 or 8); Mmio has checked both before calling.
class RegisterModel {
 public:
  virtual uint64_t mmio_read(uint64_t offset, unsigned size) = 0;
  virtual void mmio_write(uint64_t offset, uint64_t value, unsigned size) = 0;

 protected:
  ~RegisterModel() = default;  // never owned through this interface
};

class Mmio {
 public:
  Mmio() = default;

  // A mapped register block of `size` bytes (the OS did the mapping, Device-nGnRE / UC).
  static Mmio real(volatile void* base, size_t size) {
    Mmio io;
    io.base_ = static_cast<volatile uint8_t*>(base);
    io.size_ = size;
    return io;
  }
  // The first `size` bytes of a model's register block.
  static Mmio model(RegisterModel& model, size_t size) {
    Mmio io;
    io.model_ = &model;
    io.size_ = size;
    return io;
  }

  // A sub-block, e.g. SMMUv3 register page 1 at 0x10000.
  Mmio window(size_t offset, size_t size) const {
    STRATA_BUG_ON(offset > size_ || size > size_ - offset);
    Mmio io = *this;
    if (base_) io.base_ = base_ + offset;
    io.model_offset_ = model_offset_ + offset;
    io.size_ = size;
    return io;
  }

  size_t size() const { return size_; }
  bool is_model() const { return model_ != nullptr; }

  uint32_t readl(size_t off) const {
    check(off, 4);
    if (model_) {
      uint32_t v = static_cast<uint32_t>(model_->mmio_read(model_offset_ + off, 4));
      dma_rmb();
      return v;
    }
    return raw_readl(base_ + off);
  }
  uint32_t readl_relaxed(size_t off) const {
    check(off, 4);
    if (model_) return static_cast<uint32_t>(model_->mmio_read(model_offset_ + off, 4));
    return raw_readl_relaxed(base_ + off);
  }
  uint64_t readq(size_t off) const {
    check(off, 8);
    if (model_) {
      uint64_t v = model_->mmio_read(model_offset_ + off, 8);
      dma_rmb();
      return v;
    }
    return raw_readq(base_ + off);
  }
  uint64_t readq_relaxed(size_t off) const {
    check(off, 8);
    if (model_) return model_->mmio_read(model_offset_ + off, 8);
    return raw_readq_relaxed(base_ + off);
  }

  void writel(uint32_t v, size_t off) const {
    check(off, 4);
    if (model_) {
      dma_wmb();
      model_->mmio_write(model_offset_ + off, v, 4);
      return;
    }
    raw_writel(v, base_ + off);
  }
  void writel_relaxed(uint32_t v, size_t off) const {
    check(off, 4);
    if (model_) return model_->mmio_write(model_offset_ + off, v, 4);
    raw_writel_relaxed(v, base_ + off);
  }
  void writeq(uint64_t v, size_t off) const {
    check(off, 8);
    if (model_) {
      dma_wmb();
      model_->mmio_write(model_offset_ + off, v, 8);
      return;
    }
    raw_writeq(v, base_ + off);
  }
  void writeq_relaxed(uint64_t v, size_t off) const {
    check(off, 8);
    if (model_) return model_->mmio_write(model_offset_ + off, v, 8);
    raw_writeq_relaxed(v, base_ + off);
  }

 private:
  // A misaligned or out-of-block offset is a driver bug: real hardware would take an external
  // abort or silently hit a neighbouring register.
  void check(size_t off, size_t width) const {
    STRATA_BUG_ON((off & (width - 1)) != 0 || off > size_ || width > size_ - off);
  }

  volatile uint8_t* base_ = nullptr;
  RegisterModel* model_ = nullptr;
  uint64_t model_offset_ = 0;  // this window's offset in the model's block
  size_t size_ = 0;
};

}  // namespace strata
