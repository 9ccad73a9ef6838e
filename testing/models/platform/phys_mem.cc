// SPDX-License-Identifier: MIT
#include "testing/models/platform/phys_mem.h"

#include <string.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <bit>

#include <fmt/core.h>

#include "arch/endian.h"
#include "arch/port.h"

namespace strata::sim {
namespace {

// Device memory is little-endian (arch/endian.h); these are its 32-bit counterparts.
constexpr uint32_t cpu_to_le32(uint32_t v) {
  if constexpr (std::endian::native == std::endian::little) return v;
  return __builtin_bswap32(v);
}
constexpr uint32_t le32_to_cpu(uint32_t v) { return cpu_to_le32(v); }

// Why bulk copies are made of atomics: the CPU changes live descriptors with dma_write64, a
// relaxed 64-bit atomic store, while a device model on another thread may be copying the same
// words (a queue or table fetch). A memcpy there is a data race in C++ (ThreadSanitizer reports
// it) and may tear a word. The interconnect a real device sits on makes every aligned 64-bit
// access single-copy atomic, which is exactly what a relaxed 8-byte atomic load or store gives,
// so each aligned word is copied as one. The bytes before the first and after the last aligned
// word use relaxed 1-byte atomics: hardware promises nothing wider for an unaligned access, and
// byte atomics keep those accesses race-free too. Host and physical addresses agree modulo the
// page size (each region is one page-aligned mapping), so host alignment is physical alignment.
void copy_from_ram(unsigned char* dst, const unsigned char* src, size_t len) {
  for (; len && (reinterpret_cast<uintptr_t>(src) & 7); --len)
    *dst++ = __atomic_load_n(src++, __ATOMIC_RELAXED);
  for (; len >= 8; len -= 8, src += 8, dst += 8) {
    const uint64_t word = __atomic_load_n(reinterpret_cast<const uint64_t*>(src), __ATOMIC_RELAXED);
    memcpy(dst, &word, 8);
  }
  for (; len; --len) *dst++ = __atomic_load_n(src++, __ATOMIC_RELAXED);
}

void copy_to_ram(unsigned char* dst, const unsigned char* src, size_t len) {
  for (; len && (reinterpret_cast<uintptr_t>(dst) & 7); --len)
    __atomic_store_n(dst++, *src++, __ATOMIC_RELAXED);
  for (; len >= 8; len -= 8, src += 8, dst += 8) {
    uint64_t word;
    memcpy(&word, src, 8);
    __atomic_store_n(reinterpret_cast<uint64_t*>(dst), word, __ATOMIC_RELAXED);
  }
  for (; len; --len) __atomic_store_n(dst++, *src++, __ATOMIC_RELAXED);
}

// Whether [base, base + size) and [other, other + other_size) share a byte; neither wraps.
bool overlaps(uint64_t base, uint64_t size, uint64_t other, uint64_t other_size) {
  return base < other + other_size && other < base + size;
}

// Whether [base, base + size) is non-empty and does not wrap past the top of the address space.
bool valid_range(uint64_t base, uint64_t size) { return size != 0 && base + size - 1 >= base; }

std::string human_size(uint64_t size) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  unsigned unit = 0;
  while (unit + 1 < std::size(kUnits) && size >= 1024 && size % 1024 == 0) {
    size /= 1024;
    ++unit;
  }
  return fmt::format("{} {}", size, kUnits[unit]);
}

}  // namespace

Result<std::unique_ptr<PhysMem>> PhysMem::create(const Config& config) {
  std::vector<RamRegion> regions = config.ram;
  std::sort(regions.begin(), regions.end(),
            [](const RamRegion& a, const RamRegion& b) { return a.base < b.base; });
  for (size_t i = 0; i < regions.size(); ++i) {
    const RamRegion& r = regions[i];
    if (!valid_range(r.base, r.size) || r.base % kPageSize || r.size % kPageSize)
      return Error(-EINVAL);
    if (i > 0 && overlaps(regions[i - 1].base, regions[i - 1].size, r.base, r.size))
      return Error(-EINVAL);
  }

  std::unique_ptr<PhysMem> mem(new PhysMem);
  for (const RamRegion& r : regions) {
    // MAP_NORESERVE: the machine may have more RAM than the host will commit; only pages a
    // test touches are backed. On failure the destructor unmaps what was reserved so far.
    void* host = mmap(nullptr, r.size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (host == MAP_FAILED) return Error(-ENOMEM);
    mem->ram_.push_back({r.base, r.size, static_cast<char*>(host)});
  }
  mem->ram_config_ = std::move(regions);
  return mem;
}

PhysMem::~PhysMem() {
  for (const Ram& r : ram_) munmap(r.host, r.size);
}

uint64_t PhysMem::ram_size() const {
  uint64_t total = 0;
  for (const Ram& r : ram_) total += r.size;
  return total;
}

const PhysMem::Ram* PhysMem::find_ram(phys_addr_t pa, size_t len) const {
  // The last region starting at or below pa is the only one that can hold it.
  auto it = std::upper_bound(ram_.begin(), ram_.end(), pa,
                             [](phys_addr_t a, const Ram& r) { return a < r.base; });
  if (it == ram_.begin()) return nullptr;
  const Ram& r = *std::prev(it);
  const uint64_t offset = pa - r.base;
  // Written so that neither pa + len nor offset + len can overflow.
  if (offset >= r.size || len > r.size - offset) return nullptr;
  return &r;
}

void* PhysMem::host_ptr(phys_addr_t pa, size_t len) const {
  const Ram* r = find_ram(pa, len);
  return r ? r->host + (pa - r->base) : nullptr;
}

Result<void> PhysMem::map_window(phys_addr_t base, uint64_t size, WindowHandler& handler,
                                 std::string_view name) {
  if (!valid_range(base, size)) return Error(-EINVAL);
  for (const Ram& r : ram_)
    if (overlaps(base, size, r.base, r.size)) return Error(-EBUSY);
  std::lock_guard<std::mutex> lock(windows_lock_);
  for (const auto& [_, w] : windows_)
    if (overlaps(base, size, w->base, w->size)) return Error(-EBUSY);
  windows_.emplace(base,
                   std::make_unique<Window>(Window{base, size, &handler, std::string(name), 0}));
  return ok();
}

void PhysMem::unmap_window(phys_addr_t base) {
  std::unique_lock<std::mutex> lock(windows_lock_);
  auto it = windows_.find(base);
  if (it == windows_.end()) {
    const std::string msg = fmt::format("sim: unmap_window({:#x}): no window there", base);
    strata_os_panic(msg.c_str());
  }
  // Out of the map first so that no new call can find it, then wait for those in flight.
  std::unique_ptr<Window> window = std::move(it->second);
  windows_.erase(it);
  windows_idle_.wait(lock, [&] { return window->active == 0; });
}

PhysMem::Window* PhysMem::get_window(phys_addr_t pa, size_t len) {
  std::lock_guard<std::mutex> lock(windows_lock_);
  auto it = windows_.upper_bound(pa);
  if (it == windows_.begin()) return nullptr;
  Window* w = std::prev(it)->second.get();
  const uint64_t offset = pa - w->base;
  if (offset >= w->size || len > w->size - offset) return nullptr;
  ++w->active;
  return w;
}

void PhysMem::put_window(Window* window) {
  std::lock_guard<std::mutex> lock(windows_lock_);
  // Notify under the lock: once active reaches zero, unmap_window() may destroy the window
  // and, with it, anything we would touch after unlocking.
  if (--window->active == 0) windows_idle_.notify_all();
}

Error PhysMem::fault() {
  faults_.fetch_add(1, std::memory_order_relaxed);
  return Error(-EFAULT);
}

Result<uint64_t> PhysMem::window_read(phys_addr_t pa, unsigned size) {
  Window* w = size >= 1 && size <= 8 ? get_window(pa, size) : nullptr;
  if (!w) return fault();
  windows_hit_.fetch_add(1, std::memory_order_relaxed);
  Result<uint64_t> value = w->handler->read(pa - w->base, size);
  put_window(w);
  if (!value.ok()) return fault();
  // A handler's stray high bits must not leak into a narrower access.
  return size == 8 ? *value : *value & ((uint64_t{1} << (8 * size)) - 1);
}

Result<void> PhysMem::window_write(phys_addr_t pa, unsigned size, uint64_t value) {
  Window* w = size >= 1 && size <= 8 ? get_window(pa, size) : nullptr;
  if (!w) return fault();
  windows_hit_.fetch_add(1, std::memory_order_relaxed);
  Result<void> ret = w->handler->write(pa - w->base, size, value);
  put_window(w);
  if (!ret.ok()) return fault();
  return ok();
}

Result<void> PhysMem::read(phys_addr_t pa, void* dst, size_t len) {
  if (len == 0) return ok();
  if (const Ram* r = find_ram(pa, len)) {
    copy_from_ram(static_cast<unsigned char*>(dst),
                  reinterpret_cast<const unsigned char*>(r->host + (pa - r->base)), len);
    return ok();
  }
  if (len > 8) return fault();
  const uint64_t value = STRATA_TRY(window_read(pa, static_cast<unsigned>(len)));
  auto* out = static_cast<unsigned char*>(dst);
  for (size_t i = 0; i < len; ++i) out[i] = static_cast<unsigned char>(value >> (8 * i));
  return ok();
}

Result<void> PhysMem::write(phys_addr_t pa, const void* src, size_t len) {
  if (len == 0) return ok();
  if (const Ram* r = find_ram(pa, len)) {
    copy_to_ram(reinterpret_cast<unsigned char*>(r->host + (pa - r->base)),
                static_cast<const unsigned char*>(src), len);
    return ok();
  }
  if (len > 8) return fault();
  const auto* in = static_cast<const unsigned char*>(src);
  uint64_t value = 0;
  for (size_t i = 0; i < len; ++i) value |= uint64_t{in[i]} << (8 * i);
  return window_write(pa, static_cast<unsigned>(len), value);
}

Result<uint64_t> PhysMem::read64_slow(phys_addr_t pa) {
  if (pa % 8) return Error(-EINVAL);
  // The device's side of arch/dma.h's dma_read64/dma_write64 contract: the same access.
  if (const void* p = host_ptr(pa, 8)) return dma_read64(p);
  return window_read(pa, 8);
}

Result<void> PhysMem::write64(phys_addr_t pa, uint64_t value) {
  if (pa % 8) return Error(-EINVAL);
  if (void* p = host_ptr(pa, 8)) {
    dma_write64(p, value);
    return ok();
  }
  return window_write(pa, 8, value);
}

Result<bool> PhysMem::cmpxchg64(phys_addr_t pa, uint64_t expected, uint64_t desired) {
  if (pa % 8) return Error(-EINVAL);
  void* p = host_ptr(pa, 8);
  if (!p) return fault();
  // The same object dma_read64/dma_write64 access with __atomic builtins, so the swap is atomic
  // against them too. Sequentially consistent, as an interconnect's atomic is ordered both ways.
  uint64_t le_expected = cpu_to_le64(expected);
  return std::atomic_ref<uint64_t>(*static_cast<uint64_t*>(p))
      .compare_exchange_strong(le_expected, cpu_to_le64(desired));
}

Result<uint32_t> PhysMem::read32(phys_addr_t pa) {
  if (pa % 4) return Error(-EINVAL);
  if (const void* p = host_ptr(pa, 4))
    return le32_to_cpu(__atomic_load_n(static_cast<const uint32_t*>(p), __ATOMIC_RELAXED));
  return static_cast<uint32_t>(STRATA_TRY(window_read(pa, 4)));
}

Result<void> PhysMem::write32(phys_addr_t pa, uint32_t value) {
  if (pa % 4) return Error(-EINVAL);
  if (void* p = host_ptr(pa, 4)) {
    __atomic_store_n(static_cast<uint32_t*>(p), cpu_to_le32(value), __ATOMIC_RELAXED);
    return ok();
  }
  return window_write(pa, 4, value);
}

std::string PhysMem::describe() const {
  struct Line {
    uint64_t base, size;
    std::string what;
  };
  std::vector<Line> lines;
  for (const Ram& r : ram_) lines.push_back({r.base, r.size, "ram"});
  {
    std::lock_guard<std::mutex> lock(windows_lock_);
    for (const auto& [_, w] : windows_) lines.push_back({w->base, w->size, w->name});
  }
  std::sort(lines.begin(), lines.end(),
            [](const Line& a, const Line& b) { return a.base < b.base; });
  std::string out;
  for (const Line& l : lines)
    out += fmt::format("{:#018x}-{:#018x} {:>8} {}\n", l.base, l.base + l.size - 1,
                       human_size(l.size), l.what);
  return out;
}

}  // namespace strata::sim
