// tests/fuzz/fuzz_check.h: the one way a fuzz target reports a broken property: print what and
// abort, which libFuzzer records as a crash with the input that caused it.
#ifndef HBSA_TESTS_FUZZ_FUZZ_CHECK_H_
#define HBSA_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define HBSA_FUZZ_CHECK(cond, ...)                                              \
  do {                                                                          \
    if (!(cond)) {                                                              \
      std::fprintf(stderr, "FUZZ CHECK FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                        \
      std::fprintf(stderr, "\n");                                               \
      std::abort();                                                             \
    }                                                                           \
  } while (0)

#endif  // HBSA_TESTS_FUZZ_FUZZ_CHECK_H_
