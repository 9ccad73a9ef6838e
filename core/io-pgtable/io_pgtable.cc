// SPDX-License-Identifier: MIT
#include "core/io-pgtable/io_pgtable.h"

#include "core/io-pgtable/lpae.h"
#include "core/io-pgtable/vtd.h"

namespace strata {

Result<Box<IoPgtable>> IoPgtable::alloc(IoPgtableFmt fmt, IoPgtableCfg& cfg) {
  switch (fmt) {
    case IoPgtableFmt::arm_64_lpae_s1: return alloc_lpae_pgtable(false, cfg);
    case IoPgtableFmt::arm_64_lpae_s2: return alloc_lpae_pgtable(true, cfg);
    case IoPgtableFmt::intel_vtd_sl: return alloc_vtd_pgtable(false, cfg);
    case IoPgtableFmt::intel_vtd_fl: return alloc_vtd_pgtable(true, cfg);
  }
  return Error(-EINVAL);
}

}  // namespace strata
