// SPDX-License-Identifier: MIT
// Event records decoded and mapped to the core's fault reports. Records are built field by
// field with arch/smmuv3/event.h, the layout the golden tests pin.
#include "drivers/iommu/arm/arm-smmu-v3/event.h"

#include <doctest/doctest.h>

namespace strata::arm_smmu_v3 {
namespace {

namespace hw = ::strata::smmuv3;
using hw::EventType;

template <typename R>
ArmSmmuEvent decode(const R& r) {
  return arm_smmu_decode_event(r.data);
}

TEST_CASE("a stage 2 permission fault on a write with a PASID") {
  using R = hw::TranslationFaultRecord;
  R r;
  r.set<R::Type>(static_cast<uint8_t>(EventType::F_PERMISSION))
      .set<R::StreamID>(0x42)
      .set<R::SSV>(1)
      .set<R::SubstreamID>(7)
      .set<R::PnU>(1)
      .set<R::S2>(1)
      .set<R::CLASS>(hw::kClassIn)
      .set<R::InputAddr>(0xffff000012345678)
      .set<R::IPA>(0x80045000);
  const ArmSmmuEvent e = decode(r);
  CHECK(e.id == 0x13);
  CHECK(e.sid == 0x42);
  CHECK(e.ssv);
  CHECK(e.ssid == 7);
  CHECK(e.addr == 0xffff000012345678);
  CHECK_FALSE(e.read);
  CHECK(e.priv);
  CHECK(e.stage2);
  CHECK(e.cls == hw::kClassIn);
  CHECK(e.has_ipa);
  CHECK(e.ipa == 0x80045000);

  IommuFault f;
  REQUIRE(arm_smmu_event_to_fault(e, f));
  CHECK(f.type == IOMMU_FAULT_DMA_UNRECOV);
  CHECK(f.event.reason == IOMMU_FAULT_REASON_PERMISSION);
  CHECK(f.event.flags == (IOMMU_FAULT_UNRECOV_PASID_VALID | IOMMU_FAULT_UNRECOV_ADDR_VALID));
  CHECK(f.event.pasid == 7);
  CHECK(f.event.addr == 0xffff000012345678);
  CHECK(f.event.perm == (IOMMU_FAULT_PERM_WRITE | IOMMU_FAULT_PERM_PRIV));
}

TEST_CASE("a stage 1 translation fault of an instruction fetch has no IPA") {
  using R = hw::TranslationFaultRecord;
  R r;
  r.set<R::Type>(static_cast<uint8_t>(EventType::F_TRANSLATION))
      .set<R::StreamID>(1)
      .set<R::RnW>(1)
      .set<R::InD>(1)
      .set<R::CLASS>(hw::kClassIn)
      .set<R::InputAddr>(0x1000)
      .set<R::IPA>(0xdead000);  // UNKNOWN for stage 1: ignored
  const ArmSmmuEvent e = decode(r);
  CHECK_FALSE(e.ssv);
  CHECK_FALSE(e.has_ipa);
  IommuFault f;
  REQUIRE(arm_smmu_event_to_fault(e, f));
  CHECK(f.event.reason == IOMMU_FAULT_REASON_PTE_FETCH);
  CHECK(f.event.flags == IOMMU_FAULT_UNRECOV_ADDR_VALID);
  CHECK(f.event.perm == (IOMMU_FAULT_PERM_READ | IOMMU_FAULT_PERM_EXEC));
}

TEST_CASE("F_WALK_EABT carries the descriptor's address") {
  using R = hw::WalkEabtRecord;
  R r;
  r.set<R::Type>(static_cast<uint8_t>(EventType::F_WALK_EABT))
      .set<R::StreamID>(3)
      .set<R::RnW>(1)
      .set<R::CLASS>(hw::kClassTt)
      .set<R::InputAddr>(0x200000)
      .set<R::FetchAddr>(0x40001ff8);
  const ArmSmmuEvent e = decode(r);
  CHECK(e.has_fetch_addr);
  CHECK(e.fetch_addr == 0x40001ff8);
  IommuFault f;
  REQUIRE(arm_smmu_event_to_fault(e, f));
  CHECK(f.event.reason == IOMMU_FAULT_REASON_WALK_EABT);
  CHECK(f.event.flags == (IOMMU_FAULT_UNRECOV_ADDR_VALID | IOMMU_FAULT_UNRECOV_FETCH_ADDR_VALID));
  CHECK(f.event.fetch_addr == 0x40001ff8);
}

TEST_CASE("CD problems are PASID-table faults; C_BAD_SUBSTREAMID's SubstreamID is always valid") {
  hw::EventRecord r;
  r.set<hw::EventRecord::Type>(static_cast<uint8_t>(EventType::C_BAD_SUBSTREAMID))
      .set<hw::EventRecord::StreamID>(5)
      .set<hw::EventRecord::SubstreamID>(0x1234);  // 7.3.9: no SSV qualifier
  ArmSmmuEvent e = arm_smmu_decode_event(r.data);
  CHECK(e.ssv);
  CHECK(e.ssid == 0x1234);
  IommuFault f;
  REQUIRE(arm_smmu_event_to_fault(e, f));
  CHECK(f.event.reason == IOMMU_FAULT_REASON_PASID_INVALID);
  CHECK(f.event.pasid == 0x1234);

  hw::FetchFaultRecord cd;
  cd.set<hw::FetchFaultRecord::Type>(static_cast<uint8_t>(EventType::F_CD_FETCH))
      .set<hw::FetchFaultRecord::FetchAddr>(0x9000040);
  e = decode(cd);
  REQUIRE(arm_smmu_event_to_fault(e, f));
  CHECK(f.event.reason == IOMMU_FAULT_REASON_PASID_FETCH);
  CHECK(f.event.fetch_addr == 0x9000040);

  r.set<hw::EventRecord::Type>(static_cast<uint8_t>(EventType::C_BAD_CD));
  REQUIRE(arm_smmu_event_to_fault(arm_smmu_decode_event(r.data), f));
  CHECK(f.event.reason == IOMMU_FAULT_REASON_BAD_PASID_ENTRY);
}

TEST_CASE("the host's own configuration errors are not device faults") {
  IommuFault f;
  for (EventType t : {EventType::C_BAD_STREAMID, EventType::C_BAD_STE, EventType::F_STE_FETCH,
                      EventType::F_TLB_CONFLICT, EventType::F_CFG_CONFLICT}) {
    hw::EventRecord r;
    r.set<hw::EventRecord::Type>(static_cast<uint8_t>(t));
    CHECK_FALSE(arm_smmu_event_to_fault(arm_smmu_decode_event(r.data), f));
  }
  hw::EventRecord impdef;
  impdef.set<hw::EventRecord::Type>(0xe3);
  CHECK_FALSE(arm_smmu_event_to_fault(arm_smmu_decode_event(impdef.data), f));
}

}  // namespace
}  // namespace strata::arm_smmu_v3
