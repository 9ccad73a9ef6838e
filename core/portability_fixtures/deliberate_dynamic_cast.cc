// Must not compile: library code is built with -fno-rtti. See BUILD.

namespace strata::portability_fixtures {

struct Base {
  virtual ~Base() = default;
};

struct Derived : Base {
  int value = 1;
};

int deliberate_dynamic_cast(Base* b) {
  auto* d = dynamic_cast<Derived*>(b);
  return d != nullptr ? d->value : 0;
}

}  // namespace strata::portability_fixtures
