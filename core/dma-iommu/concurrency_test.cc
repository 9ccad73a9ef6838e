// SPDX-License-Identifier: MIT
// The DMA API from several threads at once, strict and lazy (dma_iommu.h: map and unmap "from
// any number of threads at once, on one device or several"): two devices of one group share
// the domain; workers map buffers and scatterlists and move data through the translations
// while one thread takes the 4 GiB space to the brim with 1 GiB buffers (so allocations fail
// with -ENOMEM and, lazily, flush the queue and retry under load) and another asks for MSI
// doorbells and flushes.
//
// Every IOVA range handed out is claimed in an interval map and must not overlap one that is
// live; a lazily unmapped range must not come back before a flush_iotlb_all that was issued
// after its unmap (the fake counts them). At the end the queue is flushed, the allocator holds
// nothing but reservations, and releasing the devices returns every allocation.
// Run under ThreadSanitizer: bazel test --config=tsan //core/dma-iommu:concurrency_test
#include <stdint.h>
#include <string.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "core/dma-iommu/dma_test_support.h"

namespace strata::dmatest {
namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int kIters = 1500;
#else
constexpr int kIters = 6000;
#endif
constexpr int kWorkers = 3;
constexpr DmaDirection kBidi = DmaDirection::bidirectional;
constexpr uint64_t kMask = SZ_16K - 1;

// IOVA ranges in use, by first byte; and, for granules given back lazily, the fake's
// flush_alls count read before their unmap.
class Ledger {
 public:
  explicit Ledger(fake::FakeIommu& fake, bool lazy) : fake_(fake), lazy_(lazy) {}

  void claim(uint64_t lo, uint64_t hi, int who) {
    const uint64_t now = fake_.flush_alls.load();
    std::lock_guard<std::mutex> g(lock_);
    auto next = live_.upper_bound(lo);
    if (next != live_.end() && next->first <= hi)
      fail("overlaps a live range", lo, hi, next->first, next->second.hi);
    if (next != live_.begin()) {
      auto prev = std::prev(next);
      if (prev->second.hi >= lo)
        fail("overlaps a live range", lo, hi, prev->first, prev->second.hi);
    }
    live_[lo] = {hi, who};
    if (!lazy_) return;
    // Every granule unmapped before must have seen a flush issued after its unmap.
    for (auto it = unmapped_.lower_bound(lo); it != unmapped_.end() && it->first <= hi;) {
      if (now <= it->second) fail("reused before its invalidation", lo, hi, it->first, it->second);
      it = unmapped_.erase(it);
    }
  }
  // Before the unmap: after it, the range may be handed out at once.
  void release(uint64_t lo, uint64_t hi) {
    const uint64_t before = fake_.flush_alls.load();
    std::lock_guard<std::mutex> g(lock_);
    auto it = live_.find(lo);
    if (it == live_.end() || it->second.hi != hi) fail("release of an unknown range", lo, hi, 0, 0);
    live_.erase(it);
    if (lazy_)
      for (uint64_t p = lo; p <= hi; p += SZ_16K) unmapped_[p] = before;
  }
  size_t live() {
    std::lock_guard<std::mutex> g(lock_);
    return live_.size();
  }
  int errors() const { return errors_.load(); }

 private:
  struct Owned {
    uint64_t hi;
    int who;
  };
  void fail(const char* what, uint64_t lo, uint64_t hi, uint64_t a, uint64_t b) {
    errors_++;
    char buf[200];
    snprintf(buf, sizeof(buf), "%s: [%#llx, %#llx] vs %#llx %#llx", what,
             static_cast<unsigned long long>(lo), static_cast<unsigned long long>(hi),
             static_cast<unsigned long long>(a), static_cast<unsigned long long>(b));
    std::lock_guard<std::mutex> g(msg_lock_);
    if (messages_.size() < 10) messages_.push_back(buf);
  }

  fake::FakeIommu& fake_;
  const bool lazy_;
  std::mutex lock_;
  std::map<uint64_t, Owned> live_;
  std::map<uint64_t, uint64_t> unmapped_;
  std::atomic<int> errors_{0};

 public:
  std::mutex msg_lock_;
  std::vector<std::string> messages_;
};

fake::FakeIommu::Options space() {
  fake::FakeIommu::Options opts;
  opts.ias = 32;
  opts.resv = {{.start = 0x0800'0000,
                .length = 0x10'0000,
                .prot = IOMMU_WRITE | IOMMU_MMIO,
                .type = ResvType::sw_msi},
               {.start = 0xc000'0000, .length = 0x10'0000, .type = ResvType::reserved}};
  return opts;
}

void run(Mode mode) {
  Env env(mode, space());
  const PciDev f0{.bus = 1, .devfn = 0, .multifunction = true};
  const PciDev f1{.bus = 1, .devfn = 1, .multifunction = true};
  Device* devs[2] = {&env.probe("f0", &f0), &env.probe("f1", &f1)};
  Domain& domain = dma_domain(*devs[0]);
  Ledger ledger(env.fake(), mode == Mode::lazy);
  std::atomic<int> errors{0};
  std::atomic<int> workers_left{kWorkers};
  std::atomic<long> enomem{0};
  auto expect = [&](bool ok, const char* what) {
    if (!ok) {
      errors++;
      std::lock_guard<std::mutex> g(ledger.msg_lock_);
      if (ledger.messages_.size() < 10) ledger.messages_.push_back(what);
    }
  };

  auto worker = [&](int id) {
    std::mt19937_64 rng(id * 7919 + 1);
    // Each worker's buffers live in its own 8 MiB of RAM, so data checks cannot collide.
    const phys_addr_t region = env.ram() + uint64_t(id) * 8 * SZ_1G / 1024;
    for (int i = 0; i < kIters; i++) {
      Device& dev = *devs[rng() % 2];
      if (rng() % 4 == 0) {
        // A scatterlist of up to 4 segments.
        DmaSg sg[4];
        const unsigned n = 1 + rng() % 4;
        for (unsigned s = 0; s < n; s++)
          sg[s] = {.phys = region + s * 0x20000 + (rng() % 2 ? 0 : (rng() % 0x4000)),
                   .length = 1 + rng() % 0x6000};
        Result<unsigned> r = iommu_dma_map_sg(dev, sg, n, kBidi);
        if (!r.ok()) {
          expect(r.error().code() == -ENOMEM, r.error().name());
          enomem++;
          continue;
        }
        const uint64_t lo = sg[0].dma_address & ~kMask;
        uint64_t end = 0;
        for (unsigned s = 0; s < r.value(); s++) end = sg[s].dma_address + sg[s].dma_length;
        const uint64_t hi = (end - 1) | kMask;
        ledger.claim(lo, hi, id);
        expect(translate(dev, sg[0].dma_address).value() == sg[0].phys, "sg translation");
        ledger.release(lo, hi);
        iommu_dma_unmap_sg(dev, sg, n, kBidi);
        continue;
      }
      const size_t size = 1 + rng() % (3 * SZ_16K);
      const phys_addr_t phys = region + rng() % (4 * SZ_1G / 1024);
      Result<dma_addr_t> r = iommu_dma_map_buffer(dev, phys, size, kBidi);
      if (!r.ok()) {
        expect(r.error().code() == -ENOMEM, r.error().name());
        enomem++;
        continue;
      }
      const dma_addr_t dma = r.value();
      const uint64_t lo = dma & ~kMask, hi = (dma + size - 1) | kMask;
      ledger.claim(lo, hi, id);
      expect((dma & kMask) == (phys & kMask), "offset");
      // Data through the translation: the first and last bytes.
      const uint8_t v = static_cast<uint8_t>(i + id);
      expect(device_write(env, dev, dma, &v, 1), "device write");
      expect(device_write(env, dev, dma + size - 1, &v, 1), "device write");
      uint8_t seen[2] = {};
      expect(env.mem().read(phys, &seen[0], 1).ok() &&
                 env.mem().read(phys + size - 1, &seen[1], 1).ok(),
             "read");
      expect(seen[0] == v && seen[1] == v, "data");
      ledger.release(lo, hi);
      iommu_dma_unmap_buffer(dev, dma, size, kBidi);
    }
    workers_left--;
  };

  // Takes 1 GiB buffers until the space is full, gives them back, again.
  auto hog = [&] {
    int round = 0;
    while (workers_left.load() > 0) {
      std::vector<dma_addr_t> held;
      for (int k = 0; k < 4; k++) {
        const phys_addr_t phys = (uint64_t{1} << 40) + uint64_t(k) * SZ_1G;
        Result<dma_addr_t> r = iommu_dma_map_buffer(*devs[round % 2], phys, SZ_1G, kBidi);
        if (!r.ok()) {
          expect(r.error().code() == -ENOMEM, "hog map failed");
          enomem++;
          break;
        }
        ledger.claim(r.value(), r.value() + SZ_1G - 1, 100);
        expect(translate(*devs[0], r.value() + SZ_1G - 1).value() == phys + SZ_1G - 1,
               "hog translation");
        held.push_back(r.value());
      }
      expect(held.size() < 4, "four 1 GiB buffers in a 4 GiB space with reservations");
      for (dma_addr_t a : held) {
        ledger.release(a, a + SZ_1G - 1);
        iommu_dma_unmap_buffer(*devs[round % 2], a, SZ_1G, kBidi);
      }
      round++;
    }
  };

  // MSI doorbells (idempotent) and explicit flushes.
  auto misc = [&] {
    dma_addr_t first = 0;
    while (workers_left.load() > 0) {
      Result<dma_addr_t> m = iommu_dma_prepare_msi(*devs[1], 0x0900'0040);
      expect(m.ok(), "prepare_msi");
      if (m.ok()) {
        if (!first) first = m.value();
        expect(m.value() == first, "one doorbell mapping");
      }
      iommu_dma_flush(domain);
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  };

  std::vector<std::thread> threads;
  for (int id = 0; id < kWorkers; id++) threads.emplace_back(worker, id);
  threads.emplace_back(hog);
  threads.emplace_back(misc);
  for (std::thread& t : threads) t.join();

  for (const std::string& m : ledger.messages_) FAIL_CHECK(m);
  CHECK(errors.load() == 0);
  CHECK(ledger.errors() == 0);
  CHECK(ledger.live() == 0);
  iommu_dma_flush(domain);
  CHECK(live_iova_ranges(*iommu_dma_iova_domain(domain)) == 0);
  check_iovad(domain);
  if (mode == Mode::strict) CHECK(env.fake().flush_alls == 0);
  if (mode == Mode::lazy) CHECK(env.fake().iotlb_syncs == 0);
  MESSAGE("mode " << static_cast<int>(mode) << ": " << enomem.load() << " -ENOMEM, "
                  << env.fake().iotlb_syncs.load() << " syncs, " << env.fake().flush_alls.load()
                  << " flushes");
}

TEST_CASE("map and unmap from several threads: strict") { run(Mode::strict); }
TEST_CASE("map and unmap from several threads: lazy") { run(Mode::lazy); }

}  // namespace
}  // namespace strata::dmatest
