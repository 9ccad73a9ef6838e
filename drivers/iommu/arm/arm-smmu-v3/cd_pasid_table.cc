// SPDX-License-Identifier: MIT
// PasidTableOps over CdTable (cd_pasid_table.h has the mapping of the contract).
#include "drivers/iommu/arm/arm-smmu-v3/cd_pasid_table.h"

#include "arch/bug.h"

namespace strata::arm_smmu_v3 {

CdTable& CdPasidTableOps::cd_table(const PasidTable& t) {
  STRATA_BUG_ON(!t.priv());
  return *static_cast<CdTable*>(t.priv());
}

Result<void> CdPasidTableOps::alloc(PasidTable& t) {
  if (t.fmt() != PasidTableFmt::arm_smmuv3_cd || !t.cookie()) return Error(-EINVAL);
  auto* invalidator = static_cast<CdInvalidator*>(t.cookie());
  const CdTableCfg cfg{.s1cdmax = t.cfg().pasid_bits,
                       .two_level = t.cfg().two_level,
                       .dma = t.cfg().dma,
                       .coherent = t.cfg().coherent_walk};
  Box<CdTable> table = STRATA_TRY(CdTable::alloc(cfg, *invalidator));
  t.set_base(table->base());
  t.set_two_level(table->two_level());
  t.set_priv(table.release());  // owned by t from here; free() destroys it
  return ok();
}

void CdPasidTableOps::free(PasidTable& t) {
  Box<CdTable>::adopt(&cd_table(t)).reset();
  t.set_priv(nullptr);
}

Result<PasidWrite> CdPasidTableOps::write(PasidTable& t, ioasid_t pasid, const PasidStage1& s1) {
  // Everything that can refuse the request comes before the first store.
  const smmuv3::CD cd = STRATA_TRY(make_s1_cd(s1, options_));
  const CdWriteInfo info = STRATA_TRY(cd_table(t).write_cd(pasid, cd, CdSync::by_caller));
  return info.l1cd_sync_needed ? PasidWrite::entry_and_leaf_table : PasidWrite::entry;
}

void CdPasidTableOps::clear(PasidTable& t, ioasid_t pasid) {
  // Only -ERANGE can come back without an invalidation, and the core checked the range.
  Result<void> r = cd_table(t).clear_cd(pasid, CdSync::by_caller);
  STRATA_WARN_ON(!r.ok());
}

void CdPasidTableOps::sync(PasidTable& t, ioasid_t pasid, bool leaf) {
  // A failure was logged and counted by CdTable; this interface cannot return it.
  Result<void> r = cd_table(t).sync_cd(pasid, leaf);
  (void)r.ok();
}

}  // namespace strata::arm_smmu_v3
