// bench_rules.h — the KEEPALIVE_RULES text of the benchmarks, shared by the
// churn driver (bench_cost.cc) and the decision microbenchmark
// (core_bench.cc), so that both measure the same rules.
//
// The rules are built to be expensive to scan, i.e. a pessimistic case: every
// rule but the last names both directions, four ports (the last of them the
// socket's own port, so the port test passes after a full scan) and four
// peers that do not contain 127.0.0.1 (three IPv4 ranges and one IPv6 range:
// all four are compared). The last rule matches 127.0.0.0/8 when
// `last_matches`, else it is one more rule that matches nothing.
// port_rules is the same without peers.
#ifndef KEEPALIVE_TESTS_BENCH_BENCH_RULES_H
#define KEEPALIVE_TESTS_BENCH_BENCH_RULES_H

#include <string>

namespace keepalive_bench {

// The global options of the "with" runs: all four set.
constexpr const char *kGlobalOptions[][2] = {
    {"KEEPALIVE_IDLE", "270"},
    {"KEEPALIVE_INTVL", "30"},
    {"KEEPALIVE_CNT", "4"},
    {"KEEPALIVE_USER_TIMEOUT", "2m"},
};

inline std::string bench_rules(int count, unsigned port, bool last_matches) {
  std::string rules;
  for (int k = 1; k < count; ++k) {
    std::string n = std::to_string(k);
    rules += "port=5222,5269,5280," + std::to_string(port) + " peer=10." + n + ".0.0/16,172.16." +
             n + ".0/24,192.168." + n + ".0/24,2001:db8:" + n +
             "::/48 idle=" + std::to_string(60 + k) + "; ";
  }
  rules += last_matches ? "peer=127.0.0.0/8 idle=240" : "peer=203.0.113.0/24 idle=240";
  return rules;
}

// Rules by port only (no peer=): a listener can carry their decision. Every
// rule but the last names four ports, none the socket's own; the last one
// names `port`, so both ends (the server's local port, the client's peer
// port) are decided by it after a full scan.
inline std::string port_rules(int count, unsigned port) {
  std::string rules;
  for (int k = 1; k < count; ++k) {
    rules += "port=" + std::to_string(1000 + 4 * k) + "," + std::to_string(1001 + 4 * k) + "," +
             std::to_string(1002 + 4 * k) + "," + std::to_string(1003 + 4 * k) +
             " idle=" + std::to_string(60 + k) + "; ";
  }
  return rules + "port=" + std::to_string(port) + " idle=240";
}

}  // namespace keepalive_bench

#endif
