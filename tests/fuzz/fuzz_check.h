// FUZZ_CHECK: an invariant of a fuzz target. A broken one aborts, which
// libFuzzer reports as a crash (with the input) and the replay test as a
// failure.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond, ...)                                            \
  do {                                                                   \
    if (!(cond)) {                                                       \
      std::fprintf(stderr, "%s:%d: invariant broken: %s: ", __FILE__,    \
                   __LINE__, #cond);                                     \
      std::fprintf(stderr, __VA_ARGS__);                                 \
      std::fprintf(stderr, "\n");                                        \
      std::abort();                                                      \
    }                                                                    \
  } while (0)
