// rules_test.cc — KEEPALIVE_RULES in a running server: ka_peer
// accepts on three listeners (IPv4 port A, IPv6 port B, dual-stack port M;
// inherited from the test, as with systemd socket activation) and connects
// out to three ports of the test (C on IPv4, D on IPv6, and E, whose full
// accept queue drops the SYN so that a non-blocking connect stays in
// progress: its peer is then unknown to getpeername). Clients come from
// 127.0.0.1, 127.0.0.2 and 127.0.0.3 (all loopback), so that peer rules,
// port rules, directions, v4-mapped peers and the global fallback each decide
// some socket. Values are checked inside, outside (ss -tnoe) and in the
// debug log, which names each socket's rule.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "harness.h"

namespace ka_test {
namespace {

// `rules` is KEEPALIVE_RULES with {A}, {B}, {C}, {E}, {F} standing for the
// ports (F: E's IPv6 twin on ::1, its queue full too).
ObservedRun RunServer(const std::string &rules, const Env &globals) {
  const int a = TestListener("127.0.0.1"), b = TestListener("::1"),
            m = TestListener("::ffff:127.0.0.1");
  const int c = TestListener("127.0.0.1"), d = TestListener("::1"),
            e = TestListener("127.0.0.1", 0), f = TestListener("::1", 0);
  auto with_ports = [&](std::string text) {
    for (auto [name, fd] :
         {std::pair{"{A}", a}, {"{B}", b}, {"{C}", c}, {"{D}", d}, {"{E}", e}, {"{F}", f}}) {
      for (size_t at; (at = text.find(name)) != std::string::npos;)
        text.replace(at, 3, std::to_string(PortOf(fd)));
    }
    return text;
  };
  // Waiting in the listeners' queues, in this order, before ka_peer starts;
  // the last two fill E's and F's queues (backlog 0).
  std::vector<int> clients = {TestConnect("127.0.0.1", "127.0.0.1", PortOf(a)),
                              TestConnect("127.0.0.2", "127.0.0.1", PortOf(a)),
                              TestConnect("::1", "::1", PortOf(b)),
                              TestConnect("127.0.0.3", "127.0.0.1", PortOf(m)),
                              TestConnect("127.0.0.1", "127.0.0.1", PortOf(m)),
                              TestConnect("127.0.0.1", "127.0.0.1", PortOf(e)),
                              TestConnect("::1", "::1", PortOf(f))};
  Env env = globals;
  env.emplace_back("KEEPALIVE_RULES", with_ports(rules));
  env.emplace_back("KEEPALIVE_LOG", "debug");
  const std::string script =
      "script inherit a 3  inherit b 4  inherit m 5  "
      "accept a1 a accept  accept a2 a accept4  accept b1 b accept  "
      "accept m1 m accept4+cloexec  accept m2 m accept  "
      "connect out_c 127.0.0.1 {C}  connect out_c_nb 127.0.0.1 {C} nonblock  "
      "connect out_d ::1 {D}  connect out_pending 127.0.0.1 {E} nonblock nowait  "
      "connect out_any 0.0.0.0 {E} nonblock nowait  connect out_any6 :: {F} nonblock nowait  show";
  ObservedRun run = RunObserved(Words(with_ports(script)), env, {a, b, m});
  for (int fd : clients) close(fd);
  for (int fd : {a, b, m, c, d, e, f}) close(fd);
  return run;
}

// The TCP state of out_pending as ss saw it.
std::string PendingState(const ObservedRun &run) {
  auto it =
      run.ss.find(std::strtoull(Get(run.report, "sock.out_pending.ino").c_str(), nullptr, 10));
  return it == run.ss.end() ? "<not in ss>" : it->second.state;
}

const Env kGlobals = {
    {"KEEPALIVE_IDLE", "300"}, {"KEEPALIVE_CNT", "5"}, {"KEEPALIVE_USER_TIMEOUT", "20s"}};

TEST(Rules, EachSocketGetsItsFirstMatchingRule) {
  ObservedRun run = RunServer(
      "peer=127.0.0.2,127.0.0.3 idle=120 cnt=3; in port={A} idle=180 cnt=4; in port={B} off; "
      "out port={C},{E},{F} idle=240 intvl=7",
      kGlobals);
  ASSERT_EQ(run.status, 0) << run.err;
  const Report &r = run.report;
  // Which client each accepted socket is (the queues are first in, first out).
  EXPECT_EQ(Get(r, "sock.a1.peer").rfind("127.0.0.1:", 0), 0u) << Get(r, "sock.a1.peer");
  EXPECT_EQ(Get(r, "sock.a2.peer").rfind("127.0.0.2:", 0), 0u) << Get(r, "sock.a2.peer");
  EXPECT_EQ(Get(r, "sock.m1.peer").rfind("[::ffff:127.0.0.3]:", 0), 0u) << Get(r, "sock.m1.peer");
  EXPECT_EQ(Get(r, "sock.m2.peer").rfind("[::ffff:127.0.0.1]:", 0), 0u) << Get(r, "sock.m2.peer");

  const int k = ReadKernelDefaults().intvl_s;  // the INTVL rule: min(IDLE, kernel)
  struct Expected {
    const char *socket;
    Keepalive values;
    const char *rule;  // as the debug line names it
  };
  const Expected expected[] = {
      {"a2", {true, 120, std::min(120, k), 3, 20000}, "rule=1 "},      // peer 127.0.0.2
      {"m1", {true, 120, std::min(120, k), 3, 20000}, "rule=1 "},      // v4-mapped peer 127.0.0.3
      {"a1", {true, 180, std::min(180, k), 4, 20000}, "rule=2 "},      // in port=A
      {"b1", Untouched(), "rule=3 "},                                  // in port=B off
      {"out_c", {true, 240, 7, 5, 20000}, "rule=4 "},                  // out port=C
      {"out_c_nb", {true, 240, 7, 5, 20000}, "rule=4 "},               // out port=C, non-blocking
      {"m2", {true, 300, std::min(300, k), 5, 20000}, "rule=global"},  // in, no rule
      {"out_d", {true, 300, std::min(300, k), 5, 20000}, "rule=global"},  // out, no rule
  };
  for (const Expected &e : expected) {
    SCOPED_TRACE(e.socket);
    ExpectSocket(run, e.socket, e.values);
    std::string line = LogLineOf(run, e.socket);
    EXPECT_NE(line.find(e.rule), std::string::npos) << line;
  }
  // A connect still in progress (its timer is the SYN retransmission, so
  // only the inside view): out port={E} decided by the peer's port.
  EXPECT_EQ(Get(r, "call.out_pending.errno"), "EINPROGRESS");
  EXPECT_EQ(PendingState(run), "SYN-SENT");
  ExpectInside(r, "out_pending", {true, 240, 7, 5, 20000});
  EXPECT_NE(LogLineOf(run, "out_pending").find("rule=4 "), std::string::npos);
  // The same to 0.0.0.0, which the kernel replaces by 127.0.0.1: decided
  // after the call, from the peer the kernel gives a connection still in
  // progress (SO_PEERNAME: getpeername says ENOTCONN then).
  EXPECT_EQ(Get(r, "call.out_any.errno"), "EINPROGRESS");
  ExpectInside(r, "out_any", {true, 240, 7, 5, 20000});
  EXPECT_NE(LogLineOf(run, "out_any").find("peer=127.0.0.1:"), std::string::npos)
      << LogLineOf(run, "out_any");
  EXPECT_NE(LogLineOf(run, "out_any").find("rule=4 "), std::string::npos);
  // And to ::, which the kernel replaces by ::1 (SO_PEERNAME asked twice:
  // an IPv6 address does not fit the first, IPv4-sized, answer).
  EXPECT_EQ(Get(r, "call.out_any6.errno"), "EINPROGRESS");
  ExpectInside(r, "out_any6", {true, 240, 7, 5, 20000});
  EXPECT_NE(LogLineOf(run, "out_any6").find("peer=[::1]:"), std::string::npos)
      << LogLineOf(run, "out_any6");
}

TEST(Rules, LoopbackOffRuleLeavesEveryLoopbackSocketUntouched) {
  const char *sockets[] = {"a1",       "a2",    "b1",          "m1",      "m2",      "out_c",
                           "out_c_nb", "out_d", "out_pending", "out_any", "out_any6"};
  // The control: without the loopback rule, every socket is configured.
  ObservedRun control = RunServer("in port={A} idle=180", kGlobals);
  ASSERT_EQ(control.status, 0) << control.err;
  for (const char *name : sockets)
    EXPECT_EQ(Get(control.report, std::string("sock.") + name + ".keepalive"), "1") << name;

  ObservedRun run = RunServer("peer=127.0.0.0/8,::1 off; in port={A} idle=180", kGlobals);
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(PendingState(run), "SYN-SENT");
  for (const char *name : sockets) {
    SCOPED_TRACE(name);
    ExpectInside(run.report, name, Untouched());
    const std::string socket = name;
    const bool in_progress = socket == "out_pending" || socket == "out_any" || socket == "out_any6";
    if (!in_progress)  // a connect in progress has the SYN's timer, not keepalive's
      ExpectOutside(run.ss, run.report, name, false, 0, run.elapsed);
    std::string line = LogLineOf(run, name);
    EXPECT_NE(line.find("rule=1 "), std::string::npos) << line;
  }
}

}  // namespace
}  // namespace ka_test
