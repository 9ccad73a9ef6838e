// SPDX-License-Identifier: MIT
#include "core/pci.h"

namespace strata {

namespace {

// Whether `d` keeps peer-to-peer traffic from bypassing the IOMMU where it sits (Linux's
// pci_acs_enabled with REQ_ACS_FLAGS). Ports need the capability enabled. Single-function
// endpoints and upstream ports need none: there is nothing for them to redirect (PCIe 6.0,
// 6.12.1.3); multifunction ones need it between their functions. Conventional PCI and PCIe-to-
// PCI bridges never have it (6.12.1: "ACS is never applicable" to them).
bool acs_isolates(const PciDev& d) {
  switch (d.type) {
    case PciType::root_port:
    case PciType::downstream_port: return d.acs;
    case PciType::endpoint:
    case PciType::rc_endpoint:
    case PciType::upstream_port: return !d.multifunction || d.acs;
    case PciType::pcie_to_pci_bridge:
    case PciType::pci_bridge:
    case PciType::conventional: return false;
  }
  return false;
}

// b and every bridge above it isolate (Linux's pci_acs_path_enabled).
bool acs_path_enabled(const PciDev* b) {
  for (; b; b = b->upstream)
    if (!acs_isolates(*b)) return false;
  return true;
}

constexpr uint64_t kKeyFunction = uint64_t{1} << 32;  // one function (or bridge)
constexpr uint64_t kKeySlot = uint64_t{2} << 32;      // every function of a slot

uint64_t key_of(uint64_t kind, uint16_t segment, uint16_t rid) {
  return kind | uint64_t{segment} << 16 | rid;
}

bool has_alias(const PciDev& dev, uint8_t devfn) {
  for (unsigned i = 0; i < dev.nr_dma_aliases && i < 4; i++)
    if (dev.dma_alias_devfn[i] == devfn) return true;
  return false;
}

}  // namespace

uint64_t pci_isolation_key(const PciDev& pdev) {
  const PciDev* d = &pdev;
  // Walk towards the root; stop at the first bridge below which everything is isolated.
  for (const PciDev* b = pdev.upstream; b; b = b->upstream) {
    if (acs_path_enabled(b)) break;
    d = b;
  }
  // Functions of one device reach each other internally unless the device has ACS
  // (PCIe 6.0, 6.12.1.2 "ACS Functions in Multi-Function Devices").
  if (d->multifunction && !acs_isolates(*d))
    return key_of(kKeySlot, d->segment, static_cast<uint16_t>(d->rid() & ~0x7u));
  return key_of(kKeyFunction, d->segment, d->rid());
}

bool pci_devs_are_dma_aliases(const PciDev& a, const PciDev& b) {
  if (a.segment != b.segment || a.bus != b.bus) return false;
  return has_alias(a, b.devfn) || has_alias(b, a.devfn);
}

}  // namespace strata
