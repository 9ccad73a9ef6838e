// SPDX-License-Identifier: MIT
// CD tables (cd_table.h has the layout, the update and invalidation rules, and the locking).
#include "drivers/iommu/arm/arm-smmu-v3/cd_table.h"

#include <new>

#include "arch/bug.h"
#include "arch/cpu.h"
#include "arch/log.h"
#include "arch/smmuv3/ste.h"
#include "drivers/iommu/arm/arm-smmu-v3/cd_lib.h"

namespace strata::arm_smmu_v3 {

using smmuv3::CD;
using smmuv3::L1CD;

static_assert(sizeof(CD) == kCdBytes && kCdLeafBytes == 64 * 1024);

struct CdTable::Leaf {
  DmaBuffer buf;  // allocated under lock_, then never changed until the table is freed
  // buf.cpu() once the L1CD pointing at the leaf is valid and invalidated with Leaf == 0: the
  // lock-free path uses a leaf only then. Stored with release under lock_, loaded with acquire.
  void* ready = nullptr;
};

// The entry writer's view of one CD: its used bits, and a sync that cleans the CD and, when an
// SMMU can reach it, invalidates it through every stream (CMD_CFGI_CD Leaf == 1, CMD_SYNC).
// The first invalidation error is kept for the caller: EntryWriter::sync cannot return it, and
// the protocol goes on (every later step still tries to invalidate).
class CdTable::Writer final : public EntryWriter {
 public:
  Writer(CdTable& table, uint32_t ssid, const CdRef& cd, bool reachable)
      : table_(table), ssid_(ssid), cd_(cd), reachable_(reachable) {}

  void get_used(const uint64_t* entry, uint64_t* used) const override { cd_get_used(entry, used); }
  void sync() override {
    table_.clean(*cd_.region, cd_.offset, kCdBytes);
    // A leaf no L1CD points at yet cannot be fetched or cached (3.21.3): the clean is all.
    if (!reachable_) return;
    Result<void> r = table_.invalidate(ssid_, /*leaf=*/true);
    if (!r.ok() && error_ == 0) error_ = r.error().code();
  }
  Result<void> result() const {
    if (error_) return Error(error_);
    return ok();
  }

 private:
  CdTable& table_;
  const uint32_t ssid_;
  const CdRef cd_;
  const bool reachable_;
  int error_ = 0;
};

Result<Box<CdTable>> CdTable::alloc(const CdTableCfg& cfg, CdInvalidator& invalidator) {
  if (!cfg.dma || cfg.s1cdmax > kCdMaxS1CdMax) return Error(-EINVAL);
  // Up to one leaf's worth of CDs, a root would only add a fetch: linear.
  const bool two_level = cfg.two_level && cfg.s1cdmax > kCdSplit;
  Box<CdTable> t = STRATA_TRY(make_box<CdTable>(Token{}, cfg, invalidator, two_level));
  size_t bytes, align;
  if (two_level) {
    const uint32_t nr_leaves = uint32_t{1} << (cfg.s1cdmax - kCdSplit);
    void* mem = kzalloc(nr_leaves * sizeof(Leaf), alignof(Leaf));
    if (!mem) return Error(-ENOMEM);
    t->leaves_ = static_cast<Leaf*>(mem);
    for (uint32_t i = 0; i < nr_leaves; i++) new (&t->leaves_[i]) Leaf();
    t->nr_leaves_ = nr_leaves;
    // 5.2 S1Fmt: "L1 tables are aligned to their size, or 64 bytes, whichever is greater".
    bytes = nr_leaves * sizeof(L1CD);
    align = bytes < 64 ? 64 : bytes;
  } else {
    // 5.2 S1Fmt 0b00: "The table is aligned to its size" (64 bytes for a single CD).
    bytes = size_t{t->nr_cds_} * kCdBytes;
    align = bytes;
  }
  // Zeroed: every CD and L1CD starts with V == 0.
  t->root_ = STRATA_TRY(DmaBuffer::alloc(*cfg.dma, bytes, align));
  return t;
}

CdTable::CdTable(Token, const CdTableCfg& cfg, CdInvalidator& invalidator, bool two_level)
    : cfg_(cfg),
      invalidator_(invalidator),
      nr_cds_(uint32_t{1} << cfg.s1cdmax),
      two_level_(two_level) {}

CdTable::~CdTable() {
  // The SMMU no longer walks the table (see the header): leaves and root go in any order.
  if (leaves_) {
    for (uint32_t i = 0; i < nr_leaves_; i++) leaves_[i].~Leaf();
    kfree(leaves_);
  }
}

uint64_t CdTable::s1fmt() const { return two_level_ ? smmuv3::kS1Fmt64KL2 : smmuv3::kS1FmtLinear; }

CdTable::CdRef CdTable::published_cd(uint32_t ssid) const {
  if (!two_level_) {
    const size_t off = size_t{ssid} * kCdBytes;
    return {reinterpret_cast<uint64_t*>(root_.as<char>() + off), &root_.region(), off};
  }
  const Leaf& l = leaves_[ssid >> kCdSplit];
  void* cpu = __atomic_load_n(&l.ready, __ATOMIC_ACQUIRE);
  if (!cpu) return {};
  const size_t off = size_t{ssid & (kCdLeafEntries - 1)} * kCdBytes;
  return {reinterpret_cast<uint64_t*>(static_cast<char*>(cpu) + off), &l.buf.region(), off};
}

CdTable::CdRef CdTable::allocated_cd_locked(uint32_t ssid) const {
  if (!two_level_) return published_cd(ssid);
  const Leaf& l = leaves_[ssid >> kCdSplit];
  if (!l.buf) return {};
  const size_t off = size_t{ssid & (kCdLeafEntries - 1)} * kCdBytes;
  return {reinterpret_cast<uint64_t*>(l.buf.as<char>() + off), &l.buf.region(), off};
}

void CdTable::publish_leaf_locked(uint32_t ssid) {
  if (!two_level_) return;
  Leaf& l = leaves_[ssid >> kCdSplit];
  if (l.buf && !__atomic_load_n(&l.ready, __ATOMIC_RELAXED))
    __atomic_store_n(&l.ready, l.buf.cpu(), __ATOMIC_RELEASE);
}

void CdTable::clean(const DmaRegion& region, size_t offset, size_t len) const {
  if (!cfg_.coherent) cfg_.dma->sync_for_device(region, offset, len);
}

Result<void> CdTable::invalidate(uint32_t ssid, bool leaf) {
  Result<void> r = invalidator_.cfgi_cd(ssid, leaf);
  if (!r.ok()) {
    invalidation_errors_.fetch_add(1, std::memory_order_relaxed);
    pr_err("arm-smmu-v3 cd-lib: CMD_CFGI_CD SubstreamID {:#x} Leaf {} failed: {}", ssid,
           leaf ? 1 : 0, r.error());
  }
  return r;
}

Result<CdWriteInfo> CdTable::write_cd(uint32_t ssid, const uint64_t* target, CdSync sync) {
  if (ssid >= nr_cds_) return Error(-ERANGE);
  const CdRef cd = published_cd(ssid);
  if (!cd.cpu) return install_leaf_and_write(ssid, target, sync);
  CdWriteInfo info;
  Writer w(*this, ssid, cd, /*reachable=*/true);
  info.entry = write_entry(w, cd.cpu, target);
  STRATA_TRY(w.result());
  return info;
}

Result<CdWriteInfo> CdTable::write_cd(uint32_t ssid, const CD& cd, CdSync sync) {
  uint64_t target[kEntryQwords];
  for (unsigned i = 0; i < kEntryQwords; i++) target[i] = cd.word(i);
  return write_cd(ssid, target, sync);
}

// The slow path of write_cd: the leaf of `ssid` is absent, or its L1CD is not yet invalidated.
Result<CdWriteInfo> CdTable::install_leaf_and_write(uint32_t ssid, const uint64_t* target,
                                                    CdSync sync) {
  Guard g(lock_);
  CdWriteInfo info;
  if (const CdRef cd = published_cd(ssid); cd.cpu) {
    // Another writer installed it while this one waited for the lock.
    Writer w(*this, ssid, cd, /*reachable=*/true);
    info.entry = write_entry(w, cd.cpu, target);
    STRATA_TRY(w.result());
    return info;
  }
  Leaf& l = leaves_[ssid >> kCdSplit];
  const bool fresh = !l.buf;
  // The only step that can fail for want of memory comes first: on -ENOMEM nothing changed.
  if (fresh) l.buf = STRATA_TRY(DmaBuffer::alloc(*cfg_.dma, kCdLeafBytes, kCdLeafBytes));
  const CdRef cd = allocated_cd_locked(ssid);
  // A fresh leaf is unreachable until its L1CD is valid, so the CD is written whole with no
  // command (3.21.3.1, last note). A leaf whose L1CD is already valid in memory (a previous
  // L1CD invalidation failed, or a by_caller one is pending) may be reached through it: the
  // full protocol.
  Writer w(*this, ssid, cd, /*reachable=*/!fresh);
  info.entry = write_entry(w, cd.cpu, target);
  STRATA_TRY(w.result());
  if (fresh) {
    // The leaf's contents are observable before the pointer to them.
    dma_wmb();
    const uint32_t index = ssid >> kCdSplit;
    L1CD d;
    d.set<L1CD::V>(1).set<L1CD::L2Ptr>(l.buf.phys());
    dma_write64(root_.as<uint64_t>() + index, d.word(0));
    clean(root_.region(), size_t{index} * sizeof(L1CD), sizeof(L1CD));
  }
  if (sync == CdSync::by_caller) {
    // The caller's sync_cd(ssid, false) publishes the leaf once it has succeeded.
    info.l1cd_sync_needed = true;
    return info;
  }
  // 5.3.1: from V == 0 to V == 1, only the L1CD needs invalidating (Leaf == 0). The CDs of the
  // leaf were unreachable, so none can be cached.
  STRATA_TRY(invalidate(ssid, /*leaf=*/false));
  publish_leaf_locked(ssid);
  return info;
}

Result<void> CdTable::clear_cd(uint32_t ssid, CdSync sync) {
  if (ssid >= nr_cds_) return Error(-ERANGE);
  CdRef cd = published_cd(ssid);
  if (!cd.cpu && two_level_) {
    // An allocated leaf keeps its address until the table is freed: the reference outlives
    // the lock.
    Guard g(lock_);
    cd = allocated_cd_locked(ssid);
  }
  if (!cd.cpu || !(dma_read64(cd.cpu) & CD::V::kMask)) return ok();  // not valid: nothing to do
  // 3.21.3.1: V = 0 first, then CMD_CFGI_CD and CMD_SYNC. Word 0 whole: with V == 0 its other
  // fields are IGNORED too.
  dma_write64(cd.cpu, 0);
  clean(*cd.region, cd.offset, sizeof(uint64_t));
  if (sync == CdSync::by_caller) return ok();
  return sync_cd(ssid, /*leaf=*/true);
}

Result<void> CdTable::sync_cd(uint32_t ssid, bool leaf) {
  if (ssid >= nr_cds_) return Error(-ERANGE);
  STRATA_TRY(invalidate(ssid, leaf));
  CdRef cd = published_cd(ssid);
  if (!cd.cpu && two_level_) {
    Guard g(lock_);
    if (!leaf) publish_leaf_locked(ssid);  // its L1CD is now invalidated
    cd = allocated_cd_locked(ssid);
  }
  if (cd.cpu) scrub_if_invalid(cd);
  return ok();
}

// After an invalidation of a CD with V == 0 has completed, the SMMU holds no valid copy of it
// and reads V == 0 in any new fetch, so the other words may change in any order with no
// further command (5.4 V): a cleared CD ends as zeros.
void CdTable::scrub_if_invalid(const CdRef& cd) {
  if (dma_read64(cd.cpu) & CD::V::kMask) return;
  bool changed = false;
  for (unsigned i = 0; i < kEntryQwords; i++) {
    if (dma_read64(cd.cpu + i) == 0) continue;
    dma_write64(cd.cpu + i, 0);
    changed = true;
  }
  if (changed) clean(*cd.region, cd.offset, kCdBytes);
}

void CdTable::read_cd(uint32_t ssid, uint64_t* out) const {
  for (unsigned i = 0; i < kEntryQwords; i++) out[i] = 0;
  if (ssid >= nr_cds_) return;
  CdRef cd = published_cd(ssid);
  if (!cd.cpu && two_level_) {
    Guard g(lock_);
    cd = allocated_cd_locked(ssid);
  }
  if (!cd.cpu) return;
  for (unsigned i = 0; i < kEntryQwords; i++) out[i] = dma_read64(cd.cpu + i);
}

}  // namespace strata::arm_smmu_v3
