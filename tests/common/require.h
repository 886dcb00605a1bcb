// require.h: the one way a C++ test skips (house rule rules.OneSkipHelper).
// A test that cannot run here (no root, a missing tool, a kernel without a
// feature) skips loudly, and fails instead when the environment variable that
// guards its kind of test is 1: CI sets every LIBKEEPALIVE_*_REQUIRED, so that
// there a missing prerequisite is a failure, never a skip that reads as a pass.
#ifndef KEEPALIVE_TESTS_COMMON_REQUIRE_H_
#define KEEPALIVE_TESTS_COMMON_REQUIRE_H_

#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>

namespace ka_require {

inline bool Required(const char *variable) {
  const char *value = getenv(variable);
  return value != nullptr && strcmp(value, "1") == 0;
}

inline void PrintSkipped(const std::string &reason) {
  const testing::TestInfo *test = testing::UnitTest::GetInstance()->current_test_info();
  fprintf(stderr, "\n*** SKIPPED %s.%s: %s ***\n\n", test ? test->test_suite_name() : "",
          test ? test->name() : "", reason.c_str());
}

}  // namespace ka_require

// Skips the current test with `reason` (a std::string), or fails it when the
// environment variable VARIABLE (a string literal) is 1.
#define KA_REQUIRE_OR_SKIP(VARIABLE, reason)                        \
  do {                                                              \
    std::string ka_reason_ = (reason);                              \
    if (ka_require::Required(VARIABLE)) {                           \
      FAIL() << ka_reason_ << " (" VARIABLE "=1 forbids skipping)"; \
    }                                                               \
    ka_require::PrintSkipped(ka_reason_);                           \
    GTEST_SKIP() << ka_reason_;                                     \
  } while (0)

#endif  // KEEPALIVE_TESTS_COMMON_REQUIRE_H_
