// SPDX-License-Identifier: MIT
// smmuv3_bench: what one translation through the assembled SMMUv3 model costs (Smmuv3::translate,
// the DMA port), 4 KiB granule, 48-bit stages:
//
//   bench: smmuv3_translate_tlb_hit_ns       a hit (the thread's front TLB), 16 pages in turn
//   bench: smmuv3_translate_s1_miss_ns       a stage-1 miss: TLB probe, 4-level walk, insertion
//   bench: smmuv3_translate_nested_miss_ns   a nested miss: 4-level stage 1, each descriptor
//                                            behind a 4-level stage 2, then stage 2 of the output
//
//   bazel run -c opt //testing/models/smmuv3:smmuv3_bench
//
// The model is programmed through its registers as a driver would (stream table, STEs, CDs,
// SMMUEN), with the oracle off. The miss figures visit kPages pages, each in its own 2 MiB
// region (a different last-level table per walk), in a shuffled order, through a TLB of 256
// entries: with 2048 pages in turn almost every translation misses (the bench prints the hit
// count to show it), while the host's caches stay about as warm as a busy model keeps them, as
// in walk_bench. The configuration comes from the thread's front cache, as it does for a
// device streaming through one context. Each figure is the median over several repetitions.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <memory>
#include <random>
#include <vector>

#include "arch/smmuv3/cd.h"
#include "arch/smmuv3/regs.h"
#include "arch/smmuv3/ste.h"
#include "testing/bench/bench.h"
#include "testing/models/platform/phys_mem.h"
#include "testing/models/smmuv3/smmuv3.h"
#include "testing/models/smmuv3/test_tables.h"

namespace strata::sim::smmuv3 {
namespace {

namespace arch = ::strata::smmuv3;
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
constexpr uint64_t kStructPool = kRam;  // stream table, CDs
constexpr uint64_t kS2Pool = kRam + (uint64_t{8} << 20);
constexpr uint64_t kS1Pool = kRam + (uint64_t{128} << 20);  // stage-1 tables (PA)
constexpr uint64_t kS1PoolSize = uint64_t{32} << 20;        // two halves: alone, nested
constexpr uint64_t kS1PoolIpa = uint64_t{0x40} << 32;       // where stage 2 shows them
constexpr unsigned kPages = 2048;
constexpr unsigned kHitPages = 16;
constexpr size_t kTranslations = 1 << 20;
constexpr unsigned kReps = 7;
constexpr uint32_t kSidS1 = 1, kSidNested = 2;

[[noreturn]] void die(const char* what) {
  fprintf(stderr, "smmuv3_bench: %s\n", what);
  exit(1);
}

uint64_t va_of(unsigned i) { return (uint64_t{0x12} << 39) | (uint64_t{i} << 21) | 0x5000; }
uint64_t ipa_of(unsigned i) { return (uint64_t{0x34} << 32) | (uint64_t{i} << 12); }
uint64_t pa_of(unsigned i) { return kRam + (uint64_t{i} << 12); }

template <typename D>
void put(Tables& t, uint64_t addr, const D& d) {
  for (unsigned i = 0; i < D::kWords; ++i) t.put(addr + 8 * i, d.word(i));
}

arch::CD make_cd(uint16_t asid, uint64_t ttb0) {
  arch::CD cd;
  cd.set<arch::CD::T0SZ>(16)
      .set<arch::CD::TG0>(arch::kTg0_4K)
      .set<arch::CD::EPD1>(1)
      .set<arch::CD::V>(1)
      .set<arch::CD::IPS>(arch::kAddrSize48)
      .set<arch::CD::AA64>(1)
      .set<arch::CD::R>(1)
      .set<arch::CD::A>(1)
      .set<arch::CD::ASID>(asid)
      .set<arch::CD::TTB0>(ttb0);
  return cd;
}

uint64_t build_s1(Tables& t, bool nested) {
  const uint64_t root = alloc_root(t, 9);
  const Tree tree{root, 12, 0, 9};
  for (unsigned i = 0; i < kPages; ++i)
    map(t, tree, va_of(i), 3, leaf_desc(nested ? ipa_of(i) : pa_of(i), 12, 3, kS1Rw));
  return root;
}

struct Env {
  std::unique_ptr<PhysMem> mem;
  std::unique_ptr<Smmuv3> smmu;
  std::vector<uint64_t> order;  // page indices, shuffled
};

Env setup(unsigned tlb_sets) {
  Env env;
  auto mem = PhysMem::create({.ram = {{kRam, kRamSize}}});
  if (!mem.ok()) die("no memory");
  env.mem = mem.release_value();
  auto s = Smmuv3::create(
      Config::smmuv3_2(), *env.mem,
      Smmuv3::Options{
          .threading = Threading::kSync, .name = "bench", .tlb_sets = tlb_sets, .tlb_ways = 4});
  if (!s.ok()) die("no model");
  env.smmu = s.release_value();

  Tables structs(*env.mem, kStructPool, 8 << 20);
  Tables s1_alone(*env.mem, kS1Pool, kS1PoolSize / 2);
  const uint64_t pool_pa = kS1Pool + kS1PoolSize / 2;
  Tables s1_nested(*env.mem, pool_pa, kS1PoolSize / 2, pool_pa - kS1PoolIpa);
  Tables s2t(*env.mem, kS2Pool, 64 << 20);

  // Stage 2 (4 levels): the nested stage-1 tables and its CD, and the outputs.
  const uint64_t s2root = alloc_root(s2t, 9);
  const Tree s2tree{s2root, 12, 0, 9};
  const uint64_t root_alone = build_s1(s1_alone, false);
  const uint64_t root_nested = build_s1(s1_nested, true);
  const uint64_t cd_nested = s1_nested.alloc(64);
  put(s1_nested, cd_nested, make_cd(2, root_nested));
  for (uint64_t off = 0; off < kS1PoolSize / 2; off += 4096)
    map(s2t, s2tree, kS1PoolIpa + off, 3, leaf_desc(pool_pa + off, 12, 3, kS2Rw));
  for (unsigned i = 0; i < kPages; ++i)
    map(s2t, s2tree, ipa_of(i), 3, leaf_desc(pa_of(i), 12, 3, kS2Rw));

  // The stream table and STEs.
  const uint64_t strtab = structs.alloc(64 * 4);
  const uint64_t cd_alone = structs.alloc(64);
  put(structs, cd_alone, make_cd(1, root_alone));
  arch::STE s1;
  s1.set<arch::STE::V>(1)
      .set<arch::STE::Config>(arch::kConfigS1Trans)
      .set<arch::STE::S1ContextPtr>(cd_alone);
  put(structs, strtab + 64 * kSidS1, s1);
  arch::STE nested;
  nested.set<arch::STE::V>(1)
      .set<arch::STE::Config>(arch::kConfigNested)
      .set<arch::STE::S1ContextPtr>(cd_nested)
      .set<arch::STE::S2VMID>(3)
      .set<arch::STE::S2T0SZ>(16)
      .set<arch::STE::S2SL0>(2)
      .set<arch::STE::S2TG>(arch::kS2Tg4K)
      .set<arch::STE::S2PS>(arch::kAddrSize48)
      .set<arch::STE::S2AA64>(1)
      .set<arch::STE::S2R>(1)
      .set<arch::STE::S2TTB>(s2root);
  put(structs, strtab + 64 * kSidNested, nested);

  // The driver's part: stream table registers, then SMMUEN (completed inline: kSync). Written
  // through the register model's guest interface (Mmio::model would do the same).
  Registers& regs = env.smmu->regs();
  regs.mmio_write(arch::STRTAB_BASE::kOffset,
                  arch::STRTAB_BASE{}.set<arch::STRTAB_BASE::ADDR>(strtab).value(), 8);
  regs.mmio_write(arch::STRTAB_BASE_CFG::kOffset,
                  arch::STRTAB_BASE_CFG{}
                      .set<arch::STRTAB_BASE_CFG::LOG2SIZE>(2)
                      .set<arch::STRTAB_BASE_CFG::FMT>(arch::kStrtabFmtLinear)
                      .value(),
                  4);
  regs.mmio_write(arch::CR0::kOffset, arch::CR0::SMMUEN::kMask, 4);
  if (regs.mmio_read(arch::CR0ACK::kOffset, 4) != arch::CR0::SMMUEN::kMask)
    die("SMMUEN not acknowledged");

  env.order.resize(kPages);
  for (unsigned i = 0; i < kPages; ++i) env.order[i] = i;
  std::shuffle(env.order.begin(), env.order.end(), std::mt19937_64(42));
  return env;
}

// The timed loops; noinline so a profile shows exactly the work the figures time.
[[gnu::noinline]] uint64_t hit_loop(Env& env) {
  uint64_t sum = 0;
  for (size_t i = 0; i < kTranslations; ++i)
    sum +=
        env.smmu->translate(kSidS1, false, 0, va_of(static_cast<unsigned>(i % kHitPages)), Access{})
            .pa;
  return sum;
}

template <uint32_t Sid>
[[gnu::noinline]] uint64_t miss_loop(Env& env) {
  uint64_t sum = 0;
  for (size_t i = 0; i < kTranslations; ++i) {
    const unsigned page = static_cast<unsigned>(env.order[i % kPages]);
    sum += env.smmu->translate(Sid, false, 0, va_of(page), Access{}).pa;
  }
  return sum;
}

// Checks every translation before timing: a benchmark of faults would be meaningless.
void verify(Env& env) {
  for (unsigned i = 0; i < kPages; ++i) {
    const Translated a = env.smmu->translate(kSidS1, false, 0, va_of(i) | 0x123, Access{});
    const Translated n = env.smmu->translate(kSidNested, false, 0, va_of(i) | 0x123, Access{});
    if (!a.ok() || a.pa != pa_of(i) + 0x123) die("stage-1 translation is wrong");
    if (!n.ok() || n.pa != pa_of(i) + 0x123) die("nested translation is wrong");
  }
}

template <typename Loop>
double time_per_translation(Env& env, Loop loop, uint64_t& hits, uint64_t& front, uint64_t& total) {
  volatile uint64_t sink = loop(env);  // warm-up
  const Smmuv3Counters before = env.smmu->counters();
  std::vector<double> results;
  for (unsigned rep = 0; rep < kReps; ++rep) {
    const Clock::time_point start = Clock::now();
    sink = sink + loop(env);
    results.push_back(ns_since(start) / static_cast<double>(kTranslations));
  }
  const Smmuv3Counters after = env.smmu->counters();
  hits = after.tlb_hits - before.tlb_hits;
  front = after.front_hits - before.front_hits;
  total = after.translations - before.translations;
  return median(results);
}

}  // namespace
}  // namespace strata::sim::smmuv3

int main(int argc, char** argv) {
  using namespace strata::sim::smmuv3;
  // --hit-only: just the hit figure (for a profiler).
  const bool hit_only = argc > 1 && strcmp(argv[1], "--hit-only") == 0;
  const char* build = strata::bench::build_kind();
  printf(
      "smmuv3_bench: %s, %s build, compiler %s; 4K granule, 48-bit stages; hits over %u pages, "
      "misses over %u pages in distinct 2 MiB regions in shuffled order through a 256-entry TLB; "
      "median of %u x %zu translations after one warm-up\n",
      strata::bench::cpu_model().c_str(), build, __VERSION__, kHitPages, kPages, kReps,
      kTranslations);
  fflush(stdout);
  Env env = setup(/*tlb_sets=*/64);
  verify(env);
  uint64_t hits = 0, front = 0, total = 0;
  auto print_hits = [&] {
    printf("  (%llu of %llu translations were TLB hits, %llu of them in the front cache)\n",
           static_cast<unsigned long long>(hits), static_cast<unsigned long long>(total),
           static_cast<unsigned long long>(front));
  };
  const double hit = time_per_translation(env, hit_loop, hits, front, total);
  printf("bench: smmuv3_translate_tlb_hit_ns %.2f ns\n", hit);
  print_hits();
  fflush(stdout);
  if (hit_only) return 0;
  const double s1 = time_per_translation(env, miss_loop<kSidS1>, hits, front, total);
  printf("bench: smmuv3_translate_s1_miss_ns %.2f ns\n", s1);
  print_hits();
  fflush(stdout);
  const double nested = time_per_translation(env, miss_loop<kSidNested>, hits, front, total);
  printf("bench: smmuv3_translate_nested_miss_ns %.2f ns\n", nested);
  print_hits();
  return 0;
}
