// SPDX-License-Identifier: MIT
#include "core/iova/iova.h"

#include <iterator>
#include <new>
#include <utility>

#include "arch/bug.h"
#include "arch/log.h"

// ---------------------------------------------------------------------------------------------
// The tree and the gap index.
//
// Linux keeps the ranges in an rbtree and searches for room by walking it downwards, one range
// at a time, from a cached node (the last allocation); the walk is linear in the ranges it
// passes, so Linux also remembers the smallest size that last failed below 4 GiB to fail fast
// (max32_alloc_size), and what it returns is the highest fit below that cached node, not below
// the limit.
//
// strata indexes the free space instead. Each range records the gap directly below it (free
// pfns down to the previous range, or to start_pfn), and sits in gaps_[c] while that gap is in
// [2^c, 2^(c+1)), ordered by pfn. For `size` pfns at alignment `align` below `limit`:
//  - the gap that contains limit belongs to the first range above limit; if it fits, nothing
//    higher exists.
//  - every other candidate gap lies wholly below limit, so in each non-empty class c the best
//    candidate is its highest range with pfn_lo <= limit (one upper_bound). In a class whose
//    gaps all hold size + align - 1 pfns that candidate fits for certain; in the one or two
//    classes below that (gaps of at least `size` pfns that may be too small once aligned) the
//    class is walked downwards until a gap fits or the walk drops below the best so far.
//  - gaps are disjoint, so the highest fitting gap gives the highest place.
// An allocation costs O(k log n) for k non-empty classes (k <= 64, a handful in practice);
// only the walk in the boundary class is linear, and only over gaps of nearly the right size
// that alignment defeats. The result is exactly the highest fit, the same on every run, which
// the differential test checks against a plain interval set.
// ---------------------------------------------------------------------------------------------

namespace strata {
namespace {

// Floor of log2; n > 0.
unsigned ilog2(unsigned long n) { return 63 - static_cast<unsigned>(__builtin_clzl(n)); }

// Ceiling of log2 (Linux's order_base_2); order_base_2(1) == 0.
unsigned order_base_2(unsigned long n) { return n <= 1 ? 0 : ilog2(n - 1) + 1; }

}  // namespace

Iova* IovaDomain::alloc_iova_mem() {
  void* mem = kmalloc(sizeof(Iova), alignof(Iova));
  return mem ? new (mem) Iova() : nullptr;
}

void IovaDomain::free_iova_mem(Iova* iova) {
  iova->~Iova();
  kfree(iova);
}

Result<Box<IovaDomain>> IovaDomain::create(size_t granule, unsigned long start_pfn) {
  if (granule < 4096 || (granule & (granule - 1)) != 0) return Error(-EINVAL);
  const unsigned shift = ilog2(granule);
  if (start_pfn == 0 || start_pfn > (~0UL >> shift)) return Error(-EINVAL);
  return make_box<IovaDomain>(Token{}, granule, shift, start_pfn);
}

IovaDomain::IovaDomain(Token, size_t granule, unsigned shift, unsigned long start_pfn)
    : granule_(granule), shift_(shift), start_pfn_(start_pfn), max_pfn_(~0UL >> shift) {
  anchor_.pfn_lo = anchor_.pfn_hi = max_pfn_ + 1;
  anchor_.flags_ = Iova::kReserved | Iova::kAnchor;
  tree_.insert(anchor_);
  update_gap_locked(&anchor_);  // the whole space, start_pfn..max_pfn
}

IovaDomain::~IovaDomain() {
  // The cached pfns are ranges in the tree, freed with it below.
  for (Rcache& rc : rcaches_) {
    for (RcacheSlot& slot : rc.slots) {
      kfree(slot.loaded);
      kfree(slot.prev);
    }
    for (unsigned i = 0; i < rc.depot_size; i++) kfree(rc.depot[i]);
  }
  for (GapTree& t : gaps_) t.clear();
  tree_.clear_and_dispose([this](Iova* iova) {
    if (iova != &anchor_) free_iova_mem(iova);
  });
}

Iova* IovaDomain::find_locked(unsigned long pfn) const {
  if (pfn > max_pfn_) return nullptr;
  auto it = tree_.upper_bound(pfn);  // the first range above pfn
  if (it == tree_.begin()) return nullptr;
  --it;
  return it->pfn_hi >= pfn ? const_cast<Iova*>(&*it) : nullptr;
}

unsigned long IovaDomain::gap_below_locked(const Iova& iova) const {
  unsigned long lo = start_pfn_;
  auto it = tree_.iterator_to(iova);
  if (it != tree_.begin()) {
    --it;
    if (it->pfn_hi + 1 > lo) lo = it->pfn_hi + 1;
  }
  return iova.pfn_lo > lo ? iova.pfn_lo - lo : 0;
}

void IovaDomain::link_gap_locked(Iova* iova) {
  if (!iova->gap_) return;
  const unsigned c = ilog2(iova->gap_);
  gaps_[c].insert_unique(*iova);
  gap_mask_ |= uint64_t{1} << c;
}

void IovaDomain::unlink_gap_locked(Iova* iova) {
  if (!iova->gap_) return;
  const unsigned c = ilog2(iova->gap_);
  gaps_[c].erase(gaps_[c].iterator_to(*iova));
  if (gaps_[c].empty()) gap_mask_ &= ~(uint64_t{1} << c);
}

// Recomputes iova's gap after a neighbour changed. Its pfn_lo must not have changed while it
// was linked (the class trees are ordered by it).
void IovaDomain::update_gap_locked(Iova* iova) {
  const unsigned long gap = gap_below_locked(*iova);
  if (gap == iova->gap_) return;
  if (gap && iova->gap_ && ilog2(gap) == ilog2(iova->gap_)) {
    iova->gap_ = gap;  // same class: the position in it does not change
    return;
  }
  unlink_gap_locked(iova);
  iova->gap_ = gap;
  link_gap_locked(iova);
}

namespace {

// The lowest pfn of `size` pfns aligned to `align`, placed as high as possible in the gap
// below `iova` but not above limit; 0 (never a valid pfn) when they do not fit.
unsigned long fit_below(const Iova& iova, unsigned long gap, unsigned long size,
                        unsigned long align, unsigned long limit) {
  if (!gap) return 0;
  const unsigned long gap_lo = iova.pfn_lo - gap;
  const unsigned long top = iova.pfn_lo - 1 < limit ? iova.pfn_lo - 1 : limit;
  if (top < gap_lo || top - gap_lo + 1 < size) return 0;
  const unsigned long pfn = (top + 1 - size) & ~(align - 1);
  return pfn >= gap_lo ? pfn : 0;
}

}  // namespace

IovaDomain::Place IovaDomain::find_place_locked(unsigned long size, unsigned long align,
                                                unsigned long limit) const {
  // The first range above limit (the anchor at worst) owns the gap that holds limit.
  auto top = tree_.upper_bound(limit);
  if (unsigned long pfn = fit_below(*top, top->gap_, size, align, limit))
    return {const_cast<Iova*>(&*top), pfn};

  Place best;
  const unsigned sure = order_base_2(size + align - 1);  // classes where every gap fits
  uint64_t classes = gap_mask_ & (~uint64_t{0} << ilog2(size));
  while (classes) {
    const unsigned c = ilog2(classes);
    classes &= ~(uint64_t{1} << c);
    const GapTree& t = gaps_[c];
    auto it = t.upper_bound(limit);
    while (it != t.begin()) {
      --it;
      // Gaps lower than the best one found cannot win.
      if (best.owner && it->pfn_lo <= best.owner->pfn_lo) break;
      if (unsigned long pfn = fit_below(*it, it->gap_, size, align, limit)) {
        best = {const_cast<Iova*>(&*it), pfn};
        break;
      }
      // Only a class below `sure` has gaps that may not fit; keep walking down in it.
      if (c >= sure) break;
    }
  }
  return best;
}

void IovaDomain::insert_locked(Iova* iova, const Place& place, unsigned long size) {
  iova->pfn_lo = place.pfn;
  iova->pfn_hi = place.pfn + size - 1;
  iova->gap_ = 0;
  // The new range sits in its owner's gap: directly before the owner in the tree.
  tree_.insert_before(tree_.iterator_to(*place.owner), *iova);
  update_gap_locked(iova);
  update_gap_locked(place.owner);
}

void IovaDomain::remove_locked(Iova* iova) {
  auto it = tree_.iterator_to(*iova);
  Iova* next = &*std::next(it);  // the anchor at worst
  unlink_gap_locked(iova);
  iova->gap_ = 0;
  tree_.erase(it);
  update_gap_locked(next);
}

Result<Iova*> IovaDomain::alloc_range(unsigned long size, unsigned long limit_pfn,
                                      bool size_aligned, uint8_t flags) {
  if (size == 0 || limit_pfn < start_pfn_) return Error(-EINVAL);
  const unsigned long limit = limit_pfn < max_pfn_ ? limit_pfn : max_pfn_;
  if (size > limit - start_pfn_ + 1) return Error(-ENOMEM);
  const unsigned long align = size_aligned ? 1UL << order_base_2(size) : 1;

  // Allocated before the lock (kmalloc may sleep in a port) and given back on failure.
  Iova* iova = alloc_iova_mem();
  if (!iova) return Error(-ENOMEM);
  iova->flags_ = flags;
  {
    Guard<SpinLock> g(tree_lock_);
    const Place place = find_place_locked(size, align, limit);
    if (place.owner) {
      insert_locked(iova, place, size);
      return iova;
    }
  }
  free_iova_mem(iova);
  return Error(-ENOMEM);
}

Result<Iova*> IovaDomain::alloc_iova(unsigned long size, unsigned long limit_pfn,
                                     bool size_aligned) {
  return alloc_range(size, limit_pfn, size_aligned, 0);
}

Iova* IovaDomain::find_iova(unsigned long pfn) {
  Guard<SpinLock> g(tree_lock_);
  return find_locked(pfn);
}

void IovaDomain::free_iova(unsigned long pfn) {
  Iova* victim;
  {
    Guard<SpinLock> g(tree_lock_);
    victim = find_locked(pfn);
    if (STRATA_WARN_ON(!victim) || STRATA_WARN_ON(victim->flags_ & (Iova::kReserved | Iova::kFast)))
      return;
    remove_locked(victim);
  }
  free_iova_mem(victim);
}

void IovaDomain::__free_iova(Iova* iova) {
  if (STRATA_WARN_ON(!iova)) return;
  {
    Guard<SpinLock> g(tree_lock_);
    if (STRATA_WARN_ON(find_locked(iova->pfn_lo) != iova) ||
        STRATA_WARN_ON(iova->flags_ & (Iova::kReserved | Iova::kFast)))
      return;
    remove_locked(iova);
  }
  free_iova_mem(iova);
}

Result<Iova*> IovaDomain::reserve_iova(unsigned long pfn_lo, unsigned long pfn_hi) {
  if (pfn_lo > pfn_hi || pfn_hi > max_pfn_) return Error(-EINVAL);
  // At most one new range is needed; allocated up front so that nothing fails after a change.
  Iova* fresh = alloc_iova_mem();
  if (!fresh) return Error(-ENOMEM);
  fresh->flags_ = Iova::kReserved;

  Iova* result = nullptr;
  for (bool drained = false;;) {
    bool busy = false;
    bool cached = false;
    {
      Guard<SpinLock> g(tree_lock_);
      // The ranges that overlap [pfn_lo, pfn_hi]: from the one holding pfn_lo (or the first
      // above it) up to the last starting at or below pfn_hi. The anchor ends the walk.
      auto first = tree_.upper_bound(pfn_lo);
      if (first != tree_.begin() && std::prev(first)->pfn_hi >= pfn_lo) --first;
      auto end = first;
      for (; end->pfn_lo <= pfn_hi; ++end) {
        if (end->flags_ & Iova::kReserved) continue;
        busy = true;
        if (end->flags_ & Iova::kFast) cached = true;
      }
      if (!busy) {
        if (first == end) {
          // Nothing overlaps: a new reservation in the gap below `end`.
          fresh->pfn_lo = pfn_lo;
          fresh->pfn_hi = pfn_hi;
          tree_.insert_before(end, *fresh);
          update_gap_locked(fresh);
          update_gap_locked(&*end);
          result = std::exchange(fresh, nullptr);
        } else {
          // Merge every overlapping reservation into the first one.
          Iova* keep = &*first;
          const unsigned long lo = pfn_lo < keep->pfn_lo ? pfn_lo : keep->pfn_lo;
          const unsigned long last_hi = std::prev(end)->pfn_hi;
          const unsigned long hi = pfn_hi > last_hi ? pfn_hi : last_hi;
          for (auto it = std::next(first); it != end;) {
            Iova* merged = &*it++;
            unlink_gap_locked(merged);
            tree_.erase(tree_.iterator_to(*merged));
            free_iova_mem(merged);
          }
          // Unlinked while its key changes; its order among the others does not (what lay
          // between its old and new bounds was free or was merged into it).
          unlink_gap_locked(keep);
          keep->gap_ = 0;
          keep->pfn_lo = lo;
          keep->pfn_hi = hi;
          update_gap_locked(keep);
          update_gap_locked(&*std::next(tree_.iterator_to(*keep)));
          result = keep;
        }
      }
    }
    if (result || !cached || drained) break;
    // Ranges from alloc_iova_fast are in the way; they may only be cached. Drain and retry.
    free_cached_iovas();
    drained = true;
  }
  if (fresh) free_iova_mem(fresh);
  if (!result) return Error(-EBUSY);
  return result;
}

// ---------------------------------------------------------------------------------------------
// The rcache (Linux's iova_rcache, after Bonwick's magazines).
//
// Most DMA mappings are small and short-lived, and each costs an allocation and a free; on the
// tree both take the one tree lock, and the allocation also searches. The rcache keeps freed
// ranges of the sizes 1, 2, 4, ... 32 pfns in magazines (stacks of 127 pfns) and hands them out
// again without touching the tree: the ranges stay allocated in the tree while cached.
//
// Per size class, each slot has a `loaded` magazine, pushed and popped, and a `prev` one that
// it swaps with when loaded is empty (alloc) or full (free); a slot only goes to the shared
// depot of full magazines when both are empty or both are full, so a thread that alternates
// allocations and frees stays on its slot's lock, in its slot's cache line.
//
// Linux gives each CPU its own slot; strata's OS port has no CPU id (and a thread may move
// between CPUs mid-call anyway). The slot is instead picked by hashing the stack address of
// the function that calls alloc_iova_fast / free_iova_fast. Both are inline for this:
// __builtin_frame_address(0) is then the caller's frame, so an allocation and a free made from
// one function pick the same slot whatever the architecture's frame layout. Each thread runs
// on its own stack, so a thread keeps to one slot while different threads spread over
// kRcacheSlots of them. The hash drops the offset within a 16 KiB block, the size and
// alignment of Linux's x86-64 and arm64 kernel stacks, so calls from different depths of one
// thread still agree (a larger stack, as a hosted thread's, is split into several blocks, and
// a thread only crosses into the next one now and then). Interrupt handlers run on per-CPU
// interrupt stacks in most kernels, which makes their slots per-CPU, as in Linux. Two threads
// that hash to one slot (1 in 32 for a pair) share its lock; a collision or a change of slot
// only costs contention, never correctness: any slot may cache any pfn.
//
// A cache hit allocates nothing. A free allocates a magazine only when the slot's two are full
// (or not yet allocated) and the depot has room for one, outside every lock; if that fails the
// pfn goes back to the tree, as in Linux. When the depot is full too, the older full magazine
// is drained into the tree and reused (Linux frees it and allocates a new one).
// ---------------------------------------------------------------------------------------------

namespace {

template <typename M>
bool has_pfns(const M* mag) {
  return mag && mag->size > 0;
}

template <typename M>
bool has_room(const M* mag) {
  return mag && mag->size < IovaDomain::kMagSize;
}

// Pops the most recently pushed pfn whose range of `size` ends at or below limit; 0 if none.
// (Linux's iova_magazine_pop compares only the first pfn with the limit, so a range can end
// above it; here the whole range fits.)
template <typename M>
unsigned long mag_pop(M* mag, unsigned long size, unsigned long limit) {
  for (unsigned long i = mag->size; i-- > 0;) {
    const unsigned long pfn = mag->pfns[i];
    if (pfn + size - 1 <= limit) {
      mag->pfns[i] = mag->pfns[--mag->size];
      return pfn;
    }
  }
  return 0;
}

}  // namespace

unsigned long IovaDomain::rcache_get(unsigned order, unsigned long limit, unsigned slot_index) {
  Rcache& rc = rcaches_[order];
  RcacheSlot& slot = rc.slots[slot_index];
  const unsigned long size = 1UL << order;
  Magazine* spent = nullptr;
  unsigned long pfn = 0;
  {
    Guard<SpinLock> g(slot.lock);
    if (!has_pfns(slot.loaded) && has_pfns(slot.prev)) std::swap(slot.loaded, slot.prev);
    if (has_pfns(slot.loaded)) pfn = mag_pop(slot.loaded, size, limit);
    if (!pfn && has_pfns(slot.prev)) pfn = mag_pop(slot.prev, size, limit);
    if (!pfn && !has_pfns(slot.loaded)) {
      // Both empty: swap the empty loaded magazine for a full one from the depot.
      bool refilled = false;
      {
        Guard<SpinLock> d(rc.depot_lock);
        if (rc.depot_size > 0) {
          if (!slot.prev)
            slot.prev = slot.loaded;
          else
            spent = slot.loaded;
          slot.loaded = rc.depot[--rc.depot_size];
          refilled = true;
        }
      }
      if (refilled) pfn = mag_pop(slot.loaded, size, limit);
    }
  }
  kfree(spent);
  return pfn;
}

bool IovaDomain::rcache_insert(unsigned order, unsigned long pfn, unsigned slot_index) {
  Rcache& rc = rcaches_[order];
  RcacheSlot& slot = rc.slots[slot_index];
  Magazine* spare = nullptr;
  for (;;) {
    {
      Guard<SpinLock> g(slot.lock);
      if (!has_room(slot.loaded) && has_room(slot.prev)) std::swap(slot.loaded, slot.prev);
      if (!has_room(slot.loaded)) {
        if (slot.loaded && slot.prev) {
          // Both full: park prev in the depot and start a new magazine, or, with the depot
          // full too, give prev's pfns back to the tree and reuse it.
          bool depot_full;
          {
            Guard<SpinLock> d(rc.depot_lock);
            depot_full = rc.depot_size == kMaxGlobalMags;
            if (!depot_full && spare) {
              rc.depot[rc.depot_size++] = slot.prev;
              slot.prev = slot.loaded;
              slot.loaded = std::exchange(spare, nullptr);
            }
          }
          if (depot_full) {
            drain_magazine(slot.prev);
            std::swap(slot.loaded, slot.prev);
          }
        } else if (spare) {
          // A slot still short of its two magazines.
          if (slot.loaded) slot.prev = slot.loaded;
          slot.loaded = std::exchange(spare, nullptr);
        }
      }
      if (has_room(slot.loaded)) {
        slot.loaded->pfns[slot.loaded->size++] = pfn;
        break;
      }
    }
    // An empty magazine is needed; allocate it unlocked and look again (another thread using
    // this slot may have made room meanwhile).
    spare = static_cast<Magazine*>(kmalloc(sizeof(Magazine), alignof(Magazine)));
    if (!spare) return false;
    spare->size = 0;
  }
  kfree(spare);
  return true;
}

void IovaDomain::drain_magazine(Magazine* mag) {
  if (!has_pfns(mag)) return;
  Guard<SpinLock> g(tree_lock_);
  for (unsigned long i = 0; i < mag->size; i++) {
    Iova* iova = find_locked(mag->pfns[i]);
    // Only a caller's double free_iova_fast, or a bogus pfn to it, gets here.
    if (STRATA_WARN_ON(!iova || iova->pfn_lo != mag->pfns[i] || !(iova->flags_ & Iova::kFast)))
      continue;
    remove_locked(iova);
    free_iova_mem(iova);
  }
  mag->size = 0;
}

Result<unsigned long> IovaDomain::alloc_iova_fast_slot(unsigned long size, unsigned long limit_pfn,
                                                       bool flush_rcache, unsigned slot) {
  if (size == 0 || limit_pfn < start_pfn_) return Error(-EINVAL);
  if (size <= kMaxCachedSize) {
    const unsigned order = order_base_2(size);
    size = 1UL << order;
    const unsigned long limit = limit_pfn < max_pfn_ ? limit_pfn : max_pfn_;
    if (unsigned long pfn = rcache_get(order, limit, slot)) return pfn;
  }
  for (;;) {
    auto r = alloc_range(size, limit_pfn, true, Iova::kFast);
    if (r.ok()) return r.value()->pfn_lo;
    if (!flush_rcache || r.error().code() != -ENOMEM) return r.error();
    // The tree is full (or kmalloc failed): give back what the caches hold and try once more.
    flush_rcache = false;
    free_cached_iovas();
  }
}

void IovaDomain::free_fast_to_tree(unsigned long pfn, unsigned long size) {
  Iova* victim;
  {
    Guard<SpinLock> g(tree_lock_);
    victim = find_locked(pfn);
    if (STRATA_WARN_ON(!victim || victim->pfn_lo != pfn || victim->size() != size ||
                       (victim->flags_ & Iova::kReserved)))
      return;
    remove_locked(victim);
  }
  free_iova_mem(victim);
}

void IovaDomain::free_iova_fast_slot(unsigned long pfn, unsigned long size, unsigned slot) {
  if (STRATA_WARN_ON(size == 0)) return;
  if (size > kMaxCachedSize) {
    free_fast_to_tree(pfn, size);
    return;
  }
  const unsigned order = order_base_2(size);
  // What alloc_iova_fast hands out for this size is aligned to its power of two.
  if (STRATA_WARN_ON(pfn < start_pfn_ || pfn > max_pfn_ || (pfn & ((1UL << order) - 1)))) return;
  if (!rcache_insert(order, pfn, slot)) free_fast_to_tree(pfn, 1UL << order);
}

void IovaDomain::free_cached_iovas() {
  for (Rcache& rc : rcaches_) {
    for (RcacheSlot& slot : rc.slots) {
      Guard<SpinLock> g(slot.lock);
      drain_magazine(slot.loaded);
      drain_magazine(slot.prev);
    }
    // The depot's magazines are emptied and freed (Linux's free_global_cached_iovas).
    Guard<SpinLock> d(rc.depot_lock);
    while (rc.depot_size > 0) {
      Magazine* mag = rc.depot[--rc.depot_size];
      drain_magazine(mag);
      kfree(mag);
    }
  }
}

unsigned long IovaDomain::cached_pfns() {
  unsigned long n = 0;
  for (Rcache& rc : rcaches_) {
    for (RcacheSlot& slot : rc.slots) {
      Guard<SpinLock> g(slot.lock);
      n += (slot.loaded ? slot.loaded->size : 0) + (slot.prev ? slot.prev->size : 0);
    }
    Guard<SpinLock> d(rc.depot_lock);
    for (unsigned i = 0; i < rc.depot_size; i++) n += rc.depot[i]->size;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// check_invariants
// ---------------------------------------------------------------------------------------------

// Every cached pfn starts a live range from alloc_iova_fast of exactly its class's size, and
// no pfn is cached twice (kMark, cleared by clear_marks_locked).
const char* IovaDomain::check_cached_locked(const Magazine* mag, unsigned order) {
  if (!mag) return nullptr;
  if (mag->size > kMagSize) return "a magazine holds more than kMagSize pfns";
  for (unsigned long i = 0; i < mag->size; i++) {
    Iova* iova = find_locked(mag->pfns[i]);
    if (!iova || iova->pfn_lo != mag->pfns[i] || iova->size() != (1UL << order) ||
        !(iova->flags_ & Iova::kFast)) {
      pr_err("iova: cached pfn {:#x} (order {}) is not a fast range of its size", mag->pfns[i],
             order);
      return "a cached pfn is not a live range from alloc_iova_fast of its class's size";
    }
    if (iova->flags_ & Iova::kMark) {
      pr_err("iova: pfn {:#x} is cached twice", mag->pfns[i]);
      return "a pfn is cached twice";
    }
    iova->flags_ |= Iova::kMark;
  }
  return nullptr;
}

void IovaDomain::clear_marks_locked() {
  for (Iova& iova : tree_) iova.flags_ &= static_cast<uint8_t>(~Iova::kMark);
}

const char* IovaDomain::check_invariants() {
  const char* broken = nullptr;
  for (unsigned order = 0; order < kRangeCacheMaxSize && !broken; order++) {
    Rcache& rc = rcaches_[order];
    for (RcacheSlot& slot : rc.slots) {
      Guard<SpinLock> g(slot.lock);
      Guard<SpinLock> t(tree_lock_);
      if (!broken) broken = check_cached_locked(slot.loaded, order);
      if (!broken) broken = check_cached_locked(slot.prev, order);
    }
    Guard<SpinLock> d(rc.depot_lock);
    if (rc.depot_size > kMaxGlobalMags) {
      broken = "a depot holds more than kMaxGlobalMags magazines";
      break;
    }
    Guard<SpinLock> t(tree_lock_);
    for (unsigned i = 0; i < rc.depot_size && !broken; i++) {
      if (rc.depot[i]->size != kMagSize) broken = "a depot magazine is not full";
      if (!broken) broken = check_cached_locked(rc.depot[i], order);
    }
  }

  Guard<SpinLock> g(tree_lock_);
  clear_marks_locked();
  if (broken) return broken;

  const Iova* prev = nullptr;
  unsigned long gapped = 0;
  for (const Iova& iova : tree_) {
    if (iova.pfn_lo > iova.pfn_hi)
      broken = "a range ends below its start";
    else if (prev && prev->pfn_hi >= iova.pfn_lo)
      broken = "ranges overlap or are out of order";
    else if (iova.flags_ & Iova::kAnchor) {
      if (&iova != &anchor_ || iova.pfn_lo != max_pfn_ + 1 || iova.pfn_hi != max_pfn_ + 1 ||
          &*tree_.rbegin() != &anchor_)
        broken = "the anchor is not the last range, at max_pfn + 1";
    } else if (iova.pfn_hi > max_pfn_) {
      broken = "a range ends above max_pfn";
    } else if (!(iova.flags_ & Iova::kReserved) && iova.pfn_lo < start_pfn_) {
      broken = "an allocation starts below start_pfn";
    } else if ((iova.flags_ & Iova::kReserved) && (iova.flags_ & Iova::kFast)) {
      broken = "a range is both reserved and fast";
    }
    if (!broken && iova.gap_ != gap_below_locked(iova)) broken = "a recorded gap is wrong";
    if (broken) {
      pr_err("iova: [{:#x}, {:#x}] flags {:#x} gap {:#x}: {}", iova.pfn_lo, iova.pfn_hi,
             iova.flags_, iova.gap_, broken);
      return broken;
    }
    if (iova.gap_) gapped++;
    prev = &iova;
  }
  if (!prev || !(prev->flags_ & Iova::kAnchor)) return "the anchor is missing";

  unsigned long indexed = 0;
  for (unsigned c = 0; c < 64; c++) {
    if (gaps_[c].empty() != !(gap_mask_ & (uint64_t{1} << c))) return "gap_mask_ is stale";
    const Iova* last = nullptr;
    for (const Iova& iova : gaps_[c]) {
      if (!iova.gap_ || ilog2(iova.gap_) != c) return "a range is in the wrong gap class";
      if (last && last->pfn_lo >= iova.pfn_lo) return "a gap class is out of order";
      if (find_locked(iova.pfn_lo) != &iova && &iova != &anchor_)
        return "a gap class holds a range that is not in the tree";
      last = &iova;
      indexed++;
    }
  }
  if (indexed != gapped) return "a range with a gap is missing from the gap index";
  return nullptr;
}

}  // namespace strata
