// harness.h — what the integration tests share: running the ka_peer helper
// with or without the preloaded library and reading its key=value report,
// reading sockets from outside with `ss -tnoe`, the kernel's keepalive
// defaults, the checks of one socket against expected settings, and the
// library's debug line about it.
//
// The test process itself is never preloaded; only its children are.
#ifndef KEEPALIVE_TESTS_INTEGRATION_HARNESS_H
#define KEEPALIVE_TESTS_INTEGRATION_HARNESS_H

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ka_test {

using Env = std::vector<std::pair<std::string, std::string>>;
using Report = std::map<std::string, std::string>;

// Paths given by CTest (tests/CMakeLists.txt: LIBKEEPALIVE_TEST_ENV). An unset
// variable fails the calling test.
std::string LibraryPath();
std::string BinDir();
std::string HelperPath();
std::string SourceDir();

// A child process with pipes on stdin/stdout/stderr. Its environment is
// exactly `env` plus PATH: nothing leaks in from the test's own environment.
class Child {
 public:
  // `inherit`: fds of this process that the child gets as 3, 4, ...
  Child(const std::vector<std::string> &argv, const Env &env, const std::vector<int> &inherit = {});
  ~Child();
  Child(const Child &) = delete;
  Child &operator=(const Child &) = delete;

  // Reads stdout until a line equal to `marker` arrives (true), or EOF or
  // the timeout (false). key=value lines go to report().
  bool WaitForLine(const std::string &marker,
                   std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Closes stdin, reads everything left, reaps the child (killing it after
  // the timeout). Returns the exit status, or 128 + signal.
  int Finish(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Writes `line` and a newline to the child's stdin (a `pause` step).
  void Send(const std::string &line);

  const Report &report() const { return report_; }
  const std::string &out() const { return out_; }
  const std::string &err() const { return err_; }
  int status() const { return status_; }
  // Seconds since the child was started.
  double Elapsed() const;

 private:
  void Pump(int timeout_ms);
  void TakeLines();

  pid_t pid_ = -1;
  int in_ = -1, out_fd_ = -1, err_fd_ = -1;
  std::string out_, err_, pending_;
  std::vector<std::string> markers_;
  size_t markers_seen_ = 0;
  Report report_;
  int status_ = -1;
  std::chrono::steady_clock::time_point start_;
};

// Runs a command to completion (ss, readelf, nm); returns its stdout, and
// fails the test when it does not exit 0.
std::string RunTool(const std::vector<std::string> &argv);

enum class Preload { kNo, kYes };

// Starts ka_peer with `args` (see ka_peer.cc), LD_PRELOAD of the library
// when asked, and `env`.
std::unique_ptr<Child> StartPeer(const std::vector<std::string> &args, const Env &env,
                                 Preload preload, const std::vector<int> &inherit = {});

// ka_peer's arguments written as one line: "script listen l 4 show" (split
// at spaces).
std::vector<std::string> Words(const std::string &text);

// One blocking IPv4 connection inside ka_peer: "listener", "server"
// (accept) and "client" (connect).
std::vector<std::string> PairScript();

// Runs ka_peer until it reports "ready", then lets it exit.
struct PeerRun {
  int status;
  Report report;
  std::string out, err;
};
PeerRun RunPeer(const std::vector<std::string> &args, const Env &env, Preload preload);

// The call.* entries of a report: what must not change under the library.
Report Calls(const Report &report);
// report[key], or "<missing key>" so that a comparison failure says why.
std::string Get(const Report &report, const std::string &key);
// The lines of `text` that start with "libkeepalive:".
std::vector<std::string> LibraryLines(const std::string &text);

// /proc/sys/net/ipv4/tcp_keepalive_{time,intvl,probes}.
struct KernelDefaults {
  int time_s, intvl_s, probes;
  bool operator==(const KernelDefaults &o) const {
    return time_s == o.time_s && intvl_s == o.intvl_s && probes == o.probes;
  }
};
KernelDefaults ReadKernelDefaults();

// What a socket should carry.
struct Keepalive {
  bool on;
  int idle_s, intvl_s, cnt, user_timeout_ms;
};
Keepalive Untouched();      // SO_KEEPALIVE off, kernel values
Keepalive KernelTimings();  // SO_KEEPALIVE on, kernel values

// One socket as `ss -Htnoe` shows it.
struct SsTimer {
  std::string kind;   // "keepalive", "on", "persist", ...
  double lo_s, hi_s;  // the remaining time lies in [lo_s, hi_s) (ss rounds)
};
struct SsSocket {
  std::string state, local, peer, line;
  std::optional<SsTimer> timer;
};
using SsTable = std::map<unsigned long long, SsSocket>;  // by inode

SsTable ReadSs();
// Parses ss's timer text ("992ms", "1.500ms", "9min58sec", "119min") into
// the interval the real value lies in. Returns false for anything else.
bool ParseSsDuration(const std::string &text, double *lo_s, double *hi_s);

// Checks sock.<name>.* of a report (the view from inside the process).
void ExpectInside(const Report &report, const std::string &name, const Keepalive &expected);
// Checks the socket's ss line (the view from outside): when on, a keepalive
// timer with a remaining time in [expected_remaining_s - elapsed_s,
// expected_remaining_s]; when off, no keepalive timer at all.
void ExpectOutside(const SsTable &ss, const Report &report, const std::string &name, bool on,
                   double expected_remaining_s, double elapsed_s);
// Both views: the remaining time expected right after setup is the IDLE.
void ExpectSocket(const Report &report, const SsTable &ss, const std::string &name,
                  const Keepalive &expected, double elapsed_s);

// Runs ka_peer under the library until it reports "ready" (a failure of the
// test when it does not), reads the sockets from outside then, and lets it
// exit: a run whose sockets ExpectSocket can check.
struct ObservedRun {
  int status = -1;
  Report report;
  std::string err;
  SsTable ss;          // what ss showed while ka_peer waited
  double elapsed = 0;  // seconds from ka_peer's start to that reading
};
ObservedRun RunObserved(const std::vector<std::string> &args, const Env &env,
                        const std::vector<int> &inherit = {});
// ExpectSocket with the run's report, ss reading and elapsed time.
void ExpectSocket(const ObservedRun &run, const std::string &name, const Keepalive &expected);
// The library's debug line about socket `name` of the run (KEEPALIVE_LOG=
// debug: "libkeepalive: in fd=N ..."); a failure of the test when there is
// none, or more than one.
std::string LogLineOf(const ObservedRun &run, const std::string &name);

// A loopback TCP socket of this (never preloaded) process: a listener on
// port 0, or a client bound to `from` and connected. Both close on exec.
int TestListener(const std::string &host, int backlog = 16);
int TestConnect(const std::string &from, const std::string &to, int port);
int PortOf(int fd);

}  // namespace ka_test

#endif
