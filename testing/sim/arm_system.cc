// SPDX-License-Identifier: MIT
#include "testing/sim/arm_system.h"

#include <fmt/format.h>

#include "core/dma-iommu/dma_iommu.h"
#include "core/iommu.h"

namespace strata::sim {

namespace {

std::string engine_name(unsigned i) { return fmt::format("dma-engine{}", i); }

}  // namespace

Result<std::unique_ptr<ArmSystem>> ArmSystem::create(const ArmSystemConfig& config) {
  std::unique_ptr<ArmSystem> sys(new ArmSystem());
  sys->platform_ = STRATA_TRY(ArmPlatform::create(config.platform));
  sys->iopf_ = STRATA_TRY(IopfQueue::create("smmu0-iopf", 64));
  sys->iopf_->set_kick(
      +[](void* ctx) { wake(ctx, arm_smmu_v3::ArmSmmuThread::evtq); }, sys.get());
  const ArmPlatform::SmmuIrqs& lines = sys->platform_->smmu_irqs();
  sys->smmu_ = STRATA_TRY(arm_smmu_v3::ArmSmmuV3::probe(arm_smmu_v3::ArmSmmuConfig{
      .name = "smmu0",
      .regs = sys->platform_->smmu_mmio(),
      .dma = &sys->platform_->dma(),
      .irq = &sys->platform_->irq(),
      .eventq_irq = lines.eventq,
      .priq_irq = lines.priq,
      .gerror_irq = lines.gerror,
      .msi = config.msi,
      .wake_thread = &ArmSystem::wake,
      .wake_ctx = sys.get(),
      .iopf_queue = sys->iopf_.get(),
      .iommu = config.iommu,
      .bypass_unattached = config.bypass_unattached,
  }));
  // Started once the driver exists: until then a wake-up is only counted.
  sys->thread_ = std::thread([s = sys.get()] { s->irq_thread_main(); });

  for (unsigned i = 0; i < sys->platform_->engine_count(); i++) {
    sys->names_.push_back(std::make_unique<std::string>(engine_name(i)));
    DeviceDesc desc{.name = sys->names_.back()->c_str(),
                    .fwspec = {.iommu = sys->smmu_.get(),
                               .ids = {sys->platform_->engine_stream_id(i)},
                               .num_ids = 1},
                    .pasid_bits = config.engine_pasid_bits};
    sys->devices_.push_back(std::make_unique<Device>(desc));
    sys->probed_.push_back(false);
    if (config.probe_engines) STRATA_TRY(sys->probe(i));
  }
  return sys;
}

ArmSystem::~ArmSystem() {
  if (platform_) platform_->wait_idle();
  for (unsigned i = 0; i < devices_.size(); i++) release(i);
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  smmu_.reset();
  iopf_.reset();
}

Result<void> ArmSystem::probe(unsigned i) {
  Device& dev = *devices_.at(i);
  STRATA_TRY(iommu_probe_device(dev));
  probed_[i] = true;
  // What the OS does for a DMA default domain before the device's driver uses the DMA API.
  Domain* d = iommu_get_dma_domain(dev);
  if (d && domain_type_is_dma(d->type())) {
    if (auto r = iommu_dma_init_domain(*d, dev); !r.ok()) {
      release(i);
      return r;
    }
  }
  return {};
}

void ArmSystem::release(unsigned i) {
  if (!probed_.at(i)) return;
  iommu_release_device(*devices_[i]);
  probed_[i] = false;
}

// From interrupt context (the model's thread, or whichever thread's DMA raised the
// interrupt): only wakes the thread, as a threaded IRQ's hard handler does.
void ArmSystem::wake(void* ctx, arm_smmu_v3::ArmSmmuThread thread) {
  (void)thread;
  auto* sys = static_cast<ArmSystem*>(ctx);
  {
    std::lock_guard<std::mutex> g(sys->mu_);
    sys->requested_++;
  }
  sys->cv_.notify_all();
}

void ArmSystem::irq_thread_main() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stop_ || requested_ > served_; });
    if (stop_) return;
    const uint64_t target = requested_;
    lk.unlock();
    smmu_->evtq_thread();
    smmu_->priq_thread();
    while (iopf_->process(16)) {
    }
    lk.lock();
    served_ = target;
    cv_.notify_all();
  }
}

void ArmSystem::flush_events() {
  std::unique_lock<std::mutex> lk(mu_);
  const uint64_t target = ++requested_;
  cv_.notify_all();
  cv_.wait(lk, [&] { return stop_ || served_ >= target; });
}

}  // namespace strata::sim
