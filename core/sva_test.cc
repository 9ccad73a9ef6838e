// SPDX-License-Identifier: MIT
// SVA binding (sva.h): one PASID per address space from the OS's set, one SVA domain per
// address space and IOMMU, counted handles, the errors, and failure injection.
#include <doctest/doctest.h>

#include "core/core_test_support.h"
#include "core/iopf.h"
#include "core/sva.h"

namespace strata {
namespace {

using fake::FakeIommu;
using test::code_of;
using test::CoreFixture;
using test::ProbedDevice;

// Stands for handle_mm_fault: counts the groups and makes every page "resident".
struct MmFaults final : IopfHandler {
  IommuPageResponseCode handle_iopf(Device& dev, const IopfGroup& group) override {
    (void)dev;
    last_addr = group.last().addr;
    groups++;
    return IOMMU_PAGE_RESP_SUCCESS;
  }
  int groups = 0;
  uint64_t last_addr = 0;
};

struct SvaFixture : CoreFixture {
  explicit SvaFixture(FakeIommu::Options opts = {}) : CoreFixture(std::move(opts)) {}
  Box<PasidSpace> space = PasidSpace::create(1, kPasidMax).release_value();
  Box<PasidSet> set = PasidSet::create(*space, 4).release_value();
  MmFaults handler;
  SvaMm mm{.pgd = 0x4010'0000, .asid = 3, .fault_handler = &handler, .pasids = set.get()};
  SvaMm mm2{.pgd = 0x4020'0000, .asid = 4, .fault_handler = &handler, .pasids = set.get()};
  ~SvaFixture() {
    iommu_sva_mm_release(mm);
    iommu_sva_mm_release(mm2);
  }
};

TEST_CASE("devices of one IOMMU share the address space's PASID and SVA domain") {
  SvaFixture f;
  ProbedDevice a(f.desc("a", nullptr, 8)), b(f.desc("b", nullptr, 8));
  auto ha = iommu_sva_bind_device(a.dev, f.mm);
  auto hb = iommu_sva_bind_device(b.dev, f.mm);
  REQUIRE(ha.ok());
  REQUIRE(hb.ok());
  const ioasid_t pasid = iommu_sva_get_pasid(ha.value());
  CHECK(pasid != kNoPasid);
  CHECK(iommu_sva_get_pasid(hb.value()) == pasid);
  Domain* d = iommu_sva_get_domain(ha.value());
  CHECK(d == iommu_sva_get_domain(hb.value()));
  CHECK(d->type() == DomainType::sva);
  CHECK(d->iopf_handler() == &f.handler);
  CHECK(static_cast<fake::FakeDomain*>(d)->mm == &f.mm);
  CHECK(f.fake.installed_pasid(a.dev, pasid) == d);
  CHECK(f.fake.installed_pasid(b.dev, pasid) == d);
  CHECK(iommu_get_domain_for_dev_pasid(a.dev, pasid) == d);
  CHECK(f.set->used() == 1);

  // Another address space: another PASID and domain.
  auto h2 = iommu_sva_bind_device(a.dev, f.mm2);
  REQUIRE(h2.ok());
  CHECK(iommu_sva_get_pasid(h2.value()) != pasid);
  CHECK(iommu_sva_get_domain(h2.value()) != d);

  // Binding again counts; the last unbind takes the PASID off the device, and the last user
  // of the domain frees it. The PASID stays with the address space.
  auto again = iommu_sva_bind_device(a.dev, f.mm);
  REQUIRE(again.ok());
  CHECK(again.value() == ha.value());
  const uint64_t domains = f.fake.live_domains;
  iommu_sva_unbind_device(again.value());
  CHECK(f.fake.installed_pasid(a.dev, pasid) == d);
  iommu_sva_unbind_device(ha.value());
  CHECK(f.fake.installed_pasid(a.dev, pasid) == nullptr);
  CHECK(f.fake.live_domains == domains);
  iommu_sva_unbind_device(hb.value());
  CHECK(f.fake.live_domains == domains - 1);
  iommu_sva_unbind_device(h2.value());
  CHECK(f.set->used() == 2);
  iommu_sva_mm_release(f.mm);
  CHECK(f.set->used() == 1);
}

TEST_CASE("a bound device's page requests reach the address space's handler") {
  SvaFixture f;
  Box<IopfQueue> queue = IopfQueue::create("iopf", 8).release_value();
  ProbedDevice d(f.desc("d", nullptr, 8));
  REQUIRE(queue->add_device(d.dev).ok());
  SvaHandle* h = iommu_sva_bind_device(d.dev, f.mm).release_value();
  IommuFaultPageRequest prq{.flags = test::kPasid | test::kLast | test::kNeedsPasid,
                            .pasid = iommu_sva_get_pasid(h),
                            .grpid = 5,
                            .perm = IOMMU_FAULT_PERM_WRITE,
                            .addr = 0x7fff'1234'5000,
                            .private_data = {}};
  REQUIRE(test::report(d.dev, prq).ok());
  CHECK(queue->process() == 1);
  CHECK(f.handler.groups == 1);
  CHECK(f.handler.last_addr == 0x7fff'1234'5000);
  const auto responses = f.fake.responses();
  REQUIRE(responses.size() == 1);
  CHECK(responses[0].response.pasid == iommu_sva_get_pasid(h));
  CHECK(responses[0].response.grpid == 5);
  CHECK(responses[0].response.code == IOMMU_PAGE_RESP_SUCCESS);
  // Queued but not yet handled when the device unbinds: answered by the unbind's flush, which
  // finds the PASID detached (INVALID, the handler not called), before the domain is freed.
  prq.grpid = 6;
  REQUIRE(test::report(d.dev, prq).ok());
  iommu_sva_unbind_device(h);
  CHECK(f.handler.groups == 1);
  const auto after = f.fake.responses();
  REQUIRE(after.size() == 2);
  CHECK(after[1].response.grpid == 6);
  CHECK(after[1].response.code == IOMMU_PAGE_RESP_INVALID);
  CHECK(queue->process() == 0);
  queue->remove_device(d.dev);
}

TEST_CASE("SVA errors: no IOMMU, no PASIDs, no set, no driver support, quota, range") {
  SUBCASE("device side") {
    SvaFixture f;
    Device none({.name = "none"});
    CHECK(code_of(iommu_sva_bind_device(none, f.mm)) == -ENODEV);
    ProbedDevice narrow(f.desc("narrow"));
    CHECK(code_of(iommu_sva_bind_device(narrow.dev, f.mm)) == -EINVAL);
    ProbedDevice d(f.desc("d", nullptr, 8));
    SvaMm orphan{.pgd = 0x4000'0000};
    CHECK(code_of(iommu_sva_bind_device(d.dev, orphan)) == -EINVAL);
    iommu_sva_mm_release(orphan);
    CHECK(f.set->used() == 0);
  }
  SUBCASE("the driver has no SVA domains: the new PASID goes back") {
    SvaFixture f({.sva = false});
    ProbedDevice d(f.desc("d", nullptr, 8));
    CHECK(code_of(iommu_sva_bind_device(d.dev, f.mm)) == -EOPNOTSUPP);
    CHECK(f.set->used() == 0);
  }
  SUBCASE("quota") {
    SvaFixture f;
    Box<PasidSet> one = PasidSet::create(*f.space, 1).release_value();
    f.mm.pasids = f.mm2.pasids = one.get();
    ProbedDevice d(f.desc("d", nullptr, 8));
    auto h = iommu_sva_bind_device(d.dev, f.mm);
    REQUIRE(h.ok());
    CHECK(code_of(iommu_sva_bind_device(d.dev, f.mm2)) == -ENOSPC);
    iommu_sva_unbind_device(h.value());
    iommu_sva_mm_release(f.mm);
  }
  SUBCASE("an address space whose PASID a device cannot carry") {
    SvaFixture f;
    Box<PasidSpace> high = PasidSpace::create(300, kPasidMax).release_value();
    Box<PasidSet> hs = PasidSet::create(*high, 4).release_value();
    f.mm.pasids = hs.get();
    ProbedDevice wide(f.desc("wide", nullptr, 16)), narrow(f.desc("narrow", nullptr, 8));
    auto h = iommu_sva_bind_device(wide.dev, f.mm);
    REQUIRE(h.ok());
    CHECK(iommu_sva_get_pasid(h.value()) == 300);
    CHECK(code_of(iommu_sva_bind_device(narrow.dev, f.mm)) == -EINVAL);
    iommu_sva_unbind_device(h.value());
    iommu_sva_mm_release(f.mm);
    CHECK(hs->used() == 0);
  }
}

TEST_CASE("SVA bind with failure injected at every point") {
  for (int source = 0; source < 2; source++) {
    CAPTURE(source);
    SvaFixture f;
    ProbedDevice d(f.desc("d", nullptr, 8));
    const long km0 = hosted::kmalloc_live();
    int n = 0;
    for (;; n++) {
      if (source == 0)
        hosted::fail_kmalloc_nth(n);
      else
        f.fake.fail_nth_op(n, -EIO);
      auto h = iommu_sva_bind_device(d.dev, f.mm);
      hosted::fail_kmalloc_nth(-1);
      f.fake.fail_nth_op(-1, 0);
      if (h.ok()) {
        iommu_sva_unbind_device(h.value());
        break;
      }
      CHECK(code_of(h) == (source == 0 ? -ENOMEM : -EIO));
      CHECK(f.fake.installed_pasids(d.dev) == 0);
      CHECK(f.set->used() == 0);
    }
    CHECK(n > 0);
    iommu_sva_mm_release(f.mm);
    CHECK(hosted::kmalloc_live() == km0);
  }
}

}  // namespace
}  // namespace strata
