// SPDX-License-Identifier: MIT
// The flush queue of a lazy (dma_fq) DMA domain (Linux's iova_fq in drivers/iommu/dma-iommu.c).
//
// A strict unmap waits for the IOTLB invalidation of its range before the IOVA can be handed out
// again, and on most IOMMUs that wait is the largest cost of an unmap. A lazy unmap clears the
// page-table entries only (iommu_unmap_fast) and queues the range here, with the table pages the
// unmap took out of the tree. The queue invalidates the whole domain once for a batch
// (flush_iotlb_all) and only then gives the IOVAs back to the allocator and frees the table
// pages: until that invalidation has completed the device may still reach the old translations
// through its TLB, and the walker may still read the old tables, so neither may be reused.
//
// Queueing and freeing. The queue has `slots` rings of `entries` entries (Linux has one ring
// per CPU; strata's port has no CPU id, so the ring is picked by the caller's stack, as
// core/iova picks rcache slots: a thread keeps to its ring). Two counters order entries against
// invalidations: flush_start_cnt_ counts flushes begun, flush_finish_cnt_ flushes completed.
// An entry records flush_start_cnt_ as it is queued (after its page-table entries were cleared);
// it may be freed once flush_finish_cnt_ exceeds that value, or once a flush that began after it
// was queued has completed (the flusher knows its own start value). See flush_queue.cc.
//
// When is the domain invalidated: when the caller's ring is full; when a queue call finds that
// the last flush is older than timeout_ns (the clock is read every time_check_interval calls
// per ring: the library has no timers, so Linux's 10 ms timer becomes a check at queue time);
// when flush() is called (iommu_dma_flush, and the DMA API when the IOVA space is full); and
// never at destruction (see ~FlushQueue). Entries that other rings' flushes covered are freed
// by their own ring's next queue call, or by flush().
//
// Concurrency: queue_iova and flush may run from any number of threads. Lock order:
// Slot::lock -> the domain's flush_iotlb_all (the driver's own locks). The IOVA allocator and
// the table-page free run after the slot lock is dropped (the allocator may kmalloc a magazine
// when a range goes back to its cache, and kmalloc must not run under a SpinLock).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>
#include <new>

#include "arch/lock.h"
#include "arch/memory.h"
#include "arch/result.h"
#include "core/domain.h"
#include "core/io-pgtable/gather.h"
#include "core/iova/iova.h"

namespace strata {

class FlushQueue {
 public:
  struct Config {
    unsigned slots = 16;     // rings, a power of two (Linux: one per CPU)
    unsigned entries = 128;  // per ring, a power of two >= 2; a ring holds entries - 1
    // Linux's IOVA_DEFAULT_FQ_TIMEOUT: how old the last flush may be before a queue call
    // flushes.
    uint64_t timeout_ns = 10'000'000;
    // Queue calls per ring between two reads of the clock (a power of two; 1 = every call).
    unsigned time_check_interval = 16;
  };

  // A queue that invalidates `domain` and frees IOVAs into `iovad`; both must outlive it.
  // -EINVAL for a bad config, -ENOMEM. Every ring is allocated here: queueing never allocates.
  static Result<Box<FlushQueue>> create(Domain& domain, IovaDomain& iovad, const Config& config);
  // Frees every queued entry without invalidating: the queue goes with its domain, which is
  // detached from every device by then (Domain's destructor checks), and whose driver part is
  // already destroyed, so no invalidation could be issued anyway (Linux frees the queue's
  // freelists the same way). The IOVAs go back to iovad. No call may be running.
  ~FlushQueue();
  FlushQueue(const FlushQueue&) = delete;
  FlushQueue& operator=(const FlushQueue&) = delete;

  // Takes [pfn, pfn + pages) (pages as passed to alloc_iova_fast), whose page-table entries
  // the caller has just cleared with iommu_unmap_fast into `gather`, and the table pages on
  // gather's freelist. The IOVA goes back to iovad with free_iova_fast, and the pages are freed,
  // after an invalidation of the whole domain that began after this call has completed.
  // `gather` is left without a freelist; its range is not used (the flush covers everything).
  // Inline, so that the ring is picked from the caller's frame.
  __attribute__((always_inline)) void queue_iova(unsigned long pfn, unsigned long pages,
                                                 IotlbGather& gather) {
    queue_iova_on(slot_of(__builtin_frame_address(0)), pfn, pages, gather);
  }
  // The same on ring `slot` (modulo the number of rings): for tests that need two rings.
  void queue_iova_on(unsigned slot, unsigned long pfn, unsigned long pages, IotlbGather& gather);

  // Invalidates the domain now and frees every entry queued before this call (Linux's
  // fq_flush_timeout).
  void flush();

  const Config& config() const { return config_; }
  // Changes the timeout (an OS tuning it; tests that must not see time-driven flushes).
  void set_timeout_ns(uint64_t ns) { timeout_ns_.store(ns, std::memory_order_relaxed); }
  // flush_iotlb_all calls made so far.
  uint64_t flushes() const { return flush_start_cnt_.load(std::memory_order_relaxed); }
  // Entries queued and not yet freed (takes each ring's lock in turn).
  size_t pending();

 private:
  struct Token {};

 public:
  FlushQueue(Token, Domain& domain, IovaDomain& iovad, const Config& config);

 private:
  // One queued range (Linux's iova_fq_entry). Only the gather's freelist is used.
  struct Entry {
    unsigned long pfn = 0;
    unsigned long pages = 0;
    uint64_t counter = 0;  // flush_start_cnt_ when queued
    IotlbGather freelist;
  };
  // A ring (Linux's iova_fq): entries [head, tail) are queued, oldest at head. Own cache line.
  struct alignas(64) Slot {
    SpinLock lock;
    unsigned head = 0;
    unsigned tail = 0;
    unsigned calls = 0;  // queue calls, for the clock check
    Entry* ring = nullptr;
  };
  // Entries taken off a ring under its lock, freed after the lock is dropped. The gathers that
  // carry their table pages are constructed only for the entries taken: most calls take none.
  struct Batch {
    static constexpr unsigned kMax = 16;
    unsigned n = 0;
    unsigned long pfn[kMax];
    unsigned long pages[kMax];
    alignas(IotlbGather) unsigned char gathers[kMax][sizeof(IotlbGather)];
    IotlbGather& gather(unsigned i) {
      return *std::launder(reinterpret_cast<IotlbGather*>(gathers[i]));
    }
  };

  static unsigned slot_of(const void* frame) {
    // As IovaDomain::rcache_slot: 16 KiB stack blocks, Fibonacci hashing.
    const auto sp = reinterpret_cast<uintptr_t>(frame);
    return static_cast<unsigned>(((sp >> 14) * 0x9e3779b97f4a7c15ULL) >> 32);
  }
  inline void order_clears_before_counter_read();
  bool empty_locked(const Slot& s) const { return s.head == s.tail; }
  bool full_locked(const Slot& s) const { return ((s.tail + 1) & mask_) == s.head; }
  // Moves the oldest entries with counter < done_below into `batch`, as many as fit.
  void take_done_locked(Slot& s, uint64_t done_below, Batch& batch);
  void free_batch(Batch& batch);
  // Frees every entry of `s` with counter < below, a batch per lock hold.
  void drain(Slot& s, uint64_t below);
  // Invalidates the domain (Linux's fq_flush_iotlb); returns flush_start_cnt_ before it.
  uint64_t flush_iotlb();
  // What a flush that began at `start` and has completed allows to be freed.
  uint64_t done_below(uint64_t my_start) const;

  Domain& domain_;
  IovaDomain& iovad_;
  const Config config_;
  const unsigned mask_;  // entries - 1
  Slot* slots_ = nullptr;

  std::atomic<uint64_t> flush_start_cnt_{0};
  std::atomic<uint64_t> flush_finish_cnt_{0};
  std::atomic<uint64_t> last_flush_ns_{0};
  std::atomic<uint64_t> timeout_ns_;
};

}  // namespace strata
