// tests/e2e/cgnat_harness.h — what an end-to-end test needs around
// tests/e2e/cgnat: the paths CTest passes, the prerequisite check (skip
// loudly, or fail when KEEPALIVE_E2E_REQUIRED=1), a NAT whose three
// namespaces are removed on every exit path, and processes whose output is
// read as it comes and which never outlive their test.
//
// Cleanup: the Nat and Process destructors (also on a failed assertion), a
// SIGINT/SIGTERM/SIGHUP handler for the ones still up, and after a SIGKILL
// the `cgnat sweep` that CGNAT_REQUIRE_OR_SKIP() runs. Same rules as
// e2e_test.cc (which keeps its own copy for now), one header for new tests.
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
#include <iostream>
#include <optional>
#include <string>
#include <vector>

extern char **environ;

namespace cgnat_harness {

using Strings = std::vector<std::string>;

inline double now_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

inline std::string env_or_empty(const char *name) {
  const char *value = getenv(name);
  return value ? value : "";
}

inline std::string harness() {
  return env_or_empty("KEEPALIVE_TEST_SOURCE_DIR") + "/tests/e2e/cgnat";
}
inline std::string program(const char *name) {
  return env_or_empty("KEEPALIVE_TEST_BINDIR") + "/" + name;
}
inline std::string library() { return env_or_empty("KEEPALIVE_TEST_LIBRARY"); }

// ---------------------------------------------------------------------------
// Cleanup on SIGINT/SIGTERM/SIGHUP. The handler may only use async-signal-
// safe calls, so what it needs is kept in fixed storage, filled beforehand.

inline constexpr int kMaxTracked = 16;
inline constexpr size_t kMaxText = 256;
inline char g_harness[kMaxText];
inline char g_namespaces[kMaxTracked][kMaxText];  // NAME of each Nat that is up
inline volatile pid_t g_children[kMaxTracked];    // processes that are running

inline void on_fatal_signal(int signal_number) {
  for (auto &child : g_children) {
    if (child > 0 && kill(child, SIGKILL) == 0) waitpid(child, nullptr, 0);
  }
  for (auto &name : g_namespaces) {
    if (!name[0]) continue;
    pid_t pid = fork();
    if (pid == 0) {
      char down[] = "down";
      char *argv[] = {g_harness, down, name, nullptr};
      execv(g_harness, argv);
      _exit(127);
    }
    if (pid > 0) waitpid(pid, nullptr, 0);
  }
  signal(signal_number, SIG_DFL);
  raise(signal_number);
}

// Each returns the slot used, or -1 when all are taken (then that one is
// cleaned up by the destructors and the next sweep only).
inline int track_child(pid_t pid) {
  for (int i = 0; i < kMaxTracked; ++i) {
    if (g_children[i] <= 0) {
      g_children[i] = pid;
      return i;
    }
  }
  return -1;
}

inline int track_namespaces(const std::string &name) {
  for (int i = 0; i < kMaxTracked; ++i) {
    if (!g_namespaces[i][0]) {
      snprintf(g_namespaces[i], kMaxText, "%s", name.c_str());
      return i;
    }
  }
  return -1;
}

struct SignalCleanup : testing::Environment {
  void SetUp() override {
    snprintf(g_harness, sizeof g_harness, "%s", harness().c_str());
    for (int signal_number : {SIGINT, SIGTERM, SIGHUP}) signal(signal_number, on_fatal_signal);
  }
};
inline const auto *const g_signal_cleanup = testing::AddGlobalTestEnvironment(new SignalCleanup);

// ---------------------------------------------------------------------------
// Processes.

// Starts argv with stdin on /dev/null and stdout, stderr on two pipes;
// returns the pid or -1.
inline pid_t spawn(const Strings &args, int *out_fd, int *err_fd) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) return -1;
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]);
    close(out[1]);
    return -1;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  std::vector<char *> argv;
  for (const auto &arg : args) argv.push_back(const_cast<char *>(arg.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  close(err[1]);
  *out_fd = out[0];
  *err_fd = err[0];
  return pid;
}

// A running program whose stdout and stderr are collected as they come.
// The destructor kills it: no process outlives its test.
class Process {
 public:
  Process(std::string label, const Strings &args) : label_(std::move(label)) {
    pid_ = spawn(args, &out_fd_, &err_fd_);
    if (pid_ > 0) slot_ = track_child(pid_);
    started_at_ = now_s();
  }
  Process(const Process &) = delete;
  Process &operator=(const Process &) = delete;
  ~Process() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
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
    pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
    if (fds[0].fd < 0 && fds[1].fd < 0) return false;
    double left = deadline - now_s();
    if (left <= 0) return false;
    int ready = poll(fds, 2, static_cast<int>(left * 1000) + 1);
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
  pid_t pid_ = -1;
  int slot_ = -1;
  bool exited_ = false;
  double started_at_ = 0, ended_at_ = 0;
  int out_fd_ = -1, err_fd_ = -1;
  std::string out_, err_;
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
    slot_ = track_namespaces(name_);
    up_ = run_command({harness(), "up", name_, std::to_string(timeout_s)});
  }
  Nat(const Nat &) = delete;
  Nat &operator=(const Nat &) = delete;
  ~Nat() {
    run_command({harness(), "down", name_});
    if (slot_ >= 0) g_namespaces[slot_][0] = '\0';
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

 private:
  std::string name_;
  int slot_ = -1;
  CommandResult up_;
};

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

// In a test's SetUp: fails when CTest's variables are missing; skips loudly
// when the emulated NAT cannot run here, or fails when KEEPALIVE_E2E_REQUIRED=1.
#define CGNAT_REQUIRE_OR_SKIP()                                                                  \
  do {                                                                                           \
    ASSERT_FALSE(cgnat_harness::env_or_empty("KEEPALIVE_TEST_SOURCE_DIR").empty() ||             \
                 cgnat_harness::env_or_empty("KEEPALIVE_TEST_BINDIR").empty())                   \
        << "KEEPALIVE_TEST_SOURCE_DIR and KEEPALIVE_TEST_BINDIR must be set (CTest sets them)";  \
    if (auto reason = cgnat_harness::cgnat_unavailable()) {                                      \
      if (cgnat_harness::env_or_empty("KEEPALIVE_E2E_REQUIRED") == "1")                          \
        FAIL() << "KEEPALIVE_E2E_REQUIRED=1 but the emulated NAT cannot run here:\n" << *reason; \
      std::cerr << "\n*** E2E TEST SKIPPED — the emulated CGNAT cannot run here:\n"              \
                << *reason << "*** Run as root with iproute2 and nftables to test for real.\n\n"; \
      GTEST_SKIP() << "emulated CGNAT unavailable: " << *reason;                                 \
    }                                                                                            \
  } while (0)

#endif  // KEEPALIVE_TESTS_E2E_CGNAT_HARNESS_H
