// SPDX-License-Identifier: MIT
// Shared Virtual Addressing: a device DMAs with a process's virtual addresses, through an SVA
// domain attached to the PASID of the process's address space (Linux's iommu-sva.c).
//
//   SvaHandle* h = STRATA_TRY(iommu_sva_bind_device(dev, mm));
//   // program the device with iommu_sva_get_pasid(h); its page faults reach mm.fault_handler
//   iommu_sva_unbind_device(h);
//
// The address space gets one PASID, from mm.pasids (the OS's set for SVA, so quotas apply), on
// its first bind, and keeps it until the OS calls iommu_sva_mm_release() as the address space
// dies (Linux's mm_pasid_drop): every device uses the same PASID for it, as ENQCMD-style
// submission needs. Devices behind one IOMMU share one SVA domain per address space. Binding a
// device twice returns the same handle, counted; the handle goes with the last unbind.
//
// Lock order: SvaMmCore::lock -> IopfQueue::work_lock_ -> Group::mutex_ (unbind flushes the
// device's page requests; attach takes the group's mutex), so an IopfHandler must not bind or
// unbind.
#pragma once

#include "core/iommu.h"

namespace strata {

class SvaHandle;

// -ENODEV: dev is not behind an IOMMU; -EINVAL: mm has no PASID set, or its PASID is beyond
// what dev supports; -EOPNOTSUPP: the driver has no SVA domains; the errors of PASID
// allocation (-ENOSPC, -EDQUOT) and of iommu_attach_device_pasid().
Result<SvaHandle*> iommu_sva_bind_device(Device& dev, SvaMm& mm);
void iommu_sva_unbind_device(SvaHandle* handle);
ioasid_t iommu_sva_get_pasid(const SvaHandle* handle);
Domain* iommu_sva_get_domain(const SvaHandle* handle);
// The address space is going away: frees its PASID and the core's state. Every device must
// have been unbound.
void iommu_sva_mm_release(SvaMm& mm);

}  // namespace strata
