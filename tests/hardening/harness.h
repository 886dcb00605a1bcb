// harness.h — what the hardening tests (GoogleTest programs, never preloaded
// themselves) share: where the built library and helpers are, running a
// helper with or without LD_PRELOAD under a time limit, reading its
// key=value report, and the skip policy.
//
// Paths are compiled in (see CMakeLists.txt), so each test program also runs
// on its own, outside ctest.
#ifndef KEEPALIVE_TESTS_HARDENING_HARNESS_H
#define KEEPALIVE_TESTS_HARDENING_HARNESS_H

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "require.h"

namespace ka_hardening {

using Env = std::vector<std::pair<std::string, std::string>>;

// The configuration every test preloads with, and how a configured socket
// reads back (SO_KEEPALIVE/IDLE/INTVL/CNT/USER_TIMEOUT as the helpers print).
inline const Env kGlobals = {{"KEEPALIVE_IDLE", "17"},
                             {"KEEPALIVE_INTVL", "5"},
                             {"KEEPALIVE_CNT", "4"},
                             {"KEEPALIVE_USER_TIMEOUT", "6001ms"}};
inline constexpr char kConfigured[] = "1/17/5/4/6001";

using Report = std::map<std::string, std::string>;

// The libkeepalive.so under test, and a helper program of the build tree.
std::string Library();
std::string Helper(const std::string &name);
// The odd callers' libraries (early_connect_lib.cc, dl_connect_lib.cc).
std::string EarlyLibrary();
std::string DlConnectLibrary();
// tests/tools/setsockopt_fault.c: makes setsockopt(TCP_KEEPCNT) fail.
std::string SetsockoptFaultLibrary();

// Empty, or the sanitizer runtime a sanitized build needs first in
// LD_PRELOAD (LIBKEEPALIVE_TEST_PRELOAD_PREFIX, set by the asan/tsan presets).
std::string PreloadPrefix();
bool SanitizedBuild();

// `library`, behind the sanitizer runtime when there is one.
std::string PreloadValue(const std::string &library);
// env plus LD_PRELOAD of the library under test.
Env Preloaded(Env env);

struct Result {
  int status = -1;         // exit status, 128 + signal, or -1 when timed out
  bool timed_out = false;  // killed (with its process group) at the limit
  std::string out, err;
  double seconds = 0;
};

// Runs argv (argv[0] looked up in PATH) with exactly PATH, the sanitizers'
// *_OPTIONS of this process and `env`; stdin is /dev/null. Kills the child's
// whole process group after timeout_s seconds. kBrokenPipe: stderr is a pipe
// whose reading end is already closed (a log reader that went away).
// kFullPipe, kFullFifo: stderr is a pipe (a named FIFO) of 4 KiB, filled
// before the start through a separate non-blocking open, so that the
// child's fd 2 is blocking and full; nobody reads it until the child prints
// ka_peer::kReadStderrLine on stdout or closes stdout. Result::err then
// holds what the child wrote, without the filling.
enum class Stderr { kCaptured, kBrokenPipe, kFullPipe, kFullFifo };
Result RunProgram(const std::vector<std::string> &argv, const Env &env, int timeout_s,
                  Stderr stderr_mode = Stderr::kCaptured);

// key=value lines of a helper's stdout (later keys win; other lines ignored).
Report ParseReport(const std::string &out);
std::vector<std::string> Lines(const std::string &text);
// Lines starting "libkeepalive:".
std::vector<std::string> LibraryLines(const std::string &text);
std::string Get(const Report &report, const std::string &key);
// Entries of `report` whose key starts with `prefix`.
Report WithPrefix(const Report &report, const std::string &prefix);

// The kernel's defaults as a helper reports an untouched TCP socket:
// "0/<time>/<intvl>/<probes>/0".
std::string KernelDefaultState();

// A TCP listener on 127.0.0.1 (port chosen by the kernel) for helpers to
// connect to; a thread accepts and closes every connection, so that the
// backlog never fills up however many connections a test makes.
class LoopbackListener {
 public:
  LoopbackListener();
  ~LoopbackListener();
  LoopbackListener(const LoopbackListener &) = delete;
  LoopbackListener &operator=(const LoopbackListener &) = delete;
  std::string port() const { return std::to_string(port_); }

 private:
  int fd_ = -1;
  int stop_[2] = {-1, -1};  // a pipe: written to stop the thread
  int port_ = 0;
  std::thread acceptor_;
};

bool IsRoot();

}  // namespace ka_hardening

// Skips loudly, or fails when skips are forbidden (CI).
#define KA_SKIP_OR_FAIL(reason) KA_REQUIRE_OR_SKIP("LIBKEEPALIVE_HARDENING_REQUIRED", reason)

#endif
