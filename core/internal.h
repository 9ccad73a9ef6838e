// SPDX-License-Identifier: MIT
// The iommu core's own operations on the state inside Device, Group, Domain and IommuDevice,
// which all declare IommuCore a friend. Only core/*.cc include this; the public functions of
// iommu.h are thin wrappers around these.
#pragma once

#include "core/iommu.h"

namespace strata {

struct IommuCore {
  // iommu.cc
  static Result<void> register_iommu(IommuDevice& iommu, const IommuConfig& config);
  static Result<void> unregister_iommu(IommuDevice& iommu);
  // Allocates a domain of `type` through the driver's ops and checks what comes back.
  static Result<Box<Domain>> domain_alloc(IommuDevice& iommu, Device& dev, DomainType type,
                                          uint32_t flags);
  static Result<Box<Domain>> domain_alloc_nested(Device& dev, Domain& parent, const void* data,
                                                 size_t len);

  // probe.cc
  static Result<void> probe_device(Device& dev);
  static void release_device(Device& dev);
  static Result<void> install_group_pasids_locked(Group& group, Device& dev);
  // Unlinks a group that has no devices left from its IOMMU and drops the list's reference.
  static void drop_group(Group& group);

  // attach.cc
  static Result<void> attach_group(Domain& domain, Group& group);
  static void detach_group(Domain& domain, Group& group);
  static Result<void> replace_domain(Group& group, Domain& domain);
  static Result<void> attach_device(Domain& domain, Device& dev);
  static void detach_device(Domain& domain, Device& dev);
  static Result<void> use_default_domain(Device& dev);
  static void unuse_default_domain(Device& dev);
  static Result<void> claim_dma_owner(Group& group, void* owner);
  static void release_dma_owner(Group& group);
  static Result<void> device_claim_dma_owner(Device& dev, void* owner);
  static void device_release_dma_owner(Device& dev);
  static Result<void> attach_device_pasid(Domain& domain, Device& dev, ioasid_t pasid);
  static void detach_device_pasid(Domain& domain, Device& dev, ioasid_t pasid);
  static Domain* domain_for_dev_pasid(Device& dev, ioasid_t pasid);
  // iommu_get_dma_domain: written only at probe of the group's first device and release of its
  // last, so a caller that holds a probed device reads it without the mutex.
  static Domain* dma_domain(Device& dev) {
    Group* group = dev.group_;
    return group ? group->default_domain_.get() : nullptr;
  }
  // Moves every device of `group` to `domain`, all or none (mutex_ held).
  static Result<void> set_domain_locked(Group& group, Domain& domain);
  static void set_core_domain_locked(Group& group);
  static Result<void> take_ownership_locked(Group& group, void* owner, Device& dev);
  static void release_ownership_locked(Group& group);
  static void drop_pasid_locked(Group& group, Group::PasidEntry& entry);
  // Every PASID attachment of `group` goes (mutex_ held).
  static void detach_all_pasids_locked(Group& group);

  // The domain whose mappings a group's reserved regions constrain when the group is attached
  // to `d`: a nested domain's parent, whose stage 2 translates everything the group's stage 1
  // produces (iommufd reserves the regions in the parent's IOAS the same way); `d` otherwise.
  static Domain& resv_holder(Domain& d) { return d.parent_ ? *d.parent_ : d; }
  // Whether `regions` cover an address `domain` maps (user domains only; attach.cc).
  static bool resv_collides(Domain& domain, const ReservedRegions& regions);

  // map.cc
  static Result<void> map(Domain& domain, uint64_t iova, phys_addr_t paddr, size_t size, int prot,
                          bool check_resv);
  // Whether [iova, iova + size) covers a region that an attached group reserves.
  static bool resv_overlaps(Domain& domain, uint64_t iova, size_t size);
  static Result<size_t> unmap(Domain& domain, uint64_t iova, size_t size, IotlbGather& gather);

  // Reference counts of domain users (attached groups and PASIDs, nested children).
  static void get(Domain& d) { d.users_.fetch_add(1, std::memory_order_relaxed); }
  static void put(Domain& d) {
    const unsigned old = d.users_.fetch_sub(1, std::memory_order_relaxed);
    STRATA_BUG_ON(old == 0);
  }

  // The fault state inside a Device (fault.cc, iopf.cc).
  static FaultParam& fault(Device& dev) { return dev.fault_; }
};

}  // namespace strata
