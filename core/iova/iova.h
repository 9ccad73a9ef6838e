// SPDX-License-Identifier: MIT
// The IOVA allocator of the DMA API (Linux's drivers/iommu/iova.c): hands out ranges of I/O
// virtual page frames for a DMA domain, top-down, with per-size caches in front.
//
//   Box<IovaDomain> iovad = STRATA_TRY(IovaDomain::create(SZ_4K, 1));
//   unsigned long pfn = STRATA_TRY(iovad->alloc_iova_fast(npages, dma_limit_pfn, true));
//   // map [pfn << shift, (pfn + npages) << shift) in the IOMMU domain, do the DMA, unmap
//   iovad->free_iova_fast(pfn, npages);
//
// Units are pfns: an address shifted right by the granule's shift. Semantics are Linux's unless
// noted (Documentation/core.md lists the deviations):
//  - alloc_iova places `size` pfns at the highest free place that ends at or below limit_pfn
//    (exactly the highest: the search is not Linux's walk from a cached node, see iova.cc), so a
//    device limited to 32 bits is served below 4 GiB and large allocations stay compact.
//    size_aligned aligns the range to its size rounded up to a power of two. IOVA 0 is never
//    handed out (start_pfn > 0). No room is -ENOMEM and changes nothing.
//  - reserve_iova keeps a range out of every allocation (MSI windows, RMRRs). Reservations that
//    overlap it are merged into one; a live allocation in the way is -EBUSY (Linux would
//    stretch the allocation over part of the window, which its free then releases): a
//    reservation is a promise that nothing in it is handed out, and that cannot hold with DMA
//    already mapped there. Reservations stay until the
//    domain is destroyed.
//  - alloc_iova_fast / free_iova_fast put Linux's rcache (per-size magazines, a depot) in front
//    of the tree (iova.cc, "The rcache"). alloc_iova_fast returns the pfn (or an error: Result, not
//    Linux's 0); a range it returns is freed with free_iova_fast, and free_iova refuses it (the
//    pfn may sit in a cache, and freeing it under the cache would hand it out twice).
//  - Bad input (size 0, limit below start_pfn, freeing what is not allocated) is -EINVAL or a
//    STRATA_WARN_ON and no change. One exception, as in Linux: free_iova_fast of a cacheable
//    size trusts that the pfn came from alloc_iova_fast with that size, beyond cheap checks
//    (range and alignment): checking it against the tree would put every free back on the
//    tree lock. A pfn freed twice this way can be handed out twice until the caches drain,
//    where the duplicate is found and warned about.
//
// Concurrency: every call may run from any number of threads; Iova pointers stay valid until
// their range is freed. Nothing allocates with a lock held, and the fast path allocates nothing
// when it hits the cache. The locks are SpinLocks (interrupts off): the DMA API is called from
// atomic context.
#pragma once

#include <stddef.h>
#include <stdint.h>

// Boost's own precondition checks panic through arch/boost_assert.cc (never assert()).
#include <boost/intrusive/set.hpp>

#include "arch/lock.h"
#include "arch/memory.h"
#include "arch/result.h"

namespace strata {

static_assert(sizeof(unsigned long) == 8, "pfns are 64-bit");

// One allocated or reserved range (Linux's struct iova). pfn_lo/pfn_hi are public as in Linux,
// for callers to read; only the domain changes them.
class Iova {
 public:
  unsigned long pfn_lo = 0;  // lowest pfn of the range
  unsigned long pfn_hi = 0;  // highest pfn of the range

  unsigned long size() const { return pfn_hi - pfn_lo + 1; }
  bool reserved() const { return flags_ & kReserved; }

  Iova(const Iova&) = delete;
  Iova& operator=(const Iova&) = delete;

 private:
  friend class IovaDomain;
  using Hook =
      boost::intrusive::set_member_hook<boost::intrusive::link_mode<boost::intrusive::normal_link>,
                                        boost::intrusive::optimize_size<true>>;

  static constexpr uint8_t kReserved = 1 << 0;  // reserve_iova: never allocated, never freed
  static constexpr uint8_t kFast = 1 << 1;      // alloc_iova_fast: freed by free_iova_fast only
  static constexpr uint8_t kAnchor = 1 << 2;    // the domain's sentinel above max_pfn
  static constexpr uint8_t kMark = 1 << 3;      // check_invariants: seen in a cache

  Iova() = default;
  ~Iova() = default;

  Hook node_;      // in IovaDomain::tree_, by pfn_lo (Linux's iova.node)
  Hook gap_node_;  // in IovaDomain::gaps_[ilog2(gap_)] while gap_ > 0
  // Free pfns directly below pfn_lo, down to the previous range or start_pfn.
  unsigned long gap_ = 0;
  uint8_t flags_ = 0;
};

class IovaDomain {
 public:
  // Linux's init_iova_domain. granule: the IOMMU page size, a power of two >= 4 KiB; start_pfn:
  // the lowest allocatable pfn, > 0. -EINVAL otherwise, -ENOMEM when the domain cannot be
  // allocated.
  static Result<Box<IovaDomain>> create(size_t granule, unsigned long start_pfn);

  // Frees every range, reservation and cached magazine (Linux's put_iova_domain). No call may
  // be running.
  ~IovaDomain();
  IovaDomain(const IovaDomain&) = delete;
  IovaDomain& operator=(const IovaDomain&) = delete;

  // The tree. Iova pointers are the domain's; a caller reads them and hands them back.
  [[nodiscard]] Result<Iova*> alloc_iova(unsigned long size, unsigned long limit_pfn,
                                         bool size_aligned);
  // The allocated or reserved range that contains pfn, or nullptr. A pfn held in an rcache
  // counts as allocated (Linux: the same).
  Iova* find_iova(unsigned long pfn);
  // Frees the allocation that contains pfn. Warns and does nothing when pfn is not in an
  // allocation made by alloc_iova (free, reserved, or from alloc_iova_fast).
  void free_iova(unsigned long pfn);
  // Frees an allocation returned by alloc_iova; the same checks as free_iova.
  void __free_iova(Iova* iova);
  // Keeps [pfn_lo, pfn_hi] out of every allocation; returns the reservation that now covers it
  // (overlapping reservations are merged into it, so a pointer to one of those becomes
  // invalid). -EINVAL for an empty range or one beyond max_pfn(), -EBUSY when a live allocation
  // overlaps it, -ENOMEM; nothing changes on error (except that when ranges from
  // alloc_iova_fast are in the way, the rcaches are drained first: they may only be cached).
  [[nodiscard]] Result<Iova*> reserve_iova(unsigned long pfn_lo, unsigned long pfn_hi);

  // The fast path. Sizes up to kMaxCachedSize pfns are rounded up to a power of two and served
  // from the rcache first, then from the tree (always size-aligned). When the tree has no
  // room and flush_rcache is set, every cached range goes back to the tree and the tree is
  // tried once more. -EINVAL for size 0 or limit_pfn < start_pfn, -ENOMEM when full.
  // (Inline, so that the rcache slot is picked from the caller's frame: iova.cc, "The rcache".)
  [[nodiscard]] __attribute__((always_inline)) Result<unsigned long> alloc_iova_fast(
      unsigned long size, unsigned long limit_pfn, bool flush_rcache) {
    return alloc_iova_fast_slot(size, limit_pfn, flush_rcache,
                                rcache_slot(__builtin_frame_address(0)));
  }
  // Frees what alloc_iova_fast returned: `size` as passed to it (rounded or not). A cacheable
  // range goes into the rcache; a larger one, or one the cache has no room for, to the tree.
  __attribute__((always_inline)) void free_iova_fast(unsigned long pfn, unsigned long size) {
    free_iova_fast_slot(pfn, size, rcache_slot(__builtin_frame_address(0)));
  }
  // Returns every cached range to the tree (Linux's free_cpu_cached_iovas for every CPU and
  // free_global_cached_iovas).
  void free_cached_iovas();

  size_t granule() const { return granule_; }
  unsigned shift() const { return shift_; }
  unsigned long start_pfn() const { return start_pfn_; }
  // The highest pfn whose address fits 64 bits.
  unsigned long max_pfn() const { return max_pfn_; }
  unsigned long iova_pfn(uint64_t iova) const { return iova >> shift_; }
  uint64_t iova_dma_addr(const Iova& iova) const { return uint64_t{iova.pfn_lo} << shift_; }
  size_t iova_offset(uint64_t iova) const { return iova & (granule_ - 1); }
  size_t iova_align(size_t size) const { return (size + granule_ - 1) & ~(granule_ - 1); }

  // For tests and debugging, and only meaningful with no call running: nullptr when every
  // invariant of the tree, the gap index and the rcaches holds, else what is broken (also
  // logged). Holds each lock in turn.
  const char* check_invariants();
  // Calls fn(const Iova&) for every range and reservation in ascending order, under the tree
  // lock (fn must not call into the domain). Cached ranges are included.
  template <typename Fn>
  void for_each_iova(Fn&& fn) {
    Guard<SpinLock> g(tree_lock_);
    for (const Iova& iova : tree_)
      if (!(iova.flags_ & Iova::kAnchor)) fn(iova);
  }
  // pfns held in the rcaches (magazines and depots).
  unsigned long cached_pfns();

  // The rcache geometry (Linux's IOVA_RANGE_CACHE_MAX_SIZE, IOVA_MAG_SIZE, MAX_GLOBAL_MAGS).
  static constexpr unsigned kRangeCacheMaxSize = 6;  // size classes 1, 2, 4, ... 32 pfns
  static constexpr unsigned long kMaxCachedSize = 1UL << (kRangeCacheMaxSize - 1);
  static constexpr unsigned kMagSize = 127;       // pfns per magazine (a magazine is 1 KiB)
  static constexpr unsigned kMaxGlobalMags = 32;  // full magazines in a size class's depot
  static constexpr unsigned kRcacheSlotBits = 5;  // 32 slots stand in for Linux's CPUs
  static constexpr unsigned kRcacheSlots = 1U << kRcacheSlotBits;

 private:
  struct Token {};  // make_box needs a public constructor; only create() can name this

 public:
  IovaDomain(Token, size_t granule, unsigned shift, unsigned long start_pfn);

 private:
  struct PfnKey {
    using type = unsigned long;
    unsigned long operator()(const Iova& iova) const { return iova.pfn_lo; }
  };
  using Tree =
      boost::intrusive::set<Iova, boost::intrusive::member_hook<Iova, Iova::Hook, &Iova::node_>,
                            boost::intrusive::key_of_value<PfnKey>,
                            boost::intrusive::constant_time_size<false>>;
  using GapTree =
      boost::intrusive::set<Iova, boost::intrusive::member_hook<Iova, Iova::Hook, &Iova::gap_node_>,
                            boost::intrusive::key_of_value<PfnKey>,
                            boost::intrusive::constant_time_size<false>>;

  // A stack of cached pfns of one size class (Linux's iova_magazine).
  struct Magazine {
    unsigned long size;  // pfns held
    unsigned long pfns[kMagSize];
  };
  static_assert(sizeof(Magazine) == 1024);

  // Linux's iova_cpu_rcache, without the CPU: one of kRcacheSlots per size class, picked by a
  // hash of the caller's stack (iova.cc, "The rcache"). `loaded` is pushed and popped; `prev`
  // is the spare the two swap with. Either may be nullptr: magazines are allocated on first
  // use. Own cache line, so slots used by different threads do not share one.
  struct alignas(64) RcacheSlot {
    SpinLock lock;
    Magazine* loaded = nullptr;
    Magazine* prev = nullptr;
  };
  // One size class: the shared depot of full magazines (Linux's iova_rcache) and its slots.
  struct alignas(64) Rcache {
    SpinLock depot_lock;
    unsigned depot_size = 0;
    Magazine* depot[kMaxGlobalMags] = {};
    RcacheSlot slots[kRcacheSlots];
  };

  // Where a new range goes: the pfn, and the range whose gap it is carved from.
  struct Place {
    Iova* owner = nullptr;
    unsigned long pfn = 0;
  };

  // Iova's constructor and destructor are private to the domain.
  static Iova* alloc_iova_mem();
  static void free_iova_mem(Iova* iova);
  Result<Iova*> alloc_range(unsigned long size, unsigned long limit_pfn, bool size_aligned,
                            uint8_t flags);
  Place find_place_locked(unsigned long size, unsigned long align, unsigned long limit) const;
  Iova* find_locked(unsigned long pfn) const;
  void insert_locked(Iova* iova, const Place& place, unsigned long size);
  void remove_locked(Iova* iova);
  unsigned long gap_below_locked(const Iova& iova) const;
  void update_gap_locked(Iova* iova);
  void link_gap_locked(Iova* iova);
  void unlink_gap_locked(Iova* iova);
  // Frees the tree range that starts at pfn and is `size` long, for free_iova_fast.
  void free_fast_to_tree(unsigned long pfn, unsigned long size);

  // The rcache slot for a caller whose frame is at `frame` (iova.cc explains the hash).
  static unsigned rcache_slot(const void* frame) {
    const auto sp = reinterpret_cast<uintptr_t>(frame);
    return static_cast<unsigned>(((sp >> kStackShift) * 0x9e3779b97f4a7c15ULL) >>
                                 (64 - kRcacheSlotBits));
  }
  static constexpr unsigned kStackShift = 14;
  Result<unsigned long> alloc_iova_fast_slot(unsigned long size, unsigned long limit_pfn,
                                             bool flush_rcache, unsigned slot);
  void free_iova_fast_slot(unsigned long pfn, unsigned long size, unsigned slot);
  unsigned long rcache_get(unsigned order, unsigned long limit, unsigned slot_index);
  bool rcache_insert(unsigned order, unsigned long pfn, unsigned slot_index);
  // Returns every pfn in mag to the tree and empties it. Takes tree_lock_.
  void drain_magazine(Magazine* mag);
  const char* check_cached_locked(const Magazine* mag, unsigned order);
  void clear_marks_locked();

  const size_t granule_;
  const unsigned shift_;
  const unsigned long start_pfn_;
  const unsigned long max_pfn_;

  // Lock order: RcacheSlot::lock -> Rcache::depot_lock -> tree_lock_ (Linux: cpu_rcache->lock
  // -> rcache->lock, and either -> iova_rbtree_lock). tree_lock_ is innermost: nothing is taken
  // under it. A slot's lock guards its loaded/prev magazines; a depot_lock its depot array and
  // the magazines in it; tree_lock_ guards tree_, gaps_, gap_mask_ and every Iova's fields.
  // The fast path takes one slot lock, and the depot_lock only to exchange a whole magazine;
  // the tree lock only on a miss. kmalloc never runs under any of these locks (a port's
  // allocator may sleep); kfree may (a magazine drained into the tree frees its ranges under
  // tree_lock_, as Linux does).
  SpinLock tree_lock_;
  Tree tree_;
  // The gap index: gaps_[c] holds, by pfn_lo, every range whose gap below is in [2^c, 2^(c+1)).
  GapTree gaps_[64];
  uint64_t gap_mask_ = 0;  // bit c: gaps_[c] is not empty
  // The top of the tree (Linux's anchor, IOVA_ANCHOR): a reserved range at max_pfn + 1, so
  // every free pfn lies in the gap below some range.
  Iova anchor_;

  Rcache rcaches_[kRangeCacheMaxSize];
};

}  // namespace strata
