// stress_peer: the stress test's helper. Run with and without LD_PRELOAD by
// stress_test.cc; it never links the library.
//
//   ka_stress run CONNECTIONS LIMIT_S   the stress run (below)
//   ka_stress child PORT                (exec'd by the run) connect to
//                                       127.0.0.1:PORT, write the socket's
//                                       state to fd 3
//
// The run, in one process that is both client and server:
//   8 workers, each with its own listener (127.0.0.1..127.0.0.7 and [::1]:
//     several addresses, so that no 4-tuple space runs short), make
//     CONNECTIONS/8 connections each: non-blocking connect, then in turn
//     accept, accept4(SOCK_CLOEXEC) and accept4(SOCK_NONBLOCK|SOCK_CLOEXEC);
//     both ends' keepalive state is read with getsockopt; the client closes
//     with SO_LINGER 0 (RST: no TIME_WAIT pile-up on loopback).
//   meanwhile one thread forks: alternately fork+exec of `ka_stress child`
//     and a bare fork whose child connects (only async-signal-safe calls);
//   and one thread churns other sockets: UDP connect, Unix socketpair, Unix
//     connect/accept, TCP sockets closed unused.
//   a watchdog exits with status 3 and the progress so far at LIMIT_S.
// Report (stdout, key=value):
//   call.<call>=<outcome>:<count>,...   deterministic per-call outcomes of the
//                                       workers (errno preset to EDOM: "ok"
//                                       means success with errno untouched)
//   sock.<end>=<state>:<count>,...      workers' sockets: keepalive/idle/
//                                       intvl/cnt/user_timeout
//   side.call.<call>=<outcome>,...      the fork and churn threads (their
//   side.sock.<what>=<state>,...        counts depend on timing: no counts)
//   side.count.<what>=N
//   fds.before=N fds.after=N            entries of /proc/self/fd
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "peer_util.h"

extern char **environ;

namespace {

using ka_peer::KeepaliveState;
using ka_peer::kErrnoSentinel;
using ka_peer::Outcome;
using ka_peer::ReadState;
using ka_peer::StateText;

constexpr int kWorkers = 8;
constexpr int kPollMs = 10000;

[[noreturn]] void Die(const char *what) {
  fprintf(stderr, "ka_stress: %s: %s\n", what, strerror(errno));
  fflush(stderr);
  _exit(2);
}

int CountFds() {
  DIR *dir = opendir("/proc/self/fd");
  if (dir == nullptr) Die("opendir /proc/self/fd");
  int n = 0;
  while (dirent *e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n;
}

using Histogram = std::map<std::string, long>;

struct Counters {
  std::map<std::string, Histogram> calls;  // call -> outcome -> count
  std::map<std::string, Histogram> socks;  // end -> state -> count
};

std::string Join(const Histogram &h, bool with_counts) {
  std::string text;
  for (const auto &[key, count] : h) {
    if (!text.empty()) text += ",";
    text += key;
    if (with_counts) text += ":" + std::to_string(count);
  }
  return text;
}

struct Listener {
  int fd = -1;
  sockaddr_storage addr{};
  socklen_t len = 0;
};

Listener Listen(int worker) {
  Listener l;
  bool v6 = worker == kWorkers - 1;
  l.fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (l.fd < 0) Die("socket");
  int one = 1;
  setsockopt(l.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (v6) {
    sockaddr_in6 a = ka_peer::Loopback6(0);
    memcpy(&l.addr, &a, sizeof a);
    l.len = sizeof a;
  } else {
    char host[32];
    snprintf(host, sizeof host, "127.0.0.%d", worker + 1);
    sockaddr_in a = ka_peer::Loopback4(host, 0);
    memcpy(&l.addr, &a, sizeof a);
    l.len = sizeof a;
  }
  if (bind(l.fd, reinterpret_cast<sockaddr *>(&l.addr), l.len) != 0) Die("bind");
  if (listen(l.fd, 128) != 0) Die("listen");
  l.len = sizeof l.addr;
  if (getsockname(l.fd, reinterpret_cast<sockaddr *>(&l.addr), &l.len) != 0) Die("getsockname");
  return l;
}

std::atomic<long> progress{0};
std::atomic<bool> workers_done{false};

void Worker(int worker, long connections, Counters *out) {
  Listener l = Listen(worker);
  static const char *const kAcceptCalls[] = {"accept", "accept4", "accept4_nonblock"};
  for (long i = 0; i < connections; ++i) {
    int client = socket(l.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (client < 0) Die("socket");
    errno = kErrnoSentinel;
    int ret = connect(client, reinterpret_cast<sockaddr *>(&l.addr), l.len);
    out->calls["connect"][Outcome(ret, errno)]++;

    const char *call = kAcceptCalls[i % 3];
    sockaddr_storage peer;
    memset(&peer, 0xaa, sizeof peer);
    socklen_t peer_len = sizeof peer;
    errno = kErrnoSentinel;
    int server;
    if (i % 3 == 0) {
      server = accept(l.fd, reinterpret_cast<sockaddr *>(&peer), &peer_len);
    } else {
      int flags = SOCK_CLOEXEC | (i % 3 == 2 ? SOCK_NONBLOCK : 0);
      server = accept4(l.fd, reinterpret_cast<sockaddr *>(&peer), &peer_len, flags);
    }
    out->calls[call][Outcome(server, errno)]++;
    if (server < 0) Die(call);
    // The address accept wrote is the client's own address, nothing else.
    sockaddr_storage local{};
    socklen_t local_len = sizeof local;
    getsockname(client, reinterpret_cast<sockaddr *>(&local), &local_len);
    bool same = peer_len == local_len && memcmp(&peer, &local, local_len) == 0;
    out->calls[std::string(call) + ".addr"][same ? "client_address" : "other"]++;
    bool nonblock = (fcntl(server, F_GETFL) & O_NONBLOCK) != 0;
    bool cloexec = (fcntl(server, F_GETFD) & FD_CLOEXEC) != 0;
    out->calls[std::string(call) + ".flags"]
              [std::string(nonblock ? "nonblock" : "block") + (cloexec ? "+cloexec" : "")]++;

    pollfd p = {client, POLLOUT, 0};
    if (poll(&p, 1, kPollMs) != 1) Die("poll (connect did not complete)");
    int so_error = -1;
    socklen_t so_len = sizeof so_error;
    getsockopt(client, SOL_SOCKET, SO_ERROR, &so_error, &so_len);
    out->calls["connect.so_error"][ka_peer::ErrnoName(so_error)]++;

    out->socks["client"][StateText(ReadState(client))]++;
    out->socks["server"][StateText(ReadState(server))]++;

    linger abort_close = {1, 0};
    setsockopt(client, SOL_SOCKET, SO_LINGER, &abort_close, sizeof abort_close);
    close(client);
    close(server);
    progress.fetch_add(1, std::memory_order_relaxed);
  }
  close(l.fd);
}

struct Side {
  std::mutex mutex;  // the side threads record under it; rare, not measured
  std::map<std::string, std::set<std::string>> calls, socks;
  std::map<std::string, long> counts;
  void Call(const std::string &what, const std::string &outcome) {
    std::lock_guard<std::mutex> lock(mutex);
    calls[what].insert(outcome);
  }
  void Sock(const std::string &what, const std::string &state) {
    std::lock_guard<std::mutex> lock(mutex);
    socks[what].insert(state);
  }
  void Count(const std::string &what) {
    std::lock_guard<std::mutex> lock(mutex);
    counts[what]++;
  }
};

// fork+exec and bare fork, alternately, while the workers run.
void Forker(const char *self, Side *side) {
  Listener l = Listen(0);
  char port[16];
  snprintf(port, sizeof port, "%u", static_cast<unsigned>(ka_peer::LocalPort(l.fd)));
  for (int round = 0; !workers_done.load() || round < 2; ++round) {
    bool exec = round % 2 == 0;
    sockaddr_in to = ka_peer::Loopback4("127.0.0.1", static_cast<uint16_t>(atoi(port)));
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) Die("pipe2");
    pid_t pid = fork();
    if (pid < 0) Die("fork");
    if (pid == 0) {
      // The child of a threaded process: async-signal-safe calls only.
      if (exec) {
        dup2(pipe_fds[1], 3);
        char *const args[] = {const_cast<char *>(self), const_cast<char *>("child"), port, nullptr};
        execve(self, args, environ);
        _exit(127);
      }
      int s = socket(AF_INET, SOCK_STREAM, 0);
      errno = kErrnoSentinel;
      int ret = connect(s, reinterpret_cast<sockaddr *>(&to), sizeof to);
      int result[2] = {ret, errno};
      KeepaliveState state = ReadState(s);
      if (write(pipe_fds[1], result, sizeof result) != sizeof result) _exit(4);
      if (write(pipe_fds[1], &state, sizeof state) != sizeof state) _exit(4);
      _exit(0);
    }
    close(pipe_fds[1]);
    const char *what = exec ? "forkexec" : "fork";
    pollfd p = {l.fd, POLLIN, 0};
    if (poll(&p, 1, kPollMs) != 1) Die("poll (child did not connect)");
    errno = kErrnoSentinel;
    int server = accept(l.fd, nullptr, nullptr);
    side->Call(std::string(what) + ".accept", Outcome(server, errno));
    if (server >= 0) {
      side->Sock(std::string(what) + ".server", StateText(ReadState(server)));
      close(server);
    }
    if (exec) {
      char text[128] = {};
      ssize_t n = 0, got;
      while ((got = read(pipe_fds[0], text + n, sizeof text - 1 - n)) > 0) n += got;
      std::string line(text);
      if (!line.empty() && line.back() == '\n') line.pop_back();
      size_t space = line.find(' ');
      side->Call("forkexec.connect", line.substr(0, space));
      side->Sock("forkexec.client", space == std::string::npos ? "?" : line.substr(space + 1));
    } else {
      int result[2] = {0, 0};
      KeepaliveState state;
      if (read(pipe_fds[0], result, sizeof result) == sizeof result &&
          read(pipe_fds[0], &state, sizeof state) == sizeof state) {
        side->Call("fork.connect", Outcome(result[0], result[1]));
        side->Sock("fork.client", StateText(state));
      } else {
        side->Call("fork.connect", "no report");
      }
    }
    close(pipe_fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    side->Call(std::string(what) + ".exit",
               WIFEXITED(status) ? std::to_string(WEXITSTATUS(status)) : "signal");
    side->Count(what);
    usleep(20000);
  }
  close(l.fd);
}

// Other sockets, created and closed while the workers run: the library must
// leave them alone, and the fd numbers they take and free interleave with
// the workers'.
void Churner(Side *side) {
  int unix_listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un name{};
  name.sun_family = AF_UNIX;
  snprintf(name.sun_path + 1, sizeof name.sun_path - 1, "ka_stress_%d", static_cast<int>(getpid()));
  socklen_t name_len =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + strlen(name.sun_path + 1));
  if (bind(unix_listener, reinterpret_cast<sockaddr *>(&name), name_len) != 0 ||
      listen(unix_listener, 16) != 0) {
    Die("unix listener");
  }
  for (int round = 0; !workers_done.load() || round < 2; ++round) {
    int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in discard = ka_peer::Loopback4("127.0.0.1", 9);
    errno = kErrnoSentinel;
    int ret = connect(udp, reinterpret_cast<sockaddr *>(&discard), sizeof discard);
    side->Call("udp.connect", Outcome(ret, errno));
    side->Sock("udp", StateText(ReadState(udp)));
    close(udp);

    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0) {
      side->Sock("unix.pair", StateText(ReadState(pair[0])));
      close(pair[0]);
      close(pair[1]);
    }

    int client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    errno = kErrnoSentinel;
    ret = connect(client, reinterpret_cast<sockaddr *>(&name), name_len);
    side->Call("unix.connect", Outcome(ret, errno));
    errno = kErrnoSentinel;
    int server = accept4(unix_listener, nullptr, nullptr, SOCK_CLOEXEC);
    side->Call("unix.accept4", Outcome(server, errno));
    side->Sock("unix.client", StateText(ReadState(client)));
    if (server >= 0) {
      side->Sock("unix.server", StateText(ReadState(server)));
      close(server);
    }
    close(client);

    int unused = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    side->Sock("tcp.unused", StateText(ReadState(unused)));
    close(unused);
    side->Count("churn");
    usleep(200);
  }
  close(unix_listener);
}

int RunChild(const char *port_text) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in to = ka_peer::Loopback4("127.0.0.1", static_cast<uint16_t>(atoi(port_text)));
  errno = kErrnoSentinel;
  int ret = connect(s, reinterpret_cast<sockaddr *>(&to), sizeof to);
  std::string line = Outcome(ret, errno) + " " + StateText(ReadState(s)) + "\n";
  if (write(3, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return 4;
  close(s);
  return 0;
}

int RunStress(const char *self, long connections, int limit_s) {
  int fds_before = CountFds();
  std::thread watchdog([limit_s] {
    for (int waited = 0; waited < limit_s * 10; ++waited) {
      usleep(100000);
      if (workers_done.load()) return;
    }
    fprintf(stderr,
            "ka_stress: watchdog: not done after %d s (%ld connections made): "
            "deadlock or far too slow\n",
            limit_s, progress.load());
    fflush(stderr);
    _exit(3);
  });
  Side side;
  std::thread forker(Forker, self, &side);
  std::thread churner(Churner, &side);
  std::vector<Counters> counters(kWorkers);
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    long share = connections / kWorkers + (w < connections % kWorkers ? 1 : 0);
    workers.emplace_back(Worker, w, share, &counters[w]);
  }
  for (auto &t : workers) t.join();
  workers_done.store(true);
  forker.join();
  churner.join();
  watchdog.join();
  int fds_after = CountFds();

  Counters all;
  for (const Counters &c : counters) {
    for (const auto &[call, h] : c.calls)
      for (const auto &[k, n] : h) all.calls[call][k] += n;
    for (const auto &[end, h] : c.socks)
      for (const auto &[k, n] : h) all.socks[end][k] += n;
  }
  printf("process.preloaded=%d\n", ka_peer::LibraryLoaded() ? 1 : 0);
  printf("connections=%ld\n", progress.load());
  for (const auto &[call, h] : all.calls)
    printf("call.%s=%s\n", call.c_str(), Join(h, true).c_str());
  for (const auto &[end, h] : all.socks) printf("sock.%s=%s\n", end.c_str(), Join(h, true).c_str());
  for (const auto &[what, s] : side.calls) {
    Histogram h;
    for (const auto &k : s) h[k] = 1;
    printf("side.call.%s=%s\n", what.c_str(), Join(h, false).c_str());
  }
  for (const auto &[what, s] : side.socks) {
    Histogram h;
    for (const auto &k : s) h[k] = 1;
    printf("side.sock.%s=%s\n", what.c_str(), Join(h, false).c_str());
  }
  for (const auto &[what, n] : side.counts) printf("side.count.%s=%ld\n", what.c_str(), n);
  printf("fds.before=%d\nfds.after=%d\n", fds_before, fds_after);
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "child") == 0) return RunChild(argv[2]);
  if (argc == 4 && strcmp(argv[1], "run") == 0) {
    static char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) Die("readlink /proc/self/exe");
    self[n] = '\0';
    return RunStress(self, atol(argv[2]), atoi(argv[3]));
  }
  fprintf(stderr, "usage: ka_stress run CONNECTIONS LIMIT_S | ka_stress child PORT\n");
  return 2;
}
