// SPDX-License-Identifier: MIT
// IOMMU groups: the unit of isolation (Linux's struct iommu_group).
//
// Devices whose DMA the IOMMU cannot tell apart, or that can reach each other without going
// through it (no ACS on the path, shared requester IDs), share a group. The core keeps every
// device of a group attached to the same domain at all times, so attach is all-or-nothing, and
// DMA ownership is per group: the kernel's (its drivers use the default domain) or one user's
// (VFIO), never both.
//
// Groups are created by the core when their first device is probed and linked into their
// IOMMU; they live while they have devices or references (GroupRef).
#pragma once

#include <stdint.h>

#include <atomic>

#include <boost/intrusive/list.hpp>
#include <boost/intrusive/set.hpp>

#include "arch/lock.h"
#include "arch/memory.h"
#include "core/device.h"
#include "core/domain.h"

namespace strata {

class Group {
 public:
  unsigned id() const { return id_; }
  IommuDevice& iommu() const { return iommu_; }

  // Takes a reference (Linux's iommu_group_ref_get); put() drops it. GroupRef does both.
  void get() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void put();

  // Calls fn(Device&) for each device, with the group's mutex held; stops at the first error.
  template <typename Fn>
  Result<void> for_each_dev(Fn&& fn) {
    Guard<Mutex> g(mutex_);
    for (Device& dev : devices_) STRATA_TRY(fn(dev));
    return {};
  }
  unsigned nr_devices() const;

  // The domain the group's devices are attached to now, and the kernel's default one.
  Domain* domain() const;
  Domain* default_domain() const;
  // Whether a user has claimed DMA ownership (Linux's iommu_group_dma_owner_claimed).
  bool dma_owner_claimed() const;

  // Copies out the union of the devices' reserved regions.
  ReservedRegions reserved_regions() const;

  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

 private:
  friend class IommuDevice;
  friend struct IommuCore;

  using Hook = boost::intrusive::list_member_hook<
      boost::intrusive::link_mode<boost::intrusive::normal_link>>;
  using DeviceList = boost::intrusive::list<
      Device, boost::intrusive::member_hook<Device, Device::Hook, &Device::group_node_>,
      boost::intrusive::constant_time_size<true>>;

  // One PASID attachment (Linux's group->pasid_array entry).
  struct PasidEntry {
    boost::intrusive::set_member_hook<boost::intrusive::link_mode<boost::intrusive::normal_link>>
        hook;
    ioasid_t pasid;
    Domain* domain;
  };
  struct PasidKey {
    using type = ioasid_t;
    ioasid_t operator()(const PasidEntry& e) const { return e.pasid; }
  };
  using PasidTree = boost::intrusive::set<
      PasidEntry,
      boost::intrusive::member_hook<PasidEntry, decltype(PasidEntry::hook), &PasidEntry::hook>,
      boost::intrusive::key_of_value<PasidKey>, boost::intrusive::constant_time_size<false>>;

  Group(IommuDevice& iommu, unsigned id, uint64_t isolation_key);
  ~Group();

  IommuDevice& iommu_;
  const unsigned id_;
  // For PCI groups: what stands for the group's isolation boundary (pci_isolation_key(),
  // pci.h); kNoKey for other groups.
  const uint64_t isolation_key_;
  static constexpr uint64_t kNoKey = UINT64_MAX;
  std::atomic<unsigned> refs_{1};  // the IOMMU's list holds one while devices_ is not empty
  Hook iommu_node_;                // in IommuDevice::groups_, under its probe lock

  // Lock order: IommuDevice::probe_lock_ -> Group::mutex_ -> Domain::resv_lock_.
  // mutex_ protects everything below.
  mutable Mutex mutex_;
  DeviceList devices_;
  Domain* domain_ = nullptr;
  Box<Domain> default_domain_;
  Box<Domain> blocking_domain_;  // allocated when first needed; lives with the group
  // DMA ownership (Linux's group->owner / owner_cnt): owner_ == nullptr: the kernel's, and
  // owner_cnt_ counts devices whose kernel driver is bound; else a user's, and owner_cnt_
  // counts its claims.
  void* owner_ = nullptr;
  unsigned owner_cnt_ = 0;
  ReservedRegions resv_;
  // Links resv_ into the domain the group is attached to. Two, because while moving between
  // domains the group's regions are linked into both (IommuCore::set_domain_locked);
  // resv_links_[resv_cur_] is the one in domain_.
  ResvLink resv_links_[2];
  unsigned resv_cur_ = 0;
  PasidTree pasids_;
};

// A counted reference to a group (Linux's iommu_group_get() / iommu_group_put()).
class GroupRef {
 public:
  GroupRef() = default;
  explicit GroupRef(Group* g) : g_(g) {
    if (g_) g_->get();
  }
  GroupRef(GroupRef&& o) : g_(o.g_) { o.g_ = nullptr; }
  GroupRef& operator=(GroupRef&& o) {
    if (this != &o) {
      if (g_) g_->put();
      g_ = o.g_;
      o.g_ = nullptr;
    }
    return *this;
  }
  GroupRef(const GroupRef&) = delete;
  GroupRef& operator=(const GroupRef&) = delete;
  ~GroupRef() {
    if (g_) g_->put();
  }

  Group* get() const { return g_; }
  Group* operator->() const { return g_; }
  Group& operator*() const { return *g_; }
  explicit operator bool() const { return g_ != nullptr; }

 private:
  Group* g_ = nullptr;
};

// The group of a probed device, referenced; empty when the device has none.
GroupRef iommu_group_get(Device& dev);

}  // namespace strata
