// SPDX-License-Identifier: MIT
// The CD library without an SMMU: the builder's fields against values typed in from IHI 0070
// 5.4 and against a real io-pgtable's outputs; the used bits per configuration; what the entry
// writer makes of CD changes (every mix of words the SMMU could read between two syncs is the
// old CD, the new one, or, for break-before-make only, an invalid one); CD table layouts decoded
// from simulated memory as the SMMU walks them; lazy leaf allocation under concurrent first
// writes; allocation failures; and the iommu-pasid-table contract through PasidTable.
// cd_lib_model_test.cc runs the library against the SMMUv3 model.
#include "drivers/iommu/arm/arm-smmu-v3/cd_lib.h"

#include <stdint.h>

#include <array>
#include <atomic>
#include <barrier>
#include <functional>
#include <memory>
#include <mutex>
#include <ostream>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "arch/dma.h"
#include "arch/smmuv3/cd.h"
#include "arch/smmuv3/ste.h"
#include "core/io-pgtable/io_pgtable.h"
#include "core/pasid-table/pasid_table.h"
#include "drivers/iommu/arm/arm-smmu-v3/cd_pasid_table.h"
#include "drivers/iommu/arm/arm-smmu-v3/cd_table.h"
#include "drivers/iommu/arm/arm-smmu-v3/entry_writer.h"
#include "testing/hosted/hosted.h"
#include "testing/models/platform/platform.h"

namespace strata::arm_smmu_v3 {
namespace {

using smmuv3::CD;
using smmuv3::L1CD;
using Words = std::array<uint64_t, kEntryQwords>;

Words words_of(const CD& cd) {
  Words w;
  for (unsigned i = 0; i < kEntryQwords; i++) w[i] = cd.word(i);
  return w;
}
Words used_of(const Words& w) {
  Words u;
  cd_get_used(w.data(), u.data());
  return u;
}
// The CD as the SMMU acts on it: its used bits only.
Words effective(const Words& w) {
  const Words u = used_of(w);
  Words e;
  for (unsigned i = 0; i < kEntryQwords; i++) e[i] = w[i] & u[i];
  return e;
}

// A stage-1 description with every field distinct.
PasidStage1 sample_s1(uint64_t ttbr = 0x40'1234'5000, uint32_t asid = 0x1234) {
  PasidStage1 s1 = {};
  s1.pgtable_fmt = IoPgtableFmt::arm_64_lpae_s1;
  s1.ttbr = ttbr;
  s1.tcr = {.t0sz = 16, .tg0 = 0, .irgn0 = 1, .orgn0 = 1, .sh0 = 3, .ips = 5};
  s1.mair = 0x0000'00ff'0004'ff44;
  s1.asid = asid;
  return s1;
}
CD cd_for(const PasidStage1& s1, const CdS1Options& o = {}) {
  auto r = make_s1_cd(s1, o);
  REQUIRE(r.ok());
  return r.value();
}

// Records every invalidation, and optionally runs a hook (under its lock) or fails.
struct RecordingInvalidator final : CdInvalidator {
  struct Call {
    uint32_t ssid;
    bool leaf;
    bool operator==(const Call&) const = default;
  };
  Result<void> cfgi_cd(uint32_t ssid, bool leaf) override {
    std::lock_guard g(mu);
    calls.push_back({ssid, leaf});
    if (hook) hook(ssid, leaf);
    if (fail) return Error(fail);
    return ok();
  }
  std::vector<Call> take() {
    std::lock_guard g(mu);
    return std::exchange(calls, {});
  }
  std::mutex mu;
  std::vector<Call> calls;
  std::function<void(uint32_t, bool)> hook;
  int fail = 0;  // a negative errno to fail every call with
};

std::ostream& operator<<(std::ostream& os, const RecordingInvalidator::Call& c) {
  return os << "{" << c.ssid << (c.leaf ? ", leaf}" : ", non-leaf}");
}

using Calls = std::vector<RecordingInvalidator::Call>;

struct Fixture {
  Fixture() : platform(sim::Platform::create().release_value()) {}
  ~Fixture() {
    hosted::fail_kmalloc_nth(-1);
    platform->dma().fail_nth(-1);
  }
  CdTableCfg cfg(unsigned s1cdmax, bool two_level, bool coherent = true) {
    return {
        .s1cdmax = s1cdmax, .two_level = two_level, .dma = &platform->dma(), .coherent = coherent};
  }
  Box<CdTable> table(unsigned s1cdmax, bool two_level) {
    auto t = CdTable::alloc(cfg(s1cdmax, two_level), inv);
    REQUIRE(t.ok());
    return t.release_value();
  }
  uint64_t read64(phys_addr_t pa) { return platform->mem().read64(pa).value(); }
  // The CD of `ssid` as the SMMU finds it from STE.S1ContextPtr (5.2 S1Fmt, 5.3): its address,
  // or 0 when the L1CD on the way is invalid.
  phys_addr_t walk(phys_addr_t base, unsigned s1cdmax, uint64_t s1fmt, uint32_t ssid) {
    if (s1fmt == smmuv3::kS1FmtLinear) return base + uint64_t{ssid} * 64;
    REQUIRE(s1fmt == smmuv3::kS1Fmt64KL2);
    const unsigned split = smmuv3::kCdL2Bits64K;
    L1CD d;
    d.set_word(0, read64(base + uint64_t{ssid >> split} * 8));
    (void)s1cdmax;
    if (!d.get<L1CD::V>()) return 0;
    return d.get<L1CD::L2Ptr>() + uint64_t{ssid & ((1u << split) - 1)} * 64;
  }
  Words cd_in_memory(const CdTable& t, uint32_t ssid) {
    const phys_addr_t pa = walk(t.base(), t.s1cdmax(), t.s1fmt(), ssid);
    Words w{};
    if (!pa) return w;
    for (unsigned i = 0; i < kEntryQwords; i++) w[i] = read64(pa + i * 8);
    return w;
  }

  std::unique_ptr<sim::Platform> platform;
  RecordingInvalidator inv;
};

// ---------------------------------------------------------------------------------------------
// The builder.

TEST_CASE("make_s1_cd: every field, typed in from IHI 0070 5.4") {
  PasidStage1 s1 = sample_s1();
  s1.flags = PASID_S1_HW_DIRTY | PASID_S1_COHERENT_WALK;
  const CD cd = cd_for(s1);
  CHECK(cd.get<CD::T0SZ>() == 16);
  CHECK(cd.get<CD::TG0>() == smmuv3::kTg0_4K);
  CHECK(cd.get<CD::IR0>() == smmuv3::kWalkWbRaWa);
  CHECK(cd.get<CD::OR0>() == smmuv3::kWalkWbRaWa);
  CHECK(cd.get<CD::SH0>() == smmuv3::kShIsh);
  CHECK(cd.get<CD::EPD0>() == 0);
  CHECK(cd.get<CD::EPD1>() == 1);
  CHECK(cd.get<CD::ENDI>() == 0);
  CHECK(cd.get<CD::V>() == 1);
  CHECK(cd.get<CD::IPS>() == smmuv3::kAddrSize48);
  CHECK(cd.get<CD::AA64>() == 1);
  CHECK(cd.get<CD::HD>() == 1);
  CHECK(cd.get<CD::HA>() == 1);
  CHECK(cd.get<CD::S>() == 0);
  CHECK(cd.get<CD::R>() == 1);
  CHECK(cd.get<CD::A>() == 1);
  CHECK(cd.get<CD::ASET>() == 1);
  CHECK(cd.get<CD::ASID>() == 0x1234);
  CHECK(cd.get<CD::TTB0>() == 0x40'1234'5000);
  CHECK(cd.get<CD::MAIR0>() == 0x0004'ff44);
  CHECK(cd.get<CD::MAIR1>() == 0xff);
  CHECK(cd.get<CD::TTB1>() == 0);
  // The words, assembled by hand from the bit positions of 5.4:
  //   word 0: T0SZ 16 [5:0] = 0x10, IR0 1 [9:8] = 0x100, OR0 1 [11:10] = 0x400, SH0 3 [13:12]
  //   = 0x3000, EPD1 [30] and V [31] = 0xc0000000, IPS 5 [34:32], AA64 [41], HD [42], HA [43]
  //   = 0xe, R [45], A [46], ASET [47] = 0xe, ASID [63:48] = 0x1234.
  //   word 1: TTB0 in place at [55:4] of the word (bits [119:68]).
  //   word 3: MAIR0 [223:192] and MAIR1 [255:224], i.e. MAIR_ELx as one 64-bit word.
  const Words expect = {
      0x1234'ee05'c000'3510, 0x0000'0040'1234'5000, 0, 0x0000'00ff'0004'ff44, 0, 0, 0, 0};
  CHECK(words_of(cd) == expect);

  // The options: S [44]; ASET [47] clear for an ASID shared with the PE.
  const CD stall = cd_for(s1, {.stall = true, .shared_asid = true});
  CHECK(stall.word(0) == ((expect[0] | (uint64_t{1} << 44)) & ~(uint64_t{1} << 47)));
  // Without hardware dirty state: HA and HD clear.
  s1.flags = 0;
  CHECK(cd_for(s1).word(0) == (expect[0] & ~(uint64_t{0xc} << 40)));
}

TEST_CASE_FIXTURE(Fixture, "make_s1_cd from a real io-pgtable stage-1 configuration") {
  struct Case {
    uint64_t pgsizes;
    unsigned ias, oas;
    bool coherent;
    uint64_t quirks;
    uint64_t tg0, ips, ir, sh;
    unsigned t0sz;
  };
  const Case cases[] = {
      // 4K, 48-bit: inner-shareable write-back walks (io-pgtable's coherent choice).
      {SZ_4K | SZ_2M | SZ_1G, 48, 48, true, 0, smmuv3::kTg0_4K, smmuv3::kAddrSize48,
       smmuv3::kWalkWbRaWa, smmuv3::kShIsh, 16},
      // 16K and 64K granules, a 39-bit input and a 40-bit output, dirty tracking.
      {SZ_16K | SZ_32M, 39, 40, true, IO_PGTABLE_QUIRK_DIRTY, smmuv3::kTg0_16K, smmuv3::kAddrSize40,
       smmuv3::kWalkWbRaWa, smmuv3::kShIsh, 25},
      {SZ_64K | SZ_512M, 48, 52, true, 0, smmuv3::kTg0_64K, smmuv3::kAddrSize52,
       smmuv3::kWalkWbRaWa, smmuv3::kShIsh, 16},
      // Non-coherent walks: non-cacheable, outer-shareable.
      {SZ_4K | SZ_2M, 48, 48, false, 0, smmuv3::kTg0_4K, smmuv3::kAddrSize48, smmuv3::kWalkNc,
       smmuv3::kShOsh, 16},
  };
  for (const Case& c : cases) {
    CAPTURE(c.pgsizes);
    IoPgtableCfg cfg;
    cfg.pgsize_bitmap = c.pgsizes;
    cfg.ias = c.ias;
    cfg.oas = c.oas;
    cfg.coherent_walk = c.coherent;
    cfg.quirks = c.quirks;
    cfg.dma = &platform->dma();
    auto pt = IoPgtable::alloc(IoPgtableFmt::arm_64_lpae_s1, cfg);
    REQUIRE(pt.ok());
    auto made = make_s1_cd(cfg, 42);
    REQUIRE(made.ok());
    const CD cd = made.value();
    CHECK(cd.get<CD::T0SZ>() == c.t0sz);  // 64 - ias
    CHECK(cd.get<CD::TG0>() == c.tg0);
    CHECK(cd.get<CD::IPS>() == c.ips);
    CHECK(cd.get<CD::IR0>() == c.ir);
    CHECK(cd.get<CD::OR0>() == c.ir);
    CHECK(cd.get<CD::SH0>() == c.sh);
    CHECK(cd.get<CD::TTB0>() == cfg.arm_lpae_s1.ttbr);
    CHECK(cd.get<CD::TTB0>() != 0);
    CHECK((cd.get<CD::MAIR1>() << 32 | cd.get<CD::MAIR0>()) == cfg.arm_lpae_s1.mair);
    CHECK(cd.get<CD::ASID>() == 42);
    CHECK(cd.get<CD::HA>() == (c.quirks ? 1 : 0));
    CHECK(cd.get<CD::HD>() == (c.quirks ? 1 : 0));
    CHECK(cd.get<CD::EPD1>() == 1);
    CHECK(cd.get<CD::V>() == 1);
  }
}

TEST_CASE("make_s1_cd refuses what a CD cannot hold, building nothing") {
  auto refused = [](PasidStage1 s1) {
    auto r = make_s1_cd(s1);
    return !r.ok() && r.error().code() == -EINVAL;
  };
  PasidStage1 s1 = sample_s1();
  REQUIRE(make_s1_cd(s1).ok());
  s1.pgtable_fmt = IoPgtableFmt::intel_vtd_fl;
  CHECK(refused(s1));
  s1.pgtable_fmt = IoPgtableFmt::arm_64_lpae_s2;
  CHECK(refused(s1));
  s1 = sample_s1();
  s1.flags = 1u << 7;
  CHECK(refused(s1));
  s1 = sample_s1();
  s1.tcr.t0sz = 64;
  CHECK(refused(s1));
  s1 = sample_s1();
  s1.tcr.tg0 = 0b11;  // Reserved
  CHECK(refused(s1));
  s1 = sample_s1();
  s1.tcr.sh0 = 0b01;  // Reserved
  CHECK(refused(s1));
  s1 = sample_s1();
  s1.tcr.irgn0 = 4;
  CHECK(refused(s1));
  s1 = sample_s1();
  s1.tcr.ips = 8;
  CHECK(refused(s1));
  s1 = sample_s1(0x40'1234'5008);  // TTB0 [3:0] are implied zero
  CHECK(refused(s1));
  s1 = sample_s1(uint64_t{1} << 52);  // VMSAv8-64 TTB0 is [51:4]
  CHECK(refused(s1));
  s1 = sample_s1(0x1000, 0x10000);  // 16-bit ASIDs
  CHECK(refused(s1));
}

// ---------------------------------------------------------------------------------------------
// Used bits.

TEST_CASE("cd_get_used: V == 0 uses only V, whatever else is set (5.4 V)") {
  Words garbage;
  for (unsigned i = 0; i < kEntryQwords; i++) garbage[i] = 0x0123'4567'89ab'cdef * (i + 1);
  garbage[0] &= ~CD::V::kMask;
  const Words u = used_of(garbage);
  CHECK(u == Words{CD::V::kMask, 0, 0, 0, 0, 0, 0, 0});
}

TEST_CASE("cd_get_used: the builder's CD, word by word") {
  // EPD1 == 1: T1SZ, TG1, IR1, OR1, SH1 [29:16] and TTB1 unused. AA64 == 1: UWXN [37] unused,
  // and with HAD0 == HAD1 == 0 the HWU bits [127:124] and [191:188]. NSCFG0 [64] and NSCFG1
  // [128] are Secure-only. Without HA, AFFD [35] is used.
  const Words clean = words_of(cd_for(sample_s1()));
  const Words expect = {~(uint64_t{0x3fff} << 16 | uint64_t{1} << 37),
                        ~(uint64_t{0xf} << 60 | 1),
                        ~(uint64_t{0xf} << 60 | 0x00ff'ffff'ffff'fff0 | 1),
                        ~uint64_t{0},
                        ~uint64_t{0},
                        ~uint64_t{0},
                        ~uint64_t{0},
                        ~uint64_t{0}};
  CHECK(used_of(clean) == expect);
  // HA == 1: AFFD [35] is IGNORED too.
  PasidStage1 s1 = sample_s1();
  s1.flags = PASID_S1_HW_DIRTY;
  Words dirty_expect = expect;
  dirty_expect[0] &= ~(uint64_t{1} << 35);
  CHECK(used_of(words_of(cd_for(s1))) == dirty_expect);
}

template <typename F>
bool is_used(const Words& u) {
  return (u[F::kWord] & F::kMask) == F::kMask;
}
template <typename F>
bool is_unused(const Words& u) {
  return (u[F::kWord] & F::kMask) == 0;
}

TEST_CASE("cd_get_used: EPD0, EPD1, ENDI, HAD and AA64 rules") {
  CD cd = cd_for(sample_s1());
  auto used = [](const CD& c) { return used_of(words_of(c)); };

  // TTB0 walks on, TTB1 off (the builder's).
  Words u = used(cd);
  CHECK(is_used<CD::TTB0>(u));
  CHECK(is_used<CD::T0SZ>(u));
  CHECK(is_unused<CD::TTB1>(u));
  CHECK(is_unused<CD::TG1>(u));
  CHECK(is_used<CD::ENDI>(u));
  CHECK(is_used<CD::TBI1>(u));  // not among EPD1's fields (5.4 EPD1)
  CHECK(is_used<CD::HAD1>(u));

  // EPD0 == 1, EPD1 == 0: the other way round.
  cd.set<CD::EPD0>(1).set<CD::EPD1>(0);
  u = used(cd);
  for (bool unused : {is_unused<CD::TTB0>(u), is_unused<CD::T0SZ>(u), is_unused<CD::TG0>(u),
                      is_unused<CD::IR0>(u), is_unused<CD::OR0>(u), is_unused<CD::SH0>(u)})
    CHECK(unused);
  CHECK(is_used<CD::TTB1>(u));
  CHECK(is_used<CD::T1SZ>(u));
  CHECK(is_used<CD::SH1>(u));
  CHECK(is_used<CD::ENDI>(u));

  // Both: no table is walked, ENDI is IGNORED (5.4 ENDI); MAIR stays used.
  cd.set<CD::EPD1>(1);
  u = used(cd);
  CHECK(is_unused<CD::ENDI>(u));
  CHECK(is_unused<CD::TTB0>(u));
  CHECK(is_unused<CD::TTB1>(u));
  CHECK(is_used<CD::MAIR0>(u));
  CHECK(is_used<CD::ASID>(u));

  // HAD0 == 1: HWU059-HWU062 used; HAD1 == 1: HWU159-HWU162.
  cd = cd_for(sample_s1());
  CHECK(is_unused<CD::HWU061>(used(cd)));
  cd.set<CD::HAD0>(1);
  CHECK(is_used<CD::HWU059>(used(cd)));
  CHECK(is_used<CD::HWU062>(used(cd)));
  CHECK(is_unused<CD::HWU160>(used(cd)));
  cd.set<CD::HAD1>(1);
  CHECK(is_used<CD::HWU160>(used(cd)));

  // AA64 == 0 (VMSAv8-32 LPAE or VMSAv9-128, undecidable from the CD): UWXN and the HWU/SKL
  // bits count as used.
  cd = cd_for(sample_s1());
  cd.set<CD::AA64>(0);
  u = used(cd);
  CHECK(is_used<CD::UWXN>(u));
  CHECK(is_used<CD::HWU061>(u));
  CHECK(is_used<CD::HWU162>(u));
  // NSCFG never (Non-secure streams).
  CHECK(is_unused<CD::NSCFG0>(u));
  CHECK(is_unused<CD::NSCFG1>(u));
  // Reserved bits [121:120] count as used: an SMMU may find the CD ILLEGAL with them set.
  CHECK((u[1] & (uint64_t{3} << 56)) == uint64_t{3} << 56);
}

// ---------------------------------------------------------------------------------------------
// Hitless transitions, observed at every invalidation.

// At each CMD_CFGI_CD, every entry the SMMU could have read since the previous one: each mix of
// the words written in between.
struct Observer {
  explicit Observer(Fixture& f, CdTable& t, uint32_t ssid) : table(t), ssid(ssid) {
    t.read_cd(ssid, synced.data());
    observable.push_back(synced);
    f.inv.hook = [this](uint32_t s, bool) {
      if (s != this->ssid) return;
      Words now;
      table.read_cd(this->ssid, now.data());
      std::vector<unsigned> changed;
      for (unsigned i = 0; i < kEntryQwords; i++)
        if (now[i] != synced[i]) changed.push_back(i);
      for (uint32_t mask = 0; mask < (1u << changed.size()); mask++) {
        Words mix = synced;
        for (size_t b = 0; b < changed.size(); b++)
          if (mask & (1u << b)) mix[changed[b]] = now[changed[b]];
        observable.push_back(mix);
      }
      synced = now;
    };
  }
  CdTable& table;
  const uint32_t ssid;
  Words synced;
  std::vector<Words> observable;
};

struct Transition {
  EntryWriteStats stats;
  unsigned invalidations;
  bool saw_invalid;  // some observable mix was an invalid CD (C_BAD_CD for traffic)
};

// Writes `from`, then `to`, and checks what the SMMU could observe during the second write.
Transition transition(Fixture& f, const CD& from, const CD& to) {
  Box<CdTable> t = f.table(4, false);
  REQUIRE(t->write_cd(3, from).ok());
  f.inv.take();
  Observer obs(f, *t, 3);
  auto r = t->write_cd(3, to);
  REQUIRE(r.ok());
  f.inv.hook = nullptr;
  Transition out{r.value().entry, static_cast<unsigned>(f.inv.take().size()), false};
  CHECK(f.cd_in_memory(*t, 3) == words_of(to));
  const Words eo = effective(words_of(from)), et = effective(words_of(to)), invalid{};
  for (const Words& seen : obs.observable) {
    const Words e = effective(seen);
    const bool is_invalid = e == invalid;
    out.saw_invalid |= is_invalid;
    const bool fine = e == eo || e == et || (!out.stats.hitless && is_invalid);
    CHECK(fine);
  }
  return out;
}

TEST_CASE_FIXTURE(Fixture,
                  "hitless: a new TTB0 with the same ASID is one store, one invalidation") {
  const Transition tr =
      transition(*this, cd_for(sample_s1(0x40'0000'1000, 5)), cd_for(sample_s1(0x40'0000'2000, 5)));
  CHECK(tr.stats.hitless);
  CHECK(tr.invalidations == 1);
  CHECK_FALSE(tr.saw_invalid);
}

TEST_CASE_FIXTURE(Fixture, "hitless: a new ASID alone (word 0), HA/HD toggled (word 0)") {
  Transition tr = transition(*this, cd_for(sample_s1(0x1000, 5)), cd_for(sample_s1(0x1000, 6)));
  CHECK(tr.stats.hitless);
  CHECK(tr.invalidations == 1);
  PasidStage1 dirty = sample_s1(0x1000, 5);
  dirty.flags = PASID_S1_HW_DIRTY;
  tr = transition(*this, cd_for(sample_s1(0x1000, 5)), cd_for(dirty));
  CHECK(tr.stats.hitless);
  CHECK(tr.invalidations == 1);
}

TEST_CASE_FIXTURE(Fixture, "break-before-make: ASID and TTB0 together, or TCR and TTB0") {
  // Word 0 (ASID) and word 1 (TTB0) both decide: no order is safe, so V goes to 0 first and
  // traffic meanwhile sees an invalid CD (C_BAD_CD): three invalidations.
  Transition tr = transition(*this, cd_for(sample_s1(0x1000, 5)), cd_for(sample_s1(0x2000, 6)));
  CHECK_FALSE(tr.stats.hitless);
  CHECK(tr.invalidations == 3);
  CHECK(tr.saw_invalid);
  // A new T0SZ (word 0) with a new table (word 1): the same.
  PasidStage1 wide = sample_s1(0x2000, 5);
  wide.tcr.t0sz = 25;
  tr = transition(*this, cd_for(sample_s1(0x1000, 5)), cd_for(wide));
  CHECK_FALSE(tr.stats.hitless);
  CHECK(tr.invalidations == 3);
}

TEST_CASE_FIXTURE(Fixture, "installing a CD: filled, invalidated, then V (3.21.3.1)") {
  Box<CdTable> t = table(4, false);
  Observer obs(*this, *t, 2);
  const CD cd = cd_for(sample_s1());
  auto r = t->write_cd(2, cd);
  REQUIRE(r.ok());
  inv.hook = nullptr;
  CHECK(r.value().entry.hitless);
  CHECK(inv.take() == Calls{{2, true}, {2, true}});
  for (const Words& seen : obs.observable) {
    const Words e = effective(seen);
    CHECK((e == Words{} || e == effective(words_of(cd))));
  }
}

TEST_CASE_FIXTURE(Fixture, "clearing a CD: V first, one invalidation, then zeros") {
  Box<CdTable> t = table(4, false);
  const CD cd = cd_for(sample_s1());
  REQUIRE(t->write_cd(7, cd).ok());
  inv.take();
  Observer obs(*this, *t, 7);
  REQUIRE(t->clear_cd(7).ok());
  inv.hook = nullptr;
  CHECK(inv.take() == Calls{{7, true}});
  // What the SMMU could see at the invalidation: the old CD or an invalid one; the zeroing of
  // the other words came after it.
  for (const Words& seen : obs.observable) {
    const Words e = effective(seen);
    CHECK((e == Words{} || e == effective(words_of(cd))));
  }
  CHECK(cd_in_memory(*t, 7) == Words{});
  // Clearing an invalid CD does nothing.
  REQUIRE(t->clear_cd(7).ok());
  CHECK(inv.take().empty());
}

// ---------------------------------------------------------------------------------------------
// Layouts, decoded from memory.

TEST_CASE_FIXTURE(Fixture, "linear tables: one CD, and 2^s1cdmax CDs aligned to the table size") {
  Box<CdTable> one = table(0, false);
  CHECK(one->nr_cds() == 1);
  CHECK(one->s1fmt() == smmuv3::kS1FmtLinear);
  CHECK(one->base() % 64 == 0);
  const CD cd = cd_for(sample_s1());
  REQUIRE(one->write_cd(0, cd).ok());
  CHECK(cd_in_memory(*one, 0) == words_of(cd));
  CHECK(one->write_cd(1, cd).error().code() == -ERANGE);
  CHECK(one->clear_cd(1).error().code() == -ERANGE);
  CHECK(one->sync_cd(1, true).error().code() == -ERANGE);

  // A two-level request for 1024 CDs is served linear (a root would only add a fetch).
  Box<CdTable> t = table(10, true);
  CHECK_FALSE(t->two_level());
  CHECK(t->s1fmt() == smmuv3::kS1FmtLinear);
  CHECK(t->base() % (1024 * 64) == 0);
  REQUIRE(t->write_cd(1023, cd).ok());
  CHECK(cd_in_memory(*t, 1023) == words_of(cd));
  for (unsigned i = 0; i < kEntryQwords; i++)
    CHECK(read64(t->base() + 1023 * 64 + i * 8) == cd.word(i));
  CHECK(cd_in_memory(*t, 1022) == Words{});
}

TEST_CASE_FIXTURE(Fixture, "2-level tables: L1CDs valid only for written leaves, V and L2Ptr") {
  const size_t live = platform->dma().live_allocations();
  Box<CdTable> t = table(12, true);
  CHECK(t->two_level());
  CHECK(t->s1fmt() == smmuv3::kS1Fmt64KL2);
  CHECK(t->nr_cds() == 4096);
  CHECK(t->base() % 64 == 0);  // 4 L1CDs: 32 bytes, aligned to 64 (5.2 S1Fmt)
  CHECK(platform->dma().live_allocations() == live + 1);  // leaves come later
  for (unsigned l = 0; l < 4; l++) CHECK(read64(t->base() + l * 8) == 0);

  const CD a = cd_for(sample_s1(0x1000, 1)), b = cd_for(sample_s1(0x2000, 2));
  auto r = t->write_cd(1030, a);  // leaf 1, index 6
  REQUIRE(r.ok());
  CHECK_FALSE(r.value().l1cd_sync_needed);
  // The leaf was unreachable while the CD was written: the one invalidation is the L1CD's.
  CHECK(inv.take() == Calls{{1030, false}});
  CHECK(platform->dma().live_allocations() == live + 2);
  L1CD d;
  d.set_word(0, read64(t->base() + 8));
  CHECK(d.get<L1CD::V>() == 1);
  CHECK(d.get<L1CD::L2Ptr>() % (64 * 1024) == 0);  // 64KB-aligned leaf
  CHECK(d.word(0) == (d.get<L1CD::L2Ptr>() | 1));  // nothing else set (Reserved bits zero)
  for (unsigned i = 0; i < kEntryQwords; i++)
    CHECK(read64(d.get<L1CD::L2Ptr>() + 6 * 64 + i * 8) == a.word(i));
  for (unsigned l : {0u, 2u, 3u}) CHECK(read64(t->base() + l * 8) == 0);

  // Another CD of the same leaf: the leaf is there, the CD goes through the full protocol.
  REQUIRE(t->write_cd(1031, b).ok());
  CHECK(inv.take() == Calls{{1031, true}, {1031, true}});
  CHECK(cd_in_memory(*t, 1031) == words_of(b));
  CHECK(platform->dma().live_allocations() == live + 2);

  // The last SubstreamID, in leaf 3.
  REQUIRE(t->write_cd(4095, b).ok());
  CHECK(inv.take() == Calls{{4095, false}});
  CHECK(cd_in_memory(*t, 4095) == words_of(b));
  CHECK(t->write_cd(4096, b).error().code() == -ERANGE);
  // Clearing in an absent leaf: nothing to clear, nothing allocated.
  REQUIRE(t->clear_cd(5).ok());
  CHECK(inv.take().empty());
  CHECK(read64(t->base()) == 0);
  CHECK(platform->dma().live_allocations() == live + 3);
  t.reset();
  CHECK(platform->dma().live_allocations() == live);
}

TEST_CASE_FIXTURE(Fixture, "2-level at the SubstreamID maximum: 1024 L1CDs in 8KB") {
  Box<CdTable> t = table(20, true);
  CHECK(t->nr_cds() == 1u << 20);
  CHECK(t->base() % 8192 == 0);
  const CD cd = cd_for(sample_s1());
  REQUIRE(t->write_cd((1u << 20) - 1, cd).ok());
  CHECK(cd_in_memory(*t, (1u << 20) - 1) == words_of(cd));
  L1CD d;
  d.set_word(0, read64(t->base() + 1023 * 8));
  CHECK(d.get<L1CD::V>() == 1);
  CHECK(CdTable::alloc(cfg(21, true), inv).error().code() == -EINVAL);
  CHECK(CdTable::alloc({.s1cdmax = 4, .two_level = false, .dma = nullptr}, inv).error().code() ==
        -EINVAL);
}

TEST_CASE_FIXTURE(Fixture, "non-coherent SMMU: what the table writes is cleaned") {
  auto made = CdTable::alloc(cfg(12, true, /*coherent=*/false), inv);
  REQUIRE(made.ok());
  Box<CdTable> t = made.release_value();
  uint64_t before = platform->dma().sync_for_device_calls();
  REQUIRE(t->write_cd(9, cd_for(sample_s1())).ok());
  // The CD at each of the entry writer's two steps, and the L1CD.
  CHECK(platform->dma().sync_for_device_calls() == before + 3);
  before = platform->dma().sync_for_device_calls();
  REQUIRE(t->clear_cd(9).ok());
  CHECK(platform->dma().sync_for_device_calls() == before + 2);  // word 0, then the zeros

  Box<CdTable> coherent = table(12, true);
  before = platform->dma().sync_for_device_calls();
  REQUIRE(coherent->write_cd(9, cd_for(sample_s1())).ok());
  CHECK(platform->dma().sync_for_device_calls() == before);
}

// ---------------------------------------------------------------------------------------------
// Concurrency.

TEST_CASE_FIXTURE(Fixture, "lazy leaves: concurrent first writes allocate each leaf exactly once") {
  constexpr unsigned kLeaves = 8, kThreads = 8;
  const size_t live = platform->dma().live_allocations();
  Box<CdTable> t = table(13, true);  // 8 leaves
  // Which leaves had their L1CD invalidated (Leaf == 0), recorded as the invalidations happen.
  std::array<std::atomic<int>, kLeaves> l1_invalidated{};
  inv.hook = [&](uint32_t ssid, bool leaf) {
    if (!leaf) l1_invalidated[ssid >> kCdSplit]++;
  };
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  std::atomic<int> early{0}, failed{0};
  for (unsigned th = 0; th < kThreads; th++) {
    threads.emplace_back([&, th] {
      start.arrive_and_wait();
      // Every thread writes one CD in every leaf, all at once.
      for (unsigned l = 0; l < kLeaves; l++) {
        const uint32_t ssid = l * kCdLeafEntries + th * 7 + 1;
        auto cd = make_s1_cd(sample_s1(0x1000 * (ssid + 1), ssid & 0xffff));
        if (!cd.ok() || !t->write_cd(ssid, cd.value()).ok()) failed++;
        // Returned: the CD must be usable, so its leaf's L1CD invalidation has completed.
        if (l1_invalidated[l].load() == 0) early++;
      }
    });
  }
  for (auto& th : threads) th.join();
  inv.hook = nullptr;
  CHECK(failed.load() == 0);
  CHECK(early.load() == 0);
  CHECK(platform->dma().live_allocations() == live + 1 + kLeaves);
  for (unsigned l = 0; l < kLeaves; l++) CHECK(l1_invalidated[l].load() == 1);
  for (unsigned th = 0; th < kThreads; th++) {
    for (unsigned l = 0; l < kLeaves; l++) {
      const uint32_t ssid = l * kCdLeafEntries + th * 7 + 1;
      CHECK(cd_in_memory(*t, ssid) ==
            words_of(cd_for(sample_s1(0x1000 * (ssid + 1), ssid & 0xffff))));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Allocation failures.

TEST_CASE_FIXTURE(Fixture, "allocation failures: -ENOMEM and nothing left behind") {
  for (const auto& [s1cdmax, two_level] : {std::pair{0u, false}, std::pair{12u, true}}) {
    CAPTURE(s1cdmax);
    const long kmallocs = hosted::kmalloc_live();
    const size_t dma_live = platform->dma().live_allocations();
    // CdTable::alloc: each kmalloc (the table, the leaf array) and the DMA root in turn.
    for (long n = 0;; n++) {
      hosted::fail_kmalloc_nth(n);
      auto r = CdTable::alloc(cfg(s1cdmax, two_level), inv);
      hosted::fail_kmalloc_nth(-1);
      if (r.ok()) break;
      CHECK(r.error().code() == -ENOMEM);
      CHECK(hosted::kmalloc_live() == kmallocs);
      REQUIRE(n < 8);
    }
    CHECK(hosted::kmalloc_live() == kmallocs);
    platform->dma().fail_nth(0);
    auto r = CdTable::alloc(cfg(s1cdmax, two_level), inv);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == -ENOMEM);
    CHECK(hosted::kmalloc_live() == kmallocs);
    CHECK(platform->dma().live_allocations() == dma_live);
  }

  // The first write into a leaf whose allocation fails: nothing written, nothing invalidated.
  Box<CdTable> t = table(12, true);
  const size_t dma_live = platform->dma().live_allocations();
  platform->dma().fail_nth(0);
  auto w = t->write_cd(2050, cd_for(sample_s1()));
  REQUIRE_FALSE(w.ok());
  CHECK(w.error().code() == -ENOMEM);
  CHECK(inv.take().empty());
  CHECK(read64(t->base() + 2 * 8) == 0);
  CHECK(platform->dma().live_allocations() == dma_live);
  // And the retry installs it.
  REQUIRE(t->write_cd(2050, cd_for(sample_s1())).ok());
  CHECK(inv.take() == Calls{{2050, false}});
}

TEST_CASE_FIXTURE(Fixture, "a failed invalidation is returned, logged, counted, and retried") {
  Box<CdTable> t = table(12, true);
  hosted::LogCapture log;
  inv.fail = -ETIMEDOUT;
  // A new leaf: the CD goes in unreachable, the L1CD is made valid, its invalidation fails.
  auto w = t->write_cd(10, cd_for(sample_s1()));
  REQUIRE_FALSE(w.ok());
  CHECK(w.error().code() == -ETIMEDOUT);
  CHECK(t->invalidation_errors() == 1);
  CHECK(log.contains("CMD_CFGI_CD"));
  CHECK(inv.take() == Calls{{10, false}});
  // The leaf is not trusted yet: the next write into it goes through the full protocol and
  // invalidates the L1CD again.
  inv.fail = 0;
  REQUIRE(t->write_cd(11, cd_for(sample_s1())).ok());
  CHECK(inv.take() == Calls{{11, true}, {11, true}, {11, false}});
  REQUIRE(t->write_cd(12, cd_for(sample_s1())).ok());
  CHECK(inv.take() == Calls{{12, true}, {12, true}});
  // In a present leaf: the entry writer's first failure is the one returned.
  inv.fail = -EIO;
  auto w2 = t->write_cd(12, cd_for(sample_s1(0x5000, 3)));
  REQUIRE_FALSE(w2.ok());
  CHECK(w2.error().code() == -EIO);
  CHECK(t->invalidation_errors() > 1);
  CHECK(t->clear_cd(11).error().code() == -EIO);
}

// ---------------------------------------------------------------------------------------------
// The iommu-pasid-table contract through CdPasidTableOps.

struct PasidFixture : Fixture {
  PasidTableCfg pcfg(unsigned bits, bool two_level, bool coherent = true) {
    return {PasidTableFmt::arm_smmuv3_cd, bits, two_level, &platform->dma(), coherent};
  }
  Box<PasidTable> pasid_table(unsigned bits, bool two_level) {
    auto t = PasidTable::alloc(ops, pcfg(bits, two_level), cd_pasid_cookie(inv));
    REQUIRE(t.ok());
    return t.release_value();
  }
  Words cd_of(const PasidTable& t, ioasid_t pasid) {
    return cd_in_memory(CdPasidTableOps::cd_table(t), pasid);
  }
  CdPasidTableOps ops;
};

TEST_CASE_FIXTURE(PasidFixture, "PasidTable over CD tables: alloc, layout and cookie") {
  CHECK(PasidTable::alloc(ops, {PasidTableFmt::fake, 4, false, &platform->dma()},
                          cd_pasid_cookie(inv))
            .error()
            .code() == -EINVAL);
  CHECK(PasidTable::alloc(ops, pcfg(4, false), nullptr).error().code() == -EINVAL);
  CHECK(PasidTable::alloc(ops, pcfg(21, false), cd_pasid_cookie(inv)).error().code() == -EINVAL);

  Box<PasidTable> small = pasid_table(8, true);
  CHECK_FALSE(small->two_level());  // 256 CDs: linear
  CHECK(small->base() == CdPasidTableOps::cd_table(*small).base());
  Box<PasidTable> big = pasid_table(20, true);
  CHECK(big->two_level());
  CHECK(CdPasidTableOps::cd_table(*big).s1fmt() == smmuv3::kS1Fmt64KL2);
  CHECK(big->nr_entries() == 1u << 20);
}

TEST_CASE_FIXTURE(PasidFixture, "PasidTable over CD tables: one sync per set and clear") {
  Box<PasidTable> t = pasid_table(12, true);
  const PasidStage1 s1 = sample_s1(0x1000, 9);

  // A new leaf: written unreachable, so set_entry's one sync (non-leaf, the L1CD) is all.
  REQUIRE(t->set_entry(100, s1).ok());
  CHECK(inv.take() == Calls{{100, false}});
  CHECK(cd_of(*t, 100) == words_of(cd_for(s1)));
  CHECK(t->live(100));

  // Another PASID of that leaf: the entry writer's two steps, then the core's sync.
  REQUIRE(t->set_entry(101, s1).ok());
  CHECK(inv.take() == Calls{{101, true}, {101, true}, {101, true}});

  // Replacing a live entry: a new table, same ASID: hitless, one step, plus the core's sync.
  const PasidStage1 s1b = sample_s1(0x2000, 9);
  REQUIRE(t->set_entry(101, s1b).ok());
  CHECK(inv.take() == Calls{{101, true}, {101, true}});
  CHECK(cd_of(*t, 101) == words_of(cd_for(s1b)));
  // A new table and ASID: break-before-make (never -EBUSY), three steps plus the core's.
  const PasidStage1 s1c = sample_s1(0x3000, 10);
  REQUIRE(t->set_entry(101, s1c).ok());
  CHECK(inv.take().size() == 4);
  CHECK(cd_of(*t, 101) == words_of(cd_for(s1c)));

  // Clearing: V, the core's one sync, and the CD ends as zeros.
  REQUIRE(t->clear_entry(101).ok());
  CHECK(inv.take() == Calls{{101, true}});
  CHECK(cd_of(*t, 101) == Words{});
  CHECK_FALSE(t->live(101));
  CHECK(t->clear_entry(101).error().code() == -ENOENT);
  CHECK(inv.take().empty());
  CHECK(t->nr_live() == 1);
}

TEST_CASE_FIXTURE(PasidFixture, "PasidTable over CD tables: refusals change and sync nothing") {
  Box<PasidTable> t = pasid_table(12, true);
  REQUIRE(t->set_entry(5, sample_s1()).ok());
  inv.take();
  const Words before = cd_of(*t, 5);
  const size_t dma_live = platform->dma().live_allocations();

  CHECK(t->set_entry(4096, sample_s1()).error().code() == -ERANGE);
  PasidStage1 bad = sample_s1();
  bad.pgtable_fmt = IoPgtableFmt::intel_vtd_fl;  // not a CD's format
  CHECK(t->set_entry(5, bad).error().code() == -EINVAL);
  bad = sample_s1();
  bad.tcr.tg0 = 3;
  CHECK(t->set_entry(5, bad).error().code() == -EINVAL);
  CHECK(t->set_entry(3000, bad).error().code() == -EINVAL);  // before any leaf is allocated
  bad = sample_s1(0x1008);
  CHECK(t->set_entry(6, bad).error().code() == -EINVAL);
  CHECK(inv.take().empty());
  CHECK(cd_of(*t, 5) == before);
  CHECK(cd_of(*t, 6) == Words{});
  CHECK(read64(t->base() + 2 * 8) == 0);
  CHECK(platform->dma().live_allocations() == dma_live);

  // A leaf that cannot be allocated.
  platform->dma().fail_nth(0);
  CHECK(t->set_entry(2048, sample_s1()).error().code() == -ENOMEM);
  CHECK(inv.take().empty());
  CHECK(read64(t->base() + 2 * 8) == 0);
  CHECK(platform->dma().live_allocations() == dma_live);
  CHECK_FALSE(t->live(2048));
  CHECK(t->nr_live() == 1);
}

TEST_CASE_FIXTURE(PasidFixture, "PasidTable over CD tables: allocation failures leave nothing") {
  for (const auto& [bits, two_level] : {std::pair{0u, false}, std::pair{20u, true}}) {
    CAPTURE(bits);
    const long kmallocs = hosted::kmalloc_live();
    const size_t dma_live = platform->dma().live_allocations();
    for (long n = 0;; n++) {
      hosted::fail_kmalloc_nth(n);
      auto r = PasidTable::alloc(ops, pcfg(bits, two_level), cd_pasid_cookie(inv));
      hosted::fail_kmalloc_nth(-1);
      if (r.ok()) break;
      CHECK(r.error().code() == -ENOMEM);
      CHECK(hosted::kmalloc_live() == kmallocs);
      CHECK(platform->dma().live_allocations() == dma_live);
      REQUIRE(n < 8);
    }
    platform->dma().fail_nth(0);
    CHECK(PasidTable::alloc(ops, pcfg(bits, two_level), cd_pasid_cookie(inv)).error().code() ==
          -ENOMEM);
    CHECK(hosted::kmalloc_live() == kmallocs);
    CHECK(platform->dma().live_allocations() == dma_live);
  }
}

TEST_CASE_FIXTURE(PasidFixture, "PasidTable over CD tables: a failed sync is logged and retried") {
  Box<PasidTable> t = pasid_table(12, true);
  hosted::LogCapture log;
  inv.fail = -ETIMEDOUT;
  // The new leaf's CD is written without commands; the core's sync, which cannot report, fails.
  REQUIRE(t->set_entry(7, sample_s1()).ok());
  CHECK(CdPasidTableOps::cd_table(*t).invalidation_errors() == 1);
  CHECK(log.contains("CMD_CFGI_CD"));
  CHECK(inv.take() == Calls{{7, false}});
  // Inside write, the failure is returned.
  CHECK(t->set_entry(8, sample_s1()).error().code() == -ETIMEDOUT);
  inv.take();
  // Once the queue works again, the next write into that leaf has the L1CD invalidated again.
  inv.fail = 0;
  REQUIRE(t->set_entry(9, sample_s1()).ok());
  const Calls calls = inv.take();
  REQUIRE(!calls.empty());
  CHECK(calls.back() == RecordingInvalidator::Call{9, false});
  REQUIRE(t->set_entry(10, sample_s1()).ok());
  CHECK(inv.take() == Calls{{10, true}, {10, true}, {10, true}});
}

TEST_CASE_FIXTURE(PasidFixture, "PasidTable over CD tables: non-coherent walks are cleaned") {
  auto made = PasidTable::alloc(ops, pcfg(12, true, /*coherent=*/false), cd_pasid_cookie(inv));
  REQUIRE(made.ok());
  Box<PasidTable> t = made.release_value();
  const uint64_t before = platform->dma().sync_for_device_calls();
  REQUIRE(t->set_entry(1, sample_s1()).ok());
  CHECK(platform->dma().sync_for_device_calls() > before);
}

TEST_CASE_FIXTURE(PasidFixture, "PasidTable over CD tables: concurrent set_entry and clear_entry") {
  Box<PasidTable> t = pasid_table(14, true);  // 16 leaves
  constexpr unsigned kThreads = 8, kPerThread = 64;
  std::vector<std::thread> threads;
  std::atomic<int> failed{0};
  for (unsigned th = 0; th < kThreads; th++) {
    threads.emplace_back([&, th] {
      for (unsigned i = 0; i < kPerThread; i++) {
        const ioasid_t pasid = (i * 257 + th) % t->nr_entries();
        if (!t->set_entry(pasid, sample_s1(0x1000 * (pasid + 1), pasid)).ok()) failed++;
        if (i % 3 == 0 && !t->clear_entry(pasid).ok()) failed++;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failed.load() == 0);
  for (unsigned th = 0; th < kThreads; th++) {
    for (unsigned i = 0; i < kPerThread; i++) {
      const ioasid_t pasid = (i * 257 + th) % t->nr_entries();
      CHECK(t->live(pasid) == (i % 3 != 0));
      const Words expect =
          i % 3 ? words_of(cd_for(sample_s1(0x1000 * (pasid + 1), pasid))) : Words{};
      CHECK(cd_of(*t, pasid) == expect);
    }
  }
}

}  // namespace
}  // namespace strata::arm_smmu_v3
