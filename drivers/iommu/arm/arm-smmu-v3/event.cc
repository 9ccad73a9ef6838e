// SPDX-License-Identifier: MIT
#include "drivers/iommu/arm/arm-smmu-v3/event.h"

namespace strata::arm_smmu_v3 {
namespace {

namespace hw = ::strata::smmuv3;
using hw::EventType;

}  // namespace

ArmSmmuEvent arm_smmu_decode_event(const uint64_t* words) {
  hw::EventRecord rec;
  for (unsigned i = 0; i < 4; i++) rec.set_word(i, words[i]);
  ArmSmmuEvent e;
  e.id = rec.type();
  e.sid = static_cast<uint32_t>(rec.get<hw::EventRecord::StreamID>());
  // C_BAD_SUBSTREAMID has no SSV: its SubstreamID is always valid (7.3.9).
  e.ssv =
      e.id == static_cast<uint8_t>(EventType::C_BAD_SUBSTREAMID) || rec.get<hw::EventRecord::SSV>();
  e.ssid = e.ssv ? static_cast<uint32_t>(rec.get<hw::EventRecord::SubstreamID>()) : 0;

  switch (static_cast<EventType>(e.id)) {
    case EventType::F_TRANSLATION:
    case EventType::F_ADDR_SIZE:
    case EventType::F_ACCESS:
    case EventType::F_PERMISSION: {
      using R = hw::TranslationFaultRecord;
      const auto r = hw::descriptor_cast<R>(rec);
      e.has_addr = true;
      e.addr = r.get<R::InputAddr>();
      e.read = r.get<R::RnW>();
      e.instr = r.get<R::InD>();
      e.priv = r.get<R::PnU>();
      e.stage2 = r.get<R::S2>();
      e.cls = static_cast<unsigned>(r.get<R::CLASS>());
      e.stall = r.get<R::Stall>();
      e.stag = static_cast<uint16_t>(r.get<R::STAG>());
      // 7.3.13: the IPA is provided for stage 2 faults only (UNKNOWN for stage 1).
      e.has_ipa = e.stage2;
      e.ipa = e.stage2 ? r.get<R::IPA>() : 0;
      break;
    }
    case EventType::F_WALK_EABT: {
      using R = hw::WalkEabtRecord;
      const auto r = hw::descriptor_cast<R>(rec);
      e.has_addr = true;
      e.addr = r.get<R::InputAddr>();
      e.read = r.get<R::RnW>();
      e.instr = r.get<R::InD>();
      e.priv = r.get<R::PnU>();
      e.stage2 = r.get<R::S2>();
      e.cls = static_cast<unsigned>(r.get<R::CLASS>());
      e.has_fetch_addr = true;
      e.fetch_addr = r.get<R::FetchAddr>();
      break;
    }
    case EventType::F_STE_FETCH:
    case EventType::F_CD_FETCH:
    case EventType::F_VMS_FETCH: {
      using R = hw::FetchFaultRecord;
      e.has_fetch_addr = true;
      e.fetch_addr = hw::descriptor_cast<R>(rec).get<R::FetchAddr>();
      break;
    }
    case EventType::F_UUT: {
      using R = hw::UutRecord;
      const auto r = hw::descriptor_cast<R>(rec);
      e.has_addr = true;
      e.addr = r.get<R::InputAddr>();
      e.read = r.get<R::RnW>();
      e.instr = r.get<R::InD>();
      e.priv = r.get<R::PnU>();
      break;
    }
    default: break;
  }
  return e;
}

bool arm_smmu_event_to_fault(const ArmSmmuEvent& e, IommuFault& fault) {
  uint32_t reason;
  switch (static_cast<EventType>(e.id)) {
    case EventType::F_TRANSLATION: reason = IOMMU_FAULT_REASON_PTE_FETCH; break;
    case EventType::F_ADDR_SIZE: reason = IOMMU_FAULT_REASON_OOR_ADDRESS; break;
    case EventType::F_ACCESS: reason = IOMMU_FAULT_REASON_ACCESS; break;
    case EventType::F_PERMISSION: reason = IOMMU_FAULT_REASON_PERMISSION; break;
    case EventType::F_WALK_EABT: reason = IOMMU_FAULT_REASON_WALK_EABT; break;
    case EventType::F_CD_FETCH: reason = IOMMU_FAULT_REASON_PASID_FETCH; break;
    case EventType::C_BAD_CD: reason = IOMMU_FAULT_REASON_BAD_PASID_ENTRY; break;
    case EventType::C_BAD_SUBSTREAMID: reason = IOMMU_FAULT_REASON_PASID_INVALID; break;
    case EventType::F_STREAM_DISABLED:
    case EventType::F_TRANSL_FORBIDDEN:
    case EventType::F_BAD_ATS_TREQ:
    case EventType::F_UUT: reason = IOMMU_FAULT_REASON_UNKNOWN; break;
    default: return false;
  }
  fault = IommuFault{};
  fault.type = IOMMU_FAULT_DMA_UNRECOV;
  IommuFaultUnrecoverable& u = fault.event;
  u.reason = reason;
  if (e.ssv) {
    u.flags |= IOMMU_FAULT_UNRECOV_PASID_VALID;
    u.pasid = e.ssid;
  }
  if (e.has_addr) {
    u.flags |= IOMMU_FAULT_UNRECOV_ADDR_VALID;
    u.addr = e.addr;
    // 7.3: InD == 0 for a write; an instruction fetch is a read.
    u.perm = e.read ? IOMMU_FAULT_PERM_READ : IOMMU_FAULT_PERM_WRITE;
    if (e.instr) u.perm |= IOMMU_FAULT_PERM_EXEC;
    if (e.priv) u.perm |= IOMMU_FAULT_PERM_PRIV;
  }
  if (e.has_fetch_addr) {
    u.flags |= IOMMU_FAULT_UNRECOV_FETCH_ADDR_VALID;
    u.fetch_addr = e.fetch_addr;
  }
  return true;
}

}  // namespace strata::arm_smmu_v3
