// SPDX-License-Identifier: MIT
// The assembled SMMUv3 model's caches: every CMD_CFGI_* and CMD_TLBI_* kind, each time as a
// driver meets it: change memory, see the stale result, issue the command through the Command
// queue, see the fresh one. Scopes are typed in from IHI 0070 3.17, 3.21.3, 4.3 and 4.4, not
// derived from the model. The oracle is on throughout: a stale result is reported until the
// right invalidation, and never after it.
#include "testing/models/smmuv3/smmuv3.h"

#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "arch/lpae/pte.h"
#include "arch/smmuv3/cd.h"
#include "arch/smmuv3/cmd.h"
#include "arch/smmuv3/event.h"
#include "testing/models/smmuv3/smmuv3_harness.h"

namespace strata::sim::smmuv3 {
namespace {

using arch::EventType;
using arch::Opcode;
using test::data_ipa;
using test::data_pa;
using test::kModes;
using test::Machine;
using test::tlbi;

constexpr uint64_t kNg = lpae::S1Pte::nG::kMask;

uint64_t pa_of(Machine& m, uint32_t sid, uint64_t iova) {
  const Translated t = m.tr(sid, iova);
  REQUIRE(t.ok());
  return t.pa;
}
uint64_t pa_of(Machine& m, uint32_t sid, uint32_t ssid, uint64_t iova) {
  const Translated t = m.tr(sid, ssid, iova);
  REQUIRE(t.ok());
  return t.pa;
}

// Whether the oracle reported a stale result since the last call (and forgets them).
bool stale_reported(Machine& m) {
  const bool any = !m.model().stale_reports().empty();
  m.model().clear_stale_reports();
  return any;
}

// ---------------------------------------------------------------------------------------------
// Configuration cache.

TEST_CASE("CMD_CFGI_STE: a changed STE is stale until invalidated") {
  for (Threading mode : kModes) {
    CAPTURE(name(mode));
    Machine m(mode);
    m.start();
    m.set_ste(3, test::bypass_ste());
    CHECK(pa_of(m, 3, 0x1000) == 0x1000);
    m.set_ste(3, test::abort_ste());
    CHECK(pa_of(m, 3, 0x2000) == 0x2000);  // the cached STE still bypasses
    CHECK(stale_reported(m));
    m.issue(test::cfgi_ste(4));  // another StreamID: no effect
    CHECK(pa_of(m, 3, 0x2000) == 0x2000);
    CHECK(stale_reported(m));
    m.issue(test::cfgi_ste(3));
    CHECK(m.tr(3, 0x2000).status == Translated::Status::kAbort);
    CHECK_FALSE(stale_reported(m));
  }
}

TEST_CASE("CMD_CFGI_STE: an invalid STE is cached too (3.21.3)") {
  Machine m;
  m.start();
  CHECK(m.tr(3, 0x1000).config_error() == LookupError::ste_invalid);
  m.set_ste(3, test::bypass_ste());
  CHECK(m.tr(3, 0x1000).config_error() == LookupError::ste_invalid);
  CHECK(stale_reported(m));
  m.issue(test::cfgi_ste(3));
  CHECK(pa_of(m, 3, 0x1000) == 0x1000);
  CHECK(m.events().size() == 2);  // both C_BAD_STE
  CHECK_FALSE(stale_reported(m));
}

TEST_CASE("CMD_CFGI_STE_RANGE and CMD_CFGI_ALL") {
  Machine m;
  m.start(6);
  for (uint32_t sid = 8; sid < 20; ++sid) m.set_ste(sid, test::bypass_ste());
  for (uint32_t sid = 8; sid < 20; ++sid) CHECK(pa_of(m, sid, 0x1000) == 0x1000);
  for (uint32_t sid = 8; sid < 20; ++sid) m.set_ste(sid, test::abort_ste());
  // Range 2: the 8 StreamIDs 8-15, whatever the low bits of StreamID (4.3.2).
  m.issue(test::cfgi_ste_range(13, 2));
  for (uint32_t sid = 8; sid < 16; ++sid)
    CHECK(m.tr(sid, 0x1000).status == Translated::Status::kAbort);
  for (uint32_t sid = 16; sid < 20; ++sid) CHECK(pa_of(m, sid, 0x1000) == 0x1000);
  CHECK(stale_reported(m));
  m.issue(test::cfgi_all());
  for (uint32_t sid = 16; sid < 20; ++sid)
    CHECK(m.tr(sid, 0x1000).status == Translated::Status::kAbort);
  CHECK_FALSE(stale_reported(m));
}

TEST_CASE("CMD_CFGI_STE Leaf: a cached L1STD survives Leaf == 1 (4.3.1)") {
  Machine m;
  m.setup_queues();
  m.two_level_strtab(8);
  REQUIRE(m.enable(arch::CR0::SMMUEN::kMask));
  const uint32_t sid = 70;  // level-1 index 1
  const uint64_t a = m.install_l2(sid);
  m.set_ste(sid, test::bypass_ste());
  CHECK(pa_of(m, sid, 0x1000) == 0x1000);
  // A new level-2 array, with an aborting STE, behind the same L1STD.
  const uint64_t b = m.structs.alloc(64 * 64);
  m.put(m.structs, b + (sid & 63) * 64, test::abort_ste());
  m.set_l1std(sid, b, 7);
  CHECK(a != b);
  m.issue(test::cfgi_ste(sid, /*leaf=*/true));
  // The STE was fetched again, through the cached L1STD: the old array's.
  CHECK(pa_of(m, sid, 0x1000) == 0x1000);
  CHECK(stale_reported(m));
  m.issue(test::cfgi_ste(sid, /*leaf=*/false));
  CHECK(m.tr(sid, 0x1000).status == Translated::Status::kAbort);
  CHECK_FALSE(stale_reported(m));

  // An invalid L1STD is cached too: C_BAD_STREAMID until invalidated.
  CHECK(m.tr(200, 0x1000).config_error() == LookupError::l1std_span_invalid);
  m.install_l2(200);
  m.set_ste(200, test::bypass_ste());
  CHECK(m.tr(200, 0x1000).config_error() == LookupError::l1std_span_invalid);
  m.issue(test::cfgi_ste(200, /*leaf=*/true));
  CHECK(m.tr(200, 0x1000).config_error() == LookupError::l1std_span_invalid);
  m.issue(test::cfgi_ste(200, /*leaf=*/false));
  CHECK(pa_of(m, 200, 0x1000) == 0x1000);
}

TEST_CASE("CMD_CFGI_CD: a changed CD is stale until invalidated") {
  for (Threading mode : kModes) {
    CAPTURE(name(mode));
    Machine m(mode);
    m.start();
    const uint64_t r1 = m.new_s1_root(), r2 = m.new_s1_root();
    m.map_s1(r1, 0x1000, data_pa(1), test::kS1Rw | kNg);
    m.map_s1(r2, 0x1000, data_pa(2), test::kS1Rw | kNg);
    const uint64_t cd = m.new_cd(test::make_cd(5, r1));
    m.set_ste(3, test::s1_ste(cd));
    CHECK(pa_of(m, 3, 0x1000) == data_pa(1));
    // A new ASID and table (4.3.3: "Changing TTBRx/ASID"): the new ASID has no TLB entries, so
    // the CD invalidation alone makes the change visible.
    m.put(m.structs, cd, test::make_cd(6, r2));
    CHECK(pa_of(m, 3, 0x1000) == data_pa(1));
    CHECK(stale_reported(m));
    m.issue(test::cfgi_cd(3, 1));  // another CD
    CHECK(pa_of(m, 3, 0x1000) == data_pa(1));
    CHECK(stale_reported(m));
    m.issue(test::cfgi_cd(3, 0));
    CHECK(pa_of(m, 3, 0x1000) == data_pa(2));
    CHECK_FALSE(stale_reported(m));
    // Made invalid: C_BAD_CD once invalidated.
    m.put(m.structs, cd, test::make_cd(6, r2).set<arch::CD::V>(0));
    CHECK(pa_of(m, 3, 0x1000) == data_pa(2));
    CHECK(stale_reported(m));
    m.issue(test::cfgi_cd(3, 0));
    CHECK(m.tr(3, 0x1000).config_error() == LookupError::cd_invalid);
    CHECK_FALSE(stale_reported(m));
  }
}

TEST_CASE("CMD_CFGI_CD_ALL and CMD_CFGI_STE drop every CD of the stream") {
  Machine m;
  m.start();
  const uint64_t table = m.structs.alloc(4 * 64);
  const uint64_t r1 = m.new_s1_root(), r2 = m.new_s1_root();
  m.map_s1(r1, 0x1000, data_pa(1), test::kS1Rw | kNg);
  m.map_s1(r2, 0x1000, data_pa(2), test::kS1Rw | kNg);
  m.put(m.structs, table + 64, test::make_cd(1, r1));
  m.put(m.structs, table + 128, test::make_cd(2, r1));
  m.set_ste(3, test::s1_ste(table, 0, 2));
  CHECK(pa_of(m, 3, 1, 0x1000) == data_pa(1));
  CHECK(pa_of(m, 3, 2, 0x1000) == data_pa(1));
  m.put(m.structs, table + 64, test::make_cd(11, r2));
  m.put(m.structs, table + 128, test::make_cd(12, r2));
  CHECK(pa_of(m, 3, 1, 0x1000) == data_pa(1));
  m.issue(test::cfgi_cd_all(3));
  CHECK(pa_of(m, 3, 1, 0x1000) == data_pa(2));
  CHECK(pa_of(m, 3, 2, 0x1000) == data_pa(2));
  // CMD_CFGI_STE also drops the CDs cached through the STE (4.3.1).
  m.put(m.structs, table + 64, test::make_cd(21, r1));
  CHECK(pa_of(m, 3, 1, 0x1000) == data_pa(2));
  m.issue(test::cfgi_ste(3));
  CHECK(pa_of(m, 3, 1, 0x1000) == data_pa(1));
  m.model().clear_stale_reports();
}

TEST_CASE("CMD_CFGI_CD Leaf: a cached L1CD survives Leaf == 1") {
  Machine m;
  m.start();
  // A 2-level CD table (4KB level-2 tables of 64 CDs), 256 SubstreamIDs: 4 L1CDs.
  const uint64_t l1 = m.structs.alloc(4 * 8);
  const uint64_t x = m.structs.alloc(4096), y = m.structs.alloc(4096);
  auto l1cd = [](uint64_t l2) {
    arch::L1CD d;
    d.set<arch::L1CD::V>(1).set<arch::L1CD::L2Ptr>(l2);
    return d.word(0);
  };
  const uint64_t r1 = m.new_s1_root(), r2 = m.new_s1_root();
  m.map_s1(r1, 0x1000, data_pa(1), test::kS1Rw | kNg);
  m.map_s1(r2, 0x1000, data_pa(2), test::kS1Rw | kNg);
  m.put(m.structs, x + 5 * 64, test::make_cd(1, r1));
  m.put(m.structs, y + 5 * 64, test::make_cd(2, r2));
  m.structs.put(l1, l1cd(x));
  m.set_ste(3, test::s1_ste(l1, 0, 8, arch::kS1Fmt4KL2));
  CHECK(pa_of(m, 3, 5, 0x1000) == data_pa(1));
  m.structs.put(l1, l1cd(y));
  m.issue(test::cfgi_cd(3, 5, /*leaf=*/true));
  CHECK(pa_of(m, 3, 5, 0x1000) == data_pa(1));  // the CD again, through the old L1CD
  CHECK(stale_reported(m));
  m.issue(test::cfgi_cd(3, 5, /*leaf=*/false));
  CHECK(pa_of(m, 3, 5, 0x1000) == data_pa(2));
  CHECK_FALSE(stale_reported(m));

  // An invalid L1CD is cached: C_BAD_SUBSTREAMID with the CD's index until invalidated.
  CHECK(m.tr(3, 70, 0x1000).config_error() == LookupError::l1cd_invalid);
  m.structs.put(l1 + 8, l1cd(x));
  m.put(m.structs, x + 6 * 64, test::make_cd(3, r1));
  CHECK(m.tr(3, 70, 0x1000).config_error() == LookupError::l1cd_invalid);
  m.issue(test::cfgi_cd(3, 70, /*leaf=*/false));
  CHECK(pa_of(m, 3, 70, 0x1000) == data_pa(1));
  m.model().clear_stale_reports();
}

TEST_CASE("CMD_PREFETCH_CONFIG fills the configuration cache") {
  Machine m;
  m.start();
  m.set_ste(3, test::bypass_ste());
  m.issue(arch::CmdPrefetchConfig::make().set<arch::CmdPrefetchConfig::StreamID>(3));
  CHECK(m.model().config_cache_stats().stes == 1);
  CHECK(pa_of(m, 3, 0x1000) == 0x1000);
  CHECK(m.model().counters().config_hits == 1);
  CHECK(m.model().counters().config_misses == 0);
}

TEST_CASE("commands are counted by type; ATC_INV, PREFETCH_ADDR, PRI_RESP are accepted") {
  Machine m(Threading::kAsync);
  m.start();
  m.issue(arch::CmdAtcInv::make().set<arch::CmdAtcInv::StreamID>(3).set<arch::CmdAtcInv::Size>(
              arch::CmdAtcInv::kSizeAll),
          arch::CmdPrefetchAddr::make().set<arch::CmdPrefetchAddr::StreamID>(3),
          arch::CmdPriResp::make().set<arch::CmdPriResp::Resp>(arch::kPriRespSuccess),
          test::cfgi_all(), tlbi(Opcode::CMD_TLBI_NSNH_ALL));
  const Smmuv3Counters c = m.model().counters();
  CHECK(c.command(Opcode::CMD_ATC_INV) == 1);
  CHECK(c.command(Opcode::CMD_PREFETCH_ADDR) == 1);
  CHECK(c.command(Opcode::CMD_PRI_RESP) == 1);
  CHECK(c.command(Opcode::CMD_CFGI_STE_RANGE) == 1);
  CHECK(c.command(Opcode::CMD_TLBI_NSNH_ALL) == 1);
  CHECK(c.command(Opcode::CMD_SYNC) == 1);
  CHECK(m.gerror_active() == 0);
}

// ---------------------------------------------------------------------------------------------
// TLB.

// A stage-1 stream (sid 3, ASID 5, VMID 0): pages 0x10000.. mapped to data pages 0.., nG as
// given.
struct S1Fixture {
  explicit S1Fixture(Threading mode = Threading::kSync, uint64_t attrs = test::kS1Rw | kNg)
      : m(mode), attrs(attrs) {
    m.start();
    root = m.new_s1_root();
    for (unsigned i = 0; i < 8; ++i) leaf[i] = m.map_s1(root, va(i), data_pa(i), attrs);
    cd = m.new_cd(test::make_cd(5, root));
    m.set_ste(3, test::s1_ste(cd));
    for (unsigned i = 0; i < 8; ++i) REQUIRE(pa_of(m, 3, va(i)) == data_pa(i));
  }
  static uint64_t va(unsigned i) { return 0x10000 + uint64_t{i} * 4096; }
  // Page i now maps to data page 100 + i in memory; the TLB does not know.
  void remap(unsigned i) { m.s1t.put(leaf[i], test::leaf_desc(data_pa(100 + i), 12, 3, attrs)); }
  bool fresh(unsigned i) { return pa_of(m, 3, va(i)) == data_pa(100 + i); }
  bool stale(unsigned i) { return pa_of(m, 3, va(i)) == data_pa(i); }

  Machine m;
  uint64_t attrs;
  uint64_t root = 0, cd = 0;
  uint64_t leaf[8] = {};
};

TEST_CASE("CMD_TLBI_NH_VA: by VMID, ASID and address") {
  for (Threading mode : kModes) {
    CAPTURE(name(mode));
    S1Fixture f(mode);
    f.remap(1);
    f.remap(2);
    CHECK(f.stale(1));
    CHECK(stale_reported(f.m));
    f.m.issue(tlbi(Opcode::CMD_TLBI_NH_VA, 0, 6, S1Fixture::va(1)));  // another ASID
    CHECK(f.stale(1));
    f.m.issue(tlbi(Opcode::CMD_TLBI_NH_VA, 1, 5, S1Fixture::va(1)));  // another VMID
    CHECK(f.stale(1));
    // The address need not be the start of the entry (4.4): any byte of the page.
    f.m.issue(tlbi(Opcode::CMD_TLBI_NH_VA, 0, 5, S1Fixture::va(1)));
    CHECK(f.fresh(1));
    CHECK(f.stale(2));
    f.m.model().clear_stale_reports();
  }
}

TEST_CASE("CMD_TLBI_NH_ASID: non-global entries of the ASID only") {
  S1Fixture f;
  f.remap(0);
  f.m.issue(tlbi(Opcode::CMD_TLBI_NH_ASID, 0, 4));
  CHECK(f.stale(0));
  CHECK(stale_reported(f.m));
  f.m.issue(tlbi(Opcode::CMD_TLBI_NH_ASID, 0, 5));
  CHECK(f.fresh(0));
  CHECK_FALSE(stale_reported(f.m));
}

TEST_CASE("global entries: kept by CMD_TLBI_NH_ASID, matched by any ASID") {
  S1Fixture f(Threading::kSync, test::kS1Rw);  // nG == 0
  f.remap(0);
  f.m.issue(tlbi(Opcode::CMD_TLBI_NH_ASID, 0, 5));
  CHECK(f.stale(0));  // 3.17.1: ASIDE1 scope does not reach global entries
  // NH_VA with any ASID reaches a global entry.
  f.m.issue(tlbi(Opcode::CMD_TLBI_NH_VA, 0, 99, S1Fixture::va(0)));
  CHECK(f.fresh(0));
  f.m.model().clear_stale_reports();
}

TEST_CASE("CMD_TLBI_NH_VAA and CMD_TLBI_NH_ALL") {
  S1Fixture f;
  f.remap(0);
  f.remap(1);
  f.m.issue(tlbi(Opcode::CMD_TLBI_NH_VAA, 0, 0, S1Fixture::va(0)));
  CHECK(f.fresh(0));
  CHECK(f.stale(1));
  f.m.issue(tlbi(Opcode::CMD_TLBI_NH_ALL, 3));  // another VMID
  CHECK(f.stale(1));
  f.m.issue(tlbi(Opcode::CMD_TLBI_NH_ALL, 0));
  CHECK(f.fresh(1));
  f.m.model().clear_stale_reports();
}

TEST_CASE("CMD_TLBI_NSNH_ALL") {
  S1Fixture f;
  f.remap(3);
  f.m.issue(tlbi(Opcode::CMD_TLBI_EL2_ALL));  // EL2 scope: not NS-EL1 entries
  CHECK(f.stale(3));
  f.m.issue(tlbi(Opcode::CMD_TLBI_NSNH_ALL));
  CHECK(f.fresh(3));
  f.m.model().clear_stale_reports();
}

TEST_CASE("range invalidation: TG, NUM, SCALE, and TTL as a hint only") {
  S1Fixture f;
  for (unsigned i = 0; i < 8; ++i) f.remap(i);
  // Pages 2-5: NUM 3, SCALE 0, 4K, level 3.
  f.m.issue(test::tlbi_range(tlbi(Opcode::CMD_TLBI_NH_VA, 0, 5, S1Fixture::va(2)), arch::kTlbiTg4K,
                             3, 0, 3));
  for (unsigned i : {0u, 1u, 6u, 7u}) CHECK(f.stale(i));
  for (unsigned i : {2u, 3u, 4u, 5u}) CHECK(f.fresh(i));
  CHECK(f.m.model().counters().tlb_hint_mismatches == 0);
  // Pages 6-7: NUM 0, SCALE 1, with a wrong level hint (2): invalidated anyway, and counted.
  f.m.issue(test::tlbi_range(tlbi(Opcode::CMD_TLBI_NH_VAA, 0, 0, S1Fixture::va(6)), arch::kTlbiTg4K,
                             0, 1, 2));
  CHECK(f.fresh(6));
  CHECK(f.fresh(7));
  CHECK(f.m.model().counters().tlb_hint_mismatches == 2);
  CHECK(f.stale(0));
  f.m.model().clear_stale_reports();
}

// A stage-2-only stream (sid 4, VMID 9) and a nested one (sid 5, VMID 9), sharing stage 2.
struct S2Fixture {
  explicit S2Fixture(Threading mode = Threading::kSync) : m(mode) {
    m.start();
    s2 = m.new_s2_root();
    s2_leaf = m.map_s2(s2, data_ipa(0), data_pa(0));
    m.set_ste(4, test::s2_ste(s2, 9));
    const uint64_t groot = m.new_guest_s1_root();
    m.map_guest_s1(groot, 0x7000'0000, data_ipa(0));
    const uint64_t cd = m.new_guest_cd(test::make_cd(1, groot));
    m.set_ste(5, test::with_s2(test::s1_ste(cd), s2, arch::kConfigNested, 9));
    REQUIRE(pa_of(m, 4, data_ipa(0)) == data_pa(0));
    REQUIRE(pa_of(m, 5, 0x7000'0000) == data_pa(0));
  }
  void remap() { m.s2t.put(s2_leaf, test::leaf_desc(data_pa(50), 12, 3, test::kS2Rw)); }

  Machine m;
  uint64_t s2 = 0, s2_leaf = 0;
};

TEST_CASE("CMD_TLBI_S2_IPA: stage 2-only entries, not combined ones (4.4.3.1)") {
  for (Threading mode : kModes) {
    CAPTURE(name(mode));
    S2Fixture f(mode);
    f.remap();
    CHECK(pa_of(f.m, 4, data_ipa(0)) == data_pa(0));
    CHECK(pa_of(f.m, 5, 0x7000'0000) == data_pa(0));
    f.m.issue(tlbi(Opcode::CMD_TLBI_S2_IPA, 8, 0, data_ipa(0)));  // another VMID
    CHECK(pa_of(f.m, 4, data_ipa(0)) == data_pa(0));
    f.m.issue(tlbi(Opcode::CMD_TLBI_S2_IPA, 9, 0, data_ipa(0)));
    CHECK(pa_of(f.m, 4, data_ipa(0)) == data_pa(50));
    // The combined entry stays until a stage-1 scope (here CMD_TLBI_NH_ALL) covers it.
    CHECK(pa_of(f.m, 5, 0x7000'0000) == data_pa(0));
    CHECK(stale_reported(f.m));
    f.m.issue(tlbi(Opcode::CMD_TLBI_NH_ALL, 9));
    CHECK(pa_of(f.m, 5, 0x7000'0000) == data_pa(50));
    CHECK_FALSE(stale_reported(f.m));
  }
}

TEST_CASE("CMD_TLBI_S12_VMALL: every stage of the VMID") {
  S2Fixture f;
  f.remap();
  f.m.issue(tlbi(Opcode::CMD_TLBI_S12_VMALL, 8));
  CHECK(pa_of(f.m, 4, data_ipa(0)) == data_pa(0));
  CHECK(stale_reported(f.m));
  f.m.issue(tlbi(Opcode::CMD_TLBI_S12_VMALL, 9));
  CHECK(pa_of(f.m, 4, data_ipa(0)) == data_pa(50));
  CHECK(pa_of(f.m, 5, 0x7000'0000) == data_pa(50));
  CHECK_FALSE(stale_reported(f.m));
}

TEST_CASE("CMD_TLBI_EL2_*: NS-EL2 entries (STE.STRW == EL2)") {
  Machine m;
  m.start();
  const uint64_t root = m.new_s1_root();
  const uint64_t leaf = m.map_s1(root, 0x1000, data_pa(1));
  m.set_ste(3, test::s1_ste(m.new_cd(test::make_cd(0, root))).set<arch::STE::STRW>(arch::kStrwEl2));
  CHECK(pa_of(m, 3, 0x1000) == data_pa(1));
  auto remap = [&](unsigned d) {
    m.s1t.put(leaf, test::leaf_desc(data_pa(d), 12, 3, test::kS1Rw));
  };
  remap(2);
  m.issue(tlbi(Opcode::CMD_TLBI_NSNH_ALL));  // EL1 scope: not EL2 entries
  CHECK(pa_of(m, 3, 0x1000) == data_pa(1));
  m.issue(tlbi(Opcode::CMD_TLBI_EL2_VA, 0, 0, 0x1000));  // CR2.E2H == 0: NS-EL2 by VA
  CHECK(pa_of(m, 3, 0x1000) == data_pa(2));
  remap(3);
  m.issue(tlbi(Opcode::CMD_TLBI_EL2_ASID, 0, 0));  // NS-EL2 entries have no ASID
  CHECK(pa_of(m, 3, 0x1000) == data_pa(2));
  m.issue(tlbi(Opcode::CMD_TLBI_EL2_VAA, 0, 0, 0x1000));
  CHECK(pa_of(m, 3, 0x1000) == data_pa(3));
  remap(4);
  m.issue(tlbi(Opcode::CMD_TLBI_EL2_ALL));
  CHECK(pa_of(m, 3, 0x1000) == data_pa(4));
  // The walker implements NS-EL1 regimes only: the model says so.
  bool noted = false;
  for (const std::string& s : m.model().regs().unimplemented())
    noted = noted || s.find("NS-EL2") != std::string::npos;
  CHECK(noted);
  m.model().clear_stale_reports();
}

TEST_CASE("a permission upgrade without invalidation keeps faulting") {
  Machine m;
  m.start();
  const uint64_t root = m.new_s1_root();
  const uint64_t ro =
      (test::kS1Rw & ~lpae::S1Pte::AP::kMask) | (lpae::kApRoUnpriv << lpae::S1Pte::AP::kShift);
  const uint64_t leaf = m.map_s1(root, 0x1000, data_pa(1), ro | kNg);
  m.set_ste(3, test::s1_ste(m.new_cd(test::make_cd(5, root))));
  CHECK(pa_of(m, 3, 0x1000) == data_pa(1));
  m.s1t.put(leaf, test::leaf_desc(data_pa(1), 12, 3, test::kS1Rw | kNg));
  CHECK(m.tr(3, 0x1000, Access{.write = true}).status == Translated::Status::kAbort);
  CHECK(stale_reported(m));
  m.issue(tlbi(Opcode::CMD_TLBI_NH_VA, 0, 5, 0x1000));
  CHECK(m.tr(3, 0x1000, Access{.write = true}).ok());
  CHECK_FALSE(stale_reported(m));
  CHECK(m.events().size() == 1);  // the F_PERMISSION
}

// ---------------------------------------------------------------------------------------------
// The oracle.

TEST_CASE("oracle: a missing invalidation is reported, with what was served and what is true") {
  S1Fixture f;
  f.remap(4);
  CHECK(f.stale(4));
  const std::vector<StaleReport> r = f.m.model().stale_reports();
  REQUIRE(r.size() == 1);
  CHECK(r[0].req.sid == 3);
  CHECK(r[0].req.iova == S1Fixture::va(4));
  CHECK(std::string(r[0].source) == "TLB");
  CHECK(r[0].cached == fmt::format("PA {:#x}", data_pa(4)));
  CHECK(r[0].fresh == fmt::format("PA {:#x}", data_pa(104)));
  CHECK(f.m.model().counters().stale_reports == 1);
  f.m.model().clear_stale_reports();

  // The right invalidation: quiet from then on, whatever is translated.
  f.m.issue(tlbi(Opcode::CMD_TLBI_NH_VA, 0, 5, S1Fixture::va(4)));
  for (int round = 0; round < 3; ++round)
    for (unsigned i = 0; i < 8; ++i) pa_of(f.m, 3, S1Fixture::va(i));
  CHECK(f.m.model().stale_reports().empty());

  // An unmap without invalidation: served a translation, memory says F_TRANSLATION.
  f.m.s1t.put(f.leaf[5], 0);
  CHECK(f.stale(5));
  const std::vector<StaleReport> u = f.m.model().stale_reports();
  REQUIRE(u.size() == 1);
  CHECK(u[0].fresh == "abort F_TRANSLATION");
  f.m.model().clear_stale_reports();
  f.m.issue(tlbi(Opcode::CMD_TLBI_NH_VA, 0, 5, S1Fixture::va(5)));
  CHECK(f.m.tr(3, S1Fixture::va(5)).event_type() == EventType::F_TRANSLATION);
  CHECK(f.m.model().stale_reports().empty());
}

}  // namespace
}  // namespace strata::sim::smmuv3
