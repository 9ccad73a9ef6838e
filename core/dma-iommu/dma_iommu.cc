// SPDX-License-Identifier: MIT
// The DMA API on DMA domains (Linux's drivers/iommu/dma-iommu.c). dma_iommu.h gives the
// contract; this file follows Linux's structure: the cookie, the IOVA helpers
// (iommu_dma_alloc_iova / iommu_dma_free_iova), __iommu_dma_map / __iommu_dma_unmap, the
// scatterlist path and the MSI pages.
#include "core/dma-iommu/dma_iommu.h"

#include <new>

#include "arch/lock.h"
#include "arch/log.h"
#include "arch/memory.h"
#include "core/dma-iommu/flush_queue.h"
#include "core/group.h"
#include "core/iommu.h"
#include "core/iova/iova.h"

namespace strata {

namespace {

// One mapped MSI doorbell granule (Linux's iommu_dma_msi_page).
struct MsiPage {
  MsiPage* next;
  phys_addr_t phys;  // granule-aligned
  dma_addr_t iova;
};

// The DMA API's state for one DMA domain (Linux's iommu_dma_cookie of type
// IOMMU_DMA_IOVA_COOKIE). Lives from the domain's first iommu_dma_init_domain until the domain
// is destroyed (put_cookie). Everything above msi_lock is written before the cookie is
// published and only read afterwards; iovad and fq synchronise themselves.
struct DmaCookie {
  explicit DmaCookie(Domain& d) : domain(d) {}
  ~DmaCookie() {
    // The queue returns its IOVAs to iovad, so it goes first (members go in reverse order, but
    // say it rather than rely on a declaration order someone may change).
    fq.reset();
    while (MsiPage* page = msi_pages) {
      msi_pages = page->next;
      kfree(page);
    }
  }

  Domain& domain;
  Box<IovaDomain> iovad;
  Box<FlushQueue> fq;  // dma_fq domains only
  unsigned shift = 0;
  uint64_t granule = 0;
  unsigned long limit_pfn = 0;  // the aperture's last pfn

  // MSI doorbells (iommu_dma_prepare_msi). msi_lock protects what follows.
  Mutex msi_lock;
  MsiPage* msi_pages = nullptr;
  bool msi_window = false;  // msi_next and msi_left are set (from the group's sw_msi region)
  uint64_t msi_next = 0;    // the next doorbell page's IOVA
  uint64_t msi_left = 0;    // granules of the window not used yet
};

// Serialises the installation of a cookie into a domain, for devices of one group calling
// iommu_dma_init_domain at once. Constant-initialised: no static constructor runs.
constinit SpinLock g_cookie_lock;

void put_cookie(void* cookie) {
  auto* c = static_cast<DmaCookie*>(cookie);
  c->~DmaCookie();
  kfree(c);
}

DmaCookie* cookie_of(Domain& domain) { return static_cast<DmaCookie*>(domain.dma_cookie()); }

constexpr unsigned long kKnownAttrs =
    DMA_ATTR_WEAK_ORDERING | DMA_ATTR_SKIP_CPU_SYNC | DMA_ATTR_NO_WARN | DMA_ATTR_PRIVILEGED;

// The domain and cookie the DMA API uses for dev: nullptr domain for -ENODEV, a domain without
// cookie for identity (checked by the caller).
struct Target {
  Domain* domain;
  DmaCookie* cookie;
};

Result<Target> target_of(Device& dev) {
  Domain* domain = iommu_get_dma_domain(dev);
  if (!domain) return Error(-ENODEV);
  if (domain->type() == DomainType::identity) return Target{domain, nullptr};
  DmaCookie* cookie = domain_type_is_dma(domain->type()) ? cookie_of(*domain) : nullptr;
  if (!cookie) return Error(-ENODEV);
  return Target{domain, cookie};
}

// The device's DMA snoops the CPU's caches.
bool dev_is_dma_coherent(Device& dev) {
  return device_iommu_capable(dev, IommuCap::cache_coherency);
}

Result<Box<DmaCookie>> create_cookie(Domain& domain) {
  Box<DmaCookie> cookie = STRATA_TRY(make_box<DmaCookie>(domain));
  const uint64_t granule = domain.granule();
  cookie->granule = granule;
  cookie->shift = static_cast<unsigned>(__builtin_ctzll(granule));
  const DomainGeometry& geo = domain.geometry();
  // Linux: base_pfn = max(1, aperture_start >> order); IOVA 0 is never handed out.
  unsigned long start_pfn = geo.aperture_start >> cookie->shift;
  if (start_pfn == 0) start_pfn = 1;
  cookie->limit_pfn = geo.aperture_end >> cookie->shift;
  if (cookie->limit_pfn < start_pfn) return Error(-EINVAL);
  cookie->iovad = STRATA_TRY(IovaDomain::create(granule, start_pfn));
  if (domain.type() == DomainType::dma_fq)
    cookie->fq = STRATA_TRY(FlushQueue::create(domain, *cookie->iovad, FlushQueue::Config{}));
  return cookie;
}

// Linux's iova_reserve_iommu_regions, for every type (see iommu_dma_prepare_msi for sw_msi).
// A region already inside one reservation is skipped, so a second device of a group with the
// same regions allocates nothing and cannot fail.
Result<void> reserve_regions(DmaCookie& cookie, const ReservedRegions& regions) {
  IovaDomain& iovad = *cookie.iovad;
  for (const ReservedRegion& r : regions) {
    const unsigned long lo = iovad.iova_pfn(r.start);
    const unsigned long hi = iovad.iova_pfn(r.last());
    const Iova* have = iovad.find_iova(lo);
    if (have && have->reserved() && have->pfn_lo <= lo && have->pfn_hi >= hi) continue;
    STRATA_TRY(iovad.reserve_iova(lo, hi));
  }
  return {};
}

// Linux's iommu_dma_alloc_iova: pages as alloc_iova_fast takes them. A lazy domain's queue
// may hold the IOVAs that would fit: flush it and try once more (Linux's timer would have
// freed them by then; here nothing else would).
Result<unsigned long> alloc_iova(DmaCookie& cookie, unsigned long pages) {
  Result<unsigned long> pfn = cookie.iovad->alloc_iova_fast(pages, cookie.limit_pfn, true);
  if (pfn.ok() || !cookie.fq || pfn.error().code() != -ENOMEM) return pfn;
  cookie.fq->flush();
  return cookie.iovad->alloc_iova_fast(pages, cookie.limit_pfn, true);
}

// The granule-aligned length that covers [offset, offset + size) of a granule; 0 when it does
// not fit in a size_t.
size_t aligned_len(const DmaCookie& cookie, size_t offset, size_t size) {
  const size_t g = cookie.granule;
  if (size > SIZE_MAX - offset - (g - 1)) return 0;
  return (offset + size + g - 1) & ~(g - 1);
}

// Linux's __iommu_dma_map: `len` granule-aligned bytes at granule-aligned `phys`.
Result<dma_addr_t> map_range(DmaCookie& cookie, phys_addr_t phys, size_t len, int prot) {
  const unsigned long pages = len >> cookie.shift;
  const unsigned long pfn = STRATA_TRY(alloc_iova(cookie, pages));
  const dma_addr_t iova = dma_addr_t{pfn} << cookie.shift;
  Result<void> mapped = iommu_map(cookie.domain, iova, phys, len, prot);
  if (!mapped.ok()) {
    // iommu_map is all-or-nothing and made no invalidation necessary: the IOVA is free at once.
    cookie.iovad->free_iova_fast(pfn, pages);
    return mapped.error();
  }
  return iova;
}

// Linux's __iommu_dma_unmap: `len` granule-aligned bytes at granule-aligned `iova`, which a
// map_range (or a map_sg) mapped.
void unmap_range(DmaCookie& cookie, dma_addr_t iova, size_t len) {
  Domain& domain = cookie.domain;
  const unsigned long pfn = iova >> cookie.shift;
  const unsigned long pages = len >> cookie.shift;
  if (!cookie.fq) {
    Result<size_t> unmapped = iommu_unmap(domain, iova, len);
    // Not what the DMA API mapped: keep the range out of the allocator.
    if (STRATA_WARN_ON(!unmapped.ok() || unmapped.value() != len)) return;
    cookie.iovad->free_iova_fast(pfn, pages);
    return;
  }
  IotlbGather gather;
  Result<size_t> unmapped = iommu_unmap_fast(domain, iova, len, gather);
  if (STRATA_WARN_ON(!unmapped.ok() || unmapped.value() != len)) {
    // What it did unmap is invalidated now; the range stays out of the allocator.
    iommu_iotlb_sync(domain, gather);
    return;
  }
  cookie.fq->queue_iova(pfn, pages, gather);
}

}  // namespace

Result<int> dma_info_to_prot(DmaDirection dir, bool coherent, unsigned long attrs) {
  if (attrs & ~kKnownAttrs) return Error(-EINVAL);
  int prot = coherent ? IOMMU_CACHE : 0;
  if (attrs & DMA_ATTR_PRIVILEGED) prot |= IOMMU_PRIV;
  switch (dir) {
    case DmaDirection::bidirectional: return prot | IOMMU_READ | IOMMU_WRITE;
    case DmaDirection::to_device: return prot | IOMMU_READ;
    case DmaDirection::from_device: return prot | IOMMU_WRITE;
    case DmaDirection::none: break;
  }
  return Error(-EINVAL);
}

// ---- Set-up ----

Result<void> iommu_dma_init_domain(Domain& domain, Device& dev) {
  if (!domain_type_is_dma(domain.type())) return Error(-EINVAL);
  if (!dev.iommu()) return Error(-ENODEV);
  if (&domain.owner() != dev.iommu()) return Error(-EINVAL);
  ReservedRegions regions;
  STRATA_TRY(iommu_get_resv_regions(dev, regions));

  DmaCookie* existing;
  {
    Guard<SpinLock> g(g_cookie_lock);
    existing = cookie_of(domain);
  }
  if (existing) return reserve_regions(*existing, regions);

  // Built and filled outside every lock (it allocates), published only when complete.
  Box<DmaCookie> fresh = STRATA_TRY(create_cookie(domain));
  STRATA_TRY(reserve_regions(*fresh, regions));
  {
    Guard<SpinLock> g(g_cookie_lock);
    existing = cookie_of(domain);
    if (!existing) {
      domain.set_dma_cookie(fresh.release(), put_cookie);
      return {};
    }
  }
  // Another device of the group got there first: use its cookie.
  fresh.reset();
  return reserve_regions(*existing, regions);
}

// ---- Streaming DMA ----

Result<dma_addr_t> iommu_dma_map_page(Device& dev, phys_addr_t page, size_t offset, size_t size,
                                      DmaDirection dir, unsigned long attrs) {
  const phys_addr_t phys = page + offset;
  if (size == 0 || phys < page || phys + (size - 1) < phys) return Error(-EINVAL);
  const Target t = STRATA_TRY(target_of(dev));
  const int prot = STRATA_TRY(dma_info_to_prot(dir, dev_is_dma_coherent(dev), attrs));
  if (!t.cookie) return phys;  // identity
  DmaCookie& cookie = *t.cookie;
  const size_t iova_off = phys & (cookie.granule - 1);
  const size_t len = aligned_len(cookie, iova_off, size);
  if (len == 0) return Error(-EINVAL);
  const dma_addr_t iova = STRATA_TRY(map_range(cookie, phys - iova_off, len, prot));
  return iova + iova_off;
}

void iommu_dma_unmap_page(Device& dev, dma_addr_t dma_handle, size_t size, DmaDirection dir,
                          unsigned long attrs) {
  (void)attrs;
  if (STRATA_WARN_ON(size == 0 || dir == DmaDirection::none)) return;
  Result<Target> t = target_of(dev);
  if (STRATA_WARN_ON(!t.ok())) return;
  if (!t->cookie) return;  // identity: nothing was mapped
  DmaCookie& cookie = *t->cookie;
  const size_t iova_off = dma_handle & (cookie.granule - 1);
  const size_t len = aligned_len(cookie, iova_off, size);
  if (STRATA_WARN_ON(len == 0)) return;
  unmap_range(cookie, dma_handle - iova_off, len);
}

// ---- Scatterlists ----

namespace {

void clear_dma(DmaSg* sg, unsigned nents) {
  for (unsigned i = 0; i < nents; i++) {
    sg[i].dma_address = 0;
    sg[i].dma_length = 0;
  }
}

}  // namespace

Result<unsigned> iommu_dma_map_sg(Device& dev, DmaSg* sg, unsigned nents, DmaDirection dir,
                                  unsigned long attrs) {
  if (nents == 0 || !sg) return Error(-EINVAL);
  clear_dma(sg, nents);
  for (unsigned i = 0; i < nents; i++) {
    if (sg[i].length == 0 || sg[i].phys + (sg[i].length - 1) < sg[i].phys) return Error(-EINVAL);
  }
  const Target t = STRATA_TRY(target_of(dev));
  const int prot = STRATA_TRY(dma_info_to_prot(dir, dev_is_dma_coherent(dev), attrs));
  if (!t.cookie) {
    // Identity: each segment is its own DMA segment (Linux's dma-direct does not merge).
    for (unsigned i = 0; i < nents; i++) {
      sg[i].dma_address = sg[i].phys;
      sg[i].dma_length = sg[i].length;
    }
    return nents;
  }
  DmaCookie& cookie = *t.cookie;
  const size_t gmask = cookie.granule - 1;

  // The IOVA length: each segment takes the granules it touches (Linux's first loop in
  // iommu_dma_map_sg, without segment-boundary padding: strata has no boundary masks).
  size_t total = 0;
  for (unsigned i = 0; i < nents; i++) {
    const size_t len = aligned_len(cookie, sg[i].phys & gmask, sg[i].length);
    if (len == 0 || total > SIZE_MAX - len) return Error(-EINVAL);
    total += len;
  }
  const unsigned long pages = total >> cookie.shift;
  const unsigned long pfn = STRATA_TRY(alloc_iova(cookie, pages));
  const dma_addr_t base = dma_addr_t{pfn} << cookie.shift;

  // Map each segment's granules in turn (Linux's iommu_map_sg).
  size_t done = 0;
  for (unsigned i = 0; i < nents; i++) {
    const size_t off = sg[i].phys & gmask;
    const size_t len = aligned_len(cookie, off, sg[i].length);
    Result<void> r = iommu_map(cookie.domain, base + done, sg[i].phys - off, len, prot);
    if (!r.ok()) {
      if (done) {
        Result<size_t> undone = iommu_unmap(cookie.domain, base, done);
        STRATA_BUG_ON(!undone.ok() || undone.value() != done);
      }
      cookie.iovad->free_iova_fast(pfn, pages);
      return r.error();
    }
    done += len;
  }

  // Linux's __finalise_sg: an output segment grows while the next input segment starts at a
  // granule boundary and the output segment so far ends at one. Output segment k is written to
  // sg[k]'s dma fields; only phys and length are read, so inputs not yet read are intact.
  unsigned count = 0;
  size_t cur_len = 0;  // 0: the next input segment starts a new output segment
  dma_addr_t iova = base;
  for (unsigned i = 0; i < nents; i++) {
    const size_t off = sg[i].phys & gmask;
    const size_t len = sg[i].length;
    const size_t iova_len = aligned_len(cookie, off, len);
    if (cur_len && off == 0) {
      cur_len += len;
    } else {
      count++;
      cur_len = len;
      sg[count - 1].dma_address = iova + off;
    }
    sg[count - 1].dma_length = cur_len;
    iova += iova_len;
    // A segment that ends before the end of its last granule cannot be continued.
    if (off + len < iova_len) cur_len = 0;
  }
  return count;
}

void iommu_dma_unmap_sg(Device& dev, DmaSg* sg, unsigned nents, DmaDirection dir,
                        unsigned long attrs) {
  (void)attrs;
  if (STRATA_WARN_ON(!sg || nents == 0 || dir == DmaDirection::none)) return;
  Result<Target> t = target_of(dev);
  if (STRATA_WARN_ON(!t.ok())) return;
  if (!t->cookie) return;
  DmaCookie& cookie = *t->cookie;
  const size_t gmask = cookie.granule - 1;
  // Linux's iommu_dma_unmap_sg: from the first DMA segment to the end of the last one.
  const dma_addr_t start = sg[0].dma_address & ~dma_addr_t{gmask};
  dma_addr_t end = sg[0].dma_address;
  for (unsigned i = 0; i < nents && sg[i].dma_length; i++)
    end = sg[i].dma_address + sg[i].dma_length;
  if (STRATA_WARN_ON(end <= start)) return;
  const dma_addr_t aligned_end = (end + gmask) & ~dma_addr_t{gmask};
  unmap_range(cookie, start, aligned_end - start);
}

// ---- MSI ----

Result<dma_addr_t> iommu_dma_prepare_msi(Device& dev, phys_addr_t doorbell) {
  Domain* domain = iommu_get_dma_domain(dev);
  if (!domain) return Error(-ENODEV);
  GroupRef group = iommu_group_get(dev);
  if (!group) return Error(-ENODEV);
  const ReservedRegions regions = group->reserved_regions();
  // A hardware MSI window is translated by the IOMMU itself (x86's 0xfee00000): use the
  // doorbell as it is (Linux's cookie_init_hw_msi_region).
  for (const ReservedRegion& r : regions)
    if (r.type == ResvType::msi && r.overlaps(doorbell, 1)) return doorbell;
  if (domain->type() == DomainType::identity) return doorbell;
  if (!domain_type_is_dma(domain->type())) return Error(-ENODEV);
  DmaCookie* cookie = cookie_of(*domain);
  if (!cookie) return Error(-ENODEV);

  const uint64_t gmask = cookie->granule - 1;
  const phys_addr_t page = doorbell & ~gmask;
  Guard<Mutex> g(cookie->msi_lock);
  for (const MsiPage* p = cookie->msi_pages; p; p = p->next)
    if (p->phys == page) return p->iova + (doorbell & gmask);

  if (!cookie->msi_window) {
    const ReservedRegion* window = nullptr;
    for (const ReservedRegion& r : regions) {
      if (r.type == ResvType::sw_msi) {
        window = &r;
        break;
      }
    }
    if (!window) return Error(-EINVAL);
    // The whole granules inside the window: a doorbell page must not reach outside it.
    cookie->msi_window = true;
    cookie->msi_left = 0;
    if (window->start <= UINT64_MAX - gmask) {
      const uint64_t first = (window->start + gmask) & ~gmask;
      const uint64_t last = window->last();
      if (first <= last) {
        const uint64_t span = last - first;  // bytes - 1
        cookie->msi_next = first;
        cookie->msi_left = (span >> __builtin_ctzll(cookie->granule)) + ((span & gmask) == gmask);
      }
    }
  }
  if (cookie->msi_left == 0) return Error(-ENOSPC);
  const uint64_t iova = cookie->msi_next;

  auto* msi = static_cast<MsiPage*>(kmalloc(sizeof(MsiPage), alignof(MsiPage)));
  if (!msi) return Error(-ENOMEM);
  Result<void> mapped = iommu_map(*domain, iova, page, cookie->granule, IOMMU_WRITE | IOMMU_MMIO);
  if (!mapped.ok()) {
    kfree(msi);
    return mapped.error();
  }
  *msi = {.next = cookie->msi_pages, .phys = page, .iova = iova};
  cookie->msi_pages = msi;
  cookie->msi_next = iova + cookie->granule;
  cookie->msi_left--;
  return iova + (doorbell & gmask);
}

// ---- Flush and introspection ----

void iommu_dma_flush(Domain& domain) {
  DmaCookie* cookie = cookie_of(domain);
  if (cookie && cookie->fq) cookie->fq->flush();
}

IovaDomain* iommu_dma_iova_domain(Domain& domain) {
  DmaCookie* cookie = cookie_of(domain);
  return cookie ? cookie->iovad.get() : nullptr;
}

FlushQueue* iommu_dma_flush_queue(Domain& domain) {
  DmaCookie* cookie = cookie_of(domain);
  return cookie ? cookie->fq.get() : nullptr;
}

}  // namespace strata
