// memcheck_test.cc — valgrind memcheck over helper programs running under
// the library: the faults of ka_faults (bad pointers, EINTR...; EMFILE
// cannot be made under valgrind, see fault_peer.cc; memcheck.supp lists the
// bad pointers the helper itself hands to the kernel on purpose),
// a small threaded stress with forks, dlopen/dlclose and an early
// constructor, and absurd environment values. Any invalid read or write,
// use of uninitialised memory (including bytes passed to a syscall) or
// definite leak fails the run (--error-exitcode). Needs valgrind; sanitized
// builds skip this label (valgrind cannot run sanitized code).
#include <string>

#include "harness.h"

namespace ka_hardening {
namespace {

constexpr int kTimeoutS = 120;
constexpr int kValgrindError = 99;

Result RunUnderValgrind(const std::vector<std::string> &args, const Env &env) {
  std::vector<std::string> argv = {
      "valgrind",
      "--tool=memcheck",
      "--error-exitcode=99",
      "--leak-check=full",
      "--errors-for-leak-kinds=definite",
      "--show-leak-kinds=definite",
      "--track-fds=no",
      "--trace-children=no",
      "--child-silent-after-fork=yes",
      "--quiet",
      "--suppressions=" + std::string(KA_SOURCE_DIR) + "/memcheck.supp"};
  argv.insert(argv.end(), args.begin(), args.end());
  Result r = RunProgram(argv, env, kTimeoutS);
  EXPECT_FALSE(r.timed_out);
  EXPECT_NE(r.status, kValgrindError) << "memcheck found errors:\n" << r.err;
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err.find("=="), std::string::npos) << r.err;
  return r;
}

class Memcheck : public ::testing::Test {
 protected:
  void SetUp() override {
    if (SanitizedBuild()) KA_SKIP_OR_FAIL("valgrind cannot run a sanitized build");
    if (system("command -v valgrind >/dev/null") != 0) {
      KA_SKIP_OR_FAIL("valgrind not found (Debian package valgrind)");
    }
  }
};

TEST_F(Memcheck, FaultsUnderTheLibrary) {
  for (const char *rules : {"", "out peer=127.0.0.0/8 idle=23; in port=1-65535 cnt=3"}) {
    SCOPED_TRACE(rules);
    Env env = kGlobals;
    env.emplace_back("KEEPALIVE_LOG", "debug");
    if (*rules != '\0') env.emplace_back("KEEPALIVE_RULES", rules);
    Result r = RunUnderValgrind({Helper("ka_faults"), "memcheck"}, Preloaded(env));
    EXPECT_EQ(Get(ParseReport(r.out), "sock.connect_blocking").substr(0, 2), "1/");
  }
}

TEST_F(Memcheck, ThreadedStressWithForks) {
  Env env = kGlobals;
  env.emplace_back("KEEPALIVE_RULES", "out peer=127.0.0.0/8,::1 idle=23");
  Result r = RunUnderValgrind({Helper("ka_stress"), "run", "4000", "200"}, Preloaded(env));
  Report report = ParseReport(r.out);
  EXPECT_EQ(Get(report, "sock.client"), "1/23/5/4/6001:4000");
  EXPECT_EQ(Get(report, "sock.server"), "1/17/5/4/6001:4000");
}

TEST_F(Memcheck, DlopenAndEarlyConstructor) {
  LoopbackListener listener;
  Result r = RunUnderValgrind({Helper("ka_odd"), "dlopen", DlConnectLibrary(), listener.port()},
                              Preloaded(kGlobals));
  EXPECT_EQ(Get(ParseReport(r.out), "sock.dlopen"), "1/17/5/4/6001");
  Env env = kGlobals;
  env.emplace_back("KA_EARLY_PORT", listener.port());
  env.emplace_back("KA_EARLY_THREADS", "4");
  env.emplace_back("LD_PRELOAD", PreloadValue(Library() + ":" + EarlyLibrary()));
  r = RunUnderValgrind({Helper("ka_odd"), "idle"}, env);
  EXPECT_EQ(Get(ParseReport(r.out), "early.sock"), "ok 1/17/5/4/6001");
}

TEST_F(Memcheck, AbsurdEnvironment) {
  LoopbackListener listener;
  std::string huge(100 * 1024, '9');
  std::string rules;
  while (rules.size() < 100 * 1024) rules += "bogus\x01\xff;";
  Result r = RunUnderValgrind(
      {Helper("ka_odd"), "connect", listener.port()},
      Preloaded({{"KEEPALIVE_IDLE", huge}, {"KEEPALIVE_RULES", rules}, {"KEEPALIVE_LOG", "\xff"}}));
  EXPECT_EQ(Get(ParseReport(r.out), "done"), "1");
}

}  // namespace
}  // namespace ka_hardening
