// SPDX-License-Identifier: MIT
#include "drivers/iommu/arm/arm-smmu-v3/ids.h"

namespace strata::arm_smmu_v3 {

IdAllocator::~IdAllocator() { kfree(bits_); }

Result<void> IdAllocator::init(uint32_t min, uint32_t max) {
  if (bits_ || min > max) return Error(-EINVAL);
  const uint64_t words = (uint64_t{max} - min + 1 + 63) / 64;
  bits_ = static_cast<uint64_t*>(kzalloc(words * sizeof(uint64_t)));
  if (!bits_) return Error(-ENOMEM);
  min_ = min;
  max_ = max;
  return {};
}

Result<uint32_t> IdAllocator::alloc() {
  Guard g(lock_);
  const uint64_t count = uint64_t{max_} - min_ + 1;
  const uint64_t words = (count + 63) / 64;
  for (uint64_t w = 0; w < words; w++) {
    uint64_t free = ~bits_[w];
    // The last word's bits past `count` do not exist.
    if (w == words - 1 && count % 64) free &= (uint64_t{1} << (count % 64)) - 1;
    if (!free) continue;
    const unsigned bit = __builtin_ctzll(free);
    bits_[w] |= uint64_t{1} << bit;
    in_use_++;
    return static_cast<uint32_t>(min_ + w * 64 + bit);
  }
  return Error(-ENOSPC);
}

void IdAllocator::free(uint32_t id) {
  Guard g(lock_);
  STRATA_BUG_ON(id < min_ || id > max_);
  const uint32_t i = id - min_;
  STRATA_BUG_ON(!(bits_[i / 64] & (uint64_t{1} << (i % 64))));
  bits_[i / 64] &= ~(uint64_t{1} << (i % 64));
  in_use_--;
}

uint32_t IdAllocator::in_use() const {
  Guard g(lock_);
  return in_use_;
}

}  // namespace strata::arm_smmu_v3
