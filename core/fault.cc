// SPDX-License-Identifier: MIT
// Fault reporting to per-device handlers (Linux's iommu_report_device_fault and
// iommu_register_device_fault_handler).
#include "arch/log.h"
#include "core/internal.h"

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
  fp.handler = nullptr;
  fp.data = nullptr;
  return {};
}

Result<void> iommu_report_device_fault(Device& dev, const IommuFault& fault) {
  FaultParam& fp = IommuCore::fault(dev);
  if (fault.type == IOMMU_FAULT_DMA_UNRECOV) {
    IommuFaultHandler handler;
    void* data;
    {
      Guard<SpinLock> g(fp.lock);
      handler = fp.handler;
      data = fp.data;
    }
    if (!handler) return Error(-EOPNOTSUPP);
    return handler(fault, data);
  }
  if (fault.type != IOMMU_FAULT_PAGE_REQ) return Error(-EINVAL);
  return Error(-ENODEV);
}

void iommu_fault_release_device(Device& dev) {
  FaultParam& fp = IommuCore::fault(dev);
  Guard<SpinLock> g(fp.lock);
  fp.handler = nullptr;
  fp.data = nullptr;
}

}  // namespace strata
