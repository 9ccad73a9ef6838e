// SPDX-License-Identifier: MIT
// The queues the SMMU produces and software consumes: the Event queue (IHI 0070 7.2-7.4) and the
// PRI queue (chapter 8). One class, since only the entry size and the register offsets differ.
//
// Protocol (3.5): the SMMU writes entries and then moves SMMU_*_PROD (page 1); software reads
// the entries between CONS and PROD and then moves SMMU_*_CONS, which hands the slots back.
//  - Reading PROD with readl orders the entry reads after it: an entry is read only once the
//    SMMU has published it (3.5.2: the PROD update is observed after the entry write).
//  - CONS is written only after the entries have been read, with a full barrier between: once
//    the SMMU sees the slot free it may overwrite it (Linux's queue_sync_cons_out does the same).
//  - Overflow (7.4, 8.1): the SMMU toggles PROD.OVFLG when it drops entries on a full queue and
//    stops dropping only when software acknowledges by writing CONS.OVACKFLG equal to OVFLG.
//    consume() reports that entries were lost and acknowledges.
//  - When the SMMU does not snoop CPU caches, entries are invalidated before they are read.
//
// One consumer at a time (the driver's event or PRI thread); the SMMU produces concurrently.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "arch/dma.h"
#include "arch/memory.h"
#include "arch/mmio.h"
#include "arch/result.h"

namespace strata::arm_smmu_v3 {

class OutQueue {
 public:
  enum class Kind { event, pri };

  struct Config {
    Kind kind;
    Mmio regs;  // pages 0 and 1 (arch::kRegisterSpaceBytes)
    DmaAllocator* dma;
    unsigned log2size;  // entries; capped by the caller at IDR1.EVENTQS / PRIQS
    bool coherent;      // IDR0.COHACC and a coherent allocator
    const char* name;
  };

  // Allocates the queue (aligned to its size, 3.5). -ENOMEM; -EINVAL for a size above 2^19.
  static Result<Box<OutQueue>> create(const Config& config);

  // Programs *_BASE and zeroes PROD and CONS: the reset sequence, while the queue is disabled
  // (the registers are read-only while CR0.*QEN is set, 6.3.29).
  void reset();

  // What one consume() call saw.
  struct Consumed {
    unsigned entries = 0;
    bool overflowed = false;  // the SMMU dropped entries (PROD.OVFLG toggled) since the last call
  };

  // Calls `fn(const uint64_t* words)` for every entry between CONS and PROD (2 words for the
  // PRI queue, 4 for the Event queue, CPU byte order), then moves CONS past them and
  // acknowledges an overflow. Returns what it saw.
  template <typename Fn>
  Consumed consume(Fn&& fn) {
    Consumed c;
    uint32_t prod = mmio_.readl(prod_off_);
    while (!queue_empty(prod)) {
      while (!queue_empty(prod)) {
        uint64_t words[4];
        read_entry(cons_, words);
        fn(static_cast<const uint64_t*>(words));
        cons_ = advance(cons_);
        c.entries++;
      }
      // Hand the slots back before looking for more: a full queue drops entries until then.
      publish_cons();
      prod = mmio_.readl(prod_off_);
    }
    c.overflowed = ack_overflow(prod);
    return c;
  }

  uint64_t base_reg() const;
  unsigned log2size() const { return log2size_; }
  phys_addr_t phys() const { return buf_.phys(); }

 private:
  OutQueue(const Config& config, DmaBuffer buf);
  bool queue_empty(uint32_t prod) const;
  uint32_t advance(uint32_t cons) const;
  void read_entry(uint32_t cons, uint64_t* words) const;
  void publish_cons();
  bool ack_overflow(uint32_t prod);

  const Mmio mmio_;
  const unsigned log2size_;
  const size_t entry_bytes_;
  const bool coherent_;
  const uint32_t base_off_, prod_off_, cons_off_;
  DmaBuffer buf_;
  // Software's copies: RD (index and wrap) and OVACKFLG as last written.
  uint32_t cons_ = 0;
  uint32_t ovackflg_ = 0;
};

}  // namespace strata::arm_smmu_v3
