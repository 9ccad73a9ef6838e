// SPDX-License-Identifier: MIT
#include "testing/models/platform/dma_allocator.h"

#include <string.h>

#include <algorithm>
#include <bit>
#include <string>

#include <fmt/core.h>

#include "arch/port.h"

namespace strata::sim {

SimDmaAllocator::SimDmaAllocator(PhysMem& mem, bool coherent) : mem_(mem), coherent_(coherent) {
  uint64_t largest = 0;
  for (const PhysMem::RamRegion& r : mem_.ram()) largest = std::max(largest, r.size);
  // 51: 2^51 pages of 4 KiB is 2^63 bytes; a larger block size would overflow.
  while (max_order_ < 51 && block_size(max_order_ + 1) <= largest) ++max_order_;
  free_.resize(max_order_ + 1);

  // Carve each region into the largest blocks aligned to their own size; a region whose base is
  // less aligned than its size starts and ends with smaller blocks.
  for (const PhysMem::RamRegion& r : mem_.ram()) {
    const phys_addr_t end = r.base + r.size;
    for (phys_addr_t pa = r.base; pa < end;) {
      unsigned order = max_order_;
      while (order > 0 && (pa % block_size(order) || block_size(order) > end - pa)) --order;
      free_[order].insert(pa);
      free_bytes_ += block_size(order);
      pa += block_size(order);
    }
  }
}

// Every allocation is one buddy block, aligned to the block's size, and the block is the
// smallest power-of-two number of pages that covers both `size` and `align`. The cost: up to
// half of a block is wasted (a 68 KiB queue takes 128 KiB), and a small buffer with a large
// alignment takes a whole aligned block (64 bytes aligned to 2 MiB take 2 MiB) where a general
// allocator could use the space below the aligned address. In exchange the allocator is a few
// lines, never fragments alignment, and every structure is naturally aligned, which is what
// the hardware tables want anyway (SMMUv3 queues and stream tables, VT-d root tables). The waste
// is simulated address space: RAM is sparse, so it costs the host nothing until written.
Result<DmaRegion> SimDmaAllocator::alloc(size_t size, size_t align) {
  if (size == 0 || !std::has_single_bit(align)) return Error(-EINVAL);

  std::unique_lock<std::mutex> lock(lock_);
  if (fail_all_) return Error(-ENOMEM);
  if (fail_nth_ >= 0 && fail_nth_-- == 0) return Error(-ENOMEM);
  // Larger than the largest block: no amount of freeing would help.
  if (size > block_size(max_order_) || align > block_size(max_order_)) return Error(-ENOMEM);

  const uint64_t block = std::max({kPageSize, uint64_t{align}, std::bit_ceil(uint64_t{size})});
  const unsigned order = static_cast<unsigned>(std::countr_zero(block / kPageSize));
  unsigned k = order;
  while (k <= max_order_ && free_[k].empty()) ++k;
  if (k > max_order_) return Error(-ENOMEM);

  // Take the lowest free block and split it, keeping the lower half each time.
  const phys_addr_t pa = *free_[k].begin();
  free_[k].erase(free_[k].begin());
  while (k > order) {
    --k;
    free_[k].insert(pa + block_size(k));
  }
  void* cpu = mem_.host_ptr(pa, block_size(order));
  if (!cpu) strata_os_panic("sim: a buddy block straddles RAM regions");
  live_.emplace(pa, Allocation{cpu, size, order});
  live_bytes_ += size;
  free_bytes_ -= block_size(order);
  ++total_allocations_;
  lock.unlock();

  // Outside the lock: the block is ours alone now. A reused block holds its last owner's data.
  memset(cpu, 0, size);
  return DmaRegion{cpu, pa, size};
}

void SimDmaAllocator::free(const DmaRegion& region) {
  std::lock_guard<std::mutex> lock(lock_);
  auto it = live_.find(region.phys);
  if (it == live_.end() || it->second.cpu != region.cpu || it->second.size != region.size) {
    const std::string msg = fmt::format(
        "sim: DMA free of phys {:#x} cpu {} size {:#x}: not a live allocation (double free, "
        "or memory this allocator did not hand out)",
        region.phys, region.cpu, region.size);
    strata_os_panic(msg.c_str());
  }
  const unsigned order = it->second.order;
  live_bytes_ -= it->second.size;
  live_.erase(it);
  free_bytes_ += block_size(order);
  free_block_locked(region.phys, order);
}

void SimDmaAllocator::free_block_locked(phys_addr_t pa, unsigned order) {
  while (order < max_order_) {
    const phys_addr_t buddy = pa ^ block_size(order);
    const phys_addr_t merged = std::min(pa, buddy);
    // Two free buddies in adjacent RAM regions must stay apart: their host views are two
    // mappings, so the merged block would not be contiguous for the CPU.
    auto it = free_[order].find(buddy);
    if (it == free_[order].end() || !mem_.host_ptr(merged, block_size(order + 1))) break;
    free_[order].erase(it);
    pa = merged;
    ++order;
  }
  free_[order].insert(pa);
}

void SimDmaAllocator::sync_for_device(const DmaRegion& region, size_t offset, size_t len) {
  sync_for_device_.fetch_add(1);
  DmaAllocator::sync_for_device(region, offset, len);
}

void SimDmaAllocator::sync_for_cpu(const DmaRegion& region, size_t offset, size_t len) {
  sync_for_cpu_.fetch_add(1);
  DmaAllocator::sync_for_cpu(region, offset, len);
}

void SimDmaAllocator::fail_nth(long n) {
  std::lock_guard<std::mutex> lock(lock_);
  fail_nth_ = n < 0 ? -1 : n;
}

void SimDmaAllocator::fail_all(bool fail) {
  std::lock_guard<std::mutex> lock(lock_);
  fail_all_ = fail;
}

size_t SimDmaAllocator::live_allocations() const {
  std::lock_guard<std::mutex> lock(lock_);
  return live_.size();
}

size_t SimDmaAllocator::live_bytes() const {
  std::lock_guard<std::mutex> lock(lock_);
  return live_bytes_;
}

uint64_t SimDmaAllocator::total_allocations() const {
  std::lock_guard<std::mutex> lock(lock_);
  return total_allocations_;
}

uint64_t SimDmaAllocator::free_bytes() const {
  std::lock_guard<std::mutex> lock(lock_);
  return free_bytes_;
}

}  // namespace strata::sim
