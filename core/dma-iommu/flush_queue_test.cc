// SPDX-License-Identifier: MIT
// FlushQueue on its own (flush_queue.h): a domain that counts flush_iotlb_all, an IOVA
// allocator the queue frees into, and freelists from real io-pgtable unmaps in simulated DMA
// memory. What is checked: nothing is freed before a flush that began after it was queued has
// completed (IOVAs: the allocator still holds them; table pages: the DMA allocator still does);
// when the queue flushes (full ring, timeout, flush()); across rings; at destruction; and that
// creation fails cleanly at every allocation.
#include <stdint.h>

#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "core/dma-iommu/flush_queue.h"
#include "core/io-pgtable/io_pgtable.h"
#include "core/iommu.h"
#include "core/iova/iova.h"
#include "testing/hosted/hosted.h"
#include "testing/models/platform/platform.h"

namespace strata {
namespace {

class NullIommu final : public IommuDevice {
 public:
  NullIommu() : IommuDevice("null") {}
  Result<void> probe_device(Device&) override { return {}; }
};

class CountingDomain final : public Domain {
 public:
  explicit CountingDomain(IommuDevice& iommu) : Domain(iommu, DomainType::dma_fq) {}
  Result<void> attach_dev(Device&) override { return {}; }
  void flush_iotlb_all() override {
    flushes++;
    if (on_flush) on_flush();
  }
  uint64_t flushes = 0;
  std::function<void()> on_flush;
};

constexpr unsigned long kLimit = (1UL << 32 >> 12) - 1;

struct Fixture {
  explicit Fixture(FlushQueue::Config config = {.slots = 4, .entries = 8})
      : platform(sim::Platform::create().release_value()),
        kmalloc_base(hosted::kmalloc_live()),
        domain(iommu) {
    iovad = IovaDomain::create(4096, 1).release_value();
    fq = FlushQueue::create(domain, *iovad, config).release_value();
    fq->set_timeout_ns(UINT64_MAX);
    IoPgtableCfg cfg{
        .pgsize_bitmap = SZ_4K | SZ_2M | SZ_1G, .ias = 48, .oas = 48, .dma = &platform->dma()};
    pgtable = IoPgtable::alloc(IoPgtableFmt::arm_64_lpae_s1, cfg).release_value();
  }
  ~Fixture() {
    fq.reset();
    pgtable.reset();
    iovad.reset();
    CHECK(hosted::kmalloc_live() == kmalloc_base);
    CHECK(platform->dma().live_allocations() == 0);
  }

  // An IOVA page, unmapped into `gather`: with a table page on its freelist when `table`.
  unsigned long unmapped(IotlbGather& gather, bool table = false) {
    const unsigned long pfn = iovad->alloc_iova_fast(1, kLimit, true).value();
    // Each call maps a separate 2M region of 4K pages (one leaf table) and takes it out whole
    // (the table goes on the freelist), or one 4K page of it.
    const uint64_t base = uint64_t{next_region++} << 21;
    REQUIRE(pgtable->map_pages(base, 0x8000'0000, SZ_4K, 512, IOMMU_READ).value() == SZ_2M);
    if (table) {
      REQUIRE(pgtable->unmap_pages(base, SZ_2M, 1, gather).value() == SZ_2M);
      REQUIRE(gather.has_freelist());
    } else {
      REQUIRE(pgtable->unmap_pages(base, SZ_4K, 1, gather).value() == SZ_4K);
    }
    return pfn;
  }
  unsigned long live_ranges() {
    unsigned long n = 0;
    iovad->for_each_iova([&](const Iova& i) {
      if (!i.reserved()) n++;
    });
    return n - iovad->cached_pfns();
  }
  void queue(unsigned slot, bool table = false) {
    IotlbGather gather;
    const unsigned long pfn = unmapped(gather, table);
    fq->queue_iova_on(slot, pfn, 1, gather);
    CHECK_FALSE(gather.has_freelist());
  }

  std::unique_ptr<sim::Platform> platform;
  long kmalloc_base;
  NullIommu iommu;
  CountingDomain domain;
  Box<IovaDomain> iovad;
  Box<FlushQueue> fq;
  Box<IoPgtable> pgtable;
  unsigned next_region = 1;
};

TEST_CASE("create: bad configs are -EINVAL; every allocation may fail") {
  NullIommu iommu;
  CountingDomain domain(iommu);
  Box<IovaDomain> iovad = IovaDomain::create(4096, 1).release_value();
  const long base = hosted::kmalloc_live();
  CHECK(FlushQueue::create(domain, *iovad, {.slots = 3}).error().code() == -EINVAL);
  CHECK(FlushQueue::create(domain, *iovad, {.entries = 1}).error().code() == -EINVAL);
  CHECK(FlushQueue::create(domain, *iovad, {.entries = 12}).error().code() == -EINVAL);
  CHECK(FlushQueue::create(domain, *iovad, {.time_check_interval = 0}).error().code() == -EINVAL);
  // One allocation for the queue, one for the slot array, one per ring.
  const FlushQueue::Config config{.slots = 4, .entries = 8};
  for (long n = 0;; n++) {
    CAPTURE(n);
    hosted::fail_kmalloc_nth(n);
    Result<Box<FlushQueue>> fq = FlushQueue::create(domain, *iovad, config);
    hosted::fail_kmalloc_nth(-1);
    if (fq.ok()) {
      CHECK(n == 2 + 4);
      break;
    }
    CHECK(fq.error().code() == -ENOMEM);
    CHECK(hosted::kmalloc_live() == base);
    REQUIRE(n < 10);
  }
  CHECK(hosted::kmalloc_live() == base);
  CHECK(domain.flushes == 0);
}

TEST_CASE("a full ring flushes once and frees what it held, no earlier") {
  Fixture f;
  const size_t tables = f.platform->dma().live_allocations();
  const unsigned capacity = f.fq->config().entries - 1;
  for (unsigned i = 0; i < capacity; i++) {
    f.queue(0, /*table=*/i % 2 == 0);
    CHECK(f.domain.flushes == 0);
  }
  CHECK(f.fq->pending() == capacity);
  CHECK(f.live_ranges() == capacity);
  // The leaf tables the unmaps took out are still allocated: the walker may read them until
  // the invalidation. (The tables of the regions are counted above: those emptied stay.)
  const size_t before = f.platform->dma().live_allocations();
  CHECK(before > tables);

  f.queue(0);
  CHECK(f.domain.flushes == 1);
  CHECK(f.fq->flushes() == 1);
  CHECK(f.fq->pending() == 1);
  CHECK(f.live_ranges() == 1);
  // Four queued tables freed; the last call mapped a region of its own (one more leaf table).
  CHECK(f.platform->dma().live_allocations() == before + 1 - (capacity + 1) / 2);

  f.fq->flush();
  CHECK(f.domain.flushes == 2);
  CHECK(f.fq->pending() == 0);
  CHECK(f.live_ranges() == 0);
  // An empty queue still flushes when asked: the caller may rely on it.
  f.fq->flush();
  CHECK(f.domain.flushes == 3);
}

TEST_CASE("entries another ring's flush covered are freed by their ring's next call") {
  Fixture f;
  f.queue(0);
  const unsigned capacity = f.fq->config().entries - 1;
  for (unsigned i = 0; i <= capacity; i++) f.queue(1);
  CHECK(f.domain.flushes == 1);
  CHECK(f.fq->pending() == 2);  // ring 0's entry, ring 1's last
  f.queue(0);                   // no flush: ring 0's first entry is covered already
  CHECK(f.domain.flushes == 1);
  CHECK(f.fq->pending() == 2);
  CHECK(f.live_ranges() == 2);
}

TEST_CASE("an entry queued while a flush runs waits for the next flush") {
  Fixture f;
  f.queue(0);
  bool once = false;
  f.domain.on_flush = [&] {
    if (once) return;
    once = true;
    f.queue(1);  // another CPU unmaps while the invalidation is in flight
  };
  f.fq->flush();
  CHECK(f.domain.flushes == 1);
  CHECK(f.fq->pending() == 1);  // ring 1's entry: its unmap may have raced the invalidation
  CHECK(f.live_ranges() == 1);
  f.fq->flush();
  CHECK(f.fq->pending() == 0);
  CHECK(f.live_ranges() == 0);
}

TEST_CASE("a full ring whose flush overlaps another flush still makes room") {
  // Ring 0 fills while a flush begun elsewhere has not completed: its own flush covers its
  // ring even though the finish count cannot tell yet.
  Fixture f;
  const unsigned capacity = f.fq->config().entries - 1;
  for (unsigned i = 0; i < capacity; i++) f.queue(0);
  bool nested = false;
  f.domain.on_flush = [&] {
    if (nested) return;
    nested = true;
    f.queue(0);  // runs inside the flush of ring 1's flush() below, on the full ring 0
  };
  f.fq->flush();  // outer flush: start 0 -> 1; ring 0's flush nests: 1 -> 2
  CHECK(f.domain.flushes == 2);
  CHECK(f.fq->pending() == 0 + 1);  // everything but the entry queued during the outer flush
}

TEST_CASE("the queue flushes at a queue call when the last flush is older than the timeout") {
  Fixture f({.slots = 2, .entries = 64, .timeout_ns = 1'000'000, .time_check_interval = 1});
  f.fq->set_timeout_ns(1'000'000);
  f.queue(0);
  f.queue(0);
  CHECK(f.domain.flushes == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  f.queue(0);
  CHECK(f.domain.flushes == 1);
  CHECK(f.fq->pending() == 1);
}

TEST_CASE("destruction frees what is queued without invalidating") {
  Fixture f;
  for (int i = 0; i < 5; i++) f.queue(i % 4, true);
  CHECK(f.fq->pending() == 5);
  f.fq.reset();
  CHECK(f.domain.flushes == 0);
  CHECK(f.live_ranges() == 0);  // the IOVAs went back to the allocator
  // ~Fixture checks the table pages and every kmalloc came back.
}

TEST_CASE("several threads queue and flush at once") {
  Fixture f({.slots = 4, .entries = 16});
  constexpr int kThreads = 4;
  constexpr int kPerThread = 300;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&f, t] {
      for (int i = 0; i < kPerThread; i++) {
        const unsigned long pfn = f.iovad->alloc_iova_fast(1, kLimit, true).value();
        IotlbGather gather;  // no page-table work: the table is not thread-safe per region here
        f.fq->queue_iova(pfn, 1, gather);
        if (t == 0 && i % 50 == 0) f.fq->flush();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  f.fq->flush();
  CHECK(f.fq->pending() == 0);
  CHECK(f.live_ranges() == 0);
  CHECK(f.iovad->check_invariants() == nullptr);
}

}  // namespace
}  // namespace strata
