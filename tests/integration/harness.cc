// harness.cc — see harness.h.
#include "harness.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>

#include "spawn_args.h"

namespace ka_test {
namespace {

std::string FromCtest(const char *name) {
  const char *value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    ADD_FAILURE() << name << " is not set: run the tests through ctest (tests/CMakeLists.txt)";
    return "/nonexistent/" + std::string(name);
  }
  return value;
}

int ReadIntFile(const std::string &path) {
  std::ifstream in(path);
  int value = -1;
  if (!(in >> value)) ADD_FAILURE() << "cannot read " << path;
  return value;
}

}  // namespace

std::string LibraryPath() { return FromCtest("LIBKEEPALIVE_TEST_LIBRARY"); }
std::string BinDir() { return FromCtest("LIBKEEPALIVE_TEST_BINDIR"); }
std::string HelperPath() { return BinDir() + "/ka_peer"; }
std::string SourceDir() { return FromCtest("LIBKEEPALIVE_TEST_SOURCE_DIR"); }

// ---- Child -----------------------------------------------------------------

Child::Child(const std::vector<std::string> &argv, const Env &env, const std::vector<int> &inherit)
    : start_(std::chrono::steady_clock::now()) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  // Inherited fds become 3, 4, ...: first moved out of the way, so that no
  // dup2 overwrites a source that is still to be copied.
  std::vector<int> moved;
  for (int fd : inherit) {
    moved.push_back(fcntl(fd, F_DUPFD_CLOEXEC, 100));
    posix_spawn_file_actions_adddup2(&actions, moved.back(),
                                     3 + static_cast<int>(moved.size()) - 1);
  }
  keepalive_test::CStrings envp = keepalive_test::spawn_environment(env);
  keepalive_test::CStrings args(argv);
  int rc = posix_spawnp(&pid_, args.get()[0], &actions, nullptr, args.get(), envp.get());
  posix_spawn_file_actions_destroy(&actions);
  for (int fd : moved) close(fd);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  in_ = in[1];
  out_fd_ = out[0];
  err_fd_ = err[0];
  if (rc != 0) {
    ADD_FAILURE() << "cannot start " << argv[0] << ": " << std::strerror(rc);
    pid_ = -1;
  }
}

Child::~Child() {
  if (pid_ > 0 && status_ < 0) Finish(std::chrono::seconds(2));
  for (int fd : {in_, out_fd_, err_fd_})
    if (fd >= 0) close(fd);
}

double Child::Elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

// Reads what stdout and stderr have (waiting up to timeout_ms for the
// first byte); closes a pipe at its EOF.
void Child::Pump(int timeout_ms) {
  pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
  if (poll(fds, 2, timeout_ms) <= 0) return;
  char buf[4096];
  for (auto &p : fds) {
    if (p.fd < 0 || (p.revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
    ssize_t n = read(p.fd, buf, sizeof buf);
    bool is_out = p.fd == out_fd_;
    if (n > 0) {
      (is_out ? out_ : err_).append(buf, static_cast<size_t>(n));
      if (is_out) pending_.append(buf, static_cast<size_t>(n));
    } else {
      close(p.fd);
      (is_out ? out_fd_ : err_fd_) = -1;
    }
  }
  TakeLines();
}

void Child::TakeLines() {
  size_t end;
  while ((end = pending_.find('\n')) != std::string::npos) {
    std::string line = pending_.substr(0, end);
    pending_.erase(0, end + 1);
    size_t eq = line.find('=');
    if (eq == std::string::npos) {
      markers_.push_back(line);
    } else {
      if (report_.count(line.substr(0, eq))) ADD_FAILURE() << "ka_peer reported twice: " << line;
      report_[line.substr(0, eq)] = line.substr(eq + 1);
    }
  }
}

bool Child::WaitForLine(const std::string &marker, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    for (; markers_seen_ < markers_.size(); ++markers_seen_) {
      if (markers_[markers_seen_] == marker) {
        ++markers_seen_;
        return true;
      }
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (out_fd_ < 0 || left.count() <= 0) return false;
    Pump(static_cast<int>(left.count()));
  }
}

void Child::Send(const std::string &line) {
  std::string text = line + "\n";
  ASSERT_GE(in_, 0) << "stdin already closed";
  ASSERT_EQ(write(in_, text.data(), text.size()), static_cast<ssize_t>(text.size()));
}

int Child::Finish(std::chrono::milliseconds timeout) {
  if (status_ >= 0 || pid_ <= 0) return status_;
  if (in_ >= 0) {
    close(in_);
    in_ = -1;
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while ((out_fd_ >= 0 || err_fd_ >= 0) && std::chrono::steady_clock::now() < deadline) Pump(100);
  int wstatus = 0;
  while (waitpid(pid_, &wstatus, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ADD_FAILURE() << "child " << pid_ << " did not exit in time; killing it";
      kill(pid_, SIGKILL);
      waitpid(pid_, &wstatus, 0);
      break;
    }
    usleep(10000);
  }
  if (!pending_.empty()) pending_ += "\n";
  TakeLines();
  status_ = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  return status_;
}

std::string RunTool(const std::vector<std::string> &argv) {
  Child child(argv, {});
  int status = child.Finish();
  EXPECT_EQ(status, 0) << argv[0] << " failed: " << child.err();
  return child.out();
}

// ---- ka_peer ---------------------------------------------------------------

std::unique_ptr<Child> StartPeer(const std::vector<std::string> &args, const Env &env,
                                 Preload preload, const std::vector<int> &inherit) {
  // The library under test must only ever be in the children.
  EXPECT_EQ(dlsym(RTLD_DEFAULT, "keepalive_version"), nullptr) << "the test process is preloaded";
  std::vector<std::string> argv = {HelperPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  Env full = env;
  if (preload == Preload::kYes) {
    // A sanitized library needs its sanitizer runtime first in LD_PRELOAD
    // (the asan/tsan presets name it; empty otherwise).
    const char *prefix = std::getenv("LIBKEEPALIVE_TEST_PRELOAD_PREFIX");
    std::string value = LibraryPath();
    if (prefix != nullptr && *prefix != '\0') value = std::string(prefix) + ":" + value;
    full.emplace_back("LD_PRELOAD", value);
  }
  return std::make_unique<Child>(argv, full, inherit);
}

std::vector<std::string> Words(const std::string &text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string word; in >> word;) words.push_back(word);
  return words;
}

std::vector<std::string> PairScript() {
  return Words(
      "script listen listener 4  connect client 127.0.0.1 @listener  "
      "accept server listener accept  show");
}

PeerRun RunPeer(const std::vector<std::string> &args, const Env &env, Preload preload) {
  auto peer = StartPeer(args, env, preload);
  peer->WaitForLine("ready");
  int status = peer->Finish();
  return {status, peer->report(), peer->out(), peer->err()};
}

ObservedRun RunObserved(const std::vector<std::string> &args, const Env &env,
                        const std::vector<int> &inherit) {
  ObservedRun run;
  auto peer = StartPeer(args, env, Preload::kYes, inherit);
  EXPECT_TRUE(peer->WaitForLine("ready")) << peer->out() << peer->err();
  run.ss = ReadSs();
  run.elapsed = peer->Elapsed();
  run.status = peer->Finish();
  run.report = peer->report();
  run.err = peer->err();
  return run;
}

void ExpectSocket(const ObservedRun &run, const std::string &name, const Keepalive &expected) {
  ExpectSocket(run.report, run.ss, name, expected, run.elapsed);
}

std::string LogLineOf(const ObservedRun &run, const std::string &name) {
  std::regex about("^libkeepalive: [a-z]+ fd=" + Get(run.report, "sock." + name + ".fd") + "\\b");
  std::string found;
  for (const auto &line : LibraryLines(run.err)) {
    if (!std::regex_search(line, about)) continue;
    EXPECT_EQ(found, "") << "two debug lines for " << name << ":\n" << run.err;
    found = line;
  }
  EXPECT_NE(found, "") << "no debug line for " << name << ":\n" << run.err;
  return found;
}

Report Calls(const Report &report) {
  Report calls;
  for (const auto &[key, value] : report)
    if (key.rfind("call.", 0) == 0) calls[key] = value;
  return calls;
}

std::string Get(const Report &report, const std::string &key) {
  auto it = report.find(key);
  return it == report.end() ? "<missing " + key + ">" : it->second;
}

std::vector<std::string> LibraryLines(const std::string &text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("libkeepalive:", 0) == 0) lines.push_back(line);
  return lines;
}

// ---- kernel and expectations -------------------------------------------------

KernelDefaults ReadKernelDefaults() {
  const std::string dir = "/proc/sys/net/ipv4/";
  return {ReadIntFile(dir + "tcp_keepalive_time"), ReadIntFile(dir + "tcp_keepalive_intvl"),
          ReadIntFile(dir + "tcp_keepalive_probes")};
}

Keepalive Untouched() {
  KernelDefaults k = ReadKernelDefaults();
  return {false, k.time_s, k.intvl_s, k.probes, 0};
}

Keepalive KernelTimings() {
  Keepalive k = Untouched();
  k.on = true;
  return k;
}

void ExpectInside(const Report &report, const std::string &name, const Keepalive &expected) {
  SCOPED_TRACE("getsockopt of socket '" + name + "' inside the process");
  const std::string p = "sock." + name + ".";
  EXPECT_EQ(Get(report, p + "keepalive"), expected.on ? "1" : "0");
  EXPECT_EQ(Get(report, p + "idle"), std::to_string(expected.idle_s));
  EXPECT_EQ(Get(report, p + "intvl"), std::to_string(expected.intvl_s));
  EXPECT_EQ(Get(report, p + "cnt"), std::to_string(expected.cnt));
  EXPECT_EQ(Get(report, p + "user_timeout"), std::to_string(expected.user_timeout_ms));
}

// ---- ss ----------------------------------------------------------------------

bool ParseSsDuration(const std::string &text, double *lo_s, double *hi_s) {
  // iproute2 prints minutes, then seconds (dropped from 10 min on) with
  // "sec" or with "." before milliseconds (dropped from 10 s on), then "ms".
  static const std::regex form(R"(^(?:(\d+)min)?(?:(\d+)(sec|\.))?(?:(\d+)ms)?$)");
  std::smatch m;
  if (!std::regex_match(text, m, form)) return false;
  auto number = [&](int i) { return m[i].matched ? std::stod(m[i].str()) : 0.0; };
  double minutes = number(1), seconds = number(2), ms = number(4);
  if (m[3].matched && m[3].str() == "." && !m[4].matched) return false;
  *lo_s = minutes * 60 + seconds + ms / 1000;
  double resolution = minutes > 9 ? 60 : (minutes > 0 || seconds > 9) ? 1 : 0.001;
  *hi_s = *lo_s + resolution;
  return true;
}

SsTable ReadSs() {
  SsTable table;
  std::istringstream in(RunTool({"ss", "-Htnoe"}));
  static const std::regex timer(R"(timer:\(([a-z_]+),([^,]*),(\d+)\))");
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string word; words >> word;) w.push_back(word);
    if (w.size() < 5) continue;
    SsSocket s{w[0], w[3], w[4], line, std::nullopt};
    unsigned long long ino = 0;
    for (const auto &word : w)
      if (word.rfind("ino:", 0) == 0) ino = std::stoull(word.substr(4));
    std::smatch m;
    if (std::regex_search(line, m, timer)) {
      SsTimer t{m[1].str(), 0, 0};
      if (!ParseSsDuration(m[2].str(), &t.lo_s, &t.hi_s))
        ADD_FAILURE() << "unknown ss timer duration in: " << line;
      s.timer = t;
    }
    if (ino != 0) table[ino] = s;
  }
  return table;
}

void ExpectOutside(const SsTable &ss, const Report &report, const std::string &name, bool on,
                   double expected_remaining_s, double elapsed_s) {
  SCOPED_TRACE("ss -tnoe of socket '" + name + "' from outside");
  const std::string p = "sock." + name + ".";
  auto it = ss.find(std::strtoull(Get(report, p + "ino").c_str(), nullptr, 10));
  ASSERT_NE(it, ss.end()) << "no ss line with ino:" << Get(report, p + "ino");
  const SsSocket &s = it->second;
  EXPECT_EQ(s.local, Get(report, p + "local")) << s.line;
  EXPECT_EQ(s.peer, Get(report, p + "peer")) << s.line;
  if (!on) {
    EXPECT_FALSE(s.timer && s.timer->kind == "keepalive") << s.line;
    return;
  }
  ASSERT_TRUE(s.timer.has_value()) << "no timer: " << s.line;
  EXPECT_EQ(s.timer->kind, "keepalive") << s.line;
  // The timer started at most elapsed_s ago with expected_remaining_s; 1 s
  // of slack for ss's and the kernel's rounding.
  EXPECT_LE(s.timer->lo_s, expected_remaining_s) << s.line;
  EXPECT_GE(s.timer->hi_s, expected_remaining_s - elapsed_s - 1.0) << s.line;
}

void ExpectSocket(const Report &report, const SsTable &ss, const std::string &name,
                  const Keepalive &expected, double elapsed_s) {
  ExpectInside(report, name, expected);
  ExpectOutside(ss, report, name, expected.on, expected.idle_s, elapsed_s);
}

// ---- sockets of the test process ---------------------------------------------

namespace {
sockaddr_storage Loopback(const std::string &host, int port, socklen_t *len) {
  sockaddr_storage s{};
  auto *v4 = reinterpret_cast<sockaddr_in *>(&s);
  auto *v6 = reinterpret_cast<sockaddr_in6 *>(&s);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    *len = sizeof *v4;
  } else {
    EXPECT_EQ(inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr), 1) << host;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    *len = sizeof *v6;
  }
  return s;
}
}  // namespace

int TestListener(const std::string &host, int backlog) {
  socklen_t len;
  sockaddr_storage a = Loopback(host, 0, &len);
  int fd = socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int v6only = host.rfind("::ffff:", 0) == 0 ? 0 : 1;
  if (a.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr *>(&a), len), 0)
      << host << ": " << std::strerror(errno);
  EXPECT_EQ(listen(fd, backlog), 0) << std::strerror(errno);
  return fd;
}

int TestConnect(const std::string &from, const std::string &to, int port) {
  socklen_t from_len, to_len;
  sockaddr_storage source = Loopback(from, 0, &from_len);
  sockaddr_storage target = Loopback(to, port, &to_len);
  int fd = socket(target.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr *>(&source), from_len), 0)
      << from << ": " << std::strerror(errno);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr *>(&target), to_len), 0)
      << to << ":" << port << ": " << std::strerror(errno);
  return fd;
}

int PortOf(int fd) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len), 0);
  return a.ss_family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in *>(&a)->sin_port)
                                : ntohs(reinterpret_cast<sockaddr_in6 *>(&a)->sin6_port);
}

}  // namespace ka_test
