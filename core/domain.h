// SPDX-License-Identifier: MIT
// Domains: what a device's DMA is translated by (Linux's struct iommu_domain and
// iommu_domain_ops).
//
// A vendor driver allocates domains through its IommuDevice ops and derives its domain class
// from Domain, overriding the domain ops it implements; the core never looks inside. Who owns a
// domain: the group for its default and blocking domains, whoever allocated it otherwise
// (VFIO, the DMA API, a kernel driver). A domain must be detached from every group and PASID
// before it is destroyed.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include <boost/intrusive/list.hpp>

#include "arch/dma.h"
#include "arch/lock.h"
#include "arch/result.h"
#include "core/fault.h"
#include "core/io-pgtable/gather.h"
#include "core/io-pgtable/io_pgtable.h"
#include "core/pasid/pasid.h"

namespace strata {

class Device;
class Group;
class IommuDevice;
struct IopfGroup;

enum class DomainType : uint8_t {
  blocked,   // all DMA aborts (Linux's IOMMU_DOMAIN_BLOCKED)
  identity,  // DMA untranslated (IOMMU_DOMAIN_IDENTITY, "passthrough")
  paging,    // page tables owned by its user: VFIO, a kernel driver (IOMMU_DOMAIN_UNMANAGED)
  dma,       // page tables owned by the DMA API, strict invalidation (IOMMU_DOMAIN_DMA)
  dma_fq,    // the same, invalidation deferred to a flush queue (IOMMU_DOMAIN_DMA_FQ)
  nested,    // a vendor stage-1 configuration over a parent paging domain (IOMMU_DOMAIN_NESTED)
  sva,       // a process address space bound to a PASID (IOMMU_DOMAIN_SVA)
};
const char* domain_type_name(DomainType type);

inline bool domain_type_is_paging(DomainType t) {
  return t == DomainType::paging || t == DomainType::dma || t == DomainType::dma_fq;
}
inline bool domain_type_is_dma(DomainType t) {
  return t == DomainType::dma || t == DomainType::dma_fq;
}

// domain_alloc_paging() flags (Linux's IOMMU_HWPT_ALLOC_*).
inline constexpr uint32_t IOMMU_DOMAIN_ALLOC_NEST_PARENT = 1 << 0;  // will be a stage-2 parent
inline constexpr uint32_t IOMMU_DOMAIN_ALLOC_DIRTY_TRACKING = 1 << 1;

// The input addresses a domain can translate (Linux's struct iommu_domain_geometry).
struct DomainGeometry {
  uint64_t aperture_start = 0;
  uint64_t aperture_end = 0;   // inclusive
  bool force_aperture = true;  // DMA outside the aperture faults; maps outside it are refused
};

// Memory ranges a device's DMA must treat specially (Linux's enum iommu_resv_type).
enum class ResvType : uint8_t {
  direct,            // must stay identity-mapped while the device is attached (RMRR, IORT RMR)
  direct_relaxable,  // the same, but may be dropped when the device is assigned to a user
  reserved,          // never mapped: addresses the IOMMU does not translate (e.g. P2P windows)
  msi,               // hardware MSI window, translated by the hardware itself (x86 0xfee00000)
  sw_msi,            // where the core maps MSI doorbells for the device (Arm ITS / GICv3)
};
const char* resv_type_name(ResvType type);

struct ReservedRegion {
  uint64_t start = 0;
  uint64_t length = 0;
  int prot = 0;  // IOMMU_* for direct and sw_msi mappings
  ResvType type = ResvType::reserved;

  uint64_t last() const { return start + length - 1; }
  bool overlaps(uint64_t iova, uint64_t size) const {
    return size && length && iova <= last() && start <= iova + size - 1;
  }
};

// A fixed-capacity set of reserved regions: what a driver reports for a device, and what a
// group holds (the union of its devices'). Fixed so that probing allocates nothing per region.
class ReservedRegions {
 public:
  static constexpr unsigned kMax = 16;

  // -EINVAL for an empty or wrapping region, -ENOSPC when full. Exact duplicates (several
  // devices of a group reporting the same window) are kept once.
  Result<void> add(const ReservedRegion& region);
  unsigned size() const { return n_; }
  const ReservedRegion* begin() const { return regions_; }
  const ReservedRegion* end() const { return regions_ + n_; }
  const ReservedRegion& operator[](unsigned i) const { return regions_[i]; }
  // The first region overlapping [iova, iova + size) whose type is in `types` (a bitmask of
  // 1 << ResvType), or nullptr.
  const ReservedRegion* find_overlap(uint64_t iova, uint64_t size, unsigned types) const;

 private:
  ReservedRegion regions_[kMax];
  unsigned n_ = 0;
};

// A group's reserved regions, linked into the domain the group is attached to.
struct ResvLink {
  boost::intrusive::list_member_hook<boost::intrusive::link_mode<boost::intrusive::normal_link>>
      hook;
  const ReservedRegions* regions = nullptr;
};

inline constexpr unsigned resv_mask(ResvType t) { return 1u << static_cast<unsigned>(t); }
// The regions iommu_map() refuses to cover on a non-DMA domain: all but the relaxable direct
// ones, which a device assigned to a user may lose (Linux's iommufd reserves the same set).
inline constexpr unsigned kResvNoMap = resv_mask(ResvType::direct) | resv_mask(ResvType::reserved) |
                                       resv_mask(ResvType::msi) | resv_mask(ResvType::sw_msi);

// Resolves the page requests of one group (Linux's domain->iopf_handler): SVA faults pages in,
// a user domain forwards them to its VMM. Returns the page response code to send.
class IopfHandler {
 public:
  virtual IommuPageResponseCode handle_iopf(Device& dev, const IopfGroup& group) = 0;

 protected:
  ~IopfHandler() = default;
};

struct SvaMmCore;  // sva.cc

// An address space an SVA domain shares with a CPU process (Linux's struct mm_struct, the part
// the IOMMU needs). The OS owns it and must unbind every device before freeing it.
struct SvaMm {
  uint64_t pgd = 0;  // the CPU's root page table (physical)
  IoPgtableFmt fmt = IoPgtableFmt::arm_64_lpae_s1;
  unsigned ias = 48;                     // virtual address bits
  uint32_t asid = 0;                     // the CPU's ASID / PCID, for shared TLB invalidation
  IopfHandler* fault_handler = nullptr;  // resolves the device's page faults (handle_mm_fault)
  PasidSet* pasids = nullptr;            // where its PASID comes from (sva.h)
  SvaMmCore* iommu_mm = nullptr;  // the core's, first bind to iommu_sva_mm_release() (iommu_mm)
};

class Domain {
 public:
  // Objects are destroyed in place by Box and kfree()d, never deleted (see IoPgtable).
  static void operator delete(void*) { STRATA_BUG("Domain is never deleted"); }
  // Every virtual function of Domain is defined here, not in domain.cc: a class that others
  // derive from must have no out-of-line virtual function (a "key function"), or its typeinfo
  // would be emitted only by strata's -fno-rtti objects and a driver built with RTTI would not
  // link (arch/dma.h says the same).
  virtual ~Domain() {
    // Destroying a domain the hardware may still walk is a use-after-free in waiting: users
    // detach first (Linux WARNs and leaks; there is no safe way on).
    STRATA_BUG_ON(users_.load(std::memory_order_relaxed) != 0);
    STRATA_BUG_ON(!resv_.empty());
    if (dma_cookie_put_) dma_cookie_put_(dma_cookie_);
    if (parent_) parent_->users_.fetch_sub(1, std::memory_order_relaxed);
  }
  Domain(const Domain&) = delete;
  Domain& operator=(const Domain&) = delete;

  DomainType type() const { return type_; }
  IommuDevice& owner() const { return owner_; }
  const DomainGeometry& geometry() const { return geometry_; }
  // The page sizes this domain maps with; the smallest is its granule.
  uint64_t pgsize_bitmap() const { return pgsize_bitmap_; }
  size_t granule() const { return pgsize_bitmap_ & -pgsize_bitmap_; }
  // The stage-2 parent of a nested domain; nullptr otherwise.
  Domain* parent() const { return parent_; }
  // Whether domain_alloc_paging() was asked for IOMMU_DOMAIN_ALLOC_NEST_PARENT.
  bool nest_parent() const { return alloc_flags_ & IOMMU_DOMAIN_ALLOC_NEST_PARENT; }

  // Who resolves page requests for this domain (SVA domains: the mm's handler).
  IopfHandler* iopf_handler() const { return iopf_handler_; }
  void set_iopf_handler(IopfHandler* handler) { iopf_handler_ = handler; }

  // For the DMA API (dma-iommu): its per-domain state, destroyed with the domain.
  void* dma_cookie() const { return dma_cookie_; }
  void set_dma_cookie(void* cookie, void (*put)(void* cookie)) {
    STRATA_BUG_ON(dma_cookie_ != nullptr);
    dma_cookie_ = cookie;
    dma_cookie_put_ = put;
  }

  // Groups and PASIDs this domain is attached to now.
  unsigned users() const { return users_.load(std::memory_order_relaxed); }

  // ---- Domain ops, implemented by the vendor (Linux's iommu_domain_ops). ----
  // The defaults are what "not supported" means for each; the core calls them only as
  // iommu.h describes, with the locks it names.

  // Points `dev`'s configuration (STE, context entry) at this domain. Called with the group's
  // mutex held, for each device of the group; the device is attached to another domain (its
  // old one) and must keep working through it if this fails.
  virtual Result<void> attach_dev(Device& dev) = 0;
  // Attaches this domain to `dev` for `pasid` (Linux's set_dev_pasid); `old` is the domain
  // that had the PASID before, or nullptr. -EOPNOTSUPP: this domain cannot be used with PASIDs.
  virtual Result<void> set_dev_pasid(Device& dev, ioasid_t pasid, Domain* old) {
    (void)dev;
    (void)pasid;
    (void)old;
    return Error(-EOPNOTSUPP);
  }

  // Paging domains only. See io_pgtable.h for the contracts; the core has already split the
  // range into page sizes from pgsize_bitmap() and checked alignment, aperture and reserved
  // regions.
  virtual Result<size_t> map_pages(uint64_t iova, phys_addr_t paddr, size_t pgsize, size_t pgcount,
                                   int prot) {
    (void)iova;
    (void)paddr;
    (void)pgsize;
    (void)pgcount;
    (void)prot;
    return Error(-EOPNOTSUPP);
  }
  virtual Result<size_t> unmap_pages(uint64_t iova, size_t pgsize, size_t pgcount,
                                     IotlbGather& gather) {
    (void)iova;
    (void)pgsize;
    (void)pgcount;
    (void)gather;
    return Error(-EOPNOTSUPP);
  }
  virtual Result<phys_addr_t> iova_to_phys(uint64_t iova) {
    (void)iova;
    return Error(-EOPNOTSUPP);
  }
  // After a map, for hardware that caches non-present entries (VT-d caching mode, a vIOMMU).
  virtual void iotlb_sync_map(uint64_t iova, size_t size) {
    (void)iova;
    (void)size;
  }
  // Invalidates what `gather` recorded and waits for completion. Called once per unmap call.
  virtual void iotlb_sync(IotlbGather& gather) { (void)gather; }
  // Invalidates every cached translation of the domain and waits.
  virtual void flush_iotlb_all() {}

 protected:
  Domain(IommuDevice& owner, DomainType type) : owner_(owner), type_(type) {}
  // Set by the vendor's constructor or alloc function, before the domain is returned.
  DomainGeometry geometry_;
  uint64_t pgsize_bitmap_ = 0;

 private:
  friend class Group;
  friend class IommuDevice;
  friend struct IommuCore;

  IommuDevice& owner_;
  const DomainType type_;
  uint32_t alloc_flags_ = 0;
  Domain* parent_ = nullptr;  // nested: holds one of parent_->users_
  IopfHandler* iopf_handler_ = nullptr;
  void* dma_cookie_ = nullptr;
  void (*dma_cookie_put_)(void*) = nullptr;

  std::atomic<unsigned> users_{0};

  // The reserved regions of the attached groups, which iommu_map() refuses to cover. A
  // SpinLock because map may not sleep; readers scan a list of one entry per group.
  mutable SpinLock resv_lock_;
  boost::intrusive::list<
      ResvLink, boost::intrusive::member_hook<ResvLink, decltype(ResvLink::hook), &ResvLink::hook>,
      boost::intrusive::constant_time_size<false>>
      resv_;
};

}  // namespace strata
