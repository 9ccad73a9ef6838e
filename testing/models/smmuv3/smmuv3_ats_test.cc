// SPDX-License-Identifier: MIT
// The SMMUv3 model's ATS port: Translation Requests for every stream configuration, split-stage
// ATS, Translated transactions under ATSCHK/EATS/SMMUEN, CMD_ATC_INV delivered to an endpoint's
// ATC with its range and Global semantics, the CMD_SYNC that waits for it (and its timeout), and
// the oracle that catches a stale ATC. Expected values are typed in from IHI 0070 3.9.1, 4.5.1,
// 5.2 (EATS), 7.3.6, 7.3.8, 13.6 and 13.7.
#include <atomic>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "arch/lpae/pte.h"
#include "arch/smmuv3/event.h"
#include "testing/models/smmuv3/ats.h"
#include "testing/models/smmuv3/ats_events.h"
#include "testing/models/smmuv3/sim_ats_device.h"
#include "testing/models/smmuv3/smmuv3.h"
#include "testing/models/smmuv3/smmuv3_harness.h"

namespace strata::sim::smmuv3 {
namespace {

using arch::EventRecord;
using arch::EventType;
using test::data_ipa;
using test::data_pa;
using test::kModes;
using test::Machine;
using Status = AtsCompletion::Status;
using Path = SimAtsDevice::Path;
using TR = arch::TranslationFaultRecord;

constexpr Access kRead{};
constexpr Access kWrite{.write = true};

// Stage-1 leaves, all non-global (nG: streams with different ASIDs map the same VAs here):
// read/write, read-only at both privileges, and read/write at EL1 only.
constexpr uint64_t kS1Rw = test::kS1Rw | lpae::S1Pte::nG::kMask;
constexpr uint64_t kS1Ro =
    (kS1Rw & ~lpae::S1Pte::AP::kMask) | (lpae::kApRoUnpriv << lpae::S1Pte::AP::kShift);
constexpr uint64_t kS1PrivRw = kS1Rw & ~lpae::S1Pte::AP::kMask;
// A stage-2 leaf that is read-only.
constexpr uint64_t kS2Ro =
    (test::kS2Rw & ~lpae::S2Pte::S2AP::kMask) | (lpae::kS2apRead << lpae::S2Pte::S2AP::kShift);

EventType type_of(const EventRecord& e) { return static_cast<EventType>(e.type()); }

arch::STE with_eats(arch::STE s, uint64_t eats) {
  s.set<arch::STE::EATS>(eats);
  return s;
}

AtsCompletion treq(Machine& m, uint32_t sid, uint64_t addr, bool nw = false) {
  return m.model().ats_translate(AtsTranslationRequest{.sid = sid, .address = addr, .nw = nw});
}

// A stage-1 stream with one CD (ASID `asid`): its table root.
uint64_t s1_stream(Machine& m, uint32_t sid, uint16_t asid, uint64_t eats = arch::kEatsTrans) {
  const uint64_t root = m.new_s1_root();
  m.set_ste(sid, with_eats(test::s1_ste(m.new_cd(test::make_cd(asid, root))), eats));
  return root;
}

// A stage-1 stream with 4 CDs (PASIDs 0-3, S1DSS: CD 0 for traffic without PASID): their roots.
std::vector<uint64_t> s1_pasid_stream(Machine& m, uint32_t sid, uint64_t eats = arch::kEatsTrans) {
  const uint64_t table = m.structs.alloc(4 * 64);
  std::vector<uint64_t> roots;
  for (unsigned i = 0; i < 4; ++i) {
    roots.push_back(m.new_s1_root());
    m.put(m.structs, table + 64 * i, test::make_cd(static_cast<uint16_t>(10 + i), roots[i]));
  }
  m.set_ste(sid, with_eats(test::s1_ste(table, 0, 2, arch::kS1FmtLinear, arch::kS1dssSsid0), eats));
  return roots;
}

// An endpoint that keeps every Invalidate Request's completion and completes none by itself.
struct HoldingEndpoint final : Endpoint {
  void atc_invalidate(const AtcInvalidation& inv, AtcInvDone done) override {
    std::lock_guard<std::mutex> lock(mu);
    invalidations.push_back(inv);
    held.push_back(std::move(done));
  }
  void prg_response(const PrgResponse&) override {}
  size_t count() {
    std::lock_guard<std::mutex> lock(mu);
    return held.size();
  }
  void complete_all() {
    std::vector<AtcInvDone> done;
    {
      std::lock_guard<std::mutex> lock(mu);
      done = held;
    }
    for (const AtcInvDone& d : done) d.complete();
  }
  std::mutex mu;
  std::vector<AtcInvalidation> invalidations;
  std::vector<AtcInvDone> held;
};

TEST_CASE("ATS Translation Request, stage 1: address, span and permissions") {
  Machine m;
  m.start();
  const uint64_t root = s1_stream(m, 3, 1);
  m.map_s1(root, 0x10'0000, data_pa(1), kS1Rw);
  m.map_s1(root, 0x10'1000, data_pa(2), kS1Ro);
  m.map_s1(root, 0x4000'0000, test::kDataPa, kS1Rw, 2);  // a 2 MiB block

  AtsCompletion c = treq(m, 3, 0x10'0234, /*nw=*/true);
  CHECK(c.status == Status::kSuccess);
  CHECK(c.translated_address == data_pa(1));
  CHECK(c.size_log2 == 12);
  CHECK(c.R);
  CHECK_FALSE(c.W);  // NW == 1: Write is never granted (the model's choice, 13.7)
  CHECK_FALSE(c.Exe);
  CHECK_FALSE(c.Priv);
  CHECK_FALSE(c.U);
  CHECK_FALSE(c.N);
  CHECK_FALSE(c.Global);
  c = treq(m, 3, 0x10'0000);
  CHECK(c.R);
  CHECK(c.W);
  // A read-only page: R only, whatever NW asks (13.7).
  c = treq(m, 3, 0x10'1000);
  CHECK(c.status == Status::kSuccess);
  CHECK(c.translated_address == data_pa(2));
  CHECK(c.R);
  CHECK_FALSE(c.W);
  // A block: the span is the block's.
  c = treq(m, 3, 0x4012'3000);
  CHECK(c.translated_address == test::kDataPa);
  CHECK(c.size_log2 == 21);
  CHECK(c.W);
  // Unmapped: Success with no access and one STU (3.9.1.2), no event (3.9.1).
  c = treq(m, 3, 0x20'0000);
  CHECK(c.status == Status::kSuccess);
  CHECK_FALSE(c.R);
  CHECK_FALSE(c.W);
  CHECK(c.size_log2 == 12);
  CHECK(m.events().empty());
  CHECK(m.model().counters().ats_translation_requests == 5);
}

TEST_CASE("ATS Translation Request with a PASID: Priv, Exe and STE.PRIVCFG (13.7.1)") {
  Machine m;
  m.start();
  const std::vector<uint64_t> roots = s1_pasid_stream(m, 2);
  m.map_s1(roots[0], 0x30'0000, data_pa(4), kS1Rw);
  m.map_s1(roots[1], 0x30'0000, data_pa(5), kS1PrivRw);

  auto pasid_treq = [&](uint32_t ssid, bool priv, bool exe) {
    return m.model().ats_translate(AtsTranslationRequest{
        .sid = 2, .ssv = true, .ssid = ssid, .address = 0x30'0000, .exe = exe, .priv = priv});
  };
  // EL1-only read/write: granted to a privileged request, with execute (PXN == 0 and the page
  // is not writable at EL0); Priv is echoed.
  AtsCompletion c = pasid_treq(1, true, true);
  CHECK(c.translated_address == data_pa(5));
  CHECK(c.R);
  CHECK(c.W);
  CHECK(c.Exe);
  CHECK(c.Priv);
  // Unprivileged: nothing.
  c = pasid_treq(1, false, false);
  CHECK(c.status == Status::kSuccess);
  CHECK_FALSE(c.R);
  CHECK_FALSE(c.W);
  // Without a PASID: CD 0 (S1DSS == 0b10), no Priv, no Exe.
  c = m.model().ats_translate(
      AtsTranslationRequest{.sid = 2, .address = 0x30'0000, .exe = true, .priv = true});
  CHECK(c.translated_address == data_pa(4));
  CHECK(c.R);
  CHECK_FALSE(c.Exe);
  CHECK_FALSE(c.Priv);

  // STE.PRIVCFG == Privileged: the permissions are EL1's, the completion's Priv the request's.
  arch::STE s;
  for (unsigned i = 0; i < arch::STE::kWords; ++i)
    s.set_word(i, m.structs.get(m.ste_addr(2) + 8 * i));
  s.set<arch::STE::PRIVCFG>(arch::kPrivcfgPriv);
  m.set_ste(2, s);
  m.issue(test::cfgi_ste(2));
  c = pasid_treq(1, false, false);
  CHECK(c.R);
  CHECK(c.W);
  CHECK_FALSE(c.Priv);
  CHECK(m.events().empty());
}

TEST_CASE("ATS Translation Request, stage 2 and nested: the PA of every enabled stage") {
  Machine m;
  m.start();
  const uint64_t s2 = m.new_s2_root();
  m.map_s2(s2, 0x5000'0000, data_pa(2));
  m.map_s2(s2, 0x5000'1000, data_pa(3), kS2Ro);
  m.set_ste(4, with_eats(test::s2_ste(s2, 9), arch::kEatsTrans));
  AtsCompletion c = treq(m, 4, 0x5000'0000);
  CHECK(c.translated_address == data_pa(2));
  CHECK(c.R);
  CHECK(c.W);
  c = treq(m, 4, 0x5000'1000);
  CHECK(c.translated_address == data_pa(3));
  CHECK(c.R);
  CHECK_FALSE(c.W);

  // Nested: the guest's stage 1, then stage 2.
  const uint64_t ns2 = m.new_s2_root();
  m.map_s2(ns2, data_ipa(3), data_pa(3));
  const uint64_t groot = m.new_guest_s1_root();
  m.map_guest_s1(groot, 0x7000'0000, data_ipa(3));
  m.map_guest_s1(groot, 0x7000'1000, data_ipa(7));  // stage 2 does not map it
  const uint64_t cd = m.new_guest_cd(test::make_cd(1, groot));
  m.set_ste(
      5, with_eats(test::with_s2(test::s1_ste(cd), ns2, arch::kConfigNested, 7), arch::kEatsTrans));
  c = treq(m, 5, 0x7000'0000);
  CHECK(c.translated_address == data_pa(3));
  CHECK(c.size_log2 == 12);
  CHECK(c.W);
  // A stage-2 translation fault of the output: Success without access, no event (3.9.1.2).
  c = treq(m, 5, 0x7000'1000);
  CHECK(c.status == Status::kSuccess);
  CHECK_FALSE(c.R);
  // The CD's IPA unmapped at stage 2 is translation-related too (3.9.1.2's table).
  m.set_ste(6, with_eats(test::with_s2(test::s1_ste(test::kGuestIpa + (32 << 20)), ns2,
                                       arch::kConfigNested, 8),
                         arch::kEatsTrans));
  c = treq(m, 6, 0x7000'0000);
  CHECK(c.status == Status::kSuccess);
  CHECK_FALSE(c.R);
  CHECK(m.events().empty());
}

TEST_CASE("Full ATS skipping stage 1: an identity span, or stage 2 alone (13.6.4)") {
  Machine m;
  m.start();
  const uint64_t table = m.structs.alloc(2 * 64);
  m.put(m.structs, table, test::make_cd(1, m.new_s1_root()));
  m.put(m.structs, table + 64, test::make_cd(2, m.new_s1_root()));
  const arch::STE s1 = test::s1_ste(table, 0, 1, arch::kS1FmtLinear, arch::kS1dssBypass);
  m.set_ste(10, with_eats(s1, arch::kEatsTrans));
  // Stage 1 only: identity, R == W == 1 (even for NW == 1), no Exe or Priv.
  AtsCompletion c = treq(m, 10, 0x1234'5678, /*nw=*/true);
  CHECK(c.status == Status::kSuccess);
  CHECK(c.translated_address == 0x1234'5000);
  CHECK(c.R);
  CHECK(c.W);
  CHECK_FALSE(c.Exe);
  CHECK_FALSE(c.U);
  // Beyond the IAS: the bypassed stage 1's Address Size fault, so no access.
  CHECK_FALSE(treq(m, 10, uint64_t{1} << 50).R);
  // With stage 2: stage 2 alone.
  const uint64_t s2 = m.new_s2_root();
  m.map_s2(s2, 0x5000'0000, data_pa(6));
  m.set_ste(11, with_eats(test::with_s2(s1, s2, arch::kConfigNested, 4), arch::kEatsTrans));
  c = treq(m, 11, 0x5000'0000);
  CHECK(c.translated_address == data_pa(6));
  CHECK(c.W);
  CHECK(m.events().empty());
}

TEST_CASE("Translation Requests and HTTU: AF for a grant, dirty state only for NW == 0") {
  Machine m;
  m.start();
  const uint64_t root = m.new_s1_root();
  arch::CD cd = test::make_cd(1, root);
  cd.set<arch::CD::HA>(1).set<arch::CD::HD>(1);
  m.set_ste(3, with_eats(test::s1_ste(m.new_cd(cd)), arch::kEatsTrans));
  // Writable-clean (DBM, AP[2] == 1) with AF == 0; and an EL1-only page with AF == 0.
  const uint64_t clean = (kS1Ro & ~lpae::S1Pte::AF::kMask) | lpae::S1Pte::DBM::kMask;
  const uint64_t pte = m.map_s1(root, 0x10'0000, data_pa(1), clean);
  const uint64_t priv = m.map_s1(root, 0x10'1000, data_pa(2), kS1PrivRw & ~lpae::S1Pte::AF::kMask);

  // NW == 1: AF is set, the page stays clean (3.13.7, 13.7).
  AtsCompletion c = treq(m, 3, 0x10'0000, /*nw=*/true);
  CHECK(c.R);
  CHECK_FALSE(c.W);
  uint64_t desc = m.s1t.get(pte);
  CHECK((desc & lpae::S1Pte::AF::kMask) != 0);
  CHECK(lpae::S1Pte::AP::extract(desc) == lpae::kApRoUnpriv);
  // NW == 0: the page is made dirty before Write is granted.
  c = treq(m, 3, 0x10'0000);
  CHECK(c.W);
  desc = m.s1t.get(pte);
  CHECK(lpae::S1Pte::AP::extract(desc) == lpae::kApRwUnpriv);
  // A response granting nothing leaves AF alone.
  c = treq(m, 3, 0x10'1000);
  CHECK_FALSE(c.R);
  CHECK((m.s1t.get(priv) & lpae::S1Pte::AF::kMask) == 0);
}

TEST_CASE("Translation Requests the configuration refuses: UR, CA and F_BAD_ATS_TREQ") {
  Machine m;
  m.start();
  s1_stream(m, 1, 1, arch::kEatsAbort);
  m.set_ste(2, test::bypass_ste());
  m.set_ste(3, test::abort_ste());
  // StreamID 4: V == 0.
  const uint64_t table = m.structs.alloc(2 * 64);
  m.put(m.structs, table, test::make_cd(5, m.new_s1_root()));
  m.put(m.structs, table + 64, test::make_cd(6, m.new_s1_root()));
  m.set_ste(5, with_eats(test::s1_ste(table, 0, 1, arch::kS1FmtLinear, arch::kS1dssTerminate),
                         arch::kEatsTrans));

  // EATS == 0b00: UR and F_BAD_ATS_TREQ with the request's StreamID, PASID and address (7.3.6).
  AtsCompletion c = m.model().ats_translate(
      AtsTranslationRequest{.sid = 1, .ssv = true, .ssid = 0, .address = 0x1234'5678});
  CHECK(c.status == Status::kUnsupportedRequest);
  // Config bypass: EATS is effectively 0b00 (5.2 Config).
  CHECK(treq(m, 2, 0x1000).status == Status::kUnsupportedRequest);
  // Config abort: UR without an event.
  CHECK(treq(m, 3, 0x1000).status == Status::kUnsupportedRequest);
  // STE.V == 0: CA, no event (5.2 V).
  CHECK(treq(m, 4, 0x1000).status == Status::kCompleterAbort);
  // Out of the stream table: CA (C_BAD_STREAMID recorded only with REC_CFG_ATS).
  CHECK(treq(m, 100, 0x1000).status == Status::kCompleterAbort);
  // No PASID with S1DSS == 0b00: F_STREAM_DISABLED's CA, not recorded.
  CHECK(treq(m, 5, 0x1000).status == Status::kCompleterAbort);

  std::vector<EventRecord> ev = m.events();
  REQUIRE(ev.size() == 2);
  const auto bad = arch::descriptor_cast<BadAtsTreqRecord>(ev[0]);
  CHECK(type_of(ev[0]) == EventType::F_BAD_ATS_TREQ);
  CHECK(bad.get<BadAtsTreqRecord::StreamID>() == 1);
  CHECK(bad.get<BadAtsTreqRecord::SSV>() == 1);
  CHECK(bad.get<BadAtsTreqRecord::SubstreamID>() == 0);
  CHECK(bad.get<BadAtsTreqRecord::InputAddr>() == 0x1234'5000);
  CHECK(type_of(ev[1]) == EventType::F_BAD_ATS_TREQ);
  CHECK(ev[1].get<EventRecord::StreamID>() == 2);

  // SMMUEN == 0: UR and F_BAD_ATS_TREQ (3.9.1.2), whatever GBPA says.
  REQUIRE(m.disable(arch::CR0::SMMUEN::kMask));
  CHECK(treq(m, 5, 0x1000).status == Status::kUnsupportedRequest);
  ev = m.events();
  REQUIRE(ev.size() == 1);
  CHECK(type_of(ev[0]) == EventType::F_BAD_ATS_TREQ);
  CHECK(ev[0].get<EventRecord::StreamID>() == 5);
}

TEST_CASE("Translated transactions: ATSCHK, EATS and SMMUEN (3.9.1.3)") {
  Machine m;
  m.start();
  s1_stream(m, 1, 1, arch::kEatsAbort);
  s1_stream(m, 2, 2, arch::kEatsTrans);
  m.set_ste(3, test::bypass_ste());
  m.set_ste(4, test::abort_ste());
  // StreamID 5: V == 0.
  auto translated_write = [&](uint32_t sid, uint64_t pa, uint64_t value) {
    return m.model().dma_write(DmaRequest{.sid = sid, .iova = pa, .translated = true}, &value, 8);
  };

  // ATSCHK == 0: Translated traffic bypasses, whatever the STE says.
  CHECK(translated_write(1, data_pa(1), 0x11).ok());
  CHECK(translated_write(5, data_pa(1) + 8, 0x12).ok());
  CHECK(m.peek(data_pa(1)) == 0x11);
  CHECK(m.peek(data_pa(1) + 8) == 0x12);
  CHECK(m.events().empty());

  REQUIRE(m.enable(arch::CR0::ATSCHK::kMask));
  DmaResult r = translated_write(1, data_pa(2), 0x21);
  CHECK(r.status == DmaResult::Status::kAbort);
  CHECK(m.peek(data_pa(2)) == 0);
  CHECK(translated_write(2, data_pa(2), 0x22).ok());  // full ATS: bypasses
  CHECK(m.peek(data_pa(2)) == 0x22);
  CHECK(translated_write(3, data_pa(3), 0x31).status == DmaResult::Status::kAbort);
  CHECK(translated_write(4, data_pa(3), 0x41).status == DmaResult::Status::kAbort);
  CHECK(translated_write(5, data_pa(3), 0x51).status == DmaResult::Status::kAbort);
  // A PA beyond the OAS: aborted without an event (3.9.1.1, the model's choice).
  CHECK(translated_write(2, uint64_t{1} << 50, 0x52).status == DmaResult::Status::kAbort);
  CHECK(m.peek(data_pa(3)) == 0);

  std::vector<EventRecord> ev = m.events();
  REQUIRE(ev.size() == 2);  // EATS == 0b00 and Config bypass; abort and V == 0 are silent
  const auto f = arch::descriptor_cast<TranslForbiddenRecord>(ev[0]);
  CHECK(type_of(ev[0]) == EventType::F_TRANSL_FORBIDDEN);
  CHECK(f.get<TranslForbiddenRecord::StreamID>() == 1);
  CHECK(f.get<TranslForbiddenRecord::RnW>() == 0);
  CHECK(f.get<TranslForbiddenRecord::InputAddr>() == data_pa(2));
  CHECK(type_of(ev[1]) == EventType::F_TRANSL_FORBIDDEN);
  CHECK(ev[1].get<EventRecord::StreamID>() == 3);

  // A read is RnW == 1.
  uint64_t v = 0;
  CHECK(m.model()
            .dma_read(DmaRequest{.sid = 1, .iova = data_pa(2), .translated = true}, &v, 8)
            .status == DmaResult::Status::kAbort);
  ev = m.events();
  REQUIRE(ev.size() == 1);
  CHECK(arch::descriptor_cast<TranslForbiddenRecord>(ev[0]).get<TranslForbiddenRecord::RnW>() == 1);

  // SMMUEN == 0: Translated traffic is refused and recorded while Untranslated traffic follows
  // GBPA (bypass at reset).
  REQUIRE(m.disable(arch::CR0::SMMUEN::kMask));
  CHECK(translated_write(2, data_pa(4), 0x61).status == DmaResult::Status::kAbort);
  const uint64_t value = 0x62;
  CHECK(m.model().dma_write(2, false, 0, data_pa(4), &value, 8).ok());
  CHECK(m.peek(data_pa(4)) == 0x62);
  ev = m.events();
  REQUIRE(ev.size() == 1);
  CHECK(type_of(ev[0]) == EventType::F_TRANSL_FORBIDDEN);
  CHECK(ev[0].get<EventRecord::StreamID>() == 2);
  CHECK(m.model().counters().ats_translated == 10);
}

TEST_CASE("split-stage ATS: the completion holds the IPA, Translated traffic takes stage 2") {
  Config config = Config::smmuv3_2();
  config.split_stage_ats = true;
  Machine m(Machine::Setup{.config = config});
  m.start();
  REQUIRE(m.enable(arch::CR0::ATSCHK::kMask));
  const uint64_t s2 = m.new_s2_root();
  m.map_s2(s2, data_ipa(4), data_pa(4));
  const uint64_t groot = m.new_guest_s1_root();
  m.map_guest_s1(groot, 0x7000'0000, data_ipa(4));
  m.map_guest_s1(groot, 0x7000'1000, data_ipa(9));  // stage 2 does not map it
  const uint64_t cd = m.new_guest_cd(test::make_cd(1, groot));
  m.set_ste(
      6, with_eats(test::with_s2(test::s1_ste(cd), s2, arch::kConfigNested, 3), arch::kEatsS1Chk));

  AtsCompletion c = treq(m, 6, 0x7000'0000);
  CHECK(c.status == Status::kSuccess);
  CHECK(c.translated_address == data_ipa(4));  // 13.6.3: stage 1's output
  CHECK(c.R);
  CHECK(c.W);
  // Permissions come from both stages: no access where stage 2 has no mapping.
  c = treq(m, 6, 0x7000'1000);
  CHECK(c.status == Status::kSuccess);
  CHECK_FALSE(c.R);

  // The Translated IPA is translated by stage 2.
  const uint64_t value = 0x5151;
  CHECK(m.model()
            .dma_write(DmaRequest{.sid = 6, .iova = data_ipa(4) + 8, .translated = true}, &value, 8)
            .ok());
  CHECK(m.peek(data_pa(4) + 8) == 0x5151);
  // A stage-2 fault of a Translated transaction is recorded as for any transaction.
  const DmaResult r =
      m.model().dma_write(DmaRequest{.sid = 6, .iova = data_ipa(9), .translated = true}, &value, 8);
  CHECK(r.status == DmaResult::Status::kAbort);
  std::vector<EventRecord> ev = m.events();
  REQUIRE(ev.size() == 1);
  CHECK(type_of(ev[0]) == EventType::F_TRANSLATION);
  const TR f = arch::descriptor_cast<TR>(ev[0]);
  CHECK(f.get<TR::S2>() == 1);
  CHECK(f.get<TR::CLASS>() == arch::kClassIn);
  CHECK(f.get<TR::InputAddr>() == data_ipa(9));
  CHECK(f.get<TR::SSV>() == 0);
  CHECK(f.get<TR::RnW>() == 0);

  // ATSCHK == 0: EATS == 0b10 behaves as 0b00 (5.2).
  REQUIRE(m.disable(arch::CR0::ATSCHK::kMask));
  CHECK(treq(m, 6, 0x7000'0000).status == Status::kUnsupportedRequest);
  ev = m.events();
  REQUIRE(ev.size() == 1);
  CHECK(type_of(ev[0]) == EventType::F_BAD_ATS_TREQ);
}

TEST_CASE("a device's ATC: Translated traffic, and UR falling back to Untranslated") {
  Machine m;
  m.start();
  const uint64_t root = s1_stream(m, 7, 1);
  m.map_s1(root, 0x10'0000, data_pa(1), kS1Rw);
  m.map_s1(root, 0x10'1000, data_pa(2), kS1Ro);
  m.poke(data_pa(1), 0x1111);
  SimAtsDevice dev(m.model(), 7);

  uint64_t v = 0;
  SimAtsDevice::DmaOutcome o = dev.read(false, 0, 0x10'0000, &v, 8);
  CHECK(o.ok());
  CHECK(o.path == Path::kTranslated);
  CHECK_FALSE(o.atc_hit);
  CHECK(v == 0x1111);
  const uint64_t w = 0x2222;
  o = dev.write(false, 0, 0x10'0008, &w, 8);
  CHECK(o.ok());
  CHECK_FALSE(o.atc_hit);  // the read's request had NW == 1: the entry grants no W
  CHECK(m.peek(data_pa(1) + 8) == 0x2222);
  // A write to a read-only page: the completion grants no W, nothing is issued.
  o = dev.write(false, 0, 0x10'1000, &w, 8);
  CHECK(o.path == Path::kDenied);
  CHECK(m.peek(data_pa(2)) == 0);
  CHECK(m.model().counters().ats_translated == 2);
  CHECK(m.events().empty());

  // EATS == 0b00: the Translation Request gets UR, and the device uses Untranslated traffic.
  s1_stream(m, 8, 2, arch::kEatsAbort);
  SimAtsDevice plain(m.model(), 8);
  o = plain.read(false, 0, 0x10'0000, &v, 8);
  CHECK(o.completion.status == Status::kUnsupportedRequest);
  CHECK(o.path == Path::kUntranslated);
  CHECK(o.result.status == DmaResult::Status::kAbort);  // its own tables map nothing
  std::vector<EventRecord> ev = m.events();
  REQUIRE(ev.size() == 2);
  CHECK(type_of(ev[0]) == EventType::F_BAD_ATS_TREQ);
  CHECK(type_of(ev[1]) == EventType::F_TRANSLATION);
}

TEST_CASE("a stale ATC entry after an unmap is reported until CMD_ATC_INV and CMD_SYNC") {
  for (Threading mode : kModes) {
    CAPTURE(name(mode));
    Machine m(mode);
    m.start();
    const uint64_t root = s1_stream(m, 7, 1);
    const uint64_t pte = m.map_s1(root, 0x10'0000, data_pa(1), kS1Rw);
    m.poke(data_pa(1), 0x1111);
    SimAtsDevice dev(m.model(), 7);
    uint64_t v = 0;
    REQUIRE(dev.read(false, 0, 0x10'0000, &v, 8).ok());
    REQUIRE(dev.atc_holds(false, 0, 0x10'0000));

    // The driver unmaps and invalidates the SMMU TLB, but forgets the ATC.
    m.s1t.put(pte, 0);
    m.issue(test::tlbi(arch::Opcode::CMD_TLBI_NH_VA, 0, 1, 0x10'0000));
    v = 0;
    SimAtsDevice::DmaOutcome o = dev.read(false, 0, 0x10'0000, &v, 8);
    CHECK(o.atc_hit);
    CHECK(v == 0x1111);  // served from the stale entry
    std::vector<StaleReport> reports = m.model().stale_reports();
    REQUIRE(reports.size() == 1);
    CHECK(std::string(reports[0].source) == "ATC");
    CHECK(reports[0].req.sid == 7);
    CHECK(reports[0].req.iova == 0x10'0000);
    CHECK(reports[0].cached == fmt::format("PA {:#x}", data_pa(1)));
    CHECK(reports[0].fresh == "no access (F_TRANSLATION stage 1)");

    // CMD_ATC_INV and CMD_SYNC: the entry is gone, the next access asks again and is denied.
    m.issue(test::atc_inv(7, 0x10'0000));
    CHECK_FALSE(dev.atc_holds(false, 0, 0x10'0000));
    o = dev.read(false, 0, 0x10'0000, &v, 8);
    CHECK(o.path == Path::kDenied);
    CHECK(m.model().stale_reports().size() == 1);
    const Smmuv3Counters c = m.model().counters();
    CHECK(c.atc_invalidations_delivered == 1);
    CHECK(c.atc_invalidations_dropped == 0);
    CHECK(c.stale_reports == 1);
    CHECK(m.events().empty());
  }
}

TEST_CASE("CMD_ATC_INV without CMD_TLBI: the ATC refills from the stale TLB") {
  Machine m;
  m.start();
  const uint64_t root = s1_stream(m, 7, 1);
  const uint64_t pte = m.map_s1(root, 0x10'0000, data_pa(1), kS1Rw);
  m.poke(data_pa(1), 0x1111);
  m.poke(data_pa(2), 0x2222);
  SimAtsDevice dev(m.model(), 7);
  uint64_t v = 0;
  REQUIRE(dev.read(false, 0, 0x10'0000, &v, 8).ok());

  // Remapped to another page; the driver invalidates the ATC only (4.5.1 wants the TLB first).
  m.s1t.put(pte, test::leaf_desc(data_pa(2), 12, 3, kS1Rw));
  m.issue(test::atc_inv(7, 0x10'0000));
  SimAtsDevice::DmaOutcome o = dev.read(false, 0, 0x10'0000, &v, 8);
  CHECK_FALSE(o.atc_hit);                                // a new Translation Request ...
  CHECK(o.completion.translated_address == data_pa(1));  // ... answered from the TLB
  CHECK(v == 0x1111);
  std::vector<StaleReport> reports = m.model().stale_reports();
  REQUIRE(reports.size() == 1);
  CHECK(std::string(reports[0].source) == "ATC");
  CHECK(reports[0].fresh == fmt::format("PA {:#x}", data_pa(2)));

  // The architected order: TLB, CMD_SYNC, ATC, CMD_SYNC.
  m.issue(test::tlbi(arch::Opcode::CMD_TLBI_NH_VA, 0, 1, 0x10'0000));
  m.issue(test::atc_inv(7, 0x10'0000));
  REQUIRE(dev.read(false, 0, 0x10'0000, &v, 8).ok());
  CHECK(v == 0x2222);
  CHECK(m.model().stale_reports().size() == 1);
}

TEST_CASE("the Invalidate Request's range in its PCIe form") {
  for (unsigned size = 0; size <= arch::CmdAtcInv::kSizeAll; ++size) {
    CAPTURE(size);
    AtcInvalidation inv;
    inv.size_log2 = static_cast<uint8_t>(12 + size);
    const uint64_t mask = size + 12 >= 64 ? ~uint64_t{0} : (uint64_t{1} << (12 + size)) - 1;
    inv.address = 0x1234'5678'9abc'd000 & ~mask;
    const AtsRange r = decode_invalidate_range(inv.pcie_address(), inv.pcie_s());
    CHECK(r.first == inv.first());
    CHECK(r.last == inv.last());
  }
  // Size 1 at 0x10'0000 is 8 KB: S set and Address[12] == 0 (PCIe).
  AtcInvalidation inv{.address = 0x10'0000, .size_log2 = 13};
  CHECK(inv.pcie_s());
  CHECK(inv.pcie_address() == 0x10'0000);
  inv.size_log2 = 14;
  CHECK(inv.pcie_address() == 0x10'1000);
}

TEST_CASE("CMD_ATC_INV: ranges, PASIDs and Global (4.5.1)") {
  Machine m;
  m.start();
  const std::vector<uint64_t> roots = s1_pasid_stream(m, 8);
  for (unsigned cd = 0; cd < 3; ++cd)
    for (unsigned page = 0; page < 4; ++page)
      m.map_s1(roots[cd], 0x10'0000 + page * 0x1000, data_pa(10 + cd * 4 + page), kS1Rw);
  SimAtsDevice dev(m.model(), 8);
  auto fill = [&] {
    for (unsigned page = 0; page < 4; ++page) {
      REQUIRE(dev.translate(false, 0, 0x10'0000 + page * 0x1000).R);
      for (uint32_t pasid = 1; pasid < 3; ++pasid)
        REQUIRE(dev.translate(true, pasid, 0x10'0000 + page * 0x1000).R);
    }
    REQUIRE(dev.atc_size() == 12);
  };
  auto holds = [&](bool ssv, uint32_t pasid, unsigned page) {
    return dev.atc_holds(ssv, pasid, 0x10'0000 + page * 0x1000);
  };
  fill();

  // Without a PASID: every entry in the range, PASID or not. Size 1 from an unaligned address
  // covers the aligned 8 KB around it.
  m.issue(test::atc_inv(8, 0x10'1000, 1));
  const AtcInvalidation inv = dev.invalidations().back();
  CHECK(inv.address == 0x10'0000);
  CHECK(inv.size_log2 == 13);
  CHECK_FALSE(inv.ssv);
  CHECK(dev.atc_size() == 6);
  for (unsigned page = 0; page < 4; ++page) {
    CHECK(holds(false, 0, page) == (page >= 2));
    CHECK(holds(true, 1, page) == (page >= 2));
    CHECK(holds(true, 2, page) == (page >= 2));
  }

  // A PASID: that PASID's entries only.
  m.issue(test::atc_inv(8, 0x10'2000, 0, true, 1));
  CHECK_FALSE(holds(true, 1, 2));
  CHECK(holds(true, 1, 3));
  CHECK(holds(true, 2, 2));
  CHECK(holds(false, 0, 2));

  // Global: the entries of every PASID in the range, not those without one.
  m.issue(test::atc_inv(8, 0x10'2000, 1, true, 1, true));
  CHECK(dev.invalidations().back().global);
  CHECK(dev.atc_size() == 2);
  CHECK(holds(false, 0, 2));
  CHECK(holds(false, 0, 3));

  // Global is IGNORED without SSV (4.5.1); Size 52 is everything.
  m.issue(test::atc_inv(8, 0, 52, false, 0, true));
  CHECK_FALSE(dev.invalidations().back().global);
  CHECK(dev.invalidations().back().size_log2 == 64);
  CHECK(dev.atc_size() == 0);

  // A device without Global Invalidate support treats it as that PASID's invalidation.
  {
    dev.set_ats(false);
    SimAtsDevice::Options o;
    o.global_invalidate = false;
    m.model().detach_endpoint(8);
    SimAtsDevice narrow(m.model(), 8, o);
    REQUIRE(narrow.translate(true, 1, 0x10'0000).R);
    REQUIRE(narrow.translate(true, 2, 0x10'0000).R);
    m.issue(test::atc_inv(8, 0x10'0000, 0, true, 1, true));
    CHECK_FALSE(narrow.atc_holds(true, 1, 0x10'0000));
    CHECK(narrow.atc_holds(true, 2, 0x10'0000));
  }
  CHECK(m.model().counters().atc_invalidations_delivered == 5);
}

TEST_CASE("CMD_ATC_INV for no endpoint, or while SMMUEN == 0, is dropped and counted") {
  Machine m;
  m.start();
  m.issue(test::atc_inv(12, 0x1000));
  HoldingEndpoint ep;
  m.model().attach_endpoint(12, &ep);
  REQUIRE(m.disable(arch::CR0::SMMUEN::kMask));
  m.issue(test::atc_inv(12, 0x1000));  // IGNORED (4.5.1): the CMD_SYNC does not wait
  CHECK(ep.count() == 0);
  const Smmuv3Counters c = m.model().counters();
  CHECK(c.atc_invalidations_dropped == 2);
  CHECK(c.atc_invalidations_delivered == 0);
  m.model().detach_endpoint(12);
}

TEST_CASE("CMD_SYNC waits for an Invalidate Completion that comes later") {
  for (Threading mode : kModes) {
    CAPTURE(name(mode));
    Machine m(mode);
    m.start();
    HoldingEndpoint ep;
    m.model().attach_endpoint(9, &ep);
    std::atomic<uint32_t> cons_seen{~0u};
    std::thread completer([&] {
      while (ep.count() == 0) std::this_thread::yield();
      cons_seen.store(m.readl(arch::CMDQ_CONS::kOffset));
      ep.complete_all();
    });
    m.issue(test::atc_inv(9, 0x4000, 2));
    completer.join();
    // Until the completion, the CMD_SYNC (entry 1) had not been consumed.
    CHECK(arch::queue_index(cons_seen.load(), Machine::kQs) <= 1);
    REQUIRE(ep.invalidations.size() == 1);
    CHECK(ep.invalidations[0].address == 0x4000);
    CHECK(ep.invalidations[0].size_log2 == 14);
    CHECK(m.model().counters().atc_invalidation_timeouts == 0);
    m.model().detach_endpoint(9);
  }
}

TEST_CASE("an endpoint that never completes: CERROR_ATC_INV_SYNC, then the recovery") {
  for (Threading mode : kModes) {
    CAPTURE(name(mode));
    Machine m(Machine::Setup{.threading = mode, .atc_inv_timeout = std::chrono::milliseconds(20)});
    m.start();
    HoldingEndpoint ep;
    m.model().attach_endpoint(9, &ep);
    m.put_cmd(test::atc_inv(9, 0x1000));
    m.put_cmd(test::sync_cmd());
    m.writel(m.prod, arch::CMDQ_PROD::kOffset);
    REQUIRE(m.poll([&] { return (m.gerror_active() & arch::GERROR::CMDQ_ERR::kMask) != 0; }));
    // 4.7.3, 7.1: the CMD_SYNC is not consumed; CONS.ERR says why.
    const uint32_t cons = m.readl(arch::CMDQ_CONS::kOffset);
    CHECK(arch::queue_index(cons, Machine::kQs) == 1);
    CHECK(arch::CMDQ_CONS::ERR::extract(cons) ==
          static_cast<uint8_t>(arch::CommandError::CERROR_ATC_INV_SYNC));
    CHECK(m.model().counters().atc_invalidation_timeouts == 1);

    // The recovery: acknowledge; the repeated CMD_SYNC does not wait for the failed invalidation.
    m.writel(m.readl(arch::GERROR::kOffset), arch::GERRORN::kOffset);
    REQUIRE(m.poll([&] {
      return arch::queue_empty(m.prod, m.readl(arch::CMDQ_CONS::kOffset), Machine::kQs);
    }));
    CHECK(m.gerror_active() == 0);
    // The queue works again, and a completion after the timeout is only counted.
    ep.complete_all();
    m.issue(test::cfgi_all());
    const Smmuv3Counters c = m.model().counters();
    CHECK(c.atc_invalidations_late == 1);
    CHECK(c.atc_invalidation_timeouts == 1);
    m.model().detach_endpoint(9);
  }
}

TEST_CASE("device threads on their ATC while the driver remaps and invalidates") {
  Machine m(Threading::kAsync);
  m.start();
  const uint64_t root = s1_stream(m, 7, 1);
  const uint64_t pte = m.map_s1(root, 0x10'0000, data_pa(1), kS1Rw);
  m.poke(data_pa(1), 1);
  m.poke(data_pa(2), 2);
  SimAtsDevice dev(m.model(), 7);
  m.model().set_oracle(false);  // the device reads between the PTE write and the invalidation
  std::atomic<bool> stop{false};
  std::atomic<unsigned> bad{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i)
    threads.emplace_back([&] {
      while (!stop.load()) {
        uint64_t v = 0;
        const SimAtsDevice::DmaOutcome o = dev.read(false, 0, 0x10'0000, &v, 8);
        if (!o.ok() || (v != 1 && v != 2)) bad.fetch_add(1);
      }
    });
  for (unsigned i = 0; i < 40; ++i) {
    m.s1t.put(pte, test::leaf_desc(data_pa(1 + (i + 1) % 2), 12, 3, kS1Rw));
    m.issue(test::tlbi(arch::Opcode::CMD_TLBI_NH_VA, 0, 1, 0x10'0000));
    m.issue(test::atc_inv(7, 0x10'0000));
  }
  stop.store(true);
  for (std::thread& t : threads) t.join();
  CHECK(bad.load() == 0);
  // After the last CMD_SYNC, the device sees the last mapping (data_pa(1)).
  uint64_t v = 0;
  REQUIRE(dev.read(false, 0, 0x10'0000, &v, 8).ok());
  CHECK(v == 1);
  CHECK(m.model().counters().atc_invalidation_timeouts == 0);
  CHECK(dev.counters().invalidations == 40);
}

}  // namespace
}  // namespace strata::sim::smmuv3
