// SPDX-License-Identifier: MIT
// The SMMUv3 Context Descriptor library (cd-lib), part 3: the iommu-pasid-table library's vendor
// ops for SMMUv3 CD tables (PasidTableFmt::arm_smmuv3_cd), so that the core, VFIO and a
// paravirtual IOMMU can program SubstreamIDs without the rest of the driver.
//
//   CdPasidTableOps cd_ops;
//   PasidTableCfg cfg{.fmt = PasidTableFmt::arm_smmuv3_cd, .pasid_bits = 20, .two_level = true,
//                     .dma = &smmu_dma, .coherent_walk = smmu_coherent};
//   Box<PasidTable> t = STRATA_TRY(PasidTable::alloc(cd_ops, cfg, cd_pasid_cookie(master)));
//   // STE: S1ContextPtr = t->base(), S1CDMax = pasid_bits, S1Fmt from t->two_level()
//   STRATA_TRY(t->set_entry(pasid, s1));
//
// How the ops map PasidTable's contract (pasid_table.h) onto CdTable (cd_table.h):
//  - The PasidTable's cookie is the CdInvalidator of the streams that use the table (the
//    driver's master, a vSMMU's stream set), made with cd_pasid_cookie(): every sync goes
//    through it. A null cookie, a format other than arm_smmuv3_cd or pasid_bits > 20 is
//    -EINVAL.
//  - cfg.pasid_bits is STE.S1CDMax; two_level is served as CdTable serves it (linear up to 1024
//    CDs: t->two_level() says what was allocated, S1Fmt 0b10 when true); coherent_walk false
//    makes CdTable clean what it writes.
//  - write builds the CD with make_s1_cd (-EINVAL for a description it cannot hold: nothing
//    written, nothing synced) and writes it with CdSync::by_caller. A new leaf table is written
//    while unreachable and reported as PasidWrite::entry_and_leaf_table, so set_entry's one
//    sync is CMD_CFGI_CD with Leaf == 0, the L1CD invalidation 5.3.1 requires: the whole
//    set_entry is then one invalidation. A CD in a present leaf goes through the entry writer,
//    whose syncs the protocol needs inside write (3.21.3.1: fill, invalidate, set V), then the
//    core's sync follows. -ENOMEM when the leaf cannot be allocated: nothing changed.
//  - A live CD is always replaced safely, hitlessly or break-before-make with syncs of its own
//    (entry_writer.h), so write never returns -EBUSY.
//  - clear makes the CD invalid (V first, with word 0) and issues nothing; the core's one sync
//    invalidates it, and then CdTable::sync_cd zeroes the rest of the CD (5.4 V).
//  - An invalidation that fails is logged and counted (cd_table(t).invalidation_errors()) in
//    every case. Inside write it is also returned, so set_entry fails; the contract's "nothing
//    changed" cannot hold then, since memory was changed before the command failed: that is a
//    failed SMMU, not a refused request. PasidTableOps::sync cannot return it.
//  - Leaf tables are freed only with the table (CdTable never frees one early).
#pragma once

#include "core/pasid-table/pasid_table.h"
#include "drivers/iommu/arm/arm-smmu-v3/cd_lib.h"
#include "drivers/iommu/arm/arm-smmu-v3/cd_table.h"

namespace strata::arm_smmu_v3 {

// The PasidTable cookie for CdPasidTableOps: the invalidator, as a CdInvalidator* (the ops cast
// the void* back to exactly that type, so a pointer to a derived class must not be passed
// directly).
inline void* cd_pasid_cookie(CdInvalidator& invalidator) { return &invalidator; }

class CdPasidTableOps final : public PasidTableOps {
 public:
  // `options` apply to every CD the ops build (a stall-enabled master, shared ASIDs).
  explicit CdPasidTableOps(const CdS1Options& options = {}) : options_(options) {}
  CdPasidTableOps(const CdPasidTableOps&) = delete;
  CdPasidTableOps& operator=(const CdPasidTableOps&) = delete;

  Result<void> alloc(PasidTable& t) override;
  void free(PasidTable& t) override;
  Result<PasidWrite> write(PasidTable& t, ioasid_t pasid, const PasidStage1& s1) override;
  void clear(PasidTable& t, ioasid_t pasid) override;
  void sync(PasidTable& t, ioasid_t pasid, bool leaf) override;

  // The CD table behind a PasidTable these ops allocated (dumps, tests, error counters).
  static CdTable& cd_table(const PasidTable& t);

 private:
  const CdS1Options options_;
};

}  // namespace strata::arm_smmu_v3
