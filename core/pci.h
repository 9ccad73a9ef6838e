// SPDX-License-Identifier: MIT
// What PCI topology means for an IOMMU: the requester IDs a function's DMA carries, and which
// functions cannot be isolated from each other (Linux's pci_for_each_dma_alias and the walk in
// pci_device_group).
#pragma once

#include <stdint.h>

#include "arch/result.h"
#include "core/device.h"

namespace strata {

// Calls fn(uint16_t rid) for every requester ID the IOMMU may see in `pdev`'s DMA (Linux's
// pci_for_each_dma_alias): its own, its quirk aliases, and the ID of each bridge on the path
// that takes ownership of the transactions (a PCIe-to-PCI bridge uses (secondary bus, 00.0), a
// conventional PCI bridge its own ID; PCIe ports forward IDs unchanged). Stops at the first
// error fn returns. An ID may be reported more than once.
template <typename Fn>
Result<void> pci_for_each_dma_alias(const PciDev& pdev, Fn&& fn) {
  STRATA_TRY(fn(pdev.rid()));
  for (unsigned i = 0; i < pdev.nr_dma_aliases && i < 4; i++)
    STRATA_TRY(fn(static_cast<uint16_t>(pdev.bus << 8 | pdev.dma_alias_devfn[i])));
  for (const PciDev* b = pdev.upstream; b; b = b->upstream) {
    switch (b->type) {
      case PciType::pcie_to_pci_bridge:
        STRATA_TRY(fn(static_cast<uint16_t>(b->secondary_bus << 8)));
        break;
      case PciType::pci_bridge: STRATA_TRY(fn(b->rid())); break;
      default: break;
    }
  }
  return {};
}

// Identifies the isolation boundary of `pdev`: two functions with the same key must share a
// group. The boundary is the topmost bridge on the path to the root whose own path is not
// fully ACS-isolated (a switch or bridge without ACS lets everything below it talk peer to
// peer, and conventional PCI bridges alias everything behind them), else the function itself;
// when that is a function of a multifunction device without ACS, the whole slot.
uint64_t pci_isolation_key(const PciDev& pdev);

// Whether `a` and `b` share a requester ID through quirk aliases (Linux's
// pci_devs_are_dma_aliases).
bool pci_devs_are_dma_aliases(const PciDev& a, const PciDev& b);

}  // namespace strata
