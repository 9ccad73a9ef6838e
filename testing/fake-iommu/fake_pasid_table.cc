// SPDX-License-Identifier: MIT
// The fake PASID-table vendor (fake_pasid_table.h describes the format and the checks).
#include "testing/fake-iommu/fake_pasid_table.h"

#include <new>
#include <utility>

#include <fmt/core.h>

#include "arch/bug.h"
#include "arch/cpu.h"
#include "arch/memory.h"

namespace strata::testing {

namespace fake_pasid {

Result<std::array<uint64_t, kEntryWords>> encode(const PasidStage1& s1) {
  uint64_t f;
  switch (s1.pgtable_fmt) {
    case IoPgtableFmt::arm_64_lpae_s1: f = kFmtArmLpaeS1; break;
    case IoPgtableFmt::intel_vtd_fl: f = kFmtVtdFl; break;
    default: return Error(-EINVAL);
  }
  const auto& tcr = s1.tcr;
  if (s1.levels > 7 || s1.asid > 0xffff || (s1.ttbr & ~kTtbMask) || tcr.t0sz > 63 || tcr.tg0 > 3 ||
      tcr.irgn0 > 3 || tcr.orgn0 > 3 || tcr.sh0 > 3 || tcr.ips > 7 || (s1.flags & ~PASID_S1_FLAGS))
    return Error(-EINVAL);
  std::array<uint64_t, kEntryWords> w;
  w[0] = kV | f << kFmtShift | uint64_t{s1.levels} << kLevelsShift |
         (s1.flags & PASID_S1_HW_DIRTY ? kHd : 0) | (s1.flags & PASID_S1_COHERENT_WALK ? kCoh : 0) |
         uint64_t{s1.asid} << kAsidShift;
  w[1] = s1.ttbr;
  w[2] = uint64_t{tcr.t0sz} << kT0szShift | uint64_t{tcr.tg0} << kTg0Shift |
         uint64_t{tcr.irgn0} << kIrgn0Shift | uint64_t{tcr.orgn0} << kOrgn0Shift |
         uint64_t{tcr.sh0} << kSh0Shift | uint64_t{tcr.ips} << kIpsShift;
  w[3] = s1.mair;
  return w;
}

PasidStage1 decode(const std::array<uint64_t, kEntryWords>& w) {
  PasidStage1 s1 = {};
  const uint64_t f = (w[0] >> kFmtShift) & 3;
  // An unknown FMT decodes as stage 2, which no encoded entry has: a test comparing
  // descriptions then fails.
  s1.pgtable_fmt = f == kFmtArmLpaeS1 ? IoPgtableFmt::arm_64_lpae_s1
                   : f == kFmtVtdFl   ? IoPgtableFmt::intel_vtd_fl
                                      : IoPgtableFmt::arm_64_lpae_s2;
  s1.levels = (w[0] >> kLevelsShift) & 7;
  s1.flags = (w[0] & kHd ? PASID_S1_HW_DIRTY : 0) | (w[0] & kCoh ? PASID_S1_COHERENT_WALK : 0);
  s1.asid = static_cast<uint32_t>(w[0] >> kAsidShift);
  s1.ttbr = w[1];
  s1.tcr.t0sz = (w[2] >> kT0szShift) & 63;
  s1.tcr.tg0 = (w[2] >> kTg0Shift) & 3;
  s1.tcr.irgn0 = (w[2] >> kIrgn0Shift) & 3;
  s1.tcr.orgn0 = (w[2] >> kOrgn0Shift) & 3;
  s1.tcr.sh0 = (w[2] >> kSh0Shift) & 3;
  s1.tcr.ips = (w[2] >> kIpsShift) & 7;
  s1.mair = w[3];
  return s1;
}

}  // namespace fake_pasid

using namespace fake_pasid;

Result<FakePasidEntry> fake_pasid_read(sim::PhysMem& mem, const PasidTable& t, ioasid_t pasid) {
  if (pasid >= t.nr_entries()) return Error(-ERANGE);
  FakePasidEntry e;
  phys_addr_t table = t.base();
  ioasid_t index = pasid;
  if (t.two_level()) {
    const uint64_t ptr = STRATA_TRY(mem.read64(t.base() + (pasid / kLeafEntries) * 8));
    if (!(ptr & kRootV)) return e;
    table = ptr & kRootAddrMask;
    index = pasid % kLeafEntries;
  }
  e.leaf_present = true;
  e.pa = table + index * kEntryBytes;
  // Word 0 first, as the walker reads it.
  for (unsigned w = 0; w < kEntryWords; w++) e.raw[w] = STRATA_TRY(mem.read64(e.pa + w * 8));
  e.valid = e.raw[0] & kV;
  e.s1 = decode(e.raw);
  return e;
}

// Per-table state, in kzalloc'd memory (t.priv()) so that kmalloc failure injection reaches
// the vendor's allocations as well as the core's.
struct FakePasidTableOps::Table {
  DmaRegion root;  // linear: the entries; two-level: the root pointers
  bool two_level = false;
  uint32_t nr_leaves = 0;
  Leaf* leaves = nullptr;  // two-level: kzalloc'd [nr_leaves]
  std::atomic<bool> in_op{false};
  long unsynced = -1;  // the PASID written or cleared and not synced since, or -1
};

// Marks one op of a table as running; two at once mean the core's lock did not serialise them.
struct FakePasidTableOps::OpScope {
  OpScope(FakePasidTableOps& ops, Table& st, const char* what) : st_(st) {
    if (st_.in_op.exchange(true, std::memory_order_acquire))
      ops.protocol_error(fmt::format("{} ran concurrently with another op of its table", what));
  }
  ~OpScope() { st_.in_op.store(false, std::memory_order_release); }
  Table& st_;
};

FakePasidTableOps::~FakePasidTableOps() {
  // Tables point at their ops; a live one would call into freed memory.
  STRATA_BUG_ON(tables_live() != 0);
}

FakePasidTableOps::Table& FakePasidTableOps::state(const PasidTable& t) const {
  return *static_cast<Table*>(t.priv());
}

Result<void> FakePasidTableOps::alloc(PasidTable& t) {
  if (t.fmt() != PasidTableFmt::fake) return Error(-EINVAL);
  const uint32_t nr = t.nr_entries();
  // One leaf's worth or less: a root would only add a level (served linear, as SMMUv3 does).
  const bool two_level = t.cfg().two_level && nr > kLeafEntries;
  if (two_level && !options_.two_level_supported) return Error(-EINVAL);

  void* mem = kzalloc(sizeof(Table), alignof(Table));
  if (!mem) return Error(-ENOMEM);
  Table* st = new (mem) Table();
  auto undo = [&] {
    st->~Table();
    kfree(st);
  };
  st->two_level = two_level;
  const size_t root_bytes = two_level ? (nr / kLeafEntries) * 8 : size_t{nr} * kEntryBytes;
  auto root = t.cfg().dma->alloc(root_bytes, 64);
  if (!root.ok()) {
    undo();
    return root.error();
  }
  st->root = root.value();
  if (two_level) {
    st->nr_leaves = nr / kLeafEntries;
    st->leaves = static_cast<Leaf*>(kzalloc(st->nr_leaves * sizeof(Leaf), alignof(Leaf)));
    if (!st->leaves) {
      t.cfg().dma->free(st->root);
      undo();
      return Error(-ENOMEM);
    }
  }
  t.set_base(st->root.phys);
  t.set_two_level(two_level);
  t.set_priv(st);
  allocs_++;
  return ok();
}

void FakePasidTableOps::free(PasidTable& t) {
  Table* st = &state(t);
  {
    OpScope op(*this, *st, "free");
    if (st->unsynced >= 0)
      protocol_error(fmt::format("table freed with PASID {} never synced", st->unsynced));
    DmaAllocator& dma = *t.cfg().dma;
    for (uint32_t i = 0; i < st->nr_leaves; i++) {
      if (st->leaves[i].region.cpu) dma.free(st->leaves[i].region);
    }
    kfree(st->leaves);
    dma.free(st->root);
  }
  st->~Table();
  kfree(st);
  t.set_priv(nullptr);
  frees_++;
}

FakePasidTableOps::EntryRef FakePasidTableOps::entry_ref(Table& st, ioasid_t pasid) const {
  if (!st.two_level) {
    const size_t off = size_t{pasid} * kEntryBytes;
    return {reinterpret_cast<uint64_t*>(static_cast<char*>(st.root.cpu) + off), &st.root, off};
  }
  const Leaf& leaf = st.leaves[pasid / kLeafEntries];
  if (!leaf.region.cpu) return {nullptr, nullptr, 0};
  const size_t off = size_t{pasid % kLeafEntries} * kEntryBytes;
  return {reinterpret_cast<uint64_t*>(static_cast<char*>(leaf.region.cpu) + off), &leaf.region,
          off};
}

// Cleans what the CPU wrote to memory for a walker that does not snoop (cfg.coherent_walk);
// SimDmaAllocator counts the calls.
void FakePasidTableOps::clean(const PasidTable& t, const DmaRegion& region, size_t offset,
                              size_t len) {
  if (!t.cfg().coherent_walk) t.cfg().dma->sync_for_device(region, offset, len);
}

Result<PasidWrite> FakePasidTableOps::write(PasidTable& t, ioasid_t pasid, const PasidStage1& s1) {
  Table& st = state(t);
  OpScope op(*this, st, "write");
  if (pasid >= t.nr_entries()) {
    protocol_error(fmt::format("write of PASID {} beyond {} entries", pasid, t.nr_entries()));
    return Error(-ERANGE);
  }
  if (st.unsynced >= 0)
    protocol_error(fmt::format("write of PASID {} before PASID {} was synced", pasid, st.unsynced));
  // Everything that can fail comes before the first store: on error nothing changed.
  const auto words = STRATA_TRY(encode(s1));
  DmaAllocator& dma = *t.cfg().dma;
  PasidWrite what = PasidWrite::entry;

  EntryRef e = entry_ref(st, pasid);
  if (!e.cpu) {
    // A new leaf: it is unreachable until its root pointer is published, so the entry can be
    // written whole first (IHI 0070 3.21.3.1 allows the same for a CD no pointer reaches yet).
    Leaf& leaf = st.leaves[pasid / kLeafEntries];
    leaf.region = STRATA_TRY(dma.alloc(kLeafBytes, kLeafBytes));
    leaves_allocated_++;
    e = entry_ref(st, pasid);
    for (unsigned w = 0; w < kEntryWords; w++) dma_write64(e.cpu + w, words[w]);
    clean(t, *e.region, e.offset, kEntryBytes);
    dma_wmb();  // the leaf's contents before the pointer to it
    uint64_t* ptr = static_cast<uint64_t*>(st.root.cpu) + pasid / kLeafEntries;
    dma_write64(ptr, (leaf.region.phys & kRootAddrMask) | kRootV);
    clean(t, st.root, (pasid / kLeafEntries) * 8, 8);
    // The walker may hold the invalid pointer it read before: the core's sync must be non-leaf.
    leaf.needs_nonleaf_sync = true;
    what = PasidWrite::entry_and_leaf_table;
  } else {
    if (dma_read64(e.cpu) & kV) {
      // Replacing a live entry. Words 1-3 cannot change in one store with word 0, and a walker
      // holding the old entry would mix it with the new: break (V = 0, then drop cached
      // copies), then make.
      dma_write64(e.cpu, 0);
      clean(t, *e.region, e.offset, 8);
      sync_locked(st, t, pasid, true);
    }
    // The valid bit last: a walker that sees V == 1 then reads the other words, which must
    // already be the new ones.
    for (unsigned w = 1; w < kEntryWords; w++) dma_write64(e.cpu + w, words[w]);
    clean(t, *e.region, e.offset + 8, kEntryBytes - 8);
    dma_wmb();
    dma_write64(e.cpu, words[0]);
    clean(t, *e.region, e.offset, 8);
  }
  writes_++;
  st.unsynced = pasid;
  return what;
}

void FakePasidTableOps::clear(PasidTable& t, ioasid_t pasid) {
  Table& st = state(t);
  OpScope op(*this, st, "clear");
  if (pasid >= t.nr_entries()) {
    protocol_error(fmt::format("clear of PASID {} beyond {} entries", pasid, t.nr_entries()));
    return;
  }
  if (st.unsynced >= 0)
    protocol_error(fmt::format("clear of PASID {} before PASID {} was synced", pasid, st.unsynced));
  const EntryRef e = entry_ref(st, pasid);
  if (!e.cpu || !(dma_read64(e.cpu) & kV)) {
    protocol_error(fmt::format("clear of PASID {}, which is not valid", pasid));
    return;
  }
  // The valid bit first: a walker reading the entry meanwhile sees it invalid and ignores the
  // other words, instead of a valid entry with half of them zeroed.
  dma_write64(e.cpu, 0);
  clean(t, *e.region, e.offset, 8);
  dma_wmb();
  for (unsigned w = 1; w < kEntryWords; w++) dma_write64(e.cpu + w, 0);
  clean(t, *e.region, e.offset + 8, kEntryBytes - 8);
  clears_++;
  st.unsynced = pasid;
}

void FakePasidTableOps::sync(PasidTable& t, ioasid_t pasid, bool leaf) {
  Table& st = state(t);
  OpScope op(*this, st, "sync");
  sync_locked(st, t, pasid, leaf);
}

void FakePasidTableOps::sync_locked(Table& st, PasidTable& t, ioasid_t pasid, bool leaf) {
  {
    std::lock_guard g(lock_);
    sync_log_.push_back({&t, {pasid, leaf}});
  }
  if (pasid >= t.nr_entries()) {
    protocol_error(fmt::format("sync of PASID {} beyond {} entries", pasid, t.nr_entries()));
    return;
  }
  if (st.unsynced == static_cast<long>(pasid)) st.unsynced = -1;
  if (!st.two_level) return;
  Leaf& l = st.leaves[pasid / kLeafEntries];
  if (!leaf) {
    l.needs_nonleaf_sync = false;
  } else if (l.needs_nonleaf_sync) {
    protocol_error(fmt::format("leaf-only sync of PASID {}, whose leaf table is new", pasid));
  }
}

void FakePasidTableOps::protocol_error(std::string what) {
  std::lock_guard g(lock_);
  errors_.push_back(std::move(what));
}

std::vector<FakePasidTableOps::SyncCall> FakePasidTableOps::syncs(const PasidTable* t) const {
  std::lock_guard g(lock_);
  std::vector<SyncCall> out;
  for (const LoggedSync& s : sync_log_) {
    if (!t || s.table == t) out.push_back(s.call);
  }
  return out;
}

void FakePasidTableOps::clear_syncs() {
  std::lock_guard g(lock_);
  sync_log_.clear();
}

std::vector<std::string> FakePasidTableOps::protocol_errors() const {
  std::lock_guard g(lock_);
  return errors_;
}

std::ostream& operator<<(std::ostream& os, const FakePasidTableOps::SyncCall& s) {
  return os << "{" << s.pasid << (s.leaf ? ", leaf}" : ", non-leaf}");
}

}  // namespace strata::testing
