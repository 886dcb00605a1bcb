// duration_test.cc — every accepted and rejected duration form.

#include <gtest/gtest.h>

#include "keepalive/keepalive.h"

namespace {

struct Accepted {
  const char *text;
  long long ms;
};

class DurationAccepted : public ::testing::TestWithParam<Accepted> {};

TEST_P(DurationAccepted, ParsesToMilliseconds) {
  long long ms = -1;
  ASSERT_EQ(keepalive_parse_duration_ms(GetParam().text, &ms), 1) << GetParam().text;
  EXPECT_EQ(ms, GetParam().ms) << GetParam().text;
}

INSTANTIATE_TEST_SUITE_P(Forms, DurationAccepted,
                         ::testing::Values(Accepted{"0", 0}, Accepted{"1", 1000},
                                           Accepted{"270", 270000}, Accepted{"  270\t", 270000},
                                           Accepted{"90s", 90000}, Accepted{"4m30s", 270000},
                                           Accepted{"4min30s", 270000}, Accepted{"1h", 3600000},
                                           Accepted{"1h1m1s1ms", 3661001}, Accepted{"1500ms", 1500},
                                           Accepted{"1.5s", 1500}, Accepted{"1.5", 1500},
                                           Accepted{"0.001s", 1}, Accepted{"2.25m", 135000},
                                           Accepted{"2147483647ms", 2147483647LL},
                                           Accepted{"2147483.647s", 2147483647LL},
                                           Accepted{"007", 7000}));

class DurationRejected : public ::testing::TestWithParam<const char *> {};

TEST_P(DurationRejected, IsInvalid) {
  long long ms = 42;
  EXPECT_EQ(keepalive_parse_duration_ms(GetParam(), &ms), 0) << GetParam();
  EXPECT_EQ(ms, 42) << "output must stay untouched on failure";
}

INSTANTIATE_TEST_SUITE_P(Forms, DurationRejected,
                         ::testing::Values("", "   ", "abc", "270x", "-5", "+5", "5 s", "4m 30s",
                                           "30s4m", "1s1s", "1m1min", "4m30", "1.", ".5", "1.5ms",
                                           "0.0001s", "1e3", "0x10", "1h-1m", "2147483648ms",
                                           "2147484s", "99999999999999999999", "1H", "s", "ms",
                                           "1..5s", "1.5.s"));

TEST(Duration, NullArgumentsAreRejected) {
  long long ms = 0;
  EXPECT_EQ(keepalive_parse_duration_ms(nullptr, &ms), 0);
  EXPECT_EQ(keepalive_parse_duration_ms("1", nullptr), 0);
}

}  // namespace
