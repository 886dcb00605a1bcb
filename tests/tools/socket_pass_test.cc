// socket_pass_test.cc — unit: the parts of the socket pass (socket_pass.h)
// that need no process: the vocabulary of actions, totals in which every
// socket counts once, the socket facts taken from addresses
// (keepalive_facts_from_sockaddr), and the leave-alone rule on a listed
// socket (describe_socket).

#include "lib/socket_pass.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#include <set>
#include <string>
#include <tuple>

#include "lib/output.h"
#include "lib/socket_report.h"

namespace {

using keepalive_cli::Action;
using keepalive_cli::action_info;
using keepalive_cli::Group;
using keepalive_cli::kActionCount;
using keepalive_cli::Outcome;
using keepalive_cli::TcpSocket;
using keepalive_cli::Totals;

constexpr Group kGroups[] = {Group::kChanged, Group::kLeft,   Group::kSkipped,
                             Group::kGone,    Group::kFailed, Group::kCompared};

TEST(Actions, EachHasItsOwnJsonName) {
  std::set<std::string> names;
  for (size_t i = 0; i < kActionCount; ++i) {
    names.insert(action_info(static_cast<Action>(i)).name);
  }
  EXPECT_EQ(names.size(), kActionCount);
}

TEST(Totals, EverySocketCountsInExactlyOneGroup) {
  Totals totals;
  for (size_t i = 0; i < kActionCount; ++i) {
    for (size_t n = 0; n <= i; ++n) totals.add(static_cast<Action>(i));
  }
  int by_group = 0;
  for (Group group : kGroups) by_group += totals.of(group);
  EXPECT_EQ(by_group, totals.sockets());
  EXPECT_EQ(totals.sockets(), static_cast<int>(kActionCount * (kActionCount + 1) / 2));
}

TEST(Totals, JsonFieldsAddUpToSockets) {
  Totals totals;
  for (Action action :
       {Action::kSet, Action::kOwnTimings, Action::kByPeer, Action::kLeft, Action::kListenerNotSet,
        Action::kNotEstablished, Action::kGone, Action::kFailed, Action::kSet}) {
    totals.add(action);
  }
  keepalive_cli::JsonWriter json(keepalive_cli::JsonWriter::kOneLine);
  json.begin_object();
  keepalive_cli::totals_json_fields(&json, false, totals);
  json.end_object();
  EXPECT_EQ(json.str(),
            "{\"sockets\": 9,\"set\": 2,\"left\": 3,\"skipped\": 2,\"gone\": 1,\"failed\": 1}\n");
  keepalive_config config{};
  config.enabled = 1;
  EXPECT_EQ(keepalive_cli::totals_line(config, false, totals),
            "2 sockets set, 1 left as the rules say, 2 left alone, 1 listening socket skipped "
            "(--listeners), 1 not established, skipped, 1 closed meanwhile, 1 FAILED.\n");
}

// An AF_INET or AF_INET6 socket address (as inet_pton reads `address`).
sockaddr_storage endpoint(int family, const char *address, uint16_t port) {
  sockaddr_storage storage{};
  storage.ss_family = static_cast<sa_family_t>(family);
  auto &in = reinterpret_cast<sockaddr_in &>(storage);
  auto &in6 = reinterpret_cast<sockaddr_in6 &>(storage);
  (family == AF_INET ? in.sin_port : in6.sin6_port) = htons(port);
  inet_pton(family, address,
            family == AF_INET ? static_cast<void *>(&in.sin_addr) : &in6.sin6_addr);
  return storage;
}

sockaddr_storage ipv4(const char *address, uint16_t port) {
  return endpoint(AF_INET, address, port);
}

const sockaddr *as_sockaddr(const sockaddr_storage &storage) {
  return reinterpret_cast<const sockaddr *>(&storage);
}

TEST(FactsFromSockaddr, IncomingTakesTheLocalPortOutgoingThePeers) {
  sockaddr_storage local = ipv4("192.0.2.1", 5222), peer = ipv4("198.51.100.7", 40000);
  keepalive_socket_facts facts;
  keepalive_facts_from_sockaddr(KEEPALIVE_IN, as_sockaddr(local), as_sockaddr(peer), &facts);
  EXPECT_EQ((std::pair<int, int>(facts.has_port, facts.port)), (std::pair<int, int>(1, 5222)));
  ASSERT_TRUE(facts.has_peer);
  EXPECT_EQ(facts.peer.family, 4);
  EXPECT_EQ(memcmp(facts.peer.addr, "\xc6\x33\x64\x07", 4), 0);
  keepalive_facts_from_sockaddr(KEEPALIVE_OUT, as_sockaddr(local), as_sockaddr(peer), &facts);
  EXPECT_EQ((std::pair<int, int>(facts.has_port, facts.port)), (std::pair<int, int>(1, 40000)));
}

TEST(FactsFromSockaddr, MappedIpv6PeerIsIpv4AndUnknownAddressesStayAbsent) {
  sockaddr_storage peer = endpoint(AF_INET6, "::ffff:198.51.100.7", 443);
  keepalive_socket_facts facts;
  keepalive_facts_from_sockaddr(KEEPALIVE_OUT, nullptr, as_sockaddr(peer), &facts);
  EXPECT_TRUE(facts.has_port && facts.has_peer);
  EXPECT_EQ(facts.peer.family, 4);
  keepalive_facts_from_sockaddr(KEEPALIVE_IN, nullptr, nullptr, &facts);
  EXPECT_FALSE(facts.has_port || facts.has_peer);
  EXPECT_EQ(facts.direction, KEEPALIVE_IN);
  sockaddr_storage unix_address{};
  unix_address.ss_family = AF_UNIX;
  keepalive_facts_from_sockaddr(KEEPALIVE_IN, as_sockaddr(unix_address), nullptr, &facts);
  EXPECT_FALSE(facts.has_port);
}

// A configuration from KEEPALIVE_* text, through the core's parser.
keepalive_config load(const char *idle, const char *rules) {
  keepalive_config config{};
  auto lookup = [](const char *name, void *context) -> const char * {
    const auto *values = static_cast<const std::pair<const char *, const char *> *>(context);
    if (strcmp(name, "KEEPALIVE_IDLE") == 0) return values->first;
    if (strcmp(name, "KEEPALIVE_RULES") == 0) return values->second;
    return nullptr;
  };
  std::pair<const char *, const char *> values(idle, rules);
  keepalive_config_load(&config, lookup, &values, 75);
  return config;
}

TcpSocket established(int idle_s, uint16_t local_port) {
  TcpSocket socket;
  socket.state = TCP_ESTABLISHED;
  socket.connected = true;
  socket.direction = KEEPALIVE_IN;
  socket.has_local = socket.has_peer = true;
  socket.local = ipv4("127.0.0.1", local_port);
  socket.peer = ipv4("127.0.0.1", 50000);
  socket.keepalive_read = true;
  socket.keepalive = {1, idle_s, 75, 9, 0, KEEPALIVE_RULE_GLOBAL};
  return socket;
}

TEST(Describe, LeaveAloneRuleAsTheLibrarys) {
  const keepalive_config config = load("270", "in port=5223 off");
  keepalive_cli::PassOptions options;
  options.mode = keepalive_cli::PassMode::kDescribe;
  options.kernel = keepalive_cli::NamespaceDefaults::fixed({7200, 75, 9, 1});
  // The program's own idle time: left alone, whatever the rule says.
  EXPECT_EQ(describe_socket(config, established(33, 5223), options).action, Action::kOwnTimings);
  EXPECT_EQ(describe_socket(config, established(33, 5222), options).action, Action::kOwnTimings);
  // The kernel's idle time: decided; off by the rule on 5223.
  EXPECT_EQ(describe_socket(config, established(7200, 5222), options).action, Action::kDescribed);
  EXPECT_EQ(describe_socket(config, established(7200, 5223), options).action, Action::kLeft);
  // Our own decision carried: the library's, set once.
  TcpSocket ours = established(270, 5222);
  ours.keepalive.intvl_s = 75;
  EXPECT_EQ(describe_socket(config, ours, options).action, Action::kCarries);
}

// apply --dry-run (kPredict decides like kSet and touches no socket).
keepalive_cli::PassOptions predict() {
  keepalive_cli::PassOptions options;
  options.mode = keepalive_cli::PassMode::kPredict;
  options.kernel = keepalive_cli::NamespaceDefaults::fixed({7200, 75, 9, 1});
  return options;
}

TEST(Predict, OverrideReplacesThePrograms15sButNeverSwitchesKeepaliveOff) {
  const keepalive_config config = load("270", "in port=5223 off");
  keepalive_cli::PassOptions options = predict();
  EXPECT_EQ(describe_socket(config, established(15, 5222), options).action, Action::kOwnTimings);
  options.override = true;
  const Outcome go = describe_socket(config, established(15, 5222), options);
  EXPECT_EQ(go.action, Action::kWouldOverride);
  EXPECT_EQ((std::pair<int, int>(go.before.idle_s, go.after.idle_s)), std::make_pair(15, 270));
  EXPECT_EQ(describe_socket(config, established(15, 5223), options).action, Action::kOwnTimings);
  // Unchosen timings are set as without --override; ours already there are no override.
  EXPECT_EQ(describe_socket(config, established(7200, 5222), options).action, Action::kWouldSet);
  TcpSocket ours = established(270, 5222);
  EXPECT_EQ(describe_socket(config, ours, options).action, Action::kWouldSet);
}

// What --dry-run shows after: every value the decision sets, the socket's
// own for the others.
TEST(Predict, AfterHasTheValuesTheDecisionSetsAndKeepsTheOthers) {
  const keepalive_config config =
      load("270", "in port=5222 idle=100 cnt=3 user_timeout=9s; in port=5223 idle=100");
  TcpSocket with_timeout = established(7200, 5222);
  with_timeout.keepalive.enable = 0;
  with_timeout.keepalive.user_timeout_ms = 5000;
  const Outcome set = describe_socket(config, with_timeout, predict());
  EXPECT_EQ(set.action, Action::kWouldSet);
  EXPECT_EQ(
      std::make_tuple(set.after.enable, set.after.idle_s, set.after.cnt, set.after.user_timeout_ms),
      std::make_tuple(1, 100, 3, 9000LL));
  TcpSocket other_port = with_timeout;
  other_port.local = ipv4("127.0.0.1", 5223);
  const Outcome kept = describe_socket(config, other_port, predict());
  EXPECT_EQ(std::make_tuple(kept.after.enable, kept.after.idle_s, kept.after.cnt,
                            kept.after.user_timeout_ms),
            std::make_tuple(1, 100, 9, 5000LL));
}

TcpSocket listening(uint16_t port) {
  TcpSocket socket = established(7200, port);
  socket.state = TCP_LISTEN;
  socket.listening = true;
  socket.connected = socket.has_peer = false;
  socket.keepalive.enable = 0;
  return socket;
}

TEST(Predict, ListenerIsSetWhenItsPeerRulesAskLessThanItGives) {
  keepalive_cli::PassOptions options = predict();
  options.listeners = true;
  const std::pair<const char *, Action> cases[] = {
      {"peer=127.0.0.0/8 off; in port=5222 idle=270", Action::kWouldSet},
      {"peer=127.0.0.2 idle=300; in port=5222 idle=270", Action::kWouldSet},
      {"peer=127.0.0.2 idle=270 cnt=9; in port=5222 idle=270", Action::kWouldSet},
      // Shorter than the listener gives, or bounded where it is not: left.
      {"peer=127.0.0.2 idle=200; in port=5222 idle=270", Action::kByPeer},
      {"peer=127.0.0.2 idle=300 intvl=10; in port=5222 idle=270", Action::kByPeer},
      {"peer=127.0.0.2 idle=300 cnt=3; in port=5222 idle=270", Action::kByPeer},
      {"peer=127.0.0.2 idle=300 user_timeout=60s; in port=5222 idle=270", Action::kByPeer},
      {"peer=127.0.0.2 user_timeout=60s; in port=5222 idle=270 user_timeout=30s",
       Action::kWouldSet},
  };
  for (const auto &[rules, action] : cases) {
    const keepalive_config config = load(nullptr, rules);
    ASSERT_TRUE(config.valid) << rules;
    const Outcome outcome = describe_socket(config, listening(5222), options);
    EXPECT_EQ(outcome.action, action) << rules;
    EXPECT_EQ(outcome.peer_rules, std::vector<int>{0}) << rules;
    EXPECT_EQ(outcome.stricter_peer_rules.size(), action == Action::kByPeer ? 1U : 0U) << rules;
  }
  options.exact_listeners = true;
  const keepalive_config config = load(nullptr, "peer=127.0.0.0/8 off; in port=5222 idle=270");
  EXPECT_EQ(describe_socket(config, listening(5222), options).action, Action::kByPeer);
}

TEST(Predict, ValuesOfTheReplacedConfigurationAreOursNotThePrograms) {
  const keepalive_config config = load("240", "");
  const keepalive_config earlier = load("270", "in port=5223 idle=300");
  keepalive_cli::PassOptions options = predict();
  options.replaced = &earlier;
  EXPECT_EQ(describe_socket(config, established(270, 5222), options).action, Action::kWouldSet);
  EXPECT_EQ(describe_socket(config, established(300, 5223), options).action, Action::kWouldSet);
  // Not what the earlier configuration decided for that socket: the program's.
  EXPECT_EQ(describe_socket(config, established(300, 5222), options).action, Action::kOwnTimings);
  EXPECT_EQ(describe_socket(config, established(33, 5222), options).action, Action::kOwnTimings);
}

}  // namespace
