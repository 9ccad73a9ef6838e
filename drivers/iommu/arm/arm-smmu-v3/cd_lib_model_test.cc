// SPDX-License-Identifier: MIT
// The CD library against the SMMUv3 model (testing/models/smmuv3), the referee: the model reads
// the CD tables the library wrote out of simulated memory with its own decoder, walks the
// io-pgtable tables with its own walker, and caches CDs and L1CDs (valid or not, 3.21.3) until
// the CMD_CFGI_CD the library issues through a CdInvalidator that the test implements over the
// model's Command queue, as the driver's master will. STEs are built by hand (arch/smmuv3/ste.h
// through the model harness), not by the driver. The model's oracle is on throughout: any
// translation served from a cached structure that memory no longer agrees with is reported.
#include <stdint.h>

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include <doctest/doctest.h>

#include "arch/dma.h"
#include "arch/smmuv3/cd.h"
#include "arch/smmuv3/cmd.h"
#include "arch/smmuv3/event.h"
#include "arch/smmuv3/regs.h"
#include "arch/smmuv3/ste.h"
#include "core/io-pgtable/io_pgtable.h"
#include "core/pasid-table/pasid_table.h"
#include "drivers/iommu/arm/arm-smmu-v3/cd_lib.h"
#include "drivers/iommu/arm/arm-smmu-v3/cd_pasid_table.h"
#include "drivers/iommu/arm/arm-smmu-v3/cd_table.h"
#include "drivers/iommu/arm/arm-smmu-v3/harness_rig.h"
#include "testing/models/smmuv3/smmuv3.h"
#include "testing/models/smmuv3/smmuv3_harness.h"

namespace strata::arm_smmu_v3 {
namespace {

namespace sm = sim::smmuv3;
namespace smt = sim::smmuv3::test;
using sm::LookupError;
using sm::Translated;

using smmuv3::CD;
using smmuv3::L1CD;
using smt::data_pa;

constexpr uint32_t kSid = 5;
constexpr uint64_t kIova1 = 0x1234'5000, kIova2 = 0x7777'0000;

// CMD_CFGI_CD for every StreamID of the "master", then CMD_SYNC, through the model's Command
// queue; polls CMDQ_CONS as a driver does and reports a command error or a timeout.
struct ModelInvalidator final : CdInvalidator {
  explicit ModelInvalidator(test::HarnessRig& rig) : r(rig) {}

  Result<void> cfgi_cd(uint32_t ssid, bool leaf) override {
    std::lock_guard g(mu);
    calls.push_back({ssid, leaf});
    // Before the commands: the SMMU still holds whatever it cached.
    if (before_commands) before_commands(ssid, leaf);
    for (uint32_t sid : sids) r.m.put_cmd(smt::cfgi_cd(sid, ssid, leaf || force_leaf));
    return r.issue_sync();
  }

  struct Call {
    uint32_t ssid;
    bool leaf;
  };
  test::HarnessRig& r;
  std::vector<uint32_t> sids{kSid};
  std::mutex mu;
  std::vector<Call> calls;
  std::function<void(uint32_t, bool)> before_commands;
  // A broken invalidator for the demonstration: Leaf == 1 even when the library asks for 0.
  bool force_leaf = false;
};

struct ModelFixture : test::HarnessRig {
  explicit ModelFixture(sm::Threading threading = sm::Threading::kSync)
      : HarnessRig(threading), inv(*this) {
    m.start(6);
  }

  Box<CdTable> cd_table(unsigned s1cdmax, bool two_level) {
    auto t = CdTable::alloc({.s1cdmax = s1cdmax, .two_level = two_level, .dma = &dma()}, inv);
    REQUIRE(t.ok());
    return t.release_value();
  }
  // A stage-1 STE pointing at the table (5.2), installed and invalidated.
  void attach(uint32_t sid, phys_addr_t base, unsigned s1cdmax, uint64_t s1fmt) {
    m.set_ste(sid, smt::s1_ste(base, 0, s1cdmax, s1fmt, smt::arch::kS1dssTerminate));
    m.issue(smt::cfgi_ste(sid));
  }
  void attach(uint32_t sid, const CdTable& t) { attach(sid, t.base(), t.s1cdmax(), t.s1fmt()); }

  struct Pgtable {
    IoPgtableCfg cfg;
    Box<IoPgtable> pt;
  };
  Pgtable pgtable() {
    Pgtable p;
    p.cfg.pgsize_bitmap = SZ_4K | SZ_2M | SZ_1G;
    p.cfg.ias = p.cfg.oas = 48;
    p.cfg.dma = &dma();
    auto pt = IoPgtable::alloc(IoPgtableFmt::arm_64_lpae_s1, p.cfg);
    REQUIRE(pt.ok());
    p.pt = pt.release_value();
    return p;
  }
  static void map(Pgtable& p, uint64_t iova, phys_addr_t pa) {
    auto r = p.pt->map_pages(iova, pa, SZ_4K, 1, IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE);
    REQUIRE(r.ok());
    REQUIRE(r.value() == SZ_4K);
  }
  static CD cd_for(const Pgtable& p, uint32_t asid) {
    auto cd = make_s1_cd(p.cfg, asid);
    REQUIRE(cd.ok());
    return cd.value();
  }

  Translated tr(uint32_t ssid, uint64_t iova, bool ssv = true) {
    return m.smmu->translate(kSid, ssv, ssid, iova, sm::Access{});
  }
  uint64_t pa_of(uint32_t ssid, uint64_t iova, bool ssv = true) {
    const Translated t = tr(ssid, iova, ssv);
    CHECK(t.ok());
    return t.pa;
  }

  ModelInvalidator inv;
};

TEST_CASE("DMA through a CD the library wrote for a mapped io-pgtable, in both queue modes") {
  for (sm::Threading mode : smt::kModes) {
    CAPTURE(sm::name(mode));
    ModelFixture f(mode);
    // A stream without substreams: one CD, S1CDMax 0.
    Box<CdTable> t = f.cd_table(0, false);
    f.attach(kSid, *t);
    auto p = f.pgtable();
    ModelFixture::map(p, kIova1, data_pa(0));
    f.m.poke(data_pa(0), 0x0123'4567'89ab'cdef);
    REQUIRE(t->write_cd(0, ModelFixture::cd_for(p, 1)).ok());

    CHECK(f.pa_of(0, kIova1 + 0x48, /*ssv=*/false) == data_pa(0) + 0x48);
    uint64_t v = 0;
    REQUIRE(f.m.smmu->dma_read(kSid, false, 0, kIova1, &v, sizeof(v)).ok());
    CHECK(v == 0x0123'4567'89ab'cdef);
    const uint64_t w = 0xfeed'f00d;
    REQUIRE(f.m.smmu->dma_write(kSid, false, 0, kIova1 + 8, &w, sizeof(w)).ok());
    CHECK(f.m.peek(data_pa(0) + 8) == w);
    // An unmapped address faults (F_TRANSLATION, recorded: CD.R = 1) and aborts (CD.A = 1).
    const Translated miss = f.tr(0, kIova2, false);
    CHECK(miss.status == Translated::Status::kAbort);
    CHECK(miss.event_type() == smt::arch::EventType::F_TRANSLATION);
    CHECK(f.m.events().size() == 1);
    CHECK_FALSE(f.stale_reported());
  }
}

TEST_CASE("SubstreamIDs through linear and 2-level tables, decoded as the model decodes them") {
  ModelFixture f;
  auto p1 = f.pgtable(), p2 = f.pgtable(), p3 = f.pgtable();
  ModelFixture::map(p1, kIova1, data_pa(1));
  ModelFixture::map(p2, kIova1, data_pa(2));
  ModelFixture::map(p3, kIova1, data_pa(3));

  SUBCASE("linear, 16 CDs") {
    Box<CdTable> t = f.cd_table(4, false);
    f.attach(kSid, *t);
    REQUIRE(t->write_cd(1, ModelFixture::cd_for(p1, 1)).ok());
    REQUIRE(t->write_cd(15, ModelFixture::cd_for(p2, 2)).ok());
    CHECK(f.pa_of(1, kIova1) == data_pa(1));
    CHECK(f.pa_of(15, kIova1) == data_pa(2));
    CHECK(f.tr(2, kIova1).config_error() == LookupError::cd_invalid);
    CHECK(f.tr(16, kIova1).config_error() == LookupError::ssid_out_of_range);
    f.m.events();
    CHECK_FALSE(f.stale_reported());
  }
  SUBCASE("2-level, 4096 CDs in leaves of 1024") {
    Box<CdTable> t = f.cd_table(12, true);
    REQUIRE(t->two_level());
    f.attach(kSid, *t);
    REQUIRE(t->write_cd(5, ModelFixture::cd_for(p1, 1)).ok());
    REQUIRE(t->write_cd(1030, ModelFixture::cd_for(p2, 2)).ok());
    REQUIRE(t->write_cd(4095, ModelFixture::cd_for(p3, 3)).ok());
    CHECK(f.pa_of(5, kIova1) == data_pa(1));
    CHECK(f.pa_of(1030, kIova1) == data_pa(2));
    CHECK(f.pa_of(4095, kIova1) == data_pa(3));
    // Leaf 2 was never written: its L1CD is invalid (5.3.1: C_BAD_SUBSTREAMID).
    CHECK(f.tr(2048, kIova1).config_error() == LookupError::l1cd_invalid);
    CHECK(f.tr(2048, kIova1).event_type() == smt::arch::EventType::C_BAD_SUBSTREAMID);
    // The same decoded by hand from memory: L1CDs 0, 1 and 3 valid with 64KB-aligned L2Ptrs.
    for (unsigned l = 0; l < 4; l++) {
      L1CD d;
      d.set_word(0, f.m.mem().read64(t->base() + l * 8).value());
      CHECK(d.get<L1CD::V>() == (l != 2));
      CHECK(d.get<L1CD::L2Ptr>() % (64 * 1024) == 0);
    }
    f.m.events();
    CHECK_FALSE(f.stale_reported());
  }
}

TEST_CASE("a replaced CD (new TTB0) is served stale until the library's CMD_CFGI_CD") {
  ModelFixture f;
  Box<CdTable> t = f.cd_table(4, false);
  f.attach(kSid, *t);
  // Table A maps IOVA1; table B maps IOVA1 to the same page and IOVA2 as well, so that the
  // TLB entry for IOVA1 stays right and only the configuration cache can be stale.
  auto a = f.pgtable(), b = f.pgtable();
  ModelFixture::map(a, kIova1, data_pa(0));
  ModelFixture::map(b, kIova1, data_pa(0));
  ModelFixture::map(b, kIova2, data_pa(2));
  REQUIRE(t->write_cd(3, ModelFixture::cd_for(a, 7)).ok());
  CHECK(f.pa_of(3, kIova1) == data_pa(0));  // the CD is cached now
  f.inv.calls.clear();

  // The new CD: same ASID, new TTB0: one word, hitless, one invalidation. Just before its
  // commands reach the model, memory already holds TTB0 = B, and the model still serves A.
  bool looked = false;
  f.inv.before_commands = [&](uint32_t ssid, bool leaf) {
    CHECK(ssid == 3);
    CHECK(leaf);
    const Translated stale = f.tr(3, kIova2);
    CHECK(stale.status == Translated::Status::kAbort);  // walked through A: F_TRANSLATION
    CHECK(stale.event_type() == smt::arch::EventType::F_TRANSLATION);
    const auto reports = f.m.model().stale_reports();
    REQUIRE(reports.size() == 1);
    CHECK(std::string(reports[0].source) == "configuration cache");
    f.m.model().clear_stale_reports();
    looked = true;
  };
  auto w = t->write_cd(3, ModelFixture::cd_for(b, 7));
  f.inv.before_commands = nullptr;
  REQUIRE(w.ok());
  CHECK(looked);
  CHECK(w.value().entry.hitless);
  CHECK(f.inv.calls.size() == 1);
  // After CMD_CFGI_CD + CMD_SYNC: B, and nothing for the oracle to report.
  CHECK(f.pa_of(3, kIova2) == data_pa(2));
  CHECK(f.pa_of(3, kIova1) == data_pa(0));
  CHECK_FALSE(f.stale_reported());
  f.m.events();
}

TEST_CASE("break-before-make through the model: ASID and TTB0 together, then clearing") {
  ModelFixture f;
  Box<CdTable> t = f.cd_table(4, false);
  f.attach(kSid, *t);
  auto a = f.pgtable(), b = f.pgtable();
  ModelFixture::map(a, kIova1, data_pa(0));
  ModelFixture::map(b, kIova1, data_pa(1));
  REQUIRE(t->write_cd(9, ModelFixture::cd_for(a, 1)).ok());
  CHECK(f.pa_of(9, kIova1) == data_pa(0));
  // What traffic sees just before each of the three invalidations: the old CD (still cached),
  // the invalid CD (C_BAD_CD: the break), the new CD. Never a mix of the two.
  std::vector<uint64_t> seen;  // the PA of IOVA1, 0 for a C_BAD_CD
  f.inv.before_commands = [&](uint32_t, bool) {
    f.m.model().clear_stale_reports();
    const Translated tr = f.tr(9, kIova1);
    seen.push_back(tr.ok() ? tr.pa : tr.config_error() == LookupError::cd_invalid ? 0 : 1);
  };
  auto w = t->write_cd(9, ModelFixture::cd_for(b, 2));  // new ASID: no stale TLB entry
  f.inv.before_commands = nullptr;
  REQUIRE(w.ok());
  CHECK_FALSE(w.value().entry.hitless);
  CHECK(w.value().entry.syncs == 3);
  CHECK(seen == std::vector<uint64_t>{data_pa(0), 0, data_pa(1)});
  CHECK(f.pa_of(9, kIova1) == data_pa(1));
  CHECK_FALSE(f.stale_reported());

  REQUIRE(t->clear_cd(9).ok());
  CHECK(f.tr(9, kIova1).config_error() == LookupError::cd_invalid);
  CHECK(f.tr(9, kIova1).event_type() == smt::arch::EventType::C_BAD_CD);
  CHECK_FALSE(f.stale_reported());
  f.m.events();
}

TEST_CASE("an L1CD made valid after a transaction met it invalid works only after Leaf == 0") {
  ModelFixture f;
  Box<CdTable> t = f.cd_table(12, true);
  f.attach(kSid, *t);
  auto p = f.pgtable();
  ModelFixture::map(p, kIova1, data_pa(4));
  const CD cd = ModelFixture::cd_for(p, 1);

  // A transaction with SubstreamID 2050 meets the invalid L1CD of leaf 2: the model caches it.
  CHECK(f.tr(2050, kIova1).config_error() == LookupError::l1cd_invalid);

  SUBCASE("an invalidator that sends Leaf == 1 instead: the stale L1CD stays") {
    f.inv.force_leaf = true;
    REQUIRE(t->write_cd(2050, cd).ok());
    CHECK(f.tr(2050, kIova1).config_error() == LookupError::l1cd_invalid);
    CHECK(f.stale_reported());
    // The library's Leaf == 0 invalidation, sent as asked this time, is what fixes it.
    f.inv.force_leaf = false;
    REQUIRE(t->sync_cd(2050, /*leaf=*/false).ok());
    CHECK(f.pa_of(2050, kIova1) == data_pa(4));
    CHECK_FALSE(f.stale_reported());
  }
  SUBCASE("the library's invalidation: one CMD_CFGI_CD with Leaf == 0, and it works") {
    const uint64_t before = f.m.model().counters().command(smt::arch::Opcode::CMD_CFGI_CD);
    REQUIRE(t->write_cd(2050, cd).ok());
    REQUIRE(f.inv.calls.size() == 1);
    CHECK(f.inv.calls[0].ssid == 2050);
    CHECK_FALSE(f.inv.calls[0].leaf);
    CHECK(f.m.model().counters().command(smt::arch::Opcode::CMD_CFGI_CD) == before + 1);
    CHECK(f.pa_of(2050, kIova1) == data_pa(4));
    CHECK_FALSE(f.stale_reported());
  }
  f.m.events();
}

TEST_CASE("several StreamIDs sharing a CD table: each one's cached CD is invalidated") {
  ModelFixture f;
  f.inv.sids = {kSid, kSid + 1};
  Box<CdTable> t = f.cd_table(4, false);
  f.attach(kSid, *t);
  f.attach(kSid + 1, *t);
  auto a = f.pgtable(), b = f.pgtable();
  ModelFixture::map(a, kIova1, data_pa(0));
  ModelFixture::map(b, kIova1, data_pa(0));
  ModelFixture::map(b, kIova2, data_pa(5));
  REQUIRE(t->write_cd(1, ModelFixture::cd_for(a, 3)).ok());
  CHECK(f.pa_of(1, kIova1) == data_pa(0));
  CHECK(f.m.smmu->translate(kSid + 1, true, 1, kIova1, sm::Access{}).pa == data_pa(0));
  REQUIRE(t->write_cd(1, ModelFixture::cd_for(b, 3)).ok());
  CHECK(f.pa_of(1, kIova2) == data_pa(5));
  CHECK(f.m.smmu->translate(kSid + 1, true, 1, kIova2, sm::Access{}).pa == data_pa(5));
  CHECK_FALSE(f.stale_reported());
}

TEST_CASE("PasidTable over the CD library, walked by the model") {
  ModelFixture f;
  CdPasidTableOps ops;
  const PasidTableCfg cfg{
      .fmt = PasidTableFmt::arm_smmuv3_cd, .pasid_bits = 12, .two_level = true, .dma = &f.dma()};
  auto made = PasidTable::alloc(ops, cfg, cd_pasid_cookie(f.inv));
  REQUIRE(made.ok());
  Box<PasidTable> t = made.release_value();
  REQUIRE(t->two_level());
  f.attach(kSid, t->base(), cfg.pasid_bits, smt::arch::kS1Fmt64KL2);

  auto p = f.pgtable();
  ModelFixture::map(p, kIova1, data_pa(6));
  auto s1 = PasidStage1::from_io_pgtable(IoPgtableFmt::arm_64_lpae_s1, p.cfg, 11);
  REQUIRE(s1.ok());

  // The invalid L1CD gets cached first; set_entry's one (non-leaf) sync must drop it.
  CHECK(f.tr(3000, kIova1).config_error() == LookupError::l1cd_invalid);
  REQUIRE(t->set_entry(3000, s1.value()).ok());
  CHECK(f.pa_of(3000, kIova1) == data_pa(6));
  REQUIRE(t->set_entry(3001, s1.value()).ok());
  CHECK(f.pa_of(3001, kIova1) == data_pa(6));
  REQUIRE(t->clear_entry(3000).ok());
  CHECK(f.tr(3000, kIova1).config_error() == LookupError::cd_invalid);
  CHECK(f.pa_of(3001, kIova1) == data_pa(6));
  CHECK(CdPasidTableOps::cd_table(*t).invalidation_errors() == 0);
  CHECK_FALSE(f.stale_reported());
  f.m.events();
}

}  // namespace
}  // namespace strata::arm_smmu_v3
