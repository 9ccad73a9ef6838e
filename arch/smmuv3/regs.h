// SPDX-License-Identifier: MIT
// Arm SMMUv3 Non-secure programming interface: the registers of page 0 and page 1 (IHI 0070,
// 6.2 "Register overview", 6.3 "Register formats"), and the PROD/CONS index arithmetic of the
// Command, Event and PRI queues (3.5, 6.3.27).
//
// The register file is two 64KB pages: page 0 at the base, page 1 at base + 0x10000. Only the
// Event and PRI queue PROD/CONS registers live in page 1; their page-0 offsets (0xA8, 0xAC, 0xC8,
// 0xCC) are optional aliases that may read as zero (6.2.1), so kOffset below is the offset from
// the page-0 base and a driver maps both pages. (Linux's ARM_SMMU_OPT_PAGE0_REGS_ONLY erratum,
// Cavium CN99xx, uses the page-0 aliases instead; a driver that needs it reads the same types
// through Mmio::window.)
//
// All registers are 32-bit except the *_BASE and *_IRQ_CFG0 registers, which are 64-bit (6.2).
// Reserved bits are RES0; kRes0 lists them so that write_to() clears them. ID registers are
// read-only and carry kRes0 for the model's reset-value checks.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "arch/bug.h"
#include "arch/reg.h"
#include "arch/smmuv3/defs.h"

namespace strata::smmuv3 {

inline constexpr uint32_t kPage1Offset = 0x10000;
inline constexpr size_t kRegisterSpaceBytes = 0x20000;  // pages 0 and 1

// ---------------------------------------------------------------------------------------------
// ID registers (read-only).

// SMMU_IDR0 (6.3.1): features of the Non-secure programming interface.
struct IDR0 : reg::Register<IDR0, uint32_t, 0x0000, "IDR0"> {
  using S2P = reg::Bit<0, "S2P">;                         // stage 2 translation supported
  using S1P = reg::Bit<1, "S1P">;                         // stage 1 translation supported
  using TTF = reg::Field<3, 2, "TTF">;                    // translation table formats (kTtf*)
  using COHACC = reg::Bit<4, "COHACC">;                   // coherent access to tables and queues
  using BTM = reg::Bit<5, "BTM">;                         // broadcast TLB maintenance
  using HTTU = reg::Field<7, 6, "HTTU">;                  // hardware table update (kHttu*)
  using DORMHINT = reg::Bit<8, "DORMHINT">;               // dormant hint (SMMU_STATUSR.DORMANT)
  using Hyp = reg::Bit<9, "Hyp">;                         // hypervisor (EL2) stage 1 contexts
  using ATS = reg::Bit<10, "ATS">;                        // PCIe ATS
  using NS1ATS = reg::Bit<11, "NS1ATS">;                  // split-stage ATS *not* supported
  using ASID16 = reg::Bit<12, "ASID16">;                  // 16-bit ASIDs
  using MSI = reg::Bit<13, "MSI">;                        // message-signalled interrupts
  using SEV = reg::Bit<14, "SEV">;                        // WFE wake-up events to the PE
  using ATOS = reg::Bit<15, "ATOS">;                      // address translation operations
  using PRI = reg::Bit<16, "PRI">;                        // page request interface (PRI queue)
  using VMW = reg::Bit<17, "VMW">;                        // VMID wildcard matching
  using VMID16 = reg::Bit<18, "VMID16">;                  // 16-bit VMIDs
  using CD2L = reg::Bit<19, "CD2L">;                      // 2-level CD tables
  using VATOS = reg::Bit<20, "VATOS">;                    // virtual ATOS page
  using TTENDIAN = reg::Field<22, 21, "TTENDIAN">;        // table walk endianness (kTtendian*)
  using ATSRECERR = reg::Bit<23, "ATSRECERR">;            // ATS/PRI configuration-error events
  using STALL_MODEL = reg::Field<25, 24, "STALL_MODEL">;  // kStallModel*
  using TERM_MODEL = reg::Bit<26, "TERM_MODEL">;          // 1: terminated = aborted (CD.A == 1)
  using ST_LEVEL = reg::Field<28, 27, "ST_LEVEL">;        // stream table levels (kStLevel*)
  using RME_IMPL = reg::Bit<30, "RME_IMPL">;              // Realm Management Extension
  using Fields = reg::FieldList<S2P, S1P, TTF, COHACC, BTM, HTTU, DORMHINT, Hyp, ATS, NS1ATS,
                                ASID16, MSI, SEV, ATOS, PRI, VMW, VMID16, CD2L, VATOS, TTENDIAN,
                                ATSRECERR, STALL_MODEL, TERM_MODEL, ST_LEVEL, RME_IMPL>;
  static constexpr uint32_t kRes0 = 0xa0000000;  // bits 31, 29
};

// IDR0.TTF: 0b00 is Reserved.
inline constexpr uint64_t kTtfAArch32 = 0b01, kTtfAArch64 = 0b10, kTtfAArch32And64 = 0b11;
// IDR0.HTTU.
inline constexpr uint64_t kHttuNone = 0b00, kHttuAccess = 0b01, kHttuAccessDirty = 0b10,
                          kHttuAccessDirtyTable = 0b11;  // + AF in table descriptors (HAFT)
// IDR0.TTENDIAN: 0b01 is Reserved.
inline constexpr uint64_t kTtendianMixed = 0b00, kTtendianLe = 0b10, kTtendianBe = 0b11;
// IDR0.STALL_MODEL: 0b11 is Reserved.
inline constexpr uint64_t kStallModelStallAndTerminate = 0b00, kStallModelTerminate = 0b01,
                          kStallModelStallForced = 0b10;
// IDR0.ST_LEVEL.
inline constexpr uint64_t kStLevelLinear = 0b00, kStLevel2Level = 0b01;

// SMMU_IDR1 (6.3.2): sizes of the stream, substream and queue spaces; presets.
struct IDR1 : reg::Register<IDR1, uint32_t, 0x0004, "IDR1"> {
  using SIDSIZE = reg::Field<5, 0, "SIDSIZE">;            // StreamID bits (0..32)
  using SSIDSIZE = reg::Field<10, 6, "SSIDSIZE">;         // SubstreamID bits (0..20)
  using PRIQS = reg::Field<15, 11, "PRIQS">;              // log2 max PRI queue entries
  using EVENTQS = reg::Field<20, 16, "EVENTQS">;          // log2 max Event queue entries
  using CMDQS = reg::Field<25, 21, "CMDQS">;              // log2 max Command queue entries
  using ATTR_PERMS_OVR = reg::Bit<26, "ATTR_PERMS_OVR">;  // INST/PRIV/NS overrides
  using ATTR_TYPES_OVR = reg::Bit<27, "ATTR_TYPES_OVR">;  // MemType/SH/alloc overrides
  using REL = reg::Bit<28, "REL">;                        // preset bases are page-0 relative
  using QUEUES_PRESET = reg::Bit<29, "QUEUES_PRESET">;    // queue bases fixed
  using TABLES_PRESET = reg::Bit<30, "TABLES_PRESET">;    // stream table base fixed
  using ECMDQ = reg::Bit<31, "ECMDQ">;                    // enhanced command queues
  using Fields = reg::FieldList<SIDSIZE, SSIDSIZE, PRIQS, EVENTQS, CMDQS, ATTR_PERMS_OVR,
                                ATTR_TYPES_OVR, REL, QUEUES_PRESET, TABLES_PRESET, ECMDQ>;
};

// SMMU_IDR2 (6.3.3).
struct IDR2 : reg::Register<IDR2, uint32_t, 0x0008, "IDR2"> {
  using BA_VATOS = reg::Field<9, 0, "BA_VATOS">;  // VATOS page: 0x20000 + BA * 64KB
  using Fields = reg::FieldList<BA_VATOS>;
  static constexpr uint32_t kRes0 = 0xfffffc00;  // bits 31:10
};

// SMMU_IDR3 (6.3.4).
struct IDR3 : reg::Register<IDR3, uint32_t, 0x000c, "IDR3"> {
  using HAD = reg::Bit<2, "HAD">;           // hierarchical attribute disable (CD.HAD0/1)
  using PBHA = reg::Bit<3, "PBHA">;         // page-based hardware attributes
  using XNX = reg::Bit<4, "XNX">;           // stage-2 XN[1:0] by exception level
  using PPS = reg::Bit<5, "PPS">;           // PRI auto-responses carry the PASID (STE.PPAR)
  using MPAM = reg::Bit<7, "MPAM">;         // memory partitioning and monitoring
  using FWB = reg::Bit<8, "FWB">;           // STE.S2FWB
  using STT = reg::Bit<9, "STT">;           // small translation tables
  using RIL = reg::Bit<10, "RIL">;          // range invalidation and TTL hint in CMD_TLBI_*
  using BBML = reg::Field<12, 11, "BBML">;  // break-before-make level
  using E0PD = reg::Bit<13, "E0PD">;        // CD.E0PD0/1
  using PTWNNC = reg::Bit<14, "PTWNNC">;    // S2PTW == 0 walks to Device memory as Normal-NC
  using DPT = reg::Bit<15, "DPT">;          // device permission table
  using PASIDTT = reg::Bit<16, "PASIDTT">;  // PASID on ATS Translated transactions
  using EPAN = reg::Bit<17, "EPAN">;        // enhanced PAN (CD.EPAN)
  using S1PI = reg::Bit<18, "S1PI">;        // stage 1 permission indirections
  using S2PI = reg::Bit<19, "S2PI">;        // stage 2 permission indirections
  using S2PO = reg::Bit<20, "S2PO">;        // stage 2 permission overlays
  using THE = reg::Bit<21, "THE">;          // translation hardening extension
  using MTEPERM = reg::Bit<22, "MTEPERM">;  // stage 2 NoTagAccess encodings
  using AIE = reg::Bit<23, "AIE">;          // stage 1 attribute index extension (CD.AIE)
  using Fields = reg::FieldList<HAD, PBHA, XNX, PPS, MPAM, FWB, STT, RIL, BBML, E0PD, PTWNNC, DPT,
                                PASIDTT, EPAN, S1PI, S2PI, S2PO, THE, MTEPERM, AIE>;
  static constexpr uint32_t kRes0 = 0xff000043;  // bits 31:24, 6, 1:0
};

// SMMU_IDR4 (6.3.5): IMPLEMENTATION DEFINED.
struct IDR4 : reg::Register<IDR4, uint32_t, 0x0010, "IDR4"> {
  using IMPDEF = reg::Field<31, 0, "IMPDEF">;
  using Fields = reg::FieldList<IMPDEF>;
};

// SMMU_IDR5 (6.3.6): output address size, granules, VA size, stall limit.
struct IDR5 : reg::Register<IDR5, uint32_t, 0x0014, "IDR5"> {
  using OAS = reg::Field<2, 0, "OAS">;                // output address size (kAddrSize*)
  using GRAN4K = reg::Bit<4, "GRAN4K">;               // 4KB granule
  using GRAN16K = reg::Bit<5, "GRAN16K">;             // 16KB granule
  using GRAN64K = reg::Bit<6, "GRAN64K">;             // 64KB granule
  using DS = reg::Bit<7, "DS">;                       // 52-bit addresses with 4KB/16KB (LPA2)
  using D128 = reg::Bit<8, "D128">;                   // VMSAv9-128 descriptors
  using VAX = reg::Field<11, 10, "VAX">;              // VA size (kVax*)
  using STALL_MAX = reg::Field<31, 16, "STALL_MAX">;  // max outstanding stalled transactions
  using Fields = reg::FieldList<OAS, GRAN4K, GRAN16K, GRAN64K, DS, D128, VAX, STALL_MAX>;
  static constexpr uint32_t kRes0 = 0x0000f208;  // bits 15:12, 9, 3
};

// IDR5.VAX: VA bits translatable per CD.TTBx.
inline constexpr uint64_t kVax48 = 0b00, kVax52 = 0b01, kVax56 = 0b10;

// SMMU_IIDR (6.3.7): implementation identification.
struct IIDR : reg::Register<IIDR, uint32_t, 0x0018, "IIDR"> {
  using Implementer = reg::Field<11, 0, "Implementer">;  // JEP106 code (Arm: 0x43B)
  using Revision = reg::Field<15, 12, "Revision">;       // minor revision
  using Variant = reg::Field<19, 16, "Variant">;         // major revision
  using ProductID = reg::Field<31, 20, "ProductID">;     // IMPLEMENTATION DEFINED part
  using Fields = reg::FieldList<Implementer, Revision, Variant, ProductID>;
};

inline constexpr uint64_t kImplementerArm = 0x43b;

// SMMU_AIDR (6.3.8): architecture revision, SMMUv3.<ArchMinorRev>.
struct AIDR : reg::Register<AIDR, uint32_t, 0x001c, "AIDR"> {
  using ArchMinorRev = reg::Field<3, 0, "ArchMinorRev">;  // 0 = v3.0 ... 4 = v3.4
  using ArchMajorRev = reg::Field<7, 4, "ArchMajorRev">;  // 0 = SMMUv3.x
  using Fields = reg::FieldList<ArchMinorRev, ArchMajorRev>;
  static constexpr uint32_t kRes0 = 0xffffff00;  // bits 31:8
};

// ---------------------------------------------------------------------------------------------
// Control. Writes to CR0 and IRQ_CTRL complete ("Update") when the ACK register reads back the
// written fields (6.3.9): CR0 -> CR0ACK, IRQ_CTRL -> IRQ_CTRLACK.

struct Cr0Fields {
  using SMMUEN = reg::Bit<0, "SMMUEN">;             // translate (0: bypass or abort per GBPA)
  using PRIQEN = reg::Bit<1, "PRIQEN">;             // PRI queue writes enabled
  using EVENTQEN = reg::Bit<2, "EVENTQEN">;         // Event queue writes enabled
  using CMDQEN = reg::Bit<3, "CMDQEN">;             // Command queue processing enabled
  using ATSCHK = reg::Bit<4, "ATSCHK">;             // check ATS Translated traffic (safe mode)
  using VMW = reg::Field<8, 6, "VMW">;              // VMID wildcard for TLB invalidation
  using DPT_WALK_EN = reg::Bit<10, "DPT_WALK_EN">;  // device permission table walks
  using Fields = reg::FieldList<SMMUEN, PRIQEN, EVENTQEN, CMDQEN, ATSCHK, VMW, DPT_WALK_EN>;
  static constexpr uint32_t kRes0 = 0xfffffa20;  // bits 31:11, 9, 5
};

// SMMU_CR0 (6.3.9).
struct CR0 : reg::Register<CR0, uint32_t, 0x0020, "CR0">, Cr0Fields {};
// SMMU_CR0ACK (6.3.10): the Updated value of each CR0 field.
struct CR0ACK : reg::Register<CR0ACK, uint32_t, 0x0024, "CR0ACK">, Cr0Fields {};

// SMMU_CR1 (6.3.11): attributes of table and queue accesses.
struct CR1 : reg::Register<CR1, uint32_t, 0x0028, "CR1"> {
  using QUEUE_IC = reg::Field<1, 0, "QUEUE_IC">;    // queue inner cacheability (kCr1Cache*)
  using QUEUE_OC = reg::Field<3, 2, "QUEUE_OC">;    // queue outer cacheability
  using QUEUE_SH = reg::Field<5, 4, "QUEUE_SH">;    // queue shareability (kSh*)
  using TABLE_IC = reg::Field<7, 6, "TABLE_IC">;    // stream table inner cacheability
  using TABLE_OC = reg::Field<9, 8, "TABLE_OC">;    // stream table outer cacheability
  using TABLE_SH = reg::Field<11, 10, "TABLE_SH">;  // stream table shareability
  using Fields = reg::FieldList<QUEUE_IC, QUEUE_OC, QUEUE_SH, TABLE_IC, TABLE_OC, TABLE_SH>;
  static constexpr uint32_t kRes0 = 0xfffff000;  // bits 31:12
};

// CR1.*_IC/*_OC. Not the TCR encoding: 0b01 is Write-Back here, 0b11 is Reserved.
inline constexpr uint64_t kCr1CacheNc = 0b00, kCr1CacheWb = 0b01, kCr1CacheWt = 0b10;

// SMMU_CR2 (6.3.12): written only while SMMUEN == 0.
struct CR2 : reg::Register<CR2, uint32_t, 0x002c, "CR2"> {
  using E2H = reg::Bit<0, "E2H">;                  // STRW == EL2 means EL2-E2H (with ASIDs)
  using RECINVSID = reg::Bit<1, "RECINVSID">;      // record C_BAD_STREAMID
  using PTM = reg::Bit<2, "PTM">;                  // private TLB maintenance (ignore broadcast)
  using REC_CFG_ATS = reg::Bit<3, "REC_CFG_ATS">;  // extended ATS/PRI configuration events
  using Fields = reg::FieldList<E2H, RECINVSID, PTM, REC_CFG_ATS>;
  static constexpr uint32_t kRes0 = 0xfffffff0;  // bits 31:4
};

// SMMU_STATUSR (6.3.13).
struct STATUSR : reg::Register<STATUSR, uint32_t, 0x0040, "STATUSR"> {
  using DORMANT = reg::Bit<0, "DORMANT">;  // nothing cached, no prefetch in flight
  using Fields = reg::FieldList<DORMANT>;
  static constexpr uint32_t kRes0 = 0xfffffffe;  // bits 31:1
};

// SMMU_GBPA (6.3.14): attributes of traffic while SMMUEN == 0. Written with Update set in the
// same write, then polled until Update reads 0 (6.3.14.1).
struct GBPA : reg::Register<GBPA, uint32_t, 0x0044, "GBPA"> {
  using MemAttr = reg::Field<3, 0, "MemAttr">;     // memory type when MTCFG (kMemAttr*)
  using MTCFG = reg::Bit<4, "MTCFG">;              // override the memory type
  using ALLOCCFG = reg::Field<11, 8, "ALLOCCFG">;  // 0b1RWT overrides allocation hints
  using SHCFG = reg::Field<13, 12, "SHCFG">;       // shareability (kShcfg*, defs.h)
  using PRIVCFG = reg::Field<17, 16, "PRIVCFG">;   // privilege (kPrivcfg*)
  using INSTCFG = reg::Field<19, 18, "INSTCFG">;   // instruction/data (kInstcfg*)
  using ABORT = reg::Bit<20, "ABORT">;             // abort all incoming transactions
  using Update = reg::Bit<31, "Update">;           // update in progress
  using Fields = reg::FieldList<MemAttr, MTCFG, ALLOCCFG, SHCFG, PRIVCFG, INSTCFG, ABORT, Update>;
  static constexpr uint32_t kRes0 = 0x7fe0c0e0;  // bits 30:21, 15:14, 7:5
};

// SMMU_AGBPA (6.3.15): IMPLEMENTATION DEFINED bypass attributes.
struct AGBPA : reg::Register<AGBPA, uint32_t, 0x0048, "AGBPA"> {
  using IMPDEF = reg::Field<31, 0, "IMPDEF">;
  using Fields = reg::FieldList<IMPDEF>;
};

struct IrqCtrlFields {
  using GERROR_IRQEN = reg::Bit<0, "GERROR_IRQEN">;  // global error interrupt
  using PRIQ_IRQEN = reg::Bit<1, "PRIQ_IRQEN">;      // PRI queue interrupt
  using EVENTQ_IRQEN = reg::Bit<2, "EVENTQ_IRQEN">;  // Event queue interrupt
  using Fields = reg::FieldList<GERROR_IRQEN, PRIQ_IRQEN, EVENTQ_IRQEN>;
  static constexpr uint32_t kRes0 = 0xfffffff8;  // bits 31:3
};

// SMMU_IRQ_CTRL (6.3.16). The enables guard the matching *_IRQ_CFG0/1/2 registers.
struct IRQ_CTRL : reg::Register<IRQ_CTRL, uint32_t, 0x0050, "IRQ_CTRL">, IrqCtrlFields {};
// SMMU_IRQ_CTRLACK (6.3.18).
struct IRQ_CTRLACK : reg::Register<IRQ_CTRLACK, uint32_t, 0x0054, "IRQ_CTRLACK">, IrqCtrlFields {};

// ---------------------------------------------------------------------------------------------
// Global errors (6.3.19, 7.5). An error is active while GERROR[x] != GERRORN[x]: the SMMU
// toggles GERROR[x] to raise it, software toggles GERRORN[x] to acknowledge it. Linux spells
// the Event queue bits EVTQ_ABT_ERR / MSI_EVTQ_ABT_ERR; the specification EVENTQ.

struct GerrorFields {
  using CMDQ_ERR = reg::Bit<0, "CMDQ_ERR">;                      // command error (CMDQ_CONS.ERR)
  using EVENTQ_ABT_ERR = reg::Bit<2, "EVENTQ_ABT_ERR">;          // Event queue write aborted
  using PRIQ_ABT_ERR = reg::Bit<3, "PRIQ_ABT_ERR">;              // PRI queue write aborted
  using MSI_CMDQ_ABT_ERR = reg::Bit<4, "MSI_CMDQ_ABT_ERR">;      // CMD_SYNC MSI aborted
  using MSI_EVENTQ_ABT_ERR = reg::Bit<5, "MSI_EVENTQ_ABT_ERR">;  // Event queue MSI aborted
  using MSI_PRIQ_ABT_ERR = reg::Bit<6, "MSI_PRIQ_ABT_ERR">;      // PRI queue MSI aborted
  using MSI_GERROR_ABT_ERR = reg::Bit<7, "MSI_GERROR_ABT_ERR">;  // GERROR MSI aborted
  using SFM_ERR = reg::Bit<8, "SFM_ERR">;                        // service failure mode
  using CMDQP_ERR = reg::Bit<9, "CMDQP_ERR">;                    // ECMDQ control page error
  using DPT_ERR = reg::Bit<10, "DPT_ERR">;                       // DPT lookup fault
  using Fields =
      reg::FieldList<CMDQ_ERR, EVENTQ_ABT_ERR, PRIQ_ABT_ERR, MSI_CMDQ_ABT_ERR, MSI_EVENTQ_ABT_ERR,
                     MSI_PRIQ_ABT_ERR, MSI_GERROR_ABT_ERR, SFM_ERR, CMDQP_ERR, DPT_ERR>;
  static constexpr uint32_t kRes0 = 0xfffff802;  // bits 31:11, 1
};

// SMMU_GERROR (6.3.19), read-only.
struct GERROR : reg::Register<GERROR, uint32_t, 0x0060, "GERROR">, GerrorFields {};
// SMMU_GERRORN (6.3.20): the acknowledgement, same fields.
struct GERRORN : reg::Register<GERRORN, uint32_t, 0x0064, "GERRORN">, GerrorFields {};

// The active global errors: bits where GERROR and GERRORN differ.
constexpr uint32_t active_errors(GERROR gerror, GERRORN gerrorn) {
  return (gerror.value() ^ gerrorn.value()) & ~GerrorFields::kRes0;
}

// ---------------------------------------------------------------------------------------------
// MSI configuration: one CFG0/CFG1/CFG2 triple per interrupt source (6.3.21-23, 6.3.30-32,
// 6.3.34-36), guarded by the source's IRQ_CTRL enable.

template <typename Self, uint32_t Offset, reg::Name N>
struct IrqCfg0 : reg::Register<Self, uint64_t, Offset, N> {
  using ADDR = reg::Addr<55, 2, "ADDR">;  // MSI target address; 0 sends no MSI
  using Fields = reg::FieldList<ADDR>;
  static constexpr uint64_t kRes0 = 0xff00000000000003;  // bits 63:56, 1:0
};
template <typename Self, uint32_t Offset, reg::Name N>
struct IrqCfg1 : reg::Register<Self, uint32_t, Offset, N> {
  using DATA = reg::Field<31, 0, "DATA">;  // MSI payload
  using Fields = reg::FieldList<DATA>;
};
struct IrqCfg2Fields {
  using MemAttr = reg::Field<3, 0, "MemAttr">;  // MSI memory type (kMemAttr*)
  using SH = reg::Field<5, 4, "SH">;            // MSI shareability (kSh*)
};

struct GERROR_IRQ_CFG0 : IrqCfg0<GERROR_IRQ_CFG0, 0x0068, "GERROR_IRQ_CFG0"> {};
struct GERROR_IRQ_CFG1 : IrqCfg1<GERROR_IRQ_CFG1, 0x0070, "GERROR_IRQ_CFG1"> {};
struct GERROR_IRQ_CFG2 : reg::Register<GERROR_IRQ_CFG2, uint32_t, 0x0074, "GERROR_IRQ_CFG2">,
                         IrqCfg2Fields {
  using Fields = reg::FieldList<MemAttr, SH>;
  static constexpr uint32_t kRes0 = 0xffffffc0;  // bits 31:6
};

struct EVENTQ_IRQ_CFG0 : IrqCfg0<EVENTQ_IRQ_CFG0, 0x00b0, "EVENTQ_IRQ_CFG0"> {};
struct EVENTQ_IRQ_CFG1 : IrqCfg1<EVENTQ_IRQ_CFG1, 0x00b8, "EVENTQ_IRQ_CFG1"> {};
struct EVENTQ_IRQ_CFG2 : reg::Register<EVENTQ_IRQ_CFG2, uint32_t, 0x00bc, "EVENTQ_IRQ_CFG2">,
                         IrqCfg2Fields {
  using Fields = reg::FieldList<MemAttr, SH>;
  static constexpr uint32_t kRes0 = 0xffffffc0;  // bits 31:6
};

struct PRIQ_IRQ_CFG0 : IrqCfg0<PRIQ_IRQ_CFG0, 0x00d0, "PRIQ_IRQ_CFG0"> {};
struct PRIQ_IRQ_CFG1 : IrqCfg1<PRIQ_IRQ_CFG1, 0x00d8, "PRIQ_IRQ_CFG1"> {};
struct PRIQ_IRQ_CFG2 : reg::Register<PRIQ_IRQ_CFG2, uint32_t, 0x00dc, "PRIQ_IRQ_CFG2">,
                       IrqCfg2Fields {
  using LO = reg::Bit<31, "LO">;  // interrupt only for a request with Last set
  using Fields = reg::FieldList<MemAttr, SH, LO>;
  static constexpr uint32_t kRes0 = 0x7fffffc0;  // bits 30:6
};

// ---------------------------------------------------------------------------------------------
// Stream table base (6.3.24, 6.3.25), written only while SMMUEN == 0.

// SMMU_STRTAB_BASE: the table (linear: aligned to its size; 2-level: to max(64B, L1 size)).
struct STRTAB_BASE : reg::Register<STRTAB_BASE, uint64_t, 0x0080, "STRTAB_BASE"> {
  using ADDR = reg::Addr<55, 6, "ADDR">;  // stream table physical address
  using RA = reg::Bit<62, "RA">;          // read-allocate hint
  using Fields = reg::FieldList<ADDR, RA>;
  static constexpr uint64_t kRes0 = 0xbf0000000000003f;  // bits 63, 61:56, 5:0
};

// SMMU_STRTAB_BASE_CFG.
struct STRTAB_BASE_CFG : reg::Register<STRTAB_BASE_CFG, uint32_t, 0x0088, "STRTAB_BASE_CFG"> {
  using LOG2SIZE = reg::Field<5, 0, "LOG2SIZE">;  // log2(StreamIDs covered)
  using SPLIT = reg::Field<10, 6, "SPLIT">;       // StreamID bits indexing an L2 table
  using FMT = reg::Field<17, 16, "FMT">;          // kStrtabFmt*
  using Fields = reg::FieldList<LOG2SIZE, SPLIT, FMT>;
  static constexpr uint32_t kRes0 = 0xfffcf800;  // bits 31:18, 15:11
};

inline constexpr uint64_t kStrtabFmtLinear = 0b00, kStrtabFmt2Level = 0b01;
// STRTAB_BASE_CFG.SPLIT: the architected values (others behave as 6). 4KB, 16KB, 64KB L2 tables.
inline constexpr unsigned kSplit4K = 6, kSplit16K = 8, kSplit64K = 10;

// ---------------------------------------------------------------------------------------------
// Queues (3.5, 6.3.26-29, 6.3.33, page 1). A queue of 2^LOG2SIZE entries is aligned to its size
// (at least 32 bytes). The WR/RD field of PROD/CONS holds the index in bits [LOG2SIZE-1:0] and
// the wrap flag in bit [LOG2SIZE]; see the queue_* helpers below. Software produces the Command
// queue and consumes the Event and PRI queues; the SMMU does the opposite.

struct QueueBaseFields {
  using LOG2SIZE = reg::Field<4, 0, "LOG2SIZE">;         // log2(entries), <= IDR1.*QS
  using ADDR = reg::Addr<55, 5, "ADDR">;                 // queue physical address
  static constexpr uint64_t kRes0 = 0xbf00000000000000;  // bits 63, 61:56
};

// SMMU_CMDQ_BASE (6.3.26).
struct CMDQ_BASE : reg::Register<CMDQ_BASE, uint64_t, 0x0090, "CMDQ_BASE">, QueueBaseFields {
  using RA = reg::Bit<62, "RA">;  // read-allocate hint
  using Fields = reg::FieldList<LOG2SIZE, ADDR, RA>;
};
// SMMU_EVENTQ_BASE (6.3.29).
struct EVENTQ_BASE : reg::Register<EVENTQ_BASE, uint64_t, 0x00a0, "EVENTQ_BASE">, QueueBaseFields {
  using WA = reg::Bit<62, "WA">;  // write-allocate hint
  using Fields = reg::FieldList<LOG2SIZE, ADDR, WA>;
};
// SMMU_PRIQ_BASE (6.3.33).
struct PRIQ_BASE : reg::Register<PRIQ_BASE, uint64_t, 0x00c0, "PRIQ_BASE">, QueueBaseFields {
  using WA = reg::Bit<62, "WA">;  // write-allocate hint
  using Fields = reg::FieldList<LOG2SIZE, ADDR, WA>;
};

// SMMU_CMDQ_PROD (6.3.27), written by software.
struct CMDQ_PROD : reg::Register<CMDQ_PROD, uint32_t, 0x0098, "CMDQ_PROD"> {
  using WR = reg::Field<19, 0, "WR">;  // write index and wrap flag
  using Fields = reg::FieldList<WR>;
  static constexpr uint32_t kRes0 = 0xfff00000;  // bits 31:20
};
// SMMU_CMDQ_CONS (6.3.28), written by the SMMU (and by software while CMDQEN == 0).
struct CMDQ_CONS : reg::Register<CMDQ_CONS, uint32_t, 0x009c, "CMDQ_CONS"> {
  using RD = reg::Field<19, 0, "RD">;     // read index and wrap flag
  using ERR = reg::Field<30, 24, "ERR">;  // CERROR_* reason while GERROR.CMDQ_ERR is active
  using Fields = reg::FieldList<RD, ERR>;
  static constexpr uint32_t kRes0 = 0x80f00000;  // bits 31, 23:20
};

// SMMU_EVENTQ_PROD (page 1), written by the SMMU.
struct EVENTQ_PROD : reg::Register<EVENTQ_PROD, uint32_t, kPage1Offset + 0x00a8, "EVENTQ_PROD"> {
  using WR = reg::Field<19, 0, "WR">;   // write index and wrap flag
  using OVFLG = reg::Bit<31, "OVFLG">;  // toggled when records were lost to overflow
  using Fields = reg::FieldList<WR, OVFLG>;
  static constexpr uint32_t kRes0 = 0x7ff00000;  // bits 30:20
};
// SMMU_EVENTQ_CONS (page 1), written by software.
struct EVENTQ_CONS : reg::Register<EVENTQ_CONS, uint32_t, kPage1Offset + 0x00ac, "EVENTQ_CONS"> {
  using RD = reg::Field<19, 0, "RD">;         // read index and wrap flag
  using OVACKFLG = reg::Bit<31, "OVACKFLG">;  // overflow acknowledged: copy of PROD.OVFLG
  using Fields = reg::FieldList<RD, OVACKFLG>;
  static constexpr uint32_t kRes0 = 0x7ff00000;  // bits 30:20
};
// SMMU_PRIQ_PROD (page 1), written by the SMMU.
struct PRIQ_PROD : reg::Register<PRIQ_PROD, uint32_t, kPage1Offset + 0x00c8, "PRIQ_PROD"> {
  using WR = reg::Field<19, 0, "WR">;   // write index and wrap flag
  using OVFLG = reg::Bit<31, "OVFLG">;  // toggled when requests were lost to overflow
  using Fields = reg::FieldList<WR, OVFLG>;
  static constexpr uint32_t kRes0 = 0x7ff00000;  // bits 30:20
};
// SMMU_PRIQ_CONS (page 1, 6.3.98), written by software.
struct PRIQ_CONS : reg::Register<PRIQ_CONS, uint32_t, kPage1Offset + 0x00cc, "PRIQ_CONS"> {
  using RD = reg::Field<19, 0, "RD">;         // read index and wrap flag
  using OVACKFLG = reg::Bit<31, "OVACKFLG">;  // overflow acknowledged: copy of PROD.OVFLG
  using Fields = reg::FieldList<RD, OVACKFLG>;
  static constexpr uint32_t kRes0 = 0x7ff00000;  // bits 30:20
};

// Entry sizes (4.1.1, 7.3, chapter 8) and the largest queue (IDR1.*QS <= 19).
inline constexpr size_t kCmdqEntryBytes = 16, kEventqEntryBytes = 32, kPriqEntryBytes = 16;
inline constexpr unsigned kMaxQueueLog2Size = 19;

// Queue pointer arithmetic on WR/RD values of a queue with 2^qs entries. Bits above the wrap
// flag (OVFLG, ERR, RES0) are ignored, so whole register values may be passed. The queue is
// empty when index and wrap are equal, full when the indexes are equal and the wraps differ.
constexpr uint32_t queue_ptr_mask(unsigned qs) {
  if (qs > kMaxQueueLog2Size) STRATA_BUG("queue larger than 2^19 entries");
  return (uint32_t{2} << qs) - 1;  // wrap flag and index
}
constexpr uint32_t queue_index(uint32_t ptr, unsigned qs) {
  return ptr & (queue_ptr_mask(qs) >> 1);
}
constexpr uint32_t queue_wrap(uint32_t ptr, unsigned qs) {
  return (ptr & queue_ptr_mask(qs)) >> qs;
}
// Entries between CONS and PROD (0 .. 2^qs).
constexpr uint32_t queue_used(uint32_t prod, uint32_t cons, unsigned qs) {
  return (prod - cons) & queue_ptr_mask(qs);
}
constexpr uint32_t queue_free(uint32_t prod, uint32_t cons, unsigned qs) {
  return (uint32_t{1} << qs) - queue_used(prod, cons, qs);
}
constexpr bool queue_empty(uint32_t prod, uint32_t cons, unsigned qs) {
  return ((prod ^ cons) & queue_ptr_mask(qs)) == 0;
}
constexpr bool queue_full(uint32_t prod, uint32_t cons, unsigned qs) {
  return ((prod ^ cons) & queue_ptr_mask(qs)) == (uint32_t{1} << qs);
}
// `ptr` moved on by n entries (n <= 2^qs), toggling the wrap flag on passing the end; the bits
// above the wrap flag are kept (Linux keeps OVFLG the same way).
constexpr uint32_t queue_advance(uint32_t ptr, uint32_t n, unsigned qs) {
  const uint32_t mask = queue_ptr_mask(qs);
  if (n > (uint32_t{1} << qs)) STRATA_BUG("queue advanced by more than its size");
  return (ptr & ~mask) | ((ptr + n) & mask);
}

}  // namespace strata::smmuv3
