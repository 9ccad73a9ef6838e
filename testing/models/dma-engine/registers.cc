// SPDX-License-Identifier: MIT
#include "testing/models/dma-engine/registers.h"

#include <utility>

namespace strata::sim::dma_engine {

EngineRegisters::EngineRegisters(std::string name, uint32_t stream_id, bool wired,
                                 Doorbell doorbell)
    : RegisterFile(std::move(name)) {
  constexpr uint32_t kAll32 = ~uint32_t{0};
  constexpr uint64_t kAll64 = ~uint64_t{0};

  define32(IDR0::kOffset, IDR0::kName, kIdent, 0);
  define32(IDR1::kOffset, IDR1::kName,
           IDR1{}
               .set<IDR1::SSIDSIZE>(kSsidSize)
               .set<IDR1::MSI>(1)
               .set<IDR1::WIRED>(wired)
               .set<IDR1::VERSION>(kVersion)
               .value(),
           0);
  define32(STREAMID::kOffset, STREAMID::kName, stream_id, 0);
  define32(SUBSTREAMID::kOffset, SUBSTREAMID::kName, 0,
           SUBSTREAMID::SSID::kMask | SUBSTREAMID::SSV::kMask);
  define32(CTRL::kOffset, CTRL::kName, 0, ~CTRL::kRes0);
  define64(PATTERN::kOffset, PATTERN::kName, 0, kAll64);
  define64(SRC::kOffset, SRC::kName, 0, kAll64);
  define64(DST::kOffset, DST::kName, 0, kAll64);
  define64(LEN::kOffset, LEN::kName, 0, kAll64);
  define64(MSI_ADDR::kOffset, MSI_ADDR::kName, 0, ~MSI_ADDR::kRes0);
  define32(MSI_DATA::kOffset, MSI_DATA::kName, 0, kAll32);
  // The doorbell acts on the write itself (the hook runs even when the value is unchanged);
  // the stored OP is hidden from reads, as a command register's is.
  define32(CMD::kOffset, CMD::kName, 0, CMD::OP::kMask, 0, CMD::OP::kMask)
      .on_write([doorbell = std::move(doorbell)](uint64_t, uint64_t new_value) {
        doorbell(static_cast<uint32_t>(CMD::OP::extract(new_value)));
      });
  define32(STATUS::kOffset, STATUS::kName, 0, 0, STATUS::kW1c);
  define32(COMPLETIONS::kOffset, COMPLETIONS::kName, 0, 0);
  define64(DONE::kOffset, DONE::kName, 0, 0);
  define64(FAULT_ADDR::kOffset, FAULT_ADDR::kName, 0, 0);
  define64(CHECKSUM::kOffset, CHECKSUM::kName, 0, 0);
}

}  // namespace strata::sim::dma_engine
