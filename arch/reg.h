// SPDX-License-Identifier: MIT
// Typed register and descriptor fields.
//
// A field is a type naming bits [Hi:Lo] exactly as the specification does, with the spec's
// spelling. Positions are absolute across a structure, as both specs number them: the STE's
// S2VMID is Field<143, 128, "S2VMID">, which lives in 64-bit word 2 at [15:0]. A field never
// crosses a 64-bit word (the unit of single-copy atomicity in both specs); where a spec field
// does, declare its halves.
//
//   struct CR0 : reg::Register<CR0, uint32_t, 0x20, "CR0"> {
//     using SMMUEN = reg::Bit<0, "SMMUEN">;  // SMMU enable
//     using Fields = reg::FieldList<SMMUEN, ...>;
//   };
//   CR0::read_from(io).set<CR0::SMMUEN>(1).write_to(io);
//
// Value fields hold a number (Config = 0b101); address fields (reg::Addr) hold an address whose
// bits sit in place (STRTAB_BASE.ADDR[51:6] takes the table's physical address, which must be
// 64-byte aligned). A value that does not fit its field is a compile error in a constant
// expression and a BUG at run time: it is always a strata bug, never input.
//
// Registers are snapshots (Fuchsia's hwreg): read_from() reads the whole register, set()
// changes only the named field so undeclared bits survive a read-modify-write, and write_to()
// clears the bits the register declares RES0 (kRes0) before writing.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <type_traits>

#include <fmt/core.h>

#include "arch/bug.h"
#include "arch/endian.h"
#include "arch/mmio.h"

namespace strata::reg {

// A string literal usable as a template argument: the spec's name of a field or register.
template <size_t N>
struct Name {
  constexpr Name(const char (&s)[N]) {
    for (size_t i = 0; i < N; i++) str[i] = s[i];
  }
  char str[N];
};

enum class Kind { value, address };

template <unsigned Hi, unsigned Lo, Name N, Kind K = Kind::value>
struct Field {
  static_assert(Hi >= Lo, "fields are written [Hi:Lo]");
  static_assert(Hi / 64 == Lo / 64, "field crosses a 64-bit word: declare its two parts");

  static constexpr unsigned kHi = Hi;
  static constexpr unsigned kLo = Lo;
  static constexpr unsigned kWidth = Hi - Lo + 1;
  static constexpr unsigned kWord = Lo / 64;  // which 64-bit word of a descriptor
  static constexpr unsigned kShift = Lo % 64;
  static constexpr uint64_t kMask =  // the field's bits within its word
      (kWidth == 64 ? ~uint64_t{0} : ((uint64_t{1} << kWidth) - 1)) << kShift;
  static constexpr Kind kKind = K;
  static constexpr const char* kName = N.str;

  static constexpr bool fits(uint64_t v) {
    return K == Kind::address ? (v & ~kMask) == 0 : (v & ~(kMask >> kShift)) == 0;
  }
  // The field's value in `word` (its word of the structure).
  static constexpr uint64_t extract(uint64_t word) {
    return K == Kind::address ? (word & kMask) : (word & kMask) >> kShift;
  }
  // `word` with the field replaced by `v`.
  static constexpr uint64_t insert(uint64_t word, uint64_t v) {
    if (!fits(v)) STRATA_BUG("value does not fit its field");
    return (word & ~kMask) | (K == Kind::address ? v : v << kShift);
  }
};

template <unsigned B, Name N>
using Bit = Field<B, B, N>;

template <unsigned Hi, unsigned Lo, Name N>
using Addr = Field<Hi, Lo, N, Kind::address>;

// Whether no two of the fields share a bit.
template <typename... Fs>
constexpr bool fields_disjoint() {
  constexpr unsigned kMaxWord = [] {
    unsigned m = 0;
    ((m = Fs::kWord > m ? Fs::kWord : m), ...);
    return m;
  }();
  for (unsigned w = 0; w <= kMaxWord; w++) {
    uint64_t seen = 0;
    bool ok = true;
    ((ok = ok && (Fs::kWord != w || (seen & Fs::kMask) == 0),
      seen |= (Fs::kWord == w ? Fs::kMask : 0)),
     ...);
    if (!ok) return false;
  }
  return true;
}

// The fields a register or descriptor declares, in spec order: used to print it and to find
// bits set outside every field. Overlapping fields are a compile error (a typo in a position).
template <typename... Fs>
struct FieldList {
  static constexpr size_t kCount = sizeof...(Fs);
  // Bits of 64-bit word `w` covered by some field.
  static constexpr uint64_t declared(unsigned w) {
    uint64_t m = 0;
    ((m |= (Fs::kWord == w ? Fs::kMask : 0)), ...);
    return m;
  }
  static_assert(fields_disjoint<Fs...>(), "two fields of one register or descriptor overlap");

  template <typename Visit>
  static constexpr void for_each(Visit&& visit) {
    (visit.template operator()<Fs>(), ...);
  }
};

// Base of register snapshots. Self derives from it and adds only nested types (CRTP).
template <typename Self, typename W, uint32_t Offset, Name N>
class Register {
  static_assert(std::is_same_v<W, uint32_t> || std::is_same_v<W, uint64_t>);

 public:
  using Word = W;
  static constexpr uint32_t kOffset = Offset;
  static constexpr const char* kName = N.str;
  static_assert(Offset % sizeof(W) == 0, "register offset not aligned to its width");

  constexpr Register() = default;

  static constexpr Self from_value(W v) {
    Self r;
    r.value_ = v;
    return r;
  }
  static Self read_from(const Mmio& io) {
    return from_value(sizeof(W) == 4 ? io.readl(Offset) : io.readq(Offset));
  }
  static Self read_from_relaxed(const Mmio& io) {
    return from_value(sizeof(W) == 4 ? io.readl_relaxed(Offset) : io.readq_relaxed(Offset));
  }
  void write_to(const Mmio& io) const {
    if constexpr (sizeof(W) == 4)
      io.writel(value_ & ~res0(), Offset);
    else
      io.writeq(value_ & ~res0(), Offset);
  }
  void write_to_relaxed(const Mmio& io) const {
    if constexpr (sizeof(W) == 4)
      io.writel_relaxed(value_ & ~res0(), Offset);
    else
      io.writeq_relaxed(value_ & ~res0(), Offset);
  }

  template <typename F>
  constexpr uint64_t get() const {
    static_assert(F::kHi < sizeof(W) * 8, "field outside the register");
    return F::extract(value_);
  }
  template <typename F>
  constexpr Self& set(uint64_t v) {
    static_assert(F::kHi < sizeof(W) * 8, "field outside the register");
    value_ = static_cast<W>(F::insert(value_, v));
    return static_cast<Self&>(*this);
  }

  constexpr W value() const { return value_; }
  constexpr Self& set_value(W v) {
    value_ = v;
    return static_cast<Self&>(*this);
  }
  constexpr bool operator==(const Register& o) const { return value_ == o.value_; }

  // Bits the register declares reserved-zero (Self::kRes0, default none).
  static constexpr W res0() {
    if constexpr (requires { Self::kRes0; })
      return Self::kRes0;
    else
      return 0;
  }

 private:
  W value_ = 0;
};

// Base of in-memory descriptors: N little-endian 64-bit words, laid out exactly as the hardware
// reads them, so a descriptor can be copied to or from DMA memory word by word (the unit the
// hardware reads atomically). Self derives from it and adds only nested types.
template <typename Self, size_t NWords, Name N>
struct Descriptor {
  static constexpr size_t kWords = NWords;
  static constexpr const char* kName = N.str;

  uint64_t data[NWords] = {};  // little-endian

  template <typename F>
  constexpr uint64_t get() const {
    static_assert(F::kWord < NWords, "field outside the descriptor");
    return F::extract(le64_to_cpu(data[F::kWord]));
  }
  template <typename F>
  constexpr Self& set(uint64_t v) {
    static_assert(F::kWord < NWords, "field outside the descriptor");
    data[F::kWord] = cpu_to_le64(F::insert(le64_to_cpu(data[F::kWord]), v));
    return static_cast<Self&>(*this);
  }

  // Word `i` in CPU byte order.
  constexpr uint64_t word(size_t i) const { return le64_to_cpu(data[i]); }
  constexpr Self& set_word(size_t i, uint64_t v) {
    data[i] = cpu_to_le64(v);
    return static_cast<Self&>(*this);
  }
  constexpr bool operator==(const Descriptor&) const = default;
};

namespace detail {

// Appends " Name" for a set one-bit field, " Name=0x.." for a non-zero wider one.
template <typename F>
fmt::appender format_field(fmt::appender out, uint64_t value, bool& first) {
  if (value == 0) return out;
  out = fmt::format_to(out, "{}{}", first ? "" : " ", F::kName);
  if (F::kWidth > 1 || F::kKind == Kind::address) out = fmt::format_to(out, "={:#x}", value);
  first = false;
  return out;
}

}  // namespace detail

// "CR0 0x0000000d {SMMUEN EVTQEN CMDQEN}"; bits outside every field print as "undeclared=0x..".
template <typename R>
fmt::appender format_register(fmt::appender out, const R& r) {
  using W = typename R::Word;
  out = fmt::format_to(out, "{} {:#0{}x} {{", R::kName, r.value(), 2 + 2 * sizeof(W));
  bool first = true;
  R::Fields::for_each(
      [&]<typename F>() { out = detail::format_field<F>(out, r.template get<F>(), first); });
  const uint64_t undeclared = r.value() & ~R::Fields::declared(0);
  if (undeclared) out = fmt::format_to(out, "{}undeclared={:#x}", first ? "" : " ", undeclared);
  return fmt::format_to(out, "}}");
}

// "STE [0x..., 0x..., ...] {V Config=0x5 S1ContextPtr=0x80000}"; bits outside every field
// print per word as "undeclared[1]=0x..".
template <typename D>
fmt::appender format_descriptor(fmt::appender out, const D& d) {
  out = fmt::format_to(out, "{} [", D::kName);
  for (size_t i = 0; i < D::kWords; i++)
    out = fmt::format_to(out, "{}{:#018x}", i ? ", " : "", d.word(i));
  out = fmt::format_to(out, "] {{");
  bool first = true;
  D::Fields::for_each(
      [&]<typename F>() { out = detail::format_field<F>(out, d.template get<F>(), first); });
  for (unsigned i = 0; i < D::kWords; i++) {
    const uint64_t undeclared = d.word(i) & ~D::Fields::declared(i);
    if (undeclared) {
      out = fmt::format_to(out, "{}undeclared[{}]={:#x}", first ? "" : " ", i, undeclared);
      first = false;
    }
  }
  return fmt::format_to(out, "}}");
}

}  // namespace strata::reg

// Every register and descriptor type with a Fields list prints by field name.
template <typename T>
requires requires {
  typename T::Fields;
  typename T::Word;
}
struct fmt::formatter<T> {
  constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
  auto format(const T& r, fmt::format_context& ctx) const {
    return strata::reg::format_register(ctx.out(), r);
  }
};

template <typename T>
requires requires {
  typename T::Fields;
  T::kWords;
}
struct fmt::formatter<T> {
  constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
  auto format(const T& d, fmt::format_context& ctx) const {
    return strata::reg::format_descriptor(ctx.out(), d);
  }
};
