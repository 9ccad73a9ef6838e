// SPDX-License-Identifier: MIT
// The SMMUv3 model's PRI path end to end: a device's Page Requests in the PRI queue, the
// driver's CMD_PRI_RESP delivered to the device with its fields, and the automatic PRG Responses
// of a disabled or overflowing PRI queue with their PASID rules. Expected values are typed in
// from IHI 0070 4.5.2 and chapter 8 (8.1, 8.2, 8.3).
#include <vector>

#include <doctest/doctest.h>

#include "arch/smmuv3/event.h"
#include "testing/models/smmuv3/ats.h"
#include "testing/models/smmuv3/sim_ats_device.h"
#include "testing/models/smmuv3/smmuv3.h"
#include "testing/models/smmuv3/smmuv3_harness.h"

namespace strata::sim::smmuv3 {
namespace {

using arch::PriRecord;
using test::kModes;
using test::Machine;
using Kind = PriResult::Kind;

// A valid stage-1 STE for `sid` (one CD, nothing mapped) with STE.PPAR == `ppar`.
void pri_stream(Machine& m, uint32_t sid, bool ppar) {
  arch::STE s = test::s1_ste(m.new_cd(test::make_cd(static_cast<uint16_t>(sid), m.new_s1_root())));
  s.set<arch::STE::EATS>(arch::kEatsTrans).set<arch::STE::PPAR>(ppar);
  m.set_ste(sid, s);
}

PageRequest request(uint16_t prgi, bool last, bool ssv = false, uint32_t ssid = 0) {
  return PageRequest{.ssv = ssv,
                     .ssid = ssid,
                     .address = 0x40'0000 + uint64_t{prgi} * 0x1000,
                     .prg_index = prgi,
                     .last = last,
                     .read = true};
}

PageRequest stop_marker(uint32_t ssid) {
  return PageRequest{.ssv = true, .ssid = ssid, .last = true};
}

TEST_CASE("Page Requests reach the PRI queue and CMD_PRI_RESP reaches the endpoint") {
  for (Threading mode : kModes) {
    CAPTURE(name(mode));
    Machine m(mode);
    m.start();
    m.setup_priq();
    SimAtsDevice dev(m.model(), 5);

    PriResult r = dev.page_request(PageRequest{.ssv = true,
                                               .ssid = 7,
                                               .address = 0x12'3456,
                                               .prg_index = 3,
                                               .read = true,
                                               .write = true,
                                               .exe = true,
                                               .priv = true});
    CHECK(r.kind == Kind::kRecorded);
    r = dev.page_request(PageRequest{
        .ssv = true, .ssid = 7, .address = 0x12'4000, .prg_index = 3, .last = true, .read = true});
    CHECK(r.kind == Kind::kRecorded);
    // Without a PASID, X and Priv are 0 (chapter 8).
    r = dev.page_request(PageRequest{
        .address = 0x2000, .prg_index = 4, .last = true, .read = true, .exe = true, .priv = true});
    CHECK(r.kind == Kind::kRecorded);

    const std::vector<PriRecord> recs = m.pri_records();
    REQUIRE(recs.size() == 3);
    CHECK(recs[0].get<PriRecord::StreamID>() == 5);
    CHECK(recs[0].get<PriRecord::SSV>() == 1);
    CHECK(recs[0].get<PriRecord::SubstreamID>() == 7);
    CHECK(recs[0].get<PriRecord::Address>() == 0x12'3000);
    CHECK(recs[0].get<PriRecord::PRGIndex>() == 3);
    CHECK(recs[0].get<PriRecord::Last>() == 0);
    CHECK(recs[0].get<PriRecord::R>() == 1);
    CHECK(recs[0].get<PriRecord::W>() == 1);
    CHECK(recs[0].get<PriRecord::X>() == 1);
    CHECK(recs[0].get<PriRecord::Priv>() == 1);
    CHECK(recs[1].get<PriRecord::Last>() == 1);
    CHECK(recs[1].get<PriRecord::W>() == 0);
    CHECK(recs[2].get<PriRecord::SSV>() == 0);
    CHECK(recs[2].get<PriRecord::X>() == 0);
    CHECK(recs[2].get<PriRecord::Priv>() == 0);
    CHECK(recs[2].get<PriRecord::PRGIndex>() == 4);
    CHECK(dev.prg_responses().empty());
    CHECK(dev.outstanding_prgs() == 2);

    // The driver answers each group (4.5.2); Resp becomes the PCIe Response Code (8.3).
    m.issue(test::pri_resp(5, 3, arch::kPriRespSuccess, true, 7));
    m.issue(test::pri_resp(5, 4, arch::kPriRespInvalid));
    std::vector<PrgResponse> resp = dev.prg_responses();
    REQUIRE(resp.size() == 2);
    CHECK(resp[0].sid == 5);
    CHECK(resp[0].ssv);
    CHECK(resp[0].ssid == 7);
    CHECK(resp[0].prg_index == 3);
    CHECK(resp[0].response_code == kPrgSuccess);
    CHECK_FALSE(resp[0].automatic);
    CHECK_FALSE(resp[1].ssv);
    CHECK(resp[1].prg_index == 4);
    CHECK(resp[1].response_code == kPrgInvalidRequest);
    CHECK(dev.outstanding_prgs() == 0);

    // A response for a group the device never had outstanding: delivered, and the device
    // counts it (a driver answering twice, or the wrong group).
    m.issue(test::pri_resp(5, 9, arch::kPriRespFailure));
    resp = dev.prg_responses();
    REQUIRE(resp.size() == 3);
    CHECK(resp[2].response_code == kPrgResponseFailure);
    CHECK(dev.counters().unexpected_prg_responses == 1);
    const Smmuv3Counters c = m.model().counters();
    CHECK(c.page_requests == 3);
    CHECK(c.prg_responses_delivered == 3);
    CHECK(c.prg_responses_dropped == 0);
    CHECK(m.events().empty());
  }
}

TEST_CASE("CMD_PRI_RESP for no endpoint, or while SMMUEN == 0, is dropped and counted") {
  Machine m;
  m.start();
  m.issue(test::pri_resp(6, 1, arch::kPriRespSuccess));
  SimAtsDevice dev(m.model(), 6);
  REQUIRE(m.disable(arch::CR0::SMMUEN::kMask));
  m.issue(test::pri_resp(6, 1, arch::kPriRespSuccess));  // IGNORED (4.5.2)
  CHECK(dev.prg_responses().empty());
  CHECK(m.model().counters().prg_responses_dropped == 2);
}

TEST_CASE("an overflowing PRI queue answers Last requests itself, with STE.PPAR's PASID (8.1)") {
  Machine m;
  m.start();
  m.setup_priq(1);  // two entries
  pri_stream(m, 5, false);
  pri_stream(m, 6, true);
  // StreamID 7: V == 0, so STE.PPAR cannot be checked.
  SimAtsDevice dev5(m.model(), 5), dev6(m.model(), 6), dev7(m.model(), 7);

  REQUIRE(dev5.page_request(request(1, false, true, 3)).kind == Kind::kRecorded);
  REQUIRE(dev5.page_request(request(1, false, true, 3)).kind == Kind::kRecorded);
  // Full: the overflow starts; Last == 0 is discarded silently.
  PriResult r = dev5.page_request(request(1, false, true, 3));
  CHECK(r.kind == Kind::kDiscarded);
  CHECK(r.overflow);
  CHECK((m.readl(arch::PRIQ_PROD::kOffset) & arch::PRIQ_PROD::OVFLG::kMask) != 0);
  CHECK(dev5.prg_responses().empty());

  // Last == 1 with a PASID, STE.PPAR == 0: Success without PASID.
  r = dev5.page_request(request(1, true, true, 3));
  CHECK(r.kind == Kind::kAutoResponse);
  CHECK(r.response_code == kPrgSuccess);
  std::vector<PrgResponse> resp = dev5.prg_responses();
  REQUIRE(resp.size() == 1);
  CHECK(resp[0].sid == 5);
  CHECK(resp[0].prg_index == 1);
  CHECK(resp[0].response_code == kPrgSuccess);
  CHECK_FALSE(resp[0].ssv);
  CHECK(resp[0].automatic);
  CHECK(dev5.outstanding_prgs() == 0);
  // Without a PASID: Success without PASID, PPAR not looked at.
  CHECK(dev5.page_request(request(2, true)).response_code == kPrgSuccess);
  CHECK_FALSE(dev5.prg_responses().back().ssv);

  // STE.PPAR == 1: the PASID comes back.
  r = dev6.page_request(request(4, true, true, 9));
  CHECK(r.response_code == kPrgSuccess);
  resp = dev6.prg_responses();
  REQUIRE(resp.size() == 1);
  CHECK(resp[0].ssv);
  CHECK(resp[0].ssid == 9);
  CHECK(resp[0].prg_index == 4);

  // An STE that cannot be checked: Response Failure without PASID, no event (REC_CFG_ATS).
  r = dev7.page_request(request(5, true, true, 1));
  CHECK(r.kind == Kind::kAutoResponse);
  CHECK(r.response_code == kPrgResponseFailure);
  resp = dev7.prg_responses();
  REQUIRE(resp.size() == 1);
  CHECK(resp[0].response_code == kPrgResponseFailure);
  CHECK_FALSE(resp[0].ssv);

  // A Stop Marker in overflow: discarded, no response (8.1).
  r = dev6.page_request(stop_marker(9));
  CHECK(r.kind == Kind::kDiscarded);
  CHECK(dev6.prg_responses().size() == 1);

  // The recovery (8.1.1): consume and acknowledge; requests are recorded again.
  CHECK(m.pri_records().size() == 2);
  CHECK(dev5.page_request(request(6, true)).kind == Kind::kRecorded);
  CHECK(m.pri_records().size() == 1);
  CHECK(m.events().empty());
  CHECK(m.model().counters().prg_responses_delivered == 4);
}

TEST_CASE("with IDR3.PPS, overflow responses carry the PASID without an STE check") {
  Config config = Config::smmuv3_2();
  config.pps = true;
  Machine m(Machine::Setup{.config = config});
  m.start();
  m.setup_priq(0);                 // one entry
  SimAtsDevice dev(m.model(), 7);  // StreamID 7: V == 0
  REQUIRE(dev.page_request(request(1, true, true, 2)).kind == Kind::kRecorded);
  const PriResult r = dev.page_request(request(2, true, true, 2));
  CHECK(r.kind == Kind::kAutoResponse);
  CHECK(r.response_code == kPrgSuccess);
  const std::vector<PrgResponse> resp = dev.prg_responses();
  REQUIRE(resp.size() == 1);
  CHECK(resp[0].ssv);
  CHECK(resp[0].ssid == 2);
  CHECK(resp[0].prg_index == 2);
}

TEST_CASE("a disabled PRI queue answers every Page Request with Response Failure (8.2)") {
  for (Threading mode : kModes) {
    CAPTURE(name(mode));
    Machine m(mode);
    m.start();  // PRIQEN == 0
    pri_stream(m, 5, true);
    SimAtsDevice dev(m.model(), 5);
    // Last == 0 too, and without PASID whatever STE.PPAR says.
    PriResult r = dev.page_request(request(1, false, true, 4));
    CHECK(r.kind == Kind::kAutoResponse);
    CHECK(r.response_code == kPrgResponseFailure);
    std::vector<PrgResponse> resp = dev.prg_responses();
    REQUIRE(resp.size() == 1);
    CHECK(resp[0].response_code == kPrgResponseFailure);
    CHECK_FALSE(resp[0].ssv);
    CHECK(resp[0].prg_index == 1);
    CHECK(resp[0].automatic);
    // No response to a Stop Marker (8.2).
    CHECK(dev.page_request(stop_marker(4)).kind == Kind::kDiscarded);
    CHECK(dev.prg_responses().size() == 1);
    // PRIQEN without SMMUEN is not effective either (6.3.9.5).
    REQUIRE(m.disable(arch::CR0::SMMUEN::kMask));
    m.setup_priq();
    CHECK(dev.page_request(request(2, true)).response_code == kPrgResponseFailure);
    REQUIRE(m.enable(arch::CR0::SMMUEN::kMask));
    CHECK(dev.page_request(request(3, true)).kind == Kind::kRecorded);
  }
}

TEST_CASE("without substreams, Page Requests carry no PASID and CMD_PRI_RESP SSV has no effect") {
  Config config = Config::smmuv3_2();
  config.ssidsize = 0;
  Machine m(Machine::Setup{.config = config});
  m.start();
  m.setup_priq();
  SimAtsDevice dev(m.model(), 5);
  REQUIRE(dev.page_request(request(1, true, true, 3)).kind == Kind::kRecorded);
  const std::vector<PriRecord> recs = m.pri_records();
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].get<PriRecord::SSV>() == 0);  // chapter 8
  CHECK(recs[0].get<PriRecord::SubstreamID>() == 0);
  // 4.5.2: SSV == 1 without PASID support is CONSTRAINED UNPREDICTABLE; the model's choice is
  // "no effect".
  m.issue(test::pri_resp(5, 1, arch::kPriRespSuccess, true, 3));
  CHECK(dev.prg_responses().empty());
  m.issue(test::pri_resp(5, 1, arch::kPriRespSuccess));
  REQUIRE(dev.prg_responses().size() == 1);
  CHECK(dev.outstanding_prgs() == 0);
  CHECK(m.model().counters().prg_responses_dropped == 1);
}

}  // namespace
}  // namespace strata::sim::smmuv3
