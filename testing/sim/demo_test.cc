// SPDX-License-Identifier: MIT
// The main job is tested like everything else: it must succeed, and say what happened.
#include "testing/sim/demo.h"

#include <doctest/doctest.h>

namespace strata::sim {
namespace {

bool says(const DemoReport& r, const char* line) {
  return r.transcript.find(line) != std::string::npos;
}

TEST_CASE("the demo boots the platform and every step behaves") {
  DemoReport r = run_demo();
  INFO(r.transcript);
  CHECK(r.ok);
  CHECK(says(r, "== boot the simulated platform"));
  CHECK(says(r, "device read phys 0x"));
  CHECK(says(r, "= 0x000000004000a00d"));
  CHECK(says(r, "fail_nth(1): first ok, second failed with -ENOMEM, third ok"));
  CHECK(says(r, "-> handler 'gerror (wired line 5)' ran"));
  CHECK(says(r, "-> handler 'eventq (MSI)' ran"));
  CHECK(says(r, "read64 at 0x20000000 (no RAM, no device): -EFAULT"));
  CHECK(says(r, "TTB0 0x"));
  CHECK(says(r, "level 3 ["));
  CHECK(says(r, "{Type=0x3 AttrIndx=0x1 AP=0x1 SH=0x3 AF nG OA=0x"));
  CHECK(says(r, "granule 0x1000, leaf-only invalidation"));
  CHECK(says(r, "leaf + walk-cache invalidation, table freed after it"));
  CHECK(says(r, "result: every step behaved as specified"));
  CHECK_FALSE(says(r, "!! unexpected"));
  // 2 in the DMA step, 2 successful in the injection step, and for io-pgtable the root, three
  // tables below it and the mapped buffer.
  CHECK(r.dma_allocations == 9);
  CHECK(r.live_dma_allocations == 0);
  CHECK(r.interrupts_delivered == 2);
  CHECK(r.spurious_interrupts == 1);
  CHECK(r.bus_faults == 2);
}

}  // namespace
}  // namespace strata::sim
