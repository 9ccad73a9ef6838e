// SPDX-License-Identifier: MIT
// The main job is tested like everything else: it must succeed, and say what happened.
#include "testing/sim/demo.h"

#include <doctest/doctest.h>

namespace strata::sim {
namespace {

bool says(const DemoReport& r, const char* line) {
  return r.transcript.find(line) != std::string::npos;
}

TEST_CASE("the nested-translation demo: every check holds and the account says what happened") {
  const DemoReport r = run_demo();
  INFO(r.transcript);
  CHECK(r.ok);
  CHECK(says(r, "result: every check held"));
  CHECK_FALSE(says(r, "!! unexpected"));

  // The configuration: the SMMU, the host's stage 2, the guest's stage 1 and CD, the STE.
  CHECK(says(r, "IDR0: S1P 1 S2P 1 (nesting)"));
  CHECK(says(r, "iommu_paging_domain_alloc(IOMMU_DOMAIN_ALLOC_NEST_PARENT): stage 2, VMID "));
  CHECK(says(r, "io-pgtable arm_64_lpae_s1: TTB0 0x80000000 (IPA)"));
  CHECK(says(r, "CD at IPA 0x"));
  CHECK(says(r, "ASID=0x7 TTB0=0x80000000"));
  CHECK(says(r, "{V Config=0x7 S1ContextPtr=0x"));
  CHECK(says(r, "S2VMID"));
  CHECK(says(r, "S2TTB"));

  // The translations, both stages.
  CHECK(says(r, "0x1000000000 -> 0x80800000 -> 0x"));
  CHECK(says(r, "0x2000001000 -> 0x80901000 -> 0x"));

  // The invalidations: the guest's ASID with the host's VMID, and the host's stage 2.
  CHECK(says(r, "vSMMU CMDQ: CMD_TLBI_NH_ASID"));
  CHECK(says(r, "{VMID=0x1 ASID=0x7}"));  // in the host's CMDQ: the guest's ASID, the VMID
  CHECK(says(r, "CMD_TLBI_S2_IPA"));
  CHECK(says(r, "CMD_CFGI_STE"));
  CHECK(says(r, "CMD_SYNC"));

  // The faults: the guest's unmapped IOVA at stage 1, the reclaimed IPA at stage 2.
  CHECK(says(r, "FAULT on a write at 0x2000000000"));
  CHECK(says(r, "] F_TRANSLATION 0x"));
  CHECK(says(r, "stage 2, CLASS IN (the input address), read"));
  CHECK(says(r,
             "fault handler: IOMMU_FAULT_DMA_UNRECOV IOMMU_FAULT_REASON_PTE_FETCH addr "
             "0x2000000000 perm W flags ADDR_VALID"));
  CHECK(says(r, "cache_invalidate_user(CMD_TLBI_NH_ASID, CMD_TLBI_NSNH_ALL): -EINVAL"));
  CHECK(says(r, "stale-translation oracle: 0 reports"));

  // The counters.
  CHECK(r.translations >= 11);
  CHECK(r.tlb_hits >= 4);
  CHECK(r.tlb_misses > 0);
  CHECK(r.walks > 0);
  CHECK(r.tlb_invalidated >= 5);
  CHECK(r.events == 2);
  CHECK(r.cmd_cfgi_ste > 0);
  CHECK(r.cmd_tlbi_nh_asid == 1);
  CHECK(r.cmd_tlbi_nh_all > 0);
  CHECK(r.cmd_tlbi_s2_ipa > 0);
  CHECK(r.cmd_sync > 0);
  CHECK(r.faults_reported == 2);
  CHECK(r.faults_delivered == 2);
  CHECK(r.guest_commands_refused == 1);
  CHECK(r.stale_reports == 0);
}

}  // namespace
}  // namespace strata::sim
