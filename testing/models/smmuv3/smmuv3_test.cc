// SPDX-License-Identifier: MIT
// The assembled SMMUv3 model's DMA port: translations for every stream configuration, SMMUEN
// and GBPA, and every fault in the Event queue with its fields. Tables, STEs and CDs are built
// by hand (smmuv3_harness.h); expected records are typed in from IHI 0070 3.4, 5.5 and
// 7.3.3-7.3.16.
#include "testing/models/smmuv3/smmuv3.h"

#include <string.h>

#include <vector>

#include <doctest/doctest.h>

#include "arch/lpae/pte.h"
#include "arch/smmuv3/event.h"
#include "testing/models/smmuv3/fault_events.h"
#include "testing/models/smmuv3/smmuv3_harness.h"

namespace strata::sim::smmuv3 {
namespace {

using arch::EventRecord;
using arch::EventType;
using arch::TranslationFaultRecord;
using test::data_ipa;
using test::data_pa;
using test::kModes;
using test::Machine;
using TR = TranslationFaultRecord;

constexpr Access kRead{};
constexpr Access kWrite{.write = true};

EventType type_of(const EventRecord& e) { return static_cast<EventType>(e.type()); }
TR as_fault(const EventRecord& e) { return arch::descriptor_cast<TR>(e); }

// A stage-1 stream: StreamID `sid`, one CD with `asid`, tables with `va` -> `pa` mapped.
struct S1Stream {
  uint64_t root = 0;
  uint64_t cd = 0;
};
S1Stream s1_stream(Machine& m, uint32_t sid, uint16_t asid, uint64_t va, uint64_t pa,
                   uint64_t attrs = test::kS1Rw, arch::CD cd = {}) {
  S1Stream s;
  s.root = m.new_s1_root();
  if (va || pa) m.map_s1(s.root, va, pa, attrs);
  arch::CD c = cd.word(0) ? cd : test::make_cd(asid, s.root);
  c.set<arch::CD::TTB0>(s.root);
  s.cd = m.new_cd(c);
  m.set_ste(sid, test::s1_ste(s.cd));
  return s;
}

TEST_CASE("stage 1: a translation, then a cached one") {
  for (Threading mode : kModes) {
    CAPTURE(name(mode));
    Machine m(mode);
    m.start();
    s1_stream(m, 3, 5, 0x1234'5000, data_pa(1));

    Translated t = m.tr(3, 0x1234'5678);
    REQUIRE(t.ok());
    CHECK(t.pa == data_pa(1) + 0x678);
    CHECK(t.size_log2 == 12);
    CHECK_FALSE(t.cached);
    t = m.tr(3, 0x1234'5008, kWrite);
    REQUIRE(t.ok());
    CHECK(t.pa == data_pa(1) + 8);
    CHECK(t.cached);

    const Smmuv3Counters c = m.model().counters();
    CHECK(c.translations == 2);
    CHECK(c.walks == 1);
    CHECK(c.tlb_misses == 1);
    CHECK(c.tlb_hits == 1);
    CHECK(c.config_misses == 1);
    CHECK(m.model().tlb_entries() == 1);
    CHECK(m.events().empty());
    CHECK(m.model().stale_reports().empty());
  }
}

TEST_CASE("stage 1 with substreams: the CD the SubstreamID selects") {
  Machine m;
  m.start();
  const uint64_t table = m.structs.alloc(4 * 64);
  uint64_t roots[4];
  for (unsigned i = 0; i < 4; ++i) {
    roots[i] = m.new_s1_root();
    m.map_s1(roots[i], 0x10'0000, data_pa(10 + i), test::kS1Rw | lpae::S1Pte::nG::kMask);
    m.put(m.structs, table + 64 * i, test::make_cd(static_cast<uint16_t>(20 + i), roots[i]));
  }
  m.set_ste(2, test::s1_ste(table, 0, 2, arch::kS1FmtLinear, arch::kS1dssSsid0));
  for (unsigned i = 1; i < 4; ++i) {
    const Translated t = m.tr(2, i, 0x10'0010);
    REQUIRE(t.ok());
    CHECK(t.pa == data_pa(10 + i) + 0x10);
  }
  // No SubstreamID with S1DSS == 0b10: CD 0.
  const Translated t0 = m.tr(2, 0x10'0020);
  REQUIRE(t0.ok());
  CHECK(t0.pa == data_pa(10) + 0x20);
  // SubstreamID 0 with S1DSS == 0b10 is F_STREAM_DISABLED (7.3.7: StreamID only).
  const Translated bad = m.tr(2, 0, 0x10'0020);
  CHECK(bad.status == Translated::Status::kAbort);
  const std::vector<EventRecord> ev = m.events();
  REQUIRE(ev.size() == 1);
  CHECK(type_of(ev[0]) == EventType::F_STREAM_DISABLED);
  CHECK(ev[0].get<EventRecord::StreamID>() == 2);
  CHECK(ev[0].get<EventRecord::SSV>() == 0);
}

TEST_CASE("stage 2 only: the input address is an IPA") {
  Machine m;
  m.start();
  const uint64_t s2 = m.new_s2_root();
  m.map_s2(s2, 0x5000'0000, data_pa(2));
  m.set_ste(4, test::s2_ste(s2, 9));
  const Translated t = m.tr(4, 0x5000'0010, kWrite);
  REQUIRE(t.ok());
  CHECK(t.pa == data_pa(2) + 0x10);
  CHECK(m.tr(4, 0x5000'0ff8).cached);
  // Stage 1 bypassed: an input above the IAS (48 bits) is a stage 1 Address Size fault (3.4).
  const Translated big = m.tr(4, uint64_t{1} << 50);
  CHECK(big.status == Translated::Status::kAbort);
  const std::vector<EventRecord> ev = m.events();
  REQUIRE(ev.size() == 1);
  CHECK(type_of(ev[0]) == EventType::F_ADDR_SIZE);
  CHECK(as_fault(ev[0]).get<TR::S2>() == 0);
  CHECK(as_fault(ev[0]).get<TR::CLASS>() == arch::kClassIn);
  CHECK(as_fault(ev[0]).get<TR::InputAddr>() == uint64_t{1} << 50);
}

TEST_CASE("nested: the guest's CD and stage-1 tables behind stage 2") {
  for (Threading mode : kModes) {
    CAPTURE(name(mode));
    Machine m(mode);
    m.start();
    const uint64_t s2 = m.new_s2_root();
    m.map_s2(s2, data_ipa(3), data_pa(3));
    const uint64_t groot = m.new_guest_s1_root();
    m.map_guest_s1(groot, 0x7000'0000, data_ipa(3));
    const uint64_t cd = m.new_guest_cd(test::make_cd(1, groot));
    m.set_ste(5, test::with_s2(test::s1_ste(cd), s2, arch::kConfigNested, 7));
    Translated t = m.tr(5, 0x7000'0123);
    REQUIRE(t.ok());
    CHECK(t.pa == data_pa(3) + 0x123);
    t = m.tr(5, 0x7000'0456, kWrite);
    REQUIRE(t.ok());
    CHECK(t.pa == data_pa(3) + 0x456);
    CHECK(t.cached);
    CHECK(m.events().empty());
  }
}

TEST_CASE("bypass and abort STEs, SMMUEN == 0 and GBPA") {
  Machine m;
  m.setup_queues();
  m.linear_strtab(4);
  m.set_ste(6, test::bypass_ste());
  m.set_ste(7, test::abort_ste());

  // SMMUEN == 0: GBPA.ABORT resets to 0, so traffic bypasses; nothing is looked up.
  Translated t = m.tr(7, 0x4321'0000);
  REQUIRE(t.ok());
  CHECK(t.pa == 0x4321'0000);
  // An address beyond the OAS aborts without an event (3.4).
  CHECK(m.tr(7, uint64_t{1} << 49).status == Translated::Status::kAbort);
  REQUIRE(m.write_gbpa(arch::GBPA::ABORT::kMask));
  CHECK(m.tr(6, 0x1000).status == Translated::Status::kAbort);
  CHECK(m.events().empty());
  CHECK(m.model().counters().bypassed == 3);
  CHECK(m.model().counters().translations == 0);

  REQUIRE(m.enable(arch::CR0::SMMUEN::kMask));
  t = m.tr(6, 0x4321'0abc);
  REQUIRE(t.ok());
  CHECK(t.pa == 0x4321'0abc);
  // STE.Config 0b000: abort, no event.
  t = m.tr(7, 0x1000);
  CHECK(t.status == Translated::Status::kAbort);
  CHECK_FALSE(t.has_event());
  // Bypass beyond the OAS: a stage 1 Address Size fault, recorded (3.4).
  t = m.tr(6, uint64_t{1} << 49, kWrite);
  CHECK(t.status == Translated::Status::kAbort);
  const std::vector<EventRecord> ev = m.events();
  REQUIRE(ev.size() == 1);
  CHECK(type_of(ev[0]) == EventType::F_ADDR_SIZE);
  CHECK(ev[0].get<EventRecord::StreamID>() == 6);
  CHECK(as_fault(ev[0]).get<TR::RnW>() == 0);
  CHECK(as_fault(ev[0]).get<TR::S2>() == 0);
  CHECK(as_fault(ev[0]).get<TR::CLASS>() == arch::kClassIn);
  CHECK(as_fault(ev[0]).get<TR::InputAddr>() == uint64_t{1} << 49);

  // Disabled again: GBPA (ABORT) applies, whatever the STEs say.
  REQUIRE(m.disable(arch::CR0::SMMUEN::kMask));
  CHECK(m.tr(6, 0x1000).status == Translated::Status::kAbort);
}

TEST_CASE("stage 1 faults: records with every field, and CD.R and CD.A") {
  Machine m;
  m.start();
  s1_stream(m, 3, 5, 0x1234'5000, data_pa(1));

  SUBCASE("F_TRANSLATION") {
    const Translated t = m.tr(3, 0xdead'b000 | 0x5a, Access{.instr = true, .priv = true});
    CHECK(t.status == Translated::Status::kAbort);
    REQUIRE(t.term);
    CHECK(t.term->recorded);
    CHECK(t.term->queue_result == EventResult::kWritten);
    const std::vector<EventRecord> ev = m.events();
    REQUIRE(ev.size() == 1);
    const TR r = as_fault(ev[0]);
    CHECK(type_of(ev[0]) == EventType::F_TRANSLATION);
    CHECK(r.get<TR::StreamID>() == 3);
    CHECK(r.get<TR::SSV>() == 0);
    CHECK(r.get<TR::RnW>() == 1);
    CHECK(r.get<TR::InD>() == 1);
    CHECK(r.get<TR::PnU>() == 1);
    CHECK(r.get<TR::S2>() == 0);
    CHECK(r.get<TR::CLASS>() == arch::kClassIn);
    CHECK(r.get<TR::Stall>() == 0);
    CHECK(r.get<TR::InputAddr>() == (0xdead'b000 | 0x5a));
    CHECK(r.get<TR::IPA>() == 0);
  }
  SUBCASE("F_PERMISSION: a write to a read-only page") {
    const uint64_t root = m.new_s1_root();
    m.map_s1(
        root, 0x2000'0000, data_pa(2),
        (test::kS1Rw & ~lpae::S1Pte::AP::kMask) | (lpae::kApRoUnpriv << lpae::S1Pte::AP::kShift));
    m.set_ste(4, test::s1_ste(m.new_cd(test::make_cd(6, root))));
    REQUIRE(m.tr(4, 0x2000'0010).ok());
    const Translated t = m.tr(4, 0x2000'0010, kWrite);  // a TLB hit that refuses the write
    CHECK(t.cached);
    CHECK(t.status == Translated::Status::kAbort);
    const std::vector<EventRecord> ev = m.events();
    REQUIRE(ev.size() == 1);
    CHECK(type_of(ev[0]) == EventType::F_PERMISSION);
    CHECK(as_fault(ev[0]).get<TR::RnW>() == 0);
    CHECK(as_fault(ev[0]).get<TR::InD>() == 0);
    CHECK(as_fault(ev[0]).get<TR::S2>() == 0);
    CHECK(as_fault(ev[0]).get<TR::CLASS>() == arch::kClassIn);
    CHECK(as_fault(ev[0]).get<TR::InputAddr>() == 0x2000'0010);
  }
  SUBCASE("F_ACCESS: AF == 0 without HA") {
    const uint64_t root = m.new_s1_root();
    m.map_s1(root, 0x3000'0000, data_pa(3), test::kS1Rw & ~lpae::S1Pte::AF::kMask);
    m.set_ste(4, test::s1_ste(m.new_cd(test::make_cd(6, root))));
    CHECK(m.tr(4, 0x3000'0000).status == Translated::Status::kAbort);
    const std::vector<EventRecord> ev = m.events();
    REQUIRE(ev.size() == 1);
    CHECK(type_of(ev[0]) == EventType::F_ACCESS);
  }
  SUBCASE("F_ADDR_SIZE: an output beyond CD.IPS") {
    const uint64_t root = m.new_s1_root();
    m.map_s1(root, 0x3000'0000, uint64_t{1} << 33);
    m.set_ste(4,
              test::s1_ste(m.new_cd(test::make_cd(6, root).set<arch::CD::IPS>(arch::kAddrSize32))));
    CHECK(m.tr(4, 0x3000'0000).status == Translated::Status::kAbort);
    const std::vector<EventRecord> ev = m.events();
    REQUIRE(ev.size() == 1);
    CHECK(type_of(ev[0]) == EventType::F_ADDR_SIZE);
    CHECK(as_fault(ev[0]).get<TR::S2>() == 0);
  }
  SUBCASE("F_WALK_EABT: a table outside RAM, with FetchAddr") {
    const uint64_t root = m.new_s1_root();
    const uint64_t va = 0x0000'4000'0000'0000 | 0x1234'5000;
    m.s1t.put(root + ((va >> 39) & 511) * 8, test::table_desc(test::kNowhere, 12));
    m.set_ste(4, test::s1_ste(m.new_cd(test::make_cd(6, root))));
    const Translated t = m.tr(4, va);
    CHECK(t.status == Translated::Status::kAbort);
    const std::vector<EventRecord> ev = m.events();
    REQUIRE(ev.size() == 1);
    CHECK(type_of(ev[0]) == EventType::F_WALK_EABT);
    const auto w = arch::descriptor_cast<arch::WalkEabtRecord>(ev[0]);
    CHECK(w.get<arch::WalkEabtRecord::S2>() == 0);
    CHECK(w.get<arch::WalkEabtRecord::CLASS>() == arch::kClassTt);  // 7.3.12: stage 1, CLASS TT
    CHECK(w.get<arch::WalkEabtRecord::InputAddr>() == va);
    CHECK(w.get<arch::WalkEabtRecord::FetchAddr>() == test::kNowhere + ((va >> 30) & 511) * 8);
    CHECK(w.get<arch::WalkEabtRecord::RnW>() == 1);
  }
  SUBCASE("CD.R == 0: terminated, not recorded") {
    const uint64_t root = m.new_s1_root();
    m.set_ste(4, test::s1_ste(m.new_cd(test::make_cd(6, root).set<arch::CD::R>(0))));
    const Translated t = m.tr(4, 0x5000);
    CHECK(t.status == Translated::Status::kAbort);
    CHECK(t.has_event());
    REQUIRE(t.term);
    CHECK_FALSE(t.term->record);
    CHECK(m.events().empty());
  }
  SUBCASE("CD.A == 0: RAZ/WI, still recorded with R") {
    const uint64_t root = m.new_s1_root();
    m.set_ste(4, test::s1_ste(m.new_cd(test::make_cd(6, root).set<arch::CD::A>(0))));
    const Translated t = m.tr(4, 0x5000);
    CHECK(t.status == Translated::Status::kRazWi);
    CHECK(m.events().size() == 1);
  }
  SUBCASE("with a SubstreamID: SSV and SubstreamID in the record") {
    const uint64_t table = m.structs.alloc(4 * 64);
    const uint64_t root = m.new_s1_root();
    m.put(m.structs, table + 64 * 3, test::make_cd(7, root));
    m.set_ste(4, test::s1_ste(table, 0, 2));
    CHECK(m.tr(4, 3, 0x7000).status == Translated::Status::kAbort);
    const std::vector<EventRecord> ev = m.events();
    REQUIRE(ev.size() == 1);
    CHECK(type_of(ev[0]) == EventType::F_TRANSLATION);
    CHECK(ev[0].get<EventRecord::SSV>() == 1);
    CHECK(ev[0].get<EventRecord::SubstreamID>() == 3);
  }
  CHECK(m.model().stale_reports().empty());
}

TEST_CASE("stage 2 faults: S2, IPA, CLASS and STE.S2R") {
  Machine m;
  m.start();
  const uint64_t s2 = m.new_s2_root();

  SUBCASE("stage 2 only, CLASS IN") {
    m.set_ste(4, test::s2_ste(s2, 9));
    CHECK(m.tr(4, 0x6000'0123, kWrite).status == Translated::Status::kAbort);
    const std::vector<EventRecord> ev = m.events();
    REQUIRE(ev.size() == 1);
    const TR r = as_fault(ev[0]);
    CHECK(type_of(ev[0]) == EventType::F_TRANSLATION);
    CHECK(r.get<TR::S2>() == 1);
    CHECK(r.get<TR::CLASS>() == arch::kClassIn);
    CHECK(r.get<TR::IPA>() == 0x6000'0000);
    CHECK(r.get<TR::InputAddr>() == 0x6000'0123);
    CHECK(r.get<TR::RnW>() == 0);
  }
  SUBCASE("S2R == 0: not recorded") {
    m.set_ste(4, test::s2_ste(s2, 9).set<arch::STE::S2R>(0));
    const Translated t = m.tr(4, 0x6000'0123);
    CHECK(t.status == Translated::Status::kAbort);
    REQUIRE(t.term);
    CHECK_FALSE(t.term->record);
    CHECK(m.events().empty());
  }
  SUBCASE("nested: a stage-1 table stage 2 does not map, CLASS TT") {
    const uint64_t groot = m.new_guest_s1_root();
    const uint64_t va = 0x7000'0000;
    const uint64_t hole = 0x9000'0000;  // an IPA outside the guest memory
    m.guest.put(groot + ((va >> 39) & 511) * 8, test::table_desc(hole, 12));
    const uint64_t cd = m.new_guest_cd(test::make_cd(1, groot));
    m.set_ste(5, test::with_s2(test::s1_ste(cd), s2, arch::kConfigNested, 7));
    CHECK(m.tr(5, va).status == Translated::Status::kAbort);
    const std::vector<EventRecord> ev = m.events();
    REQUIRE(ev.size() == 1);
    const TR r = as_fault(ev[0]);
    CHECK(type_of(ev[0]) == EventType::F_TRANSLATION);
    CHECK(r.get<TR::S2>() == 1);
    CHECK(r.get<TR::CLASS>() == arch::kClassTt);
    CHECK(r.get<TR::TTRnW>() == 1);
    CHECK(r.get<TR::IPA>() == hole + (((va >> 30) & 511) * 8 & ~uint64_t{0xfff}));
    CHECK(r.get<TR::InputAddr>() == va);
  }
  SUBCASE("nested: a CD stage 2 does not map, CLASS CD") {
    const uint64_t cd_ipa = 0x9000'0040;
    m.set_ste(5, test::with_s2(test::s1_ste(cd_ipa), s2, arch::kConfigNested, 7));
    CHECK(m.tr(5, 0x1000).status == Translated::Status::kAbort);
    const std::vector<EventRecord> ev = m.events();
    REQUIRE(ev.size() == 1);
    const TR r = as_fault(ev[0]);
    CHECK(type_of(ev[0]) == EventType::F_TRANSLATION);
    CHECK(r.get<TR::S2>() == 1);
    CHECK(r.get<TR::CLASS>() == arch::kClassCd);
    CHECK(r.get<TR::IPA>() == 0x9000'0000);
  }
  SUBCASE("nested: the output IPA stage 2 does not map, CLASS IN") {
    const uint64_t groot = m.new_guest_s1_root();
    m.map_guest_s1(groot, 0x7000'0000, data_ipa(9));
    const uint64_t cd = m.new_guest_cd(test::make_cd(1, groot));
    m.set_ste(5, test::with_s2(test::s1_ste(cd), s2, arch::kConfigNested, 7));
    CHECK(m.tr(5, 0x7000'0010).status == Translated::Status::kAbort);
    const std::vector<EventRecord> ev = m.events();
    REQUIRE(ev.size() == 1);
    const TR r = as_fault(ev[0]);
    CHECK(r.get<TR::S2>() == 1);
    CHECK(r.get<TR::CLASS>() == arch::kClassIn);
    CHECK(r.get<TR::IPA>() == data_ipa(9));
  }
}

TEST_CASE("configuration errors: C_BAD_STE, C_BAD_STREAMID, C_BAD_CD") {
  Machine m;
  m.start(4);
  // STE V == 0.
  Translated t = m.model().translate(2, true, 0x33, 0x1000, Access{});
  CHECK(t.status == Translated::Status::kAbort);
  CHECK(t.config_error() == LookupError::ste_invalid);
  // Beyond the stream table (16 STEs), recorded because CR2.RECINVSID == 1.
  t = m.tr(40, 0x1000);
  CHECK(t.config_error() == LookupError::sid_out_of_range);
  // A CD with V == 0.
  arch::CD cd = test::make_cd(1, m.new_s1_root());
  cd.set<arch::CD::V>(0);
  m.set_ste(3, test::s1_ste(m.new_cd(cd)));
  t = m.tr(3, 0x1000);
  CHECK(t.config_error() == LookupError::cd_invalid);

  const std::vector<EventRecord> ev = m.events();
  REQUIRE(ev.size() == 3);
  CHECK(type_of(ev[0]) == EventType::C_BAD_STE);
  CHECK(ev[0].get<EventRecord::StreamID>() == 2);
  CHECK(ev[0].get<EventRecord::SSV>() == 1);
  CHECK(ev[0].get<EventRecord::SubstreamID>() == 0x33);
  CHECK(type_of(ev[1]) == EventType::C_BAD_STREAMID);
  CHECK(ev[1].get<EventRecord::StreamID>() == 40);
  CHECK(type_of(ev[2]) == EventType::C_BAD_CD);
  CHECK(ev[2].get<EventRecord::StreamID>() == 3);
}

TEST_CASE("DMA: page by page, stopping at the first aborting page") {
  for (Threading mode : kModes) {
    CAPTURE(name(mode));
    Machine m(mode);
    m.start();
    const uint64_t root = m.new_s1_root();
    const uint64_t va = 0x40'0000;
    // Pages 0 and 1 map to data pages 21 and 20 (not contiguous), page 2 is not mapped.
    m.map_s1(root, va, data_pa(21));
    m.map_s1(root, va + 0x1000, data_pa(20));
    m.set_ste(3, test::s1_ste(m.new_cd(test::make_cd(5, root))));

    std::vector<uint8_t> out(0x2000 + 0x200);
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(i * 7 + 1);
    // From 0x100 into page 0 to 0x300 into page 2.
    DmaResult r = m.model().dma_write(3, false, 0, va + 0x100, out.data(), out.size());
    CHECK(r.status == DmaResult::Status::kAbort);
    CHECK(r.done == 0x2000 - 0x100);
    CHECK(r.fault.event_type() == EventType::F_TRANSLATION);
    CHECK(r.fault.term->event.get<EventRecord::StreamID>() == 3);
    CHECK(m.events().size() == 1);
    // What was written landed where the tables say.
    auto* p21 = static_cast<uint8_t*>(m.mem().host_ptr(data_pa(21), 4096));
    auto* p20 = static_cast<uint8_t*>(m.mem().host_ptr(data_pa(20), 4096));
    CHECK(memcmp(p21 + 0x100, out.data(), 0xf00) == 0);
    CHECK(memcmp(p20, out.data() + 0xf00, 0x1000) == 0);

    std::vector<uint8_t> in(0x1f00);
    r = m.model().dma_read(3, false, 0, va + 0x100, in.data(), in.size());
    REQUIRE(r.ok());
    CHECK(r.done == in.size());
    CHECK(memcmp(in.data(), out.data(), in.size()) == 0);
    CHECK(m.model().stale_reports().empty());
  }
}

TEST_CASE("DMA: RAZ/WI pages read as zero and drop writes; bus errors") {
  Machine m;
  m.start();
  const uint64_t root = m.new_s1_root();
  m.map_s1(root, 0x1000, data_pa(30));
  m.map_s1(root, 0x3000, test::kNowhere);  // translates to nothing
  m.set_ste(3, test::s1_ste(m.new_cd(test::make_cd(5, root).set<arch::CD::A>(0))));
  m.poke(data_pa(30), 0x1122334455667788);
  std::vector<uint8_t> buf(0x2000, 0xee);
  DmaResult r = m.model().dma_read(3, false, 0, 0x1000, buf.data(), buf.size());
  REQUIRE(r.ok());
  uint64_t first;
  memcpy(&first, buf.data(), 8);
  CHECK(first == 0x1122334455667788);
  for (size_t i = 0x1000; i < 0x2000; ++i) REQUIRE(buf[i] == 0);  // page 0x2000: RAZ
  CHECK(m.events().size() == 1);                                  // and recorded (R == 1)

  r = m.model().dma_write(3, false, 0, 0x3000, buf.data(), 16);
  CHECK(r.status == DmaResult::Status::kBusError);
  CHECK(r.bus_pa == test::kNowhere);
}

TEST_CASE("hardware updates: AF on a read, dirty on the first write after a clean hit") {
  Machine m;
  m.start();
  const uint64_t root = m.new_s1_root();
  // Writable-clean (AP[2] == 1 with DBM), AF == 0.
  const uint64_t attrs = (test::kS1Rw & ~lpae::S1Pte::AF::kMask & ~lpae::S1Pte::AP::kMask) |
                         (lpae::kApRoUnpriv << lpae::S1Pte::AP::kShift) | lpae::S1Pte::DBM::kMask;
  const uint64_t leaf = m.map_s1(root, 0x8000, data_pa(40), attrs);
  m.set_ste(
      3, test::s1_ste(m.new_cd(test::make_cd(5, root).set<arch::CD::HA>(1).set<arch::CD::HD>(1))));
  REQUIRE(m.tr(3, 0x8000).ok());
  CHECK((m.s1t.get(leaf) & lpae::S1Pte::AF::kMask) != 0);
  CHECK((m.s1t.get(leaf) & (uint64_t{2} << lpae::S1Pte::AP::kShift)) != 0);  // still clean
  REQUIRE(m.tr(3, 0x8008).ok());  // a hit on the clean entry
  const uint64_t walks = m.model().counters().walks;
  REQUIRE(m.tr(3, 0x8010, kWrite).ok());  // walks again to make it dirty
  CHECK(m.model().counters().walks == walks + 1);
  CHECK((m.s1t.get(leaf) & (uint64_t{2} << lpae::S1Pte::AP::kShift)) == 0);
  REQUIRE(m.tr(3, 0x8018, kWrite).ok());  // now a hit
  CHECK(m.model().counters().walks == walks + 1);
  CHECK(m.model().stale_reports().empty());
}

TEST_CASE("reset: registers, queues and caches back to their reset state") {
  Machine m(Threading::kAsync);
  m.start();
  s1_stream(m, 3, 5, 0x1000, data_pa(1));
  REQUIRE(m.tr(3, 0x1000).ok());
  CHECK(m.model().tlb_entries() == 1);
  m.model().reset();
  CHECK(m.model().tlb_entries() == 0);
  CHECK(m.model().config_cache_stats().stes == 0);
  CHECK(m.readl(arch::CR0ACK::kOffset) == 0);
  CHECK(m.readl(arch::CMDQ_CONS::kOffset) == 0);
  // SMMUEN == 0 again: bypass per GBPA.
  const Translated t = m.tr(3, 0x1000);
  REQUIRE(t.ok());
  CHECK(t.pa == 0x1000);
  // And it works again once programmed.
  m.start();
  s1_stream(m, 3, 5, 0x1000, data_pa(1));
  REQUIRE(m.tr(3, 0x1000).ok());
  CHECK(m.tr(3, 0x1000).pa == data_pa(1));
}

}  // namespace
}  // namespace strata::sim::smmuv3
