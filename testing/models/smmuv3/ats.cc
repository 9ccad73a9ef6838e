// SPDX-License-Identifier: MIT
#include "testing/models/smmuv3/ats.h"

namespace strata::sim::smmuv3 {

const char* name(AtsCompletion::Status s) {
  switch (s) {
    case AtsCompletion::Status::kSuccess: return "Success";
    case AtsCompletion::Status::kUnsupportedRequest: return "UR";
    case AtsCompletion::Status::kCompleterAbort: return "CA";
  }
  return "?";
}

// A span of 2^n bytes, n > 12, is sent as its base with Address[n-2:12] all ones and
// Address[n-1] zero, S set (PCIe Invalidate Request; the Translation Completion's size code).
uint64_t AtcInvalidation::pcie_address() const {
  if (size_log2 <= 12) return address & ~uint64_t{0xfff};
  const uint64_t ones = ((uint64_t{1} << (size_log2 - 1)) - 1) & ~uint64_t{0xfff};
  return address | ones;
}

AtsRange decode_invalidate_range(uint64_t pcie_address, bool s) {
  const uint64_t addr = pcie_address & ~uint64_t{0xfff};
  if (!s) return AtsRange{.first = addr, .last = addr + 0xfff};
  const uint64_t zeros = ~addr & ~uint64_t{0xfff};
  // All of Address[63:12] set, or the lowest zero at bit 63: the whole address space.
  if (zeros == 0) return AtsRange{.first = 0, .last = ~uint64_t{0}};
  const unsigned n = static_cast<unsigned>(__builtin_ctzll(zeros));
  if (n + 1 >= 64) return AtsRange{.first = 0, .last = ~uint64_t{0}};
  const uint64_t mask = (uint64_t{2} << n) - 1;
  return AtsRange{.first = addr & ~mask, .last = (addr & ~mask) | mask};
}

uint64_t AtcInvTracker::issue() {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t id = next_id_++;
  outstanding_.insert(id);
  return id;
}

void AtcInvTracker::complete(uint64_t id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (outstanding_.erase(id) == 0) {
      if (id < next_id_) ++late_;  // retired by a timeout (or completed twice)
      return;
    }
    ++completed_;
  }
  cv_.notify_all();
}

bool AtcInvTracker::wait_issued(std::chrono::nanoseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t limit = next_id_;
  auto done = [&] { return outstanding_.empty() || *outstanding_.begin() >= limit; };
  if (cv_.wait_for(lock, timeout, done)) return true;
  // 3.9.1.4: the invalidations that did not complete have failed; the CMD_SYNC reports it, and
  // a repeated CMD_SYNC does not wait for them again.
  while (!outstanding_.empty() && *outstanding_.begin() < limit) {
    outstanding_.erase(outstanding_.begin());
    ++timed_out_;
  }
  return false;
}

void AtcInvTracker::retire_all() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    outstanding_.clear();
  }
  cv_.notify_all();
}

uint64_t AtcInvTracker::completed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return completed_;
}

uint64_t AtcInvTracker::late() const {
  std::lock_guard<std::mutex> lock(mu_);
  return late_;
}

uint64_t AtcInvTracker::timed_out() const {
  std::lock_guard<std::mutex> lock(mu_);
  return timed_out_;
}

}  // namespace strata::sim::smmuv3
