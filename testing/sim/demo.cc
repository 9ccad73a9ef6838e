// SPDX-License-Identifier: MIT
#include "testing/sim/demo.h"

#include <fmt/format.h>

#include <atomic>

#include "arch/dma.h"
#include "arch/irq.h"
#include "arch/lpae/pte.h"
#include "core/io-pgtable/io_pgtable.h"
#include "testing/models/platform/platform.h"

namespace strata::sim {
namespace {

// Collects the account and remembers whether any step misbehaved.
class Transcript {
 public:
  template <typename... Args>
  void say(fmt::format_string<Args...> f, Args&&... args) {
    fmt::format_to(std::back_inserter(text_), f, std::forward<Args>(args)...);
    text_ += '\n';
  }
  // A step's expectation; a failed one is marked in the account and fails the demo.
  void expect(bool ok, std::string_view what) {
    if (!ok) {
      say("  !! unexpected: {}", what);
      ok_ = false;
    }
  }
  bool ok() const { return ok_; }
  std::string take() { return std::move(text_); }

 private:
  std::string text_;
  bool ok_ = true;
};

struct IrqLog {
  Transcript* t;
  const char* name;
  std::atomic<int> hits{0};
};

void on_interrupt(void* ctx) {
  auto* log = static_cast<IrqLog*>(ctx);
  log->hits++;
  log->t->say("  -> handler '{}' ran", log->name);
}

}  // namespace

DemoReport run_demo() {
  DemoReport report;
  Transcript t;
  uint32_t msi_vector = 0;  // the vector the interrupt step was given

  t.say("== boot the simulated platform");
  auto created = Platform::create();
  if (!created.ok()) {
    t.say("platform creation failed: {}", created.error());
    report.transcript = t.take();
    return report;
  }
  std::unique_ptr<Platform> platform = created.release_value();
  Platform& p = *platform;
  t.say("{}", p.describe());

  {
    t.say("\n== DMA memory: what a driver allocates, a device reads by physical address");
    // A 2-level stream table's level-1 array is aligned to its size; 64 KiB shows that.
    auto table = DmaBuffer::alloc(p.dma(), 64 * 1024, 64 * 1024);
    auto queue = DmaBuffer::alloc(p.dma(), 4096, 4096);
    t.expect(table.ok() && queue.ok(), "DMA allocation failed");
    if (table.ok() && queue.ok()) {
      DmaBuffer tbl = table.release_value();
      DmaBuffer q = queue.release_value();
      t.say("table: {} bytes at phys {:#x} (aligned to {:#x}: {})", tbl.size(), tbl.phys(),
            64 * 1024, tbl.phys() % (64 * 1024) == 0 ? "yes" : "NO");
      t.expect(tbl.phys() % (64 * 1024) == 0, "table not aligned to its size");
      t.say("queue: {} bytes at phys {:#x}", q.size(), q.phys());

      // The CPU writes whole 64-bit words, as an entry writer does with a live descriptor.
      dma_write64(tbl.as<uint64_t>() + 0, 0x000000004000a00d);
      dma_write64(tbl.as<uint64_t>() + 3, 0x0000000012345000);
      tbl.sync_for_device(0, 64);
      t.say("CPU wrote word 0 = 0x000000004000a00d and word 3 = 0x0000000012345000");
      auto w0 = p.mem().read64(tbl.phys());
      auto w3 = p.mem().read64(tbl.phys() + 24);
      t.expect(w0.ok() && w3.ok(), "device read of the table faulted");
      if (w0.ok() && w3.ok()) {
        t.say("device read phys {:#x} = {:#018x}, phys {:#x} = {:#018x}", tbl.phys(), *w0,
              tbl.phys() + 24, *w3);
        t.expect(*w0 == 0x4000a00d && *w3 == 0x12345000, "device saw other bytes than the CPU");
      }
      // And the other way: the device writes a queue record, the CPU reads it.
      uint32_t record[4] = {0x10, 0x2a, 0xdead0000, 0x0};
      t.expect(p.mem().write(q.phys(), record, sizeof(record)).ok(), "device write faulted");
      q.sync_for_cpu(0, sizeof(record));
      t.say("device wrote a 16-byte record at {:#x}; CPU reads word 0 = {:#018x}", q.phys(),
            dma_read64(q.cpu()));
      t.expect(dma_read64(q.cpu()) == 0x0000002a00000010, "CPU saw other bytes than the device");
      t.say("live DMA allocations: {} ({} bytes)", p.dma().live_allocations(),
            p.dma().live_bytes());
    }
    t.say("after the buffers went out of scope: {} live allocations", p.dma().live_allocations());
    t.expect(p.dma().live_allocations() == 0, "DMA memory leaked");
  }

  {
    t.say("\n== allocation failure injection (what later layers' tests use)");
    p.dma().fail_nth(1);
    auto a = DmaBuffer::alloc(p.dma(), 4096, 4096);
    auto b = DmaBuffer::alloc(p.dma(), 4096, 4096);
    auto c = DmaBuffer::alloc(p.dma(), 4096, 4096);
    t.say("fail_nth(1): first {}, second {}, third {}", a.ok() ? "ok" : "failed",
          b.ok() ? "ok" : fmt::format("failed with {}", b.error()), c.ok() ? "ok" : "failed");
    t.expect(a.ok() && !b.ok() && b.error().code() == -ENOMEM && c.ok(),
             "failure injection did not fail exactly the second allocation");
  }

  {
    t.say("\n== interrupts: a wired line and an MSI written through the physical address space");
    IrqLog wired{&t, "gerror (wired line 5)"};
    IrqLog msi{&t, "eventq (MSI)"};
    auto line = Irq::request(p.irq(), 5, on_interrupt, &wired);
    auto vec = Irq::request_msi(p.irq(), on_interrupt, &msi);
    t.expect(line.ok() && vec.ok(), "interrupt hook-up failed");
    if (line.ok() && vec.ok()) {
      Irq l = line.release_value();
      Irq v = vec.release_value();
      t.say("device raises line 5");
      p.irq().raise(5);
      const MsiMsg msg = v.msi_msg();
      msi_vector = msg.data;
      t.say("MSI vector allocated: the device is to write {:#x} to {:#x}", msg.data, msg.address);
      t.say("device writes {:#x} to phys {:#x}", msg.data, msg.address);
      t.expect(p.mem().write32(msg.address, msg.data).ok(), "doorbell write faulted");
      t.expect(wired.hits == 1 && msi.hits == 1, "a handler did not run exactly once");
      v.reset();
      t.say("MSI freed; the device writes the doorbell again");
      t.expect(p.mem().write32(msg.address, msg.data).ok(), "doorbell write faulted");
      t.say("  -> no handler ran; counted as spurious ({} so far)", p.irq().spurious());
      t.expect(msi.hits == 1 && p.irq().spurious() == 1, "a freed MSI still ran its handler");
    }
  }

  {
    t.say("\n== bus faults: what a DMA master gets outside RAM");
    const uint64_t ram_end = p.mem().ram().back().base + p.mem().ram().back().size;
    auto hole = p.mem().read64(0x2000'0000);
    t.say("read64 at 0x20000000 (no RAM, no device): {}",
          hole.ok() ? "ok" : fmt::format("{}", hole.error()));
    t.expect(!hole.ok() && hole.error().code() == -EFAULT, "a read of a hole did not fault");
    char buf[16] = {};
    auto straddle = p.mem().write(ram_end - 8, buf, sizeof(buf));
    t.say("16-byte write at {:#x}, 8 bytes before the end of RAM: {}", ram_end - 8,
          straddle.ok() ? "ok" : fmt::format("{}", straddle.error()));
    t.expect(!straddle.ok() && straddle.error().code() == -EFAULT,
             "a write past the end of RAM did not fault");
  }

  {
    t.say("\n== io-pgtable: a stage-1 table in simulated RAM, as an SMMU would walk it");
    IoPgtableCfg cfg;
    cfg.pgsize_bitmap = SZ_4K | SZ_2M | SZ_1G;
    cfg.ias = cfg.oas = 48;
    cfg.dma = &p.dma();
    auto made = IoPgtable::alloc(IoPgtableFmt::arm_64_lpae_s1, cfg);
    t.expect(made.ok(), "io-pgtable allocation failed");
    if (made.ok()) {
      Box<IoPgtable> pt = made.release_value();
      t.say("TTB0 {:#x}, T0SZ {}, TG0 {} (4K), IPS {}, MAIR {:#x}", cfg.arm_lpae_s1.ttbr,
            cfg.arm_lpae_s1.t0sz, cfg.arm_lpae_s1.tg0, cfg.arm_lpae_s1.ips, cfg.arm_lpae_s1.mair);
      // A device's 16 KiB buffer, mapped at an IOVA of our choosing.
      DmaBuffer buffer = DmaBuffer::alloc(p.dma(), 4 * SZ_4K, SZ_4K).release_value();
      const uint64_t iova = 0x1234000;
      const phys_addr_t pa = buffer.phys();
      auto m = pt->map_pages(iova, pa, SZ_4K, 4, IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE);
      t.expect(m.ok() && m.value() == 4 * SZ_4K, "map of 4 pages failed");
      t.say("map_pages({:#x} -> {:#x}, 4 x 4K, RW cacheable): {} bytes", iova, pa,
            m.ok() ? m.value() : 0);
      // Walk it the way the SMMU will: by physical address from TTB0, through simulated RAM.
      uint64_t table = cfg.arm_lpae_s1.ttbr;
      for (unsigned level = 0; level <= 3; level++) {
        const uint64_t idx = (iova >> lpae::level_shift(12, level)) & 511;
        auto e = p.mem().read64(table + idx * 8);
        if (!e.ok()) break;
        lpae::S1Pte pte;
        pte.set_word(0, *e);
        t.say("  level {} [{:3}] {}", level, idx,
              level < 3 ? fmt::format("table -> {:#x}", *e & lpae::TablePte::NLTA::kMask)
                        : fmt::format("{}", pte));
        table = *e & lpae::TablePte::NLTA::kMask;
      }
      auto phys = pt->iova_to_phys(iova + 0x1abc);
      t.say("iova_to_phys({:#x}) = {:#x}", iova + 0x1abc, phys.ok() ? *phys : 0);
      t.expect(phys.ok() && *phys == pa + 0x1abc, "lookup disagrees with the mapping");

      IotlbGather gather;
      auto u = pt->unmap_pages(iova, SZ_4K, 4, gather);
      t.say("unmap_pages: {} bytes; gather [{:#x}, {:#x}] granule {:#x}, {} invalidation",
            u.ok() ? u.value() : 0, gather.start(), gather.end(), gather.granule(),
            gather.leaf_only() ? "leaf-only" : "leaf + walk-cache");
      t.expect(u.ok() && gather.leaf_only(), "page unmap needed more than a leaf invalidation");
      gather.reset();
      // Unmapping the 2M around it at block size removes the now-empty leaf table: walk
      // caches must go too, and the page is freed only after that invalidation.
      auto b = pt->unmap_pages(iova & ~(SZ_2M - 1), SZ_2M, 1, gather);
      t.say("unmap at 2M over the leaf table: {} bytes, {} invalidation, table freed after it",
            b.ok() ? b.value() : 0, gather.leaf_only() ? "leaf-only" : "leaf + walk-cache");
      t.expect(b.ok() && !gather.leaf_only(), "removing a table did not ask for a walk flush");
      gather.release_freelist();
    }
  }

  report.dma_allocations = p.dma().total_allocations();
  report.live_dma_allocations = p.dma().live_allocations();
  report.interrupts_delivered = p.irq().delivered(5) + p.irq().msi_delivered(msi_vector);
  report.spurious_interrupts = p.irq().spurious();
  report.bus_faults = p.mem().faults();
  t.say("\n== summary");
  t.say("DMA allocations: {} made, {} live", report.dma_allocations, report.live_dma_allocations);
  t.say("interrupts: {} delivered, {} spurious", report.interrupts_delivered,
        report.spurious_interrupts);
  t.say("bus faults: {}", report.bus_faults);
  t.say("result: {}", t.ok() ? "every step behaved as specified" : "UNEXPECTED BEHAVIOUR");
  report.ok = t.ok();
  report.transcript = t.take();
  return report;
}

}  // namespace strata::sim
