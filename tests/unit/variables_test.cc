// variables_test.cc — the names of the environment: the one list of the
// library's variables (keepalive_variable_name), KEEPALIVE_* names that are
// not ours (a warning, or a problem under KEEPALIVE_STRICT) and the "did you
// mean" rule (keepalive_closest_variable).

#include <ctype.h>
#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "keepalive/keepalive.h"
#include "test_env.h"

namespace {

using keepalive_test::Env;

std::vector<std::string> listed_variables() {
  std::vector<std::string> names;
  for (int i = 0; keepalive_variable_name(i) != nullptr; ++i) {
    names.push_back(keepalive_variable_name(i));
  }
  return names;
}

// Loads `env` and gives the loader the names of `env` plus `more_names`.
std::unique_ptr<keepalive_config> load_with_names(const Env &env,
                                                  const std::vector<std::string> &more_names = {}) {
  std::vector<std::string> entries;
  for (const auto &[name, value] : env) entries.push_back(name + "=" + value);
  for (const std::string &name : more_names) entries.push_back(name);
  std::vector<const char *> names;
  for (const std::string &entry : entries) names.push_back(entry.c_str());
  names.push_back(nullptr);
  auto cfg = std::make_unique<keepalive_config>();
  keepalive_config_load_names(cfg.get(), keepalive_test::lookup, const_cast<Env *>(&env), 75,
                              names.data());
  return cfg;
}

std::vector<std::string> warnings_of(const keepalive_config &cfg) {
  std::vector<std::string> all;
  for (int i = 0; i < cfg.nwarnings && i < KEEPALIVE_MAX_WARNINGS; ++i) {
    all.push_back(cfg.warnings[i]);
  }
  return all;
}

std::vector<std::string> problems_of(const keepalive_config &cfg) {
  std::vector<std::string> all;
  for (int i = 0; i < cfg.nproblems && i < KEEPALIVE_MAX_PROBLEMS; ++i) {
    all.push_back(cfg.problems[i]);
  }
  return all;
}

const char *asked_for_log(const char *name, void *context) {
  static_cast<std::set<std::string> *>(context)->insert(name);
  return nullptr;
}

TEST(Variables, TheListIsWhatTheLoaderReads) {
  std::set<std::string> asked;
  keepalive_config cfg;
  keepalive_config_load(&cfg, asked_for_log, &asked, 75);
  std::vector<std::string> listed = listed_variables();
  EXPECT_EQ(std::set<std::string>(listed.begin(), listed.end()), asked);
  EXPECT_EQ(listed.size(), asked.size()) << "a name listed twice";
  EXPECT_EQ(listed.front(), "KEEPALIVE");
  EXPECT_EQ(keepalive_variable_name(-1), nullptr);
}

TEST(Variables, UnknownNameIsAWarningAndTheConfigurationStaysValid) {
  auto cfg = load_with_names({{"KEEPALIVE_IDEL", "270"}, {"KEEPALIVE_CNT", "4"}});
  ASSERT_TRUE(cfg->valid);
  EXPECT_TRUE(cfg->enabled);
  EXPECT_EQ(cfg->global.idle_s, KEEPALIVE_UNSET) << "the misspelled value is not used";
  EXPECT_EQ(cfg->global.cnt, 4);
  EXPECT_EQ(warnings_of(*cfg), std::vector<std::string>{"KEEPALIVE_IDEL is not a libkeepalive "
                                                        "variable: did you mean KEEPALIVE_IDLE?"});
  EXPECT_EQ(cfg->nproblems, 0);
}

TEST(Variables, UnknownNameIsAProblemUnderStrict) {
  auto cfg = load_with_names(
      {{"KEEPALIVE_STRICT", "yes"}, {"KEEPALIVE_INTERVAL", "30"}, {"KEEPALIVE_IDLE", "270"}});
  EXPECT_FALSE(cfg->valid);
  EXPECT_FALSE(cfg->enabled);
  EXPECT_EQ(cfg->global.enable, 0) << "an invalid configuration configures nothing";
  EXPECT_EQ(
      problems_of(*cfg),
      std::vector<std::string>{
          "KEEPALIVE_INTERVAL is not a libkeepalive variable: did you mean KEEPALIVE_INTVL?"});
  EXPECT_EQ(cfg->nwarnings, 0);
  EXPECT_STREQ(cfg->strict_word, "yes");
}

TEST(Variables, KnownAndForeignNamesAreNotReported) {
  std::vector<std::string> names = {
      "PATH",        "KEEPALIVEIDLE",    "LIBKEEPALIVE_TEST_LIBRARY", "KEEPALIVE_LIBRARY",
      "TCP_SYNCNT",  "TCP_DEFER_ACCEPT", "TCP_WINDOW_CLAMP",          "DD_TCP_KEEPALIVE",
      "tcp_keepidle"};
  for (const std::string &name : listed_variables()) names.push_back(name);
  auto cfg = load_with_names({}, names);
  EXPECT_TRUE(cfg->valid);
  EXPECT_EQ(warnings_of(*cfg), std::vector<std::string>{});
}

// Other shims' names and ours in another case: one line naming ours.
struct ForeignCase {
  const char *name;
  const char *warning;
};

const ForeignCase kForeignCases[] = {
    {"TCP_KEEPIDLE",
     "TCP_KEEPIDLE is msantos/libkeepalive's name: libkeepalive reads KEEPALIVE_IDLE"},
    {"TCP_KEEPINTVL",
     "TCP_KEEPINTVL is msantos/libkeepalive's name: libkeepalive reads KEEPALIVE_INTVL"},
    {"TCP_KEEPCNT", "TCP_KEEPCNT is msantos/libkeepalive's name: libkeepalive reads KEEPALIVE_CNT"},
    {"TCP_USER_TIMEOUT",
     "TCP_USER_TIMEOUT is msantos/libkeepalive's name: libkeepalive reads KEEPALIVE_USER_TIMEOUT "
     "(a duration: a bare number is seconds, 5000ms is 5000 milliseconds)"},
    {"SO_KEEPALIVE",
     "SO_KEEPALIVE is msantos/libkeepalive's name: libkeepalive reads KEEPALIVE (on or off)"},
    {"DD_TCP_KEEPALIVE_TIME",
     "DD_TCP_KEEPALIVE_TIME is libdontdie's name: libkeepalive reads KEEPALIVE_IDLE"},
    {"DD_TCP_KEEPALIVE_INTVL",
     "DD_TCP_KEEPALIVE_INTVL is libdontdie's name: libkeepalive reads KEEPALIVE_INTVL"},
    {"DD_TCP_KEEPALIVE_PROBES",
     "DD_TCP_KEEPALIVE_PROBES is libdontdie's name: libkeepalive reads KEEPALIVE_CNT"},
    {"DD_DEBUG",
     "DD_DEBUG is libdontdie's name: libkeepalive reads KEEPALIVE_LOG (KEEPALIVE_LOG=debug)"},
    {"keepalive_idle", "keepalive_idle is not in upper case: libkeepalive reads KEEPALIVE_IDLE"},
    {"Keepalive_User_Timeout",
     "Keepalive_User_Timeout is not in upper case: libkeepalive reads KEEPALIVE_USER_TIMEOUT"},
    {"keepalive", "keepalive is not in upper case: libkeepalive reads KEEPALIVE"},
};

TEST(Variables, ForeignNamesNameOurs) {
  for (const ForeignCase &c : kForeignCases) {
    auto cfg = load_with_names({{"KEEPALIVE_IDLE", "270"}}, {std::string(c.name) + "=30"});
    EXPECT_TRUE(cfg->valid) << c.name;
    EXPECT_EQ(cfg->global.idle_s, 270) << c.name << ": the foreign value is not used";
    EXPECT_EQ(warnings_of(*cfg), std::vector<std::string>{c.warning});
  }
}

TEST(Variables, ForeignNamesAreProblemsUnderStrict) {
  for (const ForeignCase &c : kForeignCases) {
    auto cfg = load_with_names({{"KEEPALIVE_STRICT", "1"}}, {c.name});
    EXPECT_FALSE(cfg->valid) << c.name;
    EXPECT_EQ(problems_of(*cfg), std::vector<std::string>{c.warning});
    EXPECT_EQ(cfg->nwarnings, 0);
  }
}

TEST(Variables, EveryVariableInLowerCaseNamesIt) {
  for (const std::string &known : listed_variables()) {
    std::string lower = known;
    for (char &c : lower) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    auto cfg = load_with_names({}, {lower});
    EXPECT_EQ(warnings_of(*cfg), std::vector<std::string>{
                                     lower + " is not in upper case: libkeepalive reads " + known});
  }
}

TEST(Variables, NoNamesNoCheck) {
  auto cfg = keepalive_test::load({{"KEEPALIVE_IDEL", "270"}, {"KEEPALIVE_STRICT", "1"}});
  EXPECT_TRUE(cfg->valid);
  EXPECT_EQ(cfg->nwarnings, 0);
}

TEST(Variables, NameWithoutAnyCloseOneListsTheKnownNames) {
  auto cfg = load_with_names({}, {"KEEPALIVE_FOO"});
  EXPECT_EQ(warnings_of(*cfg),
            std::vector<std::string>{
                "KEEPALIVE_FOO is not a libkeepalive variable: expected KEEPALIVE, KEEPALIVE_IDLE, "
                "KEEPALIVE_INTVL, KEEPALIVE_CNT, KEEPALIVE_USER_TIMEOUT, KEEPALIVE_RULES, "
                "KEEPALIVE_LOG, KEEPALIVE_STRICT or KEEPALIVE_LIBRARY (read by the keepalive "
                "command)"});
}

TEST(Variables, HostileNamesAreQuotedAndWarningsBeyondStorageCounted) {
  std::vector<std::string> names = {"KEEPALIVE_a\x1b[2Jb", "KEEPALIVE_" + std::string(300, 'X')};
  for (int i = 0; i < KEEPALIVE_MAX_WARNINGS; ++i)
    names.push_back("KEEPALIVE_Q" + std::to_string(i));
  auto cfg = load_with_names({}, names);
  EXPECT_EQ(cfg->nwarnings, KEEPALIVE_MAX_WARNINGS + 2);
  std::vector<std::string> warnings = warnings_of(*cfg);
  ASSERT_EQ(warnings.size(), static_cast<size_t>(KEEPALIVE_MAX_WARNINGS));
  EXPECT_EQ(warnings[0].rfind("\"KEEPALIVE_a\\x1b[2Jb\" is not a libkeepalive variable", 0), 0u)
      << warnings[0];
  EXPECT_NE(warnings[1].find("...(310 bytes)"), std::string::npos) << warnings[1];
  for (const std::string &warning : warnings) {
    EXPECT_LT(warning.size(), static_cast<size_t>(KEEPALIVE_PROBLEM_LEN));
    for (char c : warning) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << warning;
  }
}

TEST(Variables, StrictWordIsKeptAsGiven) {
  EXPECT_STREQ(keepalive_test::load({{"KEEPALIVE_STRICT", " TRUE "}})->strict_word, "TRUE");
  EXPECT_STREQ(keepalive_test::load({{"KEEPALIVE_STRICT", "on"}})->strict_word, "on");
  EXPECT_STREQ(keepalive_test::load({{"KEEPALIVE_STRICT", "no"}})->strict_word, "");
}

// ---- "did you mean" ----------------------------------------------------------------

struct Closest {
  const char *name;
  const char *expected;  // nullptr: no suggestion
};

class ClosestVariable : public testing::TestWithParam<Closest> {};

TEST_P(ClosestVariable, Suggests) {
  const char *found = keepalive_closest_variable(GetParam().name);
  if (GetParam().expected == nullptr) {
    EXPECT_EQ(found, nullptr) << GetParam().name << " -> " << found;
  } else {
    ASSERT_NE(found, nullptr) << GetParam().name;
    EXPECT_STREQ(found, GetParam().expected) << GetParam().name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, ClosestVariable,
    testing::Values(
        // 1. equal in upper case without underscores
        Closest{"KEEPALIVE_idle", "KEEPALIVE_IDLE"},
        Closest{"KEEPALIVE_USERTIMEOUT", "KEEPALIVE_USER_TIMEOUT"},
        Closest{"KEEPALIVE_", "KEEPALIVE"},
        // 2. the kernel's words
        Closest{"KEEPALIVE_TIME", "KEEPALIVE_IDLE"}, Closest{"KEEPALIVE_PROBES", "KEEPALIVE_CNT"},
        // 3. letters left out, the shorter having 3 or more
        Closest{"KEEPALIVE_INTERVAL", "KEEPALIVE_INTVL"},
        Closest{"KEEPALIVE_COUNT", "KEEPALIVE_CNT"},
        Closest{"KEEPALIVE_LOG_LEVEL", "KEEPALIVE_LOG"},
        Closest{"KEEPALIVE_TIMEOUT", "KEEPALIVE_USER_TIMEOUT"},
        Closest{"KEEPALIVE_IDLE_TIME", "KEEPALIVE_IDLE"},
        Closest{"KEEPALIVE_STRICT_MODE", "KEEPALIVE_STRICT"},
        Closest{"KEEPALIVE_RULE", "KEEPALIVE_RULES"}, Closest{"KEEPALIVE_CNTS", "KEEPALIVE_CNT"},
        Closest{"KEEPALIVE_STICT", "KEEPALIVE_STRICT"},
        Closest{"KEEPALIVE_USER_TIMOUT", "KEEPALIVE_USER_TIMEOUT"},
        Closest{"KEEPALIVE_LIBARY", "KEEPALIVE_LIBRARY"},
        // A closer rule wins: INT is INTVL with letters left out (3), and
        // one letter from CNT (4).
        Closest{"KEEPALIVE_INT", "KEEPALIVE_INTVL"},
        // 4. one edit: two neighbours swapped, a letter changed
        Closest{"KEEPALIVE_IDEL", "KEEPALIVE_IDLE"}, Closest{"KEEPALIVE_LGO", "KEEPALIVE_LOG"},
        Closest{"KEEPALIVE_IDLF", "KEEPALIVE_IDLE"}, Closest{"KEEPALIVE_CMT", "KEEPALIVE_CNT"},
        Closest{"KEEPALIVE_INTVAL", "KEEPALIVE_INTVL"},
        // Nothing close.
        Closest{"KEEPALIVE_FOO", nullptr}, Closest{"KEEPALIVE_DEBUG", nullptr},
        Closest{"KEEPALIVE_ENABLE", nullptr}, Closest{"KEEPALIVE_X", nullptr},
        Closest{"KEEPALIVE_ID", nullptr}, Closest{"KEEPALIVE_IN", nullptr},
        // Not a KEEPALIVE_* name at all.
        Closest{"IDEL", nullptr}, Closest{"KEEPALIVEIDLE", nullptr}, Closest{"", nullptr}));

TEST(ClosestVariable, LongAndNullNames) {
  EXPECT_EQ(keepalive_closest_variable(("KEEPALIVE_IDLE" + std::string(100, 'E')).c_str()),
            nullptr);
  EXPECT_EQ(keepalive_closest_variable(nullptr), nullptr);
}

}  // namespace
