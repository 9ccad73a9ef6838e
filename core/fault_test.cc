// SPDX-License-Identifier: MIT
// Fault reporting (core/fault.h): unrecoverable faults to the device's handler, handler
// registration, and page requests for devices that are on no IOPF queue. The queue itself is
// iopf_test.cc's.
#include "core/fault.h"

#include <string.h>

#include <vector>

#include <doctest/doctest.h>

#include "core/core_test_support.h"
#include "core/iommu.h"
#include "core/iopf.h"
#include "testing/hosted/hosted.h"

namespace strata {
namespace {

using test::code_of;

// What a handler saw.
struct Seen {
  std::vector<IommuFault> faults;
  int ret = 0;  // what the handler returns
};

Result<void> record(const IommuFault& fault, void* data) {
  auto* seen = static_cast<Seen*>(data);
  seen->faults.push_back(fault);
  if (seen->ret) return Error(seen->ret);
  return {};
}

Result<void> other_handler(const IommuFault&, void*) { return {}; }

IommuFault unrecoverable() {
  IommuFault f;
  memset(&f, 0, sizeof(f));
  f.type = IOMMU_FAULT_DMA_UNRECOV;
  f.event = {.reason = IOMMU_FAULT_REASON_PTE_FETCH,
             .flags = IOMMU_FAULT_UNRECOV_PASID_VALID | IOMMU_FAULT_UNRECOV_ADDR_VALID |
                      IOMMU_FAULT_UNRECOV_FETCH_ADDR_VALID,
             .pasid = 17,
             .perm = IOMMU_FAULT_PERM_WRITE | IOMMU_FAULT_PERM_PRIV,
             .addr = 0xdead'b000,
             .fetch_addr = 0x4123'4560};
  return f;
}

IommuFault page_request(uint32_t grpid, uint32_t flags, uint32_t pasid = 0) {
  IommuFault f;
  memset(&f, 0, sizeof(f));
  f.type = IOMMU_FAULT_PAGE_REQ;
  f.prm = {.flags = flags,
           .pasid = pasid,
           .grpid = grpid,
           .perm = IOMMU_FAULT_PERM_READ,
           .addr = 0x1000,
           .private_data = {1, 2}};
  return f;
}

TEST_CASE("an unrecoverable fault reaches the registered handler with the exact record") {
  test::DeviceEnv env;
  Device& dev = env.probe("dev0");
  Seen seen;
  REQUIRE(iommu_register_device_fault_handler(dev, record, &seen).ok());

  const IommuFault f = unrecoverable();
  REQUIRE(iommu_report_device_fault(dev, f).ok());
  REQUIRE(seen.faults.size() == 1);
  CHECK(memcmp(&seen.faults[0], &f, sizeof(f)) == 0);

  // The handler's error is the report's.
  seen.ret = -EIO;
  CHECK(code_of(iommu_report_device_fault(dev, f)) == -EIO);
  CHECK(seen.faults.size() == 2);
  // Unrecoverable faults never go near the driver's page_response.
  CHECK(env.fake.responses().empty());
}

TEST_CASE("no handler: -EOPNOTSUPP, for the driver to log") {
  test::DeviceEnv env;
  Device& dev = env.probe("dev0");
  CHECK(code_of(iommu_report_device_fault(dev, unrecoverable())) == -EOPNOTSUPP);
  Seen seen;
  REQUIRE(iommu_register_device_fault_handler(dev, record, &seen).ok());
  REQUIRE(iommu_unregister_device_fault_handler(dev).ok());
  CHECK(code_of(iommu_report_device_fault(dev, unrecoverable())) == -EOPNOTSUPP);
  CHECK(seen.faults.empty());
}

TEST_CASE("registration: one handler per device") {
  test::DeviceEnv env;
  Device& dev = env.probe("dev0");
  Device& other = env.probe("dev1");
  Seen a, b;
  CHECK(code_of(iommu_register_device_fault_handler(dev, nullptr, &a)) == -EINVAL);
  CHECK(code_of(iommu_unregister_device_fault_handler(dev)) == -EINVAL);
  REQUIRE(iommu_register_device_fault_handler(dev, record, &a).ok());
  CHECK(code_of(iommu_register_device_fault_handler(dev, other_handler, &b)) == -EBUSY);
  CHECK(code_of(iommu_register_device_fault_handler(dev, record, &a)) == -EBUSY);
  REQUIRE(iommu_register_device_fault_handler(other, record, &b).ok());  // per device

  REQUIRE(iommu_report_device_fault(dev, unrecoverable()).ok());
  CHECK(a.faults.size() == 1);
  CHECK(b.faults.empty());

  REQUIRE(iommu_unregister_device_fault_handler(dev).ok());
  CHECK(code_of(iommu_unregister_device_fault_handler(dev)) == -EINVAL);
  REQUIRE(iommu_register_device_fault_handler(dev, record, &b).ok());
  REQUIRE(iommu_report_device_fault(dev, unrecoverable()).ok());
  CHECK(a.faults.size() == 1);
  CHECK(b.faults.size() == 1);
}

TEST_CASE("an unknown fault type is -EINVAL") {
  test::DeviceEnv env;
  Device& dev = env.probe("dev0");
  Seen seen;
  REQUIRE(iommu_register_device_fault_handler(dev, record, &seen).ok());
  IommuFault f = unrecoverable();
  f.type = 7;
  CHECK(code_of(iommu_report_device_fault(dev, f)) == -EINVAL);
  CHECK(seen.faults.empty());
}

TEST_CASE("a page request for a device on no queue is answered INVALID at once") {
  test::DeviceEnv env;
  Device& dev = env.probe("dev0");
  const long live = hosted::kmalloc_live();
  // A request that is not the last needs no answer; it is not kept either.
  CHECK(code_of(iommu_report_device_fault(
            dev, page_request(4, IOMMU_FAULT_PAGE_REQUEST_PASID_VALID, 3))) == -ENODEV);
  CHECK(hosted::kmalloc_live() == live);
  CHECK(env.fake.responses().empty());

  const IommuFault last =
      page_request(4,
                   IOMMU_FAULT_PAGE_REQUEST_PASID_VALID | IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE |
                       IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID,
                   3);
  CHECK(code_of(iommu_report_device_fault(dev, last)) == -ENODEV);
  auto rs = env.fake.responses();
  REQUIRE(rs.size() == 1);
  CHECK(rs[0].dev == &dev);
  CHECK(rs[0].response.grpid == 4);
  CHECK(rs[0].response.pasid == 3);
  CHECK(rs[0].response.code == IOMMU_PAGE_RESP_INVALID);
  CHECK(memcmp(&rs[0].last, &last.prm, sizeof(last.prm)) == 0);

  CHECK(code_of(iommu_page_response(dev, {.pasid = 3, .grpid = 4, .code = 0})) == -ENODEV);
  CHECK(code_of(iopf_queue_flush_dev(dev)) == -ENODEV);
  CHECK(env.fake.responses().size() == 1);
}

// A handler that hands every group on (as VFIO's would), with the device's unrecoverable
// faults going to user space too.
struct Forwarder final : IopfHandler {
  unsigned groups = 0;
  IommuPageResponseCode handle_iopf(Device&, const IopfGroup&) override {
    groups++;
    return IOMMU_PAGE_RESP_ASYNC;
  }
};

TEST_CASE("unregistering is -EBUSY while page request groups are pending") {
  test::DeviceEnv env;
  Device& dev = env.probe("dev0");
  Box<IopfQueue> queue = IopfQueue::create("iopf0", 4).release_value();
  REQUIRE(queue->add_device(dev).ok());
  Forwarder fwd;
  Domain* rid = iommu_get_domain_for_dev(dev);
  REQUIRE(rid);
  rid->set_iopf_handler(&fwd);
  Seen seen;
  REQUIRE(iommu_register_device_fault_handler(dev, record, &seen).ok());

  // A partial request is not a pending group.
  REQUIRE(iommu_report_device_fault(dev, page_request(1, 0)).ok());
  REQUIRE(iommu_report_device_fault(dev, page_request(2, IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE)).ok());
  CHECK(code_of(iommu_unregister_device_fault_handler(dev)) == -EBUSY);  // queued
  CHECK(queue->process() == 1);
  CHECK(fwd.groups == 1);
  CHECK(code_of(iommu_unregister_device_fault_handler(dev)) == -EBUSY);  // handed on
  REQUIRE(iommu_page_response(dev, {.pasid = 0, .grpid = 2, .code = IOMMU_PAGE_RESP_SUCCESS}).ok());
  REQUIRE(iommu_unregister_device_fault_handler(dev).ok());
  CHECK(seen.faults.empty());  // page requests never go to the unrecoverable handler

  rid->set_iopf_handler(nullptr);
  iommu_release_device(dev);
  CHECK(queue->stats().devices == 0);
}

TEST_CASE("release drops the handler; a re-probed device starts clean") {
  test::DeviceEnv env;
  Device& dev = env.probe("dev0");
  Seen seen;
  REQUIRE(iommu_register_device_fault_handler(dev, record, &seen).ok());
  iommu_release_device(dev);
  REQUIRE(iommu_probe_device(dev).ok());
  CHECK(code_of(iommu_report_device_fault(dev, unrecoverable())) == -EOPNOTSUPP);
  CHECK(code_of(iommu_unregister_device_fault_handler(dev)) == -EINVAL);
  REQUIRE(iommu_register_device_fault_handler(dev, other_handler, nullptr).ok());
  CHECK(seen.faults.empty());
}

}  // namespace
}  // namespace strata
