// SPDX-License-Identifier: MIT
// Faults the IOMMU reports against a device (Linux's struct iommu_fault and
// iommu_page_response; values as in Linux's uapi/linux/iommu.h, so VFIO copies them to user
// space unchanged).
//
// Two kinds (Documentation/core.md, "Faults"):
//  - Unrecoverable (IOMMU_FAULT_DMA_UNRECOV): the transaction was aborted. The driver reports
//    it; the core hands it to the device's registered handler (VFIO forwards it to user space),
//    or logs it when there is none.
//  - Recoverable page requests (IOMMU_FAULT_PAGE_REQ, PCIe PRI / SMMUv3 stall): the device
//    waits for an answer. The core collects a group of requests until its last one, queues the
//    group on the IOMMU's IopfQueue (iopf.h), and the domain's IopfHandler resolves it; the
//    answer goes back through the driver's page_response op. Every group gets exactly one
//    answer, whatever happens to the device or the queue.
#pragma once

#include <stdint.h>

#include <boost/intrusive/list_hook.hpp>

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
};

struct IommuPageResponse {
  uint32_t pasid;
  uint32_t grpid;
  uint32_t code;  // IommuPageResponseCode
};

// Unrecoverable-fault handler registered for a device: called with no core lock held, from the
// context that reported the fault (the driver's event-queue thread). It must not sleep for
// long; VFIO's copies the record into a ring and signals an eventfd.
using IommuFaultHandler = Result<void> (*)(const IommuFault& fault, void* data);

class Device;
class IopfQueue;
struct IopfFault;

// Per-device fault state (Linux's struct iommu_fault_param), in Device.
struct FaultParam {
  SpinLock lock;  // protects everything below; lock order: IopfQueue::lock_ -> FaultParam::lock
  IommuFaultHandler handler = nullptr;
  void* data = nullptr;
  IopfQueue* iopf_queue = nullptr;  // set by IopfQueue::add_device(), cleared by remove_device()
  IopfFault* partial = nullptr;     // page requests of unfinished groups, newest first
  unsigned nr_partial = 0;
  unsigned nr_pending = 0;  // groups queued or being handled, not yet answered
};

// Reports a fault against `dev` (Linux's iommu_report_device_fault); called by vendor drivers.
// Unrecoverable: the device's handler, or -EOPNOTSUPP when it has none (the driver logs).
// Page request: queued on the device's IopfQueue; -ENODEV when the device has none (the caller
// must answer the request itself). A group that cannot be queued (queue full, no memory) is
// answered IOMMU_PAGE_RESP_FAILURE at once, and the error returned.
Result<void> iommu_report_device_fault(Device& dev, const IommuFault& fault);

// Called by the core when `dev` is released: answers its pending page requests
// IOMMU_PAGE_RESP_INVALID (the device is gone, but a function reset must not find requests
// outstanding), drops partial groups and the handler.
void iommu_fault_release_device(Device& dev);

// -EBUSY when one is registered already.
Result<void> iommu_register_device_fault_handler(Device& dev, IommuFaultHandler handler,
                                                 void* data);
// -EINVAL when none is registered; -EBUSY while page requests are pending for the device.
Result<void> iommu_unregister_device_fault_handler(Device& dev);

}  // namespace strata
