// SPDX-License-Identifier: MIT
#include "testing/models/platform/interrupt_controller.h"

#include <atomic>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "arch/irq.h"
#include "testing/hosted/hosted.h"

namespace strata::sim {
namespace {

constexpr phys_addr_t kRam = 0x4000'0000;
constexpr phys_addr_t kDoorbell = 0x0800'0000;

template <typename T>
int err(const Result<T>& r) {
  return r.ok() ? 0 : r.error().code();
}

struct Counter {
  std::atomic<int> calls{0};
};

void count(void* ctx) { static_cast<Counter*>(ctx)->calls++; }

struct Machine {
  Machine() : Machine(SimInterruptController::Config{}) {}
  explicit Machine(const SimInterruptController::Config& config) {
    auto m = PhysMem::create({.ram = {{kRam, 1 << 20}}});
    REQUIRE(m.ok());
    mem = m.release_value();
    auto i = SimInterruptController::create(*mem, config);
    REQUIRE(i.ok());
    ic = i.release_value();
  }
  std::unique_ptr<PhysMem> mem;
  std::unique_ptr<SimInterruptController> ic;
};

TEST_CASE("wired lines run their handler with its ctx") {
  Machine m;
  Counter a, b;
  CHECK(m.ic->lines() == 64);
  REQUIRE(m.ic->request_irq(3, count, &a).ok());
  REQUIRE(m.ic->request_irq(63, count, &b).ok());
  m.ic->raise(3);
  m.ic->raise(3);
  m.ic->raise(63);
  CHECK(a.calls == 2);
  CHECK(b.calls == 1);
  CHECK(m.ic->delivered(3) == 2);
  CHECK(m.ic->delivered(63) == 1);
  CHECK(m.ic->delivered(4) == 0);
  CHECK(m.ic->spurious() == 0);

  m.ic->free_irq(3);
  m.ic->raise(3);
  CHECK(a.calls == 2);
  CHECK(m.ic->spurious() == 1);
  m.ic->raise(10);  // never requested
  CHECK(m.ic->spurious() == 2);
  CHECK(m.ic->delivered(3) == 2);
  m.ic->free_irq(63);
}

TEST_CASE("request_irq errors") {
  Machine m({.lines = 8});
  Counter a;
  CHECK(err(m.ic->request_irq(8, count, &a)) == -EINVAL);
  CHECK(err(m.ic->request_irq(0, nullptr, &a)) == -EINVAL);
  REQUIRE(m.ic->request_irq(7, count, &a).ok());
  CHECK(err(m.ic->request_irq(7, count, &a)) == -EBUSY);
  m.ic->free_irq(7);
  CHECK(m.ic->request_irq(7, count, &a).ok());  // free again after free_irq
  m.ic->free_irq(7);
}

TEST_CASE("driver and model bugs panic") {
  Machine m({.lines = 8});
  CHECK(hosted::panic_message_of([&] { m.ic->raise(8); }).find("no such line") !=
        std::string::npos);
  CHECK(hosted::panic_message_of([&] { m.ic->free_irq(2); }).find("not requested") !=
        std::string::npos);
  CHECK(hosted::panic_message_of([&] {
          m.ic->free_msi({kDoorbell, 5});
        }).find("not allocated") != std::string::npos);
}

TEST_CASE("an MSI is a 32-bit write of its data to the doorbell") {
  Machine m;
  Counter a, b;
  auto msg_a = m.ic->alloc_msi(count, &a);
  auto msg_b = m.ic->alloc_msi(count, &b);
  REQUIRE(msg_a.ok());
  REQUIRE(msg_b.ok());
  CHECK(msg_a->address == kDoorbell);
  CHECK(msg_b->address == kDoorbell);
  CHECK(msg_a->data != msg_b->data);

  REQUIRE(m.mem->write32(msg_b->address, msg_b->data).ok());
  CHECK(b.calls == 1);
  CHECK(a.calls == 0);
  CHECK(m.ic->msi_delivered(msg_b->data) == 1);
  CHECK(m.mem->windows_hit() == 1);

  // The same message through the bulk path, as a device's 4-byte write of its MSI data.
  const uint32_t data = msg_a->data;
  REQUIRE(m.mem->write(kDoorbell, &data, 4).ok());
  CHECK(a.calls == 1);

  // Not a message: narrower writes abort; reads see zero.
  const uint8_t byte = static_cast<uint8_t>(msg_a->data);
  CHECK(err(m.mem->write(kDoorbell, &byte, 1)) == -EFAULT);
  CHECK(err(m.mem->write64(kDoorbell, msg_a->data)) == -EFAULT);  // wider than the window
  CHECK(*m.mem->read32(kDoorbell) == 0);
  CHECK(a.calls == 1);

  m.ic->free_msi(*msg_b);
  REQUIRE(m.mem->write32(kDoorbell, msg_b->data).ok());  // the write itself still lands
  CHECK(b.calls == 1);
  CHECK(m.ic->spurious() == 1);
  REQUIRE(m.mem->write32(kDoorbell, 1000).ok());  // no such vector
  CHECK(m.ic->spurious() == 2);
  m.ic->free_msi(*msg_a);
}

TEST_CASE("MSI vectors run out with -ENOSPC and come back when freed") {
  Machine m;
  Counter c;
  std::vector<MsiMsg> msgs;
  for (unsigned i = 0; i < SimInterruptController::kMaxMsiVectors; ++i) {
    auto msg = m.ic->alloc_msi(count, &c);
    REQUIRE(msg.ok());
    msgs.push_back(*msg);
  }
  CHECK(err(m.ic->alloc_msi(count, &c)) == -ENOSPC);
  m.ic->free_msi(msgs[17]);
  auto again = m.ic->alloc_msi(count, &c);
  REQUIRE(again.ok());
  CHECK(again->data == msgs[17].data);
  CHECK(err(m.ic->alloc_msi(nullptr, &c)) == -EINVAL);
  for (const MsiMsg& msg : msgs) m.ic->free_msi(msg);
}

TEST_CASE("configuration errors and a controller without MSI") {
  auto mem = PhysMem::create({.ram = {{kRam, 1 << 20}}}).release_value();
  CHECK(err(SimInterruptController::create(*mem, {.msi_vectors = 65})) == -EINVAL);
  CHECK(err(SimInterruptController::create(*mem, {.msi_doorbell = kDoorbell + 2})) == -EINVAL);
  CHECK(err(SimInterruptController::create(*mem, {.msi_doorbell = kRam})) == -EBUSY);

  auto ic = SimInterruptController::create(*mem, {.msi_vectors = 0}).release_value();
  Counter c;
  CHECK(err(ic->alloc_msi(count, &c)) == -EOPNOTSUPP);
  CHECK(err(mem->write32(kDoorbell, 0)) == -EFAULT);  // no doorbell mapped
}

TEST_CASE("destroying the controller unmaps its doorbell") {
  Machine m;
  CHECK(m.mem->write32(kDoorbell, 0).ok());
  m.ic.reset();
  CHECK(err(m.mem->write32(kDoorbell, 0)) == -EFAULT);
  // And the address is free for another controller.
  CHECK(SimInterruptController::create(*m.mem).ok());
}

TEST_CASE("Irq frees its line or vector on destruction") {
  Machine m;
  Counter c;
  {
    auto irq = Irq::request(*m.ic, 5, count, &c);
    REQUIRE(irq.ok());
    CHECK(!irq->is_msi());
    m.ic->raise(5);
    CHECK(c.calls == 1);
    CHECK(err(Irq::request(*m.ic, 5, count, &c)) == -EBUSY);
  }
  m.ic->raise(5);
  CHECK(c.calls == 1);
  CHECK(m.ic->spurious() == 1);

  MsiMsg msg;
  {
    auto irq = Irq::request_msi(*m.ic, count, &c);
    REQUIRE(irq.ok());
    REQUIRE(irq->is_msi());
    msg = irq->msi_msg();
    REQUIRE(m.mem->write32(msg.address, msg.data).ok());
    CHECK(c.calls == 2);
    Irq moved = irq.release_value();  // ownership moves; still one registration
    REQUIRE(m.mem->write32(msg.address, msg.data).ok());
    CHECK(c.calls == 3);
  }
  REQUIRE(m.mem->write32(msg.address, msg.data).ok());
  CHECK(c.calls == 3);
  CHECK(m.ic->spurious() == 2);
  // The vector is free again: the lowest one is handed out once more.
  auto again = m.ic->alloc_msi(count, &c);
  REQUIRE(again.ok());
  CHECK(again->data == msg.data);
  m.ic->free_msi(*again);
}

// After free returns the handler must never run again. One thread raises in a loop; the
// other frees and then sets `freed`; a handler call that sees `freed` is a violation. Run under
// --config=tsan as well, which also checks the handler table is not raced.
struct Probe {
  std::atomic<bool> freed{false};
  std::atomic<bool> late{false};
  std::atomic<long> calls{0};
};

void probe(void* ctx) {
  auto* p = static_cast<Probe*>(ctx);
  if (p->freed.load()) p->late = true;
  p->calls++;
}

template <typename Raise, typename Free>
void race_free(Raise raise, Free free_handler, Probe& p) {
  std::atomic<bool> stop{false};
  std::atomic<long> raised{0};
  std::thread device([&] {
    for (; !stop; ++raised) raise();
  });
  // Let some interrupts through before freeing. Waits are for the device thread's progress,
  // not for a number of yields, so the test stays quick on an oversubscribed machine.
  while (p.calls < 100) std::this_thread::yield();
  free_handler();
  p.freed = true;
  const long at_free = p.calls;
  const long keep_raising_until = raised + 200;
  while (raised < keep_raising_until) std::this_thread::yield();
  stop = true;
  device.join();
  CHECK(!p.late);
  CHECK(p.calls == at_free);
}

TEST_CASE("after free_irq returns the handler is never called again") {
  Machine m;
  for (int round = 0; round < 20; ++round) {
    Probe p;
    REQUIRE(m.ic->request_irq(9, probe, &p).ok());
    race_free([&] { m.ic->raise(9); }, [&] { m.ic->free_irq(9); }, p);
  }
  CHECK(m.ic->spurious() > 0);
}

TEST_CASE("after free_msi returns the handler is never called again") {
  Machine m;
  for (int round = 0; round < 20; ++round) {
    Probe p;
    const MsiMsg msg = m.ic->alloc_msi(probe, &p).release_value();
    race_free([&] { CHECK(m.mem->write32(msg.address, msg.data).ok()); },
              [&] { m.ic->free_msi(msg); }, p);
  }
}

}  // namespace
}  // namespace strata::sim
