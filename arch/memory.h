// SPDX-License-Identifier: MIT
// Small-object allocation for CPU-only memory, over the OS port's kmalloc.
//
// Library code has no global operator new (the portability check forbids it): objects are
// created with make_box, which places them in kmalloc'd memory and reports -ENOMEM instead of
// throwing. Memory a device reads comes from a DmaAllocator (arch/dma.h), never from here.
#pragma once

#include <stddef.h>
#include <string.h>

#include <new>
#include <type_traits>
#include <utility>

#include "arch/port.h"
#include "arch/result.h"

namespace strata {

inline void* kmalloc(size_t size, size_t align = alignof(max_align_t)) {
  return strata_os_kmalloc(size, align);
}

inline void* kzalloc(size_t size, size_t align = alignof(max_align_t)) {
  void* p = strata_os_kmalloc(size, align);
  if (p) memset(p, 0, size);
  return p;
}

inline void kfree(void* p) {
  if (p) strata_os_kfree(p);
}

// Sole owner of a kmalloc'd T (unique_ptr without <memory>, whose default deleter would pull in
// operator delete).
template <typename T>
class Box {
 public:
  Box() = default;
  Box(Box&& other) : ptr_(std::exchange(other.ptr_, nullptr)) {}
  Box& operator=(Box&& other) {
    if (this != &other) {
      reset();
      ptr_ = std::exchange(other.ptr_, nullptr);
    }
    return *this;
  }
  Box(const Box&) = delete;
  Box& operator=(const Box&) = delete;
  ~Box() { reset(); }

  // A Box of a derived type becomes a Box of its base (which then needs a virtual destructor).
  template <typename U>
  requires std::is_convertible_v<U*, T*> Box(Box<U>&& other) : ptr_(other.release()) {
    static_assert(std::is_same_v<T, U> || std::has_virtual_destructor_v<T>,
                  "destroying through a base needs a virtual destructor");
  }

  // Takes ownership of an object placed in kmalloc'd memory.
  static Box adopt(T* ptr) { return Box(ptr); }
  // Gives up ownership; the caller destroys the object and kfree()s it.
  T* release() { return std::exchange(ptr_, nullptr); }

  void reset() {
    if (T* p = std::exchange(ptr_, nullptr)) {
      p->~T();
      kfree(p);
    }
  }

  T* get() const { return ptr_; }
  T* operator->() const { return ptr_; }
  T& operator*() const { return *ptr_; }
  explicit operator bool() const { return ptr_ != nullptr; }

 private:
  explicit Box(T* ptr) : ptr_(ptr) {}
  T* ptr_ = nullptr;
};

template <typename T, typename... Args>
Result<Box<T>> make_box(Args&&... args) {
  static_assert(std::is_nothrow_destructible_v<T>);
  void* mem = kmalloc(sizeof(T), alignof(T));
  if (!mem) return Error(-ENOMEM);
  return Box<T>::adopt(new (mem) T(std::forward<Args>(args)...));
}

}  // namespace strata
