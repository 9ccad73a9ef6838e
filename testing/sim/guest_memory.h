// SPDX-License-Identifier: MIT
// A guest's RAM as its own OS sees it: a DmaAllocator over a range of host RAM that hands out
// guest-physical addresses. A "guest" running strata's io-pgtable and cd-lib over it builds
// stage-1 tables and CDs whose pointers are IPAs, exactly what the host's stage 2 must
// translate in a nested configuration.
#pragma once

#include <stdint.h>
#include <string.h>

#include <mutex>

#include "arch/dma.h"
#include "testing/models/platform/phys_mem.h"

namespace strata::sim {

class GuestMemory final : public DmaAllocator {
 public:
  // [hpa, hpa + size) of `mem`, seen by the guest at `gpa`.
  GuestMemory(PhysMem& mem, phys_addr_t hpa, phys_addr_t gpa, uint64_t size)
      : mem_(mem), hpa_(hpa), gpa_(gpa), size_(size) {}

  phys_addr_t hpa() const { return hpa_; }
  phys_addr_t gpa() const { return gpa_; }
  uint64_t size() const { return size_; }
  phys_addr_t to_hpa(phys_addr_t gpa) const { return gpa - gpa_ + hpa_; }

  // A bump allocator: freed memory is not reused.
  Result<DmaRegion> alloc(size_t size, size_t align) override {
    if (size == 0 || align == 0 || (align & (align - 1))) return Error(-EINVAL);
    std::lock_guard<std::mutex> g(mu_);
    const uint64_t off = (next_ + align - 1) & ~(uint64_t{align} - 1);
    if (off + size > size_) return Error(-ENOMEM);
    next_ = off + size;
    void* cpu = mem_.host_ptr(hpa_ + off, size);
    if (!cpu) return Error(-ENOMEM);
    memset(cpu, 0, size);
    return DmaRegion{.cpu = cpu, .phys = gpa_ + off, .size = size};
  }
  void free(const DmaRegion& region) override { (void)region; }
  bool coherent() const override { return true; }

 private:
  PhysMem& mem_;
  const phys_addr_t hpa_, gpa_;
  const uint64_t size_;
  std::mutex mu_;
  uint64_t next_ = 0;
};

}  // namespace strata::sim
