// SPDX-License-Identifier: MIT
#include "testing/models/smmuv3/sim_ats_device.h"

#include <algorithm>
#include <utility>

namespace strata::sim::smmuv3 {

SimAtsDevice::SimAtsDevice(Smmuv3& smmu, uint32_t sid, const Options& options)
    : smmu_(smmu), sid_(sid), options_(options), ats_(options.ats) {
  smmu_.attach_endpoint(sid_, this);
}

SimAtsDevice::~SimAtsDevice() {
  smmu_.detach_endpoint(sid_);  // no callback runs after this
  std::vector<Pending> pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending.swap(pending_);
  }
  for (const Pending& p : pending) p.done.complete();
}

SimAtsDevice::DmaOutcome SimAtsDevice::read(bool ssv, uint32_t ssid, uint64_t addr, void* buf,
                                            size_t len, Access access) {
  return dma(ssv, ssid, addr, static_cast<uint8_t*>(buf), len, access, false);
}

SimAtsDevice::DmaOutcome SimAtsDevice::write(bool ssv, uint32_t ssid, uint64_t addr,
                                             const void* buf, size_t len, Access access) {
  // Only read from: the const is dropped to share the loop with read().
  return dma(ssv, ssid, addr, static_cast<uint8_t*>(const_cast<void*>(buf)), len, access, true);
}

AtsCompletion SimAtsDevice::translate(bool ssv, uint32_t ssid, uint64_t addr, Access access) {
  if (!ssv) {  // Exe and Priv travel in the PASID prefix (13.7)
    ssid = 0;
    access.priv = access.instr = false;
  }
  uint64_t gen;
  {
    std::lock_guard<std::mutex> lock(mu_);
    gen = inval_gen_;
    counters_.translation_requests++;
  }
  const AtsCompletion c = smmu_.ats_translate(AtsTranslationRequest{.sid = sid_,
                                                                    .ssv = ssv,
                                                                    .ssid = ssid,
                                                                    .address = addr,
                                                                    .nw = !access.write,
                                                                    .exe = access.instr,
                                                                    .priv = access.priv});
  if (!c.success() || !(c.R || c.W || c.Exe)) return c;
  std::lock_guard<std::mutex> lock(mu_);
  // An Invalidate Request that arrived while the request was outstanding may cover it: the
  // completion may be older than the change, so it is not cached (PCIe ATS).
  if (gen != inval_gen_) {
    counters_.completions_discarded++;
    return c;
  }
  if (!ats_) return c;
  Entry e;
  e.ssv = ssv;
  e.ssid = ssid;
  e.priv = access.priv;
  e.size_log2 = c.size_log2;
  e.base = addr & ~e.mask();
  e.translated = c.translated_address & ~e.mask();
  e.R = c.R;
  e.W = c.W;
  e.Exe = c.Exe;
  insert_locked(e);
  return c;
}

void SimAtsDevice::insert_locked(const Entry& e) {
  // One entry per (PASID, privilege, span): a new completion replaces what overlaps it.
  std::erase_if(atc_, [&](const Entry& o) {
    return o.ssv == e.ssv && o.ssid == e.ssid && o.priv == e.priv &&
           (o.covers(e.base) || e.covers(o.base));
  });
  atc_.push_back(e);
  while (atc_.size() > std::max<size_t>(options_.atc_entries, 1)) atc_.pop_front();
}

bool SimAtsDevice::use_locked(bool ssv, uint32_t ssid, uint64_t addr, Access a, Entry& out,
                              uint64_t& epoch) {
  if (!ats_) return false;
  for (auto it = atc_.rbegin(); it != atc_.rend(); ++it) {
    if (it->ssv == ssv && it->ssid == ssid && it->priv == a.priv && it->covers(addr) &&
        it->grants(a)) {
      out = *it;
      epoch = epoch_;
      ++in_flight_[epoch_];
      return true;
    }
  }
  return false;
}

std::vector<AtcInvDone> SimAtsDevice::ready_locked() {
  std::vector<AtcInvDone> ready;
  const uint64_t oldest = in_flight_.empty() ? ~uint64_t{0} : in_flight_.begin()->first;
  std::erase_if(pending_, [&](Pending& p) {
    if (oldest < p.epoch) return false;
    ready.push_back(std::move(p.done));
    return true;
  });
  return ready;
}

void SimAtsDevice::end_use(uint64_t epoch) {
  std::vector<AtcInvDone> ready;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = in_flight_.find(epoch);
    if (--it->second == 0) in_flight_.erase(it);
    ready = ready_locked();
  }
  for (const AtcInvDone& d : ready) d.complete();
}

SimAtsDevice::DmaOutcome SimAtsDevice::dma(bool ssv, uint32_t ssid, uint64_t addr, uint8_t* buf,
                                           size_t len, Access access, bool write) {
  access.write = write;
  if (write) access.instr = false;
  if (!ssv) {
    ssid = 0;
    access.priv = access.instr = false;
  }
  DmaOutcome out;
  auto merge = [&](const DmaResult& r) {
    out.result.done += r.done;
    out.result.status = r.status;
    out.result.fault = r.fault;
    out.result.bus_pa = r.bus_pa;
    return r.ok();
  };
  while (out.result.done < len) {
    const uint64_t a = addr + out.result.done;
    const uint64_t left = len - out.result.done;
    bool ats;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ats = ats_;
    }
    Entry e;
    uint64_t epoch = 0;
    bool have = false;
    bool asked = false;
    out.atc_hit = false;
    // A racing invalidation can remove the entry a completion just filled: ask again.
    for (int attempt = 0; ats && attempt < 8; ++attempt) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        have = use_locked(ssv, ssid, a, access, e, epoch);
        if (have && attempt == 0) {
          out.atc_hit = true;
          counters_.atc_hits++;
        }
      }
      if (have) break;
      out.completion = translate(ssv, ssid, a, access);
      asked = true;
      if (!out.completion.grants(access)) break;
    }

    if (!have) {
      if (ats && asked && out.completion.success()) {
        // Translated, but not for this access: the device may not make it (3.9.1).
        out.path = Path::kDenied;
        std::lock_guard<std::mutex> lock(mu_);
        counters_.denied++;
        return out;
      }
      // ATS disabled, or unusable for this address (UR, CA): an Untranslated transaction.
      out.path = Path::kUntranslated;
      {
        std::lock_guard<std::mutex> lock(mu_);
        counters_.untranslated++;
      }
      const size_t chunk = static_cast<size_t>(std::min<uint64_t>(left, 0x1000 - (a & 0xfff)));
      const DmaRequest req{.sid = sid_, .ssv = ssv, .ssid = ssid, .iova = a, .access = access};
      if (!merge(write ? smmu_.dma_write(req, buf + out.result.done, chunk)
                       : smmu_.dma_read(req, buf + out.result.done, chunk)))
        return out;
      continue;
    }

    out.path = Path::kTranslated;
    const uint64_t in_span = e.mask() - (a & e.mask());
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(left - 1, in_span) + 1);
    const uint64_t ta = e.translated | (a & e.mask());
    smmu_.check_atc(DmaRequest{.sid = sid_, .ssv = ssv, .ssid = ssid, .iova = a, .access = access},
                    ta);
    const DmaRequest req{.sid = sid_, .iova = ta, .access = access, .translated = true};
    const DmaResult r = write ? smmu_.dma_write(req, buf + out.result.done, chunk)
                              : smmu_.dma_read(req, buf + out.result.done, chunk);
    {
      std::lock_guard<std::mutex> lock(mu_);
      counters_.translated++;
    }
    end_use(epoch);
    if (!merge(r)) return out;
  }
  return out;
}

bool SimAtsDevice::atc_holds(bool ssv, uint32_t ssid, uint64_t addr, bool priv) const {
  std::lock_guard<std::mutex> lock(mu_);
  return std::any_of(atc_.begin(), atc_.end(), [&](const Entry& e) {
    return e.ssv == ssv && e.ssid == (ssv ? ssid : 0) && e.priv == priv && e.covers(addr);
  });
}

size_t SimAtsDevice::atc_size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return atc_.size();
}

void SimAtsDevice::set_ats(bool enable) {
  std::lock_guard<std::mutex> lock(mu_);
  ats_ = enable;
  if (!enable) atc_.clear();
}

void SimAtsDevice::atc_invalidate(const AtcInvalidation& inv, AtcInvDone done) {
  // The range as the wire carries it, decoded as the device does.
  const AtsRange range = decode_invalidate_range(inv.pcie_address(), inv.pcie_s());
  const bool global = inv.ssv && inv.global && options_.global_invalidate;
  bool now = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    counters_.invalidations++;
    invalidations_.push_back(inv);
    ++inval_gen_;
    const size_t before = atc_.size();
    std::erase_if(atc_, [&](const Entry& e) {
      const bool overlaps = e.base <= range.last && (e.base | e.mask()) >= range.first;
      const bool selected = !inv.ssv || (e.ssv && (global || e.ssid == inv.ssid));
      return overlaps && selected;
    });
    counters_.invalidated_entries += before - atc_.size();
    // Transactions that may have used a removed entry are those in flight now: the completion
    // waits for them (a new epoch starts for later ones).
    ++epoch_;
    if (in_flight_.empty() || in_flight_.begin()->first >= epoch_) {
      now = true;
    } else {
      pending_.push_back(Pending{.epoch = epoch_, .done = std::move(done)});
      counters_.deferred_completions++;
    }
  }
  if (now) done.complete();
}

void SimAtsDevice::prg_response(const PrgResponse& response) {
  std::lock_guard<std::mutex> lock(mu_);
  responses_.push_back(response);
  counters_.prg_responses++;
  const uint16_t prgi = response.prg_index;
  auto it = outstanding_.end();
  if (response.ssv) {
    it = outstanding_.find(PrgKey{true, response.ssid, prgi});
  } else {
    // Without a PASID the response names the group by index alone (STE.PPAR == 0 answers a
    // PASID request that way).
    it = outstanding_.find(PrgKey{false, 0, prgi});
    if (it == outstanding_.end())
      it = std::find_if(outstanding_.begin(), outstanding_.end(),
                        [&](const PrgKey& k) { return std::get<2>(k) == prgi; });
  }
  if (it == outstanding_.end()) {
    counters_.unexpected_prg_responses++;
    return;
  }
  outstanding_.erase(it);
}

PriResult SimAtsDevice::page_request(const PageRequest& in) {
  PageRequest req = in;
  req.sid = sid_;
  if (!req.ssv) {
    req.ssid = 0;
    req.exe = req.priv = false;
  }
  req.prg_index &= 0x1ff;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!options_.pri) return PriResult{.kind = PriResult::Kind::kDiscarded};
    counters_.page_requests++;
    // Outstanding before it is sent: an automatic response comes back inside the call.
    if (!req.stop_marker()) outstanding_.insert(PrgKey{req.ssv, req.ssid, req.prg_index});
  }
  return smmu_.page_request(req);
}

std::vector<PrgResponse> SimAtsDevice::prg_responses() const {
  std::lock_guard<std::mutex> lock(mu_);
  return responses_;
}

size_t SimAtsDevice::outstanding_prgs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return outstanding_.size();
}

std::vector<AtcInvalidation> SimAtsDevice::invalidations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return invalidations_;
}

SimAtsDevice::Counters SimAtsDevice::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

}  // namespace strata::sim::smmuv3
