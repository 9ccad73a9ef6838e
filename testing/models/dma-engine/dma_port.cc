// SPDX-License-Identifier: MIT
#include "testing/models/dma-engine/dma_port.h"

#include <algorithm>

namespace strata::sim::dma_engine {
namespace {

// Bytes from `addr` to the end of its 4 KiB page, at most `len`.
size_t page_chunk(uint64_t addr, size_t len) {
  return static_cast<size_t>(std::min<uint64_t>(len, kPageSize - (addr & (kPageSize - 1))));
}

}  // namespace

DmaOutcome DirectDmaPort::read(const DmaStream&, uint64_t addr, void* buf, size_t len) {
  DmaOutcome out;
  auto* p = static_cast<uint8_t*>(buf);
  while (out.done < len) {
    const size_t chunk = page_chunk(addr + out.done, len - out.done);
    if (!mem_.read(addr + out.done, p + out.done, chunk).ok()) {
      out.status = DmaOutcome::Status::kBusError;
      return out;
    }
    out.done += chunk;
  }
  return out;
}

DmaOutcome DirectDmaPort::write(const DmaStream&, uint64_t addr, const void* buf, size_t len) {
  DmaOutcome out;
  const auto* p = static_cast<const uint8_t*>(buf);
  while (out.done < len) {
    const size_t chunk = page_chunk(addr + out.done, len - out.done);
    if (!mem_.write(addr + out.done, p + out.done, chunk).ok()) {
      out.status = DmaOutcome::Status::kBusError;
      return out;
    }
    out.done += chunk;
  }
  return out;
}

}  // namespace strata::sim::dma_engine
