// SPDX-License-Identifier: MIT
#include "testing/models/dma-engine/smmuv3_port.h"

namespace strata::sim::dma_engine {
namespace {

DmaOutcome outcome_of(const smmuv3::DmaResult& r) {
  DmaOutcome out;
  out.done = r.done;
  switch (r.status) {
    case smmuv3::DmaResult::Status::kOk: out.status = DmaOutcome::Status::kOk; break;
    case smmuv3::DmaResult::Status::kAbort: out.status = DmaOutcome::Status::kAbort; break;
    case smmuv3::DmaResult::Status::kBusError: out.status = DmaOutcome::Status::kBusError; break;
  }
  return out;
}

}  // namespace

DmaOutcome Smmuv3DmaPort::read(const DmaStream& s, uint64_t addr, void* buf, size_t len) {
  return outcome_of(smmu_.dma_read(s.sid, s.ssv, s.ssid, addr, buf, len,
                                   smmuv3::Access{.instr = s.instr, .priv = s.priv}));
}

DmaOutcome Smmuv3DmaPort::write(const DmaStream& s, uint64_t addr, const void* buf, size_t len) {
  return outcome_of(smmu_.dma_write(s.sid, s.ssv, s.ssid, addr, buf, len,
                                    smmuv3::Access{.write = true, .priv = s.priv}));
}

}  // namespace strata::sim::dma_engine
