// SPDX-License-Identifier: MIT
// DMA memory for drivers running over the simulated machine: a buddy allocator of PhysMem's RAM.
//
// What it implements: arch/dma.h's DmaAllocator contract (zeroed, physically contiguous,
// aligned), coherent or non-coherent devices, and the test controls a harness needs: failure
// injection, leak counters, sync counters, and a panic on a double or foreign free.
//
// What it does not: model caches. A non-coherent device sees the same memory the CPU does; the
// allocator only counts sync_for_device/sync_for_cpu calls so a test can check a driver made
// them. It never moves or reclaims memory, and it has no per-device address limit (DMA mask).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <vector>

#include "arch/dma.h"
#include "testing/models/platform/phys_mem.h"

namespace strata::sim {

class SimDmaAllocator final : public DmaAllocator {
 public:
  // Takes all of `mem`'s RAM, which must outlive the allocator.
  explicit SimDmaAllocator(PhysMem& mem, bool coherent = true);
  SimDmaAllocator(const SimDmaAllocator&) = delete;
  SimDmaAllocator& operator=(const SimDmaAllocator&) = delete;
  ~SimDmaAllocator() = default;

  // A block of 2^order pages, aligned to its own size: size and align are both rounded up to
  // the block (see the comment above alloc() in dma_allocator.cc for what that costs).
  Result<DmaRegion> alloc(size_t size, size_t align) override;
  // Panics on a region this allocator did not hand out or has already taken back: a
  // double free in a driver is a bug the test must not survive.
  void free(const DmaRegion& region) override;

  bool coherent() const override { return coherent_; }
  // Count, then do what the base class does (nothing when coherent).
  void sync_for_device(const DmaRegion& region, size_t offset, size_t len) override;
  void sync_for_cpu(const DmaRegion& region, size_t offset, size_t len) override;
  uint64_t sync_for_device_calls() const { return sync_for_device_.load(); }
  uint64_t sync_for_cpu_calls() const { return sync_for_cpu_.load(); }

  // Failure injection, counted over alloc() calls with valid arguments: the n-th from now
  // (0 = the next) fails once with -ENOMEM; a negative n cancels. fail_all(true) makes every
  // alloc() fail with -ENOMEM until fail_all(false).
  void fail_nth(long n);
  void fail_all(bool fail);

  // For leak checks: allocations not yet freed, the bytes they asked for, and successful
  // allocations since construction.
  size_t live_allocations() const;
  size_t live_bytes() const;
  uint64_t total_allocations() const;
  // Bytes in free blocks; equals PhysMem::ram_size() when nothing is live.
  uint64_t free_bytes() const;

  // The largest block: 2^max_order() pages.
  unsigned max_order() const { return max_order_; }

 private:
  struct Allocation {
    void* cpu;
    size_t size;  // as asked
    unsigned order;
  };

  static uint64_t block_size(unsigned order) { return kPageSize << order; }
  // Returns a block to the free lists, merging it with its free buddies. Lock held.
  void free_block_locked(phys_addr_t pa, unsigned order);

  PhysMem& mem_;
  const bool coherent_;
  unsigned max_order_ = 0;

  mutable std::mutex lock_;  // guards everything below
  // free_[order]: bases of free blocks of that order; ordered, so allocation is lowest-first and
  // deterministic from run to run.
  std::vector<std::set<phys_addr_t>> free_;
  std::map<phys_addr_t, Allocation> live_;  // by physical base
  size_t live_bytes_ = 0;
  uint64_t free_bytes_ = 0;
  uint64_t total_allocations_ = 0;
  long fail_nth_ = -1;
  bool fail_all_ = false;

  std::atomic<uint64_t> sync_for_device_{0};
  std::atomic<uint64_t> sync_for_cpu_{0};
};

}  // namespace strata::sim
