// SPDX-License-Identifier: MIT
// The Event and PRI queue consumer against the SMMUv3 model: the model produces records as for
// device traffic (Queues::record_event / record_page_request) and the driver's consumer reads
// them out of simulated memory through the registers.
#include "drivers/iommu/arm/arm-smmu-v3/out_queue.h"

#include <doctest/doctest.h>

#include <vector>

#include "arch/smmuv3/event.h"
#include "arch/smmuv3/regs.h"
#include "drivers/iommu/arm/arm-smmu-v3/model_rig.h"
#include "testing/models/smmuv3/smmuv3.h"

namespace strata::arm_smmu_v3 {
namespace {

namespace hw = ::strata::smmuv3;
using sim::smmuv3::EventResult;
using sim::smmuv3::PriResult;
using sim::smmuv3::Threading;

// The model and the queues under test, which the rig owns so that the SMMU stops writing them
// before their memory goes.
struct Rig : test::ModelRig {
  explicit Rig(Threading t) : ModelRig({.threading = t}) {}
  ~Rig() { teardown(); }

  OutQueue* queue(OutQueue::Kind kind, unsigned log2size) {
    auto q = OutQueue::create({.kind = kind,
                               .regs = io,
                               .dma = &dma(),
                               .log2size = log2size,
                               .coherent = true,
                               .name = "smmu-test"});
    REQUIRE(q.ok());
    queues.push_back(q.release_value());
    return queues.back().get();
  }

  std::vector<Box<OutQueue>> queues;
};

hw::EventRecord event(uint32_t sid, uint64_t addr) {
  hw::TranslationFaultRecord r;
  r.set<hw::TranslationFaultRecord::Type>(static_cast<uint8_t>(hw::EventType::F_TRANSLATION))
      .set<hw::TranslationFaultRecord::StreamID>(sid)
      .set<hw::TranslationFaultRecord::InputAddr>(addr);
  return hw::descriptor_cast<hw::EventRecord>(r);
}

TEST_CASE("events are consumed in order across the queue's wrap") {
  for (Threading t : {Threading::kSync, Threading::kAsync}) {
    CAPTURE(static_cast<int>(t));
    Rig rig(t);
    auto q = rig.queue(OutQueue::Kind::event, 3);  // 8 entries
    q->reset();
    CHECK(rig.io.readq(hw::EVENTQ_BASE::kOffset) == q->base_reg());
    REQUIRE(rig.set_cr0_bits(hw::CR0::EVENTQEN::kMask, true));

    uint32_t next = 0;
    std::vector<uint32_t> seen;
    for (int round = 0; round < 5; round++) {
      for (int i = 0; i < 6; i++) {
        CHECK(rig.model->queues().record_event(event(next, 0x1000 * next)) ==
              EventResult::kWritten);
        next++;
      }
      const auto c = q->consume([&](const uint64_t* w) {
        hw::EventRecord r;
        for (unsigned i = 0; i < 4; i++) r.set_word(i, w[i]);
        seen.push_back(static_cast<uint32_t>(r.get<hw::EventRecord::StreamID>()));
        CHECK(hw::descriptor_cast<hw::TranslationFaultRecord>(r)
                  .get<hw::TranslationFaultRecord::InputAddr>() == 0x1000 * seen.back());
      });
      CHECK(c.entries == 6);
      CHECK_FALSE(c.overflowed);
    }
    REQUIRE(seen.size() == 30);
    for (uint32_t i = 0; i < 30; i++) CHECK(seen[i] == i);
    // CONS caught up with PROD, wrap flag included.
    CHECK(hw::queue_empty(rig.io.readl(hw::EVENTQ_PROD::kOffset),
                          rig.io.readl(hw::EVENTQ_CONS::kOffset), 3));
  }
}

TEST_CASE("an overflow is reported once and acknowledged, and recording resumes") {
  Rig rig(Threading::kSync);
  auto q = rig.queue(OutQueue::Kind::event, 2);  // 4 entries
  q->reset();
  REQUIRE(rig.set_cr0_bits(hw::CR0::EVENTQEN::kMask, true));
  for (uint32_t i = 0; i < 4; i++)
    CHECK(rig.model->queues().record_event(event(i, 0)) == EventResult::kWritten);
  CHECK(rig.model->queues().record_event(event(4, 0)) == EventResult::kOverflow);
  CHECK(rig.model->queues().record_event(event(5, 0)) == EventResult::kOverflow);

  unsigned n = 0;
  auto c = q->consume([&](const uint64_t*) { n++; });
  CHECK(c.entries == 4);
  CHECK(c.overflowed);
  // 7.4: OVACKFLG now equals OVFLG.
  CHECK((rig.io.readl(hw::EVENTQ_CONS::kOffset) >> 31) ==
        (rig.io.readl(hw::EVENTQ_PROD::kOffset) >> 31));

  CHECK(rig.model->queues().record_event(event(6, 0)) == EventResult::kWritten);
  c = q->consume([&](const uint64_t*) { n++; });
  CHECK(c.entries == 1);
  CHECK_FALSE(c.overflowed);
  CHECK(n == 5);
}

TEST_CASE("page requests are consumed from the PRI queue") {
  Rig rig(Threading::kSync);
  auto q = rig.queue(OutQueue::Kind::pri, 4);
  q->reset();
  CHECK(rig.io.readq(hw::PRIQ_BASE::kOffset) == q->base_reg());
  // The effective PRIQEN needs SMMUEN too (queues.h).
  REQUIRE(rig.set_cr0_bits(hw::CR0::PRIQEN::kMask | hw::CR0::SMMUEN::kMask, true));
  hw::PriRecord req;
  req.set<hw::PriRecord::StreamID>(9)
      .set<hw::PriRecord::SSV>(1)
      .set<hw::PriRecord::SubstreamID>(3)
      .set<hw::PriRecord::PRGIndex>(0x55)
      .set<hw::PriRecord::Last>(1)
      .set<hw::PriRecord::W>(1)
      .set<hw::PriRecord::Address>(0x7000);
  CHECK(rig.model->queues().record_page_request(req).kind == PriResult::Kind::kRecorded);
  std::vector<hw::PriRecord> got;
  const auto c = q->consume([&](const uint64_t* w) {
    hw::PriRecord r;
    r.set_word(0, w[0]).set_word(1, w[1]);
    got.push_back(r);
  });
  CHECK(c.entries == 1);
  REQUIRE(got.size() == 1);
  CHECK(got[0] == req);
}

}  // namespace
}  // namespace strata::arm_smmu_v3
