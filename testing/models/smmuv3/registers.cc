// SPDX-License-Identifier: MIT
#include "testing/models/smmuv3/registers.h"

#include <utility>

#include <fmt/format.h>

#include "arch/bug.h"
#include "arch/log.h"

namespace strata::sim::smmuv3 {
namespace {

using GuardResult = RegisterFile::GuardResult;
using LockedView = RegisterFile::LockedView;

constexpr uint64_t kAll = ~uint64_t{0};

// The IMPLEMENTATION DEFINED space at the top of each page: [0xE00, 0x1000) (Linux maps only
// the first 0xE00 bytes of each page, ARM_SMMU_REG_SZ, to stay out of it).
constexpr uint64_t kImpdefStart = 0xe00, kImpdefEnd = 0x1000;

bool in_impdef_space(uint64_t offset) {
  const uint64_t in_page = offset % arch::kPage1Offset;
  return in_page >= kImpdefStart && in_page < kImpdefEnd;
}

uint32_t make_cr0_mask(const Config& c) {
  uint32_t m = arch::CR0::SMMUEN::kMask | arch::CR0::EVENTQEN::kMask | arch::CR0::CMDQEN::kMask;
  if (c.pri) m |= arch::CR0::PRIQEN::kMask;
  if (c.ats) m |= arch::CR0::ATSCHK::kMask;
  if (c.vmw) m |= arch::CR0::VMW::kMask;
  return m;
}

uint32_t make_irq_ctrl_mask(const Config& c) {
  uint32_t m = arch::IRQ_CTRL::GERROR_IRQEN::kMask | arch::IRQ_CTRL::EVENTQ_IRQEN::kMask;
  if (c.pri) m |= arch::IRQ_CTRL::PRIQ_IRQEN::kMask;
  return m;
}

// GERROR bits that can become active (6.3.19): SFM_ERR is listed although the model never
// enters Service Failure Mode; CMDQP_ERR and DPT_ERR need ECMDQ and DPT.
uint32_t make_gerror_mask(const Config& c) {
  using G = arch::GerrorFields;
  uint32_t m = G::CMDQ_ERR::kMask | G::EVENTQ_ABT_ERR::kMask | G::SFM_ERR::kMask;
  if (c.pri) m |= G::PRIQ_ABT_ERR::kMask;
  if (c.msi) {
    m |= G::MSI_CMDQ_ABT_ERR::kMask | G::MSI_EVENTQ_ABT_ERR::kMask | G::MSI_GERROR_ABT_ERR::kMask;
    if (c.pri) m |= G::MSI_PRIQ_ABT_ERR::kMask;
  }
  return m;
}

// A register writable only while neither CTRL[bit] nor its ACK[bit] is set: the spec's "when
// SMMU_CR0.X == 0 and SMMU_CR0ACK.X == 0, accesses to this register are RW; otherwise RO".
RegisterFile::WriteGuard guarded_by(uint64_t ctrl, uint64_t ack, uint64_t bits, const char* why) {
  return [=](const LockedView& regs, uint64_t, uint64_t) {
    const bool enabled = (regs.value(ctrl) | regs.value(ack)) & bits;
    return GuardResult{.writable = enabled ? 0 : kAll, .why = why};
  };
}

}  // namespace

IdRegisters id_registers(const Config& c) {
  IdRegisters id;
  id.idr0.set<arch::IDR0::S2P>(c.s2p)
      .set<arch::IDR0::S1P>(c.s1p)
      .set<arch::IDR0::TTF>(arch::kTtfAArch64)
      .set<arch::IDR0::COHACC>(c.cohacc)
      .set<arch::IDR0::BTM>(c.btm)
      .set<arch::IDR0::HTTU>(c.httu)
      .set<arch::IDR0::Hyp>(c.hyp)
      .set<arch::IDR0::ATS>(c.ats)
      // NS1ATS says split-stage ATS is *not* supported; RES0 unless ATS with both stages.
      .set<arch::IDR0::NS1ATS>(c.ats && c.s1p && c.s2p && !c.split_stage_ats)
      .set<arch::IDR0::ASID16>(c.asid16)
      .set<arch::IDR0::MSI>(c.msi)
      .set<arch::IDR0::SEV>(c.sev)
      .set<arch::IDR0::PRI>(c.pri)
      .set<arch::IDR0::VMW>(c.vmw)
      .set<arch::IDR0::VMID16>(c.vmid16)
      .set<arch::IDR0::CD2L>(c.cd2l)
      .set<arch::IDR0::TTENDIAN>(arch::kTtendianLe)
      .set<arch::IDR0::STALL_MODEL>(c.stall_model)
      .set<arch::IDR0::TERM_MODEL>(c.term_model)
      .set<arch::IDR0::ST_LEVEL>(c.st_2level ? arch::kStLevel2Level : arch::kStLevelLinear);
  id.idr1.set<arch::IDR1::SIDSIZE>(c.sidsize)
      .set<arch::IDR1::SSIDSIZE>(c.ssidsize)
      .set<arch::IDR1::PRIQS>(c.pri ? c.priqs : 0)
      .set<arch::IDR1::EVENTQS>(c.eventqs)
      .set<arch::IDR1::CMDQS>(c.cmdqs)
      .set<arch::IDR1::ATTR_PERMS_OVR>(c.attr_perms_ovr)
      .set<arch::IDR1::ATTR_TYPES_OVR>(c.attr_types_ovr);
  id.idr3.set<arch::IDR3::HAD>(c.had)
      .set<arch::IDR3::XNX>(c.xnx)
      .set<arch::IDR3::PPS>(c.pps)
      .set<arch::IDR3::FWB>(c.fwb)
      .set<arch::IDR3::STT>(c.stt)
      .set<arch::IDR3::RIL>(c.ril)
      .set<arch::IDR3::BBML>(c.bbml)
      .set<arch::IDR3::E0PD>(c.e0pd)
      .set<arch::IDR3::PTWNNC>(c.ptwnnc);
  id.idr5.set<arch::IDR5::OAS>(c.oas)
      .set<arch::IDR5::GRAN4K>(c.gran4k)
      .set<arch::IDR5::GRAN16K>(c.gran16k)
      .set<arch::IDR5::GRAN64K>(c.gran64k)
      .set<arch::IDR5::VAX>(c.vax)
      // RES0 without the Stall model (6.3.6).
      .set<arch::IDR5::STALL_MAX>(c.stall_model == arch::kStallModelTerminate ? 0 : c.stall_max);
  id.iidr.set<arch::IIDR::Implementer>(c.iidr_implementer)
      .set<arch::IIDR::Revision>(c.iidr_revision)
      .set<arch::IIDR::Variant>(c.iidr_variant)
      .set<arch::IIDR::ProductID>(c.iidr_product);
  id.aidr.set<arch::AIDR::ArchMinorRev>(c.version).set<arch::AIDR::ArchMajorRev>(0);
  return id;
}

Result<std::unique_ptr<Registers>> Registers::create(const Config& config, std::string name) {
  if (const char* why = config.invalid_reason()) {
    pr_err("smmuv3 model: invalid config: {}", why);
    return Error(-EINVAL);
  }
  return std::unique_ptr<Registers>(new Registers(config, std::move(name)));
}

Registers::Registers(const Config& config, std::string name)
    : config_(config),
      name_(name),
      cr0_mask_(make_cr0_mask(config)),
      irq_ctrl_mask_(make_irq_ctrl_mask(config)),
      gerror_mask_(make_gerror_mask(config)),
      oas_mask_((uint64_t{1} << config.oas_bits()) - 1),
      file_(std::move(name)) {
  define_all();
}

void Registers::define_all() {
  using namespace arch;
  const Config& c = config_;
  const IdRegisters id = id_registers(c);
  RegisterFile& f = file_;

  // ID registers: read-only.
  f.define32(IDR0::kOffset, "IDR0", id.idr0.value(), 0);
  f.define32(IDR1::kOffset, "IDR1", id.idr1.value(), 0);
  f.define32(IDR2::kOffset, "IDR2", id.idr2.value(), 0);
  f.define32(IDR3::kOffset, "IDR3", id.idr3.value(), 0);
  f.define32(IDR4::kOffset, "IDR4", id.idr4.value(), 0);
  f.define32(IDR5::kOffset, "IDR5", id.idr5.value(), 0);
  f.define32(IIDR::kOffset, "IIDR", id.iidr.value(), 0);
  f.define32(AIDR::kOffset, "AIDR", id.aidr.value(), 0);

  // Control. CR0 and IRQ_CTRL store what is written; their ACKs follow when the model has
  // completed the Update (6.3.9). Writes request that Update.
  f.define32(CR0::kOffset, "CR0", 0, cr0_mask_).on_write([this](uint64_t, uint64_t) {
    if (RegisterListener* l = listener()) l->update_requested();
  });
  f.define32(CR0ACK::kOffset, "CR0ACK", 0, 0);

  // CR1 (6.3.11): TABLE_* guarded by SMMUEN, QUEUE_* by every queue enable.
  constexpr uint64_t kTableBits =
      CR1::TABLE_IC::kMask | CR1::TABLE_OC::kMask | CR1::TABLE_SH::kMask;
  constexpr uint64_t kQueueBits =
      CR1::QUEUE_IC::kMask | CR1::QUEUE_OC::kMask | CR1::QUEUE_SH::kMask;
  f.define32(CR1::kOffset, "CR1", 0, kTableBits | kQueueBits)
      .guard([](const LockedView& regs, uint64_t, uint64_t) {
        const uint64_t en = regs.value(CR0::kOffset) | regs.value(CR0ACK::kOffset);
        uint64_t writable = kAll;
        if (en & CR0::SMMUEN::kMask) writable &= ~kTableBits;
        if (en & (CR0::CMDQEN::kMask | CR0::EVENTQEN::kMask | CR0::PRIQEN::kMask))
          writable &= ~kQueueBits;
        return GuardResult{.writable = writable, .why = "CR1 field guarded by SMMUEN or a queue"};
      });

  // CR2 (6.3.12), guarded by SMMUEN. E2H only with Hyp; REC_CFG_ATS needs ATSRECERR (0).
  uint32_t cr2_wmask = CR2::RECINVSID::kMask | CR2::PTM::kMask;
  if (c.hyp) cr2_wmask |= CR2::E2H::kMask;
  f.define32(CR2::kOffset, "CR2", 0, cr2_wmask)
      .guard(guarded_by(CR0::kOffset, CR0ACK::kOffset, CR0::SMMUEN::kMask, "CR2 while SMMUEN"));

  f.define32(STATUSR::kOffset, "STATUSR", 0, 0);

  // GBPA (6.3.14): one write that sets Update; Update reads 1 until the model has applied the
  // attributes. In SMMUv3.2 a write without Update, or while an Update is in progress, is
  // IGNORED (the model does the same for every version, one of the permitted behaviours).
  uint32_t gbpa_reset = static_cast<uint32_t>(GBPA::SHCFG::insert(0, kShcfgIncoming));
  if (c.gbpa_abort_at_reset) gbpa_reset |= GBPA::ABORT::kMask;
  const uint32_t gbpa_wmask = GBPA::MemAttr::kMask | GBPA::MTCFG::kMask | GBPA::ALLOCCFG::kMask |
                              GBPA::SHCFG::kMask | GBPA::PRIVCFG::kMask | GBPA::INSTCFG::kMask |
                              GBPA::ABORT::kMask | GBPA::Update::kMask;
  f.define32(GBPA::kOffset, "GBPA", gbpa_reset, gbpa_wmask)
      .guard([](const LockedView&, uint64_t value, uint64_t written) {
        if (value & GBPA::Update::kMask)
          return GuardResult{.writable = 0, .why = "GBPA written while an Update is in progress"};
        if (!(written & GBPA::Update::kMask))
          return GuardResult{.writable = 0, .why = "GBPA written without Update"};
        return GuardResult{};
      })
      .on_write([this](uint64_t, uint64_t) {
        if (RegisterListener* l = listener()) l->update_requested();
      });
  // AGBPA (6.3.15): IMPLEMENTATION DEFINED attributes; the model has none (RAZ/WI).
  f.define32(AGBPA::kOffset, "AGBPA", 0, 0);

  f.define32(IRQ_CTRL::kOffset, "IRQ_CTRL", 0, irq_ctrl_mask_).on_write([this](uint64_t, uint64_t) {
    if (RegisterListener* l = listener()) l->update_requested();
  });
  f.define32(IRQ_CTRLACK::kOffset, "IRQ_CTRLACK", 0, 0);

  // GERROR is the model's; GERRORN the guest's acknowledgement. Toggling GERRORN for an error
  // that is not active is CONSTRAINED UNPREDICTABLE (6.3.20): the model ignores such a toggle
  // (it does not activate the error) and records a guest error.
  f.define32(GERROR::kOffset, "GERROR", 0, 0);
  f.define32(GERRORN::kOffset, "GERRORN", 0, gerror_mask_)
      .guard([](const LockedView& regs, uint64_t value, uint64_t written) {
        const uint64_t active = regs.value(GERROR::kOffset) ^ value;
        const uint64_t toggled = value ^ written;
        return GuardResult{.writable = ~(toggled & ~active),
                           .why = "GERRORN toggles an error that is not active"};
      })
      .on_write([this](uint64_t old_value, uint64_t new_value) {
        const uint32_t acked = static_cast<uint32_t>(old_value ^ new_value) & gerror_mask_;
        if (RegisterListener* l = listener(); l && acked) l->gerror_acknowledged(acked);
      });

  // MSI configuration (6.3.21-23 and the EVENTQ/PRIQ twins): present with MSI, else RES0
  // (PRIQ_IRQ_CFG2.LO is there either way). Guarded by the source's IRQ_CTRL enable.
  const uint64_t msi_addr = c.msi ? (GERROR_IRQ_CFG0::ADDR::kMask & oas_mask_) : 0;
  const uint32_t msi_data = c.msi ? 0xffffffffu : 0;
  const uint32_t msi_attr = c.msi ? (IrqCfg2Fields::MemAttr::kMask | IrqCfg2Fields::SH::kMask) : 0;
  auto define_irq_cfg = [&](uint64_t cfg0, uint64_t cfg1, uint64_t cfg2, const char* prefix,
                            uint32_t cfg2_extra, uint64_t irqen, const char* why) {
    auto guard = guarded_by(IRQ_CTRL::kOffset, IRQ_CTRLACK::kOffset, irqen, why);
    f.define64(cfg0, fmt::format("{}_IRQ_CFG0", prefix), 0, msi_addr).guard(guard);
    f.define32(cfg1, fmt::format("{}_IRQ_CFG1", prefix), 0, msi_data).guard(guard);
    f.define32(cfg2, fmt::format("{}_IRQ_CFG2", prefix), 0, msi_attr | cfg2_extra).guard(guard);
  };
  define_irq_cfg(GERROR_IRQ_CFG0::kOffset, GERROR_IRQ_CFG1::kOffset, GERROR_IRQ_CFG2::kOffset,
                 "GERROR", 0, IRQ_CTRL::GERROR_IRQEN::kMask, "GERROR_IRQ_CFG while GERROR_IRQEN");

  // Stream table base (6.3.24-25), guarded by SMMUEN.
  const uint64_t strtab_addr = STRTAB_BASE::ADDR::kMask & oas_mask_;
  f.define64(STRTAB_BASE::kOffset, "STRTAB_BASE", 0, strtab_addr | STRTAB_BASE::RA::kMask)
      .guard(guarded_by(CR0::kOffset, CR0ACK::kOffset, CR0::SMMUEN::kMask,
                        "STRTAB_BASE while SMMUEN"));
  f.define32(STRTAB_BASE_CFG::kOffset, "STRTAB_BASE_CFG", 0,
             STRTAB_BASE_CFG::LOG2SIZE::kMask | STRTAB_BASE_CFG::SPLIT::kMask |
                 STRTAB_BASE_CFG::FMT::kMask)
      .guard(guarded_by(CR0::kOffset, CR0ACK::kOffset, CR0::SMMUEN::kMask,
                        "STRTAB_BASE_CFG while SMMUEN"));

  // Queues (6.3.26-29, 6.3.33, page 1). BASE and the SMMU-owned index are guarded by the
  // queue's enable; the software-owned index is always writable.
  const uint64_t queue_addr = QueueBaseFields::ADDR::kMask & oas_mask_;
  constexpr uint64_t kIndex = CMDQ_PROD::WR::kMask;  // [19:0] in every PROD and CONS
  f.define64(CMDQ_BASE::kOffset, "CMDQ_BASE", 0,
             CMDQ_BASE::RA::kMask | queue_addr | CMDQ_BASE::LOG2SIZE::kMask)
      .guard(
          guarded_by(CR0::kOffset, CR0ACK::kOffset, CR0::CMDQEN::kMask, "CMDQ_BASE while CMDQEN"));
  f.define32(CMDQ_PROD::kOffset, "CMDQ_PROD", 0, kIndex).on_write([this](uint64_t, uint64_t) {
    if (RegisterListener* l = listener()) l->cmdq_prod_written();
  });
  f.define32(CMDQ_CONS::kOffset, "CMDQ_CONS", 0, kIndex | CMDQ_CONS::ERR::kMask)
      .guard(
          guarded_by(CR0::kOffset, CR0ACK::kOffset, CR0::CMDQEN::kMask, "CMDQ_CONS while CMDQEN"));

  f.define64(EVENTQ_BASE::kOffset, "EVENTQ_BASE", 0,
             EVENTQ_BASE::WA::kMask | queue_addr | EVENTQ_BASE::LOG2SIZE::kMask)
      .guard(guarded_by(CR0::kOffset, CR0ACK::kOffset, CR0::EVENTQEN::kMask,
                        "EVENTQ_BASE while EVENTQEN"));
  define_irq_cfg(EVENTQ_IRQ_CFG0::kOffset, EVENTQ_IRQ_CFG1::kOffset, EVENTQ_IRQ_CFG2::kOffset,
                 "EVENTQ", 0, IRQ_CTRL::EVENTQ_IRQEN::kMask, "EVENTQ_IRQ_CFG while EVENTQ_IRQEN");
  f.define32(EVENTQ_PROD::kOffset, "EVENTQ_PROD", 0, kIndex | EVENTQ_PROD::OVFLG::kMask)
      .guard(guarded_by(CR0::kOffset, CR0ACK::kOffset, CR0::EVENTQEN::kMask,
                        "EVENTQ_PROD while EVENTQEN"));
  f.define32(EVENTQ_CONS::kOffset, "EVENTQ_CONS", 0, kIndex | EVENTQ_CONS::OVACKFLG::kMask);

  // Without PRI every SMMU_PRIQ_* register is Reserved (6.3.1): left as holes.
  if (c.pri) {
    f.define64(PRIQ_BASE::kOffset, "PRIQ_BASE", 0,
               PRIQ_BASE::WA::kMask | queue_addr | PRIQ_BASE::LOG2SIZE::kMask)
        .guard(guarded_by(CR0::kOffset, CR0ACK::kOffset, CR0::PRIQEN::kMask,
                          "PRIQ_BASE while PRIQEN"));
    define_irq_cfg(PRIQ_IRQ_CFG0::kOffset, PRIQ_IRQ_CFG1::kOffset, PRIQ_IRQ_CFG2::kOffset, "PRIQ",
                   PRIQ_IRQ_CFG2::LO::kMask, IRQ_CTRL::PRIQ_IRQEN::kMask,
                   "PRIQ_IRQ_CFG while PRIQ_IRQEN");
    f.define32(PRIQ_PROD::kOffset, "PRIQ_PROD", 0, kIndex | PRIQ_PROD::OVFLG::kMask)
        .guard(guarded_by(CR0::kOffset, CR0ACK::kOffset, CR0::PRIQEN::kMask,
                          "PRIQ_PROD while PRIQEN"));
    f.define32(PRIQ_CONS::kOffset, "PRIQ_CONS", 0, kIndex | PRIQ_CONS::OVACKFLG::kMask);
  }
}

uint64_t Registers::mmio_read(uint64_t offset, unsigned size) {
  if (in_impdef_space(offset)) {
    report_unimplemented(fmt::format("IMPLEMENTATION DEFINED register at {:#x}", offset));
    return 0;
  }
  return file_.mmio_read(offset, size);
}

void Registers::mmio_write(uint64_t offset, uint64_t value, unsigned size) {
  if (in_impdef_space(offset)) {
    report_unimplemented(fmt::format("IMPLEMENTATION DEFINED register at {:#x}", offset));
    return;
  }
  file_.mmio_write(offset, value, size);
}

uint32_t Registers::active_gerrors() const {
  // GERROR changes only under gerror_mu_ and GERRORN only by guest writes; two reads are as
  // good as one snapshot for a caller that acts on "active now".
  const uint32_t gerror = static_cast<uint32_t>(file_.value(arch::GERROR::kOffset));
  const uint32_t gerrorn = static_cast<uint32_t>(file_.value(arch::GERRORN::kOffset));
  return (gerror ^ gerrorn) & gerror_mask_;
}

uint32_t Registers::activate_gerrors(uint32_t bits) {
  STRATA_BUG_ON(bits & ~gerror_mask_);
  std::lock_guard<std::mutex> lock(gerror_mu_);
  const uint32_t inactive = bits & ~active_gerrors();
  if (inactive) file_.set(arch::GERROR::kOffset, file_.value(arch::GERROR::kOffset) ^ inactive);
  return inactive;
}

std::vector<std::string> Registers::unimplemented() const {
  std::lock_guard<std::mutex> lock(unimp_mu_);
  return unimplemented_;
}

uint64_t Registers::unimplemented_count() const {
  std::lock_guard<std::mutex> lock(unimp_mu_);
  return unimplemented_count_;
}

void Registers::report_unimplemented(std::string what) {
  {
    std::lock_guard<std::mutex> lock(unimp_mu_);
    unimplemented_count_++;
    for (const std::string& s : unimplemented_)
      if (s == what) return;
    unimplemented_.push_back(what);
  }
  dev_log(LogLevel::warning, name_, "unimplemented: {}", what);
}

}  // namespace strata::sim::smmuv3
