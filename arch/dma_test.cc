// SPDX-License-Identifier: MIT
// DmaBuffer ownership and the DmaAllocator defaults, over a small fake allocator. The
// simulated RAM's allocator has its own suite in testing/models/platform.
#include "arch/dma.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "testing/hosted/hosted.h"

namespace strata {
namespace {

class FakeAllocator : public DmaAllocator {
 public:
  explicit FakeAllocator(bool coherent) : coherent_(coherent) {}
  ~FakeAllocator() { CHECK(live == 0); }

  Result<DmaRegion> alloc(size_t size, size_t align) override {
    if (fail_next) {
      fail_next = false;
      return Error(-ENOMEM);
    }
    void* p = aligned_alloc(align, (size + align - 1) / align * align);
    memset(p, 0, size);
    live++;
    // A made-up physical address distinct from the CPU view, as on real machines.
    return DmaRegion{p, reinterpret_cast<uintptr_t>(p) + 0x1000000000, size};
  }
  void free(const DmaRegion& r) override {
    CHECK(r.phys == reinterpret_cast<uintptr_t>(r.cpu) + 0x1000000000);
    live--;
    freed.push_back(r.phys);
    ::free(r.cpu);
  }
  bool coherent() const override { return coherent_; }

  bool fail_next = false;
  int live = 0;
  std::vector<phys_addr_t> freed;

 private:
  bool coherent_;
};

TEST_CASE("DmaBuffer owns one allocation and frees it once") {
  FakeAllocator a(true);
  {
    auto r = DmaBuffer::alloc(a, 4096, 4096);
    REQUIRE(r.ok());
    DmaBuffer buf = r.release_value();
    CHECK(buf);
    CHECK(buf.size() == 4096);
    CHECK(buf.phys() % 4096 == 0);
    CHECK(a.live == 1);

    DmaBuffer other = std::move(buf);
    CHECK_FALSE(buf);
    CHECK(a.live == 1);

    DmaBuffer third = DmaBuffer::alloc(a, 64, 64).release_value();
    const phys_addr_t third_phys = third.phys();
    third = std::move(other);  // frees the 64-byte one
    CHECK(a.live == 1);
    REQUIRE(a.freed.size() == 1);
    CHECK(a.freed[0] == third_phys);
  }
  CHECK(a.live == 0);
  CHECK(a.freed.size() == 2);
}

TEST_CASE("allocation failure propagates and owns nothing") {
  FakeAllocator a(true);
  a.fail_next = true;
  auto r = DmaBuffer::alloc(a, 4096, 4096);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == -ENOMEM);
  CHECK(a.live == 0);
}

TEST_CASE("an allocator that breaks its alignment contract is caught") {
  struct Misaligned : FakeAllocator {
    Misaligned() : FakeAllocator(true) {}
    Result<DmaRegion> alloc(size_t size, size_t align) override {
      DmaRegion r = STRATA_TRY(FakeAllocator::alloc(size, align));
      r.phys += 8;
      return r;
    }
  };
  std::string msg = hosted::panic_message_of([] {
    Misaligned m;
    (void)DmaBuffer::alloc(m, 4096, 4096);
  });
  CHECK(msg.find("BUG") != std::string::npos);
}

TEST_CASE("64-bit accessors are little-endian whole words") {
  alignas(8) unsigned char mem[16] = {};
  dma_write64(mem + 8, 0x1122334455667788);
  CHECK(mem[8] == 0x88);
  CHECK(mem[15] == 0x11);
  CHECK(mem[7] == 0);
  CHECK(dma_read64(mem + 8) == 0x1122334455667788);
}

TEST_CASE("sync hooks keep data intact and check their range") {
  for (bool coherent : {true, false}) {
    FakeAllocator a(coherent);
    DmaBuffer buf = DmaBuffer::alloc(a, 4096, 4096).release_value();
    auto* words = buf.as<uint64_t>();
    for (int i = 0; i < 512; i++) dma_write64(&words[i], 0x0101010101010101u * (i & 0xff));
    // Non-coherent: a real cache clean (CLFLUSH on x86) runs over the lines.
    buf.sync_for_device(0, 4096);
    buf.sync_for_cpu(100, 200);
    bool intact = true;
    for (int i = 0; i < 512; i++)
      intact &= dma_read64(&words[i]) == 0x0101010101010101u * (i & 0xff);
    CHECK(intact);
  }
  std::string msg = hosted::panic_message_of([] {
    FakeAllocator a(false);
    DmaBuffer buf = DmaBuffer::alloc(a, 4096, 4096).release_value();
    buf.sync_for_device(4000, 200);
  });
  CHECK(msg.find("BUG") != std::string::npos);
}

}  // namespace
}  // namespace strata
