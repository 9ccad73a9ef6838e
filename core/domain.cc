// SPDX-License-Identifier: MIT
#include "core/domain.h"

namespace strata {

const char* domain_type_name(DomainType type) {
  switch (type) {
    case DomainType::blocked: return "blocked";
    case DomainType::identity: return "identity";
    case DomainType::paging: return "paging";
    case DomainType::dma: return "dma";
    case DomainType::dma_fq: return "dma-fq";
    case DomainType::nested: return "nested";
    case DomainType::sva: return "sva";
  }
  return "?";
}

const char* resv_type_name(ResvType type) {
  switch (type) {
    case ResvType::direct: return "direct";
    case ResvType::direct_relaxable: return "direct-relaxable";
    case ResvType::reserved: return "reserved";
    case ResvType::msi: return "msi";
    case ResvType::sw_msi: return "sw-msi";
  }
  return "?";
}

Result<void> ReservedRegions::add(const ReservedRegion& region) {
  if (region.length == 0 || region.start + (region.length - 1) < region.start)
    return Error(-EINVAL);
  for (const ReservedRegion& r : *this)
    if (r.start == region.start && r.length == region.length && r.type == region.type &&
        r.prot == region.prot)
      return {};
  if (n_ == kMax) return Error(-ENOSPC);
  regions_[n_++] = region;
  return {};
}

const ReservedRegion* ReservedRegions::find_overlap(uint64_t iova, uint64_t size,
                                                    unsigned types) const {
  for (const ReservedRegion& r : *this)
    if ((types & resv_mask(r.type)) && r.overlaps(iova, size)) return &r;
  return nullptr;
}

}  // namespace strata
