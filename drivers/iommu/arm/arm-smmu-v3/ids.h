// SPDX-License-Identifier: MIT
// A bitmap allocator of small integer IDs: the driver's ASIDs and VMIDs (Linux keeps them in
// arm_smmu_asid_xa and an ida).
#pragma once

#include <stdint.h>

#include "arch/lock.h"
#include "arch/memory.h"
#include "arch/result.h"

namespace strata::arm_smmu_v3 {

class IdAllocator {
 public:
  IdAllocator() = default;
  ~IdAllocator();
  IdAllocator(const IdAllocator&) = delete;
  IdAllocator& operator=(const IdAllocator&) = delete;

  // IDs [min, max] become allocatable. -ENOMEM when the bitmap cannot be allocated; -EINVAL for
  // an empty range or a second init.
  Result<void> init(uint32_t min, uint32_t max);
  // The lowest free ID; -ENOSPC when none is left.
  Result<uint32_t> alloc();
  // Frees an ID alloc() returned; anything else is a driver bug.
  void free(uint32_t id);
  uint32_t in_use() const;

 private:
  mutable SpinLock lock_;
  uint64_t* bits_ = nullptr;  // bit (id - min_) set: allocated
  uint32_t min_ = 0, max_ = 0;
  uint32_t in_use_ = 0;
};

}  // namespace strata::arm_smmu_v3
