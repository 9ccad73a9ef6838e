// SPDX-License-Identifier: MIT
#include "core/io-pgtable/vtd.h"

#include "core/io-pgtable/engine.h"

namespace strata {
namespace {

template <typename Format>
Result<Box<IoPgtable>> make_pgtable(const Format& fmt, const PgtableGeometry& geo,
                                    const IoPgtableCfg& cfg, TablePage* root) {
  auto r = make_box<Pgtable<Format>>(fmt, geo, cfg, root);
  if (!r.ok()) return r.error();
  return Box<IoPgtable>(r.release_value());
}

}  // namespace

Result<Box<IoPgtable>> alloc_vtd_pgtable(bool first_stage, IoPgtableCfg& cfg) {
  if (!cfg.dma) return Error(-EINVAL);
  unsigned levels;
  switch (cfg.ias) {
    case 39: levels = 3; break;  // SAGAW bit 1 (second stage only)
    case 48: levels = 4; break;
    case 57: levels = 5; break;
    default: return Error(-EINVAL);
  }
  if (first_stage && levels == 3) return Error(-EINVAL);  // x86-64 paging: 4 or 5 levels
  if (cfg.oas < 32 || cfg.oas > 52) return Error(-EINVAL);
  // 4K pages are always there; 2M and 1G are super pages (SLLPS, FL1GP) when offered.
  if (!(cfg.pgsize_bitmap & SZ_4K)) return Error(-EINVAL);

  PgtableGeometry geo;
  geo.granule_shift = vtd::kPageShift;
  geo.bits_per_level = vtd::kLevelStride;
  geo.levels = levels;
  geo.root_bits = vtd::kLevelStride;
  geo.ias = cfg.ias;
  geo.oas = cfg.oas;
  geo.pgsize_bitmap = cfg.pgsize_bitmap & (SZ_4K | SZ_2M | SZ_1G);
  TablePage* root = STRATA_TRY(alloc_table_page(*cfg.dma, 512, SZ_4K, true));

  auto made = first_stage ? make_pgtable(VtdFlFormat(cfg.quirks), geo, cfg, root)
                          : make_pgtable(VtdSlFormat(), geo, cfg, root);
  if (!made.ok()) {
    free_table_tree(root);
    return made.error();
  }
  cfg.pgsize_bitmap = geo.pgsize_bitmap;
  cfg.vtd = {root->region.phys, levels};
  return made;
}

}  // namespace strata
