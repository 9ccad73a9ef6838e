// SPDX-License-Identifier: MIT
#include "testing/mock/mock_mmio.h"

#include <fmt/format.h>

#include "arch/bug.h"

namespace strata::testing {
namespace {

// "32-bit write of 0x00000001 at 0x20", "64-bit read at 0x18": the value of a read is what the
// mock returns, not part of the access, so it is shown only where it helps.
std::string describe(bool write, uint64_t offset, uint64_t value, unsigned size) {
  if (write) {
    return fmt::format("{}-bit write of {:#0{}x} at {:#x}", size * 8, value, 2 + 2 * size, offset);
  }
  return fmt::format("{}-bit read at {:#x}", size * 8, offset);
}

}  // namespace

MockMmio& MockMmio::expect_read(uint64_t offset, uint64_t value, unsigned size) {
  return expect({.write = false, .offset = offset, .value = value, .size = size});
}

MockMmio& MockMmio::expect_write(uint64_t offset, uint64_t value, unsigned size) {
  return expect({.write = true, .offset = offset, .value = value, .size = size});
}

MockMmio& MockMmio::expect(Access a) {
  // An expectation no Mmio could produce is a mistake in the test itself.
  STRATA_BUG_ON(a.size != 4 && a.size != 8);
  STRATA_BUG_ON(a.offset % a.size != 0);
  STRATA_BUG_ON(a.size == 4 && (a.value >> 32) != 0);
  std::lock_guard<std::mutex> lock(mutex_);
  expected_.push_back(a);
  return *this;
}

bool MockMmio::consume_locked(const Access& got) {
  const size_t index = next_;
  const std::string what = describe(got.write, got.offset, got.value, got.size);
  if (index >= expected_.size()) {
    failures_.push_back(fmt::format("access #{}: unexpected {}: all {} expectations consumed",
                                    index, what, expected_.size()));
    return false;
  }
  next_++;
  const Access& e = expected_[index];
  const bool match = e.write == got.write && e.offset == got.offset && e.size == got.size &&
                     (!e.write || e.value == got.value);
  if (!match) {
    failures_.push_back(fmt::format("access #{}: expected {}, got {}", index,
                                    describe(e.write, e.offset, e.value, e.size), what));
  }
  return match;
}

uint64_t MockMmio::mmio_read(uint64_t offset, unsigned size) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!consume_locked({.write = false, .offset = offset, .value = 0, .size = size})) return 0;
  return expected_[next_ - 1].value;
}

void MockMmio::mmio_write(uint64_t offset, uint64_t value, unsigned size) {
  std::lock_guard<std::mutex> lock(mutex_);
  (void)consume_locked({.write = true, .offset = offset, .value = value, .size = size});
}

std::vector<std::string> MockMmio::verify() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> out = failures_;
  for (size_t i = next_; i < expected_.size(); i++) {
    const Access& e = expected_[i];
    std::string what = describe(e.write, e.offset, e.value, e.size);
    if (!e.write) what += fmt::format(" (would return {:#0{}x})", e.value, 2 + 2 * e.size);
    out.push_back(fmt::format("expectation #{} not consumed: {}", i, what));
  }
  return out;
}

void MockMmio::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  expected_.clear();
  next_ = 0;
  failures_.clear();
}

}  // namespace strata::testing
