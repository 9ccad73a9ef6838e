// SPDX-License-Identifier: MIT
#include "testing/models/smmuv3/config.h"

namespace strata::sim::smmuv3 {

namespace arch = ::strata::smmuv3;

// The rules below are the ID register field descriptions' (IHI 0070 6.3.1-6.3.6), plus what the
// model's own code implements. Section references are to those descriptions.
const char* Config::invalid_reason() const {
  if (version > 2) return "the model implements SMMUv3.0 to SMMUv3.2";
  if (!s1p && !s2p) return "neither stage 1 nor stage 2";
  // IDR0.
  if (httu > arch::kHttuAccessDirty)
    return "HTTU 0b11 (AF in table descriptors) is not implemented";
  if (stall_model > arch::kStallModelStallForced) return "STALL_MODEL 0b11 is Reserved";
  if (hyp && !(s1p && s2p)) return "Hyp is RES0 unless S1P and S2P";
  if (version >= 2 && s1p && s2p && !hyp) return "Hyp is mandatory with both stages in v3.2";
  if (vmw && !s2p) return "VMW is RES0 without S2P";
  if (pri && !ats) return "PRI is RES0 without ATS";
  if (split_stage_ats && !(ats && s1p && s2p)) return "split-stage ATS needs ATS, S1P and S2P";
  // IDR1.
  if (sidsize > 32) return "SIDSIZE above 32";
  if (ssidsize > 20) return "SSIDSIZE above 20";
  if (cmdqs > arch::kMaxQueueLog2Size || eventqs > arch::kMaxQueueLog2Size ||
      priqs > arch::kMaxQueueLog2Size)
    return "a queue larger than 2^19 entries";
  // IDR3.
  if (version >= 1 && s1p && !had) return "HAD is mandatory with S1P from v3.1";
  if (version >= 1 && s2p && !xnx) return "XNX is mandatory with S2P from v3.1";
  if (version == 0 && xnx) return "XNX is RES0 in v3.0";
  if (!s1p && had) return "HAD is 0 without S1P";
  if (!s2p && (xnx || fwb || ptwnnc)) return "XNX, FWB and PTWNNC are RES0 without S2P";
  if (version >= 2 && !ril) return "RIL is 1 in v3.2 and later";
  if (version >= 2 && s2p && !fwb) return "FWB is 1 in v3.2 and later";
  if (bbml > 2) return "BBML 0b11 is Reserved";
  if (version >= 2 && bbml == 0) return "BBML is 1 or 2 in v3.2 and later";
  if (pps && !(pri && ssidsize > 0)) return "PPS is RES0 without PRI and substreams";
  // IDR5.
  if (!gran4k && !gran16k && !gran64k) return "no translation granule";
  if (oas > arch::kAddrSize52) return "OAS of 56 bits needs D128 (not implemented)";
  if (oas == arch::kAddrSize52 && version == 0) return "OAS 52 bits is Reserved in v3.0";
  if (oas == arch::kAddrSize52 && !gran64k) return "OAS 52 bits needs GRAN64K (no DS, no D128)";
  if (vax > arch::kVax52) return "VAX 56 bits needs D128 (not implemented)";
  if (vax == arch::kVax52 && version == 0) return "VAX is RES0 in v3.0";
  if (vax == arch::kVax52 && !gran64k) return "VAX 52 bits needs GRAN64K (no DS)";
  if (stall_max > 0xffff) return "STALL_MAX does not fit 16 bits";
  // IIDR.
  if (iidr_implementer > 0xfff || iidr_product > 0xfff || iidr_variant > 0xf || iidr_revision > 0xf)
    return "an IIDR field does not fit";
  return nullptr;
}

Result<void> Config::validate() const {
  if (invalid_reason()) return Error(-EINVAL);
  return ok();
}

Config Config::smmuv3_0() {
  Config c;
  c.version = 0;
  c.asid16 = false;
  c.vmid16 = false;
  c.hyp = false;
  c.ats = false;
  c.pri = false;
  c.httu = arch::kHttuNone;
  c.had = false;
  c.xnx = false;
  c.fwb = false;
  c.ril = false;
  c.bbml = 0;
  return c;
}

Config Config::stage1_only() {
  Config c;
  c.s2p = false;
  c.hyp = false;
  c.xnx = false;
  c.fwb = false;
  return c;
}

Config Config::stage2_only() {
  Config c;
  c.s1p = false;
  c.hyp = false;
  c.had = false;
  c.cd2l = false;
  return c;
}

}  // namespace strata::sim::smmuv3
