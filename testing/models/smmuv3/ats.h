// SPDX-License-Identifier: MIT
// The SMMUv3 model's ATS/PRI port (IHI 0070 3.9.1, 4.5, chapter 8; PCIe Base "Address
// Translation Services"): the messages that cross between the SMMU and a PCIe endpoint, and the
// interface a device model implements to receive the SMMU's side of them.
//
//   endpoint -> SMMU   ATS Translation Request     Smmuv3::ats_translate() -> AtsCompletion
//                      Translated transaction      Smmuv3::translate()/dma_*() with translated
//                      Page Request (PRI)          Smmuv3::page_request()
//   SMMU -> endpoint   Invalidate Request          Endpoint::atc_invalidate() (CMD_ATC_INV)
//                      PRG Response                Endpoint::prg_response() (CMD_PRI_RESP and the
//                                                  PRI queue's automatic responses)
//
// An endpoint is registered per StreamID (Smmuv3::attach_endpoint). A message for a StreamID
// without one goes nowhere: the SMMU drops and counts it, as a Root Complex would drop a message
// for a RequesterID with no Function behind it.
//
// Invalidation completion (3.9.1.4, 4.5.1): each Invalidate Request comes with an AtcInvDone,
// which the endpoint completes when it has invalidated the range and every transaction that
// used it is visible. It may do so inside atc_invalidate() or later from any thread. A CMD_SYNC
// waits for every CMD_ATC_INV before it; one not completed within Smmuv3::Options::
// atc_inv_timeout is the PCIe completion timeout, the CMD_SYNC raises CERROR_ATC_INV_SYNC, and
// the invalidation is retired as failed (a later complete() is counted, not waited for).
//
// Ranges (4.5.1, PCIe Invalidate Request): CMD_ATC_INV names 2^(12 + Size) bytes at Address
// aligned to that span; the PCIe message carries the same span as an Untranslated Address and an
// S bit (S == 0: 4 KB; S == 1: the span ends at the lowest 0 bit of Address[63:12], 2^(n + 1)
// bytes for a lowest 0 at bit n). AtcInvalidation gives both forms, so a device model can decode
// the wire form as a device does.
#pragma once

#include <stdint.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>

#include "testing/models/smmuv3/walk.h"

namespace strata::sim::smmuv3 {

// An ATS Translation Request (PCIe; IHI 0070 3.9.1, 13.7): one page, Untranslated Address
// [63:12]. Exe and Priv are carried by the PASID TLP prefix, so they are ignored without ssv.
struct AtsTranslationRequest {
  uint32_t sid = 0;      // StreamID (the RequesterID)
  bool ssv = false;      // a PASID TLP prefix is present
  uint32_t ssid = 0;     // its PASID (the SubstreamID), IGNORED without ssv
  uint64_t address = 0;  // Untranslated Address; bits [11:0] are ignored
  bool nw = false;       // No Write: the endpoint does not intend to write (R is implied)
  bool exe = false;      // Execute Requested (PASID prefix)
  bool priv = false;     // Privileged Mode Requested (PASID prefix)
};

// An ATS Translation Completion with one Completion Data Entry (3.9.1.2, 13.6, 13.7).
struct AtsCompletion {
  enum class Status : uint8_t {
    kSuccess,             // translated, or translation failed: R == W == 0
    kUnsupportedRequest,  // UR: ATS is disabled for the stream (or the SMMU)
    kCompleterAbort,      // CA: a configuration error
  };
  Status status = Status::kUnsupportedRequest;
  uint64_t translated_address = 0;  // the span's base: a PA, or an IPA for split-stage ATS
  uint8_t size_log2 = 12;           // the span, 2^size_log2 bytes (the S field's encoding)
  bool R = false, W = false;        // Read / Write permitted
  bool Exe = false;                 // Execute Permitted
  bool Priv = false;                // Privileged Mode Access: the request's Priv, echoed
  // Always 0 from an SMMU: Untranslated access only, No-snoop (13.6.2.1) and Global (3.9.1:
  // must be 0 for a request with a PASID; the SMMU never sets it).
  bool U = false, N = false, Global = false;

  bool success() const { return status == Status::kSuccess; }
  // Whether the entry lets the endpoint make `access` (an execute access needs Exe).
  bool grants(Access access) const {
    if (!success()) return false;
    if (access.write) return W;
    return access.instr ? Exe : R;
  }
  uint64_t span_mask() const {
    return size_log2 >= 64 ? ~uint64_t{0} : (uint64_t{1} << size_log2) - 1;
  }
};
const char* name(AtsCompletion::Status s);

// An ATS Invalidate Request, as CMD_ATC_INV makes it (4.5.1).
struct AtcInvalidation {
  uint32_t sid = 0;        // StreamID
  bool ssv = false;        // a PASID TLP prefix is present
  uint32_t ssid = 0;       // its PASID, IGNORED without ssv
  bool global = false;     // Global Invalidate (only with ssv: IGNORED without, 4.5.1)
  uint64_t address = 0;    // the span's base, aligned to the span
  uint8_t size_log2 = 12;  // 12 + CMD_ATC_INV.Size: 12 (4 KB) to 64 (everything)

  uint64_t first() const { return address; }
  uint64_t last() const {
    return address + (size_log2 >= 64 ? ~uint64_t{0} : (uint64_t{1} << size_log2) - 1);
  }
  // The PCIe wire form: Untranslated Address[63:12] and the S bit.
  uint64_t pcie_address() const;
  bool pcie_s() const { return size_log2 > 12; }
};

// What a device makes of a PCIe Invalidate Request's address and S bit: [first, last].
struct AtsRange {
  uint64_t first = 0, last = 0;
};
AtsRange decode_invalidate_range(uint64_t pcie_address, bool s);

// PRG Response Codes (PCIe; IHI 0070 8.3).
inline constexpr uint8_t kPrgSuccess = 0b0000;
inline constexpr uint8_t kPrgInvalidRequest = 0b0001;
inline constexpr uint8_t kPrgResponseFailure = 0b1111;

// A PRG Response (Page Request Group Response message), from CMD_PRI_RESP (4.5.2) or made by
// the SMMU on its own (8.1, 8.2).
struct PrgResponse {
  uint32_t sid = 0;           // StreamID: the RequesterID the response goes to
  bool ssv = false;           // a PASID TLP prefix is present
  uint32_t ssid = 0;          // its PASID, IGNORED without ssv
  uint16_t prg_index = 0;     // PRGIndex[8:0]
  uint8_t response_code = 0;  // kPrg*
  bool automatic = false;     // an automatic response of the PRI queue, not a CMD_PRI_RESP
};

// A PCIe Page Request message (chapter 8) as the endpoint sends it.
struct PageRequest {
  uint32_t sid = 0;
  bool ssv = false;  // a PASID TLP prefix is present
  uint32_t ssid = 0;
  uint64_t address = 0;  // Page Address[63:12]
  uint16_t prg_index = 0;
  bool last = false;  // the last request of its group
  bool read = false, write = false;
  bool exe = false, priv = false;  // PASID prefix attributes, 0 without ssv

  // A Stop Marker (chapter 8): a PASID, Last == 1, W == R == 0. It gets no response.
  bool stop_marker() const { return ssv && last && !read && !write; }
};

// The CMD_ATC_INVs a Command queue has sent and not yet seen complete (3.9.1.4). Shared between
// the SMMU and the AtcInvDone handles endpoints hold, so a handle outliving the SMMU is harmless.
// Its lock is a leaf.
class AtcInvTracker {
 public:
  // A new outstanding invalidation's id.
  uint64_t issue();
  // Idempotent; an id already retired counts as a late completion.
  void complete(uint64_t id);
  // Waits until every invalidation issued before the call has completed; false when `timeout`
  // passed first, in which case those still outstanding are retired as failed.
  bool wait_issued(std::chrono::nanoseconds timeout);
  // Retires every outstanding invalidation (a reset).
  void retire_all();

  uint64_t completed() const;
  uint64_t late() const;
  uint64_t timed_out() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::set<uint64_t> outstanding_;  // guarded by mu_
  uint64_t next_id_ = 1;            // guarded by mu_
  uint64_t completed_ = 0, late_ = 0, timed_out_ = 0;
};

// The completion of one Invalidate Request: the endpoint's Invalidate Completion message.
class AtcInvDone {
 public:
  AtcInvDone() = default;
  AtcInvDone(std::shared_ptr<AtcInvTracker> tracker, uint64_t id)
      : tracker_(std::move(tracker)), id_(id) {}
  // Any thread, any number of times (the first counts).
  void complete() const {
    if (tracker_) tracker_->complete(id_);
  }
  bool valid() const { return tracker_ != nullptr; }

 private:
  std::shared_ptr<AtcInvTracker> tracker_;
  uint64_t id_ = 0;
};

// What a PCIe device model implements to receive the SMMU's messages. Both callbacks run on the
// SMMU's threads with model locks held (the command thread for CMD_ATC_INV and CMD_PRI_RESP, a
// device thread for an automatic PRG Response): they must not write the model's registers, call
// its DMA port or ATS entry points, or attach/detach endpoints. They may take the device's own
// locks, provided the device never holds those while it calls into the SMMU.
class Endpoint {
 public:
  // An Invalidate Request. Complete `done` once the range is invalidated and every Translated
  // transaction that used it is visible; never completing it is an invalidation timeout.
  virtual void atc_invalidate(const AtcInvalidation& inv, AtcInvDone done) = 0;
  // A PRG Response.
  virtual void prg_response(const PrgResponse& response) = 0;

 protected:
  ~Endpoint() = default;
};

}  // namespace strata::sim::smmuv3
