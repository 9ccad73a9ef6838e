// SPDX-License-Identifier: MIT
#include "arch/lock.h"

#include <doctest/doctest.h>

#include <thread>
#include <vector>

namespace strata {
namespace {

// A non-atomic read-modify-write made safe only by the lock: under ThreadSanitizer
// (--config=tsan) a lock that failed to exclude would be reported as a race, and in any build
// the total would come out short.
template <typename Lock>
void hammer(Lock& lock) {
  long counter = 0;
  constexpr int kThreads = 4, kIters = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++)
    threads.emplace_back([&] {
      for (int i = 0; i < kIters; i++) {
        Guard<Lock> g(lock);
        long v = counter;
        counter = v + 1;
      }
    });
  for (auto& th : threads) th.join();
  CHECK(counter == long{kThreads} * kIters);
}

TEST_CASE("SpinLock excludes") {
  SpinLock lock;
  hammer(lock);
}

TEST_CASE("Mutex excludes") {
  Mutex lock;
  hammer(lock);
}

}  // namespace
}  // namespace strata
