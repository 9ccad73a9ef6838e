// SPDX-License-Identifier: MIT
#include "testing/models/smmuv3/walk.h"

#include <algorithm>

#include "arch/lpae/pte.h"

namespace strata::sim::smmuv3 {
namespace {

using lpae::level_shift;
using lpae::oa_of;

// Descriptor bits the walker reads. Positions come from arch/lpae/pte.h (pinned to the Arm ARM
// by its golden tests); these are the masks of its one-bit fields, to keep the per-level loop
// free of field extraction calls.
constexpr uint64_t kValid = 1;
constexpr uint64_t kAF = lpae::S1Pte::AF::kMask;
constexpr uint64_t kDBM = lpae::S1Pte::DBM::kMask;
constexpr uint64_t kAP2 = uint64_t{2} << lpae::S1Pte::AP::kShift;      // AP[2], read-only
constexpr uint64_t kS2APW = uint64_t{2} << lpae::S2Pte::S2AP::kShift;  // S2AP[1], write
static_assert(lpae::S1Pte::DBM::kMask == lpae::S2Pte::DBM::kMask);
static_assert(lpae::S1Pte::AF::kMask == lpae::S2Pte::AF::kMask);

// TCR-style size fields (CD.IPS, STE.S2PS) in bits. 0b110 is 52 bits; 0b111 is reserved before
// SMMUv3.4 and behaves as 0b110, and the result is capped to the OAS anyway.
unsigned ps_bits(uint8_t ps) {
  static constexpr uint8_t kBits[8] = {32, 36, 40, 42, 44, 48, 52, 52};
  return kBits[ps & 7];
}

// TG0 and S2TG: 0 4K, 1 64K, 2 16K. TG1: 1 16K, 2 4K, 3 64K. 0 means reserved.
unsigned tg0_granule(uint8_t tg) {
  static constexpr uint8_t kG[4] = {12, 16, 14, 0};
  return kG[tg & 3];
}
unsigned tg1_granule(uint8_t tg) {
  static constexpr uint8_t kG[4] = {0, 14, 12, 16};
  return kG[tg & 3];
}

bool granule_supported(const Caps& caps, unsigned g) {
  return g == 12 ? caps.gran4k : g == 14 ? caps.gran16k : caps.gran64k;
}

// Checks a granule and a TxSZ against the SMMU's limits and fills the geometry common to both
// stages. The start level of stage 1 is the one that leaves a whole number of full levels below
// it (Arm ARM: levels = ceil((ia - g) / stride)); stage 2's comes from S2SL0 (decode_s2).
CfgError check_size(const Caps& caps, unsigned g, unsigned txsz, unsigned min_txsz,
                    TableGeometry& t) {
  if (g == 0) return CfgError::granule_reserved;
  if (!granule_supported(caps, g)) return CfgError::granule_unsupported;
  // IHI 0070 5.4 CD.T0SZ, 5.2 STE.S2T0SZ: at most 39 unless IDR3.STT, which allows 48 (4K/16K)
  // or 47 (64K). SMMUv3.1 and later make an out-of-range value ILLEGAL; SMMUv3.0 may instead
  // clamp it, and this model takes the ILLEGAL choice there too.
  const unsigned max_txsz = caps.stt ? (g == 16 ? 47 : 48) : 39;
  if (txsz < min_txsz || txsz > max_txsz) return CfgError::tsz_out_of_range;
  t.granule = static_cast<uint8_t>(g);
  t.ia_bits = static_cast<uint8_t>(64 - txsz);
  return CfgError::none;
}

// The base address as the SMMU uses it: bits below the start table's alignment are treated as
// zero (IHI 0070 5.4 CD.TTB0, 5.2 STE.S2TTB), with a 64-byte minimum for a 52-bit output size.
uint64_t align_ttb(uint64_t ttb, unsigned start_bits, unsigned ps) {
  unsigned align = start_bits + 3;
  if (ps == 52) align = std::max(align, 6u);
  return ttb & ~((uint64_t{1} << align) - 1);
}

// IHI 0070 5.4 (CD.TTB0), 5.2 (STE.S2TTB): ILLEGAL beyond the effective output size, or beyond
// 48 bits when the granule cannot express a 52-bit address (4K/16K without DS).
bool ttb_in_range(uint64_t ttb, unsigned g, unsigned ps) {
  const unsigned limit = g == 16 ? ps : std::min(ps, 48u);
  return (ttb >> limit) == 0;
}

CfgError check_httu(const Caps& caps, bool ha, bool hd) {
  if (ha && caps.httu < 1) return CfgError::ha_unsupported;
  if (hd && caps.httu < 2) return CfgError::hd_unsupported;
  return CfgError::none;
}

// Whether a block descriptor may sit at `level` (Arm ARM AArch64.BlockDescSupported without
// FEAT_LPA2): 4K at levels 1 and 2, 16K at level 2, 64K at level 2 and, when the implemented
// PA size is 52 bits, level 1. Anywhere else 0b01 is a translation fault.
bool block_allowed(unsigned g, unsigned level, unsigned oas) {
  if (level == 2) return true;
  if (level == 1) return g == 12 || (g == 16 && oas == 52);
  return false;
}

// Normalised as the SMMU sees it: every write is Data (IHI 0070 13.1.2).
Access normalise(Access a) {
  if (a.write) a.instr = false;
  return a;
}

// Stage-1 permissions, VMSAv8-64 EL1&0 regime (Arm ARM D8 "Stage 1 permissions";
// AArch64.S1DirectBasePermissions):
//   AP[2:1]  priv  unpriv     APTable[1] removes write at both levels, APTable[0] removes
//   00       RW    -          unprivileged access; a location unprivileged code may write is
//   01       RW    RW         never privileged-executable; WXN makes writable locations
//   10       R     -          execute-never; PAN removes privileged data access where
//   11       R     R          unprivileged data access is allowed. Execution needs only
// execute permission, not read permission (an EL0 execute-only page is AP = 00, UXN = 0).
// `a` is normalised (a write is never an instruction fetch), as in s2_allows.
inline bool s1_allows(const Stage1& s1, const S1Perm& p, Access a) {
  // Hardware dirty state: a writable-clean leaf (DBM = 1) counts as writable; APTable still
  // applies (IHI 0070 3.13.3: HTTU never overrides the hierarchical read-only control).
  const bool leaf_ro = (p.AP & 2) && !(s1.hd && p.DBM);
  const bool ro = leaf_ro || (p.APTable & 2);
  const bool ur = (p.AP & 1) && !(p.APTable & 1);
  const bool uw = ur && !ro;
  bool pr = true;
  bool pw = !ro;
  const bool px = !(p.PXN || p.PXNTable || uw) && !(s1.wxn && pw);
  const bool ux = !(p.UXN || p.UXNTable) && !(s1.wxn && uw);
  if (a.instr) return a.priv ? px : ux;
  if (a.priv && s1.pan && ur) pr = pw = false;
  if (a.write) return a.priv ? pw : uw;
  return a.priv ? pr : ur;
}

// Stage-2 permissions (Arm ARM D8 "Stage 2 permissions"): S2AP[0] read, S2AP[1] write. Without
// FEAT_XNX (IDR3.XNX) only XN[1] counts: 1 is execute-never. With it XN[1:0] is 0b00 executable
// at EL0 and EL1, 0b01 at EL0 only, 0b10 at neither, 0b11 at EL1 only, by the transaction's
// privilege. Execution needs only execute permission.
inline bool s2_allows(const Stage2& s2, const S2Perm& p, Access a) {
  if (a.instr) {
    if (!s2.xnx) return !(p.XN & 2);
    switch (p.XN & 3) {
      case 0: return true;
      case 1: return !a.priv;
      case 2: return false;
      default: return a.priv;
    }
  }
  if (a.write) return (p.S2AP & 2) || (s2.hd && p.DBM);
  return p.S2AP & 1;
}

// Adds what a stage walk counted to the walk's statistics on every way out of it, so the
// count stays in a register meanwhile.
struct Counter {
  explicit Counter(uint16_t& total) : total_(total) {}
  ~Counter() { total_ = static_cast<uint16_t>(total_ + n); }
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;
  unsigned n = 0;

 private:
  uint16_t& total_;
};

// What one walk needs while it runs; one per walk_* call, on the stack.
class Walker {
 public:
  Walker(PhysMem& mem, uint64_t input_addr, Access access, Walk& out)
      : mem_(mem), input_addr_(input_addr), access_(access), out_(out) {}

  // Stage 2 for `ipa`, on behalf of `cls`. For CLASS IN the transaction's access is checked; for
  // CD and TT the access is a Data read, or a write when `tt_write` (an HTTU descriptor update).
  struct S2Leaf {
    uint64_t pa;
    uint64_t desc;
    uint8_t level;
    uint8_t size_log2;
  };
  bool translate_s2(const Stage2& s2, uint64_t ipa, FaultClass cls, bool tt_write, S2Leaf& leaf);

  bool translate_s1(const Stage1& s1, const Stage2* s2, uint64_t va);

  bool fault(FaultType type, unsigned stage, FaultClass cls, int level, uint64_t ipa = 0,
             uint64_t fetch_addr = 0, bool tt_read = true) {
    Fault& f = out_.fault;
    f.type = type;
    f.stage = static_cast<uint8_t>(stage);
    f.cls = cls;
    f.level = static_cast<int8_t>(level);
    f.RnW = !access_.write;
    f.InD = access_.instr;
    f.PnU = access_.priv;
    f.TTRnW = tt_read;
    f.input_addr = input_addr_;
    f.ipa = ipa;
    f.fetch_addr = fetch_addr;
    return false;
  }

 private:
  PhysMem& mem_;
  const uint64_t input_addr_;
  const Access access_;
  Walk& out_;
};

bool Walker::translate_s2(const Stage2& s2, uint64_t ipa, FaultClass cls, bool tt_write,
                          S2Leaf& leaf) {
  const TableGeometry& t = s2.tt;
  const unsigned g = t.granule;
  const unsigned stride = g - 3;
  // The access stage 2 checks: the transaction's own for its output, otherwise an SMMU Data
  // access (IHI 0070 7.3.16: CLASS CD is a read, CLASS TT reads or writes as TTRnW says).
  const Access check = cls == FaultClass::in ? access_ : Access{.write = tt_write};
  const bool tt_read = !tt_write;

  // IHI 0070 3.4, stage 2 check 1: an IPA outside S2T0SZ's range is a stage-2 translation fault.
  if (ipa >> t.ia_bits) return fault(FaultType::translation, 2, cls, 0, ipa, 0, tt_read);

  Counter reads(out_.stats.s2_reads);
  const uint64_t stride_mask = (uint64_t{1} << stride) - 1;
  for (;;) {  // once, unless an HTTU update loses a race and the walk starts again
    uint64_t table = t.ttb;
    unsigned level = t.start_level;
    unsigned shift = level_shift(g, level);
    uint64_t index_mask = (uint64_t{1} << t.start_bits) - 1;
    uint64_t desc, desc_pa;
    for (;;) {
      desc_pa = table + (((ipa >> shift) & index_mask) << 3);
      ++reads.n;
      Result<uint64_t> r = mem_.read64(desc_pa);
      if (!r.ok()) return fault(FaultType::walk_eabt, 2, cls, level, ipa, desc_pa, tt_read);
      desc = *r;
      if (!(desc & kValid)) return fault(FaultType::translation, 2, cls, level, ipa, 0, tt_read);
      if (level == 3 || (desc & lpae::kTypeMask) == lpae::kTypeBlock) break;
      // A table descriptor: its address is an output of this stage, so it is range-checked
      // against the effective S2PS like a leaf's (IHI 0070 7.3.14).
      const uint64_t next = oa_of(desc, g);
      if (next >> s2.ps_bits) return fault(FaultType::addr_size, 2, cls, level, ipa, 0, tt_read);
      table = next;
      ++level;
      shift -= stride;
      index_mask = stride_mask;
    }
    if (level == 3 ? (desc & lpae::kTypeMask) != lpae::kTypePage
                   : !block_allowed(g, level, s2.oas_bits))
      return fault(FaultType::translation, 2, cls, level, ipa, 0, tt_read);

    const unsigned size_log2 = shift;
    const uint64_t oa = oa_of(desc, g) & ~((uint64_t{1} << size_log2) - 1);
    if (oa >> s2.ps_bits) return fault(FaultType::addr_size, 2, cls, level, ipa, 0, tt_read);

    const bool af = desc & kAF;
    if (!af && !s2.ha && !s2.affd) return fault(FaultType::access, 2, cls, level, ipa, 0, tt_read);

    const S2Perm perm{.S2AP = static_cast<uint8_t>(lpae::S2Pte::S2AP::extract(desc)),
                      .XN = static_cast<uint8_t>(lpae::S2Pte::XN::extract(desc)),
                      .DBM = (desc & kDBM) != 0};
    if (!s2_allows(s2, perm, check))
      return fault(FaultType::permission, 2, cls, level, ipa, 0, tt_read);
    // S2PTW: a CD fetch or stage-1 walk to a page stage 2 maps as any Device type (MemAttr[3:2]
    // == 0b00, without S2FWB) is a stage-2 Permission fault (IHI 0070 5.2 STE.S2PTW).
    if (cls != FaultClass::in && s2.ptw && (lpae::S2Pte::MemAttr::extract(desc) >> 2) == 0)
      return fault(FaultType::permission, 2, cls, level, ipa, 0, tt_read);

    // HTTU (IHI 0070 3.13.2, 3.13.3): set AF; make a writable-clean leaf dirty on a write.
    uint64_t want = desc;
    if (!af && s2.ha) want |= kAF;
    if (check.write && s2.hd && (desc & kDBM) && !(desc & kS2APW)) want |= kS2APW | kAF;
    if (want != desc) {
      ++out_.stats.updates;
      Result<bool> swapped = mem_.cmpxchg64(desc_pa, desc, want);
      if (!swapped.ok())
        return fault(FaultType::walk_eabt, 2, cls, level, ipa, desc_pa, /*tt_read=*/false);
      if (!*swapped) {
        ++out_.stats.retries;
        continue;
      }
      desc = want;
    }
    leaf = S2Leaf{.pa = oa | (ipa & ((uint64_t{1} << size_log2) - 1)),
                  .desc = desc,
                  .level = static_cast<uint8_t>(level),
                  .size_log2 = static_cast<uint8_t>(size_log2)};
    return true;
  }
}

bool Walker::translate_s1(const Stage1& s1, const Stage2* s2, uint64_t va) {
  // TTB0 or TTB1 by VA[55], with or without TBI (IHI 0070 3.4.1).
  const unsigned select = (va >> 55) & 1;
  const TableGeometry& t = s1.tt[select];
  if (t.disabled) return fault(FaultType::translation, 1, FaultClass::in, 0);
  // VA[AddrTop:N] must all equal VA[55] (which chose the table); AddrTop is 55 with TBI.
  const unsigned top = t.tbi ? 55 : 63;
  const uint64_t upper_mask = (uint64_t{2} << (top - t.ia_bits)) - 1;
  const uint64_t upper = (va >> t.ia_bits) & upper_mask;
  if (upper != (select ? upper_mask : 0))
    return fault(FaultType::translation, 1, FaultClass::in, 0);
  if (t.e0pd && !access_.priv) return fault(FaultType::translation, 1, FaultClass::in, 0);

  const unsigned g = t.granule;
  const unsigned stride = g - 3;
  Translation& tr = out_.tr;
  Counter reads(out_.stats.s1_reads);
  const uint64_t stride_mask = (uint64_t{1} << stride) - 1;
  for (;;) {                 // once, unless an HTTU update loses a race and the walk starts again
    uint64_t table = t.ttb;  // an IPA when nested
    unsigned level = t.start_level;
    unsigned shift = level_shift(g, level);
    uint64_t index_mask = (uint64_t{1} << t.start_bits) - 1;
    unsigned ap_table = 0;
    bool uxn_table = false, pxn_table = false;
    uint64_t desc, desc_ipa, desc_pa;
    for (;;) {
      desc_ipa = table + (((va >> shift) & index_mask) << 3);
      desc_pa = desc_ipa;
      if (s2) {
        S2Leaf leaf;
        if (!translate_s2(*s2, desc_ipa, FaultClass::tt, false, leaf)) return false;
        desc_pa = leaf.pa;
      }
      ++reads.n;
      Result<uint64_t> r = mem_.read64(desc_pa);
      // F_WALK_EABT of a stage-1 descriptor is stage 1, CLASS TT (IHI 0070 7.3.12), unlike the
      // other stage-1 faults, which are CLASS IN.
      if (!r.ok()) return fault(FaultType::walk_eabt, 1, FaultClass::tt, level, 0, desc_pa);
      desc = *r;
      if (!(desc & kValid)) return fault(FaultType::translation, 1, FaultClass::in, level);
      if (level == 3 || (desc & lpae::kTypeMask) == lpae::kTypeBlock) break;
      const uint64_t next = oa_of(desc, g);
      if (next >> s1.ps_bits) return fault(FaultType::addr_size, 1, FaultClass::in, level);
      if (!t.had) {
        ap_table |= static_cast<unsigned>(lpae::TablePte::APTable::extract(desc));
        uxn_table |= (desc & lpae::TablePte::UXNTable::kMask) != 0;
        pxn_table |= (desc & lpae::TablePte::PXNTable::kMask) != 0;
      }
      table = next;
      ++level;
      shift -= stride;
      index_mask = stride_mask;
    }
    if (level == 3 ? (desc & lpae::kTypeMask) != lpae::kTypePage
                   : !block_allowed(g, level, s1.oas_bits))
      return fault(FaultType::translation, 1, FaultClass::in, level);

    const unsigned size_log2 = shift;
    const uint64_t oa = oa_of(desc, g) & ~((uint64_t{1} << size_log2) - 1);
    if (oa >> s1.ps_bits) return fault(FaultType::addr_size, 1, FaultClass::in, level);

    const bool af = desc & kAF;
    if (!af && !s1.ha && !s1.affd) return fault(FaultType::access, 1, FaultClass::in, level);

    S1Perm perm{.AP = static_cast<uint8_t>(lpae::S1Pte::AP::extract(desc)),
                .APTable = static_cast<uint8_t>(ap_table),
                .UXN = (desc & lpae::S1Pte::UXN::kMask) != 0,
                .PXN = (desc & lpae::S1Pte::PXN::kMask) != 0,
                .UXNTable = uxn_table,
                .PXNTable = pxn_table,
                .DBM = (desc & kDBM) != 0};
    if (!s1_allows(s1, perm, access_))
      return fault(FaultType::permission, 1, FaultClass::in, level);

    uint64_t want = desc;
    if (!af && s1.ha) want |= kAF;
    if (access_.write && s1.hd && (desc & kDBM) && (desc & kAP2)) want = (want & ~kAP2) | kAF;
    if (want != desc) {
      // The update is a write to the descriptor: nested, stage 2 must allow it (IHI 0070
      // 3.13.5), and a refusal is reported with TTRnW = 0.
      if (s2) {
        S2Leaf leaf;
        if (!translate_s2(*s2, desc_ipa, FaultClass::tt, true, leaf)) return false;
        desc_pa = leaf.pa;
      }
      ++out_.stats.updates;
      Result<bool> swapped = mem_.cmpxchg64(desc_pa, desc, want);
      if (!swapped.ok())
        return fault(FaultType::walk_eabt, 1, FaultClass::tt, level, 0, desc_pa, false);
      if (!*swapped) {
        ++out_.stats.retries;
        continue;
      }
      desc = want;
      perm.AP = static_cast<uint8_t>(lpae::S1Pte::AP::extract(desc));
    }

    tr.has_s1 = true;
    tr.s1_level = static_cast<uint8_t>(level);
    tr.s1_size_log2 = static_cast<uint8_t>(size_log2);
    tr.AttrIndx = static_cast<uint8_t>(lpae::S1Pte::AttrIndx::extract(desc));
    tr.SH = static_cast<uint8_t>(lpae::S1Pte::SH::extract(desc));
    tr.nG = (desc & lpae::S1Pte::nG::kMask) != 0;
    tr.s1_perm = perm;
    tr.ipa = oa | (va & ((uint64_t{1} << size_log2) - 1));
    return true;
  }
}

void fill_s2(Translation& tr, const Walker::S2Leaf& leaf) {
  tr.has_s2 = true;
  tr.oa = leaf.pa;
  tr.s2_level = leaf.level;
  tr.s2_size_log2 = leaf.size_log2;
  tr.MemAttr = static_cast<uint8_t>(lpae::S2Pte::MemAttr::extract(leaf.desc));
  tr.S2SH = static_cast<uint8_t>(lpae::S2Pte::SH::extract(leaf.desc));
  tr.s2_perm = S2Perm{.S2AP = static_cast<uint8_t>(lpae::S2Pte::S2AP::extract(leaf.desc)),
                      .XN = static_cast<uint8_t>(lpae::S2Pte::XN::extract(leaf.desc)),
                      .DBM = (leaf.desc & kDBM) != 0};
}

}  // namespace

const char* name(CfgError e) {
  switch (e) {
    case CfgError::none: return "none";
    case CfgError::aa32_tables: return "aa32_tables";
    case CfgError::big_endian: return "big_endian";
    case CfgError::granule_reserved: return "granule_reserved";
    case CfgError::granule_unsupported: return "granule_unsupported";
    case CfgError::tsz_out_of_range: return "tsz_out_of_range";
    case CfgError::sl0_invalid: return "sl0_invalid";
    case CfgError::sl0_inconsistent: return "sl0_inconsistent";
    case CfgError::ttb_out_of_range: return "ttb_out_of_range";
    case CfgError::ha_unsupported: return "ha_unsupported";
    case CfgError::hd_unsupported: return "hd_unsupported";
  }
  return "?";
}

const char* name(FaultType t) {
  switch (t) {
    case FaultType::none: return "none";
    case FaultType::translation: return "F_TRANSLATION";
    case FaultType::addr_size: return "F_ADDR_SIZE";
    case FaultType::access: return "F_ACCESS";
    case FaultType::permission: return "F_PERMISSION";
    case FaultType::walk_eabt: return "F_WALK_EABT";
  }
  return "?";
}

const char* name(FaultClass c) {
  switch (c) {
    case FaultClass::cd: return "CD";
    case FaultClass::tt: return "TT";
    case FaultClass::in: return "IN";
  }
  return "?";
}

Decoded<Stage1> decode_s1(const S1Cfg& cd, const Caps& caps) {
  Decoded<Stage1> d;
  Stage1& s = d.stage;
  auto fail = [&](CfgError e) {
    d.error = e;
    return std::move(d);
  };
  if (!cd.AA64) return fail(CfgError::aa32_tables);
  // ENDI is IGNORED only when both halves are disabled (IHI 0070 5.4).
  if (cd.ENDI && !(cd.EPD0 && cd.EPD1)) return fail(CfgError::big_endian);
  if (CfgError e = check_httu(caps, cd.HA, cd.HD); e != CfgError::none) return fail(e);

  s.ps_bits = static_cast<uint8_t>(std::min(ps_bits(cd.IPS), caps.oas_bits));
  s.oas_bits = static_cast<uint8_t>(caps.oas_bits);
  s.affd = cd.AFFD;
  s.wxn = cd.WXN;
  s.pan = cd.PAN;
  s.ha = cd.HA;
  s.hd = cd.HD && cd.HA;  // {HD, HA} = 0b10 is reserved and behaves as 0b00

  struct Half {
    bool epd;
    unsigned g;
    uint8_t tsz;
    uint64_t ttb;
    bool tbi, had, e0pd;
  };
  const Half halves[2] = {
      {cd.EPD0, tg0_granule(cd.TG0), cd.T0SZ, cd.TTB0, cd.TBI0, cd.HAD0, cd.E0PD0},
      {cd.EPD1, tg1_granule(cd.TG1), cd.T1SZ, cd.TTB1, cd.TBI1, cd.HAD1, cd.E0PD1},
  };
  for (unsigned i = 0; i < 2; ++i) {
    const Half& h = halves[i];
    TableGeometry& t = s.tt[i];
    // EPDx = 1 makes TxSZ, TGx and TTBx IGNORED: only the translation fault remains.
    if (h.epd) {
      t.disabled = true;
      continue;
    }
    // CD.TxSZ minimum: 16, or 12 with IDR5.VAX and the 64K granule (52-bit VA).
    const unsigned min_tsz = caps.vax && h.g == 16 ? 12 : 16;
    if (CfgError e = check_size(caps, h.g, h.tsz, min_tsz, t); e != CfgError::none) return fail(e);
    const unsigned stride = h.g - 3;
    const unsigned levels = (t.ia_bits - h.g + stride - 1) / stride;
    t.start_level = static_cast<uint8_t>(4 - levels);
    t.start_bits = static_cast<uint8_t>(t.ia_bits - level_shift(h.g, t.start_level));
    if (!ttb_in_range(h.ttb, h.g, s.ps_bits)) return fail(CfgError::ttb_out_of_range);
    t.ttb = align_ttb(h.ttb, t.start_bits, s.ps_bits);
    t.tbi = h.tbi;
    t.had = h.had && caps.had;
    t.e0pd = h.e0pd && caps.e0pd;
  }
  return d;
}

Decoded<Stage2> decode_s2(const S2Cfg& ste, const Caps& caps) {
  Decoded<Stage2> d;
  Stage2& s = d.stage;
  TableGeometry& t = s.tt;
  auto fail = [&](CfgError e) {
    d.error = e;
    return std::move(d);
  };
  if (!ste.S2AA64) return fail(CfgError::aa32_tables);
  if (ste.S2ENDI) return fail(CfgError::big_endian);
  if (CfgError e = check_httu(caps, ste.S2HA, ste.S2HD); e != CfgError::none) return fail(e);

  // STE.S2T0SZ minimum (SMMUv3.1 on): MAX(16, 64 - IAS) for 4K/16K, MAX(12, 64 - IAS) for 64K.
  // The input range is thereby capped to the IAS (IHI 0070 3.4, stage 2 check 1b).
  const unsigned g = tg0_granule(ste.S2TG);
  const unsigned min_tsz = std::max(g == 16 ? 12u : 16u, 64 - caps.ias_bits());
  if (CfgError e = check_size(caps, g, ste.S2T0SZ, min_tsz, t); e != CfgError::none) return fail(e);

  // The start level from S2SL0, as VTCR_EL2.SL0 (Arm ARM AArch64.S2InvalidSL and
  // AArch64.S2StartLevel, without FEAT_LPA2): 4K counts down from level 2, with SL0 = 3 meaning
  // level 3 under small translation tables; 16K and 64K count down from level 3. Level 0 for 4K
  // and level 1 for 64K need a 44-bit PA, level 1 for 16K a 42-bit PA; SL0 = 3 is level 0 for
  // 16K only with DS, never for 64K. The PA size here is the SMMU's OAS.
  const unsigned sl0 = ste.S2SL0 & 3;
  const unsigned oas = caps.oas_bits;
  int start;
  bool valid;
  switch (g) {
    case 12:
      start = sl0 == 3 ? 3 : 2 - static_cast<int>(sl0);
      valid = sl0 == 3 ? caps.stt : (sl0 != 2 || oas >= 44);
      break;
    case 14:
      start = 3 - static_cast<int>(sl0);
      valid = sl0 != 3 && (sl0 != 2 || oas >= 42);
      break;
    default:
      start = 3 - static_cast<int>(sl0);
      valid = sl0 != 3 && (sl0 != 2 || oas >= 44);
      break;
  }
  if (!valid) return fail(CfgError::sl0_invalid);
  // AArch64.S2InconsistentSL: the start level must resolve at least one bit and at most a full
  // level plus four more, i.e. up to 16 concatenated tables (IHI 0070 5.2 STE.S2SL0 "ILLEGAL ...
  // inconsistent with STE.S2T0SZ and STE.S2TG").
  const unsigned stride = g - 3;
  const int start_bits = t.ia_bits - static_cast<int>(level_shift(g, start));
  if (start_bits < 1 || start_bits > static_cast<int>(stride) + 4)
    return fail(CfgError::sl0_inconsistent);
  t.start_level = static_cast<uint8_t>(start);
  t.start_bits = static_cast<uint8_t>(start_bits);

  s.ps_bits = static_cast<uint8_t>(std::min(ps_bits(ste.S2PS), caps.oas_bits));
  s.oas_bits = static_cast<uint8_t>(caps.oas_bits);
  if (!ttb_in_range(ste.S2TTB, g, s.ps_bits)) return fail(CfgError::ttb_out_of_range);
  t.ttb = align_ttb(ste.S2TTB, t.start_bits, s.ps_bits);
  s.affd = ste.S2AFFD;
  s.ptw = ste.S2PTW;
  s.xnx = caps.xnx;
  s.ha = ste.S2HA;
  s.hd = ste.S2HD && ste.S2HA;  // {S2HA, S2HD} = 0b01 is reserved and behaves as 0b00
  return d;
}

bool s1_permits(const Stage1& s1, const S1Perm& perm, Access access) {
  return s1_allows(s1, perm, normalise(access));
}

bool s2_permits(const Stage2& s2, const S2Perm& perm, Access access) {
  return s2_allows(s2, perm, normalise(access));
}

Walk walk_s1(PhysMem& mem, const Stage1& s1, uint64_t va, Access access, const Stage2* s2) {
  Walk w;
  Walker walker(mem, va, normalise(access), w);
  if (!walker.translate_s1(s1, s2, va)) return w;
  Translation& tr = w.tr;
  if (!s2) {
    tr.oa = tr.ipa;
    tr.size_log2 = tr.s1_size_log2;
    return w;
  }
  Walker::S2Leaf leaf;
  if (!walker.translate_s2(*s2, tr.ipa, FaultClass::in, false, leaf)) return w;
  fill_s2(tr, leaf);
  tr.size_log2 = std::min(tr.s1_size_log2, tr.s2_size_log2);
  return w;
}

Walk walk_s2(PhysMem& mem, const Stage2& s2, uint64_t ipa, Access access, FaultClass cls) {
  Walk w;
  Walker walker(mem, ipa, normalise(access), w);
  Walker::S2Leaf leaf;
  if (!walker.translate_s2(s2, ipa, cls, false, leaf)) return w;
  fill_s2(w.tr, leaf);
  w.tr.ipa = ipa;
  w.tr.size_log2 = w.tr.s2_size_log2;
  return w;
}

Walk walk_s1_bypass(PhysMem& mem, const Stage2& s2, uint64_t addr, Access access,
                    unsigned ias_bits) {
  if (addr >> ias_bits) {
    Walk w;
    Walker(mem, addr, normalise(access), w).fault(FaultType::addr_size, 1, FaultClass::in, 0);
    return w;
  }
  return walk_s2(mem, s2, addr, access);
}

}  // namespace strata::sim::smmuv3

fmt::format_context::iterator fmt::formatter<strata::sim::smmuv3::Fault>::format(
    const strata::sim::smmuv3::Fault& f, fmt::format_context& ctx) const {
  using namespace strata::sim::smmuv3;
  auto out = fmt::format_to(ctx.out(), "{} stage {} CLASS {} level {} InputAddr {:#x}",
                            name(f.type), f.stage, name(f.cls), f.level, f.input_addr);
  if (f.stage == 2) out = fmt::format_to(out, " IPA {:#x}", f.ipa);
  if (f.type == FaultType::walk_eabt) out = fmt::format_to(out, " FetchAddr {:#x}", f.fetch_addr);
  out = fmt::format_to(out, " RnW={} InD={} PnU={}", int{f.RnW}, int{f.InD}, int{f.PnU});
  if (f.cls == FaultClass::tt) out = fmt::format_to(out, " TTRnW={}", int{f.TTRnW});
  return out;
}
