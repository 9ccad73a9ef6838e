// SPDX-License-Identifier: MIT
// The Stream table (IHI 0070 3.3.1, 5.1, 5.2, 6.3.24-25): one STE per StreamID, in a linear
// table or a 2-level one, and the update of live STEs (Linux's arm_smmu_strtab_cfg,
// arm_smmu_init_l2_strtab and arm_smmu_write_ste).
//
// Layout. A 2-level table is used when the SMMU supports it (IDR0.ST_LEVEL == 0b01) and has
// more StreamIDs than one level-2 array holds: SPLIT = 8, level-2 arrays of 256 STEs (16 KiB),
// as Linux. Its level-1 table is capped at 2^17 L1STDs (1 MiB), so it covers at most 2^25
// StreamIDs; larger StreamIDs are -ERANGE. Otherwise the table is linear, 2^SIDSIZE STEs.
//
// Level-2 arrays are allocated on first use of a StreamID they cover (install_l2(), called by
// write_ste()). The procedure and why (3.21.3, 5.1.1):
//  1. Fill every STE of the new array with the initial STE (abort or bypass, as the owner
//     asked), V == 1 included, and clean it for a non-coherent SMMU. No invalidation of these
//     STEs is needed: an STE is reachable only through a valid L1STD, so the SMMU cannot have
//     fetched or cached them.
//  2. Barrier, then write the L1STD (Span = SPLIT + 1, L2Ptr) in one 64-bit store: the SMMU
//     reads it single-copy atomically, so it sees Span 0 or the whole new descriptor.
//  3. CMD_CFGI_STE with Leaf == 0 for a StreamID of the span, then CMD_SYNC. The SMMU may have
//     cached the invalid L1STD (3.21.3: structures are cached "whether marked as valid or
//     not"; "any change to a structure must be followed by the appropriate structure
//     invalidation command, even if the structure was initially marked invalid"), and Leaf ==
//     0 is the minimum scope that drops an L1STD (5.1.1, 4.3.1); a Leaf == 1 CFGI would leave
//     the span's StreamIDs failing with C_BAD_STREAMID.
// An array is never freed while the table lives: StreamIDs do not go away.
//
// STE updates (write_ste) go through write_entry (entry_writer.h) with ste_get_used (ste.h), so
// traffic sees the old STE, the new one, or (only where no hitless order exists) an invalid
// one. Each sync step is: clean the STE for a non-coherent SMMU, CMD_CFGI_STE with Leaf == 1
// (only the STE changed; 4.3.1 recommends Leaf == 1), CMD_SYNC.
//
// Failed invalidations. An invalidation that fails (a CMD_SYNC that timed out, a command
// error) means the SMMU may still act on what it cached before; the next step of an update
// would then no longer be ordered against it. So write_ste publishes to the live STE one step
// at a time: after a failed sync it writes nothing more and returns the error. The live STE
// then holds the state of the step whose sync failed, which is by construction a consistent
// entry (the old configuration, the new one, or an invalid STE): the SMMU can only act on the
// old, the new or an invalid configuration, never a mix, but which one is unknown. Calling
// write_ste again with the same target resumes the update. An L1STD whose invalidation failed
// stays installed (the SMMU may already walk its array, so it cannot be freed) and the next
// install_l2 or write_ste in its span issues the Leaf == 0 invalidation again before anything
// else, so no write in that span reports success while the SMMU may hold the invalid L1STD.
//
// Thread safety. write_ste and install_l2 may run concurrently for different StreamIDs; writes
// to one StreamID must be serialised by the caller (its attach path's lock). The level-2
// installation takes l2_lock_, which is held across the invalidation: lock order l2_lock_ ->
// the invalidator's (command queue) locks. Looking up an installed array takes no lock.
//
// Not here: the initial invalidation when the SMMU is enabled. STRTAB_BASE and STRTAB_BASE_CFG
// are programmed while SMMUEN == 0, and the driver must issue CMD_CFGI_ALL before setting
// SMMUEN (caches survive SMMUEN going to 0, 3.21.3). The table's memory must not be freed
// while the SMMU may walk it: destroy the Strtab only once SMMUEN == 0 (3.21.3: no structure
// is fetched then).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "arch/dma.h"
#include "arch/lock.h"
#include "arch/memory.h"
#include "arch/result.h"
#include "arch/smmuv3/regs.h"
#include "arch/smmuv3/ste.h"
#include "drivers/iommu/arm/arm-smmu-v3/entry_writer.h"
#include "drivers/iommu/arm/arm-smmu-v3/ste.h"

namespace strata::arm_smmu_v3 {

// The command submission the stream table needs. The driver implements it over its Command
// queue; tests over a model or a recorder.
class StrtabInvalidator {
 public:
  // Issues CMD_CFGI_STE(StreamID = sid, Leaf = leaf), then CMD_SYNC, and waits for the sync to
  // complete. Memory written before the call must be visible to the SMMU before the command is
  // (the queue's barrier before its PROD write). An error means the SMMU may not have dropped
  // what it cached: -ETIMEDOUT for a CMD_SYNC that did not complete, -EIO for a command error.
  virtual Result<void> cfgi_ste(uint32_t sid, bool leaf) = 0;

 protected:
  ~StrtabInvalidator() = default;  // never owned through this interface
};

struct StrtabConfig {
  unsigned sid_bits = 0;   // IDR1.SIDSIZE: StreamID bits, 0..32
  bool two_level = false;  // IDR0.ST_LEVEL == 0b01: 2-level tables supported
  // What every STE holds until written: make_abort_ste() (deny, the default) or
  // make_bypass_ste() (Linux's disable_bypass == false).
  smmuv3::STE initial = make_abort_ste();
  const char* name = "smmu";  // log prefix
};

class Strtab {
 public:
  // SPLIT: StreamID bits indexing a level-2 array (6.3.25; Linux's STRTAB_SPLIT).
  static constexpr unsigned kSplit = smmuv3::kSplit16K;
  // The largest level-1 table, in L1STDs.
  static constexpr unsigned kMaxL1Log2 = 17;

  // Allocates the table (a linear table filled with `cfg.initial`, or a level-1 table of
  // invalid L1STDs) and its bookkeeping. -EINVAL for sid_bits > 32; -ENOMEM, with nothing
  // left allocated, when memory runs out.
  static Result<Box<Strtab>> create(DmaAllocator& dma, StrtabInvalidator& invalidator,
                                    const StrtabConfig& cfg);
  ~Strtab();
  Strtab(const Strtab&) = delete;
  Strtab& operator=(const Strtab&) = delete;

  // The register values to program while SMMUEN == 0 (6.3.24, 6.3.25).
  smmuv3::STRTAB_BASE strtab_base() const;
  smmuv3::STRTAB_BASE_CFG strtab_base_cfg() const;

  bool two_level() const { return two_level_; }
  // log2 of the number of StreamIDs the table covers (STRTAB_BASE_CFG.LOG2SIZE).
  unsigned log2size() const { return log2size_; }
  uint64_t num_sids() const { return uint64_t{1} << log2size_; }

  // Makes the STE of `sid` exist: in a 2-level table, installs the level-2 array covering it
  // if it is not yet (procedure at the top). -ERANGE for a StreamID beyond the table, -ENOMEM
  // with nothing installed, or the invalidator's error (the array stays installed, see the
  // top). A linear table only checks the range.
  Result<void> install_l2(uint32_t sid);

  // Writes `target` (8 words, CPU byte order, built by ste.h) into the STE of `sid` with the
  // hitless protocol, installing its level-2 array first if needed. Returns what write_entry
  // did; -ERANGE, -ENOMEM, or an invalidation error (see "Failed invalidations" at the top).
  Result<EntryWriteStats> write_ste(uint32_t sid, const uint64_t* target);
  Result<EntryWriteStats> write_ste(uint32_t sid, const smmuv3::STE& target);

  // The STE of `sid` as memory holds it. -ERANGE, or -ENOENT when its level-2 array is not
  // installed.
  Result<smmuv3::STE> read_ste(uint32_t sid) const;

 private:
  struct Token {};  // make_box needs a public constructor; only create() can name this

 public:
  Strtab(Token, DmaAllocator& dma, StrtabInvalidator& invalidator, const StrtabConfig& cfg);

 private:
  // One level-1 entry's bookkeeping (2-level tables only).
  struct L2 {
    DmaBuffer buf;  // the level-2 array; written under l2_lock_ before `installed`
    std::atomic<bool> installed{false};
    // The L1STD is valid in memory but no CMD_CFGI_STE with Leaf == 0 has completed since.
    std::atomic<bool> l1_stale{false};
  };
  class SteWriter;

  Result<void> init(unsigned sid_bits);
  // Installs the level-2 array of `sid`'s span, which is not installed yet. l2_lock_ held.
  Result<void> install_l2_locked(uint32_t sid, L2& l2);
  // The live STE of `sid` (its level-2 array installed), and the buffer holding it.
  uint64_t* ste_ptr(uint32_t sid, const DmaBuffer** buf, size_t* offset) const;
  void fill_initial(void* stes, size_t count) const;

  DmaAllocator& dma_;
  StrtabInvalidator& invalidator_;
  const smmuv3::STE initial_;
  const char* const name_;
  const bool two_level_requested_;  // StrtabConfig::two_level
  bool two_level_ = false;
  unsigned log2size_ = 0;
  DmaBuffer table_;  // the linear table, or the level-1 table

  // Lock order: l2_lock_ -> the invalidator's locks. Guards installing l2_[i].buf.
  Mutex l2_lock_;
  L2* l2_ = nullptr;  // 2^(log2size_ - kSplit) entries (kmalloc'd), 2-level only
  size_t num_l2_ = 0;
};

}  // namespace strata::arm_smmu_v3
