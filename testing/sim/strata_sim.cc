// SPDX-License-Identifier: MIT
// strata-sim: the command-line simulator (the main job). `strata-sim demo` boots the simulated
// platform and prints an account of what it did.
#include <cstdio>
#include <cstring>

#include "testing/sim/demo.h"

namespace {

void usage(FILE* f) {
  fputs(
      "usage: strata-sim <command>\n"
      "  demo   boot the simulated platform and show DMA memory, interrupts and bus faults\n",
      f);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (strcmp(argv[1], "demo") == 0) {
    strata::sim::DemoReport report = strata::sim::run_demo();
    fputs(report.transcript.c_str(), stdout);
    return report.ok ? 0 : 1;
  }
  fprintf(stderr, "strata-sim: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
