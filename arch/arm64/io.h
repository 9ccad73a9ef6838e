// SPDX-License-Identifier: MIT
// arm64 ordering and MMIO primitives. Included through arch/cpu.h only.
//
// Device-nGnRE accesses to one device arrive in program order, but nothing orders them with
// Normal memory: writel needs a DMB before the store so a queue entry in memory is observable
// before the doorbell (dma_wmb, DMB OSHST), and readl a DMB after the load so a later read of a
// DMA buffer cannot be satisfied before the status read (dma_rmb, DMB OSHLD). These are Linux's
// __iowmb/__iormb (arch/arm64/include/asm/io.h); Arm ARM B2.3 (ordering), K13 (barrier litmus).
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace strata {

inline void cpu_relax() { asm volatile("yield" ::: "memory"); }

inline void barrier() { asm volatile("" ::: "memory"); }
inline void mb() { asm volatile("dsb sy" ::: "memory"); }
inline void rmb() { asm volatile("dsb ld" ::: "memory"); }
inline void wmb() { asm volatile("dsb st" ::: "memory"); }
inline void dma_mb() { asm volatile("dmb osh" ::: "memory"); }
inline void dma_rmb() { asm volatile("dmb oshld" ::: "memory"); }
inline void dma_wmb() { asm volatile("dmb oshst" ::: "memory"); }

// Plain LDR/STR with a base register only: a hypervisor that traps MMIO can emulate only
// accesses whose syndrome is valid (ESR_ELx.ISV), which excludes writeback addressing modes the
// compiler might otherwise choose for a volatile access.
inline uint32_t raw_readl_relaxed(const volatile void* addr) {
  uint32_t v;
  asm volatile("ldr %w0, [%1]" : "=r"(v) : "r"(addr));
  return v;
}
inline uint64_t raw_readq_relaxed(const volatile void* addr) {
  uint64_t v;
  asm volatile("ldr %0, [%1]" : "=r"(v) : "r"(addr));
  return v;
}
inline void raw_writel_relaxed(uint32_t v, volatile void* addr) {
  asm volatile("str %w0, [%1]" : : "rZ"(v), "r"(addr));
}
inline void raw_writeq_relaxed(uint64_t v, volatile void* addr) {
  asm volatile("str %x0, [%1]" : : "rZ"(v), "r"(addr));
}

inline uint32_t raw_readl(const volatile void* addr) {
  uint32_t v = raw_readl_relaxed(addr);
  dma_rmb();
  return v;
}
inline uint64_t raw_readq(const volatile void* addr) {
  uint64_t v = raw_readq_relaxed(addr);
  dma_rmb();
  return v;
}
inline void raw_writel(uint32_t v, volatile void* addr) {
  dma_wmb();
  raw_writel_relaxed(v, addr);
}
inline void raw_writeq(uint64_t v, volatile void* addr) {
  dma_wmb();
  raw_writeq_relaxed(v, addr);
}

// Smallest D-cache line, from CTR_EL0.DminLine (log2 of words).
inline size_t dcache_line_size() {
  uint64_t ctr;
  asm volatile("mrs %0, ctr_el0" : "=r"(ctr));
  return size_t{4} << ((ctr >> 16) & 0xf);
}

// An SMMU with IDR0.COHACC = 0 walks tables without snooping: clean to the point of coherency
// (DC CVAC) and wait for completion (DSB) before telling it to look (IHI 0070, "Coherency
// considerations"; Linux __arm_lpae_sync_pte for a non-coherent walker).
inline void dcache_clean_range(const void* p, size_t n) {
  if (n == 0) return;
  const size_t line_size = dcache_line_size();
  uintptr_t line = reinterpret_cast<uintptr_t>(p) & ~(line_size - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(p) + n;
  for (; line < end; line += line_size) asm volatile("dc cvac, %0" : : "r"(line) : "memory");
  asm volatile("dsb sy" ::: "memory");
}
// Clean and invalidate (DC CIVAC): a plain invalidate could discard CPU writes that share a
// line with the buffer.
inline void dcache_inval_range(const void* p, size_t n) {
  if (n == 0) return;
  const size_t line_size = dcache_line_size();
  uintptr_t line = reinterpret_cast<uintptr_t>(p) & ~(line_size - 1);
  const uintptr_t end = reinterpret_cast<uintptr_t>(p) + n;
  for (; line < end; line += line_size) asm volatile("dc civac, %0" : : "r"(line) : "memory");
  asm volatile("dsb sy" ::: "memory");
}

}  // namespace strata
