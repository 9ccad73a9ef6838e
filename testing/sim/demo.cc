// SPDX-License-Identifier: MIT
#include "testing/sim/demo.h"

#include <fmt/format.h>
#include <string.h>

#include <iterator>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "arch/endian.h"
#include "arch/smmuv3/cmd.h"
#include "arch/smmuv3/event.h"
#include "arch/smmuv3/regs.h"
#include "arch/smmuv3/ste.h"
#include "core/iommu.h"
#include "drivers/iommu/arm/arm-smmu-v3/arm_smmu_v3.h"
#include "drivers/iommu/arm/arm-smmu-v3/features.h"
#include "testing/hosted/hosted.h"
#include "testing/sim/arm_system.h"
#include "testing/sim/fault_log.h"
#include "testing/sim/guest.h"

namespace strata::sim {
namespace {

namespace hw = ::strata::smmuv3;
using arm_smmu_v3::ArmSmmuCounters;
using arm_smmu_v3::ArmSmmuDomain;
using smmuv3::Smmuv3Counters;

// The scenario's addresses: two 8 KiB guest buffers in one 2M block of guest RAM, and the IOVAs
// the guest maps them at.
constexpr phys_addr_t kSrcGpa = Guest::kGpa + (8 << 20);
constexpr phys_addr_t kDstGpa = Guest::kGpa + (9 << 20);
constexpr uint64_t kSrcIova = 0x10'0000'0000;
constexpr uint64_t kDstIova = 0x20'0000'0000;
constexpr uint64_t kLen = 2 * SZ_4K;
constexpr int kRw = IOMMU_READ | IOMMU_WRITE;

// Collects the account and remembers whether any check failed.
class Transcript {
 public:
  template <typename... Args>
  void say(fmt::format_string<Args...> f, Args&&... args) {
    fmt::format_to(std::back_inserter(text_), f, std::forward<Args>(args)...);
    text_ += '\n';
  }
  void section(std::string_view title) { say("\n== {}", title); }
  // A check of what the account claims; a failed one is marked and fails the demo.
  bool expect(bool ok, std::string_view what) {
    if (!ok) {
      say("  !! unexpected: {}", what);
      ok_ = false;
    }
    return ok;
  }
  void fail(std::string_view what) { expect(false, what); }
  bool ok() const { return ok_; }
  std::string take() { return std::move(text_); }

 private:
  std::string text_;
  bool ok_ = true;
};

// Evaluates `expr`, a Result; on an error, marks the step failed in the account and returns it.
#define DEMO_TRY(t, what, expr)                                        \
  ({                                                                   \
    auto demo_try_result_ = (expr);                                    \
    if (!demo_try_result_.ok()) {                                      \
      (t).fail(fmt::format("{}: {}", what, demo_try_result_.error())); \
      return demo_try_result_.error();                                 \
    }                                                                  \
    demo_try_result_.release_value();                                  \
  })

// The fields of a register or descriptor that are not zero, by their spec names:
// "V Config=0x7 S1ContextPtr=0x80001000". A command's opcode and an event's type are left to
// the caller, which prints them by name.
template <typename D>
std::string fields(const D& d) {
  std::string out;
  D::Fields::for_each([&]<typename F>() {
    const uint64_t v = d.template get<F>();
    const std::string_view name = F::kName;
    if (v == 0 || name == "Opcode" || name == "Type") return;
    if (!out.empty()) out += ' ';
    out += name;
    if (F::kWidth > 1 || F::kKind == reg::Kind::address) out += fmt::format("={:#x}", v);
  });
  return out;
}

// Words [from, from + n) of a descriptor in hex, in CPU byte order.
template <typename D>
std::string words(const D& d, size_t from = 0, size_t n = D::kWords) {
  std::string out;
  for (size_t i = from; i < from + n; i++)
    out += fmt::format("{}{:#018x}", i > from ? " " : "", d.word(i));
  return out;
}

// Reads a descriptor out of simulated memory, as the SMMU would (zeros where nothing answers).
template <typename D>
D read_descriptor(PhysMem& mem, phys_addr_t pa) {
  D d;
  for (size_t i = 0; i < D::kWords; i++) {
    auto w = mem.read64(pa + i * 8);
    d.set_word(i, w.ok() ? *w : 0);
  }
  return d;
}

// The commands of each opcode the SMMU executed between two snapshots of its counters, as
// "CMD_CFGI_STE x1, CMD_SYNC x1"; their number in `total`.
std::string by_opcode(const Smmuv3Counters& from, const Smmuv3Counters& to, uint64_t& total) {
  std::string out;
  total = 0;
  for (unsigned op = 0; op < to.commands.size(); op++) {
    const uint64_t n = to.commands[op] - from.commands[op];
    if (n == 0) continue;
    total += n;
    const char* name = hw::opcode_name(static_cast<uint8_t>(op));
    out += fmt::format("{}{} x{}", out.empty() ? "" : ", ", name ? name : "?", n);
  }
  return out.empty() ? "none" : out;
}

// A command by name, its words, and the fields its layout declares.
std::string describe_command(const hw::Command& c) {
  const uint8_t op = c.opcode();
  const char* name = hw::opcode_name(op);
  std::string f;
  switch (static_cast<hw::Opcode>(op)) {
    case hw::Opcode::CMD_CFGI_STE: f = fields(hw::descriptor_cast<hw::CmdCfgiSte>(c)); break;
    case hw::Opcode::CMD_CFGI_STE_RANGE:
      f = fields(hw::descriptor_cast<hw::CmdCfgiSteRange>(c));
      break;
    case hw::Opcode::CMD_CFGI_CD: f = fields(hw::descriptor_cast<hw::CmdCfgiCd>(c)); break;
    case hw::Opcode::CMD_CFGI_CD_ALL: f = fields(hw::descriptor_cast<hw::CmdCfgiCdAll>(c)); break;
    case hw::Opcode::CMD_SYNC: f = fields(hw::descriptor_cast<hw::CmdSync>(c)); break;
    case hw::Opcode::CMD_ATC_INV: f = fields(hw::descriptor_cast<hw::CmdAtcInv>(c)); break;
    default:
      if (op >= static_cast<uint8_t>(hw::Opcode::CMD_TLBI_NH_ALL) &&
          op <= static_cast<uint8_t>(hw::Opcode::CMD_TLBI_NSNH_ALL))
        f = fields(hw::descriptor_cast<hw::CmdTlbi>(c));
      break;
  }
  return fmt::format("{:<18} {}  {{{}}}", name ? name : fmt::format("opcode {:#x}", op), words(c),
                     f);
}

// An Event queue record by name, its words and fields, and what it says.
std::string describe_event(const hw::EventRecord& e) {
  const char* name = hw::event_name(e.type());
  switch (static_cast<hw::EventType>(e.type())) {
    case hw::EventType::F_TRANSLATION:
    case hw::EventType::F_ADDR_SIZE:
    case hw::EventType::F_ACCESS:
    case hw::EventType::F_PERMISSION: {
      using R = hw::TranslationFaultRecord;
      const R r = hw::descriptor_cast<R>(e);
      const uint64_t cls = r.get<R::CLASS>();
      return fmt::format("{} {}\n      {{{}}}\n      stage {}, CLASS {}, {}", name, words(r),
                         fields(r), r.get<R::S2>() ? 2 : 1,
                         cls == hw::kClassCd   ? "CD (fetching the CD)"
                         : cls == hw::kClassTt ? "TT (fetching a stage-1 descriptor)"
                                               : "IN (the input address)",
                         r.get<R::RnW>() ? "read" : "write");
    }
    default: return fmt::format("{} {}\n      {{{}}}", name ? name : "?", words(e), fields(e));
  }
}

const char* fault_reason_name(uint32_t reason) {
  switch (reason) {
    case IOMMU_FAULT_REASON_PASID_FETCH: return "IOMMU_FAULT_REASON_PASID_FETCH";
    case IOMMU_FAULT_REASON_BAD_PASID_ENTRY: return "IOMMU_FAULT_REASON_BAD_PASID_ENTRY";
    case IOMMU_FAULT_REASON_PASID_INVALID: return "IOMMU_FAULT_REASON_PASID_INVALID";
    case IOMMU_FAULT_REASON_WALK_EABT: return "IOMMU_FAULT_REASON_WALK_EABT";
    case IOMMU_FAULT_REASON_PTE_FETCH: return "IOMMU_FAULT_REASON_PTE_FETCH";
    case IOMMU_FAULT_REASON_PERMISSION: return "IOMMU_FAULT_REASON_PERMISSION";
    case IOMMU_FAULT_REASON_ACCESS: return "IOMMU_FAULT_REASON_ACCESS";
    case IOMMU_FAULT_REASON_OOR_ADDRESS: return "IOMMU_FAULT_REASON_OOR_ADDRESS";
    default: return "IOMMU_FAULT_REASON_UNKNOWN";
  }
}

// An unrecoverable fault as the core delivered it (IommuFaultUnrecoverable).
std::string describe_fault(const IommuFault& f) {
  if (f.type != IOMMU_FAULT_DMA_UNRECOV) return fmt::format("fault type {}", f.type);
  const IommuFaultUnrecoverable& e = f.event;
  std::string flags;
  auto flag = [&](uint32_t bit, const char* name) {
    if (e.flags & bit) flags += fmt::format("{}{}", flags.empty() ? "" : "|", name);
  };
  flag(IOMMU_FAULT_UNRECOV_PASID_VALID, "PASID_VALID");
  flag(IOMMU_FAULT_UNRECOV_ADDR_VALID, "ADDR_VALID");
  flag(IOMMU_FAULT_UNRECOV_FETCH_ADDR_VALID, "FETCH_ADDR_VALID");
  std::string perm;
  if (e.perm & IOMMU_FAULT_PERM_READ) perm += 'R';
  if (e.perm & IOMMU_FAULT_PERM_WRITE) perm += 'W';
  if (e.perm & IOMMU_FAULT_PERM_EXEC) perm += 'X';
  if (e.perm & IOMMU_FAULT_PERM_PRIV) perm += 'P';
  return fmt::format("IOMMU_FAULT_DMA_UNRECOV {} addr {:#x} perm {} flags {}{}",
                     fault_reason_name(e.reason), e.addr, perm.empty() ? "-" : perm,
                     flags.empty() ? "0" : flags,
                     (e.flags & IOMMU_FAULT_UNRECOV_PASID_VALID)
                         ? fmt::format(" pasid {}", e.pasid)
                         : std::string(" (no PASID: the stream has no SubstreamID)"));
}

std::string page_sizes(uint64_t bitmap) {
  std::string out;
  for (unsigned b = 12; b < 64; b++) {
    if (!(bitmap & (uint64_t{1} << b))) continue;
    const char* unit = b >= 30 ? "G" : b >= 20 ? "M" : "K";
    out += fmt::format("{}{}{}", out.empty() ? "" : " ", uint64_t{1} << (b - b / 10 * 10), unit);
  }
  return out;
}

// TG0 / S2TG, and IPS / S2PS, as the numbers they encode.
const char* granule(unsigned tg) {
  return tg == 0 ? "4K" : tg == 1 ? "64K" : tg == 2 ? "16K" : "?";
}
unsigned addr_bits(unsigned ps) { return arm_smmu_v3::arm_smmu_addr_size_bits(ps); }

// A circular queue as its BASE register describes it; positions are PROD/CONS values (index
// and wrap bit).
struct QueueView {
  phys_addr_t base = 0;
  unsigned log2 = 0;
  size_t entry_bytes = 0;
  phys_addr_t slot_pa(uint32_t pos) const { return base + index(pos) * entry_bytes; }
  uint32_t index(uint32_t pos) const { return pos & ((1u << log2) - 1); }
  uint32_t next(uint32_t pos) const { return (pos + 1) & ((2u << log2) - 1); }
};

// What the steps share: the system, the account, and the state at the start of the step.
struct Demo {
  Transcript& t;
  ArmSystem& sys;
  DemoReport& report;
  Mmio regs;
  QueueView cmdq, evtq;
  Smmuv3Counters before;
  ArmSmmuCounters driver_before;
  uint32_t cmdq_prod = 0, evtq_prod = 0;

  Demo(Transcript& tr, ArmSystem& s, DemoReport& r)
      : t(tr), sys(s), report(r), regs(s.platform().smmu_mmio()) {
    const auto cq = hw::CMDQ_BASE::read_from(regs);
    const auto eq = hw::EVENTQ_BASE::read_from(regs);
    cmdq = {.base = cq.get<hw::CMDQ_BASE::ADDR>(),
            .log2 = static_cast<unsigned>(cq.get<hw::CMDQ_BASE::LOG2SIZE>()),
            .entry_bytes = sizeof(hw::Command)};
    evtq = {.base = eq.get<hw::EVENTQ_BASE::ADDR>(),
            .log2 = static_cast<unsigned>(eq.get<hw::EVENTQ_BASE::LOG2SIZE>()),
            .entry_bytes = sizeof(hw::EventRecord)};
    begin();
  }

  uint32_t read_cmdq_prod() const {
    return static_cast<uint32_t>(hw::CMDQ_PROD::read_from(regs).get<hw::CMDQ_PROD::WR>());
  }
  uint32_t read_evtq_prod() const {
    return static_cast<uint32_t>(hw::EVENTQ_PROD::read_from(regs).get<hw::EVENTQ_PROD::WR>());
  }

  // A step starts: what it issues and what the SMMU does are counted from here.
  void begin() {
    before = sys.model().counters();
    driver_before = sys.smmu().counters();
    cmdq_prod = read_cmdq_prod();
    evtq_prod = read_evtq_prod();
  }

  // The commands the driver queued since begin(), read back from the Command queue's memory,
  // and the model's count of those it executed, checked against each other.
  void commands(bool list = true) {
    uint64_t executed = 0;
    t.say("  SMMU executed: {}", by_opcode(before, sys.model().counters(), executed));
    const ArmSmmuCounters now = sys.smmu().counters();
    if (now.ste_writes != driver_before.ste_writes || now.cd_writes != driver_before.cd_writes)
      t.say("  arm-smmu-v3 counters: ste_writes +{}, cd_writes +{}",
            now.ste_writes - driver_before.ste_writes, now.cd_writes - driver_before.cd_writes);
    const uint32_t prod = read_cmdq_prod();
    uint64_t queued = 0;
    for (uint32_t p = cmdq_prod; p != prod; p = cmdq.next(p), queued++) {
      if (!list) continue;
      const auto c = read_descriptor<hw::Command>(sys.platform().mem(), cmdq.slot_pa(p));
      const auto sync = hw::descriptor_cast<hw::CmdSync>(c);
      if (c.word(0) == 0 && sync.get<hw::CmdSync::MSIAddress>() == cmdq.slot_pa(p))
        // Linux's scheme: a CMD_SYNC's MSI targets its own slot and the CPU polls for MSIData
        // (0) to land over the opcode word, so a completed one reads back like this.
        t.say(
            "    CMDQ[{:#05x}] {:<18} {}  {{MSIAddress={:#x}: its own slot, MSIData 0 written "
            "on completion}}",
            cmdq.index(p), "CMD_SYNC", words(c), cmdq.slot_pa(p));
      else
        t.say("    CMDQ[{:#05x}] {}", cmdq.index(p), describe_command(c));
    }
    t.expect(queued == executed, "the SMMU did not execute exactly what the driver queued");
  }

  // The Event queue records the SMMU wrote since begin(), read back from memory once the
  // driver's event thread has consumed them.
  void events() {
    sys.flush_events();
    const uint32_t prod = read_evtq_prod();
    for (uint32_t p = evtq_prod; p != prod; p = evtq.next(p))
      t.say(
          "  EVENTQ[{:#04x}] {}", evtq.index(p),
          describe_event(read_descriptor<hw::EventRecord>(sys.platform().mem(), evtq.slot_pa(p))));
  }

  // The model's translation counters since begin().
  Smmuv3Counters traffic() {
    const Smmuv3Counters now = sys.model().counters();
    t.say(
        "  SMMU: {} translations, TLB {} hits / {} misses, {} walks, config cache {} hits / {} "
        "misses, {} events",
        now.translations - before.translations, now.tlb_hits - before.tlb_hits,
        now.tlb_misses - before.tlb_misses, now.walks - before.walks,
        now.config_hits - before.config_hits, now.config_misses - before.config_misses,
        now.events - before.events);
    return now;
  }

  // The faults the handler received since the last call.
  std::vector<IommuFault> faults(FaultLog& log) {
    sys.flush_events();
    std::vector<IommuFault> f = log.take();
    for (const IommuFault& one : f) t.say("  fault handler: {}", describe_fault(one));
    report.faults_delivered += f.size();
    return f;
  }

  Result<hw::STE> ste(uint32_t sid) { return sys.smmu().strtab().read_ste(sid); }

  void print_ste(uint32_t sid, const hw::STE& s) {
    t.say("  STE[{:#x}] {}", sid, words(s, 0, 4));
    t.say("            {}", words(s, 4, 4));
    t.say("    {{{}}}", fields(s));
  }

  void dma_result(std::string_view what, const dma_engine::JobResult& r) {
    if (r.ok())
      t.say("{}: {}: done, {} bytes", sys.engine(0).name(), what, r.done);
    else
      t.say("{}: {}: FAULT on a {} at {:#x}, {} bytes done", sys.engine(0).name(), what,
            r.fault_write ? "write" : "read", r.fault_addr, r.done);
  }
};

// Scope guards for the failure paths; each undoes its step unless the demo did already.
// The group claimed for a user, as VFIO does.
struct DmaOwner {
  Group* group = nullptr;
  int cookie = 0;
  DmaOwner() = default;
  DmaOwner(const DmaOwner&) = delete;
  DmaOwner& operator=(const DmaOwner&) = delete;
  void release() {
    if (group) iommu_group_release_dma_owner(*group);
    group = nullptr;
  }
  ~DmaOwner() { release(); }
};

// A domain attached to the group.
struct Attachment {
  Domain* domain = nullptr;
  Group* group = nullptr;
  Attachment() = default;
  Attachment(const Attachment&) = delete;
  Attachment& operator=(const Attachment&) = delete;
  void detach() {
    if (domain) iommu_detach_group(*domain, *group);
    domain = nullptr;
  }
  ~Attachment() { detach(); }
};

// The device's fault handler.
struct FaultHandler {
  Device* dev = nullptr;
  FaultHandler() = default;
  FaultHandler(const FaultHandler&) = delete;
  FaultHandler& operator=(const FaultHandler&) = delete;
  ~FaultHandler() {
    if (dev) (void)iommu_unregister_device_fault_handler(*dev);
  }
};

void platform(Demo& d) {
  Transcript& t = d.t;
  t.section("platform");
  std::string desc = d.sys.platform().describe();
  if (!desc.empty() && desc.back() == '\n') desc.pop_back();
  t.say("{}", desc);

  const arm_smmu_v3::ArmSmmuFeatures& f = d.sys.smmu().features();
  t.say("arm-smmu-v3 {}: SMMUv3.{} (AIDR), features from IDR0-5:", d.sys.smmu().arm_config().name,
        f.arch_minor);
  t.say(
      "  IDR0: S1P {} S2P {} ({}), ASID16 {} VMID16 {}, ST_LEVEL {}, CD2L {}, COHACC {}, "
      "HTTU {}, ATS {} PRI {} MSI {}, STALL_MODEL {}",
      int{f.trans_s1}, int{f.trans_s2}, f.nesting ? "nesting" : "no nesting",
      int{f.asid_bits == 16}, int{f.vmid_bits == 16}, f.two_level_strtab ? "2-level" : "linear",
      int{f.two_level_cdtab}, int{f.coherent},
      f.hw_dirty    ? "access+dirty"
      : f.hw_access ? "access"
                    : "none",
      int{f.ats}, int{f.pri}, int{f.msi}, f.stalls ? "stall+terminate" : "terminate");
  t.say("  IDR1: SIDSIZE {}, SSIDSIZE {}, CMDQS {}, EVENTQS {}, PRIQS {}", f.sid_bits, f.ssid_bits,
        f.cmdq_shift, f.evtq_shift, f.priq_shift);
  t.say("  IDR3: RIL {} FWB {} BBML {}; IDR5: OAS {} bits, VAX {} bits, granules and blocks {}",
        int{f.range_inv}, int{f.fwb}, f.bbml, f.oas, f.va_bits, page_sizes(f.pgsize_bitmap));
  t.say("  {}", hw::CR0ACK::read_from(d.regs));
  t.say("  {}", hw::STRTAB_BASE_CFG::read_from(d.regs));
  t.say("  {}", hw::CMDQ_BASE::read_from(d.regs));
  t.say("  {}", hw::EVENTQ_BASE::read_from(d.regs));
  uint64_t total = 0;
  const std::string probe = by_opcode(Smmuv3Counters{}, d.sys.model().counters(), total);
  t.say("probe and {}'s default domain: {} commands: {}", d.sys.engine_dev(0).name(), total, probe);
  t.expect(f.nesting, "the SMMU cannot nest");
}

Result<void> run_nested(Demo& d, hosted::LogCapture& logs, size_t& expected_log_lines) {
  Transcript& t = d.t;
  ArmSystem& sys = d.sys;
  ArmPlatform& p = sys.platform();
  Device& dev = sys.engine_dev(0);
  dma_engine::DmaTestEngine& engine = sys.engine(0);
  const uint32_t sid = p.engine_stream_id(0);

  // Destroyed in reverse: detach, then the domains, the guest's RAM, the ownership, the handler.
  FaultLog log;
  FaultHandler handler;
  DmaOwner owner;
  std::unique_ptr<Guest> guest;
  Box<Domain> s2, nested;
  Attachment attached;

  // ---- The device goes to the VMM.
  t.section("host: the device's group goes to user space (VFIO)");
  d.begin();
  DEMO_TRY(t, "iommu_register_device_fault_handler",
           iommu_register_device_fault_handler(dev, &FaultLog::handler, &log));
  handler.dev = &dev;
  DEMO_TRY(t, "iommu_group_claim_dma_owner",
           iommu_group_claim_dma_owner(*dev.group(), &owner.cookie));
  owner.group = dev.group();
  hw::STE ste = DEMO_TRY(t, "read_ste", d.ste(sid));
  t.say("iommu_register_device_fault_handler({}): its faults go to the VMM", dev.name());
  t.say(
      "iommu_group_claim_dma_owner(group {}): DMA domain detached, STE[{:#x}] Config {:#05b} "
      "(abort)",
      owner.group->id(), sid, ste.get<hw::STE::Config>());
  t.expect(ste.get<hw::STE::Config>() == hw::kConfigAbort, "a user-owned group's STE translates");
  d.commands();

  // ---- Stage 2.
  t.section("host: stage 2 for the guest (nest parent)");
  d.begin();
  guest = DEMO_TRY(t, "Guest::create", Guest::create(p));
  s2 = DEMO_TRY(t, "iommu_paging_domain_alloc",
                iommu_paging_domain_alloc(dev, IOMMU_DOMAIN_ALLOC_NEST_PARENT));
  auto& s2_arm = static_cast<ArmSmmuDomain&>(*s2);
  const auto& s2c = s2_arm.pgtbl_cfg().arm_lpae_s2;
  t.say("iommu_paging_domain_alloc(IOMMU_DOMAIN_ALLOC_NEST_PARENT): stage 2, VMID {}",
        s2_arm.vmid());
  t.say(
      "  io-pgtable arm_64_lpae_s2: S2TTB {:#x} S2T0SZ {} ({}-bit IPA) S2SL0 {} S2TG {} ({}) "
      "S2PS {} ({}-bit PA)",
      s2c.vttbr, s2c.t0sz, 64 - s2c.t0sz, s2c.sl0, s2c.tg, granule(s2c.tg), s2c.ps,
      addr_bits(s2c.ps));
  t.expect(s2_arm.stage() == ArmSmmuDomain::Stage::s2 && s2_arm.vmid() != 0,
           "a nest parent is not a stage-2 domain with a VMID");
  DEMO_TRY(t, "iommu_map", iommu_map(*s2, Guest::kGpa, guest->ram_hpa(), Guest::kSize, kRw));
  t.say("iommu_map(IPA {:#x}..{:#x} -> PA {:#x}..{:#x}, RW): the guest's RAM, 2M blocks",
        Guest::kGpa, Guest::kGpa + Guest::kSize - 1, guest->ram_hpa(),
        guest->ram_hpa() + Guest::kSize - 1);
  d.commands();

  // ---- The guest's stage 1.
  t.section("guest: stage 1 in its own RAM (every pointer an IPA)");
  const auto& s1c = guest->pgtbl_cfg().arm_lpae_s1;
  t.say(
      "io-pgtable arm_64_lpae_s1: TTB0 {:#x} (IPA) T0SZ {} TG0 {} ({}) IPS {} ({}-bit IPA) "
      "MAIR {:#x}",
      s1c.ttbr, s1c.t0sz, s1c.tg0, granule(s1c.tg0), s1c.ips, addr_bits(s1c.ips), s1c.mair);
  const hw::CD& cd = guest->cd();
  t.say("CD at IPA {:#x} (PA {:#x}), words 0-3: {}", guest->cd_ipa(),
        guest->mem().to_hpa(guest->cd_ipa()), words(cd, 0, 4));
  t.say("  {{{}}}", fields(cd));
  t.expect(cd.get<hw::CD::TTB0>() == s1c.ttbr && cd.get<hw::CD::ASID>() == Guest::kAsid,
           "the CD does not hold the guest's table and ASID");
  const arm_smmu_v3::ArmSmmuNestedData& gste = guest->ste();
  hw::STE gs;
  gs.set_word(0, le64_to_cpu(gste.ste[0])).set_word(1, le64_to_cpu(gste.ste[1]));
  t.say("STE words 0-1 for its vSMMU's stream table: {}", words(gs, 0, 2));
  t.say("  {{{}}}", fields(gs));
  DEMO_TRY(t, "Guest::map", guest->map(kSrcIova, kSrcGpa, kLen, kRw));
  DEMO_TRY(t, "Guest::map", guest->map(kDstIova, kDstGpa, kLen, kRw));
  t.say("map IOVA {:#x} -> IPA {:#x} and IOVA {:#x} -> IPA {:#x}, 2 x 4K each, RW", kSrcIova,
        kSrcGpa, kDstIova, kDstGpa);
  uint8_t* const src = guest->host_ptr(kSrcGpa);
  uint8_t* const dst = guest->host_ptr(kDstGpa);
  for (unsigned i = 0; i < kLen; i++) src[i] = static_cast<uint8_t>(i ^ 0x5c);
  memset(dst, 0, kLen);

  // ---- The nested STE.
  t.section("host: nested domain from the guest's STE, attached");
  d.begin();
  nested = DEMO_TRY(t, "iommu_domain_alloc_nested",
                    iommu_domain_alloc_nested(dev, *s2, &gste, sizeof(gste)));
  auto& nested_arm = static_cast<ArmSmmuDomain&>(*nested);
  DEMO_TRY(t, "iommu_attach_group", iommu_attach_group(*nested, *owner.group));
  attached.domain = nested.get();
  attached.group = owner.group;
  ste = DEMO_TRY(t, "read_ste", d.ste(sid));
  t.say(
      "iommu_domain_alloc_nested(parent VMID {}, guest STE) + iommu_attach_group; the STE "
      "read back:",
      nested_arm.vmid());
  d.print_ste(sid, ste);
  t.say(
      "  Config {:#05b} (S1+S2), S1ContextPtr {:#x} (the guest's CD, an IPA), S2VMID {}, "
      "S2TTB {:#x}",
      ste.get<hw::STE::Config>(), ste.get<hw::STE::S1ContextPtr>(), ste.get<hw::STE::S2VMID>(),
      ste.get<hw::STE::S2TTB>());
  t.expect(ste.get<hw::STE::Config>() == hw::kConfigNested &&
               ste.get<hw::STE::S1ContextPtr>() == guest->cd_ipa() &&
               ste.get<hw::STE::S2VMID>() == s2_arm.vmid() &&
               ste.get<hw::STE::S2TTB>() == s2c.vttbr,
           "the installed STE is not the nested STE of the guest's CD and the host's stage 2");
  d.commands();

  // ---- DMA through both stages.
  t.section("DMA through both stages");
  d.begin();
  auto res = engine.copy(kSrcIova, kDstIova, kLen);
  d.dma_result(fmt::format("copy IOVA {:#x} -> {:#x}, {} bytes", kSrcIova, kDstIova, kLen), res);
  t.expect(res.ok() && res.done == kLen, "the copy did not complete");
  t.say("  IOVA -> IPA (the guest's io-pgtable) -> PA (the parent's iova_to_phys):");
  for (uint64_t iova : {kSrcIova, kSrcIova + SZ_4K, kDstIova, kDstIova + SZ_4K}) {
    auto ipa = guest->pgtbl().iova_to_phys(iova);
    auto pa = ipa.ok() ? iommu_iova_to_phys(*s2, *ipa) : Result<phys_addr_t>(ipa.error());
    t.say("    {:#x} -> {:#x} -> {:#x}", iova, ipa.ok() ? *ipa : 0, pa.ok() ? *pa : 0);
    t.expect(pa.ok() && *pa == guest->mem().to_hpa(*ipa), "the stages disagree with the maps");
  }
  const bool same = memcmp(src, dst, kLen) == 0;
  t.say("  PA {:#x}..{:#x} {} PA {:#x}..{:#x}", guest->mem().to_hpa(kDstGpa),
        guest->mem().to_hpa(kDstGpa) + kLen - 1, same ? "equals" : "DIFFERS FROM",
        guest->mem().to_hpa(kSrcGpa), guest->mem().to_hpa(kSrcGpa) + kLen - 1);
  t.expect(same, "the copy did not land where both stages say");
  d.traffic();
  d.begin();
  res = engine.copy(kSrcIova, kDstIova, kLen);
  d.dma_result("again", res);
  t.expect(res.ok(), "the second copy failed");
  const Smmuv3Counters warm = d.traffic();
  t.expect(warm.tlb_hits - d.before.tlb_hits == 4, "the second copy was not served by the TLB");

  // ---- The guest unmaps and invalidates.
  t.section("guest: unmap, then invalidate through its vSMMU");
  d.begin();
  t.say("unmap IOVA {:#x}..{:#x} from its stage 1, then CMD_TLBI_NH_ASID", kDstIova,
        kDstIova + kLen - 1);
  auto vsmmu_cmdq = [&](const hw::Command* cmds, size_t n) {
    for (size_t i = 0; i < n; i++) t.say("  vSMMU CMDQ: {}", describe_command(cmds[i]));
    t.say("  -> VMM -> cache_invalidate_user(nested domain): VMID {} and a CMD_SYNC added",
          nested_arm.vmid());
    return nested_arm.cache_invalidate_user(cmds, n);
  };
  DEMO_TRY(t, "Guest::unmap", guest->unmap(kDstIova, kLen, vsmmu_cmdq));
  d.commands();
  const Smmuv3Counters inv = sys.model().counters();
  t.say("  SMMU: {} TLB entries invalidated (ASID {}, VMID {}: both buffers)",
        inv.tlb_invalidated - d.before.tlb_invalidated, Guest::kAsid, s2_arm.vmid());
  t.expect(inv.command(hw::Opcode::CMD_TLBI_NH_ASID) ==
               d.before.command(hw::Opcode::CMD_TLBI_NH_ASID) + 1,
           "no CMD_TLBI_NH_ASID reached the SMMU");

  // ---- A DMA to the unmapped IOVA faults.
  t.section("DMA to the unmapped IOVA: fault");
  d.begin();
  memset(dst, 0, kLen);
  res = engine.copy(kSrcIova, kDstIova, SZ_4K);
  d.dma_result(fmt::format("copy IOVA {:#x} -> {:#x}, 4096 bytes", kSrcIova, kDstIova), res);
  t.expect(!res.ok() && res.fault_write && res.fault_addr == kDstIova,
           "the write to the unmapped IOVA did not fault");
  t.expect(dst[0] == 0, "the faulting DMA wrote to guest memory");
  d.events();
  std::vector<IommuFault> faults = d.faults(log);
  d.traffic();
  t.expect(faults.size() == 1 && faults[0].type == IOMMU_FAULT_DMA_UNRECOV &&
               faults[0].event.reason == IOMMU_FAULT_REASON_PTE_FETCH &&
               faults[0].event.addr == kDstIova &&
               (faults[0].event.perm & IOMMU_FAULT_PERM_WRITE) &&
               (faults[0].event.flags & IOMMU_FAULT_UNRECOV_ADDR_VALID) &&
               !(faults[0].event.flags & IOMMU_FAULT_UNRECOV_PASID_VALID),
           "the core did not deliver one write translation fault at the IOVA, without PASID");

  // ---- A command the guest may not send.
  t.section("guest: a command outside its remit");
  d.begin();
  const size_t log_mark = logs.lines().size();
  const hw::Command bad[2] = {
      guest->tlbi_nh_asid(),
      hw::descriptor_cast<hw::Command>(hw::CmdTlbi::make(hw::Opcode::CMD_TLBI_NSNH_ALL))};
  auto refused = nested_arm.cache_invalidate_user(bad, 2);
  t.say("cache_invalidate_user(CMD_TLBI_NH_ASID, CMD_TLBI_NSNH_ALL): {}",
        refused.ok() ? "accepted" : fmt::format("{}", refused.error()));
  const auto lines = logs.lines();
  for (size_t i = log_mark; i < lines.size(); i++) {
    t.say("  driver log <{}>: {}", lines[i].level, lines[i].text);
    expected_log_lines += lines[i].level <= 4;
  }
  t.expect(!refused.ok() && refused.error().code() == -EINVAL,
           "a guest's CMD_TLBI_NSNH_ALL was accepted");
  if (!refused.ok()) d.report.guest_commands_refused++;
  d.commands();

  // ---- The host takes memory back from stage 2.
  t.section("host: a 2M block of guest RAM leaves stage 2 under the live stream");
  d.begin();
  // The block that holds the buffers goes (a balloon inflating, memory unplugged). The SMMU
  // holds a combined stage 1+2 entry for kSrcIova from the faulting copy's read, tagged with
  // ASID and VMID: CMD_TLBI_S2_IPA need not remove it, CMD_TLBI_NH_ALL of the VMID does.
  const phys_addr_t reclaimed = kSrcGpa & ~(SZ_2M - 1);
  const size_t unmapped = DEMO_TRY(t, "iommu_unmap", iommu_unmap(*s2, reclaimed, SZ_2M));
  t.say("iommu_unmap(stage 2, IPA {:#x}..{:#x}): {:#x} bytes", reclaimed, reclaimed + SZ_2M - 1,
        unmapped);
  t.expect(unmapped == SZ_2M, "the block was not unmapped");
  d.commands();
  const Smmuv3Counters s2inv = sys.model().counters();
  t.say(
      "  SMMU: {} TLB entry invalidated: the combined stage 1+2 entry of IOVA {:#x}, which "
      "CMD_TLBI_S2_IPA need not remove and CMD_TLBI_NH_ALL (VMID {}) does",
      s2inv.tlb_invalidated - d.before.tlb_invalidated, kSrcIova, s2_arm.vmid());
  t.expect(s2inv.command(hw::Opcode::CMD_TLBI_NH_ALL) ==
                   d.before.command(hw::Opcode::CMD_TLBI_NH_ALL) + 1 &&
               s2inv.tlb_invalidated == d.before.tlb_invalidated + 1,
           "the combined stage 1+2 entry of the VMID was not invalidated");
  d.begin();
  res = engine.checksum(kSrcIova, kLen);
  d.dma_result(
      fmt::format("checksum IOVA {:#x}, {} bytes (still mapped by the guest)", kSrcIova, kLen),
      res);
  t.expect(!res.ok() && !res.fault_write && res.fault_addr == kSrcIova,
           "the DMA reached memory stage 2 no longer maps");
  d.events();
  faults = d.faults(log);
  const Smmuv3Counters reclaim = d.traffic();
  t.expect(reclaim.tlb_hits == d.before.tlb_hits, "a cached translation of the old block was used");
  t.expect(faults.size() == 1 && faults[0].event.addr == kSrcIova &&
               (faults[0].event.perm & IOMMU_FAULT_PERM_READ),
           "the core did not deliver the stage-2 fault at the IOVA");
  t.say("  (the report carries the IOVA; the IPA is in the event record)");

  // ---- Teardown.
  t.section("teardown");
  d.begin();
  attached.detach();
  ste = DEMO_TRY(t, "read_ste", d.ste(sid));
  t.say("iommu_detach_group: STE[{:#x}] Config {:#05b} (abort: the group is still user-owned)", sid,
        ste.get<hw::STE::Config>());
  t.expect(ste.get<hw::STE::Config>() == hw::kConfigAbort, "a detached user group translates");
  nested.reset();
  // iommu_unmap stops at the first hole: the ranges either side of the reclaimed block.
  size_t freed = DEMO_TRY(t, "iommu_unmap", iommu_unmap(*s2, Guest::kGpa, reclaimed - Guest::kGpa));
  freed += DEMO_TRY(
      t, "iommu_unmap",
      iommu_unmap(*s2, reclaimed + SZ_2M, Guest::kGpa + Guest::kSize - (reclaimed + SZ_2M)));
  t.say("iommu_unmap(stage 2, the rest of the guest's RAM): {:#x} bytes; domains freed", freed);
  t.expect(freed == Guest::kSize - SZ_2M, "stage 2 still maps guest RAM");
  s2.reset();
  owner.release();
  ste = DEMO_TRY(t, "read_ste", d.ste(sid));
  t.say("iommu_group_release_dma_owner: STE[{:#x}] Config {:#05b} (the DMA domain's stage 1)", sid,
        ste.get<hw::STE::Config>());
  t.expect(ste.get<hw::STE::Config>() == hw::kConfigS1Trans, "the DMA domain is not back");
  d.commands(false);
  return {};
}

}  // namespace

DemoReport run_demo() {
  DemoReport report;
  Transcript t;
  // Every log line of the driver and the core; a warning nobody expected fails the demo.
  hosted::LogCapture logs;
  size_t expected_log_lines = 0;

  ArmSystemConfig config;
  config.platform.threading = smmuv3::Threading::kSync;  // deterministic: the account repeats
  config.platform.oracle = true;
  auto created = ArmSystem::create(config);
  if (!created.ok()) {
    t.say("ArmSystem::create: {}", created.error());
    report.transcript = t.take();
    return report;
  }
  std::unique_ptr<ArmSystem> sys = created.release_value();
  {
    Demo d(t, *sys, report);
    platform(d);
    auto done = run_nested(d, logs, expected_log_lines);
    if (!done.ok()) t.fail(fmt::format("the scenario stopped: {}", done.error()));
  }

  sys->flush_events();
  const Smmuv3Counters c = sys->model().counters();
  const ArmSmmuCounters dc = sys->smmu().counters();
  const arm_smmu_v3::CmdqCounters qc = sys->smmu().cmdq().counters();
  const auto stale = sys->model().stale_reports();
  report.translations = c.translations;
  report.tlb_hits = c.tlb_hits;
  report.tlb_misses = c.tlb_misses;
  report.walks = c.walks;
  report.tlb_invalidated = c.tlb_invalidated;
  report.events = c.events;
  report.cmd_cfgi_ste = c.command(hw::Opcode::CMD_CFGI_STE);
  report.cmd_tlbi_nh_asid = c.command(hw::Opcode::CMD_TLBI_NH_ASID);
  report.cmd_tlbi_nh_all = c.command(hw::Opcode::CMD_TLBI_NH_ALL);
  report.cmd_tlbi_s2_ipa = c.command(hw::Opcode::CMD_TLBI_S2_IPA);
  report.cmd_sync = c.command(hw::Opcode::CMD_SYNC);
  report.faults_reported = dc.faults_reported;
  report.stale_reports = stale.size();

  t.section("summary");
  t.say(
      "SMMU model: {} translations, TLB {} hits / {} misses, {} walks, {} TLB entries "
      "invalidated, {} events",
      c.translations, c.tlb_hits, c.tlb_misses, c.walks, c.tlb_invalidated, c.events);
  uint64_t total = 0;
  const std::string all = by_opcode(Smmuv3Counters{}, c, total);
  t.say("  {} commands: {}", total, all);
  t.say(
      "arm-smmu-v3: {} STE writes, {} CD writes, {} invalidation batches, {} events read, {} "
      "faults reported, {} only logged",
      dc.ste_writes, dc.cd_writes, dc.tlb_syncs, dc.events, dc.faults_reported, dc.faults_logged);
  t.say("  cmdq: {} commands and {} CMD_SYNCs in {} CMDQ_PROD writes, {} command errors",
        qc.commands, qc.syncs, qc.prod_writes, qc.command_errors);
  t.say("fault handler: {} faults received; guest commands refused: {}", report.faults_delivered,
        report.guest_commands_refused);
  t.expect(dc.faults_reported == report.faults_delivered && dc.faults_logged == 0,
           "the driver reported other faults than the handler received");
  t.expect(qc.command_errors == 0, "a command error");
  t.say("stale-translation oracle: {} reports", stale.size());
  for (const auto& r : stale)
    t.say("  !! {} served {}, memory says {}", r.source, r.cached, r.fresh);
  t.expect(stale.empty(), "a translation was served from a stale cache");
  size_t warnings = 0;
  for (const auto& l : logs.lines()) warnings += l.level <= 4;
  if (warnings > expected_log_lines)
    for (const auto& l : logs.lines())
      if (l.level <= 4) t.say("  log <{}> {}", l.level, l.text);
  t.expect(warnings <= expected_log_lines, "warnings in the log");
  t.say("result: {}", t.ok() ? "every check held" : "UNEXPECTED BEHAVIOUR");
  report.ok = t.ok();
  report.transcript = t.take();
  return report;
}

}  // namespace strata::sim
