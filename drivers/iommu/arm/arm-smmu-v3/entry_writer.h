// SPDX-License-Identifier: MIT
// The update protocol of live STEs and CDs: change an entry that the SMMU may be reading so that
// the SMMU never acts on a torn or half-valid configuration (the idea of Linux's
// arm_smmu_write_entry).
//
// Why it is needed. The SMMU reads an STE (64 bytes) or a CD (64 bytes) in 64-bit single-copy
// atomic units, in any order, and may cache it (IHI 0070 3.21.3): "software must not assume that
// any structure is fetched atomically", and a change is guaranteed to be seen only after
// CMD_CFGI_STE / CMD_CFGI_CD and a CMD_SYNC (3.21.3.1, 4.3). Between two invalidations the SMMU
// may therefore see any mix of old and new 64-bit words. The protocol makes every such mix safe:
//
//  1. Bits that the entry's current configuration does not use (fields the spec marks IGNORED
//     for it, e.g. S2TTB of a stage-1-only STE) can take their new values at once: the SMMU
//     ignores them whatever it reads. Write them, sync.
//  2. If, after that, the used bits of the target differ from what is in memory in one 64-bit
//     word only (the "critical" word), writing that word is one atomic switch from the old
//     configuration to the new one: write it, sync. What still differs elsewhere are bits the
//     old configuration used and the new one ignores: write them, sync. The update is hitless:
//     traffic never sees anything but the old or the new configuration.
//  3. If more than one word is critical, no order is safe, so break before make: clear V
//     (in word 0: STE.V is bit 0, CD.V bit 31; the SMMU then treats the entry as invalid:
//     C_BAD_STE / C_BAD_CD, the transaction aborts), sync, write words 1.., sync, write word 0,
//     sync.
// A sync is issued only after a step that changed memory, so an unchanged entry costs none.
//
// What the writer needs from its user (EntryWriter): which bits of an entry its configuration
// uses (the spec's IGNORED rules: STE 5.2, CD 5.4), and how to make the SMMU drop its cached
// copy and wait (CMD_CFGI_STE / CMD_CFGI_CD for every stream that can read the entry, then
// CMD_SYNC; cleaning the CPU cache first when the SMMU does not snoop it).
//
// Concurrency: one writer per entry at a time (the caller's lock); the SMMU reads concurrently.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace strata::arm_smmu_v3 {

// STEs and CDs are both 64 bytes.
inline constexpr unsigned kEntryQwords = 8;

class EntryWriter {
 public:
  // Sets used[i] to the bits of entry[i] that the SMMU uses for the configuration `entry`
  // describes (CPU byte order). An entry with V == 0 uses only V, a bit of word 0: that is how
  // the writer finds V.
  virtual void get_used(const uint64_t* entry, uint64_t* used) const = 0;
  // Makes the written words visible to the SMMU and its cached copies of the entry invalid,
  // and waits for that to complete.
  virtual void sync() = 0;

 protected:
  ~EntryWriter() = default;  // never owned through this interface
};

// What write_entry did, for tests and counters.
struct EntryWriteStats {
  unsigned syncs = 0;
  bool hitless = true;  // false: it had to clear V first
};

// Writes `target` (CPU byte order, kEntryQwords words) into `entry`, a live entry in DMA memory
// (little-endian, written with dma_write64), by the protocol above. `target` must use only bits
// that its configuration uses (get_used), so that what is left in memory is exactly `target`;
// a strata bug otherwise.
EntryWriteStats write_entry(EntryWriter& writer, void* entry, const uint64_t* target);

// Step 1's computation, exposed for tests: fills `unused_update` with the entry as it may be
// written at once (current used bits kept, every other bit from the target) and returns the
// bitmap of words whose target-used bits still differ after that (the critical words).
unsigned entry_critical_words(const EntryWriter& writer, const uint64_t* current,
                              const uint64_t* target, uint64_t* unused_update);

}  // namespace strata::arm_smmu_v3
