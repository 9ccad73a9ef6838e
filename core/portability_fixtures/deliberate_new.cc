// Compiles, but uses the global heap, which a kernel port does not have: the symbol check must
// reject the undefined `operator new` and `malloc`. See BUILD.

#include <cstdlib>

namespace strata::portability_fixtures {

int* deliberate_new() { return new int(1); }

void* deliberate_malloc(std::size_t n) { return std::malloc(n); }

}  // namespace strata::portability_fixtures
