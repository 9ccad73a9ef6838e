// SPDX-License-Identifier: MIT
#include "testing/models/platform/dma_allocator.h"

#include <string.h>

#include <algorithm>
#include <random>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "arch/dma.h"
#include "testing/hosted/hosted.h"

namespace strata::sim {
namespace {

constexpr phys_addr_t kRam = 0x4000'0000;
constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;

template <typename T>
int err(const Result<T>& r) {
  return r.ok() ? 0 : r.error().code();
}

std::unique_ptr<PhysMem> make_mem(std::vector<PhysMem::RamRegion> ram) {
  auto mem = PhysMem::create({.ram = std::move(ram)});
  REQUIRE(mem.ok());
  return mem.release_value();
}

bool all_zero(const void* p, size_t len) {
  const auto* b = static_cast<const unsigned char*>(p);
  return std::all_of(b, b + len, [](unsigned char c) { return c == 0; });
}

TEST_CASE("bad arguments are -EINVAL") {
  auto mem = make_mem({{kRam, 16 * kMiB}});
  SimDmaAllocator dma(*mem);
  CHECK(err(dma.alloc(0, 4096)) == -EINVAL);
  CHECK(err(dma.alloc(64, 0)) == -EINVAL);
  CHECK(err(dma.alloc(64, 3)) == -EINVAL);
  CHECK(err(dma.alloc(64, 6 * kKiB)) == -EINVAL);
  CHECK(dma.total_allocations() == 0);
  CHECK(dma.live_allocations() == 0);
}

TEST_CASE("allocations are aligned to align and to their size rounded up") {
  auto mem = make_mem({{kRam, 16 * kMiB}});
  SimDmaAllocator dma(*mem);
  CHECK(dma.coherent());
  CHECK(dma.max_order() == 12);
  std::vector<DmaRegion> regions;
  for (uint64_t align = 4 * kKiB; align <= 2 * kMiB; align *= 2) {
    // Something small first, so the next aligned block is not simply the lowest address.
    auto small = dma.alloc(64, 8);
    REQUIRE(small.ok());
    CHECK(small->phys % 4096 == 0);
    regions.push_back(*small);
    auto r = dma.alloc(100, align);
    REQUIRE(r.ok());
    CHECK(r->phys % align == 0);
    CHECK(r->size == 100);
    regions.push_back(*r);
  }
  for (uint64_t size : {64 * kKiB, 64 * kKiB + 1, 96 * kKiB, 1 * kMiB}) {
    auto r = dma.alloc(size, 4096);
    REQUIRE(r.ok());
    CHECK(r->phys % std::bit_ceil(size) == 0);
    regions.push_back(*r);
  }
  for (const DmaRegion& r : regions) {
    CHECK(r.cpu == mem->host_ptr(r.phys, r.size));
    dma.free(r);
  }
  CHECK(dma.live_allocations() == 0);
  CHECK(dma.free_bytes() == 16 * kMiB);
}

TEST_CASE("live allocations never overlap, and counters return to zero") {
  auto mem = make_mem({{kRam, 16 * kMiB}});
  SimDmaAllocator dma(*mem);
  std::mt19937 rng(1234);
  std::vector<DmaRegion> live;
  size_t bytes = 0;
  for (int i = 0; i < 2000; ++i) {
    if (!live.empty() && (rng() % 3 == 0 || live.size() > 100)) {
      const size_t victim = rng() % live.size();
      bytes -= live[victim].size;
      dma.free(live[victim]);
      live.erase(live.begin() + static_cast<long>(victim));
      continue;
    }
    const size_t size = 1 + rng() % (200 * kKiB);
    const size_t align = size_t{1} << (rng() % 18);
    auto r = dma.alloc(size, align);
    if (!r.ok()) {
      CHECK(err(r) == -ENOMEM);
      continue;
    }
    CHECK(r->phys % align == 0);
    CHECK(all_zero(r->cpu, r->size));
    memset(r->cpu, 0xa5, r->size);  // dirty it, so reuse must zero again
    live.push_back(*r);
    bytes += r->size;
    CHECK(dma.live_bytes() == bytes);
  }
  std::sort(live.begin(), live.end(),
            [](const DmaRegion& a, const DmaRegion& b) { return a.phys < b.phys; });
  for (size_t i = 1; i < live.size(); ++i)
    CHECK(live[i - 1].phys + live[i - 1].size <= live[i].phys);
  CHECK(dma.live_allocations() == live.size());
  for (const DmaRegion& r : live) dma.free(r);
  CHECK(dma.live_allocations() == 0);
  CHECK(dma.live_bytes() == 0);
  CHECK(dma.free_bytes() == 16 * kMiB);
  CHECK(dma.total_allocations() > 100);
}

TEST_CASE("memory is zeroed on allocation even after reuse") {
  auto mem = make_mem({{kRam, 16 * kMiB}});
  SimDmaAllocator dma(*mem);
  auto a = dma.alloc(3 * 4096, 4096);
  REQUIRE(a.ok());
  memset(a->cpu, 0xff, a->size);
  const phys_addr_t phys = a->phys;
  dma.free(*a);
  auto b = dma.alloc(3 * 4096, 4096);
  REQUIRE(b.ok());
  CHECK(b->phys == phys);  // lowest-first: the same block
  CHECK(all_zero(b->cpu, b->size));
  dma.free(*b);
}

TEST_CASE("exhaustion gives -ENOMEM and freeing recovers") {
  auto mem = make_mem({{kRam, 16 * kMiB}});
  SimDmaAllocator dma(*mem);
  std::vector<DmaRegion> blocks;
  for (;;) {
    auto r = dma.alloc(2 * kMiB, 4096);
    if (!r.ok()) {
      CHECK(err(r) == -ENOMEM);
      break;
    }
    blocks.push_back(*r);
  }
  CHECK(blocks.size() == 8);
  CHECK(err(dma.alloc(4096, 4096)) == -ENOMEM);
  CHECK(dma.free_bytes() == 0);
  dma.free(blocks.back());
  blocks.pop_back();
  auto r = dma.alloc(4096, 4096);
  REQUIRE(r.ok());
  blocks.push_back(*r);
  for (const DmaRegion& b : blocks) dma.free(b);
  // The pieces merge back: the whole of RAM is one block again.
  auto all = dma.alloc(16 * kMiB, 4096);
  REQUIRE(all.ok());
  CHECK(all->phys == kRam);
  dma.free(*all);
  CHECK(err(dma.alloc(32 * kMiB, 4096)) == -ENOMEM);  // larger than RAM
  CHECK(err(dma.alloc(4096, 32 * kMiB)) == -ENOMEM);
}

TEST_CASE("blocks never merge across RAM regions") {
  // A: 1 MiB at kRam; B: 4 MiB at kRam + 1 MiB, carved as 1 MiB + 2 MiB + 1 MiB. A's block and
  // B's first are buddies by address, but their union is not one mapping.
  auto mem = make_mem({{kRam, kMiB}, {kRam + kMiB, 4 * kMiB}});
  SimDmaAllocator dma(*mem);
  CHECK(dma.max_order() == 10);
  std::vector<DmaRegion> regions;
  for (int i = 0; i < 5; ++i) {
    auto r = dma.alloc(kMiB, 4096);
    REQUIRE(r.ok());
    regions.push_back(*r);
  }
  CHECK(err(dma.alloc(4096, 4096)) == -ENOMEM);
  for (const DmaRegion& r : regions) dma.free(r);
  auto big = dma.alloc(2 * kMiB, 4096);
  REQUIRE(big.ok());
  CHECK(big->phys == kRam + 2 * kMiB);
  CHECK(err(dma.alloc(2 * kMiB, 4096)) == -ENOMEM);
  CHECK(mem->host_ptr(big->phys, big->size) == big->cpu);
  dma.free(*big);
  CHECK(dma.free_bytes() == 5 * kMiB);
}

TEST_CASE("fail_nth fails exactly the n-th allocation, once") {
  auto mem = make_mem({{kRam, 16 * kMiB}});
  SimDmaAllocator dma(*mem);
  dma.fail_nth(2);
  std::vector<int> results;
  std::vector<DmaRegion> regions;
  for (int i = 0; i < 6; ++i) {
    auto r = dma.alloc(4096, 4096);
    results.push_back(err(r));
    if (r.ok()) regions.push_back(*r);
  }
  CHECK(results == std::vector<int>{0, 0, -ENOMEM, 0, 0, 0});

  dma.fail_nth(0);
  CHECK(err(dma.alloc(4096, 4096)) == -ENOMEM);
  auto next = dma.alloc(4096, 4096);
  CHECK(next.ok());
  if (next.ok()) regions.push_back(*next);

  dma.fail_nth(1);
  dma.fail_nth(-1);  // cancelled
  for (int i = 0; i < 3; ++i) {
    auto r = dma.alloc(4096, 4096);
    CHECK(r.ok());
    if (r.ok()) regions.push_back(*r);
  }

  dma.fail_all(true);
  CHECK(err(dma.alloc(4096, 4096)) == -ENOMEM);
  CHECK(err(dma.alloc(64, 8)) == -ENOMEM);
  dma.fail_all(false);
  auto after = dma.alloc(4096, 4096);
  CHECK(after.ok());
  if (after.ok()) regions.push_back(*after);

  CHECK(dma.total_allocations() == regions.size());
  for (const DmaRegion& r : regions) dma.free(r);
  CHECK(dma.live_allocations() == 0);
}

TEST_CASE("DmaBuffer frees on destruction and on move-assignment") {
  auto mem = make_mem({{kRam, 16 * kMiB}});
  SimDmaAllocator dma(*mem);
  {
    auto buf = DmaBuffer::alloc(dma, 8192, 8192);
    REQUIRE(buf.ok());
    CHECK(buf->phys() % 8192 == 0);
    CHECK(buf->cpu() == mem->host_ptr(buf->phys(), 8192));
    CHECK(dma.live_allocations() == 1);
  }
  CHECK(dma.live_allocations() == 0);

  DmaBuffer a = DmaBuffer::alloc(dma, 4096, 4096).release_value();
  DmaBuffer b = DmaBuffer::alloc(dma, 4096, 4096).release_value();
  const phys_addr_t b_phys = b.phys();
  CHECK(dma.live_allocations() == 2);
  a = std::move(b);  // a's old allocation goes back
  CHECK(dma.live_allocations() == 1);
  CHECK(a.phys() == b_phys);
  CHECK(!b);
  a.reset();
  CHECK(dma.live_allocations() == 0);
  CHECK(dma.live_bytes() == 0);
}

TEST_CASE("a double or foreign free panics") {
  auto mem = make_mem({{kRam, 16 * kMiB}});
  SimDmaAllocator dma(*mem);
  auto r = dma.alloc(4096, 4096);
  REQUIRE(r.ok());
  const DmaRegion region = *r;
  std::string msg = hosted::panic_message_of([&] {
    dma.free(region);
    dma.free(region);
  });
  CHECK(msg.find("not a live allocation") != std::string::npos);
  msg = hosted::panic_message_of([&] { dma.free({region.cpu, region.phys + 4096, 4096}); });
  CHECK(msg.find("not a live allocation") != std::string::npos);
  msg = hosted::panic_message_of([&] { dma.free({region.cpu, region.phys, 64}); });
  CHECK(msg.find("not a live allocation") != std::string::npos);
  dma.free(region);  // the children's frees did not happen here
  CHECK(dma.live_allocations() == 0);
}

TEST_CASE("a non-coherent allocator counts syncs") {
  auto mem = make_mem({{kRam, 16 * kMiB}});
  SimDmaAllocator dma(*mem, /*coherent=*/false);
  CHECK(!dma.coherent());
  DmaBuffer buf = DmaBuffer::alloc(dma, 4096, 4096).release_value();
  buf.sync_for_device(0, 64);
  buf.sync_for_device(64, 128);
  buf.sync_for_cpu(0, 4096);
  CHECK(dma.sync_for_device_calls() == 2);
  CHECK(dma.sync_for_cpu_calls() == 1);
}

TEST_CASE("concurrent allocators get disjoint memory") {
  auto mem = make_mem({{kRam, 64 * kMiB}});
  SimDmaAllocator dma(*mem);
  std::atomic<int> corrupt{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      for (int i = 0; i < 300; ++i) {
        const size_t size = 1 + rng() % (64 * kKiB);
        auto r = dma.alloc(size, 4096);
        if (!r.ok()) continue;
        memset(r->cpu, t + 1, size);
        const auto* b = static_cast<const unsigned char*>(r->cpu);
        if (std::any_of(b, b + size, [&](unsigned char c) { return c != t + 1; })) ++corrupt;
        dma.free(*r);
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(corrupt == 0);
  CHECK(dma.live_allocations() == 0);
  CHECK(dma.free_bytes() == 64 * kMiB);
}

}  // namespace
}  // namespace strata::sim
