// SPDX-License-Identifier: MIT
// A fake vendor IOMMU driver for testing the iommu core (in the spirit of iommufd's selftest
// mock driver): real page tables from //core/io-pgtable in simulated DMA memory, driver state
// a test can inspect ("which domain does this device's STE point at"), failure injection at
// every op, and checks of the protocol the core must follow, recorded as violations.
//
// It maps with an unusual page size by default (LPAE 16K granule: 16K and 32M pages) so that
// 4K assumptions in the core show up.
#pragma once

#include <stdint.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/iommu.h"

namespace strata::fake {

class FakeIommu;

class FakeDomain final : public Domain {
 public:
  FakeDomain(FakeIommu& iommu, DomainType type);
  ~FakeDomain() override;

  Result<void> attach_dev(Device& dev) override;
  Result<void> set_dev_pasid(Device& dev, ioasid_t pasid, Domain* old) override;
  Result<size_t> map_pages(uint64_t iova, phys_addr_t paddr, size_t pgsize, size_t pgcount,
                           int prot) override;
  Result<size_t> unmap_pages(uint64_t iova, size_t pgsize, size_t pgcount,
                             IotlbGather& gather) override;
  Result<phys_addr_t> iova_to_phys(uint64_t iova) override;
  void iotlb_sync_map(uint64_t iova, size_t size) override;
  void iotlb_sync(IotlbGather& gather) override;
  void flush_iotlb_all() override;

  // What domain_alloc_nested() was given.
  std::vector<uint8_t> nested_data;
  // The address space of an SVA domain.
  SvaMm* mm = nullptr;

 private:
  friend class FakeIommu;
  FakeIommu& iommu_;
  Box<IoPgtable> pgtable_;
};

// One invalidation the core asked for.
struct Invalidation {
  enum Kind { range, all, walk } kind;
  const Domain* domain;
  uint64_t start, end;  // inclusive, as the gather's
  uint64_t granule;
  bool leaf_only;
};

class FakeIommu final : public IommuDevice {
 public:
  struct Options {
    std::string name = "fake0";
    DmaAllocator* dma = nullptr;  // required
    IoPgtableFmt fmt = IoPgtableFmt::arm_64_lpae_s1;
    uint64_t pgsize_bitmap = SZ_16K | SZ_32M;
    unsigned ias = 48, oas = 48;
    uint32_t max_pasids = 1u << 16;
    // Which optional ops the driver has; off: the op keeps the core's default.
    bool identity = true;
    bool blocked = true;
    bool nested = true;
    bool pasid = true;
    bool sva = true;
    bool sync_ops = true;  // iotlb_sync, flush_iotlb_all, iotlb_sync_map
    bool features = true;  // dev_enable_feat / dev_disable_feat
    bool hw_info = true;
    bool page_response = true;
    bool deferred_flush = false;  // IommuCap::deferred_flush
    // Reported by get_resv_regions for every device, and for some devices (by name) besides.
    std::vector<ReservedRegion> resv = {};
    std::map<std::string, std::vector<ReservedRegion>> device_resv = {};
    // Devices (by name) whose default domain must be of a given type (def_domain_type).
    std::map<std::string, DomainType> required_type = {};
    // Record every invalidation (benchmarks turn it off and use the counters).
    bool record = true;
  };

  explicit FakeIommu(Options options);
  ~FakeIommu();

  // ---- Ops ----
  Result<void> probe_device(Device& dev) override;
  void release_device(Device& dev) override;
  Result<Box<Domain>> domain_alloc_paging(Device& dev, DomainType type, uint32_t flags) override;
  Result<Box<Domain>> domain_alloc_identity(Device& dev) override;
  Result<Box<Domain>> domain_alloc_blocked(Device& dev) override;
  Result<Box<Domain>> domain_alloc_nested(Device& dev, Domain& parent, const void* data,
                                          size_t len) override;
  Result<Box<Domain>> domain_alloc_sva(Device& dev, SvaMm& mm) override;
  DomainType def_domain_type(Device& dev, DomainType proposed) override;
  Result<void> get_resv_regions(Device& dev, ReservedRegions& regions) override;
  void remove_dev_pasid(Device& dev, ioasid_t pasid, Domain& domain) override;
  Result<void> page_response(Device& dev, const IommuFaultPageRequest& last,
                             const IommuPageResponse& response) override;
  Result<size_t> hw_info(Device& dev, void* data, size_t len, uint32_t* type) override;
  Result<void> dev_enable_feat(Device& dev, IommuDevFeature feat) override;
  Result<void> dev_disable_feat(Device& dev, IommuDevFeature feat) override;
  bool capable(Device& dev, IommuCap cap) override;

  // ---- Failure injection: the next `times` calls of the op for `dev` (nullptr: any device)
  // fail with `err`. ----
  enum class Op {
    probe,
    attach,
    set_pasid,
    alloc_paging,
    alloc_identity,
    alloc_blocked,
    alloc_nested,
    alloc_sva,
    resv_regions,
    page_response,
    enable_feat
  };
  void fail(Op op, const Device* dev, int err, unsigned times = 1);
  // Fails the n-th call (0 = the next) of any op in the list above once, whatever the device.
  void fail_nth_op(long n, int err);

  // ---- Driver state ----
  const Options& options() const { return opts_; }
  // The domain dev's configuration entry points at; nullptr when none (released, or never
  // attached).
  const Domain* installed(const Device& dev) const;
  const Domain* installed_pasid(const Device& dev, ioasid_t pasid) const;
  size_t installed_pasids(const Device& dev) const;
  bool probed(const Device& dev) const;
  bool feature_enabled(const Device& dev, IommuDevFeature feat) const;

  struct Response {
    const Device* dev;
    IommuFaultPageRequest last;
    IommuPageResponse response;
  };
  std::vector<Response> responses() const;
  std::vector<Invalidation> invalidations() const;
  void clear_invalidations();
  // Every map_pages / unmap_pages call the core made, in order.
  struct PageCall {
    bool map;
    uint64_t iova;
    phys_addr_t paddr;  // map only
    size_t pgsize, pgcount;
    bool operator==(const PageCall&) const = default;
  };
  std::vector<PageCall> page_calls() const;
  void clear_page_calls();

  std::atomic<uint64_t> attach_calls{0};
  std::atomic<uint64_t> iotlb_syncs{0};
  std::atomic<uint64_t> flush_alls{0};
  std::atomic<uint64_t> sync_maps{0};
  std::atomic<uint64_t> live_domains{0};

  // Breaches of the core's protocol seen by the driver ("attach_dev of an unprobed device"...);
  // tests check this stays empty.
  std::vector<std::string> violations() const;

  // The hw_info struct (type kHwInfoType).
  struct HwInfo {
    uint32_t flags;
    uint32_t pgsize_log2_min;
    uint64_t pgsize_bitmap;
  };
  static constexpr uint32_t kHwInfoType = 0xfa;

 private:
  friend class FakeDomain;
  struct DevState {
    const Domain* domain = nullptr;
    std::map<ioasid_t, const Domain*> pasids;
    bool iopf = false;
    bool sva = false;
  };

  Result<void> injected(Op op, const Device* dev);
  void violation(std::string what) const;
  void record(const Invalidation& inv);
  void record(const PageCall& call);
  static void tlb_flush_walk(uint64_t iova, size_t size, size_t granule, void* cookie);

  const Options opts_;
  IommuFlushOps flush_ops_;

  mutable std::mutex lock_;
  std::map<const Device*, DevState> devs_;
  struct Injection {
    Op op;
    const Device* dev;
    int err;
    unsigned times;
  };
  std::vector<Injection> injections_;
  long fail_nth_ = -1;
  int fail_nth_err_ = 0;
  std::vector<Response> responses_;
  std::vector<Invalidation> invalidations_;
  std::vector<PageCall> page_calls_;
  mutable std::mutex violations_lock_;  // taken alone, or inside lock_
  mutable std::vector<std::string> violations_;
};

}  // namespace strata::fake
