// SPDX-License-Identifier: MIT
#include "drivers/iommu/arm/arm-smmu-v3/features.h"

#include "arch/errno.h"
#include "arch/log.h"
#include "arch/smmuv3/regs.h"
#include "core/io-pgtable/io_pgtable.h"

namespace strata::arm_smmu_v3 {
namespace {

namespace hw = ::strata::smmuv3;

Error refuse(const char* name, const char* why) {
  dev_log(LogLevel::err, name, "SMMU not supported: {}", why);
  return Error(-ENXIO);
}

}  // namespace

unsigned arm_smmu_addr_size_bits(uint64_t encoding) {
  switch (encoding) {
    case hw::kAddrSize32: return 32;
    case hw::kAddrSize36: return 36;
    case hw::kAddrSize40: return 40;
    case hw::kAddrSize42: return 42;
    case hw::kAddrSize44: return 44;
    case hw::kAddrSize48: return 48;
    case hw::kAddrSize52: return 52;
    case hw::kAddrSize56: return 56;
    default: return 0;
  }
}

Result<ArmSmmuFeatures> arm_smmu_probe_features(const Mmio& page0, const char* name) {
  ArmSmmuFeatures f;
  const auto idr0 = hw::IDR0::read_from_relaxed(page0);
  const auto idr1 = hw::IDR1::read_from_relaxed(page0);
  const auto idr3 = hw::IDR3::read_from_relaxed(page0);
  const auto idr5 = hw::IDR5::read_from_relaxed(page0);
  const auto aidr = hw::AIDR::read_from_relaxed(page0);
  f.iidr = hw::IIDR::read_from_relaxed(page0).value();
  f.arch_minor = static_cast<unsigned>(aidr.get<hw::AIDR::ArchMinorRev>());

  // IDR0 (6.3.1).
  f.trans_s1 = idr0.get<hw::IDR0::S1P>();
  f.trans_s2 = idr0.get<hw::IDR0::S2P>();
  if (!f.trans_s1 && !f.trans_s2)
    return refuse(name, "no translation stage (IDR0.S1P == S2P == 0)");
  f.nesting = f.trans_s1 && f.trans_s2;
  const uint64_t ttf = idr0.get<hw::IDR0::TTF>();
  if (ttf != hw::kTtfAArch64 && ttf != hw::kTtfAArch32And64)
    return refuse(name, "no VMSAv8-64 table format (IDR0.TTF)");
  switch (idr0.get<hw::IDR0::TTENDIAN>()) {
    case hw::kTtendianMixed: break;
    case hw::kTtendianLe:
      if (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__)
        return refuse(name, "little-endian table walks only (IDR0.TTENDIAN)");
      break;
    case hw::kTtendianBe:
      if (__BYTE_ORDER__ != __ORDER_BIG_ENDIAN__)
        return refuse(name, "big-endian table walks only (IDR0.TTENDIAN)");
      break;
    default: return refuse(name, "IDR0.TTENDIAN is Reserved");
  }
  f.two_level_strtab = idr0.get<hw::IDR0::ST_LEVEL>() == hw::kStLevel2Level;
  f.two_level_cdtab = idr0.get<hw::IDR0::CD2L>();
  f.coherent = idr0.get<hw::IDR0::COHACC>();
  f.btm = idr0.get<hw::IDR0::BTM>();
  f.hyp = idr0.get<hw::IDR0::Hyp>();
  const uint64_t httu = idr0.get<hw::IDR0::HTTU>();
  f.hw_access = httu >= hw::kHttuAccess;
  f.hw_dirty = httu >= hw::kHttuAccessDirty;
  f.ats = idr0.get<hw::IDR0::ATS>();
  // PRI is an extension of PCIe ATS (IHI 0070 3.9, 8): IDR0.PRI is RES0 without IDR0.ATS, and
  // page requests mean nothing without translated requests. An SMMU that reports PRI alone gets
  // no PRI queue.
  f.pri = f.ats && idr0.get<hw::IDR0::PRI>();
  f.msi = idr0.get<hw::IDR0::MSI>();
  f.sev = idr0.get<hw::IDR0::SEV>();
  // With stalls forced (6.3.1) a faulting transaction stalls rather than terminates (CD.S and
  // STE.S2S must be 1, where the driver always writes 0), and the driver never issues CMD_RESUME
  // or CMD_STALL_TERM: the device would wait forever.
  const uint64_t stall_model = idr0.get<hw::IDR0::STALL_MODEL>();
  if (stall_model == hw::kStallModelStallForced)
    return refuse(name, "stalls forced (IDR0.STALL_MODEL == 0b10), no stall support");
  f.stalls = stall_model == hw::kStallModelStallAndTerminate;
  f.asid_bits = idr0.get<hw::IDR0::ASID16>() ? 16 : 8;
  f.vmid_bits = idr0.get<hw::IDR0::VMID16>() ? 16 : 8;

  // IDR1 (6.3.2).
  if (idr1.get<hw::IDR1::TABLES_PRESET>() || idr1.get<hw::IDR1::QUEUES_PRESET>())
    return refuse(name, "preset tables or queues (IDR1.TABLES_PRESET / QUEUES_PRESET)");
  f.sid_bits = static_cast<unsigned>(idr1.get<hw::IDR1::SIDSIZE>());
  f.ssid_bits = static_cast<unsigned>(idr1.get<hw::IDR1::SSIDSIZE>());
  f.cmdq_shift = static_cast<unsigned>(idr1.get<hw::IDR1::CMDQS>());
  f.evtq_shift = static_cast<unsigned>(idr1.get<hw::IDR1::EVENTQS>());
  f.priq_shift = static_cast<unsigned>(idr1.get<hw::IDR1::PRIQS>());
  f.attr_types_ovr = idr1.get<hw::IDR1::ATTR_TYPES_OVR>();
  if ((1u << f.cmdq_shift) < 2 * kCmdqBatchEntries)
    return refuse(name, "Command queue smaller than two batches (IDR1.CMDQS)");

  // IDR3 (6.3.4).
  f.range_inv = idr3.get<hw::IDR3::RIL>();
  f.fwb = idr3.get<hw::IDR3::FWB>();
  f.pps = idr3.get<hw::IDR3::PPS>();
  f.bbml = static_cast<unsigned>(idr3.get<hw::IDR3::BBML>());

  // IDR5 (6.3.6). Page and block sizes per granule (VMSAv8-64: a level-2 block of 4K tables
  // maps 2MB, a level-1 block 1GB; 16K: 32MB; 64K: 512MB).
  f.oas = arm_smmu_addr_size_bits(idr5.get<hw::IDR5::OAS>());
  if (f.oas == 0) return refuse(name, "IDR5.OAS is Reserved");
  f.ias = f.oas;
  if (idr5.get<hw::IDR5::GRAN4K>()) f.pgsize_bitmap |= SZ_4K | SZ_2M | SZ_1G;
  if (idr5.get<hw::IDR5::GRAN16K>()) f.pgsize_bitmap |= SZ_16K | SZ_32M;
  if (idr5.get<hw::IDR5::GRAN64K>()) f.pgsize_bitmap |= SZ_64K | SZ_512M;
  if (f.pgsize_bitmap == 0) return refuse(name, "no translation granule (IDR5.GRAN*)");
  switch (idr5.get<hw::IDR5::VAX>()) {
    case hw::kVax52: f.va_bits = 52; break;
    case hw::kVax56: f.va_bits = 56; break;
    default: f.va_bits = 48; break;
  }
  f.stall_max = static_cast<unsigned>(idr5.get<hw::IDR5::STALL_MAX>());

  dev_log(LogLevel::info, name,
          "SMMUv3.{}: stage1 {} stage2 {} ats {} pri {} msi {} coherent {} range-inv {} "
          "sid {} ssid {} oas {} pgsizes {:#x}",
          f.arch_minor, f.trans_s1, f.trans_s2, f.ats, f.pri, f.msi, f.coherent, f.range_inv,
          f.sid_bits, f.ssid_bits, f.oas, f.pgsize_bitmap);
  return f;
}

}  // namespace strata::arm_smmu_v3
