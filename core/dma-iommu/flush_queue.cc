// SPDX-License-Identifier: MIT
#include "core/dma-iommu/flush_queue.h"

#include <new>

#include "arch/clock.h"
#include "core/iommu.h"

namespace strata {

namespace {

bool is_pow2(uint64_t x) { return x && !(x & (x - 1)); }

}  // namespace

// The page-table clears of the caller's unmap before its read of flush_start_cnt_: a flush that
// begins after that read must see them (Linux's smp_mb() in queue_iova; the flusher's increment
// is a seq_cst read-modify-write, and the driver's invalidation orders what follows it).
// ThreadSanitizer does not model fences (gcc refuses them under -fsanitize=thread), so there
// the order comes from a read-modify-write of the counter instead, which synchronises with the
// flusher's increment whichever comes first: the same guarantee, at the price of writing a
// shared cache line on every queue call, which is why it is not the production path.
inline void FlushQueue::order_clears_before_counter_read() {
#if defined(__SANITIZE_THREAD__)
  (void)flush_start_cnt_.fetch_add(0, std::memory_order_seq_cst);
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

// ---------------------------------------------------------------------------------------------
// When may an entry be freed?
//
// An entry's IOVA and table pages may be reused once an invalidation of the whole domain has
// completed that began after the entry's page-table entries were cleared: an invalidation that
// began earlier may have run before the clear reached memory, and the TLB may have refilled
// from the old entries after it.
//
// Every flush increments flush_start_cnt_ before it invalidates and flush_finish_cnt_ after it
// has completed. An entry records c = flush_start_cnt_ when it is queued, after a full barrier
// that orders its page-table clears before that read (Linux's smp_mb() in queue_iova). At most
// c flushes had begun by then. When flush_finish_cnt_ > c, at least c + 1 flushes have
// completed, so one of them began after the read, after the clears: the entry is covered.
// Completions may come in any order, so this is conservative: an entry queued while another
// flush was running waits for that one too. A flusher that needs room in its own ring now
// (the ring was full) does not wait: its own flush began after every entry in its ring was
// queued (entries are queued under the ring lock it holds), so once it completes, every entry
// with c <= its start value is covered.
// ---------------------------------------------------------------------------------------------

Result<Box<FlushQueue>> FlushQueue::create(Domain& domain, IovaDomain& iovad,
                                           const Config& config) {
  if (!is_pow2(config.slots) || !is_pow2(config.entries) || config.entries < 2 ||
      !is_pow2(config.time_check_interval))
    return Error(-EINVAL);
  Box<FlushQueue> fq = STRATA_TRY(make_box<FlushQueue>(Token{}, domain, iovad, config));
  void* mem = kmalloc(sizeof(Slot) * config.slots, alignof(Slot));
  if (!mem) return Error(-ENOMEM);
  fq->slots_ = static_cast<Slot*>(mem);
  for (unsigned i = 0; i < config.slots; i++) new (&fq->slots_[i]) Slot;
  for (unsigned i = 0; i < config.slots; i++) {
    void* ring = kmalloc(sizeof(Entry) * config.entries, alignof(Entry));
    if (!ring) return Error(-ENOMEM);  // ~FlushQueue frees the rings allocated so far
    fq->slots_[i].ring = static_cast<Entry*>(ring);
    for (unsigned e = 0; e < config.entries; e++) new (&fq->slots_[i].ring[e]) Entry;
  }
  fq->last_flush_ns_.store(monotonic_ns(), std::memory_order_relaxed);
  return fq;
}

FlushQueue::FlushQueue(Token, Domain& domain, IovaDomain& iovad, const Config& config)
    : domain_(domain),
      iovad_(iovad),
      config_(config),
      mask_(config.entries - 1),
      timeout_ns_(config.timeout_ns) {}

FlushQueue::~FlushQueue() {
  if (!slots_) return;
  for (unsigned i = 0; i < config_.slots; i++) {
    Slot& s = slots_[i];
    if (s.ring) {
      for (; s.head != s.tail; s.head = (s.head + 1) & mask_) {
        Entry& e = s.ring[s.head];
        e.freelist.release_freelist();
        iovad_.free_iova_fast(e.pfn, e.pages);
      }
      for (unsigned e = 0; e < config_.entries; e++) s.ring[e].~Entry();
      kfree(s.ring);
    }
    s.~Slot();
  }
  kfree(slots_);
}

void FlushQueue::queue_iova_on(unsigned slot, unsigned long pfn, unsigned long pages,
                               IotlbGather& gather) {
  order_clears_before_counter_read();
  Slot& s = slots_[slot & (config_.slots - 1)];
  Batch batch;
  uint64_t flushed_below = 0;  // set when this call flushed: what its flush covered
  {
    Guard<SpinLock> g(s.lock);
    // What other rings' flushes have covered goes first (Linux's fq_ring_free).
    take_done_locked(s, flush_finish_cnt_.load(std::memory_order_acquire), batch);
    bool flush = full_locked(s);
    if (!flush && !empty_locked(s) && (++s.calls & (config_.time_check_interval - 1)) == 0)
      flush = monotonic_ns() - last_flush_ns_.load(std::memory_order_relaxed) >=
              timeout_ns_.load(std::memory_order_relaxed);
    if (flush) {
      // The flush covers the whole ring (see above). The batch has room for at least one entry
      // unless the first take filled it, and then that take made room.
      flushed_below = done_below(flush_iotlb());
      take_done_locked(s, flushed_below, batch);
    }
    STRATA_BUG_ON(full_locked(s));
    Entry& e = s.ring[s.tail];
    e.pfn = pfn;
    e.pages = pages;
    // At least flushed_below: this entry is not covered by the flush above.
    e.counter = flush_start_cnt_.load(std::memory_order_relaxed);
    gather.move_freelist_to(e.freelist);
    s.tail = (s.tail + 1) & mask_;
  }
  const bool more = batch.n == Batch::kMax;
  free_batch(batch);
  // A flush frees everything it covered now, not a batch per later call.
  if (flushed_below && more) drain(s, flushed_below);
}

void FlushQueue::flush() {
  const uint64_t below = done_below(flush_iotlb());
  for (unsigned i = 0; i < config_.slots; i++) drain(slots_[i], below);
}

void FlushQueue::drain(Slot& s, uint64_t below) {
  for (;;) {
    Batch batch;
    {
      Guard<SpinLock> g(s.lock);
      take_done_locked(s, below, batch);
    }
    const bool more = batch.n == Batch::kMax;
    free_batch(batch);
    if (!more) return;
  }
}

size_t FlushQueue::pending() {
  size_t n = 0;
  for (unsigned i = 0; i < config_.slots; i++) {
    Guard<SpinLock> g(slots_[i].lock);
    n += (slots_[i].tail - slots_[i].head) & mask_;
  }
  return n;
}

void FlushQueue::take_done_locked(Slot& s, uint64_t below, Batch& batch) {
  while (s.head != s.tail && batch.n < Batch::kMax) {
    Entry& e = s.ring[s.head];
    if (e.counter >= below) break;
    batch.pfn[batch.n] = e.pfn;
    batch.pages[batch.n] = e.pages;
    e.freelist.move_freelist_to(*new (batch.gathers[batch.n]) IotlbGather);
    batch.n++;
    s.head = (s.head + 1) & mask_;
  }
}

void FlushQueue::free_batch(Batch& batch) {
  for (unsigned i = 0; i < batch.n; i++) {
    batch.gather(i).release_freelist();
    batch.gather(i).~IotlbGather();
    iovad_.free_iova_fast(batch.pfn[i], batch.pages[i]);
  }
  batch.n = 0;
}

uint64_t FlushQueue::flush_iotlb() {
  const uint64_t start = flush_start_cnt_.fetch_add(1, std::memory_order_seq_cst);
  iommu_flush_iotlb_all(domain_);
  flush_finish_cnt_.fetch_add(1, std::memory_order_release);
  last_flush_ns_.store(monotonic_ns(), std::memory_order_relaxed);
  return start;
}

uint64_t FlushQueue::done_below(uint64_t my_start) const {
  const uint64_t finished = flush_finish_cnt_.load(std::memory_order_acquire);
  return finished > my_start + 1 ? finished : my_start + 1;
}

}  // namespace strata
