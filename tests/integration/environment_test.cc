// environment_test.cc — what the KEEPALIVE_* variables do to a preloaded
// program: no variables (keepalive on, kernel timings), the kernel's maxima
// (as variables and in a rule), IDLE alone (the INTVL rule, also seen from
// outside after the first probe), invalid values (one stderr line naming the
// variable, sockets untouched, normal exit), the off switch,
// KEEPALIVE_STRICT, KEEPALIVE_LOG, and the global sysctl left alone by all
// of them.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <regex>
#include <string>
#include <thread>

#include "harness.h"

namespace ka_test {
namespace {

const std::vector<std::string> kPair = PairScript();

// Runs kPair and checks both sockets inside and outside.
void ExpectPair(const Env &env, const Keepalive &expected) {
  auto peer = StartPeer(kPair, env, Preload::kYes);
  ASSERT_TRUE(peer->WaitForLine("ready")) << peer->out() << peer->err();
  SsTable ss = ReadSs();
  double elapsed = peer->Elapsed();
  EXPECT_EQ(peer->Finish(), 0) << peer->err();
  EXPECT_EQ(Get(peer->report(), "process.preloaded"), "1");
  ExpectSocket(peer->report(), ss, "server", expected, elapsed);
  ExpectSocket(peer->report(), ss, "client", expected, elapsed);
}

TEST(Environment, NoVariablesSwitchKeepaliveOnWithKernelTimings) {
  ExpectPair({}, KernelTimings());
}

TEST(Environment, FullConfigurationIsApplied) {
  ExpectPair({{"KEEPALIVE_IDLE", "4m"},
              {"KEEPALIVE_INTVL", "20"},
              {"KEEPALIVE_CNT", "6"},
              {"KEEPALIVE_USER_TIMEOUT", "1m30s"}},
             {true, 240, 20, 6, 90000});
}

// The largest values the kernel takes (IDLE and INTVL 32767 s, CNT 127)
// are accepted and applied, as variables and inside a rule.
TEST(Environment, KernelMaximaAreApplied) {
  const Keepalive maxima = {true, 32767, 32767, 127, 0};
  ExpectPair({{"KEEPALIVE_IDLE", "32767"}, {"KEEPALIVE_INTVL", "32767"}, {"KEEPALIVE_CNT", "127"}},
             maxima);
  ExpectPair({{"KEEPALIVE_RULES", "idle=32767 intvl=32767 cnt=127"}}, maxima);
}

// KEEPALIVE_IDLE alone: INTVL = min(IDLE, the kernel's default interval).
struct IdleCase {
  std::string text;
  int seconds;
};
class IdleOnly : public testing::TestWithParam<IdleCase> {};

TEST_P(IdleOnly, IntervalIsTheSmallerOfIdleAndTheKernelInterval) {
  KernelDefaults k = ReadKernelDefaults();
  int idle = GetParam().seconds;
  ExpectPair({{"KEEPALIVE_IDLE", GetParam().text}},
             {true, idle, std::min(idle, k.intvl_s), k.probes, 0});
}

INSTANTIATE_TEST_SUITE_P(Values, IdleOnly,
                         testing::Values(IdleCase{"30", 30}, IdleCase{"2m", 120},
                                         IdleCase{"300", 300}),
                         [](const testing::TestParamInfo<IdleCase> &param_info) {
                           return "idle_" + std::to_string(param_info.param.seconds);
                         });

// After the first (answered) probe the kernel waits INTVL: with IDLE=1 the
// timer that ss shows is then the interval, explicit or derived.
TEST(Environment, TimerShowsTheIntervalAfterTheFirstProbe) {
  KernelDefaults k = ReadKernelDefaults();
  ASSERT_GT(k.intvl_s, 1) << "the derived interval would not differ from the kernel's";
  // Started first, so that its first probe is due before the other's.
  auto derived_intvl = StartPeer(kPair, {{"KEEPALIVE_IDLE", "1"}}, Preload::kYes);
  auto explicit_intvl =
      StartPeer(kPair, {{"KEEPALIVE_IDLE", "1"}, {"KEEPALIVE_INTVL", "200"}}, Preload::kYes);
  ASSERT_TRUE(derived_intvl->WaitForLine("ready")) << derived_intvl->err();
  ASSERT_TRUE(explicit_intvl->WaitForLine("ready")) << explicit_intvl->err();
  // Wait until both explicit sockets show more than IDLE left: their first
  // probe went out and was answered (at most a few seconds).
  auto probed = [&](const SsTable &ss) {
    for (const char *name : {"server", "client"}) {
      auto it =
          ss.find(std::stoull(Get(explicit_intvl->report(), std::string("sock.") + name + ".ino")));
      if (it == ss.end() || !it->second.timer || it->second.timer->lo_s <= 1.0) return false;
    }
    return true;
  };
  SsTable ss = ReadSs();
  while (!probed(ss) && explicit_intvl->Elapsed() < 6.0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ss = ReadSs();
  }
  double elapsed = explicit_intvl->Elapsed();
  explicit_intvl->Finish();
  derived_intvl->Finish();
  for (const char *name : {"server", "client"}) {
    ExpectInside(explicit_intvl->report(), name, {true, 1, 200, k.probes, 0});
    ExpectOutside(ss, explicit_intvl->report(), name, true, 200, elapsed);
    ExpectInside(derived_intvl->report(), name, {true, 1, 1, k.probes, 0});
    ExpectOutside(ss, derived_intvl->report(), name, true, 1, elapsed);
  }
}

// ---- invalid configuration -------------------------------------------------

struct BadCase {
  std::string name, variable, value;
  std::string fragment;  // also in the message: the value or the word at fault
};
class InvalidConfiguration : public testing::TestWithParam<BadCase> {};

TEST_P(InvalidConfiguration, LeavesSocketsUntouchedAndSaysWhy) {
  const BadCase &c = GetParam();
  // Valid values around the bad one: none of them may be half-applied.
  std::map<std::string, std::string> vars = {
      {"KEEPALIVE_IDLE", "240"}, {"KEEPALIVE_CNT", "4"}, {"KEEPALIVE_USER_TIMEOUT", "10s"}};
  vars[c.variable] = c.value;
  const Env env(vars.begin(), vars.end());
  auto peer = StartPeer(kPair, env, Preload::kYes);
  ASSERT_TRUE(peer->WaitForLine("ready")) << peer->out() << peer->err();
  SsTable ss = ReadSs();
  double elapsed = peer->Elapsed();
  EXPECT_EQ(peer->Finish(), 0) << "the program runs on: " << peer->err();
  EXPECT_EQ(Get(peer->report(), "process.preloaded"), "1");
  ExpectSocket(peer->report(), ss, "server", Untouched(), elapsed);
  ExpectSocket(peer->report(), ss, "client", Untouched(), elapsed);
  std::vector<std::string> lines = LibraryLines(peer->err());
  ASSERT_EQ(lines.size(), 1u) << peer->err();
  EXPECT_EQ(peer->err(), lines[0] + "\n") << "nothing but the one line";
  EXPECT_NE(lines[0].find(c.variable), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find(c.fragment), std::string::npos) << lines[0];
}

INSTANTIATE_TEST_SUITE_P(
    Values, InvalidConfiguration,
    testing::Values(BadCase{"idle_abc", "KEEPALIVE_IDLE", "abc", "abc"},
                    BadCase{"idle_zero", "KEEPALIVE_IDLE", "0", "0"},
                    BadCase{"idle_unknown_unit", "KEEPALIVE_IDLE", "270x", "270x"},
                    BadCase{"idle_fraction", "KEEPALIVE_IDLE", "1.5s", "1.5s"},
                    BadCase{"intvl_too_large", "KEEPALIVE_INTVL", "40000", "40000"},
                    BadCase{"cnt_too_large", "KEEPALIVE_CNT", "128", "128"},
                    BadCase{"user_timeout_negative", "KEEPALIVE_USER_TIMEOUT", "-5", "-5"},
                    BadCase{"switch_unknown", "KEEPALIVE", "maybe", "maybe"},
                    BadCase{"log_unknown", "KEEPALIVE_LOG", "loud", "loud"},
                    BadCase{"rules_bad_port", "KEEPALIVE_RULES", "in port=abc idle=10",
                            "port=abc"}),
    [](const testing::TestParamInfo<BadCase> &param_info) { return param_info.param.name; });

// ---- the off switch ------------------------------------------------------------

class OffSwitch : public testing::TestWithParam<std::string> {};

TEST_P(OffSwitch, LeavesSocketsUntouchedSilently) {
  auto peer =
      StartPeer(kPair, {{"KEEPALIVE", GetParam()}, {"KEEPALIVE_IDLE", "240"}}, Preload::kYes);
  ASSERT_TRUE(peer->WaitForLine("ready")) << peer->err();
  SsTable ss = ReadSs();
  double elapsed = peer->Elapsed();
  EXPECT_EQ(peer->Finish(), 0);
  EXPECT_EQ(Get(peer->report(), "process.preloaded"), "1");
  ExpectSocket(peer->report(), ss, "server", Untouched(), elapsed);
  ExpectSocket(peer->report(), ss, "client", Untouched(), elapsed);
  EXPECT_EQ(peer->err(), "");
}

INSTANTIATE_TEST_SUITE_P(Words, OffSwitch, testing::Values("off", "0", "no", "false"),
                         [](const testing::TestParamInfo<std::string> &param_info) {
                           return "KEEPALIVE_" + param_info.param;
                         });

// ---- KEEPALIVE_STRICT ------------------------------------------------------------

TEST(Strict, InvalidConfigurationExitsWithStatus1) {
  PeerRun run =
      RunPeer(kPair, {{"KEEPALIVE_STRICT", "1"}, {"KEEPALIVE_IDLE", "abc"}}, Preload::kYes);
  EXPECT_EQ(run.status, 1) << run.err;
  EXPECT_EQ(run.out, "") << "the program must not have started";
  std::vector<std::string> lines = LibraryLines(run.err);
  ASSERT_EQ(lines.size(), 1u) << run.err;
  EXPECT_NE(lines[0].find("KEEPALIVE_IDLE"), std::string::npos) << lines[0];
}

// The word that switched strict mode on is the one quoted.
TEST(Strict, MessageQuotesTheWordGiven) {
  PeerRun run =
      RunPeer(kPair, {{"KEEPALIVE_STRICT", "yes"}, {"KEEPALIVE_IDLE", "abc"}}, Preload::kYes);
  EXPECT_EQ(run.status, 1) << run.err;
  std::vector<std::string> lines = LibraryLines(run.err);
  ASSERT_EQ(lines.size(), 1u) << run.err;
  EXPECT_NE(lines[0].find("(exiting because KEEPALIVE_STRICT=yes)"), std::string::npos) << lines[0];
}

// A misspelled name is a problem under KEEPALIVE_STRICT, like an invalid value.
TEST(Strict, MisspelledVariableExitsWithStatus1) {
  PeerRun run =
      RunPeer(kPair, {{"KEEPALIVE_STRICT", "1"}, {"KEEPALIVE_IDEL", "270"}}, Preload::kYes);
  EXPECT_EQ(run.status, 1) << run.err;
  EXPECT_EQ(run.out, "") << "the program must not have started";
  EXPECT_EQ(run.err,
            "libkeepalive: KEEPALIVE_IDEL is not a libkeepalive variable: did you mean "
            "KEEPALIVE_IDLE? (exiting because KEEPALIVE_STRICT=1)\n");
}

// Without it, one warning line even at the default log level, and the
// program runs with what the other variables say: here the kernel's timings.
TEST(MisspelledVariable, OneWarningLineAndTheKernelTimings) {
  auto peer = StartPeer(kPair, {{"KEEPALIVE_INTERVAL", "30"}}, Preload::kYes);
  ASSERT_TRUE(peer->WaitForLine("ready")) << peer->out() << peer->err();
  SsTable ss = ReadSs();
  double elapsed = peer->Elapsed();
  EXPECT_EQ(peer->Finish(), 0) << peer->err();
  ExpectSocket(peer->report(), ss, "server", KernelTimings(), elapsed);
  ExpectSocket(peer->report(), ss, "client", KernelTimings(), elapsed);
  EXPECT_EQ(peer->err(),
            "libkeepalive: KEEPALIVE_INTERVAL is not a libkeepalive variable: did you mean "
            "KEEPALIVE_INTVL? (ignored)\n");
}

TEST(Strict, ValidConfigurationRunsNormally) {
  ExpectPair({{"KEEPALIVE_STRICT", "1"}, {"KEEPALIVE_IDLE", "240"}, {"KEEPALIVE_INTVL", "17"}},
             {true, 240, 17, ReadKernelDefaults().probes, 0});
}

// ---- KEEPALIVE_LOG -----------------------------------------------------------------

// The lines that describe one socket: "... fd=<n> ...".
std::vector<std::string> LinesOfFd(const std::vector<std::string> &lines, const std::string &fd) {
  std::vector<std::string> found;
  std::regex word("\\bfd=" + fd + "\\b");
  for (const auto &line : lines)
    if (std::regex_search(line, word)) found.push_back(line);
  return found;
}

TEST(Log, DebugPrintsOneLinePerConfiguredSocket) {
  // The untouched scenario: two TCP sockets configured, Unix/UDP/MPTCP not.
  PeerRun run = RunPeer({"untouched"}, {{"KEEPALIVE_LOG", "debug"}, {"KEEPALIVE_IDLE", "240"}},
                        Preload::kYes);
  EXPECT_EQ(run.status, 0) << run.err;
  std::vector<std::string> lines = LibraryLines(run.err);
  EXPECT_EQ(LibraryLines(run.err).size(), std::count(run.err.begin(), run.err.end(), '\n'))
      << "every stderr line is the library's: " << run.err;
  const Report &r = run.report;
  std::vector<std::string> server = LinesOfFd(lines, Get(r, "call.tcp_accept.ret"));
  std::vector<std::string> client = LinesOfFd(lines, Get(r, "sock.tcp_client.fd"));
  ASSERT_EQ(server.size(), 1u) << run.err;
  ASSERT_EQ(client.size(), 1u) << run.err;
  EXPECT_TRUE(std::regex_search(server[0], std::regex("\\bin\\b.*rule=global"))) << server[0];
  EXPECT_TRUE(std::regex_search(client[0], std::regex("\\bout\\b.*rule=global"))) << client[0];
  EXPECT_NE(server[0].find("idle=240"), std::string::npos) << server[0];
  for (const char *name : {"unix_accept_client", "unix_accept_server", "unix_accept4_server",
                           "udp4", "udp6", "mptcp_client", "mptcp_server"}) {
    if (r.count(std::string("sock.") + name + ".fd") == 0)
      continue;  // no MPTCP: reported elsewhere
    EXPECT_EQ(LinesOfFd(lines, Get(r, std::string("sock.") + name + ".fd")).size(), 0u)
        << name << "\n"
        << run.err;
  }
  // Two per-socket lines and the listener's, and nothing per socket beyond them.
  size_t per_socket = 0;
  for (const auto &line : lines)
    per_socket += std::regex_search(line, std::regex("\\bfd=\\d+")) ? 1 : 0;
  EXPECT_EQ(per_socket, 3u) << run.err;
  std::regex listener("^libkeepalive: listen fd=\\d+: idle=240s .*inherit");
  EXPECT_EQ(
      std::count_if(lines.begin(), lines.end(),
                    [&](const std::string &line) { return std::regex_search(line, listener); }),
      1)
      << run.err;
}

TEST(Log, QuietByDefaultAndOneLineAtInfo) {
  PeerRun quiet = RunPeer(kPair, {{"KEEPALIVE_IDLE", "240"}}, Preload::kYes);
  EXPECT_EQ(quiet.err, "");
  PeerRun info =
      RunPeer(kPair, {{"KEEPALIVE_IDLE", "240"}, {"KEEPALIVE_LOG", "info"}}, Preload::kYes);
  std::vector<std::string> lines = LibraryLines(info.err);
  ASSERT_EQ(lines.size(), 1u) << info.err;
  EXPECT_EQ(info.err, lines[0] + "\n");
  EXPECT_NE(lines[0].find("idle=240"), std::string::npos) << lines[0];
  EXPECT_EQ(Get(info.report, "sock.server.keepalive"), "1");
}

// ---- the global sysctl -------------------------------------------------------------

TEST(Sysctl, GlobalKeepaliveSettingsAreNeverWritten) {
  const KernelDefaults before = ReadKernelDefaults();
  const std::vector<Env> configs = {
      {},
      {{"KEEPALIVE_IDLE", "1"}, {"KEEPALIVE_INTVL", "2"}, {"KEEPALIVE_CNT", "3"}},
      {{"KEEPALIVE_RULES", "in idle=5 intvl=6 cnt=7; out off"}},
      {{"KEEPALIVE_IDLE", "abc"}},
      {{"KEEPALIVE_STRICT", "1"}, {"KEEPALIVE_CNT", "0"}},
      {{"KEEPALIVE", "off"}, {"KEEPALIVE_IDLE", "9"}},
  };
  for (const Env &env : configs) {
    PeerRun run = RunPeer(kPair, env, Preload::kYes);
    SCOPED_TRACE(run.err);
    KernelDefaults after = ReadKernelDefaults();
    EXPECT_EQ(after.time_s, before.time_s);
    EXPECT_EQ(after.intvl_s, before.intvl_s);
    EXPECT_EQ(after.probes, before.probes);
  }
}

}  // namespace
}  // namespace ka_test
