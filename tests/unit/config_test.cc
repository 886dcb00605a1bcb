// config_test.cc — keepalive_config_load: accepted values (the kernel's
// bounds included), every rejected form with its message, the INTVL rule,
// the off switch, strict mode, rules.

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "keepalive/keepalive.h"
#include "test_env.h"

namespace {

using keepalive_test::Env;
using keepalive_test::load;

std::string problems_of(const keepalive_config &cfg) {
  std::string all;
  for (int i = 0; i < cfg.nproblems && i < KEEPALIVE_MAX_PROBLEMS; ++i) {
    all += cfg.problems[i];
    all += '\n';
  }
  return all;
}

TEST(Config, NoVariablesSwitchesKeepaliveOnWithKernelTimings) {
  auto cfg = load({});
  EXPECT_TRUE(cfg->valid);
  EXPECT_TRUE(cfg->enabled);
  EXPECT_EQ(cfg->global.enable, 1);
  EXPECT_EQ(cfg->global.idle_s, KEEPALIVE_UNSET);
  EXPECT_EQ(cfg->global.intvl_s, KEEPALIVE_UNSET);
  EXPECT_EQ(cfg->global.cnt, KEEPALIVE_UNSET);
  EXPECT_EQ(cfg->global.user_timeout_ms, KEEPALIVE_UNSET);
  EXPECT_EQ(cfg->log_level, KEEPALIVE_LOG_QUIET);
  EXPECT_EQ(cfg->nrules, 0);
  EXPECT_EQ(cfg->needs[KEEPALIVE_IN], 0u);
  EXPECT_EQ(cfg->needs[KEEPALIVE_OUT], 0u);
}

TEST(Config, AllValuesAreRead) {
  auto cfg = load({{"KEEPALIVE_IDLE", "4m30s"},
                   {"KEEPALIVE_INTVL", "30"},
                   {"KEEPALIVE_CNT", "4"},
                   {"KEEPALIVE_USER_TIMEOUT", "1.5m"},
                   {"KEEPALIVE_LOG", "debug"}});
  ASSERT_TRUE(cfg->valid) << problems_of(*cfg);
  EXPECT_EQ(cfg->global.idle_s, 270);
  EXPECT_EQ(cfg->global.intvl_s, 30);
  EXPECT_EQ(cfg->global.cnt, 4);
  EXPECT_EQ(cfg->global.user_timeout_ms, 90000);
  EXPECT_EQ(cfg->log_level, KEEPALIVE_LOG_DEBUG);
  EXPECT_EQ(cfg->intvl_derived, 0);
}

struct IntvlCase {
  const char *idle;
  int kernel_intvl;
  int expected_intvl;
};

class IntvlRule : public ::testing::TestWithParam<IntvlCase> {};

// Idle given, interval not: interval = min(idle, the kernel's default).
TEST_P(IntvlRule, IntervalFollowsIdleBelowKernelDefault) {
  auto cfg = load({{"KEEPALIVE_IDLE", GetParam().idle}}, GetParam().kernel_intvl);
  ASSERT_TRUE(cfg->valid) << problems_of(*cfg);
  EXPECT_EQ(cfg->global.intvl_s, GetParam().expected_intvl);
  EXPECT_EQ(cfg->intvl_derived, 1);
}

INSTANTIATE_TEST_SUITE_P(Table, IntvlRule,
                         ::testing::Values(IntvlCase{"1", 75, 1}, IntvlCase{"30", 75, 30},
                                           IntvlCase{"75", 75, 75}, IntvlCase{"270", 75, 75},
                                           IntvlCase{"270", 10, 10}, IntvlCase{"5", 3, 3}));

TEST(Config, ExplicitIntervalWins) {
  auto cfg = load({{"KEEPALIVE_IDLE", "1"}, {"KEEPALIVE_INTVL", "20"}});
  EXPECT_EQ(cfg->global.intvl_s, 20);
  EXPECT_EQ(cfg->intvl_derived, 0);
}

TEST(Config, UnreadableKernelIntervalFallsBack) {
  auto cfg = load({{"KEEPALIVE_IDLE", "600"}}, 0);
  EXPECT_EQ(cfg->kernel_intvl_s, KEEPALIVE_FALLBACK_KERNEL_INTVL_S);
  EXPECT_EQ(cfg->global.intvl_s, KEEPALIVE_FALLBACK_KERNEL_INTVL_S);
}

TEST(Config, UserTimeoutZeroMeansKernelDefaultAndIsApplied) {
  auto cfg = load({{"KEEPALIVE_USER_TIMEOUT", "0"}});
  ASSERT_TRUE(cfg->valid);
  EXPECT_EQ(cfg->global.user_timeout_ms, 0);
}

TEST(Config, EmptyValueCountsAsUnset) {
  auto cfg = load({{"KEEPALIVE_IDLE", ""}, {"KEEPALIVE_RULES", "  "}, {"KEEPALIVE", ""}});
  EXPECT_TRUE(cfg->valid) << problems_of(*cfg);
  EXPECT_TRUE(cfg->enabled);
  EXPECT_EQ(cfg->global.idle_s, KEEPALIVE_UNSET);
}

struct Switch {
  const char *value;
  bool enabled;
};
class OffSwitch : public ::testing::TestWithParam<Switch> {};

TEST_P(OffSwitch, KeepaliveVariable) {
  auto cfg = load({{"KEEPALIVE", GetParam().value}, {"KEEPALIVE_IDLE", "30"}});
  ASSERT_TRUE(cfg->valid) << problems_of(*cfg);
  EXPECT_EQ(cfg->enabled, GetParam().enabled ? 1 : 0);
  keepalive_socket_facts facts{};
  facts.direction = KEEPALIVE_IN;
  keepalive_settings s;
  keepalive_decide(cfg.get(), &facts, &s);
  EXPECT_EQ(s.enable, GetParam().enabled ? 1 : 0);
}

INSTANTIATE_TEST_SUITE_P(Table, OffSwitch,
                         ::testing::Values(Switch{"off", false}, Switch{"0", false},
                                           Switch{"no", false}, Switch{"false", false},
                                           Switch{"OFF", false}, Switch{"on", true},
                                           Switch{"1", true}, Switch{"yes", true},
                                           Switch{"true", true}, Switch{" True ", true}));

TEST(Config, StrictAndLogLevels) {
  EXPECT_EQ(load({{"KEEPALIVE_STRICT", "1"}})->strict, 1);
  EXPECT_EQ(load({{"KEEPALIVE_STRICT", "0"}})->strict, 0);
  EXPECT_EQ(load({{"KEEPALIVE_LOG", "info"}})->log_level, KEEPALIVE_LOG_INFO);
  EXPECT_EQ(load({{"KEEPALIVE_LOG", "quiet"}})->log_level, KEEPALIVE_LOG_QUIET);
  // Strict mode is read even when the rest is invalid: that is when it matters.
  auto cfg = load({{"KEEPALIVE_STRICT", "1"}, {"KEEPALIVE_IDLE", "abc"}});
  EXPECT_FALSE(cfg->valid);
  EXPECT_EQ(cfg->strict, 1);
}

struct Rejected {
  const char *variable;
  const char *value;
  const char *message;  // expected substring of the one problem line
};

class RejectedValue : public ::testing::TestWithParam<Rejected> {};

TEST_P(RejectedValue, OneProblemNamingVariableValueAndForm) {
  const Rejected &r = GetParam();
  auto cfg = load({{r.variable, r.value}});
  EXPECT_FALSE(cfg->valid);
  EXPECT_FALSE(cfg->enabled);
  ASSERT_EQ(cfg->nproblems, 1) << problems_of(*cfg);
  std::string problem = cfg->problems[0];
  EXPECT_EQ(problem.rfind(r.variable, 0), 0u) << problem;
  EXPECT_NE(problem.find(r.message), std::string::npos) << problem;
  EXPECT_EQ(problem.find('\n'), std::string::npos) << "one line per problem";
  // Never half-applied: nothing is configured.
  keepalive_socket_facts facts{};
  facts.direction = KEEPALIVE_OUT;
  keepalive_settings s;
  keepalive_decide(cfg.get(), &facts, &s);
  EXPECT_EQ(s.enable, 0);
}

constexpr const char kSeconds[] = "expected whole seconds from 1 to 32767";
constexpr const char kCount[] = "expected a whole number from 1 to 127";
constexpr const char kTimeout[] = "expected a duration up to 2147483647ms";

INSTANTIATE_TEST_SUITE_P(
    Table, RejectedValue,
    ::testing::Values(
        Rejected{"KEEPALIVE_IDLE", "abc", kSeconds}, Rejected{"KEEPALIVE_IDLE", "0", kSeconds},
        Rejected{"KEEPALIVE_IDLE", "270x", kSeconds}, Rejected{"KEEPALIVE_IDLE", "-5", kSeconds},
        Rejected{"KEEPALIVE_IDLE", "32768", kSeconds}, Rejected{"KEEPALIVE_IDLE", "1.5", kSeconds},
        Rejected{"KEEPALIVE_IDLE", "1500ms", kSeconds},
        Rejected{"KEEPALIVE_IDLE", "99999999999999999999999", kSeconds},
        Rejected{"KEEPALIVE_INTVL", "0", kSeconds}, Rejected{"KEEPALIVE_INTVL", "10h", kSeconds},
        Rejected{"KEEPALIVE_CNT", "0", kCount}, Rejected{"KEEPALIVE_CNT", "128", kCount},
        Rejected{"KEEPALIVE_CNT", "4.0", kCount}, Rejected{"KEEPALIVE_CNT", "4s", kCount},
        Rejected{"KEEPALIVE_CNT", "abc", kCount}, Rejected{"KEEPALIVE_CNT", "-1", kCount},
        Rejected{"KEEPALIVE_USER_TIMEOUT", "abc", kTimeout},
        Rejected{"KEEPALIVE_USER_TIMEOUT", "-1", kTimeout},
        Rejected{"KEEPALIVE_USER_TIMEOUT", "0.0005s", kTimeout},
        Rejected{"KEEPALIVE_USER_TIMEOUT", "2147484s", kTimeout},
        Rejected{"KEEPALIVE", "maybe", "expected on, off, 1, 0, yes, no, true or false"},
        Rejected{"KEEPALIVE_STRICT", "2", "expected on, off, 1, 0, yes, no, true or false"},
        Rejected{"KEEPALIVE_LOG", "verbose", "expected quiet, info or debug"}));

// The bounds the kernel accepts are accepted too, as a variable and in a
// rule: the largest ones guard against an off-by-one in the range checks.
enum class Field { kIdle, kIntvl, kCnt };

struct Bound {
  const char *variable;
  const char *rule_word;  // the same value inside a rule: "idle=" + value
  const char *value;
  Field field;
  int expected;
};

int field_of(const keepalive_settings &s, Field field) {
  return field == Field::kIdle ? s.idle_s : field == Field::kIntvl ? s.intvl_s : s.cnt;
}

class AcceptedBound : public ::testing::TestWithParam<Bound> {};

TEST_P(AcceptedBound, AsVariableAndInRule) {
  const Bound &b = GetParam();
  auto global = load({{b.variable, b.value}});
  ASSERT_TRUE(global->valid) << problems_of(*global);
  EXPECT_EQ(field_of(global->global, b.field), b.expected);
  auto rule = load({{"KEEPALIVE_RULES", std::string("in ") + b.rule_word + "=" + b.value}});
  ASSERT_TRUE(rule->valid) << problems_of(*rule);
  ASSERT_EQ(rule->nrules, 1);
  EXPECT_EQ(field_of(rule->rules[0].settings, b.field), b.expected);
}

INSTANTIATE_TEST_SUITE_P(
    Table, AcceptedBound,
    ::testing::Values(Bound{"KEEPALIVE_IDLE", "idle", "32767", Field::kIdle, 32767},
                      Bound{"KEEPALIVE_IDLE", "idle", "9h6m7s", Field::kIdle, 32767},
                      Bound{"KEEPALIVE_IDLE", "idle", "1", Field::kIdle, 1},
                      Bound{"KEEPALIVE_INTVL", "intvl", "32767", Field::kIntvl, 32767},
                      Bound{"KEEPALIVE_INTVL", "intvl", "1", Field::kIntvl, 1},
                      Bound{"KEEPALIVE_CNT", "cnt", "127", Field::kCnt, 127},
                      Bound{"KEEPALIVE_CNT", "cnt", "1", Field::kCnt, 1}));

TEST(Config, MessageQuotesTheValue) {
  auto cfg = load({{"KEEPALIVE_IDLE", "abc"}});
  EXPECT_NE(std::string(cfg->problems[0]).find("KEEPALIVE_IDLE=\"abc\" is invalid"),
            std::string::npos)
      << cfg->problems[0];
}

TEST(Config, HostileValuesAreEscapedAndShortened) {
  std::string huge(100 * 1024, 'x');
  auto cfg = load({{"KEEPALIVE_IDLE", huge}, {"KEEPALIVE_CNT", "4\x01\xff\n"}});
  ASSERT_EQ(cfg->nproblems, 2);
  std::string first = cfg->problems[0], second = cfg->problems[1];
  EXPECT_LT(first.size(), 300u);
  EXPECT_NE(first.find("(102400 bytes)"), std::string::npos) << first;
  EXPECT_NE(second.find("\\x01\\xff"), std::string::npos) << second;
  EXPECT_EQ(second.find('\n'), std::string::npos);
}

TEST(Config, EveryProblemIsReported) {
  auto cfg = load({{"KEEPALIVE_IDLE", "abc"},
                   {"KEEPALIVE_INTVL", "0"},
                   {"KEEPALIVE_CNT", "999"},
                   {"KEEPALIVE_RULES", "in bogus"}});
  EXPECT_EQ(cfg->nproblems, 4) << problems_of(*cfg);
}

TEST(Config, ProblemsBeyondStorageAreCounted) {
  std::string rules;
  for (int i = 0; i < KEEPALIVE_MAX_PROBLEMS + 5; ++i) rules += "bogus;";
  auto cfg = load({{"KEEPALIVE_RULES", rules}});
  EXPECT_EQ(cfg->nproblems, KEEPALIVE_MAX_PROBLEMS + 5);
  EXPECT_FALSE(cfg->valid);
}

// ---- KEEPALIVE_RULES ----

TEST(Rules, ProsodyExample) {
  auto cfg = load({{"KEEPALIVE_IDLE", "270"},
                   {"KEEPALIVE_RULES",
                    "peer=127.0.0.0/8,::1 off; in port=5222,5223 idle=270 cnt=4; "
                    "in port=5269 idle=600; out port=5269 idle=600; off"}});
  ASSERT_TRUE(cfg->valid) << problems_of(*cfg);
  ASSERT_EQ(cfg->nrules, 5);
  EXPECT_EQ(cfg->rules[0].settings.enable, 0);
  EXPECT_EQ(cfg->rules[0].npeers, 2);
  EXPECT_EQ(cfg->rules[1].directions, KEEPALIVE_IN);
  EXPECT_EQ(cfg->rules[1].nports, 2);
  EXPECT_EQ(cfg->rules[1].settings.idle_s, 270);
  EXPECT_EQ(cfg->rules[1].settings.intvl_s, 75);
  EXPECT_EQ(cfg->rules[1].settings.cnt, 4);
  EXPECT_EQ(cfg->rules[2].settings.idle_s, 600);
  EXPECT_EQ(cfg->rules[2].settings.intvl_s, 75);
  EXPECT_EQ(cfg->rules[3].directions, KEEPALIVE_OUT);
  EXPECT_EQ(cfg->rules[4].settings.enable, 0);
  EXPECT_STREQ(cfg->rules[1].text, "in port=5222,5223 idle=270 cnt=4");
  EXPECT_EQ(cfg->needs[KEEPALIVE_IN], KEEPALIVE_NEED_PEER | KEEPALIVE_NEED_PORT);
  EXPECT_EQ(cfg->needs[KEEPALIVE_OUT], KEEPALIVE_NEED_PEER | KEEPALIVE_NEED_PORT);
}

TEST(Rules, FieldsFallBackToGlobalsAndIntvlRuleUsesEffectiveIdle) {
  auto cfg = load({{"KEEPALIVE_IDLE", "10"},
                   {"KEEPALIVE_CNT", "3"},
                   {"KEEPALIVE_USER_TIMEOUT", "20s"},
                   {"KEEPALIVE_RULES", "in idle=600; out cnt=5; in intvl=7"}});
  ASSERT_TRUE(cfg->valid) << problems_of(*cfg);
  // Rule 1: own idle, interval from min(600, kernel 75), globals for the rest.
  EXPECT_EQ(cfg->rules[0].settings.idle_s, 600);
  EXPECT_EQ(cfg->rules[0].settings.intvl_s, 75);
  EXPECT_EQ(cfg->rules[0].settings.cnt, 3);
  EXPECT_EQ(cfg->rules[0].settings.user_timeout_ms, 20000);
  // Rule 2: global idle 10 → interval 10.
  EXPECT_EQ(cfg->rules[1].settings.idle_s, 10);
  EXPECT_EQ(cfg->rules[1].settings.intvl_s, 10);
  EXPECT_EQ(cfg->rules[1].settings.cnt, 5);
  EXPECT_EQ(cfg->rules[2].settings.intvl_s, 7);
  EXPECT_EQ(cfg->global.intvl_s, 10);
}

TEST(Rules, GlobalIntervalIsInheritedNotDerived) {
  auto cfg = load({{"KEEPALIVE_INTVL", "5"}, {"KEEPALIVE_RULES", "in idle=600"}});
  EXPECT_EQ(cfg->rules[0].settings.intvl_s, 5);
}

TEST(Rules, EmptyRulesAreIgnored) {
  auto cfg = load({{"KEEPALIVE_RULES", " ; in idle=5;; out off ;"}});
  ASSERT_TRUE(cfg->valid) << problems_of(*cfg);
  EXPECT_EQ(cfg->nrules, 2);
}

TEST(Rules, SelectorOnlyRuleMeansGlobalSettings) {
  auto cfg = load({{"KEEPALIVE_IDLE", "30"}, {"KEEPALIVE_RULES", "in port=22; in off"}});
  ASSERT_TRUE(cfg->valid) << problems_of(*cfg);
  EXPECT_EQ(cfg->rules[0].settings.enable, 1);
  EXPECT_EQ(cfg->rules[0].settings.idle_s, 30);
}

TEST(Rules, KeepaliveOffDisablesRulesToo) {
  auto cfg = load({{"KEEPALIVE", "off"}, {"KEEPALIVE_RULES", "in idle=5"}});
  ASSERT_TRUE(cfg->valid);
  EXPECT_FALSE(cfg->enabled);
  EXPECT_EQ(cfg->needs[KEEPALIVE_IN], 0u);
}

TEST(Rules, NeedsStopAtFirstUnconditionalRule) {
  auto cfg = load({{"KEEPALIVE_RULES", "in idle=5; out port=443 idle=9; peer=10.0.0.0/8 off"}});
  ASSERT_TRUE(cfg->valid);
  EXPECT_EQ(cfg->needs[KEEPALIVE_IN], 0u);
  EXPECT_EQ(cfg->needs[KEEPALIVE_OUT], KEEPALIVE_NEED_PORT | KEEPALIVE_NEED_PEER);
  auto direction_only = load({{"KEEPALIVE_RULES", "out off; in idle=5"}});
  EXPECT_EQ(direction_only->needs[KEEPALIVE_OUT], 0u);
  EXPECT_EQ(direction_only->needs[KEEPALIVE_IN], 0u);
}

TEST(Rules, LongRuleTextIsShortened) {
  std::string rule = "port=1";
  for (int port = 2; port <= 60; ++port) rule += "," + std::to_string(port);
  auto cfg = load({{"KEEPALIVE_RULES", rule}});
  ASSERT_TRUE(cfg->valid) << problems_of(*cfg);
  EXPECT_EQ(cfg->rules[0].nports, 60);
  EXPECT_EQ(strlen(cfg->rules[0].text), static_cast<size_t>(KEEPALIVE_RULE_TEXT_LEN - 1));
}

TEST(Rules, Limits) {
  std::string rules;
  for (int i = 0; i < KEEPALIVE_MAX_RULES; ++i) rules += "in port=" + std::to_string(i + 1) + ";";
  EXPECT_TRUE(load({{"KEEPALIVE_RULES", rules}})->valid);
  auto too_many = load({{"KEEPALIVE_RULES", rules + "off"}});
  EXPECT_FALSE(too_many->valid);
  EXPECT_NE(problems_of(*too_many).find("more than 64 rules"), std::string::npos);

  std::string ports = "port=1";
  for (int port = 2; port <= KEEPALIVE_MAX_ITEMS; ++port) ports += "," + std::to_string(port);
  EXPECT_TRUE(load({{"KEEPALIVE_RULES", ports}})->valid);
  auto too_long = load({{"KEEPALIVE_RULES", ports + ",65"}});
  EXPECT_FALSE(too_long->valid);
  EXPECT_NE(problems_of(*too_long).find("more than 64 items in one list"), std::string::npos);
}

struct BadRule {
  const char *rules;
  const char *message;  // expected substring
};

class RejectedRule : public ::testing::TestWithParam<BadRule> {};

TEST_P(RejectedRule, NamesRuleNumberTextAndWord) {
  auto cfg = load({{"KEEPALIVE_RULES", GetParam().rules}});
  EXPECT_FALSE(cfg->valid);
  EXPECT_EQ(cfg->nrules, 0) << "never half-applied";
  ASSERT_EQ(cfg->nproblems, 1) << problems_of(*cfg);
  EXPECT_NE(std::string(cfg->problems[0]).find(GetParam().message), std::string::npos)
      << cfg->problems[0];
}

INSTANTIATE_TEST_SUITE_P(
    Table, RejectedRule,
    ::testing::Values(
        BadRule{"in idle=5; out prt=5222 idle=9",
                "KEEPALIVE_RULES rule 2 (\"out prt=5222 idle=9\"): \"prt=5222\": unknown word"},
        BadRule{"in idle=abc",
                "rule 1 (\"in idle=abc\"): \"idle=abc\": expected idle=whole seconds"},
        BadRule{"in idle=0", "\"idle=0\": expected idle="},
        BadRule{"intvl=40000", "\"intvl=40000\": expected intvl="},
        BadRule{"cnt=200", "\"cnt=200\": expected cnt=a whole number from 1 to 127"},
        BadRule{"user_timeout=-1", "\"user_timeout=-1\": expected user_timeout="},
        BadRule{"port=0", "\"0\" is not a port 1-65535"},
        BadRule{"port=65536", "\"65536\" is not a port"},
        BadRule{"port=5999-5000", "\"5999-5000\" is not a port"},
        BadRule{"port=5222,", "\"\" is not a port"}, BadRule{"port=", "\"\" is not a port"},
        BadRule{"port=52a2", "\"52a2\" is not a port"},
        BadRule{"peer=300.1.1.1", "\"300.1.1.1\" is not an IPv4/IPv6 address or CIDR"},
        BadRule{"peer=10.0.0.0/33", "\"10.0.0.0/33\" is not an IPv4/IPv6"},
        BadRule{"peer=::1/129", "\"::1/129\" is not"}, BadRule{"peer=10.0.0.0/", "is not"},
        BadRule{"peer=10.0.0.0/x", "is not"}, BadRule{"peer=example.org", "is not"},
        BadRule{"in out idle=5", "\"out\": a rule takes one direction"},
        BadRule{"in in", "\"in\": a rule takes one direction"},
        BadRule{"idle=5 idle=6", "\"idle=6\": given twice"},
        BadRule{"port=1 port=2", "\"port=2\": given twice"},
        BadRule{"peer=::1 peer=::2", "\"peer=::2\": given twice"},
        BadRule{"off off", "\"off\": given twice"},
        BadRule{"in idle=5 off", "\"off\" cannot be combined with settings"},
        BadRule{"IN idle=5", "\"IN\": unknown word"}));

struct Cidr {
  const char *text;
  int family;
  int prefix;
  const char *network;  // expected network, as parsed back
};

class CidrAccepted : public ::testing::TestWithParam<Cidr> {};

TEST_P(CidrAccepted, Parses) {
  const Cidr &c = GetParam();
  keepalive_cidr cidr;
  ASSERT_EQ(keepalive_parse_cidr(c.text, strlen(c.text), &cidr), 1) << c.text;
  EXPECT_EQ(cidr.net.family, c.family);
  EXPECT_EQ(cidr.prefix, c.prefix);
  keepalive_cidr expected;
  ASSERT_EQ(keepalive_parse_cidr(c.network, strlen(c.network), &expected), 1);
  EXPECT_EQ(memcmp(cidr.net.addr, expected.net.addr, 16), 0) << c.text;
}

INSTANTIATE_TEST_SUITE_P(
    Table, CidrAccepted,
    ::testing::Values(Cidr{"127.0.0.0/8", 4, 8, "127.0.0.0"}, Cidr{"10.1.2.3/8", 4, 8, "10.0.0.0"},
                      Cidr{"100.64.0.7", 4, 32, "100.64.0.7"}, Cidr{"0.0.0.0/0", 4, 0, "0.0.0.0"},
                      Cidr{"::1", 6, 128, "::1"}, Cidr{"2001:db8::/32", 6, 32, "2001:db8::"},
                      Cidr{"2001:db8:ff::1/40", 6, 40, "2001:db8::"}, Cidr{"::/0", 6, 0, "::"},
                      Cidr{"::ffff:192.0.2.1", 4, 32, "192.0.2.1"},
                      Cidr{"::ffff:198.51.100.0/120", 4, 24, "198.51.100.0"}));

TEST(Cidr, MappedPrefixShorterThanMappedPartIsRejected) {
  keepalive_cidr cidr;
  EXPECT_EQ(keepalive_parse_cidr("::ffff:0.0.0.0/80", 17, &cidr), 0);
}

// Every kept problem names the variable it is about, by its index in
// keepalive_variable_name: the command marks a flag's problems by it.
TEST(Config, EachProblemNamesItsVariable) {
  auto cfg = load({{"KEEPALIVE", "maybe"},
                   {"KEEPALIVE_IDLE", "abc"},
                   {"KEEPALIVE_CNT", "0"},
                   {"KEEPALIVE_RULES", "port=x"},
                   {"KEEPALIVE_LOG", "loud"},
                   {"KEEPALIVE_STRICT", "2"}});
  ASSERT_EQ(cfg->nproblems, 6) << problems_of(*cfg);
  for (int i = 0; i < cfg->nproblems; ++i) {
    const char *variable = keepalive_variable_name(cfg->problem_variables[i]);
    ASSERT_NE(variable, nullptr) << cfg->problems[i];
    std::string problem = cfg->problems[i];
    std::string name = problem.substr(0, problem.find_first_of("= "));
    EXPECT_EQ(name, variable) << problem;
  }
  Env env = {{"KEEPALIVE_STRICT", "1"}};
  const char *names[] = {"KEEPALIVE_STRICT=1", "KEEPALIVE_IDEL=1", nullptr};
  auto strict = std::make_unique<keepalive_config>();
  keepalive_config_load_names(strict.get(), keepalive_test::lookup, &env, 75, names);
  ASSERT_EQ(strict->nproblems, 1);
  EXPECT_EQ(strict->problem_variables[0], -1) << strict->problems[0];
}

TEST(Config, KeptProblemsStopAtTheStorage) {
  EXPECT_EQ(keepalive_kept_problems(load({{"KEEPALIVE_IDLE", "x"}}).get()), 1);
  std::string rules;
  for (int i = 0; i < KEEPALIVE_MAX_PROBLEMS + 4; ++i) rules += "port=x;";
  auto cfg = load({{"KEEPALIVE_RULES", rules}});
  EXPECT_EQ(cfg->nproblems, KEEPALIVE_MAX_PROBLEMS + 4);
  EXPECT_EQ(keepalive_kept_problems(cfg.get()), KEEPALIVE_MAX_PROBLEMS);
}

TEST(Config, KeptWarningsStopAtTheStorage) {
  Env env;
  std::vector<std::string> entries;
  for (int i = 0; i < KEEPALIVE_MAX_WARNINGS + 3; ++i) {
    entries.push_back("KEEPALIVE_UNKNOWN" + std::to_string(i) + "=1");
  }
  std::vector<const char *> names;
  for (const std::string &entry : entries) names.push_back(entry.c_str());
  names.push_back(nullptr);
  auto cfg = std::make_unique<keepalive_config>();
  keepalive_config_load_names(cfg.get(), keepalive_test::lookup, &env, 75, names.data());
  EXPECT_EQ(cfg->nwarnings, KEEPALIVE_MAX_WARNINGS + 3);
  EXPECT_EQ(keepalive_kept_warnings(cfg.get()), KEEPALIVE_MAX_WARNINGS);
  const char *one[] = {"KEEPALIVE_IDEL=1", nullptr};
  keepalive_config_load_names(cfg.get(), keepalive_test::lookup, &env, 75, one);
  EXPECT_EQ(keepalive_kept_warnings(cfg.get()), 1);
}

}  // namespace
