// SPDX-License-Identifier: MIT
// Fault reporting (Linux's iommu_report_device_fault and iommu_register_device_fault_handler):
// unrecoverable faults to the device's handler, page requests to its IopfQueue (iopf.cc).
#include "arch/log.h"
#include "core/internal.h"
#include "core/iopf.h"

namespace strata {

Result<void> iommu_register_device_fault_handler(Device& dev, IommuFaultHandler handler,
                                                 void* data) {
  if (!handler) return Error(-EINVAL);
  FaultParam& fp = IommuCore::fault(dev);
  Guard<SpinLock> g(fp.lock);
  if (fp.handler) return Error(-EBUSY);
  fp.handler = handler;
  fp.data = data;
  return {};
}

Result<void> iommu_unregister_device_fault_handler(Device& dev) {
  FaultParam& fp = IommuCore::fault(dev);
  Guard<SpinLock> g(fp.lock);
  if (!fp.handler) return Error(-EINVAL);
  // Groups the handler's owner may still be answering (VFIO forwards them to user space).
  if (IopfQueue::nr_groups_locked(dev)) return Error(-EBUSY);
  fp.handler = nullptr;
  fp.data = nullptr;
  return {};
}

Result<void> iommu_report_device_fault(Device& dev, const IommuFault& fault) {
  switch (fault.type) {
    case IOMMU_FAULT_DMA_UNRECOV: {
      // Called under the lock so that unregistering waits for it (fault.h).
      FaultParam& fp = IommuCore::fault(dev);
      Guard<SpinLock> g(fp.lock);
      if (!fp.handler) return Error(-EOPNOTSUPP);
      return fp.handler(fault, fp.data);
    }
    case IOMMU_FAULT_PAGE_REQ: return IopfQueue::report(dev, fault.prm);
  }
  return Error(-EINVAL);
}

void iommu_fault_release_device(Device& dev) {
  {
    FaultParam& fp = IommuCore::fault(dev);
    Guard<SpinLock> g(fp.lock);
    fp.handler = nullptr;
    fp.data = nullptr;
  }
  IopfQueue::release_device(dev);
}

}  // namespace strata
