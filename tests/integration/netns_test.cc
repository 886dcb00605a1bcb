// netns_test.cc — scenarios that need a network namespace of the test's
// own (root and `ip`; skipped loudly without them, a failure under
// LIBKEEPALIVE_E2E_REQUIRED=1). ka_peer runs preloaded inside it.
//
// SysctlChange: the program's own timings across a change of
// net.ipv4.tcp_keepalive_time (per namespace: the machine's stays as it is).
// The test changes the sysctl while ka_peer waits, then ka_peer connects and
// accepts again. Sockets made after the change read the new default as
// their idle time; the library must not take that for the program's choice:
// both ends are configured. A socket whose program does set its idle time
// is still left alone.
//
// DestinationRule: a rule that needs the destination is decided before
// connect(), so its user timeout bounds the SYN phase of a blocking connect
// to a black hole (TCP to port 9 dropped by nft in the namespace), as the
// global KEEPALIVE_USER_TIMEOUT does.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "harness.h"
#include "require.h"

namespace ka_test {
namespace {

// A network namespace named kasysctl-<pid>, with loopback up; deleted when
// the test ends, however it ends.
class Namespace {
 public:
  Namespace() : name_("kasysctl-" + std::to_string(getpid())) {
    RunTool({"ip", "netns", "add", name_});
    RunTool({"ip", "-n", name_, "link", "set", "lo", "up"});
  }
  ~Namespace() {
    std::string command = "ip netns delete " + name_ + " 2>/dev/null";
    if (std::system(command.c_str()) != 0) ADD_FAILURE() << "could not delete " << name_;
  }
  Namespace(const Namespace &) = delete;
  Namespace &operator=(const Namespace &) = delete;

  const std::string &name() const { return name_; }
  // TCP to port 9 dropped at input: a SYN there is never answered.
  void DropPort9() {
    for (const char *command :
         {"add table inet ka_netns",
          "add chain inet ka_netns inp { type filter hook input priority 0; }",
          "add rule inet ka_netns inp tcp dport 9 drop"}) {
      RunTool(
          {"ip", "netns", "exec", name_, "sh", "-c", std::string("nft ") + "'" + command + "'"});
    }
  }
  // Through /proc/sys, inside the namespace (sysctl(8) is not always there).
  void SetIdleDefault(int seconds) {
    RunTool({"ip", "netns", "exec", name_, "sh", "-c",
             "echo " + std::to_string(seconds) + " > /proc/sys/net/ipv4/tcp_keepalive_time"});
  }
  // net.ipv4.NAME, e.g. Sysctl("tcp_keepalive_time").
  std::string Sysctl(const std::string &name) {
    std::string out = RunTool({"ip", "netns", "exec", name_, "cat", "/proc/sys/net/ipv4/" + name});
    return out.substr(0, out.find('\n'));
  }

 private:
  std::string name_;
};

// The calling thread in `ns` for the life of the scope: the children it
// starts (ka_peer, ss) are born there.
class InNamespace {
 public:
  explicit InNamespace(const Namespace &ns) : home_(open("/proc/self/ns/net", O_RDONLY)) {
    int target = open(("/run/netns/" + ns.name()).c_str(), O_RDONLY);
    EXPECT_GE(target, 0);
    EXPECT_EQ(setns(target, CLONE_NEWNET), 0);
    close(target);
  }
  ~InNamespace() {
    EXPECT_EQ(setns(home_, CLONE_NEWNET), 0);
    close(home_);
  }
  InNamespace(const InNamespace &) = delete;
  InNamespace &operator=(const InNamespace &) = delete;

 private:
  int home_;
};

// Empty when the test can run; else why not.
std::string MissingPrerequisite() {
  if (geteuid() != 0) return "not root (ip netns needs it)";
  if (std::system("ip netns list >/dev/null 2>&1") != 0) return "no working `ip netns`";
  if (std::system("nft --version >/dev/null 2>&1") != 0) return "no nft";
  return "";
}

// Skips loudly, or fails under LIBKEEPALIVE_E2E_REQUIRED=1, when the
// namespace cannot be made.
#define SKIP_WITHOUT_NAMESPACE()                                       \
  do {                                                                 \
    std::string missing = MissingPrerequisite();                       \
    if (!missing.empty()) {                                            \
      KA_REQUIRE_OR_SKIP("LIBKEEPALIVE_E2E_REQUIRED",                  \
                         missing + "; this scenario was not checked"); \
    }                                                                  \
  } while (0)

TEST(SysctlChange, SocketsMadeAfterTheChangeAreConfiguredAtBothEnds) {
  SKIP_WITHOUT_NAMESPACE();
  Namespace ns;
  ns.SetIdleDefault(7000);
  const Env env = {{"KEEPALIVE_IDLE", "45"}, {"KEEPALIVE_INTVL", "15"}, {"KEEPALIVE_CNT", "4"}};
  const Keepalive ours = {true, 45, 15, 4, 0};
  // Before the change: l1, c1, s1. After it: a new listener l2 (whose
  // accepted sockets cannot inherit from a listener configured before),
  // c2 and s2; and `own`, whose program sets its idle time to 100 s.
  std::unique_ptr<Child> peer;
  {
    InNamespace inside(ns);
    peer = StartPeer(Words("script listen l1 4  connect c1 127.0.0.1 @l1  accept s1 l1 accept  "
                           "pause  listen l2 4  connect c2 127.0.0.1 @l2  accept s2 l2 accept  "
                           "socket own 4  setidle own 100  again call own 127.0.0.1 @l2  "
                           "accept s3 l2 accept  show"),
                     env, Preload::kYes);
  }
  ASSERT_TRUE(peer->WaitForLine("paused")) << peer->err();
  ns.SetIdleDefault(600);
  ASSERT_EQ(ns.Sysctl("tcp_keepalive_time"), "600");
  // The library reads the sysctl again at most once a second.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  peer->Send("go");
  ASSERT_TRUE(peer->WaitForLine("ready")) << peer->err();
  SsTable ss;
  {
    InNamespace inside(ns);
    ss = ReadSs();
  }
  double elapsed = peer->Elapsed();
  ASSERT_EQ(peer->Finish(), 0) << peer->err();
  const Report &report = peer->report();
  int intvl = std::stoi(ns.Sysctl("tcp_keepalive_intvl"));
  int probes = std::stoi(ns.Sysctl("tcp_keepalive_probes"));
  for (const char *name : {"c1", "s1", "c2", "s2"}) {
    SCOPED_TRACE(name);
    ExpectSocket(report, ss, name, ours, elapsed);
  }
  SCOPED_TRACE("own");
  ExpectSocket(report, ss, "own", {false, 100, intvl, probes, 0}, elapsed);
}

struct SynCase {
  const char *name;
  Env env;
};

TEST(DestinationRule, UserTimeoutBoundsTheSynPhaseOfABlockingConnect) {
  SKIP_WITHOUT_NAMESPACE();
  Namespace ns;
  ns.DropPort9();
  const SynCase cases[] = {
      {"global", {{"KEEPALIVE_USER_TIMEOUT", "1500ms"}}},
      {"port rule", {{"KEEPALIVE_RULES", "out port=22 off; out port=9 user_timeout=1500ms"}}},
      {"peer rule", {{"KEEPALIVE_RULES", "out peer=127.0.0.1 user_timeout=1500ms"}}},
  };
  for (const SynCase &c : cases) {
    SCOPED_TRACE(c.name);
    std::unique_ptr<Child> peer;
    {
      InNamespace inside(ns);
      peer = StartPeer(Words("script connect c 127.0.0.1 9"), c.env, Preload::kYes);
    }
    // Without the user timeout the SYNs are retried for about two minutes
    // (ka_peer's own alarm ends it after 30 s).
    ASSERT_TRUE(peer->WaitForLine("ready", std::chrono::seconds(20))) << peer->err();
    double elapsed = peer->Elapsed();
    EXPECT_EQ(peer->Finish(), 0) << peer->err();
    EXPECT_EQ(Get(peer->report(), "call.c.errno"), "ETIMEDOUT");
    EXPECT_LT(elapsed, 8.0);
  }
}

}  // namespace
}  // namespace ka_test
