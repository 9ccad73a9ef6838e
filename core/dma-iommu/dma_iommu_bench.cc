// SPDX-License-Identifier: MIT
// dma_iommu_bench: the cost of one iommu_dma_map_buffer + iommu_dma_unmap_buffer of a 4 KiB
// buffer, strict and lazy, on one thread and on two threads sharing a device.
//
//   bazel run -c opt //core/dma-iommu:dma_iommu_bench
//   bazel run -c opt //core/dma-iommu:dma_iommu_bench -- --quick --only=dma_map_unmap_4k_lazy_ns
//
// The device sits behind the fake IOMMU driver with 4K pages (pgsize_bitmap 4K | 2M | 1G, LPAE
// stage 1 tables in simulated DMA memory) and recording off, so an iotlb_sync or
// flush_iotlb_all costs a counter increment: the figures are the DMA API's own work (IOVA
// allocation through the rcache, iommu_map/iommu_unmap through the core and io-pgtable, the
// flush queue), not an invalidation's latency, which is what lazy mode exists to amortise on
// real hardware.
//
// Each figure is the median over several repetitions of kOps map+unmap pairs, printed as
// "bench: <name> <value> ns". The _2threads figures run the same loop on two threads at once on
// one device (one domain, one IOVA allocator, one flush queue) and report the wall time of a
// repetition divided by the pairs each thread did: ns per map+unmap per thread (so equal to
// the single-thread figure when the threads do not slow each other down).
//
// --quick runs one repetition of 2^14 pairs without warm-up, so the binary fits under
// callgrind; the timed loop is the noinline function map_unmap_loop, whose inclusive cost
// (callgrind --toggle-collect=*map_unmap_loop*) divided by the pairs is the instructions per
// map+unmap.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "arch/dma.h"
#include "core/dma-iommu/dma_iommu.h"
#include "core/iommu.h"
#include "testing/bench/bench.h"
#include "testing/fake-iommu/fake_iommu.h"
#include "testing/models/platform/platform.h"

namespace strata {
namespace {

using bench::Clock;
using bench::cpu_model;
using bench::median;

struct Options {
  long ops = 1 << 18;  // map+unmap pairs per repetition (per thread)
  unsigned reps = 7;
  bool warmup = true;
  std::string only;
};

[[noreturn]] void die(const char* what, long code = 0) {
  fprintf(stderr, "dma_iommu_bench: %s (%ld)\n", what, code);
  exit(1);
}

volatile uint64_t g_sink;

// A registered fake IOMMU and one probed device with the DMA API set up.
class Env {
 public:
  explicit Env(bool lazy) {
    auto p = sim::Platform::create();
    if (!p.ok()) die("cannot create the simulated platform", p.error().code());
    platform_ = p.release_value();
    fake_ = std::make_unique<fake::FakeIommu>(fake::FakeIommu::Options{
        .dma = &platform_->dma(),
        .pgsize_bitmap = SZ_4K | SZ_2M | SZ_1G,
        .deferred_flush = lazy,
        .record = false,
    });
    const IommuConfig config{.def_domain_type = lazy ? DomainType::dma_fq : DomainType::dma};
    if (!iommu_device_register(*fake_, config).ok()) die("iommu_device_register failed");
    dev_ = std::make_unique<Device>(
        DeviceDesc{.name = "bench0", .fwspec = {.iommu = fake_.get(), .ids = {1}, .num_ids = 1}});
    if (Result<void> r = iommu_probe_device(*dev_); !r.ok())
      die("iommu_probe_device failed", r.error().code());
    Domain* domain = iommu_get_dma_domain(*dev_);
    if (!domain || domain->type() != config.def_domain_type) die("unexpected default domain");
    if (Result<void> r = iommu_dma_init_domain(*domain, *dev_); !r.ok())
      die("iommu_dma_init_domain failed", r.error().code());
    for (DmaBuffer& b : buffers_) {
      auto r = DmaBuffer::alloc(platform_->dma(), SZ_4K, SZ_4K);
      if (!r.ok()) die("cannot allocate a buffer", r.error().code());
      b = r.release_value();
    }
  }
  ~Env() {
    for (DmaBuffer& b : buffers_) b.reset();
    iommu_release_device(*dev_);
    if (!iommu_device_unregister(*fake_).ok()) die("iommu_device_unregister failed");
  }

  Device& dev() { return *dev_; }
  phys_addr_t buffer(unsigned i) const { return buffers_[i].phys(); }
  fake::FakeIommu& fake() { return *fake_; }

 private:
  std::unique_ptr<sim::Platform> platform_;
  std::unique_ptr<fake::FakeIommu> fake_;
  std::unique_ptr<Device> dev_;
  DmaBuffer buffers_[2];
};

// The timed loop: what a driver does per 4 KiB transfer.
__attribute__((noinline)) uint64_t map_unmap_loop(Device& dev, phys_addr_t phys, long ops) {
  uint64_t sum = 0;
  for (long i = 0; i < ops; i++) {
    Result<dma_addr_t> r = iommu_dma_map_buffer(dev, phys, SZ_4K, DmaDirection::to_device);
    if (!r.ok()) die("iommu_dma_map_buffer failed", r.error().code());
    sum += r.value();
    iommu_dma_unmap_buffer(dev, r.value(), SZ_4K, DmaDirection::to_device);
  }
  return sum;
}

// One repetition: ns per map+unmap (per thread).
double run_once(Env& env, unsigned threads, long ops) {
  if (threads == 1) {
    const auto start = Clock::now();
    g_sink = g_sink + map_unmap_loop(env.dev(), env.buffer(0), ops);
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start);
    return static_cast<double>(ns.count()) / static_cast<double>(ops);
  }
  std::atomic<unsigned> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; t++) {
    pool.emplace_back([&, t] {
      ready++;
      while (!go.load(std::memory_order_acquire)) {
      }
      g_sink = g_sink + map_unmap_loop(env.dev(), env.buffer(t % 2), ops);
    });
  }
  while (ready.load() != threads) {
  }
  const auto start = Clock::now();
  go.store(true, std::memory_order_release);
  for (std::thread& t : pool) t.join();
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start);
  return static_cast<double>(ns.count()) / static_cast<double>(ops);
}

struct Figure {
  const char* name;
  bool lazy;
  unsigned threads;
};

const Figure kFigures[] = {
    {"dma_map_unmap_4k_strict_ns", false, 1},
    {"dma_map_unmap_4k_lazy_ns", true, 1},
    {"dma_map_unmap_4k_strict_2threads_ns", false, 2},
    {"dma_map_unmap_4k_lazy_2threads_ns", true, 2},
};

double run_figure(const Options& opt, const Figure& f) {
  Env env(f.lazy);
  if (opt.warmup) run_once(env, f.threads, opt.ops);
  std::vector<double> results;
  for (unsigned r = 0; r < opt.reps; r++) results.push_back(run_once(env, f.threads, opt.ops));
  // Sanity: the invalidations the mode promises.
  const uint64_t pairs = static_cast<uint64_t>(opt.ops) * f.threads * (opt.reps + opt.warmup);
  if (f.lazy) {
    if (env.fake().iotlb_syncs != 0) die("lazy unmaps synced");
    if (env.fake().flush_alls == 0 || env.fake().flush_alls > pairs / 8) die("lazy: flush count");
  } else {
    if (env.fake().iotlb_syncs != pairs) die("strict: not one iotlb_sync per unmap");
  }
  return median(results);
}

void usage(FILE* f) {
  fputs(
      "usage: dma_iommu_bench [--quick] [--only=<name>] [--reps=N] [--ops=N]\n"
      "  --quick      2^14 pairs, 1 repetition, no warm-up (for callgrind)\n"
      "  --only=NAME  run one figure\n"
      "figures:\n",
      f);
  for (const Figure& fig : kFigures) fprintf(f, "  %s\n", fig.name);
}

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  using namespace strata;
  Options opt;
  long reps = 0, ops = 0;
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    if (strcmp(a, "--quick") == 0) {
      opt.ops = 1 << 14;
      opt.reps = 1;
      opt.warmup = false;
    } else if (strncmp(a, "--only=", 7) == 0) {
      opt.only = a + 7;
    } else if (strncmp(a, "--reps=", 7) == 0 && (reps = atol(a + 7)) > 0) {
    } else if (strncmp(a, "--ops=", 6) == 0 && (ops = atol(a + 6)) > 0) {
    } else {
      usage(strcmp(a, "--help") == 0 ? stdout : stderr);
      return strcmp(a, "--help") == 0 ? 0 : 2;
    }
  }
  if (reps) opt.reps = static_cast<unsigned>(reps);
  if (ops) opt.ops = ops;
  if (!opt.only.empty() && std::none_of(std::begin(kFigures), std::end(kFigures),
                                        [&](const Figure& f) { return opt.only == f.name; })) {
    fprintf(stderr, "dma_iommu_bench: no figure named '%s'\n", opt.only.c_str());
    usage(stderr);
    return 2;
  }

  const char* build = strata::bench::build_kind();
  printf(
      "dma_iommu_bench: %s, %s build, compiler %s; 4 KiB map+unmap on the fake IOMMU (4K pages, "
      "recording off); %ld pairs per thread, median of %u repetition(s)%s; _2threads: ns per "
      "pair per thread\n",
      cpu_model().c_str(), build, __VERSION__, opt.ops, opt.reps,
      opt.warmup ? " after one warm-up" : "");
  fflush(stdout);

  for (const Figure& f : kFigures) {
    if (!opt.only.empty() && opt.only != f.name) continue;
    printf("bench: %s %.2f ns\n", f.name, run_figure(opt, f));
    fflush(stdout);
  }
  return 0;
}
