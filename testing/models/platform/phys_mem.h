// SPDX-License-Identifier: MIT
// The simulated machine's physical address space, as the bus sees it.
//
// What it implements: RAM regions fixed at creation, and device windows (doorbells, register
// blocks) registered and removed at run time. Device models are the bus masters: they read and
// write through read()/write() and the single-copy-atomic read32/64 and write32/64, update live
// descriptors in RAM with cmpxchg64, and an access that no RAM region or window answers is an
// external abort (-EFAULT), as a master sees a bus error. The CPU, i.e. the code under test, sees
// RAM through host_ptr() or a DmaAllocator.
//
// What it does not: caches (every access is coherent; non-coherent devices are modelled by the
// allocator counting syncs), access permissions, or any memory attribute. RAM is not
// byte-for-byte accounted: untouched pages read as zero and cost nothing.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "arch/dma.h"
#include "arch/result.h"

namespace strata::sim {

inline constexpr uint64_t kPageSize = 4096;

// A device's slice of the address space: answers accesses of 1 to 8 bytes inside the window.
// An error return is what the master sees (normally -EFAULT, an external abort).
class WindowHandler {
 public:
  // `offset` is from the window's base; `size` is 1..8 and the access lies inside the window.
  // Values are little-endian: the byte at `offset` is bits 7:0.
  virtual Result<uint64_t> read(uint64_t offset, unsigned size) = 0;
  virtual Result<void> write(uint64_t offset, unsigned size, uint64_t value) = 0;

 protected:
  ~WindowHandler() = default;  // never owned through this interface
};

class PhysMem {
 public:
  struct RamRegion {
    phys_addr_t base = 0;  // page-aligned
    uint64_t size = 0;     // page-aligned, not zero
  };
  struct Config {
    std::vector<RamRegion> ram;
  };

  // -EINVAL for a region that is empty, not page-aligned, wraps or overlaps another; -ENOMEM
  // when the host cannot reserve the address space.
  static Result<std::unique_ptr<PhysMem>> create(const Config& config);
  ~PhysMem();
  PhysMem(const PhysMem&) = delete;
  PhysMem& operator=(const PhysMem&) = delete;

  // Registers `handler` for [base, base + size). -EINVAL for an empty or wrapping window,
  // -EBUSY if it overlaps RAM or another window. `name` is for describe().
  Result<void> map_window(phys_addr_t base, uint64_t size, WindowHandler& handler,
                          std::string_view name = "window");
  // Removes the window at `base`. When it returns, no call of its handler is running or will
  // start, so the handler may be destroyed. A handler must not unmap its own window (that
  // waits for itself). Unmapping a window that is not mapped is a harness bug: panics.
  void unmap_window(phys_addr_t base);

  // Bus-master accesses. -EFAULT unless [pa, pa + len) lies wholly inside one RAM region or
  // wholly inside one window (window accesses are 1..8 bytes). A zero-length access succeeds.
  // Safe against concurrent CPU dma_write64/dma_read64 of the same words (see phys_mem.cc).
  Result<void> read(phys_addr_t pa, void* dst, size_t len);
  Result<void> write(phys_addr_t pa, const void* src, size_t len);

  // Single-copy-atomic, little-endian accesses, as a device fetches descriptors and queue
  // entries. -EINVAL when `pa` is not naturally aligned (a model bug, not a bus error), -EFAULT
  // as above.
  Result<uint64_t> read64(phys_addr_t pa) {
    // Inline for the first RAM region: a model's table walk is a chain of these, and the call
    // and region search were over half of a nested walk's time (walk_bench).
    if (!ram_.empty() && pa % 8 == 0) {
      const Ram& r = ram_.front();
      if (pa - r.base < r.size) return dma_read64(r.host + (pa - r.base));
    }
    return read64_slow(pa);
  }
  Result<void> write64(phys_addr_t pa, uint64_t value);
  Result<uint32_t> read32(phys_addr_t pa);
  Result<void> write32(phys_addr_t pa, uint32_t value);

  // An atomic compare-and-swap of the little-endian 64-bit word at `pa`, as a device updates a
  // live descriptor (the SMMU's hardware update of the Access flag and dirty state): true when
  // the word held `expected` and now holds `desired`, false (memory untouched) when it held
  // something else. RAM only: a window cannot promise atomicity, so it is an external abort
  // (-EFAULT), as is an address outside RAM; -EINVAL when `pa` is not naturally aligned.
  // Atomic against every other read64/write64/cmpxchg64 and CPU dma_read64/dma_write64.
  Result<bool> cmpxchg64(phys_addr_t pa, uint64_t expected, uint64_t desired);

  // The CPU's view of [pa, pa + len) when it lies inside one RAM region, else nullptr. A
  // physically contiguous range is contiguous in the view.
  void* host_ptr(phys_addr_t pa, size_t len) const;

  const std::vector<RamRegion>& ram() const { return ram_config_; }
  uint64_t ram_size() const;

  // Accesses a window answered, and accesses that ended in -EFAULT.
  uint64_t windows_hit() const { return windows_hit_.load(std::memory_order_relaxed); }
  uint64_t faults() const { return faults_.load(std::memory_order_relaxed); }

  // The memory map, one line per RAM region or window, in address order.
  std::string describe() const;

 private:
  struct Ram {
    phys_addr_t base;
    uint64_t size;
    char* host;  // one mmap reservation of `size` bytes
  };
  struct Window {
    phys_addr_t base;
    uint64_t size;
    WindowHandler* handler;
    std::string name;
    unsigned active = 0;  // handler calls in progress; guarded by windows_lock_
  };

  PhysMem() = default;

  const Ram* find_ram(phys_addr_t pa, size_t len) const;
  Result<uint64_t> read64_slow(phys_addr_t pa);
  // Finds the window holding [pa, pa + len) and marks a call in progress; put_window() ends it.
  Window* get_window(phys_addr_t pa, size_t len);
  void put_window(Window* window);
  Result<uint64_t> window_read(phys_addr_t pa, unsigned size);
  Result<void> window_write(phys_addr_t pa, unsigned size, uint64_t value);
  Error fault();

  // Fixed after create(): read without a lock. Sorted by base.
  std::vector<Ram> ram_;
  std::vector<RamRegion> ram_config_;

  // Windows change at run time. The lock is not held across a handler call, so a handler may
  // itself access the bus (a register write that starts DMA, which raises an MSI through
  // another window); `active` and windows_idle_ make unmap_window() wait for calls in flight.
  mutable std::mutex windows_lock_;
  std::condition_variable windows_idle_;
  std::map<phys_addr_t, std::unique_ptr<Window>> windows_;  // by base

  std::atomic<uint64_t> windows_hit_{0};
  std::atomic<uint64_t> faults_{0};
};

}  // namespace strata::sim
