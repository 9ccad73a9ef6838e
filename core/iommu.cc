// SPDX-License-Identifier: MIT
// IOMMU registration, device probe and release, domain allocation, capabilities (Linux's
// iommu_device_register, __iommu_probe_device, iommu_setup_default_domain, ...).
#include "core/iommu.h"

#include "arch/log.h"
#include "core/internal.h"

namespace strata {

namespace {

bool is_default_type(DomainType t) {
  return t == DomainType::dma || t == DomainType::dma_fq || t == DomainType::identity;
}

}  // namespace

// ---- Domain allocation ----

// Every domain the core hands out comes through here, so a driver that returns the wrong kind
// of domain is caught at once rather than when it misbehaves later.
Result<Box<Domain>> IommuCore::domain_alloc(IommuDevice& iommu, Device& dev, DomainType type,
                                            uint32_t flags) {
  Result<Box<Domain>> r = [&]() -> Result<Box<Domain>> {
    switch (type) {
      case DomainType::paging:
      case DomainType::dma:
      case DomainType::dma_fq: return iommu.domain_alloc_paging(dev, type, flags);
      case DomainType::identity: return iommu.domain_alloc_identity(dev);
      case DomainType::blocked: {
        // Linux's __iommu_group_alloc_blocking_domain: a paging domain with nothing mapped
        // blocks DMA just as well, so drivers need not implement blocked domains.
        Result<Box<Domain>> b = iommu.domain_alloc_blocked(dev);
        if (b.ok() || b.error().code() != -EOPNOTSUPP) return b;
        type = DomainType::paging;
        return iommu.domain_alloc_paging(dev, type, 0);
      }
      case DomainType::nested:
      case DomainType::sva: break;
    }
    return Error(-EINVAL);
  }();
  if (!r.ok()) return r.error();
  Box<Domain> domain = r.release_value();
  STRATA_BUG_ON(&domain->owner() != &iommu);
  STRATA_BUG_ON(domain->type() != type);
  if (domain_type_is_paging(type)) {
    // A paging domain the core cannot split ranges for, or whose aperture is empty.
    STRATA_BUG_ON(domain->pgsize_bitmap() == 0);
    STRATA_BUG_ON(domain->geometry().aperture_end < domain->geometry().aperture_start);
  }
  domain->alloc_flags_ = flags;
  return domain;
}

Result<Box<Domain>> iommu_paging_domain_alloc(Device& dev, uint32_t flags) {
  if (!dev.iommu()) return Error(-ENODEV);
  return IommuCore::domain_alloc(*dev.iommu(), dev, DomainType::paging, flags);
}

Result<Box<Domain>> iommu_domain_alloc_nested(Device& dev, Domain& parent, const void* data,
                                              size_t len) {
  return IommuCore::domain_alloc_nested(dev, parent, data, len);
}

Result<Box<Domain>> IommuCore::domain_alloc_nested(Device& dev, Domain& parent, const void* data,
                                                   size_t len) {
  IommuDevice* iommu = dev.iommu();
  if (!iommu) return Error(-ENODEV);
  if (&parent.owner() != iommu || parent.type() != DomainType::paging || !parent.nest_parent())
    return Error(-EINVAL);
  Box<Domain> domain = STRATA_TRY(iommu->domain_alloc_nested(dev, parent, data, len));
  STRATA_BUG_ON(&domain->owner() != iommu || domain->type() != DomainType::nested);
  domain->parent_ = &parent;
  get(parent);
  return domain;
}

// ---- Registration ----

IommuDevice::~IommuDevice() {
  STRATA_BUG_ON(registered_);
  STRATA_BUG_ON(!groups_.empty());
}

Result<void> iommu_device_register(IommuDevice& iommu, const IommuConfig& config) {
  return IommuCore::register_iommu(iommu, config);
}

Result<void> iommu_device_unregister(IommuDevice& iommu) {
  return IommuCore::unregister_iommu(iommu);
}

Result<void> IommuCore::register_iommu(IommuDevice& iommu, const IommuConfig& config) {
  if (!is_default_type(config.def_domain_type)) return Error(-EINVAL);
  Guard<Mutex> g(iommu.probe_lock_);
  if (iommu.registered_) return Error(-EBUSY);
  iommu.config_ = config;
  iommu.registered_ = true;
  return {};
}

Result<void> IommuCore::unregister_iommu(IommuDevice& iommu) {
  Guard<Mutex> g(iommu.probe_lock_);
  if (!iommu.groups_.empty()) return Error(-EBUSY);
  iommu.registered_ = false;
  return {};
}

// ---- Capabilities and features ----

Result<void> iommu_get_resv_regions(Device& dev, ReservedRegions& regions) {
  if (!dev.iommu()) return Error(-ENODEV);
  return dev.iommu()->get_resv_regions(dev, regions);
}

bool device_iommu_capable(Device& dev, IommuCap cap) {
  return dev.iommu() && dev.iommu()->capable(dev, cap);
}

Result<size_t> iommu_get_hw_info(Device& dev, void* data, size_t len, uint32_t* type) {
  if (!dev.iommu()) return Error(-ENODEV);
  return dev.iommu()->hw_info(dev, data, len, type);
}

Result<void> iommu_dev_enable_feature(Device& dev, IommuDevFeature feat) {
  if (!dev.iommu()) return Error(-ENODEV);
  return dev.iommu()->dev_enable_feat(dev, feat);
}

Result<void> iommu_dev_disable_feature(Device& dev, IommuDevFeature feat) {
  if (!dev.iommu()) return Error(-ENODEV);
  return dev.iommu()->dev_disable_feat(dev, feat);
}

}  // namespace strata
