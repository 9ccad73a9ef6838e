// SPDX-License-Identifier: MIT
// Shared by the iommu core's suites: a simulated platform with a registered fake IOMMU, and
// fixtures on it that own their devices and domains (DeviceEnv) and an IOPF queue (IopfEnv).
#pragma once

#include <stdint.h>

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "core/iommu.h"
#include "core/iopf.h"
#include "testing/fake-iommu/fake_iommu.h"
#include "testing/hosted/hosted.h"
#include "testing/models/platform/platform.h"

namespace strata::test {

// Page-request flags, short.
inline constexpr uint32_t kLast = IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE;
inline constexpr uint32_t kPasid = IOMMU_FAULT_PAGE_REQUEST_PASID_VALID;
inline constexpr uint32_t kNeedsPasid = IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID;

// Reports `r` as the driver's page-request path would.
inline Result<void> report(Device& dev, const IommuFaultPageRequest& r) {
  IommuFault f{};
  f.type = IOMMU_FAULT_PAGE_REQ;
  f.prm = r;
  return iommu_report_device_fault(dev, f);
}

inline int code_of(const Result<void>& r) { return r.ok() ? 0 : r.error().code(); }
template <typename T>
int code_of(const Result<T>& r) {
  return r.ok() ? 0 : r.error().code();
}

struct CoreFixture {
  explicit CoreFixture(fake::FakeIommu::Options opts = {}, IommuConfig config = {})
      : platform(sim::Platform::create().release_value()),
        fake((opts.dma = &platform->dma(), std::move(opts))) {
    REQUIRE(iommu_device_register(fake, config).ok());
  }
  ~CoreFixture() {
    for (const std::string& v : fake.violations()) FAIL_CHECK("protocol violation: " << v);
  }

  DeviceDesc desc(const char* name, const PciDev* pci = nullptr, unsigned pasid_bits = 0) {
    return DeviceDesc{.name = name,
                      .fwspec = {.iommu = &fake, .ids = {next_sid++}, .num_ids = 1},
                      .pci = pci,
                      .pasid_bits = pasid_bits,
                      .pri = pasid_bits != 0};
  }

  std::unique_ptr<sim::Platform> platform;
  fake::FakeIommu fake;
  uint32_t next_sid = 0x10;
};

// A Device that is released when it goes out of scope (as the bus layer would on removal).
class ProbedDevice {
 public:
  explicit ProbedDevice(const DeviceDesc& desc, bool probe = true) : dev(desc) {
    if (probe) REQUIRE(iommu_probe_device(dev).ok());
  }
  ~ProbedDevice() { iommu_release_device(dev); }
  Device dev;
};

// kmalloc_live() is back where it was when this was built (checked when it goes).
struct LeakCheck {
  long live = hosted::kmalloc_live();
  ~LeakCheck() { CHECK(hosted::kmalloc_live() == live); }
};

// A CoreFixture that owns the devices it probes (PASID- and PRI-capable) and the domains it is
// given to keep. When it goes it releases the devices and frees the domains (the last kept
// first: nested ones before their parents), then checks that the fake saw no protocol violation
// and, once the fake and the platform are gone too, that every kmalloc made since it was built
// was returned.
struct DeviceEnv : LeakCheck, CoreFixture {
  explicit DeviceEnv(fake::FakeIommu::Options opts = {}) : CoreFixture(std::move(opts)) {}
  ~DeviceEnv() { release_all(); }

  Device& probe(const char* name) {
    devs.push_back(std::make_unique<Device>(desc(name, nullptr, /*pasid_bits=*/8)));
    REQUIRE(iommu_probe_device(*devs.back()).ok());
    return *devs.back();
  }
  Domain& keep(Box<Domain> d) {
    domains.push_back(std::move(d));
    return *domains.back();
  }
  // Releases the devices (again, where a test already has) and frees the domains.
  void release_all() {
    for (auto& d : devs) iommu_release_device(*d);
    while (!domains.empty()) domains.pop_back();
    devs.clear();
  }

  std::vector<Box<Domain>> domains;
  std::vector<std::unique_ptr<Device>> devs;
};

// A DeviceEnv with an IOPF queue that counts its kicks and that probe() adds the devices to.
// When it goes it checks that releasing the devices took them and their groups off the queue.
struct IopfEnv : DeviceEnv {
  explicit IopfEnv(fake::FakeIommu::Options opts = {}, unsigned capacity = 8,
                   unsigned max_partial = 8)
      : DeviceEnv(std::move(opts)),
        queue(IopfQueue::create("iopf0", capacity, max_partial).release_value()) {
    queue->set_kick(
        +[](void* data) { static_cast<std::atomic<uint64_t>*>(data)->fetch_add(1); }, &kicks);
  }
  ~IopfEnv() {
    release_all();
    CHECK(queue->stats().devices == 0);
    CHECK(queue->stats().in_use == 0);
  }

  Device& probe(const char* name, bool add = true) {
    Device& dev = DeviceEnv::probe(name);
    if (add) REQUIRE(queue->add_device(dev).ok());
    return dev;
  }
  // A paging domain with `handler`, attached to `pasid` of `dev`.
  Domain& pasid_domain(Device& dev, ioasid_t pasid, IopfHandler* handler) {
    Domain& d = keep(iommu_paging_domain_alloc(dev).release_value());
    d.set_iopf_handler(handler);
    REQUIRE(iommu_attach_device_pasid(d, dev, pasid).ok());
    return d;
  }
  // The device's own (RID) domain: a user paging domain with `handler`.
  Domain& user_domain(Device& dev, IopfHandler* handler) {
    REQUIRE(iommu_device_claim_dma_owner(dev, this).ok());
    Domain& d = keep(iommu_paging_domain_alloc(dev).release_value());
    d.set_iopf_handler(handler);
    REQUIRE(iommu_attach_device(d, dev).ok());
    return d;
  }

  std::atomic<uint64_t> kicks{0};
  Box<IopfQueue> queue;  // after kicks: gone before it
};

}  // namespace strata::test
