// SPDX-License-Identifier: MIT
// The SMMUv3 model assembled (IHI 0070): the programming interface (Registers, Queues), the
// configuration cache and TLB, the command executor, the DMA port that device models translate
// through, and the ATS/PRI port that PCIe endpoint models talk to (ats.h).
//
// What it implements:
//  - Registers and Queues as registers.h and queues.h describe them, in the Queues' threading
//    modes (kSync, kAsync, kManual); reset() puts both back to their reset state.
//  - SMMU_CR0.SMMUEN (6.3.9.1): while 0, no structure is fetched and no cache entry inserted;
//    traffic follows SMMU_GBPA: ABORT aborts it, otherwise it bypasses to the same address, and
//    an address beyond the OAS aborts, without an event either way (3.4). The stream table
//    registers (STRTAB_BASE, STRTAB_BASE_CFG, CR2) are latched when SMMUEN goes to 1 (they are
//    read-only while it is 1). Caches survive SMMUEN going to 0 and back: a driver must
//    invalidate them (CMD_CFGI_ALL, CMD_TLBI_NSNH_ALL, CMD_TLBI_EL2_ALL) before enabling, as
//    3.21.3 warns that a structure "could remain cached and later used".
//  - The configuration cache (config_cache.h) and the TLB (tlb.h), shared by every DMA thread
//    and the command thread, serving stale entries until the matching CMD_CFGI_* / CMD_TLBI_*.
//  - The commands (CommandExecutor): CMD_CFGI_STE, _STE_RANGE, _ALL, _CD, _CD_ALL (4.3); every
//    Non-secure CMD_TLBI_* with range and TTL forms (4.4); CMD_PREFETCH_CONFIG fills the
//    configuration cache (4.2.1: the STE, and the CD of SubstreamID when SSV, errors not
//    reported), CMD_PREFETCH_ADDR is accepted and ignored (prefetching is never required);
//    CMD_ATC_INV and CMD_PRI_RESP go to the StreamID's endpoint (below); CMD_RESUME and
//    CMD_STALL_TERM are accepted and counted (no stall model behind them); CMD_SYNC completes
//    once every earlier CMD_ATC_INV has its Invalidate Completion (else CERROR_ATC_INV_SYNC
//    after Options::atc_inv_timeout, 3.9.1.4) and every dma_read()/dma_write() page that was
//    translated before it has been transferred (3.21.1's completion rule). A caller of
//    translate() that accesses memory itself gets no such guarantee: its access may land after
//    a later CMD_SYNC.
//  - The DMA port: translate() gives a transaction's output address or its termination, with
//    the event recorded in the Event queue when the configuration says so (5.5: CD.R/S,
//    STE.S2R/S2S; CR2.RECINVSID for C_BAD_STREAMID; configuration errors always); dma_read() and
//    dma_write() translate page by page and access PhysMem.
//  - PCIe ATS and PRI (ats.h; ats_port.cc says how, with its choices): endpoints registered per
//    StreamID; ATS Translation Requests (ats_translate: UR, CA, or Success with the address, span
//    and R/W/Exe/Priv of 13.7, an IPA for split-stage STE.EATS == 0b10; only F_BAD_ATS_TREQ is
//    ever recorded), through the configuration cache and TLB like any walk; Translated
//    transactions on the DMA port (DmaRequest::translated) under SMMUEN, CR0.ATSCHK and STE.EATS,
//    with F_TRANSL_FORBIDDEN, stage 2 for split-stage; CMD_ATC_INV as an Invalidate Request to
//    the endpoint; Page Requests into the PRI queue (page_request), and the PRG Responses of
//    CMD_PRI_RESP and of the PRI queue's automatic responses (with the PASID STE.PPAR/IDR3.PPS
//    give) delivered to the endpoint. Messages for a StreamID without an endpoint are dropped
//    and counted. sim_ats_device.h is an endpoint with an ATC.
//  - Counters, and the test-only oracle (set_oracle): every translation served from a cached
//    structure (configuration or TLB, front caches included) is done again from memory
//    (ConfigLookup and a walk without hardware updates) and any difference is kept as a
//    StaleReport: a driver that forgot an invalidation shows up there. check_atc() does the
//    same for a translation an endpoint serves from its ATC (source "ATC"): a driver that
//    unmapped without CMD_ATC_INV shows up there.
//
// Decisions where the spec leaves a choice (the strict one, since the model is a referee):
//  - A permission check on a TLB hit uses the cached permissions: a driver that upgrades a page
//    (read-only to writable) without CMD_TLBI_* keeps getting F_PERMISSION until it invalidates.
//  - A write that hits a writable-clean entry (hardware dirty state on) walks again, so the
//    descriptor is made dirty before the write goes ahead (3.13).
//  - CMD_TLBI_S2_IPA does not invalidate combined stage 1+2 entries (tlb.h).
//  - dma_write() and dma_read() go page by page in address order: the pages before a faulting
//    one are transferred, nothing at or after it (a device splits a burst into page-sized
//    transactions and stops at the first abort). DmaResult::done says how far it got. A page
//    terminated RAZ/WI (CD.A == 0) reads as zeros and drops writes, and the transfer goes on.
//  - A stage-1 Address Size fault of a bypassed stage 1 has no CD to configure it: recorded,
//    aborted.
//
// What it does not: stalls (a fault that CD.S / STE.S2S would stall is recorded with Stall == 0
// and terminated, and an "unimplemented" note is made; CMD_RESUME and CMD_STALL_TERM are only
// counted); SMMU_CR2.REC_CFG_ATS (IDR0.ATSRECERR == 0: configuration errors of ATS requests and
// Translated transactions are never recorded); PASIDs on Translated transactions
// (IDR3.PASIDTT == 0); DPT (STE.EATS == 0b11 behaves as 0b00); the Secure ATS rules; event
// merging; VMID wildcards (CR0.VMW != 0 is an "unimplemented" note, VMIDs match exactly);
// broadcast TLB maintenance; walk caches (only final translations are cached, so Leaf has no
// effect); StreamWorlds EL2/EL2-E2H translate with the EL1 walker (the decoder's unimplemented
// note); memory attributes and the STE's attribute overrides other than PRIVCFG/INSTCFG.
//
// Threading: translate() and the DMA helpers may be called from any number of threads at once,
// while the command queue runs on its own thread (kAsync) or in the guest's register writes
// (kSync). Lock order: Queues' locks -> gate_mu_ (CMD_SYNC waits for DMA) -> the caches' own
// locks (leaves), state_mu_, threads_mu_, reports_mu_ (leaves); Queues' locks ->
// endpoints_mu_ -> an endpoint's own locks -> the AtcInvTracker's (a leaf). A DMA thread
// records events only after leaving the gate and holds no model lock while it does. The ATS
// entry points may be called from any thread too; a CMD_SYNC waiting for Invalidate
// Completions holds only Queues' lock, so endpoints complete from their own threads.
#pragma once

#include <stdint.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "arch/result.h"
#include "arch/smmuv3/cmd.h"
#include "arch/smmuv3/event.h"
#include "testing/models/platform/interrupt_controller.h"
#include "testing/models/platform/phys_mem.h"
#include "testing/models/smmuv3/ats.h"
#include "testing/models/smmuv3/config.h"
#include "testing/models/smmuv3/config_cache.h"
#include "testing/models/smmuv3/front_cache.h"
#include "testing/models/smmuv3/queues.h"
#include "testing/models/smmuv3/registers.h"
#include "testing/models/smmuv3/stream.h"
#include "testing/models/smmuv3/tlb.h"
#include "testing/models/smmuv3/walk.h"

namespace strata::sim::smmuv3 {

// One transaction as a device presents it.
struct DmaRequest {
  uint32_t sid = 0;   // StreamID
  bool ssv = false;   // a SubstreamID is supplied
  uint32_t ssid = 0;  // SubstreamID (20 bits), IGNORED without ssv
  uint64_t iova = 0;  // the input address
  Access access{};    // RnW/InD/PnU as the device sends them
  // PCIe AT == Translated (3.9.1.3): `iova` is an address an ATS Translation Completion gave
  // (a PA, or an IPA for split-stage ATS). Treated as SSV == 0, PnU == 0, InD == 0
  // (SMMU_IDR3.PASIDTT == 0).
  bool translated = false;
};

// What the SMMU made of one transaction.
struct Translated {
  enum class Status : uint8_t {
    kOk,     // translated (or bypassed) to `pa`
    kAbort,  // terminated with an abort to the device
    kRazWi,  // terminated with RAZ/WI behaviour (CD.A == 0): reads zero, writes dropped
  };
  // How a terminated transaction ended. Kept apart, allocated only for a termination, so that
  // a translation that goes through costs no more than its few words.
  struct Termination {
    bool has_event = false;  // the SMMU raised an event (none for STE.Config abort, SMMUEN == 0)
    arch::EventRecord event;
    bool record = false;    // the configuration asks for it to be recorded (5.5, RECINVSID)
    bool recorded = false;  // it was handed to the Event queue
    EventResult queue_result = EventResult::kWritten;  // what the queue did with it
    LookupError config_error = LookupError::none;      // a configuration error's reason
    Fault fault;  // a translation fault: the walker's record of it (type none otherwise)
  };

  Status status = Status::kOk;
  uint8_t size_log2 = 12;  // kOk: `pa` lies in a span of 2^size_log2 bytes mapped contiguously
  bool cached = false;     // a cached structure or translation contributed
  uint64_t pa = 0;
  std::shared_ptr<Termination> term;  // set when status != kOk

  bool ok() const { return status == Status::kOk; }
  bool has_event() const { return term && term->has_event; }
  // The event's type, or 0 without an event.
  arch::EventType event_type() const {
    return static_cast<arch::EventType>(has_event() ? term->event.type() : 0);
  }
  LookupError config_error() const { return term ? term->config_error : LookupError::none; }
};

// What a dma_read()/dma_write() did.
struct DmaResult {
  enum class Status : uint8_t {
    kOk,        // every byte transferred (RAZ/WI pages included)
    kAbort,     // a page's translation was terminated with an abort: `fault` says how
    kBusError,  // a translated address no RAM or device window answers (-EFAULT from PhysMem)
  };
  Status status = Status::kOk;
  size_t done = 0;      // bytes transferred before the failing page
  Translated fault;     // kAbort
  uint64_t bus_pa = 0;  // kBusError: the address that did not answer
  bool ok() const { return status == Status::kOk; }
};

struct Smmuv3Counters {
  uint64_t translations = 0;  // transactions with SMMUEN == 1 (one per DMA page)
  uint64_t bypassed = 0;      // transactions with SMMUEN == 0
  uint64_t front_hits = 0;    // TLB hits served by a thread's front cache (in tlb_hits too)
  uint64_t tlb_hits = 0;
  uint64_t tlb_misses = 0;
  uint64_t walks = 0;
  uint64_t config_hits = 0;          // configuration lookups served from a cached structure
  uint64_t config_misses = 0;        // configuration lookups that read everything from memory
  uint64_t terminated = 0;           // transactions aborted or RAZ/WI
  uint64_t events = 0;               // event records handed to the Event queue
  uint64_t tlb_invalidated = 0;      // TLB entries removed by CMD_TLBI_*
  uint64_t tlb_hint_mismatches = 0;  // of those, entries a TG/TTL hint did not describe
  uint64_t stale_reports = 0;        // oracle reports
  // ATS and PRI (ats.h).
  uint64_t ats_translation_requests = 0;     // ATS Translation Requests received
  uint64_t ats_translated = 0;               // ATS Translated transactions (one per DMA page)
  uint64_t atc_invalidations_delivered = 0;  // CMD_ATC_INV sent to an endpoint
  uint64_t atc_invalidations_dropped = 0;    // CMD_ATC_INV with no endpoint, or IGNORED (4.5.1)
  uint64_t atc_invalidation_timeouts = 0;    // invalidations retired by CERROR_ATC_INV_SYNC
  uint64_t atc_invalidations_late = 0;       // completions after their timeout
  uint64_t page_requests = 0;                // Page Requests received (Stop Markers included)
  uint64_t prg_responses_delivered = 0;      // PRG Responses sent to an endpoint (automatic too)
  uint64_t prg_responses_dropped = 0;        // PRG Responses with no endpoint, or IGNORED (4.5.2)
  std::array<uint64_t, 256> commands{};      // executed, by opcode (CMD_SYNC included)

  uint64_t command(arch::Opcode op) const { return commands[static_cast<uint8_t>(op)]; }
};

// A translation served from a cached structure that memory no longer agrees with.
struct StaleReport {
  DmaRequest req;           // for "ATC": the Untranslated request the ATC entry served
  const char* source = "";  // "TLB", "configuration cache" or "ATC"
  std::string cached;       // the outcome served, e.g. "PA 0x40123000"
  std::string fresh;        // the outcome memory gives now, e.g. "F_TRANSLATION stage 1"
};

class Smmuv3 final : public CommandExecutor {
 public:
  struct Options {
    Threading threading = Threading::kSync;
    SimInterruptController* irq = nullptr;  // wired lines; null for MSIs only
    IrqLines lines = {};
    std::string name = "smmuv3";
    unsigned tlb_sets = 512;  // TLB geometry: sets x ways entries
    unsigned tlb_ways = 4;
    ConfigCache::Geometry config_cache = {};
    bool oracle = false;  // set_oracle() at creation
    // How long a CMD_SYNC waits for the Invalidate Completions of earlier CMD_ATC_INVs before
    // the ATS invalidation timeout (3.9.1.4).
    std::chrono::milliseconds atc_inv_timeout{1000};
  };

  // -EINVAL for a Config that validate() rejects or an interrupt line the controller lacks.
  // `mem` (and the interrupt controller) must outlive the model.
  static Result<std::unique_ptr<Smmuv3>> create(const Config& config, PhysMem& mem,
                                                const Options& options);
  // Stops the model thread. Devices and the guest must have stopped using the model.
  ~Smmuv3();
  Smmuv3(const Smmuv3&) = delete;
  Smmuv3& operator=(const Smmuv3&) = delete;

  const Config& config() const { return config_; }
  Registers& regs() { return *regs_; }
  Queues& queues() { return *queues_; }

  // The DMA port.
  Translated translate(const DmaRequest& req);
  Translated translate(uint32_t sid, bool ssv, uint32_t ssid, uint64_t iova, Access access) {
    return translate(
        DmaRequest{.sid = sid, .ssv = ssv, .ssid = ssid, .iova = iova, .access = access});
  }
  // `access.write` is forced to false / true.
  DmaResult dma_read(uint32_t sid, bool ssv, uint32_t ssid, uint64_t iova, void* buf, size_t len,
                     Access access = {});
  DmaResult dma_write(uint32_t sid, bool ssv, uint32_t ssid, uint64_t iova, const void* buf,
                      size_t len, Access access = {.write = true});
  // The same for any request, Translated ones included; `req.iova` is the first byte and
  // `req.access.write` is forced to false / true.
  DmaResult dma_read(const DmaRequest& req, void* buf, size_t len);
  DmaResult dma_write(const DmaRequest& req, const void* buf, size_t len);

  // The ATS port (ats.h, 3.9.1). Endpoints must outlive their registration; detach_endpoint()
  // returns once no callback to the endpoint is running.
  void attach_endpoint(uint32_t sid, Endpoint* endpoint);
  void detach_endpoint(uint32_t sid);
  // An ATS Translation Request: its completion, with F_BAD_ATS_TREQ recorded where 3.9.1.2
  // says so and no other event.
  AtsCompletion ats_translate(const AtsTranslationRequest& req);
  // A PCIe Page Request: recorded in the PRI queue, or answered by an automatic PRG Response
  // delivered to the endpoint (8.1, 8.2).
  PriResult page_request(const PageRequest& req);
  // The oracle for an endpoint's ATC (test only): `untranslated` was served from an ATC entry
  // as `translated` (a PA, or an IPA for split-stage ATS). When the oracle is on and a walk of
  // `untranslated` from memory does not give the same address for its access, a StaleReport
  // with source "ATC" is kept: a driver that unmapped without CMD_ATC_INV. Returns whether the
  // entry agreed (true with the oracle off).
  bool check_atc(const DmaRequest& untranslated, uint64_t translated);

  // Registers and queues to their reset state (a new Queues), caches emptied, SMMUEN 0.
  // Diagnostics, counters and oracle reports are kept. Nothing may use the model meanwhile.
  void reset();

  Smmuv3Counters counters() const;
  ConfigCache::Stats config_cache_stats() const { return config_cache_.stats(); }
  size_t tlb_entries() const { return tlb_.size(); }

  // The oracle (see the top of this file).
  void set_oracle(bool on) { oracle_.store(on, std::memory_order_relaxed); }
  std::vector<StaleReport> stale_reports() const;
  void clear_stale_reports();

  // CommandExecutor: runs on the command queue's thread with its lock held.
  ExecStatus execute(const arch::Command& cmd) override;

 private:
  // A served outcome, as the oracle compares it.
  struct Outcome {
    Translated::Status status = Translated::Status::kOk;
    uint64_t pa = 0;
    bool has_event = false;
    uint8_t event = 0;
    bool operator==(const Outcome&) const = default;
  };
  enum class Source : uint8_t { none, config, tlb };

  Smmuv3(const Config& config, PhysMem& mem, const Options& options);
  Result<void> make_queues();
  void cr0_updated(uint32_t old_ack, uint32_t new_ack);

  FrontCache& front();
  StreamTableRegs strtab() const;
  // The translation, without recording its event. `source` says what cached structure served it.
  void resolve(const DmaRequest& req, FrontCache& f, Translated& t, Source& source);
  // resolve() for a Translated transaction (ats_port.cc).
  void resolve_translated(const DmaRequest& req, FrontCache& f, Translated& t, Source& source);
  void terminate_config(Translated& t, const ConfigResult& r, const DmaRequest& req);
  void terminate_fault(Translated& t, const Fault& f, const ConfigResult& r, const DmaRequest& req);
  static void terminate_silently(Translated& t);
  // Records the event and runs the oracle: what translate() and the DMA helpers do once the
  // transaction is over.
  void finish(Translated& t, const DmaRequest& req, Source source, FrontCache& f);
  Outcome fresh_outcome(const DmaRequest& req);
  Outcome fresh_translated_outcome(const DmaRequest& req);
  void keep_report(StaleReport report);
  static Outcome outcome_of(const Translated& t);
  static std::string describe(const Outcome& o);

  DmaResult dma(const DmaRequest& first, uint8_t* buf, size_t len, bool write);
  // The CMD_SYNC completion gate (3.21.1): DMA transactions are inside from translation to
  // access; a CMD_SYNC waits until those inside have left, new ones waiting meanwhile.
  void gate_enter();
  void gate_exit();
  void gate_drain();

  // ATS and PRI (ats_port.cc).
  bool ats_check() const { return atschk_.load(std::memory_order_acquire); }
  uint8_t effective_eats(const StreamConfig& ste) const;
  uint8_t stu_log2() const;
  AtsCompletion bad_ats_treq(const AtsTranslationRequest& req, FrontCache& f);
  void terminate_transl_forbidden(Translated& t, const DmaRequest& req);
  void execute_atc_inv(const ::strata::smmuv3::Command& cmd);
  void execute_pri_resp(const ::strata::smmuv3::Command& cmd);
  bool wait_atc_invalidations();
  void deliver_prg_response(const PrgResponse& response);

  const Config config_;
  PhysMem& mem_;
  const Options options_;
  const Caps caps_;
  const uint64_t id_;  // unique per instance: tells a thread's front caches apart

  std::unique_ptr<Registers> regs_;
  std::unique_ptr<Queues> queues_;
  ConfigCache config_cache_;
  Tlb tlb_;

  std::atomic<bool> smmuen_{false};  // CR0ACK.SMMUEN as the DMA port applies it
  std::atomic<bool> atschk_{false};  // CR0ACK.ATSCHK
  mutable std::mutex state_mu_;      // guards strtab_
  StreamTableRegs strtab_{};         // latched when SMMUEN goes to 1

  std::atomic<bool> oracle_{false};

  // The CMD_SYNC gate.
  std::mutex gate_mu_;
  std::condition_variable gate_cv_;
  uint64_t gate_active_ = 0;    // guarded by gate_mu_
  bool gate_draining_ = false;  // guarded by gate_mu_

  // Every thread's front cache, for counters() (a thread keeps its front for the instance's
  // lifetime).
  mutable std::mutex threads_mu_;
  std::unordered_map<std::thread::id, std::unique_ptr<FrontCache>> fronts_;

  mutable std::mutex reports_mu_;
  std::vector<StaleReport> reports_;
  std::atomic<uint64_t> stale_count_{0};

  // Command-thread counters.
  std::array<std::atomic<uint64_t>, 256> commands_{};
  std::atomic<uint64_t> tlb_invalidated_{0};
  std::atomic<bool> vmw_reported_{false};

  // The ATS port. endpoints_mu_ is held while an endpoint's callback runs (so that detach waits
  // for it); it comes after Queues' locks and before the endpoints' own locks.
  std::mutex endpoints_mu_;
  std::unordered_map<uint32_t, Endpoint*> endpoints_;  // guarded by endpoints_mu_
  const std::shared_ptr<AtcInvTracker> atc_invs_ = std::make_shared<AtcInvTracker>();
  std::atomic<uint64_t> atc_inv_delivered_{0}, atc_inv_dropped_{0};
  std::atomic<uint64_t> page_requests_{0};
  std::atomic<uint64_t> prg_delivered_{0}, prg_dropped_{0};
};

}  // namespace strata::sim::smmuv3
