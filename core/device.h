// SPDX-License-Identifier: MIT
// A device that issues DMA, as the iommu core sees it (the parts of Linux's struct device,
// struct pci_dev and struct iommu_fwspec that the core uses).
//
// The OS's bus layer owns Device objects and describes each one with a DeviceDesc: which
// IOMMU translates it and with which IDs (from IORT / DMAR), its PASID width, ATS and PRI, and
// for PCI its place in the topology (PciDev). The core adds its own state (iommu, group,
// driver-private data, fault handler) at iommu_probe_device() and removes it at
// iommu_release_device(); a Device must stay where it is in memory in between.
#pragma once

#include <stdint.h>

#include <atomic>

#include <boost/intrusive/list_hook.hpp>

#include "arch/result.h"
#include "core/fault.h"
#include "core/pasid/pasid.h"

namespace strata {

class Group;
class IommuDevice;

// PCI function types that matter for isolation and DMA aliasing (PCIe 6.0, 7.5.3.2 Device/Port
// Type, plus conventional PCI).
enum class PciType : uint8_t {
  endpoint,            // PCIe endpoint or legacy endpoint
  rc_endpoint,         // root-complex integrated endpoint
  root_port,           // PCIe root port
  upstream_port,       // switch upstream port
  downstream_port,     // switch downstream port
  pcie_to_pci_bridge,  // PCIe to conventional PCI/PCI-X bridge
  pci_bridge,          // conventional PCI-to-PCI bridge
  conventional,        // a conventional PCI function (no PCIe capability)
};

// One PCI function of the topology. The OS fills these in during enumeration; the core only
// reads them. `upstream` is the bridge whose secondary bus this function sits on (nullptr on a
// root bus): following it gives the path that every DMA of the function travels to the root
// complex, which is what decides isolation (groups) and the requester IDs the IOMMU sees.
struct PciDev {
  uint16_t segment = 0;
  uint8_t bus = 0;
  uint8_t devfn = 0;  // device << 3 | function
  PciType type = PciType::endpoint;
  const PciDev* upstream = nullptr;
  // For bridges and ports: the bus number behind it (a PCIe-to-PCI bridge takes ownership of
  // transactions from its secondary bus with requester ID (secondary, 0.0); PCIe-to-PCI/PCI-X
  // Bridge spec 1.0, 2.3).
  uint8_t secondary_bus = 0;
  // The ACS capability with Source Validation, P2P Request Redirect, P2P Completion Redirect
  // and Upstream Forwarding enabled (Linux's REQ_ACS_FLAGS; PCIe 6.0, 6.12). Root and
  // downstream ports need it to isolate what is below them from their peers; multifunction
  // devices to isolate their functions from each other. Others ignore it (pci.cc).
  bool acs = false;
  bool multifunction = false;
  // Requester IDs this function also uses on its bus (Linux's pci_add_dma_alias quirks:
  // phantom functions, devices that DMA with another function's ID).
  uint8_t nr_dma_aliases = 0;
  uint8_t dma_alias_devfn[4] = {};

  uint16_t rid() const { return static_cast<uint16_t>(bus << 8 | devfn); }
  bool is_pcie_port() const {
    return type == PciType::root_port || type == PciType::upstream_port ||
           type == PciType::downstream_port;
  }
};

// The IOMMU and the IDs its DMA carries (Linux's struct iommu_fwspec), from firmware.
struct IommuFwspec {
  static constexpr unsigned kMaxIds = 8;

  IommuDevice* iommu = nullptr;  // nullptr: no IOMMU translates this device
  uint32_t ids[kMaxIds] = {};    // Arm StreamIDs; for a PCI device on VT-d, its requester IDs
  unsigned num_ids = 0;
};

struct DeviceDesc {
  const char* name = "";
  IommuFwspec fwspec = {};
  const PciDev* pci = nullptr;  // nullptr: a platform device
  unsigned pasid_bits = 0;      // PASID (PCIe) or SubstreamID (Arm) width; 0: none
  bool ats = false;             // Address Translation Services
  bool pri = false;             // Page Request Interface (recoverable faults)
};

class Device {
 public:
  explicit Device(const DeviceDesc& desc) : desc_(desc) {}
  ~Device() { STRATA_BUG_ON(iommu_ != nullptr); }  // iommu_release_device() first
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  const char* name() const { return desc_.name; }
  const DeviceDesc& desc() const { return desc_; }
  const IommuFwspec& fwspec() const { return desc_.fwspec; }
  const PciDev* pci() const { return desc_.pci; }

  // Set between iommu_probe_device() and iommu_release_device().
  IommuDevice* iommu() const { return iommu_; }
  Group* group() const { return group_; }
  // PASIDs usable with this device: min(its width, the IOMMU's); 0 when none (Linux's
  // dev->iommu->max_pasids).
  uint32_t max_pasids() const { return max_pasids_; }

  // The vendor driver's per-device data (Linux's dev_iommu_priv_get/set).
  void* iommu_priv() const { return priv_; }
  void set_iommu_priv(void* priv) { priv_ = priv; }

 private:
  // The core's own state is reached through these, never by drivers or users.
  friend class Group;
  friend class IommuDevice;
  friend class IopfQueue;
  friend struct IommuCore;

  using Hook = boost::intrusive::list_member_hook<
      boost::intrusive::link_mode<boost::intrusive::normal_link>>;

  const DeviceDesc desc_;

  // Written at probe and release under the IOMMU's probe lock (iommu.h); read without it by
  // whoever holds a probed device.
  IommuDevice* iommu_ = nullptr;
  Group* group_ = nullptr;
  void* priv_ = nullptr;
  uint32_t max_pasids_ = 0;
  Hook group_node_;  // in Group::devices_, under the group's mutex

  // Under the group's mutex: a kernel driver is bound and uses the default domain.
  bool driver_bound_ = false;

  // Fault reporting (fault.h, iopf.h): under fault_.lock.
  FaultParam fault_;
};

}  // namespace strata
