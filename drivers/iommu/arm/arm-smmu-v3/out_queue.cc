// SPDX-License-Identifier: MIT
#include "drivers/iommu/arm/arm-smmu-v3/out_queue.h"

#include "arch/cpu.h"
#include "arch/errno.h"
#include "arch/smmuv3/regs.h"

namespace strata::arm_smmu_v3 {
namespace {

namespace hw = ::strata::smmuv3;

constexpr uint32_t kOvflg = uint32_t{1} << 31;  // PROD.OVFLG and CONS.OVACKFLG: bit 31

}  // namespace

Result<Box<OutQueue>> OutQueue::create(const Config& config) {
  if (config.log2size > hw::kMaxQueueLog2Size || config.dma == nullptr) return Error(-EINVAL);
  const size_t entry = config.kind == Kind::event ? hw::kEventqEntryBytes : hw::kPriqEntryBytes;
  const size_t bytes = entry << config.log2size;
  // 6.3.29: the base is aligned to the queue size, and to at least 32 bytes.
  DmaBuffer buf = STRATA_TRY(DmaBuffer::alloc(*config.dma, bytes, bytes < 32 ? 32 : bytes));
  return make_box<OutQueue>(OutQueue(config, static_cast<DmaBuffer&&>(buf)));
}

OutQueue::OutQueue(const Config& config, DmaBuffer buf)
    : mmio_(config.regs),
      log2size_(config.log2size),
      entry_bytes_(config.kind == Kind::event ? hw::kEventqEntryBytes : hw::kPriqEntryBytes),
      coherent_(config.coherent),
      base_off_(config.kind == Kind::event ? hw::EVENTQ_BASE::kOffset : hw::PRIQ_BASE::kOffset),
      prod_off_(config.kind == Kind::event ? hw::EVENTQ_PROD::kOffset : hw::PRIQ_PROD::kOffset),
      cons_off_(config.kind == Kind::event ? hw::EVENTQ_CONS::kOffset : hw::PRIQ_CONS::kOffset),
      buf_(static_cast<DmaBuffer&&>(buf)) {}

uint64_t OutQueue::base_reg() const {
  // EVENTQ_BASE and PRIQ_BASE share their layout (QueueBaseFields). WA: write-allocate, a
  // hint that the entries are read soon by a CPU.
  return hw::EVENTQ_BASE{}
      .set<hw::EVENTQ_BASE::ADDR>(buf_.phys())
      .set<hw::EVENTQ_BASE::LOG2SIZE>(log2size_)
      .set<hw::EVENTQ_BASE::WA>(1)
      .value();
}

void OutQueue::reset() {
  mmio_.writeq_relaxed(base_reg(), base_off_);
  mmio_.writel_relaxed(0, prod_off_);
  mmio_.writel_relaxed(0, cons_off_);
  cons_ = 0;
  ovackflg_ = 0;
}

bool OutQueue::queue_empty(uint32_t prod) const { return hw::queue_empty(prod, cons_, log2size_); }

uint32_t OutQueue::advance(uint32_t cons) const { return hw::queue_advance(cons, 1, log2size_); }

void OutQueue::read_entry(uint32_t cons, uint64_t* words) const {
  const size_t off = size_t{hw::queue_index(cons, log2size_)} * entry_bytes_;
  if (!coherent_) buf_.sync_for_cpu(off, entry_bytes_);
  const auto* p = reinterpret_cast<const uint8_t*>(buf_.cpu()) + off;
  for (size_t i = 0; i < entry_bytes_ / 8; i++) words[i] = dma_read64(p + 8 * i);
}

void OutQueue::publish_cons() {
  // Every read of the consumed entries completes before the SMMU may reuse their slots.
  mb();
  mmio_.writel_relaxed(cons_ | ovackflg_, cons_off_);
}

bool OutQueue::ack_overflow(uint32_t prod) {
  if ((prod & kOvflg) == ovackflg_) return false;
  ovackflg_ = prod & kOvflg;
  mmio_.writel(cons_ | ovackflg_, cons_off_);
  return true;
}

}  // namespace strata::arm_smmu_v3
