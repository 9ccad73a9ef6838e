// SPDX-License-Identifier: MIT
// The entry writer against a toy entry format with the shape of an STE: what the SMMU may read
// between two syncs (any mix of the 64-bit words written since the last sync) must always be the
// old configuration, the new one, or (only when no hitless order exists) an invalid entry.
#include "drivers/iommu/arm/arm-smmu-v3/entry_writer.h"

#include <doctest/doctest.h>

#include <array>
#include <random>
#include <vector>

#include "arch/dma.h"

namespace strata::arm_smmu_v3 {
namespace {

using Entry = std::array<uint64_t, kEntryQwords>;

// Toy format: word 0 bit 0 V, bits [3:1] Config. Config bit 0 (stage 1) uses word 0 [63:4] and
// word 1 [31:0]; Config bit 1 (stage 2) uses word 1 [63:32], words 2 and 3; Config 0b100
// (bypass) uses word 1 [47:40]. Words 4-7 are never used.
void toy_used(const uint64_t* e, uint64_t* used) {
  for (unsigned i = 0; i < kEntryQwords; i++) used[i] = 0;
  used[0] = 1;
  if (!(e[0] & 1)) return;
  used[0] |= 0xe;
  const uint64_t cfg = (e[0] >> 1) & 7;
  if (cfg & 1) {
    used[0] |= ~uint64_t{0xf};
    used[1] |= 0xffffffff;
  }
  if (cfg & 2) {
    used[1] |= 0xffffffff00000000;
    used[2] = used[3] = ~uint64_t{0};
  }
  if (cfg == 0b100) used[1] |= uint64_t{0xff} << 40;
}

Entry effective(const Entry& e) {
  Entry used, out;
  toy_used(e.data(), used.data());
  for (unsigned i = 0; i < kEntryQwords; i++) out[i] = e[i] & used[i];
  return out;
}

// Records, at each sync, every entry the SMMU could have read since the previous one.
struct Observer final : EntryWriter {
  uint64_t* mem;
  Entry synced;  // what the SMMU is known to have seen at the last sync
  std::vector<Entry> observable;
  unsigned syncs = 0;

  explicit Observer(uint64_t* m) : mem(m) {
    for (unsigned i = 0; i < kEntryQwords; i++) synced[i] = mem ? dma_read64(mem + i) : 0;
    observable.push_back(synced);
  }
  void get_used(const uint64_t* entry, uint64_t* used) const override { toy_used(entry, used); }
  void sync() override {
    syncs++;
    Entry now;
    std::vector<unsigned> changed;
    for (unsigned i = 0; i < kEntryQwords; i++) {
      now[i] = dma_read64(mem + i);
      if (now[i] != synced[i]) changed.push_back(i);
    }
    for (uint32_t mask = 0; mask < (1u << changed.size()); mask++) {
      Entry mix = synced;
      for (size_t b = 0; b < changed.size(); b++)
        if (mask & (1u << b)) mix[changed[b]] = now[changed[b]];
      observable.push_back(mix);
    }
    synced = now;
  }
};

// Random bits masked to what the configuration uses.
Entry make(std::mt19937_64& rng, uint64_t cfg) {
  Entry e;
  for (auto& w : e) w = rng();
  e[0] = (e[0] & ~uint64_t{0xf}) | (cfg << 1) | 1;
  Entry used;
  toy_used(e.data(), used.data());
  for (unsigned i = 0; i < kEntryQwords; i++) e[i] &= used[i];
  return e;
}

const Entry kInvalid{};

// Runs write_entry from `old` to `target` and checks every observable entry.
EntryWriteStats check_write(const Entry& old, const Entry& target, const Entry& garbage = {}) {
  // Memory holds the old entry plus arbitrary bits the old configuration ignores.
  alignas(64) uint64_t mem[kEntryQwords];
  Entry used;
  toy_used(old.data(), used.data());
  for (unsigned i = 0; i < kEntryQwords; i++)
    dma_write64(mem + i, old[i] | (garbage[i] & ~used[i]));
  Observer obs(mem);
  const EntryWriteStats stats = write_entry(obs, mem, target.data());
  for (unsigned i = 0; i < kEntryQwords; i++) CHECK(dma_read64(mem + i) == target[i]);
  CHECK(stats.syncs == obs.syncs);
  const Entry eo = effective(old), et = effective(target);
  for (const Entry& seen : obs.observable) {
    const Entry e = effective(seen);
    const bool ok = e == eo || e == et || (!stats.hitless && e == kInvalid);
    CHECK(ok);
  }
  return stats;
}

TEST_CASE("an unchanged entry costs no sync") {
  std::mt19937_64 rng(1);
  const Entry e = make(rng, 0b011);
  CHECK(check_write(e, e).syncs == 0);
}

TEST_CASE("a change of ignored bits only is one write and one sync") {
  std::mt19937_64 rng(2);
  const Entry e = make(rng, 0b001);
  Entry garbage;
  for (auto& w : garbage) w = rng();
  const EntryWriteStats s = check_write(e, e, garbage);
  CHECK(s.syncs == 1);
  CHECK(s.hitless);
}

TEST_CASE("stage 1 to bypass and back is hitless: only word 0 is critical") {
  std::mt19937_64 rng(3);
  const Entry s1 = make(rng, 0b001), bypass = make(rng, 0b100);
  EntryWriteStats s = check_write(s1, bypass);
  CHECK(s.hitless);
  CHECK(s.syncs == 3);  // bypass's word 1 bits, then word 0, then clearing stage 1's words
  s = check_write(bypass, s1);
  CHECK(s.hitless);
}

TEST_CASE("a stage 2 table change alone is hitless; with a VMID change it is not") {
  std::mt19937_64 rng(4);
  Entry a = make(rng, 0b010);
  Entry b = a;
  b[3] ^= 0x1000;  // a new table: word 3 only
  CHECK(check_write(a, b).hitless);
  b[1] ^= uint64_t{1} << 40;  // and a new VMID-like field in word 1: two critical words
  const EntryWriteStats s = check_write(a, b);
  CHECK_FALSE(s.hitless);
  CHECK(s.syncs == 3);
}

TEST_CASE("installing into and clearing an invalid entry") {
  std::mt19937_64 rng(5);
  const Entry e = make(rng, 0b011);
  EntryWriteStats s = check_write(kInvalid, e);
  CHECK(s.hitless);
  CHECK(s.syncs == 2);  // every word but V, then word 0
  s = check_write(e, kInvalid);
  CHECK(s.hitless);
}

TEST_CASE("critical words are computed from both configurations' used bits") {
  std::mt19937_64 rng(6);
  const Entry s1 = make(rng, 0b001), s2 = make(rng, 0b010);
  uint64_t update[kEntryQwords];
  Observer obs(nullptr);
  // Stage 1 to stage 2: word 1 [63:32] and words 2-3, which stage 1 ignores, are written early;
  // word 1 [31:0], which stage 2 ignores, is kept; only word 0 (Config) is critical.
  const unsigned c = entry_critical_words(obs, s1.data(), s2.data(), update);
  CHECK(c == 1u);
  CHECK(update[2] == s2[2]);
  CHECK(update[3] == s2[3]);
  CHECK(update[0] == s1[0]);
  CHECK(update[1] == ((s1[1] & 0xffffffff) | (s2[1] & 0xffffffff00000000)));
}

TEST_CASE("random transitions between every configuration") {
  std::mt19937_64 rng(7);
  const uint64_t cfgs[] = {0b000, 0b001, 0b010, 0b011, 0b100};
  unsigned hitless = 0, broken = 0;
  for (int round = 0; round < 400; round++) {
    const Entry old = rng() % 8 == 0 ? kInvalid : make(rng, cfgs[rng() % 5]);
    Entry target = rng() % 8 == 0 ? kInvalid : make(rng, cfgs[rng() % 5]);
    if (rng() % 2 && (old[0] & 1) && (target[0] & 1)) {
      // Same configuration, some words changed.
      target = old;
      Entry used;
      toy_used(old.data(), used.data());
      const unsigned w = 1 + rng() % 3;
      target[w] ^= rng() & used[w];
      for (unsigned i = 0; i < kEntryQwords; i++) target[i] &= used[i];
    }
    Entry garbage;
    for (auto& w : garbage) w = rng();
    (check_write(old, target, garbage).hitless ? hitless : broken)++;
  }
  CHECK(hitless > 0);
  CHECK(broken > 0);
}

// Regression: break-before-make cleared word 0 bit 0 whatever the format, but a CD's V is bit 31
// (IHI 0070 5.4; bit 0 is T0SZ[0]), so a CD never became invalid in between. A format with V at
// bit 31 and a field in bits [5:0] of word 0, like a CD.
void cd_like_used(const uint64_t* e, uint64_t* used) {
  for (unsigned i = 0; i < kEntryQwords; i++) used[i] = 0;
  used[0] = uint64_t{1} << 31;
  if (!(e[0] >> 31 & 1)) return;
  used[0] = ~uint64_t{0};  // T0SZ-like bits [5:0], ASID-like bits [63:48], ...
  used[1] = ~uint64_t{0};  // TTB0-like
}

struct CdLikeObserver final : EntryWriter {
  uint64_t* mem;
  bool saw_invalid = false;
  bool saw_mix = false;
  uint64_t old0, old1, new0, new1;
  void get_used(const uint64_t* entry, uint64_t* used) const override { cd_like_used(entry, used); }
  void sync() override {
    const uint64_t w0 = dma_read64(mem), w1 = dma_read64(mem + 1);
    if (!(w0 >> 31 & 1))
      saw_invalid = true;
    else if (!((w0 == old0 && w1 == old1) || (w0 == new0 && w1 == new1)))
      saw_mix = true;
  }
};

TEST_CASE("break-before-make clears the format's V bit, wherever it is") {
  alignas(64) uint64_t mem[kEntryQwords] = {};
  const uint64_t v = uint64_t{1} << 31;
  CdLikeObserver obs;
  obs.mem = mem;
  obs.old0 = v | 0x10 | (uint64_t{1} << 48);  // T0SZ 16, ASID 1
  obs.old1 = 0x40000000;
  obs.new0 = v | 0x10 | (uint64_t{2} << 48);  // ASID 2
  obs.new1 = 0x40100000;                      // and a new table: two critical words
  dma_write64(mem, obs.old0);
  dma_write64(mem + 1, obs.old1);
  const uint64_t target[kEntryQwords] = {obs.new0, obs.new1};
  const EntryWriteStats s = write_entry(obs, mem, target);
  CHECK_FALSE(s.hitless);
  CHECK(obs.saw_invalid);
  CHECK_FALSE(obs.saw_mix);
  CHECK(dma_read64(mem) == obs.new0);
  CHECK(dma_read64(mem + 1) == obs.new1);
}

}  // namespace
}  // namespace strata::arm_smmu_v3
