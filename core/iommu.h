// SPDX-License-Identifier: MIT
// The iommu core (Linux's drivers/iommu/iommu.c): IOMMU devices and their ops, device probe,
// groups, domain allocation, attach, map/unmap, DMA ownership and per-device PASIDs.
// Documentation/core.md explains the object model; this header is its reference.
//
// A vendor driver derives from IommuDevice, overrides the ops it implements and registers:
//
//   class MySmmu : public IommuDevice { ... Result<void> probe_device(Device&) override; ... };
//   STRATA_TRY(iommu_device_register(smmu, {.def_domain_type = DomainType::dma}));
//
// The OS then probes each device the firmware puts behind it (iommu_probe_device), which puts
// it in a group attached to a default domain. Users (VFIO, the DMA API, kernel drivers) use the
// free functions below, named as in Linux.
//
// Missing optional ops degrade as in Linux: no blocked domain: an empty paging domain blocks; no
// identity domain: the default domain is a DMA one; no device_group: PCI or per-device groups;
// no iotlb_sync / flush_iotlb_all: nothing to invalidate; no set_dev_pasid: -EOPNOTSUPP for
// PASID attach; no hw_info: -EOPNOTSUPP; no features: -ENODEV.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <boost/intrusive/list.hpp>

#include "arch/lock.h"
#include "arch/memory.h"
#include "arch/result.h"
#include "core/device.h"
#include "core/domain.h"
#include "core/fault.h"
#include "core/group.h"

namespace strata {

// Per-device features a driver enables (Linux's enum iommu_dev_features).
enum class IommuDevFeature : uint8_t {
  iopf,  // recoverable faults (PRI / stall) are reported to the core
  sva,   // process address spaces may be bound to PASIDs
};

// IOMMU capabilities for a device (Linux's enum iommu_cap).
enum class IommuCap : uint8_t {
  cache_coherency,          // DMA snoops CPU caches (IOMMU_CACHE honoured)
  noexec,                   // IOMMU_NOEXEC honoured
  pre_boot_protection,      // firmware kept DMA blocked before the OS took over
  enforce_cache_coherency,  // no-snoop can be blocked for a domain
  deferred_flush,           // invalidation is expensive: lazy (flush-queue) DMA domains pay off
  dirty_tracking,           // hardware dirty bits for live migration
};

struct IommuConfig {
  // What a device gets when its driver has no preference (def_domain_type): dma (strict),
  // dma_fq (lazy) or identity. Linux's iommu.passthrough= and iommu.strict=.
  DomainType def_domain_type = DomainType::dma;
};

class IommuDevice {
 public:
  const char* name() const { return name_; }
  bool registered() const { return registered_; }
  const IommuConfig& config() const { return config_; }
  // PASIDs this IOMMU supports (Linux's iommu->max_pasids): 1 << SSIDSIZE / PASID width; 0 for
  // none.
  uint32_t max_pasids() const { return max_pasids_; }

  // ---- Ops (Linux's struct iommu_ops), implemented by the vendor. ----
  // Each is called with the locks named; the default is what "not supported" means. All are
  // defined in this header, for the reason given above Domain's destructor.

  // Makes `dev` known to the driver (its stream table entries, per-device data). -ENODEV: not
  // translated by this IOMMU. Called under the probe lock.
  virtual Result<void> probe_device(Device& dev) = 0;
  // The device is going away; it has been detached from every domain and PASID.
  virtual void release_device(Device& dev) { (void)dev; }
  // The group `dev` belongs in: pci_device_group() for PCI devices, generic_device_group()
  // otherwise; a driver whose hardware aliases other devices (shared StreamIDs) finds the
  // group with find_group() first. Under the probe lock.
  virtual Result<Group*> device_group(Device& dev) {
    return dev.pci() ? pci_device_group(dev) : generic_device_group(dev);
  }

  // Domain allocation, per type. `dev` is a device the domain will be attached to (its
  // capabilities may shape the domain). Paging covers paging, dma and dma_fq domains: the
  // core sets the type.
  virtual Result<Box<Domain>> domain_alloc_paging(Device& dev, DomainType type, uint32_t flags) {
    (void)dev;
    (void)type;
    (void)flags;
    return Error(-EOPNOTSUPP);
  }
  virtual Result<Box<Domain>> domain_alloc_identity(Device& dev) {
    (void)dev;
    return Error(-EOPNOTSUPP);
  }
  // Without it the core blocks with an empty paging domain.
  virtual Result<Box<Domain>> domain_alloc_blocked(Device& dev) {
    (void)dev;
    return Error(-EOPNOTSUPP);
  }
  // A vendor stage-1 configuration (`data`, `len`: the vendor's format, e.g. an STE's
  // S1ContextPtr and S1CDMax, from user space) over `parent`, which the core has checked is a
  // nest-parent paging domain of this IOMMU.
  virtual Result<Box<Domain>> domain_alloc_nested(Device& dev, Domain& parent, const void* data,
                                                  size_t len) {
    (void)dev;
    (void)parent;
    (void)data;
    (void)len;
    return Error(-EOPNOTSUPP);
  }
  virtual Result<Box<Domain>> domain_alloc_sva(Device& dev, SvaMm& mm) {
    (void)dev;
    (void)mm;
    return Error(-EOPNOTSUPP);
  }

  // The domain type `dev` must have by default (identity for devices that cannot work behind
  // the IOMMU, dma for untrusted ones); `proposed` (the configured one) when it has no
  // requirement.
  virtual DomainType def_domain_type(Device& dev, DomainType proposed) {
    (void)dev;
    return proposed;
  }
  // Adds the regions the IOMMU imposes on `dev` (MSI windows, firmware direct maps).
  virtual Result<void> get_resv_regions(Device& dev, ReservedRegions& regions) {
    (void)dev;
    (void)regions;
    return {};
  }
  // Detaches `pasid` of `dev` from `domain` (Linux's remove_dev_pasid); drivers with
  // set_dev_pasid implement it.
  virtual void remove_dev_pasid(Device& dev, ioasid_t pasid, Domain& domain) {
    (void)dev;
    (void)pasid;
    (void)domain;
  }
  // Answers a page request group (PRI: PRG Response; SMMUv3: CMD_RESUME / CMD_PRI_RESP).
  virtual Result<void> page_response(Device& dev, const IommuFaultPageRequest& last,
                                     const IommuPageResponse& response) {
    (void)dev;
    (void)last;
    (void)response;
    return Error(-ENODEV);
  }
  // Fills `data` with the vendor's hardware description (Linux's iommu_ops->hw_info, the
  // IOMMU_HW_INFO_TYPE_* structs) and returns its length; `*type` says which struct.
  virtual Result<size_t> hw_info(Device& dev, void* data, size_t len, uint32_t* type) {
    (void)dev;
    (void)data;
    (void)len;
    (void)type;
    return Error(-EOPNOTSUPP);
  }
  virtual Result<void> dev_enable_feat(Device& dev, IommuDevFeature feat) {
    (void)dev;
    (void)feat;
    return Error(-ENODEV);
  }
  virtual Result<void> dev_disable_feat(Device& dev, IommuDevFeature feat) {
    (void)dev;
    (void)feat;
    return Error(-ENODEV);
  }
  virtual bool capable(Device& dev, IommuCap cap) {
    (void)dev;
    (void)cap;
    return false;
  }

  // ---- Helpers for device_group(). ----
  // A new group for every device.
  Result<Group*> generic_device_group(Device& dev);
  // Linux's pci_device_group: the group of the device's isolation boundary (see pci_group.cc).
  Result<Group*> pci_device_group(Device& dev);
  // The group of an already probed device for which match(Device&) is true, or nullptr.
  template <typename Fn>
  Group* find_group(Fn&& match);

 protected:
  explicit IommuDevice(const char* name) : name_(name) {}
  // Must be unregistered first.
  ~IommuDevice();

  uint32_t max_pasids_ = 0;  // set by the driver before registering

 private:
  friend struct IommuCore;

  using GroupList =
      boost::intrusive::list<Group,
                             boost::intrusive::member_hook<Group, Group::Hook, &Group::iommu_node_>,
                             boost::intrusive::constant_time_size<true>>;

  Result<Group*> alloc_group(uint64_t isolation_key);

  const char* const name_;
  IommuConfig config_;
  bool registered_ = false;

  // Serialises probe and release of devices and the group list (Linux's iommu_probe_device_lock).
  // Lock order: probe_lock_ -> Group::mutex_.
  Mutex probe_lock_;
  GroupList groups_;
  unsigned next_group_id_ = 0;
};

// ---- Registration and probe ----

// -EINVAL for a config that names a non-default domain type.
Result<void> iommu_device_register(IommuDevice& iommu, const IommuConfig& config);
// -EBUSY while devices are probed.
Result<void> iommu_device_unregister(IommuDevice& iommu);

// Puts `dev` behind its IOMMU (fwspec().iommu): driver probe, group, reserved regions, default
// domain, attach. -ENODEV when it has no registered IOMMU. All-or-nothing. A second probe of a
// probed device is a no-op.
Result<void> iommu_probe_device(Device& dev);
// Detaches `dev` from everything and forgets it; its group goes when it was the last device.
// Its kernel driver must be unbound (iommu_device_unuse_default_domain).
void iommu_release_device(Device& dev);

// ---- Domains ----

// A paging (unmanaged) domain usable with `dev` (Linux's iommu_paging_domain_alloc_flags).
Result<Box<Domain>> iommu_paging_domain_alloc(Device& dev, uint32_t flags = 0);
// A nested domain over `parent` (a paging domain allocated with IOMMU_DOMAIN_ALLOC_NEST_PARENT
// by the same IOMMU; -EINVAL otherwise). The parent cannot be freed while it exists.
Result<Box<Domain>> iommu_domain_alloc_nested(Device& dev, Domain& parent, const void* data,
                                              size_t len);
Domain* iommu_get_domain_for_dev(Device& dev);
// The group's default domain, read without the group's mutex: the DMA API's hot path (Linux's
// iommu_get_dma_domain). Only for callers that keep it in place: a kernel driver bound to `dev`
// (iommu_device_use_default_domain), or the OS between probe and release of `dev`, during which
// the default domain never changes. nullptr when `dev` is not probed.
Domain* iommu_get_dma_domain(Device& dev);

// ---- Attach ----
// Every device of the group moves, or none does: when one fails, those already moved go back
// to the group's previous domain. Domains and groups of different IOMMUs: -EINVAL.
//
// As in Linux, attach itself does not check ownership: a user claims the group first (below),
// which blocks kernel drivers from binding, and a kernel user that manages its own domain does
// so for a group it already drives. -EBUSY when a non-default domain is attached already
// (detach or replace it first); -EINVAL for DMA domains (the DMA API's) and SVA domains (they
// attach by PASID); -EADDRINUSE when the domain maps IOVAs in a reserved region of the group.
Result<void> iommu_attach_group(Domain& domain, Group& group);
// Back to the blocking domain (user-owned group) or the default domain.
void iommu_detach_group(Domain& domain, Group& group);
// Moves a user-owned group from one non-default domain straight to another, with no window of
// blocked DMA in between (iommufd's iommu_group_replace_domain).
Result<void> iommu_group_replace_domain(Group& group, Domain& domain);
// The same for a device alone in its group (-EINVAL otherwise).
Result<void> iommu_attach_device(Domain& domain, Device& dev);
void iommu_detach_device(Domain& domain, Device& dev);

// ---- DMA ownership (Linux's iommu_device_use_default_domain & co) ----
// A kernel driver binds to / unbinds from `dev`. -EBUSY when a user owns the group.
Result<void> iommu_device_use_default_domain(Device& dev);
void iommu_device_unuse_default_domain(Device& dev);
// A user (VFIO; `owner` is its cookie) takes the group: -EPERM while kernel drivers are bound
// or another user owns it, -EBUSY while a non-default domain is attached. The group's DMA is
// blocked until the user attaches a domain of its own.
Result<void> iommu_group_claim_dma_owner(Group& group, void* owner);
// Back to the kernel: the default domain, PASIDs detached.
void iommu_group_release_dma_owner(Group& group);
// Per-device claims by the same owner nest (VFIO's device cdev); -EPERM for another owner.
Result<void> iommu_device_claim_dma_owner(Device& dev, void* owner);
void iommu_device_release_dma_owner(Device& dev);

// ---- Map / unmap ----
// Maps [iova, iova + size) to paddr with the largest pages pgsize_bitmap allows (Linux's
// iommu_map). All-or-nothing. -EINVAL: not a paging domain, size 0, or iova, paddr and size
// not aligned to the granule; -ERANGE: outside the aperture; -EADDRINUSE: covers a reserved
// region of an attached group (direct, msi, sw_msi and reserved ones; DMA domains get these
// reserved in their IOVA allocator instead); errors of the vendor's map_pages (-EEXIST,
// -ENOMEM).
Result<void> iommu_map(Domain& domain, uint64_t iova, phys_addr_t paddr, size_t size, int prot);
// Unmaps up to `size` bytes from iova, stopping at the first hole, and returns the bytes
// unmapped; one iotlb_sync for the whole call. -EINVAL as for map.
Result<size_t> iommu_unmap(Domain& domain, uint64_t iova, size_t size);
// The same without the iotlb_sync: the caller syncs `gather` (or flushes the whole domain)
// and releases its freelist afterwards (the flush queue does).
Result<size_t> iommu_unmap_fast(Domain& domain, uint64_t iova, size_t size, IotlbGather& gather);
// Invalidates what `gather` recorded, then frees the table pages it holds.
void iommu_iotlb_sync(Domain& domain, IotlbGather& gather);
void iommu_flush_iotlb_all(Domain& domain);
Result<phys_addr_t> iommu_iova_to_phys(Domain& domain, uint64_t iova);

// ---- PASIDs ----
// Attaches `domain` to `pasid` of every device in dev's group (one device, normally: PASID
// needs ACS isolation). -EINVAL: PASID 0 or beyond max_pasids(), or another IOMMU's domain;
// -EBUSY: the PASID is attached already; -EOPNOTSUPP: the domain cannot do PASIDs.
Result<void> iommu_attach_device_pasid(Domain& domain, Device& dev, ioasid_t pasid);
void iommu_detach_device_pasid(Domain& domain, Device& dev, ioasid_t pasid);
// The domain attached to `pasid` of `dev`, or nullptr.
Domain* iommu_get_domain_for_dev_pasid(Device& dev, ioasid_t pasid);

// ---- Reserved regions, capabilities, features ----
Result<void> iommu_get_resv_regions(Device& dev, ReservedRegions& regions);
bool device_iommu_capable(Device& dev, IommuCap cap);
Result<size_t> iommu_get_hw_info(Device& dev, void* data, size_t len, uint32_t* type);
Result<void> iommu_dev_enable_feature(Device& dev, IommuDevFeature feat);
Result<void> iommu_dev_disable_feature(Device& dev, IommuDevFeature feat);

}  // namespace strata

namespace strata {

template <typename Fn>
Group* IommuDevice::find_group(Fn&& match) {
  // Under probe_lock_ (device_group's caller holds it), which every change of groups_ and of
  // a group's device list takes.
  for (Group& g : groups_)
    for (Device& dev : g.devices_)
      if (match(dev)) return &g;
  return nullptr;
}

}  // namespace strata
