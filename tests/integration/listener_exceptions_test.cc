// listener_exceptions_test.cc — a listener carries the decision for a peer
// that no peer= rule names, and the accepted sockets whose peer a rule
// decides otherwise get their own: the same values, socket by socket, as
// when every socket is decided by itself.
//
// Each case runs ka_peer twice on three listeners of the test (IPv4 A, IPv6
// B, dual-stack M bound to ::ffff:127.0.0.1; inherited as with socket
// activation) with the same connections from 127.0.0.1, 127.0.0.2,
// 127.0.0.3 and ::1, accepted in the same order:
//   decided itself — every connection waits in the queue before ka_peer
//                    starts: each was made from an unconfigured listener, so
//                    the library decides and sets each accepted socket;
//   inherited      — one connection per listener waits before the start; its
//                    accept configures the listener; the others are made
//                    while ka_peer pauses, so they inherit from it and only
//                    the exceptions are changed.
// Every accepted socket must read back the same five values in both runs
// (getsockopt inside the process) and show the same keepalive timer, or
// none, from outside (ss -tnoe).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "harness.h"

namespace ka_test {
namespace {

// Accepted sockets (ka_peer names), the listener and the client's address,
// in the order they are accepted. The first of each listener configures it.
struct Connection {
  const char *name;
  char listener;  // 'a', 'b' or 'm'
  const char *from;
};
const Connection kConnections[] = {
    {"a0", 'a', "127.0.0.1"}, {"b0", 'b', "::1"},       {"m0", 'm', "127.0.0.1"},
    {"a1", 'a', "127.0.0.1"}, {"a2", 'a', "127.0.0.2"}, {"a3", 'a', "127.0.0.3"},
    {"b1", 'b', "::1"},       {"m1", 'm', "127.0.0.1"}, {"m2", 'm', "127.0.0.3"},
    {"m3", 'm', "127.0.0.2"}, {"a4", 'a', "127.0.0.2"}};
constexpr size_t kFirstOfEach = 3;  // a0, b0, m0

const Env kAllFour = {{"KEEPALIVE_IDLE", "240"},
                      {"KEEPALIVE_INTVL", "17"},
                      {"KEEPALIVE_CNT", "4"},
                      {"KEEPALIVE_USER_TIMEOUT", "45s"}};
const Env kIdleOnly = {{"KEEPALIVE_IDLE", "123"}};

struct Case {
  const char *name;
  Env globals;
  const char *rules;  // {A}, {B}, {M} stand for the listeners' ports
  bool a_carries;     // listener A carries a decision in the inherited run
};

struct Listeners {
  Listeners()
      : a(TestListener("127.0.0.1")), b(TestListener("::1")), m(TestListener("::ffff:127.0.0.1")) {}
  Listeners(const Listeners &) = delete;
  Listeners &operator=(const Listeners &) = delete;
  ~Listeners() {
    for (int fd : clients) close(fd);
    for (int fd : {a, b, m}) close(fd);
  }
  int fd_of(char listener) const { return listener == 'a' ? a : listener == 'b' ? b : m; }
  void Connect(const Connection &c) {
    const char *to = c.listener == 'b' ? "::1" : "127.0.0.1";
    clients.push_back(TestConnect(c.from, to, PortOf(fd_of(c.listener))));
  }
  std::string WithPorts(std::string text) const {
    for (auto [name, fd] : {std::pair{"{A}", a}, {"{B}", b}, {"{M}", m}}) {
      for (size_t at; (at = text.find(name)) != std::string::npos;)
        text.replace(at, 3, std::to_string(PortOf(fd)));
    }
    return text;
  }
  const int a, b, m;
  std::vector<int> clients;
};

struct CaseRun {
  Report report;
  SsTable ss;
  std::string err;
  bool a_on = false;  // listener A's SO_KEEPALIVE, read by the test after the run
};

CaseRun RunCase(const Case &c, bool inherited) {
  Listeners listeners;
  const size_t before = inherited ? kFirstOfEach : std::size(kConnections);
  for (size_t i = 0; i < before; ++i) listeners.Connect(kConnections[i]);
  std::string script = "script inherit a 3  inherit b 4  inherit m 5  ";
  for (size_t i = 0; i < std::size(kConnections); ++i) {
    if (i == kFirstOfEach) script += "pause  ";
    script += std::string("accept ") + kConnections[i].name + " " + kConnections[i].listener +
              " accept  ";
  }
  script += "show";
  Env env = c.globals;
  env.emplace_back("KEEPALIVE_RULES", listeners.WithPorts(c.rules));
  env.emplace_back("KEEPALIVE_LOG", "debug");
  auto peer = StartPeer(Words(script), env, Preload::kYes, {listeners.a, listeners.b, listeners.m});
  CaseRun run;
  EXPECT_TRUE(peer->WaitForLine("paused")) << peer->err();
  for (size_t i = before; i < std::size(kConnections); ++i) listeners.Connect(kConnections[i]);
  peer->Send("go");
  EXPECT_TRUE(peer->WaitForLine("ready")) << peer->err();
  run.ss = ReadSs();
  EXPECT_EQ(peer->Finish(), 0) << peer->err();
  run.report = peer->report();
  run.err = peer->err();
  int on = 0;
  socklen_t len = sizeof on;
  EXPECT_EQ(getsockopt(listeners.a, SOL_SOCKET, SO_KEEPALIVE, &on, &len), 0);
  run.a_on = on != 0;
  return run;
}

// The timer of socket `name` as ss shows it ("keepalive"): "" when there is
// none, "<no ss line>" when ss did not list the socket.
std::string TimerKind(const CaseRun &run, const std::string &name) {
  const std::string inode = Get(run.report, "sock." + name + ".ino");
  const auto found = run.ss.find(std::strtoull(inode.c_str(), nullptr, 10));
  if (found == run.ss.end()) return "<no ss line>";
  return found->second.timer ? found->second.timer->kind : "";
}

class ListenerExceptions : public ::testing::TestWithParam<Case> {};

TEST_P(ListenerExceptions, EveryAcceptedSocketAsIfDecidedItself) {
  const Case &c = GetParam();
  const CaseRun itself = RunCase(c, false), inherited = RunCase(c, true);
  EXPECT_EQ(inherited.a_on, c.a_carries) << inherited.err;
  for (const Connection &connection : kConnections) {
    SCOPED_TRACE(std::string(connection.name) + " from " + connection.from);
    for (const char *value : {"keepalive", "idle", "intvl", "cnt", "user_timeout"}) {
      const std::string key = std::string("sock.") + connection.name + "." + value;
      EXPECT_EQ(Get(inherited.report, key), Get(itself.report, key)) << key << "\ndecided itself:\n"
                                                                     << itself.err << "inherited:\n"
                                                                     << inherited.err;
    }
    EXPECT_EQ(TimerKind(inherited, connection.name), TimerKind(itself, connection.name));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Corpus, ListenerExceptions,
    ::testing::Values(
        // The shape of the recommended Prosody rules: a peer switched off.
        Case{"PeerOffThenPort", kAllFour, "peer=127.0.0.2 off; in port={A} idle=123; off", true},
        Case{"LoopbackOff", kIdleOnly,
             "peer=127.0.0.0/8,::1 off; in port={A},{B},{M} idle=270 cnt=4; off", true},
        // A peer given shorter or other values than its port's.
        Case{"PeerShorter", kAllFour, "in peer=127.0.0.2 idle=50 intvl=5", true},
        Case{"PeerAddsAUserTimeout", kIdleOnly,
             "in port={A} peer=127.0.0.3 user_timeout=10s; in port={A} idle=200; "
             "in port={B} peer=::1 cnt=2; in port={M} peer=127.0.0.3 off",
             true},
        // A peer rule whose values are the port's: nothing to change.
        Case{"PeerSameValues", kAllFour,
             "in peer=127.0.0.2,127.0.0.3 idle=240 intvl=17 cnt=4 user_timeout=45s", true},
        // Peer rules of the other direction do not reach accepted sockets.
        Case{"OutgoingPeerRules", kAllFour, "out peer=127.0.0.2 off; in peer=127.0.0.3 intvl=3",
             true},
        // A port whose own decision is off: its listener carries nothing.
        Case{"PortOff", kIdleOnly, "peer=127.0.0.2 idle=60; in port={M} off", true},
        Case{"EveryPortOff", kAllFour, "in peer=127.0.0.2 idle=60; off", false}),
    [](const ::testing::TestParamInfo<Case> &param) { return std::string(param.param.name); });

}  // namespace
}  // namespace ka_test
