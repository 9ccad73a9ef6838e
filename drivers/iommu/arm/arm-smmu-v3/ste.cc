// SPDX-License-Identifier: MIT
#include "drivers/iommu/arm/arm-smmu-v3/ste.h"

#include "arch/bug.h"
#include "arch/errno.h"
#include "arch/smmuv3/defs.h"

namespace strata::arm_smmu_v3 {

using smmuv3::STE;

namespace {

// The value of field F in an STE given as CPU-order words.
template <typename F>
uint64_t field(const uint64_t* ste) {
  return F::extract(ste[F::kWord]);
}

// Marks fields as used.
template <typename... Fs>
void use(uint64_t* used) {
  ((used[Fs::kWord] |= Fs::kMask), ...);
}

// log2 of the alignment 5.2 S1Fmt requires of S1ContextPtr: the bits below it are RES0.
unsigned cdtab_align_log2(unsigned s1cdmax, uint64_t s1fmt) {
  if (s1cdmax == 0) return 6;  // one 64-byte CD
  switch (s1fmt) {
    // 4KB leaves of 64 CDs: an L1 table of 2^(S1CDMax - 6) 8-byte L1CDs, aligned to its size
    // or 64 bytes ("S1ContextPtr[S1CDMax - 4:6] are RES0" when S1CDMax > 9).
    case smmuv3::kS1Fmt4KL2: return s1cdmax > 9 ? s1cdmax - 3 : 6;
    // 64KB leaves of 1024 CDs ("S1ContextPtr[S1CDMax - 8:6] are RES0" when S1CDMax > 13).
    case smmuv3::kS1Fmt64KL2: return s1cdmax > 13 ? s1cdmax - 7 : 6;
    // Linear: 2^S1CDMax CDs, aligned to the table's size ("S1ContextPtr[S1CDMax + 5:6]").
    default: return s1cdmax + 6;
  }
}

bool is_2level(uint64_t s1fmt) {
  return s1fmt == smmuv3::kS1Fmt4KL2 || s1fmt == smmuv3::kS1Fmt64KL2;
}

// CD fetch attributes (5.2 S1CIR/S1COR/S1CSH).
void set_cd_fetch_attrs(STE& ste, const SteFeatures& f) {
  if (f.coherent) {
    ste.set<STE::S1CIR>(smmuv3::kS1cWbRa)
        .set<STE::S1COR>(smmuv3::kS1cWbRa)
        .set<STE::S1CSH>(smmuv3::kShIsh);
  } else {
    // Non-cacheable fetches are Outer Shareable whatever S1CSH says (5.2 S1CSH note).
    ste.set<STE::S1CIR>(smmuv3::kS1cNc)
        .set<STE::S1COR>(smmuv3::kS1cNc)
        .set<STE::S1CSH>(smmuv3::kShOsh);
  }
}

// The CD table fields of a stage-1 STE (S1ContextPtr, S1CDMax and, with substreams, S1Fmt and
// S1DSS), already checked.
void set_cd_table(STE& ste, uint64_t ptr, unsigned s1cdmax, uint64_t s1fmt, uint64_t s1dss) {
  ste.set<STE::S1ContextPtr>(ptr).set<STE::S1CDMax>(s1cdmax);
  if (s1cdmax != 0) ste.set<STE::S1Fmt>(s1fmt).set<STE::S1DSS>(s1dss);
}

// SHCFG "use incoming" where the STE's SHCFG applies (see ste_get_used) and exists.
void set_shcfg_incoming(STE& ste, const SteFeatures& f) {
  if (f.attr_types_ovr) ste.set<STE::SHCFG>(smmuv3::kShcfgIncoming);
}

// The stage-2 fields shared by the stage-2 and nested STEs.
void set_s2(STE& ste, const IoPgtableCfg& cfg, const SteS2Domain& p) {
  const auto& s2 = cfg.arm_lpae_s2;
  // S2HD without S2HA is Reserved (5.2 S2HA); EATS 0b01 with S2S is ILLEGAL when stage 2
  // translates (5.2 EATS). Both are driver bugs.
  STRATA_BUG_ON(p.s2hd && !p.s2ha);
  STRATA_BUG_ON(p.ats && p.s2s);
  ste.set<STE::S2VMID>(p.vmid)
      .set<STE::S2T0SZ>(s2.t0sz)
      .set<STE::S2SL0>(s2.sl0)
      .set<STE::S2IR0>(s2.irgn)
      .set<STE::S2OR0>(s2.orgn)
      .set<STE::S2SH0>(s2.sh)
      .set<STE::S2TG>(s2.tg)
      .set<STE::S2PS>(s2.ps)
      .set<STE::S2AA64>(1)  // VMSAv8-64; S2ENDI stays 0: io-pgtable writes little-endian
      .set<STE::S2HA>(p.s2ha)
      .set<STE::S2HD>(p.s2hd)
      .set<STE::S2S>(p.s2s)
      .set<STE::S2R>(p.s2r)
      .set<STE::S2TTB>(s2.vttbr);
  // S2AFFD is IGNORED when S2HA == 1 (5.2 S2AFFD).
  if (p.s2affd && !p.s2ha) ste.set<STE::S2AFFD>(1);
  if (p.s2fwb) ste.set<STE::S2FWB>(1);
  if (p.ats) ste.set<STE::EATS>(smmuv3::kEatsTrans);
}

}  // namespace

// The rules, field by field (IHI 0070 5.2; 5.2.1 for the STE as a whole; 5.2.2's SteIllegal
// pseudocode for which fields the SMMU checks; 13.5 for the attribute overrides).
void ste_get_used(const uint64_t* ste, uint64_t* used) {
  for (unsigned i = 0; i < STE::kWords; i++) used[i] = 0;

  // 5.2 V: "0b0: Structure contents are invalid. Other STE fields are IGNORED."
  use<STE::V>(used);
  if (!field<STE::V>(ste)) return;
  use<STE::Config>(used);
  const uint64_t config = field<STE::Config>(ste);

  // CONT is a hint about neighbouring STEs that may be obeyed in every valid STE, even with
  // Config == 0b000 (5.2.1: "the CONT field is permitted to be obeyed").
  use<STE::CONT>(used);

  // 5.2.1: with Config == 0b000 (and the Reserved 0b001-0b011 that behave as it, 5.2 Config)
  // "the remaining fields contain no relevant configuration and are IGNORED".
  if (!(config & 0b100)) return;

  const bool s1 = config & 0b001;  // stage 1 translates (Config 0b1x1)
  const bool s2 = config & 0b010;  // stage 2 translates (Config 0b11x)

  // Fields for any traffic that passes, bypassed or translated:
  //  - MTCFG, ALLOCCFG (and MemAttr when MTCFG == 1: "If MTCFG == 0 ... this field is RES0"):
  //    13.5 uses STE.{MemAttr, MTCFG} and ALLOCCFG for bypass, for stage 2 only, and for
  //    stage 1 (whether the input to stage 1 is Device or Non-cacheable decides RA/WA/TR).
  //  - PRIVCFG, INSTCFG: override the incoming attributes before any stage sees them (13.1.2).
  //    NSCFG is IGNORED in the Non-secure Stream table (5.2 NSCFG): never used here.
  //  - MEV: events can come from bypassed streams too (C_BAD_SUBSTREAMID, F_BAD_ATS_TREQ).
  //  - PPAR: PRI auto-responses, no configuration rule ignores it (IGNORED only if IDR3.PPS).
  //  - PARTID, PMG: MPAM IDs of the stream's accesses (RES0 without MPAM).
  use<STE::MTCFG, STE::ALLOCCFG, STE::PRIVCFG, STE::INSTCFG, STE::MEV, STE::PPAR, STE::PARTID,
      STE::PMG>(used);
  if (field<STE::MTCFG>(ste)) use<STE::MemAttr>(used);

  // SHCFG: 13.5 takes Shareability from STE.SHCFG for bypass and for stage 2 only, from the
  // stage-1 descriptors whenever stage 1 translates. Stage 1 is skipped "as though
  // STE.Config == 0b1x0" for traffic without a SubstreamID when S1DSS == 0b01 (5.2 S1DSS),
  // so then SHCFG applies to that traffic.
  const unsigned s1cdmax = s1 ? static_cast<unsigned>(field<STE::S1CDMax>(ste)) : 0;
  const bool dss_bypass = s1cdmax != 0 && field<STE::S1DSS>(ste) == smmuv3::kS1dssBypass;
  if (!s1 || dss_bypass) use<STE::SHCFG>(used);

  if (s1 || s2) {
    // EATS "is IGNORED if ... STE.Config[1:0] == 0b00" (5.2 EATS; Config 0b100 makes it
    // effectively 0b00).
    use<STE::EATS>(used);
    // DRE and DCP apply to "transactions that go through at least one stage of translation"
    // (5.2 DRE, DCP); with both stages bypassed they are permitted regardless.
    use<STE::DRE, STE::DCP>(used);
    // DPT_VMATCH: "If ... STE.EATS != 0b11, then this field is RES0".
    const uint64_t eats = field<STE::EATS>(ste);
    if (eats == smmuv3::kEatsDpt) use<STE::DPT_VMATCH>(used);
    // S2S without stage 2: "the validity check of STE.EATS might assert that STE.S2S == 0 even
    // if stage 2 is in bypass. That is STE.S2S is not IGNORED" (5.2 V note): EATS 0b10 is
    // ILLEGAL with S2S == 1 whatever the Config, and so is EATS 0b01 in SMMUv3.0 (the
    // CONSTRAINED UNPREDICTABLE case of 5.2 EATS). With stage 2 it is used below.
    if (!s2 && (eats == smmuv3::kEatsTrans || eats == smmuv3::kEatsS1Chk)) use<STE::S2S>(used);
  }

  // STRW is used only for stage 1 only (IgnoreSTESTRW, 5.2.2: ignored with stage 2 enabled
  // and for bypass).
  if (config == 0b101) use<STE::STRW>(used);

  // S2VMID tags the TLB entries of NS-EL1 translations at either stage (5.2 S2VMID); it is
  // IGNORED for bypass and when the StreamWorld is not NS-EL1, i.e. stage 1 only with
  // STRW != 0b00 (IgnoreSTES2VMID, 5.2.2).
  if ((s1 || s2) && !(config == 0b101 && field<STE::STRW>(ste) != 0)) use<STE::S2VMID>(used);

  if (s1) {
    // "All fields with an S1 prefix are IGNORED when stage 1 bypasses translation" (5.2 V):
    // used whenever stage 1 translates. S1DSS and S1Fmt are also IGNORED when S1CDMax == 0
    // ("substreams disabled": S1ContextPtr points to one CD).
    use<STE::S1ContextPtr, STE::S1CDMax, STE::S1CIR, STE::S1COR, STE::S1CSH, STE::S1STALLD,
        STE::S1PIE, STE::S1MPAM>(used);
    if (s1cdmax != 0) use<STE::S1Fmt, STE::S1DSS>(used);
  }

  // VMSPtr: enabled only for Config 0b111 with S1MPAM == 1 ("If the VMSPtr is not enabled,
  // then VMSPtr is IGNORED", 5.2 VMSPtr).
  if (config == 0b111 && field<STE::S1MPAM>(ste)) use<STE::VMSPtr>(used);

  if (s2) {
    // "All fields with an S2 prefix (with the exception of S2VMID) are IGNORED when stage 2
    // bypasses translation" (5.2 V), and the stage-2 controls without the prefix with them
    // (AssuredOnly, TL0, TL1 are VTCR_EL2 fields, cached in the TLB with stage 2's, 5.2.1).
    use<STE::S2HWU59, STE::S2HWU60, STE::S2HWU61, STE::S2HWU62, STE::S2FWB, STE::S2T0SZ, STE::S2SL0,
        STE::S2IR0, STE::S2OR0, STE::S2SH0, STE::S2TG, STE::S2PS, STE::S2AA64, STE::S2ENDI,
        STE::S2HD, STE::S2HA, STE::S2S, STE::S2R, STE::S2HAFT, STE::S2PIE, STE::S2POE, STE::S2TTB,
        STE::AssuredOnly, STE::TL0, STE::TL1>(used);
    // S2AFFD: "When STE.S2HA == 1, this flag is IGNORED".
    if (!field<STE::S2HA>(ste)) use<STE::S2AFFD>(used);
    // S2PTW: "If STE.Config[1:0] != 0b11, this field is IGNORED" (it concerns stage-1 walks
    // and CD fetches through stage 2).
    if (config == 0b111) use<STE::S2PTW>(used);
    // S2SL0_2 and S2DS are RES0 unless S2AA64 selects VMSAv8-64; S2SKL is RES0 when it does
    // (it exists for VMSAv9-128 only).
    if (field<STE::S2AA64>(ste))
      use<STE::S2SL0_2, STE::S2DS>(used);
    else
      use<STE::S2SKL>(used);
    // S2POI: RES0 when "STE.S2POE is 0".
    if (field<STE::S2POE>(ste)) use<STE::S2POI>(used);
  }

  // Never used in a Non-secure STE: SW_RESERVED ("IGNORED by the SMMU"), NSCFG (above), the
  // IMPLEMENTATION DEFINED bits (strata programs none), the Reserved bits, and the Secure or
  // Realm fields, RES0 here: S2NSW, S2NSA, S_S2T0SZ, S_S2SL0, S_S2TG, MECID, MPAM_NS, S2SW,
  // S2SA, S_S2SL0_2, S_S2TTB, S_S2SKL.
}

STE make_abort_ste() {
  STE ste;
  ste.set<STE::V>(1).set<STE::Config>(smmuv3::kConfigAbort);
  return ste;
}

STE make_bypass_ste(const SteFeatures& features) {
  STE ste;
  ste.set<STE::V>(1).set<STE::Config>(smmuv3::kConfigBypass);
  set_shcfg_incoming(ste, features);
  return ste;
}

STE make_cdtable_ste(const SteFeatures& features, const SteCdTable& p) {
  // Each of these is a driver bug: the driver sized the CD table from the same features.
  STRATA_BUG_ON(p.s1cdmax > features.ssid_bits);
  if (p.s1cdmax != 0) {
    STRATA_BUG_ON(p.s1fmt != smmuv3::kS1FmtLinear && !is_2level(p.s1fmt));
    STRATA_BUG_ON(is_2level(p.s1fmt) && !features.two_level_cdtab);
    STRATA_BUG_ON(p.s1dss > smmuv3::kS1dssSsid0);
  }
  STRATA_BUG_ON(p.cdtab & ((uint64_t{1} << cdtab_align_log2(p.s1cdmax, p.s1fmt)) - 1));

  STE ste;
  ste.set<STE::V>(1).set<STE::Config>(smmuv3::kConfigS1Trans);
  set_cd_table(ste, p.cdtab, p.s1cdmax, p.s1fmt, p.s1dss);
  set_cd_fetch_attrs(ste, features);
  if (features.stalls && !p.stall_enabled) ste.set<STE::S1STALLD>(1);
  if (p.ats) ste.set<STE::EATS>(smmuv3::kEatsTrans);
  if (p.el2) ste.set<STE::STRW>(smmuv3::kStrwEl2);
  // Traffic without a SubstreamID bypasses with S1DSS == 0b01: it takes SHCFG.
  if (p.s1cdmax != 0 && p.s1dss == smmuv3::kS1dssBypass) set_shcfg_incoming(ste, features);
  return ste;
}

STE make_s2_domain_ste(const SteFeatures& features, const IoPgtableCfg& s2_cfg,
                       const SteS2Domain& p) {
  STE ste;
  ste.set<STE::V>(1).set<STE::Config>(smmuv3::kConfigS2Trans);
  set_s2(ste, s2_cfg, p);
  // Stage 2 only takes Shareability from Combine(STE.SHCFG, S2 descriptor) (13.5).
  set_shcfg_incoming(ste, features);
  return ste;
}

Result<STE> make_nested_ste(const SteFeatures& features, const IoPgtableCfg& s2_cfg,
                            const SteNested& host, const GuestSte& guest) {
  STE g;
  g.set_word(0, guest.ste[0]).set_word(1, guest.ste[1]);

  // The fields a guest may program (those of a stage-1 STE's CD table); anything else is
  // the host's, or Reserved.
  constexpr uint64_t kAllowed0 = STE::V::kMask | STE::Config::kMask | STE::S1Fmt::kMask |
                                 STE::S1ContextPtr::kMask | STE::S1CDMax::kMask;
  constexpr uint64_t kAllowed1 = STE::S1DSS::kMask | STE::S1CIR::kMask | STE::S1COR::kMask |
                                 STE::S1CSH::kMask | STE::S1STALLD::kMask | STE::EATS::kMask;
  if ((guest.ste[0] & ~kAllowed0) || (guest.ste[1] & ~kAllowed1)) return Error(-EINVAL);
  // Split-stage ATS would hand the device IPAs, and DPT is not the guest's to configure.
  const uint64_t eats = g.get<STE::EATS>();
  if (eats != smmuv3::kEatsAbort && eats != smmuv3::kEatsTrans) return Error(-EINVAL);
  SteS2Domain s2 = host.s2;
  s2.ats = s2.ats && eats == smmuv3::kEatsTrans;

  const uint64_t config = g.get<STE::Config>();
  // An invalid guest STE, and Config 0b000 with the Reserved values that behave as it.
  if (!g.get<STE::V>() || !(config & 0b100)) return make_abort_ste();
  // The guest cannot configure the host's stage 2.
  if (config & 0b010) return Error(-EINVAL);
  if (config == smmuv3::kConfigBypass) return make_s2_domain_ste(features, s2_cfg, s2);

  // Stage 1: the guest's CD table, behind stage 2.
  const unsigned s1cdmax = static_cast<unsigned>(g.get<STE::S1CDMax>());
  if (s1cdmax > features.ssid_bits) return Error(-EINVAL);
  uint64_t s1fmt = smmuv3::kS1FmtLinear, s1dss = smmuv3::kS1dssTerminate;
  if (s1cdmax != 0) {
    // With substreams S1Fmt and S1DSS matter; the Reserved 0b11 of each "behaves as" another
    // value, which a guest has no reason to rely on.
    s1fmt = g.get<STE::S1Fmt>();
    s1dss = g.get<STE::S1DSS>();
    if (s1fmt != smmuv3::kS1FmtLinear && !is_2level(s1fmt)) return Error(-EINVAL);
    if (is_2level(s1fmt) && !features.two_level_cdtab) return Error(-EINVAL);
    if (s1dss > smmuv3::kS1dssSsid0) return Error(-EINVAL);
  }
  // S1ContextPtr is an IPA: within the IAS stage 2 translates ("must be within the range of
  // the IAS", 5.2 S1ContextPtr; 3.4.3 lets an out-of-range one be C_BAD_STE), and with the bits
  // its format makes RES0 clear (otherwise the SMMU may fetch any CD or L1CD of the table).
  const uint64_t ptr = g.get<STE::S1ContextPtr>();
  const unsigned ias = 64 - s2_cfg.arm_lpae_s2.t0sz;
  if (ias < 64 && (ptr >> ias) != 0) return Error(-EINVAL);
  if (ptr & ((uint64_t{1} << cdtab_align_log2(s1cdmax, s1fmt)) - 1)) return Error(-EINVAL);

  STE ste;
  ste.set<STE::V>(1).set<STE::Config>(smmuv3::kConfigNested);
  set_cd_table(ste, ptr, s1cdmax, s1fmt, s1dss);
  // The guest's CD fetch attributes: every encoding is defined (0b01 of S1CSH behaves as
  // 0b00), and they combine with stage 2's attributes for the IPA (5.2 S1CIR).
  ste.set<STE::S1CIR>(g.get<STE::S1CIR>())
      .set<STE::S1COR>(g.get<STE::S1COR>())
      .set<STE::S1CSH>(g.get<STE::S1CSH>());
  if (features.stalls && !host.stall_enabled) ste.set<STE::S1STALLD>(1);
  set_s2(ste, s2_cfg, s2);
  ste.set<STE::S2PTW>(1);
  // Traffic without a SubstreamID skips stage 1 with S1DSS == 0b01: stage 2 only, which takes
  // SHCFG (13.5).
  if (s1cdmax != 0 && s1dss == smmuv3::kS1dssBypass) set_shcfg_incoming(ste, features);
  return ste;
}

}  // namespace strata::arm_smmu_v3
