// SPDX-License-Identifier: MIT
// io-pgtable: the page-table formats every paging domain maps through (Linux's io-pgtable).
//
//   IoPgtableCfg cfg{.pgsize_bitmap = SZ_4K | SZ_2M | SZ_1G, .ias = 48, .oas = 48,
//                    .dma = &smmu_dma};
//   Box<IoPgtable> pt = STRATA_TRY(IoPgtable::alloc(IoPgtableFmt::arm_64_lpae_s1, cfg));
//   // program cfg.arm_lpae_s1.{ttbr, tcr, mair} into the CD
//   size_t mapped = STRATA_TRY(pt->map_pages(iova, pa, SZ_4K, 512, IOMMU_READ | IOMMU_WRITE));
//
// Semantics are Linux's unless noted:
//  - map_pages maps pgcount pages of pgsize from iova to paddr, as many as fit in the leaf table
//    that holds iova, and returns the bytes mapped; the caller loops for the rest (as Linux's
//    __iommu_map does). An entry already live anywhere in that range is -EEXIST, and a failed
//    allocation -ENOMEM; in both cases nothing was changed (Linux may leave a partial mapping).
//    As in Linux, a block may replace a table that maps nothing any more (the walk is flushed
//    through cfg.tlb before the table is freed).
//  - unmap_pages unmaps up to pgcount pages of pgsize, within one table, stopping at the first
//    hole, and returns the bytes unmapped. A range that covers part of a larger block is
//    refused with -EINVAL: splitting a block would briefly unmap the rest of it under live DMA
//    (Linux's arm_lpae_split_blk_unmap did; newer Linux refuses too). A range whose entries at
//    pgsize are tables unmaps those tables whole.
//  - Misaligned arguments and page sizes not in the bitmap are -EINVAL; an input address beyond
//    ias or an output address beyond oas is -ERANGE (as Linux).
//  - Unmapped table pages are not freed at once: they go on the gather, which the caller
//    releases after its invalidation (gather.h).
//  - Concurrency: map_pages and unmap_pages on disjoint ranges may run in parallel from any
//    number of threads, without a table-wide lock. Overlapping concurrent calls are a caller bug.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "arch/dma.h"
#include "arch/memory.h"
#include "arch/result.h"
#include "core/io-pgtable/gather.h"

namespace strata {

// Mapping permissions and attributes (Linux's IOMMU_* prot flags).
inline constexpr int IOMMU_READ = 1 << 0;
inline constexpr int IOMMU_WRITE = 1 << 1;
inline constexpr int IOMMU_CACHE = 1 << 2;   // cacheable / snooped
inline constexpr int IOMMU_NOEXEC = 1 << 3;  // no instruction fetch
inline constexpr int IOMMU_MMIO = 1 << 4;    // device memory (MSI doorbells)
inline constexpr int IOMMU_PRIV = 1 << 5;    // privileged accesses only

inline constexpr size_t SZ_4K = size_t{1} << 12;
inline constexpr size_t SZ_16K = size_t{1} << 14;
inline constexpr size_t SZ_64K = size_t{1} << 16;
inline constexpr size_t SZ_1M = size_t{1} << 20;
inline constexpr size_t SZ_2M = size_t{1} << 21;
inline constexpr size_t SZ_32M = size_t{1} << 25;
inline constexpr size_t SZ_512M = size_t{1} << 29;
inline constexpr size_t SZ_1G = size_t{1} << 30;

enum class IoPgtableFmt {
  arm_64_lpae_s1,  // VMSAv8-64 stage 1, as in an SMMUv3 CD
  arm_64_lpae_s2,  // VMSAv8-64 stage 2, as in an SMMUv3 STE
  intel_vtd_sl,    // VT-d second stage
  intel_vtd_fl,    // VT-d first stage (x86-64 paging)
};

// Quirks (Linux's IO_PGTABLE_QUIRK_*).
// Stage-1 output is non-secure (NS in leaves, NSTable in tables).
inline constexpr uint64_t IO_PGTABLE_QUIRK_ARM_NS = 1 << 0;
// The hardware tracks dirty state: LPAE writable leaves carry DBM; VT-d first-stage leaves are
// not pre-marked dirty. read_and_clear_dirty needs it on LPAE.
inline constexpr uint64_t IO_PGTABLE_QUIRK_DIRTY = 1 << 1;

// read_and_clear_dirty flags (Linux's IOMMU_DIRTY_NO_CLEAR).
inline constexpr unsigned IOMMU_DIRTY_NO_CLEAR = 1 << 0;

// Callbacks into the IOMMU driver (Linux's iommu_flush_ops). Only one case needs them: a map
// that replaces a table which maps nothing any more with a block must have the walk caches
// for the range invalidated, and completed, before the old table pages are freed.
struct IommuFlushOps {
  void (*tlb_flush_walk)(uint64_t iova, size_t size, size_t granule, void* cookie);
};

struct IoPgtableCfg {
  uint64_t quirks = 0;
  // In: the page sizes the IOMMU supports. Out: the ones this table uses (one granule and the
  // block sizes it allows), so the caller splits ranges into them.
  uint64_t pgsize_bitmap = 0;
  unsigned ias = 0;           // input address bits (VT-d: 39, 48 or 57 select 3, 4 or 5 levels)
  unsigned oas = 0;           // output address bits
  bool coherent_walk = true;  // the walker snoops CPU caches; else entries are cleaned after writes
  DmaAllocator* dma = nullptr;
  // Optional. Without them a block over an emptied table is -EEXIST (unmap it at the block
  // size first).
  const IommuFlushOps* tlb = nullptr;
  void* cookie = nullptr;

  // Out: what the driver programs, per format.
  struct {
    uint64_t ttbr;  // TTB0
    // TCR fields for TTB0, in CD encoding (IHI 0070 CD; C.5 of the reference).
    unsigned t0sz, tg0, irgn0, orgn0, sh0, ips;
    uint64_t mair;
  } arm_lpae_s1 = {};
  struct {
    uint64_t vttbr;                              // S2TTB
    unsigned t0sz, sl0, tg, irgn, orgn, sh, ps;  // STE S2T0SZ, S2SL0, S2TG, ...
    unsigned concat;                             // start-level tables concatenated (1..16)
  } arm_lpae_s2 = {};
  struct {
    uint64_t pgd;     // SSPTPTR / FSPTPTR / context SLPTPTR
    unsigned levels;  // AW = levels - 2 (second stage); FSPM = levels - 4 (first stage)
  } vtd = {};
};

// Receives the dirty ranges read_and_clear_dirty finds (VFIO turns them into a bitmap).
class DirtyBitmap {
 public:
  virtual void record(uint64_t iova, uint64_t size) = 0;

 protected:
  ~DirtyBitmap() = default;
};

class IoPgtable {
 public:
  // Validates and narrows `cfg` (refusing an impossible one with -EINVAL, never half-built),
  // allocates the root table and fills cfg's output fields.
  static Result<Box<IoPgtable>> alloc(IoPgtableFmt fmt, IoPgtableCfg& cfg);

  // Frees every table. The hardware must no longer walk them.
  virtual ~IoPgtable() = default;

  virtual Result<size_t> map_pages(uint64_t iova, phys_addr_t paddr, size_t pgsize, size_t pgcount,
                                   int prot) = 0;
  virtual Result<size_t> unmap_pages(uint64_t iova, size_t pgsize, size_t pgcount,
                                     IotlbGather& gather) = 0;
  // -ENOENT when nothing maps iova.
  virtual Result<phys_addr_t> iova_to_phys(uint64_t iova) = 0;
  // Reports the dirty leaves in [iova, iova + size) and, unless IOMMU_DIRTY_NO_CLEAR, marks
  // them clean (atomically: the hardware may set dirty state concurrently). The caller then
  // invalidates the range so cached writable-dirty entries are re-walked.
  virtual Result<void> read_and_clear_dirty(uint64_t iova, size_t size, unsigned flags,
                                            DirtyBitmap& dirty) = 0;
  // Bytes of memory the tables use now (DMA pages and their metadata).
  virtual size_t table_bytes() const = 0;

  // Objects are destroyed in place by Box and kfree()d, never deleted. A virtual destructor
  // makes the compiler emit a deleting destructor anyway; this keeps it off the global
  // operator delete, which library code may not reference (tools/check-portability).
  static void operator delete(void*) { STRATA_BUG("IoPgtable is never deleted"); }

 protected:
  IoPgtable() = default;
};

}  // namespace strata
