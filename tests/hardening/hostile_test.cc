// hostile_test.cc — hostile environments (secure execution: see
// secure_exec_test.cc).
//   Absurd values (100 KiB, control bytes, non-UTF-8, thousands of rules):
//   one clean line per problem on stderr, at most 17 lines, sockets
//   untouched, the program runs on (or exits 1 under KEEPALIVE_STRICT=1).
//   The library's own output: every stderr line is one printable line
//   (KEEPALIVE_LOG=debug with a rule written over several lines); it never
//   writes into a descriptor the program reused for a socket after closing
//   stderr; a stderr nobody reads any more (broken pipe) does not kill the
//   program; a stderr that is full (a pipe or FIFO nobody reads) never
//   blocks it, at load or per socket, and its file status flags stay as
//   they were; lines written once it is read again arrive whole.
#include <regex>
#include <string>

#include "harness.h"

namespace ka_hardening {
namespace {

constexpr int kTimeoutS = 30;
constexpr size_t kLogLineMax = 1024;  // log.cc: char line[1024]
constexpr size_t kMaxLines = 17;      // KEEPALIVE_MAX_PROBLEMS + "N more problems"

// Every line of `err` comes from the library and is one printable line.
void ExpectCleanLibraryLines(const std::string &err, size_t min_lines) {
  std::vector<std::string> lines = Lines(err);
  EXPECT_GE(lines.size(), min_lines) << err;
  EXPECT_LE(lines.size(), kMaxLines) << err.substr(0, 4000);
  for (const std::string &line : lines) {
    EXPECT_EQ(line.rfind("libkeepalive: ", 0), 0u) << "not a library line: " << line.substr(0, 300);
    EXPECT_LE(line.size(), kLogLineMax);
    for (unsigned char c : line) {
      if (c < 0x20 || c > 0x7e) {
        ADD_FAILURE() << "byte " << static_cast<int>(c) << " in line: " << line.substr(0, 300);
        break;
      }
    }
  }
}

// ---- absurd values -----------------------------------------------------------

std::string Repeat(const std::string &piece, size_t bytes) {
  std::string text;
  while (text.size() < bytes) text += piece;
  return text;
}

// Every byte but NUL, over and over.
std::string AllBytes(size_t bytes) {
  std::string text;
  for (size_t i = 0; text.size() < bytes; ++i) text += static_cast<char>(1 + i % 255);
  return text;
}

struct AbsurdCase {
  const char *name;
  Env env;
};

std::vector<AbsurdCase> AbsurdCases() {
  constexpr size_t k100KiB = 100 * 1024;
  Env everything;
  for (const char *name :
       {"KEEPALIVE", "KEEPALIVE_IDLE", "KEEPALIVE_INTVL", "KEEPALIVE_CNT", "KEEPALIVE_USER_TIMEOUT",
        "KEEPALIVE_RULES", "KEEPALIVE_LOG", "KEEPALIVE_STRICT"}) {
    everything.emplace_back(name, AllBytes(k100KiB));
  }
  return {
      {"idle_100KiB_of_digits", {{"KEEPALIVE_IDLE", std::string(k100KiB, '9')}}},
      {"rules_one_100KiB_word", {{"KEEPALIVE_RULES", std::string(k100KiB, 'x')}}},
      {"rules_15000_valid_rules", {{"KEEPALIVE_RULES", Repeat("idle=5;", k100KiB)}}},
      {"rules_17000_invalid_rules", {{"KEEPALIVE_RULES", Repeat("bogus;", k100KiB)}}},
      {"rules_one_100KiB_peer_list",
       {{"KEEPALIVE_RULES", "peer=" + Repeat("127.0.0.1,", k100KiB)}}},
      {"control_bytes",
       {{"KEEPALIVE_IDLE", "\x1b[2J\x1b[H270\r\n"},
        {"KEEPALIVE_LOG", "debug\a"},
        {"KEEPALIVE_RULES", "in\x01idle=5; \x1b]0;title\a"}}},
      {"non_utf8",
       {{"KEEPALIVE_CNT", "\xff\xfe\xc3\x28"},
        {"KEEPALIVE_RULES", "peer=\xc0\xaf idle=\xe2\x82"},
        {"KEEPALIVE", "\xef\xbb\xbfon"}}},
      {"every_variable_100KiB_of_every_byte", everything},
  };
}

TEST(Hostile, AbsurdValuesGiveCleanLinesAndLeaveSocketsAlone) {
  LoopbackListener listener;
  for (const AbsurdCase &c : AbsurdCases()) {
    SCOPED_TRACE(c.name);
    Result r =
        RunProgram({Helper("ka_odd"), "connect", listener.port()}, Preloaded(c.env), kTimeoutS);
    Report report = ParseReport(r.out);
    EXPECT_EQ(r.status, 0) << r.err.substr(0, 2000);
    EXPECT_EQ(Get(report, "process.preloaded"), "1");
    EXPECT_EQ(Get(report, "sock.connect"), KernelDefaultState());
    ExpectCleanLibraryLines(r.err, 1);
  }
}

TEST(Hostile, AbsurdValuesUnderStrictExitOne) {
  LoopbackListener listener;
  for (const AbsurdCase &c : AbsurdCases()) {
    SCOPED_TRACE(c.name);
    Env env;
    for (const auto &entry : c.env) {
      if (entry.first != "KEEPALIVE_STRICT") env.push_back(entry);
    }
    env.emplace_back("KEEPALIVE_STRICT", "1");
    Result r =
        RunProgram({Helper("ka_odd"), "connect", listener.port()}, Preloaded(env), kTimeoutS);
    EXPECT_EQ(r.status, 1) << r.err.substr(0, 2000);
    EXPECT_EQ(r.out, "") << "the program ran on";
    ExpectCleanLibraryLines(r.err, 1);
  }
}

// ---- the library's own output --------------------------------------------

// Spaces in KEEPALIVE_RULES include tabs and newlines; the debug line that
// quotes a rule must still be one line.
TEST(Hostile, DebugLinesStayOneLineForRulesWrittenOverSeveralLines) {
  LoopbackListener listener;
  Env env = kGlobals;
  env.emplace_back("KEEPALIVE_LOG", "debug");
  env.emplace_back("KEEPALIVE_RULES", "out\n\tidle=9\r\n;\nin idle=8");
  Result r = RunProgram({Helper("ka_odd"), "connect", listener.port()}, Preloaded(env), kTimeoutS);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(Get(ParseReport(r.out), "sock.connect"), "1/9/5/4/6001");
  ExpectCleanLibraryLines(r.err, 2);
}

// A daemon that closed stderr reuses fd 2 for a connection: a debug line
// written to "stderr" then goes to its peer.
TEST(Hostile, NeverWritesIntoADescriptorThatReplacedStderr) {
  Env env = kGlobals;
  env.emplace_back("KEEPALIVE_LOG", "debug");
  Result without = RunProgram({Helper("ka_odd"), "stderr_reused"}, {}, kTimeoutS);
  Result with = RunProgram({Helper("ka_odd"), "stderr_reused"}, Preloaded(env), kTimeoutS);
  Report before = ParseReport(without.out), after = ParseReport(with.out);
  EXPECT_EQ(Get(before, "stderr_reused.client_fd"), "2");
  EXPECT_EQ(Get(after, "stderr_reused.client_fd"), "2");
  EXPECT_EQ(Get(after, "stderr_reused.server_fd"), "2");
  EXPECT_EQ(Get(before, "stderr_reused.bytes"), "0");
  EXPECT_EQ(Get(after, "stderr_reused.bytes"), "0")
      << "the library wrote its log line into the program's connection";
  EXPECT_EQ(Get(before, "stderr_repiped.bytes"), "0");
  EXPECT_EQ(Get(after, "stderr_repiped.bytes"), "0")
      << "the library wrote into a pipe that replaced stderr (same file system, other inode)";
  EXPECT_EQ(with.status, 0);
}

// stderr is a pipe whose reader has gone: the library's lines must not
// kill the program with SIGPIPE (an invalid configuration at load; a debug
// line per socket).
TEST(Hostile, BrokenStderrPipeDoesNotKillTheProgram) {
  LoopbackListener listener;
  Env invalid = {{"KEEPALIVE_IDLE", "abc"}};
  Result r = RunProgram({Helper("ka_odd"), "connect", listener.port()}, Preloaded(invalid),
                        kTimeoutS, Stderr::kBrokenPipe);
  EXPECT_EQ(r.status, 0) << "exit " << r.status << " (141 = SIGPIPE)";
  EXPECT_EQ(Get(ParseReport(r.out), "sock.connect"), KernelDefaultState());

  Env debug = kGlobals;
  debug.emplace_back("KEEPALIVE_LOG", "debug");
  r = RunProgram({Helper("ka_odd"), "connect", listener.port()}, Preloaded(debug), kTimeoutS,
                 Stderr::kBrokenPipe);
  EXPECT_EQ(r.status, 0) << "exit " << r.status << " (141 = SIGPIPE)";
  EXPECT_EQ(Get(ParseReport(r.out), "sock.connect"), kConfigured);
}

// ---- a full stderr ------------------------------------------------------------

// A hang detector, not a speed bound: a blocked write never returns.
constexpr int kHangS = 30;
constexpr int kFloodConnections = 200;

std::string StderrName(const ::testing::TestParamInfo<Stderr> &info) {
  return info.param == Stderr::kFullPipe ? "pipe" : "fifo";
}

// fd 2 is a full pipe (or FIFO) nobody reads, and blocking: a write(2)
// waits forever. Anonymous pipes take RWF_NOWAIT on recent kernels; FIFOs and
// older kernels go through the private non-blocking open (log.cc).
class FullStderr : public ::testing::TestWithParam<Stderr> {
 protected:
  // F_GETFL of fd 2 as a program without the library sees it.
  std::string FlagsWithout() {
    Result r = RunProgram({Helper("ka_odd"), "idle"}, {}, kTimeoutS, GetParam());
    return Get(ParseReport(r.out), "process.stderr_flags");
  }
};

TEST_P(FullStderr, InvalidConfigurationDoesNotBlockTheStart) {
  LoopbackListener listener;
  Result r = RunProgram({Helper("ka_odd"), "connect", listener.port()},
                        Preloaded({{"KEEPALIVE_IDLE", "abc"}}), kHangS, GetParam());
  ASSERT_FALSE(r.timed_out) << "blocked on a full stderr before main()";
  Report report = ParseReport(r.out);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(Get(report, "sock.connect"), KernelDefaultState());
  EXPECT_EQ(Get(report, "process.stderr_flags"), FlagsWithout());
  EXPECT_EQ(r.err, "") << "a line got into a full pipe";
}

TEST_P(FullStderr, InfoLogDoesNotBlockTheStart) {
  LoopbackListener listener;
  Env env = kGlobals;
  env.emplace_back("KEEPALIVE_LOG", "info");
  Result r = RunProgram({Helper("ka_odd"), "connect", listener.port()}, Preloaded(env), kHangS,
                        GetParam());
  ASSERT_FALSE(r.timed_out) << "blocked on a full stderr before main()";
  Report report = ParseReport(r.out);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(Get(report, "sock.connect"), kConfigured);
  EXPECT_EQ(Get(report, "process.stderr_flags"), FlagsWithout());
}

// Debug lines for every accept and connect while stderr is full are
// dropped; once it is read again, the next lines arrive whole, after one
// that counts what was dropped.
TEST_P(FullStderr, DebugLinesAreDroppedNotWaitedForAndCounted) {
  Env env = kGlobals;
  env.emplace_back("KEEPALIVE_LOG", "debug");
  Result r = RunProgram({Helper("ka_odd"), "log_flood", std::to_string(kFloodConnections)},
                        Preloaded(env), kHangS, GetParam());
  ASSERT_FALSE(r.timed_out) << "blocked on a full stderr";
  Report report = ParseReport(r.out);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(Get(report, "stderr.writable"), "1");
  EXPECT_EQ(Get(report, "sock.last_connect"), kConfigured);
  EXPECT_EQ(Get(report, "sock.last_accept"), kConfigured);
  std::string flags = FlagsWithout();
  EXPECT_EQ(Get(report, "process.stderr_flags"), flags);
  EXPECT_EQ(Get(report, "stderr.flags_after"), flags);

  ExpectCleanLibraryLines(r.err, 3);
  std::vector<std::string> lines = Lines(r.err);
  ASSERT_EQ(lines.size(), 3u) << r.err;
  std::smatch count;
  ASSERT_TRUE(
      std::regex_match(lines[0], count, std::regex(R"(libkeepalive: (\d+) lines dropped: .*)")))
      << lines[0];
  // The "active" line and one line per accept and per connect, at least.
  EXPECT_GE(std::stoi(count[1]), 2 * kFloodConnections + 1);
  EXPECT_EQ(lines[1].rfind("libkeepalive: out fd=", 0), 0u) << lines[1];
  EXPECT_EQ(lines[2].rfind("libkeepalive: in fd=", 0), 0u) << lines[2];
}

INSTANTIATE_TEST_SUITE_P(Hostile, FullStderr,
                         ::testing::Values(Stderr::kFullPipe, Stderr::kFullFifo), StderrName);

}  // namespace
}  // namespace ka_hardening
