// prosody_test.cc — the real-server demonstration as a test:
// Debian's Prosody, run as user prosody inside the emulated CGNAT, and two
// real XMPP clients (slixmpp) on the phones' side. A message to a client that
// has been idle for 2T is lost without libkeepalive and delivered with it.
// Each scenario is one run of tests/e2e/prosody-in-cgnat, which owns the
// configuration, the accounts, the clients and the timing (examples/prosody/demo
// runs the same script); this program judges what it reports.
//
// Prerequisites (root, ip, nft, namespaces; prosody, python3-slixmpp,
// conntrack) are judged by `prosody-in-cgnat check`: when one is missing the
// test is skipped loudly with the reason, or fails when
// LIBKEEPALIVE_E2E_REQUIRED=1. Each run is named after this process
// (kanat-<pid>-<tag>) and cleaned up on every exit path: by the script itself,
// by the Scenario guard (`prosody-in-cgnat clean`, also after a failed
// assertion), by the SIGINT/SIGTERM/SIGHUP handler of cgnat_harness.h, and
// after a SIGKILL by the `prosody-in-cgnat sweep` each test starts with.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cgnat_harness.h"

namespace {

using cgnat_harness::CommandResult;
using cgnat_harness::env_or_empty;
using cgnat_harness::Event;
using cgnat_harness::library;
using cgnat_harness::Process;
using cgnat_harness::Strings;
using cgnat_harness::with_library;

// One scenario takes about 8–11 s on an idle machine, three times that on a
// loaded one (Prosody's start and the client's login slow down, the
// silence itself does not); the limit only ends a scenario that hangs.
constexpr double kRunTimeout = 60;

std::string script() {
  return env_or_empty("LIBKEEPALIVE_TEST_SOURCE_DIR") + "/tests/e2e/prosody-in-cgnat";
}

// Why Prosody behind the emulated NAT cannot run here (`prosody-in-cgnat
// check`), or nullopt when it can; removes what dead earlier runs left
// (`prosody-in-cgnat sweep`) first.
std::optional<std::string> prosody_unavailable() {
  CommandResult check = cgnat_harness::run_command({script(), "check"}, 30);
  if (check.status != 0) {
    return check.output.empty() ? "prosody-in-cgnat check failed\n" : check.output;
  }
  CommandResult sweep = cgnat_harness::run_command({script(), "sweep"}, 30);
  if (!sweep.output.empty()) std::cout << sweep.output;
  return std::nullopt;
}

// One run of `prosody-in-cgnat run NAME VAR=VALUE...`. The destructor runs
// `prosody-in-cgnat clean NAME`: nothing of a run outlives its test, whatever
// the script managed to do itself.
class Scenario {
 public:
  Scenario(const std::string &tag, const Strings &prosody_env)
      : name_("kanat-" + std::to_string(getpid()) + "-" + tag),
        cleanup_slot_(cgnat_harness::track_cleanup(script(), "clean", name_)) {
    Strings args = {script(), "run", name_};
    args.insert(args.end(), prosody_env.begin(), prosody_env.end());
    // In a process group of its own: after the timeout (or on a signal) the
    // script is killed with all it started.
    Process run("prosody-in-cgnat run", args, Process::kOwnGroup);
    if (!run.started()) {
      err_ = "cannot start " + script();
      return;
    }
    status_ = run.wait_exit(kRunTimeout);
    timed_out_ = status_ == -1;
    out_ = run.out();
    err_ = run.err();
    std::istringstream lines(out_);
    for (std::string line; std::getline(lines, line);) events_.push_back(Event::parse(line));
  }
  Scenario(const Scenario &) = delete;
  Scenario &operator=(const Scenario &) = delete;
  ~Scenario() {
    cgnat_harness::run_command({script(), "clean", name_}, 10);
    cgnat_harness::untrack_cleanup(cleanup_slot_);
  }

  bool ran() const { return status_ == 0; }

  std::optional<Event> find(const char *name) const {
    for (const auto &event : events_)
      if (event.name == name) return event;
    return std::nullopt;
  }

  // Everything the run said, for failure messages.
  std::string transcript() const {
    return "--- prosody-in-cgnat run " + name_ + " (exit " + std::to_string(status_) +
           (timed_out_ ? ", killed after " + std::to_string(kRunTimeout) + " s" : "") +
           "), stdout:\n" + out_ + "--- stderr (transcript):\n" + err_;
  }

  // The report, for the test log.
  const std::string &report() const { return out_; }

 private:
  std::string name_;
  int cleanup_slot_;
  int status_ = -1;         // exit status, 128 + N when killed by signal N
  bool timed_out_ = false;  // killed after kRunTimeout
  std::string out_, err_;
  std::vector<Event> events_;
};

// Runs a scenario and checks what every scenario must show: Prosody ran as
// user prosody, with the library loaded or not as expected, and there is
// an outcome.
void run_scenario(Scenario &s, bool library_expected, Event *outcome, Event *idle_check) {
  ASSERT_TRUE(s.ran()) << "the scenario did not run to an outcome\n" << s.transcript();
  std::cout << s.report();
  auto started = s.find("prosody_started");
  auto checked = s.find("idle_check");
  auto result = s.find("outcome");
  ASSERT_TRUE(started && checked && result) << s.transcript();
  EXPECT_EQ((*started)["user"], "prosody") << s.transcript();
  ASSERT_EQ((*started)["libkeepalive_loaded"], library_expected ? "1" : "0")
      << "/proc/" << (*started)["pid"] << "/maps\n"
      << s.transcript();
  *outcome = *result;
  *idle_check = *checked;
}

// ---------------------------------------------------------------------------

class ProsodyTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(env_or_empty("LIBKEEPALIVE_TEST_SOURCE_DIR").empty() || library().empty())
        << "LIBKEEPALIVE_TEST_SOURCE_DIR and LIBKEEPALIVE_TEST_LIBRARY must be set (CTest sets "
           "them)";
    E2E_REQUIRE_OR_SKIP(prosody_unavailable(), "Prosody behind the emulated CGNAT",
                        "iproute2, nftables, conntrack, prosody and python3-slixmpp");
    struct stat st {};
    ASSERT_EQ(stat(library().c_str(), &st), 0) << "library not built: " << library();
  }
};

// 1. Without the library the NAT forgets the phone's idle connection and the
// message is lost. Were it delivered, the emulation (or something talking on
// the connection) would be broken and the other scenarios would prove nothing.
TEST_F(ProsodyTest, BaselineMessageToIdleClientIsLost) {
  Scenario s("pbase", {});
  Event outcome, idle_check;
  ASSERT_NO_FATAL_FAILURE(run_scenario(s, false, &outcome, &idle_check));
  EXPECT_EQ(idle_check["nat_mapping"], "forgotten") << s.transcript();
  ASSERT_EQ(outcome["result"], "lost")
      << "without libkeepalive the message must be lost: the emulated NAT did not forget the "
         "idle mapping (or Prosody or a client kept it alive), the emulation is broken\n"
      << s.transcript();
}

// 2. Prosody under the library with KEEPALIVE_IDLE=1: its probes keep the
// mapping, the message arrives.
TEST_F(ProsodyTest, WithIdle1MessageIsDelivered) {
  Scenario s("pidle", with_library({"KEEPALIVE_IDLE=1"}));
  Event outcome, idle_check;
  ASSERT_NO_FATAL_FAILURE(run_scenario(s, true, &outcome, &idle_check));
  EXPECT_EQ(idle_check["nat_mapping"], "kept") << s.transcript();
  EXPECT_EQ(idle_check["server_timer"].rfind("keepalive,", 0), 0u) << s.transcript();
  ASSERT_EQ(outcome["result"], "delivered")
      << "Prosody's keepalive (KEEPALIVE_IDLE=1) should have kept the NAT mapping\n"
      << s.transcript();
}

// 3. The README's Prosody rules with the idle time scaled to the emulated
// NAT: loopback untouched, c2s probed, everything else left alone.
TEST_F(ProsodyTest, WithRulesMessageIsDelivered) {
  Scenario s("prules",
             with_library({"KEEPALIVE_RULES=peer=127.0.0.0/8,::1 off; in port=5222,5223 idle=1 "
                           "cnt=4; off"}));
  Event outcome, idle_check;
  ASSERT_NO_FATAL_FAILURE(run_scenario(s, true, &outcome, &idle_check));
  EXPECT_EQ(idle_check["nat_mapping"], "kept") << s.transcript();
  ASSERT_EQ(outcome["result"], "delivered")
      << "the c2s rule (in port=5222 idle=1) should have kept the NAT mapping\n"
      << s.transcript();
}

}  // namespace
