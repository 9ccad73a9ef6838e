// SPDX-License-Identifier: MIT
// The SMMU itself: probe, the reset sequence, interrupts and teardown (Linux's
// arm_smmu_device_probe, arm_smmu_device_reset, arm_smmu_setup_irqs).
#include <string.h>

#include "arch/clock.h"
#include "arch/log.h"
#include "arch/smmuv3/defs.h"
#include "arch/smmuv3/regs.h"
#include "drivers/iommu/arm/arm-smmu-v3/arm_smmu_v3.h"

namespace strata::arm_smmu_v3 {

namespace hw = ::strata::smmuv3;

namespace {

constexpr size_t kPage0Bytes = hw::kPage1Offset;

}  // namespace

ArmSmmuV3::ArmSmmuV3(Token, const ArmSmmuConfig& config, const ArmSmmuFeatures& features)
    : IommuDevice(config.name),
      config_(config),
      features_(features),
      page0_(config.regs.window(0, kPage0Bytes)) {
  max_pasids_ = features.ssid_bits ? uint32_t{1} << features.ssid_bits : 0;
}

Result<Box<ArmSmmuV3>> ArmSmmuV3::probe(const ArmSmmuConfig& config) {
  if (!config.dma || config.regs.size() < hw::kRegisterSpaceBytes || !config.name)
    return Error(-EINVAL);
  const ArmSmmuFeatures features =
      STRATA_TRY(arm_smmu_probe_features(config.regs.window(0, kPage0Bytes), config.name));
  Box<ArmSmmuV3> smmu = STRATA_TRY(make_box<ArmSmmuV3>(Token{}, config, features));
  STRATA_TRY(smmu->init_structures());
  STRATA_TRY(smmu->device_reset());
  STRATA_TRY(iommu_device_register(*smmu, config.iommu));
  return smmu;
}

ArmSmmuV3::~ArmSmmuV3() {
  if (registered()) {
    // A device still probed would be left with a dangling driver.
    STRATA_BUG_ON(!iommu_device_unregister(*this).ok());
  }
  disable();
}

Result<void> ArmSmmuV3::init_structures() {
  // VMID 0 is what stage-1 STEs carry (ste.h), and ASID 0 is left unused as Linux
  // leaves it, so that a stray ASID-0 entry can never belong to a domain.
  STRATA_TRY(asids_.init(1, (uint32_t{1} << features_.asid_bits) - 1));
  STRATA_TRY(vmids_.init(1, (uint32_t{1} << features_.vmid_bits) - 1));

  cmdq_ = STRATA_TRY(Cmdq::create(CmdqConfig{
      .page0 = page0_,
      .dma = config_.dma,
      .log2_entries =
          config_.cmdq_log2 < features_.cmdq_shift ? config_.cmdq_log2 : features_.cmdq_shift,
      .msi = true,
      .timeout_us = config_.timeout_us,
      .name = config_.name,
  }));
  evtq_ = STRATA_TRY(OutQueue::create(OutQueue::Config{
      .kind = OutQueue::Kind::event,
      .regs = config_.regs,
      .dma = config_.dma,
      .log2size =
          config_.evtq_log2 < features_.evtq_shift ? config_.evtq_log2 : features_.evtq_shift,
      .coherent = coherent(),
      .name = config_.name,
  }));
  if (features_.pri) {
    priq_ = STRATA_TRY(OutQueue::create(OutQueue::Config{
        .kind = OutQueue::Kind::pri,
        .regs = config_.regs,
        .dma = config_.dma,
        .log2size =
            config_.priq_log2 < features_.priq_shift ? config_.priq_log2 : features_.priq_shift,
        .coherent = coherent(),
        .name = config_.name,
    }));
  }
  strtab_ = STRATA_TRY(Strtab::create(
      *config_.dma, *this,
      StrtabConfig{
          .sid_bits = features_.sid_bits,
          .two_level = features_.two_level_strtab,
          .initial = config_.bypass_unattached ? make_bypass_ste(ste_features()) : make_abort_ste(),
          .name = config_.name}));
  return {};
}

Result<void> ArmSmmuV3::write_reg_sync(uint32_t value, uint32_t reg, uint32_t ack) {
  page0_.writel_relaxed(value, reg);
  auto done = poll_timeout([&] { return page0_.readl_relaxed(ack); },
                           [&](uint32_t v) { return v == value; }, config_.timeout_us);
  if (!done.ok()) {
    dev_err(config_.name, "register {:#x} not acknowledged ({:#x}, wrote {:#x})", reg,
            page0_.readl_relaxed(ack), value);
    return Error(-ETIMEDOUT);
  }
  return {};
}

// SMMU_GBPA (6.3.14): a write takes effect when the SMMU clears Update, and one may only be
// made while Update is clear.
Result<void> ArmSmmuV3::update_gbpa(uint32_t set, uint32_t clear) {
  auto idle = [&] {
    return poll_timeout([&] { return page0_.readl_relaxed(hw::GBPA::kOffset); },
                        [](uint32_t v) { return !(v & hw::GBPA::Update::kMask); },
                        config_.timeout_us);
  };
  auto before = idle();
  if (!before.ok()) {
    dev_err(config_.name, "GBPA not responding to update");
    return Error(-ETIMEDOUT);
  }
  const uint32_t value = (before.value() & ~clear) | set;
  page0_.writel_relaxed(value | hw::GBPA::Update::kMask, hw::GBPA::kOffset);
  if (!idle().ok()) {
    dev_err(config_.name, "GBPA not responding to update");
    return Error(-ETIMEDOUT);
  }
  return {};
}

// The reset sequence (6.3.9 CR0 and CR0ACK; Linux's arm_smmu_device_reset): everything off,
// then each part configured while its enable is clear and enabled in order, the Command queue
// first because invalidating what the SMMU may have cached needs it.
Result<void> ArmSmmuV3::device_reset() {
  const uint32_t cr0 = page0_.readl_relaxed(hw::CR0::kOffset);
  if (cr0 & hw::CR0::SMMUEN::kMask) {
    // Firmware (or a previous kernel) left it translating: abort incoming DMA while the
    // tables are replaced, rather than let it bypass.
    dev_warn(config_.name, "SMMU currently enabled; resetting");
    STRATA_TRY(update_gbpa(hw::GBPA::ABORT::kMask, 0));
  }
  STRATA_TRY(write_reg_sync(0, hw::CR0::kOffset, hw::CR0ACK::kOffset));

  // Table and queue accesses: write-back cacheable and inner shareable when the SMMU is
  // coherent, non-cacheable outer shareable otherwise (6.3.10).
  const uint64_t cache = coherent() ? hw::kCr1CacheWb : hw::kCr1CacheNc;
  const uint64_t sh = coherent() ? hw::kShIsh : hw::kShOsh;
  hw::CR1::read_from_relaxed(page0_)
      .set<hw::CR1::QUEUE_IC>(cache)
      .set<hw::CR1::QUEUE_OC>(cache)
      .set<hw::CR1::QUEUE_SH>(sh)
      .set<hw::CR1::TABLE_IC>(cache)
      .set<hw::CR1::TABLE_OC>(cache)
      .set<hw::CR1::TABLE_SH>(sh)
      .write_to_relaxed(page0_);
  // CR2 (6.3.12): private TLB maintenance (the driver invalidates by command; broadcast TLBIs
  // of the CPUs' ASIDs must not hit device entries) and recording of bad StreamIDs.
  hw::CR2::read_from_relaxed(page0_)
      .set<hw::CR2::E2H>(0)
      .set<hw::CR2::RECINVSID>(1)
      .set<hw::CR2::PTM>(1)
      .set<hw::CR2::REC_CFG_ATS>(0)
      .write_to_relaxed(page0_);

  strtab_->strtab_base().write_to_relaxed(page0_);
  strtab_->strtab_base_cfg().write_to_relaxed(page0_);

  // No GERROR interrupt is connected yet (setup_irqs), so until one is, if one ever is, the
  // Command queue's waits handle global errors (cmdq.h): a command error in the invalidation
  // below fails it with -EIO rather than stopping the queue for good.
  cmdq_->set_gerror_poll(&ArmSmmuV3::gerror_irq, this);
  STRATA_TRY(cmdq_->reset());
  uint32_t enables = hw::CR0::CMDQEN::kMask;
  STRATA_TRY(write_reg_sync(enables, hw::CR0::kOffset, hw::CR0ACK::kOffset));

  // Whatever the SMMU cached before the reset is stale now (4.3.4 CMD_CFGI_ALL; Linux issues
  // the same three).
  smmuv3::Command inv[3];
  size_t n = 0;
  inv[n++] = hw::descriptor_cast<hw::Command>(
      hw::CmdCfgiSteRange::make().set<hw::CmdCfgiSteRange::Range>(31));
  if (features_.hyp)
    inv[n++] = hw::descriptor_cast<hw::Command>(hw::CmdTlbi::make(hw::Opcode::CMD_TLBI_EL2_ALL));
  inv[n++] = hw::descriptor_cast<hw::Command>(hw::CmdTlbi::make(hw::Opcode::CMD_TLBI_NSNH_ALL));
  if (auto r = cmdq_->issue_cmdlist(inv, n, true); !r.ok()) {
    dev_err(config_.name, "invalidation at reset failed: {}", r.error().code());
    return r;
  }

  evtq_->reset();
  enables |= hw::CR0::EVENTQEN::kMask;
  STRATA_TRY(write_reg_sync(enables, hw::CR0::kOffset, hw::CR0ACK::kOffset));
  if (priq_) {
    priq_->reset();
    enables |= hw::CR0::PRIQEN::kMask;
    STRATA_TRY(write_reg_sync(enables, hw::CR0::kOffset, hw::CR0ACK::kOffset));
  }
  // ATS Translated traffic is checked against the STE (EATS) rather than trusted (6.3.9).
  if (features_.ats) {
    enables |= hw::CR0::ATSCHK::kMask;
    STRATA_TRY(write_reg_sync(enables, hw::CR0::kOffset, hw::CR0ACK::kOffset));
  }

  STRATA_TRY(setup_irqs());
  if (!gerror_irq_)
    dev_warn(config_.name, "no GERROR interrupt: global errors are polled by command queue waits");

  // Unattached StreamIDs follow the initial STEs, so GBPA only matters once SMMUEN clears
  // again: keep it at abort.
  STRATA_TRY(update_gbpa(hw::GBPA::ABORT::kMask, 0));
  enables |= hw::CR0::SMMUEN::kMask;
  STRATA_TRY(write_reg_sync(enables, hw::CR0::kOffset, hw::CR0ACK::kOffset));
  enabled_ = true;
  return {};
}

// Interrupts (Linux's arm_smmu_setup_irqs / arm_smmu_setup_msis): all off while they are
// connected, then enabled together.
Result<void> ArmSmmuV3::setup_irqs() {
  STRATA_TRY(write_reg_sync(0, hw::IRQ_CTRL::kOffset, hw::IRQ_CTRLACK::kOffset));
  // No MSIs unless programmed below (an IRQ_CFG0.ADDR of 0 sends none, 6.3.21).
  hw::GERROR_IRQ_CFG0{}.write_to_relaxed(page0_);
  hw::EVENTQ_IRQ_CFG0{}.write_to_relaxed(page0_);
  if (features_.pri) hw::PRIQ_IRQ_CFG0{}.write_to_relaxed(page0_);
  InterruptController* ic = config_.irq;
  if (!ic) return {};

  const bool msi = config_.msi && features_.msi;
  const bool threads = config_.wake_thread != nullptr;
  auto connect = [&](Irq& irq, int line, IrqHandler handler) -> Result<bool> {
    if (msi) {
      auto r = Irq::request_msi(*ic, handler, this);
      if (r.ok()) {
        irq = r.release_value();
        return true;
      }
      if (r.error().code() != -EOPNOTSUPP) return Error(r.error().code());
    }
    if (line < 0) return false;
    irq = STRATA_TRY(Irq::request(*ic, static_cast<unsigned>(line), handler, this));
    return true;
  };
  // Device-nGnRE, as Linux programs MSIs: the doorbell is a device register.
  auto program_msi = [&](const Irq& irq, uint32_t cfg0, uint32_t cfg1, uint32_t cfg2) {
    if (!irq || !irq.is_msi()) return;
    page0_.writeq_relaxed(irq.msi_msg().address & 0x00ff'ffff'ffff'fffc, cfg0);
    page0_.writel_relaxed(irq.msi_msg().data, cfg1);
    page0_.writel_relaxed(static_cast<uint32_t>(hw::kMemAttrDeviceNGnRE), cfg2);
  };

  uint32_t irqen = 0;
  if (STRATA_TRY(connect(gerror_irq_, config_.gerror_irq, &ArmSmmuV3::gerror_irq))) {
    program_msi(gerror_irq_, hw::GERROR_IRQ_CFG0::kOffset, hw::GERROR_IRQ_CFG1::kOffset,
                hw::GERROR_IRQ_CFG2::kOffset);
    irqen |= hw::IRQ_CTRL::GERROR_IRQEN::kMask;
    // The interrupt handles global errors from here on, alone: the poll stops before
    // IRQ_CTRL.GERROR_IRQEN (6.3.16, written below) lets the interrupt in, and no command is
    // in flight during probe, so the two never run the handler at once.
    cmdq_->set_gerror_poll(nullptr, nullptr);
  }
  if (threads && STRATA_TRY(connect(evtq_irq_, config_.eventq_irq, &ArmSmmuV3::evtq_irq))) {
    program_msi(evtq_irq_, hw::EVENTQ_IRQ_CFG0::kOffset, hw::EVENTQ_IRQ_CFG1::kOffset,
                hw::EVENTQ_IRQ_CFG2::kOffset);
    irqen |= hw::IRQ_CTRL::EVENTQ_IRQEN::kMask;
  }
  if (priq_ && threads && STRATA_TRY(connect(priq_irq_, config_.priq_irq, &ArmSmmuV3::priq_irq))) {
    program_msi(priq_irq_, hw::PRIQ_IRQ_CFG0::kOffset, hw::PRIQ_IRQ_CFG1::kOffset,
                hw::PRIQ_IRQ_CFG2::kOffset);
    irqen |= hw::IRQ_CTRL::PRIQ_IRQEN::kMask;
  }
  return write_reg_sync(irqen, hw::IRQ_CTRL::kOffset, hw::IRQ_CTRLACK::kOffset);
}

void ArmSmmuV3::disable() {
  if (enabled_) {
    // Abort, not bypass, once SMMUEN is clear (6.3.14); then stop everything.
    (void)update_gbpa(hw::GBPA::ABORT::kMask, 0);
    (void)write_reg_sync(0, hw::IRQ_CTRL::kOffset, hw::IRQ_CTRLACK::kOffset);
  }
  // Handlers stop before the queues they read go.
  gerror_irq_.reset();
  evtq_irq_.reset();
  priq_irq_.reset();
  if (cmdq_) (void)write_reg_sync(0, hw::CR0::kOffset, hw::CR0ACK::kOffset);
  enabled_ = false;
}

void ArmSmmuV3::evtq_irq(void* ctx) {
  auto* smmu = static_cast<ArmSmmuV3*>(ctx);
  smmu->config_.wake_thread(smmu->config_.wake_ctx, ArmSmmuThread::evtq);
}

void ArmSmmuV3::priq_irq(void* ctx) {
  auto* smmu = static_cast<ArmSmmuV3*>(ctx);
  smmu->config_.wake_thread(smmu->config_.wake_ctx, ArmSmmuThread::priq);
}

void ArmSmmuV3::gerror_irq(void* ctx) { static_cast<ArmSmmuV3*>(ctx)->handle_gerror(); }

// Global errors (7.5; Linux's arm_smmu_gerror_handler): active errors are the bits in which
// GERROR and GERRORN differ, and writing GERRORN = GERROR acknowledges them all. Run by the
// GERROR interrupt or, without one (Linux only warns: "no gerr irq - errors will not be
// reported!"), by the Command queue's waiters: one caller at a time either way (cmdq.h).
void ArmSmmuV3::handle_gerror() {
  const uint32_t gerror = page0_.readl_relaxed(hw::GERROR::kOffset);
  const uint32_t gerrorn = page0_.readl_relaxed(hw::GERRORN::kOffset);
  const uint32_t active = gerror ^ gerrorn;
  if (!active) return;
  counters_.gerrors.fetch_add(1, std::memory_order_relaxed);
  uint32_t ack = gerror;
  if (active & hw::GERROR::SFM_ERR::kMask) {
    // Service Failure Mode: the SMMU stopped translating; nothing here can bring it back.
    dev_err(config_.name, "device has entered Service Failure Mode");
  }
  if (active & hw::GERROR::MSI_GERROR_ABT_ERR::kMask)
    dev_warn(config_.name, "GERROR MSI write aborted");
  if (active & hw::GERROR::MSI_PRIQ_ABT_ERR::kMask)
    dev_warn(config_.name, "PRIQ MSI write aborted");
  if (active & hw::GERROR::MSI_EVENTQ_ABT_ERR::kMask)
    dev_warn(config_.name, "EVTQ MSI write aborted");
  if (active & hw::GERROR::MSI_CMDQ_ABT_ERR::kMask)
    dev_warn(config_.name, "CMDQ MSI write aborted");
  if (active & hw::GERROR::PRIQ_ABT_ERR::kMask)
    dev_err(config_.name, "PRIQ write aborted -- page requests may have been lost");
  if (active & hw::GERROR::EVENTQ_ABT_ERR::kMask)
    dev_err(config_.name, "EVTQ write aborted -- events may have been lost");
  if ((active & hw::GERROR::CMDQ_ERR::kMask) && !cmdq_->handle_cmdq_error()) {
    // The queue must stay stopped (cmdq.h): leave CMDQ_ERR active.
    ack ^= hw::GERROR::CMDQ_ERR::kMask;
  }
  page0_.writel(ack, hw::GERRORN::kOffset);
}

ArmSmmuCounters ArmSmmuV3::counters() const {
  auto r = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  const AtomicCounters& c = counters_;
  return ArmSmmuCounters{
      .events = r(c.events),
      .faults_reported = r(c.faults_reported),
      .faults_logged = r(c.faults_logged),
      .evtq_overflows = r(c.evtq_overflows),
      .page_requests = r(c.page_requests),
      .priq_overflows = r(c.priq_overflows),
      .page_responses = r(c.page_responses),
      .gerrors = r(c.gerrors),
      .ste_writes = r(c.ste_writes),
      .cd_writes = r(c.cd_writes),
      .tlb_syncs = r(c.tlb_syncs),
      .atc_invalidations = r(c.atc_invalidations),
  };
}

}  // namespace strata::arm_smmu_v3
