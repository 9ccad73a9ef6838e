// SPDX-License-Identifier: MIT
#include "drivers/iommu/arm/arm-smmu-v3/strtab.h"

#include <new>
#include <utility>

#include "arch/bug.h"
#include "arch/cpu.h"
#include "arch/errno.h"
#include "arch/log.h"
#include "drivers/iommu/arm/arm-smmu-v3/ste.h"

namespace strata::arm_smmu_v3 {

using smmuv3::L1STD;
using smmuv3::STE;

namespace {

constexpr size_t kSteBytes = sizeof(STE);
static_assert(STE::kWords == kEntryQwords);

}  // namespace

// The EntryWriter of one live STE. write_entry runs on a private copy of the entry (`staging`);
// each sync publishes the words that changed since the last one to the live STE, cleans them
// for a non-coherent SMMU and invalidates. After a failed invalidation it publishes nothing
// more, so the live STE keeps the consistent state of the failed step (strtab.h, "Failed
// invalidations").
class Strtab::SteWriter final : public EntryWriter {
 public:
  SteWriter(Strtab& table, uint32_t sid, uint64_t* live, const DmaBuffer& buf, size_t offset)
      : table_(table), sid_(sid), live_(live), buf_(buf), offset_(offset) {
    for (unsigned i = 0; i < kEntryQwords; i++) staging[i] = dma_read64(live_ + i);
  }

  void get_used(const uint64_t* entry, uint64_t* used) const override { ste_get_used(entry, used); }

  void sync() override {
    if (error_ != 0) return;
    for (unsigned i = 0; i < kEntryQwords; i++) {
      const uint64_t v = dma_read64(staging + i);
      if (dma_read64(live_ + i) != v) dma_write64(live_ + i, v);
    }
    buf_.sync_for_device(offset_, kSteBytes);
    // Leaf == 1: only the STE changed. The L1STD of a 2-level table was invalidated when it
    // was installed (install_l2 does not return success before that).
    Result<void> r = table_.invalidator_.cfgi_ste(sid_, /*leaf=*/true);
    if (!r.ok()) {
      error_ = r.error().code();
      dev_err(table_.name_,
              "STE of StreamID {:#x}: CMD_CFGI_STE failed ({}); update stopped, the STE is left "
              "as published so far",
              sid_, r.error());
    }
  }

  int error() const { return error_; }

  uint64_t staging[kEntryQwords];  // what write_entry reads and writes

 private:
  Strtab& table_;
  const uint32_t sid_;
  uint64_t* const live_;
  const DmaBuffer& buf_;
  const size_t offset_;
  int error_ = 0;  // the first failed invalidation's errno
};

Strtab::Strtab(Token, DmaAllocator& dma, StrtabInvalidator& invalidator, const StrtabConfig& cfg)
    : dma_(dma),
      invalidator_(invalidator),
      initial_(cfg.initial),
      name_(cfg.name),
      two_level_requested_(cfg.two_level) {}

Strtab::~Strtab() {
  // The SMMU no longer walks the table (strtab.h): the level-2 arrays, then the bookkeeping,
  // then the table itself (table_'s destructor).
  for (size_t i = 0; i < num_l2_; i++) l2_[i].~L2();
  kfree(l2_);
}

Result<Box<Strtab>> Strtab::create(DmaAllocator& dma, StrtabInvalidator& invalidator,
                                   const StrtabConfig& cfg) {
  if (cfg.sid_bits > 32) return Error(-EINVAL);
  Box<Strtab> table = STRATA_TRY(make_box<Strtab>(Token{}, dma, invalidator, cfg));
  // On failure the Box's destructor frees whatever init() allocated.
  STRATA_TRY(table->init(cfg.sid_bits));
  return table;
}

Result<void> Strtab::init(unsigned sid_bits) {
  // 2-level when the SMMU has it and more StreamIDs than one level-2 array covers (Linux's
  // rule): a linear table is then too large to allocate in one piece, mostly for nothing.
  two_level_ = false;
  log2size_ = sid_bits;
  if (two_level_requested_ && sid_bits > kSplit) {
    two_level_ = true;
    const unsigned l1_log2 = sid_bits - kSplit < kMaxL1Log2 ? sid_bits - kSplit : kMaxL1Log2;
    log2size_ = kSplit + l1_log2;
    const size_t num_l1 = size_t{1} << l1_log2;
    // The level-1 table: aligned to its size, at least 64 bytes (6.3.24). Zeroed: every L1STD
    // has Span 0, invalid.
    const size_t bytes = num_l1 * sizeof(L1STD) < 64 ? 64 : num_l1 * sizeof(L1STD);
    table_ = STRATA_TRY(DmaBuffer::alloc(dma_, bytes, bytes));
    table_.sync_for_device(0, bytes);
    void* mem = kzalloc(num_l1 * sizeof(L2), alignof(L2));
    if (!mem) return Error(-ENOMEM);
    l2_ = static_cast<L2*>(mem);
    num_l2_ = num_l1;
    for (size_t i = 0; i < num_l2_; i++) new (&l2_[i]) L2();
    return ok();
  }
  // Linear: 2^SIDSIZE STEs, aligned to the table's size (6.3.24).
  const uint64_t bytes = uint64_t{kSteBytes} << sid_bits;
  table_ = STRATA_TRY(DmaBuffer::alloc(dma_, bytes, bytes));
  fill_initial(table_.cpu(), size_t{1} << sid_bits);
  table_.sync_for_device(0, bytes);
  return ok();
}

void Strtab::fill_initial(void* stes, size_t count) const {
  auto* w = static_cast<uint64_t*>(stes);
  for (size_t i = 0; i < count; i++)
    for (unsigned j = 0; j < kEntryQwords; j++)
      dma_write64(w + i * kEntryQwords + j, initial_.word(j));
}

smmuv3::STRTAB_BASE Strtab::strtab_base() const {
  // RA: read-allocate the table in the SMMU's cache, as Linux does.
  return smmuv3::STRTAB_BASE{}
      .set<smmuv3::STRTAB_BASE::ADDR>(table_.phys())
      .set<smmuv3::STRTAB_BASE::RA>(1);
}

smmuv3::STRTAB_BASE_CFG Strtab::strtab_base_cfg() const {
  smmuv3::STRTAB_BASE_CFG cfg;
  cfg.set<smmuv3::STRTAB_BASE_CFG::LOG2SIZE>(log2size_);
  if (two_level_) {
    cfg.set<smmuv3::STRTAB_BASE_CFG::FMT>(smmuv3::kStrtabFmt2Level)
        .set<smmuv3::STRTAB_BASE_CFG::SPLIT>(kSplit);
  } else {
    cfg.set<smmuv3::STRTAB_BASE_CFG::FMT>(smmuv3::kStrtabFmtLinear);
  }
  return cfg;
}

Result<void> Strtab::install_l2(uint32_t sid) {
  if (sid >= num_sids()) return Error(-ERANGE);
  if (!two_level_) return ok();
  L2& l2 = l2_[sid >> kSplit];
  if (!l2.installed.load(std::memory_order_acquire)) {
    Guard<Mutex> guard(l2_lock_);
    if (!l2.installed.load(std::memory_order_relaxed)) return install_l2_locked(sid, l2);
  }
  // Installed, by an earlier call or a racing one. If that installation's invalidation failed,
  // the SMMU may still hold the invalid L1STD: issue it again before anything relies on the
  // span. Racing retries are harmless.
  if (l2.l1_stale.load(std::memory_order_acquire)) {
    STRATA_TRY(invalidator_.cfgi_ste(sid, /*leaf=*/false));
    l2.l1_stale.store(false, std::memory_order_release);
  }
  return ok();
}

Result<void> Strtab::install_l2_locked(uint32_t sid, L2& l2) {
  // 1. The level-2 array, every STE initial and valid, aligned to its size (5.1 L2Ptr: bits
  //    [5 + Span - 1:0] are taken as zero). Nothing is changed if this fails.
  const size_t bytes = kSteBytes << kSplit;
  DmaBuffer buf = STRATA_TRY(DmaBuffer::alloc(dma_, bytes, bytes));
  fill_initial(buf.cpu(), size_t{1} << kSplit);
  buf.sync_for_device(0, bytes);
  // 2. The STEs are observable before the L1STD that makes them reachable.
  dma_wmb();
  L1STD desc;
  desc.set<L1STD::Span>(kSplit + 1).set<L1STD::L2Ptr>(buf.phys());
  const size_t off = size_t{sid >> kSplit} * sizeof(L1STD);
  dma_write64(table_.as<uint8_t>() + off, desc.word(0));
  table_.sync_for_device(off, sizeof(L1STD));
  l2.buf = std::move(buf);
  // 3. Drop a cached invalid L1STD: Leaf == 0 (5.1.1). Published only after, so no other
  //    writer of the span returns before the SMMU can reach its STE.
  Result<void> r = invalidator_.cfgi_ste(sid, /*leaf=*/false);
  l2.l1_stale.store(!r.ok(), std::memory_order_relaxed);
  l2.installed.store(true, std::memory_order_release);
  if (!r.ok()) {
    dev_err(name_, "L1STD for StreamIDs {:#x}-{:#x}: CMD_CFGI_STE failed ({})",
            sid & ~((1u << kSplit) - 1), sid | ((1u << kSplit) - 1), r.error());
    return r.error();
  }
  return ok();
}

uint64_t* Strtab::ste_ptr(uint32_t sid, const DmaBuffer** buf, size_t* offset) const {
  if (two_level_) {
    *buf = &l2_[sid >> kSplit].buf;
    *offset = size_t{smmuv3::strtab_l2_index(sid, kSplit)} * kSteBytes;
  } else {
    *buf = &table_;
    *offset = size_t{sid} * kSteBytes;
  }
  return reinterpret_cast<uint64_t*>((*buf)->as<uint8_t>() + *offset);
}

Result<EntryWriteStats> Strtab::write_ste(uint32_t sid, const uint64_t* target) {
  STRATA_TRY(install_l2(sid));
  const DmaBuffer* buf;
  size_t offset;
  uint64_t* live = ste_ptr(sid, &buf, &offset);
  SteWriter writer(*this, sid, live, *buf, offset);
  const EntryWriteStats stats = write_entry(writer, writer.staging, target);
  if (writer.error() != 0) return Error(writer.error());
  return stats;
}

Result<EntryWriteStats> Strtab::write_ste(uint32_t sid, const STE& target) {
  uint64_t words[kEntryQwords];
  ste_to_words(target, words);
  return write_ste(sid, words);
}

Result<STE> Strtab::read_ste(uint32_t sid) const {
  if (sid >= num_sids()) return Error(-ERANGE);
  if (two_level_ && !l2_[sid >> kSplit].installed.load(std::memory_order_acquire))
    return Error(-ENOENT);
  const DmaBuffer* buf;
  size_t offset;
  const uint64_t* live = ste_ptr(sid, &buf, &offset);
  STE ste;
  for (unsigned i = 0; i < kEntryQwords; i++) ste.set_word(i, dma_read64(live + i));
  return ste;
}

}  // namespace strata::arm_smmu_v3
