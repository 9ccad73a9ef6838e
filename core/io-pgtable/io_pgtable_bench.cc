// SPDX-License-Identifier: MIT
// io_pgtable_bench: how fast io-pgtable maps, unmaps and looks up, per page, over the simulated
// platform's DMA allocator (whose cost is included wherever a map allocates tables).
//
//   bazel run -c opt //core/io-pgtable:io_pgtable_bench
//   bazel run -c opt //core/io-pgtable:io_pgtable_bench -- --quick --only=lpae_s1_4k_map_512_ns
//
// Each figure is the median over several repetitions, each on a fresh table, printed as
// "bench: <name> <value> <unit>". --quick shrinks the regions (64 MiB of 4K pages, 4 GiB of 2M
// blocks) and runs one repetition without warm-up, so the binary fits under callgrind; the
// timed loops are the noinline functions do_map, do_unmap and do_lookup, whose inclusive cost
// (callgrind --toggle-collect) is exactly the work the figures time.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "arch/dma.h"
#include "core/io-pgtable/io_pgtable.h"
#include "testing/bench/bench.h"
#include "testing/models/platform/platform.h"

namespace strata {
namespace {

using bench::Clock;
using bench::cpu_model;
using bench::median;
using bench::ns_since;
using bench::parse_u64;

constexpr int kProt = IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE;
// 512 GiB-aligned, so a fresh table allocates every level below the root on the first map.
constexpr uint64_t kIovaBase = uint64_t{1} << 39;
// Output addresses are only numbers to the table: they need not be simulated RAM.
constexpr phys_addr_t kPaBase = uint64_t{1} << 44;

struct Options {
  bool quick = false;
  std::string only;
  uint64_t bytes_4k = SZ_1G;         // region mapped with 4K pages
  uint64_t bytes_2m = 64 * SZ_1G;    // region mapped with 2M blocks
  unsigned reps = 7;                 // timed repetitions per figure
  bool warmup = true;                // one untimed repetition first
  size_t lookups = size_t{1} << 20;  // random iova_to_phys per repetition
};

[[noreturn]] void die(const char* what, long code = 0) {
  if (code)
    fprintf(stderr, "io_pgtable_bench: %s (%ld)\n", what, code);
  else
    fprintf(stderr, "io_pgtable_bench: %s\n", what);
  exit(1);
}

// Keeps results observable so the optimizer cannot drop the work that produced them.
volatile uint64_t g_sink;

class Env {
 public:
  Env() {
    sim::Platform::Config config;
    // 1 GiB of 4K pages takes ~2 MiB of tables, so 1 GiB of RAM allows up to --mib-4k=65536
    config.ram_size = uint64_t{1} << 30;
    auto p = sim::Platform::create(config);
    if (!p.ok()) die("cannot create the simulated platform", p.error().code());
    platform_ = p.release_value();
  }

  Box<IoPgtable> table(IoPgtableFmt fmt) {
    IoPgtableCfg cfg;
    cfg.pgsize_bitmap = SZ_4K | SZ_2M | SZ_1G;
    cfg.ias = 48;
    cfg.oas = 48;
    cfg.coherent_walk = true;
    cfg.dma = &platform_->dma();
    auto r = IoPgtable::alloc(fmt, cfg);
    if (!r.ok()) die("IoPgtable::alloc failed", r.error().code());
    return r.release_value();
  }

 private:
  std::unique_ptr<sim::Platform> platform_;
};

// The timed loops. Each issues calls as a caller would (Linux's __iommu_map/__iommu_unmap):
// at most `per_call` pages at a time, looping on what each call reports.
__attribute__((noinline)) uint64_t do_map(IoPgtable& pt, uint64_t iova, phys_addr_t pa,
                                          uint64_t bytes, size_t pgsize, size_t per_call) {
  uint64_t done = 0;
  while (done < bytes) {
    const uint64_t left = (bytes - done) / pgsize;
    auto r = pt.map_pages(iova + done, pa + done, pgsize, left < per_call ? left : per_call, kProt);
    if (!r.ok()) die("map_pages failed", r.error().code());
    done += r.value();
  }
  return done;
}

// One gather per call, invalidated (here: read) and reset after it, as an unmapping caller does.
__attribute__((noinline)) uint64_t do_unmap(IoPgtable& pt, uint64_t iova, uint64_t bytes,
                                            size_t pgsize, size_t per_call) {
  uint64_t done = 0;
  uint64_t gathered = 0;
  IotlbGather gather;
  while (done < bytes) {
    const uint64_t left = (bytes - done) / pgsize;
    auto r = pt.unmap_pages(iova + done, pgsize, left < per_call ? left : per_call, gather);
    if (!r.ok()) die("unmap_pages failed", r.error().code());
    if (r.value() == 0) die("unmap_pages found a hole");
    done += r.value();
    gathered += gather.size();  // what the invalidation would cover
    if (gather.has_freelist()) gather.release_freelist();
    gather.reset();
  }
  if (gathered != done) die("the gathers do not cover the unmapped range");
  return done;
}

__attribute__((noinline)) uint64_t do_lookup(IoPgtable& pt, const std::vector<uint64_t>& iovas) {
  uint64_t sum = 0;
  for (uint64_t iova : iovas) {
    auto r = pt.iova_to_phys(iova);
    if (!r.ok()) die("iova_to_phys failed", r.error().code());
    sum += r.value();
  }
  return sum;
}

enum class Op { map, unmap, lookup, table_bytes };

struct Figure {
  const char* name;
  const char* unit;
  IoPgtableFmt fmt;
  Op op;
  size_t pgsize;
  size_t per_call;
};

constexpr IoPgtableFmt kS1 = IoPgtableFmt::arm_64_lpae_s1;
constexpr IoPgtableFmt kVtd = IoPgtableFmt::intel_vtd_sl;

const Figure kFigures[] = {
    {"lpae_s1_4k_map_1page_ns", "ns", kS1, Op::map, SZ_4K, 1},
    {"lpae_s1_4k_map_512_ns", "ns", kS1, Op::map, SZ_4K, 512},
    {"lpae_s1_4k_unmap_1page_ns", "ns", kS1, Op::unmap, SZ_4K, 1},
    {"lpae_s1_4k_unmap_512_ns", "ns", kS1, Op::unmap, SZ_4K, 512},
    {"lpae_s1_iova_to_phys_ns", "ns", kS1, Op::lookup, SZ_4K, 512},
    {"lpae_s1_2m_map_ns", "ns", kS1, Op::map, SZ_2M, 512},
    {"lpae_s1_2m_unmap_ns", "ns", kS1, Op::unmap, SZ_2M, 512},
    {"lpae_s1_table_bytes_per_gib", "bytes", kS1, Op::table_bytes, SZ_4K, 512},
    {"vtd_sl_4k_map_512_ns", "ns", kVtd, Op::map, SZ_4K, 512},
    {"vtd_sl_4k_unmap_512_ns", "ns", kVtd, Op::unmap, SZ_4K, 512},
};

// One repetition on a fresh table: ns per page (or table bytes per GiB).
double run_once(Env& env, const Options& opt, const Figure& f, const std::vector<uint64_t>& iovas,
                uint64_t expected_sum) {
  const uint64_t bytes = f.pgsize == SZ_2M ? opt.bytes_2m : opt.bytes_4k;
  const double pages = static_cast<double>(bytes / f.pgsize);
  Box<IoPgtable> pt = env.table(f.fmt);
  switch (f.op) {
    case Op::map: {
      const auto start = Clock::now();
      const uint64_t done = do_map(*pt, kIovaBase, kPaBase, bytes, f.pgsize, f.per_call);
      const double ns = ns_since(start);
      if (done != bytes) die("short map");
      g_sink = g_sink + pt->iova_to_phys(kIovaBase + bytes - 1).value();
      return ns / pages;
    }
    case Op::unmap: {
      do_map(*pt, kIovaBase, kPaBase, bytes, f.pgsize, 512);
      const auto start = Clock::now();
      const uint64_t done = do_unmap(*pt, kIovaBase, bytes, f.pgsize, f.per_call);
      const double ns = ns_since(start);
      if (done != bytes) die("short unmap");
      if (pt->iova_to_phys(kIovaBase).ok()) die("still mapped after unmap");
      return ns / pages;
    }
    case Op::lookup: {
      do_map(*pt, kIovaBase, kPaBase, bytes, f.pgsize, 512);
      const auto start = Clock::now();
      const uint64_t sum = do_lookup(*pt, iovas);
      const double ns = ns_since(start);
      if (sum != expected_sum) die("iova_to_phys returned wrong addresses");
      g_sink = g_sink + sum;
      return ns / static_cast<double>(iovas.size());
    }
    case Op::table_bytes: {
      const size_t empty = pt->table_bytes();
      do_map(*pt, kIovaBase, kPaBase, bytes, f.pgsize, 512);
      const double used = static_cast<double>(pt->table_bytes() - empty);
      return used * static_cast<double>(SZ_1G) / static_cast<double>(bytes);
    }
  }
  return 0;
}

double run_figure(Env& env, const Options& opt, const Figure& f) {
  std::vector<uint64_t> iovas;
  uint64_t expected_sum = 0;
  if (f.op == Op::lookup) {
    std::mt19937_64 rng(0x5eed);
    iovas.resize(opt.lookups);
    for (uint64_t& iova : iovas) {
      const uint64_t off = rng() % opt.bytes_4k;
      iova = kIovaBase + off;
      expected_sum += kPaBase + off;
    }
  }
  if (opt.warmup) run_once(env, opt, f, iovas, expected_sum);
  std::vector<double> results;
  for (unsigned r = 0; r < opt.reps; r++)
    results.push_back(run_once(env, opt, f, iovas, expected_sum));
  return median(results);
}

void usage(FILE* f) {
  fputs(
      "usage: io_pgtable_bench [--quick] [--only=<name>] [--reps=N] [--mib-4k=N] [--gib-2m=N]\n"
      "                        [--lookups=N]\n"
      "  --quick      64 MiB of 4K pages, 4 GiB of 2M blocks, 64Ki lookups, 1 repetition, no\n"
      "               warm-up (for callgrind)\n"
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
  uint64_t reps = 0, mib_4k = 0, gib_2m = 0, lookups = 0;
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    if (strcmp(a, "--quick") == 0) {
      opt.quick = true;
    } else if (strncmp(a, "--only=", 7) == 0) {
      opt.only = a + 7;
    } else if (strncmp(a, "--reps=", 7) == 0 && parse_u64(a + 7, reps)) {
    } else if (strncmp(a, "--mib-4k=", 9) == 0 && parse_u64(a + 9, mib_4k)) {
    } else if (strncmp(a, "--gib-2m=", 9) == 0 && parse_u64(a + 9, gib_2m)) {
    } else if (strncmp(a, "--lookups=", 10) == 0 && parse_u64(a + 10, lookups)) {
    } else {
      usage(strcmp(a, "--help") == 0 ? stdout : stderr);
      return strcmp(a, "--help") == 0 ? 0 : 2;
    }
  }
  if (opt.quick) {
    opt.bytes_4k = 64 * (SZ_1G / 1024);
    opt.bytes_2m = 4 * SZ_1G;
    opt.reps = 1;
    opt.warmup = false;
    opt.lookups = size_t{1} << 16;
  }
  if (reps) opt.reps = static_cast<unsigned>(reps);
  // Whole leaf tables (2 MiB of 4K pages, 1 GiB of 2M blocks), so every 512-page call fills one.
  if (mib_4k) {
    if (mib_4k % 2 || mib_4k > 64 * 1024) die("--mib-4k must be even and at most 65536");
    opt.bytes_4k = mib_4k * (SZ_1G / 1024);
  }
  if (gib_2m) {
    if (gib_2m > 512) die("--gib-2m must be at most 512");
    opt.bytes_2m = gib_2m * SZ_1G;
  }
  if (lookups) opt.lookups = lookups;
  if (!opt.only.empty() && std::none_of(std::begin(kFigures), std::end(kFigures),
                                        [&](const Figure& f) { return opt.only == f.name; })) {
    fprintf(stderr, "io_pgtable_bench: no figure named '%s'\n", opt.only.c_str());
    usage(stderr);
    return 2;
  }

  const char* build = strata::bench::build_kind();
  printf(
      "io_pgtable_bench: %s, %s build, compiler %s; fresh coherent ias=oas=48 tables over the "
      "simulated "
      "DMA allocator; 4K: %llu MiB, 2M: %llu GiB, %zu lookups; median of %u repetition(s)%s\n",
      cpu_model().c_str(), build, __VERSION__, static_cast<unsigned long long>(opt.bytes_4k >> 20),
      static_cast<unsigned long long>(opt.bytes_2m >> 30), opt.lookups, opt.reps,
      opt.warmup ? " after one warm-up" : "");
  fflush(stdout);

  Env env;
  for (const Figure& f : kFigures) {
    if (!opt.only.empty() && opt.only != f.name) continue;
    const double v = run_figure(env, opt, f);
    printf("bench: %s %.*f %s\n", f.name, strcmp(f.unit, "bytes") == 0 ? 0 : 2, v, f.unit);
    fflush(stdout);
  }
  return 0;
}
