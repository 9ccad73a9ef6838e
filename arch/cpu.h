// SPDX-License-Identifier: MIT
// The CPU's memory-ordering, MMIO and cache-maintenance primitives, selected by architecture.
//
// Each arch/<cpu>/io.h provides, in namespace strata:
//   cpu_relax()                     spin-wait hint
//   mb() rmb() wmb()                full/read/write barriers against all memory and devices
//   dma_mb() dma_rmb() dma_wmb()    order CPU accesses to coherent DMA memory as a device sees
//                                   them (Linux's dma_*mb)
//   raw_read{l,q}[_relaxed], raw_write{l,q}[_relaxed]
//                                   single-instruction MMIO accesses; the ordered forms follow
//                                   Linux's readl/writel rules (arch/mmio.h)
//   dcache_clean_range(p, n)        write back CPU cache lines so a non-coherent device sees
//                                   them; dcache_inval_range(p, n) drops stale lines before the
//                                   CPU reads what a non-coherent device wrote
// This is the only place in strata that tests the architecture; driver code never does.
#pragma once

#if defined(__x86_64__)
#include "arch/x86/io.h"
#elif defined(__aarch64__)
#include "arch/arm64/io.h"
#else
#error "strata supports x86-64 and arm64; add arch/<cpu>/io.h for another CPU"
#endif
