// SPDX-License-Identifier: MIT
#include "testing/models/platform/phys_mem.h"

#include <string.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "arch/dma.h"
#include "testing/hosted/hosted.h"

namespace strata::sim {
namespace {

constexpr phys_addr_t kRam = 0x4000'0000;
constexpr uint64_t kMiB = 1 << 20;

template <typename T>
int err(const Result<T>& r) {
  return r.ok() ? 0 : r.error().code();
}

std::unique_ptr<PhysMem> make(std::vector<PhysMem::RamRegion> ram) {
  auto mem = PhysMem::create({.ram = std::move(ram)});
  REQUIRE(mem.ok());
  return mem.release_value();
}

// Records the last access and answers reads with a fixed pattern.
class RecordingWindow final : public WindowHandler {
 public:
  Result<uint64_t> read(uint64_t offset, unsigned size) override {
    last_offset = offset;
    last_size = size;
    if (fail) return Error(-EFAULT);
    return 0x8877'6655'4433'2211ull;
  }
  Result<void> write(uint64_t offset, unsigned size, uint64_t value) override {
    last_offset = offset;
    last_size = size;
    last_value = value;
    if (fail) return Error(-EFAULT);
    return ok();
  }
  uint64_t last_offset = ~0ull;
  unsigned last_size = 0;
  uint64_t last_value = 0;
  bool fail = false;
};

TEST_CASE("create rejects bad RAM layouts") {
  CHECK(err(PhysMem::create({.ram = {{kRam, 0}}})) == -EINVAL);
  CHECK(err(PhysMem::create({.ram = {{kRam + 1, kPageSize}}})) == -EINVAL);
  CHECK(err(PhysMem::create({.ram = {{kRam, kPageSize + 8}}})) == -EINVAL);
  CHECK(err(PhysMem::create({.ram = {{kRam, 2 * kPageSize}, {kRam + kPageSize, kPageSize}}})) ==
        -EINVAL);
  CHECK(err(PhysMem::create({.ram = {{~0ull - kPageSize + 1 - kPageSize, 4 * kPageSize}}})) ==
        -EINVAL);
  CHECK(PhysMem::create({}).ok());
}

TEST_CASE("bytes written through host_ptr read back through read(), and the reverse") {
  auto mem = make({{kRam, kMiB}});
  auto* host = static_cast<unsigned char*>(mem->host_ptr(kRam, kMiB));
  REQUIRE(host);
  for (size_t i = 0; i < 256; ++i) host[i] = static_cast<unsigned char>(i * 7 + 1);

  // Every alignment of start and length, so the byte and word paths and their joins are used.
  for (size_t start = 0; start < 16; ++start) {
    for (size_t len = 0; len < 64; ++len) {
      unsigned char buf[64] = {};
      REQUIRE(mem->read(kRam + start, buf, len).ok());
      CHECK(memcmp(buf, host + start, len) == 0);
    }
  }

  unsigned char src[100];
  for (size_t i = 0; i < sizeof(src); ++i) src[i] = static_cast<unsigned char>(0xa0 ^ i);
  REQUIRE(mem->write(kRam + 0x1003, src, sizeof(src)).ok());
  CHECK(memcmp(host + 0x1003, src, sizeof(src)) == 0);
  CHECK(host[0x1002] == 0);
  CHECK(host[0x1003 + sizeof(src)] == 0);
  CHECK(mem->faults() == 0);
}

TEST_CASE("accesses outside RAM are external aborts") {
  auto mem = make({{kRam, kMiB}});
  const phys_addr_t end = kRam + kMiB;
  unsigned char buf[16] = {};

  CHECK(mem->read(end - 1, buf, 1).ok());
  CHECK(err(mem->read(end - 1, buf, 2)) == -EFAULT);  // one byte past the end
  CHECK(err(mem->read(end, buf, 1)) == -EFAULT);
  CHECK(err(mem->read(kRam - 1, buf, 2)) == -EFAULT);  // one byte before the start
  CHECK(err(mem->write(end - 8, buf, 9)) == -EFAULT);
  CHECK(err(mem->write(0, buf, 4)) == -EFAULT);
  CHECK(err(mem->read(~0ull - 3, buf, 8)) == -EFAULT);  // wraps the address space
  CHECK(err(mem->read64(end)) == -EFAULT);
  CHECK(err(mem->write64(end, 1)) == -EFAULT);
  CHECK(err(mem->read32(kRam - 4)) == -EFAULT);
  CHECK(err(mem->write32(end, 1)) == -EFAULT);
  CHECK(mem->faults() == 10);
  CHECK(mem->host_ptr(end - 1, 1) != nullptr);
  CHECK(mem->host_ptr(end - 1, 2) == nullptr);
  CHECK(mem->host_ptr(end, 0) == nullptr);
  CHECK(mem->host_ptr(kRam - 1, 1) == nullptr);
}

TEST_CASE("an access may not straddle two RAM regions, even adjacent ones") {
  auto mem = make({{kRam + kMiB, kMiB}, {kRam, kMiB}});  // adjacent; given out of order
  unsigned char buf[16] = {};
  CHECK(mem->read(kRam + kMiB - 8, buf, 8).ok());
  CHECK(mem->read(kRam + kMiB, buf, 8).ok());
  CHECK(err(mem->read(kRam + kMiB - 8, buf, 16)) == -EFAULT);
  CHECK(err(mem->write(kRam + kMiB - 1, buf, 2)) == -EFAULT);
  CHECK(mem->host_ptr(kRam + kMiB - 8, 16) == nullptr);
  CHECK(mem->ram_size() == 2 * kMiB);
  REQUIRE(mem->ram().size() == 2);
  CHECK(mem->ram()[0].base == kRam);
}

TEST_CASE("RAM is sparse and each region's view is contiguous") {
  constexpr uint64_t kSize = uint64_t{16} << 30;  // far more than the test will ever touch
  auto mem = make({{uint64_t{1} << 40, kSize}});
  auto* first = static_cast<char*>(mem->host_ptr(uint64_t{1} << 40, 1));
  auto* last = static_cast<char*>(mem->host_ptr((uint64_t{1} << 40) + kSize - 1, 1));
  REQUIRE(first);
  CHECK(last == first + kSize - 1);
  CHECK(mem->host_ptr(uint64_t{1} << 40, kSize) == first);
  uint64_t v = 0;
  CHECK(mem->read((uint64_t{1} << 40) + kSize / 2, &v, 8).ok());
  CHECK(v == 0);
}

TEST_CASE("read64/write64/read32/write32 are little-endian, aligned and match dma_*64") {
  auto mem = make({{kRam, kMiB}});
  auto* host = static_cast<unsigned char*>(mem->host_ptr(kRam, kMiB));

  REQUIRE(mem->write64(kRam + 8, 0x0102'0304'0506'0708ull).ok());
  CHECK(host[8] == 0x08);
  CHECK(host[15] == 0x01);
  CHECK(dma_read64(host + 8) == 0x0102'0304'0506'0708ull);
  dma_write64(host + 16, 0xfeed'face'cafe'beefull);
  CHECK(*mem->read64(kRam + 16) == 0xfeed'face'cafe'beefull);

  REQUIRE(mem->write32(kRam + 36, 0xa1b2'c3d4u).ok());
  CHECK(host[36] == 0xd4);
  CHECK(host[39] == 0xa1);
  CHECK(*mem->read32(kRam + 36) == 0xa1b2'c3d4u);
  CHECK(*mem->read32(kRam + 16) == 0xcafe'beefu);

  CHECK(err(mem->read64(kRam + 4)) == -EINVAL);
  CHECK(err(mem->write64(kRam + 1, 0)) == -EINVAL);
  CHECK(err(mem->read32(kRam + 2)) == -EINVAL);
  CHECK(err(mem->write32(kRam + 6, 0)) == -EINVAL);
  CHECK(mem->faults() == 0);  // a misaligned access is a model bug, not a bus error
}

TEST_CASE("cmpxchg64 swaps a little-endian RAM word only when it holds the expected value") {
  auto mem = make({{kRam, kMiB}});
  auto* host = static_cast<unsigned char*>(mem->host_ptr(kRam, kMiB));
  REQUIRE(mem->write64(kRam + 24, 0x1111'2222'3333'4444ull).ok());

  Result<bool> lost = mem->cmpxchg64(kRam + 24, 0x1111'2222'3333'4445ull, 0x99);
  REQUIRE(lost.ok());
  CHECK(!*lost);
  CHECK(*mem->read64(kRam + 24) == 0x1111'2222'3333'4444ull);  // untouched

  Result<bool> won = mem->cmpxchg64(kRam + 24, 0x1111'2222'3333'4444ull, 0x0102'0304'0506'0708ull);
  REQUIRE(won.ok());
  CHECK(*won);
  CHECK(host[24] == 0x08);  // the stored word is little-endian, as dma_write64 leaves it
  CHECK(host[31] == 0x01);
  CHECK(dma_read64(host + 24) == 0x0102'0304'0506'0708ull);

  CHECK(err(mem->cmpxchg64(kRam + 4, 0, 1)) == -EINVAL);
  CHECK(mem->faults() == 0);
  CHECK(err(mem->cmpxchg64(kRam + kMiB, 0, 1)) == -EFAULT);  // past the end of RAM
  CHECK(err(mem->cmpxchg64(kRam - 8, 0, 1)) == -EFAULT);
  CHECK(mem->faults() == 2);

  // A window cannot promise an atomic read-modify-write: the device sees an external abort,
  // and the handler is never asked to do half of one.
  RecordingWindow win;
  REQUIRE(mem->map_window(0x1000'0000, kPageSize, win).ok());
  CHECK(err(mem->cmpxchg64(0x1000'0000, 0, 1)) == -EFAULT);
  CHECK(win.last_size == 0);
  mem->unmap_window(0x1000'0000);
}

TEST_CASE("concurrent cmpxchg64 loops lose no update, against dma_write64 of a neighbour") {
  auto mem = make({{kRam, kMiB}});
  auto* words = static_cast<uint64_t*>(mem->host_ptr(kRam, 16));
  constexpr int kThreads = 4, kIncrements = 20000;
  std::atomic<bool> stop{false};
  std::thread cpu([&] {
    for (uint64_t i = 0; !stop; ++i) dma_write64(&words[1], i);
  });
  std::vector<std::thread> devices;
  for (int t = 0; t < kThreads; ++t) {
    devices.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        for (;;) {
          const uint64_t old = *mem->read64(kRam);
          if (*mem->cmpxchg64(kRam, old, old + 1)) break;
        }
      }
    });
  }
  for (std::thread& d : devices) d.join();
  stop = true;
  cpu.join();
  CHECK(*mem->read64(kRam) == uint64_t{kThreads} * kIncrements);
}

TEST_CASE("windows answer accesses wholly inside them") {
  auto mem = make({{kRam, kMiB}});
  RecordingWindow win;
  constexpr phys_addr_t kWin = 0x0900'0000;
  REQUIRE(mem->map_window(kWin, 0x100, win, "test-regs").ok());

  CHECK(mem->write32(kWin + 0x10, 0xdead'beef).ok());
  CHECK(win.last_offset == 0x10);
  CHECK(win.last_size == 4);
  CHECK(win.last_value == 0xdead'beef);

  CHECK(*mem->read64(kWin + 0x18) == 0x8877'6655'4433'2211ull);
  CHECK(win.last_size == 8);
  CHECK(*mem->read32(kWin + 0x20) == 0x4433'2211u);

  // Bulk accesses of up to 8 bytes reach the handler, little-endian.
  unsigned char bytes[3] = {0x11, 0x22, 0x33};
  CHECK(mem->write(kWin + 0x31, bytes, 3).ok());
  CHECK(win.last_offset == 0x31);
  CHECK(win.last_size == 3);
  CHECK(win.last_value == 0x33'2211);
  unsigned char two[2] = {};
  CHECK(mem->read(kWin + 0x40, two, 2).ok());
  CHECK(two[0] == 0x11);
  CHECK(two[1] == 0x22);
  CHECK(mem->windows_hit() == 5);
  CHECK(mem->faults() == 0);

  unsigned char big[16] = {};
  CHECK(err(mem->read(kWin, big, 16)) == -EFAULT);        // wider than any register
  CHECK(err(mem->read64(kWin + 0xfc)) == -EINVAL);        // misaligned
  CHECK(err(mem->read(kWin + 0xfc, big, 8)) == -EFAULT);  // runs past the window
  CHECK(err(mem->write32(kWin + 0x100, 0)) == -EFAULT);   // just past it
  win.fail = true;
  CHECK(err(mem->write32(kWin, 0)) == -EFAULT);  // the device aborts
  CHECK(mem->faults() == 4);

  const std::string map = mem->describe();
  CHECK(map.find("test-regs") != std::string::npos);
  CHECK(map.find("0x0000000040000000-0x000000004000ffff") == std::string::npos);
  CHECK(map.find("0x0000000040000000-0x00000000400fffff    1 MiB ram") != std::string::npos);
  CHECK(map.find("ram") != std::string::npos);
  CHECK(map.find("test-regs") < map.find("ram"));  // address order
  MESSAGE(map);

  mem->unmap_window(kWin);
  win.fail = false;
  CHECK(err(mem->write32(kWin, 0)) == -EFAULT);
  CHECK(mem->describe().find("test-regs") == std::string::npos);
}

TEST_CASE("windows may not overlap RAM or each other") {
  auto mem = make({{kRam, kMiB}});
  RecordingWindow a, b;
  CHECK(err(mem->map_window(kRam + kMiB - 4, 8, a)) == -EBUSY);
  CHECK(err(mem->map_window(kRam - 4, 8, a)) == -EBUSY);
  CHECK(err(mem->map_window(0x1000, 0, a)) == -EINVAL);
  CHECK(err(mem->map_window(~0ull - 3, 8, a)) == -EINVAL);
  REQUIRE(mem->map_window(0x1000, 0x100, a).ok());
  CHECK(err(mem->map_window(0x10fc, 8, b)) == -EBUSY);
  CHECK(err(mem->map_window(0xff8, 0x10, b)) == -EBUSY);
  CHECK(mem->map_window(0x1100, 0x100, b).ok());  // adjacent is fine
  mem->unmap_window(0x1000);
  mem->unmap_window(0x1100);
}

TEST_CASE("unmapping a window that is not there panics") {
  auto mem = make({{kRam, kMiB}});
  const std::string msg = hosted::panic_message_of([&] { mem->unmap_window(0x1000); });
  CHECK(msg.find("no window") != std::string::npos);
}

// A handler that blocks until released, to catch unmap_window() returning too early.
class BlockingWindow final : public WindowHandler {
 public:
  Result<uint64_t> read(uint64_t, unsigned) override { return uint64_t{0}; }
  Result<void> write(uint64_t, unsigned, uint64_t) override {
    entered = true;
    while (!release) std::this_thread::yield();
    return ok();
  }
  std::atomic<bool> entered{false};
  std::atomic<bool> release{false};
};

TEST_CASE("unmap_window waits for handler calls in flight") {
  auto mem = make({{kRam, kMiB}});
  BlockingWindow win;
  REQUIRE(mem->map_window(0x1000, 4, win).ok());
  std::thread device([&] { CHECK(mem->write32(0x1000, 1).ok()); });
  while (!win.entered) std::this_thread::yield();

  std::atomic<bool> unmapped{false};
  std::thread unmapper([&] {
    mem->unmap_window(0x1000);
    unmapped = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(!unmapped);
  win.release = true;
  device.join();
  unmapper.join();
  CHECK(unmapped);
}

TEST_CASE("a device copy never sees a torn word of a concurrent dma_write64") {
  auto mem = make({{kRam, kMiB}});
  constexpr size_t kWords = 64;
  auto* words = static_cast<uint64_t*>(mem->host_ptr(kRam, kWords * 8));
  std::atomic<bool> stop{false};

  // The CPU flips every word between two patterns whose halves differ, so a torn read shows.
  std::thread cpu([&] {
    for (uint64_t i = 0; !stop; ++i)
      for (size_t w = 0; w < kWords; ++w)
        dma_write64(&words[w], (i & 1) ? 0xaaaa'aaaa'5555'5555ull : 0x5555'5555'aaaa'aaaaull);
  });
  bool torn = false;
  for (int iter = 0; iter < 2000 && !torn; ++iter) {
    uint64_t buf[kWords];
    REQUIRE(mem->read(kRam, buf, sizeof(buf)).ok());
    for (uint64_t v : buf)
      torn |= v != 0 && v != 0xaaaa'aaaa'5555'5555ull && v != 0x5555'5555'aaaa'aaaaull;
    // Unaligned copies race too (bytes there are not promised to be atomic as a word).
    unsigned char bytes[37];
    REQUIRE(mem->read(kRam + 3, bytes, sizeof(bytes)).ok());
    REQUIRE(mem->write(kRam + 8 * kWords + 5, bytes, sizeof(bytes)).ok());
  }
  stop = true;
  cpu.join();
  CHECK(!torn);
}

}  // namespace
}  // namespace strata::sim
