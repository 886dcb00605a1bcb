// harness.cc — see harness.h.
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "peer_util.h"
#include "spawn_args.h"

extern char **environ;

namespace ka_hardening {

std::string Library() { return KA_LIBRARY; }
std::string EarlyLibrary() { return KA_EARLY_LIBRARY; }
std::string DlConnectLibrary() { return KA_DLCONNECT_LIBRARY; }
std::string SetsockoptFaultLibrary() { return KA_SETSOCKOPT_FAULT_LIBRARY; }
std::string Helper(const std::string &name) { return std::string(KA_BINDIR) + "/" + name; }
std::string PreloadPrefix() { return KA_PRELOAD_PREFIX; }
bool SanitizedBuild() { return !PreloadPrefix().empty(); }

std::string PreloadValue(const std::string &library) {
  return SanitizedBuild() ? PreloadPrefix() + ":" + library : library;
}

Env Preloaded(Env env) {
  env.emplace_back("LD_PRELOAD", PreloadValue(Library()));
  return env;
}

namespace {

constexpr char kFiller = '#';
constexpr int kFullPipeSize = 4096;

// A named FIFO in a directory of its own, opened for reading (blocking) and
// for writing, then unlinked: read_write[0] reads, read_write[1] writes.
bool OpenFifo(int read_write[2]) {
  char dir[] = "/tmp/ka_fifo.XXXXXX";
  if (mkdtemp(dir) == nullptr) return false;
  std::string path = std::string(dir) + "/stderr";
  bool ok = mkfifo(path.c_str(), 0600) == 0 &&
            (read_write[0] = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)) >= 0 &&
            (read_write[1] = open(path.c_str(), O_WRONLY | O_CLOEXEC)) >= 0 &&
            fcntl(read_write[0], F_SETFL, 0) == 0;
  unlink(path.c_str());
  rmdir(dir);
  return ok;
}

// Shrinks the pipe to 4 KiB and fills it through a non-blocking open of its
// own, leaving write_end (the child's fd 2) blocking. Returns the bytes
// written, or -1.
long FillPipe(int read_end, int write_end) {
  if (fcntl(read_end, F_SETPIPE_SZ, kFullPipeSize) < 0) return -1;
  std::string path = "/proc/self/fd/" + std::to_string(write_end);
  int filler = open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (filler < 0) return -1;
  std::string chunk(kFullPipeSize, kFiller);
  long total = 0;
  for (ssize_t n; (n = write(filler, chunk.data(), chunk.size())) > 0;) total += n;
  bool full = errno == EAGAIN;
  close(filler);
  if (!full || (fcntl(write_end, F_GETFL) & O_NONBLOCK) != 0) return -1;
  return total;
}

}  // namespace

Result RunProgram(const std::vector<std::string> &argv, const Env &env, int timeout_s,
                  Stderr stderr_mode) {
  Result result;
  int out[2], err[2];
  bool fifo = stderr_mode == Stderr::kFullFifo;
  if (pipe2(out, O_CLOEXEC) != 0 || (fifo ? !OpenFifo(err) : pipe2(err, O_CLOEXEC) != 0)) {
    ADD_FAILURE() << "pipe2/mkfifo: " << strerror(errno);
    return result;
  }
  bool held = fifo || stderr_mode == Stderr::kFullPipe;
  long filler = held ? FillPipe(err[0], err[1]) : 0;
  if (filler < 0) {
    ADD_FAILURE() << "cannot fill the stderr pipe: " << strerror(errno);
    return result;
  }
  keepalive_test::OutputActions actions(out[1], err[1]);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigdefault(&attr, &all);

  keepalive_test::CStrings envp = keepalive_test::spawn_environment(
      env, {"ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS", "LSAN_OPTIONS"});
  keepalive_test::CStrings args(argv);

  // No reader from the start: the child's first write to stderr fails.
  if (stderr_mode == Stderr::kBrokenPipe) close(err[0]);
  auto start = std::chrono::steady_clock::now();
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args.get()[0], actions.get(), &attr, args.get(), envp.get());
  posix_spawnattr_destroy(&attr);
  close(out[1]);
  close(err[1]);
  if (rc != 0) {
    close(out[0]);
    if (stderr_mode != Stderr::kBrokenPipe) close(err[0]);
    ADD_FAILURE() << "cannot start " << argv[0] << ": " << strerror(rc);
    return result;
  }
  auto deadline = start + std::chrono::seconds(timeout_s);
  bool broken = stderr_mode == Stderr::kBrokenPipe;
  // A held stderr stays out of the poll until released.
  pollfd fds[2] = {{out[0], POLLIN, 0}, {broken || held ? -1 : err[0], POLLIN, 0}};
  std::string *sinks[2] = {&result.out, &result.err};
  int open_pipes = broken ? 1 : 2;
  while (open_pipes > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      kill(-pid, SIGKILL);
      break;
    }
    int n = poll(fds, 2, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[65536];
      ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_pipes;
      }
    }
    bool release = fds[0].fd < 0 || result.out.find(std::string(ka_peer::kReadStderrLine) + "\n") !=
                                        std::string::npos;
    if (held && release) {
      fds[1].fd = err[0];
      held = false;
    }
  }
  if (held) close(err[0]);
  for (auto &p : fds) {
    if (p.fd >= 0) close(p.fd);
  }
  if (filler > 0 && !result.timed_out) {
    if (result.err.compare(0, filler, std::string(filler, kFiller)) != 0) {
      ADD_FAILURE() << "the filling of stderr came back altered";
    }
    result.err.erase(0, std::min<size_t>(filler, result.err.size()));
  }
  int wstatus = 0;
  if (result.timed_out) {
    waitpid(pid, &wstatus, 0);
    result.status = -1;
  } else {
    // Pipes closed: the child has exited or closed them; give it the rest
    // of the limit to exit.
    for (;;) {
      pid_t done = waitpid(pid, &wstatus, WNOHANG);
      if (done == pid) break;
      if (std::chrono::steady_clock::now() > deadline) {
        result.timed_out = true;
        kill(-pid, SIGKILL);
        waitpid(pid, &wstatus, 0);
        break;
      }
      usleep(1000);
    }
    if (!result.timed_out) {
      result.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    }
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

std::vector<std::string> Lines(const std::string &text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> LibraryLines(const std::string &text) {
  std::vector<std::string> lines;
  for (const std::string &line : Lines(text)) {
    if (line.rfind("libkeepalive:", 0) == 0) lines.push_back(line);
  }
  return lines;
}

Report ParseReport(const std::string &out) {
  Report report;
  for (const std::string &line : Lines(out)) {
    size_t eq = line.find('=');
    if (eq != std::string::npos && eq > 0) report[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return report;
}

std::string Get(const Report &report, const std::string &key) {
  auto it = report.find(key);
  return it == report.end() ? "<missing " + key + ">" : it->second;
}

Report WithPrefix(const Report &report, const std::string &prefix) {
  Report selected;
  for (const auto &[key, value] : report) {
    if (key.rfind(prefix, 0) == 0) selected[key] = value;
  }
  return selected;
}

namespace {
int ReadProcInt(const std::string &name) {
  std::ifstream in("/proc/sys/net/ipv4/" + name);
  int value = -1;
  in >> value;
  return value;
}
}  // namespace

std::string KernelDefaultState() {
  return "0/" + std::to_string(ReadProcInt("tcp_keepalive_time")) + "/" +
         std::to_string(ReadProcInt("tcp_keepalive_intvl")) + "/" +
         std::to_string(ReadProcInt("tcp_keepalive_probes")) + "/0";
}

LoopbackListener::LoopbackListener() {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr *>(&addr), len) != 0 ||
      listen(fd_, 128) != 0 || getsockname(fd_, reinterpret_cast<sockaddr *>(&addr), &len) != 0 ||
      pipe2(stop_, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "loopback listener: " << strerror(errno);
    return;
  }
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
    while (poll(fds, 2, -1) >= 0 && fds[1].revents == 0) {
      if (fds[0].revents != 0) {
        int connection = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (connection >= 0) close(connection);
      }
    }
  });
}

LoopbackListener::~LoopbackListener() {
  if (acceptor_.joinable()) {
    char stop = 1;
    if (write(stop_[1], &stop, 1) != 1) ADD_FAILURE() << "cannot stop the listener's thread";
    acceptor_.join();
  }
  for (int fd : {fd_, stop_[0], stop_[1]}) {
    if (fd >= 0) close(fd);
  }
}

bool IsRoot() { return geteuid() == 0; }

}  // namespace ka_hardening
