// SPDX-License-Identifier: MIT
// The SMMUv3 model's configuration lookup against stream tables, STEs and CDs built by hand in
// simulated memory. Expected events, their fields and the rules that raise them are typed in
// from IHI 0070 (3.3, 3.4.3, 5.1-5.5, 6.3.24-25, 7.3.3-7.3.16), not derived from the model.
#include "testing/models/smmuv3/stream.h"

#include <memory>
#include <string>

#include <doctest/doctest.h>
#include <fmt/core.h>

#include "arch/lpae/pte.h"
#include "arch/smmuv3/cd.h"
#include "arch/smmuv3/event.h"
#include "arch/smmuv3/regs.h"
#include "arch/smmuv3/ste.h"
#include "testing/models/platform/phys_mem.h"
#include "testing/models/smmuv3/registers.h"
#include "testing/models/smmuv3/test_tables.h"

namespace strata::sim::smmuv3 {
namespace {

using arch::CD;
using arch::EventRecord;
using arch::EventType;
using arch::FetchFaultRecord;
using arch::L1CD;
using arch::L1STD;
using arch::STE;
using arch::TranslationFaultRecord;
using test::Tables;
using test::Tree;

constexpr uint64_t kRam = 0x8000'0000;
constexpr uint64_t kRamSize = 64 << 20;
constexpr uint64_t kPool = kRam;                  // stream tables, CDs (PA space)
constexpr uint64_t kS2Pool = kRam + (16 << 20);   // stage-2 tables
constexpr uint64_t kIpaPool = kRam + (32 << 20);  // CDs of nested STEs (IPA space)
constexpr uint64_t kIpaDelta = 0x4000'0000;       // stage 2 maps IPA x to PA x + kIpaDelta
constexpr uint64_t kNoRam = 0x1'0000'0000;        // below every OAS, outside RAM
constexpr uint64_t kTtb0 = 0x8100'0000;           // a CD's TTB0 (never walked here)
constexpr uint64_t kOas48 = uint64_t{1} << 48;

std::unique_ptr<PhysMem> make_mem() {
  auto mem = PhysMem::create({.ram = {{kRam, kRamSize}}});
  REQUIRE(mem.ok());
  return mem.release_value();
}

// Structures, field by field, as a driver would build them (not the driver's code).
STE bypass_ste() {
  STE s;
  s.set<STE::V>(1).set<STE::Config>(arch::kConfigBypass);
  return s;
}

STE s1_ste(uint64_t ctx, unsigned cdmax = 0, uint64_t fmt = arch::kS1FmtLinear,
           uint64_t dss = arch::kS1dssTerminate) {
  STE s;
  s.set<STE::V>(1)
      .set<STE::Config>(arch::kConfigS1Trans)
      .set<STE::S1ContextPtr>(ctx)
      .set<STE::S1CDMax>(cdmax)
      .set<STE::S1Fmt>(fmt)
      .set<STE::S1DSS>(dss)
      .set<STE::S1CIR>(arch::kS1cWbRa)
      .set<STE::S1COR>(arch::kS1cWbRa)
      .set<STE::S1CSH>(arch::kShIsh);
  return s;
}

// Stage 2: 4K granule, 40-bit IPA, start level 1 (S2SL0 = 1): two concatenated level-1 tables.
constexpr S2Cfg kS2Cfg{.S2T0SZ = 24, .S2SL0 = 1, .S2TG = 0, .S2PS = arch::kAddrSize48};

STE with_s2(STE s, uint64_t s2ttb, uint64_t config, uint16_t vmid = 7) {
  s.set<STE::V>(1)
      .set<STE::Config>(config)
      .set<STE::S2VMID>(vmid)
      .set<STE::S2T0SZ>(kS2Cfg.S2T0SZ)
      .set<STE::S2SL0>(kS2Cfg.S2SL0)
      .set<STE::S2TG>(kS2Cfg.S2TG)
      .set<STE::S2PS>(kS2Cfg.S2PS)
      .set<STE::S2AA64>(1)
      .set<STE::S2R>(1)
      .set<STE::S2TTB>(s2ttb);
  return s;
}

CD make_cd(uint16_t asid, uint64_t ttb0 = kTtb0) {
  CD cd;
  cd.set<CD::T0SZ>(16)
      .set<CD::TG0>(arch::kTg0_4K)
      .set<CD::EPD1>(1)
      .set<CD::V>(1)
      .set<CD::IPS>(arch::kAddrSize48)
      .set<CD::AA64>(1)
      .set<CD::R>(1)
      .set<CD::A>(1)
      .set<CD::ASID>(asid)
      .set<CD::TTB0>(ttb0);
  return cd;
}

// A simulated machine with a stream table and a bump allocator for structures.
struct Env {
  std::unique_ptr<PhysMem> mem = make_mem();
  Tables t{*mem, kPool, 16 << 20};
  Tables s2t{*mem, kS2Pool, 8 << 20};
  Tables ipa{*mem, kIpaPool, 16 << 20, kIpaDelta};  // alloc() returns IPAs
  Config config = Config::smmuv3_2();
  StreamTableRegs regs{};
  uint64_t strtab = 0;  // linear table base
  Stage2 s2;
  Tree s2tree{};
  uint64_t s2ttb = 0;

  Env() { regs.CR2.set<arch::CR2::RECINVSID>(1); }

  // A linear table of 2^log2size STEs, all zero (V == 0).
  void linear(unsigned log2size) {
    strtab = t.alloc(uint64_t{64} << log2size);
    regs.STRTAB_BASE = arch::STRTAB_BASE{}.set<arch::STRTAB_BASE::ADDR>(strtab);
    regs.STRTAB_BASE_CFG = arch::STRTAB_BASE_CFG{}
                               .set<arch::STRTAB_BASE_CFG::LOG2SIZE>(log2size)
                               .set<arch::STRTAB_BASE_CFG::FMT>(arch::kStrtabFmtLinear);
  }
  template <typename D>
  void put(Tables& where, uint64_t addr, const D& d) {
    for (unsigned i = 0; i < D::kWords; ++i) where.put(addr + 8 * i, d.word(i));
  }
  void put(uint64_t addr, const STE& s) { put(t, addr, s); }
  void put(uint64_t addr, const CD& cd) { put(t, addr, cd); }
  void set_ste(uint32_t sid, const STE& s) { put(strtab + uint64_t{sid} * 64, s); }

  // Stage-2 tables, empty: map_ipa() adds pages.
  void make_s2() {
    Decoded<Stage2> d = decode_s2(kS2Cfg, walker_caps(config));
    REQUIRE(d.ok());
    s2ttb = test::alloc_root(s2t, d.stage.tt.start_bits);
    S2Cfg c = kS2Cfg;
    c.S2TTB = s2ttb;
    d = decode_s2(c, walker_caps(config));
    REQUIRE(d.ok());
    s2 = d.stage;
    s2tree =
        Tree{d.stage.tt.ttb, d.stage.tt.granule, d.stage.tt.start_level, d.stage.tt.start_bits};
  }
  // Maps the 4K page of `ipa_addr` to its PA (IPA + kIpaDelta), with `attrs`.
  void map_ipa(uint64_t ipa_addr, uint64_t attrs = test::kS2Rw) {
    const uint64_t page = ipa_addr & ~uint64_t{0xfff};
    test::map(s2t, s2tree, page, 3, test::leaf_desc(page + kIpaDelta, 12, 3, attrs));
  }

  ConfigResult lookup(const StreamRequest& req) const {
    return ConfigLookup(config).lookup(*mem, regs, req);
  }
  ConfigResult lookup(uint32_t sid) const { return lookup(StreamRequest{.sid = sid}); }
  ConfigResult lookup(uint32_t sid, uint32_t ssid) const {
    return lookup(StreamRequest{.sid = sid, .ssv = true, .ssid = ssid});
  }
};

std::string str(const ConfigResult& r) { return fmt::format("{}", r); }

void require_ok(const ConfigResult& r) {
  INFO(str(r));
  REQUIRE(r.ok());
  REQUIRE(r.ste.has_value());
}

// The common header of a record, and that nothing else is set unless `rest` says so.
void check_record(const ConfigResult& r, EventType type, uint32_t sid, bool ssv = false,
                  uint32_t ssid = 0, bool only_header = true) {
  INFO(str(r));
  REQUIRE(!r.ok());
  CHECK(r.event_type() == type);
  if (r.error != LookupError::cd_s2_fault) CHECK(event_for(r.error) == type);
  CHECK(r.event.get<EventRecord::StreamID>() == sid);
  CHECK(r.event.get<EventRecord::SSV>() == uint64_t{ssv});
  CHECK(r.event.get<EventRecord::SubstreamID>() == ssid);
  CHECK((r.event.word(0) & 0x700) == 0);  // bits [10:8] RES0
  if (only_header) {
    CHECK(r.event.word(1) == 0);
    CHECK(r.event.word(2) == 0);
    CHECK(r.event.word(3) == 0);
  }
}

// A C_BAD_STE for `ste` at StreamID 3, for `why`.
void check_bad_ste(Env& e, const STE& ste, LookupError why, const char* detail = nullptr) {
  if (!e.strtab) e.linear(4);
  e.set_ste(3, ste);
  const ConfigResult r = e.lookup(StreamRequest{.sid = 3, .ssv = true, .ssid = 0x12});
  INFO(str(r));
  CHECK(r.error == why);
  if (detail) CHECK(std::string(r.detail ? r.detail : "") == detail);
  check_record(r, EventType::C_BAD_STE, 3, true, 0x12);
  CHECK(r.record);
  CHECK(!r.ste.has_value());
}

// ---------------------------------------------------------------------------------------------
// Stream table (3.3.1, 5.1, 6.3.24-25, 7.3.3, 7.3.4).

TEST_CASE("linear stream table: StreamIDs at the edges, and one beyond (C_BAD_STREAMID)") {
  Env e;
  e.linear(4);
  e.set_ste(0, bypass_ste());
  e.set_ste(15, with_s2(STE{}, 0, arch::kConfigAbort));
  ConfigResult r = e.lookup(0);
  require_ok(r);
  CHECK(r.ste->mode == StreamMode::bypass);
  r = e.lookup(15);
  require_ok(r);
  CHECK(r.ste->mode == StreamMode::abort);
  CHECK(r.stats.reads == 8);  // eight 64-bit words
  CHECK(r.stats.l1_reads == 0);
  // StreamID 16 >= 2^LOG2SIZE: C_BAD_STREAMID with the SubstreamID of the transaction.
  r = e.lookup(16, 5);
  CHECK(r.error == LookupError::sid_out_of_range);
  check_record(r, EventType::C_BAD_STREAMID, 16, true, 5);
  CHECK(r.record);
  r = e.lookup(0xffff'ffff);
  check_record(r, EventType::C_BAD_STREAMID, 0xffff'ffff);
  // Recorded only when SMMU_CR2.RECINVSID == 1 (7.3.3); the transaction is terminated anyway.
  e.regs.CR2.set<arch::CR2::RECINVSID>(0);
  r = e.lookup(16);
  CHECK(r.error == LookupError::sid_out_of_range);
  CHECK(!r.record);
}

TEST_CASE("linear stream table: LOG2SIZE is capped at SIDSIZE, the base aligned to LOG2SIZE") {
  Env e;
  e.config.sidsize = 4;
  e.linear(8);  // 256 STEs configured, 16 StreamIDs implemented
  e.set_ste(15, bypass_ste());
  CHECK(e.lookup(15).ok());
  CHECK(e.lookup(16).error == LookupError::sid_out_of_range);
  CHECK(e.lookup(255).error == LookupError::sid_out_of_range);

  // ADDR[LOG2SIZE + 5:0] are ignored: the table is aligned to its (configured) size.
  Env a;
  a.linear(4);  // 1 KiB
  a.set_ste(2, bypass_ste());
  a.regs.STRTAB_BASE.set<arch::STRTAB_BASE::ADDR>(a.strtab + 0x3c0);
  require_ok(a.lookup(2));
}

// A 2-level table with LOG2SIZE = SPLIT + 4: 16 L1STDs (5.1, 3.3.1.2's example in miniature).
struct TwoLevel : Env {
  uint64_t l1 = 0;
  uint64_t l2_full = 0, l2_four = 0, l2_one = 0;
  explicit TwoLevel(unsigned split = arch::kSplit4K) {
    l1 = t.alloc(8 * 16);
    regs.STRTAB_BASE = arch::STRTAB_BASE{}.set<arch::STRTAB_BASE::ADDR>(l1);
    regs.STRTAB_BASE_CFG = arch::STRTAB_BASE_CFG{}
                               .set<arch::STRTAB_BASE_CFG::LOG2SIZE>(split + 4)
                               .set<arch::STRTAB_BASE_CFG::SPLIT>(split)
                               .set<arch::STRTAB_BASE_CFG::FMT>(arch::kStrtabFmt2Level);
    l2_full = t.alloc(64 << split);
    l2_four = t.alloc(64 * 4);
    l2_one = t.alloc(64);
    set_l1(0, split + 1, l2_full);  // StreamIDs 0..2^split-1
    set_l1(1, 3, l2_four);          // 4 STEs
    set_l1(2, 0, 0);                // invalid
    set_l1(3, 1, l2_one);           // 1 STE
  }
  void set_l1(unsigned index, uint64_t span, uint64_t l2ptr) {
    t.put(l1 + 8 * index, L1STD{}.set<L1STD::Span>(span).set<L1STD::L2Ptr>(l2ptr).word(0));
  }
};

TEST_CASE("2-level stream table: L1STD Span and L2Ptr select the STE") {
  TwoLevel e;
  e.put(e.l2_full, bypass_ste());
  e.put(e.l2_full + 63 * 64, s1_ste(0, 0));  // looked up as far as the STE only
  e.put(e.l2_four + 3 * 64, bypass_ste());
  e.put(e.l2_one, bypass_ste());
  ConfigLookup lk(e.config);
  ConfigResult r = e.lookup(0);
  require_ok(r);
  CHECK(r.stats.l1_reads == 1);
  r = lk.lookup_ste(*e.mem, e.regs, StreamRequest{.sid = 63});
  require_ok(r);
  CHECK(r.ste->mode == StreamMode::s1);
  require_ok(e.lookup(64 + 3));
  require_ok(e.lookup(3 * 64));
  // StreamID[SPLIT-1:0] >= 2^(Span-1): outside the level 2 array.
  r = e.lookup(64 + 4);
  CHECK(r.error == LookupError::sid_beyond_span);
  check_record(r, EventType::C_BAD_STREAMID, 68);
  CHECK(e.lookup(3 * 64 + 1).error == LookupError::sid_beyond_span);
  CHECK(e.lookup(3 * 64 + 63).error == LookupError::sid_beyond_span);
  // Span == 0: every StreamID of the descriptor is invalid.
  r = e.lookup(2 * 64 + 5, 9);
  CHECK(r.error == LookupError::l1std_span_invalid);
  check_record(r, EventType::C_BAD_STREAMID, 2 * 64 + 5, true, 9);
  // Beyond LOG2SIZE: no L1STD is read.
  r = e.lookup(1024);
  CHECK(r.error == LookupError::sid_out_of_range);
  CHECK(r.stats.l1_reads == 0);
  // RECINVSID gates the record of every C_BAD_STREAMID.
  e.regs.CR2.set<arch::CR2::RECINVSID>(0);
  CHECK(!e.lookup(2 * 64).record);
}

TEST_CASE("2-level stream table: a Reserved Span, a Span above SPLIT + 1, Reserved bits") {
  TwoLevel e;
  e.set_l1(4, 12, e.l2_full);  // 12..31 Reserved, behave as 0
  CHECK(e.lookup(4 * 64).error == LookupError::l1std_span_invalid);
  e.set_l1(4, 31, e.l2_full);
  CHECK(e.lookup(4 * 64).error == LookupError::l1std_span_invalid);
  e.set_l1(5, arch::kSplit4K + 2, e.l2_full);  // Span > SPLIT + 1 (7.3.3 2c)
  ConfigResult r = e.lookup(5 * 64);
  CHECK(r.error == LookupError::l1std_span_large);
  check_record(r, EventType::C_BAD_STREAMID, 5 * 64);
  // Bit 5 and bits [63:56] are Reserved: the model treats the L1STD as invalid.
  e.put(e.l2_full, bypass_ste());
  e.t.put(e.l1, L1STD{}.set<L1STD::Span>(7).set<L1STD::L2Ptr>(e.l2_full).word(0) | (1 << 5));
  CHECK(e.lookup(0).error == LookupError::l1std_reserved);
  e.t.put(e.l1,
          L1STD{}.set<L1STD::Span>(7).set<L1STD::L2Ptr>(e.l2_full).word(0) | (uint64_t{1} << 63));
  CHECK(e.lookup(0).error == LookupError::l1std_reserved);
}

TEST_CASE("2-level stream table: SPLIT 8 and 10, Reserved SPLIT as 6, L2Ptr aligned by Span") {
  for (unsigned split : {arch::kSplit16K, arch::kSplit64K}) {
    CAPTURE(split);
    TwoLevel e(split);
    e.put(e.l2_full + ((uint64_t{1} << split) - 1) * 64, bypass_ste());
    e.put(e.l2_one, bypass_ste());
    require_ok(e.lookup((1u << split) - 1));
    require_ok(e.lookup(3u << split));
    CHECK(e.lookup((3u << split) + 1).error == LookupError::sid_beyond_span);
  }
  // SPLIT 7 is Reserved and behaves as 6: StreamID 64 uses L1STD 1.
  TwoLevel e;
  e.regs.STRTAB_BASE_CFG.set<arch::STRTAB_BASE_CFG::SPLIT>(7);
  e.put(e.l2_four, bypass_ste());
  require_ok(e.lookup(64));
  // L2Ptr[5 + (Span - 1):0] are treated as 0: a 4-STE array at +0x40 is read from its start.
  e.set_l1(1, 3, e.l2_four + 0xc0);
  require_ok(e.lookup(64));
  // FMT 0b10/0b11 are Reserved and behave as linear; so does FMT 0b01 without
  // IDR0.ST_LEVEL (FMT is RES0 then).
  Env l;
  l.linear(4);
  l.set_ste(2, bypass_ste());
  for (uint64_t fmt : {0b10, 0b11}) {
    l.regs.STRTAB_BASE_CFG.set<arch::STRTAB_BASE_CFG::FMT>(fmt);
    const ConfigResult r = l.lookup(2);
    require_ok(r);
    CHECK(r.stats.l1_reads == 0);
  }
  l.regs.STRTAB_BASE_CFG.set<arch::STRTAB_BASE_CFG::FMT>(arch::kStrtabFmt2Level);
  l.config.st_2level = false;
  require_ok(l.lookup(2));
  l.config.st_2level = true;
  CHECK(l.lookup(2).stats.l1_reads == 1);
}

TEST_CASE("F_STE_FETCH: a stream table outside RAM, an L2Ptr outside RAM or beyond the OAS") {
  Env e;
  e.linear(4);
  e.regs.STRTAB_BASE.set<arch::STRTAB_BASE::ADDR>(kNoRam);
  ConfigResult r = e.lookup(StreamRequest{.sid = 5, .ssv = true, .ssid = 3});
  CHECK(r.error == LookupError::ste_fetch_abort);
  check_record(r, EventType::F_STE_FETCH, 5, true, 3, false);
  auto f = arch::descriptor_cast<FetchFaultRecord>(r.event);
  CHECK(f.get<FetchFaultRecord::FetchAddr>() == kNoRam + 5 * 64);
  CHECK(f.get<FetchFaultRecord::Reason>() == 0);
  CHECK(f.get<FetchFaultRecord::GPCF>() == 0);
  CHECK(r.event.word(1) == 0);
  CHECK(r.event.word(2) == 0);
  CHECK(r.record);

  TwoLevel t;
  // The L1 table itself: FetchAddr is the L1STD's address.
  t.regs.STRTAB_BASE.set<arch::STRTAB_BASE::ADDR>(kNoRam);
  r = t.lookup(2 * 64 + 1);
  CHECK(r.error == LookupError::ste_fetch_abort);
  CHECK(arch::descriptor_cast<FetchFaultRecord>(r.event).get<FetchFaultRecord::FetchAddr>() ==
        kNoRam + 2 * 8);
  // A level 2 array outside RAM: FetchAddr is the STE's address.
  t.regs.STRTAB_BASE.set<arch::STRTAB_BASE::ADDR>(t.l1);
  t.set_l1(1, 3, kNoRam);
  r = t.lookup(64 + 2);
  CHECK(r.error == LookupError::ste_fetch_abort);
  CHECK(arch::descriptor_cast<FetchFaultRecord>(r.event).get<FetchFaultRecord::FetchAddr>() ==
        kNoRam + 2 * 64);
  // Beyond the OAS (3.4.3: F_STE_FETCH, the model's choice over truncation); FetchAddr bits
  // [55:OAS] are RES0 in the record.
  t.set_l1(1, 3, kOas48 + 0x1000);
  r = t.lookup(64 + 1);
  CHECK(r.error == LookupError::ste_fetch_abort);
  CHECK(arch::descriptor_cast<FetchFaultRecord>(r.event).get<FetchFaultRecord::FetchAddr>() ==
        0x1000 + 64);
}

// ---------------------------------------------------------------------------------------------
// STE (5.2): every Config, and each ILLEGAL combination (C_BAD_STE, 7.3.5).

TEST_CASE("STE.Config: abort (and Reserved 0b001-0b011), bypass, stage 1, stage 2, nested") {
  Env e;
  e.linear(4);
  e.make_s2();
  const uint64_t cd = e.t.alloc(64);
  e.put(cd, make_cd(0x42));
  const uint64_t cd_ipa = e.ipa.alloc(64);
  e.put(e.ipa, cd_ipa, make_cd(0x43));
  e.map_ipa(cd_ipa);
  for (uint64_t config = 0; config < 4; ++config) {
    CAPTURE(config);
    // V == 1 and Config 0b0xx: terminated without an event, every other field IGNORED.
    STE s;
    s.set<STE::V>(1).set<STE::Config>(config).set_word(2, ~uint64_t{0});
    e.set_ste(1, s);
    const ConfigResult r = e.lookup(1, 4);  // even with a SubstreamID: no C_BAD_SUBSTREAMID
    require_ok(r);
    CHECK(r.ste->mode == StreamMode::abort);
    CHECK(r.ste->Config == config);
    CHECK(!r.stage1());
    CHECK(!r.stage2());
  }
  e.set_ste(1, bypass_ste());
  ConfigResult r = e.lookup(1);
  require_ok(r);
  CHECK(r.ste->mode == StreamMode::bypass);
  CHECK(r.ste->world == StreamWorld::none);
  CHECK(r.ste->S2VMID == 0);
  CHECK(!r.stage1());
  CHECK(!r.stage2());

  e.set_ste(1, s1_ste(cd).set<STE::S2VMID>(9));
  r = e.lookup(1);
  require_ok(r);
  CHECK(r.ste->mode == StreamMode::s1);
  CHECK(r.ste->world == StreamWorld::ns_el1);
  CHECK(r.ste->S2VMID == 9);  // NS-EL1 stage 1 translations are VMID-tagged when S2P (5.2)
  REQUIRE(r.stage1());
  CHECK(!r.stage2());
  CHECK(r.cd->ASID == 0x42);
  CHECK(r.cd->cd_addr == cd);
  CHECK(r.cd->cd_pa == cd);
  CHECK(r.stats.reads == 16);

  e.set_ste(1, with_s2(STE{}, e.s2ttb, arch::kConfigS2Trans, 0x1234));
  r = e.lookup(1);
  require_ok(r);
  CHECK(r.ste->mode == StreamMode::s2);
  CHECK(!r.stage1());
  REQUIRE(r.stage2());
  CHECK(r.ste->S2VMID == 0x1234);
  CHECK(r.ste->S2R);
  CHECK(r.ste->s2.tt.ttb == e.s2ttb);
  CHECK(r.ste->s2.tt.start_level == 1);
  CHECK(r.ste->s2.tt.start_bits == 10);

  e.set_ste(1, with_s2(s1_ste(cd_ipa), e.s2ttb, arch::kConfigNested));
  r = e.lookup(1);
  require_ok(r);
  CHECK(r.ste->mode == StreamMode::nested);
  REQUIRE(r.stage1());
  REQUIRE(r.stage2());
  CHECK(r.cd->ASID == 0x43);
  CHECK(r.ste->S2VMID == 7);
}

TEST_CASE("C_BAD_STE: V == 0") {
  Env e;
  check_bad_ste(e, STE{}, LookupError::ste_invalid);
  // V == 0 makes every other field IGNORED.
  check_bad_ste(e, bypass_ste().set<STE::V>(0).set_word(7, ~uint64_t{0}), LookupError::ste_invalid);
}

TEST_CASE("C_BAD_STE: Config selects a stage the SMMU does not implement") {
  Env a;
  a.config = Config::stage2_only();
  check_bad_ste(a, s1_ste(kRam), LookupError::config_s1_unsupported);
  Env b;
  b.config = Config::stage1_only();
  check_bad_ste(b, with_s2(STE{}, kRam, arch::kConfigS2Trans), LookupError::config_s2_unsupported);
  check_bad_ste(b, with_s2(s1_ste(kRam), kRam, arch::kConfigNested),
                LookupError::config_s2_unsupported);
}

TEST_CASE("C_BAD_STE: a Reserved bit set; IMPLEMENTATION DEFINED bits are IGNORED") {
  Env e;
  check_bad_ste(e, bypass_ste().set_word(0, bypass_ste().word(0) | uint64_t{1} << 56),
                LookupError::ste_reserved, "word 0");
  check_bad_ste(e, bypass_ste().set_word(1, uint64_t{1} << 41), LookupError::ste_reserved,
                "word 1");  // bit 105
  check_bad_ste(e, bypass_ste().set_word(3, uint64_t{1} << 63), LookupError::ste_reserved,
                "word 3");  // bit 255
  check_bad_ste(e, bypass_ste().set_word(6, uint64_t{1} << 3), LookupError::ste_reserved,
                "word 6");  // bit 387
  // IMPLEMENTATION DEFINED [127:116], [159:144], [271:256]; SW_RESERVED is IGNORED.
  STE s = bypass_ste();
  s.set_word(1, uint64_t{0xfff} << 52).set_word(2, uint64_t{0xffff} << 16).set_word(4, 0xffff);
  s.set<STE::SW_RESERVED>(0xf);
  e.set_ste(3, s);
  require_ok(e.lookup(3));
}

TEST_CASE("C_BAD_STE: a field RES0 for this SMMU is set") {
  Env e;
  e.linear(4);
  // Features the model never has.
  check_bad_ste(e, bypass_ste().set<STE::MECID>(1), LookupError::ste_res0, "MECID");
  check_bad_ste(e, bypass_ste().set<STE::PARTID>(1), LookupError::ste_res0, "PARTID");
  check_bad_ste(e, bypass_ste().set<STE::VMSPtr>(0x1000), LookupError::ste_res0, "VMSPtr");
  check_bad_ste(e, bypass_ste().set<STE::DPT_VMATCH>(2), LookupError::ste_res0, "DPT_VMATCH");
  check_bad_ste(e, s1_ste(kRam).set<STE::S1PIE>(1), LookupError::ste_res0, "S1PIE");
  e.make_s2();
  const STE s2 = with_s2(STE{}, e.s2ttb, arch::kConfigS2Trans);
  check_bad_ste(e, STE(s2).set<STE::S2HAFT>(1), LookupError::ste_res0, "S2HAFT");
  check_bad_ste(e, STE(s2).set<STE::S2POI>(1), LookupError::ste_res0, "S2POI");
  check_bad_ste(e, STE(s2).set<STE::S2DS>(1), LookupError::ste_res0, "S2DS");
  check_bad_ste(e, STE(s2).set<STE::S_S2TTB>(0x1000), LookupError::ste_res0, "S_S2TTB");
  // ... but a stage the Config bypasses has its fields IGNORED, RES0 or not.
  e.set_ste(3, bypass_ste().set<STE::S2POI>(1).set<STE::S1PIE>(1).set<STE::S2HAFT>(1));
  require_ok(e.lookup(3));
  // Features the Config lacks.
  Env v0;
  v0.config = Config::smmuv3_0();
  v0.make_s2();
  const STE v0s2 = with_s2(STE{}, v0.s2ttb, arch::kConfigS2Trans);
  check_bad_ste(v0, STE(v0s2).set<STE::S2FWB>(1), LookupError::ste_res0, "S2FWB");
  check_bad_ste(v0, STE(v0s2).set<STE::S2HWU59>(1), LookupError::ste_res0, "S2HWU59");
  check_bad_ste(v0, bypass_ste().set<STE::DRE>(1), LookupError::ste_res0, "DRE");
  check_bad_ste(v0, bypass_ste().set<STE::PPAR>(1), LookupError::ste_res0, "PPAR");  // no PRI
  check_bad_ste(v0, s1_ste(kRam).set<STE::STRW>(arch::kStrwEl2), LookupError::ste_res0,
                "STRW");  // no Hyp
  Env ovr;
  ovr.config.attr_types_ovr = false;
  ovr.config.attr_perms_ovr = false;
  check_bad_ste(ovr, bypass_ste().set<STE::SHCFG>(arch::kShcfgIncoming), LookupError::ste_res0,
                "SHCFG");
  check_bad_ste(ovr, bypass_ste().set<STE::PRIVCFG>(arch::kPrivcfgPriv), LookupError::ste_res0,
                "PRIVCFG");
  // MemAttr is RES0 while MTCFG == 0, even with ATTR_TYPES_OVR.
  check_bad_ste(e, bypass_ste().set<STE::MemAttr>(arch::kMemAttrNormalWb), LookupError::ste_res0,
                "MemAttr");
  e.set_ste(3, bypass_ste()
                   .set<STE::MTCFG>(1)
                   .set<STE::MemAttr>(arch::kMemAttrNormalWb)
                   .set<STE::SHCFG>(arch::kShcfgIsh)
                   .set<STE::ALLOCCFG>(0b1110)
                   .set<STE::PRIVCFG>(arch::kPrivcfgPriv)
                   .set<STE::INSTCFG>(arch::kInstcfgData));
  ConfigResult r = e.lookup(3);
  require_ok(r);  // the bypass attributes are kept for the transaction
  CHECK(r.ste->MTCFG);
  CHECK(r.ste->MemAttr == arch::kMemAttrNormalWb);
  CHECK(r.ste->SHCFG == arch::kShcfgIsh);
  CHECK(r.ste->ALLOCCFG == 0b1110);
  // Without ATTR_TYPES_OVR the incoming shareability is used.
  ovr.linear(4);
  ovr.set_ste(3, bypass_ste());
  r = ovr.lookup(3);
  require_ok(r);
  CHECK(r.ste->SHCFG == arch::kShcfgIncoming);
}

TEST_CASE("C_BAD_STE: split-stage ATS (EATS 0b10) where it is not allowed") {
  Env e;
  e.make_s2();
  const STE nested = with_s2(s1_ste(kRam), e.s2ttb, arch::kConfigNested);
  // Not Config 0b111.
  check_bad_ste(e, s1_ste(kRam).set<STE::EATS>(arch::kEatsS1Chk), LookupError::eats_split_illegal);
  // IDR0.NS1ATS == 1 (the default Config has no split-stage ATS).
  check_bad_ste(e, STE(nested).set<STE::EATS>(arch::kEatsS1Chk), LookupError::eats_split_illegal);
  // S2S == 1.
  Env s;
  s.config.split_stage_ats = true;
  s.make_s2();
  const STE sn = with_s2(s1_ste(kRam), s.s2ttb, arch::kConfigNested);
  check_bad_ste(s, STE(sn).set<STE::EATS>(arch::kEatsS1Chk).set<STE::S2S>(1),
                LookupError::eats_split_illegal);
  // Legal with all three; and EATS is IGNORED without ATS.
  s.linear(4);
  const uint64_t cd = s.ipa.alloc(64);
  s.put(s.ipa, cd, make_cd(1));
  s.map_ipa(cd);
  s.set_ste(3, with_s2(s1_ste(cd), s.s2ttb, arch::kConfigNested).set<STE::EATS>(arch::kEatsS1Chk));
  ConfigResult r = s.lookup(3);
  require_ok(r);
  CHECK(r.ste->EATS == arch::kEatsS1Chk);
  Env n;
  n.config.ats = false;
  n.config.pri = false;
  n.linear(4);
  n.set_ste(3, s1_ste(kRam).set<STE::EATS>(arch::kEatsS1Chk).set<STE::Config>(arch::kConfigBypass));
  r = n.lookup(3);
  require_ok(r);
  CHECK(r.ste->EATS == 0);
}

TEST_CASE("C_BAD_STE: full ATS (EATS 0b01) with S2S while stage 2 translates") {
  Env e;
  e.make_s2();
  check_bad_ste(e,
                with_s2(STE{}, e.s2ttb, arch::kConfigS2Trans)
                    .set<STE::EATS>(arch::kEatsTrans)
                    .set<STE::S2S>(1),
                LookupError::eats_s2s);
  // Stage 2 bypassed: S2S is IGNORED for this rule (Arm's recommendation, 5.2 EATS).
  const uint64_t cd = e.t.alloc(64);
  e.put(cd, make_cd(1));
  e.set_ste(3, s1_ste(cd).set<STE::EATS>(arch::kEatsTrans).set<STE::S2S>(1));
  ConfigResult r = e.lookup(3);
  require_ok(r);
  CHECK(r.ste->EATS == arch::kEatsTrans);
  // EATS 0b11 without IDR3.DPT behaves as 0b00; bypass makes the effective value 0b00.
  e.set_ste(3, s1_ste(cd).set<STE::EATS>(arch::kEatsDpt));
  CHECK(e.lookup(3).ste->EATS == 0);
  e.set_ste(3, bypass_ste().set<STE::EATS>(arch::kEatsTrans));
  CHECK(e.lookup(3).ste->EATS == 0);
}

TEST_CASE("C_BAD_STE: STRW 0bx1 when STRW is used; the StreamWorld it selects") {
  Env e;
  check_bad_ste(e, s1_ste(kRam).set<STE::STRW>(0b01), LookupError::strw_reserved);
  check_bad_ste(e, s1_ste(kRam).set<STE::STRW>(0b11), LookupError::strw_reserved);
  // Stage 2 enabled: STRW is IGNORED and the StreamWorld is NS-EL1.
  e.make_s2();
  e.set_ste(3, with_s2(STE{}, e.s2ttb, arch::kConfigS2Trans).set<STE::STRW>(0b01));
  ConfigResult r = e.lookup(3);
  require_ok(r);
  CHECK(r.ste->world == StreamWorld::ns_el1);
  // STRW 0b10: NS-EL2, or NS-EL2-E2H with CR2.E2H; the walker has no EL2 regimes yet.
  const uint64_t cd = e.t.alloc(64);
  e.put(cd, make_cd(0x101));
  e.set_ste(3, s1_ste(cd).set<STE::STRW>(arch::kStrwEl2).set<STE::S2VMID>(5));
  r = e.lookup(3);
  require_ok(r);
  CHECK(r.ste->world == StreamWorld::ns_el2);
  CHECK(r.ste->S2VMID == 0);  // IGNORED outside NS-EL1
  CHECK(r.cd->ASID == 0);     // IGNORED in NS-EL2
  CHECK(std::string(r.ste->unimplemented) == "StreamWorld NS-EL2");
  e.regs.CR2.set<arch::CR2::E2H>(1);
  r = e.lookup(3);
  require_ok(r);
  CHECK(r.ste->world == StreamWorld::ns_el2_e2h);
  CHECK(r.cd->ASID == 0x101);
}

TEST_CASE("C_BAD_STE: S1STALLD with a Stall model other than stall-and-terminate") {
  Env e;
  e.config.stall_model = arch::kStallModelTerminate;
  check_bad_ste(e, s1_ste(kRam).set<STE::S1STALLD>(1), LookupError::s1stalld_illegal);
  Env f;
  f.config.stall_model = arch::kStallModelStallForced;
  check_bad_ste(f, s1_ste(kRam).set<STE::S1STALLD>(1), LookupError::s1stalld_illegal);
}

TEST_CASE("C_BAD_STE: S1CDMax above IDR1.SSIDSIZE") {
  Env e;
  e.config.ssidsize = 8;
  check_bad_ste(e, s1_ste(kRam, 9), LookupError::s1cdmax_too_large);
  // Without substreams S1CDMax is IGNORED.
  Env n;
  n.config.ssidsize = 0;
  n.config.pri = false;
  n.linear(4);
  const uint64_t cd = n.t.alloc(64);
  n.put(cd, make_cd(1));
  n.set_ste(3, s1_ste(cd, 31, arch::kS1Fmt64KL2));
  ConfigResult r = n.lookup(3);
  require_ok(r);
  CHECK(r.ste->S1CDMax == 0);
  CHECK(r.cd->cd_pa == cd);
}

TEST_CASE("C_BAD_STE: a 2-level CD table without IDR0.CD2L") {
  Env e;
  e.config.cd2l = false;
  check_bad_ste(e, s1_ste(kRam, 4, arch::kS1Fmt4KL2), LookupError::s1fmt_2level_no_cd2l);
  check_bad_ste(e, s1_ste(kRam, 4, arch::kS1Fmt64KL2), LookupError::s1fmt_2level_no_cd2l);
  // S1Fmt is IGNORED for a single CD, and 0b11 behaves as linear.
  const uint64_t cd = e.t.alloc(64 * 16);
  e.put(cd, make_cd(1));
  e.set_ste(3, s1_ste(cd, 0, arch::kS1Fmt4KL2));
  require_ok(e.lookup(3));
  e.set_ste(3, s1_ste(cd, 4, 0b11, arch::kS1dssSsid0));
  ConfigResult r = e.lookup(3);
  require_ok(r);
  CHECK(r.ste->S1Fmt == arch::kS1FmtLinear);
}

TEST_CASE("C_BAD_STE: S1ContextPtr beyond the OAS (stage 1) or the IAS (nested)") {
  Env e;
  check_bad_ste(e, s1_ste(kOas48), LookupError::s1contextptr_range);
  e.make_s2();
  check_bad_ste(e, with_s2(s1_ste(kOas48 + 0x40), e.s2ttb, arch::kConfigNested),
                LookupError::s1contextptr_range);
  // Within the IAS but beyond the stage-2 input range (40 bits): a stage-2 fault, not C_BAD_STE.
  e.set_ste(3, with_s2(s1_ste(uint64_t{1} << 44), e.s2ttb, arch::kConfigNested));
  const ConfigResult r = e.lookup(3);
  CHECK(r.error == LookupError::cd_s2_fault);
  CHECK(r.fault.type == FaultType::translation);
}

TEST_CASE("C_BAD_STE: S2S where the Stall model forbids or forces stalls") {
  Env e;
  e.config.stall_model = arch::kStallModelTerminate;
  e.make_s2();
  check_bad_ste(e, with_s2(STE{}, e.s2ttb, arch::kConfigS2Trans).set<STE::S2S>(1),
                LookupError::s2s_unsupported);
  Env f;
  f.config.stall_model = arch::kStallModelStallForced;
  f.make_s2();
  check_bad_ste(f, with_s2(STE{}, f.s2ttb, arch::kConfigS2Trans), LookupError::s2s_forced);
  f.set_ste(3, with_s2(STE{}, f.s2ttb, arch::kConfigS2Trans).set<STE::S2S>(1));
  require_ok(f.lookup(3));
}

TEST_CASE("C_BAD_STE: stage-2 fields decode_s2 rejects") {
  Env e;
  e.make_s2();
  const STE s2 = with_s2(STE{}, e.s2ttb, arch::kConfigS2Trans);
  struct Row {
    STE ste;
    CfgError why;
  };
  const Row rows[] = {
      {STE(s2).set<STE::S2AA64>(0), CfgError::aa32_tables},
      {STE(s2).set<STE::S2ENDI>(1), CfgError::big_endian},
      {STE(s2).set<STE::S2TG>(0b11), CfgError::granule_reserved},
      {STE(s2).set<STE::S2T0SZ>(40), CfgError::tsz_out_of_range},
      {STE(s2).set<STE::S2SL0>(2).set<STE::S2T0SZ>(34), CfgError::sl0_inconsistent},
      {STE(s2).set<STE::S2TTB>(kOas48), CfgError::ttb_out_of_range},
  };
  for (const Row& row : rows) {
    CAPTURE(name(row.why));
    check_bad_ste(e, row.ste, LookupError::s2_illegal);
    CHECK(e.lookup(3).cfg_error == row.why);
  }
  Env h;
  h.config.httu = arch::kHttuNone;
  h.make_s2();
  check_bad_ste(h, with_s2(STE{}, h.s2ttb, arch::kConfigS2Trans).set<STE::S2HA>(1),
                LookupError::s2_illegal);
  CHECK(h.lookup(3).cfg_error == CfgError::ha_unsupported);
  Env g;
  g.config.gran16k = false;
  g.make_s2();
  check_bad_ste(g, with_s2(STE{}, g.s2ttb, arch::kConfigS2Trans).set<STE::S2TG>(arch::kS2Tg16K),
                LookupError::s2_illegal);
  CHECK(g.lookup(3).cfg_error == CfgError::granule_unsupported);
}

TEST_CASE("C_BAD_STE: S2VMID[15:8] set with 8-bit VMIDs, unless S2VMID is IGNORED") {
  Env e;
  e.config.vmid16 = false;
  e.make_s2();
  check_bad_ste(e, with_s2(STE{}, e.s2ttb, arch::kConfigS2Trans, 0x100),
                LookupError::s2vmid_too_wide);
  // Stage-1-only NS-EL1 translations are VMID-tagged too.
  check_bad_ste(e, s1_ste(kRam).set<STE::S2VMID>(0x8000), LookupError::s2vmid_too_wide);
  e.set_ste(3, bypass_ste().set<STE::S2VMID>(0xff00));
  ConfigResult r = e.lookup(3);
  require_ok(r);
  CHECK(r.ste->S2VMID == 0);
  e.set_ste(3, with_s2(STE{}, e.s2ttb, arch::kConfigS2Trans, 0xff));
  CHECK(e.lookup(3).ste->S2VMID == 0xff);
}

// ---------------------------------------------------------------------------------------------
// Substreams (5.2 S1CDMax/S1DSS, 7.3.7, 7.3.9).

// A linear table of 2^cdmax CDs at `cds`, ASID = 0x100 + index, behind StreamID 3.
struct Substreams : Env {
  uint64_t cds = 0;
  explicit Substreams(unsigned cdmax, uint64_t dss = arch::kS1dssTerminate) {
    linear(4);
    cds = t.alloc(uint64_t{64} << cdmax);
    for (uint32_t i = 0; i < (1u << cdmax); ++i)
      put(cds + 64 * i, make_cd(static_cast<uint16_t>(0x100 + i)));
    set_ste(3, s1_ste(cds, cdmax, arch::kS1FmtLinear, dss));
  }
};

void check_bad_ssid(const ConfigResult& r, LookupError why, uint32_t sid, uint32_t ssid) {
  INFO(str(r));
  CHECK(r.error == why);
  // SubstreamID always valid, no SSV qualifier (7.3.9).
  check_record(r, EventType::C_BAD_SUBSTREAMID, sid, false, ssid);
  CHECK(r.record);
}

TEST_CASE("C_BAD_SUBSTREAMID: a SubstreamID where stage 1 does not translate") {
  Env e;
  e.linear(4);
  e.make_s2();
  e.set_ste(3, bypass_ste());
  check_bad_ssid(e.lookup(3, 7), LookupError::ssid_without_stage1, 3, 7);
  e.set_ste(3, with_s2(STE{}, e.s2ttb, arch::kConfigS2Trans));
  check_bad_ssid(e.lookup(3, 0xfffff), LookupError::ssid_without_stage1, 3, 0xfffff);
}

TEST_CASE("C_BAD_SUBSTREAMID: substreams unsupported (SSIDSIZE 0) or disabled (S1CDMax 0)") {
  Env e;
  e.config.ssidsize = 0;
  e.config.pri = false;
  e.linear(4);
  const uint64_t cd = e.t.alloc(64);
  e.put(cd, make_cd(1));
  e.set_ste(3, s1_ste(cd, 4));
  check_bad_ssid(e.lookup(3, 0), LookupError::ssid_unsupported, 3, 0);
  Substreams s(0);
  check_bad_ssid(s.lookup(3, 1), LookupError::ssid_disabled, 3, 1);
  check_bad_ssid(s.lookup(3, 0), LookupError::ssid_disabled, 3, 0);
  // Without a SubstreamID the single CD is used.
  ConfigResult r = s.lookup(3);
  require_ok(r);
  CHECK(r.cd->ASID == 0x100);
}

TEST_CASE("C_BAD_SUBSTREAMID: SubstreamID >= 2^S1CDMax") {
  Substreams s(3);
  ConfigResult r = s.lookup(3, 7);
  require_ok(r);
  CHECK(r.cd->ssid == 7);
  CHECK(r.cd->ASID == 0x107);
  check_bad_ssid(s.lookup(3, 8), LookupError::ssid_out_of_range, 3, 8);
  check_bad_ssid(s.lookup(3, 0x80000), LookupError::ssid_out_of_range, 3, 0x80000);
}

TEST_CASE("S1DSS: a transaction without a SubstreamID when substreams are enabled") {
  // 0b00: terminate, F_STREAM_DISABLED (7.3.7: StreamID only).
  Substreams t(2, arch::kS1dssTerminate);
  ConfigResult r = t.lookup(StreamRequest{.sid = 3, .input_addr = 0x1000});
  CHECK(r.error == LookupError::substream_required);
  check_record(r, EventType::F_STREAM_DISABLED, 3);
  CHECK(r.record);
  // 0b11 is Reserved and behaves as 0b00.
  t.set_ste(3, s1_ste(t.cds, 2, arch::kS1FmtLinear, 0b11));
  CHECK(t.lookup(3).error == LookupError::substream_required);
  require_ok(t.lookup(3, 2));

  // 0b01: bypass stage 1, no CD fetched; stage 2 still translates a nested stream.
  Substreams b(2, arch::kS1dssBypass);
  r = b.lookup(3);
  require_ok(r);
  CHECK(!r.stage1());
  CHECK(r.stats.reads == 8);  // the STE only
  b.make_s2();
  b.set_ste(3, with_s2(s1_ste(0, 2, arch::kS1FmtLinear, arch::kS1dssBypass), b.s2ttb,
                       arch::kConfigNested));
  r = b.lookup(3);
  require_ok(r);
  CHECK(!r.stage1());
  CHECK(r.stage2());
  CHECK(r.stats.s2_reads == 0);

  // 0b10: CD 0 for traffic without a SubstreamID; SubstreamID 0 is then F_STREAM_DISABLED.
  Substreams z(2, arch::kS1dssSsid0);
  r = z.lookup(3);
  require_ok(r);
  CHECK(r.cd->ssid == 0);
  CHECK(r.cd->ASID == 0x100);
  r = z.lookup(3, 0);
  CHECK(r.error == LookupError::substream0_reserved);
  check_record(r, EventType::F_STREAM_DISABLED, 3);
  r = z.lookup(3, 1);
  require_ok(r);
  CHECK(r.cd->ASID == 0x101);
}

// ---------------------------------------------------------------------------------------------
// CD tables (5.2 S1Fmt, 5.3).

TEST_CASE("linear CD table: indexed by SubstreamID, S1ContextPtr aligned to the table") {
  Substreams s(4);
  for (uint32_t ssid : {0u, 1u, 9u, 15u}) {
    CAPTURE(ssid);
    const ConfigResult r = s.lookup(3, ssid);
    require_ok(r);
    CHECK(r.cd->ASID == 0x100 + ssid);
    CHECK(r.cd->cd_addr == s.cds + 64 * ssid);
    CHECK(r.cd->cd_pa == s.cds + 64 * ssid);
  }
  // S1ContextPtr[S1CDMax + 5:6] are RES0: the model treats them as zero.
  s.set_ste(3, s1_ste(s.cds + 0x3c0, 4));
  const ConfigResult r = s.lookup(3, 2);
  require_ok(r);
  CHECK(r.cd->cd_addr == s.cds + 128);
}

// A 2-level CD table behind StreamID 3: S1CDMax 8 with 4KB leaves (4 L1CDs), or 11 with 64KB
// leaves (2 L1CDs). Each valid L2 table holds CDs with ASID = SubstreamID.
struct TwoLevelCd : Env {
  unsigned l2_bits;
  uint64_t l1 = 0;
  uint64_t l2[4] = {};
  explicit TwoLevelCd(uint64_t fmt, uint64_t dss = arch::kS1dssTerminate, bool nested = false)
      : l2_bits(fmt == arch::kS1Fmt4KL2 ? 6 : 10) {
    linear(4);
    const unsigned cdmax = fmt == arch::kS1Fmt4KL2 ? 8 : 11;
    Tables& where = nested ? ipa : t;
    l1 = where.alloc(64);
    for (unsigned i = 0; i < (1u << (cdmax - l2_bits)); ++i) {
      l2[i] = where.alloc(uint64_t{64} << l2_bits);
      where.put(l1 + 8 * i, L1CD{}.set<L1CD::V>(1).set<L1CD::L2Ptr>(l2[i]).word(0));
    }
    STE s = s1_ste(l1, cdmax, fmt, dss);
    if (nested) {
      make_s2();
      map_ipa(l1);
      s = with_s2(s, s2ttb, arch::kConfigNested);
    }
    set_ste(3, s);
  }
  // CD `ssid` in its L2 table.
  uint64_t cd_addr(uint32_t ssid) const {
    return l2[ssid >> l2_bits] + 64 * (ssid & ((1u << l2_bits) - 1));
  }
  void put_cd(uint32_t ssid, Tables& where) {
    put(where, cd_addr(ssid), make_cd(static_cast<uint16_t>(ssid)));
  }
};

TEST_CASE("2-level CD table, 4KB leaves: L1CD by SubstreamID[S1CDMax-1:6]") {
  TwoLevelCd e(arch::kS1Fmt4KL2);
  for (uint32_t ssid : {0u, 63u, 64u, 255u}) {
    CAPTURE(ssid);
    e.put_cd(ssid, e.t);
    const ConfigResult r = e.lookup(3, ssid);
    require_ok(r);
    CHECK(r.cd->ASID == ssid);
    CHECK(r.cd->cd_pa == e.cd_addr(ssid));
    CHECK(r.stats.l1_reads == 1);
  }
  check_bad_ssid(e.lookup(3, 256), LookupError::ssid_out_of_range, 3, 256);
}

TEST_CASE("2-level CD table, 64KB leaves: L1CD by SubstreamID[S1CDMax-1:10]") {
  TwoLevelCd e(arch::kS1Fmt64KL2);
  for (uint32_t ssid : {0u, 1023u, 1024u, 2047u}) {
    CAPTURE(ssid);
    e.put_cd(ssid, e.t);
    const ConfigResult r = e.lookup(3, ssid);
    require_ok(r);
    CHECK(r.cd->ASID == ssid);
    CHECK(r.cd->cd_pa == e.cd_addr(ssid));
  }
  // L2Ptr[15:12] are RES0 for a 64KB level 2 table.
  e.t.put(e.l1 + 8, L1CD{}.set<L1CD::V>(1).set<L1CD::L2Ptr>(e.l2[1] + 0x1000).word(0));
  check_bad_ssid(e.lookup(3, 1024), LookupError::l1cd_reserved, 3, 1024);
}

TEST_CASE("C_BAD_SUBSTREAMID: an L1CD with V == 0, Reserved bits, or L2Ptr out of range") {
  TwoLevelCd e(arch::kS1Fmt4KL2);
  e.put_cd(70, e.t);
  e.t.put(e.l1 + 8, 0);
  check_bad_ssid(e.lookup(3, 70), LookupError::l1cd_invalid, 3, 70);
  // V == 0 makes L2Ptr IGNORED.
  e.t.put(e.l1 + 8, L1CD{}.set<L1CD::L2Ptr>(e.l2[1]).word(0));
  check_bad_ssid(e.lookup(3, 70), LookupError::l1cd_invalid, 3, 70);
  e.t.put(e.l1 + 8, L1CD{}.set<L1CD::V>(1).set<L1CD::L2Ptr>(e.l2[1]).word(0) | 0x2);
  check_bad_ssid(e.lookup(3, 70), LookupError::l1cd_reserved, 3, 70);
  e.t.put(e.l1 + 8, L1CD{}.set<L1CD::V>(1).set<L1CD::L2Ptr>(e.l2[1]).word(0) | uint64_t{1} << 60);
  check_bad_ssid(e.lookup(3, 70), LookupError::l1cd_reserved, 3, 70);
  // 3.4.3: beyond the OAS is C_BAD_SUBSTREAMID (SMMUv3.1 and later).
  e.t.put(e.l1 + 8, L1CD{}.set<L1CD::V>(1).set<L1CD::L2Ptr>(kOas48).word(0));
  check_bad_ssid(e.lookup(3, 70), LookupError::l1cd_range, 3, 70);

  // Fetching CD 0 for traffic without a SubstreamID (S1DSS 0b10): SubstreamID 0 recorded.
  TwoLevelCd z(arch::kS1Fmt4KL2, arch::kS1dssSsid0);
  z.t.put(z.l1, 0);
  check_bad_ssid(z.lookup(3), LookupError::l1cd_invalid, 3, 0);
}

// ---------------------------------------------------------------------------------------------
// Nested: CD and L1CD addresses are IPAs (3.3.2, 5.4.1), translated by stage 2 (CLASS CD).

TEST_CASE("nested: the CD is fetched from IPA space through stage 2") {
  Env e;
  e.linear(4);
  e.make_s2();
  const uint64_t cds = e.ipa.alloc(64 * 4);
  for (uint16_t i = 0; i < 4; ++i) e.put(e.ipa, cds + 64 * i, make_cd(0x200 + i));
  e.map_ipa(cds);
  e.set_ste(3, with_s2(s1_ste(cds, 2, arch::kS1FmtLinear, arch::kS1dssSsid0), e.s2ttb,
                       arch::kConfigNested));
  const ConfigResult r = e.lookup(3, 3);
  require_ok(r);
  CHECK(r.cd->ASID == 0x203);
  CHECK(r.cd->cd_addr == cds + 3 * 64);
  CHECK(r.cd->cd_pa == cds + 3 * 64 + kIpaDelta);
  CHECK(r.stats.s2_reads == 3);  // levels 1, 2, 3
}

TEST_CASE("nested: 2-level CD table, both the L1CD and the CD through stage 2") {
  TwoLevelCd e(arch::kS1Fmt4KL2, arch::kS1dssTerminate, /*nested=*/true);
  e.put_cd(130, e.ipa);
  e.map_ipa(e.cd_addr(130));
  const ConfigResult r = e.lookup(3, 130);
  require_ok(r);
  CHECK(r.cd->ASID == 130);
  CHECK(r.cd->cd_pa == e.cd_addr(130) + kIpaDelta);
  CHECK(r.stats.s2_reads == 6);
}

void check_cd_s2_fault(const ConfigResult& r, FaultType type, EventType event, uint64_t ipa,
                       const StreamRequest& req) {
  INFO(str(r));
  REQUIRE(r.error == LookupError::cd_s2_fault);
  CHECK(r.fault.type == type);
  CHECK(r.fault.stage == 2);
  CHECK(r.fault.cls == FaultClass::cd);
  check_record(r, event, req.sid, req.ssv, req.ssv ? req.ssid : 0, false);
  const auto t = arch::descriptor_cast<TranslationFaultRecord>(r.event);
  CHECK(t.get<TranslationFaultRecord::S2>() == 1);
  CHECK(t.get<TranslationFaultRecord::CLASS>() == arch::kClassCd);
  CHECK(t.get<TranslationFaultRecord::InputAddr>() == req.input_addr);
  CHECK(t.get<TranslationFaultRecord::IPA>() == (ipa & ~uint64_t{0xfff}));
  CHECK(t.get<TranslationFaultRecord::Stall>() == 0);
  CHECK(t.get<TranslationFaultRecord::STAG>() == 0);
  CHECK(t.get<TranslationFaultRecord::TTRnW>() == 0);
}

TEST_CASE("nested: an unmapped CD IPA is a stage-2 translation fault, CLASS CD") {
  Env e;
  e.linear(4);
  e.make_s2();
  const uint64_t cds = e.ipa.alloc(64 * 4);
  e.set_ste(
      3,
      with_s2(s1_ste(cds, 2), e.s2ttb, arch::kConfigNested).set<STE::PRIVCFG>(arch::kPrivcfgPriv));
  const StreamRequest req{.sid = 3,
                          .ssv = true,
                          .ssid = 2,
                          .input_addr = 0xffff'0000'1234'5678,
                          .access = Access{.instr = true}};
  ConfigResult r = e.lookup(req);
  check_cd_s2_fault(r, FaultType::translation, EventType::F_TRANSLATION, cds + 2 * 64, req);
  // RnW/InD/PnU are the transaction's, after the STE's PRIVCFG override.
  const auto t = arch::descriptor_cast<TranslationFaultRecord>(r.event);
  CHECK(t.get<TranslationFaultRecord::RnW>() == 1);
  CHECK(t.get<TranslationFaultRecord::InD>() == 1);
  CHECK(t.get<TranslationFaultRecord::PnU>() == 1);
  CHECK(r.fault.ipa == cds + 2 * 64);
  CHECK(r.record);  // STE.S2R
  CHECK(!r.stall);
  CHECK(!r.cd.has_value());
  REQUIRE(r.ste.has_value());
  // S2R == 0 suppresses the record; S2S == 1 stalls (and so records) instead (5.5).
  e.set_ste(3, with_s2(s1_ste(cds, 2), e.s2ttb, arch::kConfigNested).set<STE::S2R>(0));
  r = e.lookup(req);
  CHECK(r.error == LookupError::cd_s2_fault);
  CHECK(!r.record);
  e.set_ste(
      3, with_s2(s1_ste(cds, 2), e.s2ttb, arch::kConfigNested).set<STE::S2R>(0).set<STE::S2S>(1));
  r = e.lookup(req);
  CHECK(r.record);
  CHECK(r.stall);
}

TEST_CASE("nested: an unmapped L1CD IPA, and S2PTW with a CD in Device memory") {
  TwoLevelCd e(arch::kS1Fmt4KL2, arch::kS1dssSsid0, /*nested=*/true);
  // The L1CD's page is mapped (by the fixture), the L2 table's is not.
  const StreamRequest req{.sid = 3, .input_addr = 0x4000, .access = Access{.write = true}};
  ConfigResult r = e.lookup(req);
  check_cd_s2_fault(r, FaultType::translation, EventType::F_TRANSLATION, e.cd_addr(0), req);
  CHECK(arch::descriptor_cast<TranslationFaultRecord>(r.event).get<TranslationFaultRecord::RnW>() ==
        0);
  // The L1 table unmapped: the fault is on the L1CD's IPA.
  TwoLevelCd u(arch::kS1Fmt4KL2, arch::kS1dssTerminate, /*nested=*/true);
  u.set_ste(3,
            with_s2(s1_ste(u.l1 + 0x10'0000, 8, arch::kS1Fmt4KL2), u.s2ttb, arch::kConfigNested));
  const StreamRequest req2{.sid = 3, .ssv = true, .ssid = 200};
  r = u.lookup(req2);
  check_cd_s2_fault(r, FaultType::translation, EventType::F_TRANSLATION, u.l1 + 0x10'0000 + 3 * 8,
                    req2);
  // S2PTW: a CD fetch from a stage-2 page of Device memory is a stage-2 Permission fault.
  Env d;
  d.linear(4);
  d.make_s2();
  const uint64_t cd = d.ipa.alloc(64);
  d.put(d.ipa, cd, make_cd(1));
  const uint64_t device = (test::kS2Rw & ~lpae::S2Pte::MemAttr::kMask) |
                          (arch::kMemAttrDeviceNGnRE << lpae::S2Pte::MemAttr::kShift);
  d.map_ipa(cd, device);
  d.set_ste(3, with_s2(s1_ste(cd), d.s2ttb, arch::kConfigNested).set<STE::S2PTW>(1));
  const StreamRequest req3{.sid = 3};
  r = d.lookup(req3);
  check_cd_s2_fault(r, FaultType::permission, EventType::F_PERMISSION, cd, req3);
  d.set_ste(3, with_s2(s1_ste(cd), d.s2ttb, arch::kConfigNested));
  require_ok(d.lookup(req3));
}

TEST_CASE("nested: a stage-2 walk abort on a CD fetch is F_WALK_EABT, CLASS CD") {
  Env e;
  e.linear(4);
  e.make_s2();
  const uint64_t cd = e.ipa.alloc(64);
  e.set_ste(3, with_s2(s1_ste(cd), kNoRam, arch::kConfigNested).set<STE::S2R>(0));
  const StreamRequest req{.sid = 3, .ssv = false, .input_addr = 0x77000};
  const ConfigResult r = e.lookup(req);
  INFO(str(r));
  REQUIRE(r.error == LookupError::cd_s2_fault);
  CHECK(r.fault.type == FaultType::walk_eabt);
  CHECK(r.fault.fetch_addr >= kNoRam);
  check_record(r, EventType::F_WALK_EABT, 3, false, 0, false);
  const auto t = arch::descriptor_cast<TranslationFaultRecord>(r.event);
  CHECK(t.get<TranslationFaultRecord::S2>() == 1);
  CHECK(t.get<TranslationFaultRecord::CLASS>() == arch::kClassCd);
  CHECK(t.get<TranslationFaultRecord::InputAddr>() == 0x77000);
  CHECK(r.record);  // not a translation-related fault: S2R does not apply (5.5)
  CHECK(!r.stall);
}

// ---------------------------------------------------------------------------------------------
// CD decode (5.4, 5.4.2, 5.5): C_BAD_CD (7.3.11).

void check_bad_cd(const CD& cd, LookupError why, const char* detail = nullptr,
                  Config config = Config::smmuv3_2(), STE ste_extra = STE{}) {
  Env e;
  e.config = config;
  e.linear(4);
  const uint64_t cds = e.t.alloc(64 * 2);
  e.put(cds + 64, cd);
  STE s = s1_ste(cds, 1);
  for (unsigned i = 0; i < STE::kWords; ++i) s.set_word(i, s.word(i) | ste_extra.word(i));
  e.set_ste(3, s);
  const ConfigResult r = e.lookup(3, 1);
  INFO(str(r));
  CHECK(r.error == why);
  if (detail) CHECK(std::string(r.detail ? r.detail : "") == detail);
  check_record(r, EventType::C_BAD_CD, 3, true, 1);
  CHECK(r.record);
  CHECK(!r.cd.has_value());
}

TEST_CASE("C_BAD_CD: V == 0") {
  check_bad_cd(CD{}, LookupError::cd_invalid);
  check_bad_cd(make_cd(1).set<CD::V>(0), LookupError::cd_invalid);
}

TEST_CASE("C_BAD_CD: a Reserved bit set; IMPLEMENTATION DEFINED bits are IGNORED") {
  check_bad_cd(make_cd(1).set_word(1, make_cd(1).word(1) | uint64_t{1} << 56),
               LookupError::cd_reserved, "word 1");  // bit 120
  check_bad_cd(make_cd(1).set_word(7, uint64_t{1} << 63), LookupError::cd_reserved, "word 7");
  Env e;
  e.linear(4);
  const uint64_t cd = e.t.alloc(64);
  e.put(cd, make_cd(1).set_word(5, 0xffff'ffff));  // [351:320]
  e.set_ste(3, s1_ste(cd));
  require_ok(e.lookup(3));
}

TEST_CASE("C_BAD_CD: a field RES0 for this SMMU is set") {
  check_bad_cd(make_cd(1).set<CD::HAFT>(1).set<CD::HA>(1), LookupError::cd_res0, "HAFT");
  check_bad_cd(make_cd(1).set<CD::PIE>(1), LookupError::cd_res0, "PIE");
  check_bad_cd(make_cd(1).set<CD::DS>(1), LookupError::cd_res0, "DS");
  check_bad_cd(make_cd(1).set<CD::PARTID>(3), LookupError::cd_res0, "PARTID");
  check_bad_cd(make_cd(1).set<CD::E0PD0>(1), LookupError::cd_res0, "E0PD0");  // no IDR3.E0PD
  check_bad_cd(make_cd(1).set<CD::HWU062>(1), LookupError::cd_res0, "HWU062", Config::smmuv3_0());
  Config e0pd;
  e0pd.e0pd = true;
  Env e;
  e.config = e0pd;
  e.linear(4);
  const uint64_t cd = e.t.alloc(64);
  e.put(cd, make_cd(1).set<CD::E0PD0>(1));
  e.set_ste(3, s1_ste(cd));
  const ConfigResult r = e.lookup(3);
  require_ok(r);
  CHECK(r.cd->s1.tt[0].e0pd);
}

TEST_CASE("C_BAD_CD: CD.S with STE.S1STALLD") {
  check_bad_cd(make_cd(1).set<CD::S>(1), LookupError::cd_stall_disabled, nullptr,
               Config::smmuv3_2(), STE{}.set<STE::S1STALLD>(1));
}

TEST_CASE("C_BAD_CD: CD.A == 0 with IDR0.TERM_MODEL") {
  Config c;
  c.term_model = true;
  check_bad_cd(make_cd(1).set<CD::A>(0), LookupError::cd_term_model, nullptr, c);
}

TEST_CASE("C_BAD_CD: CD.S where the Stall model forbids or forces stalls") {
  Config t;
  t.stall_model = arch::kStallModelTerminate;
  check_bad_cd(make_cd(1).set<CD::S>(1), LookupError::cd_stall_unsupported, nullptr, t);
  Config f;
  f.stall_model = arch::kStallModelStallForced;
  check_bad_cd(make_cd(1), LookupError::cd_stall_forced, nullptr, f);
}

TEST_CASE("C_BAD_CD: ASID[15:8] set with 8-bit ASIDs") {
  Config c;
  c.asid16 = false;
  check_bad_cd(make_cd(0x100), LookupError::cd_asid_too_wide, nullptr, c);
}

TEST_CASE("C_BAD_CD: translation fields decode_s1 rejects; EPDx makes them IGNORED") {
  struct Row {
    CD cd;
    CfgError why;
  };
  const Row rows[] = {
      {make_cd(1).set<CD::AA64>(0), CfgError::aa32_tables},
      {make_cd(1).set<CD::ENDI>(1), CfgError::big_endian},
      {make_cd(1).set<CD::TG0>(0b11), CfgError::granule_reserved},
      {make_cd(1).set<CD::T0SZ>(15), CfgError::tsz_out_of_range},
      {make_cd(1).set<CD::T0SZ>(40), CfgError::tsz_out_of_range},
      {make_cd(1).set<CD::TTB0>(kOas48), CfgError::ttb_out_of_range},
      {make_cd(1).set<CD::EPD1>(0).set<CD::TG1>(0), CfgError::granule_reserved},
  };
  for (const Row& row : rows) {
    CAPTURE(name(row.why));
    check_bad_cd(row.cd, LookupError::s1_illegal);
    Env e;
    e.linear(4);
    const uint64_t cd = e.t.alloc(64);
    e.put(cd, row.cd);
    e.set_ste(3, s1_ste(cd));
    CHECK(e.lookup(3).cfg_error == row.why);
  }
  Config h;
  h.httu = arch::kHttuNone;
  check_bad_cd(make_cd(1).set<CD::HA>(1), LookupError::s1_illegal, nullptr, h);
  // EPD0 = 1: T0SZ, TG0 and TTB0 are IGNORED (5.4.1.1).
  Env e;
  e.linear(4);
  const uint64_t cd = e.t.alloc(64);
  e.put(cd, make_cd(1).set<CD::EPD0>(1).set<CD::TG0>(0b11).set<CD::T0SZ>(63).set<CD::TTB0>(kOas48));
  e.set_ste(3, s1_ste(cd));
  const ConfigResult r = e.lookup(3);
  require_ok(r);
  CHECK(r.cd->s1.tt[0].disabled);
}

TEST_CASE("a decoded CD carries the fields a walk and a TLB need") {
  Env e;
  e.linear(4);
  const uint64_t cd = e.t.alloc(64);
  e.put(cd, make_cd(0xbeef)
                .set<CD::ASET>(1)
                .set<CD::S>(1)
                .set<CD::MAIR0>(0x4404ff)
                .set<CD::MAIR1>(0xaabbccdd)
                .set<CD::AMAIR0>(7)
                .set<CD::T0SZ>(25)
                .set<CD::WXN>(1)
                .set<CD::HA>(1)
                .set<CD::HD>(1));
  e.set_ste(3, s1_ste(cd));
  const ConfigResult r = e.lookup(3);
  require_ok(r);
  CHECK(r.cd->ASID == 0xbeef);
  CHECK(r.cd->ASET);
  CHECK(r.cd->A);
  CHECK(r.cd->R);
  CHECK(r.cd->S);
  CHECK(r.cd->MAIR == 0xaabbccdd'004404ff);
  CHECK(r.cd->AMAIR == 7);
  CHECK(r.cd->s1.tt[0].ia_bits == 39);
  CHECK(r.cd->s1.tt[0].start_level == 1);
  CHECK(r.cd->s1.tt[0].ttb == kTtb0);
  CHECK(r.cd->s1.tt[1].disabled);
  CHECK(r.cd->s1.wxn);
  CHECK(r.cd->s1.ha);
  CHECK(r.cd->s1.hd);
}

// ---------------------------------------------------------------------------------------------
// F_CD_FETCH (7.3.10).

TEST_CASE("F_CD_FETCH: a CD, a CD table or an L1CD outside RAM") {
  Env e;
  e.linear(4);
  e.set_ste(3, s1_ste(kNoRam, 4, arch::kS1FmtLinear));
  ConfigResult r = e.lookup(3, 5);
  CHECK(r.error == LookupError::cd_fetch_abort);
  check_record(r, EventType::F_CD_FETCH, 3, true, 5, false);
  auto f = arch::descriptor_cast<FetchFaultRecord>(r.event);
  CHECK(f.get<FetchFaultRecord::FetchAddr>() == kNoRam + 5 * 64);
  CHECK(r.event.word(1) == 0);
  CHECK(r.event.word(2) == 0);
  CHECK(r.record);
  // The L1CD.
  e.set_ste(3, s1_ste(kNoRam, 8, arch::kS1Fmt4KL2));
  r = e.lookup(3, 200);
  CHECK(r.error == LookupError::cd_fetch_abort);
  CHECK(arch::descriptor_cast<FetchFaultRecord>(r.event).get<FetchFaultRecord::FetchAddr>() ==
        kNoRam + 3 * 8);
  // An L2 table outside RAM.
  const uint64_t l1 = e.t.alloc(64);
  e.t.put(l1 + 8, L1CD{}.set<L1CD::V>(1).set<L1CD::L2Ptr>(kNoRam + 0x10000).word(0));
  e.set_ste(3, s1_ste(l1, 8, arch::kS1Fmt4KL2));
  r = e.lookup(3, 65);
  CHECK(r.error == LookupError::cd_fetch_abort);
  CHECK(arch::descriptor_cast<FetchFaultRecord>(r.event).get<FetchFaultRecord::FetchAddr>() ==
        kNoRam + 0x10000 + 64);
}

TEST_CASE("F_CD_FETCH: nested, stage 2 maps the CD's IPA to a PA outside RAM") {
  Env e;
  e.linear(4);
  e.make_s2();
  const uint64_t cd = 0x3000'0000;  // IPA
  test::map(e.s2t, e.s2tree, cd, 3, test::leaf_desc(kNoRam, 12, 3, test::kS2Rw));
  e.set_ste(3, with_s2(s1_ste(cd), e.s2ttb, arch::kConfigNested));
  const ConfigResult r = e.lookup(3);
  CHECK(r.error == LookupError::cd_fetch_abort);
  check_record(r, EventType::F_CD_FETCH, 3, false, 0, false);
  CHECK(arch::descriptor_cast<FetchFaultRecord>(r.event).get<FetchFaultRecord::FetchAddr>() ==
        kNoRam);  // the PA used for the fetch
}

// ---------------------------------------------------------------------------------------------
// The rest of the contract.

TEST_CASE("STE.PRIVCFG/INSTCFG override the transaction's attributes") {
  StreamConfig c;
  const Access read{}, write{.write = true}, instr{.instr = true};
  CHECK(!c.override_access(read).priv);
  c.PRIVCFG = arch::kPrivcfgPriv;
  CHECK(c.override_access(read).priv);
  c.PRIVCFG = 0b01;  // Reserved, behaves as "use incoming"
  CHECK(!c.override_access(read).priv);
  CHECK(c.override_access(Access{.priv = true}).priv);
  c.PRIVCFG = arch::kPrivcfgUnpriv;
  CHECK(!c.override_access(Access{.priv = true}).priv);
  c.INSTCFG = arch::kInstcfgInstr;
  CHECK(c.override_access(read).instr);
  CHECK(!c.override_access(write).instr);  // writes are always Data (13.1.2)
  c.INSTCFG = arch::kInstcfgData;
  CHECK(!c.override_access(instr).instr);
}

TEST_CASE("the lookup is pure: same memory, same answer; lookup_cd on a decoded STE agrees") {
  TwoLevelCd e(arch::kS1Fmt4KL2, arch::kS1dssTerminate, /*nested=*/true);
  e.put_cd(77, e.ipa);
  e.map_ipa(e.cd_addr(77));
  const ConfigLookup lk(e.config);
  const StreamRequest req{.sid = 3, .ssv = true, .ssid = 77};
  const ConfigResult a = lk.lookup(*e.mem, e.regs, req);
  const ConfigResult b = lk.lookup(*e.mem, e.regs, req);
  require_ok(a);
  require_ok(b);
  CHECK(a.cd->cd_pa == b.cd->cd_pa);
  CHECK(a.cd->ASID == b.cd->ASID);
  const ConfigResult s = lk.lookup_ste(*e.mem, e.regs, req);
  require_ok(s);
  CHECK(!s.cd.has_value());
  const ConfigResult c = lk.lookup_cd(*e.mem, *s.ste, req);
  require_ok(c);
  CHECK(c.cd->cd_pa == a.cd->cd_pa);
  CHECK(c.stats.reads == 8);  // the CD only
  // The pure decoders on structures read by the test.
  STE ste;
  for (unsigned i = 0; i < 8; ++i) ste.set_word(i, e.t.get(e.strtab + 3 * 64 + 8 * i));
  const auto d = lk.decode_ste(ste, false);
  CHECK(d.error == LookupError::none);
  CHECK(d.cfg.mode == StreamMode::nested);
  CHECK(lk.decode_cd(CD{}, d.cfg).error == LookupError::cd_invalid);
}

TEST_CASE("StreamTableRegs::read takes the stream table registers from the model") {
  auto regs = Registers::create(Config{});
  REQUIRE(regs.ok());
  (*regs)->write(arch::STRTAB_BASE{}.set<arch::STRTAB_BASE::ADDR>(kPool));
  (*regs)->write(arch::STRTAB_BASE_CFG{}.set<arch::STRTAB_BASE_CFG::LOG2SIZE>(5));
  (*regs)->write(arch::CR2{}.set<arch::CR2::RECINVSID>(1).set<arch::CR2::E2H>(1));
  const StreamTableRegs r = StreamTableRegs::read(**regs);
  CHECK(r.STRTAB_BASE.get<arch::STRTAB_BASE::ADDR>() == kPool);
  CHECK(r.STRTAB_BASE_CFG.get<arch::STRTAB_BASE_CFG::LOG2SIZE>() == 5);
  CHECK(r.CR2.get<arch::CR2::RECINVSID>() == 1);
  CHECK(r.CR2.get<arch::CR2::E2H>() == 1);
}

TEST_CASE("every lookup error names its event") {
  for (unsigned i = 1; i <= static_cast<unsigned>(LookupError::s1_illegal); ++i) {
    const auto e = static_cast<LookupError>(i);
    CAPTURE(name(e));
    CHECK(std::string(name(e)) != "?");
    if (e != LookupError::cd_s2_fault)
      CHECK(arch::event_name(static_cast<uint8_t>(event_for(e))) != nullptr);
  }
}

}  // namespace
}  // namespace strata::sim::smmuv3
