// SPDX-License-Identifier: MIT
// iommu-pasid-table: a vendor-neutral PASID table (the library of the virtio-iommu nested
// series, which Linux never merged). A PASID table is what an IOMMU walks to find the stage-1
// configuration of one PASID (SMMUv3: SubstreamID) of a device: the SMMUv3 Context Descriptor
// table that STE.S1ContextPtr points at, or the VT-d scalable-mode PASID directory and PASID
// tables that a scalable-mode context entry points at. The iommu core, VFIO and a paravirtual
// IOMMU program PASIDs through this interface only; each vendor (the SMMUv3 CD library, the
// VT-d PASID code, the test fake) implements PasidTableOps and owns its format.
//
//   PasidTableCfg cfg{.fmt = PasidTableFmt::arm_smmuv3_cd, .pasid_bits = 20, .two_level = true,
//                     .dma = &smmu_dma};
//   Box<PasidTable> t = STRATA_TRY(PasidTable::alloc(cd_ops, cfg, master));
//   // program t->base() into STE.S1ContextPtr, S1CDMax = pasid_bits, S1Fmt from two_level()
//   PasidStage1 s1 = STRATA_TRY(PasidStage1::from_io_pgtable(IoPgtableFmt::arm_64_lpae_s1,
//                                                             pgtbl_cfg, asid));
//   STRATA_TRY(t->set_entry(pasid, s1));   // the entry is in effect when this returns
//   STRATA_TRY(t->clear_entry(pasid));     // and no longer in effect when this returns
//
// Layout. A table has 2^pasid_bits entries (SMMUv3 STE.S1CDMax, IHI 0070 5.2; VT-d's PASID width,
// ECAP.PSS + 1). It is linear, or two-level: a root of pointers to leaf tables that are allocated
// on the first write into them (SMMUv3 STE.S1Fmt 1 or 2, where a root entry is an L1CD, IHI 0070
// 5.3; VT-d's PASID directory, whose entries each point at a PASID table of 64 entries, VT-d 3.x
// "Scalable-Mode PASID Directory Entry"). two_level in the config is a request: the vendor may
// refuse it (-EINVAL), or choose the other layout when its format dictates (VT-d's scalable mode
// always has a directory; an SMMUv3 table whose entries fit in one leaf is linear). two_level()
// reports what was allocated. Leaf tables are freed only with the table.
//
// Semantics:
//  - set_entry(pasid, s1) writes the entry (PasidTableOps::write), then issues exactly one
//    sync (PasidTableOps::sync) that makes it take effect. A live entry may be replaced; the
//    vendor's write then keeps the hardware from ever using a mix of the old and the new
//    entry, with syncs of its own if its format needs them (below). clear_entry(pasid) clears
//    the entry and issues one sync; an entry that is not live is -ENOENT.
//  - A PASID >= nr_entries() is -ERANGE; a stage-2 description or an unknown flag is -EINVAL;
//    the vendor may refuse a description its format cannot hold (-EINVAL) or a replacement it
//    cannot make safely (-EBUSY), and fail a leaf allocation (-ENOMEM). On any error nothing
//    was written, nothing was synced and nothing leaked.
//  - Destroying the table frees it (PasidTableOps::free) without clearing or syncing entries:
//    the caller must first make the hardware stop walking it (detach the STE / context entry
//    and invalidate), exactly as for an io-pgtable.
//
// Why a write may need more than one sync. The hardware may cache an entry, or a root pointer, that
// is invalid: SMMUv3 may cache any structure it fetched "whether marked as valid or not" (IHI 0070
// 3.21.3), and VT-d caches not-present entries in Caching Mode (VT-d 3.x "Caching Mode"). So after
// a write installs a leaf table, the one sync must also drop cached copies of the root pointer:
// write() says so and set_entry syncs with leaf = false (SMMUv3 CMD_CFGI_CD with Leaf = 0, IHI 0070
// 4.3.3 and 5.3.1). And a walker may fetch the words of an entry in any order (SMMUv3: IHI 0070
// 3.21.3.1 asks for an invalidation between filling a CD and setting its V bit); a vendor whose
// format has that property syncs inside write(), before making the entry valid.
//
// Concurrency: set_entry and clear_entry of different PASIDs may be called from any number of
// threads; calls for the same PASID at once are a caller bug. Each table serialises its
// writers, the syncs included, under a Mutex (PasidTable::lock_ below says why the syncs are
// inside it), so the vendor ops of one table never run concurrently, and they may sleep (leaf
// allocation does). live() and nr_live() take no lock and are snapshots.
#pragma once

#include <stdint.h>

#include <atomic>

#include <fmt/core.h>

#include "arch/dma.h"
#include "arch/lock.h"
#include "arch/memory.h"
#include "arch/result.h"
#include "core/io-pgtable/io_pgtable.h"
#include "core/pasid/pasid.h"

namespace strata {

// The format of the table, i.e. what the hardware walker reads. VFIO reports it to a guest
// that is given the table (the nesting info's stage-1 format).
enum class PasidTableFmt {
  arm_smmuv3_cd,    // SMMUv3 CD table: 64-byte CDs, L1CDs when two-level (IHI 0070 5.3, 5.4)
  intel_vtd_pasid,  // VT-d scalable-mode PASID directory + 64-byte PASID entries (VT-d 3.x)
  fake,             // testing/fake-iommu's format
};

struct PasidTableCfg {
  PasidTableFmt fmt;
  // nr_entries() = 2^pasid_bits, 0..kPasidBits (PCIe PASIDs are 20 bits): SMMUv3 S1CDMax,
  // VT-d PASID width. 0: one entry (SubstreamID-less SMMUv3 streams).
  unsigned pasid_bits;
  // A request for a two-level table with leaves allocated on demand (see the top comment).
  bool two_level;
  DmaAllocator* dma;
  // The walker snoops CPU caches; else the vendor cleans what it writes (sync_for_device).
  bool coherent_walk = true;
};

// Flags of a PasidStage1.
//
// The stage-1 tables rely on hardware dirty-state updates (io-pgtable's IO_PGTABLE_QUIRK_DIRTY:
// writable LPAE leaves are written clean with DBM set). An SMMUv3 CD then needs HD and HA (IHI
// 0070 5.4), or every write through a clean leaf faults; VT-d first-stage tables have their D
// bits set by hardware anyway.
inline constexpr uint32_t PASID_S1_HW_DIRTY = 1u << 0;
// The walker must snoop CPU caches for the stage-1 tables (io-pgtable's coherent_walk): VT-d's
// PWSNP (page-walk snoop) in the PASID entry. Arm says the same through TCR IRGN0/ORGN0/SH0.
inline constexpr uint32_t PASID_S1_COHERENT_WALK = 1u << 1;
inline constexpr uint32_t PASID_S1_FLAGS = PASID_S1_HW_DIRTY | PASID_S1_COHERENT_WALK;

// A vendor-neutral stage-1 description: what one entry points at. Fields that a format does not
// use are zero.
struct PasidStage1 {
  // The stage-1 table's format: arm_64_lpae_s1 (SMMUv3 CD, AA64 = 1) or intel_vtd_fl (VT-d
  // first stage). Stage-2 formats are refused.
  IoPgtableFmt pgtable_fmt;
  uint64_t ttbr;  // the stage-1 root: CD TTB0 (IHI 0070 5.4) / PASID entry FSPTPTR (VT-d 3.x)
  // Arm only: the CD's TCR fields for TTB0, in CD encoding (as io-pgtable reports them).
  struct Tcr {
    unsigned t0sz, tg0, irgn0, orgn0, sh0, ips;
    bool operator==(const Tcr&) const = default;
  } tcr;
  uint64_t mair;    // Arm only: CD MAIR0, MAIR_EL1 encoding
  unsigned levels;  // VT-d only: 4 or 5 (FSPM = levels - 4). Arm: T0SZ and TG0 imply it.
  uint32_t asid;    // Arm: the CD's ASID; VT-d: the domain id (DID) the entry tags with
  uint32_t flags;   // PASID_S1_*

  // Builds the description of what io-pgtable programmed: cfg's arm_lpae_s1 outputs for
  // arm_64_lpae_s1, its vtd outputs for intel_vtd_fl, and the flags from its quirks and
  // coherent_walk. -EINVAL for a stage-2 format.
  static Result<PasidStage1> from_io_pgtable(IoPgtableFmt fmt, const IoPgtableCfg& cfg,
                                             uint32_t asid);

  bool operator==(const PasidStage1&) const = default;
};

class PasidTable;

// What PasidTableOps::write changed besides the entry, which decides the sync set_entry issues.
enum class PasidWrite {
  entry,                 // only the entry: sync(leaf = true)
  entry_and_leaf_table,  // it also installed a leaf table in the root: sync(leaf = false)
};

// Implemented by a vendor. The core calls write, clear and sync of one table with the table's
// lock held (never two at once for one table; different tables may run concurrently), and may
// sleep there. Defined inline only: an interface that others implement has no out-of-line
// virtual function (arch/dma.h says why), and it is never destroyed through this base.
class PasidTableOps {
 public:
  // Allocates the table for t.cfg() (the root, when two-level), calls t.set_base() and
  // t.set_two_level() and keeps its state with t.set_priv(). On error everything is undone.
  virtual Result<void> alloc(PasidTable& t) = 0;
  // Frees what alloc and write allocated. The hardware no longer walks the table.
  virtual void free(PasidTable& t) = 0;
  // Writes the entry of `pasid` (< nr_entries, s1 a stage-1 description), allocating its leaf
  // table when two-level and absent. If the entry is live the vendor replaces it so that the
  // hardware never uses a mix of old and new (a hitless update, or break-before-make with a
  // sync() of its own in between), or refuses with -EBUSY. A vendor whose walker may fetch an
  // entry's words in any order syncs before setting the valid bit (IHI 0070 3.21.3.1). On
  // error nothing changed (an allocated leaf table is freed again).
  virtual Result<PasidWrite> write(PasidTable& t, ioasid_t pasid, const PasidStage1& s1) = 0;
  // Makes the live entry of `pasid` invalid (its valid bit first: the walker must never see a
  // partly cleared valid entry).
  virtual void clear(PasidTable& t, ioasid_t pasid) = 0;
  // Invalidates the hardware's cached copies of the entry of `pasid` (and, unless `leaf`, of
  // the root pointer leading to it) and waits for completion: SMMUv3 CMD_CFGI_CD + CMD_SYNC
  // for every stream using the table (IHI 0070 4.3.3), VT-d PASID-selective PASID-cache
  // invalidation and an invalidation wait descriptor (VT-d 3.x "Queued Invalidation").
  virtual void sync(PasidTable& t, ioasid_t pasid, bool leaf) = 0;

 protected:
  ~PasidTableOps() = default;
};

class PasidTable {
 public:
  // -EINVAL: no DmaAllocator, pasid_bits > kPasidBits, or the vendor refuses the config;
  // -ENOMEM. `cookie` is the caller's (the vendor may use it to find its device).
  static Result<Box<PasidTable>> alloc(PasidTableOps& ops, const PasidTableCfg& cfg, void* cookie);

  // Frees the table through ops.free, clearing and syncing nothing: the hardware must no
  // longer walk it.
  ~PasidTable();
  PasidTable(const PasidTable&) = delete;
  PasidTable& operator=(const PasidTable&) = delete;

  PasidTableFmt fmt() const { return cfg_.fmt; }
  uint32_t nr_entries() const { return nr_entries_; }
  phys_addr_t base() const { return base_; }
  bool two_level() const { return cfg_.two_level; }  // as allocated
  void* cookie() const { return cookie_; }
  const PasidTableCfg& cfg() const { return cfg_; }

  // Writes the entry, then syncs once (top comment). Replacing a live entry is allowed.
  // -ERANGE, -EINVAL, -EBUSY (the vendor cannot replace), -ENOMEM; on error nothing changed.
  Result<void> set_entry(ioasid_t pasid, const PasidStage1& s1);
  // Clears the entry, then syncs once. -ERANGE; -ENOENT when the entry is not live.
  Result<void> clear_entry(ioasid_t pasid);

  // Whether set_entry(pasid) completed and clear_entry(pasid) has not since. False for a
  // PASID out of range.
  bool live(ioasid_t pasid) const;
  unsigned nr_live() const { return nr_live_.load(std::memory_order_relaxed); }

  // For the vendor. set_base and set_two_level only inside ops.alloc (else a strata bug).
  void set_base(phys_addr_t base);
  void set_two_level(bool two_level);
  void set_priv(void* priv) { priv_ = priv; }
  void* priv() const { return priv_; }

 private:
  struct Token {};  // make_box needs a public constructor; only alloc() can name this

 public:
  PasidTable(Token, PasidTableOps& ops, const PasidTableCfg& cfg, void* cookie,
             uint64_t* live_bitmap);

 private:
  static constexpr unsigned kBitsPerWord = 64;

  PasidTableOps& ops_;
  PasidTableCfg cfg_;  // two_level as the vendor allocated it
  const uint32_t nr_entries_;
  void* const cookie_;
  phys_addr_t base_ = 0;
  void* priv_ = nullptr;
  bool in_alloc_ = false;   // inside ops.alloc: set_base/set_two_level allowed
  bool base_set_ = false;   // ops.alloc called set_base
  bool allocated_ = false;  // ops.alloc succeeded, so the destructor calls ops.free

  // Lock order: PasidTable::lock_ -> whatever the vendor's ops take (its command queue lock,
  // the DMA allocator's); the core takes no other lock under it and the ops must not call back
  // into set_entry/clear_entry. It serialises the vendor's write/clear/sync of this table and
  // the updates of live_ and nr_live_, which are read without it (relaxed atomics).
  //
  // The syncs are issued with it held. Otherwise a set_entry that installed a leaf table could
  // drop the lock before its non-leaf sync, and a set_entry of another PASID in that leaf
  // could see the leaf present, sync with leaf = true and return while the hardware still
  // holds a cached invalid root pointer: a PASID reported live that faults.
  Mutex lock_;
  uint64_t* const live_;  // bit p set: PASID p live; nr_entries_ bits, kzalloc'd, owned
  std::atomic<unsigned> nr_live_{0};
};

}  // namespace strata

// "arm_smmuv3_cd", ...
template <>
struct fmt::formatter<strata::PasidTableFmt> {
  constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
  auto format(strata::PasidTableFmt f, fmt::format_context& ctx) const {
    const char* name = "?";
    switch (f) {
      case strata::PasidTableFmt::arm_smmuv3_cd: name = "arm_smmuv3_cd"; break;
      case strata::PasidTableFmt::intel_vtd_pasid: name = "intel_vtd_pasid"; break;
      case strata::PasidTableFmt::fake: name = "fake"; break;
    }
    return fmt::format_to(ctx.out(), "{}", name);
  }
};

// Every field by its spec name, and the flags by name ("HW_DIRTY|COHERENT_WALK"), with bits
// outside PASID_S1_FLAGS shown as a number.
template <>
struct fmt::formatter<strata::PasidStage1> {
  constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
  fmt::format_context::iterator format(const strata::PasidStage1& s1,
                                       fmt::format_context& ctx) const;
};
