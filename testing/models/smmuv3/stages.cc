// SPDX-License-Identifier: MIT
#include "testing/models/smmuv3/stages.h"

#include "arch/bug.h"

namespace strata::sim::smmuv3 {

Stage1 without_hw_updates(Stage1 s1) {
  if (s1.ha) s1.affd = true;  // HA would have set AF: the access goes ahead
  s1.ha = s1.hd = false;
  return s1;
}

Stage2 without_hw_updates(Stage2 s2) {
  if (s2.ha) s2.affd = true;
  s2.ha = s2.hd = false;
  return s2;
}

Fault bypass_addr_size_fault(uint64_t addr, Access access) {
  Fault f;
  f.type = FaultType::addr_size;
  f.stage = 1;
  f.cls = FaultClass::in;
  f.RnW = !access.write;
  f.InD = access.instr && !access.write;
  f.PnU = access.priv;
  f.input_addr = addr;
  return f;
}

bool tlb_context(const ConfigResult& cfg, TlbContext& ctx) {
  STRATA_BUG_ON(!cfg.ok() || !cfg.ste);
  const StreamConfig& ste = *cfg.ste;
  ctx.world = ste.world;
  ctx.vmid = ste.S2VMID;
  if (cfg.cd) {
    ctx.kind = ste.stage2() ? TlbKind::s12 : TlbKind::s1;
    ctx.asid = cfg.cd->ASID;
    ctx.aset = cfg.cd->ASET;
    return true;
  }
  ctx.kind = TlbKind::s2;
  ctx.asid = 0;
  ctx.aset = false;
  return ste.stage2();
}

StageWalk walk_stages(PhysMem& mem, const ConfigResult& cfg, uint64_t addr, Access access,
                      const Caps& caps, bool hw_updates) {
  StageWalk w;
  const StreamConfig& ste = *cfg.ste;
  const bool translates = tlb_context(cfg, w.ctx);
  if (!translates) {
    // Stage 1 bypassed by S1DSS and no stage 2: the address is checked against the IAS
    // (3.4: a stage 1 Address Size fault) and output as it is.
    w.bypassed = true;
    if (addr >> caps.ias_bits()) {
      w.walk.fault = bypass_addr_size_fault(addr, access);
      return w;
    }
    w.walk.tr.oa = w.walk.tr.ipa = addr;
    w.walk.tr.size_log2 = 12;
    return w;
  }

  Stage1 s1_copy;
  Stage2 s2_copy;
  const Stage2* s2 = nullptr;
  if (ste.stage2()) {
    s2_copy = hw_updates ? ste.s2 : without_hw_updates(ste.s2);
    s2 = &s2_copy;
  }
  if (cfg.cd) {
    s1_copy = hw_updates ? cfg.cd->s1 : without_hw_updates(cfg.cd->s1);
    w.walk = walk_s1(mem, s1_copy, addr, access, s2);
    w.s1 = &cfg.cd->s1;
    w.s2 = s2 ? &ste.s2 : nullptr;
  } else {
    w.walk = walk_s1_bypass(mem, *s2, addr, access, caps.ias_bits());
    w.s2 = &ste.s2;
  }
  return w;
}

}  // namespace strata::sim::smmuv3
