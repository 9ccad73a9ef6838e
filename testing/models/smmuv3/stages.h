// SPDX-License-Identifier: MIT
// Which walks a configuration makes (IHI 0070 3.3, 3.4): from a ConfigResult that the lookup
// accepted to the walker call that translates one address, and the TLB tags its result carries.
//
//   CD used, stage 2 bypassed (STE.Config 0b101)      walk_s1                    TLB kind s1
//   CD used, stage 2 translating (0b111)              walk_s1 nested             TLB kind s12
//   no CD, stage 2 translating (0b110, or 0b111 with  walk_s1_bypass (IAS check)  TLB kind s2
//     S1DSS bypass)
//   no CD, no stage 2 (0b101 with S1DSS bypass)       none: the address is the output, after the
//                                                      IAS check of a bypassed stage 1 (3.4)
// STE.Config abort and bypass, and SMMUEN == 0, never get here (the caller handles them).
//
// The walks are the walker's, with hardware updates of the Access flag and dirty state as the
// CD/STE enable them, or, for the test oracle, without: a walk that must not write memory
// treats AF == 0 as 1 where HA would have set it and leaves a writable-clean descriptor
// read-only, so it reports what a cached entry should have been without changing anything.
#pragma once

#include <stdint.h>

#include "testing/models/platform/phys_mem.h"
#include "testing/models/smmuv3/stream.h"
#include "testing/models/smmuv3/tlb.h"
#include "testing/models/smmuv3/walk.h"

namespace strata::sim::smmuv3 {

struct StageWalk {
  Walk walk;                   // the result; for `bypassed`, tr.oa is the input address
  TlbContext ctx;              // the tags a TLB entry of it carries
  bool bypassed = false;       // no stage translated: nothing to cache
  const Stage1* s1 = nullptr;  // the stages that walked (into the ConfigResult)
  const Stage2* s2 = nullptr;
};

// The TLB tags of a configuration (see the table above), and whether it translates at all.
bool tlb_context(const ConfigResult& cfg, TlbContext& ctx);

// Translates `addr` with the stages `cfg` enables. `access` is after STE.PRIVCFG/INSTCFG.
StageWalk walk_stages(PhysMem& mem, const ConfigResult& cfg, uint64_t addr, Access access,
                      const Caps& caps, bool hw_updates = true);

// The stage 1 Address Size fault of an address a bypassed stage 1 cannot pass on (3.4: beyond
// the IAS with stage 2 translating, beyond the OAS when both stages bypass): CLASS IN, S2 == 0.
Fault bypass_addr_size_fault(uint64_t addr, Access access);

// A stage's configuration with hardware updates off, as walk_stages(hw_updates = false) uses.
Stage1 without_hw_updates(Stage1 s1);
Stage2 without_hw_updates(Stage2 s2);

}  // namespace strata::sim::smmuv3
