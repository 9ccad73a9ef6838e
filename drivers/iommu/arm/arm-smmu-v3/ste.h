// SPDX-License-Identifier: MIT
// Stream Table Entries: which bits the SMMU uses for the configuration an STE describes, and
// the STEs the driver installs (the ideas of Linux's arm_smmu_get_ste_used and
// arm_smmu_make_*_ste, written from IHI 0070 5.2).
//
// Builders are pure: they return the 64-byte entry and touch no memory. The stream table
// (strtab.h) installs an entry into a live STE with the hitless protocol of entry_writer.h,
// which needs ste_get_used() to tell which bits of the old and the new entry matter; the
// protocol refuses (a BUG) a target that sets a bit its own configuration does not use, so
// every builder below sets only used bits and zeroes the rest.
//
// The transitions this makes hitless (one critical 64-bit word, see entry_writer.h):
// abort <-> bypass, abort/bypass <-> stage 1, a stage-1 CD table pointer change, a stage-2
// table change with the same VMID, stage 2 <-> nested with the same stage 2. Those that change
// two used words, e.g. a stage-2 table and its VMID together, are break-before-make.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "arch/dma.h"
#include "arch/result.h"
#include "arch/smmuv3/ste.h"
#include "core/io-pgtable/io_pgtable.h"

namespace strata::arm_smmu_v3 {

// Sets used[0..7] to the bits of `ste` (8 words, CPU byte order) that the SMMU uses for the
// configuration the entry describes, by the IGNORED rules of IHI 0070 5.2 (each rule is cited
// in ste.cc). Only Non-secure STEs are described: the Secure- and Realm-only fields are never
// used. Fields that are RES0 because the SMMU lacks a feature count as used under the
// configuration that would use them (the SMMU may check them): the builders keep them zero,
// so they never make an update critical.
void ste_get_used(const uint64_t* ste, uint64_t* used);

// What the builders need to know about the SMMU, from its ID registers (the driver's probed
// features: Linux's ARM_SMMU_FEAT_*).
struct SteFeatures {
  // IDR0.COHACC: the SMMU's fetches snoop CPU caches. CDs are then fetched Write-Back
  // cacheable, Inner Shareable; otherwise Non-cacheable (whose Shareability is Outer, 5.2
  // S1CSH note): the same choice io-pgtable makes for table walks.
  bool coherent = true;
  // IDR1.ATTR_TYPES_OVR: STE.{MTCFG, ALLOCCFG, SHCFG} exist. SHCFG == 0b00 would then force
  // Non-shareable on traffic that takes its attributes from the STE (bypass, stage 2 only), so
  // the builders set SHCFG to 0b01 "use incoming" where it is used; without the feature it is
  // RES0 and stays 0.
  bool attr_types_ovr = false;
  // IDR0.STALL_MODEL == 0b00: stalls are supported and configurable per stream, so STE.S1STALLD
  // is meaningful (with any other model setting it is ILLEGAL, 5.2 S1STALLD).
  bool stalls = false;
  // IDR1.SSIDSIZE: SubstreamID bits; the largest S1CDMax.
  unsigned ssid_bits = 0;
  // IDR0.CD2L: 2-level CD tables (S1Fmt 0b01/0b10).
  bool two_level_cdtab = false;
};

// Config 0b000: every transaction aborts, no event (5.2 Config). Linux's arm_smmu_make_abort_ste.
smmuv3::STE make_abort_ste();

// Config 0b100: both stages bypass; SHCFG "use incoming" when it exists.
smmuv3::STE make_bypass_ste(const SteFeatures& features);

// Stage 1 through a CD table (Config 0b101). Linux's arm_smmu_make_cdtable_ste.
struct SteCdTable {
  // S1ContextPtr: the physical address of the CD (s1cdmax == 0), of the linear CD table, or of
  // the L1CD table; aligned as 5.2 S1Fmt requires (the bits it names RES0 must be zero).
  phys_addr_t cdtab = 0;
  // S1CDMax: log2 of the number of CDs (0: one CD, substreams disabled); <= ssid_bits.
  unsigned s1cdmax = 0;
  // S1Fmt: kS1FmtLinear, kS1Fmt4KL2 or kS1Fmt64KL2 (2-level needs two_level_cdtab). Only with
  // s1cdmax > 0; IGNORED (and left 0) otherwise.
  uint64_t s1fmt = smmuv3::kS1FmtLinear;
  // S1DSS: what traffic without a SubstreamID does when s1cdmax > 0: kS1dssTerminate,
  // kS1dssBypass or kS1dssSsid0. IGNORED (and left 0) when s1cdmax == 0.
  uint64_t s1dss = smmuv3::kS1dssTerminate;
  // The master may stall (CD.S may be set): without it, and when stalls are configurable,
  // S1STALLD is set so no CD can make this stream stall (5.2 S1STALLD: "must be set ... for
  // PCIe clients").
  bool stall_enabled = false;
  // EATS = 0b01, full ATS: the master has ATS enabled.
  bool ats = false;
  // STRW = EL2 (NS-EL2, or NS-EL2-E2H with SMMU_CR2.E2H): the host's own address spaces
  // shared with EL2 (SVA under VHE). Otherwise NS-EL1, tagged with S2VMID 0 (5.2 S2VMID:
  // stage-1-only NS-EL1 translations are VMID-tagged), so stage-2 domains must not use VMID 0.
  bool el2 = false;
};
smmuv3::STE make_cdtable_ste(const SteFeatures& features, const SteCdTable& params);

// Stage 2 (Config 0b110) from an io-pgtable in format arm_64_lpae_s2, whose cfg.arm_lpae_s2
// outputs give S2TTB, S2T0SZ, S2SL0, S2IR0/S2OR0/S2SH0, S2TG and S2PS. Linux's
// arm_smmu_make_s2_domain_ste.
struct SteS2Domain {
  uint16_t vmid = 0;    // S2VMID (must fit IDR0.VMID16's width; not 0, which stage 1 uses)
  bool ats = false;     // EATS = 0b01, full ATS
  bool s2r = true;      // S2R: stage-2 faults are recorded (5.5)
  bool s2s = false;     // S2S: stage-2 faults stall (needs a stall model that allows it)
  bool s2affd = false;  // S2AFFD: AF == 0 is not a fault (ignored, and left 0, with s2ha)
  bool s2ha = false;    // S2HA: hardware Access flag update (IDR0.HTTU >= 0b01)
  bool s2hd = false;    // S2HD: hardware dirty state update (IDR0.HTTU == 0b10; needs s2ha)
  bool s2fwb = false;   // S2FWB: stage 2 forces Write-Back (IDR3.FWB; Linux's nesting parents)
};
smmuv3::STE make_s2_domain_ste(const SteFeatures& features, const IoPgtableCfg& s2_cfg,
                               const SteS2Domain& params);

// A guest's STE as its vIOMMU presents it: words 0 and 1, in CPU byte order (the driver's
// ArmSmmuNestedData, like Linux's struct iommu_hwpt_arm_smmuv3, carries them little-endian).
// Untrusted. The guest may set V, Config (abort, bypass or stage 1), S1Fmt, S1ContextPtr,
// S1CDMax, S1DSS, S1CIR, S1COR, S1CSH, S1STALLD and EATS (0b00 or 0b01); anything else is
// refused.
struct GuestSte {
  uint64_t ste[2] = {};
};

// The host's side of a guest-owned stream: its stage 2 and what it allows the device.
struct SteNested {
  SteS2Domain s2;  // the host's stage 2: VMID, ATS, fault and hardware update controls
  // As SteCdTable::stall_enabled: without it (and with configurable stalls) S1STALLD is set,
  // so no guest CD can make the stream stall (5.2 EATS note: S1STALLD is how "the CD
  // configuration ... not managed by the highest-privilege entity" is kept from stalling).
  bool stall_enabled = false;
};

// The STE of a guest-owned stream behind the host's stage 2 (Linux's
// arm_smmu_make_nested_domain_ste): a guest STE with V == 0 or Config abort gives an abort
// STE; bypass gives the stage-2 STE (the guest's "physical" addresses are IPAs); stage 1 gives
// Config 0b111 with the stage-2 fields of make_s2_domain_ste, S2PTW set (a guest CD or table
// placed on a Device page faults instead of being read, 5.2 S2PTW) and the guest's CD table,
// whose S1ContextPtr is an IPA. The host decides everything of stage 2, and:
//  - EATS: full ATS (0b01) when the host allows it (host.s2.ats) and the guest asks for it;
//    a guest that leaves EATS 0 gets its Translation Requests refused (Linux's enable_ats).
//  - S1STALLD: the host's rule alone (SteNested::stall_enabled). A guest's S1STALLD == 1 asks
//    for what the host gives anyway; a guest cannot turn stalls on.
//
// -EINVAL, with nothing built, for a guest STE that sets a bit outside the fields above,
// selects stage 2 itself (Config 0b11x), asks for split-stage or DPT ATS (EATS 0b1x), asks for more
// substreams than the SMMU has (S1CDMax > SSIDSIZE), a 2-level CD table the SMMU lacks, a Reserved
// S1Fmt or S1DSS (0b11) with substreams, or an S1ContextPtr outside the IPA space stage 2 covers or
// not aligned as its table format requires.
Result<smmuv3::STE> make_nested_ste(const SteFeatures& features, const IoPgtableCfg& s2_cfg,
                                    const SteNested& host, const GuestSte& guest);

// An STE's words in CPU byte order, as write_entry and ste_get_used take them.
inline void ste_to_words(const smmuv3::STE& ste, uint64_t* words) {
  for (size_t i = 0; i < smmuv3::STE::kWords; i++) words[i] = ste.word(i);
}

}  // namespace strata::arm_smmu_v3
