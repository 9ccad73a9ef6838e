// SPDX-License-Identifier: MIT
// Shared by the iommu core's suites: a simulated platform with a registered fake IOMMU.
#pragma once

#include <memory>
#include <string>

#include <doctest/doctest.h>

#include "core/iommu.h"
#include "testing/fake-iommu/fake_iommu.h"
#include "testing/hosted/hosted.h"
#include "testing/models/platform/platform.h"

namespace strata::test {

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

}  // namespace strata::test
