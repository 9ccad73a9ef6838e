// SPDX-License-Identifier: MIT
// The iommu core's object model (iommu.h): registration, probe and release, default domains,
// groups from PCI topology, attach with rollback, DMA ownership, PASID attach, nested domains,
// and how missing optional ops degrade. Checked through what the fake driver has installed
// and the error codes.
#include <string.h>

#include <vector>

#include <doctest/doctest.h>

#include "core/core_test_support.h"
#include "core/pci.h"

namespace strata {
namespace {

using fake::FakeIommu;
using test::code_of;
using test::CoreFixture;
using test::ProbedDevice;

TEST_CASE("registration: config, twice, unregister while devices are probed") {
  auto platform = sim::Platform::create().release_value();
  FakeIommu fake({.dma = &platform->dma()});
  Device dev({.name = "dev", .fwspec = {.iommu = &fake}});
  CHECK(code_of(iommu_probe_device(dev)) == -ENODEV);  // not registered yet
  CHECK(!fake.probed(dev));
  CHECK(code_of(iommu_device_register(fake, {.def_domain_type = DomainType::paging})) == -EINVAL);
  CHECK(code_of(iommu_device_register(fake, {})) == 0);
  CHECK(code_of(iommu_device_register(fake, {})) == -EBUSY);
  REQUIRE(iommu_probe_device(dev).ok());
  CHECK(code_of(iommu_device_unregister(fake)) == -EBUSY);
  iommu_release_device(dev);
  CHECK(code_of(iommu_device_unregister(fake)) == 0);
  CHECK(fake.violations().empty());
}

TEST_CASE("probe: a device without an IOMMU, and a second probe") {
  CoreFixture f;
  Device none({.name = "none"});
  CHECK(code_of(iommu_probe_device(none)) == -ENODEV);
  CHECK(none.group() == nullptr);
  CHECK(iommu_get_domain_for_dev(none) == nullptr);
  CHECK(code_of(iommu_device_use_default_domain(none)) == 0);  // nothing to own

  ProbedDevice d(f.desc("d"));
  Domain* def = iommu_get_domain_for_dev(d.dev);
  REQUIRE(def);
  CHECK(code_of(iommu_probe_device(d.dev)) == 0);
  CHECK(iommu_get_domain_for_dev(d.dev) == def);
  CHECK(f.fake.attach_calls == 1);
}

TEST_CASE("probe attaches a default DMA domain; release takes everything back") {
  CoreFixture f;
  GroupRef ref;
  {
    ProbedDevice d(f.desc("d", nullptr, 8));
    CHECK(d.dev.iommu() == &f.fake);
    CHECK(d.dev.max_pasids() == 256);
    REQUIRE(d.dev.group());
    ref = iommu_group_get(d.dev);
    Domain* def = ref->default_domain();
    REQUIRE(def);
    CHECK(def->type() == DomainType::dma);
    CHECK(ref->domain() == def);
    CHECK(f.fake.installed(d.dev) == def);
    CHECK(def->pgsize_bitmap() == (SZ_16K | SZ_32M));
    CHECK(def->users() == 1);
    CHECK(f.fake.live_domains == 1);
  }
  // The group outlives its last device while referenced, empty and detached.
  CHECK(ref->nr_devices() == 0);
  CHECK(ref->domain() == nullptr);
  CHECK(ref->default_domain() == nullptr);
  CHECK(f.fake.live_domains == 0);
}

TEST_CASE("max_pasids is the smaller of the device's and the IOMMU's") {
  CoreFixture f({.max_pasids = 1u << 4});
  ProbedDevice wide(f.desc("wide", nullptr, 20));
  ProbedDevice none(f.desc("none"));
  CHECK(wide.dev.max_pasids() == 16);
  CHECK(none.dev.max_pasids() == 0);
}

TEST_CASE("default domain type: configured, driver-required, unsupported, lazy") {
  SUBCASE("identity configured") {
    CoreFixture f({}, {.def_domain_type = DomainType::identity});
    ProbedDevice d(f.desc("d"));
    CHECK(iommu_get_domain_for_dev(d.dev)->type() == DomainType::identity);
  }
  SUBCASE("identity configured but the driver has none: DMA") {
    CoreFixture f({.identity = false}, {.def_domain_type = DomainType::identity});
    hosted::LogCapture log;
    ProbedDevice d(f.desc("d"));
    CHECK(iommu_get_domain_for_dev(d.dev)->type() == DomainType::dma);
  }
  SUBCASE("identity required by the driver but not available: probe fails whole") {
    CoreFixture f({.identity = false, .required_type = {{"d", DomainType::identity}}});
    Device d(f.desc("d"));
    CHECK(code_of(iommu_probe_device(d)) == -EOPNOTSUPP);
    CHECK(d.iommu() == nullptr);
    CHECK(d.group() == nullptr);
    CHECK(!f.fake.probed(d));
  }
  SUBCASE("identity required by the driver") {
    CoreFixture f({.required_type = {{"d", DomainType::identity}}});
    ProbedDevice d(f.desc("d"));
    ProbedDevice e(f.desc("e"));
    CHECK(iommu_get_domain_for_dev(d.dev)->type() == DomainType::identity);
    CHECK(iommu_get_domain_for_dev(e.dev)->type() == DomainType::dma);
  }
  SUBCASE("lazy configured, but the IOMMU says deferred flushing does not pay") {
    CoreFixture f({}, {.def_domain_type = DomainType::dma_fq});
    ProbedDevice d(f.desc("d"));
    CHECK(iommu_get_domain_for_dev(d.dev)->type() == DomainType::dma);
  }
  SUBCASE("lazy configured and worth it") {
    CoreFixture f({.deferred_flush = true}, {.def_domain_type = DomainType::dma_fq});
    ProbedDevice d(f.desc("d"));
    CHECK(iommu_get_domain_for_dev(d.dev)->type() == DomainType::dma_fq);
  }
}

// ---- Groups from PCI topology ----

struct Topology {
  //  root bus 0: RP 00:01.0 (ACS) -> bus 1: EP 01:00.0
  //              RP 00:02.0 (ACS) -> bus 2: switch US 02:00.0 -> bus 3: DS 03:00.0 -> bus 4: EP
  //                                                                   DS 03:01.0 -> bus 5: EP
  //              RP 00:03.0 (ACS) -> bus 6: PCIe-to-PCI bridge 06:00.0 -> bus 7: two conventional
  //              00:04.0 / 00:04.1: a multifunction RC endpoint
  PciDev rp1{.bus = 0, .devfn = 0x08, .type = PciType::root_port, .secondary_bus = 1, .acs = true};
  PciDev ep1{.bus = 1, .devfn = 0x00, .upstream = &rp1};
  PciDev rp2{.bus = 0, .devfn = 0x10, .type = PciType::root_port, .secondary_bus = 2, .acs = true};
  PciDev us{.bus = 2,
            .devfn = 0x00,
            .type = PciType::upstream_port,
            .upstream = &rp2,
            .secondary_bus = 3};
  PciDev ds1{.bus = 3,
             .devfn = 0x00,
             .type = PciType::downstream_port,
             .upstream = &us,
             .secondary_bus = 4,
             .acs = true};
  PciDev ds2{.bus = 3,
             .devfn = 0x08,
             .type = PciType::downstream_port,
             .upstream = &us,
             .secondary_bus = 5,
             .acs = true};
  PciDev ep4{.bus = 4, .devfn = 0x00, .upstream = &ds1};
  PciDev ep5{.bus = 5, .devfn = 0x00, .upstream = &ds2};
  PciDev rp3{.bus = 0, .devfn = 0x18, .type = PciType::root_port, .secondary_bus = 6, .acs = true};
  PciDev bridge{.bus = 6,
                .devfn = 0x00,
                .type = PciType::pcie_to_pci_bridge,
                .upstream = &rp3,
                .secondary_bus = 7};
  PciDev conv_a{.bus = 7, .devfn = 0x20, .type = PciType::conventional, .upstream = &bridge};
  PciDev conv_b{.bus = 7, .devfn = 0x28, .type = PciType::conventional, .upstream = &bridge};
  PciDev mf0{.bus = 0, .devfn = 0x20, .type = PciType::rc_endpoint, .multifunction = true};
  PciDev mf1{.bus = 0, .devfn = 0x21, .type = PciType::rc_endpoint, .multifunction = true};
};

TEST_CASE("PCI groups: ACS below every port isolates each endpoint") {
  CoreFixture f;
  Topology t;
  ProbedDevice a(f.desc("ep1", &t.ep1)), b(f.desc("ep4", &t.ep4)), c(f.desc("ep5", &t.ep5));
  CHECK(a.dev.group() != b.dev.group());
  CHECK(b.dev.group() != c.dev.group());
  CHECK(a.dev.group()->nr_devices() == 1);
}

TEST_CASE("PCI groups: a downstream port without ACS is the boundary of what is below it") {
  CoreFixture f;
  Topology t;
  t.ds1.acs = false;
  ProbedDevice b(f.desc("ep4", &t.ep4)), c(f.desc("ep5", &t.ep5)), a(f.desc("ep1", &t.ep1));
  // ep4's boundary is the port without ACS above it (as in Linux, whose group would hold that
  // port too); ep5's path has ACS at every port, so it stays alone.
  CHECK(b.dev.group() != c.dev.group());
  CHECK(a.dev.group() != b.dev.group());
}

TEST_CASE("PCI groups: a root port without ACS groups the whole hierarchy below it") {
  CoreFixture f;
  Topology t;
  t.rp2.acs = false;
  ProbedDevice b(f.desc("ep4", &t.ep4)), c(f.desc("ep5", &t.ep5)), a(f.desc("ep1", &t.ep1));
  CHECK(b.dev.group() == c.dev.group());
  CHECK(b.dev.group()->nr_devices() == 2);
  CHECK(a.dev.group() != b.dev.group());
  // One domain for the group, installed for both.
  CHECK(f.fake.installed(b.dev) == f.fake.installed(c.dev));
}

TEST_CASE("PCI groups: conventional PCI behind a bridge is one group; its DMA aliases") {
  CoreFixture f;
  Topology t;
  ProbedDevice x(f.desc("conv_a", &t.conv_a)), y(f.desc("conv_b", &t.conv_b));
  CHECK(x.dev.group() == y.dev.group());
  std::vector<uint16_t> rids;
  REQUIRE(pci_for_each_dma_alias(t.conv_a, [&](uint16_t rid) -> Result<void> {
            rids.push_back(rid);
            return {};
          }).ok());
  // Its own ID, then the bridge's (secondary bus, 00.0) that the IOMMU actually sees.
  CHECK(rids == std::vector<uint16_t>{0x0720, 0x0700});
  // An error from the callback stops the walk.
  int calls = 0;
  CHECK(code_of(pci_for_each_dma_alias(t.conv_a, [&](uint16_t) -> Result<void> {
          calls++;
          return Error(-EIO);
        })) == -EIO);
  CHECK(calls == 1);
}

TEST_CASE("PCI groups: multifunction devices with and without ACS") {
  CoreFixture f;
  Topology t;
  SUBCASE("no ACS: the slot is one group") {
    ProbedDevice x(f.desc("mf0", &t.mf0)), y(f.desc("mf1", &t.mf1));
    CHECK(x.dev.group() == y.dev.group());
  }
  SUBCASE("ACS: each function alone") {
    t.mf0.acs = t.mf1.acs = true;
    ProbedDevice x(f.desc("mf0", &t.mf0)), y(f.desc("mf1", &t.mf1));
    CHECK(x.dev.group() != y.dev.group());
  }
}

TEST_CASE("PCI groups: quirk DMA aliases join the group of the device they alias") {
  CoreFixture f;
  PciDev a{.bus = 0, .devfn = 0x30, .nr_dma_aliases = 1, .dma_alias_devfn = {0x31}};
  PciDev b{.bus = 0, .devfn = 0x31};
  PciDev c{.bus = 0, .devfn = 0x38};
  ProbedDevice x(f.desc("a", &a)), y(f.desc("b", &b)), z(f.desc("c", &c));
  CHECK(x.dev.group() == y.dev.group());
  CHECK(z.dev.group() != x.dev.group());
  CHECK(pci_devs_are_dma_aliases(b, a));
  CHECK(!pci_devs_are_dma_aliases(a, c));
}

TEST_CASE("a device that fails to join its group leaves the group as it was") {
  CoreFixture f;
  Topology t;
  t.rp2.acs = false;
  ProbedDevice b(f.desc("ep4", &t.ep4));
  Group* group = b.dev.group();
  Device c(f.desc("ep5", &t.ep5));
  f.fake.fail(FakeIommu::Op::attach, &c, -EIO);
  CHECK(code_of(iommu_probe_device(c)) == -EIO);
  CHECK(group->nr_devices() == 1);
  CHECK(!f.fake.probed(c));
  CHECK(c.group() == nullptr);
  // Joining works once the driver does.
  REQUIRE(iommu_probe_device(c).ok());
  CHECK(c.group() == group);
  iommu_release_device(c);
}

// ---- Attach ----

struct TwoDeviceGroup : CoreFixture {
  TwoDeviceGroup() { t.rp2.acs = false; }
  Topology t;
};

TEST_CASE("attach moves every device of the group, or none") {
  TwoDeviceGroup f;
  Box<Domain> user;  // declared first: released after the devices, which detach it
  ProbedDevice b(f.desc("ep4", &f.t.ep4)), c(f.desc("ep5", &f.t.ep5));
  Group& group = *b.dev.group();
  Domain* def = group.default_domain();
  user = iommu_paging_domain_alloc(b.dev).release_value();
  REQUIRE(iommu_group_claim_dma_owner(group, &f).ok());

  SUBCASE("the second device fails: the first goes back") {
    f.fake.fail(FakeIommu::Op::attach, &c.dev, -ENOSPC);
    CHECK(code_of(iommu_attach_group(*user, group)) == -ENOSPC);
    CHECK(group.domain() != user.get());
    CHECK(f.fake.installed(b.dev) == f.fake.installed(c.dev));
    CHECK(f.fake.installed(b.dev) != user.get());
    CHECK(f.fake.installed(b.dev) != def);  // blocked: the user owns the group
    CHECK(user->users() == 0);
  }
  SUBCASE("both succeed") {
    REQUIRE(iommu_attach_group(*user, group).ok());
    CHECK(group.domain() == user.get());
    CHECK(f.fake.installed(b.dev) == user.get());
    CHECK(f.fake.installed(c.dev) == user.get());
    CHECK(user->users() == 1);
    // A second user domain must replace, not attach over.
    Box<Domain> other = iommu_paging_domain_alloc(b.dev).release_value();
    CHECK(code_of(iommu_attach_group(*other, group)) == -EBUSY);
    REQUIRE(iommu_group_replace_domain(group, *other).ok());
    CHECK(f.fake.installed(c.dev) == other.get());
    CHECK(user->users() == 0);
    iommu_detach_group(*other, group);
    CHECK(f.fake.installed(b.dev)->type() == DomainType::blocked);
  }
  iommu_group_release_dma_owner(group);
  CHECK(f.fake.installed(b.dev) == def);
  CHECK(f.fake.installed(c.dev) == def);
}

TEST_CASE("attach: wrong IOMMU, DMA and SVA domains, single-device API") {
  TwoDeviceGroup f;
  auto platform2 = sim::Platform::create().release_value();
  FakeIommu other({.name = "fake1", .dma = &platform2->dma()});
  REQUIRE(iommu_device_register(other, {}).ok());
  Device o({.name = "o", .fwspec = {.iommu = &other}});
  REQUIRE(iommu_probe_device(o).ok());
  Box<Domain> foreign = iommu_paging_domain_alloc(o).release_value();

  ProbedDevice b(f.desc("ep4", &f.t.ep4)), c(f.desc("ep5", &f.t.ep5)), a(f.desc("ep1", &f.t.ep1));
  REQUIRE(iommu_group_claim_dma_owner(*a.dev.group(), &f).ok());
  CHECK(code_of(iommu_attach_group(*foreign, *a.dev.group())) == -EINVAL);
  CHECK(code_of(iommu_attach_group(*iommu_get_domain_for_dev(b.dev), *a.dev.group())) == -EINVAL);
  Box<Domain> mine = iommu_paging_domain_alloc(a.dev).release_value();
  // The one-device API refuses a group of two.
  CHECK(code_of(iommu_attach_device(*mine, b.dev)) == -EINVAL);
  REQUIRE(iommu_attach_device(*mine, a.dev).ok());
  CHECK(f.fake.installed(a.dev) == mine.get());
  iommu_detach_device(*mine, a.dev);
  iommu_group_release_dma_owner(*a.dev.group());
  iommu_release_device(o);
  CHECK(other.violations().empty());
}

TEST_CASE("DMA ownership: kernel drivers and a user exclude each other") {
  TwoDeviceGroup f;
  ProbedDevice b(f.desc("ep4", &f.t.ep4)), c(f.desc("ep5", &f.t.ep5));
  Group& group = *b.dev.group();
  int vfio = 0, other_user = 0;

  REQUIRE(iommu_device_use_default_domain(b.dev).ok());
  CHECK(code_of(iommu_device_use_default_domain(b.dev)) == -EBUSY);  // bound twice
  CHECK(code_of(iommu_group_claim_dma_owner(group, &vfio)) == -EPERM);
  CHECK(!group.dma_owner_claimed());
  iommu_device_unuse_default_domain(b.dev);

  REQUIRE(iommu_group_claim_dma_owner(group, &vfio).ok());
  CHECK(group.dma_owner_claimed());
  // Blocked until the user attaches its own domain.
  CHECK(f.fake.installed(b.dev)->type() == DomainType::blocked);
  CHECK(code_of(iommu_device_use_default_domain(c.dev)) == -EBUSY);
  CHECK(code_of(iommu_group_claim_dma_owner(group, &other_user)) == -EPERM);
  CHECK(code_of(iommu_device_claim_dma_owner(c.dev, &other_user)) == -EPERM);
  CHECK(code_of(iommu_group_claim_dma_owner(group, nullptr)) == -EINVAL);
  iommu_group_release_dma_owner(group);
  CHECK(f.fake.installed(b.dev) == group.default_domain());

  // Per-device claims by one owner nest; the last release gives the group back.
  REQUIRE(iommu_device_claim_dma_owner(b.dev, &vfio).ok());
  REQUIRE(iommu_device_claim_dma_owner(c.dev, &vfio).ok());
  iommu_device_release_dma_owner(b.dev);
  CHECK(group.dma_owner_claimed());
  iommu_device_release_dma_owner(c.dev);
  CHECK(!group.dma_owner_claimed());
  REQUIRE(iommu_device_use_default_domain(c.dev).ok());
  iommu_device_unuse_default_domain(c.dev);
}

TEST_CASE("DMA ownership: a kernel user's own domain blocks drivers and claims") {
  CoreFixture f;
  ProbedDevice d(f.desc("d"));
  Group& group = *d.dev.group();
  Box<Domain> mine = iommu_paging_domain_alloc(d.dev).release_value();
  REQUIRE(iommu_attach_group(*mine, group).ok());
  CHECK(code_of(iommu_device_use_default_domain(d.dev)) == -EBUSY);
  CHECK(code_of(iommu_group_claim_dma_owner(group, &f)) == -EBUSY);
  CHECK(code_of(iommu_group_replace_domain(group, *mine)) == -EPERM);  // not a user's group
  iommu_detach_group(*mine, group);
  CHECK(f.fake.installed(d.dev) == group.default_domain());
}

TEST_CASE("releasing the owner detaches whatever the user left behind") {
  CoreFixture f;
  Box<Domain> user;
  ProbedDevice d(f.desc("d", nullptr, 8));
  Group& group = *d.dev.group();
  user = iommu_paging_domain_alloc(d.dev).release_value();
  REQUIRE(iommu_group_claim_dma_owner(group, &f).ok());
  REQUIRE(iommu_attach_group(*user, group).ok());
  REQUIRE(iommu_attach_device_pasid(*user, d.dev, 5).ok());
  CHECK(user->users() == 2);
  iommu_group_release_dma_owner(group);  // a VMM that died
  CHECK(user->users() == 0);
  CHECK(f.fake.installed(d.dev) == group.default_domain());
  CHECK(f.fake.installed_pasids(d.dev) == 0);
}

TEST_CASE("a user domain attached when the last device goes is let go") {
  CoreFixture f;
  Box<Domain> user;
  GroupRef ref;
  {
    ProbedDevice d(f.desc("d"));
    ref = iommu_group_get(d.dev);
    user = iommu_paging_domain_alloc(d.dev).release_value();
    REQUIRE(iommu_group_claim_dma_owner(*ref, &f).ok());
    REQUIRE(iommu_attach_group(*user, *ref).ok());
  }
  CHECK(user->users() == 0);
  CHECK(!ref->dma_owner_claimed());
  // Attaching to a group with no devices left is refused, not a crash.
  int vfio;
  CHECK(code_of(iommu_group_claim_dma_owner(*ref, &vfio)) == -ENODEV);
}

// ---- PASIDs ----

TEST_CASE("PASID attach: limits, busy, rollback over the group, release") {
  TwoDeviceGroup f;
  Box<Domain> user;
  ProbedDevice a(f.desc("ep1", &f.t.ep1, 4));
  user = iommu_paging_domain_alloc(a.dev).release_value();
  CHECK(code_of(iommu_attach_device_pasid(*user, a.dev, 0)) == -EINVAL);   // RID_PASID
  CHECK(code_of(iommu_attach_device_pasid(*user, a.dev, 16)) == -EINVAL);  // beyond 4 bits
  REQUIRE(iommu_attach_device_pasid(*user, a.dev, 15).ok());
  CHECK(f.fake.installed_pasid(a.dev, 15) == user.get());
  CHECK(iommu_get_domain_for_dev_pasid(a.dev, 15) == user.get());
  CHECK(code_of(iommu_attach_device_pasid(*user, a.dev, 15)) == -EBUSY);
  CHECK(code_of(iommu_attach_device_pasid(*iommu_get_domain_for_dev(a.dev), a.dev, 3)) ==
        -EINVAL);  // DMA domains are not for PASIDs

  // A group of two: the second device's failure takes the first one's entry back.
  ProbedDevice b(f.desc("ep4", &f.t.ep4, 8)), c(f.desc("ep5", &f.t.ep5, 8));
  f.fake.fail(FakeIommu::Op::set_pasid, &c.dev, -EIO);
  CHECK(code_of(iommu_attach_device_pasid(*user, b.dev, 7)) == -EIO);
  CHECK(f.fake.installed_pasids(b.dev) == 0);
  CHECK(iommu_get_domain_for_dev_pasid(b.dev, 7) == nullptr);
  REQUIRE(iommu_attach_device_pasid(*user, b.dev, 7).ok());
  CHECK(f.fake.installed_pasid(c.dev, 7) == user.get());
  iommu_detach_device_pasid(*user, b.dev, 7);
  CHECK(f.fake.installed_pasids(c.dev) == 0);
  iommu_detach_device_pasid(*user, a.dev, 15);
  CHECK(user->users() == 0);
}

TEST_CASE("PASID attach: a driver without set_dev_pasid says so") {
  CoreFixture f({.pasid = false});
  Box<Domain> user;
  ProbedDevice d(f.desc("d", nullptr, 8));
  user = iommu_paging_domain_alloc(d.dev).release_value();
  CHECK(code_of(iommu_attach_device_pasid(*user, d.dev, 1)) == -EOPNOTSUPP);
  CHECK(user->users() == 0);
}

TEST_CASE("PASIDs of a released device are removed from the driver") {
  CoreFixture f;
  Box<Domain> user;
  {
    ProbedDevice d(f.desc("d", nullptr, 8));
    user = iommu_paging_domain_alloc(d.dev).release_value();
    REQUIRE(iommu_attach_device_pasid(*user, d.dev, 1).ok());
    REQUIRE(iommu_attach_device_pasid(*user, d.dev, 2).ok());
  }
  CHECK(user->users() == 0);  // and the fake saw no release with PASIDs installed
}

// ---- Nested ----

TEST_CASE("nested domains need a nest-parent paging domain of the same IOMMU") {
  CoreFixture f;
  Box<Domain> parent, plain;
  ProbedDevice d(f.desc("d"));
  parent = iommu_paging_domain_alloc(d.dev, IOMMU_DOMAIN_ALLOC_NEST_PARENT).release_value();
  plain = iommu_paging_domain_alloc(d.dev).release_value();
  CHECK(parent->nest_parent());
  const uint8_t ste[16] = {1, 2, 3, 4, 5, 6, 7, 8};
  CHECK(code_of(iommu_domain_alloc_nested(d.dev, *plain, ste, sizeof(ste))) == -EINVAL);
  CHECK(code_of(iommu_domain_alloc_nested(d.dev, *parent, ste, 4)) == -EINVAL);  // vendor check
  auto nested = iommu_domain_alloc_nested(d.dev, *parent, ste, sizeof(ste));
  REQUIRE(nested.ok());
  CHECK(nested.value()->type() == DomainType::nested);
  CHECK(nested.value()->parent() == parent.get());
  CHECK(parent->users() == 1);  // the parent cannot go first
  auto* fake_nested = static_cast<fake::FakeDomain*>(nested.value().get());
  CHECK(fake_nested->nested_data == std::vector<uint8_t>(ste, ste + sizeof(ste)));
  // Nested domains translate through their parent; they have no map of their own.
  CHECK(code_of(iommu_map(*nested.value(), 0, 0x4000'0000, SZ_16K, IOMMU_READ)) == -EINVAL);

  Group& group = *d.dev.group();
  REQUIRE(iommu_group_claim_dma_owner(group, &f).ok());
  REQUIRE(iommu_attach_group(*nested.value(), group).ok());
  CHECK(f.fake.installed(d.dev) == nested.value().get());
  iommu_group_release_dma_owner(group);
  nested.release_value().reset();
  CHECK(parent->users() == 0);
}

// ---- Optional ops ----

TEST_CASE("missing optional ops degrade cleanly") {
  CoreFixture f({.identity = false,
                 .blocked = false,
                 .nested = false,
                 .pasid = false,
                 .sva = false,
                 .sync_ops = false,
                 .features = false,
                 .hw_info = false,
                 .page_response = false});
  Box<Domain> parent;
  ProbedDevice d(f.desc("d", nullptr, 8));
  Group& group = *d.dev.group();
  // No blocked domain: the core blocks with an empty paging domain.
  REQUIRE(iommu_group_claim_dma_owner(group, &f).ok());
  const Domain* blocking = f.fake.installed(d.dev);
  CHECK(blocking->type() == DomainType::paging);
  CHECK(blocking != group.default_domain());
  iommu_group_release_dma_owner(group);

  parent = iommu_paging_domain_alloc(d.dev, IOMMU_DOMAIN_ALLOC_NEST_PARENT).release_value();
  CHECK(code_of(iommu_domain_alloc_nested(d.dev, *parent, "12345678", 8)) == -EOPNOTSUPP);
  uint32_t type = 0;
  char buf[16];
  CHECK(code_of(iommu_get_hw_info(d.dev, buf, sizeof(buf), &type)) == -EOPNOTSUPP);
  CHECK(code_of(iommu_dev_enable_feature(d.dev, IommuDevFeature::iopf)) == -ENODEV);
  CHECK(!device_iommu_capable(d.dev, IommuCap::dirty_tracking));
  // No iotlb_sync: unmapping still works, there is just nothing to invalidate.
  Domain& def = *iommu_get_domain_for_dev(d.dev);
  REQUIRE(iommu_map(def, 0x10'0000, 0x4000'0000, SZ_16K, IOMMU_READ).ok());
  CHECK(iommu_unmap(def, 0x10'0000, SZ_16K).value() == SZ_16K);
  CHECK(code_of(iommu_iova_to_phys(def, 0x10'0000)) == -ENOENT);
}

TEST_CASE("capabilities, hw_info and features through the driver") {
  CoreFixture f;
  ProbedDevice d(f.desc("d", nullptr, 8));
  ProbedDevice nopri(DeviceDesc{.name = "nopri", .fwspec = {.iommu = &f.fake}});
  FakeIommu::HwInfo info{};
  uint32_t type = 0;
  auto len = iommu_get_hw_info(d.dev, &info, sizeof(info), &type);
  REQUIRE(len.ok());
  CHECK(len.value() == sizeof(info));
  CHECK(type == FakeIommu::kHwInfoType);
  CHECK(info.pgsize_bitmap == (SZ_16K | SZ_32M));
  CHECK(info.pgsize_log2_min == 14);
  CHECK(device_iommu_capable(d.dev, IommuCap::cache_coherency));
  CHECK(!device_iommu_capable(d.dev, IommuCap::deferred_flush));
  CHECK(code_of(iommu_dev_enable_feature(d.dev, IommuDevFeature::sva)) == -EINVAL);  // IOPF first
  REQUIRE(iommu_dev_enable_feature(d.dev, IommuDevFeature::iopf).ok());
  REQUIRE(iommu_dev_enable_feature(d.dev, IommuDevFeature::sva).ok());
  CHECK(code_of(iommu_dev_disable_feature(d.dev, IommuDevFeature::iopf)) == -EBUSY);
  CHECK(f.fake.feature_enabled(d.dev, IommuDevFeature::sva));
  CHECK(code_of(iommu_dev_enable_feature(nopri.dev, IommuDevFeature::iopf)) == -ENODEV);
  Device unprobed({.name = "u"});
  CHECK(code_of(iommu_dev_enable_feature(unprobed, IommuDevFeature::iopf)) == -ENODEV);
  CHECK(!device_iommu_capable(unprobed, IommuCap::cache_coherency));
}

}  // namespace
}  // namespace strata
