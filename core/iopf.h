// SPDX-License-Identifier: MIT
// Recoverable I/O page faults (Linux's drivers/iommu/io-pgfault.c): the IopfQueue that page
// request groups wait in until the OS's worker runs them through the handler of their domain.
//
// The library has no threads, so the OS drives the queue:
//
//   Box<IopfQueue> q = STRATA_TRY(IopfQueue::create("smmu0-iopf", 256));
//   q->set_kick(+[](void* wq) { queue_work(wq); }, my_workqueue);   // from report context
//   ...the worker:  while (q->process(16)) cond_resched();
//
// and a vendor driver puts a device on its IOMMU's queue when it enables IOPF for it
// (q->add_device(dev), Linux's iopf_queue_add_device) and reports each page request with
// iommu_report_device_fault() (fault.h).
//
// What happens to a page request (IommuFaultPageRequest):
//  - A group is the requests of one device with the same grpid (Page Request Group Index) and
//    the same PASID, or all without one (PASID_VALID clear); the one with
//    IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE completes it. Requests without LAST_PAGE wait on the
//    device's partial list (kmalloc'd, as in Linux); a group of a single last request needs
//    no allocation at all: the last request lives in the group's slot.
//  - The partial list holds at most `max_partial` requests per device. Past that the oldest is
//    dropped (and counted), not the new one: a function that never completes a group (broken,
//    or hostile) would otherwise pin the bound for good and lose every later group's requests,
//    while a dropped request only costs a retry (its page is not made resident, so after the
//    response the function's translation faults again and it asks again; PCIe 6.0, 10.4). A
//    well-behaved function never gets near the bound when it is at least the function's
//    Outstanding Page Request Allocation (PCIe 6.0, 10.5.2.5).
//  - A completed group takes one of the queue's `capacity` slots until it is answered. With no
//    slot free the group is answered IOMMU_PAGE_RESP_FAILURE at once and counted (overflows),
//    as Linux answers a group it cannot allocate. When a partial request cannot be allocated,
//    the group is marked and answered FAILURE when its last request arrives (no earlier: a
//    PRG response before the group's last request would answer nothing the function sent).
//  - The worker (process(), flush_dev()) finds the group's domain: the one attached to the
//    request's PASID (iommu_get_domain_for_dev_pasid); for a request without PASID, the
//    device's domain; for a PASID with no domain of its own, the device's domain if it is a
//    nested one (its stage 1 is the guest's PASID table, so every PASID belongs to it; Linux
//    does the same for drivers with user-managed PASID tables). No domain, or a domain with
//    no IopfHandler: IOMMU_PAGE_RESP_INVALID (Linux's iopf_error_response). Otherwise the
//    handler's code is sent, or, when it returns IOMMU_PAGE_RESP_ASYNC, the group waits for
//    iommu_page_response().
//  - Responses carry the group's grpid, and its PASID when the last request has
//    IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID (PASID 0 otherwise); the driver also gets the last
//    request itself.
//  - A device leaves the queue with remove_device() (or iommu_release_device(), which calls
//    it before the driver releases the device): partial requests are freed and every group not
//    yet answered (queued, or waiting for iommu_page_response) is answered
//    IOMMU_PAGE_RESP_INVALID then, while the driver still knows the device, as Linux's
//    iopf_queue_remove_device does. Nothing of the device is left afterwards, so no answer can
//    reach it later: process() never sees it again, iommu_page_response() is -ENODEV, and a
//    request reported after that is answered at once as for a device on no queue.
//  - A failing page_response op (or none: the default is -ENODEV) is counted and logged once
//    per queue; the group is gone either way (the device gets no second answer).
//
// Concurrency. Reports may come from several threads (the drivers' event threads) while any
// number of OS threads call process() and flush_dev(). Groups are handled one at a time per
// queue: process(), flush_dev(), remove_device() and iommu_page_response() hold the queue's
// work_lock_ (a Mutex) while they run a group, so when flush_dev() or remove_device() returns
// no handler is running for the device. An OS that wants different devices' faults handled in
// parallel gives them different queues.
//
// Lock order (the iommu core's, with the queue's locks in place):
//   IommuDevice::probe_lock_ -> IopfQueue::work_lock_ -> Group::mutex_ -> Domain::resv_lock_
//   FaultParam::lock -> IopfQueue::lock_   (SpinLocks, innermost: no Mutex, no driver op and
//                                           no handler is called with them held)
// So: an IopfHandler runs with work_lock_ held and may look domains up, but must not call
// process(), flush_dev(), remove_device(), iommu_page_response() or release devices; and
// flush_dev() / remove_device() must not be called with a group's mutex held (not from a
// domain or driver op that the core calls under it).
//
// Domains and handlers outlive their groups by the rule Linux has: whoever detaches a domain
// that has an IopfHandler from a device (or PASID) on a queue calls flush_dev(dev) (or
// iopf_queue_flush_dev(dev), below) after the detach and before freeing the domain or the
// handler. Groups reported after the detach find
// the new domain; flush_dev() waits for one being handled with the old one and runs those
// queued before.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <boost/intrusive/list.hpp>

#include "arch/lock.h"
#include "arch/memory.h"
#include "arch/result.h"
#include "core/fault.h"

namespace strata {

class Device;
class Domain;

// One page request of a group.
struct IopfFault {
  IommuFaultPageRequest prm;
  boost::intrusive::list_member_hook<boost::intrusive::link_mode<boost::intrusive::normal_link>>
      node;
};

// The page requests of one group, as an IopfHandler sees them (Linux's struct iopf_group).
// Valid for the duration of handle_iopf(): a handler that answers later
// (IOMMU_PAGE_RESP_ASYNC) copies what it needs.
struct IopfGroup {
 public:
  using FaultList = boost::intrusive::list<
      IopfFault,
      boost::intrusive::member_hook<IopfFault, decltype(IopfFault::node), &IopfFault::node>,
      boost::intrusive::constant_time_size<true>>;

  // Every request of the group in the order reported; the last one (LAST_PAGE) is last.
  const FaultList& faults() const { return faults_; }
  size_t size() const { return faults_.size(); }
  const IommuFaultPageRequest& last() const { return last_.prm; }
  Device& dev() const { return *dev_; }
  // The domain whose handler is running.
  Domain& domain() const { return *domain_; }

  IopfGroup(const IopfGroup&) = delete;
  IopfGroup& operator=(const IopfGroup&) = delete;

 private:
  friend class IopfQueue;
  friend struct IopfDevice;

  using Hook = boost::intrusive::list_member_hook<
      boost::intrusive::link_mode<boost::intrusive::normal_link>>;
  enum class State : uint8_t {
    free,      // in IopfQueue::free_
    queued,    // in IopfQueue::queued_ and the device's groups
    handling,  // owned by the thread holding work_lock_; still in the device's groups
    async,     // the handler returned IOMMU_PAGE_RESP_ASYNC; in the device's groups
  };

  IopfGroup() = default;
  ~IopfGroup() = default;

  Hook queue_node_;  // IopfQueue::free_ or queued_, under its lock_
  Hook dev_node_;    // IopfDevice::groups, under the queue's lock_
  FaultList faults_;
  IopfFault last_;
  Device* dev_ = nullptr;
  Domain* domain_ = nullptr;
  State state_ = State::free;
};

class IopfQueue {
 public:
  // Called after a group has been queued, from the reporting context with no lock held: the
  // OS schedules its worker, which calls process(). It must not sleep; it may run while the
  // worker is already busy (make it idempotent, like queue_work).
  using KickFn = void (*)(void* data);

  static constexpr unsigned kDefaultMaxPartial = 64;

  // `capacity`: groups queued or waiting for an answer, all devices together (>= 1);
  // `max_partial`: partial requests per device (>= 1). -EINVAL, -ENOMEM.
  static Result<Box<IopfQueue>> create(const char* name, unsigned capacity,
                                       unsigned max_partial = kDefaultMaxPartial);
  // Every device must have been removed (a strata bug otherwise).
  ~IopfQueue();
  IopfQueue(const IopfQueue&) = delete;
  IopfQueue& operator=(const IopfQueue&) = delete;

  const char* name() const { return name_; }
  unsigned capacity() const { return capacity_; }
  unsigned max_partial() const { return max_partial_; }

  // Set before devices are added.
  void set_kick(KickFn kick, void* data);

  // Page requests of `dev` come here from now on (Linux's iopf_queue_add_device). -ENODEV: not
  // probed; -EBUSY: on a queue already; -ENOMEM.
  Result<void> add_device(Device& dev);
  // Takes `dev` off the queue (Linux's iopf_queue_remove_device): waits for a group being
  // handled, frees its partial requests, answers its unanswered groups INVALID. A device that
  // is not on this queue is a caller bug (warned, nothing done).
  void remove_device(Device& dev);

  // Runs up to `budget` queued groups, oldest first, each through its domain's handler, and
  // answers them (or leaves them to iommu_page_response()). Returns how many it ran; fewer
  // than `budget` means the queue was empty.
  unsigned process(unsigned budget = ~0u);
  // Runs every queued group of `dev` now, after any group being handled has finished
  // (Linux's iopf_queue_flush_dev). Groups left to iommu_page_response() stay. -ENODEV: `dev`
  // is not on this queue.
  Result<void> flush_dev(Device& dev);

  struct Stats {
    unsigned queued;           // groups waiting for process()
    unsigned in_use;           // slots taken: queued, being handled or waiting for an answer
    unsigned devices;          // devices on the queue
    uint64_t handled;          // groups run through a handler (or found none)
    uint64_t overflows;        // groups answered FAILURE because no slot was free
    uint64_t nomem;            // partial requests that could not be allocated
    uint64_t partial_dropped;  // oldest partial requests dropped at a device's bound
    uint64_t response_errors;  // page_response op failures
  };
  Stats stats() const;

 private:
  friend Result<void> iommu_report_device_fault(Device& dev, const IommuFault& fault);
  friend Result<void> iommu_page_response(Device& dev, const IommuPageResponse& response);
  friend void iommu_fault_release_device(Device& dev);
  friend Result<void> iommu_unregister_device_fault_handler(Device& dev);

  struct Token {};  // make_box needs a public constructor; only create() can name this
  using GroupList = boost::intrusive::list<
      IopfGroup, boost::intrusive::member_hook<IopfGroup, IopfGroup::Hook, &IopfGroup::queue_node_>,
      boost::intrusive::constant_time_size<true>>;

 public:
  IopfQueue(Token, const char* name, unsigned capacity, unsigned max_partial, IopfGroup* slots);

 private:
  // The page-request half of iommu_report_device_fault().
  static Result<void> report(Device& dev, const IommuFaultPageRequest& prm);
  // Files `prm` (fresh: its storage for a partial request, nullptr if kmalloc failed).
  // Requests to free go to `doomed`; *answer is set to a code to send at once; *kick when a
  // group was queued. FaultParam::lock and lock_ held.
  Result<void> report_locked(IopfDevice& idev, const IommuFaultPageRequest& prm, IopfFault* fresh,
                             IopfGroup::FaultList& doomed, int* answer, bool* kick);
  // iommu_page_response().
  static Result<void> page_response_async(Device& dev, const IommuPageResponse& response);
  // Groups of `dev` not yet answered; FaultParam::lock held.
  static size_t nr_groups_locked(Device& dev);
  // The IOPF half of iommu_fault_release_device().
  static void release_device(Device& dev);
  // remove_device(), silent when `dev` is not on this queue when !warn.
  void detach(Device& dev, bool warn);

  // Runs a group taken off queued_ (state handling): finds its domain, calls the handler,
  // answers or parks it. work_lock_ held.
  void run_locked(IopfGroup& group);
  // Sends `code` for the group whose last request is `last`. No spinlock held.
  Result<void> respond(Device& dev, const IommuFaultPageRequest& last, uint32_t code);
  // Takes an answered group off its device and gives its slot back. work_lock_ held.
  void retire(IopfGroup& group);
  // Gives a group's slot back; its partial requests go to `doomed`. lock_ held.
  void free_slot_locked(IopfGroup& group, IopfGroup::FaultList& doomed);

  const char* const name_;
  const unsigned capacity_;
  const unsigned max_partial_;
  IopfGroup* const slots_;  // capacity_ of them, kmalloc'd with the queue

  // Held while a group is run or answered (the lock order is above).
  Mutex work_lock_;

  // Protects everything below, and the IopfDevice of each device on the queue.
  mutable SpinLock lock_;
  GroupList free_;
  GroupList queued_;  // oldest first
  KickFn kick_ = nullptr;
  void* kick_data_ = nullptr;
  unsigned nr_devices_ = 0;
  uint64_t handled_ = 0;
  uint64_t overflows_ = 0;
  uint64_t nomem_ = 0;
  uint64_t partial_dropped_ = 0;
  uint64_t response_errors_ = 0;
};

// flush_dev() on whichever queue `dev` is on (Linux's iopf_queue_flush_dev), for the users
// that detach a domain with an IopfHandler and do not know the driver's queue (SVA unbind,
// VFIO): call it after the detach and before freeing the domain, with no group mutex held.
// -ENODEV: `dev` is on no queue (then nothing of it can be running either).
Result<void> iopf_queue_flush_dev(Device& dev);

}  // namespace strata
