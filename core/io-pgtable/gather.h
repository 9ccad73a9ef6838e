// SPDX-License-Identifier: MIT
// IOTLB gather: what an unmap changed, for the caller's invalidation (Linux's
// struct iommu_iotlb_gather).
//
// io-pgtable records each unmap_pages call once: the range, the granule, and whether entries
// that pointed to tables went away (then the walk caches must be invalidated too, not only the
// leaf TLB entries). Table pages the unmap freed hang on the gather's freelist and are released
// by release_freelist() only after the caller has invalidated: until then the hardware may
// still be walking them.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "arch/bug.h"

namespace strata {

struct TablePage;  // core/io-pgtable/table.h

class IotlbGather {
 public:
  IotlbGather() = default;
  IotlbGather(const IotlbGather&) = delete;
  IotlbGather& operator=(const IotlbGather&) = delete;
  // The caller must have invalidated and released the freelist; dropping it would leak, and
  // releasing it here would free pages the hardware might still walk.
  ~IotlbGather() { STRATA_BUG_ON(freelist_ != nullptr); }

  // Adds [iova, iova + size) unmapped with pages of `granule` bytes.
  void add_range(uint64_t iova, uint64_t size, uint64_t granule) {
    if (size == 0) return;
    if (iova < start_) start_ = iova;
    if (iova + size - 1 > end_) end_ = iova + size - 1;
    if (granule_ != 0 && granule != granule_) mixed_ = true;
    if (granule_ == 0 || granule < granule_) granule_ = granule;
  }
  // A table page that an unmap removed from the tree; freed by release_freelist().
  void add_freed_table(TablePage* page);

  bool empty() const { return end_ == 0 && start_ == UINT64_MAX; }
  uint64_t start() const { return start_; }
  uint64_t end() const { return end_; }  // inclusive, as Linux's
  uint64_t size() const { return empty() ? 0 : end_ - start_ + 1; }
  // Smallest page size unmapped: the TLBI granule / TTL hint.
  uint64_t granule() const { return granule_; }
  // Whether leaves of more than one size were gathered: granule() is then only the smallest,
  // and a hint that every leaf has that size (SMMUv3's TTL) would be wrong. Linux syncs the
  // gather whenever the page size changes instead (iommu_iotlb_gather_add_page).
  bool mixed_granules() const { return mixed_; }
  // True when only leaf entries were removed: a leaf-only invalidation (TLBI ... Leaf = 1,
  // VT-d IH = 1) suffices. False when table entries went away: walk caches must go too.
  bool leaf_only() const { return freelist_ == nullptr; }
  bool has_freelist() const { return freelist_ != nullptr; }

  // After the caller's invalidation has completed: frees the gathered table pages and resets.
  void release_freelist();
  // Hands the gathered table pages to `to`, which holds none, for a caller that invalidates
  // after this gather is gone (the DMA API's flush queue keeps them in its entry until its
  // flush; Linux splices gather->freelist into the queue entry). `to` releases them.
  void move_freelist_to(IotlbGather& to) {
    STRATA_BUG_ON(to.freelist_ != nullptr);
    to.freelist_ = freelist_;
    freelist_ = nullptr;
  }
  void reset() {
    STRATA_BUG_ON(freelist_ != nullptr);
    start_ = UINT64_MAX;
    end_ = 0;
    granule_ = 0;
    mixed_ = false;
  }

 private:
  uint64_t start_ = UINT64_MAX;
  uint64_t end_ = 0;
  uint64_t granule_ = 0;
  bool mixed_ = false;
  TablePage* freelist_ = nullptr;
};

}  // namespace strata
