// SPDX-License-Identifier: MIT
// The typed field helper. The registers and descriptors below are declared here, with
// expected values typed in from the specifications (IHI 0070 for SMMUv3, Intel VT-d spec
// 216409), not from strata's own definitions: they check the helper, and the golden values
// check that a declaration spelled like the spec produces the spec's bits.
#include "arch/reg.h"

#include <doctest/doctest.h>
#include <fmt/core.h>

#include <cstring>
#include <type_traits>

#include "testing/hosted/hosted.h"

namespace strata {
namespace {

// SMMUv3 CR0 (IHI 0070, 6.3.9).
struct CR0 : reg::Register<CR0, uint32_t, 0x20, "CR0"> {
  using SMMUEN = reg::Bit<0, "SMMUEN">;  // SMMU enable
  using PRIQEN = reg::Bit<1, "PRIQEN">;  // PRI queue enable
  using EVTQEN = reg::Bit<2, "EVTQEN">;  // event queue enable
  using CMDQEN = reg::Bit<3, "CMDQEN">;  // command queue enable
  using ATSCHK = reg::Bit<4, "ATSCHK">;  // ATS behaviour check
  using Fields = reg::FieldList<SMMUEN, PRIQEN, EVTQEN, CMDQEN, ATSCHK>;
  static constexpr uint32_t kRes0 = 0xfffffc20;  // bits 31:10 and 5
};

// SMMUv3 STRTAB_BASE (64-bit): RA[62], ADDR[51:6].
struct STRTAB_BASE : reg::Register<STRTAB_BASE, uint64_t, 0x80, "STRTAB_BASE"> {
  using ADDR = reg::Addr<51, 6, "ADDR">;  // stream table base, 64-byte aligned
  using RA = reg::Bit<62, "RA">;          // read-allocate hint
  using Fields = reg::FieldList<ADDR, RA>;
};

// SMMUv3 STRTAB_BASE_CFG: LOG2SIZE[5:0], SPLIT[10:6], FMT[17:16].
struct STRTAB_BASE_CFG : reg::Register<STRTAB_BASE_CFG, uint32_t, 0x88, "STRTAB_BASE_CFG"> {
  using LOG2SIZE = reg::Field<5, 0, "LOG2SIZE">;
  using SPLIT = reg::Field<10, 6, "SPLIT">;
  using FMT = reg::Field<17, 16, "FMT">;  // 0 linear, 1 2-level
  using Fields = reg::FieldList<LOG2SIZE, SPLIT, FMT>;
};

// A subset of the SMMUv3 STE (512 bits), with the spec's absolute bit positions.
struct STE : reg::Descriptor<STE, 8, "STE"> {
  using V = reg::Bit<0, "V">;
  using Config = reg::Field<3, 1, "Config">;
  using S1Fmt = reg::Field<5, 4, "S1Fmt">;
  using S1ContextPtr = reg::Addr<51, 6, "S1ContextPtr">;
  using S1CDMax = reg::Field<63, 59, "S1CDMax">;
  using S1DSS = reg::Field<65, 64, "S1DSS">;
  using S2VMID = reg::Field<143, 128, "S2VMID">;
  using S2T0SZ = reg::Field<165, 160, "S2T0SZ">;
  using S2TTB = reg::Addr<243, 196, "S2TTB">;
  using Fields =
      reg::FieldList<V, Config, S1Fmt, S1ContextPtr, S1CDMax, S1DSS, S2VMID, S2T0SZ, S2TTB>;
};

// VT-d scalable-mode context entry (256 bits).
struct ScalableContextEntry : reg::Descriptor<ScalableContextEntry, 4, "SM context entry"> {
  using P = reg::Bit<0, "P">;                            // present
  using FPD = reg::Bit<1, "FPD">;                        // fault processing disable
  using PASIDE = reg::Bit<3, "PASIDE">;                  // PASID enable
  using PDTS = reg::Field<11, 9, "PDTS">;                // PASID directory size
  using PASIDDIRPTR = reg::Addr<63, 12, "PASIDDIRPTR">;  // PASID directory pointer
  using RID_PASID = reg::Field<83, 64, "RID_PASID">;     // PASID for requests without one
  using Fields = reg::FieldList<P, FPD, PASIDE, PDTS, PASIDDIRPTR, RID_PASID>;
};

static_assert(sizeof(STE) == 64 && std::is_trivially_copyable_v<STE>);
static_assert(sizeof(ScalableContextEntry) == 32);
static_assert(sizeof(CR0) == 4 && sizeof(STRTAB_BASE) == 8);

TEST_CASE("field masks, widths and word placement at every boundary") {
  CHECK(CR0::SMMUEN::kMask == 0x1);
  CHECK(CR0::ATSCHK::kMask == 0x10);
  CHECK(STRTAB_BASE_CFG::SPLIT::kMask == 0x7c0);
  CHECK(STRTAB_BASE_CFG::SPLIT::kWidth == 5);
  CHECK(STRTAB_BASE::ADDR::kMask == 0x000fffffffffffc0);
  CHECK(STRTAB_BASE::RA::kMask == uint64_t{1} << 62);
  // Absolute positions land in the right word and bit.
  CHECK(STE::S2VMID::kWord == 2);
  CHECK(STE::S2VMID::kMask == 0xffff);
  CHECK(STE::S2TTB::kWord == 3);
  CHECK(STE::S2TTB::kMask == 0x000ffffffffffff0);
  CHECK(STE::S1CDMax::kMask == 0xf800000000000000);
  // Whole-word and top-bit fields.
  using Whole = reg::Field<127, 64, "Whole">;
  CHECK(Whole::kWord == 1);
  CHECK(Whole::kMask == ~uint64_t{0});
  CHECK(Whole::extract(0x8000000000000001) == 0x8000000000000001);
  using Top = reg::Bit<63, "Top">;
  CHECK(Top::kMask == uint64_t{1} << 63);
  CHECK(Top::insert(0, 1) == uint64_t{1} << 63);
  using Bottom = reg::Bit<64, "Bottom">;
  CHECK(Bottom::kWord == 1);
  CHECK(Bottom::kShift == 0);
}

TEST_CASE("a value that does not fit its field is refused") {
  CHECK(STRTAB_BASE_CFG::SPLIT::fits(31));
  CHECK_FALSE(STRTAB_BASE_CFG::SPLIT::fits(32));
  // Address fields take the address in place: alignment and the top bit are both checked.
  CHECK(STRTAB_BASE::ADDR::fits(0x000fffffffffffc0));
  CHECK_FALSE(STRTAB_BASE::ADDR::fits(0x1020));             // not 64-byte aligned
  CHECK_FALSE(STRTAB_BASE::ADDR::fits(uint64_t{1} << 52));  // beyond 52 bits
  // At run time it is a strata bug, never silently truncated.
  std::string msg = hosted::panic_message_of(
      [] { STRATA_BUG_ON(STRTAB_BASE_CFG{}.set<STRTAB_BASE_CFG::SPLIT>(32).value() == 0); });
  CHECK(msg.find("does not fit") != std::string::npos);
  msg = hosted::panic_message_of([] { (void)STE{}.set<STE::S2TTB>(0x12345678); });
  CHECK(msg.find("does not fit") != std::string::npos);
  // In a constant expression it does not compile; this is the compiling half of that pair.
  static_assert(STRTAB_BASE_CFG{}.set<STRTAB_BASE_CFG::SPLIT>(31).value() == 0x7c0);
}

TEST_CASE("registers build and decode golden values") {
  // CR0 with the event and command queues and the SMMU enabled (the last step of Linux's
  // arm_smmu_device_reset): bits 0, 2, 3.
  constexpr CR0 cr0 = CR0{}.set<CR0::SMMUEN>(1).set<CR0::EVTQEN>(1).set<CR0::CMDQEN>(1);
  static_assert(cr0.value() == 0xd);

  // A 2-level stream table, SPLIT = 8, 16 StreamID bits.
  auto cfg = STRTAB_BASE_CFG{}
                 .set<STRTAB_BASE_CFG::FMT>(1)
                 .set<STRTAB_BASE_CFG::SPLIT>(8)
                 .set<STRTAB_BASE_CFG::LOG2SIZE>(16);
  CHECK(cfg.value() == 0x10210);
  CHECK(cfg.get<STRTAB_BASE_CFG::SPLIT>() == 8);

  auto base = STRTAB_BASE{}.set<STRTAB_BASE::ADDR>(0x8000000040).set<STRTAB_BASE::RA>(1);
  CHECK(base.value() == 0x4000008000000040);
  CHECK(base.get<STRTAB_BASE::ADDR>() == 0x8000000040);
  CHECK(base.get<STRTAB_BASE::RA>() == 1);
}

TEST_CASE("set changes only its field; undeclared bits survive read-modify-write") {
  // 0x80000000 is in no declared field (and RES0): a snapshot keeps it until write_to.
  auto cr0 = CR0::from_value(0x80000001);
  cr0.set<CR0::CMDQEN>(1).set<CR0::SMMUEN>(0);
  CHECK(cr0.value() == 0x80000008);
  CHECK(CR0::res0() == 0xfffffc20);
  // Registers without kRes0 declare none.
  CHECK(STRTAB_BASE::res0() == 0);
}

TEST_CASE("write_to clears RES0 bits and uses the register's width and offset") {
  struct Recorder : RegisterModel {
    uint64_t mmio_read(uint64_t offset, unsigned size) override {
      last_offset = offset;
      last_size = size;
      return 0xffffffffffffffff;
    }
    void mmio_write(uint64_t offset, uint64_t value, unsigned size) override {
      last_offset = offset;
      last_size = size;
      last_value = value;
    }
    uint64_t last_offset = 0, last_value = 0;
    unsigned last_size = 0;
  } rec;
  Mmio io = Mmio::model(rec, 0x100);

  CR0::from_value(0xffffffff).write_to(io);
  CHECK(rec.last_offset == 0x20);
  CHECK(rec.last_size == 4);
  CHECK(rec.last_value == 0x3df);  // 0xffffffff without RES0 bits 31:10 and 5

  STRTAB_BASE{}.set<STRTAB_BASE::ADDR>(0x1000).write_to_relaxed(io);
  CHECK(rec.last_offset == 0x80);
  CHECK(rec.last_size == 8);
  CHECK(rec.last_value == 0x1000);

  auto read = STRTAB_BASE_CFG::read_from(io);
  CHECK(rec.last_offset == 0x88);
  CHECK(rec.last_size == 4);
  CHECK(read.value() == 0xffffffff);
  CHECK(read.get<STRTAB_BASE_CFG::FMT>() == 3);

  auto relaxed = STRTAB_BASE::read_from_relaxed(io);
  CHECK(rec.last_offset == 0x80);
  CHECK(rec.last_size == 8);
  CHECK(relaxed.set_value(0x1040).get<STRTAB_BASE::ADDR>() == 0x1040);
}

TEST_CASE("multi-word descriptors: golden words and byte image") {
  // A stage-2 STE: V, Config = 0b110 (S1 bypass, S2 translate), VMID 0x42, T0SZ 24,
  // S2TTB 0x12345000.
  STE ste;
  ste.set<STE::V>(1)
      .set<STE::Config>(0b110)
      .set<STE::S2VMID>(0x42)
      .set<STE::S2T0SZ>(24)
      .set<STE::S2TTB>(0x12345000);
  CHECK(ste.word(0) == 0xd);
  CHECK(ste.word(1) == 0);
  CHECK(ste.word(2) == 0x0000001800000042);
  CHECK(ste.word(3) == 0x12345000);
  for (size_t i = 4; i < 8; i++) CHECK(ste.word(i) == 0);

  // The byte image is what the SMMU fetches: little-endian 64-bit words.
  unsigned char bytes[64];
  memcpy(bytes, &ste, sizeof(bytes));
  CHECK(bytes[0] == 0x0d);
  CHECK(bytes[16] == 0x42);
  CHECK(bytes[17] == 0x00);
  CHECK(bytes[20] == 24);  // S2T0SZ at bit 160 = byte 20
  CHECK(bytes[25] == 0x50);
  CHECK(bytes[26] == 0x34);
  CHECK(bytes[27] == 0x12);

  CHECK(ste.get<STE::Config>() == 6);
  CHECK(ste.get<STE::S2TTB>() == 0x12345000);

  // A stage-1 STE: S1ContextPtr in place, S1CDMax at the top of word 0, S1DSS in word 1.
  STE s1;
  s1.set<STE::V>(1)
      .set<STE::Config>(0b101)
      .set<STE::S1ContextPtr>(0x80000040)
      .set<STE::S1CDMax>(20)
      .set<STE::S1DSS>(2);
  CHECK(s1.word(0) == (uint64_t{20} << 59 | 0x80000040 | 0xb));
  CHECK(s1.word(1) == 2);

  // VT-d scalable-mode context entry: P, PASIDE, PDTS = 1, directory at 0x7000, RID_PASID 0.
  ScalableContextEntry ce;
  ce.set<ScalableContextEntry::P>(1)
      .set<ScalableContextEntry::PASIDE>(1)
      .set<ScalableContextEntry::PDTS>(1)
      .set<ScalableContextEntry::PASIDDIRPTR>(0x7000)
      .set<ScalableContextEntry::RID_PASID>(0xfffff);
  CHECK(ce.word(0) == 0x7209);
  CHECK(ce.word(1) == 0xfffff);
  CHECK(ce.word(2) == 0);
  CHECK(ce.word(3) == 0);

  // Equality is over all words.
  STE copy = ste;
  CHECK(copy == ste);
  copy.set_word(7, 1);
  CHECK_FALSE(copy == ste);
}

TEST_CASE("registers and descriptors print by field name and flag undeclared bits") {
  CHECK(fmt::format("{}", CR0::from_value(0xd)) == "CR0 0x0000000d {SMMUEN EVTQEN CMDQEN}");
  CHECK(fmt::format("{}", CR0::from_value(0x80000001)) ==
        "CR0 0x80000001 {SMMUEN undeclared=0x80000000}");
  CHECK(fmt::format("{}", CR0::from_value(0)) == "CR0 0x00000000 {}");
  CHECK(fmt::format("{}", STRTAB_BASE_CFG::from_value(0x10210)) ==
        "STRTAB_BASE_CFG 0x00010210 {LOG2SIZE=0x10 SPLIT=0x8 FMT=0x1}");
  CHECK(fmt::format("{}", STRTAB_BASE::from_value(0x4000008000000040)) ==
        "STRTAB_BASE 0x4000008000000040 {ADDR=0x8000000040 RA}");

  STE ste;
  ste.set<STE::V>(1).set<STE::Config>(0b110).set<STE::S2VMID>(0x42);
  ste.set_word(5, 0x100);  // nothing is declared in word 5
  CHECK(fmt::format("{}", ste) ==
        "STE [0x000000000000000d, 0x0000000000000000, 0x0000000000000042, "
        "0x0000000000000000, 0x0000000000000000, 0x0000000000000100, "
        "0x0000000000000000, 0x0000000000000000] {V Config=0x6 S2VMID=0x42 "
        "undeclared[5]=0x100}");
}

TEST_CASE("FieldList reports declared bits per word") {
  CHECK(STE::Fields::declared(0) == (0xf800000000000000 | 0x000fffffffffffc0 | 0x3f));
  CHECK(STE::Fields::declared(1) == 0x3);
  CHECK(STE::Fields::declared(4) == 0);
  CHECK(STE::Fields::kCount == 9);
  // Overlap detection (a typo in a bit position) is a static_assert; the predicate itself:
  static_assert(!reg::fields_disjoint<reg::Field<3, 0, "A">, reg::Bit<3, "B">>());
  static_assert(reg::fields_disjoint<reg::Field<3, 0, "A">, reg::Bit<67, "B">>());
}

}  // namespace
}  // namespace strata
