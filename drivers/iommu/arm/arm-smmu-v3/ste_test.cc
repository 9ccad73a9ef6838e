// SPDX-License-Identifier: MIT
// STE builders and used bits (ste.h): the exact words each builder produces, with the expected
// values typed in from IHI 0070 5.2's bit positions; which bits each configuration uses; and,
// through write_entry with a recording EntryWriter, that the transitions the driver makes are
// hitless where Linux's are and break-before-make where they must be, with every entry the SMMU
// could read between two syncs being the old configuration, the new one or an invalid STE.
#include "drivers/iommu/arm/arm-smmu-v3/ste.h"

#include <doctest/doctest.h>

#include <array>
#include <memory>
#include <random>
#include <vector>

#include "arch/dma.h"
#include "arch/smmuv3/ste.h"
#include "core/io-pgtable/io_pgtable.h"
#include "drivers/iommu/arm/arm-smmu-v3/entry_writer.h"
#include "testing/models/platform/platform.h"

namespace strata::arm_smmu_v3 {
namespace {

using smmuv3::STE;
using Words = std::array<uint64_t, kEntryQwords>;

// A value placed at absolute STE bit `lo` (5.2's numbering), within its 64-bit word: the
// expected words below are built from the spec's positions, not from arch/smmuv3/ste.h.
constexpr uint64_t at(unsigned lo, uint64_t v) { return v << (lo % 64); }

Words words_of(const STE& s) {
  Words w;
  ste_to_words(s, w.data());
  return w;
}
Words used_of(const STE& s) {
  Words w = words_of(s), u;
  ste_get_used(w.data(), u.data());
  return u;
}
template <typename F>
bool uses(const Words& used) {
  return (used[F::kWord] & F::kMask) == F::kMask;
}
template <typename F>
bool ignores(const Words& used) {
  return (used[F::kWord] & F::kMask) == 0;
}
// Every bit the builder set is one its configuration uses (what write_entry insists on).
bool only_used_bits(const STE& s) {
  const Words w = words_of(s), u = used_of(s);
  for (unsigned i = 0; i < kEntryQwords; i++)
    if (w[i] & ~u[i]) return false;
  return true;
}

// A stage-2 configuration as io-pgtable reports it for a 4K-granule, 48-bit IPA table.
IoPgtableCfg s2_cfg(uint64_t vttbr) {
  IoPgtableCfg cfg;
  cfg.arm_lpae_s2 = {vttbr, 16, 2, 0, 1, 1, 3, 5, 1};
  return cfg;
}

const SteFeatures kFeatures{.coherent = true,
                            .attr_types_ovr = true,
                            .stalls = true,
                            .ssid_bits = 20,
                            .two_level_cdtab = true};

// ---------------------------------------------------------------------------------------------
// Builders.

TEST_CASE("abort and bypass STEs") {
  const Words abort = words_of(make_abort_ste());
  CHECK(abort == Words{0x1});  // V, Config 0b000
  // Bypass: V, Config 0b100; SHCFG 0b01 "use incoming" at [109:108] when it exists.
  CHECK(words_of(make_bypass_ste(kFeatures)) == Words{0x9, at(108, 0b01)});
  CHECK(words_of(make_bypass_ste(SteFeatures{})) == Words{0x9});
  CHECK(only_used_bits(make_abort_ste()));
  CHECK(only_used_bits(make_bypass_ste(kFeatures)));
}

TEST_CASE("stage-1 STE: one CD, coherent, NS-EL1") {
  const STE s = make_cdtable_ste(SteFeatures{}, SteCdTable{.cdtab = 0x4012'3000});
  // Word 0: V, Config 0b101, S1ContextPtr [55:6] in place, S1CDMax 0, S1Fmt IGNORED (0).
  // Word 1: S1CIR 0b01 [67:66], S1COR 0b01 [69:68], S1CSH 0b11 [71:70]; S1DSS IGNORED;
  // S1STALLD 0 (no configurable stalls), EATS 0, STRW 0 (NS-EL1). Word 2: S2VMID 0.
  CHECK(words_of(s) == Words{0x4012'300b, at(66, 0b01) | at(68, 0b01) | at(70, 0b11)});
  CHECK(s.get<STE::S1ContextPtr>() == 0x4012'3000);
  CHECK(only_used_bits(s));
}

TEST_CASE("stage-1 STE: 2-level 64KB CD table, S1DSS bypass, ATS, stalls disabled") {
  // 2^16 CDs in 64KB leaves: an L1 table of 64 L1CDs, 512 bytes, S1ContextPtr[8:6] RES0.
  const uint64_t ptr = 0x1'2345'6200;
  const STE s = make_cdtable_ste(kFeatures, SteCdTable{.cdtab = ptr,
                                                       .s1cdmax = 16,
                                                       .s1fmt = smmuv3::kS1Fmt64KL2,
                                                       .s1dss = smmuv3::kS1dssBypass,
                                                       .ats = true});
  const uint64_t w0 = 0x1 | at(1, 0b101) | at(4, 0b10) | ptr | at(59, 16);
  const uint64_t w1 = at(64, 0b01) | at(66, 0b01) | at(68, 0b01) | at(70, 0b11) |
                      at(91, 1) |     // S1STALLD: stalls configurable, the master cannot stall
                      at(92, 0b01) |  // EATS: full ATS
                      at(108, 0b01);  // SHCFG: traffic without a SubstreamID bypasses
  CHECK(words_of(s) == Words{w0, w1});
  CHECK(s.get<STE::S1CDMax>() == 16);
  CHECK(s.get<STE::S1Fmt>() == smmuv3::kS1Fmt64KL2);
  CHECK(s.get<STE::S1DSS>() == smmuv3::kS1dssBypass);
  CHECK(only_used_bits(s));

  // A stall-capable master keeps S1STALLD clear; EL2 sets STRW 0b10 [95:94].
  const STE el2 = make_cdtable_ste(
      kFeatures, SteCdTable{.cdtab = 0x8000'0000, .stall_enabled = true, .el2 = true});
  CHECK(el2.get<STE::S1STALLD>() == 0);
  CHECK(el2.word(1) == (at(66, 0b01) | at(68, 0b01) | at(70, 0b11) | at(94, 0b10)));
  CHECK(only_used_bits(el2));
  // A non-coherent SMMU fetches CDs Non-cacheable (Outer Shareable).
  const STE nc = make_cdtable_ste(SteFeatures{.coherent = false}, SteCdTable{.cdtab = 0x1000});
  CHECK(nc.word(1) == at(70, 0b10));
}

// The stage-2 fields, for several io-pgtable geometries worked out by hand from VTCR_EL2's
// encodings: T0SZ = 64 - IAS; SL0 for 4KB: 0b10 level 0, 0b01 level 1, 0b00 level 2; for 64KB:
// 0b10 level 1, 0b01 level 2, 0b00 level 3; TG 4KB 0b00, 64KB 0b01; PS 48 bits 0b101.
TEST_CASE("stage-2 STE from an io-pgtable") {
  auto platform = sim::Platform::create().release_value();
  struct Case {
    uint64_t pgsizes;
    unsigned ias;
    unsigned t0sz, sl0, tg;
  };
  // 48-bit IPA, 4KB: four levels from level 0. 40-bit IPA, 4KB: level 0 would hold 2 entries,
  // so two concatenated level-1 tables instead (S2SL0 level 1). 42-bit IPA, 64KB: levels 2-3.
  const Case cases[] = {
      {SZ_4K, 48, 16, 0b10, 0b00}, {SZ_4K, 40, 24, 0b01, 0b00}, {SZ_64K, 42, 22, 0b01, 0b01}};
  for (const Case& c : cases) {
    CAPTURE(c.ias);
    IoPgtableCfg cfg;
    cfg.pgsize_bitmap = c.pgsizes;
    cfg.ias = c.ias;
    cfg.oas = 48;
    cfg.dma = &platform->dma();
    auto pt = IoPgtable::alloc(IoPgtableFmt::arm_64_lpae_s2, cfg);
    REQUIRE(pt.ok());
    const STE s = make_s2_domain_ste(kFeatures, cfg, SteS2Domain{.vmid = 5});
    const uint64_t w2 = at(128, 5) | at(160, c.t0sz) | at(166, c.sl0) | at(168, 0b01) |
                        at(170, 0b01) |  // S2IR0, S2OR0: Write-Back (coherent)
                        at(172, 0b11) |  // S2SH0: Inner Shareable
                        at(174, c.tg) | at(176, 0b101) | at(179, 1) |  // S2TG, S2PS, S2AA64
                        at(186, 1);                                    // S2R
    CHECK(words_of(s) == Words{0xd, at(108, 0b01), w2, cfg.arm_lpae_s2.vttbr});
    CHECK(s.get<STE::S2TTB>() == cfg.arm_lpae_s2.vttbr);
    CHECK(s.get<STE::S2PTW>() == 0);  // IGNORED without stage 1
    CHECK(only_used_bits(s));
  }
}

TEST_CASE("stage-2 STE options: ATS, HTTU, AFFD, FWB, stalls") {
  const IoPgtableCfg cfg = s2_cfg(0x4100'0000);
  STE s = make_s2_domain_ste(
      SteFeatures{}, cfg,
      SteS2Domain{
          .vmid = 9, .ats = true, .s2affd = true, .s2ha = true, .s2hd = true, .s2fwb = true});
  CHECK(s.get<STE::EATS>() == smmuv3::kEatsTrans);
  CHECK(s.get<STE::S2HA>() == 1);
  CHECK(s.get<STE::S2HD>() == 1);
  CHECK(s.get<STE::S2AFFD>() == 0);  // IGNORED with S2HA
  CHECK(s.get<STE::S2FWB>() == 1);
  CHECK(s.get<STE::SHCFG>() == 0);  // no ATTR_TYPES_OVR: RES0
  CHECK(only_used_bits(s));
  s = make_s2_domain_ste(SteFeatures{}, cfg,
                         SteS2Domain{.vmid = 9, .s2r = false, .s2s = true, .s2affd = true});
  CHECK(s.get<STE::S2AFFD>() == 1);
  CHECK(s.get<STE::S2S>() == 1);
  CHECK(s.get<STE::S2R>() == 0);
  CHECK(only_used_bits(s));
}

TEST_CASE("nested STE: the guest's CD table behind the host's stage 2") {
  const IoPgtableCfg cfg = s2_cfg(0x4100'0000);
  const SteNested host{.s2 = {.vmid = 7, .ats = true}};
  // Guest: V, Config 0b101, a linear table of 4 CDs at IPA 0x8000'0100, S1DSS 0b10, CD fetch
  // attributes WB/WB/ISH, full ATS.
  GuestSte g;
  g.ste[0] = 0x1 | at(1, 0b101) | 0x8000'0100 | at(59, 2);
  g.ste[1] = at(64, 0b10) | at(66, 0b01) | at(68, 0b01) | at(70, 0b11) | at(92, 0b01);
  auto r = make_nested_ste(kFeatures, cfg, host, g);
  REQUIRE(r.ok());
  const STE s = *r;
  const STE s2 = make_s2_domain_ste(kFeatures, cfg, SteS2Domain{.vmid = 7});
  CHECK(s.word(0) == (0x1 | at(1, 0b111) | 0x8000'0100 | at(59, 2)));
  CHECK(s.word(1) == (g.ste[1] | at(91, 1)));     // + the host's S1STALLD; no SHCFG
  CHECK(s.word(2) == (s2.word(2) | at(182, 1)));  // the stage 2 and S2PTW
  CHECK(s.word(3) == s2.word(3));
  CHECK(only_used_bits(s));

  // EATS: full ATS only when both the host allows it and the guest asks for it.
  GuestSte no_ats = g;
  no_ats.ste[1] &= ~at(92, 0b11);
  CHECK(make_nested_ste(kFeatures, cfg, host, no_ats)->get<STE::EATS>() == smmuv3::kEatsAbort);
  const SteNested host_no_ats{.s2 = {.vmid = 7}};
  CHECK(make_nested_ste(kFeatures, cfg, host_no_ats, g)->get<STE::EATS>() == smmuv3::kEatsAbort);
  // S1STALLD: the guest's 1 is what the host sets anyway; its 0 does not enable stalls.
  GuestSte stalld = no_ats;
  stalld.ste[1] |= at(91, 1);
  CHECK(*make_nested_ste(kFeatures, cfg, host, stalld) ==
        *make_nested_ste(kFeatures, cfg, host, no_ats));
  CHECK(make_nested_ste(kFeatures, cfg, host, no_ats)->get<STE::S1STALLD>() == 1);

  // S1DSS bypass with substreams: traffic without one is stage 2 only and takes SHCFG.
  g.ste[1] = at(64, 0b01);
  CHECK(make_nested_ste(kFeatures, cfg, host, g)->get<STE::SHCFG>() == smmuv3::kShcfgIncoming);
  // One CD (S1CDMax 0): S1Fmt and S1DSS are IGNORED, so dropped whatever the guest wrote.
  g.ste[0] = 0x1 | at(1, 0b101) | at(4, 0b01) | 0x8000'0040;
  g.ste[1] = at(64, 0b11);
  auto one = make_nested_ste(kFeatures, cfg, host, g);
  REQUIRE(one.ok());
  CHECK(one->get<STE::S1Fmt>() == 0);
  CHECK(one->get<STE::S1DSS>() == 0);
  CHECK(only_used_bits(*one));

  // Abort and bypass guest STEs.
  g.ste[1] = 0;
  g.ste[0] = 0;  // V == 0
  CHECK(*make_nested_ste(kFeatures, cfg, host, g) == make_abort_ste());
  g.ste[0] = 0x1 | at(1, 0b010);  // Reserved, behaves as abort
  CHECK(*make_nested_ste(kFeatures, cfg, host, g) == make_abort_ste());
  g.ste[0] = 0x1 | at(1, 0b100);
  CHECK(*make_nested_ste(kFeatures, cfg, host, g) == s2);
  g.ste[1] = at(92, 0b01);  // and with ATS, the host's stage-2 STE with ATS
  CHECK(*make_nested_ste(kFeatures, cfg, host, g) == make_s2_domain_ste(kFeatures, cfg, host.s2));
}

TEST_CASE("nested STE: bad guest STEs are -EINVAL") {
  const IoPgtableCfg cfg = s2_cfg(0x4100'0000);  // 48-bit IPA
  const SteNested host{.s2 = {.vmid = 7}};
  const uint64_t s1 = 0x1 | at(1, 0b101);
  struct Case {
    const char* what;
    uint64_t w0, w1;
  };
  const Case cases[] = {
      {"stage 2 requested", 0x1 | at(1, 0b110), 0},
      {"nested requested", 0x1 | at(1, 0b111), 0},
      {"split-stage ATS (EATS 0b10)", s1 | 0x1000, at(92, 0b10)},
      {"ATS with DPT (EATS 0b11)", s1 | 0x1000, at(92, 0b11)},
      {"a host field (S2FWB)", s1 | 0x1000, at(89, 1)},
      {"a host field (STRW)", s1 | 0x1000, at(94, 0b10)},
      {"a Reserved bit", s1 | 0x1000 | (uint64_t{1} << 56), 0},
      {"SW_RESERVED", s1 | 0x1000, at(84, 1)},
      {"S1CDMax beyond SSIDSIZE", s1 | 0x100000 | at(59, 21), 0},
      {"S1Fmt Reserved", s1 | 0x1000 | at(4, 0b11) | at(59, 2), 0},
      {"S1DSS Reserved", s1 | 0x1000 | at(59, 2), at(64, 0b11)},
      {"S1ContextPtr beyond the IPA space", s1 | (uint64_t{1} << 48), 0},
      {"S1ContextPtr misaligned for its table", s1 | 0x1040 | at(59, 2), 0},
      {"S1ContextPtr misaligned for a 2-level table", s1 | 0x1040 | at(4, 0b01) | at(59, 12), 0},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    GuestSte g;
    g.ste[0] = c.w0;
    g.ste[1] = c.w1;
    auto r = make_nested_ste(kFeatures, cfg, host, g);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == -EINVAL);
  }
  // Without 2-level CD table support, a 2-level S1Fmt is refused.
  GuestSte g;
  g.ste[0] = s1 | 0x1000 | at(4, 0b01) | at(59, 8);
  CHECK(make_nested_ste(kFeatures, cfg, host, g).ok());
  SteFeatures no_cd2l = kFeatures;
  no_cd2l.two_level_cdtab = false;
  CHECK(make_nested_ste(no_cd2l, cfg, host, g).error().code() == -EINVAL);
}

// ---------------------------------------------------------------------------------------------
// Used bits.

TEST_CASE("used bits: invalid, abort, bypass") {
  Words u = used_of(STE{});
  CHECK(u == Words{0x1});  // V only
  u = used_of(make_abort_ste());
  // V, Config and the CONT hint [80:77] (5.2.1); nothing else.
  CHECK(u == Words{0xf, at(77, 0xf)});
  u = used_of(make_bypass_ste(kFeatures));
  CHECK(uses<STE::SHCFG>(u));
  CHECK(uses<STE::MTCFG>(u));
  CHECK(uses<STE::ALLOCCFG>(u));
  CHECK(uses<STE::PRIVCFG>(u));
  CHECK(uses<STE::INSTCFG>(u));
  CHECK(ignores<STE::MemAttr>(u));  // RES0 with MTCFG == 0
  CHECK(ignores<STE::EATS>(u));     // Config[1:0] == 0b00
  CHECK(ignores<STE::STRW>(u));
  CHECK(ignores<STE::S1ContextPtr>(u));
  CHECK(ignores<STE::S1DSS>(u));
  CHECK(ignores<STE::S2VMID>(u));  // no translation, no VMID tagging
  CHECK(ignores<STE::S2TTB>(u));
  CHECK(ignores<STE::DRE>(u));
  CHECK(ignores<STE::NSCFG>(u));  // Non-secure STE
  CHECK(ignores<STE::SW_RESERVED>(u));
  CHECK(u[2] == 0);
  CHECK(u[3] == 0);
  STE mt = make_bypass_ste(kFeatures);
  mt.set<STE::MTCFG>(1);
  CHECK(uses<STE::MemAttr>(used_of(mt)));
}

TEST_CASE("used bits: stage 1") {
  STE s = make_cdtable_ste(kFeatures, SteCdTable{.cdtab = 0x1000});
  Words u = used_of(s);
  CHECK(uses<STE::S1ContextPtr>(u));
  CHECK(uses<STE::S1CDMax>(u));
  CHECK(ignores<STE::S1Fmt>(u));  // S1CDMax == 0
  CHECK(ignores<STE::S1DSS>(u));
  CHECK(uses<STE::S1CIR>(u));
  CHECK(uses<STE::S1STALLD>(u));
  CHECK(uses<STE::STRW>(u));
  CHECK(uses<STE::S2VMID>(u));    // NS-EL1 stage-1 translations are VMID-tagged
  CHECK(ignores<STE::SHCFG>(u));  // stage 1 gives Shareability
  CHECK(ignores<STE::S2S>(u));    // EATS 0b00
  CHECK(ignores<STE::S2TTB>(u));
  CHECK(ignores<STE::S2T0SZ>(u));
  CHECK(ignores<STE::S2PTW>(u));
  CHECK(uses<STE::EATS>(u));

  s.set<STE::S1CDMax>(4);
  u = used_of(s);
  CHECK(uses<STE::S1Fmt>(u));
  CHECK(uses<STE::S1DSS>(u));
  CHECK(ignores<STE::SHCFG>(u));
  s.set<STE::S1DSS>(smmuv3::kS1dssBypass);
  CHECK(uses<STE::SHCFG>(used_of(s)));

  // With full or split-stage ATS, S2S is checked even though stage 2 bypasses (5.2 V note).
  s.set<STE::EATS>(smmuv3::kEatsTrans);
  CHECK(uses<STE::S2S>(used_of(s)));
  // STRW == EL2: not NS-EL1, S2VMID IGNORED.
  s.set<STE::STRW>(smmuv3::kStrwEl2);
  CHECK(ignores<STE::S2VMID>(used_of(s)));
}

TEST_CASE("used bits: stage 2 and nested") {
  const IoPgtableCfg cfg = s2_cfg(0x4100'0000);
  STE s = make_s2_domain_ste(kFeatures, cfg, SteS2Domain{.vmid = 3});
  Words u = used_of(s);
  CHECK(uses<STE::S2VMID>(u));
  CHECK(uses<STE::S2TTB>(u));
  CHECK(uses<STE::S2T0SZ>(u));
  CHECK(uses<STE::S2R>(u));
  CHECK(uses<STE::S2S>(u));
  CHECK(uses<STE::S2AFFD>(u));
  CHECK(uses<STE::SHCFG>(u));  // stage 2 only combines SHCFG with the descriptor's SH
  CHECK(uses<STE::S2FWB>(u));
  CHECK(ignores<STE::S2PTW>(u));  // Config[1:0] != 0b11
  CHECK(ignores<STE::STRW>(u));
  CHECK(ignores<STE::S1ContextPtr>(u));
  CHECK(ignores<STE::S1CIR>(u));
  CHECK(ignores<STE::S2SKL>(u));  // VMSAv8-64
  CHECK(uses<STE::S2DS>(u));
  CHECK(ignores<STE::S2POI>(u));  // S2POE == 0
  s.set<STE::S2HA>(1);
  CHECK(ignores<STE::S2AFFD>(used_of(s)));

  s.set<STE::Config>(smmuv3::kConfigNested);
  u = used_of(s);
  CHECK(uses<STE::S2PTW>(u));
  CHECK(uses<STE::S1ContextPtr>(u));
  CHECK(ignores<STE::STRW>(u));
  CHECK(ignores<STE::SHCFG>(u));
  CHECK(ignores<STE::VMSPtr>(u));  // S1MPAM == 0
}

// The protocol of entry_writer.h writes bits an entry does not use at any time, so which bits
// are used must not depend on them: a decision taken on an IGNORED field would let such a
// write change the configuration.
TEST_CASE("used bits depend only on used bits") {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 20000; round++) {
    Words e;
    for (auto& w : e) w = rng();
    if (round % 4 != 0) e[0] |= 1;  // mostly valid
    Words u;
    ste_get_used(e.data(), u.data());
    Words other;
    for (unsigned i = 0; i < kEntryQwords; i++) other[i] = (e[i] & u[i]) | (rng() & ~u[i]);
    Words u2;
    ste_get_used(other.data(), u2.data());
    CHECK(u2 == u);
  }
}

// ---------------------------------------------------------------------------------------------
// Transitions through write_entry.

// Records what the SMMU could read: at each sync, every mix of the words changed since the
// previous one.
struct Recorder final : EntryWriter {
  uint64_t* mem;
  Words synced;
  std::vector<Words> observable;
  unsigned syncs = 0;

  explicit Recorder(uint64_t* m) : mem(m) {
    for (unsigned i = 0; i < kEntryQwords; i++) synced[i] = dma_read64(mem + i);
    observable.push_back(synced);
  }
  void get_used(const uint64_t* entry, uint64_t* used) const override { ste_get_used(entry, used); }
  void sync() override {
    syncs++;
    Words now;
    std::vector<unsigned> changed;
    for (unsigned i = 0; i < kEntryQwords; i++) {
      now[i] = dma_read64(mem + i);
      if (now[i] != synced[i]) changed.push_back(i);
    }
    for (uint32_t mask = 0; mask < (1u << changed.size()); mask++) {
      Words mix = synced;
      for (size_t b = 0; b < changed.size(); b++)
        if (mask & (1u << b)) mix[changed[b]] = now[changed[b]];
      observable.push_back(mix);
    }
    synced = now;
  }
};

// The entry as the SMMU acts on it: its used bits only.
Words effective(const Words& e) {
  Words u, out;
  ste_get_used(e.data(), u.data());
  for (unsigned i = 0; i < kEntryQwords; i++) out[i] = e[i] & u[i];
  return out;
}

EntryWriteStats transition(const STE& from, const STE& to) {
  alignas(64) uint64_t mem[kEntryQwords];
  const Words old = words_of(from), target = words_of(to);
  for (unsigned i = 0; i < kEntryQwords; i++) dma_write64(mem + i, old[i]);
  Recorder rec(mem);
  const EntryWriteStats stats = write_entry(rec, mem, target.data());
  for (unsigned i = 0; i < kEntryQwords; i++) CHECK(dma_read64(mem + i) == target[i]);
  CHECK(stats.syncs == rec.syncs);
  const Words eo = effective(old), et = effective(target);
  for (const Words& seen : rec.observable) {
    const Words e = effective(seen);
    const bool invalid = (e[0] & 1) == 0;
    CHECK((e == eo || e == et || (!stats.hitless && invalid)));
  }
  return stats;
}

struct Expect {
  bool hitless;
  unsigned syncs;
};
void check_transition(const char* what, const STE& from, const STE& to, Expect e) {
  CAPTURE(what);
  const EntryWriteStats s = transition(from, to);
  CHECK(s.hitless == e.hitless);
  CHECK(s.syncs == e.syncs);
}

TEST_CASE("transitions the driver makes") {
  const STE abort = make_abort_ste();
  const STE bypass = make_bypass_ste(kFeatures);
  const STE s1 = make_cdtable_ste(kFeatures, SteCdTable{.cdtab = 0x4000'0000});
  const STE s1b = make_cdtable_ste(kFeatures, SteCdTable{.cdtab = 0x4000'1000});
  const STE s1_ssid = make_cdtable_ste(
      kFeatures, SteCdTable{.cdtab = 0x4001'0000, .s1cdmax = 10, .s1dss = smmuv3::kS1dssBypass});
  const STE s1_ats = make_cdtable_ste(kFeatures, SteCdTable{.cdtab = 0x4000'0000, .ats = true});
  const IoPgtableCfg t1 = s2_cfg(0x4100'0000), t2 = s2_cfg(0x4200'0000);
  const STE s2a = make_s2_domain_ste(kFeatures, t1, SteS2Domain{.vmid = 3});
  const STE s2b = make_s2_domain_ste(kFeatures, t2, SteS2Domain{.vmid = 3});
  const STE s2c = make_s2_domain_ste(kFeatures, t2, SteS2Domain{.vmid = 4});
  GuestSte g;
  g.ste[0] = 0x1 | at(1, 0b101) | 0x8000'0000;
  const STE nested = make_nested_ste(kFeatures, t1, SteNested{.s2 = {.vmid = 3}}, g).value();

  // Word 1 (bypass's SHCFG, which abort ignores) first, then word 0.
  check_transition("abort -> bypass", abort, bypass, {true, 2});
  // Word 0, then SHCFG cleared (bypass used it).
  check_transition("bypass -> abort", bypass, abort, {true, 2});
  check_transition("abort -> stage 1", abort, s1, {true, 2});
  check_transition("stage 1 -> abort", s1, abort, {true, 2});
  check_transition("bypass -> stage 1", bypass, s1, {true, 3});
  check_transition("stage 1 -> bypass", s1, bypass, {true, 3});
  // A new CD table: S1ContextPtr in word 0, nothing else.
  check_transition("stage 1 CD table pointer", s1, s1b, {true, 1});
  // Substreams on: S1DSS and SHCFG (IGNORED before) first, then word 0.
  check_transition("stage 1 -> stage 1 with substreams", s1, s1_ssid, {true, 2});
  check_transition("stage 1 with substreams -> stage 1", s1_ssid, s1, {true, 2});
  // EATS alone (word 1).
  check_transition("stage 1 ATS on", s1, s1_ats, {true, 1});
  check_transition("stage 1 ATS off", s1_ats, s1, {true, 1});
  // A new stage-2 table, same VMID: S2TTB in word 3.
  check_transition("stage 2 table change", s2a, s2b, {true, 1});
  check_transition("abort -> stage 2", abort, s2a, {true, 2});
  check_transition("bypass -> stage 2", bypass, s2a, {true, 2});
  check_transition("stage 2 -> bypass", s2a, bypass, {true, 2});
  // The guest installs and removes its stage 1 over the same stage 2: word 0 only is
  // critical (S2PTW, IGNORED by stage 2 only, goes first or last).
  check_transition("stage 2 -> nested", s2a, nested, {true, 3});
  check_transition("nested -> stage 2", nested, s2a, {true, 3});
  check_transition("invalid -> stage 2", STE{}, s2a, {true, 2});
  check_transition("unchanged", s2a, s2a, {true, 0});

  // Two used words change together: no hitless order exists.
  check_transition("stage 2 table and VMID", s2a, s2c, {false, 3});
  // Stage 1's S2VMID 0 against stage 2's VMID 3, with Config: words 0 and 2.
  check_transition("stage 1 -> stage 2", s1, s2a, {false, 3});
}

}  // namespace
}  // namespace strata::arm_smmu_v3
