// SPDX-License-Identifier: MIT
// A register file whose behaviour is data: the base of every register-accurate model.
//
// Each register is declared once with its offset, width, spec name, reset value and masks:
//   wmask    bits software can change (a write stores them);
//   w1cmask  write-one-to-clear bits (writing 1 clears, writing 0 keeps; never set by software);
//   womask   write-only bits (reads return 0 for them, whatever is stored);
// bits in neither wmask nor w1cmask are read-only: writes leave them alone and only the model
// changes them, through set() or modify(). Side effects are explicit hooks on the register
// (CR0 -> CR0ACK, GCMD -> GSTS, a PROD doorbell starting the command queue).
//
// What a guest access does, as SMMUv3 (IHI 0070, chapter 6, "Memory map and registers") and VT-d
// (10.2 "Software access to registers") describe hardware:
//  - a 64-bit register may also be accessed as two 32-bit halves (low half at its offset, high
//    half at offset + 4); each half applies the masks to its own bits only, and the hooks see
//    the full 64-bit register before and after;
//  - a 64-bit access to a 32-bit register, or any access to an offset no register occupies (a
//    hole), reads as zero and ignores writes (RAZ/WI). The specs leave these CONSTRAINED
//    UNPREDICTABLE or reserved, so RAZ/WI is one permitted behaviour. Such an access is a
//    driver mistake, not a model bug: it is counted and recorded as a "guest error" (the first
//    one per offset in guest_errors(), every one in guest_error_count()) and logged at notice
//    level, so a test can assert that none happened without the model crashing.
// A definition mistake (overlapping registers, a mask wider than the register, a set() of an
// undefined offset) is a bug in the model itself and is a STRATA_BUG.
//
// Locking: one mutex protects the values, the hooks and the guest-error record. Hooks run
// after it is released, on the accessing thread, before the access returns. So:
//  - a hook may call anything on the file (value, set, modify, even mmio_read/mmio_write) and
//    may wait for another thread that does, without deadlock: a PROD hook can process the
//    command queue synchronously, or hand it to the model's own thread and wait;
//  - one thread's accesses and their side effects happen in program order: a driver that
//    writes CR0 and then reads CR0ACK sees the acknowledgement;
//  - hooks of accesses made concurrently by different threads may run concurrently and in
//    either order. A hook therefore protects its own model state, and acts on the register's
//    current state (value(), modify()) rather than only on the `new_value` it was given, so
//    that concurrent writers converge (a doorbell consumes up to the PROD it reads now).
// reset() and set() never run hooks: they are the model's own actions, not guest accesses.
//
// Guards: a register whose writability depends on state ("when SMMU_CR0.CMDQEN == 0 and
// SMMU_CR0ACK.CMDQEN == 0, accesses to SMMU_CMDQ_BASE are RW; otherwise RO", IHI 0070 6.3.26)
// has a guard, asked on every guest write which bits the write may change now. The guard runs
// with the file's lock held, so the check and the store are one atomic step; it sees the other
// registers through a LockedView. Bits it withholds keep their value, and a write that tried to
// change one is a guest error. A write the guard refuses entirely is IGNORED, as the specs say
// of such writes: it stores nothing and runs no write hook.
#pragma once

#include <stdint.h>

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "arch/mmio.h"

namespace strata::sim {

class RegisterFile : public RegisterModel {
 public:
  // Called after a guest write has been stored, with the whole register before and after.
  // Runs for every write that reaches the register, even one that changed nothing: command
  // registers act on the write itself (VT-d GCMD.SRTP written twice latches the root table
  // twice; a doorbell rung with the same PROD is still a ring).
  using WriteHook = std::function<void(uint64_t old_value, uint64_t new_value)>;
  // Called on a guest read with the stored value; returns what the guest reads (before the
  // write-only bits are hidden). For computed registers and read side effects.
  using ReadHook = std::function<uint64_t(uint64_t value)>;

  // The registers as a guard sees them: read-only, through the lock the guard runs under.
  class LockedView {
   public:
    // The value of the register at `offset` (a model bug if there is none).
    uint64_t value(uint64_t offset) const;

   private:
    friend class RegisterFile;
    explicit LockedView(const RegisterFile& file) : file_(file) {}
    const RegisterFile& file_;
  };
  struct GuardResult {
    uint64_t writable = ~uint64_t{0};  // bits the write may change (store or clear)
    const char* why = nullptr;         // for the guest error when some are withheld
  };
  // `value` is the register before the write and `written` what the guest wrote, placed as in
  // the register (a write of the high half of a 64-bit register has its bits in [63:32], and
  // the bits the access does not cover are zero).
  // Runs under the file's lock: it must not call the file other than through `regs`.
  using WriteGuard =
      std::function<GuardResult(const LockedView& regs, uint64_t value, uint64_t written)>;

  // Attaches hooks to a register just defined: file.define32(...).on_write(...).
  class Handle {
   public:
    Handle& on_write(WriteHook hook);
    Handle& on_read(ReadHook hook);
    Handle& guard(WriteGuard guard);
    uint64_t offset() const { return offset_; }

   private:
    friend class RegisterFile;
    Handle(RegisterFile* file, uint64_t offset) : file_(file), offset_(offset) {}
    RegisterFile* file_;
    uint64_t offset_;
  };

  struct GuestError {
    uint64_t offset;
    unsigned size;  // bytes: 4 or 8
    bool write;
    std::string message;  // "64-bit read at 0x20: 64-bit access to 32-bit register CR0 (RAZ/WI)"
  };

  // `name` prefixes guest-error messages and log lines ("smmuv3", "vtd0").
  explicit RegisterFile(std::string name = "regs");
  RegisterFile(const RegisterFile&) = delete;
  RegisterFile& operator=(const RegisterFile&) = delete;
  virtual ~RegisterFile() = default;

  // Defines a register holding `reset` until the guest or the model changes it. `offset` is
  // aligned to the width; wmask and w1cmask are disjoint.
  Handle define32(uint64_t offset, std::string name, uint32_t reset, uint32_t wmask,
                  uint32_t w1cmask = 0, uint32_t womask = 0);
  Handle define64(uint64_t offset, std::string name, uint64_t reset, uint64_t wmask,
                  uint64_t w1cmask = 0, uint64_t womask = 0);

  bool defined(uint64_t offset) const;
  std::string name(uint64_t offset) const;

  // The model's own view, bypassing masks and hooks: how it reads what the guest wrote and
  // changes read-only status bits. `offset` is a register's offset; a value wider than the
  // register is a model bug.
  uint64_t value(uint64_t offset) const;
  void set(uint64_t offset, uint64_t v);
  // Atomically clears then sets bits (value = (value & ~clear) | set_bits); returns the new
  // value. For status bits shared by several model threads, where value()+set() would race.
  uint64_t modify(uint64_t offset, uint64_t clear, uint64_t set_bits);

  // Every register back to its reset value; hooks are not run. The guest-error record is
  // diagnostics, not register state, and is kept (clear_guest_errors()).
  void reset();
  // Offset -> value of every register: two snapshots compare equal when the file is identical.
  std::map<uint64_t, uint64_t> snapshot() const;
  // One line per register, "0x0020 CR0 = 0x0000000d", in offset order.
  std::string dump() const;

  std::vector<GuestError> guest_errors() const;
  uint64_t guest_error_count() const;
  void clear_guest_errors();
  // A guest mistake the model found beyond a single access (an inconsistent queue index, an
  // illegal combination of register values), recorded and logged like an access error. The
  // message says what was wrong; `offset` names the register it concerns.
  void report_guest_error(uint64_t offset, std::string message);

  // RegisterModel: the guest's accesses (through Mmio::model).
  uint64_t mmio_read(uint64_t offset, unsigned size) override;
  void mmio_write(uint64_t offset, uint64_t value, unsigned size) override;

 private:
  struct Reg {
    std::string name;
    unsigned width;  // bytes: 4 or 8
    uint64_t reset;
    uint64_t wmask;
    uint64_t w1cmask;
    uint64_t womask;
    uint64_t value;
    WriteHook on_write;
    ReadHook on_read;
    WriteGuard guard;
  };

  // Where an access lands: the register and the bits of it the access covers.
  struct Target {
    Reg* reg = nullptr;
    unsigned shift = 0;         // 32 for the high half of a 64-bit register
    uint64_t mask = 0;          // the register's bits the access covers
    const char* why = nullptr;  // when reg is null: what makes the access a guest error
  };

  Handle define(uint64_t offset, std::string name, unsigned width, uint64_t reset, uint64_t wmask,
                uint64_t w1cmask, uint64_t womask);
  Reg& reg_locked(uint64_t offset);
  const Reg& reg_locked(uint64_t offset) const;
  Target target_locked(uint64_t offset, unsigned size);
  // Counts a guest error; returns the message if it is the first at this offset (to be logged
  // once the lock is dropped), empty otherwise.
  std::string guest_error_locked(uint64_t offset, unsigned size, bool write, uint64_t value,
                                 const char* why);
  // As guest_error_locked, with the whole message given.
  std::string record_guest_error_locked(uint64_t offset, unsigned size, bool write,
                                        std::string message);

  const std::string name_;
  mutable std::mutex mutex_;              // protects everything below
  std::map<uint64_t, Reg> regs_;          // by offset; node-based, so a Reg& stays valid
  std::vector<GuestError> guest_errors_;  // the first per offset
  uint64_t guest_error_count_ = 0;        // every one
};

}  // namespace strata::sim
