// SPDX-License-Identifier: MIT
// The one doctest main every suite links.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
