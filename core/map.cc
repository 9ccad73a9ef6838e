// SPDX-License-Identifier: MIT
// Map and unmap on paging domains (Linux's iommu_map, __iommu_unmap and iommu_pgsize).
#include "core/internal.h"

namespace strata {

namespace {

inline unsigned fls64(uint64_t x) { return 63 - __builtin_clzll(x); }  // x != 0
inline unsigned ffs64(uint64_t x) { return __builtin_ctzll(x); }       // x != 0
inline uint64_t mask_upto(unsigned bit) {
  return bit >= 63 ? ~uint64_t{0} : (uint64_t{2} << bit) - 1;
}

// The page size for the next piece of [iova, iova + size) -> paddr, and how many such pages to
// map in one call (Linux's iommu_pgsize): the largest supported size that fits the remaining
// length and the alignment of both addresses; and, when a larger size becomes usable further
// on, only as many pages as reach its boundary, so the next call can switch to it.
size_t pgsize_for(uint64_t bitmap, uint64_t iova, phys_addr_t paddr, size_t size, size_t* count) {
  const uint64_t addr_merge = iova | paddr;
  uint64_t sizes = bitmap & mask_upto(fls64(size));
  if (addr_merge) sizes &= mask_upto(ffs64(addr_merge));
  STRATA_BUG_ON(sizes == 0);  // the caller checked granule alignment
  const unsigned idx = fls64(sizes);
  const size_t pgsize = size_t{1} << idx;

  const uint64_t larger = bitmap & ~mask_upto(idx);
  if (larger) {
    const uint64_t next = uint64_t{1} << ffs64(larger);
    // A larger page needs iova and paddr equally offset within it.
    if (!((iova ^ paddr) & (next - 1))) {
      const uint64_t to_boundary = next - (addr_merge & (next - 1));
      if (to_boundary + next <= size) size = to_boundary;
    }
  }
  *count = size >> idx;
  return pgsize;
}

Result<void> check_range(const Domain& domain, uint64_t iova, phys_addr_t paddr, size_t size) {
  if (!domain_type_is_paging(domain.type())) return Error(-EINVAL);
  const uint64_t granule = domain.granule();
  if (size == 0 || ((iova | paddr | size) & (granule - 1))) return Error(-EINVAL);
  if (iova + (size - 1) < iova) return Error(-EINVAL);
  return {};
}

}  // namespace

bool IommuCore::resv_overlaps(Domain& domain, uint64_t iova, size_t size) {
  Guard<SpinLock> g(domain.resv_lock_);
  for (const ResvLink& link : domain.resv_)
    if (link.regions->find_overlap(iova, size, kResvNoMap)) return true;
  return false;
}

Result<void> iommu_map(Domain& domain, uint64_t iova, phys_addr_t paddr, size_t size, int prot) {
  return IommuCore::map(domain, iova, paddr, size, prot, true);
}

Result<void> IommuCore::map(Domain& domain, uint64_t iova, phys_addr_t paddr, size_t size, int prot,
                            bool check_resv) {
  STRATA_TRY(check_range(domain, iova, paddr, size));
  const DomainGeometry& geo = domain.geometry();
  if (geo.force_aperture && (iova < geo.aperture_start || iova + (size - 1) > geo.aperture_end))
    return Error(-ERANGE);
  // DMA domains get their IOVAs from an allocator that has the reserved regions taken out
  // (dma-iommu), so only other domains pay for the check. It is made before mapping and again
  // after: a group attaching meanwhile links its regions before it checks the domain's
  // mappings (set_domain_locked), so one of the two sees the other.
  check_resv = check_resv && !domain_type_is_dma(domain.type());
  if (check_resv && resv_overlaps(domain, iova, size)) return Error(-EADDRINUSE);

  const uint64_t orig_iova = iova;
  size_t left = size;
  while (left) {
    size_t count;
    const size_t pgsize = pgsize_for(domain.pgsize_bitmap(), iova, paddr, left, &count);
    Result<size_t> mapped = domain.map_pages(iova, paddr, pgsize, count, prot);
    if (!mapped.ok() || mapped.value() == 0) {
      // All or nothing: take back what this call mapped (Linux does the same).
      if (left != size) {
        IotlbGather gather;
        (void)unmap(domain, orig_iova, size - left, gather);
        iommu_iotlb_sync(domain, gather);
      }
      return mapped.ok() ? Error(-EINVAL) : mapped.error();
    }
    STRATA_BUG_ON(mapped.value() > left || mapped.value() % pgsize);
    iova += mapped.value();
    paddr += mapped.value();
    left -= mapped.value();
  }
  if (check_resv && resv_overlaps(domain, orig_iova, size)) {
    IotlbGather gather;
    (void)unmap(domain, orig_iova, size, gather);
    iommu_iotlb_sync(domain, gather);
    return Error(-EADDRINUSE);
  }
  domain.iotlb_sync_map(orig_iova, size);
  return {};
}

Result<size_t> iommu_unmap(Domain& domain, uint64_t iova, size_t size) {
  IotlbGather gather;
  Result<size_t> r = IommuCore::unmap(domain, iova, size, gather);
  iommu_iotlb_sync(domain, gather);
  return r;
}

Result<size_t> iommu_unmap_fast(Domain& domain, uint64_t iova, size_t size, IotlbGather& gather) {
  return IommuCore::unmap(domain, iova, size, gather);
}

Result<size_t> IommuCore::unmap(Domain& domain, uint64_t iova, size_t size, IotlbGather& gather) {
  STRATA_TRY(check_range(domain, iova, iova, size));
  size_t unmapped = 0;
  while (unmapped < size) {
    size_t count;
    const size_t pgsize = pgsize_for(domain.pgsize_bitmap(), iova, iova, size - unmapped, &count);
    Result<size_t> r = domain.unmap_pages(iova, pgsize, count, gather);
    if (!r.ok()) {
      if (unmapped == 0) return r.error();
      break;  // what was unmapped before stays unmapped; report it
    }
    if (r.value() == 0) break;  // a hole
    iova += r.value();
    unmapped += r.value();
  }
  return unmapped;
}

void iommu_iotlb_sync(Domain& domain, IotlbGather& gather) {
  if (!gather.empty() || gather.has_freelist()) domain.iotlb_sync(gather);
  gather.release_freelist();
  gather.reset();
}

void iommu_flush_iotlb_all(Domain& domain) { domain.flush_iotlb_all(); }

Result<phys_addr_t> iommu_iova_to_phys(Domain& domain, uint64_t iova) {
  if (domain.type() == DomainType::identity) return iova;
  if (!domain_type_is_paging(domain.type())) return Error(-EINVAL);
  return domain.iova_to_phys(iova);
}

}  // namespace strata
