// SPDX-License-Identifier: MIT
// Memory a device reads and writes: the IOMMU's own stream tables, queues, page tables.
//
// DMA memory is a per-device service (Linux's dma_alloc_coherent(dev, ...)): whether the device
// snoops CPU caches, which physical addresses it can reach and, over the simulator, which
// machine's RAM it lives in all belong to the device. So it is an object the OS or platform
// hands to a driver, not a global. Every allocation has a CPU view and a physical address;
// DmaBuffer owns one.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <utility>

#include "arch/bug.h"
#include "arch/cpu.h"
#include "arch/endian.h"
#include "arch/result.h"

namespace strata {

using phys_addr_t = uint64_t;

struct DmaRegion {
  void* cpu = nullptr;   // the CPU's view
  phys_addr_t phys = 0;  // what the device is given
  size_t size = 0;
};

class DmaAllocator {
 public:
  // `size` bytes of zeroed, physically contiguous memory whose physical address is aligned to
  // `align` (a power of two; tables need up to their own size). -EINVAL for size 0 or a bad
  // alignment, -ENOMEM when none is left.
  virtual Result<DmaRegion> alloc(size_t size, size_t align) = 0;
  virtual void free(const DmaRegion& region) = 0;

  // Whether the device's accesses snoop CPU caches (SMMUv3 IDR0.COHACC, VT-d ECAP.C).
  virtual bool coherent() const = 0;
  // After the CPU writes memory the device will read: for a non-coherent device, clean the
  // lines to memory. Before the CPU reads what the device wrote: drop stale lines. The
  // defaults use the CPU's cache maintenance when !coherent() and do nothing otherwise.
  //
  // Defined here, not in dma.cc: an interface that others implement must have no out-of-line
  // virtual function (a "key function"), or its typeinfo would be emitted only by strata's
  // -fno-rtti objects, and an implementation compiled with RTTI would fail to link.
  virtual void sync_for_device(const DmaRegion& region, size_t offset, size_t len) {
    STRATA_BUG_ON(offset > region.size || len > region.size - offset);
    if (!coherent()) dcache_clean_range(static_cast<char*>(region.cpu) + offset, len);
  }
  virtual void sync_for_cpu(const DmaRegion& region, size_t offset, size_t len) {
    STRATA_BUG_ON(offset > region.size || len > region.size - offset);
    if (!coherent()) dcache_inval_range(static_cast<char*>(region.cpu) + offset, len);
  }

 protected:
  ~DmaAllocator() = default;  // never owned through this interface
};

// Sole owner of one DMA allocation; frees it on destruction. The hardware must have stopped
// using the memory before then (the owner's teardown order says how).
class DmaBuffer {
 public:
  DmaBuffer() = default;
  static Result<DmaBuffer> alloc(DmaAllocator& allocator, size_t size, size_t align);

  DmaBuffer(DmaBuffer&& o)
      : allocator_(std::exchange(o.allocator_, nullptr)), region_(std::exchange(o.region_, {})) {}
  DmaBuffer& operator=(DmaBuffer&& o) {
    if (this != &o) {
      reset();
      allocator_ = std::exchange(o.allocator_, nullptr);
      region_ = std::exchange(o.region_, {});
    }
    return *this;
  }
  DmaBuffer(const DmaBuffer&) = delete;
  DmaBuffer& operator=(const DmaBuffer&) = delete;
  ~DmaBuffer() { reset(); }

  void reset();

  explicit operator bool() const { return allocator_ != nullptr; }
  void* cpu() const { return region_.cpu; }
  phys_addr_t phys() const { return region_.phys; }
  size_t size() const { return region_.size; }
  const DmaRegion& region() const { return region_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(region_.cpu);
  }

  void sync_for_device(size_t offset, size_t len) const;
  void sync_for_cpu(size_t offset, size_t len) const;

 private:
  DmaAllocator* allocator_ = nullptr;
  DmaRegion region_;
};

// Hardware structures are read in 64-bit single-copy-atomic units (SMMUv3 STEs and CDs,
// VT-d entries, page-table descriptors): a live entry is changed one whole 64-bit store at a
// time, so the hardware sees each word old or new, never torn. The accessors are relaxed
// atomics: one instruction each, and visible as atomic to a model reading concurrently.
inline void dma_write64(void* p, uint64_t v) {
  __atomic_store_n(static_cast<uint64_t*>(p), cpu_to_le64(v), __ATOMIC_RELAXED);
}
inline uint64_t dma_read64(const void* p) {
  return le64_to_cpu(__atomic_load_n(static_cast<const uint64_t*>(p), __ATOMIC_RELAXED));
}

}  // namespace strata
