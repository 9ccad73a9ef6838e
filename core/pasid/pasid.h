// SPDX-License-Identifier: MIT
// The PASID allocator of the iommu core: one system-wide PASID namespace (PasidSpace) handed
// out through quota-limited sets (PasidSet), one set per user of PASIDs (a VM through VFIO's
// PASID request, a process doing SVA, the host's own default-domain users). This is the model
// for VT-d's "the guest must allocate PASIDs from the host, system-wide" (the nesting info's
// SYSWIDE_PASID): a guest's vIOMMU forwards each PASID allocation to its set.
//
//   Box<PasidSpace> space = STRATA_TRY(PasidSpace::create(1, kPasidMax));
//   Box<PasidSet> vm = STRATA_TRY(PasidSet::create(*space, 1024));
//   ioasid_t pasid = STRATA_TRY(vm->alloc(1, kPasidMax, priv));
//   void* p = STRATA_TRY(vm->find(pasid));
//   STRATA_TRY(vm->free(pasid));
//
// Semantics (Documentation/core.md lists the differences from Linux's ioasid):
//  - A PASID is in the space's [min, max]; max < 2^20 (PCIe's 20-bit PASID) and min >= 1:
//    PASID 0 is VT-d's RID_PASID / IOMMU_NO_PASID, the translation of requests without a
//    PASID, and is never handed out.
//  - PasidSet::alloc takes the first free PASID in [min, max] ∩ the space's range at or
//    after the space's next-fit hint, wrapping within the range (recently freed PASIDs are
//    reused last, so a stale PASID still cached somewhere is unlikely to alias a new one). An empty
//    or invalid range is -EINVAL. Both "the set is at its quota" and "no PASID free in the range"
//    are -ENOSPC (arch/errno.h has no EDQUOT): a caller tells them apart with used() == quota()
//    (exact when the set is not used concurrently; VFIO serialises a container's requests). Quotas
//    are limits, not reservations: they may sum to more than the space. Any failure, -ENOMEM
//    included, changes nothing.
//  - A set sees only its own PASIDs: free and find of a PASID that another set holds are
//    -ENOENT exactly as for a PASID nobody holds (and free_range skips it), so a guest can
//    neither free nor look up (nor learn the existence of) another guest's PASIDs. A PASID
//    outside the space's range is -EINVAL.
//  - Destroying a set frees its PASIDs. Sets must be destroyed before their space: a space
//    destroyed with live sets is a strata bug (STRATA_BUG), because the sets point into it.
//
// Concurrency: every call may run from any number of threads, on one set or on several sets
// of one space. The locks are SpinLocks (find() may be called from fault handling in atomic
// context). Lock order: PasidSet::lock_ -> PasidSpace::lock_ (stated where they are declared).
// Nothing allocates or frees memory with a lock held: a node is kmalloc'd before the locks are
// taken and kfree'd after they are dropped.
#pragma once

#include <stdint.h>

#include <atomic>

// Boost's own precondition checks panic through arch/boost_assert.cc (never assert()).
#include <boost/intrusive/set.hpp>

#include "arch/lock.h"
#include "arch/memory.h"
#include "arch/result.h"

namespace strata {

using ioasid_t = uint32_t;

// PCIe PASIDs are 20 bits (the PASID TLP prefix); VT-d and SMMUv3 support at most that.
inline constexpr ioasid_t kPasidBits = 20;
inline constexpr ioasid_t kPasidMax = (ioasid_t{1} << kPasidBits) - 1;
// VT-d's RID_PASID (Linux's IOMMU_NO_PASID): requests without a PASID. Never allocated.
inline constexpr ioasid_t kNoPasid = 0;

class PasidSet;

// The system-wide PASID namespace: a bitmap of [min, max] with a next-fit hint.
class PasidSpace {
 public:
  // min >= 1, min <= max <= kPasidMax; anything else is -EINVAL.
  static Result<Box<PasidSpace>> create(ioasid_t min = 1, ioasid_t max = kPasidMax);

  // BUGs if a set still exists (sets must be destroyed first: they point into the space).
  ~PasidSpace();
  PasidSpace(const PasidSpace&) = delete;
  PasidSpace& operator=(const PasidSpace&) = delete;

  ioasid_t min() const { return min_; }
  ioasid_t max() const { return max_; }
  // PASIDs allocated, over all sets (a snapshot when sets are used concurrently).
  unsigned allocated() const { return allocated_.load(std::memory_order_relaxed); }

 private:
  friend class PasidSet;
  struct Token {};  // make_box needs a public constructor; only create() can name this

 public:
  PasidSpace(Token, ioasid_t min, ioasid_t max, unsigned long* bitmap);

 private:
  static constexpr unsigned kBitsPerWord = 64;

  // Claims the next free PASID in [lo, hi] (inside [min_, max_]) at or after the hint,
  // wrapping to lo; -ENOSPC if none is free.
  Result<ioasid_t> alloc_locked(ioasid_t lo, ioasid_t hi);
  void free_locked(ioasid_t pasid);
  // The first clear bit in [from, to] (bit indices, relative to min_), or to + 1.
  unsigned long find_zero_locked(unsigned long from, unsigned long to) const;

  const ioasid_t min_;
  const ioasid_t max_;

  // Lock order: PasidSet::lock_ -> PasidSpace::lock_ (innermost). Guards the bitmap, the hint
  // and nr_sets_; allocated_ is written under it and read without.
  SpinLock lock_;
  unsigned long* const bitmap_;  // bit (pasid - min_) set: allocated; kzalloc'd, owned
  ioasid_t hint_;                // next-fit: where the next search starts
  unsigned nr_sets_ = 0;         // live PasidSets of this space
  std::atomic<unsigned> allocated_{0};
};

// A quota-limited group of PASIDs owned by one user. Each PASID it holds has a node (the PASID
// and the caller's private pointer) in the set's red-black tree: find and free are O(log n).
class PasidSet {
 public:
  // quota >= 1 (-EINVAL otherwise); it is a limit, not a reservation (Documentation/core.md).
  static Result<Box<PasidSet>> create(PasidSpace& space, unsigned quota);

  // Frees every PASID of the set (free_all).
  ~PasidSet();
  PasidSet(const PasidSet&) = delete;
  PasidSet& operator=(const PasidSet&) = delete;

  // A PASID in [min, max] ∩ [space.min(), space.max()], recorded with `priv` (may be null).
  // -EINVAL: min > max or no overlap with the space; -ENOSPC: at quota or no PASID free in
  // the range; -ENOMEM. On error nothing changed.
  Result<ioasid_t> alloc(ioasid_t min, ioasid_t max, void* priv);
  // -EINVAL: outside the space's range; -ENOENT: not this set's.
  Result<void> free(ioasid_t pasid);
  // Frees this set's PASIDs in [min, max] and returns how many (VFIO's PASID_REQUEST free
  // semantics); other sets' PASIDs in the range are untouched. -EINVAL if min > max.
  Result<unsigned> free_range(ioasid_t min, ioasid_t max);
  // The private pointer `pasid` was allocated with; -EINVAL / -ENOENT as for free.
  Result<void*> find(ioasid_t pasid) const;
  void free_all();

  // Snapshots when the set is used concurrently.
  unsigned used() const { return used_.load(std::memory_order_relaxed); }
  unsigned quota() const { return quota_; }
  PasidSpace& space() const { return space_; }

 private:
  struct Token {};

 public:
  PasidSet(Token, PasidSpace& space, unsigned quota);

 private:
  struct Node {
    using Hook = boost::intrusive::set_member_hook<
        boost::intrusive::link_mode<boost::intrusive::normal_link>,
        boost::intrusive::optimize_size<true>>;
    Hook hook;
    ioasid_t pasid;
    void* priv;
    Node* next_free;  // chains nodes unlinked under the locks, to kfree after them
  };
  struct PasidKey {
    using type = ioasid_t;
    ioasid_t operator()(const Node& n) const { return n.pasid; }
  };
  using Tree =
      boost::intrusive::set<Node, boost::intrusive::member_hook<Node, Node::Hook, &Node::hook>,
                            boost::intrusive::key_of_value<PasidKey>,
                            boost::intrusive::constant_time_size<false>>;

  // Unlinks the nodes of [min, max] from the tree and the space; returns them chained through
  // next_free (to kfree once the locks are dropped) and their number in *count.
  Node* unlink_range_locked(ioasid_t min, ioasid_t max, unsigned* count);
  static void free_nodes(Node* chain);

  PasidSpace& space_;
  const unsigned quota_;

  // Lock order: PasidSet::lock_ -> PasidSpace::lock_. Guards tree_; used_ is written under it
  // and read without.
  mutable SpinLock lock_;
  Tree tree_;
  std::atomic<unsigned> used_{0};
};

}  // namespace strata
