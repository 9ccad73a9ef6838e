// SPDX-License-Identifier: MIT
// The IOPF queue (core/iopf.h) against the fake driver: page request groups from report to
// the driver's page_response, seen from outside only (the fake's recorded responses, the
// requests each domain's handler was given, error codes, the queue's counters, and
// kmalloc_live() back where it started).
#include "core/iopf.h"

#include <string.h>

#include <vector>

#include <doctest/doctest.h>

#include "core/core_test_support.h"
#include "core/iommu.h"
#include "testing/fake-iommu/fake_iommu.h"
#include "testing/hosted/hosted.h"

namespace strata {

// A response the fake recorded.
struct Resp {
  const Device* dev;
  uint32_t grpid, pasid, code;
  bool operator==(const Resp&) const = default;
};

namespace {

using fake::FakeIommu;
using test::code_of;
using test::LeakCheck;

using test::kLast;
using test::kNeedsPasid;
using test::kPasid;
using test::report;

IommuFaultPageRequest prq(uint32_t grpid, uint64_t addr, uint32_t flags = 0, uint32_t pasid = 0) {
  IommuFaultPageRequest r{};
  r.flags = flags;
  r.pasid = pasid;
  r.grpid = grpid;
  r.perm = IOMMU_FAULT_PERM_READ | (addr & 0x1000 ? IOMMU_FAULT_PERM_WRITE : 0);
  r.addr = addr;
  r.private_data[0] = addr ^ 0xfeed;
  r.private_data[1] = grpid;
  return r;
}

bool same(const IommuFaultPageRequest& a, const IommuFaultPageRequest& b) {
  return memcmp(&a, &b, sizeof(a)) == 0;
}
bool same(const std::vector<IommuFaultPageRequest>& a,
          const std::vector<IommuFaultPageRequest>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++)
    if (!same(a[i], b[i])) return false;
  return true;
}

// An IopfHandler that records each group it is given and answers `code`.
struct Recorder final : IopfHandler {
  struct Call {
    const Device* dev;
    const Domain* domain;
    std::vector<IommuFaultPageRequest> reqs;
  };
  std::vector<Call> calls;
  IommuPageResponseCode code = IOMMU_PAGE_RESP_SUCCESS;

  IommuPageResponseCode handle_iopf(Device& dev, const IopfGroup& group) override {
    Call c{&dev, &group.domain(), {}};
    for (const IopfFault& f : group.faults()) c.reqs.push_back(f.prm);
    CHECK(group.size() == c.reqs.size());
    CHECK(same(group.last(), c.reqs.back()));
    CHECK(&group.dev() == &dev);
    calls.push_back(std::move(c));
    return code;
  }
};

// The shared fixture, with the responses the fake recorded (from the `from`th on) as Resps.
struct Env : test::IopfEnv {
  using IopfEnv::IopfEnv;
  std::vector<Resp> responses(size_t from = 0) const {
    std::vector<Resp> out;
    auto all = fake.responses();
    for (size_t i = from; i < all.size(); i++)
      out.push_back(
          {all[i].dev, all[i].response.grpid, all[i].response.pasid, all[i].response.code});
    return out;
  }
};

TEST_CASE("create and add_device refuse what they must") {
  LeakCheck leaks;
  CHECK(IopfQueue::create("q", 0).error().code() == -EINVAL);
  CHECK(IopfQueue::create("q", 4, 0).error().code() == -EINVAL);
  hosted::fail_kmalloc_nth(0);
  CHECK(IopfQueue::create("q", 4).error().code() == -ENOMEM);
  hosted::fail_kmalloc_nth(1);
  CHECK(IopfQueue::create("q", 4).error().code() == -ENOMEM);
  hosted::fail_kmalloc_nth(-1);

  Env env;
  Device& dev = env.probe("dev0", /*add=*/false);
  Device unprobed(DeviceDesc{.name = "stray", .fwspec = {.iommu = &env.fake}});
  CHECK(code_of(env.queue->add_device(unprobed)) == -ENODEV);
  hosted::fail_kmalloc_nth(0);
  CHECK(code_of(env.queue->add_device(dev)) == -ENOMEM);
  hosted::fail_kmalloc_nth(-1);
  REQUIRE(env.queue->add_device(dev).ok());
  CHECK(code_of(env.queue->add_device(dev)) == -EBUSY);
  Box<IopfQueue> other = IopfQueue::create("iopf1", 2).release_value();
  CHECK(code_of(other->add_device(dev)) == -EBUSY);
  CHECK(code_of(other->flush_dev(dev)) == -ENODEV);
  CHECK(env.queue->stats().devices == 1);
  CHECK(other->stats().devices == 0);
}

TEST_CASE("a group of one request goes to the device's domain and is answered once") {
  Env env;
  Device& dev = env.probe("dev0");
  Recorder h;
  Domain& d = env.user_domain(dev, &h);

  const IommuFaultPageRequest r = prq(5, 0x1000'0000, kLast);
  // A lone last request needs no allocation: it lives in the group's slot.
  const long allocs = hosted::kmalloc_count();
  REQUIRE(report(dev, r).ok());
  CHECK(hosted::kmalloc_count() == allocs);
  CHECK(env.kicks == 1);
  CHECK(env.queue->stats().queued == 1);
  CHECK(h.calls.empty());  // nothing runs until the OS's worker calls process()
  CHECK(env.responses().empty());

  CHECK(env.queue->process() == 1);
  REQUIRE(h.calls.size() == 1);
  CHECK(h.calls[0].dev == &dev);
  CHECK(h.calls[0].domain == &d);
  CHECK(same(h.calls[0].reqs, {r}));
  CHECK(env.responses() == std::vector<Resp>{{&dev, 5, 0, IOMMU_PAGE_RESP_SUCCESS}});
  CHECK(same(env.fake.responses()[0].last, r));
  CHECK(env.queue->process() == 0);

  h.code = IOMMU_PAGE_RESP_INVALID;
  REQUIRE(report(dev, prq(6, 0x2000, kLast)).ok());
  CHECK(env.queue->process() == 1);
  CHECK(env.responses(1) == std::vector<Resp>{{&dev, 6, 0, IOMMU_PAGE_RESP_INVALID}});
  const IopfQueue::Stats s = env.queue->stats();
  CHECK(s.handled == 2);
  CHECK(s.queued == 0);
  CHECK(s.in_use == 0);
}

TEST_CASE("requests are collected until LAST_PAGE and handed over in order") {
  Env env;
  Device& dev = env.probe("dev0");
  Recorder h;
  env.user_domain(dev, &h);

  const std::vector<IommuFaultPageRequest> group = {prq(9, 0x1000), prq(9, 0x5000), prq(9, 0x3000),
                                                    prq(9, 0x4000, kLast)};
  for (size_t i = 0; i + 1 < group.size(); i++) {
    REQUIRE(report(dev, group[i]).ok());
    CHECK(env.queue->stats().queued == 0);
  }
  CHECK(env.kicks == 0);
  CHECK(env.queue->process() == 0);
  REQUIRE(report(dev, group.back()).ok());
  CHECK(env.kicks == 1);
  CHECK(env.queue->process() == 1);
  REQUIRE(h.calls.size() == 1);
  CHECK(same(h.calls[0].reqs, group));
  CHECK(env.responses() == std::vector<Resp>{{&dev, 9, 0, IOMMU_PAGE_RESP_SUCCESS}});
}

TEST_CASE("interleaved groups of two PASIDs go to the domains attached to those PASIDs") {
  Env env;
  Device& dev = env.probe("dev0");
  Recorder h1, h2, hrid;
  env.user_domain(dev, &hrid);  // claimed before PASIDs are attached, as VFIO does
  Domain& d1 = env.pasid_domain(dev, 1, &h1);
  Domain& d2 = env.pasid_domain(dev, 2, &h2);

  // The same grpid on both PASIDs: two groups. PASID 1 asks for the PASID in its response.
  const auto a1 = prq(3, 0xa000, kPasid | kNeedsPasid, 1);
  const auto b1 = prq(3, 0xb000, kPasid, 2);
  const auto a2 = prq(3, 0xa100, kPasid | kNeedsPasid, 1);
  const auto b2 = prq(3, 0xb100, kPasid | kLast, 2);
  const auto a3 = prq(3, 0xa200, kPasid | kNeedsPasid | kLast, 1);
  for (const auto& r : {a1, b1, a2, b2, a3}) REQUIRE(report(dev, r).ok());

  CHECK(env.queue->process() == 2);
  REQUIRE(h1.calls.size() == 1);
  REQUIRE(h2.calls.size() == 1);
  CHECK(hrid.calls.empty());
  CHECK(h1.calls[0].domain == &d1);
  CHECK(h2.calls[0].domain == &d2);
  CHECK(same(h1.calls[0].reqs, {a1, a2, a3}));
  CHECK(same(h2.calls[0].reqs, {b1, b2}));
  // In completion order; the PASID only where NEEDS_PASID asked for it.
  CHECK(env.responses() == std::vector<Resp>{{&dev, 3, 0, IOMMU_PAGE_RESP_SUCCESS},
                                             {&dev, 3, 1, IOMMU_PAGE_RESP_SUCCESS}});

  // A request without PASID goes to the device's domain.
  const auto r = prq(4, 0xc000, kLast);
  REQUIRE(report(dev, r).ok());
  CHECK(env.queue->process() == 1);
  REQUIRE(hrid.calls.size() == 1);
  CHECK(same(hrid.calls[0].reqs, {r}));
}

TEST_CASE("an SVA domain on a PASID resolves that PASID's page requests") {
  Env env;
  Device& dev = env.probe("dev0");
  Recorder mm_handler;
  SvaMm mm{.pgd = 0x4010'0000, .asid = 7, .fault_handler = &mm_handler};
  Domain& sva = env.keep(env.fake.domain_alloc_sva(dev, mm).release_value());
  REQUIRE(sva.type() == DomainType::sva);
  sva.set_iopf_handler(mm.fault_handler);
  REQUIRE(iommu_attach_device_pasid(sva, dev, 42).ok());

  const auto r1 = prq(1, 0x7fff'0000, kPasid, 42);
  const auto r2 = prq(1, 0x7fff'1000, kPasid | kLast | kNeedsPasid, 42);
  REQUIRE(report(dev, r1).ok());
  REQUIRE(report(dev, r2).ok());
  CHECK(env.queue->process() == 1);
  REQUIRE(mm_handler.calls.size() == 1);
  CHECK(mm_handler.calls[0].domain == &sva);
  CHECK(same(mm_handler.calls[0].reqs, {r1, r2}));
  CHECK(env.responses() == std::vector<Resp>{{&dev, 1, 42, IOMMU_PAGE_RESP_SUCCESS}});
  // Unbinding: detach, flush (nothing of the old domain runs after this), then free.
  REQUIRE(report(dev, prq(2, 0x7fff'2000, kPasid | kLast, 42)).ok());
  iommu_detach_device_pasid(sva, dev, 42);
  REQUIRE(iopf_queue_flush_dev(dev).ok());
  CHECK(mm_handler.calls.size() == 1);  // the queued group found no domain any more
  CHECK(env.responses(1) == std::vector<Resp>{{&dev, 2, 0, IOMMU_PAGE_RESP_INVALID}});
  CHECK(env.queue->stats().queued == 0);
}

TEST_CASE("no domain or no handler: INVALID, and no handler runs") {
  Env env;
  Device& dev = env.probe("dev0");
  Recorder h;
  Domain& d = env.pasid_domain(dev, 1, nullptr);  // a PASID domain without a handler
  (void)d;

  // PASID 1: domain, no handler. PASID 2: nothing attached (the device's DMA domain is not
  // nested, so it does not take it). No PASID: the default DMA domain has no handler.
  REQUIRE(report(dev, prq(1, 0x1000, kPasid | kLast | kNeedsPasid, 1)).ok());
  REQUIRE(report(dev, prq(2, 0x1000, kPasid | kLast | kNeedsPasid, 2)).ok());
  REQUIRE(report(dev, prq(3, 0x1000, kLast)).ok());
  CHECK(env.queue->process() == 3);
  CHECK(env.responses() == std::vector<Resp>{{&dev, 1, 1, IOMMU_PAGE_RESP_INVALID},
                                             {&dev, 2, 2, IOMMU_PAGE_RESP_INVALID},
                                             {&dev, 3, 0, IOMMU_PAGE_RESP_INVALID}});
  CHECK(env.queue->stats().in_use == 0);
  CHECK(h.calls.empty());
}

TEST_CASE("a nested domain on the device takes the PASIDs that have no domain of their own") {
  Env env;
  Device& dev = env.probe("dev0");
  Recorder hn, hp;
  Domain& parent =
      env.keep(iommu_paging_domain_alloc(dev, IOMMU_DOMAIN_ALLOC_NEST_PARENT).release_value());
  const uint8_t cfg[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  Domain& nested =
      env.keep(iommu_domain_alloc_nested(dev, parent, cfg, sizeof(cfg)).release_value());
  nested.set_iopf_handler(&hn);
  REQUIRE(iommu_device_claim_dma_owner(dev, &env).ok());
  REQUIRE(iommu_attach_device(nested, dev).ok());
  env.pasid_domain(dev, 5, &hp);

  const auto guest = prq(1, 0x1000, kPasid | kLast, 9);  // the guest's PASID 9
  const auto own = prq(2, 0x2000, kPasid | kLast, 5);
  const auto rid = prq(3, 0x3000, kLast);
  for (const auto& r : {guest, own, rid}) REQUIRE(report(dev, r).ok());
  CHECK(env.queue->process() == 3);
  REQUIRE(hn.calls.size() == 2);
  CHECK(same(hn.calls[0].reqs, {guest}));
  CHECK(hn.calls[0].domain == &nested);
  CHECK(same(hn.calls[1].reqs, {rid}));
  REQUIRE(hp.calls.size() == 1);
  CHECK(same(hp.calls[0].reqs, {own}));
  iommu_detach_device(nested, dev);
  iommu_device_release_dma_owner(dev);
}

TEST_CASE("a full queue answers the group FAILURE at once and counts it") {
  Env env({}, /*capacity=*/2);
  Device& dev = env.probe("dev0");
  Recorder h;
  env.user_domain(dev, &h);

  REQUIRE(report(dev, prq(1, 0x1000, kLast)).ok());
  REQUIRE(report(dev, prq(2, 0x2000, kLast)).ok());
  const auto p = prq(3, 0x3000, kPasid | kNeedsPasid, 4);
  REQUIRE(report(dev, p).ok());  // partial: stored
  CHECK(code_of(report(dev, prq(3, 0x4000, kPasid | kNeedsPasid | kLast, 4))) == -ENOSPC);
  CHECK(env.kicks == 2);
  CHECK(env.responses() == std::vector<Resp>{{&dev, 3, 4, IOMMU_PAGE_RESP_FAILURE}});
  IopfQueue::Stats s = env.queue->stats();
  CHECK(s.overflows == 1);
  CHECK(s.in_use == 2);

  CHECK(env.queue->process() == 2);
  CHECK(h.calls.size() == 2);
  CHECK(env.responses(1) == std::vector<Resp>{{&dev, 1, 0, IOMMU_PAGE_RESP_SUCCESS},
                                              {&dev, 2, 0, IOMMU_PAGE_RESP_SUCCESS}});
  // Room again; the overflowed group's partial request went with it.
  const auto q = prq(3, 0x5000, kLast);
  REQUIRE(report(dev, q).ok());
  CHECK(env.queue->process() == 1);
  CHECK(same(h.calls.back().reqs, {q}));
  CHECK(env.queue->stats().overflows == 1);
}

TEST_CASE("the per-device partial bound drops the oldest request") {
  Env env({}, 8, /*max_partial=*/2);
  Device& dev = env.probe("dev0");
  Device& other = env.probe("dev1");
  Recorder h, ho;
  env.user_domain(dev, &h);
  env.user_domain(other, &ho);

  const auto a1 = prq(1, 0x1000), a2 = prq(1, 0x2000), b1 = prq(2, 0x3000);
  const auto o1 = prq(1, 0x9000), o2 = prq(1, 0xa000);  // the bound is per device
  for (const auto& r : {a1, a2, o1, o2, b1})
    REQUIRE(report(*(r.addr >= 0x9000 ? &other : &dev), r).ok());
  CHECK(env.queue->stats().partial_dropped == 1);
  const auto alast = prq(1, 0x4000, kLast), blast = prq(2, 0x5000, kLast);
  const auto olast = prq(1, 0xb000, kLast);
  REQUIRE(report(dev, alast).ok());
  REQUIRE(report(dev, blast).ok());
  REQUIRE(report(other, olast).ok());
  CHECK(env.queue->process() == 3);
  REQUIRE(h.calls.size() == 2);
  CHECK(same(h.calls[0].reqs, {a2, alast}));  // a1 was the oldest
  CHECK(same(h.calls[1].reqs, {b1, blast}));
  REQUIRE(ho.calls.size() == 1);
  CHECK(same(ho.calls[0].reqs, {o1, o2, olast}));
  CHECK(env.responses().size() == 3);
}

// Three groups whose partial requests are the report path's only allocations (a lone last
// request has none): each run fails one of them, until a run in which none failed.
TEST_CASE("kmalloc failure at every allocation of the report path") {
  Env env;
  Device& dev = env.probe("dev0");
  Recorder h1, hrid;
  env.user_domain(dev, &hrid);
  env.pasid_domain(dev, 1, &h1);

  struct Group {
    std::vector<IommuFaultPageRequest> reqs;
    Recorder* handler;
    uint32_t pasid;  // in the response
  };
  const std::vector<Group> groups = {
      {{prq(1, 0x1000, kPasid | kNeedsPasid, 1), prq(1, 0x2000, kPasid | kNeedsPasid, 1),
        prq(1, 0x3000, kPasid | kNeedsPasid | kLast, 1)},
       &h1,
       1},
      {{prq(2, 0x4000, kLast)}, &hrid, 0},
      {{prq(3, 0x5000, kPasid, 1), prq(3, 0x6000, kPasid | kLast, 1)}, &h1, 0},
      {{prq(3, 0x7000), prq(3, 0x8000, kLast)}, &hrid, 0},
  };
  // Interleaved: every group's requests in order, groups round-robin.
  std::vector<std::pair<size_t, size_t>> order;
  for (size_t i = 0; i < 3; i++)
    for (size_t g = 0; g < groups.size(); g++)
      if (i < groups[g].reqs.size()) order.push_back({g, i});

  int failing_runs = 0;
  for (long n = 0;; n++) {
    const size_t resp0 = env.fake.responses().size();
    h1.calls.clear();
    hrid.calls.clear();
    std::vector<bool> failed(groups.size(), false);
    bool any = false;
    hosted::fail_kmalloc_nth(n);
    for (auto [g, i] : order) {
      Result<void> r = report(dev, groups[g].reqs[i]);
      if (r.ok()) continue;
      CHECK(r.error().code() == -ENOMEM);
      // The failing request, and later the group's last one, report it.
      if (!failed[g]) CHECK(i + 1 < groups[g].reqs.size());
      failed[g] = true;
      any = true;
    }
    hosted::fail_kmalloc_nth(-1);
    CHECK(env.queue->process() == groups.size() - (any ? 1 : 0));

    // Every group answered exactly once: FAILURE at its last request if one of its requests
    // was lost, else by its handler with every request.
    // FAILUREs at the last request's report, the others by process() in the order their
    // last requests came.
    std::vector<Resp> expect_now, expect_later;
    for (auto [g, i] : order) {
      if (i + 1 != groups[g].reqs.size()) continue;
      const uint32_t grpid = groups[g].reqs[0].grpid;
      if (failed[g])
        expect_now.push_back({&dev, grpid, groups[g].pasid, IOMMU_PAGE_RESP_FAILURE});
      else
        expect_later.push_back({&dev, grpid, groups[g].pasid, IOMMU_PAGE_RESP_SUCCESS});
    }
    std::vector<Resp> expect = expect_now;
    expect.insert(expect.end(), expect_later.begin(), expect_later.end());
    CHECK(env.responses(resp0) == expect);
    size_t calls = 0;
    for (size_t g = 0; g < groups.size(); g++) {
      if (failed[g]) continue;
      const auto& calls_of = groups[g].handler->calls;
      bool found = false;
      for (const auto& c : calls_of) found |= same(c.reqs, groups[g].reqs);
      CHECK(found);
      calls++;
    }
    CHECK(h1.calls.size() + hrid.calls.size() == calls);
    CHECK(env.queue->stats().in_use == 0);
    if (!any) break;
    failing_runs++;
    REQUIRE(n < 20);
  }
  CHECK(failing_runs == 4);  // the partial requests: two of group 0, one each of 2 and 3
  CHECK(env.queue->stats().nomem == 4);
}

TEST_CASE("a released device leaves nothing behind and gets no answer afterwards") {
  Env env;
  Device& dev = env.probe("dev0");
  Device& bystander = env.probe("dev1");
  Recorder async, sync, hb;
  async.code = IOMMU_PAGE_RESP_ASYNC;
  env.pasid_domain(dev, 1, &async);
  env.pasid_domain(dev, 2, &sync);
  env.user_domain(bystander, &hb);

  // Group 1 handed on (waits for iommu_page_response); group 2 queued; group 3 partial.
  REQUIRE(report(dev, prq(1, 0x1000, kPasid | kNeedsPasid | kLast, 1)).ok());
  CHECK(env.queue->process() == 1);
  CHECK(async.calls.size() == 1);
  REQUIRE(report(dev, prq(2, 0x2000, kPasid | kNeedsPasid, 2)).ok());
  REQUIRE(report(dev, prq(2, 0x3000, kPasid | kNeedsPasid | kLast, 2)).ok());
  REQUIRE(report(dev, prq(3, 0x4000, kPasid, 2)).ok());
  REQUIRE(report(bystander, prq(7, 0x5000, kLast)).ok());
  CHECK(env.responses().empty());
  CHECK(env.queue->stats().in_use == 3);

  iommu_release_device(dev);
  // Answered INVALID during the release, while the driver still knew the device.
  CHECK(env.responses() == std::vector<Resp>{{&dev, 1, 1, IOMMU_PAGE_RESP_INVALID},
                                             {&dev, 2, 2, IOMMU_PAGE_RESP_INVALID}});
  CHECK(sync.calls.empty());
  IopfQueue::Stats s = env.queue->stats();
  CHECK(s.devices == 1);
  CHECK(s.in_use == 1);
  CHECK(s.queued == 1);

  // Nothing reaches the released device any more.
  CHECK(code_of(iommu_page_response(dev, {.pasid = 1, .grpid = 1, .code = 0})) == -ENODEV);
  CHECK(code_of(env.queue->flush_dev(dev)) == -ENODEV);
  CHECK(code_of(report(dev, prq(4, 0x6000, kLast))) == -ENODEV);
  CHECK(env.queue->process() == 1);  // the bystander's
  CHECK(hb.calls.size() == 1);
  CHECK(env.responses(2) == std::vector<Resp>{{&bystander, 7, 0, IOMMU_PAGE_RESP_SUCCESS}});
  CHECK(env.queue->stats().in_use == 0);
}

TEST_CASE("remove_device before release answers the pending groups; later requests too") {
  Env env;
  Device& dev = env.probe("dev0");
  Recorder h;
  env.user_domain(dev, &h);

  REQUIRE(report(dev, prq(1, 0x1000, kLast)).ok());
  REQUIRE(report(dev, prq(2, 0x2000)).ok());
  env.queue->remove_device(dev);
  CHECK(env.responses() == std::vector<Resp>{{&dev, 1, 0, IOMMU_PAGE_RESP_INVALID}});
  CHECK(env.queue->stats().devices == 0);
  CHECK(env.queue->process() == 0);
  CHECK(h.calls.empty());

  // On no queue: a last request is answered INVALID at once, a partial one dropped.
  CHECK(code_of(report(dev, prq(2, 0x3000))) == -ENODEV);
  CHECK(code_of(report(dev, prq(2, 0x4000, kLast))) == -ENODEV);
  CHECK(env.responses(1) == std::vector<Resp>{{&dev, 2, 0, IOMMU_PAGE_RESP_INVALID}});

  // Back on the queue; the old partial request is long gone.
  REQUIRE(env.queue->add_device(dev).ok());
  const auto r = prq(2, 0x5000, kLast);
  REQUIRE(report(dev, r).ok());
  CHECK(env.queue->process() == 1);
  REQUIRE(h.calls.size() == 1);
  CHECK(same(h.calls[0].reqs, {r}));
  // And release takes it off again (Env's destructor checks the queue is empty).
}

TEST_CASE("groups handed on are answered through iommu_page_response") {
  Env env;
  Device& dev = env.probe("dev0");
  Recorder vmm;
  vmm.code = IOMMU_PAGE_RESP_ASYNC;
  env.user_domain(dev, &vmm);
  env.pasid_domain(dev, 3, &vmm);

  REQUIRE(report(dev, prq(8, 0x1000, kPasid | kNeedsPasid | kLast, 3)).ok());
  REQUIRE(report(dev, prq(10, 0x2000, kLast)).ok());
  CHECK(env.queue->process() == 2);
  CHECK(vmm.calls.size() == 2);
  CHECK(env.responses().empty());
  CHECK(env.queue->stats().in_use == 2);

  CHECK(code_of(iommu_page_response(dev, {.pasid = 3, .grpid = 9, .code = 0})) == -EINVAL);
  CHECK(code_of(iommu_page_response(dev, {.pasid = 4, .grpid = 8, .code = 0})) == -EINVAL);
  CHECK(code_of(iommu_page_response(dev, {.pasid = 3, .grpid = 8, .code = 3})) == -EINVAL);
  CHECK(code_of(iommu_page_response(dev, {.pasid = 3, .grpid = 8, .code = 7})) == -EINVAL);
  CHECK(env.responses().empty());

  REQUIRE(iommu_page_response(dev, {.pasid = 3, .grpid = 8, .code = 0}).ok());
  // Without PASID_VALID the group matches on grpid alone.
  REQUIRE(iommu_page_response(dev, {.pasid = 77, .grpid = 10, .code = 1}).ok());
  CHECK(env.responses() == std::vector<Resp>{{&dev, 8, 3, IOMMU_PAGE_RESP_SUCCESS},
                                             {&dev, 10, 0, IOMMU_PAGE_RESP_INVALID}});
  CHECK(code_of(iommu_page_response(dev, {.pasid = 3, .grpid = 8, .code = 0})) == -EINVAL);
  CHECK(env.queue->stats().in_use == 0);

  // A group still queued cannot be answered from outside: only its handler's answer counts.
  REQUIRE(report(dev, prq(9, 0x3000, kLast)).ok());
  CHECK(code_of(iommu_page_response(dev, {.pasid = 0, .grpid = 9, .code = 0})) == -EINVAL);
  CHECK(env.queue->process() == 1);
  REQUIRE(iommu_page_response(dev, {.pasid = 0, .grpid = 9, .code = 2}).ok());
  CHECK(env.responses(2) == std::vector<Resp>{{&dev, 9, 0, IOMMU_PAGE_RESP_FAILURE}});
}

TEST_CASE("flush_dev runs the device's queued groups only") {
  Env env;
  Device& a = env.probe("dev0");
  Device& b = env.probe("dev1");
  Recorder ha, hb;
  env.user_domain(a, &ha);
  env.user_domain(b, &hb);

  REQUIRE(report(b, prq(1, 0x1000, kLast)).ok());
  REQUIRE(report(a, prq(2, 0x2000, kLast)).ok());
  REQUIRE(report(a, prq(3, 0x3000)).ok());  // partial: stays
  REQUIRE(report(a, prq(4, 0x4000, kLast)).ok());
  REQUIRE(env.queue->flush_dev(a).ok());
  CHECK(ha.calls.size() == 2);
  CHECK(hb.calls.empty());
  CHECK(env.responses() == std::vector<Resp>{{&a, 2, 0, IOMMU_PAGE_RESP_SUCCESS},
                                             {&a, 4, 0, IOMMU_PAGE_RESP_SUCCESS}});
  CHECK(env.queue->stats().queued == 1);
  CHECK(env.queue->process(0) == 0);  // a budget of none runs none
  CHECK(env.queue->process() == 1);
  CHECK(hb.calls.size() == 1);
}

TEST_CASE("process() honours its budget, oldest first") {
  Env env;
  Device& dev = env.probe("dev0");
  Recorder h;
  env.user_domain(dev, &h);
  for (uint32_t g = 0; g < 5; g++) REQUIRE(report(dev, prq(g, g * 0x1000, kLast)).ok());
  CHECK(env.queue->process(2) == 2);
  CHECK(env.queue->stats().queued == 3);
  CHECK(env.queue->process(2) == 2);
  CHECK(env.queue->process(2) == 1);
  REQUIRE(h.calls.size() == 5);
  for (uint32_t g = 0; g < 5; g++) CHECK(h.calls[g].reqs[0].grpid == g);
}

TEST_CASE("a failing page_response op: counted, the group still goes") {
  Env env;
  Device& dev = env.probe("dev0");
  Recorder h;
  env.user_domain(dev, &h);
  hosted::LogCapture log;

  env.fake.fail(FakeIommu::Op::page_response, &dev, -EIO, 2);
  REQUIRE(report(dev, prq(1, 0x1000, kLast)).ok());
  REQUIRE(report(dev, prq(2, 0x2000, kLast)).ok());
  REQUIRE(report(dev, prq(3, 0x3000, kLast)).ok());
  CHECK(env.queue->process() == 3);
  CHECK(h.calls.size() == 3);
  CHECK(env.responses() == std::vector<Resp>{{&dev, 3, 0, IOMMU_PAGE_RESP_SUCCESS}});
  IopfQueue::Stats s = env.queue->stats();
  CHECK(s.response_errors == 2);
  CHECK(s.in_use == 0);
  CHECK(log.contains("page response failed"));

  // iommu_page_response passes the driver's error on; the group is gone anyway.
  h.code = IOMMU_PAGE_RESP_ASYNC;
  REQUIRE(report(dev, prq(4, 0x4000, kLast)).ok());
  CHECK(env.queue->process() == 1);
  env.fake.fail(FakeIommu::Op::page_response, &dev, -EIO, 1);
  CHECK(code_of(iommu_page_response(dev, {.pasid = 0, .grpid = 4, .code = 0})) == -EIO);
  CHECK(code_of(iommu_page_response(dev, {.pasid = 0, .grpid = 4, .code = 0})) == -EINVAL);
  CHECK(env.queue->stats().in_use == 0);
  CHECK(env.queue->stats().response_errors == 3);
}

TEST_CASE("a driver without page_response: groups are handled and dropped cleanly") {
  FakeIommu::Options opts;
  opts.page_response = false;
  Env env(opts, 2);
  Device& dev = env.probe("dev0");
  Recorder h;
  env.user_domain(dev, &h);

  for (uint32_t g = 0; g < 6; g++) {
    REQUIRE(report(dev, prq(g, 0x1000)).ok());
    REQUIRE(report(dev, prq(g, 0x2000, kLast)).ok());
    CHECK(env.queue->process() == 1);
  }
  CHECK(h.calls.size() == 6);
  CHECK(env.responses().empty());
  IopfQueue::Stats s = env.queue->stats();
  CHECK(s.response_errors == 6);
  CHECK(s.in_use == 0);
  // Overflow and release still go through the op, and still fail cleanly.
  REQUIRE(report(dev, prq(10, 0x1000, kLast)).ok());
  REQUIRE(report(dev, prq(11, 0x1000, kLast)).ok());
  CHECK(code_of(report(dev, prq(12, 0x1000, kLast))) == -ENOSPC);
  iommu_release_device(dev);
  CHECK(env.queue->stats().in_use == 0);
  CHECK(env.queue->stats().response_errors == 9);
}

TEST_CASE("a handler returning a code that is not one is answered INVALID") {
  Env env;
  Device& dev = env.probe("dev0");
  Recorder h;
  h.code = static_cast<IommuPageResponseCode>(17);
  env.user_domain(dev, &h);
  hosted::LogCapture log;
  REQUIRE(report(dev, prq(1, 0x1000, kLast)).ok());
  CHECK(env.queue->process() == 1);
  CHECK(env.responses() == std::vector<Resp>{{&dev, 1, 0, IOMMU_PAGE_RESP_INVALID}});
}

}  // namespace
}  // namespace strata

namespace doctest {
template <>
struct StringMaker<std::vector<strata::Resp>> {
  static String convert(const std::vector<strata::Resp>& v) {
    std::string s = "{";
    for (const auto& r : v)
      s += " (" + std::string(r.dev ? r.dev->name() : "?") + " grpid " + std::to_string(r.grpid) +
           " pasid " + std::to_string(r.pasid) + " code " + std::to_string(r.code) + ")";
    return (s + " }").c_str();
  }
};
}  // namespace doctest
