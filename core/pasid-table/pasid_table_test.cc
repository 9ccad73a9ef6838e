// SPDX-License-Identifier: MIT
// The iommu-pasid-table library over the fake vendor (testing/fake-iommu): what set_entry and
// clear_entry leave in simulated memory, read back through the bus as a walker would; the
// exact syncs they issue; the error paths, which change nothing; two-level leaf allocation;
// teardown; and PasidStage1::from_io_pgtable against real io-pgtable configurations.
#include <stdint.h>

#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/core.h>

#include "core/io-pgtable/io_pgtable.h"
#include "core/pasid-table/pasid_table.h"
#include "testing/fake-iommu/fake_pasid_table.h"
#include "testing/hosted/hosted.h"
#include "testing/models/platform/platform.h"

namespace strata {
namespace {

using testing::FakePasidEntry;
using testing::FakePasidTableOps;
using Syncs = std::vector<FakePasidTableOps::SyncCall>;
namespace fp = testing::fake_pasid;

PasidStage1 arm_s1(uint64_t ttbr, uint32_t asid) {
  PasidStage1 s1 = {};
  s1.pgtable_fmt = IoPgtableFmt::arm_64_lpae_s1;
  s1.ttbr = ttbr;
  s1.tcr = {16, 0, 1, 1, 3, 5};
  s1.mair = 0x04ff44;
  s1.asid = asid;
  s1.flags = PASID_S1_COHERENT_WALK;
  return s1;
}

PasidStage1 vtd_s1(uint64_t pgd, unsigned levels, uint32_t did) {
  PasidStage1 s1 = {};
  s1.pgtable_fmt = IoPgtableFmt::intel_vtd_fl;
  s1.ttbr = pgd;
  s1.levels = levels;
  s1.asid = did;
  s1.flags = PASID_S1_HW_DIRTY;
  return s1;
}

struct Fixture {
  Fixture() : platform(sim::Platform::create().release_value()) {}
  ~Fixture() {
    for (const auto& e : ops.protocol_errors()) FAIL_CHECK("fake vendor: " << e);
  }

  PasidTableCfg cfg(unsigned bits, bool two_level = false) {
    return {PasidTableFmt::fake, bits, two_level, &platform->dma()};
  }
  Box<PasidTable> make(unsigned bits, bool two_level = false) {
    auto r = PasidTable::alloc(ops, cfg(bits, two_level), &cookie);
    REQUIRE(r.ok());
    return r.release_value();
  }
  FakePasidEntry read(const PasidTable& t, ioasid_t pasid) {
    auto r = testing::fake_pasid_read(platform->mem(), t, pasid);
    REQUIRE(r.ok());
    return r.release_value();
  }
  uint64_t root_ptr(const PasidTable& t, unsigned leaf) {
    return platform->mem().read64(t.base() + leaf * 8).value();
  }
  // Every word of the table as the walker can reach it: the root (or linear table) and every
  // leaf a valid root pointer leads to.
  std::vector<uint64_t> image(const PasidTable& t) {
    std::vector<uint64_t> out;
    if (!t.two_level()) {
      for (uint32_t i = 0; i < t.nr_entries() * fp::kEntryWords; i++)
        out.push_back(platform->mem().read64(t.base() + i * 8).value());
      return out;
    }
    for (unsigned l = 0; l < t.nr_entries() / fp::kLeafEntries; l++) {
      const uint64_t ptr = root_ptr(t, l);
      out.push_back(ptr);
      if (!(ptr & fp::kRootV)) continue;
      for (unsigned i = 0; i < fp::kLeafEntries * fp::kEntryWords; i++)
        out.push_back(platform->mem().read64((ptr & fp::kRootAddrMask) + i * 8).value());
    }
    return out;
  }
  size_t dma_live() const { return platform->dma().live_allocations(); }

  std::unique_ptr<sim::Platform> platform;
  FakePasidTableOps ops;
  int cookie = 0;
};

TEST_CASE_FIXTURE(Fixture, "a linear table: geometry, base, cookie, nothing live") {
  const size_t dma_before = dma_live();
  Box<PasidTable> t = make(4);
  CHECK(t->fmt() == PasidTableFmt::fake);
  CHECK(t->nr_entries() == 16);
  CHECK_FALSE(t->two_level());
  CHECK(t->cookie() == &cookie);
  CHECK(dma_live() == dma_before + 1);
  // The base is what the vendor allocated: the fake's 64-byte-aligned DMA memory, all zero.
  CHECK(t->base() % 64 == 0);
  CHECK(image(*t) == std::vector<uint64_t>(16 * fp::kEntryWords, 0));
  CHECK(read(*t, 15).pa == t->base() + 15 * fp::kEntryBytes);
  CHECK(t->nr_live() == 0);
  for (ioasid_t p = 0; p <= 16; p++) CHECK_FALSE(t->live(p));
  CHECK(ops.syncs().empty());

  Box<PasidTable> one = make(0);  // SubstreamID-less: one entry
  CHECK(one->nr_entries() == 1);
  CHECK(one->set_entry(1, arm_s1(0x40001000, 1)).error().code() == -ERANGE);
  REQUIRE(one->set_entry(0, arm_s1(0x40001000, 1)).ok());
  CHECK(read(*one, 0).valid);
}

TEST_CASE_FIXTURE(Fixture, "configs refused by the core or the vendor: -EINVAL, nothing leaked") {
  const long kmallocs = hosted::kmalloc_live();
  const size_t dma_before = dma_live();
  auto no_dma = cfg(4);
  no_dma.dma = nullptr;
  CHECK(PasidTable::alloc(ops, no_dma, nullptr).error().code() == -EINVAL);
  CHECK(PasidTable::alloc(ops, cfg(21, true), nullptr).error().code() == -EINVAL);
  auto other_fmt = cfg(4);
  other_fmt.fmt = PasidTableFmt::arm_smmuv3_cd;  // not the fake's format
  CHECK(PasidTable::alloc(ops, other_fmt, nullptr).error().code() == -EINVAL);

  FakePasidTableOps linear_only(FakePasidTableOps::Options{.two_level_supported = false});
  CHECK(PasidTable::alloc(linear_only, cfg(8, true), nullptr).error().code() == -EINVAL);
  {
    // One leaf's worth: served linear, so not refused.
    auto small = PasidTable::alloc(linear_only, cfg(6, true), nullptr);
    REQUIRE(small.ok());
    CHECK_FALSE(small.value()->two_level());
  }
  CHECK(hosted::kmalloc_live() == kmallocs);
  CHECK(dma_live() == dma_before);
  CHECK(ops.tables_live() == 0);

  // The largest table: 2^20 PASIDs, two-level.
  Box<PasidTable> big = make(20, true);
  CHECK(big->nr_entries() == uint32_t{1} << 20);
  CHECK(big->two_level());
  REQUIRE(big->set_entry(0xfffff, arm_s1(0x40001000, 3)).ok());
  CHECK(read(*big, 0xfffff).valid);
  CHECK(big->set_entry(0x100000, arm_s1(0x40001000, 3)).error().code() == -ERANGE);
}

TEST_CASE_FIXTURE(Fixture, "set_entry writes the whole entry, valid bit included, and syncs once") {
  Box<PasidTable> t = make(4);
  const PasidStage1 s1 = arm_s1(0x40001000, 0x1234);
  REQUIRE(t->set_entry(5, s1).ok());
  const FakePasidEntry e = read(*t, 5);
  CHECK(e.valid);
  // Typed from the fake's format: V | FMT 0 (LPAE stage 1) | COH (bit 9) | ASID 0x1234 [63:48];
  // TTB; T0SZ 16 | IRGN0 1 << 8 | ORGN0 1 << 10 | SH0 3 << 12 | IPS 5 << 16; MAIR.
  CHECK(e.raw[0] == 0x1234000000000201);
  CHECK(e.raw[1] == 0x40001000);
  CHECK(e.raw[2] == 0x53510);
  CHECK(e.raw[3] == 0x04ff44);
  CHECK(e.s1 == s1);
  CHECK(ops.syncs() == Syncs{{5, true}});
  CHECK(t->live(5));
  CHECK(t->nr_live() == 1);
  for (ioasid_t p = 0; p < 16; p++) {
    if (p != 5) CHECK(read(*t, p).raw == std::array<uint64_t, 4>{});
  }

  // A VT-d first-stage description: FMT 1, LEVELS 5, HD, and the DID in the ASID field.
  const PasidStage1 v = vtd_s1(0x40200000, 5, 42);
  REQUIRE(t->set_entry(6, v).ok());
  CHECK(read(*t, 6).raw[0] == 0x002a000000000153);
  CHECK(read(*t, 6).s1 == v);
  CHECK(ops.syncs() == Syncs{{5, true}, {6, true}});
  CHECK(t->nr_live() == 2);
}

TEST_CASE_FIXTURE(Fixture, "clear_entry invalidates and zeroes the entry; not live is -ENOENT") {
  Box<PasidTable> t = make(4);
  REQUIRE(t->set_entry(9, arm_s1(0x40001000, 1)).ok());
  REQUIRE(t->set_entry(10, arm_s1(0x40002000, 2)).ok());
  ops.clear_syncs();
  REQUIRE(t->clear_entry(9).ok());
  const FakePasidEntry e = read(*t, 9);
  CHECK_FALSE(e.valid);
  CHECK(e.raw == std::array<uint64_t, 4>{});
  CHECK(ops.syncs() == Syncs{{9, true}});
  CHECK_FALSE(t->live(9));
  CHECK(t->nr_live() == 1);
  CHECK(read(*t, 10).s1 == arm_s1(0x40002000, 2));  // the neighbour is untouched

  const auto before = image(*t);
  CHECK(t->clear_entry(9).error().code() == -ENOENT);
  CHECK(t->clear_entry(11).error().code() == -ENOENT);  // never set
  CHECK(ops.syncs() == Syncs{{9, true}});
  CHECK(image(*t) == before);
  CHECK(ops.clears() == 1);

  // A cleared PASID can be set again.
  REQUIRE(t->set_entry(9, arm_s1(0x40003000, 3)).ok());
  CHECK(read(*t, 9).s1 == arm_s1(0x40003000, 3));
  CHECK(t->nr_live() == 2);
}

TEST_CASE_FIXTURE(Fixture, "PASIDs out of range are -ERANGE: nothing written, nothing synced") {
  for (bool two_level : {false, true}) {
    CAPTURE(two_level);
    ops.clear_syncs();
    Box<PasidTable> t = make(7, two_level);
    REQUIRE(t->set_entry(3, arm_s1(0x40001000, 1)).ok());
    ops.clear_syncs();
    const auto before = image(*t);
    const size_t dma_before = dma_live();
    const uint64_t writes = ops.writes();
    for (ioasid_t p : {128u, 129u, 1u << 20, ~0u}) {
      CHECK(t->set_entry(p, arm_s1(0x40001000, 1)).error().code() == -ERANGE);
      CHECK(t->clear_entry(p).error().code() == -ERANGE);
      CHECK_FALSE(t->live(p));
    }
    CHECK(image(*t) == before);
    CHECK(dma_live() == dma_before);
    CHECK(ops.syncs().empty());
    CHECK(ops.writes() == writes);
    CHECK(t->nr_live() == 1);
  }
}

TEST_CASE_FIXTURE(Fixture, "descriptions refused: -EINVAL, the entry (live or not) unchanged") {
  Box<PasidTable> t = make(6, true);  // one leaf: linear
  REQUIRE(t->set_entry(1, arm_s1(0x40001000, 1)).ok());
  ops.clear_syncs();
  const auto before = image(*t);
  const uint64_t writes = ops.writes();

  std::vector<PasidStage1> bad;
  PasidStage1 s = arm_s1(0x40001000, 7);
  s.pgtable_fmt = IoPgtableFmt::arm_64_lpae_s2;  // refused by the core
  bad.push_back(s);
  s = arm_s1(0x40001000, 7);
  s.pgtable_fmt = IoPgtableFmt::intel_vtd_sl;  // refused by the core
  bad.push_back(s);
  s = arm_s1(0x40001000, 7);
  s.flags |= 1u << 31;  // an unknown flag: refused by the core
  bad.push_back(s);
  s = arm_s1(0x40001000, 0x10000);  // an ASID wider than 16 bits: refused by the vendor
  bad.push_back(s);
  s = arm_s1(0x40001008, 7);  // TTB not 16-byte aligned
  bad.push_back(s);
  s = arm_s1(0x40001000, 7);
  s.tcr.t0sz = 64;
  bad.push_back(s);
  s = vtd_s1(0x40001000, 8, 7);
  bad.push_back(s);
  for (size_t i = 0; i < bad.size(); i++) {
    CAPTURE(i);
    for (ioasid_t p : {1u, 2u}) {  // live and not
      CHECK(t->set_entry(p, bad[i]).error().code() == -EINVAL);
    }
  }
  CHECK(image(*t) == before);
  CHECK(ops.syncs().empty());
  CHECK(ops.writes() == writes);
  CHECK(t->live(1));
  CHECK_FALSE(t->live(2));
  CHECK(t->nr_live() == 1);
}

TEST_CASE_FIXTURE(Fixture, "replacing a live entry: break, sync, make, sync; still one live") {
  for (bool two_level : {false, true}) {
    CAPTURE(two_level);
    Box<PasidTable> t = make(8, two_level);
    REQUIRE(t->set_entry(70, arm_s1(0x40001000, 1)).ok());
    ops.clear_syncs();
    const size_t dma_before = dma_live();
    const PasidStage1 next = vtd_s1(0x40005000, 4, 2);
    REQUIRE(t->set_entry(70, next).ok());
    CHECK(read(*t, 70).valid);
    CHECK(read(*t, 70).s1 == next);
    // The fake's own sync after clearing the valid bit, then the core's.
    CHECK(ops.syncs() == Syncs{{70, true}, {70, true}});
    CHECK(t->nr_live() == 1);
    CHECK(dma_live() == dma_before);  // the leaf is reused
    ops.clear_syncs();
  }
}

TEST_CASE_FIXTURE(Fixture,
                  "two-level: a leaf is allocated on the first write into it, then reused") {
  const size_t dma_before = dma_live();
  Box<PasidTable> t = make(10, true);
  REQUIRE(t->two_level());
  CHECK(dma_live() == dma_before + 1);  // the root only
  for (unsigned l = 0; l < 16; l++) CHECK(root_ptr(*t, l) == 0);
  CHECK_FALSE(read(*t, 130).leaf_present);

  REQUIRE(t->set_entry(130, arm_s1(0x40001000, 1)).ok());
  CHECK(dma_live() == dma_before + 2);
  CHECK(ops.leaf_tables_allocated() == 1);
  // The root pointer of leaf 2 (PASIDs 128-191): V and the leaf's address.
  const uint64_t ptr = root_ptr(*t, 2);
  CHECK((ptr & ~fp::kRootAddrMask) == fp::kRootV);
  const FakePasidEntry e = read(*t, 130);
  CHECK(e.pa == (ptr & fp::kRootAddrMask) + 2 * fp::kEntryBytes);
  CHECK(e.s1 == arm_s1(0x40001000, 1));
  CHECK(read(*t, 128).leaf_present);
  CHECK_FALSE(read(*t, 128).valid);
  for (unsigned l = 0; l < 16; l++) {
    if (l != 2) CHECK(root_ptr(*t, l) == 0);
  }
  // A new leaf table: the one sync is non-leaf, so cached copies of the root pointer go too.
  CHECK(ops.syncs() == Syncs{{130, false}});

  // The same leaf: no allocation, a leaf sync.
  REQUIRE(t->set_entry(191, arm_s1(0x40002000, 2)).ok());
  CHECK(dma_live() == dma_before + 2);
  CHECK(root_ptr(*t, 2) == ptr);
  CHECK(read(*t, 191).pa == (ptr & fp::kRootAddrMask) + 63 * fp::kEntryBytes);
  CHECK(ops.syncs() == Syncs{{130, false}, {191, true}});

  // The first and the last leaves.
  REQUIRE(t->set_entry(0, arm_s1(0x40003000, 3)).ok());
  REQUIRE(t->set_entry(1023, arm_s1(0x40004000, 4)).ok());
  CHECK(dma_live() == dma_before + 4);
  CHECK(ops.syncs() == Syncs{{130, false}, {191, true}, {0, false}, {1023, false}});
  CHECK(read(*t, 1023).s1 == arm_s1(0x40004000, 4));
  CHECK(read(*t, 0).s1 == arm_s1(0x40003000, 3));

  // Clearing every entry of a leaf keeps the leaf (freed with the table only).
  ops.clear_syncs();
  REQUIRE(t->clear_entry(130).ok());
  REQUIRE(t->clear_entry(191).ok());
  CHECK(ops.syncs() == Syncs{{130, true}, {191, true}});
  CHECK(root_ptr(*t, 2) == ptr);
  CHECK(dma_live() == dma_before + 4);
  // Setting into it again needs no allocation and no non-leaf sync.
  REQUIRE(t->set_entry(150, arm_s1(0x40005000, 5)).ok());
  CHECK(ops.syncs().back() == FakePasidTableOps::SyncCall{150, true});
  CHECK(dma_live() == dma_before + 4);
  CHECK(ops.leaf_tables_allocated() == 3);
  CHECK(t->nr_live() == 3);
}

TEST_CASE_FIXTURE(Fixture, "every PASID of a two-level table set, read back and cleared") {
  Box<PasidTable> t = make(8, true);
  for (ioasid_t p = 0; p < 256; p++)
    REQUIRE(t->set_entry(p, arm_s1(0x40000000 + p * 0x1000, p + 1)).ok());
  CHECK(t->nr_live() == 256);
  for (ioasid_t p = 0; p < 256; p++) {
    CAPTURE(p);
    const FakePasidEntry e = read(*t, p);
    CHECK(e.valid);
    CHECK(e.s1 == arm_s1(0x40000000 + p * 0x1000, p + 1));
  }
  const Syncs set_syncs = ops.syncs();
  REQUIRE(set_syncs.size() == 256);
  for (ioasid_t p = 0; p < 256; p++) {
    // Non-leaf exactly for the first PASID of each leaf, which allocated it.
    CHECK(set_syncs[p] == FakePasidTableOps::SyncCall{p, p % 64 != 0});
  }
  CHECK(ops.leaf_tables_allocated() == 4);
  ops.clear_syncs();
  for (ioasid_t p = 256; p-- > 0;) REQUIRE(t->clear_entry(p).ok());
  CHECK(t->nr_live() == 0);
  CHECK(ops.syncs().size() == 256);
  for (ioasid_t p = 0; p < 256; p++) CHECK_FALSE(read(*t, p).valid);
}

TEST_CASE_FIXTURE(Fixture, "destroying a table frees every DMA page and syncs nothing") {
  const long kmallocs = hosted::kmalloc_live();
  const size_t dma_before = dma_live();
  const uint64_t free_before = platform->dma().free_bytes();
  {
    Box<PasidTable> t = make(12, true);
    for (ioasid_t p = 0; p < 4096; p += 409) REQUIRE(t->set_entry(p, arm_s1(0x40001000, 1)).ok());
    CHECK(dma_live() == dma_before + 1 + 11);
    CHECK(ops.tables_live() == 1);
    ops.clear_syncs();
  }  // live entries included: the caller has stopped the hardware walking the table
  CHECK(ops.syncs().empty());
  CHECK(ops.tables_live() == 0);
  CHECK(dma_live() == dma_before);
  CHECK(platform->dma().free_bytes() == free_before);
  CHECK(hosted::kmalloc_live() == kmallocs);
}

TEST_CASE("non-coherent walks: each write and clear is cleaned for the device") {
  sim::Platform::Config pc;
  pc.dma_coherent = false;
  auto platform = sim::Platform::create(pc).release_value();
  FakePasidTableOps ops;
  PasidTableCfg cfg{PasidTableFmt::fake, 8, true, &platform->dma(), false};
  Box<PasidTable> t = PasidTable::alloc(ops, cfg, nullptr).release_value();
  const auto& dma = platform->dma();
  uint64_t before = dma.sync_for_device_calls();
  // A new leaf: the entry, then its root pointer.
  REQUIRE(t->set_entry(1, arm_s1(0x40001000, 1)).ok());
  CHECK(dma.sync_for_device_calls() == before + 2);
  // An existing leaf: words 1-3, then word 0 after them.
  before = dma.sync_for_device_calls();
  REQUIRE(t->set_entry(2, arm_s1(0x40001000, 1)).ok());
  CHECK(dma.sync_for_device_calls() == before + 2);
  // Clear: word 0, then words 1-3.
  before = dma.sync_for_device_calls();
  REQUIRE(t->clear_entry(2).ok());
  CHECK(dma.sync_for_device_calls() == before + 2);

  // A coherent walker gets no cleaning.
  FakePasidTableOps ops2;
  cfg.coherent_walk = true;
  Box<PasidTable> c = PasidTable::alloc(ops2, cfg, nullptr).release_value();
  before = dma.sync_for_device_calls();
  REQUIRE(c->set_entry(1, arm_s1(0x40001000, 1)).ok());
  REQUIRE(c->set_entry(1, arm_s1(0x40002000, 1)).ok());
  REQUIRE(c->clear_entry(1).ok());
  CHECK(dma.sync_for_device_calls() == before);
  CHECK(ops.protocol_errors().empty());
  CHECK(ops2.protocol_errors().empty());
}

// --- from_io_pgtable ---------------------------------------------------------------------------

struct PgtableFixture : Fixture {
  IoPgtableCfg pgtbl_cfg(unsigned ias, unsigned oas, uint64_t pgsizes = SZ_4K | SZ_2M | SZ_1G) {
    IoPgtableCfg c;
    c.pgsize_bitmap = pgsizes;
    c.ias = ias;
    c.oas = oas;
    c.dma = &platform->dma();
    return c;
  }
};

TEST_CASE_FIXTURE(PgtableFixture, "from_io_pgtable: LPAE stage 1, golden TCR and MAIR") {
  auto c = pgtbl_cfg(48, 48);
  Box<IoPgtable> pt = IoPgtable::alloc(IoPgtableFmt::arm_64_lpae_s1, c).release_value();
  const PasidStage1 s1 =
      PasidStage1::from_io_pgtable(IoPgtableFmt::arm_64_lpae_s1, c, 0xbeef).release_value();
  CHECK(s1.pgtable_fmt == IoPgtableFmt::arm_64_lpae_s1);
  CHECK(s1.ttbr == c.arm_lpae_s1.ttbr);
  // Typed from the CD's field encodings (IHI 0070 5.4): T0SZ = 64 - 48; TG0 0b00 = 4K;
  // IRGN0/ORGN0 0b01 = write-back write-allocate; SH0 0b11 = inner shareable; IPS 0b101 = 48
  // bits. MAIR: attr0 0x44 normal non-cacheable, attr1 0xff write-back, attr2 0x04 device.
  CHECK(s1.tcr == PasidStage1::Tcr{16, 0, 1, 1, 3, 5});
  CHECK(s1.mair == 0x04ff44);
  CHECK(s1.levels == 0);
  CHECK(s1.asid == 0xbeef);
  CHECK(s1.flags == PASID_S1_COHERENT_WALK);

  // Into a table: the entry holds the io-pgtable's root, which is the live table io-pgtable
  // maps through (its first entry becomes a table descriptor once something is mapped).
  Box<PasidTable> t = make(4);
  REQUIRE(t->set_entry(3, s1).ok());
  const FakePasidEntry e = read(*t, 3);
  CHECK(e.s1 == s1);
  REQUIRE(pt->map_pages(0x1000, 0x80000000, SZ_4K, 1, IOMMU_READ).ok());
  CHECK((platform->mem().read64(e.s1.ttbr).value() & 3) == 3);

  // 64K granule, 52-bit output: TG0 0b01 = 64K, IPS 0b110 = 52 bits, T0SZ = 64 - 42.
  auto c64 = pgtbl_cfg(42, 52, SZ_64K | SZ_512M);
  Box<IoPgtable> pt64 = IoPgtable::alloc(IoPgtableFmt::arm_64_lpae_s1, c64).release_value();
  const PasidStage1 s64 =
      PasidStage1::from_io_pgtable(IoPgtableFmt::arm_64_lpae_s1, c64, 1).release_value();
  CHECK(s64.tcr == PasidStage1::Tcr{22, 1, 1, 1, 3, 6});
  CHECK(s64.ttbr == c64.arm_lpae_s1.ttbr);

  // Non-coherent walks with hardware dirty tracking: IRGN0/ORGN0 0b00 = non-cacheable, SH0
  // 0b10 = outer shareable; HW_DIRTY, and no COHERENT_WALK.
  auto cd = pgtbl_cfg(48, 48);
  cd.coherent_walk = false;
  cd.quirks = IO_PGTABLE_QUIRK_DIRTY;
  Box<IoPgtable> ptd = IoPgtable::alloc(IoPgtableFmt::arm_64_lpae_s1, cd).release_value();
  const PasidStage1 sd =
      PasidStage1::from_io_pgtable(IoPgtableFmt::arm_64_lpae_s1, cd, 2).release_value();
  CHECK(sd.tcr == PasidStage1::Tcr{16, 0, 0, 0, 2, 5});
  CHECK(sd.flags == PASID_S1_HW_DIRTY);
}

TEST_CASE_FIXTURE(PgtableFixture, "from_io_pgtable: VT-d first stage; stage 2 is -EINVAL") {
  for (unsigned ias : {48u, 57u}) {
    CAPTURE(ias);
    auto c = pgtbl_cfg(ias, 48);
    Box<IoPgtable> pt = IoPgtable::alloc(IoPgtableFmt::intel_vtd_fl, c).release_value();
    const PasidStage1 s1 =
        PasidStage1::from_io_pgtable(IoPgtableFmt::intel_vtd_fl, c, 17).release_value();
    CHECK(s1.pgtable_fmt == IoPgtableFmt::intel_vtd_fl);
    CHECK(s1.ttbr == c.vtd.pgd);
    CHECK(s1.levels == (ias == 48 ? 4u : 5u));  // FSPM 0 / 1
    CHECK(s1.asid == 17);                       // the DID
    CHECK(s1.tcr == PasidStage1::Tcr{});
    CHECK(s1.mair == 0);
    CHECK(s1.flags == PASID_S1_COHERENT_WALK);
    Box<PasidTable> t = make(2);
    REQUIRE(t->set_entry(1, s1).ok());
    CHECK(read(*t, 1).s1 == s1);
  }

  auto s2 = pgtbl_cfg(40, 40);
  Box<IoPgtable> pt2 = IoPgtable::alloc(IoPgtableFmt::arm_64_lpae_s2, s2).release_value();
  CHECK(PasidStage1::from_io_pgtable(IoPgtableFmt::arm_64_lpae_s2, s2, 1).error().code() ==
        -EINVAL);
  auto sl = pgtbl_cfg(48, 48);
  Box<IoPgtable> ptsl = IoPgtable::alloc(IoPgtableFmt::intel_vtd_sl, sl).release_value();
  CHECK(PasidStage1::from_io_pgtable(IoPgtableFmt::intel_vtd_sl, sl, 1).error().code() == -EINVAL);
}

// --- formatting and vendor bugs ----------------------------------------------------------------

TEST_CASE("descriptions and formats print by name") {
  PasidStage1 s1 = arm_s1(0x40001000, 0x1234);
  s1.flags |= PASID_S1_HW_DIRTY;
  CHECK(fmt::format("{}", s1) ==
        "arm_64_lpae_s1 TTB 0x40001000 T0SZ 16 TG0 0 IRGN0 1 ORGN0 1 SH0 3 IPS 5 MAIR 0x4ff44 "
        "levels 0 ASID 4660 flags HW_DIRTY|COHERENT_WALK");
  PasidStage1 v = vtd_s1(0x2000, 5, 3);
  v.flags = 0x10;
  CHECK(fmt::format("{}", v) ==
        "intel_vtd_fl TTB 0x2000 T0SZ 0 TG0 0 IRGN0 0 ORGN0 0 SH0 0 IPS 0 MAIR 0x0 levels 5 "
        "ASID 3 flags 0x10");
  v.flags = 0;
  CHECK(fmt::format("{}", v).ends_with("flags 0"));
  CHECK(fmt::format("{} {} {}", PasidTableFmt::arm_smmuv3_cd, PasidTableFmt::intel_vtd_pasid,
                    PasidTableFmt::fake) == "arm_smmuv3_cd intel_vtd_pasid fake");
}

// A vendor that breaks the alloc contract.
class ForgetfulOps final : public PasidTableOps {
 public:
  Result<void> alloc(PasidTable&) override { return ok(); }  // no set_base
  void free(PasidTable&) override {}
  Result<PasidWrite> write(PasidTable&, ioasid_t, const PasidStage1&) override {
    return PasidWrite::entry;
  }
  void clear(PasidTable&, ioasid_t) override {}
  void sync(PasidTable&, ioasid_t, bool) override {}
};

TEST_CASE_FIXTURE(Fixture, "vendor contract violations are strata bugs") {
  CHECK(hosted::panic_message_of([&] {
          ForgetfulOps forgetful;
          (void)PasidTable::alloc(forgetful, cfg(4), nullptr);
        }).find("without set_base") != std::string::npos);
  Box<PasidTable> t = make(4);
  CHECK(hosted::panic_message_of([&] { t->set_base(0x1000); }).find("set_base outside") !=
        std::string::npos);
  CHECK(hosted::panic_message_of([&] { t->set_two_level(true); }).find("set_two_level outside") !=
        std::string::npos);
}

}  // namespace
}  // namespace strata
