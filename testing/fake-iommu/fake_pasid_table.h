// SPDX-License-Identifier: MIT
// A fake PASID-table vendor (PasidTableOps) for testing the iommu-pasid-table library and its
// users (the core, VFIO, a paravirtual IOMMU) without an SMMU or VT-d model.
//
// What it implements: a simple but honest format in DMA memory, written through the
// DmaAllocator's CPU view exactly as a real vendor writes its table, so that tests read it back
// through the bus (fake_pasid_read) as a walker would:
//  - An entry is 4 little-endian 64-bit words (32 bytes):
//      word 0: V [0], FMT [2:1] (0: arm_64_lpae_s1, 1: intel_vtd_fl), LEVELS [6:4],
//              HD [8] (PASID_S1_HW_DIRTY), COH [9] (PASID_S1_COHERENT_WALK), ASID [63:48]
//      word 1: TTB, the stage-1 root (bits [51:4]; the rest must be zero)
//      word 2: T0SZ [5:0], TG0 [7:6], IRGN0 [9:8], ORGN0 [11:10], SH0 [13:12], IPS [18:16]
//      word 3: MAIR
//    A description whose fields do not fit, or a stage-2 one, is refused with -EINVAL.
//  - Linear: 2^pasid_bits entries from base(). Two-level when asked for and the table has more
//    than one leaf's worth of entries (a smaller request is served linear, as SMMUv3 does):
//    base() is a root of 64-bit pointers, V [0] and the leaf's address [51:11], one per leaf of
//    64 entries (2 KiB); leaves are allocated through the DmaAllocator on the first write into
//    them, and freed with the table. Options::two_level_supported = false refuses two-level
//    requests that would need it (-EINVAL).
//  - The fake walker it stands for reads word 0 first and the other words only once it has
//    seen V == 1; it caches valid entries, and root pointers whether valid or not (as SMMUv3 may
//    cache an invalid L1CD, IHI 0070 3.21.3). So the fake writes an entry's valid bit last and
//    clears it first; fills a new leaf before publishing its root pointer (it is unreachable
//    until then); reports a new leaf table so the core's sync is non-leaf; and replaces a live
//    entry break-before-make, with one sync of its own between clearing and rewriting.
//  - Non-coherent walks (cfg.coherent_walk = false): what is written is cleaned with
//    sync_for_device before the next ordering step (SimDmaAllocator counts the calls).
//
// What it checks (protocol_errors(), which tests expect empty): that the ops of one table never
// overlap (the core's lock), that every write and clear is followed by a sync of that PASID
// before the next op or the free, that a sync after a new leaf table is non-leaf, and that the
// core never passes a PASID out of range or clears an entry that is not valid.
//
// What it records: every sync (table, PASID, leaf) in call order, and counters.
//
// What it does not: invalidate anything (there is no cache to model), or check descriptions
// beyond "fits its field" (a T0SZ of 63 is as good as 16).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <array>
#include <atomic>
#include <mutex>
#include <ostream>
#include <string>
#include <vector>

#include "arch/dma.h"
#include "arch/result.h"
#include "core/pasid-table/pasid_table.h"
#include "testing/models/platform/phys_mem.h"

namespace strata::testing {

namespace fake_pasid {

inline constexpr unsigned kEntryWords = 4;
inline constexpr size_t kEntryBytes = kEntryWords * 8;
inline constexpr uint32_t kLeafEntries = 64;
inline constexpr size_t kLeafBytes = kLeafEntries * kEntryBytes;  // 2 KiB

// Word 0.
inline constexpr uint64_t kV = 1;
inline constexpr unsigned kFmtShift = 1;  // 2 bits
inline constexpr uint64_t kFmtArmLpaeS1 = 0, kFmtVtdFl = 1;
inline constexpr unsigned kLevelsShift = 4;  // 3 bits
inline constexpr uint64_t kHd = uint64_t{1} << 8;
inline constexpr uint64_t kCoh = uint64_t{1} << 9;
inline constexpr unsigned kAsidShift = 48;  // 16 bits
// Word 1.
inline constexpr uint64_t kTtbMask = 0x000ffffffffffff0;
// Word 2.
inline constexpr unsigned kT0szShift = 0, kTg0Shift = 6, kIrgn0Shift = 8, kOrgn0Shift = 10,
                          kSh0Shift = 12, kIpsShift = 16;
// Root pointers.
inline constexpr uint64_t kRootV = 1;
inline constexpr uint64_t kRootAddrMask = 0x000ffffffffff800;

// The words of an entry for `s1`, valid bit set (a pure builder). -EINVAL when a field does
// not fit or the format is not a stage-1 one.
Result<std::array<uint64_t, kEntryWords>> encode(const PasidStage1& s1);
// The description in an entry's words (whatever V says).
PasidStage1 decode(const std::array<uint64_t, kEntryWords>& words);

}  // namespace fake_pasid

// One entry of a fake table, as the walker finds it.
struct FakePasidEntry {
  bool leaf_present = false;  // two-level: the root pointer is valid. Always true when linear.
  phys_addr_t pa = 0;         // where the entry is; 0 without a leaf
  std::array<uint64_t, fake_pasid::kEntryWords> raw = {};
  bool valid = false;  // raw[0].V
  PasidStage1 s1 = {};
};

// Reads the entry of `pasid` of a fake-format table out of simulated memory through the bus
// (PhysMem, as a device would), starting at t.base() and following the root pointer when
// t.two_level(). -ERANGE for a PASID out of range, -EFAULT if memory does not answer.
Result<FakePasidEntry> fake_pasid_read(sim::PhysMem& mem, const PasidTable& t, ioasid_t pasid);

class FakePasidTableOps final : public PasidTableOps {
 public:
  struct Options {
    bool two_level_supported = true;
  };

  FakePasidTableOps() : FakePasidTableOps(Options{}) {}
  explicit FakePasidTableOps(Options options) : options_(options) {}
  FakePasidTableOps(const FakePasidTableOps&) = delete;
  FakePasidTableOps& operator=(const FakePasidTableOps&) = delete;
  // Every table must have been destroyed.
  ~FakePasidTableOps();

  Result<void> alloc(PasidTable& t) override;
  void free(PasidTable& t) override;
  Result<PasidWrite> write(PasidTable& t, ioasid_t pasid, const PasidStage1& s1) override;
  void clear(PasidTable& t, ioasid_t pasid) override;
  void sync(PasidTable& t, ioasid_t pasid, bool leaf) override;

  struct SyncCall {
    ioasid_t pasid;
    bool leaf;
    bool operator==(const SyncCall&) const = default;
  };
  // The syncs issued for `t` (for every table when null), in order.
  std::vector<SyncCall> syncs(const PasidTable* t = nullptr) const;
  void clear_syncs();

  uint64_t tables_allocated() const { return allocs_.load(); }
  uint64_t tables_live() const { return allocs_.load() - frees_.load(); }
  uint64_t writes() const { return writes_.load(); }
  uint64_t clears() const { return clears_.load(); }
  uint64_t leaf_tables_allocated() const { return leaves_allocated_.load(); }

  std::vector<std::string> protocol_errors() const;

 private:
  struct Leaf {
    DmaRegion region;         // region.cpu == nullptr: not allocated
    bool needs_nonleaf_sync;  // its root pointer was published, no non-leaf sync since
  };
  struct Table;
  struct OpScope;

  Table& state(const PasidTable& t) const;
  // Where the entry is in CPU memory, and its region; cpu == nullptr if its leaf is absent.
  struct EntryRef {
    uint64_t* cpu;
    const DmaRegion* region;
    size_t offset;
  };
  EntryRef entry_ref(Table& st, ioasid_t pasid) const;
  static void clean(const PasidTable& t, const DmaRegion& region, size_t offset, size_t len);
  void sync_locked(Table& st, PasidTable& t, ioasid_t pasid, bool leaf);
  void protocol_error(std::string what);

  const Options options_;

  std::atomic<uint64_t> allocs_{0}, frees_{0}, writes_{0}, clears_{0}, leaves_allocated_{0};

  mutable std::mutex lock_;  // guards the two logs below
  struct LoggedSync {
    const PasidTable* table;
    SyncCall call;
  };
  std::vector<LoggedSync> sync_log_;
  std::vector<std::string> errors_;
};

std::ostream& operator<<(std::ostream& os, const FakePasidTableOps::SyncCall& s);

}  // namespace strata::testing
