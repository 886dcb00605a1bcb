// policy_test.cc — keepalive_decide / keepalive_rule_matches: directions,
// ports and ranges, v4/v6/v4-mapped peers, prefix lengths 0 and full,
// first-match order and fallback to the global settings;
// keepalive_decide_listener (when a listener can stand for its connections)
// and keepalive_timings_chosen and keepalive_settings_carry.

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>

#include "keepalive/keepalive.h"
#include "test_env.h"

namespace {

using keepalive_test::load;

keepalive_socket_facts facts(keepalive_direction direction, int port, const char *peer) {
  keepalive_socket_facts f{};
  f.direction = direction;
  if (port > 0) {
    f.has_port = 1;
    f.port = static_cast<uint16_t>(port);
  }
  if (peer != nullptr) {
    // Peers are given as the socket layer reports them: a v4-mapped IPv6
    // address is turned into IPv4 by keepalive_read_facts, and by the CIDR
    // parser here for the same reason.
    keepalive_cidr cidr;
    EXPECT_EQ(keepalive_parse_cidr(peer, strlen(peer), &cidr), 1) << peer;
    f.has_peer = 1;
    f.peer = cidr.net;
  }
  return f;
}

constexpr keepalive_direction IN = KEEPALIVE_IN;
constexpr keepalive_direction OUT = KEEPALIVE_OUT;

struct Case {
  const char *rules;
  keepalive_direction direction;
  int port;           // 0 = fact absent
  const char *peer;   // nullptr = fact absent
  int expected_rule;  // 1-based rule number, 0 = global
  int expected_enable;
};

class Decide : public ::testing::TestWithParam<Case> {};

TEST_P(Decide, FirstMatchingRuleWins) {
  const Case &c = GetParam();
  auto cfg = load({{"KEEPALIVE_IDLE", "100"}, {"KEEPALIVE_RULES", c.rules}});
  ASSERT_TRUE(cfg->valid) << cfg->problems[0];
  keepalive_socket_facts f = facts(c.direction, c.port, c.peer);
  keepalive_settings s;
  keepalive_decide(cfg.get(), &f, &s);
  EXPECT_EQ(s.rule, c.expected_rule - 1) << c.rules;
  EXPECT_EQ(s.enable, c.expected_enable) << c.rules;
}

INSTANTIATE_TEST_SUITE_P(
    Table, Decide,
    ::testing::Values(
        // directions
        Case{"in idle=5", IN, 0, nullptr, 1, 1}, Case{"in idle=5", OUT, 0, nullptr, 0, 1},
        Case{"out off", OUT, 0, nullptr, 1, 0}, Case{"out off", IN, 0, nullptr, 0, 1},
        Case{"idle=5", IN, 0, nullptr, 1, 1}, Case{"idle=5", OUT, 0, nullptr, 1, 1},
        // ports and ranges
        Case{"port=5222 idle=5", IN, 5222, nullptr, 1, 1},
        Case{"port=5222 idle=5", IN, 5223, nullptr, 0, 1},
        Case{"port=5222,5223 idle=5", IN, 5223, nullptr, 1, 1},
        Case{"port=5000-5999 idle=5", IN, 5000, nullptr, 1, 1},
        Case{"port=5000-5999 idle=5", IN, 5999, nullptr, 1, 1},
        Case{"port=5000-5999 idle=5", IN, 4999, nullptr, 0, 1},
        Case{"port=5000-5999 idle=5", IN, 6000, nullptr, 0, 1},
        Case{"port=1-65535 idle=5", OUT, 65535, nullptr, 1, 1},
        Case{"port=5222 idle=5", IN, 0, nullptr, 0, 1},  // port unknown: no match
        // IPv4 peers, prefix lengths
        Case{"peer=127.0.0.0/8 off", IN, 0, "127.0.0.1", 1, 0},
        Case{"peer=127.0.0.0/8 off", IN, 0, "128.0.0.1", 0, 1},
        Case{"peer=100.64.0.0/10 idle=5", IN, 0, "100.127.255.255", 1, 1},
        Case{"peer=100.64.0.0/10 idle=5", IN, 0, "100.128.0.0", 0, 1},
        Case{"peer=0.0.0.0/0 idle=5", IN, 0, "203.0.113.9", 1, 1},
        Case{"peer=198.51.100.7 idle=5", IN, 0, "198.51.100.7", 1, 1},
        Case{"peer=198.51.100.7/32 idle=5", IN, 0, "198.51.100.6", 0, 1},
        Case{"peer=0.0.0.0/0 idle=5", IN, 0, "::1", 0, 1},  // families differ
        // IPv6 peers
        Case{"peer=::1 off", IN, 0, "::1", 1, 0}, Case{"peer=::1 off", IN, 0, "::2", 0, 1},
        Case{"peer=2001:db8::/32 idle=5", OUT, 0, "2001:db8:1::9", 1, 1},
        Case{"peer=2001:db8::/32 idle=5", OUT, 0, "2001:db9::9", 0, 1},
        Case{"peer=2001:db8::/33 idle=5", OUT, 0, "2001:db8:8000::1", 0, 1},
        Case{"peer=::/0 idle=5", OUT, 0, "2001:db8::1", 1, 1},
        Case{"peer=::/0 idle=5", OUT, 0, "127.0.0.1", 0, 1},
        // v4-mapped peers match IPv4 CIDRs
        Case{"peer=127.0.0.0/8 off", IN, 0, "::ffff:127.0.0.1", 1, 0},
        Case{"peer=::ffff:127.0.0.0/104 off", IN, 0, "127.1.2.3", 1, 0},
        Case{"peer=127.0.0.1 idle=5", IN, 0, nullptr, 0, 1},  // peer unknown: no match
        // combined selectors: all must match
        Case{"in port=5222 peer=100.64.0.0/10 idle=5", IN, 5222, "100.64.0.2", 1, 1},
        Case{"in port=5222 peer=100.64.0.0/10 idle=5", IN, 5222, "198.51.100.2", 0, 1},
        Case{"in port=5222 peer=100.64.0.0/10 idle=5", OUT, 5222, "100.64.0.2", 0, 1},
        // first match wins, later rules are not consulted
        Case{"peer=127.0.0.0/8 off; in port=5222 idle=5", IN, 5222, "127.0.0.1", 1, 0},
        Case{"peer=127.0.0.0/8 off; in port=5222 idle=5", IN, 5222, "100.64.0.2", 2, 1},
        Case{"in port=5222 idle=5; in port=5222 idle=6", IN, 5222, nullptr, 1, 1},
        Case{"in port=1 idle=5; in idle=6; off", IN, 2, nullptr, 2, 1},
        Case{"in port=1 idle=5; off", OUT, 1, nullptr, 2, 0}));

TEST(Decide, SettingsComeFromTheMatchingRuleOrGlobals) {
  auto cfg = load({{"KEEPALIVE_IDLE", "100"},
                   {"KEEPALIVE_CNT", "3"},
                   {"KEEPALIVE_RULES", "in port=5222 idle=270 cnt=4"}});
  keepalive_settings s;
  keepalive_socket_facts f = facts(IN, 5222, nullptr);
  keepalive_decide(cfg.get(), &f, &s);
  EXPECT_EQ(s.idle_s, 270);
  EXPECT_EQ(s.intvl_s, 75);
  EXPECT_EQ(s.cnt, 4);
  EXPECT_EQ(s.user_timeout_ms, KEEPALIVE_UNSET);
  f = facts(IN, 5269, nullptr);
  keepalive_decide(cfg.get(), &f, &s);
  EXPECT_EQ(s.rule, KEEPALIVE_RULE_GLOBAL);
  EXPECT_EQ(s.idle_s, 100);
  EXPECT_EQ(s.intvl_s, 75);
  EXPECT_EQ(s.cnt, 3);
}

struct ListenerCase {
  const char *rules;
  int port;           // the listener's port; 0 = fact absent
  int expected;       // keepalive_decide_listener's answer
  int expected_rule;  // when 1: 1-based rule number, 0 = global
};

class DecideListener : public ::testing::TestWithParam<ListenerCase> {};

// Where the listener can carry the settings, they are exactly what
// keepalive_decide gives every connection on that port, from any peer.
TEST_P(DecideListener, OnlyWhenEveryPeerGetsTheSameEnabledDecision) {
  const ListenerCase &c = GetParam();
  auto cfg = load({{"KEEPALIVE_IDLE", "100"}, {"KEEPALIVE_RULES", c.rules}});
  ASSERT_TRUE(cfg->valid) << cfg->problems[0];
  keepalive_socket_facts f = facts(IN, c.port, "127.0.0.1");
  keepalive_settings s;
  EXPECT_EQ(keepalive_decide_listener(cfg.get(), &f, &s), c.expected) << c.rules;
  if (c.expected == 0) {
    EXPECT_EQ(s.enable, 0) << c.rules;
    return;
  }
  EXPECT_EQ(s.rule, c.expected_rule - 1) << c.rules;
  for (const char *peer : {"127.0.0.1", "100.64.0.2", "2001:db8::1"}) {
    keepalive_socket_facts each = facts(IN, c.port, peer);
    keepalive_settings decided;
    keepalive_decide(cfg.get(), &each, &decided);
    EXPECT_EQ(decided.rule, s.rule) << c.rules << " peer " << peer;
    EXPECT_EQ(decided.idle_s, s.idle_s) << c.rules << " peer " << peer;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, DecideListener,
    ::testing::Values(
        ListenerCase{"", 5222, 1, 0},                                          // globals only
        ListenerCase{"in port=5222 idle=5", 5222, 1, 1},                       // port rule
        ListenerCase{"in port=5222 idle=5", 5269, 1, 0},                       // another port
        ListenerCase{"out peer=10.0.0.0/8 idle=5", 5222, 1, 0},                // outgoing only
        ListenerCase{"in port=5269 peer=10.0.0.0/8 off", 5222, 1, 0},          // other port's peers
        ListenerCase{"in port=5222 idle=5; peer=10.0.0.0/8 off", 5222, 1, 1},  // unreachable
        ListenerCase{"peer=10.0.0.0/8 idle=5", 5222, 0, 0},                    // peer decides
        ListenerCase{"in port=5222 peer=10.0.0.0/8 idle=5", 5222, 0, 0},
        ListenerCase{"in port=1 idle=5; peer=::1 off; in idle=6", 5222, 0, 0},
        ListenerCase{"in port=5222 off", 5222, 0, 0},  // off: untouched
        ListenerCase{"in off", 5222, 0, 0},
        ListenerCase{"in port=5222 idle=5", 0, 0, 0}));  // port unknown

TEST(DecideListener, NothingWhenDisabledOrInvalid) {
  keepalive_socket_facts f = facts(IN, 5222, nullptr);
  keepalive_settings s;
  EXPECT_EQ(keepalive_decide_listener(load({{"KEEPALIVE", "off"}}).get(), &f, &s), 0);
  EXPECT_EQ(s.enable, 0);
  EXPECT_EQ(keepalive_decide_listener(load({{"KEEPALIVE_IDLE", "x"}}).get(), &f, &s), 0);
  EXPECT_EQ(s.enable, 0);
}

TEST(TimingsChosen, ByTheIdleTimeAgainstTheKernelDefault) {
  keepalive_settings read_back{1, 7200, 75, 9, 0, KEEPALIVE_RULE_GLOBAL};
  EXPECT_EQ(keepalive_timings_chosen(&read_back, 7200), 0);  // SO_KEEPALIVE only (Prosody)
  read_back.enable = 0;
  EXPECT_EQ(keepalive_timings_chosen(&read_back, 7200), 0);  // nothing at all
  read_back.intvl_s = 10;
  EXPECT_EQ(keepalive_timings_chosen(&read_back, 7200), 0);  // INTVL only: not recognised
  read_back.idle_s = 1800;
  EXPECT_EQ(keepalive_timings_chosen(&read_back, 7200), 1);  // nginx so_keepalive=30m
  EXPECT_EQ(keepalive_timings_chosen(&read_back, 1800), 0);  // equal to another kernel's default
}

TEST(SettingsCarry, EveryValueDecidedIsReadBack) {
  keepalive_settings decided{1, 270, KEEPALIVE_UNSET, 4, KEEPALIVE_UNSET, 0};
  keepalive_settings read_back{1, 270, 75, 4, 0, KEEPALIVE_RULE_GLOBAL};
  EXPECT_EQ(keepalive_settings_carry(&read_back, &decided), 1);  // unset values not compared
  read_back.cnt = 9;
  EXPECT_EQ(keepalive_settings_carry(&read_back, &decided), 0);
  read_back.cnt = 4;
  read_back.enable = 0;
  EXPECT_EQ(keepalive_settings_carry(&read_back, &decided), 0);  // SO_KEEPALIVE off
  read_back.enable = 1;
  decided.user_timeout_ms = 3000;
  EXPECT_EQ(keepalive_settings_carry(&read_back, &decided), 0);
  read_back.user_timeout_ms = 3000;
  EXPECT_EQ(keepalive_settings_carry(&read_back, &decided), 1);
  decided.enable = 0;
  EXPECT_EQ(keepalive_settings_carry(&read_back, &decided), 0);  // off decides nothing
}

TEST(Format, SettingsAndOff) {
  keepalive_settings s{1, 270, 75, KEEPALIVE_UNSET, 3000, KEEPALIVE_RULE_GLOBAL};
  char buf[128];
  keepalive_format_settings(&s, buf, sizeof buf);
  EXPECT_STREQ(buf, "idle=270s intvl=75s cnt=kernel user_timeout=3000ms");
  s.enable = 0;
  keepalive_format_settings(&s, buf, sizeof buf);
  EXPECT_STREQ(buf, "off");
}

}  // namespace
