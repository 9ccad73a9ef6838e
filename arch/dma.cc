// SPDX-License-Identifier: MIT
#include "arch/dma.h"

#include "arch/bug.h"

namespace strata {

Result<DmaBuffer> DmaBuffer::alloc(DmaAllocator& allocator, size_t size, size_t align) {
  DmaRegion region = STRATA_TRY(allocator.alloc(size, align));
  // An allocator that breaks its own contract would corrupt whatever the device walks next.
  STRATA_BUG_ON(region.size < size || (region.phys & (align - 1)) != 0 || !region.cpu);
  DmaBuffer buf;
  buf.allocator_ = &allocator;
  buf.region_ = region;
  return buf;
}

void DmaBuffer::reset() {
  if (allocator_) std::exchange(allocator_, nullptr)->free(std::exchange(region_, {}));
}

void DmaBuffer::sync_for_device(size_t offset, size_t len) const {
  allocator_->sync_for_device(region_, offset, len);
}

void DmaBuffer::sync_for_cpu(size_t offset, size_t len) const {
  allocator_->sync_for_cpu(region_, offset, len);
}

}  // namespace strata
