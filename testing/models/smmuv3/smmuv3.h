// SPDX-License-Identifier: MIT
// The SMMUv3 model assembled (IHI 0070): the programming interface (Registers, Queues), the
// configuration cache and TLB, the command executor, and the DMA port that device models
// translate through.
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
//    CMD_ATC_INV, CMD_PRI_RESP, CMD_RESUME and CMD_STALL_TERM are accepted and counted (no ATC,
//    PRI or stall model behind them yet); CMD_SYNC completes once every dma_read()/dma_write()
//    page that was translated before it has been transferred (3.21.1's completion rule). A
//    caller of translate() that accesses memory itself gets no such guarantee: its access may
//    land after a later CMD_SYNC.
//  - The DMA port: translate() gives a transaction's output address or its termination, with
//    the event recorded in the Event queue when the configuration says so (5.5: CD.R/S,
//    STE.S2R/S2S; CR2.RECINVSID for C_BAD_STREAMID; configuration errors always); dma_read() and
//    dma_write() translate page by page and access PhysMem.
//  - Counters, and the test-only oracle (set_oracle): every translation served from a cached
//    structure (configuration or TLB, front caches included) is done again from memory
//    (ConfigLookup and a walk without hardware updates) and any difference is kept as a
//    StaleReport: a driver that forgot an invalidation shows up there.
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
// and terminated, and an "unimplemented" note is made); ATS, the ATC and PRI responses; event
// merging; VMID wildcards (CR0.VMW != 0 is an "unimplemented" note, VMIDs match exactly);
// broadcast TLB maintenance; walk caches (only final translations are cached, so Leaf has no
// effect); StreamWorlds EL2/EL2-E2H translate with the EL1 walker (the decoder's unimplemented
// note); memory attributes and the STE's attribute overrides other than PRIVCFG/INSTCFG.
//
// Threading: translate() and the DMA helpers may be called from any number of threads at once,
// while the command queue runs on its own thread (kAsync) or in the guest's register writes
// (kSync). Lock order: Queues' locks -> gate_mu_ (CMD_SYNC waits for DMA) -> the caches' own
// locks (leaves), state_mu_, threads_mu_, reports_mu_ (leaves). A DMA thread records events
// only after leaving the gate and holds no model lock while it does.
#pragma once

#include <stdint.h>

#include <array>
#include <atomic>
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
  uint64_t config_hits = 0;              // configuration lookups served from a cached structure
  uint64_t config_misses = 0;            // configuration lookups that read everything from memory
  uint64_t terminated = 0;               // transactions aborted or RAZ/WI
  uint64_t events = 0;                   // event records handed to the Event queue
  uint64_t tlb_invalidated = 0;          // TLB entries removed by CMD_TLBI_*
  uint64_t tlb_hint_mismatches = 0;      // of those, entries a TG/TTL hint did not describe
  uint64_t stale_reports = 0;            // oracle reports
  std::array<uint64_t, 256> commands{};  // executed, by opcode (CMD_SYNC included)

  uint64_t command(arch::Opcode op) const { return commands[static_cast<uint8_t>(op)]; }
};

// A translation served from a cached structure that memory no longer agrees with.
struct StaleReport {
  DmaRequest req;
  const char* source = "";  // "TLB" or "configuration cache"
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
  void terminate_config(Translated& t, const ConfigResult& r, const DmaRequest& req);
  void terminate_fault(Translated& t, const Fault& f, const ConfigResult& r, const DmaRequest& req);
  static void terminate_silently(Translated& t);
  // Records the event and runs the oracle: what translate() and the DMA helpers do once the
  // transaction is over.
  void finish(Translated& t, const DmaRequest& req, Source source, FrontCache& f);
  Outcome fresh_outcome(const DmaRequest& req);
  static Outcome outcome_of(const Translated& t);
  static std::string describe(const Outcome& o);

  DmaResult dma(uint32_t sid, bool ssv, uint32_t ssid, uint64_t iova, uint8_t* buf, size_t len,
                Access access, bool write);
  // The CMD_SYNC completion gate (3.21.1): DMA transactions are inside from translation to
  // access; a CMD_SYNC waits until those inside have left, new ones waiting meanwhile.
  void gate_enter();
  void gate_exit();
  void gate_drain();

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
};

}  // namespace strata::sim::smmuv3
