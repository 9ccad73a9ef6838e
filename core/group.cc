// SPDX-License-Identifier: MIT
// Groups: their life cycle and how a device finds its group (Linux's iommu_group_alloc,
// generic_device_group and pci_device_group).
#include "core/group.h"

#include <new>

#include "core/internal.h"
#include "core/pci.h"

namespace strata {

Group::Group(IommuDevice& iommu, unsigned id, uint64_t isolation_key)
    : iommu_(iommu), id_(id), isolation_key_(isolation_key) {
  resv_links_[0].regions = resv_links_[1].regions = &resv_;
}

Group::~Group() {
  STRATA_BUG_ON(!devices_.empty());
  STRATA_BUG_ON(domain_ != nullptr);
  STRATA_BUG_ON(!pasids_.empty());
}

void Group::put() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  this->~Group();
  kfree(this);
}

unsigned Group::nr_devices() const {
  Guard<Mutex> g(mutex_);
  return static_cast<unsigned>(devices_.size());
}

Domain* Group::domain() const {
  Guard<Mutex> g(mutex_);
  return domain_;
}

Domain* Group::default_domain() const {
  Guard<Mutex> g(mutex_);
  return default_domain_.get();
}

bool Group::dma_owner_claimed() const {
  Guard<Mutex> g(mutex_);
  return owner_ != nullptr;
}

ReservedRegions Group::reserved_regions() const {
  Guard<Mutex> g(mutex_);
  return resv_;
}

GroupRef iommu_group_get(Device& dev) { return GroupRef(dev.group()); }

Result<Group*> IommuDevice::alloc_group(uint64_t isolation_key) {
  void* mem = kmalloc(sizeof(Group), alignof(Group));
  if (!mem) return Error(-ENOMEM);
  Group* group = new (mem) Group(*this, next_group_id_++, isolation_key);
  // Linked at once so that devices probed next find it; iommu_probe_device() unlinks and frees
  // it again if its first device fails to join.
  groups_.push_back(*group);
  return group;
}

Result<Group*> IommuDevice::generic_device_group(Device& dev) {
  (void)dev;
  return alloc_group(Group::kNoKey);
}

Result<Group*> IommuDevice::pci_device_group(Device& dev) {
  const PciDev* pdev = dev.pci();
  if (!pdev) return Error(-EINVAL);
  const uint64_t key = pci_isolation_key(*pdev);
  for (Group& g : groups_)
    if (g.isolation_key_ == key) return &g;
  // A device that shares a requester ID with one probed before (quirk aliases) cannot be
  // told apart from it by the IOMMU.
  if (Group* g = find_group([&](Device& other) {
        return other.pci() && pci_devs_are_dma_aliases(*pdev, *other.pci());
      }))
    return g;
  return alloc_group(key);
}

}  // namespace strata
