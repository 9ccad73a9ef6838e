// SPDX-License-Identifier: MIT
// The iommu-pasid-table library (pasid_table.h has the contract).
#include "core/pasid-table/pasid_table.h"

#include "arch/bug.h"

namespace strata {

// --- PasidStage1 -------------------------------------------------------------------------------

Result<PasidStage1> PasidStage1::from_io_pgtable(IoPgtableFmt fmt, const IoPgtableCfg& cfg,
                                                 uint32_t asid) {
  PasidStage1 s1 = {};
  s1.pgtable_fmt = fmt;
  s1.asid = asid;
  if (cfg.quirks & IO_PGTABLE_QUIRK_DIRTY) s1.flags |= PASID_S1_HW_DIRTY;
  if (cfg.coherent_walk) s1.flags |= PASID_S1_COHERENT_WALK;
  switch (fmt) {
    case IoPgtableFmt::arm_64_lpae_s1: {
      const auto& a = cfg.arm_lpae_s1;
      s1.ttbr = a.ttbr;
      s1.tcr = {a.t0sz, a.tg0, a.irgn0, a.orgn0, a.sh0, a.ips};
      s1.mair = a.mair;
      return s1;
    }
    case IoPgtableFmt::intel_vtd_fl:
      s1.ttbr = cfg.vtd.pgd;
      s1.levels = cfg.vtd.levels;
      return s1;
    // A PASID entry points at a stage-1 table; stage 2 belongs in the STE / context entry.
    case IoPgtableFmt::arm_64_lpae_s2:
    case IoPgtableFmt::intel_vtd_sl: break;
  }
  return Error(-EINVAL);
}

namespace {

bool is_stage1(IoPgtableFmt fmt) {
  return fmt == IoPgtableFmt::arm_64_lpae_s1 || fmt == IoPgtableFmt::intel_vtd_fl;
}

}  // namespace

// --- PasidTable --------------------------------------------------------------------------------

Result<Box<PasidTable>> PasidTable::alloc(PasidTableOps& ops, const PasidTableCfg& cfg,
                                          void* cookie) {
  if (!cfg.dma || cfg.pasid_bits > kPasidBits) return Error(-EINVAL);
  const uint32_t nr_entries = uint32_t{1} << cfg.pasid_bits;
  // A flat bitmap: nr_entries / 8 bytes, 128 KiB at the 20-bit maximum. That is at most 1/256 of
  // the table it describes once populated (SMMUv3 CDs and VT-d PASID entries are 64 bytes), and
  // keeps set_entry and clear_entry free of CPU allocations, so clear_entry cannot fail for
  // memory and set_entry allocates only the vendor's leaf tables.
  const size_t words = (nr_entries + kBitsPerWord - 1) / kBitsPerWord;
  auto* live = static_cast<uint64_t*>(kzalloc(words * sizeof(uint64_t), alignof(uint64_t)));
  if (!live) return Error(-ENOMEM);
  auto made = make_box<PasidTable>(Token{}, ops, cfg, cookie, live);
  if (!made.ok()) {
    kfree(live);  // the table owns the bitmap only once it exists
    return made.error();
  }
  Box<PasidTable> t = made.release_value();

  t->in_alloc_ = true;
  Result<void> r = ops.alloc(*t);
  t->in_alloc_ = false;
  if (!r.ok()) return r.error();  // ~PasidTable frees the bitmap, and calls no ops.free
  // A vendor that forgot the base would have the STE / context entry point at address 0.
  if (!t->base_set_) STRATA_BUG("PasidTableOps::alloc succeeded without set_base()");
  t->allocated_ = true;
  return t;
}

PasidTable::PasidTable(Token, PasidTableOps& ops, const PasidTableCfg& cfg, void* cookie,
                       uint64_t* live_bitmap)
    : ops_(ops),
      cfg_(cfg),
      nr_entries_(uint32_t{1} << cfg.pasid_bits),
      cookie_(cookie),
      live_(live_bitmap) {}

PasidTable::~PasidTable() {
  if (allocated_) ops_.free(*this);
  kfree(live_);
}

void PasidTable::set_base(phys_addr_t base) {
  if (!in_alloc_) STRATA_BUG("PasidTable::set_base outside PasidTableOps::alloc");
  base_ = base;
  base_set_ = true;
}

void PasidTable::set_two_level(bool two_level) {
  if (!in_alloc_) STRATA_BUG("PasidTable::set_two_level outside PasidTableOps::alloc");
  cfg_.two_level = two_level;
}

bool PasidTable::live(ioasid_t pasid) const {
  if (pasid >= nr_entries_) return false;
  const uint64_t word = __atomic_load_n(&live_[pasid / kBitsPerWord], __ATOMIC_RELAXED);
  return word & (uint64_t{1} << (pasid % kBitsPerWord));
}

Result<void> PasidTable::set_entry(ioasid_t pasid, const PasidStage1& s1) {
  if (pasid >= nr_entries_) return Error(-ERANGE);
  if (!is_stage1(s1.pgtable_fmt) || (s1.flags & ~PASID_S1_FLAGS)) return Error(-EINVAL);
  Guard g(lock_);
  const PasidWrite what = STRATA_TRY(ops_.write(*this, pasid, s1));  // on error: unchanged
  ops_.sync(*this, pasid, what == PasidWrite::entry);
  // Marked live only now that the hardware uses the entry. Only lock_'s holder writes the
  // bitmap, so a load and a store suffice; they are atomic for the lock-free readers.
  uint64_t* word = &live_[pasid / kBitsPerWord];
  const uint64_t mask = uint64_t{1} << (pasid % kBitsPerWord);
  const uint64_t old = __atomic_load_n(word, __ATOMIC_RELAXED);
  if (!(old & mask)) {
    __atomic_store_n(word, old | mask, __ATOMIC_RELAXED);
    nr_live_.store(nr_live_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  return ok();
}

Result<void> PasidTable::clear_entry(ioasid_t pasid) {
  if (pasid >= nr_entries_) return Error(-ERANGE);
  Guard g(lock_);
  uint64_t* word = &live_[pasid / kBitsPerWord];
  const uint64_t mask = uint64_t{1} << (pasid % kBitsPerWord);
  const uint64_t old = __atomic_load_n(word, __ATOMIC_RELAXED);
  if (!(old & mask)) return Error(-ENOENT);
  ops_.clear(*this, pasid);
  // Leaf tables are never freed before the table is, so only the entry needs invalidating.
  ops_.sync(*this, pasid, true);
  __atomic_store_n(word, old & ~mask, __ATOMIC_RELAXED);
  nr_live_.store(nr_live_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  return ok();
}

}  // namespace strata

// --- formatting --------------------------------------------------------------------------------

fmt::format_context::iterator fmt::formatter<strata::PasidStage1>::format(
    const strata::PasidStage1& s1, fmt::format_context& ctx) const {
  const char* pgtable = "?";
  switch (s1.pgtable_fmt) {
    case strata::IoPgtableFmt::arm_64_lpae_s1: pgtable = "arm_64_lpae_s1"; break;
    case strata::IoPgtableFmt::arm_64_lpae_s2: pgtable = "arm_64_lpae_s2"; break;
    case strata::IoPgtableFmt::intel_vtd_sl: pgtable = "intel_vtd_sl"; break;
    case strata::IoPgtableFmt::intel_vtd_fl: pgtable = "intel_vtd_fl"; break;
  }
  auto out = fmt::format_to(ctx.out(),
                            "{} TTB 0x{:x} T0SZ {} TG0 {} IRGN0 {} ORGN0 {} SH0 {} IPS {} "
                            "MAIR 0x{:x} levels {} ASID {} flags ",
                            pgtable, s1.ttbr, s1.tcr.t0sz, s1.tcr.tg0, s1.tcr.irgn0, s1.tcr.orgn0,
                            s1.tcr.sh0, s1.tcr.ips, s1.mair, s1.levels, s1.asid);
  const char* sep = "";
  if (s1.flags & strata::PASID_S1_HW_DIRTY) {
    out = fmt::format_to(out, "{}HW_DIRTY", sep);
    sep = "|";
  }
  if (s1.flags & strata::PASID_S1_COHERENT_WALK) {
    out = fmt::format_to(out, "{}COHERENT_WALK", sep);
    sep = "|";
  }
  if (const uint32_t rest = s1.flags & ~strata::PASID_S1_FLAGS) {
    out = fmt::format_to(out, "{}0x{:x}", sep, rest);
    sep = "|";
  }
  if (!*sep) out = fmt::format_to(out, "0");
  return out;
}
