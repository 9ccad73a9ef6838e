// SPDX-License-Identifier: MIT
// Where a device model's DMA goes: the bus as the device sees it.
//
// A device presents each transaction with the stream it belongs to (StreamID, optional
// SubstreamID, privilege, instruction fetch). Behind an IOMMU the address is an IOVA that the
// IOMMU translates or terminates (Smmuv3DmaPort, smmuv3_port.h); with no IOMMU it is a
// physical address (DirectDmaPort). Both go page by page in address order and stop at the first
// page that fails, reporting how many bytes went through before it, as a device splits a burst
// into page-sized transactions and stops at the first error.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "testing/models/platform/phys_mem.h"

namespace strata::sim::dma_engine {

// The attributes a device gives its transactions.
struct DmaStream {
  uint32_t sid = 0;    // StreamID
  bool ssv = false;    // a SubstreamID is supplied
  uint32_t ssid = 0;   // SubstreamID, ignored without ssv
  bool priv = false;   // privileged (PnU)
  bool instr = false;  // instruction fetch (InD); reads only
};

struct DmaOutcome {
  enum class Status : uint8_t {
    kOk,        // every byte transferred
    kAbort,     // the IOMMU terminated a transaction with an abort
    kBusError,  // nothing answered the (translated) address
  };
  Status status = Status::kOk;
  size_t done = 0;  // bytes transferred before the transaction that failed
  bool ok() const { return status == Status::kOk; }
};

class DmaPort {
 public:
  // May be called from several device threads at once.
  virtual DmaOutcome read(const DmaStream& stream, uint64_t addr, void* buf, size_t len) = 0;
  virtual DmaOutcome write(const DmaStream& stream, uint64_t addr, const void* buf, size_t len) = 0;

 protected:
  ~DmaPort() = default;  // never owned through this interface
};

// No IOMMU: addresses are physical, the stream is ignored, and an address no RAM region or
// device window answers is a bus error. For testing a device model alone.
class DirectDmaPort final : public DmaPort {
 public:
  explicit DirectDmaPort(PhysMem& mem) : mem_(mem) {}

  DmaOutcome read(const DmaStream& stream, uint64_t addr, void* buf, size_t len) override;
  DmaOutcome write(const DmaStream& stream, uint64_t addr, const void* buf, size_t len) override;

 private:
  PhysMem& mem_;
};

}  // namespace strata::sim::dma_engine
