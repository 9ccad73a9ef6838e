// SPDX-License-Identifier: MIT
// One DMA thread's front of the SMMUv3 model's caches: a small direct-mapped TLB of final
// translations (StreamID, SubstreamID, input page -> output page, per access type), the last
// configuration the thread used, and the thread's counters.
//
// Why: a TLB hit must cost a few tens of nanoseconds for the model to carry real traffic, and
// the shared ConfigCache and Tlb each take a lock. The front holds nothing the shared caches
// could not hold: every entry is a copy of a configuration or TLB entry the thread was served,
// tagged with the two caches' generations at the start of the translation that produced it, and
// the whole front is dropped as soon as either generation moves (any CMD_CFGI_* or CMD_TLBI_*).
// An entry the shared cache has since evicted is still a translation the SMMU was allowed to
// keep, so serving it is architecturally a TLB hit. The oracle checks front hits like any other.
//
// Owned by one thread (plain fields), except the counters, which that thread alone writes (with
// relaxed atomic stores, no read-modify-write) and anyone may read.
#pragma once

#include <stdint.h>

#include <atomic>
#include <memory>

#include "testing/models/smmuv3/config_cache.h"
#include "testing/models/smmuv3/walk.h"

namespace strata::sim::smmuv3 {

struct FrontCounters {
  std::atomic<uint64_t> translations{0};  // transactions seen with SMMUEN == 1
  std::atomic<uint64_t> bypassed{0};      // transactions seen with SMMUEN == 0 (GBPA)
  std::atomic<uint64_t> front_hits{0};    // served by the front TLB (also in tlb_hits)
  std::atomic<uint64_t> tlb_hits{0};
  std::atomic<uint64_t> tlb_misses{0};
  std::atomic<uint64_t> walks{0};
  std::atomic<uint64_t> config_hits{0};    // a lookup served from a cached structure
  std::atomic<uint64_t> config_misses{0};  // a lookup that read every structure from memory
  std::atomic<uint64_t> terminated{0};     // aborted or RAZ/WI
  std::atomic<uint64_t> events{0};         // records handed to the Event queue
  std::atomic<uint64_t> ats_requests{0};   // ATS Translation Requests
  std::atomic<uint64_t> translated{0};     // ATS Translated transactions

  // The owner's increment: no locked instruction, since no other thread writes.
  static void bump(std::atomic<uint64_t>& c) {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
};

// The index of an access type in the per-entry permission masks: the incoming attributes,
// before STE.PRIVCFG/INSTCFG (the entry's mask already applies them).
inline unsigned access_bit(Access a) {
  return 1u << (unsigned{a.write} | unsigned{a.instr} << 1 | unsigned{a.priv} << 2);
}

class FrontCache {
 public:
  static constexpr unsigned kEntriesLog2 = 6;
  static constexpr unsigned kEntries = 1u << kEntriesLog2;

  struct Entry {
    bool valid = false;
    uint8_t size_log2 = 0;
    uint8_t allowed = 0;  // access_bit()s this translation may serve without a walk
    uint32_t sid = 0;
    uint32_t ssid_key = 0;  // substream_key()
    uint64_t base = 0;      // input address of the span
    uint64_t oa_base = 0;
  };

  static uint32_t substream_key(bool ssv, uint32_t ssid) { return ssv ? (1u << 20) | ssid : 0; }

  // Drops every entry when a generation moved since the last call; returns whether it did.
  bool sync(uint64_t config_gen, uint64_t tlb_gen) {
    if (config_gen == config_gen_ && tlb_gen == tlb_gen_) return false;
    for (Entry& e : entries_) e.valid = false;
    config_ = {};
    config_gen_ = config_gen;
    tlb_gen_ = tlb_gen;
    return true;
  }

  // The TLB generation the front was last synchronised with: a walk started after sync() inserts
  // its result only if the TLB is still at it.
  uint64_t tlb_generation() const { return tlb_gen_; }

  const Entry* find(uint32_t sid, uint32_t ssid_key, uint64_t iova, unsigned bit) const {
    const Entry& e = entries_[index(sid, iova)];
    if (e.valid && e.sid == sid && e.ssid_key == ssid_key &&
        ((iova ^ e.base) >> e.size_log2) == 0 && (e.allowed & bit))
      return &e;
    return nullptr;
  }

  // Records that (sid, ssid_key, iova) translated for access `bit` within the span.
  void fill(uint32_t sid, uint32_t ssid_key, uint64_t iova, unsigned size_log2, uint64_t oa_base,
            unsigned bit) {
    Entry& e = entries_[index(sid, iova)];
    const uint64_t base = iova & ~((uint64_t{1} << size_log2) - 1);
    if (!(e.valid && e.sid == sid && e.ssid_key == ssid_key && e.base == base &&
          e.size_log2 == size_log2 && e.oa_base == oa_base))
      e = Entry{.valid = true,
                .size_log2 = static_cast<uint8_t>(size_log2),
                .allowed = 0,
                .sid = sid,
                .ssid_key = ssid_key,
                .base = base,
                .oa_base = oa_base};
    e.allowed = static_cast<uint8_t>(e.allowed | bit);
  }

  // The last configuration used, when it translates (ok()).
  struct ConfigFront {
    bool valid = false;
    uint32_t sid = 0;
    uint32_t ssid_key = 0;
    ConfigCache::Lookup lookup;
  };
  const ConfigFront* find_config(uint32_t sid, uint32_t ssid_key) const {
    return config_.valid && config_.sid == sid && config_.ssid_key == ssid_key ? &config_ : nullptr;
  }
  void fill_config(uint32_t sid, uint32_t ssid_key, const ConfigCache::Lookup& lookup) {
    config_ = ConfigFront{.valid = true, .sid = sid, .ssid_key = ssid_key, .lookup = lookup};
  }

  FrontCounters counters;

 private:
  // A multiplicative hash of the page number and StreamID: the top bits of the product mix in
  // every bit of the page number (a plain low-bits index would put a device's buffers that are
  // 2 MiB apart into one slot).
  static unsigned index(uint32_t sid, uint64_t iova) {
    const uint64_t h = ((iova >> 12) ^ (uint64_t{sid} << 40)) * 0x9e3779b97f4a7c15ull;
    return static_cast<unsigned>(h >> (64 - kEntriesLog2));
  }

  uint64_t config_gen_ = ~uint64_t{0};
  uint64_t tlb_gen_ = ~uint64_t{0};
  Entry entries_[kEntries];
  ConfigFront config_;
};

}  // namespace strata::sim::smmuv3
