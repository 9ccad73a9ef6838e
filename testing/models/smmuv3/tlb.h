// SPDX-License-Identifier: MIT
// The SMMUv3 model's TLB: cached translations, tagged as IHI 0070 3.17 says, kept until the
// CMD_TLBI_* command whose scope covers them (4.4).
//
// What an entry holds: the leaf of one successful walk (the walker's Translation), for the span
// the walk resolved (the smaller of the stages' leaves when nested), with the tags:
//   - kind: a stage-1 entry (VA, stage 2 bypassed), a combined stage-1 + stage-2 entry (VA,
//     nested), or a stage-2-only entry (IPA: STE.Config stage 2, or S1DSS bypass with stage 2);
//   - the translation regime (StreamWorld: NS-EL1, NS-EL2, NS-EL2-E2H);
//   - the VMID (STE.S2VMID) for NS-EL1 when stage 2 is implemented, whatever the stages used
//     ("all TLB entries inserted using NS-EL1 configurations are tagged with VMIDs when stage 2 is
//     implemented", 3.17; the decoder leaves S2VMID 0 where it is not used);
//   - the ASID (CD.ASID) for non-global (nG == 1) stage-1 entries of a regime with ASIDs
//     (NS-EL1, NS-EL2-E2H). A global entry matches any ASID of its regime and VMID, but only
//     lookups with the same ASET (3.17.1);
//   - for TLBI hints, the granule and leaf level of the stage that TLBIs by address name (stage 1
//     for VA entries, stage 2 for IPA entries).
//
// Invalidation scopes (4.4.2-4.4.4), from the Non-secure Command queue:
//   NH_ALL(VMID)          NS-EL1 stage-1 and combined entries of VMID, global included
//   NH_ASID(VMID, ASID)   NS-EL1 non-global stage-1/combined entries of ASID in VMID
//   NH_VA(VMID, ASID, VA) NS-EL1 stage-1/combined entries of VA: ASID's and global ones
//   NH_VAA(VMID, VA)      NS-EL1 stage-1/combined entries of VA, any ASID
//   S2_IPA(VMID, IPA)     NS-EL1 stage-2-only entries of IPA. Combined entries are NOT
//                         invalidated: the spec does not require it ("expected to be used with
//                         CMD_TLBI_NH_ALL or CMD_TLBI_NH_VAA"), and the model, as referee, takes
//                         the strict reading so a driver that forgets the stage-1 half is caught
//   S12_VMALL(VMID)       every NS-EL1 entry of VMID, all stages
//   NSNH_ALL              every NS-EL1 entry
//   EL2_ALL               every NS-EL2 and NS-EL2-E2H entry
//   EL2_ASID(ASID)        NS-EL2-E2H non-global entries of ASID
//   EL2_VA(ASID, VA)      CR2.E2H: NS-EL2-E2H entries of VA for ASID or global; else NS-EL2 of VA
//   EL2_VAA(VA)           CR2.E2H: NS-EL2-E2H entries of VA; else NS-EL2 entries of VA
// Without stage 2 in the SMMU, VMIDs are not compared (every entry carries VMID 0 and the
// command's VMID is RES0, "not required to check").
//
// By-address forms: without a range (TG == 0) an entry matches when the address lies in its span
// (4.4: "the least significant bits of the address are ignored as needed"); with a range (TG !=
// 0, IDR3.RIL) when its span overlaps [Address, Address + (NUM + 1) * 2^SCALE * granule), the end
// saturating rather than wrapping. TG and TTL are hints: the spec lets an SMMU skip entries of
// another granule or level, but the model never does (no under-invalidation from a hint); an
// entry that a wrong hint would have let the SMMU keep is counted (hint_mismatches()) so tests
// can see a driver's wrong TTL. Leaf is honoured trivially: the model caches no intermediate
// walk results (no walk cache), so every entry is a leaf.
//
// Geometry: set-associative, `sets` x `ways`, indexed by a hash of the kind, regime, VMID and
// input address at the entry's size (a lookup probes each size present), with a round-robin
// victim per set. Every method takes the TLB's own lock (a leaf lock: nothing else is taken
// while it is held), so the command thread and any number of DMA threads may call it.
#pragma once

#include <stdint.h>

#include <atomic>
#include <mutex>
#include <vector>

#include "arch/smmuv3/cmd.h"
#include "testing/models/smmuv3/config.h"
#include "testing/models/smmuv3/stream.h"
#include "testing/models/smmuv3/walk.h"

namespace strata::sim::smmuv3 {

enum class TlbKind : uint8_t {
  s1,   // stage 1, stage 2 bypassed: VA -> PA
  s12,  // nested, stage 1 and stage 2 combined: VA -> PA
  s2,   // stage 2 only (stage 1 bypassed): IPA -> PA
};
const char* name(TlbKind k);

// What a lookup or an insertion is tagged with: the regime of the STE and the CD's ASID/ASET.
struct TlbContext {
  TlbKind kind = TlbKind::s1;
  StreamWorld world = StreamWorld::ns_el1;
  uint16_t vmid = 0;
  uint16_t asid = 0;  // CD.ASID (0 where the regime has none)
  bool aset = false;  // CD.ASET
};

struct TlbEntry {
  // Tags.
  TlbKind kind = TlbKind::s1;
  StreamWorld world = StreamWorld::ns_el1;
  uint16_t vmid = 0;
  uint16_t asid = 0;    // when !global
  bool global = false;  // stage 1 nG == 0, or a regime without ASIDs, or a stage-2-only entry
  bool aset = false;    // ASET of the configuration that inserted a global entry
  uint64_t base = 0;    // input address of the span (VA, or IPA for kind s2)
  uint8_t size_log2 = 0;
  uint8_t granule = 0;  // log2 granule of the stage TLBIs by address name
  uint8_t level = 0;    // leaf level of that stage
  // Data: the walk's leaf. tr.oa/tr.ipa are those of the address that was walked; oa_base and
  // ipa_base are the span's.
  uint64_t oa_base = 0;
  uint64_t ipa_base = 0;  // stage 2's input for the span (kinds s12 and s2)
  Translation tr;
  Stage1 s1;  // the permission controls in force (wxn, pan, hd) when kind != s2
  Stage2 s2;  // the permission controls in force (xnx, hd) when kind != s1

  bool has_s1() const { return kind != TlbKind::s2; }
  bool has_s2() const { return kind != TlbKind::s1; }
  uint64_t span_mask() const { return (uint64_t{1} << size_log2) - 1; }
  uint64_t pa_of(uint64_t addr) const { return oa_base | (addr & span_mask()); }
  uint64_t ipa_of(uint64_t addr) const { return ipa_base | (addr & span_mask()); }
};

// Builds the entry a successful walk of `addr` in `ctx` yields. `s1`/`s2` are the stage
// configurations that walked (null for a bypassed stage).
TlbEntry make_tlb_entry(const TlbContext& ctx, uint64_t addr, const Translation& tr,
                        const Stage1* s1, const Stage2* s2);

// A writable-clean leaf (hardware dirty state on): a write must walk, so that the walk makes
// the descriptor dirty before the write is done (IHI 0070 3.13.3).
bool clean_for_write(const TlbEntry& e);

// The Permission fault a cached entry gives `access` at `addr` (CLASS IN, the first stage that
// refuses), or a fault of type none.
Fault check_permissions(const TlbEntry& e, uint64_t addr, Access access);

// The input address a stage-1 entry is tagged with: with TBI for the half VA[55] selects, bits
// [63:56] are taken as copies of bit 55 (IHI 0070 3.4.1), so tagged pointers share entries.
uint64_t tlb_tag_address(const Stage1& s1, uint64_t va);

// One CMD_TLBI_* scope, decoded (see the table at the top of this file).
struct TlbiScope {
  enum class Op : uint8_t {
    nh_all,
    nh_asid,
    nh_va,
    nh_vaa,
    s2_ipa,
    s12_vmall,
    nsnh_all,
    el2_all,
    el2_asid,
    el2_va,
    el2_vaa,
  };
  Op op = Op::nsnh_all;
  bool match_vmid = true;  // false without stage 2 in the SMMU
  uint16_t vmid = 0;
  uint16_t asid = 0;
  bool e2h = false;  // SMMU_CR2.E2H, for the EL2 by-address forms
  // By-address forms: [first, last], inclusive (a single address: first == last).
  uint64_t first = 0, last = 0;
  bool range = false;   // TG != 0: an overlap test rather than a point test
  uint8_t tg_log2 = 0;  // granule hint (0: none)
  uint8_t ttl = 0;      // level hint (0: none)
  bool leaf = false;    // Leaf (no walk cache, so no effect)
};

// Decodes a CMD_TLBI_* (already checked by check_command) for an SMMU with `config` and
// SMMU_CR2.E2H == `e2h`.
TlbiScope decode_tlbi(const ::strata::smmuv3::CmdTlbi& cmd, const Config& config, bool e2h);

class Tlb {
 public:
  // `sets` is rounded up to a power of two; at least one set of one way.
  Tlb(unsigned sets, unsigned ways);
  Tlb(const Tlb&) = delete;
  Tlb& operator=(const Tlb&) = delete;

  // The entry translating `addr` (a VA for kinds s1/s12, an IPA for s2) in `ctx`, copied to
  // `out`; false on a miss.
  bool lookup(const TlbContext& ctx, uint64_t addr, TlbEntry& out) const;

  // Inserts `e`, unless an invalidation ran since generation() returned `generation`: a walk that
  // overlapped an invalidation must not leave its result behind it (IHI 0070 3.21.1). An entry
  // with the same tags and span is replaced. Returns whether it was inserted.
  bool insert(const TlbEntry& e, uint64_t generation);

  // Removes every entry in `scope`; returns how many.
  size_t invalidate(const TlbiScope& scope);
  void invalidate_all();

  // Incremented by every invalidation, after its entries are gone.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

  size_t size() const;
  size_t capacity() const { return slots_.size(); }
  uint64_t evictions() const;
  // Entries a TG or TTL hint did not describe but that were invalidated anyway (see above).
  uint64_t hint_mismatches() const;

 private:
  struct Slot {
    bool valid = false;
    TlbEntry e;
  };

  size_t set_of(TlbKind kind, StreamWorld world, uint16_t vmid, uint64_t addr,
                unsigned size_log2) const;
  bool matches_locked(const TlbEntry& e, const TlbContext& ctx, uint64_t addr) const;
  bool in_scope(const TlbEntry& e, const TlbiScope& s) const;
  void erase_locked(Slot& s);

  const unsigned ways_;
  const size_t set_mask_;

  mutable std::mutex mu_;  // guards everything below; a leaf lock
  std::vector<Slot> slots_;
  std::vector<uint8_t> victim_;   // next way to replace, per set
  uint32_t size_count_[64] = {};  // valid entries per size_log2
  uint64_t sizes_ = 0;            // bit n: some entry has size_log2 n
  size_t size_ = 0;
  uint64_t evictions_ = 0;
  uint64_t hint_mismatches_ = 0;
  std::atomic<uint64_t> generation_{0};
};

}  // namespace strata::sim::smmuv3
