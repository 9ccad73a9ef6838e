// SPDX-License-Identifier: MIT
// Differential test of io-pgtable: for every format and granule, thousands of seeded random
// map_pages / unmap_pages / iova_to_phys calls, each compared with a plain reference model of the
// semantics io_pgtable.h documents. At checkpoints the tree the hardware would walk (read back
// through the platform's physical memory and decoded with the architected encodings of
// arch/lpae/pte.h and arch/vtd/pte.h, not with io-pgtable's code) is compared with the model too.
//
// The model keeps the leaves (iova -> pa, size, prot) and the set of tables that exist, because
// tables are state the API exposes: unmapping leaves never frees the table that held them, an
// entry that points to a table is a live entry for map_pages (-EEXIST), and unmapping at a size
// whose entries are tables removes those tables whole (and counts as unmapped). Keeping them lets
// every call be predicted exactly, including the DMA and kmalloc allocation counts. A model of
// leaves alone (Linux's behaviour) differs only where a block is mapped over a table that no
// longer maps anything: the run counts those refusals ("over emptied tables only"), and the
// focused case at the end asserts Linux's behaviour there.
//
// The focused cases at the end pin two fixes this suite found: output addresses beyond oas are
// refused (-ERANGE, as Linux), and a block replaces a table that maps nothing any more (as
// Linux) when the caller gave io-pgtable a walk flush.
#include <stdint.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "arch/lpae/pte.h"
#include "arch/vtd/pte.h"
#include "core/io-pgtable/io_pgtable.h"
#include "core/io-pgtable/pgtable_test_support.h"
#include "testing/hosted/hosted.h"
#include "testing/models/platform/platform.h"

namespace strata::pgtable_test {
namespace {

constexpr uint64_t SZ_1M = uint64_t{1} << 20;
constexpr uint64_t SZ_1T = uint64_t{1} << 40;
constexpr uint64_t SZ_4G = uint64_t{1} << 32;

// A configuration with the range its random operations stay in, [window_base, window_base +
// window_size): small enough to collide often, large enough to hold several of the largest
// pages, and straddling the end of a table of the largest pages so that requests are clamped
// there.
struct WindowedCase : FormatCase {
  uint64_t window_base;
  uint64_t window_size;
};

const WindowedCase kCases[] = {
    {kLpaeS1_4K, 510 * SZ_1G, SZ_4G},
    {kLpaeS1_16K, 64 * SZ_1G - 256 * SZ_1M, 512 * SZ_1M},
    {kLpaeS1_64K, 4 * SZ_1T - 2 * SZ_1G, SZ_4G},
    {kLpaeS2_4K, 510 * SZ_1G, SZ_4G},
    {kLpaeS2_64K, 4 * SZ_1T - 2 * SZ_1G, SZ_4G},
    // Two concatenated tables, one 1024-entry root: the window crosses from the first into the
    // second.
    {kLpaeS2_4KIas40, 510 * SZ_1G, SZ_4G},
    // 3 levels: the window ends at the top of the input space.
    {kVtdSlIas39, 508 * SZ_1G, SZ_4G},
    {kVtdSlIas48, 510 * SZ_1G, SZ_4G},
    {kVtdFlIas48, 510 * SZ_1G, SZ_4G},
    {kLpaeS1_4KNonCoherent, 510 * SZ_1G, SZ_4G},
};

// ---------------------------------------------------------------------------------------------
// The hardware's view: the tree decoded from physical memory with the architected encodings.

struct HwLeaf {
  uint64_t pa;
  uint64_t size;
  uint64_t pte;
};

struct HwTree {
  std::map<uint64_t, HwLeaf> leaves;               // by iova
  std::set<std::pair<unsigned, uint64_t>> tables;  // (depth, iova base), the root excluded
  std::vector<std::string> errors;
};

enum class Decoded { invalid, table, leaf, bad };

Decoded decode(Kind kind, uint64_t pte, bool last) {
  if (pte == 0) return Decoded::invalid;  // io-pgtable clears every entry it invalidates
  switch (kind) {
    case Kind::lpae_s1:
    case Kind::lpae_s2:
      // Levels 0-2: 0b11 table, 0b01 block; level 3: 0b11 page, 0b01 reserved.
      if ((pte & 1) == 0) return Decoded::bad;
      if ((pte & lpae::kTypeMask) == lpae::kTypeTable) return last ? Decoded::leaf : Decoded::table;
      return last ? Decoded::bad : Decoded::leaf;
    case Kind::vtd_sl:
      if (!(pte & (vtd::SlPte::R::kMask | vtd::SlPte::W::kMask))) return Decoded::bad;
      if (last) return pte & vtd::SlPte::PS::kMask ? Decoded::bad : Decoded::leaf;
      if (pte & vtd::SlPte::PS::kMask) return Decoded::leaf;
      // A non-leaf entry must grant both: access is the AND over the walk.
      return (pte & 3) == 3 ? Decoded::table : Decoded::bad;
    case Kind::vtd_fl:
      if (!(pte & vtd::FlPte::P::kMask)) return Decoded::bad;
      if (last) return pte & vtd::FlPte::PS::kMask ? Decoded::bad : Decoded::leaf;
      if (pte & vtd::FlPte::PS::kMask) return Decoded::leaf;
      return (pte & vtd::FlPte::RW::kMask) && (pte & vtd::FlPte::US::kMask) ? Decoded::table
                                                                            : Decoded::bad;
  }
  return Decoded::bad;
}

void walk(sim::PhysMem& mem, const FormatCase& c, uint64_t table, unsigned d, uint64_t base,
          HwTree& out) {
  const Geometry geo = geometry_of(c);
  const bool last = d == geo.levels - 1;
  for (uint64_t i = 0; i < geo.entries(d); i++) {
    const uint64_t pte = mem.read64(table + i * 8).value();
    const uint64_t iova = base + i * geo.size(d);
    switch (decode(c.kind, pte, last)) {
      case Decoded::invalid: break;
      case Decoded::table:
        out.tables.insert({d + 1, iova});
        walk(mem, c, address_of(c, pte), d + 1, iova, out);
        break;
      case Decoded::leaf: out.leaves[iova] = {address_of(c, pte), geo.size(d), pte}; break;
      case Decoded::bad:
        out.errors.push_back("depth " + std::to_string(d) + " iova " + std::to_string(iova) +
                             ": bad entry " + std::to_string(pte));
        break;
    }
  }
}

// Whether the permission bits of a leaf say what `prot` asked for (bit positions typed in from
// the descriptor layouts; the full golden encodings are lpae_test's and vtd_test's business).
bool leaf_matches_prot(Kind kind, uint64_t pte, int prot, bool last) {
  const bool r = prot & IOMMU_READ, w = prot & IOMMU_WRITE, priv = prot & IOMMU_PRIV,
             noexec = prot & IOMMU_NOEXEC;
  auto bit = [pte](unsigned b) { return ((pte >> b) & 1) != 0; };
  switch (kind) {
    case Kind::lpae_s1:
      // AP[2] (bit 7) read-only, AP[1] (bit 6) EL0 access, AF (bit 10), PXN/UXN (53, 54).
      return bit(7) == !w && bit(6) == !priv && bit(10) && bit(53) == noexec && bit(54) == noexec &&
             (pte & 3) == (last ? 3u : 1u);
    case Kind::lpae_s2:
      // S2AP: bit 6 read, bit 7 write; AF; XN[1] (bit 54) with XN[0] (bit 53) clear.
      return bit(6) == r && bit(7) == w && bit(10) && bit(54) == noexec && !bit(53) &&
             (pte & 3) == (last ? 3u : 1u);
    case Kind::vtd_sl:
      // R (0), W (1), PS (7) in a PDE/PDPE leaf.
      return bit(0) == r && bit(1) == w && bit(7) == !last;
    case Kind::vtd_fl:
      // P (0), R/W (1), U/S (2), PS (7), XD (63).
      return bit(0) && bit(1) == w && bit(2) == !priv && bit(7) == !last && bit(63) == noexec;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// The reference model.

struct Leaf {
  uint64_t pa;
  uint64_t size;
  int prot;
};

struct Outcome {
  int err = 0;  // 0 or a negative errno
  uint64_t bytes = 0;
  bool tables_freed = false;
};

class Reference {
 public:
  explicit Reference(const FormatCase& c) : c_(c), geo_(geometry_of(c)) {}

  std::map<uint64_t, Leaf> leaves;                 // by iova
  std::set<std::pair<unsigned, uint64_t>> tables;  // (depth >= 1, iova base of the table)

  const Geometry& geo() const { return geo_; }

  // The depth of pgsize leaves, or -1 for a request io_pgtable.h calls -EINVAL.
  int request_depth(uint64_t iova, uint64_t pa, uint64_t pgsize, uint64_t pgcount) const {
    if (pgcount == 0 || pgsize == 0 || (pgsize & (pgsize - 1)) || !(pgsize & c_.pgsizes)) return -1;
    if ((iova | pa) & (pgsize - 1)) return -1;
    return geo_.depth_of(pgsize);
  }
  // Whether [addr, addr + size) lies below 2^bits (else -ERANGE).
  static bool in_range(uint64_t addr, uint64_t size, unsigned bits) {
    return (addr >> bits) == 0 && ((addr + size - 1) >> bits) == 0;
  }
  // How many of pgcount pages fit before the end of the depth-d table holding iova.
  uint64_t clamp(uint64_t iova, unsigned d, uint64_t pgcount) const {
    const uint64_t idx = (iova >> geo_.shift(d)) % geo_.entries(d);
    return std::min(pgcount, geo_.entries(d) - idx);
  }
  bool leaf_of_size(uint64_t iova, uint64_t size) const {
    auto it = leaves.find(iova);
    return it != leaves.end() && it->second.size == size;
  }
  bool table_at(unsigned depth, uint64_t base) const { return tables.count({depth, base}) != 0; }

  Outcome map(uint64_t iova, uint64_t pa, uint64_t pgsize, uint64_t pgcount, int prot) {
    if (!(prot & (IOMMU_READ | IOMMU_WRITE))) return {-EINVAL};
    const int depth = request_depth(iova, pa, pgsize, pgcount);
    if (depth < 0) return {-EINVAL};
    const unsigned leaf = static_cast<unsigned>(depth);
    const uint64_t n = clamp(iova, leaf, pgcount);
    if (!in_range(iova, n * pgsize, c_.ias) || !in_range(pa, n * pgsize, c_.oas)) return {-ERANGE};
    for (unsigned d = 0; d < leaf; d++) {
      const uint64_t base = iova & ~(geo_.size(d) - 1);
      if (leaf_of_size(base, geo_.size(d))) return {-EEXIST};  // a block covers iova
      if (!table_at(d + 1, base)) break;                       // nothing below either
    }
    for (uint64_t k = 0; k < n; k++) {
      const uint64_t e = iova + k * pgsize;
      // A leaf, or a table (live or emptied: its entry is live all the same).
      if (leaves.count(e) || table_at(leaf + 1, e)) return {-EEXIST};
    }
    for (unsigned d = 1; d <= leaf; d++) tables.insert({d, iova & ~(geo_.size(d - 1) - 1)});
    for (uint64_t k = 0; k < n; k++) leaves[iova + k * pgsize] = {pa + k * pgsize, pgsize, prot};
    return {0, n * pgsize};
  }

  Outcome unmap(uint64_t iova, uint64_t pgsize, uint64_t pgcount) {
    const int depth = request_depth(iova, 0, pgsize, pgcount);
    if (depth < 0) return {-EINVAL};
    const unsigned leaf = static_cast<unsigned>(depth);
    const uint64_t n = clamp(iova, leaf, pgcount);
    if (!in_range(iova, n * pgsize, c_.ias)) return {-ERANGE};
    for (unsigned d = 0; d < leaf; d++) {
      const uint64_t base = iova & ~(geo_.size(d) - 1);
      if (leaf_of_size(base, geo_.size(d))) return {-EINVAL};  // would cut a block
      if (!table_at(d + 1, base)) return {0, 0};               // a hole
    }
    Outcome out;
    uint64_t k = 0;
    for (; k < n; k++) {
      const uint64_t e = iova + k * pgsize;
      if (leaf_of_size(e, pgsize)) {
        leaves.erase(e);
      } else if (table_at(leaf + 1, e)) {
        // The table under this entry goes whole, with everything in it.
        leaves.erase(leaves.lower_bound(e), leaves.lower_bound(e + pgsize));
        for (unsigned d = leaf + 1; d < geo_.levels; d++)
          tables.erase(tables.lower_bound({d, e}), tables.lower_bound({d, e + pgsize}));
        out.tables_freed = true;
      } else {
        break;  // the first hole
      }
    }
    out.bytes = k * pgsize;
    return out;
  }

  // pa, or -ENOENT as a negative number.
  int64_t lookup(uint64_t iova) const {
    auto it = leaves.upper_bound(iova);
    if (it == leaves.begin()) return -ENOENT;
    --it;
    if (iova - it->first >= it->second.size) return -ENOENT;
    return static_cast<int64_t>(it->second.pa + (iova - it->first));
  }

 private:
  const FormatCase& c_;
  const Geometry geo_;
};

int64_t lookup_of(IoPgtable& pt, uint64_t iova) {
  auto r = pt.iova_to_phys(iova);
  return r.ok() ? static_cast<int64_t>(r.value()) : r.error().code();
}

template <typename T>
Outcome outcome_of(const Result<T>& r) {
  if (!r.ok()) return {r.error().code()};
  return {0, r.value()};
}

// ---------------------------------------------------------------------------------------------

class Differential {
 public:
  Differential(const WindowedCase& c, uint64_t seed)
      : c_(c), rng_(seed), ref_(c), platform_(sim::Platform::create().release_value()) {
    for (uint64_t s = c.pgsizes; s; s &= s - 1) sizes_.push_back(s & -s);
  }

  void run(int ops) {
    dma0_ = static_cast<long>(platform_->dma().live_allocations());
    kmalloc0_ = hosted::kmalloc_live();
    {
      IoPgtableCfg cfg = make_cfg(c_, *platform_);
      auto made = IoPgtable::alloc(c_.fmt, cfg);
      REQUIRE(made.ok());
      pt_ = made.release_value();
      REQUIRE(cfg.pgsize_bitmap == c_.pgsizes);
      root_ = root_of(c_, cfg);
      if (c_.kind == Kind::lpae_s2 && c_.root_entries > 512) CHECK(cfg.arm_lpae_s2.concat == 2);
    }
    check_counts();

    for (int op = 0; op < ops; op++) {
      INFO("op #", op);
      const unsigned what = static_cast<unsigned>(rnd(100));
      if (what < 50)
        random_map();
      else if (what < 88)
        random_unmap();
      else
        random_invalid();
      check_counts();
      if (op % 500 == 499) check_everything();
    }
    check_everything();

    // Unmap everything, each leaf at its own size.
    const std::vector<std::pair<uint64_t, Leaf>> all(ref_.leaves.begin(), ref_.leaves.end());
    for (const auto& [iova, leaf] : all) {
      IotlbGather gather;
      auto r = pt_->unmap_pages(iova, leaf.size, 1, gather);
      REQUIRE(r.ok());
      CHECK(r.value() == leaf.size);
      CHECK(gather.leaf_only());
      gather.release_freelist();
      ref_.leaves.erase(iova);
    }
    check_counts();
    check_everything();
    pt_.reset();
    CHECK(static_cast<long>(platform_->dma().live_allocations()) == dma0_);
    CHECK(hosted::kmalloc_live() == kmalloc0_);
    MESSAGE(std::string(c_.name) << ": " << maps_ok_ << " maps (" << clamped_
                                 << " clamped at a table end), " << maps_exist_ << " -EEXIST ("
                                 << exist_empty_ << " over emptied tables only), " << unmaps_ok_
                                 << " unmaps (" << unmaps_tables_ << " freeing tables), "
                                 << unmaps_hole_ << " hit a hole, " << unmaps_cut_
                                 << " refused to cut a block, " << invalid_ << " -EINVAL; "
                                 << max_leaves_ << " leaves and " << max_tables_
                                 << " tables at most");
  }

 private:
  uint64_t rnd(uint64_t n) { return n ? rng_() % n : 0; }
  uint64_t smallest() const { return sizes_.front(); }

  uint64_t pick_pgsize() {
    const uint64_t r = rnd(100);
    if (sizes_.size() == 2) return sizes_[r < 70 ? 0 : 1];
    return sizes_[r < 55 ? 0 : r < 85 ? 1 : 2];
  }
  uint64_t pick_count() {
    const uint64_t r = rnd(100);
    if (r < 50) return 1 + rnd(8);
    if (r < 80) return 1 + rnd(64);
    return 1 + rnd(600);
  }
  bool in_window(uint64_t iova) const {
    return iova >= c_.window_base && iova - c_.window_base < c_.window_size && !(iova >> c_.ias);
  }
  uint64_t uniform(uint64_t align) { return c_.window_base + rnd(c_.window_size / align) * align; }
  // An iova aligned to pgsize: near an existing leaf, just below the end of a table (so long
  // requests are clamped), or anywhere in the window.
  uint64_t pick_iova(uint64_t pgsize) {
    const uint64_t r = rnd(100);
    if (r < 45 && !ref_.leaves.empty()) {
      auto it = ref_.leaves.lower_bound(uniform(smallest()));
      if (it == ref_.leaves.end()) it = std::prev(it);
      const int64_t delta = static_cast<int64_t>(rnd(9)) - 4;
      const uint64_t iova = (it->first & ~(pgsize - 1)) + static_cast<uint64_t>(delta) * pgsize;
      if (in_window(iova)) return iova;
    } else if (r < 65) {
      const int d = ref_.geo().depth_of(pgsize);
      const uint64_t span = pgsize * ref_.geo().entries(static_cast<unsigned>(d));
      const uint64_t end = (uniform(smallest()) + span - 1) & ~(span - 1);
      const uint64_t iova = end - (1 + rnd(8)) * pgsize;
      if (in_window(iova)) return iova;
    }
    return uniform(pgsize);
  }
  uint64_t pick_pa(uint64_t pgsize) {
    return rnd((uint64_t{1} << c_.oas) / pgsize - 1024) * pgsize;  // room for 600 pages
  }
  int pick_prot() {
    int prot = static_cast<int>(rnd(64));
    if (!(prot & (IOMMU_READ | IOMMU_WRITE))) prot |= 1 + static_cast<int>(rnd(3));
    return prot;
  }

  void random_map() { map(0, 0, 0, 0, 0, true); }

  // Maps with random arguments where `random` (the others are taken as given).
  void map(uint64_t iova, uint64_t pa, uint64_t pgsize, uint64_t pgcount, int prot, bool random) {
    if (random) {
      pgsize = pick_pgsize();
      iova = pick_iova(pgsize);
      pa = pick_pa(pgsize);
      pgcount = pick_count();
      prot = pick_prot();
    }
    INFO("map_pages(iova ", Hex{iova}, ", pa ", Hex{pa}, ", pgsize ", Hex{pgsize}, ", pgcount ",
         pgcount, ", prot ", prot, ")");
    const size_t leaves_before = ref_.leaves.size(), tables_before = ref_.tables.size();
    const Outcome want = ref_.map(iova, pa, pgsize, pgcount, prot);
    const Outcome got = outcome_of(pt_->map_pages(iova, pa, pgsize, pgcount, prot));
    REQUIRE(got.err == want.err);
    REQUIRE(got.bytes == want.bytes);
    if (want.err == 0) maps_ok_++;
    if (want.err == 0 && want.bytes < pgcount * pgsize) clamped_++;
    if (want.err == -EEXIST) {
      maps_exist_++;
      // Refused although no leaf overlaps the range: only emptied tables are in the way (see
      // the Linux-semantics case below).
      const uint64_t n =
          ref_.clamp(iova, static_cast<unsigned>(ref_.geo().depth_of(pgsize)), pgcount);
      auto it = ref_.leaves.lower_bound(iova);
      bool overlap = it != ref_.leaves.end() && it->first < iova + n * pgsize;
      if (it != ref_.leaves.begin()) {
        --it;
        overlap |= it->first + it->second.size > iova;
      }
      if (!overlap) exist_empty_++;
    }
    if (want.err == -EINVAL) invalid_++;
    if (want.err) {
      REQUIRE((ref_.leaves.size() == leaves_before && ref_.tables.size() == tables_before));
      // A refused map changed nothing: every page it asked for still translates as before.
      const int depth = ref_.request_depth(iova, pa, pgsize, pgcount);
      if (depth >= 0) {
        const uint64_t n = ref_.clamp(iova, static_cast<unsigned>(depth), pgcount);
        for (uint64_t k = 0; k < n; k++) check_lookup(iova + k * pgsize);
      }
    }
    max_leaves_ = std::max(max_leaves_, ref_.leaves.size());
    max_tables_ = std::max(max_tables_, ref_.tables.size());
    check_lookups(iova, pgsize, want.bytes ? want.bytes / pgsize : pgcount);
  }

  void random_unmap() {
    uint64_t pgsize, iova;
    if (rnd(2) && !ref_.leaves.empty()) {
      // At an existing leaf, mostly at its own size.
      auto it = ref_.leaves.lower_bound(uniform(smallest()));
      if (it == ref_.leaves.end()) it = std::prev(it);
      pgsize = rnd(5) ? it->second.size : pick_pgsize();
      iova = it->first & ~(pgsize - 1);
      if (rnd(4) == 0 && in_window(iova - pgsize)) iova -= pgsize;
    } else {
      pgsize = pick_pgsize();
      iova = pick_iova(pgsize);
    }
    unmap(iova, pgsize, pick_count());
  }

  void unmap(uint64_t iova, uint64_t pgsize, uint64_t pgcount) {
    INFO("unmap_pages(iova ", Hex{iova}, ", pgsize ", Hex{pgsize}, ", pgcount ", pgcount, ")");
    const bool valid = ref_.request_depth(iova, 0, pgsize, pgcount) >= 0;
    const Outcome want = ref_.unmap(iova, pgsize, pgcount);
    IotlbGather gather;
    Outcome got = outcome_of(pt_->unmap_pages(iova, pgsize, pgcount, gather));
    got.tables_freed = gather.has_freelist();
    REQUIRE(got.err == want.err);
    REQUIRE(got.bytes == want.bytes);
    REQUIRE(got.tables_freed == want.tables_freed);
    // The gather holds exactly this call's range and granule.
    if (want.bytes) {
      CHECK(gather.start() == iova);
      CHECK(gather.end() == iova + want.bytes - 1);
      CHECK(gather.granule() == pgsize);
      CHECK(gather.leaf_only() == !want.tables_freed);
    } else {
      CHECK(gather.empty());
    }
    gather.release_freelist();
    if (want.err == -EINVAL) (valid ? unmaps_cut_ : invalid_)++;
    if (want.err == 0) (want.bytes ? unmaps_ok_ : unmaps_hole_)++;
    if (want.tables_freed) unmaps_tables_++;
    check_lookups(iova, pgsize, pgcount);
  }

  // Requests io_pgtable.h calls -EINVAL (or which are valid but unusual): the model decides.
  void random_invalid() {
    const uint64_t pgsize = pick_pgsize();
    const uint64_t iova = pick_iova(pgsize);
    const uint64_t pa = pick_pa(pgsize);
    switch (rnd(8)) {
      case 0: map(iova, pa, pgsize, 1 + rnd(4), IOMMU_CACHE | IOMMU_NOEXEC, false); break;
      case 1: map(iova + pgsize / 2, pa, pgsize, 1, IOMMU_READ, false); break;
      case 2: map(iova, pa + smallest() / 2, pgsize, 1, IOMMU_READ, false); break;
      case 3: map(iova, pa, smallest() * 2, 1, IOMMU_READ, false); break;  // not a page size
      case 4: map(uint64_t{1} << c_.ias, pa, pgsize, 1, IOMMU_WRITE, false); break;
      case 5: map(iova, pa, pgsize, 0, IOMMU_READ, false); break;
      case 6: unmap(iova + smallest() / 2, pgsize, 1); break;
      case 7:
        unmap(uint64_t{1} << c_.ias, pgsize, 1);
        unmap(iova, 3 * smallest(), 1);  // not a power of two
        break;
    }
  }

  void check_lookup(uint64_t iova) {
    INFO("iova_to_phys(", Hex{iova}, ")");
    const int64_t want = iova >> c_.ias ? -ERANGE : ref_.lookup(iova);
    REQUIRE(lookup_of(*pt_, iova) == want);
  }
  // Around the range an operation touched, inside a random leaf, and anywhere.
  void check_lookups(uint64_t iova, uint64_t pgsize, uint64_t pgcount) {
    const uint64_t end = iova + pgcount * pgsize;
    for (uint64_t a : {iova, iova + pgsize / 2, end - 1, iova - 1, end, uniform(1)})
      check_lookup(a);
    if (!ref_.leaves.empty()) {
      auto it = ref_.leaves.lower_bound(uniform(smallest()));
      if (it == ref_.leaves.end()) it = std::prev(it);
      check_lookup(it->first + rnd(it->second.size));
    }
  }

  // One DMA page and one kmalloc per table, the root included, and the Pgtable object.
  void check_counts() {
    const long tables = 1 + static_cast<long>(ref_.tables.size());
    REQUIRE(static_cast<long>(platform_->dma().live_allocations()) - dma0_ == tables);
    REQUIRE(hosted::kmalloc_live() - kmalloc0_ == tables + 1);
  }

  // The hardware's tree equals the model, and every leaf translates at both ends.
  void check_everything() {
    HwTree hw;
    walk(platform_->mem(), c_, root_, 0, 0, hw);
    for (const std::string& e : hw.errors) FAIL_CHECK(e);
    REQUIRE(hw.errors.empty());
    REQUIRE(hw.tables == ref_.tables);
    REQUIRE(hw.leaves.size() == ref_.leaves.size());
    for (const auto& [iova, leaf] : ref_.leaves) {
      INFO("leaf at ", Hex{iova}, " -> ", Hex{leaf.pa}, " size ", Hex{leaf.size}, " prot ",
           leaf.prot);
      auto it = hw.leaves.find(iova);
      REQUIRE(it != hw.leaves.end());
      INFO("descriptor ", Hex{it->second.pte});
      REQUIRE(it->second.pa == leaf.pa);
      REQUIRE(it->second.size == leaf.size);
      REQUIRE(leaf_matches_prot(c_.kind, it->second.pte, leaf.prot, leaf.size == smallest()));
      REQUIRE(lookup_of(*pt_, iova) == static_cast<int64_t>(leaf.pa));
      REQUIRE(lookup_of(*pt_, iova + leaf.size - 1) ==
              static_cast<int64_t>(leaf.pa + leaf.size - 1));
    }
  }

  const WindowedCase& c_;
  std::mt19937_64 rng_;
  Reference ref_;
  std::unique_ptr<sim::Platform> platform_;
  Box<IoPgtable> pt_;
  uint64_t root_ = 0;
  std::vector<uint64_t> sizes_;  // ascending
  long dma0_ = 0, kmalloc0_ = 0;
  size_t max_leaves_ = 0, max_tables_ = 0;
  unsigned maps_ok_ = 0, maps_exist_ = 0, unmaps_ok_ = 0, unmaps_tables_ = 0, unmaps_hole_ = 0,
           unmaps_cut_ = 0, invalid_ = 0, clamped_ = 0, exist_empty_ = 0;
};

constexpr int kOpsPerConfig = 5000;

TEST_CASE("differential: random map/unmap/lookup against a reference model, every format") {
  for (size_t i = 0; i < std::size(kCases); i++) {
    const WindowedCase& c = kCases[i];
    const uint64_t seed = 0x5eed0000 + i;
    SUBCASE(c.name) {
      INFO(std::string(c.name) << ", seed " << Hex{seed});
      Differential(c, seed).run(kOpsPerConfig);
    }
  }
}

// The clamp, directed: a request is cut at the end of the table holding iova, at every page
// size, including the root (whose end is the end of the input space) and the 1024-entry root
// of two concatenated stage-2 tables, which is one table to the walker: no cut between them.
TEST_CASE("map_pages and unmap_pages stop at the end of the table holding iova") {
  for (const WindowedCase& c : kCases) {
    SUBCASE(c.name) {
      auto platform = sim::Platform::create().release_value();
      const Geometry geo = geometry_of(c);
      for (uint64_t sizes = c.pgsizes; sizes; sizes &= sizes - 1) {
        IoPgtableCfg cfg = make_cfg(c, *platform);
        Box<IoPgtable> pt = IoPgtable::alloc(c.fmt, cfg).release_value();
        const uint64_t pgsize = sizes & -sizes;
        const unsigned d = static_cast<unsigned>(geo.depth_of(pgsize));
        const uint64_t span = pgsize * geo.entries(d);
        // The first table end above the window, or the end of the input space.
        const uint64_t end = std::min((c.window_base / span + 1) * span, uint64_t{1} << c.ias);
        INFO("pgsize ", Hex{pgsize}, ", table end ", Hex{end});
        CHECK(pt->map_pages(end - 3 * pgsize, 0x4000'0000, pgsize, 600, IOMMU_READ).value() ==
              3 * pgsize);
        CHECK(lookup_of(*pt, end - 1) == static_cast<int64_t>(0x4000'0000 + 3 * pgsize - 1));
        CHECK(lookup_of(*pt, end) == (end >> c.ias ? -ERANGE : -ENOENT));
        IotlbGather gather;
        CHECK(pt->unmap_pages(end - 3 * pgsize, pgsize, 600, gather).value() == 3 * pgsize);
        CHECK(gather.end() == end - 1);
        gather.release_freelist();
      }
      if (c.kind == Kind::lpae_s2 && c.root_entries > 512) {
        IoPgtableCfg cfg = make_cfg(c, *platform);
        Box<IoPgtable> pt = IoPgtable::alloc(c.fmt, cfg).release_value();
        // 1 GiB entries from 510 GiB to 514 GiB: across the two start tables, in one call.
        CHECK(pt->map_pages(510 * SZ_1G, 0, SZ_1G, 4, IOMMU_READ).value() == 4 * SZ_1G);
        CHECK(lookup_of(*pt, 513 * SZ_1G + 5) == static_cast<int64_t>(3 * SZ_1G + 5));
        IotlbGather gather;
        CHECK(pt->unmap_pages(510 * SZ_1G, SZ_1G, 4, gather).value() == 4 * SZ_1G);
        gather.release_freelist();
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Focused cases: regressions for departures from io_pgtable.h's semantics this suite found.

// Regression: map_pages checked the input range against ias but never the output range against
// oas: LPAE's oa_bits() silently dropped the bits above 47 and the VT-d formats ORed the
// address, high bits and all, into the entry, where they landed on attribute bits (VT-d TM/XD).
// Linux refuses paddr >> oas with -ERANGE (arm_lpae_map_pages); so does io-pgtable now.
TEST_CASE("map_pages refuses output addresses beyond oas") {
  for (const WindowedCase& c : kCases) {
    SUBCASE(c.name) {
      auto platform = sim::Platform::create().release_value();
      IoPgtableCfg cfg = make_cfg(c, *platform);
      cfg.oas = 40;  // a narrower output than the 52 bits the descriptors can hold
      Box<IoPgtable> pt = IoPgtable::alloc(c.fmt, cfg).release_value();
      const uint64_t page = uint64_t{1} << c.granule_shift;
      const uint64_t iova = c.window_base;
      const uint64_t oa_end = uint64_t{1} << 40;
      for (uint64_t pa :
           {oa_end, uint64_t{1} << 48, uint64_t{1} << 52, uint64_t{1} << 62, uint64_t{1} << 63}) {
        INFO("pa ", Hex{pa});
        auto r = pt->map_pages(iova, pa, page, 1, IOMMU_READ | IOMMU_WRITE);
        CHECK((!r.ok() && r.error().code() == -ERANGE));
        // Whatever was done, it must not translate to some other address.
        const int64_t phys = lookup_of(*pt, iova);
        CHECK((phys == -ENOENT || phys == static_cast<int64_t>(pa)));
        IotlbGather gather;
        if (r.ok()) CHECK(pt->unmap_pages(iova, page, 1, gather).ok());
        gather.release_freelist();
      }
      // The last page fits; the one after it does not.
      INFO("pa ", Hex{oa_end - page}, " x 2");
      auto r = pt->map_pages(iova, oa_end - page, page, 2, IOMMU_READ);
      CHECK((!r.ok() && r.error().code() == -ERANGE));
      IotlbGather gather;
      if (r.ok()) CHECK(pt->unmap_pages(iova, page, 2, gather).ok());
      gather.release_freelist();
    }
  }
}

// Regression: Linux replaces a table with a block when the table maps nothing any more
// (io-pgtable-arm's arm_lpae_init_pte unmaps it, flushing the walk; intel-iommu's
// __domain_mapping frees small-page tables under a superpage). A table emptied page by page used
// to stay in the tree with a live entry, so the block was -EEXIST for as long as the table lived.
// Now it gives way when the caller supplied a walk flush, which runs before the table is freed;
// a table that still maps something, or no flush ops, is still -EEXIST with nothing changed.
struct WalkFlushes {
  static void flush(uint64_t iova, size_t size, size_t granule, void* cookie) {
    auto* self = static_cast<WalkFlushes*>(cookie);
    self->calls.push_back({iova, size, granule});
  }
  struct Call {
    uint64_t iova, size, granule;
  };
  std::vector<Call> calls;
};

TEST_CASE("a block maps over a table that no longer maps anything (Linux semantics)") {
  static const IommuFlushOps kOps{WalkFlushes::flush};
  for (const WindowedCase& c : kCases) {
    SUBCASE(c.name) {
      auto platform = sim::Platform::create().release_value();
      const Geometry geo = geometry_of(c);
      const uint64_t page = geo.size(geo.levels - 1), block = geo.size(geo.levels - 2);
      const uint64_t iova = c.window_base + block;  // block-aligned

      // Without flush ops the emptied table stays: -EEXIST, nothing changed.
      IoPgtableCfg plain_cfg = make_cfg(c, *platform);
      Box<IoPgtable> plain = IoPgtable::alloc(c.fmt, plain_cfg).release_value();
      REQUIRE(plain->map_pages(iova + 3 * page, 0x80000000, page, 2, IOMMU_READ).ok());
      IotlbGather g0;
      REQUIRE(plain->unmap_pages(iova + 3 * page, page, 2, g0).value() == 2 * page);
      g0.release_freelist();
      CHECK(plain->map_pages(iova, 0x80000000, block, 1, IOMMU_READ).error().code() == -EEXIST);

      WalkFlushes flushes;
      IoPgtableCfg cfg = make_cfg(c, *platform);
      cfg.tlb = &kOps;
      cfg.cookie = &flushes;
      Box<IoPgtable> pt = IoPgtable::alloc(c.fmt, cfg).release_value();
      REQUIRE(pt->map_pages(iova + 3 * page, 0x80000000, page, 2, IOMMU_READ).value() == 2 * page);
      // Still mapping one page: the block is refused and nothing is flushed.
      IotlbGather gather;
      REQUIRE(pt->unmap_pages(iova + 3 * page, page, 1, gather).value() == page);
      CHECK(pt->map_pages(iova, 0x80000000, block, 1, IOMMU_READ).error().code() == -EEXIST);
      CHECK(flushes.calls.empty());
      CHECK(lookup_of(*pt, iova + 4 * page) == 0x80000000 + static_cast<int64_t>(page));
      // Emptied: the block replaces it, after one walk flush of the block's range.
      REQUIRE(pt->unmap_pages(iova + 4 * page, page, 1, gather).value() == page);
      gather.release_freelist();
      const size_t live = platform->dma().live_allocations();
      auto r = pt->map_pages(iova, 0x80000000, block, 1, IOMMU_READ);
      REQUIRE(r.ok());
      CHECK(r.value() == block);
      CHECK(lookup_of(*pt, iova + 3 * page) == 0x80000000 + 3 * static_cast<int64_t>(page));
      REQUIRE(flushes.calls.size() == 1);
      CHECK(flushes.calls[0].iova == iova);
      CHECK(flushes.calls[0].size == block);
      CHECK(flushes.calls[0].granule == (uint64_t{1} << c.granule_shift));
      CHECK(platform->dma().live_allocations() == live - 1);  // the old table went
    }
  }
}

}  // namespace
}  // namespace strata::pgtable_test
