// rule_index_test.cc — the rule index decides exactly as the first-match
// scan: random rule sets (directions, ports and ranges up to 65535, IPv4 and
// IPv6 CIDRs of every prefix length, /0 included) against random facts near
// the items' edges, compared with keepalive_rule_matches in rule order; and a
// configuration too large for the index falls back to the scan.

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "keepalive/keepalive.h"
#include "test_env.h"

namespace {

using keepalive_test::load;

int scan(const keepalive_config &cfg, const keepalive_socket_facts &f) {
  for (int i = 0; i < cfg.nrules; ++i) {
    if (keepalive_rule_matches(&cfg.rules[i], &f)) return i;
  }
  return KEEPALIVE_RULE_GLOBAL;
}

std::string v4(std::mt19937 &rng) {
  static const char *const kBases[] = {"10.0.0.0", "10.1.2.3",        "127.0.0.1",
                                       "0.0.0.0",  "255.255.255.255", "100.64.0.0"};
  return kBases[rng() % 6];
}

std::string v6(std::mt19937 &rng) {
  static const char *const kBases[] = {
      "::",     "::1", "2001:db8::", "2001:db8:0:1::5", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
      "fe80::1"};
  return kBases[rng() % 6];
}

std::string random_rule(std::mt19937 &rng) {
  std::string rule;
  int d = static_cast<int>(rng() % 3);
  if (d == 1) rule += "in ";
  if (d == 2) rule += "out ";
  if (rng() % 3 != 0) {
    rule += "port=";
    for (int n = 1 + static_cast<int>(rng() % 3), i = 0; i < n; ++i) {
      int first = 1 + static_cast<int>(rng() % 65535);
      int last = rng() % 2 ? first : first + static_cast<int>(rng() % (65536 - first));
      if (rng() % 8 == 0) last = 65535;
      rule += (i ? "," : "") + std::to_string(first) +
              (last != first ? "-" + std::to_string(last) : "");
    }
    rule += " ";
  }
  if (rng() % 3 != 0) {
    rule += "peer=";
    for (int n = 1 + static_cast<int>(rng() % 3), i = 0; i < n; ++i) {
      bool six = rng() % 2;
      rule += (i ? "," : "") + (six ? v6(rng) + "/" + std::to_string(rng() % 129)
                                    : v4(rng) + "/" + std::to_string(rng() % 33));
    }
    rule += " ";
  }
  return rule + "idle=" + std::to_string(1 + rng() % 1000);
}

keepalive_socket_facts random_facts(std::mt19937 &rng) {
  keepalive_socket_facts f{};
  f.direction = rng() % 2 ? KEEPALIVE_IN : KEEPALIVE_OUT;
  if (rng() % 5 != 0) {
    f.has_port = 1;
    static const int kEdges[] = {1, 2, 1023, 1024, 5222, 32768, 65534, 65535};
    f.port = static_cast<uint16_t>(rng() % 2 ? kEdges[rng() % 8] : 1 + rng() % 65535);
  }
  if (rng() % 5 != 0) {
    std::string text = rng() % 2 ? v4(rng) : v6(rng);
    keepalive_cidr cidr;
    EXPECT_EQ(keepalive_parse_cidr(text.c_str(), text.size(), &cidr), 1);
    f.has_peer = 1;
    f.peer = cidr.net;
    // Flip one random bit: addresses just inside and outside prefixes.
    int bits = f.peer.family == 4 ? 32 : 128;
    if (rng() % 2) {
      int bit = static_cast<int>(rng() % bits);
      f.peer.addr[bit / 8] = static_cast<uint8_t>(f.peer.addr[bit / 8] ^ (0x80u >> (bit % 8)));
    }
  }
  return f;
}

TEST(RuleIndex, DecidesLikeTheScan) {
  std::mt19937 rng(8);
  for (int config = 0; config < 300; ++config) {
    std::string rules;
    for (int n = 1 + static_cast<int>(rng() % 64), i = 0; i < n; ++i) {
      rules += random_rule(rng) + ";";
    }
    auto cfg = load({{"KEEPALIVE_RULES", rules}});
    ASSERT_TRUE(cfg->valid) << cfg->problems[0] << "\n" << rules;
    ASSERT_TRUE(cfg->index.usable) << rules;
    for (int i = 0; i < 500; ++i) {
      keepalive_socket_facts f = random_facts(rng);
      keepalive_settings s;
      keepalive_decide(cfg.get(), &f, &s);
      ASSERT_EQ(s.rule, scan(*cfg, f))
          << rules << "\nport " << f.port << " has_peer " << f.has_peer;
    }
  }
}

TEST(RuleIndex, TooManyBoundariesFallBackToTheScan) {
  std::string rules;
  for (int r = 0; r < 64; ++r) {
    rules += "port=";
    for (int i = 0; i < 8; ++i) {
      rules += (i ? "," : "") + std::to_string(1000 + r * 16 + i * 2);
    }
    rules += " idle=" + std::to_string(r + 1) + ";";
  }
  auto cfg = load({{"KEEPALIVE_RULES", rules}});
  ASSERT_TRUE(cfg->valid) << cfg->problems[0];
  EXPECT_FALSE(cfg->index.usable);  // 64 * 8 * 2 boundaries > KEEPALIVE_INDEX_BOUNDS
  keepalive_socket_facts f{};
  f.direction = KEEPALIVE_IN;
  f.has_port = 1;
  f.port = static_cast<uint16_t>(1000 + 63 * 16 + 14);
  keepalive_settings s;
  keepalive_decide(cfg.get(), &f, &s);
  EXPECT_EQ(s.rule, 63);
}

}  // namespace
