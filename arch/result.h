// SPDX-License-Identifier: MIT
// Kernel-style error results.
//
// Every fallible call returns Result<T>: a T, or an Error holding a negative errno (arch/errno.h).
// Both are [[nodiscard]], so an ignored error is a compile error. STRATA_TRY propagates an
// error to the caller and yields the value otherwise (SerenityOS's TRY, Linux's
// "if (ret) return ret;").
#pragma once

#include <new>
#include <type_traits>
#include <utility>

#include <fmt/core.h>

#include "arch/bug.h"
#include "arch/errno.h"

namespace strata {

class [[nodiscard]] Error {
 public:
  // `errno_value` is negative, as in Linux: Error(-EINVAL).
  constexpr explicit Error(int errno_value) : code_(errno_value) {
    if (!std::is_constant_evaluated()) STRATA_BUG_ON(errno_value >= 0);
  }
  constexpr int code() const { return code_; }
  // "EINVAL"; "E?" for a number strata does not use.
  const char* name() const;
  constexpr bool operator==(const Error&) const = default;

 private:
  int code_;
};

template <typename T>
class [[nodiscard]] Result {
  static_assert(!std::is_reference_v<T>, "Result holds values; use a pointer for references");

 public:
  // Implicit, so `return value;` and `return Error(-EINVAL);` both work.
  Result(const T& value) { new (&value_) T(value); }
  Result(T&& value) { new (&value_) T(std::move(value)); }
  Result(Error error) : error_(error.code()) {}

  Result(Result&& other) : error_(other.error_) {
    if (ok()) new (&value_) T(std::move(other.value_));
  }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  Result& operator=(Result&&) = delete;
  ~Result() {
    if (ok()) value_.~T();
  }

  bool ok() const { return error_ == 0; }
  Error error() const {
    STRATA_BUG_ON(ok());
    return Error(error_);
  }
  T& value() & {
    STRATA_BUG_ON(!ok());
    return value_;
  }
  const T& value() const& {
    STRATA_BUG_ON(!ok());
    return value_;
  }
  // Moves the value out; what is left is a moved-from T.
  T release_value() {
    STRATA_BUG_ON(!ok());
    return std::move(value_);
  }
  T* operator->() { return &value(); }
  T& operator*() { return value(); }

 private:
  union {
    T value_;
  };
  int error_ = 0;  // 0, or the negative errno
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() : error_(0) {}
  Result(Error error) : error_(error.code()) {}

  bool ok() const { return error_ == 0; }
  Error error() const {
    STRATA_BUG_ON(error_ == 0);
    return Error(error_);
  }
  void release_value() const { STRATA_BUG_ON(error_ != 0); }

 private:
  int error_;
};

// The success value of Result<void>.
inline Result<void> ok() { return {}; }

}  // namespace strata

// Evaluates a Result; on error returns the error from the enclosing function, otherwise the
// expression's value is the Result's value (moved out). GNU statement expression, as in Linux.
#define STRATA_TRY(expr)                                             \
  ({                                                                 \
    auto strata_try_result_ = (expr);                                \
    if (!strata_try_result_.ok()) return strata_try_result_.error(); \
    strata_try_result_.release_value();                              \
  })

// Prints "-EINVAL", as Linux's %pe.
template <>
struct fmt::formatter<strata::Error> {
  constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
  auto format(const strata::Error& e, fmt::format_context& ctx) const {
    return fmt::format_to(ctx.out(), "-{}", e.name());
  }
};
