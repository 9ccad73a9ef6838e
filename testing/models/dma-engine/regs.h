// SPDX-License-Identifier: MIT
// The DMA test engine's programming interface: one 4 KiB register block per engine.
//
// The engine is our own device, in the spirit of Arm's SMMUv3 Test Engine (a Fast Models
// component that copies, fills and sums memory through an SMMU and signals completion by
// MSI). Its layout is not Arm's: there is no specification to pin, so this header and
// Documentation/models/dma-engine.md are the specification, and regs_test.cc types the offsets
// and reset values in from the table below, not from these types.
//
//   offset  name         width  access  reset       what
//   0x000   IDR0         32     RO      0x45414d44  "DMAE" in memory byte order
//   0x004   IDR1         32     RO      see IDR1    what this engine can do
//   0x008   STREAMID     32     RO      StreamID    fixed by the platform (its bus wiring)
//   0x00c   SUBSTREAMID  32     RW      0           SSV and SubstreamID of the next job
//   0x010   CTRL         32     RW      0           interrupts and transaction attributes
//   0x018   PATTERN      64     RW      0           what FILL writes, little-endian, repeated
//   0x020   SRC          64     RW      0           source IOVA (COPY, CHECKSUM)
//   0x028   DST          64     RW      0           destination IOVA (COPY, FILL)
//   0x030   LEN          64     RW      0           bytes
//   0x038   MSI_ADDR     64     RW      0           completion MSI address; 0 sends none
//   0x040   MSI_DATA     32     RW      0           completion MSI payload
//   0x044   CMD          32     WO      0           doorbell: a non-zero OP starts a job
//   0x048   STATUS       32     RO/W1C  0           state, fault kind, sticky errors
//   0x04c   COMPLETIONS  32     RO      0           jobs completed since reset (wraps)
//   0x050   DONE         64     RO      0           bytes the current or last job transferred
//   0x058   FAULT_ADDR   64     RO      0           IOVA of the transaction that failed
//   0x060   CHECKSUM     64     RO      0           FNV-1a 64 of the bytes the job transferred
// Every other offset of the block is a hole: RAZ/WI, and a guest error (RegisterFile's rules,
// which also allow a 64-bit register to be accessed as two 32-bit halves).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "arch/reg.h"

namespace strata::sim::dma_engine {

// One engine's register block.
inline constexpr size_t kRegisterBlockBytes = 0x1000;

// IDR0: identifies the block ("DMAE" read as bytes from offset 0).
struct IDR0 : reg::Register<IDR0, uint32_t, 0x000, "IDR0"> {
  using IDENT = reg::Field<31, 0, "IDENT">;
  using Fields = reg::FieldList<IDENT>;
};
inline constexpr uint32_t kIdent = 0x45414d44;

// IDR1: the engine's capabilities.
struct IDR1 : reg::Register<IDR1, uint32_t, 0x004, "IDR1"> {
  using SSIDSIZE = reg::Field<4, 0, "SSIDSIZE">;  // SubstreamID bits it can send: 20
  using MSI = reg::Bit<8, "MSI">;                 // completion MSIs supported: 1
  using WIRED = reg::Bit<9, "WIRED">;             // a wired completion line is connected
  using VERSION = reg::Field<31, 24, "VERSION">;  // this layout: 1
  using Fields = reg::FieldList<SSIDSIZE, MSI, WIRED, VERSION>;
};
inline constexpr unsigned kSsidSize = 20;
inline constexpr unsigned kVersion = 1;

// STREAMID: the StreamID every transaction of this engine carries. Read-only: on real
// hardware it is fixed by where the device sits (an IORT ID mapping, a DT iommu-map).
struct STREAMID : reg::Register<STREAMID, uint32_t, 0x008, "STREAMID"> {
  using SID = reg::Field<31, 0, "SID">;
  using Fields = reg::FieldList<SID>;
};

// SUBSTREAMID: whether the next job's transactions carry a SubstreamID (PASID), and which.
struct SUBSTREAMID : reg::Register<SUBSTREAMID, uint32_t, 0x00c, "SUBSTREAMID"> {
  using SSID = reg::Field<19, 0, "SSID">;  // SubstreamID
  using SSV = reg::Bit<31, "SSV">;         // SubstreamID valid
  using Fields = reg::FieldList<SSID, SSV>;
  static constexpr uint32_t kRes0 = 0x7ff00000;  // bits 30:20
};

// CTRL: how the next job signals completion and what its transactions look like.
struct CTRL : reg::Register<CTRL, uint32_t, 0x010, "CTRL"> {
  using IRQEN = reg::Bit<0, "IRQEN">;  // completion pulses the wired line
  using MSIEN = reg::Bit<1, "MSIEN">;  // completion writes MSI_DATA to MSI_ADDR
  using PRIV = reg::Bit<2, "PRIV">;    // transactions are privileged (SMMU PnU = 1)
  using INSTR = reg::Bit<3, "INSTR">;  // reads are instruction fetches (SMMU InD = 1)
  using Fields = reg::FieldList<IRQEN, MSIEN, PRIV, INSTR>;
  static constexpr uint32_t kRes0 = 0xfffffff0;
};

struct PATTERN : reg::Register<PATTERN, uint64_t, 0x018, "PATTERN"> {
  using VALUE = reg::Field<63, 0, "VALUE">;
  using Fields = reg::FieldList<VALUE>;
};
struct SRC : reg::Register<SRC, uint64_t, 0x020, "SRC"> {
  using ADDR = reg::Addr<63, 0, "ADDR">;
  using Fields = reg::FieldList<ADDR>;
};
struct DST : reg::Register<DST, uint64_t, 0x028, "DST"> {
  using ADDR = reg::Addr<63, 0, "ADDR">;
  using Fields = reg::FieldList<ADDR>;
};
struct LEN : reg::Register<LEN, uint64_t, 0x030, "LEN"> {
  using BYTES = reg::Field<63, 0, "BYTES">;
  using Fields = reg::FieldList<BYTES>;
};

// MSI_ADDR/MSI_DATA: the completion MSI, a 32-bit write the engine makes as a DMA transaction
// of its own StreamID (no SubstreamID, as PCIe MSIs carry no PASID): behind an SMMU the
// address is an IOVA, which the OS must map to the doorbell (Linux's MSI cookie).
struct MSI_ADDR : reg::Register<MSI_ADDR, uint64_t, 0x038, "MSI_ADDR"> {
  using ADDR = reg::Addr<63, 2, "ADDR">;  // 4-byte aligned; 0 sends no MSI
  using Fields = reg::FieldList<ADDR>;
  static constexpr uint64_t kRes0 = 0x3;
};
struct MSI_DATA : reg::Register<MSI_DATA, uint32_t, 0x040, "MSI_DATA"> {
  using DATA = reg::Field<31, 0, "DATA">;
  using Fields = reg::FieldList<DATA>;
};

// CMD: the doorbell. Write-only (reads 0). A write of a non-zero OP while the engine is not
// BUSY latches SUBSTREAMID, CTRL, PATTERN, SRC, DST, LEN, MSI_ADDR and MSI_DATA and starts a
// job with them; a write while BUSY is ignored and sets STATUS.BUSY_ERR. OP 0 does nothing.
struct CMD : reg::Register<CMD, uint32_t, 0x044, "CMD"> {
  using OP = reg::Field<3, 0, "OP">;
  using Fields = reg::FieldList<OP>;
  static constexpr uint32_t kRes0 = 0xfffffff0;
};
enum class Op : uint8_t {
  kNop = 0,
  kCopy = 1,      // LEN bytes from SRC to DST, ascending, page by page
  kFill = 2,      // LEN bytes of PATTERN to DST (byte i is PATTERN byte i % 8)
  kChecksum = 3,  // read LEN bytes from SRC into CHECKSUM
  // 4..15: unknown, the job ends at once with FAULT = BAD_CMD
};

// STATUS: the engine's state and how the last job ended.
struct STATUS : reg::Register<STATUS, uint32_t, 0x048, "STATUS"> {
  using STATE = reg::Field<1, 0, "STATE">;         // State
  using FAULT = reg::Field<6, 4, "FAULT">;         // FaultKind of the last job
  using FAULT_WRITE = reg::Bit<8, "FAULT_WRITE">;  // the failed transaction was a write
  using BUSY_ERR = reg::Bit<16, "BUSY_ERR">;       // W1C: a doorbell arrived while BUSY (ignored)
  using MSI_ABT = reg::Bit<17, "MSI_ABT">;         // W1C: a completion MSI write did not complete
  using Fields = reg::FieldList<STATE, FAULT, FAULT_WRITE, BUSY_ERR, MSI_ABT>;
  static constexpr uint32_t kW1c = BUSY_ERR::kMask | MSI_ABT::kMask;
};
enum class State : uint8_t {
  kIdle = 0,   // no job since reset
  kBusy = 1,   // a job is running
  kDone = 2,   // the last job transferred every byte
  kFault = 3,  // the last job stopped early: see FAULT
};
enum class FaultKind : uint8_t {
  kNone = 0,
  kAbort = 1,       // the IOMMU terminated a transaction with an abort
  kBusError = 2,    // no memory or device answered the (translated) address
  kBadCommand = 3,  // CMD.OP is not an operation: nothing was transferred
};

struct COMPLETIONS : reg::Register<COMPLETIONS, uint32_t, 0x04c, "COMPLETIONS"> {
  using COUNT = reg::Field<31, 0, "COUNT">;
  using Fields = reg::FieldList<COUNT>;
};
// DONE: bytes transferred (COPY, FILL: written to DST; CHECKSUM: read from SRC). Updated after
// every page while BUSY, final when STATE leaves BUSY.
struct DONE : reg::Register<DONE, uint64_t, 0x050, "DONE"> {
  using BYTES = reg::Field<63, 0, "BYTES">;
  using Fields = reg::FieldList<BYTES>;
};
// FAULT_ADDR: the input address (IOVA) of the first byte of the transaction that failed: SRC +
// DONE for a read, DST + DONE for a write. 0 unless STATE is FAULT with ABORT or BUS_ERROR.
struct FAULT_ADDR : reg::Register<FAULT_ADDR, uint64_t, 0x058, "FAULT_ADDR"> {
  using ADDR = reg::Addr<63, 0, "ADDR">;
  using Fields = reg::FieldList<ADDR>;
};
// CHECKSUM: FNV-1a 64 over the DONE bytes, in address order (the basis, 0xcbf29ce484222325,
// for none).
struct CHECKSUM : reg::Register<CHECKSUM, uint64_t, 0x060, "CHECKSUM"> {
  using VALUE = reg::Field<63, 0, "VALUE">;
  using Fields = reg::FieldList<VALUE>;
};

// FNV-1a 64 (Fowler/Noll/Vo): chosen over a word sum because it sees byte order, so a copy
// that lands shuffled does not checksum equal.
inline constexpr uint64_t kFnvBasis = 0xcbf29ce484222325;
inline constexpr uint64_t kFnvPrime = 0x100000001b3;
inline uint64_t fnv1a(uint64_t hash, const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < len; ++i) hash = (hash ^ p[i]) * kFnvPrime;
  return hash;
}

constexpr const char* name(Op op) {
  switch (op) {
    case Op::kNop: return "NOP";
    case Op::kCopy: return "COPY";
    case Op::kFill: return "FILL";
    case Op::kChecksum: return "CHECKSUM";
  }
  return "unknown";
}
constexpr const char* name(State s) {
  switch (s) {
    case State::kIdle: return "IDLE";
    case State::kBusy: return "BUSY";
    case State::kDone: return "DONE";
    case State::kFault: return "FAULT";
  }
  return "?";
}
constexpr const char* name(FaultKind f) {
  switch (f) {
    case FaultKind::kNone: return "NONE";
    case FaultKind::kAbort: return "ABORT";
    case FaultKind::kBusError: return "BUS_ERROR";
    case FaultKind::kBadCommand: return "BAD_CMD";
  }
  return "?";
}

}  // namespace strata::sim::dma_engine
