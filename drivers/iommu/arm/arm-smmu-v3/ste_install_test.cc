// SPDX-License-Identifier: MIT
// The STE of a master with several StreamIDs when an STE write fails (install_ste and
// release_device), against the SMMUv3 model. Failures are injected by a register interposer
// that turns the Command queue off under the driver (CR0.CMDQEN = 0 behind its back) just
// before a chosen CMDQ_PROD write: the SMMU consumes nothing more, and the CMD_SYNC of that
// STE write times out. "Transient" turns the queue back on at the next CMDQ_PROD write, so
// exactly one CMD_SYNC fails; otherwise it stays off until the test restarts it.
#include <stdint.h>

#include <map>
#include <memory>
#include <mutex>

#include <doctest/doctest.h>

#include "arch/smmuv3/regs.h"
#include "arch/smmuv3/ste.h"
#include "core/iommu.h"
#include "drivers/iommu/arm/arm-smmu-v3/arm_smmu_v3.h"
#include "drivers/iommu/arm/arm-smmu-v3/ste.h"
#include "testing/hosted/hosted.h"
#include "testing/sim/arm_platform.h"

namespace strata::arm_smmu_v3 {
namespace {

namespace hw = ::strata::smmuv3;

constexpr uint32_t kSid0 = 0x20;
constexpr uint32_t kSid1 = 0x21;
// Failures should be quick: a CMD_SYNC waits this long (20 ms) before -ETIMEDOUT.
constexpr uint64_t kTimeoutUs = 20'000;

// Sits between the driver and the model's registers; forwards everything.
class CmdqStopper final : public RegisterModel {
 public:
  explicit CmdqStopper(RegisterModel& real) : real_(real) {}

  uint64_t mmio_read(uint64_t offset, unsigned size) override {
    return real_.mmio_read(offset, size);
  }
  void mmio_write(uint64_t offset, uint64_t value, unsigned size) override {
    if (offset == hw::CMDQ_PROD::kOffset) {
      const unsigned n = ++prod_writes_;
      if (restart_at_ == n) set_cmdqen(true);
      if (stop_at_ == n) set_cmdqen(false);
    }
    real_.mmio_write(offset, value, size);
  }

  // The n-th CMDQ_PROD write from now (n >= 1) finds the queue off: the commands it publishes
  // are not consumed. With `transient`, the one after it turns the queue on first.
  void stop_at(unsigned n, bool transient) {
    stop_at_ = prod_writes_ + n;
    restart_at_ = transient ? stop_at_ + 1 : 0;
  }
  // The queue on again (and no stop pending): the SMMU re-fetches from CMDQ_CONS.
  void restart() {
    stop_at_ = restart_at_ = 0;
    set_cmdqen(true);
  }
  bool cmdq_on() const {
    return (real_.mmio_read(hw::CR0ACK::kOffset, 4) & hw::CR0::CMDQEN::kMask) != 0;
  }

 private:
  // Through the real model, as if the SMMU had stopped: CR0.CMDQEN with its Update, which the
  // model (kSync) completes inside the write.
  void set_cmdqen(bool on) {
    const uint64_t cr0 = real_.mmio_read(hw::CR0::kOffset, 4);
    const uint64_t bit = hw::CR0::CMDQEN::kMask;
    real_.mmio_write(hw::CR0::kOffset, on ? (cr0 | bit) : (cr0 & ~bit), 4);
    REQUIRE(cmdq_on() == on);
  }

  RegisterModel& real_;
  unsigned prod_writes_ = 0;
  unsigned stop_at_ = 0;  // 0: none
  unsigned restart_at_ = 0;
};

// The platform's allocator, counting the frees of each physical address, so a test can tell
// whether a table the driver owned was given back.
class TrackingDma final : public DmaAllocator {
 public:
  explicit TrackingDma(DmaAllocator& real) : real_(real) {}

  Result<DmaRegion> alloc(size_t size, size_t align) override { return real_.alloc(size, align); }
  void free(const DmaRegion& region) override {
    {
      std::lock_guard<std::mutex> g(mu_);
      frees_[region.phys]++;
    }
    real_.free(region);
  }
  bool coherent() const override { return real_.coherent(); }
  void sync_for_device(const DmaRegion& region, size_t offset, size_t len) override {
    real_.sync_for_device(region, offset, len);
  }
  void sync_for_cpu(const DmaRegion& region, size_t offset, size_t len) override {
    real_.sync_for_cpu(region, offset, len);
  }

  unsigned frees_of(phys_addr_t phys) const {
    std::lock_guard<std::mutex> g(mu_);
    auto it = frees_.find(phys);
    return it == frees_.end() ? 0 : it->second;
  }

 private:
  DmaAllocator& real_;
  mutable std::mutex mu_;
  std::map<phys_addr_t, unsigned> frees_;
};

// The simulated platform, the interposer and the driver probed over it, with the StreamIDs
// kSid0 and kSid1 for one device. Members are destroyed bottom-up: the driver (SMMU disabled)
// before the allocator and registers it uses.
struct Rig {
  std::unique_ptr<sim::ArmPlatform> platform;
  std::unique_ptr<CmdqStopper> stopper;
  std::unique_ptr<TrackingDma> dma;
  Box<ArmSmmuV3> smmu;

  Rig() {
    auto p = sim::ArmPlatform::create(sim::ArmPlatform::Config{.engines = 0});
    REQUIRE(p.ok());
    platform = p.release_value();
    stopper = std::make_unique<CmdqStopper>(platform->smmu().regs());
    dma = std::make_unique<TrackingDma>(platform->dma());
    auto s = ArmSmmuV3::probe(ArmSmmuConfig{.name = "smmu-ste",
                                            .regs = Mmio::model(*stopper, hw::kRegisterSpaceBytes),
                                            .dma = dma.get(),
                                            .timeout_us = kTimeoutUs});
    REQUIRE(s.ok());
    smmu = s.release_value();
  }

  DeviceDesc two_sid_device() {
    return DeviceDesc{.name = "two-sids",
                      .fwspec = {.iommu = smmu.get(), .ids = {kSid0, kSid1}, .num_ids = 2}};
  }
  hw::STE ste(uint32_t sid) {
    auto r = smmu->strtab().read_ste(sid);
    REQUIRE(r.ok());
    return r.value();
  }
  uint64_t cfgi_ste_executed() {
    return platform->smmu().counters().command(hw::Opcode::CMD_CFGI_STE);
  }
};

// The STE with only the bits its configuration uses: what the SMMU acts on.
hw::STE used_bits(const hw::STE& ste) {
  uint64_t words[hw::STE::kWords], used[hw::STE::kWords];
  ste_to_words(ste, words);
  ste_get_used(words, used);
  hw::STE out;
  for (unsigned i = 0; i < hw::STE::kWords; i++) out.set_word(i, words[i] & used[i]);
  return out;
}

TEST_CASE("install_ste: a failed write of the 2nd StreamID puts the 1st back (stage 1 -> 2)") {
  Rig rig;
  Device dev(rig.two_sid_device());
  REQUIRE(iommu_probe_device(dev).ok());
  int owner = 0;
  REQUIRE(iommu_group_claim_dma_owner(*dev.group(), &owner).ok());
  Box<Domain> s1 = iommu_paging_domain_alloc(dev).release_value();
  Box<Domain> s2 = iommu_paging_domain_alloc(dev, IOMMU_DOMAIN_ALLOC_NEST_PARENT).release_value();
  REQUIRE(iommu_attach_group(*s1, *dev.group()).ok());
  const hw::STE s1_ste = rig.ste(kSid0);
  REQUIRE(s1_ste.get<hw::STE::Config>() == hw::kConfigS1Trans);
  REQUIRE(rig.ste(kSid1) == s1_ste);

  // How many CMD_SYNCs one StreamID's switch from the stage-1 to the stage-2 STE takes (one
  // CMD_CFGI_STE + CMD_SYNC, one CMDQ_PROD write, per step of the hitless writer), learnt from
  // a switch that works: the 2nd StreamID's first write is then CMDQ_PROD write k + 1.
  const uint64_t before = rig.cfgi_ste_executed();
  REQUIRE(iommu_group_replace_domain(*dev.group(), *s2).ok());
  const uint64_t per_pair = rig.cfgi_ste_executed() - before;
  REQUIRE(per_pair % 2 == 0);
  const unsigned k = static_cast<unsigned>(per_pair / 2);
  REQUIRE(k >= 1);
  const hw::STE s2_ste = rig.ste(kSid0);
  CHECK(s2_ste.get<hw::STE::Config>() == hw::kConfigS2Trans);
  REQUIRE(iommu_group_replace_domain(*dev.group(), *s1).ok());
  REQUIRE(rig.ste(kSid0) == s1_ste);
  REQUIRE(rig.ste(kSid1) == s1_ste);

  SUBCASE("transient: the rollback's own CMD_SYNCs complete") {
    hosted::LogCapture logs;
    rig.stopper->stop_at(k + 1, /*transient=*/true);
    auto r = iommu_group_replace_domain(*dev.group(), *s2);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code() == -ETIMEDOUT);
    CHECK(logs.contains("StreamID 0x21 failed"));  // the 2nd StreamID's write
    CHECK(rig.stopper->cmdq_on());
    // Both StreamIDs back on the stage-1 STE, as the core believes (the group kept s1), and
    // nothing points at s2, which its owner may now free.
    CHECK(rig.ste(kSid0) == s1_ste);
    CHECK(rig.ste(kSid1) == s1_ste);
    CHECK(iommu_get_domain_for_dev(dev) == s1.get());
    CHECK_FALSE(logs.contains("putting the previous STE back failed"));
    // And the master goes on: the same switch now works.
    REQUIRE(iommu_group_replace_domain(*dev.group(), *s2).ok());
    CHECK(rig.ste(kSid0) == s2_ste);
    CHECK(rig.ste(kSid1) == s2_ste);
    iommu_detach_group(*s2, *dev.group());
  }

  SUBCASE("persistent: the rollback fails too, is logged, and a later rollback still works") {
    {
      hosted::LogCapture logs;
      rig.stopper->stop_at(k + 1, /*transient=*/false);
      auto r = iommu_group_replace_domain(*dev.group(), *s2);
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code() == -ETIMEDOUT);  // the write's error, not the rollback's
      CHECK(logs.contains("StreamID 0x21 failed"));
      CHECK(logs.contains("StreamID 0x20: putting the previous STE back failed too"));
      CHECK(logs.contains("StreamID 0x21: putting the previous STE back failed too"));
      CHECK(iommu_get_domain_for_dev(dev) == s1.get());
    }
    rig.stopper->restart();

    // The interrupted writes left a StreamID mid-update: bits its configuration ignores
    // already set. A rollback to it must target what the SMMU acts on (the used bits), which
    // is also what the entry writer accepts as a target.
    const hw::STE mid0 = rig.ste(kSid0), mid1 = rig.ste(kSid1);
    CHECK((used_bits(mid0) != mid0 || used_bits(mid1) != mid1));
    {
      hosted::LogCapture logs;
      rig.stopper->stop_at(1, /*transient=*/true);  // the first StreamID's first CMD_SYNC
      auto r = iommu_group_replace_domain(*dev.group(), *s2);
      REQUIRE_FALSE(r.ok());
      CHECK(logs.contains("StreamID 0x20 failed"));
      CHECK_FALSE(logs.contains("putting the previous STE back failed"));
      CHECK(rig.ste(kSid0) == used_bits(mid0));
      CHECK(rig.ste(kSid1) == mid1);  // never reached
    }
    rig.stopper->restart();
    // With the queue working, the switch completes and both StreamIDs agree again.
    REQUIRE(iommu_group_replace_domain(*dev.group(), *s2).ok());
    CHECK(rig.ste(kSid0) == s2_ste);
    CHECK(rig.ste(kSid1) == s2_ste);
    iommu_detach_group(*s2, *dev.group());
  }

  iommu_group_release_dma_owner(*dev.group());
  s1.reset();
  s2.reset();
  iommu_release_device(dev);
}

TEST_CASE("release_device: an STE that cannot be reset keeps its CD table alive (leaked)") {
  Rig rig;
  Device dev(rig.two_sid_device());
  REQUIRE(iommu_probe_device(dev).ok());
  // The default DMA domain is stage 1: both STEs point at the master's CD table.
  auto* master = static_cast<ArmSmmuMaster*>(dev.iommu_priv());
  REQUIRE(master != nullptr);
  REQUIRE(master->cd_table);
  CdTable* const table = master->cd_table.get();
  const phys_addr_t cd_base = table->base();
  CHECK(rig.ste(kSid0).get<hw::STE::S1ContextPtr>() == cd_base);
  CHECK(rig.ste(kSid1).get<hw::STE::S1ContextPtr>() == cd_base);

  hosted::LogCapture logs;
  rig.stopper->stop_at(1, /*transient=*/false);
  iommu_release_device(dev);
  CHECK(logs.contains("release: STE of StreamID 0x20 not reset"));
  CHECK(logs.contains("release: STE of StreamID 0x21 not reset"));
  CHECK(logs.contains("CD table at"));
  const bool leaked = rig.dma->frees_of(cd_base) == 0;
  CHECK(leaked);

  // The test takes the table back once no SMMU can walk it: the driver gone, SMMUEN clear
  // (3.21.3: nothing is fetched then).
  rig.stopper->restart();
  rig.smmu.reset();
  CHECK((rig.platform->smmu_mmio().readl(hw::CR0ACK::kOffset) & hw::CR0::SMMUEN::kMask) == 0);
  if (leaked) {
    Box<CdTable>::adopt(table).reset();
    CHECK(rig.dma->frees_of(cd_base) == 1);
  }
}

}  // namespace
}  // namespace strata::arm_smmu_v3
