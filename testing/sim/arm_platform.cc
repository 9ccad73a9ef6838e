// SPDX-License-Identifier: MIT
#include "testing/sim/arm_platform.h"

#include <fmt/core.h>

namespace strata::sim {
namespace {

dma_engine::Mode engine_mode(smmuv3::Threading t) {
  return t == smmuv3::Threading::kAsync ? dma_engine::Mode::kAsync : dma_engine::Mode::kSync;
}

std::string line_name(int line) { return line < 0 ? "none" : fmt::format("line {}", line); }

}  // namespace

Result<std::unique_ptr<ArmPlatform>> ArmPlatform::create(const Config& config) {
  STRATA_TRY(config.smmu.validate());
  const uint64_t sids =
      config.smmu.sidsize >= 32 ? uint64_t{1} << 32 : uint64_t{1} << config.smmu.sidsize;
  if (uint64_t{config.first_stream_id} + config.engines > sids) return Error(-EINVAL);
  if (config.machine.lines < kFirstEngineLine ||
      config.engines > config.machine.lines - kFirstEngineLine)
    return Error(-EINVAL);
  if (config.wired_irqs && kSmmuCmdqSyncLine >= config.machine.lines) return Error(-EINVAL);

  std::unique_ptr<ArmPlatform> p(new ArmPlatform(config));
  p->machine_ = STRATA_TRY(Platform::create(config.machine));

  SmmuIrqs& irqs = p->smmu_irqs_;
  irqs.msi = config.smmu.msi;
  if (config.wired_irqs) {
    irqs.eventq = kSmmuEventqLine;
    irqs.priq = config.smmu.pri ? static_cast<int>(kSmmuPriqLine) : -1;
    irqs.gerror = kSmmuGerrorLine;
    irqs.cmdq_sync = kSmmuCmdqSyncLine;
  }
  p->smmu_ = STRATA_TRY(
      smmuv3::Smmuv3::create(config.smmu, p->mem(),
                             smmuv3::Smmuv3::Options{.threading = config.threading,
                                                     .irq = &p->irq(),
                                                     .lines = {.eventq = irqs.eventq,
                                                               .priq = irqs.priq,
                                                               .gerror = irqs.gerror,
                                                               .cmdq_sync = irqs.cmdq_sync},
                                                     .name = "smmuv3",
                                                     .oracle = config.oracle}));
  p->port_ = std::make_unique<dma_engine::Smmuv3DmaPort>(*p->smmu_);

  for (unsigned i = 0; i < config.engines; ++i) {
    p->engines_.push_back(STRATA_TRY(dma_engine::DmaTestEngine::create(
        *p->port_, {.stream_id = config.first_stream_id + i,
                    .mode = engine_mode(config.threading),
                    .irq = &p->irq(),
                    .line = static_cast<int>(kFirstEngineLine + i),
                    .name = fmt::format("dma-engine{}", i)})));
  }
  return p;
}

Result<std::unique_ptr<ArmPlatform>> ArmPlatform::create() { return create(Config{}); }

void ArmPlatform::wait_idle() {
  // A completion handler may start another engine's job, and an SMMU interrupt handler may
  // ring a doorbell: go round until a pass ends with everything idle.
  for (;;) {
    for (auto& e : engines_) e->wait_idle();
    if (config_.threading == smmuv3::Threading::kAsync) smmu_->queues().wait_idle();
    bool idle = true;
    for (auto& e : engines_) idle = idle && e->idle();
    if (idle) return;
  }
}

std::string ArmPlatform::describe() const {
  const smmuv3::Config& c = config_.smmu;
  std::string out = machine_->describe();
  const char* stages = c.s1p && c.s2p ? "stage 1 + stage 2 (nesting)"
                       : c.s1p        ? "stage 1 only"
                                      : "stage 2 only";
  out += fmt::format(
      "smmuv3 at {:#x} (2 x 64 KiB register pages): SMMUv3.{}, {}, {}-bit StreamIDs, "
      "{}-bit SubstreamIDs, {}-bit OAS{}{}{}\n",
      kSmmuBase, c.version, stages, c.sidsize, c.ssidsize, c.oas_bits(), c.msi ? ", MSI" : "",
      c.ats ? ", ATS" : "", c.pri ? ", PRI" : "");
  out += fmt::format("  interrupts: eventq {}, priq {}, gerror {}, cmdq-sync {}{}\n",
                     line_name(smmu_irqs_.eventq), line_name(smmu_irqs_.priq),
                     line_name(smmu_irqs_.gerror), line_name(smmu_irqs_.cmdq_sync),
                     smmu_irqs_.msi ? "; MSIs to the doorbell" : "");
  out += fmt::format("  model: {} threading, test oracle {}\n", smmuv3::name(config_.threading),
                     config_.oracle ? "on" : "off");
  for (unsigned i = 0; i < engines_.size(); ++i) {
    const dma_engine::DmaTestEngine& e = *engines_[i];
    out += fmt::format(
        "{} at {:#x} (4 KiB): StreamID {:#x} behind the smmuv3, completion {} or MSI, {}\n",
        e.name(), engine_base(i), e.stream_id(), line_name(e.line()), dma_engine::name(e.mode()));
  }
  return out;
}

}  // namespace strata::sim
