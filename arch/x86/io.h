// SPDX-License-Identifier: MIT
// x86-64 ordering and MMIO primitives. Included through arch/cpu.h only.
//
// MMIO is mapped uncacheable, and UC accesses are not reordered with each other or with
// locked/fenced accesses; write-back memory is TSO. So, as in Linux, the ordered and relaxed
// MMIO forms differ only in being a compiler barrier, and dma_rmb/dma_wmb are compiler
// barriers: the hardware already orders what a coherent device can observe.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace strata {

inline void cpu_relax() { asm volatile("pause" ::: "memory"); }

inline void barrier() { asm volatile("" ::: "memory"); }
inline void mb() { asm volatile("mfence" ::: "memory"); }
inline void rmb() { asm volatile("lfence" ::: "memory"); }
inline void wmb() { asm volatile("sfence" ::: "memory"); }
inline void dma_mb() { mb(); }
inline void dma_rmb() { barrier(); }
inline void dma_wmb() { barrier(); }

// The asm guarantees one access of exactly this width (a volatile dereference does too in
// practice, but the compiler is free to pick the instruction).
inline uint32_t raw_readl_relaxed(const volatile void* addr) {
  uint32_t v;
  asm volatile("movl %1, %0" : "=r"(v) : "m"(*static_cast<const volatile uint32_t*>(addr)));
  return v;
}
inline uint64_t raw_readq_relaxed(const volatile void* addr) {
  uint64_t v;
  asm volatile("movq %1, %0" : "=r"(v) : "m"(*static_cast<const volatile uint64_t*>(addr)));
  return v;
}
inline void raw_writel_relaxed(uint32_t v, volatile void* addr) {
  asm volatile("movl %0, %1" : : "r"(v), "m"(*static_cast<volatile uint32_t*>(addr)));
}
inline void raw_writeq_relaxed(uint64_t v, volatile void* addr) {
  asm volatile("movq %0, %1" : : "r"(v), "m"(*static_cast<volatile uint64_t*>(addr)));
}

// Ordered forms: also compiler barriers, so normal-memory accesses in program order stay on
// their side of the MMIO access (a queue entry written before the doorbell, a DMA buffer read
// after a status register).
inline uint32_t raw_readl(const volatile void* addr) {
  uint32_t v;
  asm volatile("movl %1, %0"
               : "=r"(v)
               : "m"(*static_cast<const volatile uint32_t*>(addr))
               : "memory");
  return v;
}
inline uint64_t raw_readq(const volatile void* addr) {
  uint64_t v;
  asm volatile("movq %1, %0"
               : "=r"(v)
               : "m"(*static_cast<const volatile uint64_t*>(addr))
               : "memory");
  return v;
}
inline void raw_writel(uint32_t v, volatile void* addr) {
  asm volatile("movl %0, %1" : : "r"(v), "m"(*static_cast<volatile uint32_t*>(addr)) : "memory");
}
inline void raw_writeq(uint64_t v, volatile void* addr) {
  asm volatile("movq %0, %1" : : "r"(v), "m"(*static_cast<volatile uint64_t*>(addr)) : "memory");
}

inline constexpr size_t kCacheLineSize = 64;

// VT-d hardware with ECAP.C = 0 walks tables without snooping: table updates must be flushed
// (VT-d spec, ECAP.C "Page-walk Coherency"; Linux clflush_cache_range in domain_flush_cache).
// CLFLUSH is available on every x86-64 CPU; MFENCE orders it against the doorbell that
// follows (CLFLUSH is ordered by MFENCE, not by SFENCE).
inline void dcache_clean_range(const void* p, size_t n) {
  if (n == 0) return;
  mb();
  uintptr_t line = reinterpret_cast<uintptr_t>(p) & ~(kCacheLineSize - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(p) + n;
  for (; line < end; line += kCacheLineSize)
    asm volatile("clflush %0" : "+m"(*reinterpret_cast<volatile char*>(line)));
  mb();
}
// CLFLUSH writes back and invalidates, so the same loop serves both directions.
inline void dcache_inval_range(const void* p, size_t n) { dcache_clean_range(p, n); }

}  // namespace strata
