// SPDX-License-Identifier: MIT
// Device probe and release (Linux's __iommu_probe_device, iommu_setup_default_domain,
// iommu_create_device_direct_mappings and __iommu_group_remove_device).
#include "arch/log.h"
#include "core/internal.h"

namespace strata {

namespace {

// What iommu_probe_device() has done so far, undone in reverse when a later step fails.
struct ProbeUndo {
  Group* group = nullptr;
  bool group_is_new = false;
  Box<Domain> new_default;
  // Direct mappings added to an existing default domain (the new domain goes away whole).
  ReservedRegion mapped[ReservedRegions::kMax];
  unsigned nr_mapped = 0;
};

// The type of a group's default domain (Linux's iommu_get_default_domain_type): the driver's
// requirement for the device, else the IOMMU's configured type, lazy flushing only where the
// IOMMU says it pays off.
DomainType default_domain_type(IommuDevice& iommu, Device& dev) {
  DomainType type = iommu.config().def_domain_type;
  if (type == DomainType::dma_fq && !iommu.capable(dev, IommuCap::deferred_flush))
    type = DomainType::dma;
  return iommu.def_domain_type(dev, type);
}

// Identity-maps the device's direct regions in a DMA domain before the device is attached to
// it, so that firmware-initiated DMA (RMRR, IORT RMR) never faults (Linux's
// iommu_create_device_direct_mappings). Regions already mapped 1:1 are skipped: another
// device of the group asked for them first.
Result<void> map_direct_regions(Domain& domain, const ReservedRegions& regions, ProbeUndo& undo,
                                bool record) {
  if (!domain_type_is_dma(domain.type())) return {};
  const uint64_t granule = domain.granule();
  for (const ReservedRegion& r : regions) {
    if (r.type != ResvType::direct && r.type != ResvType::direct_relaxable) continue;
    const uint64_t start = r.start & ~(granule - 1);
    const uint64_t end = (r.last() | (granule - 1)) + 1;
    Result<phys_addr_t> pa = domain.iova_to_phys(start);
    if (pa.ok() && pa.value() == start) continue;
    STRATA_TRY(IommuCore::map(domain, start, start, end - start, r.prot, false));
    if (record) {
      undo.mapped[undo.nr_mapped++] = {
          .start = start, .length = end - start, .prot = r.prot, .type = r.type};
    }
  }
  return {};
}

void unmap_direct(Domain& domain, const ProbeUndo& undo) {
  for (unsigned i = 0; i < undo.nr_mapped; i++) {
    IotlbGather gather;
    (void)IommuCore::unmap(domain, undo.mapped[i].start, undo.mapped[i].length, gather);
    iommu_iotlb_sync(domain, gather);
  }
}

}  // namespace

Result<void> iommu_probe_device(Device& dev) { return IommuCore::probe_device(dev); }
void iommu_release_device(Device& dev) { IommuCore::release_device(dev); }

Result<void> IommuCore::probe_device(Device& dev) {
  IommuDevice* iommu = dev.fwspec().iommu;
  if (!iommu) return Error(-ENODEV);
  Guard<Mutex> probe(iommu->probe_lock_);
  if (!iommu->registered_) return Error(-ENODEV);
  if (dev.iommu_) return {};

  STRATA_TRY(iommu->probe_device(dev));
  dev.iommu_ = iommu;
  const uint32_t dev_pasids = dev.desc().pasid_bits ? uint32_t{1} << dev.desc().pasid_bits : 0;
  dev.max_pasids_ = dev_pasids < iommu->max_pasids_ ? dev_pasids : iommu->max_pasids_;

  ProbeUndo undo;
  Result<void> r = [&]() -> Result<void> {
    ReservedRegions regions;
    STRATA_TRY(iommu->get_resv_regions(dev, regions));

    const size_t groups_before = iommu->groups_.size();
    Group* group = STRATA_TRY(iommu->device_group(dev));
    STRATA_BUG_ON(&group->iommu_ != iommu);
    undo.group = group;
    undo.group_is_new = iommu->groups_.size() != groups_before;

    Guard<Mutex> g(group->mutex_);
    ReservedRegions merged = group->resv_;
    for (const ReservedRegion& region : regions) STRATA_TRY(merged.add(region));

    Domain* domain = group->domain_;
    if (!domain) {
      const DomainType type = default_domain_type(*iommu, dev);
      Result<Box<Domain>> d = domain_alloc(*iommu, dev, type, 0);
      if (d.ok()) {
        undo.new_default = d.release_value();
      } else if (d.error().code() == -EOPNOTSUPP && type == DomainType::identity &&
                 iommu->config_.def_domain_type == DomainType::identity) {
        // Passthrough was only configured, not required by the driver (Linux does the same).
        dev_info(dev.name(), "no identity domain; falling back to a DMA domain");
        undo.new_default = STRATA_TRY(domain_alloc(*iommu, dev, DomainType::dma, 0));
      } else {
        return d.error();
      }
      domain = undo.new_default.get();
    }
    // A device joining a group on a user domain brings regions that domain must not map
    // either (the check attach makes for the whole group).
    if (!undo.new_default && resv_collides(resv_holder(*domain), regions))
      return Error(-EADDRINUSE);
    STRATA_TRY(map_direct_regions(*domain, regions, undo, !undo.new_default));
    // The driver's own state for a device that fails from here on goes with its
    // release_device() below.
    Result<void> attached = domain->attach_dev(dev);
    if (!attached.ok()) {
      if (!undo.new_default) unmap_direct(*domain, undo);
      return attached.error();
    }
    Result<void> pasids = install_group_pasids_locked(*group, dev);
    if (!pasids.ok()) {
      if (!undo.new_default) unmap_direct(*domain, undo);
      return pasids.error();
    }

    // Committed: nothing below fails.
    {
      Guard<SpinLock> resv(resv_holder(*domain).resv_lock_);
      group->resv_ = merged;
    }
    if (undo.new_default) {
      group->default_domain_ = std::move(undo.new_default);
      group->domain_ = domain;
      get(*domain);
      Guard<SpinLock> resv(domain->resv_lock_);
      domain->resv_.push_back(group->resv_links_[group->resv_cur_]);
    }
    group->devices_.push_back(dev);
    dev.group_ = group;
    return {};
  }();
  if (r.ok()) return {};

  // A group that was made for this device goes again.
  if (undo.group && undo.group_is_new) drop_group(*undo.group);
  iommu->release_device(dev);
  dev.iommu_ = nullptr;
  dev.max_pasids_ = 0;
  return r.error();
}

// A device joining a group gets the group's PASIDs too: every device of a group is translated
// the same way, whatever the PASID. One it cannot take (too few PASIDs, a driver error) keeps
// it out of the group.
Result<void> IommuCore::install_group_pasids_locked(Group& group, Device& dev) {
  for (auto it = group.pasids_.begin(); it != group.pasids_.end(); ++it) {
    Result<void> r = it->pasid < dev.max_pasids_
                         ? it->domain->set_dev_pasid(dev, it->pasid, nullptr)
                         : Result<void>(Error(-EINVAL));
    if (r.ok()) continue;
    for (auto back = group.pasids_.begin(); back != it; ++back)
      group.iommu_.remove_dev_pasid(dev, back->pasid, *back->domain);
    return r.error();
  }
  return {};
}

void IommuCore::release_device(Device& dev) {
  IommuDevice* iommu = dev.iommu_;
  if (!iommu) return;
  Guard<Mutex> probe(iommu->probe_lock_);
  Group* group = dev.group_;
  bool empty;
  // The group's own domains outlive the driver's release_device(), which takes the device's
  // configuration off them: the hardware must never point at a freed domain.
  Box<Domain> default_domain, blocking_domain;
  {
    Guard<Mutex> g(group->mutex_);
    if (dev.driver_bound_) {
      // The bus layer unbinds drivers before releasing devices; carry on as if it had.
      STRATA_WARN_ON(true);
      dev.driver_bound_ = false;
      if (!group->owner_ && group->owner_cnt_) group->owner_cnt_--;
    }
    if (group->devices_.size() == 1) {
      // The last device: the group's PASIDs and domain go with it.
      detach_all_pasids_locked(*group);
    } else {
      // The others keep theirs; the PASIDs stop reaching this device.
      for (Group::PasidEntry& e : group->pasids_) iommu->remove_dev_pasid(dev, e.pasid, *e.domain);
    }
    group->devices_.erase(group->devices_.iterator_to(dev));
    empty = group->devices_.empty();
    if (empty) {
      Domain* domain = group->domain_;
      {
        Domain& holder = resv_holder(*domain);
        Guard<SpinLock> resv(holder.resv_lock_);
        holder.resv_.erase(holder.resv_.iterator_to(group->resv_links_[group->resv_cur_]));
      }
      put(*domain);
      group->domain_ = nullptr;
      default_domain = std::move(group->default_domain_);
      blocking_domain = std::move(group->blocking_domain_);
      group->owner_ = nullptr;
      group->owner_cnt_ = 0;
    }
    // The reserved regions of the devices that remain are not recomputed: the union stays a
    // superset until the group goes, which only ever refuses more.
  }
  iommu_fault_release_device(dev);
  iommu->release_device(dev);
  dev.iommu_ = nullptr;
  dev.group_ = nullptr;
  dev.max_pasids_ = 0;
  dev.priv_ = nullptr;
  default_domain.reset();
  blocking_domain.reset();
  if (empty) drop_group(*group);
}

void IommuCore::drop_group(Group& group) {
  group.iommu_.groups_.erase(group.iommu_.groups_.iterator_to(group));
  group.put();
}

}  // namespace strata
