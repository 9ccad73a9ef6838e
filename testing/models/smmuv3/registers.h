// SPDX-License-Identifier: MIT
// The SMMUv3 model's programming interface: register pages 0 and 1 (IHI 0070, chapter 6), as
// data over sim::RegisterFile.
//
// What it implements: every Non-secure register of pages 0 and 1 that the Config's features
// call for, with its reset value, writable bits, read-only and guarded behaviour:
//  - ID registers IDR0-IDR5, IIDR, AIDR computed from the Config (id_registers());
//  - CR0/CR0ACK, IRQ_CTRL/IRQ_CTRLACK and GBPA, whose Updates the model completes later
//    (Queues applies them: CR0ACK and IRQ_CTRLACK follow, GBPA.Update clears);
//  - GERROR (read-only, toggled by the model) and GERRORN (toggled by software to acknowledge);
//  - the guarded registers, read-only while their guard holds, as the spec's "Accessing"
//    sections say (SMMUv3.2 makes such writes IGNORED): STRTAB_BASE, STRTAB_BASE_CFG, CR2 and
//    CR1.TABLE_* while SMMUEN; CR1.QUEUE_* while any queue is enabled; *Q_BASE and the
//    SMMU-owned index (CMDQ_CONS, EVENTQ_PROD, PRIQ_PROD) while the queue is enabled; the
//    *_IRQ_CFG0-2 of a source while its IRQ_CTRL enable is set; GBPA while an Update is in
//    progress or when written without Update. A refused write is a guest error;
//  - the queue registers with their index and wrap fields, EVENTQ/PRIQ PROD and CONS in page 1.
// Address fields store only the bits below the OAS ("not required to store" the RES0 bits
// above it).
//
// What it does not: the page-0 aliases of the page-1 registers (they are holes here), the
// Secure and Realm pages, ATOS/VATOS, ECMDQ, MPAM, DPT and RAS registers, STATUSR.DORMANT
// (always 0). The IMPLEMENTATION DEFINED space of each page (0xE00-0xFFF, which holds the
// PIDR/CIDR identification registers on Arm's products) reads as zero and ignores writes, as
// an "unimplemented" record. Any other offset is a hole: RAZ/WI and a guest error.
//
// Three error channels (STYLE "Models"): a driver mistake is a guest error (guest_errors(),
// logged at notice level); a feature the model lacks is an unimplemented record
// (unimplemented(), logged at warning level), which tests can assert never happened; a model
// bug is a STRATA_BUG.
#pragma once

#include <stdint.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "arch/mmio.h"
#include "arch/result.h"
#include "arch/smmuv3/regs.h"
#include "testing/models/regs/register_file.h"
#include "testing/models/smmuv3/config.h"

namespace strata::sim::smmuv3 {

namespace arch = ::strata::smmuv3;

// The ID registers a Config reports.
struct IdRegisters {
  arch::IDR0 idr0;
  arch::IDR1 idr1;
  arch::IDR2 idr2;
  arch::IDR3 idr3;
  arch::IDR4 idr4;
  arch::IDR5 idr5;
  arch::IIDR iidr;
  arch::AIDR aidr;
};
IdRegisters id_registers(const Config& config);

// The guest writes the model acts on, called on the writing thread after the write is stored,
// with no model lock held (RegisterFile's hook rules).
class RegisterListener {
 public:
  // CR0, IRQ_CTRL or GBPA was written: an Update to complete.
  virtual void update_requested() = 0;
  // The CMDQ_PROD doorbell.
  virtual void cmdq_prod_written() = 0;
  // GERRORN acknowledged the global errors in `bits` (GERROR_* bit positions).
  virtual void gerror_acknowledged(uint32_t bits) = 0;

 protected:
  ~RegisterListener() = default;
};

class Registers final : public RegisterModel {
 public:
  // -EINVAL for a Config that validate() rejects. `name` prefixes the log lines ("smmu0").
  static Result<std::unique_ptr<Registers>> create(const Config& config,
                                                   std::string name = "smmuv3");
  Registers(const Registers&) = delete;
  Registers& operator=(const Registers&) = delete;
  ~Registers() = default;

  const Config& config() const { return config_; }
  const std::string& name() const { return name_; }

  // The guest's view: Mmio::model(regs, arch::kRegisterSpaceBytes) maps pages 0 and 1.
  uint64_t mmio_read(uint64_t offset, unsigned size) override;
  void mmio_write(uint64_t offset, uint64_t value, unsigned size) override;

  // Who is told of guest writes that need action (Queues sets itself). Null: nobody.
  void set_listener(RegisterListener* listener) { listener_.store(listener); }

  // The model's view, bypassing masks, guards and hooks.
  template <typename R>
  R read() const {
    return R::from_value(static_cast<typename R::Word>(file_.value(R::kOffset)));
  }
  template <typename R>
  void write(const R& r) {
    file_.set(R::kOffset, r.value());
  }
  uint64_t value(uint64_t offset) const { return file_.value(offset); }
  void set(uint64_t offset, uint64_t v) { file_.set(offset, v); }
  uint64_t modify(uint64_t offset, uint64_t clear, uint64_t set_bits) {
    return file_.modify(offset, clear, set_bits);
  }

  // The fields of CR0 (and CR0ACK), IRQ_CTRL (IRQ_CTRLACK) and GERROR (GERRORN) that the
  // Config implements; the others are RES0.
  uint32_t cr0_mask() const { return cr0_mask_; }
  uint32_t irq_ctrl_mask() const { return irq_ctrl_mask_; }
  uint32_t gerror_mask() const { return gerror_mask_; }
  // Bits [OAS-1:0]: what an address field stores.
  uint64_t oas_mask() const { return oas_mask_; }

  // Global errors (7.5): active while GERROR and GERRORN differ.
  uint32_t active_gerrors() const;
  // Activates those of `bits` that are inactive by toggling GERROR (an active error is not
  // toggled again, 6.3.19); returns the bits it activated. Safe from any model thread.
  uint32_t activate_gerrors(uint32_t bits);

  // Diagnostics. Guest errors: every RegisterFile access error and refused guarded write, and
  // what the model reports (an inconsistent queue index). The list keeps the first per offset.
  std::vector<RegisterFile::GuestError> guest_errors() const { return file_.guest_errors(); }
  uint64_t guest_error_count() const { return file_.guest_error_count(); }
  void clear_guest_errors() { file_.clear_guest_errors(); }
  void report_guest_error(uint64_t offset, std::string message) {
    file_.report_guest_error(offset, std::move(message));
  }
  // Features a guest used that the model does not implement, the first of each kind.
  std::vector<std::string> unimplemented() const;
  uint64_t unimplemented_count() const;
  void report_unimplemented(std::string what);

  // Every register back to its reset value (no hook runs); diagnostics are kept.
  void reset() { file_.reset(); }
  std::map<uint64_t, uint64_t> snapshot() const { return file_.snapshot(); }
  std::string dump() const { return file_.dump(); }

 private:
  Registers(const Config& config, std::string name);
  void define_all();
  RegisterListener* listener() const { return listener_.load(); }

  const Config config_;
  const std::string name_;
  const uint32_t cr0_mask_;
  const uint32_t irq_ctrl_mask_;
  const uint32_t gerror_mask_;
  const uint64_t oas_mask_;
  RegisterFile file_;
  std::atomic<RegisterListener*> listener_{nullptr};

  // Serialises the model's GERROR toggles (several model threads raise global errors).
  std::mutex gerror_mu_;

  mutable std::mutex unimp_mu_;  // protects the two below
  std::vector<std::string> unimplemented_;
  uint64_t unimplemented_count_ = 0;
};

}  // namespace strata::sim::smmuv3
