// SPDX-License-Identifier: MIT
// walk_bench: what one translation table walk of the SMMUv3 model costs, 4 KiB granule, 48-bit
// input at both stages, so a stage-1 walk reads 4 descriptors and a nested walk 24 (each of the
// 4 stage-1 descriptors behind a 4-level stage-2 walk, then 4 for the output).
//
//   bazel run -c opt //testing/models/smmuv3:walk_bench
//
// The walks visit kPages pages, each in its own 2 MiB region so that every walk goes through a
// different last-level table (and, nested, a different stage-2 leaf for it), in a shuffled
// order: the figures are TLB misses with the host's caches about as warm as a busy model keeps
// them. Each figure is the median over several repetitions of kWalks walks.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <memory>
#include <random>
#include <vector>

#include "testing/bench/bench.h"
#include "testing/models/platform/phys_mem.h"
#include "testing/models/smmuv3/test_tables.h"
#include "testing/models/smmuv3/walk.h"

namespace strata::sim::smmuv3 {
namespace {

using bench::Clock;
using bench::median;
using bench::ns_since;
using test::alloc_root;
using test::kS1Rw;
using test::kS2Rw;
using test::leaf_desc;
using test::map;
using test::Tables;
using test::Tree;

constexpr uint64_t kRam = 0x8000'0000;
constexpr uint64_t kRamSize = uint64_t{256} << 20;
constexpr uint64_t kS2Pool = kRam;  // stage-2 tables
constexpr uint64_t kS2PoolSize = uint64_t{64} << 20;
constexpr uint64_t kS1Pool = kRam + (uint64_t{128} << 20);  // stage-1 tables (PA)
constexpr uint64_t kS1PoolSize = uint64_t{32} << 20;        // two halves: alone, nested
constexpr uint64_t kS1PoolIpa = uint64_t{0x40} << 32;       // where stage 2 shows them
unsigned kPages = 2048;                                     // --pages=N
constexpr size_t kWalks = 1 << 20;
constexpr unsigned kReps = 7;

[[noreturn]] void die(const char* what) {
  fprintf(stderr, "walk_bench: %s\n", what);
  exit(1);
}

uint64_t va_of(unsigned i) { return (uint64_t{0x12} << 39) | (uint64_t{i} << 21) | 0x5000; }
uint64_t ipa_of(unsigned i) { return (uint64_t{0x34} << 32) | (uint64_t{i} << 12); }

Caps caps() { return Caps{.oas_bits = 48, .httu = 2}; }

struct Env {
  std::unique_ptr<PhysMem> mem;
  Stage1 s1_alone, s1_nested;
  Stage2 s2;
  std::vector<uint64_t> order;  // page indices, shuffled
};

Stage1 build_s1(Tables& t, bool nested) {
  S1Cfg cd{.T0SZ = 16, .TG0 = 0, .IPS = 5};
  cd.TTB0 = alloc_root(t, 9);
  Decoded<Stage1> d = decode_s1(cd, caps());
  if (!d.ok()) die(name(d.error));
  const Tree tree{cd.TTB0, 12, 0, 9};
  for (unsigned i = 0; i < kPages; ++i) {
    const uint64_t out = nested ? ipa_of(i) : kRam + (uint64_t{i} << 12);
    map(t, tree, va_of(i), 3, leaf_desc(out, 12, 3, kS1Rw));
  }
  return d.stage;
}

Env setup() {
  Env env;
  auto mem = PhysMem::create({.ram = {{kRam, kRamSize}}});
  if (!mem.ok()) die("no memory");
  env.mem = mem.release_value();

  // Stage 1 alone: tables at PA = the address in the descriptors.
  Tables s1_alone(*env.mem, kS1Pool, kS1PoolSize / 2);
  env.s1_alone = build_s1(s1_alone, false);

  // Nested: stage-1 tables in IPA space at kS1PoolIpa, behind a 4-level stage 2 that maps
  // them and the stage-1 outputs with 4 KiB pages.
  const uint64_t pool_pa = kS1Pool + kS1PoolSize / 2;
  Tables s1_nested(*env.mem, pool_pa, kS1PoolSize / 2, pool_pa - kS1PoolIpa);
  env.s1_nested = build_s1(s1_nested, true);

  Tables s2t(*env.mem, kS2Pool, kS2PoolSize);
  S2Cfg ste{.S2T0SZ = 16, .S2SL0 = 2, .S2TG = 0, .S2PS = 5};
  ste.S2TTB = alloc_root(s2t, 9);
  Decoded<Stage2> d = decode_s2(ste, caps());
  if (!d.ok()) die(name(d.error));
  env.s2 = d.stage;
  const Tree tree{ste.S2TTB, 12, 0, 9};
  for (uint64_t off = 0; off < kS1PoolSize / 2; off += 4096)
    map(s2t, tree, kS1PoolIpa + off, 3, leaf_desc(pool_pa + off, 12, 3, kS2Rw));
  for (unsigned i = 0; i < kPages; ++i)
    map(s2t, tree, ipa_of(i), 3, leaf_desc(kRam + (uint64_t{i} << 12), 12, 3, kS2Rw));

  env.order.resize(kPages);
  for (unsigned i = 0; i < kPages; ++i) env.order[i] = i;
  std::shuffle(env.order.begin(), env.order.end(), std::mt19937_64(42));
  return env;
}

// The timed loops; noinline so a profile shows exactly the work the figures time.
[[gnu::noinline]] uint64_t walk_s1_loop(Env& env) {
  uint64_t sum = 0;
  for (size_t i = 0; i < kWalks; ++i) {
    const uint64_t page = env.order[i % kPages];
    Walk w = walk_s1(*env.mem, env.s1_alone, va_of(static_cast<unsigned>(page)), Access{});
    sum += w.tr.oa;
  }
  return sum;
}

[[gnu::noinline]] uint64_t walk_nested_loop(Env& env) {
  uint64_t sum = 0;
  for (size_t i = 0; i < kWalks; ++i) {
    const uint64_t page = env.order[i % kPages];
    Walk w =
        walk_s1(*env.mem, env.s1_nested, va_of(static_cast<unsigned>(page)), Access{}, &env.s2);
    sum += w.tr.oa;
  }
  return sum;
}

// Checks one walk of each kind before timing them: a benchmark of faults would be meaningless.
void verify(Env& env) {
  for (unsigned i = 0; i < kPages; ++i) {
    Walk a = walk_s1(*env.mem, env.s1_alone, va_of(i) | 0x123, Access{});
    Walk n = walk_s1(*env.mem, env.s1_nested, va_of(i) | 0x123, Access{}, &env.s2);
    const uint64_t want = kRam + (uint64_t{i} << 12) + 0x123;
    if (!a.ok() || a.tr.oa != want || a.stats.s1_reads != 4) die("stage-1 walk is wrong");
    if (!n.ok() || n.tr.oa != want || n.stats.s1_reads != 4 || n.stats.s2_reads != 20)
      die("nested walk is wrong");
  }
}

template <typename Loop>
double time_per_walk(Env& env, Loop loop) {
  volatile uint64_t sink = loop(env);  // warm-up
  std::vector<double> results;
  for (unsigned rep = 0; rep < kReps; ++rep) {
    const Clock::time_point start = Clock::now();
    sink = sink + loop(env);
    results.push_back(ns_since(start) / static_cast<double>(kWalks));
  }
  return median(results);
}

}  // namespace
}  // namespace strata::sim::smmuv3

int main(int argc, char** argv) {
  using namespace strata::sim::smmuv3;
  for (int i = 1; i < argc; ++i) {
    uint64_t v;
    if (strncmp(argv[i], "--pages=", 8) == 0 && strata::bench::parse_u64(argv[i] + 8, v) &&
        v <= 2048)
      kPages = static_cast<unsigned>(v);
    else
      die("usage: walk_bench [--pages=N], N in 1..2048");
  }
  const char* build = strata::bench::build_kind();
  printf(
      "walk_bench: %s, %s build, compiler %s; 4K granule, 48-bit stages, %u pages in distinct "
      "2 MiB regions walked in shuffled order; median of %u x %zu walks after one warm-up\n",
      strata::bench::cpu_model().c_str(), build, __VERSION__, kPages, kReps, kWalks);
  fflush(stdout);
  Env env = setup();
  verify(env);
  printf("bench: smmuv3_walk_s1_4k_ns %.2f ns\n", time_per_walk(env, walk_s1_loop));
  fflush(stdout);
  printf("bench: smmuv3_walk_nested_4k_ns %.2f ns\n", time_per_walk(env, walk_nested_loop));
  return 0;
}
