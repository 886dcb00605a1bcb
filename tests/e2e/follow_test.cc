// follow_test.cc — `keepalive apply --follow` end to end, for the programs a
// preloaded library cannot reach: a statically linked server (static_peer.c,
// linked here with `gcc -static`) and a client of the same program that
// connects with a raw syscall(SYS_connect, ...), through the emulated
// carrier-grade NAT of tests/e2e/cgnat, T = 3 s. Both are followed
// (`keepalive apply PID --follow --idle 1`) before the connection exists,
// the client from its own namespace, the server from the host's; the server's message after 2T of
// silence arrives, and ss shows keepalive timers on both ends. The control, through its own NAT, is
// the same pair not followed: its message is lost.
//
// KernelMode.AttachedStaticServerAndClientSurviveTheNat is the same pair
// in kernel mode instead: both programs run in a cgroup of the test's own
// with `keepalive attach DIR --idle 1` attached before they start.
//
// Prerequisites, loud skips (failures with LIBKEEPALIVE_E2E_REQUIRED=1) and
// cleanup on every exit path come from cgnat_harness.h.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "cgnat_harness.h"

namespace cgnat_harness {
namespace {

std::string static_peer_path() {
  static const std::string path = "/tmp/keepalive-static-peer-" + std::to_string(getpid());
  return path;
}

// Links static_peer.c with `gcc -static`; why it cannot, or nullopt.
std::optional<std::string> static_peer_unavailable() {
  struct stat st {};
  if (stat(static_peer_path().c_str(), &st) == 0) return std::nullopt;
  std::string source = env_or_empty("LIBKEEPALIVE_TEST_SOURCE_DIR") + "/tests/e2e/static_peer.c";
  CommandResult gcc =
      run_command({"/usr/bin/gcc", "-static", "-O2", "-o", static_peer_path(), source});
  if (gcc.status != 0) return "gcc -static failed (needs gcc and libc6-dev):\n" + gcc.output;
  return std::nullopt;
}

// A cgroup v2 directory of the test's own, below the test process's cgroup,
// on a cgroup2 mount in a scratch directory (`ip netns exec` mounts a fresh
// /sys, where the host's cgroup mounts are not seen); removed, with the mount,
// at the end. `enter` is the prefix of a command that runs inside it.
struct KernelCgroup {
  std::string mount_point, dir;
  Strings enter;

  // Why it cannot be made, or nullopt.
  std::optional<std::string> make() {
    char scratch[] = "/tmp/ka-e2e-cgroup2-XXXXXX";
    if (mkdtemp(scratch) == nullptr) return std::string("mkdtemp failed");
    mount_point = scratch;
    if (mount("none", scratch, "cgroup2", 0, nullptr) != 0) {
      rmdir(scratch);
      mount_point.clear();
      return std::string("cannot mount cgroup2 (needs root and a kernel with cgroup v2)");
    }
    std::ifstream own("/proc/self/cgroup");
    std::string line, relative = "/";
    while (std::getline(own, line)) {
      if (line.rfind("0::", 0) == 0) relative = line.substr(3);
    }
    dir = mount_point + (relative == "/" ? "" : relative) + "/ka-e2e-kernel-" +
          std::to_string(getpid());
    if (mkdir(dir.c_str(), 0755) != 0) return "cannot make " + dir;
    enter = {"/bin/sh", "-c", "echo $$ > " + dir + "/cgroup.procs && exec \"$0\" \"$@\""};
    return std::nullopt;
  }
  ~KernelCgroup() {
    if (!dir.empty()) {
      run_command({program("keepalive"), "detach", dir});
      rmdir(dir.c_str());
    }
    if (!mount_point.empty()) {
      umount(mount_point.c_str());
      rmdir(mount_point.c_str());
    }
  }
};

// A static server and its raw-syscall client through their own NAT, each
// followed (or not) from its namespace.
struct Pair {
  std::unique_ptr<Nat> nat;  // declared first: destroyed after the programs
  std::unique_ptr<Process> server, client, server_follower, client_follower;

  std::string transcript() const {
    std::string text;
    for (const auto *process : {&server, &client, &server_follower, &client_follower}) {
      if (*process) text += (*process)->transcript();
    }
    return text;
  }

  // Follows `target` from namespace `side`, or from the host's namespace
  // when `side` is null (the follower then lists the target's namespace
  // from inside it).
  std::unique_ptr<Process> follow(const char *side, const Process &target) {
    Strings command = {program("keepalive"), "apply",  std::to_string(target.pid()),
                       "--follow",           "--idle", "1",
                       "--interval",         "200ms",  "--json"};
    return std::make_unique<Process>(std::string(side ? side : "host") + " follower",
                                     side ? nat->exec(side, {}, command) : command);
  }
};

// `enter`: a prefix that runs both programs in a cgroup (kernel mode), or
// empty.
void start_pair(const std::string &tag, bool followed, Pair *p, const Strings &enter = {}) {
  p->nat = std::make_unique<Nat>(tag, kNatTimeout);
  ASSERT_TRUE(p->nat->up()) << "cgnat up " << p->nat->name() << " failed:\n" << p->nat->up_output();
  auto in_cgroup = [&enter](Strings command) {
    command.insert(command.begin(), enter.begin(), enter.end());
    return command;
  };
  p->server = std::make_unique<Process>(
      tag + " server", p->nat->exec("s", {},
                                    in_cgroup({static_peer_path(), "server", kServerAddress,
                                               kServerPort, seconds(kSilence)})));
  ASSERT_TRUE(p->server->wait_for_output("listening", kStartupTimeout)) << p->transcript();
  p->client = std::make_unique<Process>(
      tag + " client", p->nat->exec("c", {},
                                    in_cgroup({static_peer_path(), "client", kServerAddress,
                                               kServerPort, seconds(kClientWait)})));
  ASSERT_TRUE(p->client->wait_for_output("ready", kStartupTimeout)) << p->transcript();
  if (followed) {
    p->server_follower = p->follow(nullptr, *p->server);
    p->client_follower = p->follow("c", *p->client);
    for (auto *follower : {p->server_follower.get(), p->client_follower.get()}) {
      ASSERT_TRUE(follower->wait_for_output("\"event\": \"applied\"", kStartupTimeout))
          << p->transcript();
    }
  }
  p->client->signal(SIGUSR1);  // connect now
  ASSERT_TRUE(p->client->wait_for_output("welcome_received", kStartupTimeout)) << p->transcript();
}

class FollowTest : public testing::Test {
 protected:
  void SetUp() override {
    CGNAT_REQUIRE_OR_SKIP();
    struct stat st {};
    ASSERT_EQ(stat(program("keepalive").c_str(), &st), 0) << "not built: " << program("keepalive");
    E2E_REQUIRE_OR_SKIP(static_peer_unavailable(), "a statically linked peer", "gcc, libc6-dev");
  }
  static void TearDownTestSuite() { unlink(static_peer_path().c_str()); }
};

TEST_F(FollowTest, StaticServerAndRawConnectClientSurviveTheNat) {
  Pair followed, control;
  ASSERT_NO_FATAL_FAILURE(start_pair("follow", true, &followed));
  ASSERT_NO_FATAL_FAILURE(start_pair("control", false, &control));

  // Each follower sets the new connection within a few of its 200 ms ticks,
  // well before the NAT forgets (3 s).
  for (auto *follower : {followed.server_follower.get(), followed.client_follower.get()}) {
    EXPECT_TRUE(follower->wait_for_output("\"action\": \"set\"", 2)) << followed.transcript();
  }
  EXPECT_NE(followed.server_follower->out().find("\"direction\": \"in\""), std::string::npos)
      << followed.transcript();
  EXPECT_NE(followed.client_follower->out().find("\"direction\": \"out\""), std::string::npos)
      << followed.transcript();
  std::string server_ss = connection_sockets(*followed.nat, "s");
  std::string client_ss = connection_sockets(*followed.nat, "c");
  EXPECT_NE(server_ss.find("timer:(keepalive,"), std::string::npos) << server_ss;
  EXPECT_NE(client_ss.find("timer:(keepalive,"), std::string::npos) << client_ss;
  EXPECT_EQ(connection_sockets(*control.nat, "s").find("timer:(keepalive,"), std::string::npos)
      << "the control has keepalive on";
  std::cout << "ss -tnoe, server's namespace:\n"
            << server_ss << "ss -tnoe, client's namespace:\n"
            << client_ss;

  EXPECT_EQ(client_verdict(*followed.client), "message_received")
      << "followed, the static server's connection should have kept its NAT mapping\n"
      << followed.transcript();
  EXPECT_EQ(client_verdict(*control.client), "nothing_received")
      << "not followed, the message must be lost (else the emulated NAT does not forget)\n"
      << control.transcript();

  // The server exits after its message: its follower ends with 0.
  EXPECT_EQ(followed.server_follower->wait_exit(kStartupTimeout + 3), 0) << followed.transcript();
  EXPECT_NE(followed.server_follower->out().find("\"reason\": \"process exited\""),
            std::string::npos)
      << followed.transcript();
  std::cout << "follow: the static server's message arrived after " << kSilence
            << " s of silence through a NAT that forgets after " << kNatTimeout
            << " s; not followed, it was lost.\nserver follower:\n"
            << followed.server_follower->out();
}

}  // namespace
}  // namespace cgnat_harness

namespace cgnat_harness {
namespace {

class KernelMode : public FollowTest {};

TEST_F(KernelMode, AttachedStaticServerAndClientSurviveTheNat) {
  KernelCgroup cgroup;
  E2E_REQUIRE_OR_SKIP(cgroup.make(), "a cgroup2 mount of the test's own", "root, cgroup v2");
  CommandResult attached = run_command({program("keepalive"), "attach", cgroup.dir, "--idle", "1"});
  ASSERT_EQ(attached.status, 0) << attached.output;
  Pair kernel, control;
  ASSERT_NO_FATAL_FAILURE(start_pair("kernel", false, &kernel, cgroup.enter));
  ASSERT_NO_FATAL_FAILURE(start_pair("kcontrol", false, &control));

  std::string server_ss = connection_sockets(*kernel.nat, "s");
  std::string client_ss = connection_sockets(*kernel.nat, "c");
  EXPECT_NE(server_ss.find("timer:(keepalive,"), std::string::npos) << server_ss;
  EXPECT_NE(client_ss.find("timer:(keepalive,"), std::string::npos) << client_ss;
  EXPECT_EQ(connection_sockets(*control.nat, "s").find("timer:(keepalive,"), std::string::npos)
      << "the control has keepalive on";
  EXPECT_EQ(client_verdict(*kernel.client), "message_received")
      << "in kernel mode, the static server's connection should have kept its NAT mapping\n"
      << attached.output << kernel.transcript();
  EXPECT_EQ(client_verdict(*control.client), "nothing_received")
      << "outside the cgroup, the message must be lost (else the emulated NAT does not forget)\n"
      << control.transcript();
  std::cout << attached.output << "ss -tnoe, server's namespace:\n"
            << server_ss << "kernel mode: the static server's message arrived after " << kSilence
            << " s of silence through a NAT that forgets after " << kNatTimeout
            << " s; outside the cgroup, it was lost.\n";
}

}  // namespace
}  // namespace cgnat_harness
