// SPDX-License-Identifier: MIT
// A PCIe Function with ATS and PRI, on the SMMUv3 model's ATS port (ats.h): its Address
// Translation Cache, the Translation Requests that fill it, the Translated and Untranslated
// transactions it issues, the Invalidate Requests it honours and the Page Requests it sends
// (PCIe Base "Address Translation Services"; IHI 0070 3.9.1, 13.6, 13.7, chapter 8). Tests use
// it as the endpoint a driver must keep coherent; device models can build on it.
//
// A DMA goes page by page (or ATC span by span):
//   - ATS not enabled (Options::ats, set_ats()): an Untranslated transaction.
//   - ATC hit (an entry of the same PASID, or none, and privilege that covers the address and
//     grants the access): a Translated transaction to the entry's address. The SMMU's oracle
//     checks the entry against memory first (Smmuv3::check_atc): a driver that changed a
//     translation without CMD_ATC_INV is reported there.
//   - ATC miss: a Translation Request (NW = !write, Exe for an instruction read, Priv; Exe and
//     Priv only with a PASID). A Success that grants the access is cached, then used as a hit. A
//     Success that does not (R == W == 0, or no W for a write) denies it: nothing is issued, the
//     way a device would now send a Page Request (page_request() does that when a test wants
//     it). UR or CA make ATS unusable for the access: an Untranslated transaction.
//
// Invalidate Requests are decoded from their wire form (address and S bit) and remove every
// overlapping entry: without a PASID, entries of every PASID and none (the PCIe rule); with a
// PASID, that PASID's; with Global Invalidate (when supported), the entries of every PASID. The
// Invalidate Completion is sent once the Translated transactions that started before the
// request have finished (PCIe: they must be visible first); a Translation Completion for a
// request sent before an invalidation arrived is not cached (it may predate the change).
//
// PRI: page_request() sends a Page Request and keeps its group outstanding until a PRG Response
// names it (by PASID when the response has one, else by PRG index); a response for a group that
// is not outstanding is counted as unexpected. Stop Markers open no group.
//
// Thread safety: any number of threads may use one device, while the SMMU delivers
// invalidations and responses from its own threads. The device's lock is never held while it
// calls into the SMMU, so the SMMU may call it back at any time (ats.h's lock order).
#pragma once

#include <stdint.h>

#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <tuple>
#include <vector>

#include "testing/models/smmuv3/ats.h"
#include "testing/models/smmuv3/smmuv3.h"

namespace strata::sim::smmuv3 {

class SimAtsDevice final : public Endpoint {
 public:
  struct Options {
    bool ats = true;                // ATS Control Register: Enable
    bool global_invalidate = true;  // ATS Capability: Global Invalidate Supported
    bool pri = true;                // Page Request Control: Enable
    size_t atc_entries = 64;        // ATC capacity (oldest entry replaced)
  };

  // How one page of a DMA went.
  enum class Path : uint8_t {
    kTranslated,    // from the ATC, as a Translated transaction
    kUntranslated,  // ATS disabled or unusable (UR, CA): an ordinary transaction
    kDenied,        // the Translation Completion granted no such access: nothing issued
  };
  struct DmaOutcome {
    DmaResult result;               // the SMMU's answer; done counts bytes transferred
    Path path = Path::kTranslated;  // of the last page attempted
    bool atc_hit = false;           // the last page was served without a Translation Request
    AtsCompletion completion;       // the last Translation Request's completion
    bool ok() const { return path != Path::kDenied && result.ok(); }
  };

  struct Counters {
    uint64_t translation_requests = 0;
    uint64_t atc_hits = 0;
    uint64_t translated = 0;             // Translated transactions issued
    uint64_t untranslated = 0;           // Untranslated transactions issued
    uint64_t denied = 0;                 // accesses the ATC could not get permission for
    uint64_t completions_discarded = 0;  // Translation Completions raced by an invalidation
    uint64_t invalidations = 0;          // Invalidate Requests received
    uint64_t invalidated_entries = 0;
    uint64_t deferred_completions = 0;  // Invalidate Completions that waited for transactions
    uint64_t page_requests = 0;
    uint64_t prg_responses = 0;
    uint64_t unexpected_prg_responses = 0;  // for a group that was not outstanding
  };

  // Registers the device as the endpoint of `sid` on `smmu`, which must outlive it.
  SimAtsDevice(Smmuv3& smmu, uint32_t sid, const Options& options);
  SimAtsDevice(Smmuv3& smmu, uint32_t sid) : SimAtsDevice(smmu, sid, Options{}) {}
  // Detaches, and completes the invalidations still waiting (a removed device caches nothing).
  ~SimAtsDevice();
  SimAtsDevice(const SimAtsDevice&) = delete;
  SimAtsDevice& operator=(const SimAtsDevice&) = delete;

  uint32_t sid() const { return sid_; }

  // DMA at `addr` (an untranslated address: an IOVA, or a VA with a PASID). Without ssv the
  // access is Data, Unprivileged (attributes travel in the PASID prefix, 13.7).
  DmaOutcome read(bool ssv, uint32_t ssid, uint64_t addr, void* buf, size_t len,
                  Access access = {});
  DmaOutcome write(bool ssv, uint32_t ssid, uint64_t addr, const void* buf, size_t len,
                   Access access = {.write = true});

  // A Translation Request for the page of `addr`, cached when it succeeds with some permission.
  AtsCompletion translate(bool ssv, uint32_t ssid, uint64_t addr, Access access = {});

  // The ATC.
  bool atc_holds(bool ssv, uint32_t ssid, uint64_t addr, bool priv = false) const;
  size_t atc_size() const;
  // ATS Control.Enable; clearing it empties the ATC.
  void set_ats(bool enable);

  // PRI: a Page Request from this Function (req.sid is ignored).
  PriResult page_request(const PageRequest& req);
  std::vector<PrgResponse> prg_responses() const;
  size_t outstanding_prgs() const;

  // Invalidate Requests received, in order.
  std::vector<AtcInvalidation> invalidations() const;
  Counters counters() const;

  // Endpoint.
  void atc_invalidate(const AtcInvalidation& inv, AtcInvDone done) override;
  void prg_response(const PrgResponse& response) override;

 private:
  struct Entry {
    bool ssv = false;
    uint32_t ssid = 0;
    bool priv = false;
    uint64_t base = 0;  // untranslated span
    uint8_t size_log2 = 12;
    uint64_t translated = 0;  // the span's translated base
    bool R = false, W = false, Exe = false;

    uint64_t mask() const {
      return size_log2 >= 64 ? ~uint64_t{0} : (uint64_t{1} << size_log2) - 1;
    }
    bool covers(uint64_t addr) const { return ((addr ^ base) & ~mask()) == 0; }
    bool grants(Access a) const { return a.write ? W : a.instr ? Exe : R; }
  };
  struct Pending {
    uint64_t epoch;  // transactions of earlier epochs must finish first
    AtcInvDone done;
  };
  using PrgKey = std::tuple<bool, uint32_t, uint16_t>;  // (ssv, ssid, PRG index)

  DmaOutcome dma(bool ssv, uint32_t ssid, uint64_t addr, uint8_t* buf, size_t len, Access access,
                 bool write);
  // Finds an entry for (ssv, ssid, priv, addr) granting `a`; on a hit the transaction joins the
  // current epoch (end_use() leaves it).
  bool use_locked(bool ssv, uint32_t ssid, uint64_t addr, Access a, Entry& out, uint64_t& epoch);
  void end_use(uint64_t epoch);
  void insert_locked(const Entry& e);
  // Pending invalidations whose earlier transactions have all finished, removed from pending_.
  std::vector<AtcInvDone> ready_locked();

  Smmuv3& smmu_;
  const uint32_t sid_;
  const Options options_;

  // Lock order: the SMMU's locks -> mu_ (a leaf here: never held while calling the SMMU).
  mutable std::mutex mu_;
  bool ats_;                                    // guarded by mu_
  std::deque<Entry> atc_;                       // guarded by mu_, oldest first
  uint64_t inval_gen_ = 0;                      // guarded by mu_: Invalidate Requests received
  uint64_t epoch_ = 0;                          // guarded by mu_
  std::map<uint64_t, unsigned> in_flight_;      // guarded by mu_: Translated transactions by epoch
  std::vector<Pending> pending_;                // guarded by mu_
  std::set<PrgKey> outstanding_;                // guarded by mu_
  std::vector<PrgResponse> responses_;          // guarded by mu_
  std::vector<AtcInvalidation> invalidations_;  // guarded by mu_
  Counters counters_;                           // guarded by mu_
};

}  // namespace strata::sim::smmuv3
