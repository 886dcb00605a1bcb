// own_timings_test.cc — one rule before and after accept/connect: a socket
// whose keepalive timings the program chose (on the socket, or on the
// listening socket it was accepted from) is left alone, never mixed with
// ours; a socket that only has SO_KEEPALIVE on gets ours. And the listener
// carries our settings once, so that the sockets it accepts inherit them —
// unless an `off` rule decides its port; with peer= rules it carries the
// decision for the peers they do not name. Values are read inside (getsockopt), outside (ss -tnoe)
// and, for listeners passed in by the test, from the test's own descriptor
// (the same socket).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "harness.h"

namespace ka_test {
namespace {

// IDLE only: INTVL comes from the INTVL rule, CNT and USER_TIMEOUT stay the
// kernel's — the configuration of the first-hour report, where a listener's
// own timings used to end up mixed with ours.
const Env kIdleOnly = {{"KEEPALIVE_IDLE", "123"}};
Keepalive IdleOnlyValues() {
  KernelDefaults k = ReadKernelDefaults();
  return {true, 123, std::min(123, k.intvl_s), k.probes, 0};
}

const Env kAllFour = {{"KEEPALIVE_IDLE", "240"},
                      {"KEEPALIVE_INTVL", "17"},
                      {"KEEPALIVE_CNT", "4"},
                      {"KEEPALIVE_USER_TIMEOUT", "45s"}};
const Keepalive kAllFourValues = {true, 240, 17, 4, 45000};

ObservedRun RunScript(const std::string &script, const Env &env,
                      const std::vector<int> &inherit = {}) {
  return RunObserved(Words("script " + script), env, inherit);
}

// A listener of the test, passed to ka_peer as with socket activation, with
// connections from `clients` (addresses) waiting in its queue before the
// program starts; all closed when the test ends.
struct QueuedListener {
  explicit QueuedListener(std::initializer_list<const char *> clients)
      : fd(TestListener("127.0.0.1")) {
    for (const char *from : clients)
      client_fds.push_back(TestConnect(from, "127.0.0.1", PortOf(fd)));
  }
  QueuedListener(const QueuedListener &) = delete;
  QueuedListener &operator=(const QueuedListener &) = delete;
  ~QueuedListener() {
    for (int client : client_fds) close(client);
    close(fd);
  }

  const int fd;
  std::vector<int> client_fds;
};

// The test's own view of a listener it passed to ka_peer.
Keepalive ReadListener(int fd) {
  auto get = [fd](int level, int option) {
    int value = -1;
    socklen_t len = sizeof value;
    EXPECT_EQ(getsockopt(fd, level, option, &value, &len), 0);
    return value;
  };
  return {get(SOL_SOCKET, SO_KEEPALIVE) != 0, get(IPPROTO_TCP, TCP_KEEPIDLE),
          get(IPPROTO_TCP, TCP_KEEPINTVL), get(IPPROTO_TCP, TCP_KEEPCNT),
          get(IPPROTO_TCP, TCP_USER_TIMEOUT)};
}

void ExpectSame(const Keepalive &got, const Keepalive &expected) {
  EXPECT_EQ(got.on, expected.on);
  EXPECT_EQ(got.idle_s, expected.idle_s);
  EXPECT_EQ(got.intvl_s, expected.intvl_s);
  EXPECT_EQ(got.cnt, expected.cnt);
  EXPECT_EQ(got.user_timeout_ms, expected.user_timeout_ms);
}

// ---- the program's own timings win ------------------------------------------

TEST(OwnTimings, ClientThatSetsItsIdleBeforeConnectKeepsIt) {
  // curl --keepalive-time 30: SO_KEEPALIVE and TCP_KEEPIDLE before connect().
  Env env = kIdleOnly;
  env.emplace_back("KEEPALIVE_LOG", "debug");
  ObservedRun run = RunScript(
      "listen l 4  socket c 4  keepalive c 30 0 0  again call c 127.0.0.1 @l  "
      "accept s l accept  show",
      env);
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(Get(run.report, "call.call.ret"), "0");
  KernelDefaults k = ReadKernelDefaults();
  ExpectSocket(run, "c", {true, 30, k.intvl_s, k.probes, 0});
  ExpectSocket(run, "s", IdleOnlyValues());  // the control
  std::string line = LogLineOf(run, "c");
  EXPECT_NE(line.find("left alone: the program chose its own keepalive timings (idle=30s"),
            std::string::npos)
      << line;
}

TEST(OwnTimings, ClientThatSetsAnIdleLongerThanTheKernelsKeepsIt) {
  // Any idle time other than the kernel's default is the program's choice,
  // a longer one too (a client that wants fewer probes than the kernel's).
  KernelDefaults k = ReadKernelDefaults();
  const int longer = std::min(k.time_s + 600, 32767);
  ASSERT_GT(longer, k.time_s) << "the kernel's default idle time is the largest allowed";
  Env env = kIdleOnly;
  env.emplace_back("KEEPALIVE_LOG", "debug");
  ObservedRun run = RunScript("listen l 4  socket c 4  keepalive c " + std::to_string(longer) +
                                  " 0 0  again call c 127.0.0.1 @l  accept s l accept  show",
                              env);
  ASSERT_EQ(run.status, 0) << run.err;
  ExpectSocket(run, "c", {true, longer, k.intvl_s, k.probes, 0});
  ExpectSocket(run, "s", IdleOnlyValues());  // the control
  EXPECT_NE(LogLineOf(run, "c").find("left alone: the program chose its own keepalive timings"),
            std::string::npos)
      << run.err;
}

TEST(OwnTimings, ListenerWithItsOwnTimingsIsNeverMixedWithOurs) {
  // nginx `listen … so_keepalive=30m:10:3`: set on the listener, inherited.
  ObservedRun run = RunScript(
      "listen l 4  keepalive l 1800 10 3  connect c1 127.0.0.1 @l  accept s1 l accept  "
      "connect c2 127.0.0.1 @l  accept s2 l accept4  show",
      kIdleOnly);
  ASSERT_EQ(run.status, 0) << run.err;
  const Keepalive nginx = {true, 1800, 10, 3, 0};
  ExpectSocket(run, "s1", nginx);
  ExpectSocket(run, "s2", nginx);
  ExpectInside(run.report, "l", nginx);
  ExpectSocket(run, "c1", IdleOnlyValues());  // the control
}

TEST(OwnTimings, DebugLineShowsTheListenersIdleWhileKeepaliveIsOff) {
  // The program set TCP_KEEPIDLE=100 on its listener but not SO_KEEPALIVE:
  // the accepted socket is left alone, and its line shows the 100 s.
  Env env = kIdleOnly;
  env.emplace_back("KEEPALIVE_LOG", "debug");
  ObservedRun run =
      RunScript("listen l 4  setidle l 100  connect c 127.0.0.1 @l  accept s l accept  show", env);
  ASSERT_EQ(run.status, 0) << run.err;
  KernelDefaults k = ReadKernelDefaults();
  ExpectSocket(run, "s", {false, 100, k.intvl_s, k.probes, 0});
  std::string line = LogLineOf(run, "s");
  EXPECT_NE(line.find("left alone: the program chose its own keepalive timings (idle=100s intvl="),
            std::string::npos)
      << line;
  EXPECT_NE(line.find(", SO_KEEPALIVE off)"), std::string::npos) << line;
}

TEST(OwnTimings, ProgramThatOnlySwitchesKeepaliveOnGetsOurs) {
  // Prosody: SO_KEEPALIVE on the listener, with the kernel's timings.
  ObservedRun run = RunScript(
      "listen l 4  keepalive l 0 0 0  connect c1 127.0.0.1 @l  accept s1 l accept  "
      "connect c2 127.0.0.1 @l  accept s2 l accept  show",
      kAllFour);
  ASSERT_EQ(run.status, 0) << run.err;
  ExpectSocket(run, "s1", kAllFourValues);
  ExpectSocket(run, "s2", kAllFourValues);
  ExpectInside(run.report, "l", kAllFourValues);
}

TEST(OwnTimings, RetryAfterARefusedConnectKeepsWhatTheProgramSetInBetween) {
  // The first connect() configures the socket and is refused; the program
  // then sets its own interval; the retry must not set ours again.
  ObservedRun run = RunScript(
      "listen l 4  bound r  socket c 4  again first c 127.0.0.1 @r  keepalive c 0 9 0  "
      "again second c 127.0.0.1 @l  accept s l accept  show",
      kIdleOnly);
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(Get(run.report, "call.first.errno"), "ECONNREFUSED");
  EXPECT_EQ(Get(run.report, "call.second.ret"), "0");
  KernelDefaults k = ReadKernelDefaults();
  ExpectSocket(run, "c", {true, 123, 9, k.probes, 0});
}

// ---- the listener carries the settings --------------------------------------

TEST(ListenerInheritance, ListenerIsConfiguredOnceAndAcceptedSocketsInherit) {
  Env env = kAllFour;
  env.emplace_back("KEEPALIVE_LOG", "debug");
  ObservedRun run = RunScript(
      "listen l 4  connect c1 127.0.0.1 @l  accept s1 l accept  connect c2 127.0.0.1 @l  "
      "accept s2 l accept4  connect c3 127.0.0.1 @l  accept s3 l accept  show",
      env);
  ASSERT_EQ(run.status, 0) << run.err;
  for (const char *name : {"s1", "s2", "s3", "c1", "c2", "c3"}) {
    SCOPED_TRACE(name);
    ExpectSocket(run, name, kAllFourValues);
  }
  ExpectInside(run.report, "l", kAllFourValues);
  // s1 was configured itself, and then the listener, once; s2 and s3
  // inherited (one getsockopt each: counted by tests/bench/run).
  EXPECT_NE(LogLineOf(run, "s1").find("rule=global"), std::string::npos) << run.err;
  std::string listener_line =
      "libkeepalive: listen fd=" + Get(run.report, "sock.l.fd") + ": idle=240s intvl=17s";
  int listener_lines = 0;
  for (const auto &line : LibraryLines(run.err))
    listener_lines += line.rfind(listener_line, 0) == 0 ? 1 : 0;
  EXPECT_EQ(listener_lines, 1) << run.err;
  for (const char *name : {"s2", "s3"}) {
    std::string line = LogLineOf(run, name);
    EXPECT_NE(line.find("left alone: inherited from its listening socket"), std::string::npos)
        << line;
  }
}

TEST(ListenerInheritance, IdleEqualToTheKernelsLeavesTheListenerAndSetsEachSocket) {
  // KEEPALIVE_IDLE equal to the kernel's default: an accepted socket that
  // inherited it could not be told from one that did not, so the listener
  // is never configured and every accepted socket is set itself.
  KernelDefaults k = ReadKernelDefaults();
  Env env = {{"KEEPALIVE_IDLE", std::to_string(k.time_s)},
             {"KEEPALIVE_INTVL", "17"},
             {"KEEPALIVE_LOG", "debug"}};
  ObservedRun run = RunScript(
      "listen l 4  connect c1 127.0.0.1 @l  accept s1 l accept  connect c2 127.0.0.1 @l  "
      "accept s2 l accept4  connect c3 127.0.0.1 @l  accept s3 l accept  show",
      env);
  ASSERT_EQ(run.status, 0) << run.err;
  const Keepalive ours = {true, k.time_s, 17, k.probes, 0};
  for (const char *name : {"s1", "s2", "s3"}) {
    SCOPED_TRACE(name);
    ExpectSocket(run, name, ours);
    EXPECT_NE(LogLineOf(run, name).find("rule=global"), std::string::npos) << run.err;
  }
  ExpectInside(run.report, "l", Untouched());
  for (const auto &line : LibraryLines(run.err))
    EXPECT_EQ(line.find("listen fd="), std::string::npos) << line;
}

TEST(ListenerInheritance, ConnectionsQueuedBeforeTheFirstAcceptAreConfigured) {
  // An inherited listener (socket activation) with three connections that
  // were queued, with the kernel's values, before the program started.
  const QueuedListener a({"127.0.0.1", "127.0.0.1", "127.0.0.1"});
  ObservedRun run =
      RunScript("inherit a 3  accept a1 a accept  accept a2 a accept4  accept a3 a accept  show",
                kAllFour, {a.fd});
  ASSERT_EQ(run.status, 0) << run.err;
  for (const char *name : {"a1", "a2", "a3"}) {
    SCOPED_TRACE(name);
    ExpectSocket(run, name, kAllFourValues);
  }
  SCOPED_TRACE("the listener, read by the test");
  ExpectSame(ReadListener(a.fd), kAllFourValues);
}

TEST(ListenerInheritance, OffRuleLeavesTheListenerUntouched) {
  const QueuedListener a({"127.0.0.1", "127.0.0.1"});
  Env env = kAllFour;
  env.emplace_back("KEEPALIVE_RULES", "in port=" + std::to_string(PortOf(a.fd)) + " off");
  ObservedRun run =
      RunScript("inherit a 3  accept a1 a accept  accept a2 a accept  show", env, {a.fd});
  ASSERT_EQ(run.status, 0) << run.err;
  ExpectInside(run.report, "a1", Untouched());
  ExpectInside(run.report, "a2", Untouched());
  SCOPED_TRACE("the listener, read by the test");
  ExpectSame(ReadListener(a.fd), Untouched());
}

TEST(ListenerInheritance, PeerRulesLeaveTheListenerTheDecisionForOtherPeers) {
  // The listener carries what a peer no peer= rule names gets; a connection
  // accepted from it whose peer a rule decides otherwise is changed then,
  // and says so in the debug log (listener_exceptions_test.cc compares
  // every case with sockets decided by themselves).
  QueuedListener a({"127.0.0.1"});
  Env env = kAllFour;
  env.emplace_back("KEEPALIVE_RULES", "in peer=127.0.0.2 idle=50 intvl=5");
  env.emplace_back("KEEPALIVE_LOG", "debug");
  auto peer = StartPeer(Words("script inherit a 3  accept a1 a accept  pause  accept a2 a accept  "
                              "accept a3 a accept4  show"),
                        env, Preload::kYes, {a.fd});
  ASSERT_TRUE(peer->WaitForLine("paused")) << peer->err();
  {
    SCOPED_TRACE("the listener, read by the test after the first accept");
    ExpectSame(ReadListener(a.fd), kAllFourValues);
  }
  a.client_fds.push_back(TestConnect("127.0.0.2", "127.0.0.1", PortOf(a.fd)));
  a.client_fds.push_back(TestConnect("127.0.0.1", "127.0.0.1", PortOf(a.fd)));
  peer->Send("go");
  ASSERT_TRUE(peer->WaitForLine("ready")) << peer->err();
  ObservedRun run;
  run.ss = ReadSs();
  run.elapsed = peer->Elapsed();
  run.status = peer->Finish();
  run.report = peer->report();
  run.err = peer->err();
  ASSERT_EQ(run.status, 0) << run.err;
  const Keepalive by_peer = {true, 50, 5, 4, 45000};
  for (auto [name, expected] :
       {std::pair{"a1", kAllFourValues}, {"a2", by_peer}, {"a3", kAllFourValues}}) {
    SCOPED_TRACE(name);
    ExpectSocket(run, name, expected);
  }
  EXPECT_NE(LogLineOf(run, "a2").find("peer=127.0.0.2:"), std::string::npos) << run.err;
  EXPECT_NE(LogLineOf(run, "a2").find("rule=1 (in peer=127.0.0.2 idle=50 intvl=5): idle=50s "
                                      "intvl=5s cnt=4 user_timeout=45000ms"),
            std::string::npos)
      << run.err;
  EXPECT_NE(LogLineOf(run, "a3").find("left alone: inherited from its listening socket"),
            std::string::npos)
      << run.err;
}

}  // namespace
}  // namespace ka_test
