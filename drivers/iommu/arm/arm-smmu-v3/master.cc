// SPDX-License-Identifier: MIT
// Masters: devices behind the SMMU, their StreamIDs, their STEs and CD tables, and attaching
// them (and their PASIDs) to domains (Linux's arm_smmu_probe_device, arm_smmu_attach_dev,
// arm_smmu_set_pasid).
//
// A master's STE is a function of its state: the RID domain and whether PASIDs are in use
// (master_ste). Every change computes the new STE and hands it to the stream table's hitless
// writer, which updates every StreamID of the master in turn. Domains keep a list of their
// attachments (master, SubstreamID) so that their invalidations reach the ATCs of ATS masters.
//
// Order on a change of RID domain (Linux's arm_smmu_attach_prepare / commit): the master joins
// the new domain's list before its STE points at the domain, so no invalidation of the new
// domain can miss it; it leaves the old list afterwards, and its ATC is invalidated then,
// because it may hold translations of the old domain.
#include "arch/log.h"
#include "drivers/iommu/arm/arm-smmu-v3/arm_smmu_v3.h"
#include "drivers/iommu/arm/arm-smmu-v3/cd_lib.h"

namespace strata::arm_smmu_v3 {

namespace hw = ::strata::smmuv3;

Result<void> MasterCdInvalidator::cfgi_cd(uint32_t ssid, bool leaf) {
  CmdqBatch batch(*master_.smmu.cmdq_);
  for (unsigned i = 0; i < master_.num_streams; i++)
    batch.add(hw::CmdCfgiCd::make()
                  .set<hw::CmdCfgiCd::SubstreamID>(ssid)
                  .set<hw::CmdCfgiCd::StreamID>(master_.streams[i].sid)
                  .set<hw::CmdCfgiCd::Leaf>(leaf));
  return batch.submit();
}

Result<void> ArmSmmuV3::cfgi_ste(uint32_t sid, bool leaf) {
  return cmdq_->issue_cmd_with_sync(
      hw::CmdCfgiSte::make().set<hw::CmdCfgiSte::StreamID>(sid).set<hw::CmdCfgiSte::Leaf>(leaf));
}

SteFeatures ArmSmmuV3::ste_features() const {
  return SteFeatures{
      .coherent = coherent(),
      .attr_types_ovr = features_.attr_types_ovr,
      .stalls = features_.stalls,
      .ssid_bits = features_.ssid_bits,
      .two_level_cdtab = features_.two_level_cdtab,
  };
}

ArmSmmuMaster* ArmSmmuV3::find_master(uint32_t sid) {
  auto it = streams_.find(sid);
  return it == streams_.end() ? nullptr : it->master;
}

Result<void> ArmSmmuV3::probe_device(Device& dev) {
  const IommuFwspec& fw = dev.fwspec();
  if (fw.iommu != this || fw.num_ids == 0 || fw.num_ids > IommuFwspec::kMaxIds)
    return Error(-ENODEV);
  for (unsigned i = 0; i < fw.num_ids; i++) {
    if (fw.ids[i] >= strtab_->num_sids()) {
      dev_err(config_.name, "{}: StreamID {:#x} beyond the stream table ({} StreamIDs)", dev.name(),
              fw.ids[i], strtab_->num_sids());
      return Error(-ERANGE);
    }
  }
  Box<ArmSmmuMaster> master = STRATA_TRY(make_box<ArmSmmuMaster>(*this, dev));
  const unsigned dev_ssid_bits = dev.desc().pasid_bits;
  master->ssid_bits = dev_ssid_bits < features_.ssid_bits ? dev_ssid_bits : features_.ssid_bits;
  // ATS only for PCIe functions that have it, and PRI only with ATS (3.9.1).
  master->ats = features_.ats && dev.desc().ats && dev.pci();
  master->pri = master->ats && features_.pri && dev.desc().pri && config_.iopf_queue;

  for (unsigned i = 0; i < fw.num_ids; i++) {
    // Level-2 tables are allocated when a StreamID in their span first appears.
    if (strtab_->two_level()) STRATA_TRY(strtab_->install_l2(fw.ids[i]));
  }
  {
    Guard g(streams_lock_);
    for (unsigned i = 0; i < fw.num_ids; i++) {
      // A StreamID listed twice by firmware (aliases) is kept once.
      bool dup = false;
      for (unsigned j = 0; j < master->num_streams; j++) dup |= master->streams[j].sid == fw.ids[i];
      if (dup) continue;
      if (streams_.find(fw.ids[i]) != streams_.end()) {
        dev_err(config_.name, "{}: StreamID {:#x} already belongs to another device", dev.name(),
                fw.ids[i]);
        for (unsigned j = 0; j < master->num_streams; j++)
          streams_.erase(streams_.iterator_to(master->streams[j]));
        return Error(-EEXIST);
      }
      ArmSmmuStream& s = master->streams[master->num_streams++];
      s.sid = fw.ids[i];
      s.master = master.get();
      streams_.insert_unique(s);
    }
  }
  dev.set_iommu_priv(master.release());
  return {};
}

void ArmSmmuV3::release_device(Device& dev) {
  auto* master = static_cast<ArmSmmuMaster*>(dev.iommu_priv());
  if (!master) return;
  // The core detached the device from its domains (the blocking one included): put the STEs
  // back to the unattached state, so nothing the master's tables point at is reachable.
  const hw::STE initial =
      config_.bypass_unattached ? make_bypass_ste(ste_features()) : make_abort_ste();
  // Not install_ste: its rollback would put StreamIDs that did take the initial STE back onto
  // tables that are about to go. Here the initial STE is the safe state of each StreamID, so
  // every one is tried, whatever happened to the others.
  bool ste_failed = false;
  for (unsigned i = 0; i < master->num_streams; i++) {
    const uint32_t sid = master->streams[i].sid;
    if (auto r = strtab_->write_ste(sid, initial); !r.ok()) {
      dev_err(config_.name, "{}: release: STE of StreamID {:#x} not reset: {}", dev.name(), sid,
              r.error());
      ste_failed = true;
      continue;
    }
    counters_.ste_writes.fetch_add(1, std::memory_order_relaxed);
  }
  if (ste_failed && master->cd_table) {
    // The STE write failed with its CMD_CFGI_STE / CMD_SYNC (IHI 0070 3.21.3.1, 4.3.1), so the
    // SMMU may still hold, or fetch again, an STE whose S1ContextPtr is this CD table (its
    // leaves with it): freeing it would let the SMMU walk freed memory. It is leaked on
    // purpose, as Linux leaks what the hardware may still use on its can't-happen paths. The
    // table's CdInvalidator is the master's, freed below: nothing may call into the leaked
    // table, and nothing can, as nothing points at it any more. Not covered: the RID domain's
    // page tables, which the CDs or an S2 / nested STE point at, belong to the domain, and the
    // core may free it as soon as this returns.
    dev_err(config_.name, "{}: release: the SMMU may still use its CD table at {:#x}; leaked",
            dev.name(), master->cd_table->base());
    (void)master->cd_table.release();
  }
  if (master->domain) master->domain->remove_attachment(*master, 0);
  master->domain = nullptr;
  {
    // The event and PRI threads hold this while they report against the device.
    Guard g(streams_lock_);
    for (unsigned i = 0; i < master->num_streams; i++)
      streams_.erase(streams_.iterator_to(master->streams[i]));
  }
  if (master->ats) atc_inv_master(*master, 0, true);
  dev.set_iommu_priv(nullptr);
  Box<ArmSmmuMaster>::adopt(master).reset();
}

Result<smmuv3::STE> ArmSmmuV3::master_ste(const ArmSmmuMaster& master, const ArmSmmuDomain* domain,
                                          unsigned nr_pasids) const {
  const SteFeatures f = ste_features();
  const bool ats = master.ats;
  using Stage = ArmSmmuDomain::Stage;
  const Stage stage = domain ? domain->stage() : Stage::abort;
  // With PASIDs in use the STE points at the CD table whatever the RID domain; S1DSS says
  // what happens to traffic without a SubstreamID (5.2).
  if (stage == Stage::s1 || ((stage == Stage::bypass || stage == Stage::abort) && nr_pasids)) {
    const CdTable& t = *master.cd_table;
    const uint64_t s1dss = stage == Stage::s1       ? hw::kS1dssSsid0
                           : stage == Stage::bypass ? hw::kS1dssBypass
                                                    : hw::kS1dssTerminate;
    return make_cdtable_ste(f, SteCdTable{.cdtab = t.base(),
                                          .s1cdmax = t.s1cdmax(),
                                          .s1fmt = t.s1fmt(),
                                          .s1dss = t.s1cdmax() ? s1dss : hw::kS1dssTerminate,
                                          .stall_enabled = false,
                                          .ats = ats,
                                          .el2 = false});
  }
  switch (stage) {
    case Stage::bypass: return make_bypass_ste(f);
    case Stage::abort: return make_abort_ste();
    case Stage::s2:
      return make_s2_domain_ste(f, domain->pgtbl_cfg(),
                                SteS2Domain{.vmid = domain->vmid(), .ats = ats});
    case Stage::nested: {
      const auto* parent = static_cast<const ArmSmmuDomain*>(domain->parent());
      return make_nested_ste(f, parent->pgtbl_cfg(),
                             SteNested{.s2 = {.vmid = parent->vmid(), .ats = ats}},
                             domain->guest_ste());
    }
    case Stage::s1: break;
  }
  STRATA_BUG("unreachable");
}

// All or nothing across the master's StreamIDs. Each StreamID is a separate STE with its own
// CMD_CFGI_STE + CMD_SYNC (IHI 0070 3.21.3.1, 4.3.1, 4.7.3), so a failure at StreamID i comes
// after StreamIDs 0..i-1 were switched. The callers treat a failed install as "the master is
// still in its old state" (attach keeps the old domain, undoes CD 0, and its caller may free
// the new domain's tables), so the StreamIDs already switched would otherwise keep pointing at
// what the caller is about to undo or free. So on failure every StreamID touched, the one that
// failed included (its live STE holds the old, the new or an invalid entry, strtab.h "Failed
// invalidations"), is written back to the STE it held before. That is best effort: after a
// CMD_SYNC timeout the Command queue is usually no better for the rollback, and a StreamID whose
// rollback fails too is logged and left as write_ste left it (the SMMU may then use the old, the
// new or an invalid STE for it; only a reset of the SMMU settles it, as after any CMD_SYNC
// timeout in Linux).
Result<void> ArmSmmuV3::install_ste(ArmSmmuMaster& master, const smmuv3::STE& ste) {
  // Each StreamID's own previous STE: they normally all hold the same one, but not after an
  // earlier rollback that failed. Such a StreamID may hold an intermediate step of the writer
  // (bits its configuration ignores already set), which write_ste refuses as a target: only
  // the bits the configuration uses are kept, which is the configuration the SMMU acts on.
  hw::STE old[IommuFwspec::kMaxIds];
  for (unsigned i = 0; i < master.num_streams; i++) {
    auto cur = strtab_->read_ste(master.streams[i].sid);
    if (!cur.ok()) return Error(cur.error().code());  // probe_device installed every level 2
    uint64_t words[hw::STE::kWords], used[hw::STE::kWords];
    ste_to_words(cur.value(), words);
    ste_get_used(words, used);
    for (unsigned k = 0; k < hw::STE::kWords; k++) old[i].set_word(k, words[k] & used[k]);
  }
  for (unsigned i = 0; i < master.num_streams; i++) {
    auto r = strtab_->write_ste(master.streams[i].sid, ste);
    if (r.ok()) {
      counters_.ste_writes.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    dev_err(config_.name, "{}: STE update of StreamID {:#x} failed: {}", master.dev.name(),
            master.streams[i].sid, r.error());
    for (unsigned j = i + 1; j-- > 0;) {
      const uint32_t sid = master.streams[j].sid;
      if (auto u = strtab_->write_ste(sid, old[j]); !u.ok()) {
        dev_err(config_.name,
                "{}: StreamID {:#x}: putting the previous STE back failed too: {}; the SMMU may "
                "use the old, the new or an invalid STE for it",
                master.dev.name(), sid, u.error());
        continue;
      }
      counters_.ste_writes.fetch_add(1, std::memory_order_relaxed);
    }
    return Error(r.error().code());
  }
  return {};
}

Result<CdTable*> ArmSmmuV3::master_cd_table(ArmSmmuMaster& master) {
  if (!master.cd_table) {
    master.cd_table = STRATA_TRY(CdTable::alloc(CdTableCfg{.s1cdmax = master.ssid_bits,
                                                           .two_level = features_.two_level_cdtab,
                                                           .dma = config_.dma,
                                                           .coherent = coherent()},
                                                master.cd_inv));
  }
  return master.cd_table.get();
}

Result<void> ArmSmmuV3::write_cd(ArmSmmuMaster& master, ioasid_t ssid, const smmuv3::CD& cd) {
  CdTable* t = STRATA_TRY(master_cd_table(master));
  auto r = t->write_cd(ssid, cd);
  if (!r.ok()) return Error(r.error().code());
  counters_.cd_writes.fetch_add(1, std::memory_order_relaxed);
  return {};
}

void ArmSmmuV3::clear_cd(ArmSmmuMaster& master, ioasid_t ssid) {
  if (!master.cd_table) return;
  if (!master.cd_table->clear_cd(ssid).ok())
    dev_err(config_.name, "{}: clearing CD {} failed", master.dev.name(), ssid);
  counters_.cd_writes.fetch_add(1, std::memory_order_relaxed);
}

void ArmSmmuV3::atc_inv_master(ArmSmmuMaster& master, ioasid_t ssid, bool all_ssids) {
  CmdqBatch batch(*cmdq_);
  for (unsigned i = 0; i < master.num_streams; i++) {
    // SSV == 0 invalidates the translations of every PASID as well (4.5.1); size 0: the
    // whole address space.
    batch.add(arm_smmu_atc_inv_cmd(master.streams[i].sid, !all_ssids && ssid != 0, ssid, 0, 0));
    counters_.atc_invalidations.fetch_add(1, std::memory_order_relaxed);
  }
  if (auto r = batch.submit(); !r.ok())
    dev_err(config_.name, "{}: ATC invalidation failed: {}", master.dev.name(), r.error().code());
}

// A new RID domain for the master (attach_dev). On failure the master keeps its old domain
// and STE.
Result<void> ArmSmmuV3::attach(ArmSmmuMaster& master, ArmSmmuDomain& domain) {
  using Stage = ArmSmmuDomain::Stage;
  ArmSmmuDomain* old = master.domain;
  if (old == &domain) return {};
  // A stage-2 or nested STE has no CD table for the PASIDs to live in (Linux refuses the
  // same).
  if ((domain.stage() == Stage::s2 || domain.stage() == Stage::nested) && master.nr_pasids)
    return Error(-EBUSY);

  const bool tracked = domain.stage() != Stage::bypass && domain.stage() != Stage::abort;
  if (tracked) STRATA_TRY(domain.add_attachment(master, 0));
  // CD 0 back as it was, when the new domain cannot be installed.
  auto undo_cd0 = [&] {
    if (domain.stage() != Stage::s1) return;
    if (old && old->stage() == Stage::s1)
      (void)write_cd(master, 0, old->cd_);
    else
      clear_cd(master, 0);
  };
  auto r = [&]() -> Result<void> {
    if (domain.stage() == Stage::s1) STRATA_TRY(write_cd(master, 0, domain.cd_));
    const hw::STE ste = STRATA_TRY(master_ste(master, &domain, master.nr_pasids));
    return install_ste(master, ste);
  }();
  if (!r.ok()) {
    undo_cd0();
    if (tracked) domain.remove_attachment(master, 0);
    return r;
  }
  master.domain = &domain;
  if (old) {
    if (old->stage() != Stage::bypass && old->stage() != Stage::abort)
      old->remove_attachment(master, 0);
    // CD 0 described the old stage-1 domain; the STE no longer uses it for the RID.
    if (old->stage() == Stage::s1 && domain.stage() != Stage::s1) clear_cd(master, 0);
  }
  // The ATC may hold translations of the old domain (3.9.1.1; Linux's
  // arm_smmu_attach_commit).
  if (master.ats) atc_inv_master(master, 0, true);
  return {};
}

Result<void> ArmSmmuV3::attach_pasid(ArmSmmuMaster& master, ArmSmmuDomain& domain, ioasid_t pasid,
                                     ArmSmmuDomain* old) {
  using Stage = ArmSmmuDomain::Stage;
  if (domain.stage() != Stage::s1) return Error(-EOPNOTSUPP);
  if (pasid == 0 || pasid >= (uint32_t{1} << master.ssid_bits)) return Error(-EINVAL);
  const Stage rid = master.domain ? master.domain->stage() : Stage::abort;
  if (rid == Stage::s2 || rid == Stage::nested) return Error(-EBUSY);

  STRATA_TRY(domain.add_attachment(master, pasid));
  if (auto r = write_cd(master, pasid, domain.cd_); !r.ok()) {
    domain.remove_attachment(master, pasid);
    return r;
  }
  if (!old) {
    // The first PASID moves a bypass or abort STE onto the CD table.
    if (master.nr_pasids == 0 && rid != Stage::s1) {
      auto ste = master_ste(master, master.domain, 1);
      auto r =
          ste.ok() ? install_ste(master, ste.value()) : Result<void>(Error(ste.error().code()));
      if (!r.ok()) {
        clear_cd(master, pasid);
        domain.remove_attachment(master, pasid);
        return r;
      }
    }
    master.nr_pasids++;
  } else {
    old->remove_attachment(master, pasid);
    if (master.ats) atc_inv_master(master, pasid, false);
  }
  return {};
}

void ArmSmmuV3::detach_pasid(ArmSmmuMaster& master, ArmSmmuDomain& domain, ioasid_t pasid) {
  using Stage = ArmSmmuDomain::Stage;
  clear_cd(master, pasid);
  domain.remove_attachment(master, pasid);
  if (master.ats) atc_inv_master(master, pasid, false);
  STRATA_BUG_ON(master.nr_pasids == 0);
  master.nr_pasids--;
  const Stage rid = master.domain ? master.domain->stage() : Stage::abort;
  if (master.nr_pasids == 0 && rid != Stage::s1) {
    // Back to the plain bypass or abort STE.
    auto ste = master_ste(master, master.domain, 0);
    if (ste.ok()) (void)install_ste(master, ste.value());
  }
}

void ArmSmmuV3::remove_dev_pasid(Device& dev, ioasid_t pasid, Domain& domain) {
  auto* master = static_cast<ArmSmmuMaster*>(dev.iommu_priv());
  if (!master) return;
  detach_pasid(*master, static_cast<ArmSmmuDomain&>(domain), pasid);
}

Result<void> ArmSmmuV3::get_resv_regions(Device& dev, ReservedRegions& regions) {
  (void)dev;
  // Where DMA domains map MSI doorbells (dma-iommu's iommu_dma_prepare_msi).
  return regions.add(ReservedRegion{.start = kMsiIovaBase,
                                    .length = kMsiIovaLength,
                                    .prot = IOMMU_READ | IOMMU_WRITE | IOMMU_MMIO,
                                    .type = ResvType::sw_msi});
}

Result<void> ArmSmmuV3::dev_enable_feat(Device& dev, IommuDevFeature feat) {
  auto* master = static_cast<ArmSmmuMaster*>(dev.iommu_priv());
  if (!master) return Error(-ENODEV);
  switch (feat) {
    case IommuDevFeature::iopf:
      if (!master->pri) return Error(-ENODEV);
      if (master->iopf_enabled) return Error(-EBUSY);
      STRATA_TRY(config_.iopf_queue->add_device(dev));
      master->iopf_enabled = true;
      return {};
    case IommuDevFeature::sva: return Error(-ENODEV);
  }
  return Error(-EINVAL);
}

Result<void> ArmSmmuV3::dev_disable_feat(Device& dev, IommuDevFeature feat) {
  auto* master = static_cast<ArmSmmuMaster*>(dev.iommu_priv());
  if (!master) return Error(-ENODEV);
  switch (feat) {
    case IommuDevFeature::iopf:
      if (!master->iopf_enabled) return Error(-EINVAL);
      config_.iopf_queue->remove_device(dev);
      master->iopf_enabled = false;
      return {};
    case IommuDevFeature::sva: return Error(-ENODEV);
  }
  return Error(-EINVAL);
}

bool ArmSmmuV3::capable(Device& dev, IommuCap cap) {
  (void)dev;
  switch (cap) {
    case IommuCap::cache_coherency: return features_.coherent;
    case IommuCap::noexec: return true;
    case IommuCap::deferred_flush: return true;
    // What domain_alloc_paging can give: stage-1 domains with HTTU dirty state.
    case IommuCap::dirty_tracking: return features_.hw_dirty && features_.trans_s1;
    case IommuCap::pre_boot_protection:
    case IommuCap::enforce_cache_coherency: return false;
  }
  return false;
}

Result<size_t> ArmSmmuV3::hw_info(Device& dev, void* data, size_t len, uint32_t* type) {
  (void)dev;
  IommuHwInfoArmSmmuv3 info = {};
  for (unsigned i = 0; i < 6; i++) info.idr[i] = page0_.readl_relaxed(hw::IDR0::kOffset + 4 * i);
  info.iidr = page0_.readl_relaxed(hw::IIDR::kOffset);
  info.aidr = page0_.readl_relaxed(hw::AIDR::kOffset);
  const size_t n = len < sizeof(info) ? len : sizeof(info);
  if (n) memcpy(data, &info, n);
  if (type) *type = IOMMU_HW_INFO_TYPE_ARM_SMMUV3;
  return sizeof(info);
}

}  // namespace strata::arm_smmu_v3
