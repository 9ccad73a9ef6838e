// SPDX-License-Identifier: MIT
#include "testing/models/platform/platform.h"

#include <string.h>

#include <doctest/doctest.h>

#include "arch/dma.h"
#include "arch/irq.h"

namespace strata::sim {
namespace {

template <typename T>
int err(const Result<T>& r) {
  return r.ok() ? 0 : r.error().code();
}

void set_flag(void* ctx) { *static_cast<bool*>(ctx) = true; }

TEST_CASE("the default machine") {
  auto p = Platform::create().release_value();
  REQUIRE(p->mem().ram().size() == 1);
  CHECK(p->mem().ram()[0].base == 0x4000'0000);
  CHECK(p->mem().ram_size() == uint64_t{1} << 30);
  CHECK(p->dma().coherent());
  CHECK(p->irq().lines() == 64);
  CHECK(p->irq().msi_doorbell() == 0x0800'0000);
  const std::string text = p->describe();
  CHECK(text.find("1 GiB ram") != std::string::npos);
  CHECK(text.find("msi-doorbell") != std::string::npos);
  MESSAGE(text);
}

TEST_CASE("a driver's DMA memory is what a device sees, and its MSI reaches the handler") {
  auto p =
      Platform::create({.ram_size = 64 << 20, .lines = 16, .dma_coherent = false}).release_value();
  CHECK(!p->dma().coherent());
  CHECK(p->irq().lines() == 16);

  DmaBuffer queue = DmaBuffer::alloc(p->dma(), 64 * 1024, 64 * 1024).release_value();
  dma_write64(queue.as<uint64_t>() + 3, 0x1234'5678'9abc'def0ull);
  CHECK(*p->mem().read64(queue.phys() + 24) == 0x1234'5678'9abc'def0ull);
  REQUIRE(p->mem().write64(queue.phys() + 32, 42).ok());
  CHECK(dma_read64(queue.as<uint64_t>() + 4) == 42);

  bool fired = false;
  Irq irq = Irq::request_msi(p->irq(), set_flag, &fired).release_value();
  REQUIRE(p->mem().write32(irq.msi_msg().address, irq.msi_msg().data).ok());
  CHECK(fired);
  CHECK(p->dma().live_allocations() == 1);
}

TEST_CASE("bad configurations fail cleanly") {
  CHECK(err(Platform::create({.ram_size = 0})) == -EINVAL);
  CHECK(err(Platform::create({.ram_base = 0x4000'0800})) == -EINVAL);
  // The doorbell inside RAM.
  CHECK(err(Platform::create({.ram_base = 0, .ram_size = 1 << 30})) == -EBUSY);
}

}  // namespace
}  // namespace strata::sim
