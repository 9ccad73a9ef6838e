// SPDX-License-Identifier: MIT
// The IOPF queue (Linux's io-pgfault.c): page request groups from report to response. The
// semantics and the lock order are in iopf.h.
#include "core/iopf.h"

#include <new>

#include "arch/log.h"
#include "core/internal.h"

namespace strata {

// A device's state on its queue (Linux's struct iommu_fault_param), kmalloc'd by add_device()
// and freed by remove_device(). Reached through FaultParam::iopf; everything in it is under
// the queue's lock_.
struct IopfDevice {
  using GroupList = boost::intrusive::list<
      IopfGroup, boost::intrusive::member_hook<IopfGroup, IopfGroup::Hook, &IopfGroup::dev_node_>,
      boost::intrusive::constant_time_size<true>>;

  // A group whose partial request could not be stored: answered FAILURE at its last request.
  struct Aborted {
    uint32_t grpid;
    uint32_t pasid;
    bool pasid_valid;
    bool used;
  };
  // Groups marked at once per device; a further mark replaces the oldest, whose group is then
  // handled with the requests it still has.
  static constexpr unsigned kMaxAborted = 4;

  IopfDevice(IopfQueue& q, Device& d) : queue(q), dev(d) {}

  IopfQueue& queue;
  Device& dev;
  IopfGroup::FaultList partial;  // requests of unfinished groups, oldest first
  GroupList groups;              // queued, being handled or waiting for an answer; oldest first
  Aborted aborted[kMaxAborted] = {};
  unsigned next_aborted = 0;
};

namespace {

bool pasid_valid(const IommuFaultPageRequest& prm) {
  return prm.flags & IOMMU_FAULT_PAGE_REQUEST_PASID_VALID;
}

// Whether two requests belong to the same group (iopf.h: same grpid, same PASID or none).
bool same_group(const IommuFaultPageRequest& a, const IommuFaultPageRequest& b) {
  if (a.grpid != b.grpid || pasid_valid(a) != pasid_valid(b)) return false;
  return !pasid_valid(a) || a.pasid == b.pasid;
}

bool is_aborted(const IopfDevice::Aborted& a, const IommuFaultPageRequest& prm) {
  return a.used && a.grpid == prm.grpid && a.pasid_valid == pasid_valid(prm) &&
         (!a.pasid_valid || a.pasid == prm.pasid);
}

void mark_aborted(IopfDevice& idev, const IommuFaultPageRequest& prm) {
  for (const IopfDevice::Aborted& a : idev.aborted)
    if (is_aborted(a, prm)) return;
  idev.aborted[idev.next_aborted] = {
      .grpid = prm.grpid, .pasid = prm.pasid, .pasid_valid = pasid_valid(prm), .used = true};
  idev.next_aborted = (idev.next_aborted + 1) % IopfDevice::kMaxAborted;
}

bool find_aborted(IopfDevice& idev, const IommuFaultPageRequest& prm, bool clear) {
  for (IopfDevice::Aborted& a : idev.aborted) {
    if (!is_aborted(a, prm)) continue;
    if (clear) a.used = false;
    return true;
  }
  return false;
}

// Moves the partial requests of prm's group to `to`, in the order they came.
void take_partials(IopfDevice& idev, const IommuFaultPageRequest& prm, IopfGroup::FaultList& to) {
  for (auto it = idev.partial.begin(); it != idev.partial.end();) {
    if (!same_group(it->prm, prm)) {
      ++it;
      continue;
    }
    IopfFault& f = *it;
    it = idev.partial.erase(it);
    to.push_back(f);
  }
}

void free_faults(IopfGroup::FaultList& faults) {
  faults.clear_and_dispose([](IopfFault* f) {
    f->~IopfFault();
    kfree(f);
  });
}

// The response to the group whose last request is `last` (iopf.h: the PASID only when asked
// for).
Result<void> send_response(Device& dev, const IommuFaultPageRequest& last, uint32_t code) {
  IommuDevice* iommu = dev.iommu();
  if (!iommu) return Error(-ENODEV);
  const IommuPageResponse response{
      .pasid = (last.flags & IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID) ? last.pasid : 0,
      .grpid = last.grpid,
      .code = code,
  };
  return iommu->page_response(dev, last, response);
}

}  // namespace

// ---- The queue ----

IopfQueue::IopfQueue(Token, const char* name, unsigned capacity, unsigned max_partial,
                     IopfGroup* slots)
    : name_(name), capacity_(capacity), max_partial_(max_partial), slots_(slots) {
  for (unsigned i = 0; i < capacity_; i++) free_.push_back(slots_[i]);
}

Result<Box<IopfQueue>> IopfQueue::create(const char* name, unsigned capacity,
                                         unsigned max_partial) {
  if (capacity == 0 || max_partial == 0) return Error(-EINVAL);
  void* mem = kmalloc(size_t{capacity} * sizeof(IopfGroup), alignof(IopfGroup));
  if (!mem) return Error(-ENOMEM);
  auto* slots = static_cast<IopfGroup*>(mem);
  for (unsigned i = 0; i < capacity; i++) new (&slots[i]) IopfGroup();
  Result<Box<IopfQueue>> q = make_box<IopfQueue>(Token{}, name, capacity, max_partial, slots);
  if (!q.ok()) {
    for (unsigned i = 0; i < capacity; i++) slots[i].~IopfGroup();
    kfree(mem);
  }
  return q;
}

// Devices first: their groups hold slots and their FaultParams point here.
IopfQueue::~IopfQueue() {
  STRATA_BUG_ON(nr_devices_ != 0);
  STRATA_BUG_ON(free_.size() != capacity_);
  free_.clear();
  for (unsigned i = 0; i < capacity_; i++) slots_[i].~IopfGroup();
  kfree(slots_);
}

void IopfQueue::set_kick(KickFn kick, void* data) {
  Guard<SpinLock> l(lock_);
  kick_ = kick;
  kick_data_ = data;
}

IopfQueue::Stats IopfQueue::stats() const {
  Guard<SpinLock> l(lock_);
  return {
      .queued = static_cast<unsigned>(queued_.size()),
      .in_use = capacity_ - static_cast<unsigned>(free_.size()),
      .devices = nr_devices_,
      .handled = handled_,
      .overflows = overflows_,
      .nomem = nomem_,
      .partial_dropped = partial_dropped_,
      .response_errors = response_errors_,
  };
}

Result<void> IopfQueue::add_device(Device& dev) {
  if (!dev.iommu()) return Error(-ENODEV);
  void* mem = kmalloc(sizeof(IopfDevice), alignof(IopfDevice));
  if (!mem) return Error(-ENOMEM);
  IopfDevice* idev = new (mem) IopfDevice(*this, dev);
  {
    FaultParam& fp = dev.fault_;
    Guard<SpinLock> g(fp.lock);
    Guard<SpinLock> l(lock_);
    if (!fp.iopf) {
      fp.iopf = idev;
      nr_devices_++;
      return {};
    }
  }
  idev->~IopfDevice();
  kfree(idev);
  return Error(-EBUSY);
}

void IopfQueue::remove_device(Device& dev) { detach(dev, true); }

// Linux's iopf_queue_remove_device. Holding work_lock_ means no group of the device is being
// handled; once fp.iopf is cleared nobody else can reach idev, so its groups are answered with
// no spinlock held (the driver's page_response may sleep).
void IopfQueue::detach(Device& dev, bool warn) {
  Guard<Mutex> w(work_lock_);
  FaultParam& fp = dev.fault_;
  IopfDevice* idev;
  {
    Guard<SpinLock> g(fp.lock);
    Guard<SpinLock> l(lock_);
    idev = fp.iopf;
    if (!idev || &idev->queue != this) {
      idev = nullptr;
    } else {
      fp.iopf = nullptr;
      nr_devices_--;
      for (IopfGroup& group : idev->groups) {
        STRATA_BUG_ON(group.state_ == IopfGroup::State::handling);
        if (group.state_ == IopfGroup::State::queued) queued_.erase(queued_.iterator_to(group));
        group.state_ = IopfGroup::State::handling;
      }
    }
  }
  if (!idev) {
    if (warn) STRATA_WARN_ON(true);  // not on this queue: a caller bug
    return;
  }

  IopfGroup::FaultList doomed;
  while (!idev->groups.empty()) {
    IopfGroup& group = idev->groups.front();
    idev->groups.pop_front();
    (void)respond(dev, group.last_.prm, IOMMU_PAGE_RESP_INVALID);
    Guard<SpinLock> l(lock_);
    free_slot_locked(group, doomed);
  }
  doomed.splice(doomed.end(), idev->partial);
  free_faults(doomed);
  idev->~IopfDevice();
  kfree(idev);
}

// ---- Report ----

Result<void> IopfQueue::report(Device& dev, const IommuFaultPageRequest& prm) {
  const bool last = prm.flags & IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE;
  // Allocated before the spinlocks are taken; a failure is dealt with under them.
  IopfFault* fresh = nullptr;
  if (!last) {
    if (void* mem = kmalloc(sizeof(IopfFault), alignof(IopfFault)))
      fresh = new (mem) IopfFault{.prm = prm, .node = {}};
  }

  IopfGroup::FaultList doomed;
  int answer = -1;
  IopfQueue* queue = nullptr;
  KickFn kick = nullptr;
  void* kick_data = nullptr;
  Result<void> r = [&]() -> Result<void> {
    FaultParam& fp = dev.fault_;
    Guard<SpinLock> g(fp.lock);
    IopfDevice* idev = fp.iopf;
    if (!idev) {
      if (fresh) doomed.push_back(*fresh);
      if (last) answer = IOMMU_PAGE_RESP_INVALID;
      return Error(-ENODEV);
    }
    queue = &idev->queue;
    Guard<SpinLock> l(queue->lock_);
    bool queued = false;
    Result<void> res = queue->report_locked(*idev, prm, fresh, doomed, &answer, &queued);
    if (queued) {
      kick = queue->kick_;
      kick_data = queue->kick_data_;
    }
    return res;
  }();

  free_faults(doomed);
  if (answer >= 0) {
    if (queue) {
      (void)queue->respond(dev, prm, static_cast<uint32_t>(answer));
    } else {
      Result<void> sent = send_response(dev, prm, static_cast<uint32_t>(answer));
      if (!sent.ok()) dev_dbg(dev.name(), "page response without a queue: {}", sent.error());
    }
  }
  if (kick) kick(kick_data);
  return r;
}

Result<void> IopfQueue::report_locked(IopfDevice& idev, const IommuFaultPageRequest& prm,
                                      IopfFault* fresh, IopfGroup::FaultList& doomed, int* answer,
                                      bool* kick) {
  if (!(prm.flags & IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE)) {
    if (!fresh) {
      nomem_++;
      mark_aborted(idev, prm);
      take_partials(idev, prm, doomed);
      return Error(-ENOMEM);
    }
    if (find_aborted(idev, prm, false)) {
      doomed.push_back(*fresh);  // the group is doomed already
      return {};
    }
    if (idev.partial.size() >= max_partial_) {
      IopfFault& oldest = idev.partial.front();
      idev.partial.pop_front();
      doomed.push_back(oldest);
      partial_dropped_++;
    }
    idev.partial.push_back(*fresh);
    return {};
  }

  if (find_aborted(idev, prm, true)) {
    take_partials(idev, prm, doomed);
    *answer = IOMMU_PAGE_RESP_FAILURE;
    return Error(-ENOMEM);
  }
  if (free_.empty()) {
    overflows_++;
    take_partials(idev, prm, doomed);
    *answer = IOMMU_PAGE_RESP_FAILURE;
    return Error(-ENOSPC);
  }
  IopfGroup& group = free_.front();
  free_.pop_front();
  group.dev_ = &idev.dev;
  group.domain_ = nullptr;
  group.last_.prm = prm;
  take_partials(idev, prm, group.faults_);
  group.faults_.push_back(group.last_);
  group.state_ = IopfGroup::State::queued;
  queued_.push_back(group);
  idev.groups.push_back(group);
  *kick = true;
  return {};
}

// ---- Handling ----

unsigned IopfQueue::process(unsigned budget) {
  unsigned ran = 0;
  while (ran < budget) {
    Guard<Mutex> w(work_lock_);
    IopfGroup* group = nullptr;
    {
      Guard<SpinLock> l(lock_);
      if (!queued_.empty()) {
        group = &queued_.front();
        queued_.pop_front();
        group->state_ = IopfGroup::State::handling;
      }
    }
    if (!group) break;
    run_locked(*group);
    ran++;
  }
  return ran;
}

Result<void> IopfQueue::flush_dev(Device& dev) {
  Guard<Mutex> w(work_lock_);
  FaultParam& fp = dev.fault_;
  for (;;) {
    IopfGroup* group = nullptr;
    {
      Guard<SpinLock> g(fp.lock);
      Guard<SpinLock> l(lock_);
      IopfDevice* idev = fp.iopf;
      if (!idev || &idev->queue != this) return Error(-ENODEV);
      for (IopfGroup& candidate : idev->groups) {
        if (candidate.state_ == IopfGroup::State::queued) {
          group = &candidate;
          break;
        }
      }
      if (!group) return {};
      queued_.erase(queued_.iterator_to(*group));
      group->state_ = IopfGroup::State::handling;
    }
    run_locked(*group);
  }
}

// Linux's find_fault_handler + iopf_handler. The device cannot leave the queue (or the core)
// while this runs: both go through work_lock_.
void IopfQueue::run_locked(IopfGroup& group) {
  Device& dev = *group.dev_;
  const IommuFaultPageRequest& last = group.last_.prm;
  Domain* domain;
  if (pasid_valid(last)) {
    domain = IommuCore::domain_for_dev_pasid(dev, last.pasid);
    if (!domain) {
      Domain* rid = iommu_get_domain_for_dev(dev);
      if (rid && rid->type() == DomainType::nested) domain = rid;
    }
  } else {
    domain = iommu_get_domain_for_dev(dev);
  }

  uint32_t code = IOMMU_PAGE_RESP_INVALID;
  if (domain && domain->iopf_handler()) {
    group.domain_ = domain;
    code = domain->iopf_handler()->handle_iopf(dev, group);
  }
  {
    Guard<SpinLock> l(lock_);
    handled_++;
    if (code == IOMMU_PAGE_RESP_ASYNC) {
      group.state_ = IopfGroup::State::async;
      return;
    }
  }
  if (STRATA_WARN_ON(code > IOMMU_PAGE_RESP_FAILURE)) code = IOMMU_PAGE_RESP_INVALID;
  (void)respond(dev, last, code);
  retire(group);
}

Result<void> IopfQueue::respond(Device& dev, const IommuFaultPageRequest& last, uint32_t code) {
  Result<void> r = send_response(dev, last, code);
  if (r.ok()) return r;
  bool first;
  {
    Guard<SpinLock> l(lock_);
    first = response_errors_++ == 0;
  }
  if (first) {
    dev_warn(dev.name(), "{}: page response failed: {} (further failures are only counted)", name_,
             r.error());
  }
  return r;
}

void IopfQueue::retire(IopfGroup& group) {
  IopfGroup::FaultList doomed;
  {
    Guard<SpinLock> l(lock_);
    // fp.iopf is written under lock_ too, and cannot change while work_lock_ is held.
    IopfDevice* idev = group.dev_->fault_.iopf;
    STRATA_BUG_ON(!idev || &idev->queue != this);
    idev->groups.erase(idev->groups.iterator_to(group));
    free_slot_locked(group, doomed);
  }
  free_faults(doomed);
}

void IopfQueue::free_slot_locked(IopfGroup& group, IopfGroup::FaultList& doomed) {
  group.faults_.erase(group.faults_.iterator_to(group.last_));
  doomed.splice(doomed.end(), group.faults_);
  group.dev_ = nullptr;
  group.domain_ = nullptr;
  group.state_ = IopfGroup::State::free;
  free_.push_back(group);
}

// ---- Entry points from fault.cc ----

Result<void> iommu_page_response(Device& dev, const IommuPageResponse& response) {
  return IopfQueue::page_response_async(dev, response);
}

Result<void> IopfQueue::page_response_async(Device& dev, const IommuPageResponse& response) {
  if (response.code > IOMMU_PAGE_RESP_FAILURE) return Error(-EINVAL);
  FaultParam& fp = dev.fault_;
  IopfQueue* queue;
  {
    Guard<SpinLock> g(fp.lock);
    if (!fp.iopf) return Error(-ENODEV);
    queue = &fp.iopf->queue;
  }
  // The group may be the one being handled now, its handler not yet returned: wait for it.
  Guard<Mutex> w(queue->work_lock_);
  IopfGroup* found = nullptr;
  {
    Guard<SpinLock> g(fp.lock);
    Guard<SpinLock> l(queue->lock_);
    IopfDevice* idev = fp.iopf;
    if (!idev || &idev->queue != queue) return Error(-ENODEV);
    for (IopfGroup& group : idev->groups) {
      const IommuFaultPageRequest& last = group.last_.prm;
      if (group.state_ != IopfGroup::State::async || last.grpid != response.grpid) continue;
      if (pasid_valid(last) && last.pasid != response.pasid) continue;
      found = &group;
      break;
    }
    if (!found) return Error(-EINVAL);
    found->state_ = IopfGroup::State::handling;
  }
  Result<void> r = queue->respond(dev, found->last_.prm, response.code);
  queue->retire(*found);
  return r;
}

Result<void> iopf_queue_flush_dev(Device& dev) {
  IopfQueue* queue = nullptr;
  {
    FaultParam& fp = IommuCore::fault(dev);
    Guard<SpinLock> g(fp.lock);
    if (fp.iopf) queue = &fp.iopf->queue;
  }
  if (!queue) return Error(-ENODEV);
  return queue->flush_dev(dev);  // -ENODEV if it left the queue meanwhile
}

size_t IopfQueue::nr_groups_locked(Device& dev) {
  IopfDevice* idev = dev.fault_.iopf;
  if (!idev) return 0;
  Guard<SpinLock> l(idev->queue.lock_);
  return idev->groups.size();
}

void IopfQueue::release_device(Device& dev) {
  IopfQueue* queue = nullptr;
  {
    Guard<SpinLock> g(dev.fault_.lock);
    if (dev.fault_.iopf) queue = &dev.fault_.iopf->queue;
  }
  // Silent if the driver took it off meanwhile; the queue outlives its devices.
  if (queue) queue->detach(dev, false);
}

}  // namespace strata
