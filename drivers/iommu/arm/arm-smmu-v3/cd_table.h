// SPDX-License-Identifier: MIT
// The SMMUv3 Context Descriptor library (cd-lib), part 2: CD tables (IHI 0070 5.2 S1Fmt, 5.3
// L1CD, 5.4 CD) in DMA memory, and the invalidations that make changes to them take effect.
//
//   CdTable::alloc({.s1cdmax = 20, .two_level = true, .dma = &smmu_dma}, master)
//   // STE: S1ContextPtr = t->base(), S1CDMax = t->s1cdmax(), S1Fmt = t->s1fmt()
//   CD cd = STRATA_TRY(make_s1_cd(pgtbl_cfg, asid));
//   STRATA_TRY(t->write_cd(ssid, cd));   // in effect when it returns
//   STRATA_TRY(t->clear_cd(ssid));       // no longer in effect when it returns
//
// Layout. 2^s1cdmax CDs of 64 bytes. Linear (STE.S1Fmt 0b00): one table aligned to its size
// (5.2 S1Fmt); with s1cdmax == 0 it is the single CD of a stream without substreams. Two-level
// (S1Fmt 0b10): an L1CD table of 2^(s1cdmax - 10) 8-byte L1CDs, aligned to its size and at
// least 64 bytes, each pointing at a 64KB-aligned leaf table of 1024 CDs (SubstreamID[9:0];
// Linux's CTXDESC_SPLIT 10). A two-level request with 1024 CDs or fewer is served linear: a
// root would only add a fetch. Leaves are allocated on the first write into them and freed only
// with the table, so an L1CD only ever goes from V == 0 to V == 1.
//
// Writing a CD. write_cd hands the target to write_entry (entry_writer.h) with cd_get_used, so a
// live CD is replaced hitlessly when one 64-bit word decides the switch (a new TTB0 with the same
// ASID, a new ASID alone) and break-before-make otherwise (TTB0 and ASID together: CD.V, bit 31
// of word 0, cleared and synced first, entry_writer.h step 3). Each sync of the entry writer is:
// clean the CD to memory when the SMMU does not snoop (sync_for_device), then
// CdInvalidator::cfgi_cd(ssid, leaf = true): CMD_CFGI_CD for every StreamID using the table and one
// CMD_SYNC (3.21.3.1; 5.4.1: "any modification, commissioning or decommissioning of a CD must be
// followed by a CMD_CFGI_CD").
//
// The first write into a leaf. The SMMU may cache any structure it fetched "whether marked as
// valid or not" (3.21.3), the L1CD included, so a transaction that met the invalid L1CD may
// have left it cached. The leaf is allocated zeroed and the CD written into it whole while no
// L1CD points at it: no SMMU can reach or have cached it (3.21.3.1's last note), so those
// writes need no command. Then, after a barrier, the L1CD is made valid, and the one
// invalidation that is needed is the L1CD's: CMD_CFGI_CD with Leaf == 0 and a SubstreamID in
// the leaf's span (5.3.1: "Changing an inactive L1CD with V == 0 to an active V == 1 form
// requires an invalidation of the L1CD only"; 4.3.3: "When Leaf == 0, this command invalidates
// all caching of an intermediate L1CD"). Until that invalidation has completed, no other
// writer may treat the leaf as present (it would invalidate with Leaf == 1 and return while the
// SMMU still holds the invalid L1CD), so the leaf is published to the lock-free path only after
// it. Leaf == 1 everywhere else: the L1CDs never change again (4.3.3 recommends Leaf == 1).
//
// Clearing a CD: word 0 (V with it) is zeroed, then CMD_CFGI_CD + CMD_SYNC (3.21.3.1's
// procedure to make a structure invalid), then the other words are zeroed with no further
// command: with V == 0 "the entire rest of the structure is IGNORED" (5.4 V), whatever mix of
// them the SMMU may read, and the next write_cd syncs before it sets V again.
//
// Who syncs (CdSync). By default every call returns with its change in effect. A caller that
// serializes every writer of the table and issues one invalidation after each call of its own
// (the iommu-pasid-table library, cd_pasid_table.h) passes CdSync::by_caller: write_cd then
// leaves the L1CD invalidation to the caller (CdWriteInfo::l1cd_sync_needed says when one is
// needed) and clear_cd only makes the CD invalid; the caller's sync_cd completes either. The
// entry writer's own syncs for a CD that the SMMU may already cache are made in both modes:
// the protocol needs them between its steps.
//
// Errors. -ERANGE for a SubstreamID >= 2^s1cdmax; -ENOMEM when a leaf cannot be allocated: then
// nothing was written. A failed invalidation (the command queue reported an error or timed
// out) is logged, counted (invalidation_errors()) and returned. Memory has then been changed
// (the CD is in place, or the L1CD is valid) but the SMMU may still hold the old copy: not an
// input error but a failed SMMU, which the owner of the command queue has to recover (Linux's
// CMD_SYNC timeout). A leaf whose L1CD invalidation failed is not published: the next write
// into it issues the invalidation again.
//
// Memory. The CPU writes the tables with dma_write64 (one 64-bit single-copy-atomic store per
// word, 3.21.3) and cleans them with DmaAllocator::sync_for_device when cfg.coherent is false.
// A CdInvalidator issues its commands after those writes are observable by the SMMU: a command
// queue's barrier before it writes CMDQ_PROD (3.21.2 step 3) does that.
//
// Concurrency. write_cd, clear_cd and sync_cd of different SubstreamIDs may run on any number of
// threads at once (the invalidator must allow concurrent calls); two calls for one SubstreamID
// at once are a caller bug. Lock order: CdTable::lock_ -> whatever the invalidator and the
// DmaAllocator take. lock_ is a Mutex held while a leaf is installed, its L1CD invalidation
// included, so the calls may sleep; writes into present leaves take no lock.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "arch/dma.h"
#include "arch/lock.h"
#include "arch/memory.h"
#include "arch/result.h"
#include "arch/smmuv3/cd.h"
#include "drivers/iommu/arm/arm-smmu-v3/entry_writer.h"

namespace strata::arm_smmu_v3 {

// How a CD table reaches the streams that use it: implemented by whoever owns them (the
// driver's master knows its StreamIDs; a vSMMU its guest's). Defined inline only: an interface
// that others implement has no out-of-line virtual function (arch/dma.h says why).
class CdInvalidator {
 public:
  // For every StreamID whose STE points at the table (STE.S1ContextPtr), CMD_CFGI_CD with
  // StreamID, SubstreamID = ssid, SSec = 0 and Leaf = leaf (4.3.3: a CD cached through several
  // STEs is cached per StreamID and must be invalidated through each), then one CMD_SYNC
  // (4.7.3), and waits for its completion. The CPU's writes to the table before the call must
  // be observable by the SMMU before the commands are (3.21.2's DSB before CMDQ_PROD).
  // ok() with no stream attached (nothing can be cached). An error when a command failed
  // (CERROR_*, 7.1) or the CMD_SYNC did not complete: the caller reports it. May sleep; called
  // concurrently for different SubstreamIDs.
  virtual Result<void> cfgi_cd(uint32_t ssid, bool leaf) = 0;

 protected:
  ~CdInvalidator() = default;  // never owned through this interface
};

// STE.S1CDMax's largest value: SMMU_IDR1.SSIDSIZE is at most 20 (PCIe PASIDs).
inline constexpr unsigned kCdMaxS1CdMax = 20;
inline constexpr size_t kCdBytes = 64;
// Leaf tables of the 2-level layout: STE.S1Fmt 0b10, 64KB of 1024 CDs (5.2 S1Fmt).
inline constexpr unsigned kCdSplit = smmuv3::kCdL2Bits64K;
inline constexpr uint32_t kCdLeafEntries = uint32_t{1} << kCdSplit;
inline constexpr size_t kCdLeafBytes = kCdLeafEntries * kCdBytes;

struct CdTableCfg {
  unsigned s1cdmax = 0;    // 2^s1cdmax CDs: STE.S1CDMax, 0..kCdMaxS1CdMax
  bool two_level = false;  // a request (needs SMMU_IDR0.CD2L); see the layout above
  DmaAllocator* dma = nullptr;
  bool coherent = true;  // the SMMU snoops CPU caches (SMMU_IDR0.COHACC)
};

// Whether a write_cd or clear_cd completes its own invalidation (see the top comment).
enum class CdSync {
  now,
  by_caller,
};

// What write_cd did.
struct CdWriteInfo {
  // by_caller: an L1CD on the way to the CD is valid in memory and not yet invalidated; the
  // caller must sync_cd(ssid, /*leaf=*/false) before relying on the CD. Never set with now.
  bool l1cd_sync_needed = false;
  // The entry writer's steps (its syncs in a leaf no L1CD pointed at issue no command).
  EntryWriteStats entry;
};

class CdTable {
 public:
  // -EINVAL: no DmaAllocator, or s1cdmax > kCdMaxS1CdMax. -ENOMEM. `invalidator` must outlive
  // the table.
  static Result<Box<CdTable>> alloc(const CdTableCfg& cfg, CdInvalidator& invalidator);

  // Frees the table and its leaves. The SMMU must no longer walk it: the STEs pointing at it
  // were changed and invalidated (CMD_CFGI_STE), which also drops the cached CDs and L1CDs
  // (4.3.1).
  ~CdTable();
  CdTable(const CdTable&) = delete;
  CdTable& operator=(const CdTable&) = delete;

  // For the STE (5.2).
  phys_addr_t base() const { return root_.phys(); }  // S1ContextPtr
  unsigned s1cdmax() const { return cfg_.s1cdmax; }  // S1CDMax
  uint64_t s1fmt() const;                            // S1Fmt: kS1FmtLinear or kS1Fmt64KL2
  bool two_level() const { return two_level_; }
  uint32_t nr_cds() const { return nr_cds_; }

  // Makes `target` (8 words, CPU byte order, only used bits set, as make_s1_cd builds it) the
  // CD of `ssid`, hitlessly where possible (top comment). -ERANGE, -ENOMEM (nothing written),
  // or the invalidator's error.
  Result<CdWriteInfo> write_cd(uint32_t ssid, const uint64_t* target, CdSync sync = CdSync::now);
  Result<CdWriteInfo> write_cd(uint32_t ssid, const smmuv3::CD& cd, CdSync sync = CdSync::now);
  // Makes the CD of `ssid` invalid and zero. Nothing to do (no command) when it is not valid.
  // -ERANGE, or the invalidator's error. With by_caller only V is cleared (word 0 zeroed); the
  // caller's sync_cd(ssid, true) completes it.
  Result<void> clear_cd(uint32_t ssid, CdSync sync = CdSync::now);
  // CMD_CFGI_CD(ssid, leaf) through the invalidator: completes a by_caller write_cd (leaf ==
  // false when it said l1cd_sync_needed) or clear_cd. Once it succeeded, a CD left invalid by
  // clear_cd has its other words zeroed (no command needed: 5.4 V) and a leaf whose L1CD was
  // pending is published. -ERANGE, or the invalidator's error.
  Result<void> sync_cd(uint32_t ssid, bool leaf);

  // The CD of `ssid` as memory holds it (CPU byte order); zeros when its leaf is absent or
  // ssid is out of range. For dumps and tests; the SMMU may hold an older copy.
  void read_cd(uint32_t ssid, uint64_t* out) const;

  // Invalidations that failed since the table was allocated (each was also logged).
  uint64_t invalidation_errors() const { return invalidation_errors_.load(); }

 private:
  struct Token {};  // make_box needs a public constructor; only alloc() can name this
  struct Leaf;
  class Writer;

 public:
  CdTable(Token, const CdTableCfg& cfg, CdInvalidator& invalidator, bool two_level);

 private:
  // Where the CD of `ssid` lives: its 64 bytes and their region. cpu == nullptr when its leaf
  // is not published.
  struct CdRef {
    uint64_t* cpu = nullptr;
    const DmaRegion* region = nullptr;
    size_t offset = 0;
  };
  CdRef published_cd(uint32_t ssid) const;
  // The same under lock_, for a leaf that is allocated but not yet published.
  CdRef allocated_cd_locked(uint32_t ssid) const;
  Result<CdWriteInfo> install_leaf_and_write(uint32_t ssid, const uint64_t* target, CdSync sync);
  void publish_leaf_locked(uint32_t ssid);
  void clean(const DmaRegion& region, size_t offset, size_t len) const;
  // cfgi_cd, logged and counted on failure.
  Result<void> invalidate(uint32_t ssid, bool leaf);
  void scrub_if_invalid(const CdRef& cd);

  const CdTableCfg cfg_;
  CdInvalidator& invalidator_;
  const uint32_t nr_cds_;
  const bool two_level_;
  DmaBuffer root_;  // linear: the CDs; two-level: the L1CDs
  uint32_t nr_leaves_ = 0;
  Leaf* leaves_ = nullptr;  // two-level: kzalloc'd [nr_leaves_]

  // Serializes leaf installation (allocation, the L1CD store and its invalidation) and every
  // access to a Leaf's buffer before the leaf is published. Taken only on the slow path.
  mutable Mutex lock_;
  std::atomic<uint64_t> invalidation_errors_{0};
};

}  // namespace strata::arm_smmu_v3
