// SPDX-License-Identifier: MIT
// The simulated Arm system with its OS side: the ArmPlatform (RAM, the SMMUv3 model, DMA test
// engines) plus what an OS adds on top, namely the arm-smmu-v3 driver probed over the model's
// registers, the threads of its threaded interrupts, an IopfQueue with its worker, and one
// Device per engine probed into the iommu core. End-to-end tests, the demo and the benchmark
// start from here:
//
//   auto sys = STRATA_TRY(ArmSystem::create({.platform = {.engines = 2}}));
//   Device& dev = sys->engine_dev(0);      // probed, in its default (DMA) domain
//   sys->engine(0).copy(src_iova, dst_iova, len);
//   sys->flush_events();                   // the event thread has reported what was queued
#pragma once

#include <stdint.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "arch/result.h"
#include "core/device.h"
#include "core/iopf.h"
#include "drivers/iommu/arm/arm-smmu-v3/arm_smmu_v3.h"
#include "testing/sim/arm_platform.h"

namespace strata::sim {

struct ArmSystemConfig {
  ArmPlatform::Config platform = {};
  // The driver's MSIs instead of the wired lines.
  bool msi = false;
  IommuConfig iommu = {};
  bool bypass_unattached = false;
  // The engines' SubstreamID width (DeviceDesc::pasid_bits).
  unsigned engine_pasid_bits = 0;
  // Probe the engines into the core at creation.
  bool probe_engines = true;
};

class ArmSystem {
 public:
  static Result<std::unique_ptr<ArmSystem>> create(const ArmSystemConfig& config);
  static Result<std::unique_ptr<ArmSystem>> create() { return create(ArmSystemConfig{}); }
  // Releases the devices, removes the driver, stops the threads.
  ~ArmSystem();
  ArmSystem(const ArmSystem&) = delete;
  ArmSystem& operator=(const ArmSystem&) = delete;

  ArmPlatform& platform() { return *platform_; }
  sim::smmuv3::Smmuv3& model() { return platform_->smmu(); }
  arm_smmu_v3::ArmSmmuV3& smmu() { return *smmu_; }
  IopfQueue& iopf_queue() { return *iopf_; }
  unsigned engine_count() const { return platform_->engine_count(); }
  dma_engine::DmaTestEngine& engine(unsigned i) { return platform_->engine(i); }
  Device& engine_dev(unsigned i) { return *devices_.at(i); }

  // Probes / releases engine i's Device (iommu_probe_device / iommu_release_device).
  Result<void> probe(unsigned i);
  void release(unsigned i);

  // Returns once the event and PRI threads have handled every record the queues held when it
  // was called, and the IOPF worker every group queued by then.
  void flush_events();

 private:
  ArmSystem() = default;
  static void wake(void* ctx, arm_smmu_v3::ArmSmmuThread thread);
  void irq_thread_main();

  std::unique_ptr<ArmPlatform> platform_;
  Box<IopfQueue> iopf_;
  Box<arm_smmu_v3::ArmSmmuV3> smmu_;
  std::vector<std::unique_ptr<std::string>> names_;  // the Devices' names
  std::vector<std::unique_ptr<Device>> devices_;
  std::vector<bool> probed_;

  // The OS thread of the threaded interrupts, and the IOPF worker: one thread runs both.
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t requested_ = 0;  // wake-ups asked for (interrupts, flushes)
  uint64_t served_ = 0;     // passes completed that started after the request
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace strata::sim
