// SPDX-License-Identifier: MIT
#include "drivers/iommu/arm/arm-smmu-v3/entry_writer.h"

#include "arch/bug.h"
#include "arch/dma.h"

namespace strata::arm_smmu_v3 {
namespace {

// The valid bit of word 0: the only bit an invalid (all-zero) entry uses. STE.V is bit 0 and
// CD.V bit 31 (IHI 0070 5.2, 5.4), so it comes from the format, not from a constant.
uint64_t valid_bit(const EntryWriter& w) {
  const uint64_t zero[kEntryQwords] = {};
  uint64_t used[kEntryQwords];
  w.get_used(zero, used);
  for (unsigned i = 1; i < kEntryQwords; i++) STRATA_BUG_ON(used[i] != 0);
  STRATA_BUG_ON(used[0] == 0 || (used[0] & (used[0] - 1)) != 0);
  return used[0];
}

void read_entry(const void* entry, uint64_t* out) {
  for (unsigned i = 0; i < kEntryQwords; i++)
    out[i] = dma_read64(static_cast<const uint64_t*>(entry) + i);
}

// Writes words [first, first + n) of `want` that differ from memory; syncs if any did.
void entry_set(EntryWriter& w, void* entry, const uint64_t* want, unsigned first, unsigned n,
               EntryWriteStats& stats) {
  bool changed = false;
  for (unsigned i = first; i < first + n; i++) {
    uint64_t* p = static_cast<uint64_t*>(entry) + i;
    if (dma_read64(p) == want[i]) continue;
    dma_write64(p, want[i]);
    changed = true;
  }
  if (!changed) return;
  w.sync();
  stats.syncs++;
}

}  // namespace

unsigned entry_critical_words(const EntryWriter& writer, const uint64_t* current,
                              const uint64_t* target, uint64_t* unused_update) {
  uint64_t cur_used[kEntryQwords], target_used[kEntryQwords];
  writer.get_used(current, cur_used);
  writer.get_used(target, target_used);
  unsigned critical = 0;
  for (unsigned i = 0; i < kEntryQwords; i++) {
    // A target bit outside its own used set would stay in memory unchecked: the caller built a
    // target the SMMU does not read as intended.
    STRATA_BUG_ON(target[i] & ~target_used[i]);
    unused_update[i] = (current[i] & cur_used[i]) | (target[i] & ~cur_used[i]);
    if ((unused_update[i] ^ target[i]) & target_used[i]) critical |= 1u << i;
  }
  return critical;
}

EntryWriteStats write_entry(EntryWriter& writer, void* entry, const uint64_t* target) {
  EntryWriteStats stats;
  uint64_t current[kEntryQwords], update[kEntryQwords];
  read_entry(entry, current);
  const unsigned critical = entry_critical_words(writer, current, target, update);

  if (critical != 0 && (critical & (critical - 1)) == 0) {
    // One critical word: a hitless switch. Everything the old configuration ignores first,
    // keeping the critical word as it is; then the critical word; then what only the old
    // configuration used.
    const unsigned c = static_cast<unsigned>(__builtin_ctz(critical));
    update[c] = current[c];
    entry_set(writer, entry, update, 0, kEntryQwords, stats);
    entry_set(writer, entry, target, c, 1, stats);
    entry_set(writer, entry, target, 0, kEntryQwords, stats);
  } else if (critical != 0) {
    // Break before make. An invalid entry uses only V, so once V == 0 is visible every other
    // word may change in any order.
    stats.hitless = false;
    update[0] = current[0] & ~valid_bit(writer);
    entry_set(writer, entry, update, 0, 1, stats);
    entry_set(writer, entry, target, 1, kEntryQwords - 1, stats);
    entry_set(writer, entry, target, 0, 1, stats);
  } else {
    // No used bit changes: only ignored bits differ (or nothing).
    entry_set(writer, entry, target, 0, kEntryQwords, stats);
  }
  return stats;
}

}  // namespace strata::arm_smmu_v3
