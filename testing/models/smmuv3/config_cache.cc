// SPDX-License-Identifier: MIT
#include "testing/models/smmuv3/config_cache.h"

#include <algorithm>

#include "arch/smmuv3/cd.h"
#include "arch/smmuv3/ste.h"

namespace strata::sim::smmuv3 {
namespace {

using arch::EventRecord;
using arch::EventType;
using arch::L1STD;

constexpr uint64_t bits_below(unsigned n) {
  return n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1;
}

constexpr uint64_t cd_key(uint32_t sid, uint32_t index) { return uint64_t{sid} << 20 | index; }

// STRTAB_BASE_CFG.SPLIT as the SMMU uses it: 6, 8 or 10; other values behave as 6 (6.3.25).
unsigned effective_split(const StreamTableRegs& regs) {
  const unsigned split =
      static_cast<unsigned>(regs.STRTAB_BASE_CFG.get<arch::STRTAB_BASE_CFG::SPLIT>());
  return split == arch::kSplit4K || split == arch::kSplit16K || split == arch::kSplit64K
             ? split
             : arch::kSplit4K;
}

bool two_level(const Config& config, const StreamTableRegs& regs) {
  return config.st_2level &&
         regs.STRTAB_BASE_CFG.get<arch::STRTAB_BASE_CFG::FMT>() == arch::kStrtabFmt2Level;
}

// What 3.21.3 lets a cache keep: a structure that was fetched, valid or not. Fetch aborts and
// stage-2 faults on CD fetches are not remembered.
bool ste_cacheable(const ConfigResult& r) {
  return r.ok() || r.event_type() == EventType::C_BAD_STE;
}
bool cd_cacheable(const ConfigResult& r) {
  return (r.ok() && r.cd) || (!r.ok() && r.event_type() == EventType::C_BAD_CD);
}
bool l1cd_error(LookupError e) {
  return e == LookupError::l1cd_invalid || e == LookupError::l1cd_reserved ||
         e == LookupError::l1cd_range;
}

// The record's header as this request would have produced it: a cached error raised for
// another transaction of the stream carries that transaction's SSV and SubstreamID.
// `no_ssv_ssid` >= 0 gives the C_BAD_SUBSTREAMID form (7.3.9: no SSV, the CD index).
std::shared_ptr<const ConfigResult> with_header(std::shared_ptr<const ConfigResult> r,
                                                const StreamRequest& req,
                                                int64_t no_ssv_ssid = -1) {
  if (r->ok()) return r;
  EventRecord e = r->event;
  e.set<EventRecord::StreamID>(req.sid);
  if (no_ssv_ssid >= 0)
    e.set<EventRecord::SSV>(0).set<EventRecord::SubstreamID>(static_cast<uint64_t>(no_ssv_ssid));
  else
    e.set<EventRecord::SSV>(req.ssv).set<EventRecord::SubstreamID>(req.ssv ? req.ssid : 0);
  bool same = true;
  for (unsigned i = 0; i < EventRecord::kWords; ++i) same = same && e.word(i) == r->event.word(i);
  if (same) return r;
  auto copy = std::make_shared<ConfigResult>(*r);
  copy->event = e;
  return copy;
}

// The substream step of the lookup (5.2 S1CDMax, S1DSS; the same rules as
// ConfigLookup::lookup_cd): which CD the transaction uses.
enum class CdStep { none, error, index };
CdStep cd_step(const StreamConfig& ste, const StreamRequest& req, unsigned ssidsize,
               uint32_t& index) {
  if (req.ssv) {
    if (!ste.stage1() || ssidsize == 0 || ste.S1CDMax == 0 || (req.ssid >> ste.S1CDMax) ||
        (ste.S1DSS == arch::kS1dssSsid0 && req.ssid == 0))
      return CdStep::error;
    index = req.ssid;
    return CdStep::index;
  }
  if (!ste.stage1()) return CdStep::none;
  if (ste.S1CDMax != 0) {
    if (ste.S1DSS == arch::kS1dssTerminate) return CdStep::error;
    if (ste.S1DSS == arch::kS1dssBypass) return CdStep::none;
  }
  index = 0;
  return CdStep::index;
}

}  // namespace

ConfigCache::ConfigCache(const Config& config, const Geometry& geometry)
    : config_(config), geometry_(geometry), lookup_(config) {}

ConfigCache::Lookup ConfigCache::lookup(PhysMem& mem, const StreamTableRegs& regs,
                                        const StreamRequest& req) {
  Lookup out;
  const uint64_t gen = generation();
  ResultPtr ste_r;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = stes_.find(req.sid); it != stes_.end()) ste_r = it->second;
  }
  if (ste_r) {
    out.ste_hit = true;
    ste_r = with_header(std::move(ste_r), req);
  } else {
    ste_r = fetch_ste(mem, regs, req, gen, out);
  }
  if (!ste_r->ok() || ste_r->ste->mode == StreamMode::abort) {
    out.result = std::move(ste_r);
    return out;
  }

  const StreamConfig& ste = *ste_r->ste;
  uint32_t index = 0;
  switch (cd_step(ste, req, config_.ssidsize, index)) {
    case CdStep::none: out.result = std::move(ste_r); return out;
    case CdStep::error:
      // No structure is read: the lookup only builds the record.
      out.result = std::make_shared<ConfigResult>(lookup_.lookup_cd(mem, ste, req));
      return out;
    case CdStep::index: break;
  }
  out.cd_used = true;
  ResultPtr cd_r;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = cds_.find(cd_key(req.sid, index)); it != cds_.end()) cd_r = it->second;
  }
  if (cd_r) {
    out.cd_hit = true;
    out.result = with_header(std::move(cd_r), req);
    return out;
  }
  out.result = fetch_cd(mem, ste, req, index, gen, out);
  return out;
}

ConfigCache::Lookup ConfigCache::lookup_ste(PhysMem& mem, const StreamTableRegs& regs,
                                            const StreamRequest& req) {
  Lookup out;
  const uint64_t gen = generation();
  ResultPtr ste_r;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = stes_.find(req.sid); it != stes_.end()) ste_r = it->second;
  }
  if (ste_r) {
    out.ste_hit = true;
    out.result = with_header(std::move(ste_r), req);
  } else {
    out.result = fetch_ste(mem, regs, req, gen, out);
  }
  return out;
}

ConfigCache::ResultPtr ConfigCache::fetch_ste(PhysMem& mem, const StreamTableRegs& regs,
                                              const StreamRequest& req, uint64_t gen, Lookup& out) {
  if (!two_level(config_, regs)) {
    auto r = std::make_shared<const ConfigResult>(lookup_.lookup_ste(mem, regs, req));
    if (ste_cacheable(*r)) insert_ste(req.sid, r, gen);
    return r;
  }

  // A 2-level table: the L1STD is a structure of its own, cached apart from the STEs.
  const unsigned log2size =
      static_cast<unsigned>(regs.STRTAB_BASE_CFG.get<arch::STRTAB_BASE_CFG::LOG2SIZE>());
  if (req.sid >> std::min(log2size, config_.sidsize))  // C_BAD_STREAMID, nothing fetched
    return std::make_shared<const ConfigResult>(lookup_.lookup_ste(mem, regs, req));
  const unsigned split = effective_split(regs);
  const uint32_t l1_index = arch::strtab_l1_index(req.sid, split);
  uint64_t desc = 0;
  bool have = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = l1stds_.find(l1_index); it != l1stds_.end()) {
      desc = it->second;
      have = true;
    }
  }
  if (have) {
    out.l1_hit = true;
  } else {
    const unsigned l1_align = log2size > split ? std::max(6u, log2size - split + 3) : 6;
    const uint64_t l1_addr =
        (regs.STRTAB_BASE.get<arch::STRTAB_BASE::ADDR>() & ~bits_below(l1_align)) +
        uint64_t{l1_index} * sizeof(L1STD);
    Result<uint64_t> w =
        (l1_addr >> config_.oas_bits()) ? Result<uint64_t>(Error(-EFAULT)) : mem.read64(l1_addr);
    // An aborted fetch: the lookup reports F_STE_FETCH (reading again), nothing is cached.
    if (!w.ok()) return std::make_shared<const ConfigResult>(lookup_.lookup_ste(mem, regs, req));
    desc = *w;
    std::lock_guard<std::mutex> lock(mu_);
    if (generation_.load(std::memory_order_relaxed) == gen) {
      if (l1stds_.size() >= geometry_.l1_entries && !l1stds_.count(l1_index)) {
        l1stds_.erase(l1stds_.begin());
        ++evictions_;
      }
      l1stds_[l1_index] = desc;
    }
  }

  // The L1STD's checks (5.1.1, 7.3.3): each makes the StreamID invalid, C_BAD_STREAMID.
  auto bad_streamid = [&](LookupError why) {
    auto r = std::make_shared<ConfigResult>();
    r->error = why;
    r->event.set<EventRecord::Type>(static_cast<uint64_t>(EventType::C_BAD_STREAMID))
        .set<EventRecord::StreamID>(req.sid);
    if (req.ssv) r->event.set<EventRecord::SSV>(1).set<EventRecord::SubstreamID>(req.ssid);
    r->record = regs.CR2.get<arch::CR2::RECINVSID>();
    return r;
  };
  L1STD l1;
  l1.set_word(0, desc);
  if (desc & ~L1STD::Fields::declared(0)) return bad_streamid(LookupError::l1std_reserved);
  const unsigned span = static_cast<unsigned>(l1.get<L1STD::Span>());
  if (arch::l1std_span_entries(span) == 0) return bad_streamid(LookupError::l1std_span_invalid);
  if (span > split + 1) return bad_streamid(LookupError::l1std_span_large);
  const uint32_t l2_index = arch::strtab_l2_index(req.sid, split);
  if (l2_index >= arch::l1std_span_entries(span)) return bad_streamid(LookupError::sid_beyond_span);

  // The level-2 array is a linear table of 2^(Span - 1) STEs at L2Ptr: look the STE up there,
  // then put the real StreamID back in the record.
  StreamTableRegs l2regs = regs;
  l2regs.STRTAB_BASE = arch::STRTAB_BASE{}.set<arch::STRTAB_BASE::ADDR>(l1.get<L1STD::L2Ptr>());
  l2regs.STRTAB_BASE_CFG = arch::STRTAB_BASE_CFG{}
                               .set<arch::STRTAB_BASE_CFG::LOG2SIZE>(span - 1)
                               .set<arch::STRTAB_BASE_CFG::FMT>(arch::kStrtabFmtLinear);
  StreamRequest l2req = req;
  l2req.sid = l2_index;
  auto r = std::make_shared<ConfigResult>(lookup_.lookup_ste(mem, l2regs, l2req));
  if (!r->ok()) r->event.set<EventRecord::StreamID>(req.sid);
  if (ste_cacheable(*r)) insert_ste(req.sid, r, gen);
  return r;
}

ConfigCache::ResultPtr ConfigCache::fetch_cd(PhysMem& mem, const StreamConfig& ste,
                                             const StreamRequest& req, uint32_t index, uint64_t gen,
                                             Lookup& out) {
  if (ste.S1Fmt == arch::kS1FmtLinear) {
    auto r = std::make_shared<const ConfigResult>(lookup_.lookup_cd(mem, ste, req));
    if (cd_cacheable(*r)) insert_cd(req.sid, index, r, gen);
    return r;
  }

  // A 2-level CD table: the L1CD is cached apart from the CDs.
  const unsigned l2_bits = ste.S1Fmt == arch::kS1Fmt4KL2 ? arch::kCdL2Bits4K : arch::kCdL2Bits64K;
  const uint32_t l2_mask = (uint32_t{1} << l2_bits) - 1;
  const uint64_t l1_key = cd_key(req.sid, index & ~l2_mask);
  L1cd l1;
  bool have = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = l1cds_.find(l1_key); it != l1cds_.end() && it->second.l2_bits == l2_bits) {
      l1 = it->second;
      have = true;
    }
  }

  if (!have) {
    // The whole walk, L1CD included; what it found out about the L1CD is remembered: its
    // level-2 table when the CD was found (the CD's address gives it), or its error.
    auto r = std::make_shared<const ConfigResult>(lookup_.lookup_cd(mem, ste, req));
    bool learnt = false;
    if (r->ok() && r->cd) {
      l1.l2_bits = static_cast<uint8_t>(l2_bits);
      l1.l2 = r->cd->cd_addr - uint64_t{index & l2_mask} * sizeof(arch::CD);
      learnt = true;
    } else if (!r->ok() && l1cd_error(r->error)) {
      l1.l2_bits = static_cast<uint8_t>(l2_bits);
      l1.error = r;
      learnt = true;
    }
    if (learnt) {
      std::lock_guard<std::mutex> lock(mu_);
      if (generation_.load(std::memory_order_relaxed) == gen && stes_.count(req.sid)) {
        if (l1cds_.size() >= geometry_.l1_entries && !l1cds_.count(l1_key)) {
          auto victim = l1cds_.upper_bound(l1cd_cursor_);
          if (victim == l1cds_.end()) victim = l1cds_.begin();
          l1cd_cursor_ = victim->first;
          l1cds_.erase(victim);
          ++evictions_;
        }
        l1cds_[l1_key] = l1;
      }
    }
    if (cd_cacheable(*r)) insert_cd(req.sid, index, r, gen);
    return r;
  }

  out.l1_hit = true;
  if (l1.error) return with_header(l1.error, req, index);  // 7.3.9: the CD's index, no SSV
  // The level-2 table is a linear CD table of 2^l2_bits CDs at the cached L2Ptr: look the CD up
  // there (SubstreamID 0 is an ordinary index in it), then restore what the transaction had.
  StreamConfig l2ste = ste;
  l2ste.S1Fmt = static_cast<uint8_t>(arch::kS1FmtLinear);
  l2ste.S1ContextPtr = l1.l2;
  l2ste.S1CDMax = static_cast<uint8_t>(l2_bits);
  l2ste.S1DSS = static_cast<uint8_t>(arch::kS1dssTerminate);
  StreamRequest l2req = req;
  l2req.ssv = true;
  l2req.ssid = index & l2_mask;
  auto r = std::make_shared<ConfigResult>(lookup_.lookup_cd(mem, l2ste, l2req));
  r->ste = ste;
  if (r->cd) r->cd->ssid = index;
  if (!r->ok()) {
    r->event.set<EventRecord::SSV>(req.ssv).set<EventRecord::SubstreamID>(req.ssv ? req.ssid : 0);
  }
  if (cd_cacheable(*r)) insert_cd(req.sid, index, r, gen);
  return r;
}

void ConfigCache::insert_ste(uint32_t sid, const ResultPtr& r, uint64_t gen) {
  std::lock_guard<std::mutex> lock(mu_);
  if (generation_.load(std::memory_order_relaxed) != gen) return;
  if (!stes_.count(sid)) {
    if (stes_.size() >= geometry_.ste_entries) {
      const uint32_t victim = stes_.begin()->first;
      erase_stream_locked(victim);
      stes_.erase(victim);
      ++evictions_;
    }
    // CDs cached through an STE go with it: none may outlive it into a refill.
    erase_stream_locked(sid);
  }
  stes_[sid] = r;
}

void ConfigCache::insert_cd(uint32_t sid, uint32_t index, const ResultPtr& r, uint64_t gen) {
  std::lock_guard<std::mutex> lock(mu_);
  // Only with the STE it was fetched through still cached (see the header).
  if (generation_.load(std::memory_order_relaxed) != gen || !stes_.count(sid)) return;
  const uint64_t key = cd_key(sid, index);
  if (cds_.size() >= geometry_.cd_entries && !cds_.count(key)) {
    auto victim = cds_.upper_bound(cd_cursor_);
    if (victim == cds_.end()) victim = cds_.begin();
    cd_cursor_ = victim->first;
    cds_.erase(victim);
    ++evictions_;
  }
  cds_[key] = r;
}

void ConfigCache::erase_stream_locked(uint32_t sid) {
  const uint64_t lo = cd_key(sid, 0), hi = cd_key(sid, 0) + (uint64_t{1} << 20);
  auto a = cds_.lower_bound(lo);
  auto b = cds_.lower_bound(hi);
  invalidated_ += static_cast<uint64_t>(std::distance(a, b));
  cds_.erase(a, b);
  auto c = l1cds_.lower_bound(lo);
  auto d = l1cds_.lower_bound(hi);
  invalidated_ += static_cast<uint64_t>(std::distance(c, d));
  l1cds_.erase(c, d);
}

size_t ConfigCache::erase_l1std_locked(const StreamTableRegs& regs, uint32_t first_sid,
                                       uint64_t count) {
  const unsigned split = effective_split(regs);
  const uint64_t lo = uint64_t{first_sid} >> split;
  const uint64_t hi = (uint64_t{first_sid} + count - 1) >> split;
  size_t n = 0;
  for (auto it = l1stds_.begin(); it != l1stds_.end();) {
    if (it->first >= lo && it->first <= hi) {
      it = l1stds_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

void ConfigCache::invalidate_ste(const StreamTableRegs& regs, uint32_t sid, bool leaf) {
  std::lock_guard<std::mutex> lock(mu_);
  invalidated_ += stes_.erase(sid);
  erase_stream_locked(sid);  // 4.3.1: "all Context Descriptors (including L1CD)"
  if (!leaf) invalidated_ += erase_l1std_locked(regs, sid, 1);
  bump_locked();
}

void ConfigCache::invalidate_ste_range(const StreamTableRegs& regs, uint32_t sid, unsigned range) {
  const uint64_t count = uint64_t{2} << range;  // 2^(Range + 1), aligned (4.3.2)
  const uint32_t first = static_cast<uint32_t>(uint64_t{sid} & ~(count - 1));
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = stes_.begin(); it != stes_.end();) {
    if (it->first >= first && uint64_t{it->first} < first + count) {
      it = stes_.erase(it);
      ++invalidated_;
    } else {
      ++it;
    }
  }
  const uint64_t lo = cd_key(first, 0), hi = (uint64_t{first} + count) << 20;
  auto a = cds_.lower_bound(lo), b = cds_.lower_bound(hi);
  invalidated_ += static_cast<uint64_t>(std::distance(a, b));
  cds_.erase(a, b);
  auto c = l1cds_.lower_bound(lo), d = l1cds_.lower_bound(hi);
  invalidated_ += static_cast<uint64_t>(std::distance(c, d));
  l1cds_.erase(c, d);
  invalidated_ += erase_l1std_locked(regs, first, count);
  bump_locked();
}

void ConfigCache::invalidate_all() {
  std::lock_guard<std::mutex> lock(mu_);
  invalidated_ += stes_.size() + l1stds_.size() + cds_.size() + l1cds_.size();
  stes_.clear();
  l1stds_.clear();
  cds_.clear();
  l1cds_.clear();
  bump_locked();
}

void ConfigCache::invalidate_cd(uint32_t sid, uint32_t ssid, bool leaf) {
  std::lock_guard<std::mutex> lock(mu_);
  invalidated_ += cds_.erase(cd_key(sid, ssid));
  if (!leaf) {
    // The L1CD that locates CD `ssid`, whichever level-2 table size it was cached with.
    for (unsigned l2_bits : {arch::kCdL2Bits4K, arch::kCdL2Bits64K}) {
      const uint32_t first = ssid & ~((uint32_t{1} << l2_bits) - 1);
      auto it = l1cds_.find(cd_key(sid, first));
      if (it != l1cds_.end() && it->second.l2_bits == l2_bits) {
        l1cds_.erase(it);
        ++invalidated_;
      }
    }
  }
  bump_locked();
}

void ConfigCache::invalidate_cd_all(uint32_t sid) {
  std::lock_guard<std::mutex> lock(mu_);
  erase_stream_locked(sid);
  bump_locked();
}

ConfigCache::Stats ConfigCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return Stats{.stes = stes_.size(),
               .cds = cds_.size(),
               .l1stds = l1stds_.size(),
               .l1cds = l1cds_.size(),
               .evictions = evictions_,
               .invalidated = invalidated_};
}

}  // namespace strata::sim::smmuv3
