// SPDX-License-Identifier: MIT
// The simulated Arm platform: RAM, the DMA allocator and interrupt controller of a sim::Platform,
// one SMMUv3 model, and DMA test engines behind it, assembled in one call:
//
//   auto p = STRATA_TRY(ArmPlatform::create({.smmu = smmuv3::Config::smmuv3_2(),
//                                            .threading = smmuv3::Threading::kSync,
//                                            .engines = 2}));
//
// It hands a driver what firmware and the OS would: the SMMU's register pages (smmu_mmio(), the
// architecture's two 64 KiB pages) and its interrupts (smmu_irqs(): the wired lines an ACPI
// IORT SMMUv3 node or a DT "interrupt-names" list would give, or none, leaving MSIs), the
// DmaAllocator for the stream table, queues and page tables (dma()), and the
// InterruptController (irq()). Each engine sits behind the SMMU with its own StreamID (what an
// IORT ID mapping or a DT "iommus" property would say), its register block (engine_mmio(i)) and
// its completion line (engine_irq(i)); it DMAs only through the SMMU model's DMA port, so
// everything it does is translated, bypassed or faulted as the driver's structures say. Tests
// also get the model itself (smmu(): counters, stale-translation reports, queue counters).
//
// Memory map and interrupt numbering (the SMMU and engine register addresses are what firmware
// would report, for logs and describe(); drivers reach the registers through the Mmio handles,
// not the bus):
//   0x0800_0000            MSI doorbell (the interrupt controller's, GICv2m-like)
//   0x2b40_0000            SMMUv3, 128 KiB (register pages 0 and 1)
//   0x2c00_0000 + i*4 KiB  DMA test engine i
//   RAM                    Platform::Config's (default 1 GiB at 0x4000_0000)
//   lines 16..19           SMMU eventq, priq (when the Config has PRI), gerror, cmdq-sync
//   line 32 + i            engine i's completion
//
// Threading: kSync runs the SMMU's command queue and every engine job inside the register write
// that starts it (deterministic); kAsync gives the SMMU and each engine their own thread
// (wait_idle() for tests); kManual leaves the SMMU to smmu().queues().process() and runs
// engines synchronously.
#pragma once

#include <stdint.h>

#include <memory>
#include <string>
#include <vector>

#include "arch/mmio.h"
#include "arch/result.h"
#include "testing/models/dma-engine/dma_engine.h"
#include "testing/models/dma-engine/smmuv3_port.h"
#include "testing/models/platform/platform.h"
#include "testing/models/smmuv3/config.h"
#include "testing/models/smmuv3/queues.h"
#include "testing/models/smmuv3/smmuv3.h"

namespace strata::sim {

class ArmPlatform {
 public:
  static constexpr phys_addr_t kSmmuBase = 0x2b40'0000;
  static constexpr phys_addr_t kEngineBase = 0x2c00'0000;
  static constexpr uint64_t kEngineStride = 0x1000;
  static constexpr unsigned kSmmuEventqLine = 16;
  static constexpr unsigned kSmmuPriqLine = 17;
  static constexpr unsigned kSmmuGerrorLine = 18;
  static constexpr unsigned kSmmuCmdqSyncLine = 19;
  static constexpr unsigned kFirstEngineLine = 32;

  struct Config {
    smmuv3::Config smmu = smmuv3::Config::smmuv3_2();
    smmuv3::Threading threading = smmuv3::Threading::kSync;
    unsigned engines = 1;
    // The SMMU model's test oracle (stale-translation reports), on as every test wants it.
    bool oracle = true;
    // Connect the SMMU's wired interrupt outputs; without them a driver must use MSIs (which
    // needs smmu.msi).
    bool wired_irqs = true;
    // Engine i has StreamID first_stream_id + i.
    uint32_t first_stream_id = 0x10;
    Platform::Config machine = {};
  };

  // The SMMU's interrupts as firmware describes them: a wired line, or -1 for none.
  struct SmmuIrqs {
    int eventq = -1;
    int priq = -1;
    int gerror = -1;
    int cmdq_sync = -1;
    bool msi = false;  // the SMMU can signal by MSI (IDR0.MSI)
  };

  // -EINVAL for an SMMU Config the model rejects, an engine StreamID beyond the SMMU's SIDSIZE,
  // or more engines than interrupt lines; Platform::create's errors.
  static Result<std::unique_ptr<ArmPlatform>> create(const Config& config);
  static Result<std::unique_ptr<ArmPlatform>> create();
  // Engines first (their threads finish their jobs), then the SMMU, then the machine.
  ~ArmPlatform() = default;
  ArmPlatform(const ArmPlatform&) = delete;
  ArmPlatform& operator=(const ArmPlatform&) = delete;

  const Config& config() const { return config_; }

  // The machine.
  Platform& machine() { return *machine_; }
  PhysMem& mem() { return machine_->mem(); }
  SimDmaAllocator& dma() { return machine_->dma(); }
  SimInterruptController& irq() { return machine_->irq(); }

  // The SMMU, as a driver finds it.
  Mmio smmu_mmio() { return Mmio::model(smmu_->regs(), ::strata::smmuv3::kRegisterSpaceBytes); }
  const SmmuIrqs& smmu_irqs() const { return smmu_irqs_; }
  phys_addr_t smmu_base() const { return kSmmuBase; }
  // The model, for tests.
  smmuv3::Smmuv3& smmu() { return *smmu_; }

  // The engines.
  unsigned engine_count() const { return static_cast<unsigned>(engines_.size()); }
  dma_engine::DmaTestEngine& engine(unsigned i) { return *engines_.at(i); }
  uint32_t engine_stream_id(unsigned i) const { return engines_.at(i)->stream_id(); }
  Mmio engine_mmio(unsigned i) { return engines_.at(i)->mmio(); }
  int engine_irq(unsigned i) const { return engines_.at(i)->line(); }
  phys_addr_t engine_base(unsigned i) const { return kEngineBase + uint64_t{i} * kEngineStride; }

  // Waits until the SMMU's thread and every engine have nothing left to do (kAsync).
  void wait_idle();

  // The platform for a human: memory map, SMMU features and interrupts, engines.
  std::string describe() const;

 private:
  explicit ArmPlatform(const Config& config) : config_(config) {}

  const Config config_;
  SmmuIrqs smmu_irqs_;
  // Declared in the order they are built, so destroyed in reverse: the engines stop before the
  // port and SMMU they DMA through, and the SMMU before the memory and interrupt controller.
  std::unique_ptr<Platform> machine_;
  std::unique_ptr<smmuv3::Smmuv3> smmu_;
  std::unique_ptr<dma_engine::Smmuv3DmaPort> port_;
  std::vector<std::unique_ptr<dma_engine::DmaTestEngine>> engines_;
};

}  // namespace strata::sim
