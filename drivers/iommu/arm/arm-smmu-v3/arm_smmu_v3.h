// SPDX-License-Identifier: MIT
// The Arm SMMUv3 driver (Linux's drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c): an IommuDevice
// for the core, built from this directory's parts (features, cmdq, strtab, ste, cd-lib,
// out_queue, event, tlb_inv). Documentation/drivers/arm-smmu-v3.md is the guide; this header is
// the reference.
//
// The OS hands the driver what firmware (IORT / device tree) describes and starts it:
//
//   ArmSmmuConfig cfg{.name = "smmu0", .regs = mmio, .dma = &dma, .irq = &gic,
//                     .eventq_irq = 16, .gerror_irq = 18, .wake_thread = wake, .wake_ctx = wq};
//   Box<ArmSmmuV3> smmu = STRATA_TRY(ArmSmmuV3::probe(cfg));   // reset, enabled, registered
//   ... iommu_probe_device(dev) for each device whose fwspec names it ...
//
// Interrupts are threaded, as in Linux: the Event and PRI queue interrupts only call
// wake_thread(), from interrupt context, and the OS's thread then calls evtq_thread() or
// priq_thread(), which may sleep and report faults. The GERROR interrupt is handled in
// interrupt context (it never waits). Without wake_thread the queue interrupts are not
// requested and the OS polls the two thread functions instead. Without a GERROR interrupt the
// same handler runs in the Command queue's waiters when the SMMU stops making progress, one
// at a time (cmdq.h), so command errors are still recovered from.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include <boost/intrusive/list.hpp>
#include <boost/intrusive/set.hpp>

#include "arch/dma.h"
#include "arch/irq.h"
#include "arch/lock.h"
#include "arch/memory.h"
#include "arch/mmio.h"
#include "arch/result.h"
#include "arch/smmuv3/cd.h"
#include "arch/smmuv3/cmd.h"
#include "arch/smmuv3/ste.h"
#include "core/iommu.h"
#include "core/iopf.h"
#include "drivers/iommu/arm/arm-smmu-v3/cd_table.h"
#include "drivers/iommu/arm/arm-smmu-v3/cmdq.h"
#include "drivers/iommu/arm/arm-smmu-v3/features.h"
#include "drivers/iommu/arm/arm-smmu-v3/ids.h"
#include "drivers/iommu/arm/arm-smmu-v3/out_queue.h"
#include "drivers/iommu/arm/arm-smmu-v3/ste.h"
#include "drivers/iommu/arm/arm-smmu-v3/strtab.h"
#include "drivers/iommu/arm/arm-smmu-v3/tlb_inv.h"

namespace strata::arm_smmu_v3 {

// The threads of the threaded interrupts.
enum class ArmSmmuThread : uint8_t { evtq, priq };

// Linux's MSI_IOVA_BASE / MSI_IOVA_LENGTH: where a DMA domain maps the MSI doorbells of its
// devices (IOMMU_RESV_SW_MSI; the GIC ITS is translated by the SMMU).
inline constexpr uint64_t kMsiIovaBase = 0x0800'0000;
inline constexpr uint64_t kMsiIovaLength = 0x10'0000;

// The nested domain's data (domain_alloc_nested): the guest's STE words 0 and 1 as the guest
// wrote them into its vSMMU's stream table, little-endian, as Linux's struct
// iommu_hwpt_arm_smmuv3 (IOMMU_HWPT_DATA_ARM_SMMUV3). make_nested_ste says what is accepted.
struct ArmSmmuNestedData {
  uint64_t ste[2];  // __le64
};
static_assert(sizeof(ArmSmmuNestedData) == 16);

// hw_info: Linux's struct iommu_hw_info_arm_smmuv3 (IOMMU_HW_INFO_TYPE_ARM_SMMUV3): the ID
// registers as read, for a VMM to build its vSMMU from.
inline constexpr uint32_t IOMMU_HW_INFO_TYPE_ARM_SMMUV3 = 2;
struct IommuHwInfoArmSmmuv3 {
  uint32_t flags;
  uint32_t reserved;
  uint32_t idr[6];
  uint32_t iidr;
  uint32_t aidr;
};
static_assert(sizeof(IommuHwInfoArmSmmuv3) == 40);

struct ArmSmmuConfig {
  const char* name = "smmu";  // log prefix and IommuDevice name; must outlive the driver
  Mmio regs = {};             // register pages 0 and 1 (smmuv3::kRegisterSpaceBytes)
  DmaAllocator* dma = nullptr;
  // Interrupts: wired lines from firmware (-1: none), or MSIs when `msi` and the SMMU
  // (IDR0.MSI) and the controller can. nullptr: no interrupts at all.
  InterruptController* irq = nullptr;
  int eventq_irq = -1;
  int priq_irq = -1;
  int gerror_irq = -1;
  bool msi = false;
  // Wakes the OS thread that runs evtq_thread() / priq_thread(); from interrupt context.
  void (*wake_thread)(void* ctx, ArmSmmuThread thread) = nullptr;
  void* wake_ctx = nullptr;
  // Where page requests of devices with IommuDevFeature::iopf wait (Linux's smmu->evtq.iopf);
  // nullptr: PRI is not offered.
  IopfQueue* iopf_queue = nullptr;
  // The default domain policy (iommu_device_register).
  IommuConfig iommu = {};
  // Traffic of StreamIDs with no device attached bypasses (Linux's disable_bypass=0); by
  // default it aborts.
  bool bypass_unattached = false;
  // Queue sizes, log2 of the entries; capped at what IDR1 allows.
  unsigned cmdq_log2 = 10;
  unsigned evtq_log2 = 7;
  unsigned priq_log2 = 7;
  // How long register acknowledgements and CMD_SYNCs may take (Linux's
  // ARM_SMMU_POLL_TIMEOUT_US).
  uint64_t timeout_us = 1'000'000;
};

struct ArmSmmuCounters {
  uint64_t events = 0;             // Event queue records read
  uint64_t faults_reported = 0;    // events the core took (a handler consumed them)
  uint64_t faults_logged = 0;      // events only logged (no handler, or not a device fault)
  uint64_t evtq_overflows = 0;     // Event queue overflow acknowledged
  uint64_t page_requests = 0;      // PRI queue records read
  uint64_t priq_overflows = 0;     // PRI queue overflow acknowledged
  uint64_t page_responses = 0;     // CMD_PRI_RESP sent
  uint64_t gerrors = 0;            // GERROR handler runs (interrupt or poll) with an active error
  uint64_t ste_writes = 0;         // STE updates (each one a hitless sequence)
  uint64_t cd_writes = 0;          // CD updates
  uint64_t tlb_syncs = 0;          // invalidation batches (each ends in one CMD_SYNC)
  uint64_t atc_invalidations = 0;  // CMD_ATC_INV issued
};

class ArmSmmuV3;
class ArmSmmuDomain;
struct ArmSmmuMaster;

// One StreamID of a master, in the driver's StreamID tree (Linux's struct arm_smmu_stream).
struct ArmSmmuStream {
  boost::intrusive::set_member_hook<> node;
  uint32_t sid = 0;
  ArmSmmuMaster* master = nullptr;
};

// The key of the StreamID tree.
struct StreamKey {
  using type = uint32_t;
  uint32_t operator()(const ArmSmmuStream& s) const { return s.sid; }
};

// A master (or one of its PASIDs) attached to a domain: what the domain's invalidations reach
// (Linux's struct arm_smmu_master_domain).
struct ArmSmmuAttachment {
  boost::intrusive::list_member_hook<> node;
  ArmSmmuMaster* master = nullptr;
  ioasid_t ssid = 0;  // 0: the master's RID traffic (SubstreamID 0 / no SubstreamID)
  // On a nest parent's list: the master is attached to a nested domain over it, with ATS. Its
  // ATC holds the guest's IOVAs, which no IPA range names, so every invalidation of the parent
  // empties that ATC whole (Linux's nested_ats_flush).
  bool nested_ats_flush = false;
};

// CMD_CFGI_CD for every StreamID of a master: what its CD table's writes invalidate.
class MasterCdInvalidator final : public CdInvalidator {
 public:
  explicit MasterCdInvalidator(ArmSmmuMaster& master) : master_(master) {}
  Result<void> cfgi_cd(uint32_t ssid, bool leaf) override;

 private:
  ArmSmmuMaster& master_;
};

// The driver's per-device state (Linux's struct arm_smmu_master), in Device::iommu_priv().
// Written under the device's group mutex (attach) or the probe lock (probe, release).
struct ArmSmmuMaster {
  ArmSmmuMaster(ArmSmmuV3& s, Device& d) : smmu(s), dev(d), cd_inv(*this) {}

  ArmSmmuV3& smmu;
  Device& dev;
  ArmSmmuStream streams[IommuFwspec::kMaxIds];
  unsigned num_streams = 0;
  unsigned ssid_bits = 0;           // SubstreamID bits usable: min(device, IDR1.SSIDSIZE)
  bool ats = false;                 // PCIe ATS: STE.EATS for translating domains
  bool pri = false;                 // PCIe PRI: page requests through the PRI queue
  bool iopf_enabled = false;        // on the IopfQueue (IommuDevFeature::iopf)
  ArmSmmuDomain* domain = nullptr;  // the domain of the RID traffic (its STE), nullptr: none
  unsigned nr_pasids = 0;           // PASIDs with a domain of their own
  Box<CdTable> cd_table;            // from the first stage-1 attach until release
  MasterCdInvalidator cd_inv;
};

// A domain of this driver (Linux's struct arm_smmu_domain).
class ArmSmmuDomain final : public Domain {
 public:
  enum class Stage : uint8_t {
    s1,      // stage-1 paging: a CD (ASID) in the master's CD table
    s2,      // stage-2 paging: an S2-only STE (VMID)
    bypass,  // identity
    abort,   // blocked
    nested,  // a guest's CD table over a stage-2 parent: an S1+S2 STE
  };

  ArmSmmuDomain(ArmSmmuV3& smmu, DomainType type, Stage stage);
  ~ArmSmmuDomain() override;

  Result<void> attach_dev(Device& dev) override;
  Result<void> set_dev_pasid(Device& dev, ioasid_t pasid, Domain* old) override;
  Result<size_t> map_pages(uint64_t iova, phys_addr_t paddr, size_t pgsize, size_t pgcount,
                           int prot) override;
  Result<size_t> unmap_pages(uint64_t iova, size_t pgsize, size_t pgcount,
                             IotlbGather& gather) override;
  Result<phys_addr_t> iova_to_phys(uint64_t iova) override;
  void iotlb_sync(IotlbGather& gather) override;
  void flush_iotlb_all() override;

  Stage stage() const { return stage_; }
  uint16_t asid() const { return asid_; }  // s1
  uint16_t vmid() const { return vmid_; }  // s2; nested: the parent's
  const IoPgtableCfg& pgtbl_cfg() const { return pgtbl_cfg_; }
  const GuestSte& guest_ste() const { return guest_; }  // nested
  // Whether the master's STE for this domain enables ATS: its own ATS, and for a nested
  // domain the guest's STE.EATS too.
  bool ats_enabled(const ArmSmmuMaster& master) const;

  // Guest invalidation for a nested domain (Linux's arm_vsmmu_cache_invalidate): the guest's
  // CMD_TLBI_NH_{ALL,ASID,VA,VAA} get the parent's VMID, CMD_CFGI_CD, CMD_CFGI_CD_ALL and
  // CMD_ATC_INV the StreamID of the attached master, all followed by one CMD_SYNC. -EINVAL for
  // a command a guest may not issue, with nothing sent; -EOPNOTSUPP on another stage.
  Result<void> cache_invalidate_user(const smmuv3::Command* cmds, size_t n);

 private:
  friend class ArmSmmuV3;

  Result<void> init_paging(Device& dev, uint32_t flags);
  TlbTag tlb_tag() const;
  // Invalidates [iova, iova + size) (everything with `all`) in the TLB, then in the ATCs of the
  // attached ATS masters; `mixed`: leaves of several sizes (no TTL hint).
  void invalidate(uint64_t iova, uint64_t size, uint64_t granule, bool leaf, bool all,
                  bool mixed = false);
  // A nested domain's attachments with ATS are linked on the parent's list too.
  Result<void> add_attachment(ArmSmmuMaster& master, ioasid_t ssid);
  void remove_attachment(ArmSmmuMaster& master, ioasid_t ssid);
  Result<void> link(ArmSmmuMaster& master, ioasid_t ssid, bool nested_ats_flush);
  void unlink(ArmSmmuMaster& master, ioasid_t ssid, bool nested_ats_flush);
  static void tlb_flush_walk(uint64_t iova, size_t size, size_t granule, void* cookie);

  ArmSmmuV3& smmu_;
  const Stage stage_;
  IoPgtableCfg pgtbl_cfg_ = {};
  Box<IoPgtable> pgtbl_;
  IommuFlushOps flush_ops_ = {};
  uint16_t asid_ = 0;
  uint16_t vmid_ = 0;
  smmuv3::CD cd_;   // s1: the CD every attachment installs
  GuestSte guest_;  // nested, in CPU byte order

  // The masters and PASIDs attached (Linux's devices list, under devices_lock).
  mutable SpinLock devices_lock_;
  boost::intrusive::list<
      ArmSmmuAttachment,
      boost::intrusive::member_hook<ArmSmmuAttachment, boost::intrusive::list_member_hook<>,
                                    &ArmSmmuAttachment::node>>
      devices_;
  std::atomic<unsigned> nr_ats_attachments_{0};
};

class ArmSmmuV3 final : public IommuDevice, public StrtabInvalidator {
  struct Token {};

 public:
  // Reads the ID registers, refuses what the driver cannot use (-ENXIO, logged), allocates the
  // queues and the stream table, runs the reset sequence (SMMU_CR0 and friends, every step
  // acknowledged within the timeout: -ETIMEDOUT), connects the interrupts and registers with
  // the core. -EINVAL for a config without registers or allocator.
  static Result<Box<ArmSmmuV3>> probe(const ArmSmmuConfig& config);
  // Unregisters (every device must have been released), then disables the SMMU (GBPA abort
  // first, so that DMA aborts from then on) and frees everything.
  ~ArmSmmuV3();

  const ArmSmmuFeatures& features() const { return features_; }
  const ArmSmmuConfig& arm_config() const { return config_; }
  Cmdq& cmdq() { return *cmdq_; }
  const Strtab& strtab() const { return *strtab_; }
  ArmSmmuCounters counters() const;

  // The threaded interrupt bodies: consume the queue until it is empty. Never call one
  // concurrently with itself.
  void evtq_thread();
  void priq_thread();

  // ---- IommuDevice ops ----
  Result<void> probe_device(Device& dev) override;
  void release_device(Device& dev) override;
  Result<Box<Domain>> domain_alloc_paging(Device& dev, DomainType type, uint32_t flags) override;
  Result<Box<Domain>> domain_alloc_identity(Device& dev) override;
  Result<Box<Domain>> domain_alloc_blocked(Device& dev) override;
  Result<Box<Domain>> domain_alloc_nested(Device& dev, Domain& parent, const void* data,
                                          size_t len) override;
  Result<void> get_resv_regions(Device& dev, ReservedRegions& regions) override;
  void remove_dev_pasid(Device& dev, ioasid_t pasid, Domain& domain) override;
  Result<void> page_response(Device& dev, const IommuFaultPageRequest& last,
                             const IommuPageResponse& response) override;
  Result<size_t> hw_info(Device& dev, void* data, size_t len, uint32_t* type) override;
  Result<void> dev_enable_feat(Device& dev, IommuDevFeature feat) override;
  Result<void> dev_disable_feat(Device& dev, IommuDevFeature feat) override;
  bool capable(Device& dev, IommuCap cap) override;

  // StrtabInvalidator: CMD_CFGI_STE + CMD_SYNC.
  Result<void> cfgi_ste(uint32_t sid, bool leaf) override;

  // Implementation, public for make_box only.
  ArmSmmuV3(Token, const ArmSmmuConfig& config, const ArmSmmuFeatures& features);

 private:
  friend class ArmSmmuDomain;
  friend class MasterCdInvalidator;

  // ---- device.cc: bring-up and teardown ----
  Result<void> init_structures();
  Result<void> device_reset();
  Result<void> setup_irqs();
  void disable();
  // Whether the SMMU's table walks, structure fetches and queue accesses snoop the CPU's
  // caches: IDR0.COHACC and memory from a coherent allocator.
  bool coherent() const { return features_.coherent && config_.dma->coherent(); }
  Result<void> write_reg_sync(uint32_t value, uint32_t reg, uint32_t ack);
  Result<void> update_gbpa(uint32_t set, uint32_t clear);
  static void evtq_irq(void* ctx);
  static void priq_irq(void* ctx);
  // The GERROR interrupt's handler, and without one the Command queue's GERROR poll.
  static void gerror_irq(void* ctx);
  void handle_gerror();

  // ---- faults.cc ----
  void handle_event(const uint64_t* words);
  void handle_page_request(const uint64_t* words);
  Result<void> send_pri_resp(uint32_t sid, bool ssv, uint32_t ssid, uint32_t grpid, uint32_t code);

  // ---- master.cc: masters, streams and their STEs ----
  ArmSmmuMaster* find_master(uint32_t sid);  // under streams_lock_
  SteFeatures ste_features() const;
  // The STE the master's state asks for (its RID domain, its PASIDs).
  Result<smmuv3::STE> master_ste(const ArmSmmuMaster& master, const ArmSmmuDomain* domain,
                                 unsigned nr_pasids) const;
  // Writes `ste` to every StreamID of the master (hitless, strtab.h), all or nothing: when one
  // write fails, the StreamIDs already written and the one that failed are put back to the STEs
  // they held before (best effort; a rollback that fails too is logged) and the first error is
  // returned, so the caller may go on as if the master kept its old state.
  Result<void> install_ste(ArmSmmuMaster& master, const smmuv3::STE& ste);
  Result<CdTable*> master_cd_table(ArmSmmuMaster& master);
  Result<void> write_cd(ArmSmmuMaster& master, ioasid_t ssid, const smmuv3::CD& cd);
  void clear_cd(ArmSmmuMaster& master, ioasid_t ssid);
  // CMD_ATC_INV of everything the master's ATC holds for `ssid` (all of them: ssid == 0 and
  // `all_ssids`), then CMD_SYNC.
  void atc_inv_master(ArmSmmuMaster& master, ioasid_t ssid, bool all_ssids);
  Result<void> attach(ArmSmmuMaster& master, ArmSmmuDomain& domain);
  Result<void> attach_pasid(ArmSmmuMaster& master, ArmSmmuDomain& domain, ioasid_t pasid,
                            ArmSmmuDomain* old);
  void detach_pasid(ArmSmmuMaster& master, ArmSmmuDomain& domain, ioasid_t pasid);

  const ArmSmmuConfig config_;
  const ArmSmmuFeatures features_;
  const Mmio page0_;

  Box<Cmdq> cmdq_;
  Box<OutQueue> evtq_;
  Box<OutQueue> priq_;
  Box<Strtab> strtab_;
  Irq evtq_irq_, priq_irq_, gerror_irq_;
  bool enabled_ = false;

  IdAllocator asids_;
  IdAllocator vmids_;

  // StreamID -> master (Linux's smmu->streams, under streams_mutex): written by probe and
  // release, read by the event and PRI threads while they report, so that a device is not
  // released under a report (fault.h's rule).
  Mutex streams_lock_;
  boost::intrusive::set<
      ArmSmmuStream,
      boost::intrusive::member_hook<ArmSmmuStream, boost::intrusive::set_member_hook<>,
                                    &ArmSmmuStream::node>,
      boost::intrusive::key_of_value<StreamKey>>
      streams_;

  struct AtomicCounters {
    std::atomic<uint64_t> events{0}, faults_reported{0}, faults_logged{0}, evtq_overflows{0},
        page_requests{0}, priq_overflows{0}, page_responses{0}, gerrors{0}, ste_writes{0},
        cd_writes{0}, tlb_syncs{0}, atc_invalidations{0};
  };
  mutable AtomicCounters counters_;
};

}  // namespace strata::arm_smmu_v3
