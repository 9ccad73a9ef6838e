// SPDX-License-Identifier: MIT
// The Event and PRI queue threads (Linux's arm_smmu_evtq_thread, arm_smmu_priq_thread) and
// page responses: records decoded and reported to the core's fault framework against the
// device that owns the StreamID.
#include "arch/log.h"
#include "arch/smmuv3/event.h"
#include "drivers/iommu/arm/arm-smmu-v3/arm_smmu_v3.h"
#include "drivers/iommu/arm/arm-smmu-v3/event.h"

namespace strata::arm_smmu_v3 {

namespace hw = ::strata::smmuv3;

void ArmSmmuV3::evtq_thread() {
  const OutQueue::Consumed c = evtq_->consume([this](const uint64_t* w) { handle_event(w); });
  if (c.overflowed) {
    counters_.evtq_overflows.fetch_add(1, std::memory_order_relaxed);
    dev_err(config_.name, "EVTQ overflow detected -- events lost");
  }
}

void ArmSmmuV3::handle_event(const uint64_t* words) {
  counters_.events.fetch_add(1, std::memory_order_relaxed);
  const ArmSmmuEvent e = arm_smmu_decode_event(words);
  IommuFault fault = {};
  const bool device_fault = arm_smmu_event_to_fault(e, fault);
  bool reported = false;
  if (device_fault) {
    // Held across the report so the device cannot be released under it (fault.h).
    Guard g(streams_lock_);
    ArmSmmuMaster* master = find_master(e.sid);
    reported = master && iommu_report_device_fault(master->dev, fault).ok();
  }
  if (reported) {
    counters_.faults_reported.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  counters_.faults_logged.fetch_add(1, std::memory_order_relaxed);
  const char* name = hw::event_name(e.id);
  if (name)
    dev_info(config_.name, "event {} received: sid {:#x}{}{} addr {:#x}", name, e.sid,
             e.ssv ? " ssid " : "", e.ssv ? e.ssid : 0, e.addr);
  else
    dev_info(config_.name, "event {:#x} received: sid {:#x}", e.id, e.sid);
  for (unsigned i = 0; i < 4; i++) dev_info(config_.name, "\t{:#018x}", words[i]);
}

void ArmSmmuV3::priq_thread() {
  if (!priq_) return;
  const OutQueue::Consumed c =
      priq_->consume([this](const uint64_t* w) { handle_page_request(w); });
  if (c.overflowed) {
    // The SMMU answered the lost groups' last requests itself (8.1).
    counters_.priq_overflows.fetch_add(1, std::memory_order_relaxed);
    dev_err(config_.name, "PRIQ overflow detected -- requests lost");
  }
}

// A PRI queue record (8.1) as the core's page request (Linux's arm_smmu_handle_ppr in the
// SVA series).
void ArmSmmuV3::handle_page_request(const uint64_t* words) {
  counters_.page_requests.fetch_add(1, std::memory_order_relaxed);
  using P = hw::PriRecord;
  P rec;
  for (size_t i = 0; i < P::kWords; i++) rec.set_word(i, words[i]);
  const uint32_t sid = static_cast<uint32_t>(rec.get<P::StreamID>());
  const bool ssv = rec.get<P::SSV>();
  const bool last = rec.get<P::Last>();

  IommuFault fault = {};
  fault.type = IOMMU_FAULT_PAGE_REQ;
  IommuFaultPageRequest& prm = fault.prm;
  prm.grpid = static_cast<uint32_t>(rec.get<P::PRGIndex>());
  prm.addr = rec.get<P::Address>();
  if (ssv) {
    prm.pasid = static_cast<uint32_t>(rec.get<P::SubstreamID>());
    // The response carries the PASID of its request (CMD_PRI_RESP.SSV, 4.5.2).
    prm.flags |= IOMMU_FAULT_PAGE_REQUEST_PASID_VALID | IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID;
  }
  if (last) prm.flags |= IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE;
  if (rec.get<P::R>()) prm.perm |= IOMMU_FAULT_PERM_READ;
  if (rec.get<P::W>()) prm.perm |= IOMMU_FAULT_PERM_WRITE;
  if (rec.get<P::X>()) prm.perm |= IOMMU_FAULT_PERM_EXEC;
  if (rec.get<P::Priv>()) prm.perm |= IOMMU_FAULT_PERM_PRIV;

  {
    Guard g(streams_lock_);
    if (ArmSmmuMaster* master = find_master(sid)) {
      // The core answers a reported last request exactly once, whatever it returns.
      (void)iommu_report_device_fault(master->dev, fault);
      return;
    }
  }
  // Nobody to ask: the group is answered here, as the core would for a device with no queue.
  dev_warn(config_.name, "page request from unknown StreamID {:#x}", sid);
  if (last) (void)send_pri_resp(sid, ssv, prm.pasid, prm.grpid, IOMMU_PAGE_RESP_INVALID);
}

Result<void> ArmSmmuV3::send_pri_resp(uint32_t sid, bool ssv, uint32_t ssid, uint32_t grpid,
                                      uint32_t code) {
  uint64_t resp;
  switch (code) {
    case IOMMU_PAGE_RESP_SUCCESS: resp = hw::kPriRespSuccess; break;
    case IOMMU_PAGE_RESP_INVALID: resp = hw::kPriRespInvalid; break;
    case IOMMU_PAGE_RESP_FAILURE: resp = hw::kPriRespFailure; break;
    default: return Error(-EINVAL);
  }
  using C = hw::CmdPriResp;
  counters_.page_responses.fetch_add(1, std::memory_order_relaxed);
  // With a CMD_SYNC: the caller (the IOPF worker) may free what the response covered only once
  // the SMMU has sent it (Linux's arm_smmu_page_response syncs too).
  return cmdq_->issue_cmd_with_sync(C::make()
                                        .set<C::SSV>(ssv)
                                        .set<C::SubstreamID>(ssv ? ssid : 0)
                                        .set<C::StreamID>(sid)
                                        .set<C::PRGIndex>(grpid)
                                        .set<C::Resp>(resp));
}

Result<void> ArmSmmuV3::page_response(Device& dev, const IommuFaultPageRequest& last,
                                      const IommuPageResponse& response) {
  // Whatever the master's PRI state: the core answers every group the PRI queue reported for
  // it, the INVALID answers for a device on no IopfQueue included.
  auto* master = static_cast<ArmSmmuMaster*>(dev.iommu_priv());
  if (!master) return Error(-ENODEV);
  const bool ssv = last.flags & IOMMU_FAULT_PAGE_RESPONSE_NEEDS_PASID;
  // A PCIe function has one Requester ID: its first StreamID.
  return send_pri_resp(master->streams[0].sid, ssv, response.pasid, response.grpid, response.code);
}

}  // namespace strata::arm_smmu_v3
