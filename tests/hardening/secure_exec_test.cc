// secure_exec_test.cc — secure execution keeps the library inert and
// silent: a real setuid-root, setgid-root and file-capability copy of ka_odd,
// run as `nobody` with KEEPALIVE_* set (and KEEPALIVE_LOG=debug), must leave
// its socket untouched and print nothing; an invalid value under
// KEEPALIVE_STRICT=1 must not make it exit (nothing is read at all).
// glibc preloads into such a process only libraries named without a slash,
// found in the system library directory, with the set-user-ID bit (ld.so(8)):
// the test installs a copy of the library there under a unique name, mode
// 4755, and removes it afterwards however the test ends. A plain copy of the
// helper run the same way is configured: the library really is loaded, and
// only secure execution keeps it inert. Needs root (and setcap, Debian
// package libcap2-bin). Label secure_exec; not in the sanitizer presets: a
// sanitized library cannot be loaded into a secure process (its runtime
// cannot come first in LD_PRELOAD there).
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "harness.h"

namespace ka_hardening {
namespace {

namespace fs = std::filesystem;

constexpr int kTimeoutS = 30;

// The directory of libc: a system directory, searched in secure mode.
std::string SystemLibraryDir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void *>(&getpid), &info) == 0 || info.dli_fname == nullptr) {
    return "";
  }
  char resolved[PATH_MAX];
  if (realpath(info.dli_fname, resolved) == nullptr) return "";
  return fs::path(resolved).parent_path();
}

// Files this test installs, removed however the test ends.
class Installed {
 public:
  ~Installed() {
    for (const std::string &path : paths_) {
      std::error_code ignored;
      fs::remove_all(path, ignored);
    }
  }
  void Add(const std::string &path) { paths_.push_back(path); }

 private:
  std::vector<std::string> paths_;
};

struct SecureSetup {
  std::string library_name;  // bare name, as LD_PRELOAD must give it
  std::string dir;           // holds the helper copies
};

bool Copy(const std::string &from, const std::string &to, mode_t mode) {
  std::error_code error;
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, error);
  return !error && chown(to.c_str(), 0, 0) == 0 && chmod(to.c_str(), mode) == 0;
}

SecureSetup Prepare(Installed *installed) {
  SecureSetup s;
  std::string libdir = SystemLibraryDir();
  EXPECT_FALSE(libdir.empty());
  s.library_name = "libkeepalive-hardening-test-" + std::to_string(getpid()) + ".so";
  std::string library = libdir + "/" + s.library_name;
  installed->Add(library);
  EXPECT_TRUE(Copy(Library(), library, 04755)) << library;
  char dir[] = "/tmp/ka-hostile-XXXXXX";
  EXPECT_NE(mkdtemp(dir), nullptr);
  s.dir = dir;
  installed->Add(s.dir);
  chmod(dir, 0755);
  return s;
}

Env SecureEnv() {
  Env env = kGlobals;
  env.emplace_back("KEEPALIVE_LOG", "debug");
  return env;
}

// Runs `program connect PORT` as nobody with LD_PRELOAD=<bare library name>,
// set by a shell right before the exec: setpriv itself (root, not secure)
// runs without the library.
Result RunAsNobody(const std::string &program, const SecureSetup &s, const std::string &port,
                   const Env &env) {
  return RunProgram(
      {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "/bin/sh", "-c",
       "LD_PRELOAD=\"$0\" exec \"$1\" connect \"$2\"", s.library_name, program, port},
      env, kTimeoutS);
}

// The control: the same installed library and helper, without any special
// bit, configure the socket.
void ExpectControlConfigured(const SecureSetup &s, const std::string &port) {
  std::string plain = s.dir + "/ka_odd_plain";
  ASSERT_TRUE(Copy(Helper("ka_odd"), plain, 0755));
  Result r = RunAsNobody(plain, s, port, SecureEnv());
  Report report = ParseReport(r.out);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(Get(report, "process.at_secure"), "0");
  EXPECT_EQ(Get(report, "process.preloaded"), "1") << "the installed library was not loaded: "
                                                      "the secure runs below would prove nothing";
  EXPECT_EQ(Get(report, "sock.connect"), kConfigured) << r.err;
}

void ExpectInert(const Result &r) {
  Report report = ParseReport(r.out);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(Get(report, "process.at_secure"), "1") << "not secure execution: the test is broken";
  EXPECT_EQ(Get(report, "process.preloaded"), "1") << "the library was not loaded at all";
  EXPECT_EQ(Get(report, "sock.connect"), KernelDefaultState()) << r.err;
  EXPECT_TRUE(LibraryLines(r.err).empty()) << "secure execution must be silent\n" << r.err;
}

void SecureExecutionCase(mode_t mode, const char *capability) {
  if (SanitizedBuild()) KA_SKIP_OR_FAIL("a sanitized library cannot load into a secure process");
  if (!IsRoot()) KA_SKIP_OR_FAIL("needs root to install setuid/setgid/capability copies");
  if (capability != nullptr && system("command -v setcap >/dev/null") != 0) {
    KA_SKIP_OR_FAIL("setcap not found (Debian package libcap2-bin)");
  }
  Installed installed;
  SecureSetup s = Prepare(&installed);
  LoopbackListener listener;
  ExpectControlConfigured(s, listener.port());
  std::string secure = s.dir + "/ka_odd_secure";
  ASSERT_TRUE(Copy(Helper("ka_odd"), secure, mode));
  if (capability != nullptr) {
    ASSERT_EQ(system(("setcap " + std::string(capability) + " " + secure).c_str()), 0);
  }
  ExpectInert(RunAsNobody(secure, s, listener.port(), SecureEnv()));
  // Not even read: an invalid value under KEEPALIVE_STRICT=1 would exit 1.
  Env strict = SecureEnv();
  strict.emplace_back("KEEPALIVE_CNT", "not a number");
  strict.emplace_back("KEEPALIVE_STRICT", "1");
  ExpectInert(RunAsNobody(secure, s, listener.port(), strict));
}

TEST(Hostile, SetuidProgramStaysInert) { SecureExecutionCase(04755, nullptr); }
TEST(Hostile, SetgidProgramStaysInert) { SecureExecutionCase(02755, nullptr); }
TEST(Hostile, FileCapabilityProgramStaysInert) {
  SecureExecutionCase(0755, "cap_net_bind_service=ep");
}

}  // namespace
}  // namespace ka_hardening
