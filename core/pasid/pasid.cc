// SPDX-License-Identifier: MIT
// The PASID allocator (pasid.h has the contract, Documentation/core.md the design).
#include "core/pasid/pasid.h"

#include <new>

#include "arch/bug.h"

namespace strata {

// --- PasidSpace --------------------------------------------------------------------------------

Result<Box<PasidSpace>> PasidSpace::create(ioasid_t min, ioasid_t max) {
  // PASID 0 is RID_PASID: a space that could hand it out would let a set's PASID alias the
  // translation of every request without a PASID.
  if (min == kNoPasid || min > max || max > kPasidMax) return Error(-EINVAL);
  const unsigned long nbits = static_cast<unsigned long>(max - min) + 1;
  const unsigned long nwords = (nbits + kBitsPerWord - 1) / kBitsPerWord;
  auto* bitmap =
      static_cast<unsigned long*>(kzalloc(nwords * sizeof(unsigned long), alignof(unsigned long)));
  if (!bitmap) return Error(-ENOMEM);
  auto space = make_box<PasidSpace>(Token{}, min, max, bitmap);
  if (!space.ok()) kfree(bitmap);  // the space owns the bitmap only once it exists
  return space;
}

PasidSpace::PasidSpace(Token, ioasid_t min, ioasid_t max, unsigned long* bitmap)
    : min_(min), max_(max), bitmap_(bitmap), hint_(min) {}

PasidSpace::~PasidSpace() {
  // The sets hold references to the space; destroying it under them is a use-after-free to
  // come, not something to recover from.
  if (nr_sets_ != 0) STRATA_BUG("PasidSpace destroyed while PasidSets of it exist");
  STRATA_BUG_ON(allocated_.load(std::memory_order_relaxed) != 0);
  kfree(bitmap_);
}

unsigned long PasidSpace::find_zero_locked(unsigned long from, unsigned long to) const {
  unsigned long i = from;
  while (i <= to) {
    const unsigned long word = i / kBitsPerWord;
    // Bits below i in this word are treated as taken.
    const unsigned long free =
        ~bitmap_[word] & (~0UL << (i % kBitsPerWord));  // i % 64 < 64: the shift is defined
    if (free) {
      const unsigned long bit = word * kBitsPerWord + __builtin_ctzl(free);
      return bit <= to ? bit : to + 1;
    }
    i = (word + 1) * kBitsPerWord;
  }
  return to + 1;
}

Result<ioasid_t> PasidSpace::alloc_locked(ioasid_t lo, ioasid_t hi) {
  const unsigned long first = lo - min_, last = hi - min_;
  // Next-fit: start at the hint when it is inside the caller's range, else at the range's
  // start; then wrap to the start.
  const unsigned long start = (hint_ >= lo && hint_ <= hi) ? hint_ - min_ : first;
  unsigned long bit = find_zero_locked(start, last);
  if (bit > last) {
    if (start == first) return Error(-ENOSPC);
    bit = find_zero_locked(first, start - 1);
    if (bit > start - 1) return Error(-ENOSPC);
  }
  bitmap_[bit / kBitsPerWord] |= 1UL << (bit % kBitsPerWord);
  allocated_.store(allocated_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  const ioasid_t pasid = static_cast<ioasid_t>(min_ + bit);
  hint_ = pasid == max_ ? min_ : pasid + 1;
  return pasid;
}

void PasidSpace::free_locked(ioasid_t pasid) {
  STRATA_BUG_ON(pasid < min_ || pasid > max_);
  const unsigned long bit = pasid - min_;
  unsigned long& word = bitmap_[bit / kBitsPerWord];
  const unsigned long mask = 1UL << (bit % kBitsPerWord);
  // A set only frees what its tree holds, and its tree only holds what the bitmap gave it.
  STRATA_BUG_ON(!(word & mask));
  word &= ~mask;
  allocated_.store(allocated_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
}

// --- PasidSet ----------------------------------------------------------------------------------

Result<Box<PasidSet>> PasidSet::create(PasidSpace& space, unsigned quota) {
  if (quota == 0) return Error(-EINVAL);
  return make_box<PasidSet>(Token{}, space, quota);
}

PasidSet::PasidSet(Token, PasidSpace& space, unsigned quota) : space_(space), quota_(quota) {
  Guard g(space_.lock_);
  space_.nr_sets_++;
}

PasidSet::~PasidSet() {
  free_all();
  Guard g(space_.lock_);
  space_.nr_sets_--;
}

Result<ioasid_t> PasidSet::alloc(ioasid_t min, ioasid_t max, void* priv) {
  if (min > max) return Error(-EINVAL);
  const ioasid_t lo = min > space_.min_ ? min : space_.min_;
  const ioasid_t hi = max < space_.max_ ? max : space_.max_;
  if (lo > hi) return Error(-EINVAL);

  // The node is allocated before the locks are taken (no allocation under a SpinLock) and
  // freed after them if the allocation fails.
  void* mem = kmalloc(sizeof(Node), alignof(Node));
  if (!mem) return Error(-ENOMEM);
  Node* node = new (mem) Node();
  int err = 0;
  {
    Guard g(lock_);
    if (used_.load(std::memory_order_relaxed) >= quota_) {
      err = -ENOSPC;
    } else {
      Result<ioasid_t> r = [&] {
        Guard sg(space_.lock_);
        return space_.alloc_locked(lo, hi);
      }();
      if (r.ok()) {
        node->pasid = r.value();
        node->priv = priv;
        // The bitmap gave the PASID to nobody else, so it cannot already be in the tree.
        STRATA_BUG_ON(!tree_.insert_unique(*node).second);
        used_.store(used_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        return node->pasid;
      }
      err = r.error().code();
    }
  }
  node->~Node();
  kfree(node);
  return Error(err);
}

Result<void> PasidSet::free(ioasid_t pasid) {
  if (pasid < space_.min_ || pasid > space_.max_) return Error(-EINVAL);
  Node* node;
  {
    Guard g(lock_);
    auto it = tree_.find(pasid);
    // Another set's PASID is not in this tree: -ENOENT, as for a PASID nobody holds.
    if (it == tree_.end()) return Error(-ENOENT);
    node = &*it;
    tree_.erase(it);
    {
      Guard sg(space_.lock_);
      space_.free_locked(pasid);
    }
    used_.store(used_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  }
  node->~Node();
  kfree(node);
  return ok();
}

Result<unsigned> PasidSet::free_range(ioasid_t min, ioasid_t max) {
  if (min > max) return Error(-EINVAL);
  unsigned count;
  Node* chain;
  {
    Guard g(lock_);
    chain = unlink_range_locked(min, max, &count);
  }
  free_nodes(chain);
  return count;
}

Result<void*> PasidSet::find(ioasid_t pasid) const {
  if (pasid < space_.min_ || pasid > space_.max_) return Error(-EINVAL);
  Guard g(lock_);
  auto it = tree_.find(pasid);
  if (it == tree_.end()) return Error(-ENOENT);
  return it->priv;
}

void PasidSet::free_all() {
  Node* chain;
  unsigned count;
  {
    Guard g(lock_);
    chain = unlink_range_locked(0, ~ioasid_t{0}, &count);
  }
  free_nodes(chain);
}

PasidSet::Node* PasidSet::unlink_range_locked(ioasid_t min, ioasid_t max, unsigned* count) {
  Node* chain = nullptr;
  unsigned n = 0;
  auto it = tree_.lower_bound(min);
  if (it != tree_.end() && it->pasid <= max) {
    Guard sg(space_.lock_);
    while (it != tree_.end() && it->pasid <= max) {
      Node& node = *it;
      it = tree_.erase(it);
      space_.free_locked(node.pasid);
      node.next_free = chain;
      chain = &node;
      n++;
    }
  }
  used_.store(used_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  *count = n;
  return chain;
}

void PasidSet::free_nodes(Node* chain) {
  while (chain) {
    Node* next = chain->next_free;
    chain->~Node();
    kfree(chain);
    chain = next;
  }
}

}  // namespace strata
