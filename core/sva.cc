// SPDX-License-Identifier: MIT
#include "core/sva.h"

#include <atomic>
#include <new>

#include <boost/intrusive/list.hpp>

#include "core/internal.h"
#include "core/iopf.h"

namespace strata {

namespace {

using ListHook =
    boost::intrusive::list_member_hook<boost::intrusive::link_mode<boost::intrusive::normal_link>>;

// One SVA domain of an address space, shared by its devices behind one IOMMU.
struct SvaDomainNode {
  ListHook hook;
  Box<Domain> domain;
  unsigned users = 0;  // handles using it
};

template <typename T>
using List = boost::intrusive::list<T, boost::intrusive::member_hook<T, ListHook, &T::hook>,
                                    boost::intrusive::constant_time_size<false>>;

template <typename T, typename... Args>
T* knew(Args&&... args) {
  void* mem = kmalloc(sizeof(T), alignof(T));
  return mem ? new (mem) T{std::forward<Args>(args)...} : nullptr;
}

template <typename T>
void kdelete(T* p) {
  p->~T();
  kfree(p);
}

}  // namespace

class SvaHandle {
 public:
  ListHook hook;
  Device* dev;
  SvaMm* mm;
  SvaDomainNode* node;
  unsigned refs;
};

// The core's state for a bound address space (Linux's struct iommu_mm_data).
struct SvaMmCore {
  Mutex lock;  // lock order: lock -> Group::mutex_
  ioasid_t pasid = kNoPasid;
  List<SvaHandle> handles;
  List<SvaDomainNode> domains;
};

namespace {

// mm.iommu_mm is published once, with a CAS, and lives until iommu_sva_mm_release().
Result<SvaMmCore*> mm_core(SvaMm& mm) {
  std::atomic_ref<SvaMmCore*> slot(mm.iommu_mm);
  if (SvaMmCore* core = slot.load(std::memory_order_acquire)) return core;
  SvaMmCore* fresh = knew<SvaMmCore>();
  if (!fresh) return Error(-ENOMEM);
  SvaMmCore* expected = nullptr;
  if (slot.compare_exchange_strong(expected, fresh, std::memory_order_acq_rel)) return fresh;
  kdelete(fresh);
  return expected;
}

}  // namespace

Result<SvaHandle*> iommu_sva_bind_device(Device& dev, SvaMm& mm) {
  if (!dev.group() || !dev.iommu()) return Error(-ENODEV);
  if (!mm.pasids) return Error(-EINVAL);
  SvaMmCore* core = STRATA_TRY(mm_core(mm));
  Guard<Mutex> g(core->lock);

  for (SvaHandle& h : core->handles) {
    if (h.dev == &dev) {
      h.refs++;
      return &h;
    }
  }
  if (dev.max_pasids() <= 1) return Error(-EINVAL);
  bool new_pasid = false;
  if (core->pasid == kNoPasid) {
    core->pasid = STRATA_TRY(mm.pasids->alloc(1, dev.max_pasids() - 1, &mm));
    new_pasid = true;
  } else if (core->pasid >= dev.max_pasids()) {
    return Error(-EINVAL);
  }

  SvaHandle* handle = knew<SvaHandle>();
  Result<void> r = [&]() -> Result<void> {
    if (!handle) return Error(-ENOMEM);
    // A domain of this address space that the device can use already (Linux tries each).
    for (SvaDomainNode& n : core->domains) {
      if (&n.domain->owner() != dev.iommu()) continue;
      if (!iommu_attach_device_pasid(*n.domain, dev, core->pasid).ok()) continue;
      n.users++;
      handle->node = &n;
      return {};
    }
    SvaDomainNode* node = knew<SvaDomainNode>();
    if (!node) return Error(-ENOMEM);
    Result<Box<Domain>> d = dev.iommu()->domain_alloc_sva(dev, mm);
    if (!d.ok()) {
      kdelete(node);
      return d.error();
    }
    node->domain = d.release_value();
    STRATA_BUG_ON(node->domain->type() != DomainType::sva || &node->domain->owner() != dev.iommu());
    node->domain->set_iopf_handler(mm.fault_handler);
    Result<void> a = iommu_attach_device_pasid(*node->domain, dev, core->pasid);
    if (!a.ok()) {
      kdelete(node);
      return a.error();
    }
    node->users = 1;
    core->domains.push_back(*node);
    handle->node = node;
    return {};
  }();
  if (!r.ok()) {
    if (handle) kfree(handle);
    if (new_pasid) {
      STRATA_WARN_ON(!mm.pasids->free(core->pasid).ok());
      core->pasid = kNoPasid;
    }
    return r.error();
  }
  handle->dev = &dev;
  handle->mm = &mm;
  handle->refs = 1;
  core->handles.push_back(*handle);
  return handle;
}

void iommu_sva_unbind_device(SvaHandle* handle) {
  SvaMmCore* core = handle->mm->iommu_mm;
  Guard<Mutex> g(core->lock);
  if (--handle->refs) return;
  SvaDomainNode* node = handle->node;
  iommu_detach_device_pasid(*node->domain, *handle->dev, core->pasid);
  // Page requests already queued against the domain run (or wait for the one running) before
  // it can be freed (iopf.h). A device on no IOPF queue has none: -ENODEV is fine.
  (void)iopf_queue_flush_dev(*handle->dev);
  core->handles.erase(core->handles.iterator_to(*handle));
  kdelete(handle);
  if (--node->users == 0) {
    core->domains.erase(core->domains.iterator_to(*node));
    kdelete(node);
  }
}

ioasid_t iommu_sva_get_pasid(const SvaHandle* handle) { return handle->mm->iommu_mm->pasid; }

Domain* iommu_sva_get_domain(const SvaHandle* handle) { return handle->node->domain.get(); }

void iommu_sva_mm_release(SvaMm& mm) {
  SvaMmCore* core = mm.iommu_mm;
  if (!core) return;
  STRATA_BUG_ON(!core->handles.empty());  // the OS unbinds every device first
  if (core->pasid != kNoPasid) STRATA_WARN_ON(!mm.pasids->free(core->pasid).ok());
  kdelete(core);
  mm.iommu_mm = nullptr;
}

}  // namespace strata
