// SPDX-License-Identifier: MIT
// iova_bench: the cost of one IOVA allocation and free, through the rcache and through the tree.
//
//   bazel run -c opt //core/iova:iova_bench
//
// Each figure is the median over several repetitions of `kOps` alloc+free pairs of one page
// below 4 GiB, on a domain that already holds kLive allocations (a busy device's mappings),
// printed as "bench: <name> <value> ns". The threaded figures run the same loop on 2 threads
// at once and give the time per pair per thread: the rcache keeps them on separate slots,
// the tree puts them all on one lock.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include "core/iova/iova.h"
#include "testing/bench/bench.h"

namespace strata {
namespace {

using bench::Clock;
using bench::median;

constexpr unsigned long kPfn32 = (1UL << 32 >> 12) - 1;
constexpr unsigned long kLive = 4096;
constexpr long kOps = 1 << 20;
constexpr int kReps = 7;
constexpr int kThreads = 2;  // no more than the CPUs of a small CI machine

[[noreturn]] void die(const char* what, long code = 0) {
  fprintf(stderr, "iova_bench: %s (%ld)\n", what, code);
  exit(1);
}

volatile unsigned long g_sink;

Box<IovaDomain> busy_domain() {
  auto made = IovaDomain::create(4096, 1);
  if (!made.ok()) die("IovaDomain::create failed", made.error().code());
  Box<IovaDomain> d = made.release_value();
  // kLive allocations of mixed sizes, every other one freed again: a tree with holes.
  std::vector<Iova*> v;
  for (unsigned long i = 0; i < 2 * kLive; i++) {
    auto r = d->alloc_iova(1 + i % 7, kPfn32, true);
    if (!r.ok()) die("alloc_iova failed", r.error().code());
    v.push_back(r.value());
  }
  for (unsigned long i = 0; i < v.size(); i += 2) d->__free_iova(v[i]);
  return d;
}

__attribute__((noinline)) void fast_loop(IovaDomain& d, long ops) {
  unsigned long sum = 0;
  for (long i = 0; i < ops; i++) {
    auto r = d.alloc_iova_fast(1, kPfn32, true);
    if (!r.ok()) die("alloc_iova_fast failed", r.error().code());
    sum += r.value();
    d.free_iova_fast(r.value(), 1);
  }
  g_sink = g_sink + sum;
}

__attribute__((noinline)) void tree_loop(IovaDomain& d, long ops) {
  unsigned long sum = 0;
  for (long i = 0; i < ops; i++) {
    auto r = d.alloc_iova(1, kPfn32, true);
    if (!r.ok()) die("alloc_iova failed", r.error().code());
    sum += r.value()->pfn_lo;
    d.__free_iova(r.value());
  }
  g_sink = g_sink + sum;
}

// ns per alloc+free pair per thread.
double measure(void (*loop)(IovaDomain&, long), int threads) {
  std::vector<double> reps;
  for (int rep = 0; rep <= kReps; rep++) {
    Box<IovaDomain> d = busy_domain();
    const long ops = kOps / threads;
    const auto start = Clock::now();
    if (threads == 1) {
      loop(*d, ops);
    } else {
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; t++) pool.emplace_back(loop, std::ref(*d), ops);
      for (auto& t : pool) t.join();
    }
    const double ns = static_cast<double>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
    if (rep > 0) reps.push_back(ns / static_cast<double>(ops));  // rep 0 warms up
  }
  return median(reps);
}

}  // namespace
}  // namespace strata

int main() {
  using namespace strata;
  printf("bench: iova_alloc_free_fast_ns %.1f ns\n", measure(fast_loop, 1));
  printf("bench: iova_alloc_free_tree_ns %.1f ns\n", measure(tree_loop, 1));
  printf("bench: iova_alloc_free_fast_%dthreads_ns %.1f ns\n", kThreads,
         measure(fast_loop, kThreads));
  printf("bench: iova_alloc_free_tree_%dthreads_ns %.1f ns\n", kThreads,
         measure(tree_loop, kThreads));
  return 0;
}
