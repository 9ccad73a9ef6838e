// SPDX-License-Identifier: MIT
// arm_smmu_v3_bench: the arm-smmu-v3 driver over the SMMUv3 model (the ArmSystem of
// arm_system.h, oracle off):
//
//   bench: smmuv3_dma_cycle_ns               one DMA-API cycle, strict mode (DomainType::dma):
//                                            iommu_dma_map_buffer of a 4 KiB buffer, a 4 KiB
//                                            FILL by DMA test engine 0, iommu_dma_unmap_buffer
//                                            (whose iotlb_sync waits for its CMD_SYNC)
//   bench: smmuv3_cmds_per_unmap             commands the driver writes to the Command queue per
//                                            iommu_unmap of a paging domain, CMD_SYNC included,
//                                            averaged over sizes from 4 KiB to 1 GiB
//   bench: smmuv3_cmdq_cmds_per_s_2threads   Command queue throughput, two threads submitting
//                                            CmdqBatches of 32 CMD_TLBI_NH_VA (+ one CMD_SYNC
//                                            each), the model consuming on its own thread
//
//   bazel run -c opt //testing/sim:arm_smmu_v3_bench
//
// The first two figures run the model and the engine synchronously (Threading::kSync: a job, and
// the Command queue up to PROD, are executed inside the register write that starts them), so a
// cycle is the driver's and the model's work on one thread, with no wake-up latency in it. The
// throughput figure needs a consumer that runs beside the producers, as an SMMU does, so it uses
// Threading::kAsync. Time figures are medians over several repetitions after a warm-up.
//
// Indented lines between the figures help read them: the cycle's parts timed alone, per unmap
// size the commands and the opcodes the model executed, and the throughput loop on one thread
// with the model consuming inline (kSync), i.e. without any scheduling between driver and model.
// Note that on a host with few CPUs the kAsync figure is bound by the scheduler: the model's
// consumer thread competes with the submitters, which spin while they wait for their CMD_SYNC.
//
// Every figure is checked: each FILL must complete and its buffer hold the pattern, a DMA to an
// unmapped IOVA must fault (strict mode really invalidated; before each measured unmap the
// engine touches both ends of the range so the TLB holds entries to invalidate), each unmap must
// unmap what was mapped, and the commands the threads counted must be what the driver's queue and
// the model counted. Any failure exits with status 1. TLB entries that an invalidation's TTL/TG
// hint did not describe (the model removes them, an SMMU need not: IHI 0070 4.4.1) are reported
// and fail the run.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "arch/dma.h"
#include "arch/smmuv3/cmd.h"
#include "core/dma-iommu/dma_iommu.h"
#include "core/group.h"
#include "core/iommu.h"
#include "drivers/iommu/arm/arm-smmu-v3/arm_smmu_v3.h"
#include "drivers/iommu/arm/arm-smmu-v3/cmdq.h"
#include "testing/bench/bench.h"
#include "testing/sim/arm_system.h"

namespace strata::sim {
namespace {

namespace hw = ::strata::smmuv3;
using arm_smmu_v3::ArmSmmuDomain;
using arm_smmu_v3::CmdqBatch;
using arm_smmu_v3::CmdqCounters;
using bench::Clock;
using bench::median;
using bench::ns_since;
using smmuv3::Threading;

// Figure 1.
constexpr unsigned kCyclesPerRep = 20000;
constexpr unsigned kReps = 7;
// Figure 2: each size in its own 1 GiB-aligned IOVA slot (above the MSI window at 0x0800_0000,
// a reserved region iommu_map refuses), all mapped onto RAM at its base.
constexpr uint64_t kUnmapIovaBase = uint64_t{1} << 32;
constexpr uint64_t kUnmapSlot = SZ_1G;
constexpr unsigned kUnmapRounds = 4;
const uint64_t kUnmapSizes[] = {
    SZ_4K, 2 * SZ_4K, 16 * SZ_4K, SZ_2M, 2 * SZ_2M + SZ_4K, 16 * SZ_2M, SZ_1G,
};
const char* const kUnmapSizeNames[] = {"4K", "8K", "64K", "2M", "4M+4K", "32M", "1G"};
// Figure 3.
constexpr unsigned kThreads = 2;
constexpr unsigned kCmdsPerBatch = 32;
constexpr auto kThroughputWindow = std::chrono::milliseconds(300);
constexpr unsigned kThroughputReps = 5;

constexpr int kOwnerCookie = 0;  // iommu_group_claim_dma_owner's owner: any unique address

[[noreturn]] void die(const char* what, long code = 0) {
  fprintf(stderr, "arm_smmu_v3_bench: %s (%ld)\n", what, code);
  exit(1);
}

std::unique_ptr<ArmSystem> make_system(Threading t) {
  ArmSystemConfig cfg;
  cfg.platform.threading = t;
  cfg.platform.oracle = false;  // the stale-translation oracle re-walks on every hit
  cfg.platform.engines = 1;
  auto r = ArmSystem::create(cfg);
  if (!r.ok()) die("ArmSystem::create failed", r.error().code());
  std::unique_ptr<ArmSystem> sys = r.release_value();
  Domain* d = iommu_get_dma_domain(sys->engine_dev(0));
  if (!d || d->type() != DomainType::dma) die("engine 0 is not in a strict DMA domain");
  return sys;
}

// ---- Figure 1: map + DMA + unmap ----

uint64_t pattern_of(uint64_t i) { return 0x5a5a'0000'0000'0000 ^ (i * 0x9e37'79b9'7f4a'7c15); }

// The timed loops; noinline so a profile shows exactly the work the figure times. Each cycle
// checks the first and last word of the buffer; a whole-buffer check follows each repetition.
[[gnu::noinline]] void dma_cycle_loop(ArmSystem& sys, const DmaBuffer& buf, uint64_t first,
                                      unsigned cycles) {
  Device& dev = sys.engine_dev(0);
  dma_engine::DmaTestEngine& engine = sys.engine(0);
  const uint64_t* words = buf.as<uint64_t>();
  for (unsigned i = 0; i < cycles; i++) {
    const uint64_t pattern = pattern_of(first + i);
    Result<dma_addr_t> iova =
        iommu_dma_map_buffer(dev, buf.phys(), SZ_4K, DmaDirection::from_device);
    if (!iova.ok()) die("iommu_dma_map_buffer failed", iova.error().code());
    const dma_engine::JobResult res = engine.fill(iova.value(), SZ_4K, pattern);
    if (!res.ok() || res.done != SZ_4K)
      die("the engine's FILL failed", static_cast<long>(first + i));
    iommu_dma_unmap_buffer(dev, iova.value(), SZ_4K, DmaDirection::from_device);
    if (words[0] != pattern || words[SZ_4K / 8 - 1] != pattern)
      die("the FILL did not reach memory", static_cast<long>(first + i));
  }
}

// The breakdown's parts: the DMA API alone, and the engine alone on an IOVA mapped once.
[[gnu::noinline]] void map_unmap_loop(ArmSystem& sys, const DmaBuffer& buf, unsigned cycles) {
  Device& dev = sys.engine_dev(0);
  for (unsigned i = 0; i < cycles; i++) {
    Result<dma_addr_t> iova =
        iommu_dma_map_buffer(dev, buf.phys(), SZ_4K, DmaDirection::from_device);
    if (!iova.ok()) die("iommu_dma_map_buffer failed", iova.error().code());
    iommu_dma_unmap_buffer(dev, iova.value(), SZ_4K, DmaDirection::from_device);
  }
}

[[gnu::noinline]] void fill_loop(ArmSystem& sys, dma_addr_t iova, uint64_t first, unsigned cycles) {
  for (unsigned i = 0; i < cycles; i++) {
    const dma_engine::JobResult res = sys.engine(0).fill(iova, SZ_4K, pattern_of(first + i));
    if (!res.ok() || res.done != SZ_4K)
      die("the engine's FILL failed", static_cast<long>(first + i));
  }
}

void check_filled(const DmaBuffer& buf, uint64_t pattern) {
  const uint64_t* words = buf.as<uint64_t>();
  for (size_t i = 0; i < SZ_4K / 8; i++)
    if (words[i] != pattern)
      die("the buffer does not hold the last FILL's pattern", static_cast<long>(i));
}

// The median ns per cycle of `loop(cycles)` over kReps repetitions, after one warm-up.
template <typename Loop>
double time_per_cycle(Loop loop) {
  loop(kCyclesPerRep);
  std::vector<double> results;
  for (unsigned rep = 0; rep < kReps; rep++) {
    const Clock::time_point start = Clock::now();
    loop(kCyclesPerRep);
    results.push_back(ns_since(start) / kCyclesPerRep);
  }
  return median(results);
}

struct DmaCycle {
  double cycle, map_unmap, fill;  // ns
};

DmaCycle dma_cycle_ns() {
  auto sys = make_system(Threading::kSync);
  auto b = DmaBuffer::alloc(sys->platform().dma(), SZ_4K, SZ_4K);
  if (!b.ok()) die("cannot allocate the buffer", b.error().code());
  const DmaBuffer buf = b.release_value();
  Device& dev = sys->engine_dev(0);

  uint64_t n = 0;
  const CmdqCounters before = sys->smmu().cmdq().counters();
  const double cycle = time_per_cycle([&](unsigned cycles) {
    dma_cycle_loop(*sys, buf, n, cycles);
    n += cycles;
    check_filled(buf, pattern_of(n - 1));
  });
  // Strict mode: every unmap waited for a CMD_SYNC of its own.
  const CmdqCounters after = sys->smmu().cmdq().counters();
  if (after.syncs - before.syncs < uint64_t{kReps + 1} * kCyclesPerRep)
    die("fewer CMD_SYNCs than strict unmaps", static_cast<long>(after.syncs - before.syncs));

  // ... and invalidated: the IOVA the last cycle used (the allocator hands it out again) is
  // gone from the TLB, so a DMA to it now faults and writes nothing.
  Result<dma_addr_t> iova = iommu_dma_map_buffer(dev, buf.phys(), SZ_4K, DmaDirection::from_device);
  if (!iova.ok()) die("iommu_dma_map_buffer failed", iova.error().code());
  if (!sys->engine(0).fill(iova.value(), SZ_4K, 1).ok()) die("the engine's FILL failed");
  iommu_dma_unmap_buffer(dev, iova.value(), SZ_4K, DmaDirection::from_device);
  const dma_engine::JobResult res = sys->engine(0).fill(iova.value(), SZ_4K, 2);
  if (res.ok() || res.done != 0) die("a DMA to an unmapped IOVA did not fault");
  check_filled(buf, 1);

  // The breakdown, for the reader: what the DMA API costs alone, and the engine alone.
  const double map_unmap =
      time_per_cycle([&](unsigned cycles) { map_unmap_loop(*sys, buf, cycles); });
  Result<dma_addr_t> fill_iova =
      iommu_dma_map_buffer(dev, buf.phys(), SZ_4K, DmaDirection::from_device);
  if (!fill_iova.ok()) die("iommu_dma_map_buffer failed", fill_iova.error().code());
  const double fill = time_per_cycle([&](unsigned cycles) {
    fill_loop(*sys, fill_iova.value(), n, cycles);
    n += cycles;
    check_filled(buf, pattern_of(n - 1));
  });
  iommu_dma_unmap_buffer(dev, fill_iova.value(), SZ_4K, DmaDirection::from_device);
  sys->flush_events();
  return {cycle, map_unmap, fill};
}

// ---- Figure 2: commands per unmap ----

// The Command queue's and the model's counts, before and after.
struct CmdCount {
  CmdqCounters cmdq;
  smmuv3::Smmuv3Counters model;
};

CmdCount count(ArmSystem& sys) { return {sys.smmu().cmdq().counters(), sys.model().counters()}; }

// The engine reads 8 bytes at `iova`: a TLB entry for the leaf that maps it, or a fault.
bool touch(ArmSystem& sys, uint64_t iova) { return sys.engine(0).checksum(iova, 8).ok(); }

// Each unmap is of a range mapped just before and whose first and last leaves the engine has
// just used (so the TLB holds entries the invalidation must remove: a DMA to either end after
// the unmap must fault). Prints, per size, the mean commands per unmap, what the model executed
// for the last one by opcode, and any TLB entries a TG/TTL hint did not describe
// (Smmuv3Counters::tlb_hint_mismatches: an SMMU may keep those, IHI 0070 4.4.1.2).
double cmds_per_unmap() {
  auto sys = make_system(Threading::kSync);
  Device& dev = sys->engine_dev(0);
  auto d = iommu_paging_domain_alloc(dev);
  if (!d.ok()) die("iommu_paging_domain_alloc failed", d.error().code());
  Box<Domain> domain = d.release_value();
  GroupRef group = iommu_group_get(dev);
  if (!group) die("engine 0 has no group");
  if (auto r = iommu_group_claim_dma_owner(*group, const_cast<int*>(&kOwnerCookie)); !r.ok())
    die("iommu_group_claim_dma_owner failed", r.error().code());
  if (auto r = iommu_attach_group(*domain, *group); !r.ok())
    die("iommu_attach_group failed", r.error().code());

  const phys_addr_t ram = sys->platform().config().machine.ram_base;
  uint64_t total_cmds = 0, unmaps = 0, total_mismatches = 0;
  for (size_t s = 0; s < std::size(kUnmapSizes); s++) {
    const uint64_t size = kUnmapSizes[s];
    const uint64_t iova = kUnmapIovaBase + s * kUnmapSlot;
    uint64_t cmds = 0, mismatches = 0;
    CmdCount before{}, after{};
    for (unsigned round = 0; round < kUnmapRounds; round++) {
      if (auto r = iommu_map(*domain, iova, ram, size, IOMMU_READ | IOMMU_WRITE); !r.ok())
        die("iommu_map failed", r.error().code());
      auto pa = iommu_iova_to_phys(*domain, iova + size - 1);
      if (!pa.ok() || pa.value() != ram + size - 1) die("iommu_iova_to_phys is wrong");
      if (!touch(*sys, iova) || !touch(*sys, iova + size - 8)) die("a DMA to a mapping faulted");
      before = count(*sys);
      auto r = iommu_unmap(*domain, iova, size);
      after = count(*sys);
      if (!r.ok() || r.value() != size) die("iommu_unmap did not unmap the range");
      if (touch(*sys, iova) || touch(*sys, iova + size - 8))
        die("a DMA to an unmapped range did not fault");
      cmds += (after.cmdq.commands - before.cmdq.commands) + (after.cmdq.syncs - before.cmdq.syncs);
      mismatches += after.model.tlb_hint_mismatches - before.model.tlb_hint_mismatches;
    }
    total_cmds += cmds;
    unmaps += kUnmapRounds;
    total_mismatches += mismatches;
    std::string ops;
    for (unsigned op = 0; op < 256; op++) {
      const uint64_t n = after.model.commands[op] - before.model.commands[op];
      if (n == 0) continue;
      const char* name = hw::opcode_name(static_cast<uint8_t>(op));
      ops += std::string(ops.empty() ? "" : ", ") + (name ? name : "?") + " x" + std::to_string(n);
    }
    printf("  unmap %-5s %.2f cmds (%s)", kUnmapSizeNames[s],
           static_cast<double>(cmds) / kUnmapRounds, ops.c_str());
    if (mismatches)
      printf("; %llu TLB entries invalidated that the TTL/TG hint did not describe",
             static_cast<unsigned long long>(mismatches));
    printf("\n");
  }
  // An SMMU may keep what a wrong hint does not describe (IHI 0070 4.4.1): a stale
  // translation on hardware, so a failure here.
  if (total_mismatches)
    die("TLB entries outside their invalidation's TTL/TG hint",
        static_cast<long>(total_mismatches));
  sys->flush_events();

  iommu_detach_group(*domain, *group);
  iommu_group_release_dma_owner(*group);
  return static_cast<double>(total_cmds) / static_cast<double>(unmaps);
}

// ---- Figure 3: Command queue throughput, two threads ----

// One thread's submissions until `stop`: batches of kCmdsPerBatch CMD_TLBI_NH_VA, distinct
// addresses, then submit() (one CMD_SYNC, waited for). Returns the commands submitted.
[[gnu::noinline]] uint64_t submit_loop(arm_smmu_v3::Cmdq& cmdq, uint16_t asid, unsigned thread,
                                       const std::atomic<bool>& stop) {
  uint64_t n = 0;
  const uint64_t base = (uint64_t{thread} + 1) << 32;
  while (!stop.load(std::memory_order_relaxed)) {
    CmdqBatch batch(cmdq);
    for (unsigned i = 0; i < kCmdsPerBatch; i++)
      batch.add(hw::CmdTlbi::make(hw::Opcode::CMD_TLBI_NH_VA)
                    .set<hw::CmdTlbi::ASID>(asid)
                    .set<hw::CmdTlbi::Leaf>(1)
                    .set<hw::CmdTlbi::Address>(base + ((n + i) % 4096) * SZ_4K));
    if (auto r = batch.submit(); !r.ok()) die("CmdqBatch::submit failed", r.error().code());
    n += kCmdsPerBatch;
  }
  return n;
}

// Commands (CMD_SYNCs not counted) per second, `threads` submitting for kThroughputWindow;
// the median of kThroughputReps after one warm-up. Checks that the driver's queue and the model
// counted exactly the commands submitted, and one CMD_SYNC per batch.
double cmdq_cmds_per_s(Threading threading, unsigned threads) {
  auto sys = make_system(threading);
  arm_smmu_v3::Cmdq& cmdq = sys->smmu().cmdq();
  const uint16_t asid =
      static_cast<ArmSmmuDomain*>(iommu_get_dma_domain(sys->engine_dev(0)))->asid();

  auto run = [&]() -> double {
    std::atomic<unsigned> ready{0};
    std::atomic<bool> go{false}, stop{false};
    std::vector<uint64_t> done(threads);
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; t++) {
      pool.emplace_back([&, t] {
        ready++;
        while (!go.load(std::memory_order_acquire)) {
        }
        done[t] = submit_loop(cmdq, asid, t, stop);
      });
    }
    while (ready.load() != threads) {
    }
    const CmdCount before = count(*sys);
    const Clock::time_point start = Clock::now();
    go.store(true, std::memory_order_release);
    std::this_thread::sleep_for(kThroughputWindow);
    stop.store(true, std::memory_order_relaxed);
    for (std::thread& th : pool) th.join();
    const double ns = ns_since(start);
    const CmdCount after = count(*sys);
    uint64_t total = 0;
    for (uint64_t n : done) total += n;
    // Every batch's CMD_SYNC completed, so the model has executed every command before it.
    const uint64_t tlbis = after.model.command(hw::Opcode::CMD_TLBI_NH_VA) -
                           before.model.command(hw::Opcode::CMD_TLBI_NH_VA);
    if (after.cmdq.commands - before.cmdq.commands != total || tlbis != total)
      die("the queue's or the model's command count differs from what was submitted");
    if (after.cmdq.syncs - before.cmdq.syncs != total / kCmdsPerBatch)
      die("not one CMD_SYNC per batch");
    return static_cast<double>(total) * 1e9 / ns;
  };

  run();  // warm-up
  std::vector<double> results;
  for (unsigned rep = 0; rep < kThroughputReps; rep++) results.push_back(run());
  const CmdqCounters c = cmdq.counters();
  if (c.timeouts != 0 || c.command_errors != 0 || c.failed_syncs != 0)
    die("the Command queue timed out or reported a command error");
  return median(results);
}

}  // namespace
}  // namespace strata::sim

int main() {
  using namespace strata::sim;
  printf(
      "arm_smmu_v3_bench: %s, %s build, compiler %s, %u CPUs; arm-smmu-v3 driver over the SMMUv3 "
      "model (oracle off); dma_cycle: median of %u x %u cycles, kSync; cmds_per_unmap: kSync, "
      "%u unmaps per size; cmdq: batches of %u CMD_TLBI_NH_VA + CMD_SYNC, median of %u x %lld "
      "ms, CMD_SYNCs not counted\n",
      strata::bench::cpu_model().c_str(), strata::bench::build_kind(), __VERSION__,
      std::thread::hardware_concurrency(), kReps, kCyclesPerRep, kUnmapRounds, kCmdsPerBatch,
      kThroughputReps, static_cast<long long>(kThroughputWindow.count()));
  fflush(stdout);
  const DmaCycle c = dma_cycle_ns();
  printf("bench: smmuv3_dma_cycle_ns %.1f ns\n", c.cycle);
  printf("  (the parts alone: map+unmap %.1f ns, the engine's 4 KiB FILL %.1f ns)\n", c.map_unmap,
         c.fill);
  fflush(stdout);
  const double cmds = cmds_per_unmap();
  printf("bench: smmuv3_cmds_per_unmap %.2f cmds\n", cmds);
  fflush(stdout);
  printf("bench: smmuv3_cmdq_cmds_per_s_2threads %.0f cmds/s\n",
         cmdq_cmds_per_s(Threading::kAsync, kThreads));
  fflush(stdout);
  // For the reader: the same loop on one thread with the model consuming inline (kSync), i.e.
  // the driver's and the model's work without any scheduling between them.
  printf("  (1 thread, kSync, model consuming inline: %.0f cmds/s)\n",
         cmdq_cmds_per_s(Threading::kSync, 1));
  return 0;
}
