// SPDX-License-Identifier: MIT
#include "core/io-pgtable/lpae.h"

#include "core/io-pgtable/engine.h"

namespace strata {
namespace {

using lpae::S1Pte;
using lpae::S2Pte;

// (I)PS encoding of an output size (IDR5.OAS, CD IPS, STE S2PS); -1 when none.
int ps_encoding(unsigned oas) {
  switch (oas) {
    case 32: return 0;
    case 36: return 1;
    case 40: return 2;
    case 42: return 3;
    case 44: return 4;
    case 48: return 5;
    case 52: return 6;
    default: return -1;
  }
}

// TG0 / S2TG encoding: 0 4K, 1 64K, 2 16K.
unsigned tg_encoding(unsigned g) {
  return g == lpae::kGranule4K ? 0 : g == lpae::kGranule64K ? 1 : 2;
}

}  // namespace

uint64_t LpaeFormat::leaf_bits(int prot, bool last) const {
  uint64_t pte = (last ? lpae::kTypePage : lpae::kTypeBlock) | S1Pte::AF::kMask;
  // Linux's rule: cacheable memory inner-shareable, the rest outer-shareable.
  pte |= (prot & IOMMU_CACHE ? lpae::kShInner : lpae::kShOuter) << S1Pte::SH::kShift;
  const bool write = prot & IOMMU_WRITE;
  if (stage2_) {
    uint64_t s2ap = 0;
    if (prot & IOMMU_READ) s2ap |= lpae::kS2apRead;
    if (write) s2ap |= lpae::kS2apWrite;
    pte |= s2ap << S2Pte::S2AP::kShift;
    const uint64_t attr = prot & IOMMU_MMIO    ? lpae::kMemAttrDevice
                          : prot & IOMMU_CACHE ? lpae::kMemAttrNormalWb
                                               : lpae::kMemAttrNormalNc;
    pte |= attr << S2Pte::MemAttr::kShift;
    if (prot & IOMMU_NOEXEC) pte |= uint64_t{0b10} << S2Pte::XN::kShift;
  } else {
    uint64_t ap = 0;
    if (!write) ap |= 0b10;                // AP[2]: read-only
    if (!(prot & IOMMU_PRIV)) ap |= 0b01;  // AP[1]: unprivileged accesses too
    pte |= ap << S1Pte::AP::kShift;
    const uint64_t idx = prot & IOMMU_MMIO    ? lpae::kAttrIdxDev
                         : prot & IOMMU_CACHE ? lpae::kAttrIdxWb
                                              : lpae::kAttrIdxNc;
    pte |= idx << S1Pte::AttrIndx::kShift;
    pte |= S1Pte::nG::kMask;  // ASID-tagged, as every stage-1 domain is
    if (prot & IOMMU_NOEXEC) pte |= S1Pte::PXN::kMask | S1Pte::UXN::kMask;
    if (quirks_ & IO_PGTABLE_QUIRK_ARM_NS) pte |= S1Pte::NS::kMask;
  }
  // Writable entries start writable-dirty; read_and_clear_dirty makes them writable-clean.
  if (write && (quirks_ & IO_PGTABLE_QUIRK_DIRTY)) pte |= S1Pte::DBM::kMask;
  return pte;
}

Result<Box<IoPgtable>> alloc_lpae_pgtable(bool stage2, IoPgtableCfg& cfg) {
  if (!cfg.dma) return Error(-EINVAL);
  // The granule: the smallest page size offered (a 4K-page host would choose 4K; Linux picks
  // its PAGE_SIZE when offered).
  unsigned g;
  if (cfg.pgsize_bitmap & SZ_4K)
    g = lpae::kGranule4K;
  else if (cfg.pgsize_bitmap & SZ_16K)
    g = lpae::kGranule16K;
  else if (cfg.pgsize_bitmap & SZ_64K)
    g = lpae::kGranule64K;
  else
    return Error(-EINVAL);

  // Input sizes of 32 to 48 bits; 52-bit VA (FEAT_LVA) is not supported.
  if (cfg.ias < 32 || cfg.ias > 48) return Error(-EINVAL);
  const int ps = ps_encoding(cfg.oas);
  if (ps < 0) return Error(-EINVAL);
  // A 52-bit output needs the 64K granule's OA[51:48] field (FEAT_LPA).
  if (cfg.oas == 52 && g != lpae::kGranule64K) return Error(-EINVAL);

  const unsigned bits = g - 3;
  unsigned levels = (cfg.ias - g + bits - 1) / bits;
  unsigned root_bits = cfg.ias - g - (levels - 1) * bits;
  unsigned concat = 1;
  // Stage 2 may start one level lower with up to 16 concatenated tables (IHI 0070 S2SL0;
  // Linux's rule: only instead of a level-0 table of at most 16 entries).
  if (stage2 && levels == 4 && (1u << root_bits) <= 16) {
    concat = 1u << root_bits;
    levels--;
    root_bits += bits;
  }
  const unsigned start_level = 4 - levels;

  PgtableGeometry geo;
  geo.granule_shift = g;
  geo.bits_per_level = bits;
  geo.levels = levels;
  geo.root_bits = root_bits;
  geo.ias = cfg.ias;
  geo.oas = cfg.oas;
  geo.pgsize_bitmap = 0;  // filled below
  // Leaf sizes: the page, and blocks where the granule allows them (4K: levels 1 and 2; 16K:
  // level 2; 64K: level 2, and level 1 only with a 52-bit OA), below the input size.
  for (unsigned d = 0; d < levels; d++) {
    const unsigned level = start_level + d;
    const unsigned shift = geo.shift(d);
    bool ok = level == 3;
    if (level == 2) ok = true;
    if (level == 1) ok = g == lpae::kGranule4K || (g == lpae::kGranule64K && cfg.oas == 52);
    if (ok && shift < cfg.ias) geo.pgsize_bitmap |= uint64_t{1} << shift;
  }
  geo.pgsize_bitmap &= cfg.pgsize_bitmap;

  // The root: aligned to its size, at least 64 bytes (TTBR/VTTBR alignment).
  const unsigned root_entries = 1u << root_bits;
  const size_t root_bytes = root_entries * 8 < 64 ? 64 : root_entries * 8;
  TablePage* root = STRATA_TRY(alloc_table_page(*cfg.dma, root_entries, root_bytes, levels > 1));

  const LpaeFormat fmt(stage2, g, cfg.oas == 52, cfg.quirks);
  auto made = make_box<Pgtable<LpaeFormat>>(fmt, geo, cfg, root);
  if (!made.ok()) {
    free_table_tree(root);
    return made.error();
  }

  cfg.pgsize_bitmap = geo.pgsize_bitmap;
  // Table walks: write-back cacheable and inner-shareable when the walker is coherent,
  // non-cacheable and outer-shareable otherwise (Linux's choice).
  const unsigned rgn = cfg.coherent_walk ? 1 : 0;  // 1 = WBWA, 0 = NC
  const unsigned sh = cfg.coherent_walk ? lpae::kShInner : lpae::kShOuter;
  if (stage2) {
    // SL0: the start level, encoded as Linux does (4K: SL0 = 2 - level; else 3 - level).
    unsigned sl = start_level + (g == lpae::kGranule4K ? 1 : 0);
    cfg.arm_lpae_s2 = {
        root->region.phys,         64 - cfg.ias, ~sl & 3u, tg_encoding(g), rgn, rgn, sh,
        static_cast<unsigned>(ps), concat};
  } else {
    cfg.arm_lpae_s1 = {root->region.phys,
                       64 - cfg.ias,
                       tg_encoding(g),
                       rgn,
                       rgn,
                       sh,
                       static_cast<unsigned>(ps),
                       lpae::kMairNc << (8 * lpae::kAttrIdxNc) |
                           lpae::kMairWbRwa << (8 * lpae::kAttrIdxWb) |
                           lpae::kMairDevice << (8 * lpae::kAttrIdxDev)};
  }
  return Box<IoPgtable>(made.release_value());
}

}  // namespace strata
