// tests/e2e/cgnat_harness.h — what an end-to-end test needs around
// tests/e2e/cgnat: the paths CTest passes, the prerequisite check (skip
// loudly, or fail when LIBKEEPALIVE_E2E_REQUIRED=1), a NAT whose three
// namespaces are removed on every exit path, and processes whose output is
// read as it comes (the peers' report lines as events) and which never
// outlive their test; and the figures and checks of the idle-connection
// scenario most tests run. Every e2e test program includes it.
//
// Cleanup: the Nat and Process destructors (also on a failed assertion), a
// SIGINT/SIGTERM/SIGHUP handler for the ones still up (a test's own cleanup
// command, such as `prosody-in-cgnat clean NAME`, registered with
// track_cleanup), and after a SIGKILL the `cgnat sweep` that
// CGNAT_REQUIRE_OR_SKIP() runs.
#ifndef KEEPALIVE_TESTS_E2E_CGNAT_HARNESS_H
#define KEEPALIVE_TESTS_E2E_CGNAT_HARNESS_H

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "require.h"
#include "spawn_args.h"

extern char **environ;

namespace cgnat_harness {

using Strings = std::vector<std::string>;

inline double now_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Sleeps until now_s() reaches `deadline` (at once when it has passed).
inline void sleep_until(double deadline) {
  for (double left; (left = deadline - now_s()) > 0;) usleep(static_cast<useconds_t>(left * 1e6));
}

inline std::string env_or_empty(const char *name) {
  const char *value = getenv(name);
  return value ? value : "";
}

inline std::string harness() {
  return env_or_empty("LIBKEEPALIVE_TEST_SOURCE_DIR") + "/tests/e2e/cgnat";
}
inline std::string program(const char *name) {
  return env_or_empty("LIBKEEPALIVE_TEST_BINDIR") + "/" + name;
}
inline std::string library() { return env_or_empty("LIBKEEPALIVE_TEST_LIBRARY"); }

// The variables `settings` ("NAME=value") with LD_PRELOAD=<the library> first.
inline Strings with_library(Strings settings) {
  settings.insert(settings.begin(), "LD_PRELOAD=" + library());
  return settings;
}

// One report line of a peer: "EVENT key=value ... t=SECONDS" (see peer.h;
// prosody-in-cgnat reports the same way).
struct Event {
  std::string name;
  std::map<std::string, std::string> fields;

  std::string operator[](const std::string &key) const {
    auto it = fields.find(key);
    return it == fields.end() ? "" : it->second;
  }
  double number(const std::string &key) const { return atof((*this)[key].c_str()); }

  static Event parse(const std::string &line) {
    Event event;
    std::istringstream words(line);
    words >> event.name;
    for (std::string word; words >> word;) {
      size_t eq = word.find('=');
      if (eq != std::string::npos) event.fields[word.substr(0, eq)] = word.substr(eq + 1);
    }
    return event;
  }
};

// ---------------------------------------------------------------------------
// Cleanup on SIGINT/SIGTERM/SIGHUP. The handler may only use async-signal-
// safe calls, so what it needs is kept in fixed storage, filled beforehand.

inline constexpr int kMaxTracked = 16;
inline constexpr size_t kMaxText = 256;
inline volatile pid_t g_children[kMaxTracked];     // processes that are running
inline volatile bool g_child_groups[kMaxTracked];  // ... each leading its own process group
// PROGRAM VERB NAME of each cleanup still due: `cgnat down NAME` for a Nat
// that is up, or a test's own (`prosody-in-cgnat clean NAME`).
inline char g_cleanups[kMaxTracked][3][kMaxText];

inline void on_fatal_signal(int signal_number) {
  for (int i = 0; i < kMaxTracked; ++i) {
    pid_t child = g_children[i];
    if (child > 0 && kill(g_child_groups[i] ? -child : child, SIGKILL) == 0) {
      waitpid(child, nullptr, 0);
    }
  }
  for (auto &command : g_cleanups) {
    if (!command[0][0]) continue;
    pid_t pid = fork();
    if (pid == 0) {
      char *argv[] = {command[0], command[1], command[2], nullptr};
      execv(command[0], argv);
      _exit(127);
    }
    if (pid > 0) waitpid(pid, nullptr, 0);
  }
  signal(signal_number, SIG_DFL);
  raise(signal_number);
}

// Each returns the slot used, or -1 when all are taken (then that one is
// cleaned up by the destructors and the next sweep only).
inline int track_child(pid_t pid, bool own_group) {
  for (int i = 0; i < kMaxTracked; ++i) {
    if (g_children[i] <= 0) {
      g_child_groups[i] = own_group;
      g_children[i] = pid;
      return i;
    }
  }
  return -1;
}

inline int track_cleanup(const std::string &program, const char *verb, const std::string &name) {
  for (int i = 0; i < kMaxTracked; ++i) {
    if (!g_cleanups[i][0][0]) {
      snprintf(g_cleanups[i][1], kMaxText, "%s", verb);
      snprintf(g_cleanups[i][2], kMaxText, "%s", name.c_str());
      snprintf(g_cleanups[i][0], kMaxText, "%s", program.c_str());
      return i;
    }
  }
  return -1;
}

// After the cleanup of `slot` (from track_cleanup, may be -1) was done.
inline void untrack_cleanup(int slot) {
  if (slot >= 0) g_cleanups[slot][0][0] = '\0';
}

struct SignalCleanup : testing::Environment {
  void SetUp() override {
    for (int signal_number : {SIGINT, SIGTERM, SIGHUP}) signal(signal_number, on_fatal_signal);
  }
};
inline const auto *const g_signal_cleanup = testing::AddGlobalTestEnvironment(new SignalCleanup);

// ---------------------------------------------------------------------------
// Processes.

// Starts argv with stdin on /dev/null and stdout, stderr on two pipes, in a
// process group of its own when `own_group`; returns the pid or -1.
inline pid_t spawn(const Strings &args, bool own_group, int *out_fd, int *err_fd) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) return -1;
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]);
    close(out[1]);
    return -1;
  }
  keepalive_test::OutputActions actions(out[1], err[1]);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  if (own_group) {
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attributes, 0);
  }
  keepalive_test::CStrings argv(args);
  pid_t pid = -1;
  if (posix_spawn(&pid, argv.get()[0], actions.get(), &attributes, argv.get(), environ) != 0)
    pid = -1;
  posix_spawnattr_destroy(&attributes);
  close(out[1]);
  close(err[1]);
  *out_fd = out[0];
  *err_fd = err[0];
  return pid;
}

// A running program whose stdout and stderr are collected as they come.
// The destructor kills it (with kOwnGroup: its whole process group, all it
// started too): no process outlives its test.
class Process {
 public:
  enum Group { kSameGroup, kOwnGroup };

  Process(std::string label, const Strings &args, Group group = kSameGroup)
      : label_(std::move(label)), own_group_(group == kOwnGroup) {
    pid_ = spawn(args, own_group_, &out_fd_, &err_fd_);
    if (pid_ > 0) slot_ = track_child(pid_, own_group_);
    started_at_ = now_s();
  }
  Process(const Process &) = delete;
  Process &operator=(const Process &) = delete;
  ~Process() {
    if (pid_ > 0 && !exited_) {
      kill(own_group_ ? -pid_ : pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (slot_ >= 0) g_children[slot_] = 0;
    if (out_fd_ >= 0) close(out_fd_);
    if (err_fd_ >= 0) close(err_fd_);
  }

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  // Waits up to `timeout` seconds until stdout (or stderr) contains `text`;
  // false when the program closed it or the time ran out.
  bool wait_for_output(const std::string &text, double timeout, bool on_stderr = false) {
    double deadline = now_s() + timeout;
    for (;;) {
      if ((on_stderr ? err_ : out_).find(text) != std::string::npos) return true;
      if (!read_more(deadline)) return false;
    }
  }

  // The first report line on stdout (Event) named one of `names`, waiting
  // up to `timeout` seconds for it; nullopt when the program closed its
  // output or the time ran out. What has arrived by then still counts: with
  // a timeout of 0 it reads what is there and waits for nothing.
  std::optional<Event> wait_for_event(std::initializer_list<const char *> names, double timeout) {
    double deadline = now_s() + timeout;
    for (;;) {
      for (size_t end; (end = out_.find('\n', parsed_)) != std::string::npos; parsed_ = end + 1)
        events_.push_back(Event::parse(out_.substr(parsed_, end - parsed_)));
      for (const auto &event : events_)
        for (const char *name : names)
          if (event.name == name) return event;
      double left = deadline - now_s();
      if (!read_once(left > 0 ? static_cast<int>(left * 1000) + 1 : 0)) return std::nullopt;
    }
  }

  // An event already reported (reads what is there, waits for nothing).
  std::optional<Event> find_event(const char *name) { return wait_for_event({name}, 0); }

  // Waits up to `timeout` seconds for the program to end, reading all it
  // says. Returns its exit status, 128 + N when killed by signal N, or -1
  // when it is still running (then it is left running).
  int wait_exit(double timeout) {
    double deadline = now_s() + timeout;
    while (read_more(deadline)) {
    }
    for (;;) {
      int status = 0;
      pid_t done = waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        exited_ = true;
        ended_at_ = now_s();
        if (slot_ >= 0) g_children[slot_] = 0;
        slot_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (now_s() >= deadline) return -1;
      usleep(10000);
    }
  }

  void signal(int signal_number) const {
    if (pid_ > 0 && !exited_) kill(pid_, signal_number);
  }

  // Seconds from start to exit (after wait_exit succeeded).
  double run_time() const { return ended_at_ - started_at_; }
  const std::string &out() const { return out_; }
  const std::string &err() const { return err_; }
  std::string transcript() const {
    return "--- " + label_ + " stdout:\n" + out_ + "--- " + label_ + " stderr:\n" + err_;
  }

 private:
  // Reads from stdout/stderr until something arrives or `deadline`; false
  // when both are closed or the time ran out.
  bool read_more(double deadline) {
    double left = deadline - now_s();
    if (left <= 0) return false;
    return read_once(static_cast<int>(left * 1000) + 1);
  }

  // Waits up to `timeout_ms` (0: not at all) for stdout/stderr and reads
  // what is there; false when both are closed or nothing came in time.
  bool read_once(int timeout_ms) {
    pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
    if (fds[0].fd < 0 && fds[1].fd < 0) return false;
    int ready = poll(fds, 2, timeout_ms);
    if (ready <= 0) return false;
    for (int i = 0; i < 2; ++i) {
      if (!fds[i].revents) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        close(fds[i].fd);
        (i == 0 ? out_fd_ : err_fd_) = -1;
        continue;
      }
      (i == 0 ? out_ : err_).append(buf, static_cast<size_t>(n));
    }
    return true;
  }

  std::string label_;
  bool own_group_ = false;
  pid_t pid_ = -1;
  int slot_ = -1;
  bool exited_ = false;
  double started_at_ = 0, ended_at_ = 0;
  int out_fd_ = -1, err_fd_ = -1;
  std::string out_, err_;
  size_t parsed_ = 0;          // out_ up to here is in events_
  std::vector<Event> events_;  // stdout's complete lines
};

struct CommandResult {
  int status = -1;     // exit status, -1 when it did not end normally
  std::string output;  // stdout and stderr
};

// Runs a short command (the harness itself) to its end.
inline CommandResult run_command(const Strings &args, double timeout = 60) {
  Process process(args.empty() ? "" : args[0], args);
  if (!process.started()) return {-1, "cannot start " + args[0]};
  int status = process.wait_exit(timeout);
  return {status, process.out() + process.err()};
}

// ---------------------------------------------------------------------------
// The emulated NAT.

// The three namespaces of one emulated CGNAT (`cgnat up NAME T`), removed
// by the destructor (`cgnat down`).
class Nat {
 public:
  Nat(const std::string &tag, int timeout_s)
      : name_("kanat-" + std::to_string(getpid()) + "-" + tag) {
    slot_ = track_cleanup(harness(), "down", name_);
    up_ = run_command({harness(), "up", name_, std::to_string(timeout_s)});
  }
  Nat(const Nat &) = delete;
  Nat &operator=(const Nat &) = delete;
  ~Nat() {
    run_command({harness(), "down", name_});
    untrack_cleanup(slot_);
  }

  bool up() const { return up_.status == 0; }
  const std::string &name() const { return name_; }
  const std::string &up_output() const { return up_.output; }

  // The command line running `args` in namespace `side` (c, n, s) with the
  // variables `env` ("NAME=value") set for that program only.
  Strings exec(const char *side, const Strings &env, const Strings &args) const {
    Strings command = {harness(), "exec", name_, side};
    command.insert(command.end(), env.begin(), env.end());
    command.insert(command.end(), args.begin(), args.end());
    return command;
  }

  // `cgnat link-down`: the client side vanishes without a word.
  CommandResult link_down() const { return run_command({harness(), "link-down", name_}); }

 private:
  std::string name_;
  int slot_ = -1;
  CommandResult up_;
};

// ---------------------------------------------------------------------------
// The scenario of most tests: a server in namespace s, its client in c, an
// idle connection between them through a NAT that forgets after T, and a
// message from the server after 2T of silence: lost without keepalive,
// delivered with it.

inline constexpr int kNatTimeout = 3;                // T: the NAT forgets an idle mapping after T s
inline constexpr double kSilence = 2 * kNatTimeout;  // the server's message comes after 2T
inline constexpr double kClientWait = kSilence + 2;  // delivery takes milliseconds: 2 s is ample
inline constexpr double kStartupTimeout = 5;         // for a peer to reach its next step
inline constexpr char kServerAddress[] = "198.51.100.2";  // the server's side of `cgnat up`
inline constexpr char kServerPort[] = "5222";
inline const std::string kServerEndpoint = std::string(kServerAddress) + ":" + kServerPort;

// Seconds as text with `decimals` places: a peer's argument, a figure in a
// test's report.
inline std::string seconds(double s, int decimals = 1) {
  char text[32];
  snprintf(text, sizeof text, "%.*f", decimals, s);
  return text;
}

// `ss -tnoe` in namespace `side` (c, n, s), what an administrator would see:
// its header and the connections to kServerEndpoint (not ss's complaints
// about cgroups).
inline std::string connection_sockets(const Nat &nat, const char *side) {
  std::istringstream lines(
      run_command(nat.exec(side, {}, {"ss", "-tnoe", "state", "established"})).output);
  std::string shown;
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("Recv-Q", 0) == 0 || line.find(kServerEndpoint) != std::string::npos)
      shown += line + "\n";
  return shown;
}

// Waits for the scenario's client (e2e_client, static_peer) to end; its
// verdict: "message_received", "nothing_received", or "" when it ended
// otherwise.
inline std::string client_verdict(Process &client) {
  client.wait_exit(kClientWait + kStartupTimeout);
  for (const char *event : {"message_received", "nothing_received"}) {
    if (client.out().find(event) != std::string::npos) return event;
  }
  return "";
}

// Why the emulated NAT cannot run here (`cgnat check`), or nullopt when it
// can; removes namespaces left by dead earlier runs (`cgnat sweep`) first.
inline std::optional<std::string> cgnat_unavailable() {
  CommandResult check = run_command({harness(), "check"});
  if (check.status != 0) return check.output.empty() ? "cgnat check failed" : check.output;
  CommandResult sweep = run_command({harness(), "sweep"});
  if (!sweep.output.empty()) std::cout << sweep.output;
  return std::nullopt;
}

}  // namespace cgnat_harness

// In a test's SetUp, with `unavailable` an std::optional<std::string> (why
// WHAT cannot run here, nullopt when it can): skips loudly, naming NEEDS
// ("iproute2 and nftables"), or fails when LIBKEEPALIVE_E2E_REQUIRED=1.
#define E2E_REQUIRE_OR_SKIP(unavailable, WHAT, NEEDS)                                        \
  do {                                                                                       \
    if (auto reason = (unavailable)) {                                                       \
      KA_REQUIRE_OR_SKIP("LIBKEEPALIVE_E2E_REQUIRED",                                        \
                         WHAT " cannot run here (run as root with " NEEDS "):\n" + *reason); \
    }                                                                                        \
  } while (0)

// In a test's SetUp: fails when CTest's variables are missing; skips loudly
// when the emulated NAT cannot run here, or fails when LIBKEEPALIVE_E2E_REQUIRED=1.
#define CGNAT_REQUIRE_OR_SKIP()                                                                 \
  do {                                                                                          \
    ASSERT_FALSE(cgnat_harness::env_or_empty("LIBKEEPALIVE_TEST_SOURCE_DIR").empty() ||         \
                 cgnat_harness::env_or_empty("LIBKEEPALIVE_TEST_BINDIR").empty())               \
        << "LIBKEEPALIVE_TEST_SOURCE_DIR and LIBKEEPALIVE_TEST_BINDIR must be set (CTest sets " \
           "them)";                                                                             \
    E2E_REQUIRE_OR_SKIP(cgnat_harness::cgnat_unavailable(), "the emulated CGNAT",               \
                        "iproute2 and nftables");                                               \
  } while (0)

namespace cgnat_harness {

// The fixture of tests that preload the library through the emulated NAT:
// the library is built and the NAT can run here (else skipped or failed as
// CGNAT_REQUIRE_OR_SKIP says).
class LibraryCgnatTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(library().empty()) << "LIBKEEPALIVE_TEST_LIBRARY must be set (CTest sets it)";
    CGNAT_REQUIRE_OR_SKIP();
    struct stat st {};
    ASSERT_EQ(stat(library().c_str(), &st), 0) << "library not built: " << library();
  }
};

}  // namespace cgnat_harness

#endif  // KEEPALIVE_TESTS_E2E_CGNAT_HARNESS_H
