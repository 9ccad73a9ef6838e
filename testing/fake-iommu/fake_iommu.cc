// SPDX-License-Identifier: MIT
#include "testing/fake-iommu/fake_iommu.h"

#include <string.h>

#include <fmt/format.h>

namespace strata::fake {

// ---- FakeDomain ----

FakeDomain::FakeDomain(FakeIommu& iommu, DomainType type) : Domain(iommu, type), iommu_(iommu) {
  iommu_.live_domains++;
}

FakeDomain::~FakeDomain() {
  // The core must have detached it everywhere before freeing it (Domain's destructor checks
  // users(); the driver checks its own entries, which is what a use-after-free would hit).
  std::lock_guard<std::mutex> g(iommu_.lock_);
  for (auto& [dev, st] : iommu_.devs_) {
    if (st.domain == this) iommu_.violation(fmt::format("domain freed while installed"));
    for (auto& [pasid, d] : st.pasids)
      if (d == this) iommu_.violation(fmt::format("domain freed while on PASID {}", pasid));
  }
  iommu_.live_domains--;
}

Result<void> FakeDomain::attach_dev(Device& dev) {
  iommu_.attach_calls++;
  STRATA_TRY(iommu_.injected(FakeIommu::Op::attach, &dev));
  std::lock_guard<std::mutex> g(iommu_.lock_);
  auto it = iommu_.devs_.find(&dev);
  if (it == iommu_.devs_.end()) {
    iommu_.violation(fmt::format("attach_dev of unprobed {}", dev.name()));
    return Error(-ENODEV);
  }
  if (type() == DomainType::sva) iommu_.violation("attach_dev with an SVA domain");
  it->second.domain = this;
  return {};
}

Result<void> FakeDomain::set_dev_pasid(Device& dev, ioasid_t pasid, Domain* old) {
  if (!iommu_.opts_.pasid) return Domain::set_dev_pasid(dev, pasid, old);
  STRATA_TRY(iommu_.injected(FakeIommu::Op::set_pasid, &dev));
  std::lock_guard<std::mutex> g(iommu_.lock_);
  auto it = iommu_.devs_.find(&dev);
  if (it == iommu_.devs_.end()) {
    iommu_.violation(fmt::format("set_dev_pasid of unprobed {}", dev.name()));
    return Error(-ENODEV);
  }
  if (pasid == 0 || pasid >= dev.max_pasids())
    iommu_.violation(fmt::format("set_dev_pasid with PASID {} of {}", pasid, dev.max_pasids()));
  auto p = it->second.pasids.find(pasid);
  const Domain* before = p == it->second.pasids.end() ? nullptr : p->second;
  if (before != old) iommu_.violation(fmt::format("set_dev_pasid: wrong old domain"));
  it->second.pasids[pasid] = this;
  return {};
}

Result<size_t> FakeDomain::map_pages(uint64_t iova, phys_addr_t paddr, size_t pgsize,
                                     size_t pgcount, int prot) {
  if (!pgtable_) return Error(-EINVAL);
  if (!(pgsize & pgsize_bitmap()) || (iova | paddr) & (pgsize - 1) || pgcount == 0)
    iommu_.violation(
        fmt::format("map_pages {:#x} -> {:#x} pgsize {:#x} x {}", iova, paddr, pgsize, pgcount));
  iommu_.record(FakeIommu::PageCall{true, iova, paddr, pgsize, pgcount});
  return pgtable_->map_pages(iova, paddr, pgsize, pgcount, prot);
}

Result<size_t> FakeDomain::unmap_pages(uint64_t iova, size_t pgsize, size_t pgcount,
                                       IotlbGather& gather) {
  if (!pgtable_) return Error(-EINVAL);
  if (!(pgsize & pgsize_bitmap()) || iova & (pgsize - 1) || pgcount == 0)
    iommu_.violation(fmt::format("unmap_pages {:#x} pgsize {:#x} x {}", iova, pgsize, pgcount));
  iommu_.record(FakeIommu::PageCall{false, iova, 0, pgsize, pgcount});
  return pgtable_->unmap_pages(iova, pgsize, pgcount, gather);
}

Result<phys_addr_t> FakeDomain::iova_to_phys(uint64_t iova) {
  if (!pgtable_) return Error(-EINVAL);
  return pgtable_->iova_to_phys(iova);
}

void FakeDomain::iotlb_sync_map(uint64_t iova, size_t size) {
  (void)iova;
  (void)size;
  if (iommu_.opts_.sync_ops) iommu_.sync_maps++;
}

void FakeDomain::iotlb_sync(IotlbGather& gather) {
  if (!iommu_.opts_.sync_ops) return;
  iommu_.iotlb_syncs++;
  if (gather.empty()) iommu_.violation("iotlb_sync of an empty gather");
  iommu_.record({Invalidation::range, this, gather.start(), gather.end(), gather.granule(),
                 gather.leaf_only()});
}

void FakeDomain::flush_iotlb_all() {
  if (!iommu_.opts_.sync_ops) return;
  iommu_.flush_alls++;
  iommu_.record({Invalidation::all, this, 0, UINT64_MAX, 0, false});
}

// ---- FakeIommu ----

FakeIommu::FakeIommu(Options options)
    : IommuDevice(options.name.c_str()), opts_(std::move(options)) {
  max_pasids_ = opts_.max_pasids;
  flush_ops_.tlb_flush_walk = &FakeIommu::tlb_flush_walk;
}

FakeIommu::~FakeIommu() {
  if (registered()) STRATA_BUG_ON(!iommu_device_unregister(*this).ok());
}

Result<void> FakeIommu::injected(Op op, const Device* dev) {
  std::lock_guard<std::mutex> g(lock_);
  if (fail_nth_ >= 0 && fail_nth_-- == 0) return Error(fail_nth_err_);
  for (auto it = injections_.begin(); it != injections_.end(); ++it) {
    if (it->op != op || (it->dev && it->dev != dev)) continue;
    const int err = it->err;
    if (--it->times == 0) injections_.erase(it);
    return Error(err);
  }
  return {};
}

void FakeIommu::fail(Op op, const Device* dev, int err, unsigned times) {
  std::lock_guard<std::mutex> g(lock_);
  injections_.push_back({op, dev, err, times});
}

void FakeIommu::fail_nth_op(long n, int err) {
  std::lock_guard<std::mutex> g(lock_);
  fail_nth_ = n;
  fail_nth_err_ = err;
}

void FakeIommu::violation(std::string what) const {
  std::lock_guard<std::mutex> g(violations_lock_);
  violations_.push_back(std::move(what));
}

std::vector<std::string> FakeIommu::violations() const {
  std::lock_guard<std::mutex> g(violations_lock_);
  return violations_;
}

void FakeIommu::record(const Invalidation& inv) {
  if (!opts_.record) return;
  std::lock_guard<std::mutex> g(lock_);
  invalidations_.push_back(inv);
}

void FakeIommu::record(const PageCall& call) {
  if (!opts_.record) return;
  std::lock_guard<std::mutex> g(lock_);
  page_calls_.push_back(call);
}

std::vector<FakeIommu::PageCall> FakeIommu::page_calls() const {
  std::lock_guard<std::mutex> g(lock_);
  return page_calls_;
}

void FakeIommu::clear_page_calls() {
  std::lock_guard<std::mutex> g(lock_);
  page_calls_.clear();
}

std::vector<Invalidation> FakeIommu::invalidations() const {
  std::lock_guard<std::mutex> g(lock_);
  return invalidations_;
}

void FakeIommu::clear_invalidations() {
  std::lock_guard<std::mutex> g(lock_);
  invalidations_.clear();
}

void FakeIommu::tlb_flush_walk(uint64_t iova, size_t size, size_t granule, void* cookie) {
  auto* domain = static_cast<FakeDomain*>(cookie);
  domain->iommu_.record({Invalidation::walk, domain, iova, iova + size - 1, granule, false});
}

Result<void> FakeIommu::probe_device(Device& dev) {
  STRATA_TRY(injected(Op::probe, &dev));
  std::lock_guard<std::mutex> g(lock_);
  if (dev.fwspec().iommu != this) {
    violation(fmt::format("probe_device of {}, which is not ours", dev.name()));
    return Error(-ENODEV);
  }
  if (devs_.count(&dev)) violation(fmt::format("probe_device of {} twice", dev.name()));
  devs_[&dev] = {};
  return {};
}

void FakeIommu::release_device(Device& dev) {
  std::lock_guard<std::mutex> g(lock_);
  auto it = devs_.find(&dev);
  if (it == devs_.end()) {
    violation(fmt::format("release_device of unprobed {}", dev.name()));
    return;
  }
  if (!it->second.pasids.empty())
    violation(fmt::format("release_device of {} with PASIDs installed", dev.name()));
  devs_.erase(it);
}

Result<Box<Domain>> FakeIommu::domain_alloc_paging(Device& dev, DomainType type, uint32_t flags) {
  (void)flags;
  STRATA_TRY(injected(Op::alloc_paging, &dev));
  if (!domain_type_is_paging(type)) violation("domain_alloc_paging of a non-paging type");
  Box<FakeDomain> domain = STRATA_TRY(make_box<FakeDomain>(*this, type));
  IoPgtableCfg cfg{.pgsize_bitmap = opts_.pgsize_bitmap,
                   .ias = opts_.ias,
                   .oas = opts_.oas,
                   .dma = opts_.dma,
                   .tlb = &flush_ops_,
                   .cookie = domain.get()};
  domain->pgtable_ = STRATA_TRY(IoPgtable::alloc(opts_.fmt, cfg));
  domain->pgsize_bitmap_ = cfg.pgsize_bitmap;
  domain->geometry_ = {
      .aperture_start = 0, .aperture_end = (uint64_t{1} << opts_.ias) - 1, .force_aperture = true};
  return Box<Domain>(std::move(domain));
}

Result<Box<Domain>> FakeIommu::domain_alloc_identity(Device& dev) {
  if (!opts_.identity) return IommuDevice::domain_alloc_identity(dev);
  STRATA_TRY(injected(Op::alloc_identity, &dev));
  return Box<Domain>(STRATA_TRY(make_box<FakeDomain>(*this, DomainType::identity)));
}

Result<Box<Domain>> FakeIommu::domain_alloc_blocked(Device& dev) {
  if (!opts_.blocked) return IommuDevice::domain_alloc_blocked(dev);
  STRATA_TRY(injected(Op::alloc_blocked, &dev));
  return Box<Domain>(STRATA_TRY(make_box<FakeDomain>(*this, DomainType::blocked)));
}

Result<Box<Domain>> FakeIommu::domain_alloc_nested(Device& dev, Domain& parent, const void* data,
                                                   size_t len) {
  if (!opts_.nested) return IommuDevice::domain_alloc_nested(dev, parent, data, len);
  STRATA_TRY(injected(Op::alloc_nested, &dev));
  if (&parent.owner() != this || !parent.nest_parent())
    violation("domain_alloc_nested with a bad parent");
  // The vendor's own check of its user data: the fake takes 8..64 bytes.
  if (len < 8 || len > 64) return Error(-EINVAL);
  Box<FakeDomain> domain = STRATA_TRY(make_box<FakeDomain>(*this, DomainType::nested));
  const auto* bytes = static_cast<const uint8_t*>(data);
  domain->nested_data.assign(bytes, bytes + len);
  return Box<Domain>(std::move(domain));
}

Result<Box<Domain>> FakeIommu::domain_alloc_sva(Device& dev, SvaMm& mm) {
  if (!opts_.sva) return IommuDevice::domain_alloc_sva(dev, mm);
  STRATA_TRY(injected(Op::alloc_sva, &dev));
  Box<FakeDomain> domain = STRATA_TRY(make_box<FakeDomain>(*this, DomainType::sva));
  domain->mm = &mm;
  return Box<Domain>(std::move(domain));
}

DomainType FakeIommu::def_domain_type(Device& dev, DomainType proposed) {
  auto it = opts_.required_type.find(dev.name());
  return it == opts_.required_type.end() ? proposed : it->second;
}

Result<void> FakeIommu::get_resv_regions(Device& dev, ReservedRegions& regions) {
  STRATA_TRY(injected(Op::resv_regions, &dev));
  for (const ReservedRegion& r : opts_.resv) STRATA_TRY(regions.add(r));
  if (auto it = opts_.device_resv.find(dev.name()); it != opts_.device_resv.end())
    for (const ReservedRegion& r : it->second) STRATA_TRY(regions.add(r));
  return {};
}

void FakeIommu::remove_dev_pasid(Device& dev, ioasid_t pasid, Domain& domain) {
  std::lock_guard<std::mutex> g(lock_);
  auto it = devs_.find(&dev);
  if (it == devs_.end()) {
    violation(fmt::format("remove_dev_pasid of unprobed {}", dev.name()));
    return;
  }
  auto p = it->second.pasids.find(pasid);
  if (p == it->second.pasids.end() || p->second != &domain) {
    violation(fmt::format("remove_dev_pasid {} of {}: not installed", pasid, dev.name()));
    return;
  }
  it->second.pasids.erase(p);
}

Result<void> FakeIommu::page_response(Device& dev, const IommuFaultPageRequest& last,
                                      const IommuPageResponse& response) {
  if (!opts_.page_response) return IommuDevice::page_response(dev, last, response);
  STRATA_TRY(injected(Op::page_response, &dev));
  std::lock_guard<std::mutex> g(lock_);
  if (!devs_.count(&dev)) violation(fmt::format("page_response to unprobed {}", dev.name()));
  responses_.push_back({&dev, last, response});
  return {};
}

std::vector<FakeIommu::Response> FakeIommu::responses() const {
  std::lock_guard<std::mutex> g(lock_);
  return responses_;
}

Result<size_t> FakeIommu::hw_info(Device& dev, void* data, size_t len, uint32_t* type) {
  if (!opts_.hw_info) return IommuDevice::hw_info(dev, data, len, type);
  const HwInfo info{.flags = 1,
                    .pgsize_log2_min = static_cast<uint32_t>(__builtin_ctzll(opts_.pgsize_bitmap)),
                    .pgsize_bitmap = opts_.pgsize_bitmap};
  memcpy(data, &info, len < sizeof(info) ? len : sizeof(info));
  *type = kHwInfoType;
  return sizeof(info);
}

Result<void> FakeIommu::dev_enable_feat(Device& dev, IommuDevFeature feat) {
  if (!opts_.features) return IommuDevice::dev_enable_feat(dev, feat);
  STRATA_TRY(injected(Op::enable_feat, &dev));
  std::lock_guard<std::mutex> g(lock_);
  DevState& st = devs_[&dev];
  switch (feat) {
    case IommuDevFeature::iopf:
      if (!dev.desc().pri) return Error(-ENODEV);
      st.iopf = true;
      return {};
    case IommuDevFeature::sva:
      if (!st.iopf || dev.max_pasids() == 0) return Error(-EINVAL);
      st.sva = true;
      return {};
  }
  return Error(-EINVAL);
}

Result<void> FakeIommu::dev_disable_feat(Device& dev, IommuDevFeature feat) {
  if (!opts_.features) return IommuDevice::dev_disable_feat(dev, feat);
  std::lock_guard<std::mutex> g(lock_);
  DevState& st = devs_[&dev];
  switch (feat) {
    case IommuDevFeature::iopf:
      if (!st.iopf || st.sva) return Error(-EBUSY);
      st.iopf = false;
      return {};
    case IommuDevFeature::sva:
      if (!st.sva) return Error(-EINVAL);
      st.sva = false;
      return {};
  }
  return Error(-EINVAL);
}

bool FakeIommu::capable(Device& dev, IommuCap cap) {
  (void)dev;
  switch (cap) {
    case IommuCap::cache_coherency:
    case IommuCap::noexec: return true;
    case IommuCap::deferred_flush: return opts_.deferred_flush;
    default: return false;
  }
}

const Domain* FakeIommu::installed(const Device& dev) const {
  std::lock_guard<std::mutex> g(lock_);
  auto it = devs_.find(&dev);
  return it == devs_.end() ? nullptr : it->second.domain;
}

const Domain* FakeIommu::installed_pasid(const Device& dev, ioasid_t pasid) const {
  std::lock_guard<std::mutex> g(lock_);
  auto it = devs_.find(&dev);
  if (it == devs_.end()) return nullptr;
  auto p = it->second.pasids.find(pasid);
  return p == it->second.pasids.end() ? nullptr : p->second;
}

size_t FakeIommu::installed_pasids(const Device& dev) const {
  std::lock_guard<std::mutex> g(lock_);
  auto it = devs_.find(&dev);
  return it == devs_.end() ? 0 : it->second.pasids.size();
}

bool FakeIommu::probed(const Device& dev) const {
  std::lock_guard<std::mutex> g(lock_);
  return devs_.count(&dev) != 0;
}

bool FakeIommu::feature_enabled(const Device& dev, IommuDevFeature feat) const {
  std::lock_guard<std::mutex> g(lock_);
  auto it = devs_.find(&dev);
  if (it == devs_.end()) return false;
  return feat == IommuDevFeature::iopf ? it->second.iopf : it->second.sva;
}

}  // namespace strata::fake
