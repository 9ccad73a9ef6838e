// SPDX-License-Identifier: MIT
#include "testing/models/regs/register_file.h"

#include <utility>

#include <fmt/format.h>

#include "arch/bug.h"
#include "arch/log.h"

namespace strata::sim {
namespace {

constexpr uint64_t width_mask(unsigned bytes) {
  return bytes == 8 ? ~uint64_t{0} : (uint64_t{1} << (bytes * 8)) - 1;
}

}  // namespace

RegisterFile::Handle& RegisterFile::Handle::on_write(WriteHook hook) {
  std::lock_guard<std::mutex> lock(file_->mutex_);
  file_->reg_locked(offset_).on_write = std::move(hook);
  return *this;
}

RegisterFile::Handle& RegisterFile::Handle::on_read(ReadHook hook) {
  std::lock_guard<std::mutex> lock(file_->mutex_);
  file_->reg_locked(offset_).on_read = std::move(hook);
  return *this;
}

RegisterFile::Handle& RegisterFile::Handle::guard(WriteGuard guard) {
  std::lock_guard<std::mutex> lock(file_->mutex_);
  file_->reg_locked(offset_).guard = std::move(guard);
  return *this;
}

uint64_t RegisterFile::LockedView::value(uint64_t offset) const {
  return file_.reg_locked(offset).value;
}

RegisterFile::RegisterFile(std::string name) : name_(std::move(name)) {}

RegisterFile::Handle RegisterFile::define32(uint64_t offset, std::string name, uint32_t reset,
                                            uint32_t wmask, uint32_t w1cmask, uint32_t womask) {
  return define(offset, std::move(name), 4, reset, wmask, w1cmask, womask);
}

RegisterFile::Handle RegisterFile::define64(uint64_t offset, std::string name, uint64_t reset,
                                            uint64_t wmask, uint64_t w1cmask, uint64_t womask) {
  return define(offset, std::move(name), 8, reset, wmask, w1cmask, womask);
}

RegisterFile::Handle RegisterFile::define(uint64_t offset, std::string name, unsigned width,
                                          uint64_t reset, uint64_t wmask, uint64_t w1cmask,
                                          uint64_t womask) {
  // Every check here is about the model's own definition table, hence a BUG.
  STRATA_BUG_ON(offset % width != 0);
  STRATA_BUG_ON((wmask & w1cmask) != 0);  // a bit is either stored or cleared by a write
  const uint64_t wm = width_mask(width);
  STRATA_BUG_ON((reset | wmask | w1cmask | womask) & ~wm);

  std::lock_guard<std::mutex> lock(mutex_);
  // Registers are aligned to their width, so the only possible overlaps are: the same offset,
  // a 64-bit register starting 4 bytes below, or (for a 64-bit one) a register in its high half.
  STRATA_BUG_ON(regs_.count(offset) != 0);
  if (offset >= 4) {
    auto below = regs_.find(offset - 4);
    STRATA_BUG_ON(below != regs_.end() && below->second.width == 8);
  }
  if (width == 8) STRATA_BUG_ON(regs_.count(offset + 4) != 0);

  regs_.emplace(offset, Reg{
                            .name = std::move(name),
                            .width = width,
                            .reset = reset,
                            .wmask = wmask,
                            .w1cmask = w1cmask,
                            .womask = womask,
                            .value = reset,
                            .on_write = nullptr,
                            .on_read = nullptr,
                            .guard = nullptr,
                        });
  return Handle(this, offset);
}

RegisterFile::Reg& RegisterFile::reg_locked(uint64_t offset) {
  auto it = regs_.find(offset);
  if (it == regs_.end()) STRATA_BUG("register file: no register at this offset");
  return it->second;
}

const RegisterFile::Reg& RegisterFile::reg_locked(uint64_t offset) const {
  auto it = regs_.find(offset);
  if (it == regs_.end()) STRATA_BUG("register file: no register at this offset");
  return it->second;
}

bool RegisterFile::defined(uint64_t offset) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return regs_.count(offset) != 0;
}

std::string RegisterFile::name(uint64_t offset) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return reg_locked(offset).name;
}

uint64_t RegisterFile::value(uint64_t offset) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return reg_locked(offset).value;
}

void RegisterFile::set(uint64_t offset, uint64_t v) {
  std::lock_guard<std::mutex> lock(mutex_);
  Reg& r = reg_locked(offset);
  STRATA_BUG_ON(v & ~width_mask(r.width));
  r.value = v;
}

uint64_t RegisterFile::modify(uint64_t offset, uint64_t clear, uint64_t set_bits) {
  std::lock_guard<std::mutex> lock(mutex_);
  Reg& r = reg_locked(offset);
  STRATA_BUG_ON(set_bits & ~width_mask(r.width));
  r.value = (r.value & ~clear) | set_bits;
  return r.value;
}

void RegisterFile::reset() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [offset, r] : regs_) r.value = r.reset;
}

std::map<uint64_t, uint64_t> RegisterFile::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::map<uint64_t, uint64_t> s;
  for (const auto& [offset, r] : regs_) s.emplace(offset, r.value);
  return s;
}

std::string RegisterFile::dump() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  for (const auto& [offset, r] : regs_) {
    out += fmt::format("{:#06x} {} = {:#0{}x}\n", offset, r.name, r.value, 2 + 2 * r.width);
  }
  return out;
}

std::vector<RegisterFile::GuestError> RegisterFile::guest_errors() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return guest_errors_;
}

uint64_t RegisterFile::guest_error_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return guest_error_count_;
}

void RegisterFile::clear_guest_errors() {
  std::lock_guard<std::mutex> lock(mutex_);
  guest_errors_.clear();
  guest_error_count_ = 0;
}

void RegisterFile::report_guest_error(uint64_t offset, std::string message) {
  std::string logged;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = regs_.find(offset);
    const unsigned size = it != regs_.end() ? it->second.width : 4;
    logged = record_guest_error_locked(offset, size, false, std::move(message));
  }
  if (!logged.empty()) dev_log(LogLevel::notice, name_, "guest error: {}", logged);
}

RegisterFile::Target RegisterFile::target_locked(uint64_t offset, unsigned size) {
  Target t;
  auto it = regs_.find(offset);
  if (it != regs_.end()) {
    Reg& r = it->second;
    if (size > r.width) {
      t.why = "64-bit access to 32-bit register";
      return t;
    }
    t.reg = &r;
    t.mask = width_mask(size);  // the whole register, or the low half of a 64-bit one
    return t;
  }
  // A 64-bit access is 8-aligned, so it can never land in the high half of a register.
  if (size == 4 && offset >= 4) {
    it = regs_.find(offset - 4);
    if (it != regs_.end() && it->second.width == 8) {
      t.reg = &it->second;
      t.shift = 32;
      t.mask = width_mask(4) << 32;
      return t;
    }
  }
  t.why = "no register at this offset";
  return t;
}

std::string RegisterFile::guest_error_locked(uint64_t offset, unsigned size, bool write,
                                             uint64_t value, const char* why) {
  std::string message = fmt::format("{}-bit {}", size * 8, write ? "write" : "read");
  if (write) message += fmt::format(" of {:#x}", value);
  message += fmt::format(" at {:#x}: {}", offset, why);
  auto it = regs_.find(offset);
  if (it != regs_.end()) message += fmt::format(" {}", it->second.name);
  message += " (RAZ/WI)";
  return record_guest_error_locked(offset, size, write, std::move(message));
}

std::string RegisterFile::record_guest_error_locked(uint64_t offset, unsigned size, bool write,
                                                    std::string message) {
  guest_error_count_++;
  for (const GuestError& e : guest_errors_)
    if (e.offset == offset) return {};
  guest_errors_.push_back({offset, size, write, message});
  return message;
}

uint64_t RegisterFile::mmio_read(uint64_t offset, unsigned size) {
  // Mmio checked size and alignment; a direct caller that did not is a test bug.
  STRATA_BUG_ON((size != 4 && size != 8) || offset % size != 0);

  uint64_t value = 0;
  uint64_t womask = 0;
  unsigned shift = 0;
  ReadHook hook;
  std::string error;
  bool hit = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const Target t = target_locked(offset, size);
    if (t.reg) {
      hit = true;
      value = t.reg->value;
      womask = t.reg->womask;
      shift = t.shift;
      hook = t.reg->on_read;  // a copy: it runs after the lock is dropped
    } else {
      error = guest_error_locked(offset, size, false, 0, t.why);
    }
  }
  if (!error.empty()) dev_log(LogLevel::notice, name_, "guest error: {}", error);
  if (!hit) return 0;  // RAZ
  // The hook computes the whole register; the access then takes its bits of it, with the
  // write-only ones hidden whatever the hook returned.
  if (hook) value = hook(value);
  return ((value & ~womask) >> shift) & width_mask(size);
}

void RegisterFile::mmio_write(uint64_t offset, uint64_t value, unsigned size) {
  STRATA_BUG_ON((size != 4 && size != 8) || offset % size != 0);
  value &= width_mask(size);  // writel passes 32 bits; a direct caller may pass junk above

  uint64_t old_value = 0;
  uint64_t new_value = 0;
  WriteHook hook;
  std::string error;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const Target t = target_locked(offset, size);
    if (!t.reg) {
      error = guest_error_locked(offset, size, true, value, t.why);
    } else {
      Reg& r = *t.reg;
      const uint64_t v = value << t.shift;
      uint64_t store = r.wmask & t.mask;
      uint64_t clear = r.w1cmask & t.mask & v;
      old_value = r.value;
      bool ignored = false;
      if (r.guard) {
        const GuardResult g = r.guard(LockedView(*this), old_value, v);
        // The bits this write would have changed but may not.
        const uint64_t refused = (((old_value ^ v) & store) | (old_value & clear)) & ~g.writable;
        ignored = ((store | (r.w1cmask & t.mask)) & g.writable) == 0;
        store &= g.writable;
        clear &= g.writable;
        if (refused) {
          error = record_guest_error_locked(
              offset, size, true,
              fmt::format("{}-bit write of {:#x} at {:#x} {}: {} (ignored)", size * 8, value,
                          offset, r.name, g.why ? g.why : "guarded bits"));
        }
      }
      new_value = ((old_value & ~store) | (v & store)) & ~clear;
      r.value = new_value;
      if (!ignored) hook = r.on_write;
    }
  }
  if (!error.empty()) dev_log(LogLevel::notice, name_, "guest error: {}", error);
  if (hook) hook(old_value, new_value);
}

}  // namespace strata::sim
