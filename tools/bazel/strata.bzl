"""Build macros shared by every package."""

load("@rules_cc//cc:defs.bzl", "cc_test")

def strata_test(name, srcs, deps = [], **kwargs):
    """A doctest suite, linked with the hosted OS port that library code needs.

    Library compile flags (-fno-exceptions -fno-rtti) come from .bazelrc's --per_file_copt,
    which excludes *_test.cc, so tests may use the whole standard library.
    """
    cc_test(
        name = name,
        srcs = srcs,
        deps = deps + [
            "//testing:doctest_main",
            "//testing/hosted",
        ],
        **kwargs
    )
