// SPDX-License-Identifier: MIT
// Attaching groups and PASIDs to domains, and DMA ownership (Linux's __iommu_group_set_domain,
// iommu_attach_group, iommu_group_claim_dma_owner, iommu_attach_device_pasid, ...).
#include <new>

#include "arch/log.h"
#include "core/internal.h"

namespace strata {

// Whether a group's reserved regions collide with what `domain` maps already: a user domain
// may not translate addresses the group's devices use for something else (MSI doorbells,
// peer-to-peer windows). DMA domains reserve them in their IOVA allocator instead.
bool IommuCore::resv_collides(Domain& domain, const ReservedRegions& regions) {
  if (!domain_type_is_paging(domain.type()) || domain_type_is_dma(domain.type())) return false;
  const uint64_t granule = domain.granule();
  for (const ReservedRegion& r : regions) {
    if (!(kResvNoMap & resv_mask(r.type))) continue;
    for (uint64_t iova = r.start & ~(granule - 1); iova <= r.last(); iova += granule) {
      if (domain.iova_to_phys(iova).ok()) return true;
      if (iova + granule < iova) break;
    }
  }
  return false;
}

// Linux's __iommu_group_set_domain_internal. Every device moves or none does: on a failure the
// devices already moved are attached back to the old domain, which must succeed (the driver
// had them attached to it a moment ago).
Result<void> IommuCore::set_domain_locked(Group& group, Domain& domain) {
  Domain* old = group.domain_;
  if (old == &domain) return {};
  if (&domain.owner_ != &group.iommu_) return Error(-EINVAL);
  if (group.devices_.empty()) return Error(-ENODEV);

  // The group's regions are linked into the new domain before its mappings are checked, and
  // iommu_map() checks them again after mapping: whichever of a racing map and this attach
  // comes second sees the other, so no mapping can slip into a region unseen.
  const unsigned next = group.resv_cur_ ^ 1;
  Domain& holder = resv_holder(domain);
  {
    Guard<SpinLock> resv(holder.resv_lock_);
    holder.resv_.push_back(group.resv_links_[next]);
  }
  auto unlink = [&group](Domain& d, unsigned which) {
    Domain& h = resv_holder(d);
    Guard<SpinLock> resv(h.resv_lock_);
    h.resv_.erase(h.resv_.iterator_to(group.resv_links_[which]));
  };
  if (resv_collides(holder, group.resv_)) {
    unlink(domain, next);
    return Error(-EADDRINUSE);
  }

  for (auto it = group.devices_.begin(); it != group.devices_.end(); ++it) {
    Result<void> r = domain.attach_dev(*it);
    if (r.ok()) continue;
    dev_warn(it->name(), "attach to {} domain failed: {}", domain_type_name(domain.type()),
             r.error());
    for (auto back = group.devices_.begin(); back != it; ++back)
      STRATA_WARN_ON(!old->attach_dev(*back).ok());
    unlink(domain, next);
    return r.error();
  }

  unlink(*old, group.resv_cur_);
  group.resv_cur_ = next;
  put(*old);
  get(domain);
  group.domain_ = &domain;
  return {};
}

// The domain a group falls back to: blocking while a user owns it, else the default one.
// Attaching either cannot fail in a correct driver; if it does, the group stays where it was.
void IommuCore::set_core_domain_locked(Group& group) {
  Domain* core = group.owner_ ? group.blocking_domain_.get() : group.default_domain_.get();
  STRATA_WARN_ON(!set_domain_locked(group, *core).ok());
}

Result<void> iommu_attach_group(Domain& domain, Group& group) {
  return IommuCore::attach_group(domain, group);
}

Result<void> IommuCore::attach_group(Domain& domain, Group& group) {
  if (domain_type_is_dma(domain.type()) || domain.type() == DomainType::sva)
    return Error(-EINVAL);  // DMA domains belong to the DMA API; SVA ones attach by PASID
  Guard<Mutex> g(group.mutex_);
  if (group.domain_ && group.domain_ != group.default_domain_.get() &&
      group.domain_ != group.blocking_domain_.get())
    return Error(-EBUSY);
  return set_domain_locked(group, domain);
}

void iommu_detach_group(Domain& domain, Group& group) { IommuCore::detach_group(domain, group); }

void IommuCore::detach_group(Domain& domain, Group& group) {
  Guard<Mutex> g(group.mutex_);
  if (group.domain_ != &domain) {
    STRATA_WARN_ON(true);  // not attached: a caller bug, harmless
    return;
  }
  set_core_domain_locked(group);
}

Result<void> iommu_group_replace_domain(Group& group, Domain& domain) {
  return IommuCore::replace_domain(group, domain);
}

Result<void> IommuCore::replace_domain(Group& group, Domain& domain) {
  if (domain_type_is_dma(domain.type()) || domain.type() == DomainType::sva) return Error(-EINVAL);
  Guard<Mutex> g(group.mutex_);
  // Only a user may switch its domains around: the kernel's drivers rely on the default one.
  if (!group.owner_) return Error(-EPERM);
  return set_domain_locked(group, domain);
}

Result<void> iommu_attach_device(Domain& domain, Device& dev) {
  return IommuCore::attach_device(domain, dev);
}

Result<void> IommuCore::attach_device(Domain& domain, Device& dev) {
  Group* group = dev.group_;
  if (!group) return Error(-ENODEV);
  {
    Guard<Mutex> g(group->mutex_);
    if (group->devices_.size() != 1) return Error(-EINVAL);
  }
  return attach_group(domain, *group);
}

void iommu_detach_device(Domain& domain, Device& dev) { IommuCore::detach_device(domain, dev); }

void IommuCore::detach_device(Domain& domain, Device& dev) {
  if (Group* group = dev.group_) detach_group(domain, *group);
}

Domain* iommu_get_domain_for_dev(Device& dev) {
  Group* group = dev.group();
  return group ? group->domain() : nullptr;
}

Domain* iommu_get_dma_domain(Device& dev) { return IommuCore::dma_domain(dev); }

// ---- DMA ownership ----

Result<void> iommu_device_use_default_domain(Device& dev) {
  return IommuCore::use_default_domain(dev);
}

Result<void> IommuCore::use_default_domain(Device& dev) {
  Group* group = dev.group_;
  if (!group) return {};  // not behind an IOMMU: nothing to own
  Guard<Mutex> g(group->mutex_);
  if (dev.driver_bound_) return Error(-EBUSY);
  // A user owns the group, or a kernel user has put it in a domain of its own: a driver
  // binding now would do DMA the IOMMU does not expect (Linux's
  // iommu_device_use_default_domain).
  if (group->owner_ || group->domain_ != group->default_domain_.get()) return Error(-EBUSY);
  group->owner_cnt_++;
  dev.driver_bound_ = true;
  return {};
}

void iommu_device_unuse_default_domain(Device& dev) { IommuCore::unuse_default_domain(dev); }

void IommuCore::unuse_default_domain(Device& dev) {
  Group* group = dev.group_;
  if (!group) return;
  Guard<Mutex> g(group->mutex_);
  if (!dev.driver_bound_) {
    STRATA_WARN_ON(true);
    return;
  }
  dev.driver_bound_ = false;
  group->owner_cnt_--;
}

Result<void> iommu_group_claim_dma_owner(Group& group, void* owner) {
  return IommuCore::claim_dma_owner(group, owner);
}

Result<void> IommuCore::claim_dma_owner(Group& group, void* owner) {
  if (!owner) return Error(-EINVAL);
  Guard<Mutex> g(group.mutex_);
  if (group.devices_.empty()) return Error(-ENODEV);
  if (group.owner_cnt_) return Error(-EPERM);  // kernel drivers bound, or another user's
  return take_ownership_locked(group, owner, group.devices_.front());
}

// Linux's __iommu_take_dma_ownership: the group's DMA is blocked until the owner attaches.
Result<void> IommuCore::take_ownership_locked(Group& group, void* owner, Device& dev) {
  if (group.domain_ != group.default_domain_.get() || !group.pasids_.empty()) return Error(-EBUSY);
  if (!group.blocking_domain_) {
    Box<Domain> blocking = STRATA_TRY(domain_alloc(group.iommu_, dev, DomainType::blocked, 0));
    group.blocking_domain_ = std::move(blocking);
  }
  STRATA_TRY(set_domain_locked(group, *group.blocking_domain_));
  group.owner_ = owner;
  group.owner_cnt_ = 1;
  return {};
}

void iommu_group_release_dma_owner(Group& group) { IommuCore::release_dma_owner(group); }

void IommuCore::release_dma_owner(Group& group) {
  Guard<Mutex> g(group.mutex_);
  release_ownership_locked(group);
}

void IommuCore::release_ownership_locked(Group& group) {
  if (!group.owner_) {
    STRATA_WARN_ON(true);
    return;
  }
  // A user that goes away (a VMM that crashed) leaves things attached; the kernel takes the
  // group back whole.
  detach_all_pasids_locked(group);
  group.owner_ = nullptr;
  group.owner_cnt_ = 0;
  if (!group.devices_.empty()) set_core_domain_locked(group);
}

Result<void> iommu_device_claim_dma_owner(Device& dev, void* owner) {
  return IommuCore::device_claim_dma_owner(dev, owner);
}

Result<void> IommuCore::device_claim_dma_owner(Device& dev, void* owner) {
  Group* group = dev.group_;
  if (!group) return Error(-ENODEV);
  if (!owner) return Error(-EINVAL);
  Guard<Mutex> g(group->mutex_);
  if (group->owner_cnt_) {
    if (group->owner_ != owner) return Error(-EPERM);
    group->owner_cnt_++;
    return {};
  }
  return take_ownership_locked(*group, owner, dev);
}

void iommu_device_release_dma_owner(Device& dev) { IommuCore::device_release_dma_owner(dev); }

void IommuCore::device_release_dma_owner(Device& dev) {
  Group* group = dev.group_;
  if (!group) return;
  Guard<Mutex> g(group->mutex_);
  if (!group->owner_ || group->owner_cnt_ == 0) {
    STRATA_WARN_ON(true);
    return;
  }
  if (--group->owner_cnt_ == 0) {
    group->owner_cnt_ = 1;  // release_ownership_locked() expects a live claim
    release_ownership_locked(*group);
  }
}

// ---- PASIDs ----

Result<void> iommu_attach_device_pasid(Domain& domain, Device& dev, ioasid_t pasid) {
  return IommuCore::attach_device_pasid(domain, dev, pasid);
}

Result<void> IommuCore::attach_device_pasid(Domain& domain, Device& dev, ioasid_t pasid) {
  Group* group = dev.group_;
  if (!group) return Error(-ENODEV);
  if (&domain.owner_ != dev.iommu_ || pasid == kNoPasid) return Error(-EINVAL);
  if (domain.type() == DomainType::blocked || domain_type_is_dma(domain.type()))
    return Error(-EINVAL);
  Guard<Mutex> g(group->mutex_);
  for (Device& d : group->devices_)
    if (pasid >= d.max_pasids_) return Error(-EINVAL);
  if (group->pasids_.find(pasid) != group->pasids_.end()) return Error(-EBUSY);

  void* mem = kmalloc(sizeof(Group::PasidEntry), alignof(Group::PasidEntry));
  if (!mem) return Error(-ENOMEM);
  auto* entry = new (mem) Group::PasidEntry{.hook = {}, .pasid = pasid, .domain = &domain};
  for (auto it = group->devices_.begin(); it != group->devices_.end(); ++it) {
    Result<void> r = domain.set_dev_pasid(*it, pasid, nullptr);
    if (r.ok()) continue;
    for (auto back = group->devices_.begin(); back != it; ++back)
      group->iommu_.remove_dev_pasid(*back, pasid, domain);
    entry->~PasidEntry();
    kfree(entry);
    return r.error();
  }
  group->pasids_.insert(*entry);
  get(domain);
  return {};
}

void iommu_detach_device_pasid(Domain& domain, Device& dev, ioasid_t pasid) {
  IommuCore::detach_device_pasid(domain, dev, pasid);
}

void IommuCore::detach_device_pasid(Domain& domain, Device& dev, ioasid_t pasid) {
  Group* group = dev.group_;
  if (!group) return;
  Guard<Mutex> g(group->mutex_);
  auto it = group->pasids_.find(pasid);
  if (it == group->pasids_.end() || it->domain != &domain) {
    STRATA_WARN_ON(true);
    return;
  }
  drop_pasid_locked(*group, *it);
}

void IommuCore::drop_pasid_locked(Group& group, Group::PasidEntry& entry) {
  for (Device& d : group.devices_) group.iommu_.remove_dev_pasid(d, entry.pasid, *entry.domain);
  group.pasids_.erase(group.pasids_.iterator_to(entry));
  put(*entry.domain);
  entry.~PasidEntry();
  kfree(&entry);
}

void IommuCore::detach_all_pasids_locked(Group& group) {
  while (!group.pasids_.empty()) drop_pasid_locked(group, *group.pasids_.begin());
}

Domain* iommu_get_domain_for_dev_pasid(Device& dev, ioasid_t pasid) {
  return IommuCore::domain_for_dev_pasid(dev, pasid);
}

Domain* IommuCore::domain_for_dev_pasid(Device& dev, ioasid_t pasid) {
  Group* group = dev.group_;
  if (!group) return nullptr;
  Guard<Mutex> g(group->mutex_);
  auto it = group->pasids_.find(pasid);
  return it == group->pasids_.end() ? nullptr : it->domain;
}

}  // namespace strata
