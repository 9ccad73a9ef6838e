// SPDX-License-Identifier: MIT
// The simulated Arm platform is wired as it says: a small driver's-eye sequence (queues and
// stream table in the platform's DMA memory, registers through smmu_mmio()) makes the engines
// DMA through the SMMU, and the SMMU's and the engines' interrupts reach the lines and MSIs the
// platform reports. Structures are built with the SMMU model's test helpers, not the driver.
#include "testing/sim/arm_platform.h"

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "arch/dma.h"
#include "arch/irq.h"
#include "arch/smmuv3/cmd.h"
#include "arch/smmuv3/event.h"
#include "arch/smmuv3/regs.h"
#include "arch/smmuv3/ste.h"
#include "testing/models/dma-engine/regs.h"
#include "testing/models/smmuv3/smmuv3_harness.h"
#include "testing/models/smmuv3/test_tables.h"

namespace strata::sim {
namespace {

namespace arch = ::strata::smmuv3;
namespace dmae = dma_engine;
using smmuv3::Threading;

constexpr Threading kModes[] = {Threading::kSync, Threading::kAsync};

std::unique_ptr<ArmPlatform> make(const ArmPlatform::Config& config) {
  auto p = ArmPlatform::create(config);
  REQUIRE(p.ok());
  return p.release_value();
}

struct Count {
  std::atomic<int> calls{0};
};
void count(void* ctx) { static_cast<Count*>(ctx)->calls++; }

// What an arm-smmu-v3 driver does at probe, reduced to what these tests need: queues and a
// linear stream table in DMA memory, enables, interrupt enables, STEs and commands.
class MiniDriver {
 public:
  static constexpr unsigned kQs = 6;      // 64 entries per queue
  static constexpr unsigned kStLog2 = 7;  // 128 StreamIDs

  explicit MiniDriver(ArmPlatform& p) : p_(p), io_(p.smmu_mmio()) {
    cmdq_ = alloc(16 << kQs);
    eventq_ = alloc(32 << kQs);
    strtab_ = alloc(64 << kStLog2);
    pool_ = alloc(1 << 20);
    tables_ = std::make_unique<smmuv3::test::Tables>(p.mem(), pool_.phys(), pool_.size());
  }

  void probe() {
    arch::CMDQ_BASE{}
        .set<arch::CMDQ_BASE::ADDR>(cmdq_.phys())
        .set<arch::CMDQ_BASE::LOG2SIZE>(kQs)
        .write_to(io_);
    arch::EVENTQ_BASE{}
        .set<arch::EVENTQ_BASE::ADDR>(eventq_.phys())
        .set<arch::EVENTQ_BASE::LOG2SIZE>(kQs)
        .write_to(io_);
    arch::STRTAB_BASE{}.set<arch::STRTAB_BASE::ADDR>(strtab_.phys()).write_to(io_);
    arch::STRTAB_BASE_CFG{}
        .set<arch::STRTAB_BASE_CFG::LOG2SIZE>(kStLog2)
        .set<arch::STRTAB_BASE_CFG::FMT>(arch::kStrtabFmtLinear)
        .write_to(io_);
    arch::CR2{}.set<arch::CR2::RECINVSID>(1).write_to(io_);
    REQUIRE(write_cr0(arch::CR0::CMDQEN::kMask | arch::CR0::EVENTQEN::kMask));
    REQUIRE(write_cr0(arch::CR0::CMDQEN::kMask | arch::CR0::EVENTQEN::kMask |
                      arch::CR0::SMMUEN::kMask));
  }

  bool enable_irqs(uint32_t bits) {
    io_.writel(bits, arch::IRQ_CTRL::kOffset);
    return poll([&] { return io_.readl(arch::IRQ_CTRLACK::kOffset) == bits; });
  }
  void program_eventq_msi(const MsiMsg& msg) {
    io_.writeq(msg.address, arch::EVENTQ_IRQ_CFG0::kOffset);
    io_.writel(msg.data, arch::EVENTQ_IRQ_CFG1::kOffset);
  }

  // Installs the STE of `sid` and invalidates it, as a driver does.
  void set_ste(uint32_t sid, const arch::STE& ste) {
    auto* p = strtab_.as<uint64_t>() + uint64_t{sid} * 8;
    for (unsigned i = 0; i < arch::STE::kWords; ++i) dma_write64(p + i, ste.word(i));
    put_cmd(smmuv3::test::cfgi_ste(sid));
    put_cmd(smmuv3::test::sync_cmd());
    ring_and_wait();
  }
  // A stage-1 stream for `sid` whose table maps each IOVA page to the PA page given.
  void s1_stream(uint32_t sid, const std::vector<std::pair<uint64_t, uint64_t>>& pages) {
    const uint64_t root = smmuv3::test::alloc_root(*tables_, smmuv3::test::kS1StartBits);
    for (const auto& [iova, pa] : pages)
      smmuv3::test::map(*tables_, smmuv3::test::Tree{root, 12, 0, smmuv3::test::kS1StartBits}, iova,
                        3, smmuv3::test::leaf_desc(pa, 12, 3, smmuv3::test::kS1Rw));
    const uint64_t cd = tables_->alloc(64);
    const arch::CD c = smmuv3::test::make_cd(static_cast<uint16_t>(sid), root);
    for (unsigned i = 0; i < arch::CD::kWords; ++i) tables_->put(cd + 8 * i, c.word(i));
    set_ste(sid, smmuv3::test::s1_ste(cd));
  }

  template <typename C>
  void put_cmd(const C& cmd) {
    auto* slot = cmdq_.as<uint64_t>() + 2 * arch::queue_index(prod_, kQs);
    const auto c = arch::descriptor_cast<arch::Command>(cmd);
    dma_write64(slot, c.word(0));
    dma_write64(slot + 1, c.word(1));
    prod_ = arch::queue_advance(prod_, 1, kQs);
  }
  void put_raw(uint64_t w0, uint64_t w1) {
    auto* slot = cmdq_.as<uint64_t>() + 2 * arch::queue_index(prod_, kQs);
    dma_write64(slot, w0);
    dma_write64(slot + 1, w1);
    prod_ = arch::queue_advance(prod_, 1, kQs);
  }
  void ring() { io_.writel(prod_, arch::CMDQ_PROD::kOffset); }
  void ring_and_wait() {
    ring();
    REQUIRE(
        poll([&] { return arch::queue_empty(prod_, io_.readl(arch::CMDQ_CONS::kOffset), kQs); }));
  }
  uint32_t gerror_active() const {
    return arch::active_errors(arch::GERROR::read_from(io_), arch::GERRORN::read_from(io_));
  }

  std::vector<arch::EventRecord> events() {
    std::vector<arch::EventRecord> out;
    const uint32_t prod = io_.readl(arch::EVENTQ_PROD::kOffset);
    while (!arch::queue_empty(prod, evt_cons_, kQs)) {
      const uint64_t* rec = eventq_.as<uint64_t>() + 4 * arch::queue_index(evt_cons_, kQs);
      arch::EventRecord r;
      for (unsigned i = 0; i < arch::EventRecord::kWords; ++i) r.set_word(i, dma_read64(rec + i));
      out.push_back(r);
      evt_cons_ = arch::queue_advance(evt_cons_, 1, kQs);
    }
    io_.writel(evt_cons_, arch::EVENTQ_CONS::kOffset);
    return out;
  }

  // Waits, as a driver polls, until `done` holds; kManual models only move when processed.
  bool poll(const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!done()) {
      if (p_.config().threading == Threading::kManual) p_.smmu().queues().process();
      if (p_.config().threading == Threading::kSync) return false;
      std::this_thread::yield();
      if (std::chrono::steady_clock::now() > deadline) return false;
    }
    return true;
  }

  DmaBuffer alloc(size_t size) {
    auto b = DmaBuffer::alloc(p_.dma(), size, size < 4096 ? 4096 : size);
    REQUIRE(b.ok());
    return b.release_value();
  }

 private:
  bool write_cr0(uint32_t value) {
    io_.writel(value, arch::CR0::kOffset);
    return poll([&] { return io_.readl(arch::CR0ACK::kOffset) == value; });
  }

  ArmPlatform& p_;
  Mmio io_;
  DmaBuffer cmdq_, eventq_, strtab_, pool_;
  std::unique_ptr<smmuv3::test::Tables> tables_;
  uint32_t prod_ = 0, evt_cons_ = 0;
};

TEST_CASE("the platform's pieces, as firmware would describe them") {
  for (Threading t : kModes) {
    CAPTURE(smmuv3::name(t));
    auto p = make({.smmu = smmuv3::Config::smmuv3_2(), .threading = t, .engines = 2});
    CHECK(p->engine_count() == 2);
    CHECK(p->engine_stream_id(0) == 0x10);
    CHECK(p->engine_stream_id(1) == 0x11);
    CHECK(p->engine_irq(0) == 32);
    CHECK(p->engine_irq(1) == 33);
    CHECK(p->engine(1).mode() == (t == Threading::kAsync ? dmae::Mode::kAsync : dmae::Mode::kSync));
    for (unsigned i = 0; i < 2; ++i) {
      const Mmio io = p->engine_mmio(i);
      CHECK(io.size() == dmae::kRegisterBlockBytes);
      CHECK(io.readl(dmae::IDR0::kOffset) == dmae::kIdent);
      CHECK(io.readl(dmae::STREAMID::kOffset) == p->engine_stream_id(i));
      CHECK(dmae::IDR1::read_from(io).get<dmae::IDR1::WIRED>() == 1);
    }

    const Mmio smmu = p->smmu_mmio();
    CHECK(smmu.size() == 0x20000);
    const auto idr0 = arch::IDR0::read_from(smmu);
    CHECK(idr0.get<arch::IDR0::S1P>() == 1);
    CHECK(idr0.get<arch::IDR0::S2P>() == 1);
    CHECK(idr0.get<arch::IDR0::MSI>() == 1);
    CHECK(arch::AIDR::read_from(smmu).value() == 0x02);  // SMMUv3.2
    CHECK(p->smmu().config().version == 2);
    CHECK(p->smmu().queues().threading() == t);

    const ArmPlatform::SmmuIrqs& irqs = p->smmu_irqs();
    CHECK(irqs.eventq == 16);
    CHECK(irqs.priq == 17);
    CHECK(irqs.gerror == 18);
    CHECK(irqs.cmdq_sync == 19);
    CHECK(irqs.msi);
    CHECK(p->smmu_base() == 0x2b40'0000);
    CHECK(p->engine_base(1) == 0x2c00'1000);

    const std::string d = p->describe();
    INFO(d);
    CHECK(d.find("smmuv3 at 0x2b400000 (2 x 64 KiB register pages): SMMUv3.2") !=
          std::string::npos);
    CHECK(d.find("eventq line 16, priq line 17, gerror line 18, cmdq-sync line 19") !=
          std::string::npos);
    CHECK(d.find("dma-engine1 at 0x2c001000 (4 KiB): StreamID 0x11") != std::string::npos);
    CHECK(d.find("MSI doorbell at 0x8000000") != std::string::npos);  // the machine's part
  }
}

TEST_CASE("an SMMUv3.0 without PRI: no priq line") {
  auto p = make({.smmu = smmuv3::Config::smmuv3_0(), .engines = 1});
  CHECK(p->smmu_irqs().priq == -1);
  CHECK(p->smmu_irqs().eventq == 16);
  CHECK(arch::AIDR::read_from(p->smmu_mmio()).value() == 0x00);
  CHECK(p->describe().find("priq none") != std::string::npos);
}

TEST_CASE("configurations the platform cannot build are refused") {
  // More engines than interrupt lines.
  auto many = ArmPlatform::create({.engines = 40});
  REQUIRE_FALSE(many.ok());
  CHECK(many.error().code() == -EINVAL);
  // A StreamID beyond the SMMU's SIDSIZE.
  smmuv3::Config small = smmuv3::Config::smmuv3_2();
  small.sidsize = 4;
  auto wide = ArmPlatform::create({.smmu = small, .engines = 1});
  REQUIRE_FALSE(wide.ok());
  CHECK(wide.error().code() == -EINVAL);
  auto fits = ArmPlatform::create({.smmu = small, .engines = 2, .first_stream_id = 14});
  CHECK(fits.ok());
  // An SMMU configuration the model refuses.
  smmuv3::Config bad = smmuv3::Config::smmuv3_2();
  bad.s1p = bad.s2p = false;
  REQUIRE(bad.invalid_reason() != nullptr);
  auto refused = ArmPlatform::create({.smmu = bad});
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code() == -EINVAL);
}

TEST_CASE("a driver's-eye run: translated DMA, events and errors on the reported lines") {
  for (Threading t : kModes) {
    CAPTURE(smmuv3::name(t));
    auto p = make({.threading = t, .engines = 2});
    const ArmPlatform::SmmuIrqs& lines = p->smmu_irqs();
    Count eventq, gerror, done0, done1;
    auto eventq_irq = Irq::request(p->irq(), static_cast<unsigned>(lines.eventq), count, &eventq);
    auto gerror_irq = Irq::request(p->irq(), static_cast<unsigned>(lines.gerror), count, &gerror);
    auto done0_irq = Irq::request(p->irq(), static_cast<unsigned>(p->engine_irq(0)), count, &done0);
    auto done1_irq = Irq::request(p->irq(), static_cast<unsigned>(p->engine_irq(1)), count, &done1);
    REQUIRE((eventq_irq.ok() && gerror_irq.ok() && done0_irq.ok() && done1_irq.ok()));

    MiniDriver drv(*p);
    drv.probe();
    REQUIRE(
        drv.enable_irqs(arch::IRQ_CTRL::EVENTQ_IRQEN::kMask | arch::IRQ_CTRL::GERROR_IRQEN::kMask));

    // Engine 0: a stage-1 stream; its buffers in the driver's DMA memory.
    DmaBuffer src = drv.alloc(0x2000), dst = drv.alloc(0x2000);
    for (size_t i = 0; i < 0x2000; ++i) src.as<uint8_t>()[i] = static_cast<uint8_t>(i * 3 + 1);
    constexpr uint64_t kSrcIova = 0x10'0000, kDstIova = 0x20'0000;
    drv.s1_stream(p->engine_stream_id(0), {{kSrcIova, src.phys()},
                                           {kSrcIova + 0x1000, src.phys() + 0x1000},
                                           {kDstIova, dst.phys() + 0x1000},
                                           {kDstIova + 0x1000, dst.phys()}});
    const Mmio e0 = p->engine_mmio(0);
    e0.writeq(kSrcIova + 0x10, dmae::SRC::kOffset);
    e0.writeq(kDstIova + 0x10, dmae::DST::kOffset);
    e0.writeq(0x1ff0, dmae::LEN::kOffset);
    dmae::CTRL{}.set<dmae::CTRL::IRQEN>(1).write_to(e0);
    dmae::CMD{}.set<dmae::CMD::OP>(static_cast<uint32_t>(dmae::Op::kCopy)).write_to(e0);
    p->wait_idle();
    CHECK(dmae::STATUS::read_from(e0).get<dmae::STATUS::STATE>() ==
          static_cast<uint32_t>(dmae::State::kDone));
    CHECK(done0.calls == 1);
    // IOVA page 0 is the destination buffer's second page, page 1 its first.
    bool landed = true;
    for (size_t i = 0; i < 0x1ff0; ++i) {
      const size_t off = 0x10 + i;
      const size_t pa_off = off < 0x1000 ? off + 0x1000 : off - 0x1000;
      landed = landed && dst.as<uint8_t>()[pa_off] == src.as<uint8_t>()[off];
    }
    CHECK(landed);

    // Engine 1: its STE is still invalid (V == 0): C_BAD_STE, the job aborts, and the event
    // interrupt reaches the eventq line.
    const Mmio e1 = p->engine_mmio(1);
    e1.writeq(0x1234'5000, dmae::DST::kOffset);
    e1.writeq(64, dmae::LEN::kOffset);
    dmae::CTRL{}.set<dmae::CTRL::IRQEN>(1).write_to(e1);
    dmae::CMD{}.set<dmae::CMD::OP>(static_cast<uint32_t>(dmae::Op::kFill)).write_to(e1);
    p->wait_idle();
    const auto st = dmae::STATUS::read_from(e1);
    CHECK(st.get<dmae::STATUS::STATE>() == static_cast<uint32_t>(dmae::State::kFault));
    CHECK(st.get<dmae::STATUS::FAULT>() == static_cast<uint32_t>(dmae::FaultKind::kAbort));
    CHECK(done1.calls == 1);
    CHECK(eventq.calls == 1);
    const std::vector<arch::EventRecord> ev = drv.events();
    REQUIRE(ev.size() == 1);
    CHECK(static_cast<arch::EventType>(ev[0].type()) == arch::EventType::C_BAD_STE);
    CHECK(ev[0].get<arch::EventRecord::StreamID>() == p->engine_stream_id(1));

    // A Reserved opcode: CERROR_ILL, GERROR.CMDQ_ERR and the gerror line.
    drv.put_raw(0x0a, 0);
    drv.ring();
    REQUIRE(drv.poll([&] { return drv.gerror_active() & arch::GERROR::CMDQ_ERR::kMask; }));
    CHECK(drv.poll([&] { return gerror.calls == 1; }));

    CHECK(p->irq().spurious() == 0);
    CHECK(p->smmu().stale_reports().empty());
  }
}

TEST_CASE("MSIs only: the event interrupt reaches the MSI the driver programmed") {
  for (Threading t : kModes) {
    CAPTURE(smmuv3::name(t));
    auto p = make({.threading = t, .engines = 1, .wired_irqs = false});
    CHECK(p->smmu_irqs().eventq == -1);
    CHECK(p->smmu_irqs().gerror == -1);
    CHECK(p->smmu_irqs().msi);
    Count eventq;
    auto msi = Irq::request_msi(p->irq(), count, &eventq);
    REQUIRE(msi.ok());

    MiniDriver drv(*p);
    drv.probe();
    drv.program_eventq_msi(msi->msi_msg());  // before the enable, which guards it
    REQUIRE(drv.enable_irqs(arch::IRQ_CTRL::EVENTQ_IRQEN::kMask));
    const dmae::JobResult r = p->engine(0).fill(0x5000, 8, 0);
    CHECK(r.state == dmae::State::kFault);
    CHECK(r.fault == dmae::FaultKind::kAbort);
    p->wait_idle();
    CHECK(eventq.calls == 1);
    CHECK(p->irq().msi_delivered(msi->msi_msg().data) == 1);
    CHECK(drv.events().size() == 1);
  }
}

}  // namespace
}  // namespace strata::sim
