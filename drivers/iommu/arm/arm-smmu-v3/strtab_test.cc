// SPDX-License-Identifier: MIT
// The stream table (strtab.h) over the simulated platform's memory, with a recording
// invalidator: the linear and 2-level layouts as the SMMU would read them (decoded from
// physical memory with arch/smmuv3 getters), level-2 arrays installed once under concurrent
// first use, allocation failures that leave nothing installed or leaked, StreamIDs out of
// range, and invalidation failures that are reported and leave a consistent STE behind.
#include "drivers/iommu/arm/arm-smmu-v3/strtab.h"

#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "arch/dma.h"
#include "arch/smmuv3/regs.h"
#include "arch/smmuv3/ste.h"
#include "drivers/iommu/arm/arm-smmu-v3/entry_writer.h"
#include "drivers/iommu/arm/arm-smmu-v3/ste.h"
#include "testing/hosted/hosted.h"
#include "testing/models/platform/platform.h"

namespace strata::arm_smmu_v3 {
namespace {

using smmuv3::L1STD;
using smmuv3::STE;

// Records every CMD_CFGI_STE(+CMD_SYNC) and fails the ones it is told to.
struct RecordingInvalidator final : StrtabInvalidator {
  std::mutex mu;
  std::vector<std::pair<uint32_t, bool>> calls;  // (StreamID, Leaf)
  int succeed_first = 0;                         // then let this many succeed
  int fail_next = 0;                             // then fail this many
  int error = -ETIMEDOUT;

  Result<void> cfgi_ste(uint32_t sid, bool leaf) override {
    std::lock_guard<std::mutex> g(mu);
    calls.emplace_back(sid, leaf);
    if (succeed_first > 0) {
      succeed_first--;
      return ok();
    }
    if (fail_next > 0) {
      fail_next--;
      return Error(error);
    }
    return ok();
  }
  size_t count(bool leaf) {
    std::lock_guard<std::mutex> g(mu);
    size_t n = 0;
    for (const auto& c : calls) n += c.second == leaf;
    return n;
  }
  void clear() {
    std::lock_guard<std::mutex> g(mu);
    calls.clear();
  }
};

struct Fixture {
  explicit Fixture(bool coherent = true)
      : platform(sim::Platform::create(sim::Platform::Config{.dma_coherent = coherent})
                     .release_value()) {}

  sim::SimDmaAllocator& dma() { return platform->dma(); }
  Box<Strtab> create(unsigned sid_bits, bool two_level, const STE& initial) {
    auto t = Strtab::create(dma(), inv,
                            StrtabConfig{.sid_bits = sid_bits,
                                         .two_level = two_level,
                                         .initial = initial,
                                         .name = "strtab-test"});
    REQUIRE(t.ok());
    return t.release_value();
  }
  uint64_t read64(uint64_t pa) {
    auto r = platform->mem().read64(pa);
    REQUIRE(r.ok());
    return *r;
  }
  // What the SMMU reads: an STE at a physical address, an L1STD.
  STE ste_at(uint64_t pa) {
    STE s;
    for (unsigned i = 0; i < STE::kWords; i++) s.set_word(i, read64(pa + 8 * i));
    return s;
  }
  L1STD l1std_at(uint64_t pa) {
    L1STD d;
    d.set_word(0, read64(pa));
    return d;
  }
  // The STE of `sid` found the way the SMMU finds it (6.3.24-25, 5.1), or nullopt-like 0 when
  // its L1STD is invalid.
  uint64_t ste_pa(const Strtab& t, uint32_t sid) {
    const uint64_t base = t.strtab_base().get<smmuv3::STRTAB_BASE::ADDR>();
    const auto cfg = t.strtab_base_cfg();
    if (cfg.get<smmuv3::STRTAB_BASE_CFG::FMT>() == smmuv3::kStrtabFmtLinear)
      return base + uint64_t{sid} * 64;
    const unsigned split = static_cast<unsigned>(cfg.get<smmuv3::STRTAB_BASE_CFG::SPLIT>());
    const L1STD d = l1std_at(base + uint64_t{smmuv3::strtab_l1_index(sid, split)} * 8);
    const uint64_t span = d.get<L1STD::Span>();
    if (span == 0) return 0;
    CHECK(smmuv3::strtab_l2_index(sid, split) < smmuv3::l1std_span_entries(span));
    return d.get<L1STD::L2Ptr>() + uint64_t{smmuv3::strtab_l2_index(sid, split)} * 64;
  }

  std::unique_ptr<sim::Platform> platform;
  RecordingInvalidator inv;
};

const SteFeatures kFeatures{.attr_types_ovr = true};

STE s2_ste(uint64_t vttbr, uint16_t vmid) {
  IoPgtableCfg cfg;
  cfg.arm_lpae_s2 = {vttbr, 16, 2, 0, 1, 1, 3, 5, 1};
  return make_s2_domain_ste(kFeatures, cfg, SteS2Domain{.vmid = vmid});
}

// The entry under its own used bits: what the SMMU acts on.
std::array<uint64_t, 8> effective(const STE& s) {
  std::array<uint64_t, 8> w, u;
  ste_to_words(s, w.data());
  ste_get_used(w.data(), u.data());
  for (unsigned i = 0; i < 8; i++) w[i] &= u[i];
  return w;
}

TEST_CASE("linear stream table: layout, registers, writes") {
  Fixture f;
  Box<Strtab> t = f.create(6, /*two_level=*/false, make_abort_ste());
  CHECK_FALSE(t->two_level());
  CHECK(t->num_sids() == 64);
  const auto base = t->strtab_base();
  const auto cfg = t->strtab_base_cfg();
  CHECK(cfg.get<smmuv3::STRTAB_BASE_CFG::FMT>() == smmuv3::kStrtabFmtLinear);
  CHECK(cfg.get<smmuv3::STRTAB_BASE_CFG::LOG2SIZE>() == 6);
  CHECK(base.get<smmuv3::STRTAB_BASE::RA>() == 1);
  // A linear table is aligned to its size (4 KiB here).
  CHECK(base.get<smmuv3::STRTAB_BASE::ADDR>() % 4096 == 0);
  // Every STE is the initial abort STE, valid.
  for (uint32_t sid = 0; sid < 64; sid++) {
    const STE s = f.ste_at(f.ste_pa(*t, sid));
    CHECK(s.get<STE::V>() == 1);
    CHECK(s.get<STE::Config>() == smmuv3::kConfigAbort);
  }
  CHECK(f.inv.calls.empty());  // nothing to invalidate before the SMMU is enabled

  auto r = t->write_ste(5, make_bypass_ste(kFeatures));
  REQUIRE(r.ok());
  CHECK(r->hitless);
  CHECK(f.ste_at(f.ste_pa(*t, 5)) == make_bypass_ste(kFeatures));
  CHECK(f.ste_at(f.ste_pa(*t, 4)) == make_abort_ste());
  CHECK(f.ste_at(f.ste_pa(*t, 6)) == make_abort_ste());
  // One CMD_CFGI_STE(5, Leaf = 1) per sync step.
  CHECK(f.inv.calls.size() == r->syncs);
  for (const auto& c : f.inv.calls) CHECK(c == std::make_pair(uint32_t{5}, true));
  CHECK(*t->read_ste(5) == make_bypass_ste(kFeatures));
}

TEST_CASE("2-level stream table: layout and lazy level-2 arrays") {
  Fixture f;
  Box<Strtab> t = f.create(16, /*two_level=*/true, make_bypass_ste(kFeatures));
  CHECK(t->two_level());
  const auto cfg = t->strtab_base_cfg();
  CHECK(cfg.get<smmuv3::STRTAB_BASE_CFG::FMT>() == smmuv3::kStrtabFmt2Level);
  CHECK(cfg.get<smmuv3::STRTAB_BASE_CFG::LOG2SIZE>() == 16);
  CHECK(cfg.get<smmuv3::STRTAB_BASE_CFG::SPLIT>() == 8);
  const uint64_t l1 = t->strtab_base().get<smmuv3::STRTAB_BASE::ADDR>();
  CHECK(l1 % (256 * 8) == 0);  // aligned to its size
  // 256 L1STDs, all invalid: no level-2 array yet.
  for (uint32_t i = 0; i < 256; i++) CHECK(f.l1std_at(l1 + 8 * i).get<L1STD::Span>() == 0);
  const size_t live_before = f.dma().live_allocations();
  CHECK(t->read_ste(0x1234).error().code() == -ENOENT);

  const STE target = s2_ste(0x4100'0000, 3);
  auto r = t->write_ste(0x1234, target);
  REQUIRE(r.ok());
  CHECK(f.dma().live_allocations() == live_before + 1);
  // L1STD 0x12: Span = SPLIT + 1 = 9 (2^8 STEs), L2Ptr aligned to the array's 16 KiB.
  const L1STD d = f.l1std_at(l1 + 0x12 * 8);
  CHECK(d.get<L1STD::Span>() == 9);
  CHECK(d.get<L1STD::L2Ptr>() % (16 * 1024) == 0);
  CHECK(d.word(0) == (d.get<L1STD::L2Ptr>() | 9));  // nothing else set
  for (uint32_t i = 0; i < 256; i++)
    if (i != 0x12) CHECK(f.l1std_at(l1 + 8 * i).word(0) == 0);
  // The STE, and its neighbours initialised to bypass.
  CHECK(f.ste_at(f.ste_pa(*t, 0x1234)) == target);
  CHECK(f.ste_at(d.get<L1STD::L2Ptr>() + 0x34 * 64) == target);
  for (uint32_t sid : {0x1200u, 0x1233u, 0x1235u, 0x12ffu})
    CHECK(f.ste_at(f.ste_pa(*t, sid)) == make_bypass_ste(kFeatures));
  CHECK(f.ste_pa(*t, 0x1300) == 0);
  // First the L1STD's invalidation (Leaf == 0), then the STE's steps (Leaf == 1).
  REQUIRE(f.inv.calls.size() == 1 + r->syncs);
  CHECK(f.inv.calls[0] == std::make_pair(uint32_t{0x1234}, false));
  for (size_t i = 1; i < f.inv.calls.size(); i++)
    CHECK(f.inv.calls[i] == std::make_pair(uint32_t{0x1234}, true));

  // Another StreamID of the same span: no allocation, no Leaf == 0.
  f.inv.clear();
  REQUIRE(t->write_ste(0x12aa, target).ok());
  CHECK(f.dma().live_allocations() == live_before + 1);
  CHECK(f.inv.count(false) == 0);
  CHECK(*t->read_ste(0x12aa) == target);
  // install_l2 alone.
  REQUIRE(t->install_l2(0xff00).ok());
  CHECK(f.l1std_at(l1 + 0xff * 8).get<L1STD::Span>() == 9);
  CHECK(*t->read_ste(0xff17) == make_bypass_ste(kFeatures));
}

TEST_CASE("stream table geometry") {
  Fixture f;
  // Few StreamIDs: linear even when 2-level is supported.
  CHECK_FALSE(f.create(8, true, make_abort_ste())->two_level());
  CHECK(f.create(9, true, make_abort_ste())->two_level());
  // 32-bit StreamIDs: the level-1 table is capped at 2^17 L1STDs, 2^25 StreamIDs.
  Box<Strtab> big = f.create(32, true, make_abort_ste());
  CHECK(big->log2size() == 25);
  CHECK(big->strtab_base_cfg().get<smmuv3::STRTAB_BASE_CFG::LOG2SIZE>() == 25);
  CHECK(big->write_ste((1u << 25) - 1, make_abort_ste()).ok());
  CHECK(big->write_ste(1u << 25, make_abort_ste()).error().code() == -ERANGE);
  CHECK(Strtab::create(f.dma(), f.inv, StrtabConfig{.sid_bits = 33}).error().code() == -EINVAL);
}

TEST_CASE("StreamIDs out of range are -ERANGE") {
  Fixture f;
  Box<Strtab> lin = f.create(6, false, make_abort_ste());
  CHECK(lin->write_ste(64, make_abort_ste()).error().code() == -ERANGE);
  CHECK(lin->read_ste(64).error().code() == -ERANGE);
  CHECK(lin->install_l2(0xffffffff).error().code() == -ERANGE);
  Box<Strtab> two = f.create(12, true, make_abort_ste());
  CHECK(two->write_ste(1u << 12, make_abort_ste()).error().code() == -ERANGE);
  CHECK(two->install_l2(1u << 12).error().code() == -ERANGE);
  CHECK(f.inv.calls.empty());
}

TEST_CASE("concurrent first use of a level-2 array installs it exactly once") {
  constexpr unsigned kThreads = 8;
  for (int round = 0; round < 20; round++) {
    Fixture f;
    Box<Strtab> t = f.create(16, true, make_abort_ste());
    const size_t live_before = f.dma().live_allocations();
    std::atomic<unsigned> ready{0};
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    // Threads 0-5 share span 0x40, threads 6-7 span 0x41.
    auto sid_of = [](unsigned i) { return i < 6 ? 0x4000u + i * 7 : 0x4100u + i; };
    for (unsigned i = 0; i < kThreads; i++) {
      threads.emplace_back([&, i] {
        ready.fetch_add(1);
        while (ready.load() < kThreads) std::this_thread::yield();
        if (!t->write_ste(sid_of(i), make_bypass_ste(kFeatures)).ok()) failures++;
      });
    }
    for (auto& th : threads) th.join();
    CHECK(failures.load() == 0);
    CHECK(f.dma().live_allocations() == live_before + 2);
    // One Leaf == 0 invalidation per installed array.
    std::set<uint32_t> spans;
    for (const auto& c : f.inv.calls)
      if (!c.second) spans.insert(c.first >> 8);
    CHECK(f.inv.count(false) == 2);
    CHECK(spans == std::set<uint32_t>{0x40, 0x41});
    for (unsigned i = 0; i < kThreads; i++)
      CHECK(f.ste_at(f.ste_pa(*t, sid_of(i))) == make_bypass_ste(kFeatures));
    CHECK(f.ste_at(f.ste_pa(*t, 0x4001)) == make_abort_ste());
  }
}

// The installer's L1STD invalidation fails while other threads wait to use the same span:
// the installer reports the error, and no other thread writes an STE of the span (Leaf == 1
// syncs) before a Leaf == 0 invalidation has succeeded.
TEST_CASE("concurrent first use when the L1STD invalidation fails") {
  constexpr unsigned kThreads = 6;
  for (int round = 0; round < 20; round++) {
    Fixture f;
    Box<Strtab> t = f.create(16, true, make_abort_ste());
    f.inv.fail_next = 1;  // the first command is the installer's Leaf == 0
    std::atomic<unsigned> ready{0};
    std::atomic<int> errors{0};
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < kThreads; i++) {
      threads.emplace_back([&, i] {
        ready.fetch_add(1);
        while (ready.load() < kThreads) std::this_thread::yield();
        if (!t->write_ste(0x5000 + i, make_bypass_ste(kFeatures)).ok()) errors++;
      });
    }
    for (auto& th : threads) th.join();
    CHECK(errors.load() >= 1);
    REQUIRE(f.inv.calls.size() >= 1);
    CHECK_FALSE(f.inv.calls[0].second);  // the failed installation
    bool l1_synced = false;
    for (size_t i = 1; i < f.inv.calls.size(); i++) {
      if (!f.inv.calls[i].second) l1_synced = true;
      if (f.inv.calls[i].second) CHECK(l1_synced);
    }
  }
}

TEST_CASE("allocation failures leave nothing installed and nothing leaked") {
  Fixture f;
  const long kmallocs = hosted::kmalloc_live();
  // create(): the table (DMA), the object and the level-1 bookkeeping (kmalloc).
  f.dma().fail_nth(0);
  CHECK(Strtab::create(f.dma(), f.inv, StrtabConfig{.sid_bits = 16, .two_level = true})
            .error()
            .code() == -ENOMEM);
  for (long n : {0, 1}) {
    hosted::fail_kmalloc_nth(n);
    CHECK(Strtab::create(f.dma(), f.inv, StrtabConfig{.sid_bits = 16, .two_level = true})
              .error()
              .code() == -ENOMEM);
  }
  hosted::fail_kmalloc_nth(-1);
  CHECK(f.dma().live_allocations() == 0);
  CHECK(hosted::kmalloc_live() == kmallocs);

  // A level-2 array that cannot be allocated: -ENOMEM, the L1STD untouched, no command.
  Box<Strtab> t = f.create(16, true, make_abort_ste());
  const size_t live = f.dma().live_allocations();
  const uint64_t l1 = t->strtab_base().get<smmuv3::STRTAB_BASE::ADDR>();
  f.dma().fail_nth(0);
  CHECK(t->write_ste(0x0203, make_bypass_ste(kFeatures)).error().code() == -ENOMEM);
  CHECK(f.l1std_at(l1 + 2 * 8).word(0) == 0);
  CHECK(t->read_ste(0x0203).error().code() == -ENOENT);
  CHECK(f.dma().live_allocations() == live);
  CHECK(f.inv.calls.empty());
  // The next attempt succeeds.
  REQUIRE(t->write_ste(0x0203, make_bypass_ste(kFeatures)).ok());
  CHECK(*t->read_ste(0x0203) == make_bypass_ste(kFeatures));
  t.reset();
  CHECK(f.dma().live_allocations() == 0);
  CHECK(hosted::kmalloc_live() == kmallocs);
}

TEST_CASE("a failed invalidation is reported and leaves a consistent STE") {
  Fixture f;
  Box<Strtab> t = f.create(6, false, make_abort_ste());
  const STE bypass = make_bypass_ste(kFeatures);
  const STE s1 = make_cdtable_ste(kFeatures, SteCdTable{.cdtab = 0x4000'0000});
  const STE s2a = s2_ste(0x4100'0000, 3), s2b = s2_ste(0x4200'0000, 4);
  REQUIRE(t->write_ste(1, bypass).ok());

  // Bypass -> stage 1 is three steps; the first sync fails: the stage-1 bits bypass ignores
  // were published, Config was not. The SMMU can only have seen the bypass STE.
  f.inv.clear();
  f.inv.fail_next = 1;
  auto r = t->write_ste(1, s1);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == -ETIMEDOUT);
  CHECK(f.inv.calls.size() == 1);  // nothing published, nothing invalidated after the failure
  const STE left = *t->read_ste(1);
  CHECK(effective(left) == effective(bypass));
  CHECK(left != bypass);
  // Retrying completes the update.
  REQUIRE(t->write_ste(1, s1).ok());
  CHECK(*t->read_ste(1) == s1);

  // Break-before-make (a new stage-2 table and VMID), failing at its second step: V was
  // cleared and that invalidated, then the other words were published but their invalidation
  // failed. The STE is left invalid (V == 0): traffic aborts, never sees a mix of the two.
  REQUIRE(t->write_ste(2, s2a).ok());
  f.inv.clear();
  f.inv.succeed_first = 1;
  f.inv.fail_next = 1;
  f.inv.error = -EIO;
  auto failed = t->write_ste(2, s2b);
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.error().code() == -EIO);
  CHECK(f.inv.calls.size() == 2);
  const STE mid = *t->read_ste(2);
  CHECK(mid.get<STE::V>() == 0);
  CHECK(mid.word(0) == (s2b.word(0) & ~uint64_t{1}));
  for (unsigned i = 1; i < STE::kWords; i++) CHECK(mid.word(i) == s2b.word(i));
  // The retry sets V: the update completes.
  f.inv.clear();
  auto retried = t->write_ste(2, s2b);
  REQUIRE(retried.ok());
  CHECK(retried->syncs == 1);
  CHECK(*t->read_ste(2) == s2b);
}

TEST_CASE("a failed L1STD invalidation is reported and retried before the next write") {
  Fixture f;
  Box<Strtab> t = f.create(16, true, make_abort_ste());
  const uint64_t l1 = t->strtab_base().get<smmuv3::STRTAB_BASE::ADDR>();
  f.inv.fail_next = 1;
  CHECK(t->write_ste(0x0305, make_bypass_ste(kFeatures)).error().code() == -ETIMEDOUT);
  // The array is installed (the SMMU may already walk it) but the STE was not written.
  CHECK(f.l1std_at(l1 + 3 * 8).get<L1STD::Span>() == 9);
  CHECK(*t->read_ste(0x0305) == make_abort_ste());
  CHECK(f.inv.calls.size() == 1);

  // Writing the STE it already holds needs no STE sync, but the L1STD invalidation is retried
  // first: no success while the SMMU may hold the invalid L1STD.
  f.inv.clear();
  REQUIRE(t->write_ste(0x0306, make_abort_ste()).ok());
  REQUIRE(f.inv.calls.size() == 1);
  CHECK(f.inv.calls[0] == std::make_pair(uint32_t{0x0306}, false));
  // Then never again.
  f.inv.clear();
  REQUIRE(t->write_ste(0x0305, make_bypass_ste(kFeatures)).ok());
  CHECK(f.inv.count(false) == 0);
  CHECK(f.inv.count(true) > 0);
}

TEST_CASE("a non-coherent SMMU gets every table write cleaned") {
  Fixture f(/*coherent=*/false);
  Box<Strtab> t = f.create(16, true, make_abort_ste());
  const uint64_t before = f.dma().sync_for_device_calls();
  auto r = t->write_ste(0x0101, make_bypass_ste(kFeatures));
  REQUIRE(r.ok());
  // The new array, its L1STD, and the STE once per sync step.
  CHECK(f.dma().sync_for_device_calls() == before + 2 + r->syncs);
}

}  // namespace
}  // namespace strata::arm_smmu_v3
