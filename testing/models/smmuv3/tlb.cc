// SPDX-License-Identifier: MIT
#include "testing/models/smmuv3/tlb.h"

#include <bit>

#include "arch/bug.h"

namespace strata::sim::smmuv3 {

using arch::CmdTlbi;
using arch::Opcode;

namespace {

// Regimes whose stage-1 entries carry ASIDs (3.17): NS-EL1 and NS-EL2-E2H, not NS-EL2.
bool has_asids(StreamWorld w) { return w == StreamWorld::ns_el1 || w == StreamWorld::ns_el2_e2h; }

uint64_t mix(uint64_t x) {
  x ^= x >> 31;
  x *= 0x7fb5d329728ea185ull;
  x ^= x >> 27;
  x *= 0x81dadef4bc2dd44dull;
  x ^= x >> 33;
  return x;
}

uint64_t span_last(uint64_t base, unsigned size_log2) {
  return base + ((uint64_t{1} << size_log2) - 1);
}

// VA[55] copied into [63:56] (the CMD_TLBI_* address is a VA; IHI 0070 4.4.2 lets TBI apply).
uint64_t sign_extend_55(uint64_t va) {
  return static_cast<uint64_t>(static_cast<int64_t>(va << 8) >> 8);
}

}  // namespace

const char* name(TlbKind k) {
  switch (k) {
    case TlbKind::s1: return "stage 1";
    case TlbKind::s12: return "stage 1+2";
    case TlbKind::s2: return "stage 2";
  }
  return "?";
}

uint64_t tlb_tag_address(const Stage1& s1, uint64_t va) {
  return s1.tt[(va >> 55) & 1].tbi ? sign_extend_55(va) : va;
}

bool clean_for_write(const TlbEntry& e) {
  const bool s1 = e.has_s1() && e.s1.hd && e.tr.s1_perm.DBM && (e.tr.s1_perm.AP & 2);
  const bool s2 = e.has_s2() && e.s2.hd && e.tr.s2_perm.DBM && !(e.tr.s2_perm.S2AP & 2);
  return s1 || s2;
}

Fault check_permissions(const TlbEntry& e, uint64_t addr, Access access) {
  Fault f;
  unsigned stage = 0;
  if (e.has_s1() && !s1_permits(e.s1, e.tr.s1_perm, access))
    stage = 1;
  else if (e.has_s2() && !s2_permits(e.s2, e.tr.s2_perm, access))
    stage = 2;
  if (!stage) return f;
  f.type = FaultType::permission;
  f.stage = static_cast<uint8_t>(stage);
  f.cls = FaultClass::in;
  f.level = static_cast<int8_t>(stage == 1 ? e.tr.s1_level : e.tr.s2_level);
  f.RnW = !access.write;
  f.InD = access.instr && !access.write;
  f.PnU = access.priv;
  f.input_addr = addr;
  if (stage == 2) f.ipa = e.ipa_of(addr);
  return f;
}

TlbEntry make_tlb_entry(const TlbContext& ctx, uint64_t addr, const Translation& tr,
                        const Stage1* s1, const Stage2* s2) {
  TlbEntry e;
  e.kind = ctx.kind;
  e.world = ctx.world;
  e.vmid = ctx.vmid;
  e.tr = tr;
  if (ctx.kind == TlbKind::s2) {
    STRATA_BUG_ON(!s2);
    e.size_log2 = tr.s2_size_log2;
    e.granule = s2->tt.granule;
    e.level = tr.s2_level;
    e.global = true;
    e.s2 = *s2;
    e.base = addr & ~e.span_mask();
    e.ipa_base = e.base;
    e.oa_base = tr.oa & ~e.span_mask();
    return e;
  }
  STRATA_BUG_ON(!s1);
  const uint64_t va = tlb_tag_address(*s1, addr);
  e.size_log2 = tr.size_log2;
  e.granule = s1->tt[(va >> 55) & 1].granule;
  e.level = tr.s1_level;
  e.s1 = *s1;
  if (s2) e.s2 = *s2;
  e.global = !tr.nG || !has_asids(ctx.world);
  e.asid = e.global ? 0 : ctx.asid;
  e.aset = ctx.aset;
  e.base = va & ~e.span_mask();
  e.ipa_base = tr.ipa & ~e.span_mask();
  e.oa_base = tr.oa & ~e.span_mask();
  return e;
}

TlbiScope decode_tlbi(const CmdTlbi& t, const Config& config, bool e2h) {
  using Op = TlbiScope::Op;
  TlbiScope s;
  s.match_vmid = config.s2p;
  s.vmid = static_cast<uint16_t>(t.get<CmdTlbi::VMID>());
  s.asid = static_cast<uint16_t>(t.get<CmdTlbi::ASID>());
  s.e2h = e2h;
  s.leaf = t.get<CmdTlbi::Leaf>();
  bool va = true;
  switch (static_cast<Opcode>(t.get<CmdTlbi::Op>())) {
    case Opcode::CMD_TLBI_NH_ALL: s.op = Op::nh_all; break;
    case Opcode::CMD_TLBI_NH_ASID: s.op = Op::nh_asid; break;
    case Opcode::CMD_TLBI_NH_VA: s.op = Op::nh_va; break;
    case Opcode::CMD_TLBI_NH_VAA: s.op = Op::nh_vaa; break;
    case Opcode::CMD_TLBI_S2_IPA:
      s.op = Op::s2_ipa;
      va = false;
      break;
    case Opcode::CMD_TLBI_S12_VMALL: s.op = Op::s12_vmall; break;
    case Opcode::CMD_TLBI_NSNH_ALL: s.op = Op::nsnh_all; break;
    case Opcode::CMD_TLBI_EL2_ALL: s.op = Op::el2_all; break;
    case Opcode::CMD_TLBI_EL2_ASID: s.op = Op::el2_asid; break;
    case Opcode::CMD_TLBI_EL2_VA: s.op = Op::el2_va; break;
    case Opcode::CMD_TLBI_EL2_VAA: s.op = Op::el2_vaa; break;
    default: STRATA_BUG("decode_tlbi: not a Non-secure TLB invalidation");
  }
  uint64_t addr = t.get<CmdTlbi::Address>();
  if (va) addr = sign_extend_55(addr);
  s.first = s.last = addr;
  const uint64_t tg = t.get<CmdTlbi::TG>();
  if (tg != arch::kTlbiTgNone) {
    // 4.4.1.1: Range = ((NUM + 1) * 2^SCALE) * granule, from Address; no wrap on overflow.
    static constexpr uint8_t kGranule[4] = {0, 12, 14, 16};
    s.range = true;
    s.tg_log2 = kGranule[tg];
    s.ttl = static_cast<uint8_t>(t.get<CmdTlbi::TTL>());
    // TTL 0b01 with a 16KB granule is Reserved without IDR5.DS and treated as 0b00 (4.4.1.1;
    // check_command rejects it, so this is belt and braces).
    if (s.tg_log2 == 14 && s.ttl == 1) s.ttl = 0;
    const unsigned shift = static_cast<unsigned>(t.get<CmdTlbi::SCALE>()) + s.tg_log2;
    const uint64_t num = t.get<CmdTlbi::NUM>() + 1;
    // num <= 32 and shift <= 16 + 31: overflow only past 2^64, which saturates.
    const unsigned num_bits = 64 - static_cast<unsigned>(std::countl_zero(num));
    uint64_t bytes;
    if (shift + num_bits > 64)
      bytes = ~uint64_t{0};
    else
      bytes = num << shift;
    s.last = bytes == ~uint64_t{0} || addr > ~uint64_t{0} - (bytes - 1) ? ~uint64_t{0}
                                                                        : addr + (bytes - 1);
  }
  return s;
}

Tlb::Tlb(unsigned sets, unsigned ways)
    : ways_(ways ? ways : 1), set_mask_(std::bit_ceil(sets ? sets : 1u) - 1) {
  slots_.resize((set_mask_ + 1) * ways_);
  victim_.resize(set_mask_ + 1);
}

size_t Tlb::set_of(TlbKind kind, StreamWorld world, uint16_t vmid, uint64_t addr,
                   unsigned size_log2) const {
  const uint64_t key = (addr >> size_log2) ^ (uint64_t{size_log2} << 58) ^
                       (uint64_t{static_cast<uint8_t>(kind)} << 52) ^
                       (uint64_t{static_cast<uint8_t>(world)} << 48) ^ (uint64_t{vmid} << 32);
  return static_cast<size_t>(mix(key)) & set_mask_;
}

bool Tlb::matches_locked(const TlbEntry& e, const TlbContext& ctx, uint64_t addr) const {
  if (e.kind != ctx.kind || e.world != ctx.world || e.vmid != ctx.vmid) return false;
  if (((addr ^ e.base) >> e.size_log2) != 0) return false;
  if (e.kind == TlbKind::s2 || !has_asids(e.world)) return true;
  // 3.17.1: a global entry matches any ASID, but only lookups with the same ASET.
  return e.global ? e.aset == ctx.aset : e.asid == ctx.asid;
}

bool Tlb::lookup(const TlbContext& ctx, uint64_t addr, TlbEntry& out) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (uint64_t sizes = sizes_; sizes; sizes &= sizes - 1) {
    const unsigned size_log2 = static_cast<unsigned>(std::countr_zero(sizes));
    const size_t set = set_of(ctx.kind, ctx.world, ctx.vmid, addr, size_log2);
    for (unsigned w = 0; w < ways_; ++w) {
      const Slot& s = slots_[set * ways_ + w];
      if (s.valid && s.e.size_log2 == size_log2 && matches_locked(s.e, ctx, addr)) {
        out = s.e;
        return true;
      }
    }
  }
  return false;
}

void Tlb::erase_locked(Slot& s) {
  STRATA_BUG_ON(!s.valid);
  s.valid = false;
  --size_;
  if (--size_count_[s.e.size_log2] == 0) sizes_ &= ~(uint64_t{1} << s.e.size_log2);
}

bool Tlb::insert(const TlbEntry& e, uint64_t generation) {
  STRATA_BUG_ON(e.size_log2 >= 64);
  std::lock_guard<std::mutex> lock(mu_);
  if (generation_.load(std::memory_order_relaxed) != generation) return false;
  const size_t set = set_of(e.kind, e.world, e.vmid, e.base, e.size_log2);
  Slot* target = nullptr;
  for (unsigned w = 0; w < ways_ && !target; ++w) {
    Slot& s = slots_[set * ways_ + w];
    if (s.valid && s.e.kind == e.kind && s.e.world == e.world && s.e.vmid == e.vmid &&
        s.e.base == e.base && s.e.size_log2 == e.size_log2 && s.e.global == e.global &&
        s.e.asid == e.asid && s.e.aset == e.aset)
      target = &s;  // the same translation again (a refill): replace it
  }
  for (unsigned w = 0; w < ways_ && !target; ++w)
    if (!slots_[set * ways_ + w].valid) target = &slots_[set * ways_ + w];
  if (!target) {
    target = &slots_[set * ways_ + victim_[set]];
    victim_[set] = static_cast<uint8_t>((victim_[set] + 1) % ways_);
    ++evictions_;
  }
  if (target->valid) erase_locked(*target);
  target->e = e;
  target->valid = true;
  ++size_;
  if (size_count_[e.size_log2]++ == 0) sizes_ |= uint64_t{1} << e.size_log2;
  return true;
}

bool Tlb::in_scope(const TlbEntry& e, const TlbiScope& s) const {
  using Op = TlbiScope::Op;
  const bool el1 = e.world == StreamWorld::ns_el1;
  const bool vmid = !s.match_vmid || e.vmid == s.vmid;
  bool by_address = false;
  bool in = false;
  switch (s.op) {
    case Op::nh_all: in = el1 && e.has_s1() && vmid; break;
    case Op::nh_asid: in = el1 && e.has_s1() && vmid && !e.global && e.asid == s.asid; break;
    case Op::nh_va:
      in = el1 && e.has_s1() && vmid && (e.global || e.asid == s.asid);
      by_address = true;
      break;
    case Op::nh_vaa:
      in = el1 && e.has_s1() && vmid;
      by_address = true;
      break;
    case Op::s2_ipa:
      in = el1 && e.kind == TlbKind::s2 && vmid;
      by_address = true;
      break;
    case Op::s12_vmall: in = el1 && vmid; break;
    case Op::nsnh_all: in = el1; break;
    case Op::el2_all:
      in = e.world == StreamWorld::ns_el2 || e.world == StreamWorld::ns_el2_e2h;
      break;
    case Op::el2_asid:
      in = e.world == StreamWorld::ns_el2_e2h && !e.global && e.asid == s.asid;
      break;
    case Op::el2_va:
      in = s.e2h ? e.world == StreamWorld::ns_el2_e2h && (e.global || e.asid == s.asid)
                 : e.world == StreamWorld::ns_el2;
      by_address = true;
      break;
    case Op::el2_vaa:
      in = e.world == (s.e2h ? StreamWorld::ns_el2_e2h : StreamWorld::ns_el2);
      by_address = true;
      break;
  }
  if (!in || !by_address) return in;
  const uint64_t last = span_last(e.base, e.size_log2);
  return s.range ? s.first <= last && e.base <= s.last : e.base <= s.first && s.first <= last;
}

size_t Tlb::invalidate(const TlbiScope& scope) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (Slot& s : slots_) {
    if (!s.valid || !in_scope(s.e, scope)) continue;
    if ((scope.tg_log2 && s.e.granule != scope.tg_log2) || (scope.ttl && s.e.level != scope.ttl))
      ++hint_mismatches_;
    erase_locked(s);
    ++n;
  }
  generation_.fetch_add(1, std::memory_order_release);
  return n;
}

void Tlb::invalidate_all() {
  std::lock_guard<std::mutex> lock(mu_);
  for (Slot& s : slots_)
    if (s.valid) erase_locked(s);
  generation_.fetch_add(1, std::memory_order_release);
}

size_t Tlb::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return size_;
}

uint64_t Tlb::evictions() const {
  std::lock_guard<std::mutex> lock(mu_);
  return evictions_;
}

uint64_t Tlb::hint_mismatches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hint_mismatches_;
}

}  // namespace strata::sim::smmuv3
