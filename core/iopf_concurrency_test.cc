// SPDX-License-Identifier: MIT
// The IOPF queue under concurrency (iopf.h: reports from the drivers' threads while the OS's
// workers process, flush, answer handed-on groups and take devices off the queue). The check
// throughout is the rule of fault.h: every group whose last request was reported is answered
// exactly once, never after its device was released, and every handler sees each group's
// requests exactly as reported.
// Run under ThreadSanitizer: bazel test --config=tsan //core:iopf_concurrency_test
#include <string.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

#include <doctest/doctest.h>

#include "core/core_test_support.h"
#include "core/iommu.h"
#include "core/iopf.h"

namespace strata {
namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr uint32_t kGroups = 1500;
#else
constexpr uint32_t kGroups = 6000;
#endif

using test::kLast;
using test::kNeedsPasid;
using test::kPasid;
using test::report;

// Request `i` of group `grpid`: the address says which, so a handler can check its group.
IommuFaultPageRequest prq(uint32_t grpid, uint32_t i, uint32_t flags, uint32_t pasid) {
  IommuFaultPageRequest r{};
  r.flags = flags;
  r.pasid = pasid;
  r.grpid = grpid;
  r.perm = IOMMU_FAULT_PERM_READ;
  r.addr = (uint64_t{grpid} << 20) | (uint64_t{i} << 12);
  return r;
}

// Group `grpid` has 1 + grpid % 3 requests.
uint32_t group_size(uint32_t grpid) { return 1 + grpid % 3; }

// Checks that each group it gets is whole and in order (or, with `partial_ok`, an in-order
// tail of it: requests reported while the device was off the queue are gone), then answers
// SUCCESS, or hands the group on to `handed` for an answering thread.
struct CheckingHandler final : IopfHandler {
  explicit CheckingHandler(bool async = false, bool partial_ok = false)
      : async(async), partial_ok(partial_ok) {}
  const bool async, partial_ok;
  std::atomic<uint64_t> calls{0};
  std::atomic<int> errors{0};
  std::mutex m;
  std::vector<std::tuple<Device*, uint32_t, uint32_t>> handed;  // dev, pasid, grpid

  IommuPageResponseCode handle_iopf(Device& dev, const IopfGroup& group) override {
    calls++;
    const IommuFaultPageRequest& last = group.last();
    const uint32_t n = group_size(last.grpid);
    if (!(last.flags & kLast)) errors++;
    if (group.size() > n || (!partial_ok && group.size() != n)) errors++;
    uint32_t i = n - static_cast<uint32_t>(group.size());
    for (const IopfFault& f : group.faults()) {
      IommuFaultPageRequest want = prq(last.grpid, i++, 0, last.pasid);
      want.flags = f.prm.flags;
      if (memcmp(&want, &f.prm, sizeof(want)) != 0) errors++;
      if ((f.prm.flags & ~kLast) != (last.flags & ~kLast)) errors++;
    }
    if (!async) return IOMMU_PAGE_RESP_SUCCESS;
    std::lock_guard<std::mutex> g(m);
    handed.emplace_back(&dev, last.pasid, last.grpid);
    return IOMMU_PAGE_RESP_ASYNC;
  }
};

// The shared fixture, with room for 64 partial requests per device.
struct Env : test::IopfEnv {
  explicit Env(unsigned capacity) : IopfEnv({}, capacity, /*max_partial=*/64) {}

  // Responses per (device, PASID, grpid), and their codes.
  std::map<std::tuple<const Device*, uint32_t, uint32_t>, std::vector<uint32_t>> answers() {
    std::map<std::tuple<const Device*, uint32_t, uint32_t>, std::vector<uint32_t>> out;
    for (const auto& r : fake.responses())
      out[{r.dev, r.last.pasid, r.last.grpid}].push_back(r.response.code);
    return out;
  }
};

// One device's page requests, as its function would send them: groups in order, the PASID
// chosen by grpid. Records what each group's last report returned. Backs off for a while when
// the queue is nearly full (as a function at its outstanding-request allocation would), so
// that most groups are handled and some still overflow.
void report_groups(Device& dev, IopfQueue& queue, const std::vector<uint32_t>& pasids,
                   std::vector<int>& last_rc, std::atomic<int>& errors, bool pace = false) {
  for (uint32_t grpid = 0; grpid < kGroups; grpid++) {
    if (pace) std::this_thread::yield();
    for (int spins = 0; spins < 200 && queue.stats().in_use * 4 > queue.capacity() * 3; spins++)
      std::this_thread::yield();
    const uint32_t pasid = pasids[grpid % pasids.size()];
    const uint32_t flags = pasid ? kPasid | (grpid % 2 ? kNeedsPasid : 0) : 0;
    const uint32_t n = group_size(grpid);
    for (uint32_t i = 0; i < n; i++) {
      const bool last = i + 1 == n;
      Result<void> r = report(dev, prq(grpid, i, flags | (last ? kLast : 0), pasid));
      if (!last && !r.ok() && r.error().code() != -ENODEV) errors++;
      if (last) last_rc[grpid] = r.ok() ? 0 : r.error().code();
    }
  }
}

TEST_CASE("reporters, workers, a flusher and a VMM answering: each group answered once") {
  Env env(/*capacity=*/24);
  Device& a = env.probe("devA");
  Device& b = env.probe("devB");
  CheckingHandler rid_a, rid_b, sync_pasid, vmm(/*async=*/true);
  env.user_domain(a, &rid_a);
  env.user_domain(b, &rid_b);
  env.pasid_domain(a, 1, &vmm);         // a guest's PASID: answered by its VMM
  env.pasid_domain(b, 2, &sync_pasid);  // SVA-like: answered by the handler

  std::atomic<int> errors{0};
  std::atomic<bool> reporting{true};
  std::vector<int> rc_a(kGroups, 1), rc_b(kGroups, 1);

  std::thread reporter_a([&] { report_groups(a, *env.queue, {0, 1}, rc_a, errors); });
  std::thread reporter_b([&] { report_groups(b, *env.queue, {2, 0, 0}, rc_b, errors); });
  auto worker = [&] {
    for (;;) {
      const bool more = reporting.load();
      if (env.queue->process(8) == 0) {
        if (!more) break;
        std::this_thread::yield();
      }
    }
  };
  std::thread w1(worker), w2(worker);
  std::atomic<bool> answering{true};
  std::thread answerer([&] {
    for (;;) {
      const bool more = answering.load();
      std::vector<std::tuple<Device*, uint32_t, uint32_t>> batch;
      {
        std::lock_guard<std::mutex> g(vmm.m);
        batch.swap(vmm.handed);
      }
      for (auto [dev, pasid, grpid] : batch) {
        if (!iommu_page_response(*dev, {.pasid = pasid, .grpid = grpid, .code = 0}).ok()) errors++;
      }
      if (batch.empty()) {
        if (!more) break;
        std::this_thread::yield();
      }
    }
  });
  std::thread flusher([&] {
    while (reporting.load()) {
      if (!env.queue->flush_dev(a).ok()) errors++;
      (void)env.queue->stats();
      std::this_thread::yield();
    }
  });

  reporter_a.join();
  reporter_b.join();
  reporting = false;
  w1.join();
  w2.join();
  flusher.join();
  answering = false;
  answerer.join();
  CHECK(env.queue->process() == 0);

  CHECK(errors == 0);
  CHECK(rid_a.errors == 0);
  CHECK(rid_b.errors == 0);
  CHECK(sync_pasid.errors == 0);
  CHECK(vmm.errors == 0);
  auto answers = env.answers();
  uint64_t overflows = 0;
  for (auto [dev, pasids, rcs] : {std::tuple{&a, std::vector<uint32_t>{0, 1}, &rc_a},
                                  std::tuple{&b, std::vector<uint32_t>{2, 0, 0}, &rc_b}}) {
    for (uint32_t grpid = 0; grpid < kGroups; grpid++) {
      const uint32_t pasid = pasids[grpid % pasids.size()];
      const auto& codes = answers[{dev, pasid, grpid}];
      const int rc = (*rcs)[grpid];
      REQUIRE(codes.size() == 1);
      if (rc == -ENOSPC) {
        overflows++;
        CHECK(codes[0] == IOMMU_PAGE_RESP_FAILURE);
      } else {
        CHECK(rc == 0);
        CHECK(codes[0] == IOMMU_PAGE_RESP_SUCCESS);
      }
    }
  }
  CHECK(answers.size() == 2 * kGroups);
  const IopfQueue::Stats s = env.queue->stats();
  CHECK(s.overflows == overflows);
  CHECK(s.handled + overflows == 2 * kGroups);
  CHECK(rid_a.calls + rid_b.calls + sync_pasid.calls + vmm.calls == s.handled);
  CHECK(env.kicks.load() == s.handled);
  CHECK(s.in_use == 0);
  MESSAGE("overflows: " << overflows << " of " << 2 * kGroups);
}

TEST_CASE("a device taken off and put back on the queue while it reports") {
  Env env(/*capacity=*/64);
  Device& a = env.probe("devA");
  CheckingHandler h(/*async=*/false, /*partial_ok=*/true);
  env.user_domain(a, &h);

  std::atomic<int> errors{0};
  std::atomic<bool> reporting{true};
  std::vector<int> rc(kGroups, 1);
  std::thread reporter([&] {
    report_groups(a, *env.queue, {0}, rc, errors, /*pace=*/true);
    reporting = false;
  });
  std::thread worker([&] {
    while (reporting.load() || env.queue->stats().queued)
      if (env.queue->process(4) == 0) std::this_thread::yield();
  });
  unsigned cycles = 0;
  while (reporting.load()) {
    env.queue->remove_device(a);
    std::this_thread::yield();
    if (!env.queue->add_device(a).ok()) errors++;
    cycles++;
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  reporter.join();
  worker.join();
  CHECK(env.queue->process() == 0);

  CHECK(errors == 0);
  CHECK(h.errors == 0);
  auto answers = env.answers();
  uint64_t handled = 0, invalid = 0;
  for (uint32_t grpid = 0; grpid < kGroups; grpid++) {
    const auto& codes = answers[{&a, 0, grpid}];
    REQUIRE(codes.size() == 1);
    if (rc[grpid] == -ENOSPC) {
      CHECK(codes[0] == IOMMU_PAGE_RESP_FAILURE);
    } else if (rc[grpid] == -ENODEV || codes[0] == IOMMU_PAGE_RESP_INVALID) {
      CHECK(codes[0] == IOMMU_PAGE_RESP_INVALID);  // off the queue, or answered at removal
      invalid++;
    } else {
      CHECK(rc[grpid] == 0);
      CHECK(codes[0] == IOMMU_PAGE_RESP_SUCCESS);
      handled++;
    }
  }
  CHECK(h.calls == handled);
  CHECK(handled > 0);
  MESSAGE(cycles << " remove/add cycles; " << invalid << " groups answered INVALID");
}

// A handler that blocks until told to go on.
struct BlockingHandler final : IopfHandler {
  std::atomic<bool> entered{false};
  std::atomic<bool> go{false};
  IommuPageResponseCode handle_iopf(Device&, const IopfGroup&) override {
    entered = true;
    while (!go.load()) std::this_thread::yield();
    return IOMMU_PAGE_RESP_SUCCESS;
  }
};

TEST_CASE("release and flush_dev wait for the group being handled") {
  Env env(4);
  Device& a = env.probe("devA");
  BlockingHandler h;
  env.user_domain(a, &h);

  std::atomic<int> errors{0};
  REQUIRE(report(a, prq(1, 0, kLast, 0)).ok());
  REQUIRE(report(a, prq(2, 0, kLast, 0)).ok());  // queued behind it
  std::thread worker([&] {
    if (env.queue->process(1) != 1) errors++;
  });
  while (!h.entered.load()) std::this_thread::yield();

  std::atomic<bool> flushed{false}, released{false};
  std::thread flusher([&] {
    if (!env.queue->flush_dev(a).ok()) errors++;
    flushed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(!flushed.load());
  h.go = true;  // group 1 finishes; the flusher then runs group 2 (h no longer blocks)
  worker.join();
  flusher.join();
  CHECK(flushed.load());

  h.entered = false;
  h.go = false;
  REQUIRE(report(a, prq(3, 0, kLast, 0)).ok());
  REQUIRE(report(a, prq(4, 0, kLast, 0)).ok());
  std::thread worker2([&] {
    if (env.queue->process(1) != 1) errors++;
  });
  while (!h.entered.load()) std::this_thread::yield();
  std::thread releaser([&] {
    iommu_release_device(a);
    released = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(!released.load());
  h.go = true;
  worker2.join();
  releaser.join();
  CHECK(released.load());
  CHECK(errors == 0);

  // Group 3 answered by its handler before the release went on; group 4 INVALID by it.
  auto rs = env.fake.responses();
  REQUIRE(rs.size() == 4);
  for (uint32_t g = 1; g <= 4; g++) {
    CHECK(rs[g - 1].response.grpid == g);
    CHECK(rs[g - 1].response.code == (g == 4 ? IOMMU_PAGE_RESP_INVALID : IOMMU_PAGE_RESP_SUCCESS));
  }
  CHECK(env.queue->stats().devices == 0);
}

}  // namespace
}  // namespace strata
