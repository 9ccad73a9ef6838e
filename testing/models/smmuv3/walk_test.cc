// SPDX-License-Identifier: MIT
// The SMMUv3 model's walker against tables built by hand. Expected geometry, permissions and
// fault fields are typed in from the specifications (Arm ARM D8; IHI 0070 3.4, 3.13, 5.2, 5.4,
// 7.3), not derived from the walker.
#include "testing/models/smmuv3/walk.h"

#include <atomic>
#include <barrier>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/core.h>

#include "arch/lpae/pte.h"
#include "testing/models/platform/phys_mem.h"
#include "testing/models/smmuv3/test_tables.h"

namespace strata::sim::smmuv3 {
namespace {

using test::alloc_root;
using test::kS1Rw;
using test::kS2Rw;
using test::leaf_desc;
using test::map;
using test::table_desc;
using test::Tables;
using test::Tree;

constexpr uint64_t kRam = 0x8000'0000;
constexpr uint64_t kRamSize = 64 << 20;
constexpr uint64_t kHighRam = uint64_t{1} << 50;  // for 52-bit table addresses
constexpr uint64_t kHighRamSize = 4 << 20;
constexpr uint64_t kNoRam = 0x1'0000'0000;  // inside every output size, outside RAM

// Descriptor bits, typed in from the Arm ARM's descriptor layouts.
constexpr uint64_t kAF = uint64_t{1} << 10;
constexpr uint64_t kNG = uint64_t{1} << 11;
constexpr uint64_t kAP1 = uint64_t{1} << 6;  // AP[1]: unprivileged access
constexpr uint64_t kAP2 = uint64_t{1} << 7;  // AP[2]: read-only
constexpr uint64_t kDBM = uint64_t{1} << 51;
constexpr uint64_t kPXN = uint64_t{1} << 53;
constexpr uint64_t kUXN = uint64_t{1} << 54;
constexpr uint64_t kS2R = uint64_t{1} << 6;
constexpr uint64_t kS2W = uint64_t{1} << 7;
constexpr uint64_t kPXNTable = uint64_t{1} << 59;
constexpr uint64_t kUXNTable = uint64_t{1} << 60;
constexpr uint64_t kAPTable0 = uint64_t{1} << 61;  // no unprivileged access below
constexpr uint64_t kAPTable1 = uint64_t{1} << 62;  // read-only below
constexpr uint64_t kSwBit = uint64_t{1} << 56;     // a software-defined (IGNORED) bit

constexpr Access kRead{};
constexpr Access kWrite{.write = true};
constexpr Access kPrivRead{.priv = true};
constexpr Access kPrivWrite{.write = true, .priv = true};
constexpr Access kExec{.instr = true};
constexpr Access kPrivExec{.instr = true, .priv = true};

uint8_t tg0_of(unsigned g) { return g == 12 ? 0 : g == 16 ? 1 : 2; }

Caps full_caps(unsigned oas = 48) { return Caps{.oas_bits = oas, .httu = 2}; }

S1Cfg cd_for(unsigned g, unsigned ias) {
  return S1Cfg{.T0SZ = static_cast<uint8_t>(64 - ias), .TG0 = tg0_of(g), .IPS = 5};
}

S2Cfg ste_for(unsigned g, unsigned ias, unsigned sl0) {
  return S2Cfg{.S2T0SZ = static_cast<uint8_t>(64 - ias),
               .S2SL0 = static_cast<uint8_t>(sl0),
               .S2TG = tg0_of(g),
               .S2PS = 5};
}

std::unique_ptr<PhysMem> make_mem() {
  auto mem = PhysMem::create({.ram = {{kRam, kRamSize}, {kHighRam, kHighRamSize}}});
  REQUIRE(mem.ok());
  return mem.release_value();
}

Tree tree_of(const TableGeometry& g) { return Tree{g.ttb, g.granule, g.start_level, g.start_bits}; }

// Decodes `cd` once for its geometry, allocates the TTB0 root it needs, decodes again with it.
struct S1Setup {
  Stage1 s1;
  Tree tree;
};
S1Setup make_s1(Tables& t, S1Cfg cd, const Caps& caps) {
  Decoded<Stage1> d = decode_s1(cd, caps);
  REQUIRE_MESSAGE(d.ok(), name(d.error));
  cd.TTB0 = alloc_root(t, d.stage.tt[0].start_bits);
  d = decode_s1(cd, caps);
  REQUIRE_MESSAGE(d.ok(), name(d.error));
  return {d.stage, tree_of(d.stage.tt[0])};
}

struct S2Setup {
  Stage2 s2;
  Tree tree;
};
S2Setup make_s2(Tables& t, S2Cfg ste, const Caps& caps) {
  Decoded<Stage2> d = decode_s2(ste, caps);
  REQUIRE_MESSAGE(d.ok(), name(d.error));
  ste.S2TTB = alloc_root(t, d.stage.tt.start_bits);
  d = decode_s2(ste, caps);
  REQUIRE_MESSAGE(d.ok(), name(d.error));
  return {d.stage, tree_of(d.stage.tt)};
}

// Every field of a fault record.
struct Expect {
  FaultType type;
  unsigned stage;
  FaultClass cls;
  int level;
  uint64_t input_addr;
  uint64_t ipa = 0;
  uint64_t fetch_addr = 0;
  Access access = kRead;
  bool ttrnw = true;
};
void check_fault(const Walk& w, const Expect& e) {
  INFO(fmt::format("{}", w.fault));
  REQUIRE(!w.ok());
  const Fault& f = w.fault;
  CHECK(f.type == e.type);
  CHECK(f.stage == e.stage);
  CHECK(f.cls == e.cls);
  CHECK(f.level == e.level);
  CHECK(f.input_addr == e.input_addr);
  CHECK(f.ipa == e.ipa);
  CHECK(f.fetch_addr == e.fetch_addr);
  CHECK(f.RnW == !e.access.write);
  CHECK(f.InD == (e.access.instr && !e.access.write));
  CHECK(f.PnU == e.access.priv);
  if (e.cls == FaultClass::tt) CHECK(f.TTRnW == e.ttrnw);
}

// ---------------------------------------------------------------------------------------------
// Configuration: geometry and ILLEGAL combinations.

TEST_CASE("decode_s1: start level and start-table size per granule and T0SZ (Arm ARM D8)") {
  struct Row {
    unsigned g, ias, level, bits;
  };
  // Typed in from the Arm ARM's "translation table level at which the walk starts" tables.
  const Row rows[] = {
      {12, 48, 0, 9},  {12, 40, 0, 1}, {12, 39, 1, 9},  {12, 32, 1, 2},  {12, 30, 2, 9},
      {12, 25, 2, 4},  {14, 48, 0, 1}, {14, 47, 1, 11}, {14, 37, 1, 1},  {14, 36, 2, 11},
      {14, 25, 3, 11}, {16, 48, 1, 6}, {16, 43, 1, 1},  {16, 42, 2, 13}, {16, 30, 2, 1},
      {16, 29, 3, 13}, {16, 25, 3, 9},
  };
  for (const Row& r : rows) {
    CAPTURE(r.g);
    CAPTURE(r.ias);
    Decoded<Stage1> d = decode_s1(cd_for(r.g, r.ias), full_caps());
    REQUIRE(d.ok());
    const TableGeometry& t = d.stage.tt[0];
    CHECK(t.granule == r.g);
    CHECK(t.ia_bits == r.ias);
    CHECK(t.start_level == r.level);
    CHECK(t.start_bits == r.bits);
    CHECK(!t.disabled);
    CHECK(d.stage.tt[1].disabled);  // EPD1 defaults to 1
  }
  // 52-bit VA with the 64K granule (IDR5.VAX): level 1 with 1024 entries.
  Caps vax = full_caps(52);
  vax.vax = true;
  Decoded<Stage1> d = decode_s1(cd_for(16, 52), vax);
  REQUIRE(d.ok());
  CHECK(d.stage.tt[0].start_level == 1);
  CHECK(d.stage.tt[0].start_bits == 10);
  // Small translation tables: T0SZ 48 (4K/16K) and 47 (64K) start at level 3.
  Caps stt = full_caps();
  stt.stt = true;
  CHECK(decode_s1(cd_for(12, 16), stt).stage.tt[0].start_bits == 4);
  CHECK(decode_s1(cd_for(14, 16), stt).stage.tt[0].start_bits == 2);
  CHECK(decode_s1(cd_for(16, 17), stt).stage.tt[0].start_bits == 1);
}

TEST_CASE("decode_s1: TTB low bits below the start table's alignment are treated as zero") {
  S1Cfg cd = cd_for(12, 40);  // level 0 with 2 entries: a 16-byte table
  cd.TTB0 = 0x8000'1238;
  CHECK(decode_s1(cd, full_caps()).stage.tt[0].ttb == 0x8000'1230);
  cd = cd_for(12, 48);  // 512 entries: 4 KiB
  cd.TTB0 = 0x8000'1ff0;
  CHECK(decode_s1(cd, full_caps()).stage.tt[0].ttb == 0x8000'1000);
  cd = cd_for(16, 43);  // 2 entries, but a 52-bit output size imposes 64-byte alignment
  cd.IPS = 6;
  cd.TTB0 = 0x8000'1230;
  CHECK(decode_s1(cd, full_caps(52)).stage.tt[0].ttb == 0x8000'1200);
}

TEST_CASE("decode_s1: ILLEGAL CDs (C_BAD_CD) and the fields EPDx makes IGNORED") {
  const Caps caps = full_caps();
  auto err = [&](const S1Cfg& cd, const Caps& c) { return decode_s1(cd, c).error; };
  S1Cfg cd = cd_for(12, 48);
  CHECK(err(cd, caps) == CfgError::none);

  SUBCASE("table format and endianness") {
    cd.AA64 = false;
    CHECK(err(cd, caps) == CfgError::aa32_tables);
    cd.AA64 = true;
    cd.ENDI = true;
    CHECK(err(cd, caps) == CfgError::big_endian);
    cd.EPD0 = true;  // with both halves disabled ENDI is IGNORED
    CHECK(err(cd, caps) == CfgError::none);
  }
  SUBCASE("granules") {
    cd.TG0 = 3;
    CHECK(err(cd, caps) == CfgError::granule_reserved);
    cd.EPD0 = true;  // TG0 IGNORED
    CHECK(err(cd, caps) == CfgError::none);
    cd = cd_for(14, 48);
    Caps no16 = caps;
    no16.gran16k = false;
    CHECK(err(cd, no16) == CfgError::granule_unsupported);
    cd = cd_for(12, 48);
    cd.EPD1 = false;
    cd.T1SZ = 16;
    cd.TG1 = 0;  // TG1's reserved encoding is 0
    CHECK(err(cd, caps) == CfgError::granule_reserved);
    cd.TG1 = 2;  // 4K in TG1's encoding
    CHECK(err(cd, caps) == CfgError::none);
    CHECK(decode_s1(cd, caps).stage.tt[1].granule == 12);
    cd.TG1 = 3;
    CHECK(decode_s1(cd, caps).stage.tt[1].granule == 16);
  }
  SUBCASE("T0SZ range: 16..39, 48/47 with STT, 12 with VAX and 64K") {
    cd.T0SZ = 15;
    CHECK(err(cd, caps) == CfgError::tsz_out_of_range);
    cd.T0SZ = 39;
    CHECK(err(cd, caps) == CfgError::none);
    cd.T0SZ = 40;
    CHECK(err(cd, caps) == CfgError::tsz_out_of_range);
    Caps stt = caps;
    stt.stt = true;
    cd.T0SZ = 48;
    CHECK(err(cd, stt) == CfgError::none);
    cd.T0SZ = 49;
    CHECK(err(cd, stt) == CfgError::tsz_out_of_range);
    cd = cd_for(16, 17);
    CHECK(err(cd, stt) == CfgError::none);
    cd.T0SZ = 48;
    CHECK(err(cd, stt) == CfgError::tsz_out_of_range);
    Caps vax = full_caps(52);
    vax.vax = true;
    cd = cd_for(16, 52);
    CHECK(err(cd, vax) == CfgError::none);
    CHECK(err(cd, full_caps(52)) == CfgError::tsz_out_of_range);  // no VAX
    cd.T0SZ = 11;
    CHECK(err(cd, vax) == CfgError::tsz_out_of_range);
    cd = cd_for(12, 52);  // 52-bit VA needs the 64K granule (no DS)
    CHECK(err(cd, vax) == CfgError::tsz_out_of_range);
    cd.EPD0 = true;  // T0SZ IGNORED
    CHECK(err(cd, vax) == CfgError::none);
  }
  SUBCASE("TTB0 beyond the effective IPS, or beyond 48 bits with 4K/16K") {
    cd.IPS = 2;  // 40 bits
    cd.TTB0 = (uint64_t{1} << 40) - 0x1000;
    CHECK(err(cd, caps) == CfgError::none);
    cd.TTB0 = uint64_t{1} << 40;
    CHECK(err(cd, caps) == CfgError::ttb_out_of_range);
    cd.IPS = 6;  // 52 bits, capped to the OAS
    CHECK(err(cd, full_caps(40)) == CfgError::ttb_out_of_range);
    CHECK(decode_s1(cd, full_caps(44)).stage.ps_bits == 44);
    cd.TTB0 = uint64_t{1} << 48;
    CHECK(err(cd, full_caps(52)) == CfgError::ttb_out_of_range);  // 4K: 48-bit TTB only
    cd.TG0 = 1;                                                   // 64K
    CHECK(err(cd, full_caps(52)) == CfgError::none);
    cd.EPD0 = true;  // TTB0 IGNORED
    cd.TTB0 = ~uint64_t{0};
    CHECK(err(cd, caps) == CfgError::none);
  }
  SUBCASE("HA and HD against IDR0.HTTU; HD without HA is reserved and behaves as off") {
    Caps none = caps, af = caps;
    none.httu = 0;
    af.httu = 1;
    cd.HA = true;
    CHECK(err(cd, none) == CfgError::ha_unsupported);
    CHECK(err(cd, af) == CfgError::none);
    cd.HD = true;
    CHECK(err(cd, af) == CfgError::hd_unsupported);
    CHECK(decode_s1(cd, caps).stage.hd);
    cd.HA = false;
    Decoded<Stage1> d = decode_s1(cd, caps);
    CHECK(d.ok());
    CHECK(!d.stage.ha);
    CHECK(!d.stage.hd);
  }
  SUBCASE("HADx and E0PDx only count where IDR3 implements them") {
    cd.HAD0 = cd.E0PD0 = true;
    CHECK(!decode_s1(cd, caps).stage.tt[0].had);
    CHECK(!decode_s1(cd, caps).stage.tt[0].e0pd);
    Caps both = caps;
    both.had = both.e0pd = true;
    CHECK(decode_s1(cd, both).stage.tt[0].had);
    CHECK(decode_s1(cd, both).stage.tt[0].e0pd);
  }
}

TEST_CASE("decode_s2: S2SL0 start levels, validity and consistency with S2T0SZ (VTCR_EL2.SL0)") {
  struct Row {
    unsigned g, sl0, ias, oas;
    bool stt;
    int level;  // -1: sl0_invalid, -2: sl0_inconsistent
    unsigned bits;
  };
  const Row rows[] = {
      // 4K: SL0 0/1/2 = level 2/1/0 (level 0 needs a 44-bit PA), 3 = level 3 with STT.
      {12, 0, 34, 48, false, 2, 13},
      {12, 0, 35, 48, false, -2, 0},  // 14 bits at level 2: more than 16 tables
      {12, 1, 31, 48, false, 1, 1},
      {12, 1, 30, 48, false, -2, 0},  // nothing left for level 1 to resolve
      {12, 1, 43, 48, false, 1, 13},
      {12, 1, 44, 48, false, -2, 0},
      {12, 2, 48, 48, false, 0, 9},
      {12, 2, 40, 48, false, 0, 1},
      {12, 2, 39, 48, false, -2, 0},
      {12, 2, 42, 42, false, -1, 0},  // level 0 with a 42-bit PA
      {12, 3, 25, 48, false, -1, 0},  // level 3 without STT
      {12, 3, 24, 48, true, 3, 12},
      {12, 3, 16, 48, true, 3, 4},
      // 16K: SL0 0/1/2 = level 3/2/1 (level 1 needs a 42-bit PA); 3 needs DS.
      {14, 0, 25, 48, false, 3, 11},
      {14, 0, 29, 48, false, 3, 15},
      {14, 1, 36, 48, false, 2, 11},
      {14, 1, 40, 48, false, 2, 15},
      {14, 1, 41, 48, false, -2, 0},
      {14, 2, 47, 48, false, 1, 11},
      {14, 2, 40, 40, false, -1, 0},
      {14, 3, 48, 48, false, -1, 0},
      // 64K: SL0 0/1/2 = level 3/2/1 (level 1 needs a 44-bit PA); 3 is reserved.
      {16, 0, 29, 48, false, 3, 13},
      {16, 0, 33, 48, false, 3, 17},
      {16, 0, 34, 48, false, -2, 0},
      {16, 1, 42, 48, false, 2, 13},
      {16, 1, 46, 48, false, 2, 17},
      {16, 2, 48, 48, false, 1, 6},
      {16, 2, 42, 42, false, -1, 0},
      {16, 3, 48, 48, false, -1, 0},
  };
  for (const Row& r : rows) {
    CAPTURE(r.g);
    CAPTURE(r.sl0);
    CAPTURE(r.ias);
    Caps caps = full_caps(r.oas);
    caps.stt = r.stt;
    Decoded<Stage2> d = decode_s2(ste_for(r.g, r.ias, r.sl0), caps);
    if (r.level == -1) {
      CHECK(d.error == CfgError::sl0_invalid);
    } else if (r.level == -2) {
      CHECK(d.error == CfgError::sl0_inconsistent);
    } else {
      REQUIRE_MESSAGE(d.ok(), name(d.error));
      CHECK(d.stage.tt.start_level == r.level);
      CHECK(d.stage.tt.start_bits == r.bits);
    }
  }
}

TEST_CASE("decode_s2: ILLEGAL STEs (C_BAD_STE)") {
  const Caps caps = full_caps();
  auto err = [&](const S2Cfg& ste, const Caps& c) { return decode_s2(ste, c).error; };
  S2Cfg ste = ste_for(12, 48, 2);
  CHECK(err(ste, caps) == CfgError::none);
  SUBCASE("format, endianness, granule") {
    ste.S2AA64 = false;
    CHECK(err(ste, caps) == CfgError::aa32_tables);
    ste.S2AA64 = true;
    ste.S2ENDI = true;
    CHECK(err(ste, caps) == CfgError::big_endian);
    ste.S2ENDI = false;
    ste.S2TG = 3;
    CHECK(err(ste, caps) == CfgError::granule_reserved);
    ste = ste_for(16, 48, 2);
    Caps no64 = caps;
    no64.gran64k = false;
    CHECK(err(ste, no64) == CfgError::granule_unsupported);
  }
  SUBCASE("S2T0SZ: at least MAX(16, 64 - IAS), 12 for 64K; at most 39") {
    Caps oas40 = full_caps(40);
    CHECK(err(ste_for(12, 40, 1), oas40) == CfgError::none);
    CHECK(err(ste_for(12, 41, 1), oas40) == CfgError::tsz_out_of_range);  // beyond the IAS
    CHECK(err(ste_for(12, 49, 2), full_caps(52)) == CfgError::tsz_out_of_range);
    CHECK(err(ste_for(16, 49, 2), full_caps(52)) == CfgError::none);  // 64K: down to 12
    CHECK(err(ste_for(12, 25, 0), caps) == CfgError::none);
    CHECK(err(ste_for(12, 24, 0), caps) == CfgError::tsz_out_of_range);  // above 39
  }
  SUBCASE("S2TTB beyond the effective S2PS, or beyond 48 bits with 4K/16K") {
    ste.S2PS = 2;  // 40 bits
    ste.S2T0SZ = 24;
    ste.S2SL0 = 1;
    ste.S2TTB = (uint64_t{1} << 40) - 4096;
    CHECK(err(ste, caps) == CfgError::none);
    ste.S2TTB = uint64_t{1} << 40;
    CHECK(err(ste, caps) == CfgError::ttb_out_of_range);
    ste.S2PS = 6;  // 52 bits, capped to the OAS
    CHECK(err(ste, caps) == CfgError::none);
    CHECK(err(ste, full_caps(40)) == CfgError::ttb_out_of_range);
    CHECK(decode_s2(ste, full_caps(44)).stage.ps_bits == 44);
    ste.S2TTB = uint64_t{1} << 48;
    CHECK(err(ste, caps) == CfgError::ttb_out_of_range);
    CHECK(err(ste, full_caps(52)) == CfgError::ttb_out_of_range);  // 4K: 48-bit TTB only
    ste.S2TG = 1;                                                  // 64K
    CHECK(err(ste, full_caps(52)) == CfgError::none);
  }
  SUBCASE("S2HA and S2HD against IDR0.HTTU") {
    Caps none = caps, af = caps;
    none.httu = 0;
    af.httu = 1;
    ste.S2HA = true;
    CHECK(err(ste, none) == CfgError::ha_unsupported);
    CHECK(err(ste, af) == CfgError::none);
    ste.S2HD = true;
    CHECK(err(ste, af) == CfgError::hd_unsupported);
    ste.S2HA = false;
    CHECK(!decode_s2(ste, caps).stage.hd);
  }
}

// ---------------------------------------------------------------------------------------------
// Translations.

// The leaf levels a granule allows (Arm ARM, without FEAT_LPA2), with the OAS they need.
struct LeafCase {
  unsigned g, level, oas;
};
const LeafCase kLeaves[] = {
    {12, 1, 48}, {12, 2, 48}, {12, 3, 48}, {14, 2, 48},
    {14, 3, 48}, {16, 1, 52}, {16, 2, 48}, {16, 3, 48},
};
// A block where the granule cannot hold one: a translation fault at that level.
const LeafCase kBadBlocks[] = {{12, 0, 48}, {14, 0, 48}, {14, 1, 48}, {16, 1, 48}};

// An output address with bits set everywhere below 48, aligned to the leaf.
uint64_t oa_for(unsigned size_log2) {
  return 0x0000'8642'1357'9bdfull & ~((uint64_t{1} << size_log2) - 1);
}

TEST_CASE("stage 1: a leaf at every level of every granule translates bit-exact") {
  const uint64_t va = 0x0000'7abc'def1'2345;
  for (const LeafCase& c : kLeaves) {
    CAPTURE(c.g);
    CAPTURE(c.level);
    auto mem = make_mem();
    Tables t(*mem, kRam, kRamSize);
    auto [s1, tree] = make_s1(t, cd_for(c.g, 48), full_caps(c.oas));
    const unsigned size_log2 = lpae::level_shift(c.g, c.level);
    const uint64_t oa = oa_for(size_log2);
    map(t, tree, va, c.level, leaf_desc(oa, c.g, c.level, kS1Rw | kNG));
    Walk w = walk_s1(*mem, s1, va, kRead);
    REQUIRE_MESSAGE(w.ok(), fmt::format("{}", w.fault));
    CHECK(w.tr.oa == (oa | (va & ((uint64_t{1} << size_log2) - 1))));
    CHECK(w.tr.ipa == w.tr.oa);
    CHECK(w.tr.has_s1);
    CHECK(!w.tr.has_s2);
    CHECK(w.tr.s1_level == c.level);
    CHECK(w.tr.s1_size_log2 == size_log2);
    CHECK(w.tr.size_log2 == size_log2);
    CHECK(w.tr.AttrIndx == lpae::kAttrIdxWb);
    CHECK(w.tr.SH == lpae::kShInner);
    CHECK(w.tr.nG);
    CHECK(w.tr.s1_perm.AP == lpae::kApRwUnpriv);
    CHECK(w.stats.s1_reads == c.level - tree.start_level + 1);
    CHECK(w.stats.s2_reads == 0);
    CHECK(w.stats.updates == 0);
  }
}

TEST_CASE(
    "stage 1: blocks where the granule has none, and 0b01 at level 3, are translation faults") {
  const uint64_t va = 0x0000'7abc'def1'2345;
  for (const LeafCase& c : kBadBlocks) {
    CAPTURE(c.g);
    CAPTURE(c.level);
    auto mem = make_mem();
    Tables t(*mem, kRam, kRamSize);
    auto [s1, tree] = make_s1(t, cd_for(c.g, 48), full_caps(c.oas));
    map(t, tree, va, c.level, leaf_desc(0, c.g, c.level, kS1Rw));
    check_fault(walk_s1(*mem, s1, va, kRead),
                {FaultType::translation, 1, FaultClass::in, static_cast<int>(c.level), va});
  }
  auto mem = make_mem();
  Tables t(*mem, kRam, kRamSize);
  auto [s1, tree] = make_s1(t, cd_for(12, 48), full_caps());
  map(t, tree, va, 3, lpae::oa_bits(0x4000'0000, 12) | lpae::kTypeBlock | kS1Rw);
  check_fault(walk_s1(*mem, s1, va, kRead), {FaultType::translation, 1, FaultClass::in, 3, va});
}

TEST_CASE("stage 2: a leaf at every level of every granule translates bit-exact") {
  for (const LeafCase& c : kLeaves) {
    CAPTURE(c.g);
    CAPTURE(c.level);
    // Start at level 0 (4K) or 1 (16K, 64K): every leaf level is below the start.
    const unsigned ias = c.g == 14 ? 47 : 48;
    const uint64_t ipa = 0x0000'5abc'def1'2345 & ((uint64_t{1} << ias) - 1);
    auto mem = make_mem();
    Tables t(*mem, kRam, kRamSize);
    auto [s2, tree] = make_s2(t, ste_for(c.g, ias, 2), full_caps(c.oas));
    const unsigned size_log2 = lpae::level_shift(c.g, c.level);
    const uint64_t oa = oa_for(size_log2);
    map(t, tree, ipa, c.level, leaf_desc(oa, c.g, c.level, kS2Rw));
    Walk w = walk_s2(*mem, s2, ipa, kWrite);
    REQUIRE_MESSAGE(w.ok(), fmt::format("{}", w.fault));
    CHECK(w.tr.oa == (oa | (ipa & ((uint64_t{1} << size_log2) - 1))));
    CHECK(w.tr.ipa == ipa);
    CHECK(!w.tr.has_s1);
    CHECK(w.tr.has_s2);
    CHECK(w.tr.s2_level == c.level);
    CHECK(w.tr.size_log2 == size_log2);
    CHECK(w.tr.MemAttr == lpae::kMemAttrNormalWb);
    CHECK(w.tr.S2SH == lpae::kShInner);
    CHECK(w.tr.s2_perm.S2AP == 3);
    CHECK(w.stats.s2_reads == c.level - tree.start_level + 1);
  }
  for (const LeafCase& c : kBadBlocks) {
    if (c.g == 14 && c.level == 0) continue;  // 16K stage 2 cannot start at level 0
    CAPTURE(c.g);
    CAPTURE(c.level);
    const unsigned ias = c.g == 14 ? 47 : 48;
    const uint64_t ipa = 0x0000'5abc'def1'2345 & ((uint64_t{1} << ias) - 1);
    auto mem = make_mem();
    Tables t(*mem, kRam, kRamSize);
    auto [s2, tree] = make_s2(t, ste_for(c.g, ias, 2), full_caps(c.oas));
    map(t, tree, ipa, c.level, leaf_desc(0, c.g, c.level, kS2Rw));
    check_fault(walk_s2(*mem, s2, ipa, kRead),
                {FaultType::translation, 2, FaultClass::in, static_cast<int>(c.level), ipa, ipa});
  }
}

TEST_CASE("stage 2: sixteen concatenated start tables, the last one reached by the top IPA bits") {
  struct Row {
    unsigned g, ias, sl0, level;
  };
  const Row rows[] = {{12, 43, 1, 1}, {14, 40, 1, 2}, {16, 46, 1, 2}};
  for (const Row& r : rows) {
    CAPTURE(r.g);
    auto mem = make_mem();
    Tables t(*mem, kRam, kRamSize);
    auto [s2, tree] = make_s2(t, ste_for(r.g, r.ias, r.sl0), full_caps());
    REQUIRE(tree.start_level == r.level);
    REQUIRE(tree.start_bits == r.g - 3 + 4);
    const uint64_t ipa = (uint64_t{0xf} << (r.ias - 4)) | 0x2468'ace0 | 0x135;
    map(t, tree, ipa, 3, leaf_desc(0x4321'0000'0000, r.g, 3, kS2Rw));
    // The start-level index is all the IPA bits above the start level's shift; its top four
    // bits pick the table, here the sixteenth, whose descriptor the walk must follow.
    const uint64_t index = ipa >> lpae::level_shift(r.g, r.level);
    CHECK((index >> (r.g - 3)) == 15);
    CHECK((t.get(tree.root + index * 8) & lpae::kTypeMask) == lpae::kTypeTable);
    Walk w = walk_s2(*mem, s2, ipa, kRead);
    REQUIRE_MESSAGE(w.ok(), fmt::format("{}", w.fault));
    CHECK(w.tr.oa == (0x4321'0000'0000 | (ipa & ((uint64_t{1} << r.g) - 1))));
    // The same IPA without its top bit reaches the eighth table, where nothing is mapped.
    const uint64_t low = ipa & ~(uint64_t{1} << (r.ias - 1));
    check_fault(walk_s2(*mem, s2, low, kRead),
                {FaultType::translation, 2, FaultClass::in, static_cast<int>(r.level), low, low});
  }
}

TEST_CASE("stage 2: every valid S2SL0 of every granule walks from its level") {
  struct Row {
    unsigned g, sl0, ias, level;
  };
  const Row rows[] = {
      {12, 0, 34, 2}, {12, 1, 43, 1}, {12, 2, 48, 0}, {12, 3, 24, 3}, {14, 0, 29, 3},
      {14, 1, 40, 2}, {14, 2, 47, 1}, {16, 0, 33, 3}, {16, 1, 46, 2}, {16, 2, 48, 1},
  };
  for (const Row& r : rows) {
    CAPTURE(r.g);
    CAPTURE(r.sl0);
    Caps caps = full_caps();
    caps.stt = true;
    auto mem = make_mem();
    Tables t(*mem, kRam, kRamSize);
    auto [s2, tree] = make_s2(t, ste_for(r.g, r.ias, r.sl0), caps);
    CHECK(tree.start_level == r.level);
    const uint64_t ipa = ((uint64_t{1} << r.ias) - 1) & 0x0000'fedc'ba98'7654;
    map(t, tree, ipa, 3, leaf_desc(0x7777'0000'0000, r.g, 3, kS2Rw));
    Walk w = walk_s2(*mem, s2, ipa, kRead);
    REQUIRE_MESSAGE(w.ok(), fmt::format("{}", w.fault));
    CHECK(w.tr.oa == (0x7777'0000'0000 | (ipa & ((uint64_t{1} << r.g) - 1))));
    CHECK(w.stats.s2_reads == 4 - r.level);
  }
}

TEST_CASE("52-bit output and input with the 64K granule (OAS = 52, VAX)") {
  Caps caps = full_caps(52);
  caps.vax = true;
  auto mem = make_mem();
  Tables t(*mem, kHighRam, kHighRamSize);  // tables above 2^48: TTB and NLTA use OA[51:48]
  S1Cfg cd = cd_for(16, 52);
  cd.IPS = 6;
  auto [s1, tree] = make_s1(t, cd, caps);
  CHECK(tree.root >= kHighRam);
  CHECK(tree.start_level == 1);
  const uint64_t va = 0x000f'edcb'a987'6543;
  map(t, tree, va, 3, leaf_desc(0x000f'1234'5678'0000, 16, 3, kS1Rw));
  Walk w = walk_s1(*mem, s1, va, kRead);
  REQUIRE_MESSAGE(w.ok(), fmt::format("{}", w.fault));
  CHECK(w.tr.oa == 0x000f'1234'5678'6543);
  // A 4 TiB level-1 block.
  const uint64_t va2 = 0x0003'0123'4567'89ab;
  map(t, tree, va2, 1, leaf_desc(0x000a'c000'0000'0000, 16, 1, kS1Rw));
  w = walk_s1(*mem, s1, va2, kRead);
  REQUIRE(w.ok());
  CHECK(w.tr.oa == (0x000a'c000'0000'0000 | (va2 & ((uint64_t{1} << 42) - 1))));
  CHECK(w.tr.size_log2 == 42);
  // With a 48-bit IPS the same leaf's OA[51:48] (descriptor bits [15:12]) is an address size
  // fault, and so is a table address above 48 bits.
  Tables low(*mem, kRam, kRamSize);
  const uint64_t root = alloc_root(low, 10);
  cd.IPS = 5;
  cd.TTB0 = root;
  Decoded<Stage1> d48 = decode_s1(cd, caps);
  REQUIRE(d48.ok());
  const Stage1 s48 = d48.stage;
  const Tree low_tree{root, 16, 1, 10};
  map(low, low_tree, va, 3, leaf_desc(0x000f'1234'5678'0000, 16, 3, kS1Rw));
  check_fault(walk_s1(*mem, s48, va, kRead), {FaultType::addr_size, 1, FaultClass::in, 3, va});
  low.put(root + ((va >> 42) & 1023) * 8, table_desc(kHighRam, 16));
  check_fault(walk_s1(*mem, s48, va, kRead), {FaultType::addr_size, 1, FaultClass::in, 1, va});
}

// ---------------------------------------------------------------------------------------------
// Faults, field by field.

TEST_CASE("stage 1 faults: every type at its level, with every record field") {
  auto mem = make_mem();
  Tables t(*mem, kRam, kRamSize);
  S1Cfg cd = cd_for(12, 48);
  cd.IPS = 2;  // 40-bit output
  auto [s1, tree] = make_s1(t, cd, full_caps());
  const uint64_t va = 0x0000'1234'5678'9abc;
  const Access acc{.priv = true};

  SUBCASE("translation: no descriptor at each level") {
    check_fault(walk_s1(*mem, s1, va, acc),
                {FaultType::translation, 1, FaultClass::in, 0, va, 0, 0, acc});
    for (unsigned level = 1; level <= 3; ++level) {
      CAPTURE(level);
      // Build the path down to `level`, then take away what is there.
      const uint64_t slot = map(t, tree, va, level, 0);
      CHECK(t.get(slot) == 0);
      check_fault(walk_s1(*mem, s1, va, acc), {FaultType::translation, 1, FaultClass::in,
                                               static_cast<int>(level), va, 0, 0, acc});
    }
  }
  SUBCASE("addr_size: a leaf or a next-level table beyond the 40-bit IPS") {
    map(t, tree, va, 3, leaf_desc(uint64_t{1} << 40, 12, 3, kS1Rw));
    check_fault(walk_s1(*mem, s1, va, acc),
                {FaultType::addr_size, 1, FaultClass::in, 3, va, 0, 0, acc});
    map(t, tree, va, 3, leaf_desc((uint64_t{1} << 40) - 4096, 12, 3, kS1Rw));
    CHECK(walk_s1(*mem, s1, va, acc).ok());
    map(t, tree, va, 1, table_desc(uint64_t{1} << 40, 12));
    check_fault(walk_s1(*mem, s1, va, acc),
                {FaultType::addr_size, 1, FaultClass::in, 1, va, 0, 0, acc});
  }
  SUBCASE("access: AF = 0") {
    map(t, tree, va, 2, leaf_desc(0x4000'0000, 12, 2, kS1Rw & ~kAF));
    check_fault(walk_s1(*mem, s1, va, acc),
                {FaultType::access, 1, FaultClass::in, 2, va, 0, 0, acc});
  }
  SUBCASE("permission: a write to a read-only page") {
    map(t, tree, va, 3, leaf_desc(0x4000'0000, 12, 3, kS1Rw | kAP2));
    check_fault(walk_s1(*mem, s1, va, kPrivWrite),
                {FaultType::permission, 1, FaultClass::in, 3, va, 0, 0, kPrivWrite});
  }
  SUBCASE("walk_eabt: a table pointer outside RAM; CLASS TT with the descriptor's PA") {
    map(t, tree, va, 2, table_desc(kNoRam, 12));
    const uint64_t fetch = kNoRam + ((va >> 12) & 511) * 8;
    check_fault(walk_s1(*mem, s1, va, acc),
                {FaultType::walk_eabt, 1, FaultClass::tt, 3, va, 0, fetch, acc});
  }
  SUBCASE("access attributes: a write marked instruction is recorded as data") {
    const Access odd{.write = true, .instr = true};
    check_fault(walk_s1(*mem, s1, va, odd),
                {FaultType::translation, 1, FaultClass::in, 0, va, 0, 0, odd});
    CHECK(!walk_s1(*mem, s1, va, odd).fault.InD);
  }
}

TEST_CASE("stage 1 input range: T0SZ edges, sign extension, TTB1, TBI, EPDx, E0PDx") {
  auto mem = make_mem();
  Tables t(*mem, kRam, kRamSize);
  Caps caps = full_caps();
  caps.e0pd = true;
  S1Cfg cd = cd_for(12, 39);
  cd.EPD1 = false;
  cd.T1SZ = 25;
  cd.TG1 = 2;  // 4K
  Decoded<Stage1> d = decode_s1(cd, caps);
  REQUIRE(d.ok());
  const uint64_t root0 = alloc_root(t, d.stage.tt[0].start_bits);
  const uint64_t root1 = alloc_root(t, d.stage.tt[1].start_bits);
  cd.TTB0 = root0;
  cd.TTB1 = root1;
  Stage1 s1 = decode_s1(cd, caps).stage;
  const Tree tree0{root0, 12, 1, 9}, tree1{root1, 12, 1, 9};
  const uint64_t top0 = (uint64_t{1} << 39) - 4096;  // last page of TTB0's 39-bit range
  const uint64_t low1 = ~((uint64_t{1} << 39) - 1);  // first page of TTB1's range
  map(t, tree0, top0, 3, leaf_desc(0x4000'0000, 12, 3, kS1Rw));
  map(t, tree0, 0, 3, leaf_desc(0x5000'0000, 12, 3, kS1Rw));
  map(t, tree1, low1, 3, leaf_desc(0x6000'0000, 12, 3, kS1Rw));

  CHECK(walk_s1(*mem, s1, top0 + 0xfff, kRead).tr.oa == 0x4000'0fff);
  check_fault(walk_s1(*mem, s1, top0 + 0x1000, kRead),
              {FaultType::translation, 1, FaultClass::in, 0, top0 + 0x1000});
  CHECK(walk_s1(*mem, s1, low1 + 0x10, kRead).tr.oa == 0x6000'0010);
  check_fault(walk_s1(*mem, s1, low1 - 1, kRead),  // bit 55 set, but not sign-extended
              {FaultType::translation, 1, FaultClass::in, 0, low1 - 1});
  const uint64_t tagged = 0xab00'0000'0000'0123;
  check_fault(walk_s1(*mem, s1, tagged, kRead),
              {FaultType::translation, 1, FaultClass::in, 0, tagged});
  cd.TBI0 = true;
  s1 = decode_s1(cd, caps).stage;
  Walk w = walk_s1(*mem, s1, tagged, kRead);
  REQUIRE(w.ok());
  CHECK(w.tr.oa == 0x5000'0123);
  cd.E0PD0 = true;
  s1 = decode_s1(cd, caps).stage;
  check_fault(walk_s1(*mem, s1, 0x123, kRead),
              {FaultType::translation, 1, FaultClass::in, 0, 0x123});
  CHECK(walk_s1(*mem, s1, 0x123, kPrivRead).ok());
  CHECK(walk_s1(*mem, s1, low1, kRead).ok());  // E0PD1 is clear
  cd.EPD1 = true;
  s1 = decode_s1(cd, caps).stage;
  check_fault(walk_s1(*mem, s1, low1, kRead), {FaultType::translation, 1, FaultClass::in, 0, low1});
  cd.EPD0 = true;
  s1 = decode_s1(cd, caps).stage;
  check_fault(walk_s1(*mem, s1, 0x123, kPrivRead),
              {FaultType::translation, 1, FaultClass::in, 0, 0x123, 0, 0, kPrivRead});
}

TEST_CASE("stage 2 faults: every type at its level, with every record field") {
  auto mem = make_mem();
  Tables t(*mem, kRam, kRamSize);
  S2Cfg ste = ste_for(12, 40, 1);  // 40-bit IPA from level 1 (2 concatenated tables)
  ste.S2PS = 2;                    // 40-bit output
  auto [s2, tree] = make_s2(t, ste, full_caps());
  const uint64_t ipa = 0x00ab'cdef'1234;

  SUBCASE("translation: outside S2T0SZ's range, and no descriptor at each level") {
    const uint64_t top = (uint64_t{1} << 40) - 1;
    map(t, tree, top, 3, leaf_desc(0x4000'0000, 12, 3, kS2Rw));
    CHECK(walk_s2(*mem, s2, top, kRead).tr.oa == 0x4000'0fff);
    check_fault(walk_s2(*mem, s2, top + 1, kRead),
                {FaultType::translation, 2, FaultClass::in, 0, top + 1, top + 1});
    check_fault(walk_s2(*mem, s2, ipa, kWrite),
                {FaultType::translation, 2, FaultClass::in, 1, ipa, ipa, 0, kWrite});
    for (unsigned level = 2; level <= 3; ++level) {
      map(t, tree, ipa, level, 0);
      check_fault(walk_s2(*mem, s2, ipa, kWrite), {FaultType::translation, 2, FaultClass::in,
                                                   static_cast<int>(level), ipa, ipa, 0, kWrite});
    }
  }
  SUBCASE("addr_size: a leaf or a table beyond the 40-bit S2PS") {
    map(t, tree, ipa, 2, leaf_desc(uint64_t{1} << 40, 12, 2, kS2Rw));
    check_fault(walk_s2(*mem, s2, ipa, kRead),
                {FaultType::addr_size, 2, FaultClass::in, 2, ipa, ipa});
    map(t, tree, ipa, 1, table_desc(uint64_t{3} << 40, 12));
    check_fault(walk_s2(*mem, s2, ipa, kRead),
                {FaultType::addr_size, 2, FaultClass::in, 1, ipa, ipa});
  }
  SUBCASE("access and permission") {
    map(t, tree, ipa, 3, leaf_desc(0x4000'0000, 12, 3, kS2Rw & ~kAF));
    check_fault(walk_s2(*mem, s2, ipa, kRead), {FaultType::access, 2, FaultClass::in, 3, ipa, ipa});
    map(t, tree, ipa, 3, leaf_desc(0x4000'0000, 12, 3, (kS2Rw & ~kS2W)));
    check_fault(walk_s2(*mem, s2, ipa, kPrivWrite),
                {FaultType::permission, 2, FaultClass::in, 3, ipa, ipa, 0, kPrivWrite});
  }
  SUBCASE("walk_eabt: S2TTB outside RAM, at the start level") {
    Stage2 bad = s2;
    bad.tt.ttb = kNoRam;
    const uint64_t fetch = kNoRam + ((ipa >> 30) & 1023) * 8;
    check_fault(walk_s2(*mem, bad, ipa, kRead),
                {FaultType::walk_eabt, 2, FaultClass::in, 1, ipa, ipa, fetch});
  }
  SUBCASE("64K with a 48-bit S2PS: descriptor bits [15:12] are OA[51:48], an addr_size fault") {
    auto [s64, t64] = make_s2(t, ste_for(16, 42, 1), full_caps(52));
    map(t, t64, ipa, 3, leaf_desc(0x1'2345'0000, 16, 3, kS2Rw) | (uint64_t{1} << 12));
    check_fault(walk_s2(*mem, s64, ipa, kRead),
                {FaultType::addr_size, 2, FaultClass::in, 3, ipa, ipa});
  }
  SUBCASE("stage 1 bypassed: an input above the IAS is a stage-1 addr_size fault, CLASS IN") {
    map(t, tree, ipa, 3, leaf_desc(0x4000'0000, 12, 3, kS2Rw));
    CHECK(walk_s1_bypass(*mem, s2, ipa, kRead, 48).tr.oa == 0x4000'0234);
    const uint64_t big = uint64_t{1} << 48;
    check_fault(walk_s1_bypass(*mem, s2, big, kRead, 48),
                {FaultType::addr_size, 1, FaultClass::in, 0, big});
    // Within the IAS but beyond S2T0SZ: stage 2's translation fault.
    const uint64_t mid = uint64_t{1} << 44;
    check_fault(walk_s1_bypass(*mem, s2, mid, kRead, 48),
                {FaultType::translation, 2, FaultClass::in, 0, mid, mid});
  }
}

// ---------------------------------------------------------------------------------------------
// Permissions.

TEST_CASE("stage 1 permission matrix: AP[2:1] x privilege x read/write/execute x UXN/PXN") {
  // Arm ARM D8, stage 1 data access permissions for a regime with EL0: {priv R, priv W,
  // unpriv R, unpriv W} per AP[2:1].
  const bool data[4][4] = {
      {true, true, false, false},   // 00
      {true, true, true, true},     // 01
      {true, false, false, false},  // 10
      {true, false, true, false},   // 11
  };
  auto mem = make_mem();
  Tables t(*mem, kRam, kRamSize);
  auto [s1, tree] = make_s1(t, cd_for(12, 48), full_caps());
  const uint64_t va = 0x0000'0040'0000'1000;
  for (unsigned ap = 0; ap < 4; ++ap) {
    for (unsigned xn = 0; xn < 4; ++xn) {
      const bool uxn = xn & 1, pxn = xn & 2;
      const uint64_t attrs =
          (kS1Rw & ~(kAP1 | kAP2)) | (uint64_t{ap} << 6) | (uxn ? kUXN : 0) | (pxn ? kPXN : 0);
      map(t, tree, va, 3, leaf_desc(0x4000'0000, 12, 3, attrs));
      for (unsigned priv = 0; priv < 2; ++priv) {
        CAPTURE(ap);
        CAPTURE(xn);
        CAPTURE(priv);
        const bool r = data[ap][priv ? 0 : 2], w = data[ap][priv ? 1 : 3];
        // Execute: only XN counts (not read permission); privileged execution is also barred
        // from locations unprivileged code can write (AP = 01).
        const bool x = priv ? !pxn && ap != 1 : !uxn;
        CHECK(walk_s1(*mem, s1, va, Access{.priv = priv != 0}).ok() == r);
        CHECK(walk_s1(*mem, s1, va, Access{.write = true, .priv = priv != 0}).ok() == w);
        CHECK(walk_s1(*mem, s1, va, Access{.instr = true, .priv = priv != 0}).ok() == x);
        Walk f = walk_s1(*mem, s1, va, Access{.write = true, .priv = priv != 0});
        if (!w) CHECK(f.fault.type == FaultType::permission);
      }
    }
  }
}

TEST_CASE("stage 1 hierarchical attributes: APTable, UXNTable, PXNTable, and HAD0") {
  Caps caps = full_caps();
  caps.had = true;
  const uint64_t va = 0x0000'0040'0000'1000;
  struct Row {
    uint64_t table_attrs;
    bool pr, pw, ur, uw, px, ux;
  };
  // Leaf AP = 01 (RW at both levels), UXN = PXN = 0: only the tables restrict.
  const Row rows[] = {
      {0, true, true, true, true, false, true},  // AP = 01 makes it privileged-XN
      {kAPTable0, true, true, false, false, true, true},
      {kAPTable1, true, false, true, false, true, true},
      {kAPTable0 | kAPTable1, true, false, false, false, true, true},
      {kUXNTable, true, true, true, true, false, false},
      {kPXNTable | kAPTable1, true, false, true, false, false, true},
  };
  for (const Row& r : rows) {
    for (bool had : {false, true}) {
      CAPTURE(r.table_attrs);
      CAPTURE(had);
      auto mem = make_mem();
      Tables t(*mem, kRam, kRamSize);
      S1Cfg cd = cd_for(12, 48);
      cd.HAD0 = had;
      auto [s1, tree] = make_s1(t, cd, caps);
      // The attributes sit in the level-1 table descriptor only; they reach the leaf below.
      map(t, tree, va, 1, table_desc(t.alloc(4096), 12, r.table_attrs));
      map(t, tree, va, 3, leaf_desc(0x4000'0000, 12, 3, kS1Rw));
      const Row& e = had ? rows[0] : r;  // HAD0: table attributes are IGNORED
      CHECK(walk_s1(*mem, s1, va, kPrivRead).ok() == e.pr);
      CHECK(walk_s1(*mem, s1, va, kPrivWrite).ok() == e.pw);
      CHECK(walk_s1(*mem, s1, va, kRead).ok() == e.ur);
      CHECK(walk_s1(*mem, s1, va, kWrite).ok() == e.uw);
      CHECK(walk_s1(*mem, s1, va, kPrivExec).ok() == e.px);
      CHECK(walk_s1(*mem, s1, va, kExec).ok() == e.ux);
      Walk w = walk_s1(*mem, s1, va, kPrivRead);
      if (w.ok()) CHECK(w.tr.s1_perm.APTable == (had ? 0 : (r.table_attrs >> 61) & 3));
    }
  }
}

TEST_CASE("stage 1 WXN and PAN") {
  const uint64_t va = 0x0000'0040'0000'1000;
  auto mem = make_mem();
  Tables t(*mem, kRam, kRamSize);
  S1Cfg cd = cd_for(12, 48);
  cd.WXN = true;
  auto [s1, tree] = make_s1(t, cd, full_caps());
  // WXN: a writable location is never executable, at either privilege.
  map(t, tree, va, 3, leaf_desc(0x4000'0000, 12, 3, (kS1Rw & ~kAP1)));  // AP = 00
  CHECK(!walk_s1(*mem, s1, va, kPrivExec).ok());
  CHECK(walk_s1(*mem, s1, va, kExec).ok());  // not writable (nor readable) unprivileged
  map(t, tree, va, 3, leaf_desc(0x4000'0000, 12, 3, kS1Rw | kAP2));  // AP = 11
  CHECK(walk_s1(*mem, s1, va, kPrivExec).ok());
  CHECK(walk_s1(*mem, s1, va, kExec).ok());
  map(t, tree, va, 3, leaf_desc(0x4000'0000, 12, 3, kS1Rw));  // AP = 01
  CHECK(!walk_s1(*mem, s1, va, kExec).ok());

  // PAN: no privileged data access where unprivileged data access is allowed.
  cd.WXN = false;
  cd.PAN = true;
  cd.TTB0 = tree.root;
  const Stage1 pan = decode_s1(cd, full_caps()).stage;
  map(t, tree, va, 3, leaf_desc(0x4000'0000, 12, 3, kS1Rw | kAP2));  // AP = 11
  check_fault(walk_s1(*mem, pan, va, kPrivRead),
              {FaultType::permission, 1, FaultClass::in, 3, va, 0, 0, kPrivRead});
  CHECK(walk_s1(*mem, pan, va, kRead).ok());
  CHECK(walk_s1(*mem, pan, va, kPrivExec).ok());  // PAN is about data accesses
  map(t, tree, va, 3, leaf_desc(0x4000'0000, 12, 3, (kS1Rw & ~kAP1)));  // AP = 00
  CHECK(walk_s1(*mem, pan, va, kPrivWrite).ok());
}

TEST_CASE("stage 2 permission matrix: S2AP x read/write/execute x XN, with and without XNX") {
  const uint64_t ipa = 0x12'3456'7000;
  for (bool xnx : {false, true}) {
    Caps caps = full_caps();
    caps.xnx = xnx;
    auto mem = make_mem();
    Tables t(*mem, kRam, kRamSize);
    auto [s2, tree] = make_s2(t, ste_for(12, 48, 2), caps);
    for (unsigned s2ap = 0; s2ap < 4; ++s2ap) {
      for (unsigned xn = 0; xn < 4; ++xn) {
        const uint64_t attrs =
            (kS2Rw & ~(kS2R | kS2W)) | (uint64_t{s2ap} << 6) | (uint64_t{xn} << 53);
        map(t, tree, ipa, 3, leaf_desc(0x4000'0000, 12, 3, attrs));
        for (unsigned priv = 0; priv < 2; ++priv) {
          CAPTURE(xnx);
          CAPTURE(s2ap);
          CAPTURE(xn);
          CAPTURE(priv);
          // XN[1:0] with FEAT_XNX: 00 both, 01 EL0 only, 10 neither, 11 EL1 only. Without it
          // only XN[1] counts.
          bool x;
          if (!xnx)
            x = !(xn & 2);
          else
            x = xn == 0 || (xn == 1 && !priv) || (xn == 3 && priv);
          CHECK(walk_s2(*mem, s2, ipa, Access{.priv = priv != 0}).ok() == ((s2ap & 1) != 0));
          CHECK(walk_s2(*mem, s2, ipa, Access{.write = true, .priv = priv != 0}).ok() ==
                ((s2ap & 2) != 0));
          Walk w = walk_s2(*mem, s2, ipa, Access{.instr = true, .priv = priv != 0});
          CHECK(w.ok() == x);
          if (!x) {
            CHECK(w.fault.type == FaultType::permission);
            CHECK(w.fault.stage == 2);
            CHECK(w.fault.InD);
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Access flag and dirty state.

TEST_CASE("Access flag: fault, AFFD, or a hardware update of exactly AF") {
  const uint64_t va = 0x0000'0040'0000'1000;
  for (unsigned stage = 1; stage <= 2; ++stage) {
    CAPTURE(stage);
    for (int mode = 0; mode < 3; ++mode) {  // 0 fault, 1 AFFD, 2 HA
      CAPTURE(mode);
      auto mem = make_mem();
      Tables t(*mem, kRam, kRamSize);
      Walk w, denied;
      uint64_t slot, desc;
      if (stage == 1) {
        S1Cfg cd = cd_for(12, 48);
        cd.AFFD = mode == 1;
        cd.HA = mode == 2;
        auto [s1, tree] = make_s1(t, cd, full_caps());
        desc = leaf_desc(0x4000'0000, 12, 3, (kS1Rw & ~kAF) | kAP2 | kSwBit);
        slot = map(t, tree, va, 3, desc);
        denied = walk_s1(*mem, s1, va, kWrite);  // read-only: a permission fault
        w = walk_s1(*mem, s1, va, kRead);
      } else {
        S2Cfg ste = ste_for(12, 48, 2);
        ste.S2AFFD = mode == 1;
        ste.S2HA = mode == 2;
        auto [s2, tree] = make_s2(t, ste, full_caps());
        desc = leaf_desc(0x4000'0000, 12, 3, (kS2Rw & ~kAF & ~kS2W) | kSwBit);
        slot = map(t, tree, va, 3, desc);
        denied = walk_s2(*mem, s2, va, kWrite);
        w = walk_s2(*mem, s2, va, kRead);
      }
      if (mode == 0) {
        check_fault(w, {FaultType::access, stage, FaultClass::in, 3, va, stage == 2 ? va : 0});
        // An access fault comes before the permission fault (IHI 0070 3.13.1).
        CHECK(denied.fault.type == FaultType::access);
        CHECK(t.get(slot) == desc);
      } else if (mode == 1) {
        CHECK(w.ok());
        CHECK(denied.fault.type == FaultType::permission);
        CHECK(t.get(slot) == desc);  // AFFD treats AF as 1 but never writes it
        CHECK(w.stats.updates == 0);
      } else {
        // HA: no update on the permission fault (a permitted choice), then AF set and nothing
        // else changed.
        CHECK(denied.fault.type == FaultType::permission);
        CHECK(denied.stats.updates == 0);
        CHECK(w.ok());
        CHECK(w.stats.updates == 1);
        CHECK(t.get(slot) == (desc | kAF));
      }
    }
  }
}

TEST_CASE("dirty state: HD makes a writable-clean leaf dirty on a write, and only then") {
  const uint64_t va = 0x0000'0040'0000'1000;
  SUBCASE("stage 1: AP[2] cleared") {
    auto mem = make_mem();
    Tables t(*mem, kRam, kRamSize);
    S1Cfg cd = cd_for(12, 48);
    cd.HA = cd.HD = true;
    auto [s1, tree] = make_s1(t, cd, full_caps());
    const uint64_t clean = leaf_desc(0x4000'0000, 12, 3, kS1Rw | kAP2 | kDBM);
    const uint64_t slot = map(t, tree, va, 3, clean);
    Walk r = walk_s1(*mem, s1, va, kRead);
    REQUIRE(r.ok());
    CHECK(t.get(slot) == clean);  // a read leaves it clean
    CHECK(r.tr.s1_perm.AP == lpae::kApRoUnpriv);
    CHECK(r.tr.s1_perm.DBM);
    Walk w = walk_s1(*mem, s1, va, kWrite);
    REQUIRE(w.ok());
    CHECK(t.get(slot) == (clean & ~kAP2));
    CHECK(w.tr.s1_perm.AP == lpae::kApRwUnpriv);
    CHECK(w.stats.updates == 1);
    CHECK(walk_s1(*mem, s1, va, kWrite).stats.updates == 0);  // already dirty

    // AF = 0 and clean: one update sets AF and clears AP[2].
    map(t, tree, va, 3, clean & ~kAF);
    w = walk_s1(*mem, s1, va, kWrite);
    REQUIRE(w.ok());
    CHECK(w.stats.updates == 1);
    CHECK(t.get(slot) == ((clean | kAF) & ~kAP2));
    // Without DBM a read-only page stays read-only.
    map(t, tree, va, 3, clean & ~kDBM);
    check_fault(walk_s1(*mem, s1, va, kWrite),
                {FaultType::permission, 1, FaultClass::in, 3, va, 0, 0, kWrite});
    CHECK(t.get(slot) == (clean & ~kDBM));
    // APTable[1] is not overridden by DBM (IHI 0070 3.13.3).
    map(t, tree, va, 2, table_desc(t.alloc(4096), 12, kAPTable1));
    const uint64_t slot2 = map(t, tree, va, 3, clean);
    CHECK(walk_s1(*mem, s1, va, kWrite).fault.type == FaultType::permission);
    CHECK(t.get(slot2) == clean);
    // HD without HA is reserved and behaves as both off.
    cd.HA = false;
    cd.TTB0 = tree.root;
    const Stage1 no_ha = decode_s1(cd, full_caps()).stage;
    map(t, tree, va, 2, table_desc(t.alloc(4096), 12));
    map(t, tree, va, 3, clean);
    CHECK(walk_s1(*mem, no_ha, va, kWrite).fault.type == FaultType::permission);
  }
  SUBCASE("stage 2: S2AP[1] set") {
    auto mem = make_mem();
    Tables t(*mem, kRam, kRamSize);
    S2Cfg ste = ste_for(12, 48, 2);
    ste.S2HA = ste.S2HD = true;
    auto [s2, tree] = make_s2(t, ste, full_caps());
    const uint64_t clean = leaf_desc(0x4000'0000, 12, 3, (kS2Rw & ~kS2W) | kDBM);
    const uint64_t slot = map(t, tree, va, 3, clean);
    CHECK(walk_s2(*mem, s2, va, kRead).ok());
    CHECK(t.get(slot) == clean);
    Walk w = walk_s2(*mem, s2, va, kWrite);
    REQUIRE(w.ok());
    CHECK(t.get(slot) == (clean | kS2W));
    CHECK(w.tr.s2_perm.S2AP == 3);
    map(t, tree, va, 3, clean & ~kDBM);
    check_fault(walk_s2(*mem, s2, va, kWrite),
                {FaultType::permission, 2, FaultClass::in, 3, va, va, 0, kWrite});
    // A CD fetch is a read: it never makes a stage-2 page dirty (IHI 0070 3.13.3).
    map(t, tree, va, 3, clean);
    CHECK(walk_s2(*mem, s2, va, kWrite, FaultClass::cd).ok());
    CHECK(t.get(slot) == clean);
  }
}

// ---------------------------------------------------------------------------------------------
// Nested: stage 1 tables in IPA space.

// Stage 1 (4K, 48-bit, 4 levels) whose tables live in IPA space at PA - kDelta, behind a
// stage 2 (4K, 48-bit, 4 levels) that maps them, page by page, to their PAs.
constexpr uint64_t kS1Pool = kRam + (32 << 20);
constexpr uint64_t kS1PoolSize = 1 << 20;
constexpr uint64_t kDelta = 0x10'0000'0000;  // the pool's IPA is its PA + kDelta
struct Nested {
  Nested()
      : mem(make_mem()),
        s2t(*mem, kRam, 16 << 20),
        s1t(*mem, kS1Pool, kS1PoolSize, uint64_t{0} - kDelta) {
    auto [st2, tr2] = make_s2(s2t, ste_for(12, 48, 2), full_caps());
    s2 = st2;
    tree2 = tr2;
    for (uint64_t off = 0; off < kS1PoolSize; off += 4096)
      s2_leaf[off / 4096] =
          map(s2t, tree2, kS1Pool + kDelta + off, 3, leaf_desc(kS1Pool + off, 12, 3, kS2Rw));
    auto [st1, tr1] = make_s1(s1t, cd_for(12, 48), full_caps());
    s1 = st1;
    tree1 = tr1;
  }
  // The stage-2 leaf that maps the stage-1 table holding IPA `ipa`.
  uint64_t s2_slot_of(uint64_t ipa) const { return s2_leaf[(ipa - kS1Pool - kDelta) / 4096]; }
  // The IPA of the stage-1 descriptor for `va` at `level` (the tables must exist).
  uint64_t s1_desc_ipa(uint64_t va, unsigned level) const {
    uint64_t table = tree1.root;
    for (unsigned l = 0;; ++l) {
      const uint64_t slot = table + ((va >> lpae::level_shift(12, l)) & 511) * 8;
      if (l == level) return slot;
      table = lpae::oa_of(s1t.get(slot), 12);
    }
  }
  std::unique_ptr<PhysMem> mem;
  Tables s2t, s1t;
  Stage1 s1;
  Stage2 s2;
  Tree tree1, tree2;
  uint64_t s2_leaf[kS1PoolSize / 4096] = {};
};

constexpr uint64_t kNestedVa = 0x0000'5555'6666'7000 | 0x321;
constexpr uint64_t kOutIpa = 0x0000'0123'4567'8000;
constexpr uint64_t kOutPa = 0x4242'0000;

TEST_CASE("nested: stage 1 then stage 2, every stage-1 fetch translated by stage 2") {
  Nested n;
  map(n.s1t, n.tree1, kNestedVa, 3, leaf_desc(kOutIpa, 12, 3, kS1Rw | kNG));
  map(n.s2t, n.tree2, kOutIpa, 3, leaf_desc(kOutPa, 12, 3, kS2Rw));
  Walk w = walk_s1(*n.mem, n.s1, kNestedVa, kWrite, &n.s2);
  REQUIRE_MESSAGE(w.ok(), fmt::format("{}", w.fault));
  CHECK(w.tr.ipa == (kOutIpa | 0x321));
  CHECK(w.tr.oa == (kOutPa | 0x321));
  CHECK(w.tr.has_s1);
  CHECK(w.tr.has_s2);
  CHECK(w.tr.s1_level == 3);
  CHECK(w.tr.s2_level == 3);
  CHECK(w.tr.size_log2 == 12);
  CHECK(w.tr.nG);
  CHECK(w.tr.MemAttr == lpae::kMemAttrNormalWb);
  // 4 stage-1 descriptors, each behind a 4-level stage-2 walk, then 4 for the output.
  CHECK(w.stats.s1_reads == 4);
  CHECK(w.stats.s2_reads == 20);
  // A stage-1 2M block over a stage-2 4K page: the translation spans the smaller.
  const uint64_t va2 = 0x0000'5555'6680'0000 | 0x1234;  // another 2 MiB: its own level-2 slot
  map(n.s1t, n.tree1, va2, 2, leaf_desc(0x0000'0200'0000'0000, 12, 2, kS1Rw));
  map(n.s2t, n.tree2, 0x0000'0200'0000'1000, 3, leaf_desc(kOutPa, 12, 3, kS2Rw));
  w = walk_s1(*n.mem, n.s1, va2, kRead, &n.s2);
  REQUIRE(w.ok());
  CHECK(w.tr.oa == (kOutPa | 0x234));
  CHECK(w.tr.s1_size_log2 == 21);
  CHECK(w.tr.size_log2 == 12);
}

TEST_CASE("nested faults: CLASS TT for stage-1 table fetches, CLASS IN for the output") {
  Nested n;
  map(n.s1t, n.tree1, kNestedVa, 3, leaf_desc(kOutIpa, 12, 3, kS1Rw));
  map(n.s2t, n.tree2, kOutIpa, 3, leaf_desc(kOutPa, 12, 3, kS2Rw));
  REQUIRE(walk_s1(*n.mem, n.s1, kNestedVa, kRead, &n.s2).ok());
  const uint64_t l2_ipa = n.s1_desc_ipa(kNestedVa, 2);
  const uint64_t l3_ipa = n.s1_desc_ipa(kNestedVa, 3);

  SUBCASE("a stage-1 table whose IPA stage 2 does not map") {
    n.s2t.put(n.s2_slot_of(l2_ipa), 0);
    check_fault(walk_s1(*n.mem, n.s1, kNestedVa, kRead, &n.s2),
                {FaultType::translation, 2, FaultClass::tt, 3, kNestedVa, l2_ipa});
  }
  SUBCASE("the output IPA unmapped, and beyond stage 2's input range") {
    map(n.s2t, n.tree2, kOutIpa, 3, 0);
    check_fault(
        walk_s1(*n.mem, n.s1, kNestedVa, kWrite, &n.s2),
        {FaultType::translation, 2, FaultClass::in, 3, kNestedVa, kOutIpa | 0x321, 0, kWrite});
    // A 40-bit stage 2 (S2T0SZ = 24) that maps the stage-1 tables as before; stage 1 (48-bit
    // IPS) outputs a 41-bit IPA, which only stage 2's range check refuses.
    auto [small, small_tree] = make_s2(n.s2t, ste_for(12, 40, 1), full_caps());
    for (uint64_t off = 0; off < kS1PoolSize; off += 4096)
      map(n.s2t, small_tree, kS1Pool + kDelta + off, 3, leaf_desc(kS1Pool + off, 12, 3, kS2Rw));
    const uint64_t far_ipa = uint64_t{1} << 40;
    map(n.s1t, n.tree1, kNestedVa, 3, leaf_desc(far_ipa, 12, 3, kS1Rw));
    check_fault(walk_s1(*n.mem, n.s1, kNestedVa, kRead, &small),
                {FaultType::translation, 2, FaultClass::in, 0, kNestedVa, far_ipa | 0x321});
  }
  SUBCASE("stage-2 permission on a table fetch: no read permission, TTRnW = 1") {
    n.s2t.put(n.s2_slot_of(l3_ipa), n.s2t.get(n.s2_slot_of(l3_ipa)) & ~kS2R);
    check_fault(walk_s1(*n.mem, n.s1, kNestedVa, kWrite, &n.s2),
                {FaultType::permission, 2, FaultClass::tt, 3, kNestedVa, l3_ipa, 0, kWrite, true});
  }
  SUBCASE("S2PTW: a stage-1 table in stage-2 Device memory") {
    const uint64_t slot = n.s2_slot_of(l2_ipa);
    const uint64_t device = (n.s2t.get(slot) & ~(uint64_t{0xf} << 2)) | (lpae::kMemAttrDevice << 2);
    n.s2t.put(slot, device);
    CHECK(walk_s1(*n.mem, n.s1, kNestedVa, kRead, &n.s2).ok());  // S2PTW = 0
    Stage2 ptw = n.s2;
    ptw.ptw = true;
    check_fault(walk_s1(*n.mem, n.s1, kNestedVa, kRead, &ptw),
                {FaultType::permission, 2, FaultClass::tt, 3, kNestedVa, l2_ipa});
    // The output is a transaction's access, not a walk: S2PTW does not apply to it.
    map(n.s2t, n.tree2, kOutIpa, 3,
        leaf_desc(kOutPa, 12, 3, (kS2Rw & ~(uint64_t{0xf} << 2)) | (lpae::kMemAttrDevice << 2)));
    n.s2t.put(slot, leaf_desc(lpae::oa_of(device, 12), 12, 3, kS2Rw));
    CHECK(walk_s1(*n.mem, n.s1, kNestedVa, kRead, &ptw).ok());
  }
  SUBCASE("walk_eabt: a stage-1 table IPA that stage 2 maps outside RAM") {
    n.s2t.put(n.s2_slot_of(l3_ipa), leaf_desc(kNoRam, 12, 3, kS2Rw));
    const uint64_t fetch = kNoRam + (l3_ipa & 0xfff);
    check_fault(walk_s1(*n.mem, n.s1, kNestedVa, kRead, &n.s2),
                {FaultType::walk_eabt, 1, FaultClass::tt, 3, kNestedVa, 0, fetch});
  }
  SUBCASE("walk_eabt: a stage-2 table outside RAM while translating a stage-1 table's IPA") {
    // Point the stage-2 level-2 table descriptor covering the stage-1 tables outside RAM. All
    // the stage-1 tables sit in one 2 MiB region of IPA space, so the first stage-1 fetch, of
    // the level-0 descriptor, is the one that aborts, in stage 2's level-3 fetch.
    const uint64_t l0_ipa = n.s1_desc_ipa(kNestedVa, 0);
    uint64_t table = n.tree2.root;
    for (unsigned l = 0; l < 2; ++l)
      table = lpae::oa_of(n.s2t.get(table + ((l0_ipa >> lpae::level_shift(12, l)) & 511) * 8), 12);
    n.s2t.put(table + ((l0_ipa >> lpae::level_shift(12, 2)) & 511) * 8, table_desc(kNoRam, 12));
    const uint64_t fetch = kNoRam + ((l0_ipa >> 12) & 511) * 8;
    check_fault(walk_s1(*n.mem, n.s1, kNestedVa, kRead, &n.s2),
                {FaultType::walk_eabt, 2, FaultClass::tt, 3, kNestedVa, l0_ipa, fetch});
  }
  SUBCASE("stage 1's access and permission faults come before stage 2 translates the output") {
    map(n.s2t, n.tree2, kOutIpa, 3, 0);
    map(n.s1t, n.tree1, kNestedVa, 3, leaf_desc(kOutIpa, 12, 3, kS1Rw & ~kAF));
    check_fault(walk_s1(*n.mem, n.s1, kNestedVa, kRead, &n.s2),
                {FaultType::access, 1, FaultClass::in, 3, kNestedVa});
    map(n.s1t, n.tree1, kNestedVa, 3, leaf_desc(kOutIpa, 12, 3, kS1Rw | kAP2));
    check_fault(walk_s1(*n.mem, n.s1, kNestedVa, kWrite, &n.s2),
                {FaultType::permission, 1, FaultClass::in, 3, kNestedVa, 0, 0, kWrite});
  }
  SUBCASE("a CD fetch through stage 2: CLASS CD, checked as a read") {
    const uint64_t cd_ipa = 0x0000'0777'0000'0040;
    map(n.s2t, n.tree2, cd_ipa, 3, 0);
    check_fault(walk_s2(*n.mem, n.s2, cd_ipa, kWrite, FaultClass::cd),
                {FaultType::translation, 2, FaultClass::cd, 3, cd_ipa, cd_ipa, 0, kWrite});
    map(n.s2t, n.tree2, cd_ipa, 3, leaf_desc(kOutPa, 12, 3, kS2Rw & ~kS2W));
    Walk w = walk_s2(*n.mem, n.s2, cd_ipa, kWrite, FaultClass::cd);
    REQUIRE(w.ok());
    CHECK(w.tr.oa == (kOutPa | 0x40));
  }
}

TEST_CASE("nested HTTU: a stage-1 update is a write to an IPA that stage 2 must allow") {
  Nested n;
  S1Cfg cd = cd_for(12, 48);
  cd.HA = cd.HD = true;
  cd.TTB0 = n.tree1.root;
  const Stage1 s1 = decode_s1(cd, full_caps()).stage;
  const uint64_t clean = leaf_desc(kOutIpa, 12, 3, (kS1Rw & ~kAF) | kAP2 | kDBM);
  map(n.s1t, n.tree1, kNestedVa, 3, clean);
  map(n.s2t, n.tree2, kOutIpa, 3, leaf_desc(kOutPa, 12, 3, kS2Rw));
  const uint64_t l3_ipa = n.s1_desc_ipa(kNestedVa, 3);
  const uint64_t s2_slot = n.s2_slot_of(l3_ipa);
  const uint64_t s2_rw = n.s2t.get(s2_slot);

  // Stage 2 maps the stage-1 leaf table read-only: the read walk works, the update faults.
  n.s2t.put(s2_slot, s2_rw & ~kS2W);
  check_fault(walk_s1(*n.mem, n.s1, kNestedVa, kRead, &n.s2),  // HA off: an access fault
              {FaultType::access, 1, FaultClass::in, 3, kNestedVa});
  check_fault(walk_s1(*n.mem, s1, kNestedVa, kRead, &n.s2),
              {FaultType::permission, 2, FaultClass::tt, 3, kNestedVa, l3_ipa, 0, kRead, false});
  CHECK(n.s1t.get(l3_ipa) == clean);

  // Writable-clean at stage 2 with S2HD: the stage-1 update makes the table page dirty too.
  S2Cfg ste = ste_for(12, 48, 2);
  ste.S2HA = ste.S2HD = true;
  ste.S2TTB = n.tree2.root;
  const Stage2 s2 = decode_s2(ste, full_caps()).stage;
  n.s2t.put(s2_slot, (s2_rw & ~kS2W) | kDBM);
  Walk w = walk_s1(*n.mem, s1, kNestedVa, kWrite, &n.s2);
  CHECK(w.fault.type == FaultType::permission);  // n.s2 has no S2HD
  w = walk_s1(*n.mem, s1, kNestedVa, kWrite, &s2);
  REQUIRE_MESSAGE(w.ok(), fmt::format("{}", w.fault));
  CHECK(n.s1t.get(l3_ipa) == ((clean | kAF) & ~kAP2));
  CHECK(n.s2t.get(s2_slot) == (s2_rw | kDBM));
  CHECK(w.stats.updates == 2);
  CHECK(w.tr.oa == (kOutPa | 0x321));
}

// ---------------------------------------------------------------------------------------------
// Races.

TEST_CASE("concurrent walks race their AF and dirty updates with a CPU updating the same word") {
  auto mem = make_mem();
  Tables t(*mem, kRam, kRamSize);
  S1Cfg cd = cd_for(12, 48);
  cd.HA = cd.HD = true;
  auto [s1, tree] = make_s1(t, cd, full_caps());
  const uint64_t va = 0x0000'0040'0000'1000;
  const uint64_t clean = leaf_desc(0x4000'0000, 12, 3, (kS1Rw & ~kAF) | kAP2 | kDBM);
  const uint64_t slot = map(t, tree, va, 3, clean);

  // Each round the main thread puts back a clean, never-accessed word; two writers and a reader
  // walk it while software, which shares the table and so must use atomics (IHI 0070 3.13),
  // flips an IGNORED bit an odd number of times with its own compare-and-swap loop. Whoever
  // loses a swap must look again: at the end of every round the word is accessed, dirty, and
  // holds every software flip.
  constexpr int kRounds = 2000, kToggles = 7;
  std::barrier sync(5);
  std::atomic<unsigned> failures{0}, retries{0}, bad_rounds{0};
  auto device = [&](Access access) {
    for (int round = 0; round < kRounds; ++round) {
      sync.arrive_and_wait();
      Walk w = walk_s1(*mem, s1, va, access);
      if (!w.ok()) failures.fetch_add(1);
      retries.fetch_add(w.stats.retries);
      sync.arrive_and_wait();
    }
  };
  auto cpu = [&] {
    for (int round = 0; round < kRounds; ++round) {
      sync.arrive_and_wait();
      for (int i = 0; i < kToggles; ++i) {
        for (;;) {
          const uint64_t old = *mem->read64(slot);
          if (*mem->cmpxchg64(slot, old, old ^ kSwBit)) break;
        }
      }
      sync.arrive_and_wait();
    }
  };
  std::thread a(device, kWrite), b(device, kWrite), c(device, kRead), d(cpu);
  for (int round = 0; round < kRounds; ++round) {
    REQUIRE(mem->write64(slot, clean).ok());
    sync.arrive_and_wait();
    sync.arrive_and_wait();
    if (*mem->read64(slot) != ((clean | kAF | kSwBit) & ~kAP2)) bad_rounds.fetch_add(1);
  }
  a.join();
  b.join();
  c.join();
  d.join();
  CHECK(failures == 0);
  CHECK(bad_rounds == 0);
  MESSAGE("lost compare-and-swap races: " << retries.load());
}

TEST_CASE("concurrent walks from a clean word each round: exactly one clean-to-dirty update wins") {
  auto mem = make_mem();
  Tables t(*mem, kRam, kRamSize);
  S1Cfg cd = cd_for(12, 48);
  cd.HA = cd.HD = true;
  auto [s1, tree] = make_s1(t, cd, full_caps());
  const uint64_t va = 0x0000'0040'0000'1000;
  const uint64_t clean = leaf_desc(0x4000'0000, 12, 3, (kS1Rw & ~kAF) | kAP2 | kDBM);
  const uint64_t slot = map(t, tree, va, 3, clean);

  constexpr int kRounds = 2000;
  std::barrier sync(3);
  std::atomic<unsigned> failures{0}, swaps{0};
  std::atomic<bool> bad_word{false};
  auto device = [&] {
    for (int round = 0; round < kRounds; ++round) {
      sync.arrive_and_wait();  // the main thread has reset the word
      Walk w = walk_s1(*mem, s1, va, kWrite);
      if (!w.ok()) failures.fetch_add(1);
      swaps.fetch_add(w.stats.updates - w.stats.retries);
      sync.arrive_and_wait();
    }
  };
  std::thread a(device), b(device);
  for (int round = 0; round < kRounds; ++round) {
    REQUIRE(mem->write64(slot, clean).ok());
    sync.arrive_and_wait();
    sync.arrive_and_wait();
    if (*mem->read64(slot) != ((clean | kAF) & ~kAP2)) bad_word = true;
  }
  a.join();
  b.join();
  CHECK(failures == 0);
  CHECK(!bad_word);
  // Each round exactly one walker's swap succeeds; the other either saw the dirty word or lost
  // the swap and walked again.
  CHECK(swaps == unsigned{kRounds});
}

TEST_CASE("faults and configuration errors print by name") {
  Fault f{.type = FaultType::translation,
          .stage = 2,
          .cls = FaultClass::tt,
          .level = 3,
          .RnW = true,
          .TTRnW = true,
          .input_addr = 0x1000,
          .ipa = 0x2000};
  CHECK(fmt::format("{}", f) ==
        "F_TRANSLATION stage 2 CLASS TT level 3 InputAddr 0x1000 IPA 0x2000 RnW=1 InD=0 PnU=0 "
        "TTRnW=1");
  f = Fault{.type = FaultType::walk_eabt, .stage = 1, .cls = FaultClass::tt, .fetch_addr = 0x88};
  CHECK(fmt::format("{}", f) ==
        "F_WALK_EABT stage 1 CLASS TT level 0 InputAddr 0x0 FetchAddr 0x88 RnW=1 InD=0 PnU=0 "
        "TTRnW=1");
  CHECK(std::string(name(CfgError::sl0_inconsistent)) == "sl0_inconsistent");
  CHECK(std::string(name(FaultType::addr_size)) == "F_ADDR_SIZE");
  CHECK(std::string(name(FaultClass::cd)) == "CD");
}

}  // namespace
}  // namespace strata::sim::smmuv3
