// SPDX-License-Identifier: MIT
// An expectation mock of a register block, for driver initialisation sequences (after
// Fuchsia hwreg's Mock): a test lists the reads and writes the driver must make, in order,
// runs the driver over mmio(), then checks verify().
//
//   MockMmio mock;
//   mock.expect_read(0x0, 0x1234)        // IDR0 -> 0x1234
//       .expect_write(0x20, 0x1);        // CR0 <- SMMUEN
//   driver_init(mock.mmio());
//   CHECK(mock.verify().empty());
//
// The order is strict: each access is compared with the next expectation and consumes it,
// matched or not, so one wrong value does not shift every later comparison. A mismatch (kind,
// offset, size or written value), or an access after the last expectation, is recorded as a
// message naming the access and the expectation rather than aborting: a driver under test can
// run to the end and the test sees every divergence at once. A mismatched read returns 0.
// Thread-safe, though an exact order only means something for one thread's sequence.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <mutex>
#include <string>
#include <vector>

#include "arch/mmio.h"

namespace strata::testing {

class MockMmio : public RegisterModel {
 public:
  // Big enough for SMMUv3's two 64 KiB register pages and any VT-d unit's 4 KiB block.
  static constexpr size_t kDefaultSize = 0x20000;

  MockMmio() = default;
  MockMmio(const MockMmio&) = delete;
  MockMmio& operator=(const MockMmio&) = delete;
  virtual ~MockMmio() = default;

  // The next access must read `size` bytes (4 or 8) at `offset`; it returns `value`.
  MockMmio& expect_read(uint64_t offset, uint64_t value, unsigned size = 4);
  // The next access must write `value` with `size` bytes at `offset`.
  MockMmio& expect_write(uint64_t offset, uint64_t value, unsigned size = 4);

  // Every mismatch so far, then one message per expectation not yet consumed; empty = pass.
  std::vector<std::string> verify() const;
  // Forgets expectations and failures, to reuse the mock for the next sequence.
  void clear();

  // An Mmio whose accesses come here.
  Mmio mmio(size_t size = kDefaultSize) { return Mmio::model(*this, size); }

  // RegisterModel.
  uint64_t mmio_read(uint64_t offset, unsigned size) override;
  void mmio_write(uint64_t offset, uint64_t value, unsigned size) override;

 private:
  struct Access {
    bool write;
    uint64_t offset;
    uint64_t value;
    unsigned size;
  };

  MockMmio& expect(Access a);
  // Compares `got` with the next expectation, consumes it and records a failure on a mismatch;
  // returns whether it matched.
  bool consume_locked(const Access& got);

  mutable std::mutex mutex_;  // protects everything below
  std::vector<Access> expected_;
  size_t next_ = 0;  // index of the next expectation
  std::vector<std::string> failures_;
};

}  // namespace strata::testing
