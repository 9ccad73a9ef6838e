// SPDX-License-Identifier: MIT
// The SMMUv3 model's configuration cache (IHI 0070 3.21.3, 4.3, 16.2): the results of
// ConfigLookup, kept until the CMD_CFGI_* that covers them.
//
// What it caches, as the spec allows and a referee should:
//   - STEs, by StreamID: the decoded STE, or the C_BAD_STE it raised. An STE is "cached whether
//     marked valid or not" (3.21.3), so a V == 0 or ILLEGAL STE keeps failing, and a valid one
//     keeps translating, until a CMD_CFGI_STE* covers it, whatever memory now holds.
//   - L1STDs of a 2-level stream table, by level-1 index, valid or not (a bad Span keeps raising
//     C_BAD_STREAMID). Only CMD_CFGI_STE with Leaf == 0, CMD_CFGI_STE_RANGE and CMD_CFGI_ALL drop
//     them: a Leaf == 1 CMD_CFGI_STE after a new level-2 array was installed keeps the old
//     L1STD (4.3.1).
//   - CDs, by (StreamID, CD table index) (4.3.3: "indexed by StreamID and SubstreamID"): the
//     decoded CD or the C_BAD_CD it raised.
//   - L1CDs of a 2-level CD table, by (StreamID, first SubstreamID they cover), valid or not
//     (an invalid one keeps raising C_BAD_SUBSTREAMID). CMD_CFGI_CD with Leaf == 0,
//     CMD_CFGI_CD_ALL and the STE-scope commands drop them.
// What it does not cache: anything whose fetch aborted (F_STE_FETCH, F_CD_FETCH) or whose
// L1CD/CD address stage 2 could not translate ("does not cause knowledge of the failure to be
// cached", 3.21.3); C_BAD_STREAMID for a StreamID beyond STRTAB_BASE_CFG (no structure was
// fetched); the substream checks of 5.2 (C_BAD_SUBSTREAMID for an out-of-range SubstreamID,
// F_STREAM_DISABLED), which are recomputed from the cached STE each time.
//
// Invalidation scopes (4.3): CMD_CFGI_STE(sid, Leaf) drops the STE and every CD and L1CD cached
// through it (4.3.1), plus the L1STD when Leaf == 0; CMD_CFGI_STE_RANGE the same for 2^(Range+1)
// StreamIDs and their L1STDs; CMD_CFGI_ALL everything; CMD_CFGI_CD(sid, ssid, Leaf) the CD of
// index ssid, plus its L1CD when Leaf == 0; CMD_CFGI_CD_ALL every CD and L1CD of the StreamID.
// No over-invalidation beyond that, so a driver that relies on it is caught.
//
// Capacity is bounded (Geometry); a full cache evicts by a rotating cursor. Evicting an STE
// also evicts the CDs fetched through it, so a cached CD always came through the cached STE it
// is served with.
//
// Thread safety: every method may be called from any thread. Memory is read without the lock;
// an insertion is dropped when an invalidation ran since the lookup started (generation()), so
// a fetch that overlapped a CMD_CFGI_* never leaves its result behind it (3.21.3: the walk is
// "stopped and restarted").
#pragma once

#include <stdint.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "testing/models/platform/phys_mem.h"
#include "testing/models/smmuv3/config.h"
#include "testing/models/smmuv3/stream.h"

namespace strata::sim::smmuv3 {

class ConfigCache {
 public:
  struct Geometry {
    size_t ste_entries = 1024;  // STEs
    size_t cd_entries = 4096;   // CDs
    size_t l1_entries = 256;    // L1STDs and L1CDs, each
  };

  explicit ConfigCache(const Config& config) : ConfigCache(config, Geometry{}) {}
  ConfigCache(const Config& config, const Geometry& geometry);
  ConfigCache(const ConfigCache&) = delete;
  ConfigCache& operator=(const ConfigCache&) = delete;

  struct Lookup {
    std::shared_ptr<const ConfigResult> result;  // never null
    bool ste_hit = false;                        // the STE came from the cache
    bool cd_used = false;  // the result depends on a CD (or L1CD) step that read memory
    bool cd_hit = false;   // ... and that CD (or L1CD) came from the cache
    bool l1_hit = false;   // an L1STD or L1CD came from the cache
    // Whether any cached structure contributed: what makes a result possibly stale.
    bool cached() const { return ste_hit || cd_hit || l1_hit; }
  };

  // The configuration of `req`, through the cache. `regs` are the latched stream table
  // registers (the caller only looks up while SMMUEN == 1).
  Lookup lookup(PhysMem& mem, const StreamTableRegs& regs, const StreamRequest& req);
  // The STE alone (steps 1-2 of stream.h), through the cache: what an ATS Translated
  // transaction and a PRI auto-response's STE.PPAR check look at (3.9.1.3, 8.1).
  Lookup lookup_ste(PhysMem& mem, const StreamTableRegs& regs, const StreamRequest& req);

  // The invalidations of 4.3. `regs` give the stream table geometry (SPLIT) for the L1STDs.
  void invalidate_ste(const StreamTableRegs& regs, uint32_t sid, bool leaf);
  void invalidate_ste_range(const StreamTableRegs& regs, uint32_t sid, unsigned range);
  void invalidate_all();
  void invalidate_cd(uint32_t sid, uint32_t ssid, bool leaf);
  void invalidate_cd_all(uint32_t sid);

  // Incremented by every invalidation, after its entries are gone.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  struct Stats {
    size_t stes = 0, cds = 0, l1stds = 0, l1cds = 0;  // entries now
    uint64_t evictions = 0;
    uint64_t invalidated = 0;  // entries removed by invalidations (and CDs that left with an STE)
  };
  Stats stats() const;

  const ConfigLookup& lookup_engine() const { return lookup_; }

 private:
  using ResultPtr = std::shared_ptr<const ConfigResult>;
  struct L1cd {
    uint8_t l2_bits = 0;  // SubstreamID bits its level-2 table covers (6 or 10)
    uint64_t l2 = 0;      // level-2 table address (valid L1CD)
    ResultPtr error;      // the C_BAD_SUBSTREAMID an unusable L1CD raised, or null
  };

  ResultPtr fetch_ste(PhysMem& mem, const StreamTableRegs& regs, const StreamRequest& req,
                      uint64_t gen, Lookup& out);
  ResultPtr fetch_cd(PhysMem& mem, const StreamConfig& ste, const StreamRequest& req,
                     uint32_t index, uint64_t gen, Lookup& out);

  void insert_ste(uint32_t sid, const ResultPtr& r, uint64_t gen);
  void insert_cd(uint32_t sid, uint32_t index, const ResultPtr& r, uint64_t gen);
  void erase_stream_locked(uint32_t sid);  // its CDs and L1CDs
  size_t erase_l1std_locked(const StreamTableRegs& regs, uint32_t first_sid, uint64_t count);
  void bump_locked() { generation_.fetch_add(1, std::memory_order_release); }

  const Config config_;
  const Geometry geometry_;
  const ConfigLookup lookup_;

  // Lock order: a leaf lock. Memory is never read with it held.
  mutable std::mutex mu_;
  std::unordered_map<uint32_t, ResultPtr> stes_;   // by StreamID
  std::unordered_map<uint32_t, uint64_t> l1stds_;  // L1STD word, by level-1 index
  std::map<uint64_t, ResultPtr> cds_;              // by StreamID << 20 | index
  std::map<uint64_t, L1cd> l1cds_;                 // by StreamID << 20 | first SubstreamID
  uint64_t cd_cursor_ = 0;                         // eviction cursors
  uint64_t l1cd_cursor_ = 0;
  uint64_t evictions_ = 0;
  uint64_t invalidated_ = 0;
  std::atomic<uint64_t> generation_{0};
};

}  // namespace strata::sim::smmuv3
