// SPDX-License-Identifier: MIT
// The SMMUv3 model's registers as a driver sees them: ID values from configurations, the
// Update handshakes, global errors and the registers locked while their feature is enabled.
// Expected ID values are typed in from the field positions of IHI 0070 6.3.1-6.3.8, not
// computed with the arch/smmuv3 definitions.
#include "testing/models/smmuv3/registers.h"

#include <string>

#include <doctest/doctest.h>

#include "arch/smmuv3/regs.h"
#include "testing/hosted/hosted.h"
#include "testing/models/smmuv3/queue_harness.h"

namespace strata::sim::smmuv3 {
namespace {

using namespace test;

// The default SMMUv3.2 (Config{}): S2P, S1P, TTF = 0b10, COHACC, HTTU = 0b10, Hyp, ATS,
// NS1ATS, ASID16, MSI, SEV, PRI, VMID16, CD2L, TTENDIAN = 0b10, ST_LEVEL = 0b01.
constexpr uint32_t kIdr0 = 0x084d'7e9b;
// SIDSIZE 16, SSIDSIZE 20, PRIQS = EVENTQS = CMDQS = 19, ATTR_PERMS_OVR, ATTR_TYPES_OVR.
constexpr uint32_t kIdr1 = 0x0e73'9d10;
// HAD, XNX, FWB, RIL, BBML = 0b01.
constexpr uint32_t kIdr3 = 0x0000'0d14;
// OAS = 0b101 (48 bits), GRAN4K, GRAN16K, GRAN64K, VAX = 0, STALL_MAX = 32.
constexpr uint32_t kIdr5 = 0x0020'0075;

TEST_CASE("ID registers of the default SMMUv3.2") {
  Harness h;
  CHECK(h.readl(0x00) == kIdr0);
  CHECK(h.readl(0x04) == kIdr1);
  CHECK(h.readl(0x08) == 0);  // IDR2: no VATOS
  CHECK(h.readl(0x0c) == kIdr3);
  CHECK(h.readl(0x10) == 0);  // IDR4: nothing IMPLEMENTATION DEFINED
  CHECK(h.readl(0x14) == kIdr5);
  CHECK(h.readl(0x18) == 0);     // IIDR: no product claimed
  CHECK(h.readl(0x1c) == 0x02);  // AIDR: SMMUv3.2

  // Read-only: writes change nothing (and are not errors: RO bits ignore writes).
  h.writel(0xffffffff, 0x00);
  h.writel(0, 0x14);
  CHECK(h.readl(0x00) == kIdr0);
  CHECK(h.readl(0x14) == kIdr5);
  CHECK(h.regs->guest_error_count() == 0);

  // The arch/smmuv3 view agrees.
  const IdRegisters id = id_registers(Config{});
  CHECK(id.idr0.value() == kIdr0);
  CHECK(id.idr1.value() == kIdr1);
  CHECK(id.idr3.value() == kIdr3);
  CHECK(id.idr5.value() == kIdr5);
}

TEST_CASE("ID registers follow the configuration") {
  SUBCASE("SMMUv3.0") {
    const IdRegisters id = id_registers(Config::smmuv3_0());
    CHECK(id.aidr.value() == 0x00);
    // S2P, S1P, TTF, COHACC, MSI, SEV, CD2L, TTENDIAN, ST_LEVEL: no HTTU, Hyp, ATS, NS1ATS,
    // ASID16, PRI, VMID16.
    CHECK(id.idr0.value() == 0x0848'601b);
    CHECK(id.idr1.value() == 0x0e73'0510);  // PRIQS reads 0 without PRI
    CHECK(id.idr3.value() == 0);            // no HAD, XNX, FWB, RIL, BBML
  }
  SUBCASE("stage 1 only") {
    const IdRegisters id = id_registers(Config::stage1_only());
    CHECK((id.idr0.value() & 0x3) == 0x2);       // S1P only
    CHECK((id.idr0.value() & (1u << 9)) == 0);   // no Hyp
    CHECK((id.idr0.value() & (1u << 11)) == 0);  // NS1ATS RES0 without both stages
    CHECK((id.idr3.value() & 0x110) == 0);       // no XNX, FWB
  }
  SUBCASE("stage 2 only") {
    const IdRegisters id = id_registers(Config::stage2_only());
    CHECK((id.idr0.value() & 0x3) == 0x1);
    CHECK((id.idr0.value() & (1u << 19)) == 0);  // no CD2L
    CHECK((id.idr3.value() & 0x4) == 0);         // no HAD
  }
  SUBCASE("sizes, OAS, granules, VAX, IIDR") {
    Config c;
    c.sidsize = 32;
    c.ssidsize = 0;
    c.pri = false;
    c.pps = false;
    c.cmdqs = 8;
    c.eventqs = 7;
    c.oas = arch::kAddrSize52;
    c.vax = arch::kVax52;
    c.gran16k = false;
    c.stall_model = arch::kStallModelTerminate;
    c.iidr_implementer = 0x43b;
    c.iidr_product = 0x483;
    c.iidr_variant = 2;
    c.iidr_revision = 1;
    REQUIRE(c.invalid_reason() == nullptr);
    const IdRegisters id = id_registers(c);
    CHECK(id.idr1.value() == ((8u << 21) | (7u << 16) | 32u | (3u << 26)));
    CHECK(id.idr5.value() == ((1u << 10) | 0x50 | 0x6));  // VAX 52, GRAN64K+4K, OAS 52; STALL_MAX 0
    CHECK(id.iidr.value() == 0x4832'143b);
    CHECK((id.idr0.value() >> 24 & 0x3) == 0b01);  // STALL_MODEL: terminate only
  }
}

TEST_CASE("configurations the architecture or the model does not allow are refused") {
  auto refused = [](Config c, const char* needle) {
    const char* why = c.invalid_reason();
    REQUIRE(why != nullptr);
    CHECK(std::string(why).find(needle) != std::string::npos);
    CHECK(!c.validate().ok());
    hosted::LogCapture capture;
    auto r = Registers::create(c);
    CHECK(!r.ok());
    CHECK(capture.contains("invalid config"));
  };
  Config c;
  c.version = 3;
  refused(c, "v3.0 to");
  c = {};
  c.ril = false;
  refused(c, "RIL");
  c = {};
  c.hyp = false;
  refused(c, "Hyp");
  c = {};
  c.ats = false;
  refused(c, "PRI");
  c = {};
  c.httu = 3;
  refused(c, "HTTU");
  c = {};
  c.cmdqs = 20;
  refused(c, "2^19");
  c = Config::smmuv3_0();
  c.oas = arch::kAddrSize52;
  refused(c, "Reserved in v3.0");
  c = {};
  c.oas = arch::kAddrSize52;
  c.gran64k = false;
  refused(c, "GRAN64K");
  c = {};
  c.s1p = c.s2p = false;
  refused(c, "neither");
  CHECK(Config{}.validate().ok());
  CHECK(Config::smmuv3_0().validate().ok());
  CHECK(Config::stage1_only().validate().ok());
  CHECK(Config::stage2_only().validate().ok());
}

TEST_CASE("CR0 is acknowledged in CR0ACK, field by field") {
  for (Threading t : {Threading::kSync, Threading::kAsync, Threading::kManual}) {
    INFO("threading: ", std::string(name(t)));
    Harness h(t);
    constexpr uint32_t kEnables = arch::CR0::SMMUEN::kMask | arch::CR0::EVENTQEN::kMask |
                                  arch::CR0::CMDQEN::kMask | arch::CR0::PRIQEN::kMask |
                                  arch::CR0::ATSCHK::kMask;
    CHECK(h.write_cr0(kEnables));
    CHECK(h.readl(arch::CR0::kOffset) == kEnables);
    CHECK(h.write_cr0(arch::CR0::CMDQEN::kMask));
    // RES0 and unimplemented fields (VMW without IDR0.VMW, DPT_WALK_EN, bit 31) are not stored
    // and so never acknowledged.
    h.writel(0x8000'05c8, arch::CR0::kOffset);
    CHECK(h.poll([&] { return h.readl(arch::CR0ACK::kOffset) == 0x8; }));
    CHECK(h.readl(arch::CR0::kOffset) == 0x8);
    CHECK(h.write_cr0(0));
    CHECK(h.queues->counters().updates == 3);  // 0x8 again is no Update
    CHECK(h.regs->guest_error_count() == 0);
  }
}

TEST_CASE("an Update is visible in progress until the model completes it") {
  Harness h(Threading::kManual);
  h.writel(arch::CR0::SMMUEN::kMask, arch::CR0::kOffset);
  CHECK(h.readl(arch::CR0::kOffset) == 1);  // the written value reads back at once
  CHECK(h.readl(arch::CR0ACK::kOffset) == 0);
  h.writel(arch::IRQ_CTRL::GERROR_IRQEN::kMask, arch::IRQ_CTRL::kOffset);
  CHECK(h.readl(arch::IRQ_CTRLACK::kOffset) == 0);
  h.queues->process();
  CHECK(h.readl(arch::CR0ACK::kOffset) == 1);
  CHECK(h.readl(arch::IRQ_CTRLACK::kOffset) == 1);

  // IRQ_CTRL's RES0 bits and, without PRI, PRIQ_IRQEN are not stored.
  Harness::Setup setup{.threading = Threading::kSync};
  setup.config.pri = false;
  setup.config.pps = false;
  Harness no_pri(setup);
  CHECK(no_pri.write_irq_ctrl(arch::IRQ_CTRL::EVENTQ_IRQEN::kMask));
  no_pri.writel(0xffff'ffff, arch::IRQ_CTRL::kOffset);
  CHECK(no_pri.readl(arch::IRQ_CTRLACK::kOffset) == 0x5);
}

TEST_CASE("GBPA: Update reads 1 until the model has applied the attributes") {
  Harness h(Threading::kManual);
  hosted::LogCapture capture;
  const uint32_t reset = h.readl(arch::GBPA::kOffset);
  CHECK(reset == 0x1000);  // SHCFG = use incoming, ABORT clear, Update clear
  CHECK(h.queues->gbpa() == reset);

  const uint32_t abort = arch::GBPA::ABORT::kMask | 0x1000;
  h.writel(abort | arch::GBPA::Update::kMask, arch::GBPA::kOffset);
  CHECK(h.readl(arch::GBPA::kOffset) == (abort | arch::GBPA::Update::kMask));
  CHECK(h.queues->gbpa() == reset);  // not applied yet

  // While the Update is in progress the register is read-only (SMMUv3.2: the write is IGNORED).
  h.writel(arch::GBPA::Update::kMask, arch::GBPA::kOffset);
  CHECK(h.readl(arch::GBPA::kOffset) == (abort | arch::GBPA::Update::kMask));
  CHECK(h.regs->guest_error_count() == 1);

  h.queues->process();
  CHECK(h.readl(arch::GBPA::kOffset) == abort);
  CHECK(h.queues->gbpa() == abort);

  // A write without Update is IGNORED.
  h.writel(0x1000, arch::GBPA::kOffset);
  CHECK(h.readl(arch::GBPA::kOffset) == abort);
  CHECK(h.regs->guest_error_count() == 2);
  const auto errors = h.regs->guest_errors();
  REQUIRE(errors.size() == 1);  // one per offset
  CHECK(errors[0].message.find("while an Update is in progress") != std::string::npos);
  CHECK(capture.contains("GBPA written while an Update is in progress (ignored)"));

  // The driver's protocol, in each threading mode.
  for (Threading t : {Threading::kSync, Threading::kAsync, Threading::kManual}) {
    INFO("threading: ", std::string(name(t)));
    Harness d(t);
    const uint32_t attrs = (0b11u << 12) | (0b10u << 16) | arch::GBPA::MTCFG::kMask | 0xf;
    CHECK(d.write_gbpa(attrs));
    CHECK(d.readl(arch::GBPA::kOffset) == attrs);
    CHECK(d.queues->gbpa() == attrs);
    CHECK(d.regs->guest_error_count() == 0);
  }
}

TEST_CASE("GERROR and GERRORN: active while they differ, acknowledged by toggling GERRORN") {
  Harness h;
  hosted::LogCapture capture;
  const uint32_t cmdq_err = arch::GERROR::CMDQ_ERR::kMask;
  const uint32_t evtq_err = arch::GERROR::EVENTQ_ABT_ERR::kMask;
  CHECK(h.gerror_active() == 0);
  CHECK(h.regs->activate_gerrors(cmdq_err | evtq_err) == (cmdq_err | evtq_err));
  CHECK(h.readl(arch::GERROR::kOffset) == 0x5);
  CHECK(h.gerror_active() == 0x5);
  // Already active: not toggled again (which would deactivate it).
  CHECK(h.regs->activate_gerrors(cmdq_err) == 0);
  CHECK(h.readl(arch::GERROR::kOffset) == 0x5);

  // GERROR is read-only to software.
  h.writel(0, arch::GERROR::kOffset);
  CHECK(h.readl(arch::GERROR::kOffset) == 0x5);

  // Acknowledge CMDQ_ERR only.
  h.writel(0x1, arch::GERRORN::kOffset);
  CHECK(h.readl(arch::GERRORN::kOffset) == 0x1);
  CHECK(h.gerror_active() == evtq_err);
  // A new occurrence toggles GERROR[0] back to 0: active again with the opposite polarity.
  CHECK(h.regs->activate_gerrors(cmdq_err) == cmdq_err);
  CHECK(h.readl(arch::GERROR::kOffset) == 0x4);
  CHECK(h.gerror_active() == (cmdq_err | evtq_err));
  h.ack_gerrors();
  CHECK(h.gerror_active() == 0);
  CHECK(h.readl(arch::GERRORN::kOffset) == 0x4);
  CHECK(h.regs->guest_error_count() == 0);

  // Toggling GERRORN for an error that is not active: ignored, a guest error.
  h.writel(0x4 | arch::GERROR::SFM_ERR::kMask, arch::GERRORN::kOffset);
  CHECK(h.readl(arch::GERRORN::kOffset) == 0x4);
  CHECK(h.gerror_active() == 0);
  CHECK(h.regs->guest_error_count() == 1);
  CHECK(capture.contains("GERRORN toggles an error that is not active"));
  // RES0 bits never stick.
  CHECK((h.regs->gerror_mask() & 0xfffff802) == 0);
}

// Writes `value` to a register of `width` bytes and says whether it stuck.
bool takes(Harness& h, uint64_t offset, unsigned width, uint64_t value) {
  if (width == 8) {
    h.writeq(value, offset);
    return h.readq(offset) == value;
  }
  h.writel(static_cast<uint32_t>(value), offset);
  return h.readl(offset) == value;
}

TEST_CASE("registers guarded by an enable are read-only while it is set") {
  for (Threading t : {Threading::kSync, Threading::kManual}) {
    INFO("threading: ", std::string(name(t)));
    Harness h(t);
    struct Guarded {
      uint64_t offset;
      unsigned width;
      uint64_t value;
      uint32_t cr0;       // the CR0 enable that locks it (0: an IRQ_CTRL enable)
      uint32_t irq_ctrl;  // the IRQ_CTRL enable that locks it
    };
    const Guarded regs[] = {
        {arch::STRTAB_BASE::kOffset, 8, 0x4100'0000, arch::CR0::SMMUEN::kMask, 0},
        {arch::STRTAB_BASE_CFG::kOffset, 4, 0x10208, arch::CR0::SMMUEN::kMask, 0},
        {arch::CR2::kOffset, 4, 0x3, arch::CR0::SMMUEN::kMask, 0},
        {arch::CR1::kOffset, 4, 0xd00, arch::CR0::SMMUEN::kMask, 0},  // TABLE_*
        {arch::CR1::kOffset, 4, 0x0d, arch::CR0::CMDQEN::kMask, 0},   // QUEUE_*
        {arch::CR1::kOffset, 4, 0x0d, arch::CR0::EVENTQEN::kMask, 0},
        {arch::CR1::kOffset, 4, 0x0d, arch::CR0::PRIQEN::kMask, 0},
        {arch::CMDQ_BASE::kOffset, 8, 0x4010'0008, arch::CR0::CMDQEN::kMask, 0},
        {arch::CMDQ_CONS::kOffset, 4, 0x5, arch::CR0::CMDQEN::kMask, 0},
        {arch::EVENTQ_BASE::kOffset, 8, 0x4020'0004, arch::CR0::EVENTQEN::kMask, 0},
        {arch::EVENTQ_PROD::kOffset, 4, 0x3, arch::CR0::EVENTQEN::kMask, 0},
        {arch::PRIQ_BASE::kOffset, 8, 0x4030'0004, arch::CR0::PRIQEN::kMask, 0},
        {arch::PRIQ_PROD::kOffset, 4, 0x3, arch::CR0::PRIQEN::kMask, 0},
        {arch::GERROR_IRQ_CFG0::kOffset, 8, 0x0800'0000, 0, arch::IRQ_CTRL::GERROR_IRQEN::kMask},
        {arch::GERROR_IRQ_CFG1::kOffset, 4, 7, 0, arch::IRQ_CTRL::GERROR_IRQEN::kMask},
        {arch::GERROR_IRQ_CFG2::kOffset, 4, 1, 0, arch::IRQ_CTRL::GERROR_IRQEN::kMask},
        {arch::EVENTQ_IRQ_CFG0::kOffset, 8, 0x0800'0000, 0, arch::IRQ_CTRL::EVENTQ_IRQEN::kMask},
        {arch::EVENTQ_IRQ_CFG1::kOffset, 4, 8, 0, arch::IRQ_CTRL::EVENTQ_IRQEN::kMask},
        {arch::PRIQ_IRQ_CFG0::kOffset, 8, 0x0800'0000, 0, arch::IRQ_CTRL::PRIQ_IRQEN::kMask},
        {arch::PRIQ_IRQ_CFG2::kOffset, 4, 0x8000'0001, 0, arch::IRQ_CTRL::PRIQ_IRQEN::kMask},
    };
    uint64_t errors = 0;
    for (const Guarded& g : regs) {
      CAPTURE(g.offset);
      CAPTURE(g.cr0);
      // Writable while disabled.
      CHECK(takes(h, g.offset, g.width, 0));
      if (g.cr0) {
        // Locked from the write of CR0 on, before the Update completes (6.3.9: a field in
        // transition counts as its old and its new value).
        h.writel(h.cr0() | g.cr0, arch::CR0::kOffset);
        CHECK_FALSE(takes(h, g.offset, g.width, g.value));
        errors++;
        CHECK(h.write_cr0(h.cr0()));
        CHECK_FALSE(takes(h, g.offset, g.width, g.value));
        errors++;
        CHECK(h.write_cr0(0));
      } else {
        CHECK(h.write_irq_ctrl(g.irq_ctrl));
        CHECK_FALSE(takes(h, g.offset, g.width, g.value));
        errors++;
        CHECK(h.write_irq_ctrl(0));
      }
      CHECK(h.regs->guest_error_count() == errors);
      CHECK(takes(h, g.offset, g.width, g.value));  // writable again
    }
    // The software-owned indexes are always writable. (PROD matches the CONS left above, so
    // enabling the queue finds it consistent and empty.)
    h.writel(0x5, arch::CMDQ_PROD::kOffset);
    CHECK(h.enable(arch::CR0::CMDQEN::kMask | arch::CR0::EVENTQEN::kMask));
    CHECK(takes(h, arch::EVENTQ_CONS::kOffset, 4, 0x8000'0000));
    CHECK(h.regs->guest_error_count() == errors);
    const auto list = h.regs->guest_errors();
    REQUIRE(!list.empty());
    CHECK(list[0].message.find("STRTAB_BASE while SMMUEN (ignored)") != std::string::npos);
  }
}

TEST_CASE("address fields store the bits below the OAS; queue sizes read back as written") {
  Harness h;  // OAS 48 bits
  h.writeq((uint64_t{1} << 50) | 0x4000'0040 | (uint64_t{1} << 62), arch::STRTAB_BASE::kOffset);
  CHECK(h.readq(arch::STRTAB_BASE::kOffset) == (0x4000'0040 | (uint64_t{1} << 62)));
  // LOG2SIZE above IDR1.CMDQS reads back as written (its use is capped, 6.3.26).
  h.writeq(0x4010'0000 | 0x1f, arch::CMDQ_BASE::kOffset);
  CHECK(h.readq(arch::CMDQ_BASE::kOffset) == (0x4010'0000 | 0x1f));
  // RES0 bits 63 and 61:56 are not stored.
  h.writeq(~uint64_t{0}, arch::EVENTQ_BASE::kOffset);
  CHECK(h.readq(arch::EVENTQ_BASE::kOffset) == ((uint64_t{1} << 62) | 0x0000'ffff'ffff'ffff));
  // Through the two 32-bit halves too.
  h.writel(0, arch::STRTAB_BASE::kOffset);
  h.writel(0xffff'ffff, arch::STRTAB_BASE::kOffset + 4);
  CHECK(h.readq(arch::STRTAB_BASE::kOffset) == ((uint64_t{1} << 62) | 0x0000'ffff'0000'0000));
  CHECK(h.regs->guest_error_count() == 0);
}

TEST_CASE("page 1 holds the Event and PRI queue indexes") {
  Harness h;
  const Mmio page1 = h.io.window(arch::kPage1Offset, arch::kPage1Offset);
  page1.writel(0x8000'0003, 0xac);  // EVENTQ_CONS
  CHECK(h.readl(arch::EVENTQ_CONS::kOffset) == 0x8000'0003);
  page1.writel(0x5, 0xa8);  // EVENTQ_PROD while EVENTQEN == 0
  CHECK(page1.readl(0xa8) == 0x5);
  page1.writel(0x7, 0xcc);  // PRIQ_CONS
  CHECK(h.readl(arch::PRIQ_CONS::kOffset) == 0x7);
  // Page 0's optional aliases are not implemented: holes.
  CHECK(h.readl(0xa8) == 0);
  CHECK(h.regs->guest_error_count() == 1);
}

TEST_CASE("holes are guest errors, the IMPLEMENTATION DEFINED space is unimplemented") {
  Harness h;
  hosted::LogCapture capture;
  CHECK(h.readl(0x30) == 0);  // between CR2 and STATUSR
  h.writel(1, 0x100);         // past PRIQ_IRQ_CFG2
  CHECK(h.regs->guest_error_count() == 2);
  CHECK(h.regs->unimplemented_count() == 0);

  CHECK(h.readl(0xfe0) == 0);  // PIDR0 on Arm's implementations
  h.writel(1, 0xe00);
  CHECK(h.readl(arch::kPage1Offset + 0xfd0) == 0);
  CHECK(h.regs->unimplemented_count() == 3);
  CHECK(h.regs->guest_error_count() == 2);
  const auto unimp = h.regs->unimplemented();
  REQUIRE(unimp.size() == 3);
  CHECK(unimp[0] == "IMPLEMENTATION DEFINED register at 0xfe0");
  CHECK(capture.contains("unimplemented: IMPLEMENTATION DEFINED register at 0xfe0"));

  // Without PRI the PRIQ registers are Reserved: holes. Without MSI the IRQ_CFG registers are
  // RES0: they exist but store nothing, and that is no error.
  Harness::Setup setup;
  setup.config.pri = false;
  setup.config.pps = false;
  setup.config.msi = false;
  Harness small(setup);
  CHECK(small.readq(arch::PRIQ_BASE::kOffset) == 0);
  CHECK(small.regs->guest_error_count() == 1);
  small.writeq(0x0800'0000, arch::GERROR_IRQ_CFG0::kOffset);
  small.writel(5, arch::EVENTQ_IRQ_CFG1::kOffset);
  CHECK(small.readq(arch::GERROR_IRQ_CFG0::kOffset) == 0);
  CHECK(small.readl(arch::EVENTQ_IRQ_CFG1::kOffset) == 0);
  CHECK(small.regs->guest_error_count() == 1);
}

TEST_CASE("the register file dumps by spec name") {
  Harness h;
  const std::string dump = h.regs->dump();
  for (const char* reg : {"IDR0", "CR0ACK", "GBPA", "GERRORN", "STRTAB_BASE_CFG", "CMDQ_CONS",
                          "EVENTQ_IRQ_CFG2", "PRIQ_IRQ_CFG0", "EVENTQ_PROD", "PRIQ_CONS"})
    CHECK(dump.find(reg) != std::string::npos);
  CHECK(dump.find("0x100a8 EVENTQ_PROD") != std::string::npos);
}

}  // namespace
}  // namespace strata::sim::smmuv3
