// SPDX-License-Identifier: MIT
// Domains (Linux's arm_smmu_domain_alloc_paging & co, arm_smmu_tlb_inv_range_domain): stage-1
// and stage-2 paging over //core/io-pgtable, identity, blocked and nested, and the
// invalidations that follow their changes.
#include "arch/endian.h"
#include "arch/log.h"
#include "drivers/iommu/arm/arm-smmu-v3/arm_smmu_v3.h"
#include "drivers/iommu/arm/arm-smmu-v3/cd_lib.h"

namespace strata::arm_smmu_v3 {

namespace hw = ::strata::smmuv3;

namespace {

// The tlb_inv functions write into a CmdqBatch.
class BatchSink final : public CmdSink {
 public:
  explicit BatchSink(CmdqBatch& batch) : batch_(batch) {}
  Result<void> add(const hw::Command& cmd) override {
    batch_.add(cmd);
    return {};
  }

 private:
  CmdqBatch& batch_;
};

}  // namespace

ArmSmmuDomain::ArmSmmuDomain(ArmSmmuV3& smmu, DomainType type, Stage stage)
    : Domain(smmu, type), smmu_(smmu), stage_(stage) {}

ArmSmmuDomain::~ArmSmmuDomain() {
  // The core detached it everywhere; Domain's destructor checks users().
  STRATA_BUG_ON(!devices_.empty());
  if (pgtbl_) {
    // Nothing cached may outlive the tables or the tag (Linux's arm_smmu_domain_free_paging
    // invalidates the ASID or VMID before freeing it).
    invalidate(0, 0, 0, false, true);
    pgtbl_.reset();
  }
  if (stage_ == Stage::s1 && asid_) smmu_.asids_.free(asid_);
  // A nested domain carries its parent's VMID; the parent frees it.
  if (stage_ == Stage::s2 && vmid_) smmu_.vmids_.free(vmid_);
}

Result<void> ArmSmmuDomain::init_paging(Device& dev, uint32_t flags) {
  (void)dev;
  const ArmSmmuFeatures& f = smmu_.features_;
  IoPgtableFmt fmt;
  pgtbl_cfg_.pgsize_bitmap = f.pgsize_bitmap;
  pgtbl_cfg_.coherent_walk = smmu_.coherent();
  pgtbl_cfg_.dma = smmu_.config_.dma;
  pgtbl_cfg_.tlb = &flush_ops_;
  pgtbl_cfg_.cookie = this;
  flush_ops_.tlb_flush_walk = &ArmSmmuDomain::tlb_flush_walk;
  // io-pgtable's VMSAv8-64 tables take 32- to 48-bit inputs (no FEAT_LVA), and give a 52-bit
  // output only with the 64K granule (FEAT_LPA's OA[51:48]); it picks the smallest granule
  // offered. So on an SMMU with 52-bit addresses the tables are sized down to 48 bits unless
  // 64K is its only granule: a narrower IPS / S2PS than the SMMU's is always valid, it only
  // leaves the top of the address space unmappable.
  const bool only_64k = (f.pgsize_bitmap & (SZ_4K | SZ_16K)) == 0;
  auto clamp = [](unsigned bits, unsigned max) { return bits < max ? bits : max; };
  if (stage_ == Stage::s1) {
    fmt = IoPgtableFmt::arm_64_lpae_s1;
    pgtbl_cfg_.ias = clamp(f.va_bits, 48);
    pgtbl_cfg_.oas = clamp(f.ias, only_64k ? 52 : 48);
    asid_ = static_cast<uint16_t>(STRATA_TRY(smmu_.asids_.alloc()));
  } else {
    fmt = IoPgtableFmt::arm_64_lpae_s2;
    pgtbl_cfg_.ias = clamp(f.ias, 48);
    pgtbl_cfg_.oas = clamp(f.oas, only_64k ? 52 : 48);
    vmid_ = static_cast<uint16_t>(STRATA_TRY(smmu_.vmids_.alloc()));
  }
  if (flags & IOMMU_DOMAIN_ALLOC_DIRTY_TRACKING) pgtbl_cfg_.quirks |= IO_PGTABLE_QUIRK_DIRTY;
  pgtbl_ = STRATA_TRY(IoPgtable::alloc(fmt, pgtbl_cfg_));
  if (stage_ == Stage::s1) cd_ = STRATA_TRY(make_s1_cd(pgtbl_cfg_, asid_));
  pgsize_bitmap_ = pgtbl_cfg_.pgsize_bitmap;
  geometry_.aperture_start = 0;
  geometry_.aperture_end = (uint64_t{1} << pgtbl_cfg_.ias) - 1;
  geometry_.force_aperture = true;
  return {};
}

Result<Box<Domain>> ArmSmmuV3::domain_alloc_paging(Device& dev, DomainType type, uint32_t flags) {
  if (flags & ~(IOMMU_DOMAIN_ALLOC_NEST_PARENT | IOMMU_DOMAIN_ALLOC_DIRTY_TRACKING))
    return Error(-EOPNOTSUPP);
  // A nest parent is a stage-2 table (the guest owns stage 1); otherwise stage 1 when the
  // SMMU has it, as Linux prefers.
  ArmSmmuDomain::Stage stage = ArmSmmuDomain::Stage::s1;
  if (flags & IOMMU_DOMAIN_ALLOC_NEST_PARENT) {
    if (!features_.nesting) return Error(-EOPNOTSUPP);
    stage = ArmSmmuDomain::Stage::s2;
  } else if (!features_.trans_s1) {
    stage = ArmSmmuDomain::Stage::s2;
  }
  // Dirty tracking is stage 1's (CD.HA/HD over DBM leaves), as in Linux, which also refuses it
  // for a nest parent: STE.S2HA/S2HD are never set.
  if ((flags & IOMMU_DOMAIN_ALLOC_DIRTY_TRACKING) &&
      (!features_.hw_dirty || stage != ArmSmmuDomain::Stage::s1))
    return Error(-EOPNOTSUPP);
  Box<ArmSmmuDomain> d = STRATA_TRY(make_box<ArmSmmuDomain>(*this, type, stage));
  STRATA_TRY(d->init_paging(dev, flags));
  return Box<Domain>(std::move(d));
}

Result<Box<Domain>> ArmSmmuV3::domain_alloc_identity(Device& dev) {
  (void)dev;
  Box<ArmSmmuDomain> d = STRATA_TRY(
      make_box<ArmSmmuDomain>(*this, DomainType::identity, ArmSmmuDomain::Stage::bypass));
  return Box<Domain>(std::move(d));
}

Result<Box<Domain>> ArmSmmuV3::domain_alloc_blocked(Device& dev) {
  (void)dev;
  Box<ArmSmmuDomain> d =
      STRATA_TRY(make_box<ArmSmmuDomain>(*this, DomainType::blocked, ArmSmmuDomain::Stage::abort));
  return Box<Domain>(std::move(d));
}

// The guest's STE words (Linux's arm_smmu_domain_alloc_nesting): checked now by building the
// STE they would give, so that attach cannot fail on them later.
Result<Box<Domain>> ArmSmmuV3::domain_alloc_nested(Device& dev, Domain& parent, const void* data,
                                                   size_t len) {
  (void)dev;
  if (len != sizeof(ArmSmmuNestedData) || !data) return Error(-EINVAL);
  auto& s2 = static_cast<ArmSmmuDomain&>(parent);
  if (s2.stage() != ArmSmmuDomain::Stage::s2 || !s2.nest_parent()) return Error(-EINVAL);
  ArmSmmuNestedData le;
  memcpy(&le, data, sizeof(le));
  const GuestSte guest{.ste = {le64_to_cpu(le.ste[0]), le64_to_cpu(le.ste[1])}};
  STRATA_TRY(
      make_nested_ste(ste_features(), s2.pgtbl_cfg(), SteNested{.s2 = {.vmid = s2.vmid()}}, guest));
  Box<ArmSmmuDomain> d =
      STRATA_TRY(make_box<ArmSmmuDomain>(*this, DomainType::nested, ArmSmmuDomain::Stage::nested));
  d->guest_ = guest;
  d->vmid_ = s2.vmid();
  return Box<Domain>(std::move(d));
}

Result<void> ArmSmmuDomain::attach_dev(Device& dev) {
  auto* master = static_cast<ArmSmmuMaster*>(dev.iommu_priv());
  if (!master || &master->smmu != &smmu_) return Error(-ENODEV);
  return smmu_.attach(*master, *this);
}

Result<void> ArmSmmuDomain::set_dev_pasid(Device& dev, ioasid_t pasid, Domain* old) {
  auto* master = static_cast<ArmSmmuMaster*>(dev.iommu_priv());
  if (!master || &master->smmu != &smmu_) return Error(-ENODEV);
  return smmu_.attach_pasid(*master, *this, pasid, static_cast<ArmSmmuDomain*>(old));
}

Result<size_t> ArmSmmuDomain::map_pages(uint64_t iova, phys_addr_t paddr, size_t pgsize,
                                        size_t pgcount, int prot) {
  if (!pgtbl_) return Error(-EINVAL);
  return pgtbl_->map_pages(iova, paddr, pgsize, pgcount, prot);
}

Result<size_t> ArmSmmuDomain::unmap_pages(uint64_t iova, size_t pgsize, size_t pgcount,
                                          IotlbGather& gather) {
  if (!pgtbl_) return Error(-EINVAL);
  return pgtbl_->unmap_pages(iova, pgsize, pgcount, gather);
}

Result<phys_addr_t> ArmSmmuDomain::iova_to_phys(uint64_t iova) {
  if (!pgtbl_) return Error(-EINVAL);
  return pgtbl_->iova_to_phys(iova);
}

TlbTag ArmSmmuDomain::tlb_tag() const {
  if (stage_ == Stage::s1) return TlbTag{.kind = TlbTag::Kind::s1, .asid = asid_};
  return TlbTag{.kind = nest_parent() ? TlbTag::Kind::s2_nest_parent : TlbTag::Kind::s2,
                .vmid = vmid_};
}

// TLB first, then the ATCs: an ATS Translation Request that misses the ATC after its
// invalidation must not refill it from a stale TLB entry (3.9.1.1; Linux's
// arm_smmu_tlb_inv_range_domain). Each batch is one CMD_SYNC.
void ArmSmmuDomain::invalidate(uint64_t iova, uint64_t size, uint64_t granule, bool leaf, bool all,
                               bool mixed) {
  {
    CmdqBatch batch(*smmu_.cmdq_);
    BatchSink sink(batch);
    auto r =
        all ? arm_smmu_tlb_inv_all(sink, tlb_tag())
            : arm_smmu_tlb_inv_range(sink, smmu_.features_, tlb_tag(),
                                     TlbInvRange{.iova = iova,
                                                 .size = size,
                                                 .granule = granule,
                                                 .tg_shift = static_cast<unsigned>(
                                                     __builtin_ctzll(pgtbl_cfg_.pgsize_bitmap)),
                                                 .leaf = leaf,
                                                 .mixed = mixed});
    if (r.ok()) r = batch.submit();
    smmu_.counters_.tlb_syncs.fetch_add(1, std::memory_order_relaxed);
    if (!r.ok()) dev_err(smmu_.config_.name, "TLB invalidation failed: {}", r.error().code());
  }
  if (nr_ats_attachments_.load(std::memory_order_acquire) == 0) return;
  CmdqBatch batch(*smmu_.cmdq_);
  {
    Guard g(devices_lock_);
    for (ArmSmmuAttachment& a : devices_) {
      if (!a.master->ats) continue;
      const bool whole = all || a.nested_ats_flush;
      for (unsigned i = 0; i < a.master->num_streams; i++) {
        batch.add(arm_smmu_atc_inv_cmd(a.master->streams[i].sid, a.ssid != 0, a.ssid,
                                       whole ? 0 : iova, whole ? 0 : size));
        smmu_.counters_.atc_invalidations.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
  if (auto r = batch.submit(); !r.ok())
    dev_err(smmu_.config_.name, "ATC invalidation failed: {}", r.error().code());
}

void ArmSmmuDomain::iotlb_sync(IotlbGather& gather) {
  if (gather.empty() || !pgtbl_) return;
  invalidate(gather.start(), gather.size(), gather.granule(), gather.leaf_only(), false,
             gather.mixed_granules());
}

void ArmSmmuDomain::flush_iotlb_all() {
  if (pgtbl_) invalidate(0, 0, 0, false, true);
}

// io-pgtable freed or replaced a table (non-leaf entries changed): the walk caches too.
void ArmSmmuDomain::tlb_flush_walk(uint64_t iova, size_t size, size_t granule, void* cookie) {
  static_cast<ArmSmmuDomain*>(cookie)->invalidate(iova, size, granule, false, false);
}

bool ArmSmmuDomain::ats_enabled(const ArmSmmuMaster& master) const {
  if (!master.ats) return false;
  if (stage_ != Stage::nested) return true;
  return hw::STE{}.set_word(1, guest_.ste[1]).get<hw::STE::EATS>() == hw::kEatsTrans;
}

Result<void> ArmSmmuDomain::add_attachment(ArmSmmuMaster& master, ioasid_t ssid) {
  // The parent first: from the moment the STE can point at the nested domain, the parent's
  // invalidations must reach the master's ATC.
  auto* parent = static_cast<ArmSmmuDomain*>(this->parent());
  const bool flush = stage_ == Stage::nested && ats_enabled(master);
  if (flush) STRATA_TRY(parent->link(master, ssid, true));
  auto r = link(master, ssid, false);
  if (!r.ok() && flush) parent->unlink(master, ssid, true);
  return r;
}

void ArmSmmuDomain::remove_attachment(ArmSmmuMaster& master, ioasid_t ssid) {
  unlink(master, ssid, false);
  if (stage_ == Stage::nested && ats_enabled(master))
    static_cast<ArmSmmuDomain*>(parent())->unlink(master, ssid, true);
}

Result<void> ArmSmmuDomain::link(ArmSmmuMaster& master, ioasid_t ssid, bool nested_ats_flush) {
  ArmSmmuAttachment* a = STRATA_TRY(make_box<ArmSmmuAttachment>()).release();
  a->master = &master;
  a->ssid = ssid;
  a->nested_ats_flush = nested_ats_flush;
  Guard g(devices_lock_);
  devices_.push_back(*a);
  if (master.ats) nr_ats_attachments_.fetch_add(1, std::memory_order_release);
  return {};
}

// A master moving between the parent and a nested domain over it is on the parent's list
// twice for a moment, directly and for the nested domain: the flag tells the two apart.
void ArmSmmuDomain::unlink(ArmSmmuMaster& master, ioasid_t ssid, bool nested_ats_flush) {
  ArmSmmuAttachment* found = nullptr;
  {
    Guard g(devices_lock_);
    for (ArmSmmuAttachment& a : devices_) {
      if (a.master == &master && a.ssid == ssid && a.nested_ats_flush == nested_ats_flush) {
        found = &a;
        break;
      }
    }
    if (!found) return;
    devices_.erase(devices_.iterator_to(*found));
    if (master.ats) nr_ats_attachments_.fetch_sub(1, std::memory_order_release);
  }
  Box<ArmSmmuAttachment>::adopt(found).reset();
}

// Guest commands for a nested domain (Linux's arm_vsmmu_convert_user_cmd takes the same
// set). What a guest may ask for is what its own stage 1 and CD table need; each command is
// checked against what this SMMU implements and rebuilt from its defined fields with the
// host's identifiers (the parent's VMID, the master's StreamID), so a guest can neither reach
// another VM's TLB entries or StreamIDs nor put a command in the queue that the SMMU rejects
// (CERROR_ILL stops the queue for everyone's commands until the GERROR handler skips it).
namespace {

// What a guest may send, and whether the command concerns its StreamID (else its VMID).
enum class GuestCmd { refused, tlbi, per_stream, atc };

// The TLBI fields a guest may set are those its opcode defines (4.4.2), with values this SMMU
// accepts: an ASID within IDR0.ASID16's width (the upper byte is RES0 otherwise, 4.4), and the
// range fields only with IDR3.RIL and in the combinations 4.4.1.1 does not make Reserved. The
// VMID is the host's. False: the SMMU would reject or ignore the command.
bool guest_tlbi_ok(const hw::CmdTlbi& t, hw::Opcode op, const ArmSmmuFeatures& f) {
  using T = hw::CmdTlbi;
  const bool asid = op == hw::Opcode::CMD_TLBI_NH_ASID || op == hw::Opcode::CMD_TLBI_NH_VA;
  const bool by_address = op == hw::Opcode::CMD_TLBI_NH_VA || op == hw::Opcode::CMD_TLBI_NH_VAA;
  uint64_t allowed0 = T::Op::kMask | T::VMID::kMask, allowed1 = 0;
  if (asid) allowed0 |= T::ASID::kMask;
  if (by_address) {
    allowed0 |= T::NUM::kMask | T::SCALE::kMask;
    allowed1 |= T::Leaf::kMask | T::TTL::kMask | T::TG::kMask | T::Address::kMask;
  }
  if ((t.word(0) & ~allowed0) || (t.word(1) & ~allowed1)) return false;
  if (asid && (t.get<T::ASID>() >> f.asid_bits) != 0) return false;
  if (!by_address) return true;
  const uint64_t num = t.get<T::NUM>(), scale = t.get<T::SCALE>();
  const uint64_t ttl = t.get<T::TTL>(), tg = t.get<T::TG>();
  if (!f.range_inv) return (num | scale | ttl | tg) == 0;
  if (tg == hw::kTlbiTgNone) return (num | scale | ttl) == 0;
  if (num == 0 && scale == 0 && ttl == 0) return false;  // Reserved (4.4.1.1)
  if (scale > 31) return false;                          // SCALE[5] is RES0 without IDR5.DS
  return !(tg == hw::kTlbiTg16K && ttl == 0b01);         // Reserved without IDR5.DS
}

GuestCmd guest_cmd_kind(const hw::Command& c, const ArmSmmuFeatures& f) {
  const auto op = static_cast<hw::Opcode>(c.opcode());
  switch (op) {
    case hw::Opcode::CMD_TLBI_NH_ALL:
    case hw::Opcode::CMD_TLBI_NH_ASID:
    case hw::Opcode::CMD_TLBI_NH_VA:
    case hw::Opcode::CMD_TLBI_NH_VAA:
      return guest_tlbi_ok(hw::descriptor_cast<hw::CmdTlbi>(c), op, f) ? GuestCmd::tlbi
                                                                       : GuestCmd::refused;
    case hw::Opcode::CMD_CFGI_CD:
    case hw::Opcode::CMD_CFGI_CD_ALL: return GuestCmd::per_stream;
    case hw::Opcode::CMD_ATC_INV:
      // Size 0 to 52 spans 4KB * 2^Size (4.5.1); nothing larger exists.
      return hw::descriptor_cast<hw::CmdAtcInv>(c).get<hw::CmdAtcInv::Size>() <=
                     hw::CmdAtcInv::kSizeAll
                 ? GuestCmd::atc
                 : GuestCmd::refused;
    default: return GuestCmd::refused;
  }
}

// A command guest_cmd_kind accepts, rebuilt with the host's identifiers. A TLBI's words are
// kept but for the VMID: guest_tlbi_ok allowed only the opcode's fields.
hw::Command convert_guest_cmd(const hw::Command& c, uint16_t vmid, uint32_t sid) {
  switch (static_cast<hw::Opcode>(c.opcode())) {
    case hw::Opcode::CMD_TLBI_NH_ALL:
    case hw::Opcode::CMD_TLBI_NH_ASID:
    case hw::Opcode::CMD_TLBI_NH_VA:
    case hw::Opcode::CMD_TLBI_NH_VAA:
      return hw::descriptor_cast<hw::Command>(
          hw::descriptor_cast<hw::CmdTlbi>(c).set<hw::CmdTlbi::VMID>(vmid));
    case hw::Opcode::CMD_CFGI_CD: {
      using T = hw::CmdCfgiCd;
      const auto g = hw::descriptor_cast<T>(c);
      return hw::descriptor_cast<hw::Command>(T::make()
                                                  .set<T::SubstreamID>(g.get<T::SubstreamID>())
                                                  .set<T::StreamID>(sid)
                                                  .set<T::Leaf>(g.get<T::Leaf>()));
    }
    case hw::Opcode::CMD_CFGI_CD_ALL:
      return hw::descriptor_cast<hw::Command>(
          hw::CmdCfgiCdAll::make().set<hw::CmdCfgiCdAll::StreamID>(sid));
    case hw::Opcode::CMD_ATC_INV: {
      using T = hw::CmdAtcInv;
      const auto g = hw::descriptor_cast<T>(c);
      return hw::descriptor_cast<hw::Command>(T::make()
                                                  .set<T::Global>(g.get<T::Global>())
                                                  .set<T::SSV>(g.get<T::SSV>())
                                                  .set<T::SubstreamID>(g.get<T::SubstreamID>())
                                                  .set<T::StreamID>(sid)
                                                  .set<T::Size>(g.get<T::Size>())
                                                  .set<T::Address>(g.get<T::Address>()));
    }
    default: STRATA_BUG("convert_guest_cmd: a command guest_cmd_kind refuses");
  }
}

}  // namespace

Result<void> ArmSmmuDomain::cache_invalidate_user(const hw::Command* cmds, size_t n) {
  if (stage_ != Stage::nested) return Error(-EOPNOTSUPP);
  if (n && !cmds) return Error(-EINVAL);
  // What the commands are retargeted at, read under the lock: the master may be detached and
  // released meanwhile (its StreamID is then invalidated for nothing, which is harmless).
  bool attached = false, ats = false;
  uint32_t sid = 0;
  {
    Guard g(devices_lock_);
    if (!devices_.empty()) {
      const ArmSmmuMaster& m = *devices_.front().master;
      attached = true;
      ats = ats_enabled(m);
      sid = m.streams[0].sid;
    }
  }
  // All or nothing: every command is checked before any is queued.
  for (size_t i = 0; i < n; i++) {
    if (guest_cmd_kind(cmds[i], smmu_.features_) == GuestCmd::refused) {
      dev_warn(smmu_.config_.name, "guest command {} ({:#x}) refused", i, cmds[i].opcode());
      return Error(-EINVAL);
    }
  }
  CmdqBatch batch(*smmu_.cmdq_);
  for (size_t i = 0; i < n; i++) {
    // Nothing attached: nothing of the guest's is cached for a StreamID; no ATS: no ATC.
    const GuestCmd kind = guest_cmd_kind(cmds[i], smmu_.features_);
    if ((kind == GuestCmd::per_stream && !attached) || (kind == GuestCmd::atc && !ats)) continue;
    batch.add(convert_guest_cmd(cmds[i], vmid_, sid));
  }
  return batch.submit();
}

}  // namespace strata::arm_smmu_v3
