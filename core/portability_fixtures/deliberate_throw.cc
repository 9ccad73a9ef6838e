// Must not compile: library code is built with -fno-exceptions. See BUILD.

namespace strata::portability_fixtures {

int deliberate_throw(int x) {
  if (x < 0) {
    throw 1;
  }
  return x;
}

}  // namespace strata::portability_fixtures
