// SPDX-License-Identifier: MIT
// The DMA API on DMA domains (Linux's drivers/iommu/dma-iommu.c): what a kernel driver calls to
// give its device addresses for memory (streaming DMA) and for MSI doorbells, when the device
// sits behind an IOMMU whose default domain is a dma (strict) or dma_fq (lazy) one.
//
//   STRATA_TRY(iommu_probe_device(dev));
//   STRATA_TRY(iommu_dma_init_domain(*iommu_get_dma_domain(dev), dev));  // the OS, at probe
//   dma_addr_t a = STRATA_TRY(iommu_dma_map_buffer(dev, phys, len, DmaDirection::to_device));
//   // ... the device reads [a, a + len) ...
//   iommu_dma_unmap_buffer(dev, a, len, DmaDirection::to_device);
//
// Each DMA domain gets a cookie (Domain::set_dma_cookie): an IOVA allocator (core/iova) with
// the domain's granule, whose space is the domain's aperture minus every reserved region of
// the devices (direct, reserved, msi and sw_msi windows: nothing is ever handed out there),
// and for dma_fq domains a flush queue (flush_queue.h). A mapping takes an IOVA range from the
// allocator (alloc_iova_fast: the rcache) and maps it with iommu_map; an unmap clears it and
// gives the range back:
//  - strict (dma): iommu_unmap, which waits for one iotlb_sync of the range, then the IOVA is
//    free again;
//  - lazy (dma_fq): iommu_unmap_fast, and the range and the table pages the unmap freed go to
//    the flush queue, which invalidates the whole domain once per batch (flush_iotlb_all) and
//    only then frees them. An IOVA is never handed out again before the invalidation that
//    covers its unmap has completed. The queue flushes when a ring fills, when a queue call
//    finds the last flush older than 10 ms, when the IOVA space is full, and on
//    iommu_dma_flush(); the library has no timers (Linux flushes from a 10 ms timer).
//
// Addresses are not page-aligned: a buffer at phys gets an IOVA with the same offset within the
// domain's granule, and the whole granules around it are mapped (as in Linux: with the fake's
// 16K granule, a 4 KiB buffer makes 16 KiB reachable to the device; a driver that must not
// expose the rest of the granule keeps its buffers granule-aligned).
//
// Domains that are not DMA domains: on an identity default domain the DMA address is the
// physical address (what Linux's dma-direct does when the IOMMU is in passthrough); on others,
// and on a DMA domain without iommu_dma_init_domain, -ENODEV.
//
// Errors: -EINVAL for a bad direction, size 0, unknown attrs or a range that wraps; -ENOMEM
// when the IOVA space is full (Linux's dma_map_sgtable documents -ENOMEM for "insufficient
// resources (like memory or IOVA space)"), or memory for page tables runs out; errors of
// iommu_map otherwise. A failed map changes nothing: its IOVA goes back, what it mapped is
// unmapped. Unmapping an address the DMA API did not hand out is a caller bug; where that is
// seen (nothing, or not all of it, is mapped there: a double unmap) it warns and keeps the range
// out of the allocator rather than risk handing it out twice. (Like Linux, the hot path does not
// look the address up in the allocator, so an unmap of a direct or MSI mapping is not caught.)
//
// Context: map and unmap may run in atomic context and from any number of threads at once, on
// one device or several; they take SpinLocks only (the allocator's, the flush queue's, and
// what the driver's map_pages/iotlb_sync take). They need the device's default domain to stay
// in place, which holds while its kernel driver is bound (iommu_get_dma_domain).
// iommu_dma_init_domain and iommu_dma_prepare_msi may sleep.
//
// Not implemented (Linux has them): coherent allocations (dma_alloc_coherent /
// iommu_dma_alloc), CPU cache maintenance for non-coherent devices (the port has no
// phys-to-virt; callers sync their buffers), per-device DMA masks and segment limits (the
// aperture is the only limit; DeviceDesc has no mask), the 32-bit-first allocation for PCI
// devices, swiotlb bouncing for untrusted devices, and the single-queue flush-queue variant.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "arch/dma.h"
#include "arch/result.h"
#include "core/device.h"
#include "core/domain.h"

namespace strata {

class FlushQueue;
class IovaDomain;

// An address a device uses for DMA: an IOVA on a DMA domain, a physical address on an
// identity one.
using dma_addr_t = uint64_t;

// Linux's enum dma_data_direction, named from the memory's side.
enum class DmaDirection : uint8_t {
  bidirectional,  // DMA_BIDIRECTIONAL: the device reads and writes
  to_device,      // DMA_TO_DEVICE: the device reads the buffer (IOMMU_READ)
  from_device,    // DMA_FROM_DEVICE: the device writes the buffer (IOMMU_WRITE)
  none,           // DMA_NONE: not a direction one can map with
};

// attrs (Linux's DMA_ATTR_*, same values). Other bits are -EINVAL.
inline constexpr unsigned long DMA_ATTR_WEAK_ORDERING = 1UL << 1;  // accepted, no effect
inline constexpr unsigned long DMA_ATTR_SKIP_CPU_SYNC = 1UL << 5;  // accepted, no effect
inline constexpr unsigned long DMA_ATTR_NO_WARN = 1UL << 8;        // accepted, no effect
inline constexpr unsigned long DMA_ATTR_PRIVILEGED = 1UL << 9;     // IOMMU_PRIV

// The IOMMU_* protection for a mapping (Linux's dma_info_to_prot): the device may read what
// goes to it and write what comes from it; IOMMU_CACHE when its DMA is coherent (snoops the
// CPU's caches); IOMMU_PRIV for DMA_ATTR_PRIVILEGED. -EINVAL for DmaDirection::none, a value
// out of range or unknown attrs.
Result<int> dma_info_to_prot(DmaDirection dir, bool coherent, unsigned long attrs);

// Sets up the DMA API on `domain` for `dev` (Linux's iommu_setup_dma_ops /
// iommu_dma_init_domain). The OS calls it for every device whose default domain is a DMA
// domain, after iommu_probe_device and before the device's driver maps anything; every device
// of a group calls it with the group's default domain. The first call creates the domain's
// cookie (the IOVA allocator over the aperture, from pfn max(1, aperture_start >> shift); the
// flush queue for dma_fq); every call reserves the device's reserved regions
// (iommu_get_resv_regions) in the allocator; a region reserved already allocates nothing.
// -EINVAL: not a dma/dma_fq domain, or not one of dev's IOMMU; -ENODEV: dev not probed;
// -EBUSY: a region of a later device overlaps an IOVA already mapped; -ENOMEM.
// All-or-nothing for the cookie: on error a domain that had none still has none. A later
// device's call that fails part-way may leave some of its regions reserved, which only keeps
// more addresses out of allocation (like the group's reserved regions, see group.h). Calls for
// one domain may run concurrently with each other and with the DMA API on other devices.
Result<void> iommu_dma_init_domain(Domain& domain, Device& dev);

// Maps `size` bytes at `page + offset` for `dev` (Linux's iommu_dma_map_page; page is a
// physical address, not required to be aligned) and returns their DMA address, which has the
// same offset within the domain's granule as the physical address.
Result<dma_addr_t> iommu_dma_map_page(Device& dev, phys_addr_t page, size_t offset, size_t size,
                                      DmaDirection dir, unsigned long attrs = 0);
// Unmaps what iommu_dma_map_page returned; `size` and `dir` as passed to it.
void iommu_dma_unmap_page(Device& dev, dma_addr_t dma_handle, size_t size, DmaDirection dir,
                          unsigned long attrs = 0);

// A buffer at any physical address: iommu_dma_map_page(dev, phys, 0, size, ...).
inline Result<dma_addr_t> iommu_dma_map_buffer(Device& dev, phys_addr_t phys, size_t size,
                                               DmaDirection dir, unsigned long attrs = 0) {
  return iommu_dma_map_page(dev, phys, 0, size, dir, attrs);
}
inline void iommu_dma_unmap_buffer(Device& dev, dma_addr_t dma_handle, size_t size,
                                   DmaDirection dir, unsigned long attrs = 0) {
  iommu_dma_unmap_page(dev, dma_handle, size, dir, attrs);
}

// One element of a scatterlist (Linux's struct scatterlist, the parts the DMA API uses). The
// caller fills phys and length; iommu_dma_map_sg fills dma_address and dma_length.
struct DmaSg {
  phys_addr_t phys = 0;  // where the segment is (Linux's page + offset)
  size_t length = 0;
  dma_addr_t dma_address = 0;  // of the i-th DMA segment (not of the i-th input one)
  size_t dma_length = 0;       // 0 after the last DMA segment
};

// Maps `nents` segments into one contiguous IOVA range (Linux's iommu_dma_map_sg): each segment
// takes the whole granules it touches, consecutively, and keeps its offset within its first
// granule. Segments are then merged into DMA segments as Linux's __finalise_sg does: a segment
// that starts at a granule boundary continues the DMA segment before it when that one ends at a
// granule boundary. Returns the number of DMA segments, which the first entries' dma_address
// and dma_length describe; the following entries get dma_length 0. On an identity domain every
// segment is its own DMA segment at its physical address. -EINVAL for nents 0, a segment of
// length 0 or one that wraps; otherwise as iommu_dma_map_page. On error the dma fields are 0.
Result<unsigned> iommu_dma_map_sg(Device& dev, DmaSg* sg, unsigned nents, DmaDirection dir,
                                  unsigned long attrs = 0);
// Unmaps what iommu_dma_map_sg mapped: the range from the first DMA segment to the end of the
// last one (the entries as iommu_dma_map_sg left them).
void iommu_dma_unmap_sg(Device& dev, DmaSg* sg, unsigned nents, DmaDirection dir,
                        unsigned long attrs = 0);

// The address `dev` writes to signal an MSI at the doorbell `doorbell` (a physical address, e.g.
// a GICv3 ITS GITS_TRANSLATER), mapping the doorbell's granule (IOMMU_WRITE | IOMMU_MMIO) on
// first use (Linux's iommu_dma_prepare_msi / iommu_dma_get_msi_page). Pages are placed upwards
// from the start of the group's first sw_msi reserved region (which iommu_dma_init_domain keeps
// out of the allocator; this is where Linux places them for the unmanaged domains of VFIO; for
// DMA domains Linux takes IOVAs from the allocator instead), one per doorbell granule, and stay
// mapped until the domain goes (no refcounts: a domain has few doorbells). A doorbell inside a
// hardware msi region of the group, or any doorbell on an identity domain, is used as it is.
// -ENOSPC: the window is full; -EINVAL: a DMA domain whose group has no sw_msi region;
// -ENODEV: no DMA API on the device's domain; errors of iommu_map. May sleep.
Result<dma_addr_t> iommu_dma_prepare_msi(Device& dev, phys_addr_t doorbell);

// Invalidates a dma_fq domain now and frees what its flush queue held; nothing for other
// domains. For an OS that wants Linux's timer: call it every 10 ms while the domain is busy.
void iommu_dma_flush(Domain& domain);

// The domain's IOVA allocator and flush queue, for tests and debugging; nullptr without a
// cookie (and for the queue, on a strict domain).
IovaDomain* iommu_dma_iova_domain(Domain& domain);
FlushQueue* iommu_dma_flush_queue(Domain& domain);

}  // namespace strata
