/* SPDX-License-Identifier: MIT */
/*
 * The OS port: the only functions strata's library calls that it does not define itself.
 *
 * A host OS (kernel, unikernel, hypervisor, or testing/hosted for the simulator) implements
 * these in C or C++ and links them with the library. They are plain C so that a kernel written
 * in C can provide them; Documentation/porting.md gives each one's contract, and
 * tools/portability-allowlist.txt lets exactly this set through the undefined-symbol check.
 *
 * Device-dependent services are objects instead (arch/dma.h DmaAllocator, arch/irq.h
 * InterruptController): DMA memory and interrupts differ per device and per platform.
 */
#ifndef STRATA_ARCH_PORT_H
#define STRATA_ARCH_PORT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Small-object allocator. Memory only the CPU touches (the DMA-visible kind comes from a
 * DmaAllocator). align is a power of two no larger than 4096. Returns NULL on failure; never
 * called from interrupt context. */
void* strata_os_kmalloc(size_t size, size_t align);
void strata_os_kfree(void* ptr);

/* One formatted line, without a trailing newline. level is a Linux console level:
 * 3 err, 4 warning, 5 notice, 6 info, 7 debug. May be called from any context. */
void strata_os_log(int level, const char* text, size_t len);

/* Monotonic time in nanoseconds since an arbitrary origin. Any context. */
uint64_t strata_os_monotonic_ns(void);

/* A sleeping lock in storage the OS interprets; init before use, destroy after. */
struct strata_os_mutex {
  uint64_t opaque[8];
};
void strata_os_mutex_init(struct strata_os_mutex* m);
void strata_os_mutex_destroy(struct strata_os_mutex* m);
void strata_os_mutex_lock(struct strata_os_mutex* m);
void strata_os_mutex_unlock(struct strata_os_mutex* m);

/* Disable interrupts and preemption on this CPU, returning the previous state, and restore it.
 * strata's spinlocks wrap their critical sections in these (Linux's spin_lock_irqsave). */
unsigned long strata_os_irq_save(void);
void strata_os_irq_restore(unsigned long flags);

/* An unrecoverable bug in strata (a broken invariant, never bad input). Does not return. */
__attribute__((noreturn)) void strata_os_panic(const char* message);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_ARCH_PORT_H */
