// SPDX-License-Identifier: MIT
// Locks: a sleeping Mutex from the OS port and an interrupt-safe SpinLock built on atomics.
//
// Each subsystem states its lock order in one comment where its state is declared. Functions
// that expect a lock held end in _locked.
#pragma once

#include <atomic>

#include "arch/cpu.h"
#include "arch/port.h"

namespace strata {

// May sleep: never taken in interrupt context or under a SpinLock.
class Mutex {
 public:
  Mutex() { strata_os_mutex_init(&m_); }
  ~Mutex() { strata_os_mutex_destroy(&m_); }
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() { strata_os_mutex_lock(&m_); }
  void unlock() { strata_os_mutex_unlock(&m_); }

 private:
  strata_os_mutex m_;
};

// Busy-waits with interrupts and preemption off on this CPU (Linux's spin_lock_irqsave), so
// it may be shared with interrupt handlers. Hold it for short, non-sleeping sections only.
class SpinLock {
 public:
  SpinLock() = default;
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void lock() {
    unsigned long flags = strata_os_irq_save();
    // Test-and-test-and-set: spin on a plain load so waiters do not bounce the cache line.
    while (locked_.exchange(true, std::memory_order_acquire)) {
      while (locked_.load(std::memory_order_relaxed)) cpu_relax();
    }
    flags_ = flags;
  }
  void unlock() {
    unsigned long flags = flags_;
    locked_.store(false, std::memory_order_release);
    strata_os_irq_restore(flags);
  }

 private:
  std::atomic<bool> locked_{false};
  unsigned long flags_ = 0;  // interrupt state saved by the holder
};

// Holds a Mutex or SpinLock for a scope.
template <typename Lock>
class [[nodiscard]] Guard {
 public:
  explicit Guard(Lock& lock) : lock_(lock) { lock_.lock(); }
  ~Guard() { lock_.unlock(); }
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;

 private:
  Lock& lock_;
};

}  // namespace strata
