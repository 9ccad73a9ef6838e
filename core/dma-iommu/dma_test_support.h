// SPDX-License-Identifier: MIT
// Shared by the dma-iommu suites: a simulated platform with a registered fake IOMMU (16K
// granule by default), devices probed into DMA default domains with the DMA API set up, and
// helpers to look at what the device would see.
#pragma once

#include <stdint.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "core/dma-iommu/dma_iommu.h"
#include "core/dma-iommu/flush_queue.h"
#include "core/iommu.h"
#include "core/iova/iova.h"
#include "testing/fake-iommu/fake_iommu.h"
#include "testing/hosted/hosted.h"
#include "testing/models/platform/platform.h"

namespace strata::dmatest {

using fake::Invalidation;

inline int code_of(const Result<void>& r) { return r.ok() ? 0 : r.error().code(); }
template <typename T>
int code_of(const Result<T>& r) {
  return r.ok() ? 0 : r.error().code();
}

enum class Mode { strict, lazy };

inline fake::FakeIommu::Options fake_options(Mode mode, fake::FakeIommu::Options opts = {}) {
  if (mode == Mode::lazy) opts.deferred_flush = true;
  return opts;
}
inline IommuConfig iommu_config(Mode mode) {
  return {.def_domain_type = mode == Mode::lazy ? DomainType::dma_fq : DomainType::dma};
}

// Two regions for a fake's Options::resv, which the suites add their own to: a 1 MiB software
// MSI window at 128 MiB, and a 64 KiB direct (identity-mapped) region at 256 MiB.
inline constexpr ReservedRegion kSwMsiRegion = {.start = 0x0800'0000,
                                                .length = 0x10'0000,
                                                .prot = IOMMU_WRITE | IOMMU_MMIO,
                                                .type = ResvType::sw_msi};
inline constexpr ReservedRegion kDirectRegion = {.start = 0x1000'0000,
                                                 .length = 0x1'0000,
                                                 .prot = IOMMU_READ | IOMMU_WRITE,
                                                 .type = ResvType::direct};

// The platform and the fake IOMMU; devices are probed with probe() and released (in reverse)
// when the fixture goes, which then checks that every kmalloc and DMA allocation made since it
// was built has been returned, and that the fake saw no protocol violation.
class Env {
 public:
  explicit Env(Mode mode = Mode::strict, fake::FakeIommu::Options opts = {})
      : platform_(sim::Platform::create().release_value()),
        kmalloc_base_(hosted::kmalloc_live()),
        fake_(std::make_unique<fake::FakeIommu>(with_dma(fake_options(mode, std::move(opts))))) {
    REQUIRE(iommu_device_register(*fake_, iommu_config(mode)).ok());
    // The buffers the tests map come from the DMA allocator too, which owns all of the
    // platform's RAM: a device write through a mapping of "any" RAM could land on a page table.
    Result<DmaBuffer> data = DmaBuffer::alloc(platform_->dma(), kDataSize, SZ_32M);
    REQUIRE(data.ok());
    data_ = data.release_value();
  }
  ~Env() {
    release_all();
    data_.reset();
    for (const std::string& v : fake_->violations()) FAIL_CHECK("protocol violation: " << v);
    CHECK(iommu_device_unregister(*fake_).ok());
    fake_.reset();
    CHECK(hosted::kmalloc_live() == kmalloc_base_);
    CHECK(platform_->dma().live_allocations() == 0);
  }
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;

  // A device behind the fake, probed, with the DMA API set up on its default domain when that
  // is a DMA domain (as the OS would do at probe).
  Device& probe(const char* name, const PciDev* pci = nullptr, bool init = true) {
    devices_.push_back(std::make_unique<Device>(
        DeviceDesc{.name = name,
                   .fwspec = {.iommu = fake_.get(), .ids = {sid_++}, .num_ids = 1},
                   .pci = pci}));
    Device& dev = *devices_.back();
    REQUIRE(iommu_probe_device(dev).ok());
    Domain* domain = iommu_get_dma_domain(dev);
    REQUIRE(domain != nullptr);
    if (init && domain_type_is_dma(domain->type()))
      REQUIRE(iommu_dma_init_domain(*domain, dev).ok());
    return dev;
  }
  void release(Device& dev) {
    for (auto it = devices_.begin(); it != devices_.end(); ++it) {
      if (it->get() != &dev) continue;
      iommu_release_device(dev);
      devices_.erase(it);
      return;
    }
    FAIL("release of a device the fixture does not hold");
  }
  void release_all() {
    while (!devices_.empty()) {
      iommu_release_device(*devices_.back());
      devices_.pop_back();
    }
  }

  sim::Platform& platform() { return *platform_; }
  sim::SimDmaAllocator& dma() { return platform_->dma(); }
  sim::PhysMem& mem() { return platform_->mem(); }
  fake::FakeIommu& fake() { return *fake_; }
  // kDataSize bytes of RAM for the tests' buffers, 32M-aligned, that nothing else uses.
  static constexpr size_t kDataSize = 64 * SZ_1G / 1024;
  phys_addr_t ram() const { return data_.phys(); }

 private:
  fake::FakeIommu::Options with_dma(fake::FakeIommu::Options opts) {
    opts.dma = &platform_->dma();
    return opts;
  }

  std::unique_ptr<sim::Platform> platform_;
  long kmalloc_base_;
  std::unique_ptr<fake::FakeIommu> fake_;
  std::vector<std::unique_ptr<Device>> devices_;
  uint32_t sid_ = 0x10;
  DmaBuffer data_;
};

inline Domain& dma_domain(Device& dev) {
  Domain* d = iommu_get_dma_domain(dev);
  REQUIRE(d != nullptr);
  return *d;
}

// Where the device's access to `iova` goes, or -errno.
inline Result<phys_addr_t> translate(Device& dev, uint64_t iova) {
  return iommu_iova_to_phys(dma_domain(dev), iova);
}

// Writes `len` bytes as the device would, through the domain's page tables, one byte at a time
// (so that every granule crossed is translated); false on a translation fault.
inline bool device_write(Env& env, Device& dev, uint64_t iova, const void* src, size_t len) {
  const auto* p = static_cast<const uint8_t*>(src);
  for (size_t i = 0; i < len; i++) {
    Result<phys_addr_t> pa = translate(dev, iova + i);
    if (!pa.ok()) return false;
    if (!env.mem().write(pa.value(), p + i, 1).ok()) return false;
  }
  return true;
}
inline bool device_read(Env& env, Device& dev, uint64_t iova, void* dst, size_t len) {
  auto* p = static_cast<uint8_t*>(dst);
  for (size_t i = 0; i < len; i++) {
    Result<phys_addr_t> pa = translate(dev, iova + i);
    if (!pa.ok()) return false;
    if (!env.mem().read(pa.value(), p + i, 1).ok()) return false;
  }
  return true;
}

// IOVA ranges held by live allocations: allocated ranges minus reservations and those the
// rcache holds (allocated in the tree but free to hand out; cached_pfns() counts ranges).
inline unsigned long live_iova_ranges(IovaDomain& iovad) {
  unsigned long n = 0;
  iovad.for_each_iova([&](const Iova& i) {
    if (!i.reserved()) n++;
  });
  return n - iovad.cached_pfns();
}

inline void check_iovad(Domain& domain) {
  IovaDomain* iovad = iommu_dma_iova_domain(domain);
  REQUIRE(iovad != nullptr);
  const char* broken = iovad->check_invariants();
  CHECK_MESSAGE(broken == nullptr, std::string(broken ? broken : ""));
}

}  // namespace strata::dmatest
