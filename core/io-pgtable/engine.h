// SPDX-License-Identifier: MIT
// The walker every format shares: Pgtable<Format> implements IoPgtable over a radix tree of
// TablePages, and Format says how entries are encoded.
//
// Depths count from the root (depth 0) to the leaf table (depth levels - 1); the format maps
// them to its own level numbers. An entry at depth d covers 2^shift(d) bytes of input.
//
// How concurrent mappers on disjoint ranges share the tree without a lock:
//  - A non-leaf entry is claimed through its child slot (TablePage::children), never through
//    the hardware entry: whoever wins the compare-and-swap of the slot from null owns the new
//    table, and the loser frees its pages and descends into the winner's table.
//  - A mapper that finds an empty entry builds everything below it privately first (every
//    table down to the leaf, and the leaves themselves), so one CAS publishes a consistent
//    subtree, and an allocation failure leaves the shared tree untouched.
//  - The hardware entry is written after the subtree is complete and ordered behind it
//    (dma_wmb; for a non-coherent walker, each page is cleaned first).
//  - Readers descend by the child slot; a hardware entry that is valid while the slot is null
//    is a block.
// Format requirements (see lpae.h, vtd.h):
//   uint64_t leaf_bits(int prot, bool last) const   attributes + type of a leaf at a depth
//   uint64_t table_bits(phys_addr_t table) const    a non-leaf entry pointing at `table`
//   uint64_t oa_bits(phys_addr_t pa) const          where an output address goes in an entry
//   phys_addr_t oa(uint64_t pte) const              the output address an entry holds
//   bool linear_oa() const                          oa_bits(pa + k) == oa_bits(pa) + k
//   bool valid(uint64_t pte) const
//   bool dirty(uint64_t pte) const; uint64_t clean(uint64_t pte) const
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "arch/bug.h"
#include "arch/cpu.h"
#include "arch/dma.h"
#include "core/io-pgtable/io_pgtable.h"
#include "core/io-pgtable/table.h"

namespace strata {

// The shape of a table tree.
struct PgtableGeometry {
  unsigned granule_shift;   // log2 of a non-root table's size
  unsigned bits_per_level;  // index bits of a non-root table
  unsigned levels;          // tables from the root to the leaf table
  unsigned root_bits;       // index bits of the root: fewer than bits_per_level for a partial
                            // root, more for concatenated start tables
  unsigned ias;
  unsigned oas;
  uint64_t pgsize_bitmap;  // leaf sizes in use: each must be 2^shift(d) for some depth d

  unsigned shift(unsigned depth) const {
    return granule_shift + (levels - 1 - depth) * bits_per_level;
  }
};

template <typename Format>
class Pgtable final : public IoPgtable {
 public:
  Pgtable(const Format& format, const PgtableGeometry& geo, const IoPgtableCfg& cfg,
          TablePage* root)
      : fmt_(format),
        geo_(geo),
        dma_(*cfg.dma),
        coherent_(cfg.coherent_walk),
        tlb_(cfg.tlb),
        cookie_(cfg.cookie),
        root_(root) {
    for (int& depth : depth_of_shift_) depth = -1;
    for (unsigned d = 0; d < geo.levels; d++) {
      shift_[d] = geo.shift(d);
      const unsigned b = d == 0 ? geo.root_bits : geo.bits_per_level;
      index_mask_[d] = (uint64_t{1} << b) - 1;
      if (geo.pgsize_bitmap & (uint64_t{1} << shift_[d])) depth_of_shift_[shift_[d]] = d;
    }
    for (unsigned prot = 0; prot < kProtCombinations; prot++) {
      leaf_attrs_[0][prot] = fmt_.leaf_bits(static_cast<int>(prot), false);
      leaf_attrs_[1][prot] = fmt_.leaf_bits(static_cast<int>(prot), true);
    }
  }
  ~Pgtable() override { free_table_tree(root_); }

  Result<size_t> map_pages(uint64_t iova, phys_addr_t paddr, size_t pgsize, size_t pgcount,
                           int prot) override {
    if (!(prot & (IOMMU_READ | IOMMU_WRITE))) return Error(-EINVAL);
    const int depth = leaf_depth(iova, paddr, pgsize, pgcount);
    if (depth < 0) return Error(-EINVAL);
    const unsigned leaf = static_cast<unsigned>(depth);
    const size_t idx = index(iova, leaf);
    const size_t n = clamp_count(idx, leaf, pgcount);
    if (!fits(iova, n * pgsize, geo_.ias) || !fits(paddr, n * pgsize, geo_.oas))
      return Error(-ERANGE);
    const uint64_t attrs = leaf_attrs_[leaf == last_][prot & (kProtCombinations - 1)];

    TablePage* t = root_;
    for (unsigned d = 0; d < leaf;) {
      const size_t i = index(iova, d);
      bool block;
      if (TablePage* child = child_of(t, i, block)) {
        t = child;
        d++;
        continue;
      }
      if (block) return Error(-EEXIST);  // a block covers iova
      const bool published = STRATA_TRY(publish_subtree(t, i, d, leaf, iova, paddr, n, attrs));
      if (published) return n * pgsize;
      // Another mapper installed a table here first: descend into it.
    }

    uint64_t* p = t->ptes() + idx;
    uint64_t live = 0;
    for (size_t k = 0; k < n; k++) live |= __atomic_load_n(&p[k], __ATOMIC_RELAXED);
    if (live) STRATA_TRY(replace_empty_tables(t, idx, n, leaf, iova, pgsize));
    fill(p, n, paddr, pgsize, attrs);
    if (!coherent_) dma_.sync_for_device(t->region, idx * 8, n * 8);
    return n * pgsize;
  }

  Result<size_t> unmap_pages(uint64_t iova, size_t pgsize, size_t pgcount,
                             IotlbGather& gather) override {
    const int depth = leaf_depth(iova, 0, pgsize, pgcount);
    if (depth < 0) return Error(-EINVAL);
    const unsigned leaf = static_cast<unsigned>(depth);
    const size_t idx = index(iova, leaf);
    const size_t n = clamp_count(idx, leaf, pgcount);
    if (!fits(iova, n * pgsize, geo_.ias)) return Error(-ERANGE);

    TablePage* t = root_;
    for (unsigned d = 0; d < leaf; d++) {
      bool block;
      TablePage* child = child_of(t, index(iova, d), block);
      if (!child) {
        // A block larger than pgsize would be cut in two: refused (io_pgtable.h).
        if (block) return Error(-EINVAL);
        return size_t{0};  // a hole
      }
      t = child;
    }

    uint64_t* p = t->ptes() + idx;
    size_t k = 0;
    if (leaf == last_) {
      for (; k < n; k++) {
        if (__atomic_load_n(&p[k], __ATOMIC_RELAXED) == 0) break;
        __atomic_store_n(&p[k], 0, __ATOMIC_RELAXED);
      }
    } else {
      for (; k < n; k++) {
        if (__atomic_load_n(&p[k], __ATOMIC_RELAXED) == 0) break;
        __atomic_store_n(&p[k], 0, __ATOMIC_RELAXED);
        // A table under a range unmapped at this size goes whole, after the invalidation.
        // Plain load first: most entries are blocks, and overlapping calls are a caller bug,
        // so no one else can be installing a table here.
        std::atomic<TablePage*>& slot = t->children[idx + k];
        if (TablePage* sub = slot.load(std::memory_order_acquire)) {
          slot.store(nullptr, std::memory_order_release);
          gather.add_freed_table(sub);
        }
      }
    }
    if (k == 0) return size_t{0};
    if (!coherent_) dma_.sync_for_device(t->region, idx * 8, k * 8);
    gather.add_range(iova, k * pgsize, pgsize);
    return k * pgsize;
  }

  Result<phys_addr_t> iova_to_phys(uint64_t iova) override {
    if (!fits(iova, 1, geo_.ias)) return Error(-ERANGE);
    TablePage* t = root_;
    for (unsigned d = 0;; d++) {
      const size_t i = index(iova, d);
      if (d < last_) {
        bool block;
        if (TablePage* child = child_of(t, i, block)) {
          t = child;
          continue;
        }
      }
      const uint64_t pte = dma_read64(&t->ptes()[i]);
      if (!fmt_.valid(pte)) return Error(-ENOENT);
      return fmt_.oa(pte) | (iova & ((uint64_t{1} << shift_[d]) - 1));
    }
  }

  Result<void> read_and_clear_dirty(uint64_t iova, size_t size, unsigned flags,
                                    DirtyBitmap& dirty) override {
    if (size == 0) return Error(-EINVAL);
    if (!fits(iova, size, geo_.ias)) return Error(-ERANGE);
    walk_dirty(root_, 0, 0, iova, iova + size - 1, !(flags & IOMMU_DIRTY_NO_CLEAR), dirty);
    return ok();
  }

  size_t table_bytes() const override { return tree_bytes(root_); }

 private:
  size_t index(uint64_t iova, unsigned d) const { return (iova >> shift_[d]) & index_mask_[d]; }

  // The depth whose entries are pgsize leaves, or -1 if the arguments are not a valid request.
  int leaf_depth(uint64_t iova, phys_addr_t paddr, size_t pgsize, size_t pgcount) const {
    if (pgcount == 0 || (pgsize & (pgsize - 1)) || !(pgsize & geo_.pgsize_bitmap)) return -1;
    if ((iova | paddr) & (pgsize - 1)) return -1;
    return depth_of_shift_[__builtin_ctzll(pgsize)];
  }
  // Entries from idx to the end of the depth-d table, at most pgcount.
  size_t clamp_count(size_t idx, unsigned d, size_t pgcount) const {
    const size_t room = index_mask_[d] + 1 - idx;
    return pgcount < room ? pgcount : room;
  }
  // Whether [addr, addr + size) lies below 2^bits.
  static bool fits(uint64_t addr, uint64_t size, unsigned bits) {
    return (addr >> bits) == 0 && ((addr + size - 1) >> bits) == 0;
  }

  // The table under entry i, or nullptr with `block` telling a block from an empty entry.
  // A table is published by a CAS of the child slot and then a release store of the entry, so
  // an entry seen live while the slot looked empty may be a table published between the two
  // reads: the slot is read again after the (acquire) entry read before calling it a block.
  TablePage* child_of(TablePage* t, size_t i, bool& block) const {
    if (TablePage* child = t->children[i].load(std::memory_order_acquire)) return child;
    const uint64_t pte = __atomic_load_n(&t->ptes()[i], __ATOMIC_ACQUIRE);
    if (pte == 0) {
      block = false;
      return nullptr;
    }
    TablePage* child = t->children[i].load(std::memory_order_acquire);
    block = child == nullptr;
    return child;
  }

  // Whether nothing below `t` maps anything.
  bool subtree_empty(const TablePage* t) const {
    for (unsigned i = 0; i < t->nptes; i++) {
      if (t->children) {
        if (const TablePage* child = t->children[i].load(std::memory_order_acquire)) {
          if (!subtree_empty(child)) return false;
          continue;
        }
      }
      if (__atomic_load_n(&t->ptes()[i], __ATOMIC_RELAXED) != 0) return false;
    }
    return true;
  }

  // Entries idx..idx+n of `t` are about to become blocks, and some are live. Linux's rule: a
  // live leaf is -EEXIST, but a table that maps nothing any more (emptied page by page) gives
  // way to the block. Removing it needs the walk caches flushed before its pages are freed,
  // so it takes the flush ops; without them, or if anything below still maps, -EEXIST and
  // nothing changes.
  Result<void> replace_empty_tables(TablePage* t, size_t idx, size_t n, unsigned leaf,
                                    uint64_t iova, size_t pgsize) {
    if (leaf == last_ || !tlb_ || !tlb_->tlb_flush_walk) return Error(-EEXIST);
    uint64_t* p = t->ptes() + idx;
    for (size_t k = 0; k < n; k++) {
      if (__atomic_load_n(&p[k], __ATOMIC_RELAXED) == 0) continue;
      const TablePage* child = t->children[idx + k].load(std::memory_order_acquire);
      if (!child || !subtree_empty(child)) return Error(-EEXIST);
    }
    TablePage* dead = nullptr;
    for (size_t k = 0; k < n; k++) {
      if (__atomic_load_n(&p[k], __ATOMIC_RELAXED) == 0) continue;
      __atomic_store_n(&p[k], 0, __ATOMIC_RELAXED);
      TablePage* child = t->children[idx + k].exchange(nullptr, std::memory_order_acq_rel);
      child->next_free = dead;
      dead = child;
    }
    if (!coherent_) dma_.sync_for_device(t->region, idx * 8, n * 8);
    tlb_->tlb_flush_walk(iova, n * pgsize, size_t{1} << geo_.granule_shift, cookie_);
    while (TablePage* page = dead) {
      dead = page->next_free;
      free_table_tree(page);
    }
    return ok();
  }

  // The leaves themselves: one store each.
  void fill(uint64_t* p, size_t n, phys_addr_t paddr, size_t pgsize, uint64_t attrs) const {
    if (fmt_.linear_oa()) {
      uint64_t pte = cpu_to_le64(attrs | fmt_.oa_bits(paddr));
      const uint64_t step = cpu_to_le64(pgsize);
      for (size_t k = 0; k < n; k++, pte += step) __atomic_store_n(&p[k], pte, __ATOMIC_RELAXED);
    } else {
      for (size_t k = 0; k < n; k++) dma_write64(&p[k], attrs | fmt_.oa_bits(paddr + k * pgsize));
    }
  }

  // Builds the tables for depths d+1 .. leaf below entry i of `parent` privately, fills the
  // leaves, and publishes the subtree with one CAS of the child slot. false: another mapper
  // won the slot (our pages are freed). -ENOMEM: nothing was changed.
  Result<bool> publish_subtree(TablePage* parent, size_t i, unsigned d, unsigned leaf,
                               uint64_t iova, phys_addr_t paddr, size_t n, uint64_t attrs) {
    TablePage* chain[kMaxDepth];  // chain[0] hangs under parent; chain[count - 1] is the leaf
    unsigned count = 0;
    for (unsigned depth = d + 1; depth <= leaf; depth++) {
      auto r = alloc_table_page(dma_, 1u << geo_.bits_per_level, size_t{1} << geo_.granule_shift,
                                depth < last_);
      if (!r.ok()) {
        if (count) free_table_tree(chain[0]);
        return r.error();
      }
      TablePage* page = r.value();
      if (count) {
        TablePage* above = chain[count - 1];
        const size_t ai = index(iova, depth - 1);
        above->children[ai].store(page, std::memory_order_relaxed);
        dma_write64(&above->ptes()[ai], fmt_.table_bits(page->region.phys));
      }
      chain[count++] = page;
    }
    fill(chain[count - 1]->ptes() + index(iova, leaf), n, paddr, size_t{1} << shift_[leaf], attrs);

    TablePage* expected = nullptr;
    if (!parent->children[i].compare_exchange_strong(expected, chain[0], std::memory_order_acq_rel,
                                                     std::memory_order_acquire)) {
      free_table_tree(chain[0]);
      return false;
    }
    // The walker may follow the new entry as soon as it is written: the subtree must be
    // visible to it first.
    if (!coherent_)
      for (unsigned k = 0; k < count; k++)
        dma_.sync_for_device(chain[k]->region, 0, chain[k]->region.size);
    dma_wmb();
    // Release: pairs with child_of()'s acquire read of the entry.
    __atomic_store_n(&parent->ptes()[i], cpu_to_le64(fmt_.table_bits(chain[0]->region.phys)),
                     __ATOMIC_RELEASE);
    if (!coherent_) dma_.sync_for_device(parent->region, i * 8, 8);
    return true;
  }

  void walk_dirty(TablePage* t, unsigned d, uint64_t base, uint64_t first, uint64_t last,
                  bool clear, DirtyBitmap& dirty) {
    const uint64_t span = uint64_t{1} << shift_[d];
    const size_t lo = first > base ? (first - base) >> shift_[d] : 0;
    const size_t hi =
        (last - base) >> shift_[d] > index_mask_[d] ? index_mask_[d] : (last - base) >> shift_[d];
    for (size_t i = lo; i <= hi; i++) {
      const uint64_t entry_base = base + i * span;
      if (d < last_) {
        if (TablePage* child = t->children[i].load(std::memory_order_acquire)) {
          walk_dirty(child, d + 1, entry_base, first, last, clear, dirty);
          continue;
        }
      }
      uint64_t* p = &t->ptes()[i];
      uint64_t pte = dma_read64(p);
      if (!fmt_.valid(pte) || !fmt_.dirty(pte)) continue;
      dirty.record(entry_base, span);
      if (!clear) continue;
      // The hardware sets dirty state with atomic updates of the same word.
      uint64_t old = cpu_to_le64(pte);
      while (!__atomic_compare_exchange_n(p, &old, cpu_to_le64(fmt_.clean(le64_to_cpu(old))), false,
                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
      }
      if (!coherent_) dma_.sync_for_device(t->region, i * 8, 8);
    }
  }

  size_t tree_bytes(const TablePage* t) const {
    size_t bytes = t->footprint();
    if (t->children)
      for (unsigned i = 0; i < t->nptes; i++)
        if (const TablePage* c = t->children[i].load(std::memory_order_relaxed))
          bytes += tree_bytes(c);
    return bytes;
  }

  static constexpr unsigned kMaxDepth = 6;
  // Every combination of the IOMMU_* prot bits, so a map looks its attributes up instead of
  // computing them (the computation was a fifth of a single-page map).
  static constexpr unsigned kProtCombinations = 64;
  static_assert(((IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE | IOMMU_NOEXEC | IOMMU_MMIO | IOMMU_PRIV) &
                 ~(kProtCombinations - 1)) == 0);

  const Format fmt_;
  const PgtableGeometry geo_;
  DmaAllocator& dma_;
  const bool coherent_;
  const IommuFlushOps* const tlb_;
  void* const cookie_;
  TablePage* const root_;
  const unsigned last_ = geo_.levels - 1;
  unsigned shift_[kMaxDepth] = {};
  uint64_t index_mask_[kMaxDepth] = {};
  uint64_t leaf_attrs_[2][kProtCombinations];  // [leaf is a page (last level)][prot]
  int depth_of_shift_[64];  // leaf depth of a page size 2^shift, -1 if not in use
};

}  // namespace strata
