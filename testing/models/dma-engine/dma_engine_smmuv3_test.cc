// SPDX-License-Identifier: MIT
// The DMA test engine behind the SMMUv3 model: translated jobs land where the hand-built tables
// say, a fault stops a job at the failing page with the event in the SMMU's Event queue, and
// with SMMUEN == 0 the engine's traffic follows GBPA. Tables, STEs and CDs are built with the
// model's own test helpers (smmuv3_harness.h), not with core/ or a driver.
#include <stdint.h>

#include <atomic>
#include <map>
#include <memory>
#include <vector>

#include <doctest/doctest.h>

#include "arch/irq.h"
#include "arch/lpae/pte.h"
#include "arch/smmuv3/event.h"
#include "testing/models/dma-engine/dma_engine.h"
#include "testing/models/dma-engine/regs.h"
#include "testing/models/dma-engine/smmuv3_port.h"
#include "testing/models/smmuv3/smmuv3_harness.h"

namespace strata::sim::dma_engine {
namespace {

namespace arch = ::strata::smmuv3;
using smmuv3::Threading;
using smmuv3::test::data_pa;
using smmuv3::test::Machine;
using TR = arch::TranslationFaultRecord;

constexpr uint32_t kSid = 5;
constexpr uint64_t kSrcIova = 0x1000'0000;
constexpr uint64_t kDstIova = 0x2000'0000;

Mode mode_of(Threading t) { return t == Threading::kAsync ? Mode::kAsync : Mode::kSync; }

uint8_t byte_at(uint64_t i, unsigned seed) { return static_cast<uint8_t>(i * 7 + seed * 13 + 1); }

// The SMMU harness, one engine of StreamID kSid behind it, and an IOVA -> PA page map kept by
// the test so it can look at what the engine did through the CPU's view.
struct Rig {
  explicit Rig(Threading t) : m(t), port(m.model()) {
    auto e = DmaTestEngine::create(
        port, {.stream_id = kSid, .mode = mode_of(t), .name = "dmae-smmu-test"});
    REQUIRE(e.ok());
    engine = e.release_value();
    io = engine->mmio();
  }
  ~Rig() { engine.reset(); }

  // A stage-1 stream for kSid with one CD and an empty table.
  void s1_stream() {
    root = m.new_s1_root();
    m.set_ste(kSid, smmuv3::test::s1_ste(m.new_cd(smmuv3::test::make_cd(1, root))));
  }
  void map(uint64_t iova, uint64_t pa) {
    m.map_s1(root, iova, pa);
    pages[iova] = pa;
  }
  uint8_t* cpu(uint64_t iova) {
    const auto it = pages.find(iova & ~uint64_t{0xfff});
    REQUIRE(it != pages.end());
    auto* p = static_cast<uint8_t*>(m.mem().host_ptr(it->second + (iova & 0xfff), 1));
    REQUIRE(p != nullptr);
    return p;
  }
  void fill(uint64_t iova, size_t len, unsigned seed) {
    for (size_t i = 0; i < len; ++i) *cpu(iova + i) = byte_at(i, seed);
  }
  bool holds(uint64_t iova, size_t len, unsigned seed) {
    for (size_t i = 0; i < len; ++i)
      if (*cpu(iova + i) != byte_at(i, seed)) return false;
    return true;
  }

  void start(Op op, uint64_t src, uint64_t dst, uint64_t len, bool ssv = false, uint32_t ssid = 0) {
    io.writeq(src, SRC::kOffset);
    io.writeq(dst, DST::kOffset);
    io.writeq(len, LEN::kOffset);
    SUBSTREAMID{}.set<SUBSTREAMID::SSV>(ssv).set<SUBSTREAMID::SSID>(ssid).write_to(io);
    CMD{}.set<CMD::OP>(static_cast<uint32_t>(op)).write_to(io);
    engine->wait_idle();
  }
  STATUS status() const { return STATUS::read_from(io); }
  State state() const { return static_cast<State>(status().get<STATUS::STATE>()); }
  FaultKind fault() const { return static_cast<FaultKind>(status().get<STATUS::FAULT>()); }

  Machine m;
  Smmuv3DmaPort port;
  std::unique_ptr<DmaTestEngine> engine;
  Mmio io;
  uint64_t root = 0;
  std::map<uint64_t, uint64_t> pages;
};

TEST_CASE("a translated COPY lands at the physical pages the tables give") {
  for (Threading t : smmuv3::test::kModes) {
    CAPTURE(smmuv3::name(t));
    Rig r(t);
    r.m.start();
    r.s1_stream();
    // Scattered, out of order.
    const unsigned src_pages[] = {1, 2, 3};
    const unsigned dst_pages[] = {10, 7, 13};
    for (unsigned i = 0; i < 3; ++i) {
      r.map(kSrcIova + i * 0x1000, data_pa(src_pages[i]));
      r.map(kDstIova + i * 0x1000, data_pa(dst_pages[i]));
    }
    r.fill(kSrcIova + 0x200, 0x2c00, 1);
    r.start(Op::kCopy, kSrcIova + 0x200, kDstIova + 0x100, 0x2c00);
    CHECK(r.state() == State::kDone);
    CHECK(r.io.readq(DONE::kOffset) == 0x2c00);
    CHECK(r.holds(kDstIova + 0x100, 0x2c00, 1));
    // The first destination byte is at data page 10 + 0x100, the last at page 13 + 0xcff.
    CHECK(*static_cast<uint8_t*>(r.m.mem().host_ptr(data_pa(10) + 0x100, 1)) == byte_at(0, 1));
    CHECK(*static_cast<uint8_t*>(r.m.mem().host_ptr(data_pa(13) + 0xcff, 1)) == byte_at(0x2bff, 1));
    CHECK(r.m.events().empty());
    CHECK(r.m.model().stale_reports().empty());
    // The checksum of what landed, read back through the SMMU.
    const uint64_t copied = r.io.readq(CHECKSUM::kOffset);
    r.start(Op::kChecksum, kDstIova + 0x100, 0, 0x2c00);
    CHECK(r.state() == State::kDone);
    CHECK(r.io.readq(CHECKSUM::kOffset) == copied);
  }
}

TEST_CASE("an unmapped destination page: the bytes before it, nothing at or after, an event") {
  for (Threading t : smmuv3::test::kModes) {
    CAPTURE(smmuv3::name(t));
    Rig r(t);
    r.m.start();
    r.s1_stream();
    for (unsigned i = 0; i < 4; ++i) r.map(kSrcIova + i * 0x1000, data_pa(1 + i));
    // Destination page 2 is not mapped; page 3 is.
    r.map(kDstIova + 0x0000, data_pa(20));
    r.map(kDstIova + 0x1000, data_pa(21));
    r.map(kDstIova + 0x3000, data_pa(23));
    r.fill(kSrcIova, 0x4000, 2);
    r.fill(kDstIova + 0x3000, 0x1000, 3);  // must survive
    r.start(Op::kCopy, kSrcIova + 0x80, kDstIova + 0x80, 0x3f00);

    CHECK(r.state() == State::kFault);
    CHECK(r.fault() == FaultKind::kAbort);
    CHECK(r.status().get<STATUS::FAULT_WRITE>() == 1);
    CHECK(r.io.readq(FAULT_ADDR::kOffset) == kDstIova + 0x2000);
    CHECK(r.io.readq(DONE::kOffset) == 0x2000 - 0x80);
    for (uint64_t i = 0; i < 0x2000 - 0x80; ++i) {
      if (*r.cpu(kDstIova + 0x80 + i) != byte_at(i + 0x80, 2)) {
        FAIL("destination byte ", i, " differs");
        break;
      }
    }
    CHECK(r.holds(kDstIova + 0x3000, 0x1000, 3));

    const std::vector<arch::EventRecord> ev = r.m.events();
    REQUIRE(ev.size() == 1);
    CHECK(static_cast<arch::EventType>(ev[0].type()) == arch::EventType::F_TRANSLATION);
    const auto f = arch::descriptor_cast<TR>(ev[0]);
    CHECK(f.get<TR::StreamID>() == kSid);
    CHECK(f.get<TR::SSV>() == 0);
    CHECK(f.get<TR::RnW>() == 0);
    CHECK(f.get<TR::InputAddr>() == kDstIova + 0x2000);
  }
}

TEST_CASE("an unmapped source page: a read fault, nothing written for it") {
  Rig r(Threading::kSync);
  r.m.start();
  r.s1_stream();
  r.map(kSrcIova, data_pa(1));
  for (unsigned i = 0; i < 2; ++i) r.map(kDstIova + i * 0x1000, data_pa(30 + i));
  r.fill(kSrcIova, 0x1000, 4);
  r.fill(kDstIova + 0x1000, 0x1000, 5);
  r.start(Op::kCopy, kSrcIova, kDstIova, 0x2000);
  CHECK(r.fault() == FaultKind::kAbort);
  CHECK(r.status().get<STATUS::FAULT_WRITE>() == 0);
  CHECK(r.io.readq(FAULT_ADDR::kOffset) == kSrcIova + 0x1000);
  CHECK(r.io.readq(DONE::kOffset) == 0x1000);
  CHECK(r.holds(kDstIova, 0x1000, 4));
  CHECK(r.holds(kDstIova + 0x1000, 0x1000, 5));
  const std::vector<arch::EventRecord> ev = r.m.events();
  REQUIRE(ev.size() == 1);
  CHECK(arch::descriptor_cast<TR>(ev[0]).get<TR::RnW>() == 1);
  CHECK(arch::descriptor_cast<TR>(ev[0]).get<TR::InputAddr>() == kSrcIova + 0x1000);
}

TEST_CASE("SMMUEN == 0: GBPA bypass copies to the same addresses; GBPA.ABORT aborts silently") {
  for (Threading t : smmuv3::test::kModes) {
    CAPTURE(smmuv3::name(t));
    Rig r(t);
    r.m.setup_queues();  // queues on, SMMUEN off
    const uint64_t src = data_pa(40) + 0x10, dst = data_pa(50) + 0x20;
    auto* s = static_cast<uint8_t*>(r.m.mem().host_ptr(src, 0x1800));
    auto* d = static_cast<uint8_t*>(r.m.mem().host_ptr(dst, 0x1800));
    for (size_t i = 0; i < 0x1800; ++i) s[i] = byte_at(i, 6);
    r.start(Op::kCopy, src, dst, 0x1800);
    CHECK(r.state() == State::kDone);
    for (size_t i = 0; i < 0x1800; ++i) {
      if (d[i] != byte_at(i, 6)) {
        FAIL("byte ", i, " differs");
        break;
      }
    }
    CHECK(r.m.model().counters().bypassed >= 2);

    REQUIRE(r.m.write_gbpa(arch::GBPA::ABORT::kMask));
    r.start(Op::kFill, 0, dst, 0x100);
    CHECK(r.state() == State::kFault);
    CHECK(r.fault() == FaultKind::kAbort);
    CHECK(r.io.readq(DONE::kOffset) == 0);
    CHECK(d[0] == byte_at(0, 6));
    CHECK(r.m.events().empty());  // 3.4: no event with SMMUEN == 0
  }
}

TEST_CASE("SUBSTREAMID selects the CD; no SubstreamID uses CD 0 (S1DSS = SSID0)") {
  Rig r(Threading::kSync);
  r.m.start();
  const uint64_t table = r.m.structs.alloc(2 * 64);
  for (unsigned i = 0; i < 2; ++i) {
    const uint64_t root = r.m.new_s1_root();
    r.m.map_s1(root, kDstIova, data_pa(60 + i), smmuv3::test::kS1Rw | lpae::S1Pte::nG::kMask);
    r.m.put(r.m.structs, table + 64 * i,
            smmuv3::test::make_cd(static_cast<uint16_t>(10 + i), root));
  }
  r.m.set_ste(kSid, smmuv3::test::s1_ste(table, 0, 1, arch::kS1FmtLinear, arch::kS1dssSsid0));
  auto* pa0 = static_cast<uint8_t*>(r.m.mem().host_ptr(data_pa(60), 1));
  auto* pa1 = static_cast<uint8_t*>(r.m.mem().host_ptr(data_pa(61), 1));
  r.io.writeq(0xaaaaaaaaaaaaaaaa, PATTERN::kOffset);
  r.start(Op::kFill, 0, kDstIova, 8, /*ssv=*/true, /*ssid=*/1);
  CHECK(r.state() == State::kDone);
  CHECK(*pa1 == 0xaa);
  CHECK(*pa0 == 0);
  r.io.writeq(0x5555555555555555, PATTERN::kOffset);
  r.start(Op::kFill, 0, kDstIova, 8);
  CHECK(r.state() == State::kDone);
  CHECK(*pa0 == 0x55);
  // SubstreamID 2 is beyond S1CDMax: C_BAD_SUBSTREAMID, the job aborts.
  r.start(Op::kFill, 0, kDstIova, 8, true, 2);
  CHECK(r.fault() == FaultKind::kAbort);
  const std::vector<arch::EventRecord> ev = r.m.events();
  REQUIRE(ev.size() == 1);
  CHECK(static_cast<arch::EventType>(ev[0].type()) == arch::EventType::C_BAD_SUBSTREAMID);
  // 7.3.9: the record carries the SubstreamID (it has no SSV field).
  CHECK(ev[0].get<arch::EventRecord::StreamID>() == kSid);
  CHECK(ev[0].get<arch::EventRecord::SubstreamID>() == 2);
}

void count_msi(void* ctx) { static_cast<std::atomic<int>*>(ctx)->fetch_add(1); }

TEST_CASE("the completion MSI is a DMA write of the engine's stream, translated") {
  for (Threading t : smmuv3::test::kModes) {
    CAPTURE(smmuv3::name(t));
    Rig r(t);
    r.m.start();
    r.s1_stream();
    std::atomic<int> hits{0};
    auto msi = Irq::request_msi(r.m.platform->irq(), count_msi, &hits);
    REQUIRE(msi.ok());
    constexpr uint64_t kMsiIova = 0x0f00'0000;
    // The OS maps the doorbell page at an IOVA of its choice (Linux's MSI cookie).
    r.m.map_s1(r.root, kMsiIova, r.m.platform->irq().msi_doorbell());
    r.map(kDstIova, data_pa(70));
    CTRL{}.set<CTRL::MSIEN>(1).write_to(r.io);
    r.io.writeq(kMsiIova + (msi->msi_msg().address & 0xfff), MSI_ADDR::kOffset);
    r.io.writel(msi->msi_msg().data, MSI_DATA::kOffset);
    r.start(Op::kFill, 0, kDstIova, 64);
    CHECK(r.state() == State::kDone);
    CHECK(hits == 1);
    CHECK(r.status().get<STATUS::MSI_ABT>() == 0);
    CHECK(r.m.events().empty());

    // An MSI address the OS did not map: the job is done, the MSI aborts with an event.
    r.io.writeq(0x0e00'0000, MSI_ADDR::kOffset);
    r.start(Op::kFill, 0, kDstIova, 64);
    CHECK(r.state() == State::kDone);
    CHECK(hits == 1);
    CHECK(r.status().get<STATUS::MSI_ABT>() == 1);
    const std::vector<arch::EventRecord> ev = r.m.events();
    REQUIRE(ev.size() == 1);
    CHECK(static_cast<arch::EventType>(ev[0].type()) == arch::EventType::F_TRANSLATION);
    CHECK(arch::descriptor_cast<TR>(ev[0]).get<TR::InputAddr>() == 0x0e00'0000);
    CHECK(arch::descriptor_cast<TR>(ev[0]).get<TR::RnW>() == 0);
  }
}

}  // namespace
}  // namespace strata::sim::dma_engine
