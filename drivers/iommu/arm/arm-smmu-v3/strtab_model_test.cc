// SPDX-License-Identifier: MIT
// The stream table and STE builders against the SMMUv3 model (testing/models/smmuv3), which
// reads the tables from simulated memory with its own decoder and keeps a configuration cache
// that serves stale STEs and L1STDs until the matching CMD_CFGI_*. The invalidator here issues
// real commands through the model's Command queue. The model's stale-translation oracle is on:
// a missing invalidation shows up as a report, and the negative controls (an invalidator that
// skips commands, or downgrades Leaf == 0 to Leaf == 1) prove that the tests would see one.
#include "drivers/iommu/arm/arm-smmu-v3/strtab.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "arch/dma.h"
#include "arch/smmuv3/cmd.h"
#include "arch/smmuv3/event.h"
#include "arch/smmuv3/regs.h"
#include "arch/smmuv3/ste.h"
#include "core/io-pgtable/io_pgtable.h"
#include "drivers/iommu/arm/arm-smmu-v3/harness_rig.h"
#include "drivers/iommu/arm/arm-smmu-v3/model_rig.h"
#include "drivers/iommu/arm/arm-smmu-v3/ste.h"
#include "testing/models/smmuv3/smmuv3.h"
#include "testing/models/smmuv3/smmuv3_harness.h"

namespace strata::arm_smmu_v3 {
namespace {

namespace arch = ::strata::smmuv3;
using sim::smmuv3::LookupError;
using sim::smmuv3::Threading;
using sim::smmuv3::Translated;
using sim::smmuv3::test::data_ipa;
using sim::smmuv3::test::data_pa;

// CMD_CFGI_STE + CMD_SYNC through the model's Command queue, as the driver's queue will.
struct ModelInvalidator final : StrtabInvalidator {
  explicit ModelInvalidator(test::HarnessRig& rig) : r(rig) {}

  Result<void> cfgi_ste(uint32_t sid, bool leaf) override {
    std::lock_guard<std::mutex> g(mu);
    calls++;
    if (skip) return ok();  // a driver that forgets the invalidation
    r.m.put_cmd(sim::smmuv3::test::cfgi_ste(sid, force_leaf1 || leaf));
    return r.issue_sync(timeout);
  }

  test::HarnessRig& r;
  std::mutex mu;
  unsigned calls = 0;
  bool skip = false;
  bool force_leaf1 = false;  // a driver that never uses Leaf == 0
  std::chrono::milliseconds timeout = test::kTimeout;
};

// The model's default configuration (smmuv3.h: an SMMUv3.2 with everything) as the driver
// would probe it.
const SteFeatures kFeatures{.coherent = true,
                            .attr_types_ovr = true,
                            .stalls = true,
                            .ssid_bits = 20,
                            .two_level_cdtab = true};

// A machine whose SMMU walks a Strtab: queues on, the table's registers programmed while
// SMMUEN == 0, CMD_CFGI_ALL, then SMMUEN (the driver's enable sequence).
struct Rig : test::HarnessRig {
  explicit Rig(Threading mode, unsigned sid_bits, bool two_level, const arch::STE& initial)
      : HarnessRig(mode), inv(*this) {
    auto t = Strtab::create(dma(), inv,
                            StrtabConfig{.sid_bits = sid_bits,
                                         .two_level = two_level,
                                         .initial = initial,
                                         .name = "strtab-model"});
    REQUIRE(t.ok());
    strtab = t.release_value();
    m.setup_queues();
    strtab->strtab_base().write_to(m.io);
    strtab->strtab_base_cfg().write_to(m.io);
    arch::CR2{}.set<arch::CR2::RECINVSID>(1).write_to(m.io);
    m.issue(sim::smmuv3::test::cfgi_all());
    REQUIRE(m.enable(arch::CR0::SMMUEN::kMask));
    inv.calls = 0;
  }
  // The SMMU stops walking the table before its memory goes.
  ~Rig() { teardown(); }

  uint64_t cfgi_ste_executed() { return m.model().counters().command(arch::Opcode::CMD_CFGI_STE); }

  ModelInvalidator inv;
  Box<Strtab> strtab;
};

IoPgtableCfg s2_cfg(uint64_t root) {
  // The harness's stage-2 trees: 4KB granule, 48-bit IPA, start level 0 (S2SL0 0b10), walks
  // Write-Back Inner Shareable, 48-bit output.
  IoPgtableCfg cfg;
  cfg.arm_lpae_s2 = {root, 16, 2, 0, 1, 1, 3, 5, 1};
  return cfg;
}

TEST_CASE("bypass STEs pass traffic through, abort STEs abort it") {
  for (Threading mode : sim::smmuv3::test::kModes) {
    CAPTURE(name(mode));
    Rig r(mode, 6, false, make_abort_ste());
    // The initial STE: abort, no event (Config 0b000).
    Translated t = r.m.tr(3, 0x1234'5000);
    CHECK(t.status == Translated::Status::kAbort);
    CHECK_FALSE(t.has_event());

    REQUIRE(r.strtab->write_ste(3, make_bypass_ste(kFeatures)).ok());
    t = r.m.tr(3, 0x1234'5000);
    REQUIRE(t.ok());
    CHECK(t.pa == 0x1234'5000);
    CHECK(r.m.tr(4, 0x1234'5000).status == Translated::Status::kAbort);

    REQUIRE(r.strtab->write_ste(3, make_abort_ste()).ok());
    CHECK(r.m.tr(3, 0x1234'5000).status == Translated::Status::kAbort);
    CHECK_FALSE(r.stale_reported());
    CHECK(r.m.events().empty());
  }
}

TEST_CASE("a stage-2 STE over a hand-built stage-2 table translates") {
  for (Threading mode : sim::smmuv3::test::kModes) {
    CAPTURE(name(mode));
    Rig r(mode, 6, false, make_abort_ste());
    const uint64_t root = r.m.new_s2_root();
    for (unsigned i = 0; i < 4; i++) r.m.map_s2(root, data_ipa(i), data_pa(i));
    REQUIRE(
        r.strtab->write_ste(5, make_s2_domain_ste(kFeatures, s2_cfg(root), SteS2Domain{.vmid = 2}))
            .ok());
    for (unsigned i = 0; i < 4; i++) {
      const Translated t = r.m.tr(5, data_ipa(i) + 0x18);
      REQUIRE(t.ok());
      CHECK(t.pa == data_pa(i) + 0x18);
    }
    // An unmapped IPA: a stage-2 translation fault, recorded (S2R).
    const Translated miss = r.m.tr(5, data_ipa(9));
    CHECK(miss.status == Translated::Status::kAbort);
    CHECK(miss.event_type() == arch::EventType::F_TRANSLATION);
    CHECK(r.m.events().size() == 1);
    CHECK_FALSE(r.stale_reported());
  }
}

TEST_CASE("a stage-2 STE over an io-pgtable translates") {
  Rig r(Threading::kSync, 6, false, make_abort_ste());
  for (unsigned ias : {48u, 40u}) {
    CAPTURE(ias);
    IoPgtableCfg cfg;
    cfg.pgsize_bitmap = SZ_4K | SZ_2M | SZ_1G;
    cfg.ias = ias;
    cfg.oas = 48;
    cfg.dma = &r.dma();
    auto pt = IoPgtable::alloc(IoPgtableFmt::arm_64_lpae_s2, cfg);
    REQUIRE(pt.ok());
    REQUIRE((*pt)->map_pages(0x8000'0000, data_pa(0), SZ_4K, 2, IOMMU_READ | IOMMU_WRITE).ok());
    // A new VMID for each table: a different table under the same VMID would leave the
    // previous one's translations in the TLB.
    const uint16_t vmid = static_cast<uint16_t>(ias);
    REQUIRE(
        r.strtab->write_ste(7, make_s2_domain_ste(kFeatures, cfg, SteS2Domain{.vmid = vmid})).ok());
    const Translated t = r.m.tr(7, 0x8000'1abc);
    REQUIRE(t.ok());
    CHECK(t.pa == data_pa(1) + 0xabc);
    CHECK(t.config_error() == LookupError::none);
    REQUIRE(r.strtab->write_ste(7, make_abort_ste()).ok());
  }
  CHECK_FALSE(r.stale_reported());
}

TEST_CASE("the configuration cache serves a stale STE until write_ste's CMD_CFGI_STE") {
  for (Threading mode : sim::smmuv3::test::kModes) {
    CAPTURE(name(mode));
    Rig r(mode, 6, false, make_abort_ste());
    CHECK(r.m.tr(3, 0x1000).status == Translated::Status::kAbort);  // the abort STE is cached

    // Negative control: the same write without the commands. Memory says bypass, the SMMU
    // still aborts, and the oracle says so.
    r.inv.skip = true;
    REQUIRE(r.strtab->write_ste(3, make_bypass_ste(kFeatures)).ok());
    CHECK(r.m.tr(3, 0x1000).status == Translated::Status::kAbort);
    CHECK(r.stale_reported());

    // With the commands: every step of each write is invalidated, and what the SMMU does
    // follows memory at once.
    r.inv.skip = false;
    const uint64_t before = r.cfgi_ste_executed();
    auto w = r.strtab->write_ste(3, make_abort_ste());
    REQUIRE(w.ok());
    CHECK(r.cfgi_ste_executed() == before + w->syncs);
    CHECK(r.m.tr(3, 0x1000).status == Translated::Status::kAbort);
    REQUIRE(r.strtab->write_ste(3, make_bypass_ste(kFeatures)).ok());
    CHECK(r.m.tr(3, 0x1000).pa == 0x1000);
    // A stage-1 STE, then back to bypass, translating in between.
    const uint64_t root = r.m.new_s1_root();
    r.m.map_s1(root, 0x7000'0000, data_pa(3));
    const uint64_t cd = r.m.new_cd(sim::smmuv3::test::make_cd(5, root));
    REQUIRE(r.strtab->write_ste(3, make_cdtable_ste(kFeatures, SteCdTable{.cdtab = cd})).ok());
    CHECK(r.m.tr(3, 0x7000'0000).pa == data_pa(3));
    REQUIRE(r.strtab->write_ste(3, make_bypass_ste(kFeatures)).ok());
    CHECK(r.m.tr(3, 0x7000'0000).pa == 0x7000'0000);
    CHECK_FALSE(r.stale_reported());
    CHECK(r.m.events().empty());
  }
}

TEST_CASE("2-level: a level-2 array installed after a transaction met its invalid L1STD") {
  for (Threading mode : sim::smmuv3::test::kModes) {
    CAPTURE(name(mode));
    Rig r(mode, 16, true, make_abort_ste());
    REQUIRE(r.strtab->two_level());
    // The L1STD of span 0x12 is invalid: C_BAD_STREAMID, and the SMMU caches the L1STD.
    Translated t = r.m.tr(0x1234, 0x1000);
    CHECK(t.config_error() == LookupError::l1std_span_invalid);
    CHECK(t.event_type() == arch::EventType::C_BAD_STREAMID);

    REQUIRE(r.strtab->write_ste(0x1234, make_bypass_ste(kFeatures)).ok());
    t = r.m.tr(0x1234, 0x1000);
    REQUIRE(t.ok());
    CHECK(t.pa == 0x1000);
    // Its neighbours hold the initial STE.
    CHECK(r.m.tr(0x1235, 0x1000).status == Translated::Status::kAbort);
    CHECK(r.m.tr(0x1235, 0x1000).config_error() == LookupError::none);
    CHECK_FALSE(r.stale_reported());

    // Negative control: the same installation with Leaf == 1 only. The STE is in memory and
    // invalidated, but the SMMU keeps the invalid L1STD: the span stays C_BAD_STREAMID.
    CHECK(r.m.tr(0x2234, 0x1000).config_error() == LookupError::l1std_span_invalid);
    r.inv.force_leaf1 = true;
    REQUIRE(r.strtab->write_ste(0x2234, make_bypass_ste(kFeatures)).ok());
    CHECK(r.m.tr(0x2234, 0x1000).config_error() == LookupError::l1std_span_invalid);
    CHECK(r.stale_reported());
    r.m.events();
  }
}

TEST_CASE("a CMD_SYNC that never completes is reported") {
  Rig r(Threading::kSync, 6, false, make_abort_ste());
  REQUIRE(r.strtab->write_ste(2, make_bypass_ste(kFeatures)).ok());
  // The Command queue stops consuming: the next CMD_SYNC times out.
  REQUIRE(r.m.disable(arch::CR0::CMDQEN::kMask));
  r.inv.timeout = std::chrono::milliseconds(50);
  auto w = r.strtab->write_ste(2, make_abort_ste());
  REQUIRE_FALSE(w.ok());
  CHECK(w.error().code() == -ETIMEDOUT);
  // Bypass -> abort is two steps: Config (the critical word), then clearing bypass's SHCFG.
  // The update stopped after the first, whose sync failed: memory holds the abort
  // configuration plus a bit it ignores, so the SMMU may use the old STE or the new one,
  // nothing else.
  const arch::STE left = *r.strtab->read_ste(2);
  CHECK(left.word(0) == make_abort_ste().word(0));
  CHECK(left.word(1) == make_bypass_ste(kFeatures).word(1));
  uint64_t words[8], used[8];
  ste_to_words(left, words);
  ste_get_used(words, used);
  for (unsigned i = 0; i < 8; i++) CHECK((words[i] & used[i]) == make_abort_ste().word(i));
}

// A thread translates continuously through one StreamID while the main thread flips its STE
// between two configurations that map every IOVA to the same PA: every transaction succeeds,
// none sees C_BAD_STE, and the oracle stays quiet.
void flip_under_traffic(Rig& r, uint32_t sid, const arch::STE& a, const arch::STE& b,
                        uint64_t iova_base, unsigned pages) {
  REQUIRE(r.strtab->write_ste(sid, a).ok());
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> translations{0};
  std::atomic<int> failures{0}, bad_ste{0};
  std::thread traffic([&] {
    for (unsigned i = 0; !stop.load(std::memory_order_relaxed); i++) {
      const unsigned page = i % pages;
      const Translated t = r.m.model().translate(sid, false, 0, iova_base + page * 4096ull + 8,
                                                 sim::smmuv3::Access{});
      if (!t.ok() || t.pa != data_pa(page) + 8) failures++;
      if (t.event_type() == arch::EventType::C_BAD_STE) bad_ste++;
      translations++;
    }
  });
  unsigned flips = 0;
  for (; flips < 300; flips++) {
    auto w = r.strtab->write_ste(sid, flips % 2 ? a : b);
    REQUIRE(w.ok());
    CHECK(w->hitless);
    CHECK(w->syncs == 1);
    // Let the traffic thread see each configuration.
    const uint64_t seen = translations.load();
    while (translations.load() < seen + 4) std::this_thread::yield();
  }
  stop = true;
  traffic.join();
  CHECK(failures.load() == 0);
  CHECK(bad_ste.load() == 0);
  CHECK(translations.load() > flips);
  CHECK_FALSE(r.stale_reported());
  CHECK(r.m.events().empty());
}

TEST_CASE("hitless: flipping a stage-2 table under live traffic") {
  for (Threading mode : sim::smmuv3::test::kModes) {
    CAPTURE(name(mode));
    Rig r(mode, 6, false, make_abort_ste());
    // Two stage-2 tables mapping the same IPAs to the same pages, one VMID.
    const uint64_t root_a = r.m.new_s2_root(), root_b = r.m.new_s2_root();
    for (unsigned i = 0; i < 8; i++) {
      r.m.map_s2(root_a, data_ipa(i), data_pa(i));
      r.m.map_s2(root_b, data_ipa(i), data_pa(i));
    }
    const SteS2Domain dom{.vmid = 6};
    flip_under_traffic(r, 9, make_s2_domain_ste(kFeatures, s2_cfg(root_a), dom),
                       make_s2_domain_ste(kFeatures, s2_cfg(root_b), dom), data_ipa(0), 8);
  }
}

TEST_CASE("hitless: flipping a stage-1 CD table pointer under live traffic") {
  for (Threading mode : sim::smmuv3::test::kModes) {
    CAPTURE(name(mode));
    Rig r(mode, 16, true, make_abort_ste());
    // Two CDs, one ASID, two stage-1 tables with the same mappings.
    const uint64_t root_a = r.m.new_s1_root(), root_b = r.m.new_s1_root();
    constexpr uint64_t kVa = 0x5500'0000;
    for (unsigned i = 0; i < 8; i++) {
      r.m.map_s1(root_a, kVa + i * 4096, data_pa(i));
      r.m.map_s1(root_b, kVa + i * 4096, data_pa(i));
    }
    const uint64_t cd_a = r.m.new_cd(sim::smmuv3::test::make_cd(4, root_a));
    const uint64_t cd_b = r.m.new_cd(sim::smmuv3::test::make_cd(4, root_b));
    flip_under_traffic(r, 0x321, make_cdtable_ste(kFeatures, SteCdTable{.cdtab = cd_a}),
                       make_cdtable_ste(kFeatures, SteCdTable{.cdtab = cd_b}), kVa, 8);
  }
}

}  // namespace
}  // namespace strata::arm_smmu_v3
