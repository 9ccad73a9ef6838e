// SPDX-License-Identifier: MIT
#include "arch/log.h"

#include <doctest/doctest.h>
// Deliberately the full fmt header, unlike library code: see the vptr regression test.
#include <fmt/format.h>

#include <string>

#include "arch/bug.h"
#include "arch/result.h"
#include "testing/hosted/hosted.h"

namespace strata {
namespace {

TEST_CASE("dev_* prefix the device name and carry Linux's levels") {
  hosted::LogCapture cap;
  dev_err("smmu0", "CMD_SYNC timeout at prod {:#x}", 0x80000004u);
  dev_info("smmu0", "probed: {} stream table", "2-level");
  pr_warn("no prefix {}", 1);
  dev_dbg("vtd1", "{}", Error(-ETIMEDOUT));
  auto lines = cap.lines();
  REQUIRE(lines.size() == 4);
  CHECK(lines[0].level == 3);
  CHECK(lines[0].text == "smmu0: CMD_SYNC timeout at prod 0x80000004");
  CHECK(lines[1].level == 6);
  CHECK(lines[1].text == "smmu0: probed: 2-level stream table");
  CHECK(lines[2].level == 4);
  CHECK(lines[2].text == "no prefix 1");
  CHECK(lines[3].level == 7);
  CHECK(lines[3].text == "vtd1: -ETIMEDOUT");
}

TEST_CASE("an overlong line is cut and marked") {
  hosted::LogCapture cap;
  std::string big(1000, 'x');
  dev_warn("dev", "{}", big);
  auto lines = cap.lines();
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].text.size() == kLogLineMax);
  CHECK(lines[0].text.substr(0, 5) == "dev: ");
  CHECK(lines[0].text.substr(kLogLineMax - 3) == "...");
}

TEST_CASE("STRATA_WARN_ON logs the location and yields the condition") {
  hosted::LogCapture cap;
  int x = 3;
  CHECK(STRATA_WARN_ON(x > 2));
  CHECK_FALSE(STRATA_WARN_ON(x > 5));
  auto lines = cap.lines();
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].level == 4);
  CHECK(lines[0].text.find("WARNING at arch/log_test.cc:") == 0);
  CHECK(lines[0].text.find("x > 2") != std::string::npos);
}

TEST_CASE("STRATA_BUG_ON panics with the location and condition") {
  std::string msg = hosted::panic_message_of([] {
    int y = 1;
    STRATA_BUG_ON(y == 1);
  });
  CHECK(msg.find("BUG at arch/log_test.cc:") == 0);
  CHECK(msg.find("y == 1") != std::string::npos);
  CHECK(hosted::panic_message_of([] { STRATA_BUG_ON(false); }).empty());
}

// Regression: the log's buffer is made in -fno-rtti code (arch/log.cc), and this file, built
// with RTTI and <fmt/format.h>, instantiates fmt's buffer methods too; UBSan's vptr check then
// reported "member call ... does not point to an object of type 'buffer'" until .bazelrc
// turned vptr off for the sanitizer configs.
TEST_CASE("formatting in RTTI code and logging from library code share fmt's buffers") {
  hosted::LogCapture cap;
  CHECK(fmt::format("{}", 42) == "42");
  dev_info("dev", "{} {}", Error(-EIO), fmt::format("{:>4}", 7));
  auto lines = cap.lines();
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].text == "dev: -EIO    7");
}

}  // namespace
}  // namespace strata
