// SPDX-License-Identifier: MIT
// A driver's-eye harness for tests of the assembled SMMUv3 model (smmuv3.h): a simulated
// machine, the model, and small helpers that build stream tables, CDs and translation tables
// by hand in simulated memory and program the registers and the Command and Event queues as a
// driver would, through Mmio and the CPU's view of RAM. Deliberately not the driver.
//
// Memory map (RAM at kRamBase):
//   +1 MiB   Command queue           +2 MiB  Event queue         +3 MiB  PRI queue
//   +4 MiB   stream tables and CDs (PA)
//   +8 MiB   stage-1 tables (PA)     +16 MiB stage-2 tables
//   +32 MiB  guest memory: CDs and stage-1 tables of nested streams, seen at IPA kGuestIpa
//            through a stage 2 that maps it with 2 MiB blocks (guest_s2())
//   +64 MiB  data pages (data_pa(i)), and their IPAs (data_ipa(i)) once map_data_ipa() maps them
#pragma once

#include <stdint.h>
#include <string.h>

#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "arch/dma.h"
#include "arch/lpae/pte.h"
#include "arch/mmio.h"
#include "arch/smmuv3/cd.h"
#include "arch/smmuv3/cmd.h"
#include "arch/smmuv3/event.h"
#include "arch/smmuv3/regs.h"
#include "arch/smmuv3/ste.h"
#include "testing/models/platform/platform.h"
#include "testing/models/smmuv3/smmuv3.h"
#include "testing/models/smmuv3/test_tables.h"

namespace strata::sim::smmuv3::test {

namespace arch = ::strata::smmuv3;

inline constexpr phys_addr_t kRamBase = 0x4000'0000;
inline constexpr uint64_t kRamSize = uint64_t{256} << 20;
inline constexpr phys_addr_t kCmdqPa = kRamBase + (1 << 20);
inline constexpr phys_addr_t kEventqPa = kRamBase + (2 << 20);
inline constexpr phys_addr_t kPriqPa = kRamBase + (3 << 20);
inline constexpr phys_addr_t kStructPa = kRamBase + (4 << 20);
inline constexpr phys_addr_t kS1Pa = kRamBase + (8 << 20);
inline constexpr phys_addr_t kS2Pa = kRamBase + (16 << 20);
inline constexpr phys_addr_t kGuestPa = kRamBase + (32 << 20);
inline constexpr uint64_t kGuestSize = 16 << 20;
inline constexpr uint64_t kGuestIpa = 0x8000'0000;  // where the guest sees kGuestPa
inline constexpr phys_addr_t kDataPa = kRamBase + (64 << 20);
inline constexpr uint64_t kDataIpa = 0x1'0000'0000;  // where nested streams see the data pages
// Nothing answers here: an access is an external abort.
inline constexpr phys_addr_t kNowhere = 0x2000'0000;

inline uint64_t data_pa(unsigned i) { return kDataPa + uint64_t{i} * 4096; }
inline uint64_t data_ipa(unsigned i) { return kDataIpa + uint64_t{i} * 4096; }

// Stage 1: 4K granule, 48-bit VA (T0SZ 16): four levels from level 0.
inline constexpr unsigned kS1StartBits = 9;
// Stage 2: 4K granule, 48-bit IPA (S2T0SZ 16, S2SL0 2): four levels from level 0.
inline constexpr unsigned kS2StartBits = 9;

// Structures, field by field, as a driver builds them (not the driver's code).
inline arch::CD make_cd(uint16_t asid, uint64_t ttb0) {
  arch::CD cd;
  cd.set<arch::CD::T0SZ>(16)
      .set<arch::CD::TG0>(arch::kTg0_4K)
      .set<arch::CD::EPD1>(1)
      .set<arch::CD::V>(1)
      .set<arch::CD::IPS>(arch::kAddrSize48)
      .set<arch::CD::AA64>(1)
      .set<arch::CD::R>(1)
      .set<arch::CD::A>(1)
      .set<arch::CD::ASID>(asid)
      .set<arch::CD::TTB0>(ttb0)
      .set<arch::CD::MAIR0>(0x0404ff44);
  return cd;
}

inline arch::STE abort_ste() {
  arch::STE s;
  s.set<arch::STE::V>(1).set<arch::STE::Config>(arch::kConfigAbort);
  return s;
}
inline arch::STE bypass_ste() {
  arch::STE s;
  s.set<arch::STE::V>(1).set<arch::STE::Config>(arch::kConfigBypass);
  return s;
}
inline arch::STE s1_ste(uint64_t ctx, uint16_t vmid = 0, unsigned cdmax = 0,
                        uint64_t fmt = arch::kS1FmtLinear, uint64_t dss = arch::kS1dssTerminate) {
  arch::STE s;
  s.set<arch::STE::V>(1)
      .set<arch::STE::Config>(arch::kConfigS1Trans)
      .set<arch::STE::S1ContextPtr>(ctx)
      .set<arch::STE::S1CDMax>(cdmax)
      .set<arch::STE::S1Fmt>(fmt)
      .set<arch::STE::S1DSS>(dss)
      .set<arch::STE::S1CIR>(arch::kS1cWbRa)
      .set<arch::STE::S1COR>(arch::kS1cWbRa)
      .set<arch::STE::S1CSH>(arch::kShIsh)
      .set<arch::STE::S2VMID>(vmid);
  return s;
}
// Adds stage 2 (4K, 48-bit IPA, start level 0) to `s` with `config` (kConfigS2Trans or
// kConfigNested).
inline arch::STE with_s2(arch::STE s, uint64_t s2ttb, uint64_t config, uint16_t vmid) {
  s.set<arch::STE::V>(1)
      .set<arch::STE::Config>(config)
      .set<arch::STE::S2VMID>(vmid)
      .set<arch::STE::S2T0SZ>(16)
      .set<arch::STE::S2SL0>(2)
      .set<arch::STE::S2TG>(arch::kS2Tg4K)
      .set<arch::STE::S2PS>(arch::kAddrSize48)
      .set<arch::STE::S2AA64>(1)
      .set<arch::STE::S2R>(1)
      .set<arch::STE::S2TTB>(s2ttb);
  return s;
}
inline arch::STE s2_ste(uint64_t s2ttb, uint16_t vmid) {
  return with_s2(arch::STE{}, s2ttb, arch::kConfigS2Trans, vmid);
}

// Commands built from the architected layouts.
inline arch::CmdSync sync_cmd() { return arch::CmdSync::make(); }
inline arch::CmdCfgiSte cfgi_ste(uint32_t sid, bool leaf = true) {
  return arch::CmdCfgiSte::make().set<arch::CmdCfgiSte::StreamID>(sid).set<arch::CmdCfgiSte::Leaf>(
      leaf);
}
inline arch::CmdCfgiSteRange cfgi_ste_range(uint32_t sid, unsigned range) {
  return arch::CmdCfgiSteRange::make()
      .set<arch::CmdCfgiSteRange::StreamID>(sid)
      .set<arch::CmdCfgiSteRange::Range>(range);
}
inline arch::CmdCfgiSteRange cfgi_all() { return arch::CmdCfgiSteRange::make_all(); }
inline arch::CmdCfgiCd cfgi_cd(uint32_t sid, uint32_t ssid, bool leaf = true) {
  return arch::CmdCfgiCd::make()
      .set<arch::CmdCfgiCd::StreamID>(sid)
      .set<arch::CmdCfgiCd::SubstreamID>(ssid)
      .set<arch::CmdCfgiCd::Leaf>(leaf);
}
inline arch::CmdCfgiCdAll cfgi_cd_all(uint32_t sid) {
  return arch::CmdCfgiCdAll::make().set<arch::CmdCfgiCdAll::StreamID>(sid);
}
// CMD_ATC_INV of 4 KB * 2^size at `addr` (4.5.1).
inline arch::CmdAtcInv atc_inv(uint32_t sid, uint64_t addr, unsigned size = 0, bool ssv = false,
                               uint32_t ssid = 0, bool global = false) {
  using A = arch::CmdAtcInv;
  return A::make()
      .set<A::StreamID>(sid)
      .set<A::SSV>(ssv)
      .set<A::SubstreamID>(ssid)
      .set<A::Global>(global)
      .set<A::Size>(size)
      .set<A::Address>(addr & ~uint64_t{0xfff});
}
// CMD_PRI_RESP (4.5.2); `resp` is arch::kPriResp*.
inline arch::CmdPriResp pri_resp(uint32_t sid, uint32_t prgi, uint64_t resp, bool ssv = false,
                                 uint32_t ssid = 0) {
  using P = arch::CmdPriResp;
  return P::make()
      .set<P::StreamID>(sid)
      .set<P::SSV>(ssv)
      .set<P::SubstreamID>(ssid)
      .set<P::PRGIndex>(prgi)
      .set<P::Resp>(resp);
}
inline arch::CmdTlbi tlbi(arch::Opcode op, uint16_t vmid = 0, uint16_t asid = 0,
                          uint64_t addr = 0) {
  arch::CmdTlbi t = arch::CmdTlbi::make(op);
  t.set<arch::CmdTlbi::VMID>(vmid).set<arch::CmdTlbi::ASID>(asid).set<arch::CmdTlbi::Address>(addr);
  return t;
}
// The range form: (num + 1) << scale granules of 2^tg_log2 bytes from `addr`, level hint `ttl`.
inline arch::CmdTlbi tlbi_range(arch::CmdTlbi t, uint64_t tg, unsigned num, unsigned scale,
                                unsigned ttl) {
  t.set<arch::CmdTlbi::TG>(tg)
      .set<arch::CmdTlbi::NUM>(num)
      .set<arch::CmdTlbi::SCALE>(scale)
      .set<arch::CmdTlbi::TTL>(ttl);
  return t;
}

class Machine {
 public:
  struct Setup {
    Threading threading = Threading::kSync;
    Config config = Config::smmuv3_2();
    bool oracle = true;
    unsigned tlb_sets = 64;
    unsigned tlb_ways = 4;
    std::chrono::milliseconds atc_inv_timeout{10000};
  };

  Machine() : Machine(Setup{}) {}
  explicit Machine(Threading t) : Machine(Setup{.threading = t}) {}
  explicit Machine(const Setup& setup) : threading(setup.threading), platform(make_platform()) {
    auto s = Smmuv3::create(setup.config, mem(),
                            Smmuv3::Options{.threading = setup.threading,
                                            .irq = &platform->irq(),
                                            .name = "smmu-test",
                                            .tlb_sets = setup.tlb_sets,
                                            .tlb_ways = setup.tlb_ways,
                                            .oracle = setup.oracle,
                                            .atc_inv_timeout = setup.atc_inv_timeout});
    REQUIRE(s.ok());
    smmu = s.release_value();
    io = Mmio::model(smmu->regs(), arch::kRegisterSpaceBytes);
  }
  ~Machine() { smmu.reset(); }

  PhysMem& mem() { return platform->mem(); }
  Smmuv3& model() { return *smmu; }

  // Waits, as a driver polls, until `done` holds (see queue_harness.h).
  bool poll(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
      if (done()) return true;
      switch (threading) {
        case Threading::kSync: return false;
        case Threading::kManual: smmu->queues().process(); break;
        case Threading::kAsync: std::this_thread::yield(); break;
      }
      if (std::chrono::steady_clock::now() > deadline) return false;
    }
  }

  uint32_t readl(uint64_t off) const { return io.readl(off); }
  void writel(uint32_t v, uint64_t off) const { io.writel(v, off); }
  bool write_cr0(uint32_t value) {
    writel(value, arch::CR0::kOffset);
    return poll([&] { return readl(arch::CR0ACK::kOffset) == value; });
  }
  uint32_t cr0() const { return readl(arch::CR0::kOffset); }
  bool enable(uint32_t bits) { return write_cr0(cr0() | bits); }
  bool disable(uint32_t bits) { return write_cr0(cr0() & ~bits); }
  bool write_gbpa(uint32_t value) {
    writel(value | arch::GBPA::Update::kMask, arch::GBPA::kOffset);
    return poll([&] { return !(readl(arch::GBPA::kOffset) & arch::GBPA::Update::kMask); });
  }

  // A linear stream table of 2^log2size STEs, all V == 0; CR2.RECINVSID set.
  void linear_strtab(unsigned log2size) {
    strtab = structs.alloc(uint64_t{64} << log2size);
    two_level = false;
    arch::STRTAB_BASE{}.set<arch::STRTAB_BASE::ADDR>(strtab).write_to(io);
    arch::STRTAB_BASE_CFG{}
        .set<arch::STRTAB_BASE_CFG::LOG2SIZE>(log2size)
        .set<arch::STRTAB_BASE_CFG::FMT>(arch::kStrtabFmtLinear)
        .write_to(io);
    arch::CR2{}.set<arch::CR2::RECINVSID>(1).write_to(io);
  }
  // A 2-level stream table of 2^log2size StreamIDs with SPLIT 6: L1STDs all invalid (Span 0).
  void two_level_strtab(unsigned log2size) {
    const unsigned l1 = log2size > 6 ? log2size - 6 : 0;
    strtab = structs.alloc(uint64_t{8} << l1);
    two_level = true;
    arch::STRTAB_BASE{}.set<arch::STRTAB_BASE::ADDR>(strtab).write_to(io);
    arch::STRTAB_BASE_CFG{}
        .set<arch::STRTAB_BASE_CFG::LOG2SIZE>(log2size)
        .set<arch::STRTAB_BASE_CFG::SPLIT>(arch::kSplit4K)
        .set<arch::STRTAB_BASE_CFG::FMT>(arch::kStrtabFmt2Level)
        .write_to(io);
    arch::CR2{}.set<arch::CR2::RECINVSID>(1).write_to(io);
  }
  // Points the L1STD of `sid` at a fresh level-2 array of 64 STEs; returns its address.
  uint64_t install_l2(uint32_t sid) {
    const uint64_t l2 = structs.alloc(64 * 64);
    set_l1std(sid, l2, 7);
    return l2;
  }
  void set_l1std(uint32_t sid, uint64_t l2, unsigned span) {
    arch::L1STD d;
    d.set<arch::L1STD::Span>(span).set<arch::L1STD::L2Ptr>(l2);
    structs.put(strtab + uint64_t{sid >> 6} * 8, d.word(0));
  }
  uint64_t l2_of(uint32_t sid) { return lpae_l2ptr(structs.get(strtab + uint64_t{sid >> 6} * 8)); }
  static uint64_t lpae_l2ptr(uint64_t desc) {
    arch::L1STD d;
    d.set_word(0, desc);
    return d.get<arch::L1STD::L2Ptr>();
  }
  uint64_t ste_addr(uint32_t sid) {
    return two_level ? l2_of(sid) + uint64_t{sid & 63} * 64 : strtab + uint64_t{sid} * 64;
  }

  template <typename D>
  void put(Tables& where, uint64_t addr, const D& d) {
    for (unsigned i = 0; i < D::kWords; ++i) where.put(addr + 8 * i, d.word(i));
  }
  void set_ste(uint32_t sid, const arch::STE& s) { put(structs, ste_addr(sid), s); }
  uint64_t new_cd(const arch::CD& cd) {
    const uint64_t a = structs.alloc(64);
    put(structs, a, cd);
    return a;
  }

  // Stage-1 tables in PA space: a fresh root, and mappings into it.
  uint64_t new_s1_root() { return test::alloc_root(s1t, kS1StartBits); }
  uint64_t map_s1(uint64_t root, uint64_t va, uint64_t out, uint64_t attrs = kS1Rw,
                  unsigned level = 3) {
    return test::map(s1t, Tree{root, 12, 0, kS1StartBits}, va, level,
                     test::leaf_desc(out, 12, level, attrs));
  }
  // Stage-2 tables: a fresh root that maps the guest memory (2 MiB blocks), and page mappings.
  uint64_t new_s2_root() {
    const uint64_t root = test::alloc_root(s2t, kS2StartBits);
    for (uint64_t off = 0; off < kGuestSize; off += 2 << 20)
      test::map(s2t, Tree{root, 12, 0, kS2StartBits}, kGuestIpa + off, 2,
                test::leaf_desc(kGuestPa + off, 12, 2, kS2Rw));
    return root;
  }
  uint64_t map_s2(uint64_t root, uint64_t ipa, uint64_t pa, uint64_t attrs = kS2Rw) {
    return test::map(s2t, Tree{root, 12, 0, kS2StartBits}, ipa, 3,
                     test::leaf_desc(pa, 12, 3, attrs));
  }
  // Stage-1 tables and CDs of a nested stream, in guest IPA space.
  uint64_t new_guest_s1_root() { return test::alloc_root(guest, kS1StartBits); }
  uint64_t map_guest_s1(uint64_t root, uint64_t va, uint64_t out_ipa, uint64_t attrs = kS1Rw) {
    return test::map(guest, Tree{root, 12, 0, kS1StartBits}, va, 3,
                     test::leaf_desc(out_ipa, 12, 3, attrs));
  }
  uint64_t new_guest_cd(const arch::CD& cd) {
    const uint64_t a = guest.alloc(64);
    put(guest, a, cd);
    return a;
  }

  // The queues, 2^8 entries each, enabled, and SMMUEN.
  void setup_queues() {
    arch::CMDQ_BASE::from_value(0)
        .set<arch::CMDQ_BASE::ADDR>(kCmdqPa)
        .set<arch::CMDQ_BASE::LOG2SIZE>(kQs)
        .write_to(io);
    writel(0, arch::CMDQ_PROD::kOffset);
    writel(0, arch::CMDQ_CONS::kOffset);
    arch::EVENTQ_BASE::from_value(0)
        .set<arch::EVENTQ_BASE::ADDR>(kEventqPa)
        .set<arch::EVENTQ_BASE::LOG2SIZE>(kQs)
        .write_to(io);
    writel(0, arch::EVENTQ_PROD::kOffset);
    writel(0, arch::EVENTQ_CONS::kOffset);
    prod = evt_cons = 0;
    REQUIRE(enable(arch::CR0::CMDQEN::kMask | arch::CR0::EVENTQEN::kMask));
  }
  // The PRI queue, 2^log2size entries, and PRIQEN (effective once SMMUEN is set).
  void setup_priq(unsigned log2size = kQs) {
    priq_qs = log2size;
    arch::PRIQ_BASE::from_value(0)
        .set<arch::PRIQ_BASE::ADDR>(kPriqPa)
        .set<arch::PRIQ_BASE::LOG2SIZE>(log2size)
        .write_to(io);
    writel(0, arch::PRIQ_PROD::kOffset);
    writel(0, arch::PRIQ_CONS::kOffset);
    pri_cons = 0;
    REQUIRE(enable(arch::CR0::PRIQEN::kMask));
  }
  // Every PRI queue record written since the last call, consumed as a driver does (an overflow
  // is acknowledged with the same CONS write, 8.1).
  std::vector<arch::PriRecord> pri_records() {
    std::vector<arch::PriRecord> out;
    const uint32_t pri_prod = readl(arch::PRIQ_PROD::kOffset);
    while (!arch::queue_empty(pri_prod, pri_cons, priq_qs)) {
      auto* p = static_cast<uint8_t*>(
          mem().host_ptr(kPriqPa + uint64_t{arch::queue_index(pri_cons, priq_qs)} * 16, 16));
      REQUIRE(p != nullptr);
      arch::PriRecord r;
      for (unsigned i = 0; i < arch::PriRecord::kWords; ++i) r.set_word(i, dma_read64(p + 8 * i));
      out.push_back(r);
      pri_cons = arch::queue_advance(pri_cons, 1, priq_qs);
    }
    writel(pri_cons | (pri_prod & arch::PRIQ_PROD::OVFLG::kMask), arch::PRIQ_CONS::kOffset);
    return out;
  }

  // Queues, a linear stream table of 2^log2size STEs and SMMUEN.
  void start(unsigned log2size = 6) {
    setup_queues();
    linear_strtab(log2size);
    REQUIRE(enable(arch::CR0::SMMUEN::kMask));
  }

  // Writes commands at PROD, rings, and waits until the model consumed them.
  template <typename C>
  void put_cmd(const C& cmd) {
    auto* p = static_cast<uint8_t*>(
        mem().host_ptr(kCmdqPa + uint64_t{arch::queue_index(prod, kQs)} * 16, 16));
    REQUIRE(p != nullptr);
    const auto c = arch::descriptor_cast<arch::Command>(cmd);
    dma_write64(p, c.word(0));
    dma_write64(p + 8, c.word(1));
    prod = arch::queue_advance(prod, 1, kQs);
  }
  void ring_and_wait() {
    writel(prod, arch::CMDQ_PROD::kOffset);
    REQUIRE(poll([&] {
      return arch::queue_empty(prod, readl(arch::CMDQ_CONS::kOffset), kQs) ||
             (gerror_active() & arch::GERROR::CMDQ_ERR::kMask);
    }));
    REQUIRE((gerror_active() & arch::GERROR::CMDQ_ERR::kMask) == 0);
  }
  // Commands, then CMD_SYNC, as a driver issues an invalidation.
  template <typename... Cs>
  void issue(const Cs&... cmds) {
    (put_cmd(cmds), ...);
    put_cmd(sync_cmd());
    ring_and_wait();
  }
  uint32_t gerror_active() const {
    return arch::active_errors(arch::GERROR::read_from(io), arch::GERRORN::read_from(io));
  }

  // Every record the model wrote since the last call, consumed as a driver does.
  std::vector<arch::EventRecord> events() {
    std::vector<arch::EventRecord> out;
    const uint32_t evt_prod = readl(arch::EVENTQ_PROD::kOffset);
    while (!arch::queue_empty(evt_prod, evt_cons, kQs)) {
      auto* p = static_cast<uint8_t*>(
          mem().host_ptr(kEventqPa + uint64_t{arch::queue_index(evt_cons, kQs)} * 32, 32));
      REQUIRE(p != nullptr);
      arch::EventRecord r;
      for (unsigned i = 0; i < arch::EventRecord::kWords; ++i) r.set_word(i, dma_read64(p + 8 * i));
      out.push_back(r);
      evt_cons = arch::queue_advance(evt_cons, 1, kQs);
    }
    writel(evt_cons, arch::EVENTQ_CONS::kOffset);
    return out;
  }

  // A data page's first word, through the CPU's view.
  uint64_t peek(uint64_t pa) { return dma_read64(mem().host_ptr(pa, 8)); }
  void poke(uint64_t pa, uint64_t v) { dma_write64(mem().host_ptr(pa, 8), v); }

  // The model's translation of (sid, iova), read, unprivileged, no SubstreamID.
  Translated tr(uint32_t sid, uint64_t iova, Access a = {}) {
    return smmu->translate(sid, false, 0, iova, a);
  }
  Translated tr(uint32_t sid, uint32_t ssid, uint64_t iova, Access a = {}) {
    return smmu->translate(sid, true, ssid, iova, a);
  }

  static constexpr unsigned kQs = 8;
  const Threading threading;
  std::unique_ptr<Platform> platform;
  std::unique_ptr<Smmuv3> smmu;
  Mmio io;
  Tables structs{platform_mem(), kStructPa, 4 << 20};
  Tables s1t{platform_mem(), kS1Pa, 8 << 20};
  Tables s2t{platform_mem(), kS2Pa, 8 << 20};
  Tables guest{platform_mem(), kGuestPa, kGuestSize, kGuestPa - kGuestIpa};
  uint64_t strtab = 0;
  bool two_level = false;
  uint32_t prod = 0, evt_cons = 0, pri_cons = 0;
  unsigned priq_qs = kQs;

 private:
  static std::unique_ptr<Platform> make_platform() {
    auto p = Platform::create(Platform::Config{.ram_base = kRamBase, .ram_size = kRamSize});
    REQUIRE(p.ok());
    return p.release_value();
  }
  PhysMem& platform_mem() { return platform->mem(); }
};

// The threading modes a scenario runs in.
inline constexpr Threading kModes[] = {Threading::kSync, Threading::kAsync};

}  // namespace strata::sim::smmuv3::test
