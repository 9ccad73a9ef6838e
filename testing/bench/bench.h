// SPDX-License-Identifier: MIT
// What every *_bench binary shares: timing, the median of repetitions, and the CPU to name in
// the header line. Figures are printed by each bench as `bench: <name> <value> <unit>`.
#pragma once

#include <stdint.h>

#include <chrono>
#include <string>
#include <vector>

namespace strata::bench {

using Clock = std::chrono::steady_clock;

inline double ns_since(Clock::time_point start) {
  return static_cast<double>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count());
}

// The median of `v` (not empty): robust against a noisy machine's outliers.
double median(std::vector<double> v);

// How the calling binary was built, for its header line: figures from an unoptimized build are
// not comparable. Inline, so it reads the bench's own compile flags.
inline const char* build_kind() {
#if defined(__OPTIMIZE__) && defined(NDEBUG)
  return "optimized";
#else
  return "UNOPTIMIZED (use -c opt)";
#endif
}

// /proc/cpuinfo's first "model name", or "unknown cpu".
std::string cpu_model();

// A positive integer in C syntax (decimal, 0x...); false for anything else.
bool parse_u64(const char* s, uint64_t& out);

}  // namespace strata::bench
