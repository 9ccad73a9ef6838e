// SPDX-License-Identifier: MIT
// Faults the IOMMU reports against a device (Linux's struct iommu_fault and
// iommu_page_response; values as in Linux's uapi/linux/iommu.h, so VFIO copies them to user
// space unchanged).
//
// Two kinds (Documentation/core.md, "Faults"; iopf.h for the queue):
//  - Unrecoverable (IOMMU_FAULT_DMA_UNRECOV): the transaction was aborted. The driver reports
//    it; the core hands it to the device's registered handler (VFIO forwards it to user space),
//    or returns -EOPNOTSUPP so that the driver logs it.
//  - Recoverable page requests (IOMMU_FAULT_PAGE_REQ, PCIe PRI / SMMUv3 stall): the device
//    waits for an answer. The core collects the requests of a group until its last one, queues
//    the group on the device's IopfQueue (iopf.h), and the OS's worker runs it through the
//    handler of the domain attached to the request's PASID (or to the device); the answer goes
//    back through the driver's page_response op.
//
// The rule drivers rely on (Linux's, from the io-pgfault rework): once a request with
// IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE has been passed to iommu_report_device_fault(), the core
// answers its group exactly once, whatever happens to the device, the domain or the queue, and
// whatever the call returns; the driver never answers a reported group itself. A request
// without LAST_PAGE needs no answer of its own.
#pragma once

#include <stdint.h>

#include "arch/lock.h"
#include "arch/result.h"

namespace strata {

enum IommuFaultType : uint32_t {
  IOMMU_FAULT_DMA_UNRECOV = 1,
  IOMMU_FAULT_PAGE_REQ = 2,
};

enum IommuFaultReason : uint32_t {
  IOMMU_FAULT_REASON_UNKNOWN = 0,
  IOMMU_FAULT_REASON_PASID_FETCH,      // could not fetch the PASID table entry
  IOMMU_FAULT_REASON_BAD_PASID_ENTRY,  // the PASID entry is invalid or malformed
  IOMMU_FAULT_REASON_PASID_INVALID,    // PASID out of range (PASID table too small)
  IOMMU_FAULT_REASON_WALK_EABT,        // external abort while walking the page tables
  IOMMU_FAULT_REASON_PTE_FETCH,        // could not fetch a page-table entry
  IOMMU_FAULT_REASON_PERMISSION,       // permission check failed
  IOMMU_FAULT_REASON_ACCESS,           // access flag fault
  IOMMU_FAULT_REASON_OOR_ADDRESS,      // address out of range (address size fault)
};

// perm fields
inline constexpr uint32_t IOMMU_FAULT_PERM_READ = 1 << 0;
inline constexpr uint32_t IOMMU_FAULT_PERM_WRITE = 1 << 1;
inline constexpr uint32_t IOMMU_FAULT_PERM_EXEC = 1 << 2;
inline constexpr uint32_t IOMMU_FAULT_PERM_PRIV = 1 << 3;

// IommuFaultUnrecoverable::flags
inline constexpr uint32_t IOMMU_FAULT_UNRECOV_PASID_VALID = 1 << 0;
inline constexpr uint32_t IOMMU_FAULT_UNRECOV_ADDR_VALID = 1 << 1;
inline constexpr uint32_t IOMMU_FAULT_UNRECOV_FETCH_ADDR_VALID = 1 << 2;

struct IommuFaultUnrecoverable {
  uint32_t reason;  // IommuFaultReason
  uint32_t flags;
  uint32_t pasid;
  uint32_t perm;
  uint64_t addr;        // the faulting input address
  uint64_t fetch_addr;  // the table or PASID-entry address whose fetch faulted
};

// IommuFaultPageRequest::flags
inline constexpr uint32_t IOMMU_FAULT_PAGE_REQUEST_PASID_VALID = 1 << 0;
inline constexpr uint32_t IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE = 1 << 1;
inline constexpr uint32_t IOMMU_FAULT_PAGE_REQUEST_PRIV_DATA = 1 << 2;
// The response must carry the PASID (PCIe PRG Response PASID Required, PCIe 6.0 10.5.2.3).
inline constexpr uint32_t IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID = 1 << 3;

struct IommuFaultPageRequest {
  uint32_t flags;
  uint32_t pasid;
  uint32_t grpid;  // Page Request Group Index: the requests answered by one response
  uint32_t perm;
  uint64_t addr;
  uint64_t private_data[2];
};

struct IommuFault {
  uint32_t type;  // IommuFaultType
  union {
    IommuFaultUnrecoverable event;
    IommuFaultPageRequest prm;
  };
};

enum IommuPageResponseCode : uint32_t {
  IOMMU_PAGE_RESP_SUCCESS = 0,  // retry the requests: the pages are there
  IOMMU_PAGE_RESP_INVALID = 1,  // no page there: the device treats the access as failed
  IOMMU_PAGE_RESP_FAILURE = 2,  // the device must stop issuing page requests (PRI disabled)
  // Not a response: what an IopfHandler returns when it has handed the group on (to a VMM,
  // whose guest owns the stage-1 tables) and the answer comes later through
  // iommu_page_response(). From the VFIO/iommufd nesting series (IOMMU_PAGE_RESP_ASYNC);
  // never sent to a device, and refused by iommu_page_response().
  IOMMU_PAGE_RESP_ASYNC = 3,
};

struct IommuPageResponse {
  uint32_t pasid;
  uint32_t grpid;
  uint32_t code;  // IommuPageResponseCode
};

// Unrecoverable-fault handler registered for a device. Called from the context that reported
// the fault (the driver's event thread) with the device's FaultParam::lock, a SpinLock, held:
// it must not sleep and must not call the fault API for the same device. VFIO's copies the
// record into a ring and signals an eventfd. Holding the lock is what makes unregistering
// safe: once iommu_unregister_device_fault_handler() returns, the handler is neither running
// nor called again, so its `data` may be freed.
using IommuFaultHandler = Result<void> (*)(const IommuFault& fault, void* data);

class Device;
class IopfQueue;
struct IopfDevice;

// Per-device fault state (Linux's struct iommu_fault_param), in Device.
//
// Lock order (all SpinLocks, innermost in the core): FaultParam::lock -> IopfQueue::lock_.
// No Mutex is taken and no driver op is called with either held; the unrecoverable handler is
// the one callback made under `lock`. The rest of the IOPF order is in iopf.h.
struct FaultParam {
  SpinLock lock;
  // Under `lock`.
  IommuFaultHandler handler = nullptr;
  void* data = nullptr;
  // The device's state on its IopfQueue (partial requests, groups not yet answered); nullptr
  // when it is on none. Written under `lock` and the queue's lock_ (IopfQueue::add_device,
  // remove_device, iommu_fault_release_device); what it points to is under the queue's lock_.
  IopfDevice* iopf = nullptr;
};

// Reports a fault against `dev` (Linux's iommu_report_device_fault); called by vendor drivers,
// from any context that may take a SpinLock (never interrupt context: a request that is not
// the last of its group is kmalloc'd). The driver must not report against a device
// concurrently with its release_device op for it (Linux's SMMUv3 driver holds its streams
// mutex across both): answers sent from this call go to `dev`.
//
// Unrecoverable: the device's handler's result; -EOPNOTSUPP when it has none (the driver logs).
// Page request (see the rule above; the result is only for the driver's statistics):
//  - -ENODEV: the device is on no IopfQueue; a last request is answered
//    IOMMU_PAGE_RESP_INVALID at once (Linux's iopf_error_response).
//  - -ENOSPC: the queue is full; -ENOMEM: a request of the group could not be stored. The
//    group is answered IOMMU_PAGE_RESP_FAILURE when its last request arrives (at once, for the
//    last request; requests of the group still to come are dropped).
// -EINVAL for an unknown fault type.
Result<void> iommu_report_device_fault(Device& dev, const IommuFault& fault);

// Answers a group that the domain's IopfHandler handed on (it returned IOMMU_PAGE_RESP_ASYNC):
// a VMM answering what its guest resolved (Linux's iommu_page_response). Matches the oldest
// such group of `dev` with the same grpid and, when its requests carry a PASID
// (IOMMU_FAULT_PAGE_REQUEST_PASID_VALID), the same PASID; the response sent to the device
// carries the PASID only when the request asked for it (NEEDS_PASID). Waits while a group of
// the device's queue is being handled (it may be this one, its handler not yet returned).
// -EINVAL: no such group, or `code` is not SUCCESS, INVALID or FAILURE; -ENODEV: the device
// is on no IopfQueue (released, or never added). Otherwise the driver's page_response result;
// the group is answered and gone either way.
Result<void> iommu_page_response(Device& dev, const IommuPageResponse& response);

// Called by the core while releasing `dev`, after it left its group and before the driver's
// release_device: drops the handler and takes the device off its IopfQueue
// (IopfQueue::remove_device: partial requests freed, groups not yet answered answered
// IOMMU_PAGE_RESP_INVALID while the driver still knows the device). Afterwards nothing of the
// device is left in the fault code, so no answer can reach it once the driver has released it.
void iommu_fault_release_device(Device& dev);

// -EINVAL for a null handler; -EBUSY when one is registered already.
Result<void> iommu_register_device_fault_handler(Device& dev, IommuFaultHandler handler,
                                                 void* data);
// -EINVAL when none is registered; -EBUSY while page request groups of the device are queued,
// being handled or waiting for iommu_page_response() (flush_dev() and answer them first).
Result<void> iommu_unregister_device_fault_handler(Device& dev);

}  // namespace strata
