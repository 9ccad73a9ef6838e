// SPDX-License-Identifier: MIT
// The assembled SMMUv3 model under concurrency: DMA from several threads into a stage-1 and a
// nested stream while the command queue invalidates every cache (the model thread in kAsync,
// the submitting thread in kSync). Run under ThreadSanitizer: the caches are shared between the
// command thread and the DMA threads. The tables never change, so every transfer must succeed,
// read back what it wrote, and the oracle must stay quiet.
#include "testing/models/smmuv3/smmuv3.h"

#include <string.h>

#include <atomic>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "arch/smmuv3/cmd.h"
#include "testing/models/smmuv3/smmuv3_harness.h"

namespace strata::sim::smmuv3 {
namespace {

using arch::Opcode;
using test::data_ipa;
using test::data_pa;
using test::Machine;
using test::tlbi;

constexpr unsigned kPages = 16;
constexpr uint64_t kS1Va = 0x100'0000;
constexpr uint64_t kNestedVa = 0x7000'0000;

TEST_CASE("DMA from three threads while invalidations run") {
  for (Threading mode : test::kModes) {
    CAPTURE(name(mode));
    Machine m(mode);
    m.start();
    // StreamID 3: stage 1, VMID 0, data pages 0-15.
    const uint64_t root = m.new_s1_root();
    for (unsigned i = 0; i < kPages; ++i) m.map_s1(root, kS1Va + i * 4096, data_pa(i));
    m.set_ste(3, test::s1_ste(m.new_cd(test::make_cd(5, root))));
    // StreamID 5: nested, VMID 9, data pages 16-31 behind stage 2.
    const uint64_t s2 = m.new_s2_root();
    const uint64_t groot = m.new_guest_s1_root();
    for (unsigned i = 0; i < kPages; ++i) {
      m.map_s2(s2, data_ipa(kPages + i), data_pa(kPages + i));
      m.map_guest_s1(groot, kNestedVa + i * 4096, data_ipa(kPages + i));
    }
    const uint64_t cd = m.new_guest_cd(test::make_cd(1, groot));
    m.set_ste(5, test::with_s2(test::s1_ste(cd), s2, arch::kConfigNested, 9));

    std::atomic<bool> stop{false};
    std::atomic<int> failures{0};
    std::atomic<uint64_t> transfers{0};
    auto dma_loop = [&](uint32_t sid, uint64_t va, uint8_t seed) {
      std::vector<uint8_t> out(2 * 4096 + 300), in(out.size());
      for (unsigned iter = 0; !stop.load(); ++iter) {
        for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(seed + iter + i);
        const uint64_t off = (uint64_t{iter} * 808) % (kPages * 4096 - out.size());
        if (!m.model().dma_write(sid, false, 0, va + off, out.data(), out.size()).ok()) failures++;
        if (!m.model().dma_read(sid, false, 0, va + off, in.data(), in.size()).ok()) failures++;
        if (memcmp(in.data(), out.data(), out.size()) != 0) failures++;
        transfers++;
      }
    };
    // A third thread translates both streams, page by page, without touching memory.
    auto translate_loop = [&] {
      for (unsigned iter = 0; !stop.load(); ++iter) {
        const unsigned i = iter % kPages;
        const Translated a = m.model().translate(3, false, 0, kS1Va + i * 4096, Access{});
        const Translated b = m.model().translate(5, false, 0, kNestedVa + i * 4096, Access{});
        if (!a.ok() || a.pa != data_pa(i)) failures++;
        if (!b.ok() || b.pa != data_pa(kPages + i)) failures++;
      }
    };
    std::thread t1(dma_loop, 3, kS1Va, 1);
    std::thread t2(dma_loop, 5, kNestedVa, 101);
    std::thread t3(translate_loop);

    for (int round = 0; round < 100; ++round) {
      m.issue(tlbi(Opcode::CMD_TLBI_NH_VA, 0, 5, kS1Va + (round % kPages) * 4096));
      m.issue(tlbi(Opcode::CMD_TLBI_NH_ALL, 9), test::cfgi_cd(5, 0));
      m.issue(test::cfgi_ste(3), tlbi(Opcode::CMD_TLBI_S12_VMALL, 9));
      m.issue(test::cfgi_all(), tlbi(Opcode::CMD_TLBI_NSNH_ALL));
      if (round % 10 == 0) std::this_thread::yield();
    }
    // Let the threads run on the refilled caches for a while too.
    while (transfers.load() < 200) std::this_thread::yield();
    stop = true;
    t1.join();
    t2.join();
    t3.join();

    CHECK(failures.load() == 0);
    CHECK(m.model().stale_reports().empty());
    CHECK(m.events().empty());
    const Smmuv3Counters c = m.model().counters();
    CHECK(c.terminated == 0);
    CHECK(c.command(Opcode::CMD_SYNC) == 400);
    CHECK(c.tlb_hits > 0);
    CHECK(c.walks > 0);
  }
}

TEST_CASE("a CMD_SYNC waits for DMA in flight, and DMA waits for the CMD_SYNC") {
  // Many short transfers against a stream of CMD_SYNCs: every transfer completes, every
  // CMD_SYNC completes (no lost wake-up in the gate between them).
  Machine m(Threading::kAsync);
  m.start();
  m.set_ste(3, test::bypass_ste());
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> done{0};
  std::thread dma([&] {
    uint64_t v = 0;
    while (!stop.load()) {
      if (m.model().dma_write(3, false, 0, data_pa(0), &v, sizeof(v)).ok()) done++;
      ++v;
    }
  });
  for (int i = 0; i < 500; ++i) m.issue(test::sync_cmd());
  while (done.load() < 100) std::this_thread::yield();
  stop = true;
  dma.join();
  CHECK(m.model().counters().command(Opcode::CMD_SYNC) == 1000);
}

}  // namespace
}  // namespace strata::sim::smmuv3
