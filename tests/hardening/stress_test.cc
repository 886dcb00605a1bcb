// stress_test.cc — ka_stress (stress_peer.cc) with and without the library:
// 200 000 connections by 8 threads through non-blocking connect, accept and
// accept4, both ends in one preloaded process, while another thread forks
// (fork+exec and bare fork) and another churns Unix/UDP sockets. Proves:
// every TCP socket configured (both ends, the forked and exec'd children's
// too), nothing else touched, every call's return value, errno, address and
// accept4 flags identical to the unpreloaded run, no fd leaked, no deadlock
// (the helper's watchdog ends a run that is not done after 60 s).
//
// LIBKEEPALIVE_STRESS_CONNECTIONS (environment, else the CMake cache value)
// shortens it for development.
#include <cstdlib>
#include <string>

#include "harness.h"

namespace ka_hardening {
namespace {

constexpr int kWatchdogS = 60;
constexpr int kTimeoutS = kWatchdogS + 30;
// Distinct from every kernel default, so that "configured" cannot be luck.

long Connections() {
  long n = KA_STRESS_CONNECTIONS;
  if (const char *text = getenv("LIBKEEPALIVE_STRESS_CONNECTIONS")) n = atol(text);
  if (n < 200000) {
    fprintf(stderr,
            "\n*** stress_test: %ld connections (LIBKEEPALIVE_STRESS_CONNECTIONS), "
            "fewer than the 200000 of the full run ***\n\n",
            n);
  }
  return n;
}

Result RunStress(long connections, const Env &env) {
  Result r = RunProgram(
      {Helper("ka_stress"), "run", std::to_string(connections), std::to_string(kWatchdogS)}, env,
      kTimeoutS);
  EXPECT_FALSE(r.timed_out) << "ka_stress hung past the watchdog\n" << r.err;
  EXPECT_EQ(r.status, 0) << r.err;
  fprintf(stderr, "ka_stress %s %ld connections: %.1f s\n",
          env.empty() ? "without the library," : "preloaded,", connections, r.seconds);
  return r;
}

// The unpreloaded run of a given size, made once.
const Report &Baseline(long connections) {
  static std::map<long, Report> runs;
  auto it = runs.find(connections);
  if (it == runs.end()) {
    it = runs.emplace(connections, ParseReport(RunStress(connections, {}).out)).first;
  }
  return it->second;
}

void ExpectSameCalls(const Report &without, const Report &with) {
  EXPECT_EQ(WithPrefix(with, "call."), WithPrefix(without, "call."))
      << "a hooked call's return value, errno, address or flags differ with the library";
  EXPECT_EQ(WithPrefix(with, "side.call."), WithPrefix(without, "side.call."));
  EXPECT_FALSE(WithPrefix(without, "call.").empty());
}

void ExpectNoFdLeak(const Report &r) {
  EXPECT_EQ(Get(r, "fds.after"), Get(r, "fds.before")) << "file descriptors leaked";
}

// Sockets that are not TCP read the same with and without the library.
void ExpectOthersUntouched(const Report &without, const Report &with) {
  for (const char *key : {"side.sock.udp", "side.sock.unix.pair", "side.sock.unix.client",
                          "side.sock.unix.server", "side.sock.tcp.unused"}) {
    EXPECT_EQ(Get(with, key), Get(without, key)) << key;
  }
  EXPECT_EQ(Get(with, "side.sock.udp"), "0/-1/-1/-1/-1");
}

void ExpectSidesRan(const Report &r) {
  for (const char *key : {"side.count.fork", "side.count.forkexec", "side.count.churn"}) {
    EXPECT_GE(atol(Get(r, key).c_str()), 1) << key;
  }
}

TEST(Stress, EveryConnectionConfiguredAndEveryCallUnchanged) {
  long n = Connections();
  const Report &without = Baseline(n);
  Report with = ParseReport(RunStress(n, Preloaded(kGlobals)).out);

  EXPECT_EQ(Get(without, "process.preloaded"), "0");
  EXPECT_EQ(Get(with, "process.preloaded"), "1");
  EXPECT_EQ(Get(with, "connections"), std::to_string(n));
  EXPECT_EQ(Get(with, "call.connect"), "EINPROGRESS:" + std::to_string(n));
  ExpectSameCalls(without, with);

  std::string all = ":" + std::to_string(n);
  EXPECT_EQ(Get(without, "sock.client"), KernelDefaultState() + all);
  EXPECT_EQ(Get(without, "sock.server"), KernelDefaultState() + all);
  EXPECT_EQ(Get(with, "sock.client"), kConfigured + all) << "some connected sockets missed";
  EXPECT_EQ(Get(with, "sock.server"), kConfigured + all) << "some accepted sockets missed";
  for (const char *key : {"side.sock.fork.client", "side.sock.fork.server",
                          "side.sock.forkexec.client", "side.sock.forkexec.server"}) {
    EXPECT_EQ(Get(without, key), KernelDefaultState()) << key;
    EXPECT_EQ(Get(with, key), kConfigured) << key;
  }
  ExpectOthersUntouched(without, with);
  ExpectSidesRan(with);
  ExpectNoFdLeak(without);
  ExpectNoFdLeak(with);
}

// A rule on the peer address makes connect() take the other path of the
// hook: the real call first, then the settings (the destination is read
// back from the kernel). Outgoing sockets get the rule, accepted ones the
// globals.
TEST(Stress, PeerRuleConfiguresAfterConnect) {
  long n = Connections() / 4;
  const Report &without = Baseline(n);
  Env env = kGlobals;
  env.emplace_back("KEEPALIVE_RULES", "out peer=127.0.0.0/8,::1 idle=23");
  Report with = ParseReport(RunStress(n, Preloaded(env)).out);

  ExpectSameCalls(without, with);
  std::string all = ":" + std::to_string(n);
  EXPECT_EQ(Get(with, "sock.client"), "1/23/5/4/6001" + all);
  EXPECT_EQ(Get(with, "sock.server"), kConfigured + all);
  EXPECT_EQ(Get(with, "side.sock.forkexec.client"), "1/23/5/4/6001");
  EXPECT_EQ(Get(with, "side.sock.fork.client"), "1/23/5/4/6001");
  EXPECT_EQ(Get(with, "side.sock.forkexec.server"), kConfigured);
  ExpectOthersUntouched(without, with);
  ExpectSidesRan(with);
  ExpectNoFdLeak(with);
}

}  // namespace
}  // namespace ka_hardening
