// SPDX-License-Identifier: MIT
// Irq ownership over a fake controller. The simulated interrupt controller, with MSI doorbell
// writes, has its own suite in testing/models/platform.
#include "arch/irq.h"

#include <doctest/doctest.h>

#include <map>

namespace strata {
namespace {

class FakeController : public InterruptController {
 public:
  Result<void> request_irq(unsigned line, IrqHandler handler, void* ctx) override {
    if (line >= 8) return Error(-EINVAL);
    if (lines.count(line)) return Error(-EBUSY);
    lines[line] = {handler, ctx};
    return ok();
  }
  void free_irq(unsigned line) override { CHECK(lines.erase(line) == 1); }
  Result<MsiMsg> alloc_msi(IrqHandler handler, void* ctx) override {
    if (msis.size() == 2) return Error(-ENOSPC);
    uint32_t data = next_data++;
    msis[data] = {handler, ctx};
    return MsiMsg{0x8000040, data};
  }
  void free_msi(const MsiMsg& msg) override {
    CHECK(msg.address == 0x8000040);
    CHECK(msis.erase(msg.data) == 1);
  }
  void fire_line(unsigned line) { lines.at(line).first(lines.at(line).second); }
  void fire_msi(uint32_t data) { msis.at(data).first(msis.at(data).second); }

  std::map<unsigned, std::pair<IrqHandler, void*>> lines;
  std::map<uint32_t, std::pair<IrqHandler, void*>> msis;
  uint32_t next_data = 5;
};

void count(void* ctx) { ++*static_cast<int*>(ctx); }

TEST_CASE("a wired Irq connects its handler until destroyed") {
  FakeController ic;
  int hits = 0;
  {
    Irq irq = Irq::request(ic, 3, count, &hits).release_value();
    CHECK(irq);
    CHECK_FALSE(irq.is_msi());
    ic.fire_line(3);
    CHECK(hits == 1);
    CHECK(Irq::request(ic, 3, count, &hits).error().code() == -EBUSY);
    CHECK(Irq::request(ic, 9, count, &hits).error().code() == -EINVAL);
  }
  CHECK(ic.lines.empty());
}

TEST_CASE("an MSI Irq carries its message and frees it") {
  FakeController ic;
  int hits = 0;
  Irq a = Irq::request_msi(ic, count, &hits).release_value();
  Irq b = Irq::request_msi(ic, count, &hits).release_value();
  CHECK(a.is_msi());
  CHECK(a.msi_msg().address == 0x8000040);
  CHECK(a.msi_msg().data == 5);
  CHECK(b.msi_msg().data == 6);
  CHECK(Irq::request_msi(ic, count, &hits).error().code() == -ENOSPC);
  ic.fire_msi(6);
  CHECK(hits == 1);

  a = std::move(b);  // frees vector 5
  CHECK(ic.msis.size() == 1);
  CHECK(ic.msis.count(6) == 1);
  a.reset();
  CHECK(ic.msis.empty());
  a.reset();  // idempotent
}

}  // namespace
}  // namespace strata
