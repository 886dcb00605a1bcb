// fault_peer: the fault tests' helper. faults_test.cc runs it with and
// without LD_PRELOAD and compares; it never links the library.
//
//   ka_faults basic   faults on loopback: EBADF, ENOTSOCK, EINVAL,
//                     EOPNOTSUPP, EAGAIN, EFAULT, EINTR, EAFNOSUPPORT,
//                     ECONNREFUSED, EINPROGRESS, EISCONN, ENOENT, EMFILE
//   ka_faults memcheck  basic without EMFILE, for valgrind (which keeps a
//                     descriptor limit of its own and closes what the kernel
//                     hands out above it: accept's connection would be lost)
//   ka_faults optfail calls that succeed, or fail in the kernel, while
//                     the library's own setsockopt calls fail (run with
//                     tests/tools/setsockopt_fault.c preloaded after the
//                     library): accept, accept4, blocking and non-blocking
//                     connect, a refused connect
//   ka_faults netns   faults that need a black hole and a missing route; run
//                     inside a network namespace the test made, with lo up
//                     and an nft rule dropping TCP to port 9 at input (SYNs
//                     to 127.0.0.1:9 go unanswered): EINTR of a blocking
//                     connect, EALREADY, ENETUNREACH (the namespace has no
//                     route to 100.64.0.1)
//
// Report (stdout, key=value):
//   call.<scenario>=<outcome>   "ok" (success, errno untouched; errno is
//                               preset to EDOM), or the errno name
//   call.<scenario>.<detail>=…  addrlen, SO_ERROR, untouched buffer bytes
//   sock.<scenario>=<state>     keepalive/idle/intvl/cnt/user_timeout of a
//                               TCP socket a scenario produced
//   own.<scenario>=<keepalive>/<idle>   values the application set itself
//                               after its first connect()
//   done=1                      the last line: no scenario crashed
// Addresses: loopback only (100.64.0.1 is never reached: it has no route).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "peer_util.h"

namespace {

using ka_peer::kErrnoSentinel;
using ka_peer::Outcome;

[[noreturn]] void Die(const char *what) {
  fprintf(stderr, "ka_faults: %s: %s\n", what, strerror(errno));
  exit(2);
}

void Report(const std::string &key, const std::string &value) {
  printf("%s=%s\n", key.c_str(), value.c_str());
  fflush(stdout);
}

// Runs one call with errno preset and reports its outcome; returns its result.
template <typename Call>
int Observe(const std::string &scenario, Call call) {
  errno = kErrnoSentinel;
  int ret = call();
  int error = errno;
  Report("call." + scenario, Outcome(ret, error));
  errno = error;
  return ret;
}

void ReportSock(const std::string &scenario, int fd) {
  Report("sock." + scenario, ka_peer::StateText(ka_peer::ReadState(fd)));
}

sockaddr *Sa(void *p) { return static_cast<sockaddr *>(p); }

struct Listener {
  int fd;
  sockaddr_in addr;
};

Listener Listen(int extra_flags) {
  Listener l;
  l.fd = ka_peer::LoopbackListener(16, &l.addr, extra_flags);
  if (l.fd < 0) Die("listener");
  return l;
}

// A connection waiting in l's backlog (a blocking connect on loopback
// completes without an accept).
int Pending(const Listener &l) {
  int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c < 0 || connect(c, Sa(const_cast<sockaddr_in *>(&l.addr)), sizeof l.addr) != 0) {
    Die("pending connection");
  }
  return c;
}

int Tcp(int flags = 0) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
  if (fd < 0) Die("socket");
  return fd;
}

// A loopback address nobody listens on: a port bound, then closed.
sockaddr_in ClosedPort() {
  int probe = Tcp();
  sockaddr_in closed = ka_peer::Loopback4("127.0.0.1", 0);
  socklen_t len = sizeof closed;
  if (bind(probe, Sa(&closed), len) != 0 || getsockname(probe, Sa(&closed), &len) != 0) {
    Die("bind");
  }
  close(probe);
  return closed;
}

void WaitWritable(int fd) {
  pollfd p = {fd, POLLOUT, 0};
  if (poll(&p, 1, 10000) != 1) Die("poll");
}

int SoError(int fd) {
  int error = -1;
  socklen_t len = sizeof error;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
  return error;
}

// SIGALRM without SA_RESTART, after `ms`: interrupts the blocking call.
void OnAlarm(int) {}
void AlarmIn(int ms) {
  struct sigaction action = {};
  action.sa_handler = OnAlarm;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART
  sigaction(SIGALRM, &action, nullptr);
  itimerval timer = {};
  timer.it_value.tv_sec = ms / 1000;
  timer.it_value.tv_usec = (ms % 1000) * 1000;
  setitimer(ITIMER_REAL, &timer, nullptr);
}

// The application sets its own keepalive after the first connect() of a
// socket; a later connect() on the same socket (polling a non-blocking
// connect, retrying after EINTR) must not undo it.
void SetOwn(int fd) {
  int off = 0, idle = 999;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &off, sizeof off);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
}
void ReportOwn(const std::string &scenario, int fd) {
  ka_peer::KeepaliveState s = ka_peer::ReadState(fd);
  Report("own." + scenario, std::to_string(s.keepalive) + "/" + std::to_string(s.idle));
}

void BadDescriptors(const Listener &l) {
  int closed = fcntl(0, F_DUPFD_CLOEXEC, 500);  // a number nothing else takes
  close(closed);
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) Die("pipe2");
  sockaddr_in to = l.addr;
  Observe("accept_ebadf", [] { return accept(-1, nullptr, nullptr); });
  Observe("accept4_ebadf", [] { return accept4(-1, nullptr, nullptr, 0); });
  Observe("accept_ebadf_closed", [&] { return accept(closed, nullptr, nullptr); });
  Observe("accept_enotsock", [&] { return accept(pipe_fds[0], nullptr, nullptr); });
  Observe("accept4_enotsock", [&] { return accept4(pipe_fds[0], nullptr, nullptr, SOCK_CLOEXEC); });
  Observe("connect_ebadf", [&] { return connect(-1, Sa(&to), sizeof to); });
  Observe("connect_ebadf_closed", [&] { return connect(closed, Sa(&to), sizeof to); });
  Observe("connect_enotsock", [&] { return connect(pipe_fds[1], Sa(&to), sizeof to); });
  close(pipe_fds[0]);
  close(pipe_fds[1]);
}

void BadAccepts(const Listener &l) {
  int unlistened = Tcp();
  Observe("accept_einval_not_listening", [&] { return accept(unlistened, nullptr, nullptr); });
  close(unlistened);
  int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  Observe("accept_eopnotsupp_udp", [&] { return accept(udp, nullptr, nullptr); });
  close(udp);
  Listener nonblocking = Listen(SOCK_NONBLOCK);
  Observe("accept_eagain", [&] { return accept(nonblocking.fd, nullptr, nullptr); });
  Observe("accept4_eagain",
          [&] { return accept4(nonblocking.fd, nullptr, nullptr, SOCK_NONBLOCK); });
  close(nonblocking.fd);
  Observe("accept4_einval_flags", [&] { return accept4(l.fd, nullptr, nullptr, 0x40000000); });
}

// Never inlined: memcheck.supp names this function in the stack of the bad
// pointers it passes on purpose, in every build type.
__attribute__((noinline)) void AcceptAddresses(const Listener &l, void *no_access) {
  // A bad address or length pointer: the kernel answers EFAULT (the
  // connection is then lost); the library must not touch either first.
  int c = Pending(l);
  socklen_t len = sizeof(sockaddr_in);
  Observe("accept_efault_addr",
          [&] { return accept(l.fd, reinterpret_cast<sockaddr *>(1), &len); });
  close(c);
  c = Pending(l);
  len = sizeof(sockaddr_in);
  Observe("accept_efault_addr_protnone", [&] { return accept(l.fd, Sa(no_access), &len); });
  close(c);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // Not under a sanitizer: its own accept interceptor reads *addrlen before
  // the call and crashes, with or without libkeepalive.
  c = Pending(l);
  sockaddr_in addr;
  Observe("accept_efault_addrlen",
          [&] { return accept(l.fd, Sa(&addr), reinterpret_cast<socklen_t *>(1)); });
  close(c);
  c = Pending(l);
  Observe("accept4_efault_addrlen", [&] {
    return accept4(l.fd, Sa(&addr), static_cast<socklen_t *>(no_access), SOCK_CLOEXEC);
  });
  close(c);
#endif

  // A short buffer: the kernel writes 4 bytes and says how long the address
  // is; nobody writes the rest.
  c = Pending(l);
  unsigned char buf[sizeof(sockaddr_in6)];
  memset(buf, 0xaa, sizeof buf);
  len = 4;
  int s = Observe("accept_short_addr", [&] { return accept(l.fd, Sa(buf), &len); });
  bool tail_untouched = true;
  for (size_t i = 4; i < sizeof buf; ++i) tail_untouched = tail_untouched && buf[i] == 0xaa;
  Report("call.accept_short_addr.addrlen", std::to_string(len));
  Report("call.accept_short_addr.tail_untouched", std::to_string(tail_untouched));
  ReportSock("accept_short_addr", s);
  close(s);
  close(c);

  c = Pending(l);
  s = Observe("accept_null_addr", [&] { return accept(l.fd, nullptr, nullptr); });
  ReportSock("accept_null_addr", s);
  close(s);
  close(c);
  c = Pending(l);
  len = sizeof(sockaddr_in6);
  s = Observe("accept4_v4_into_v6_buffer",
              [&] { return accept4(l.fd, Sa(buf), &len, SOCK_NONBLOCK | SOCK_CLOEXEC); });
  Report("call.accept4_v4_into_v6_buffer.addrlen", std::to_string(len));
  Report("call.accept4_v4_into_v6_buffer.nonblock",
         std::to_string((fcntl(s, F_GETFL) & O_NONBLOCK) != 0));
  ReportSock("accept4_v4_into_v6_buffer", s);
  close(s);
  close(c);
}

void Interrupted(const Listener &l) {
  AlarmIn(100);
  Observe("accept_eintr", [&] { return accept(l.fd, nullptr, nullptr); });
  AlarmIn(100);
  Observe("accept4_eintr", [&] { return accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC); });
}

// Never inlined, like AcceptAddresses (memcheck.supp).
__attribute__((noinline)) void BadConnects(const Listener &l, void *no_access, char *page_end) {
  int fd = Tcp();
  Observe("connect_efault_addr",
          [&] { return connect(fd, reinterpret_cast<const sockaddr *>(1), sizeof(sockaddr_in)); });
  Observe("connect_efault_protnone",
          [&] { return connect(fd, Sa(no_access), sizeof(sockaddr_in)); });
  // A sockaddr_in whose first 8 bytes are readable and the rest is not.
  sockaddr_in to = l.addr;
  memcpy(page_end - 8, &to, 8);
  Observe("connect_efault_straddle",
          [&] { return connect(fd, Sa(page_end - 8), sizeof(sockaddr_in)); });
  Observe("connect_einval_len0", [&] { return connect(fd, Sa(&to), 0); });
  Observe("connect_einval_len_huge", [&] { return connect(fd, Sa(&to), 1u << 20); });
  sockaddr_in6 v6 = ka_peer::Loopback6(l.addr.sin_port);
  Observe("connect_eafnosupport", [&] { return connect(fd, Sa(&v6), sizeof v6); });
  ReportSock("connect_after_failures", fd);
  close(fd);

  sockaddr_un nowhere{};
  nowhere.sun_family = AF_UNIX;
  strcpy(nowhere.sun_path, "/nonexistent/ka_faults.sock");
  int unix_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  Observe("connect_unix_enoent", [&] { return connect(unix_fd, Sa(&nowhere), sizeof nowhere); });
  close(unix_fd);
  int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  Observe("connect_udp", [&] { return connect(udp, Sa(&to), sizeof to); });
  ReportSock("connect_udp", udp);
  close(udp);
}

void Refused() {
  sockaddr_in closed = ClosedPort();
  int fd = Tcp();
  Observe("connect_econnrefused", [&] { return connect(fd, Sa(&closed), sizeof closed); });
  // A refused socket may connect again.
  Observe("connect_econnrefused_again", [&] { return connect(fd, Sa(&closed), sizeof closed); });
  close(fd);
  fd = Tcp(SOCK_NONBLOCK);
  Observe("connect_econnrefused_nonblocking",
          [&] { return connect(fd, Sa(&closed), sizeof closed); });
  WaitWritable(fd);
  Report("call.connect_econnrefused_nonblocking.so_error", ka_peer::ErrnoName(SoError(fd)));
  close(fd);
}

void Connected(const Listener &l) {
  sockaddr_in to = l.addr;
  int fd = Tcp(SOCK_NONBLOCK);
  Observe("connect_einprogress", [&] { return connect(fd, Sa(&to), sizeof to); });
  WaitWritable(fd);
  Report("call.connect_einprogress.so_error", ka_peer::ErrnoName(SoError(fd)));
  // Linux reports a completed non-blocking connect once as success, then
  // EISCONN.
  Observe("connect_einprogress_again", [&] { return connect(fd, Sa(&to), sizeof to); });
  Observe("connect_einprogress_third", [&] { return connect(fd, Sa(&to), sizeof to); });
  ReportSock("connect_einprogress", fd);
  int s = accept(l.fd, nullptr, nullptr);
  ReportSock("accept_of_einprogress", s);
  close(s);
  close(fd);

  fd = Tcp();
  Observe("connect_blocking", [&] { return connect(fd, Sa(&to), sizeof to); });
  Observe("connect_eisconn", [&] { return connect(fd, Sa(&to), sizeof to); });
  ReportSock("connect_blocking", fd);
  sockaddr unspec = {};
  unspec.sa_family = AF_UNSPEC;
  Observe("connect_af_unspec", [&] { return connect(fd, &unspec, sizeof unspec); });
  s = accept(l.fd, nullptr, nullptr);
  close(s);
  close(fd);

  // The application's own settings after its first connect() stay.
  fd = Tcp(SOCK_NONBLOCK);
  Observe("own_nonblocking", [&] { return connect(fd, Sa(&to), sizeof to); });
  SetOwn(fd);
  WaitWritable(fd);
  Observe("own_nonblocking_again", [&] { return connect(fd, Sa(&to), sizeof to); });
  Observe("own_nonblocking_third", [&] { return connect(fd, Sa(&to), sizeof to); });
  ReportOwn("nonblocking_connect_polled", fd);
  s = accept(l.fd, nullptr, nullptr);
  close(s);
  close(fd);
  fd = Tcp();
  Observe("own_blocking", [&] { return connect(fd, Sa(&to), sizeof to); });
  SetOwn(fd);
  Observe("own_blocking_again", [&] { return connect(fd, Sa(&to), sizeof to); });
  ReportOwn("blocking_connect_repeated", fd);
  s = accept(l.fd, nullptr, nullptr);
  close(s);
  close(fd);
}

// Each hooked call that gives the library a socket to configure, with
// errno preset: one that succeeds must leave the sentinel, one that fails
// must leave libc's errno, whatever the library's option calls met.
void UnderFailingOptions(const Listener &l) {
  sockaddr_in to = l.addr;
  int c = Pending(l);
  int s = Observe("optfail_accept", [&] { return accept(l.fd, nullptr, nullptr); });
  ReportSock("optfail_accept", s);
  close(s);
  close(c);
  c = Pending(l);
  s = Observe("optfail_accept4", [&] { return accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC); });
  ReportSock("optfail_accept4", s);
  close(s);
  close(c);

  int fd = Tcp();
  Observe("optfail_connect", [&] { return connect(fd, Sa(&to), sizeof to); });
  ReportSock("optfail_connect", fd);
  close(fd);
  close(accept(l.fd, nullptr, nullptr));
  fd = Tcp(SOCK_NONBLOCK);
  Observe("optfail_connect_nonblocking", [&] { return connect(fd, Sa(&to), sizeof to); });
  WaitWritable(fd);
  ReportSock("optfail_connect_nonblocking", fd);
  close(fd);
  close(accept(l.fd, nullptr, nullptr));

  sockaddr_in closed = ClosedPort();
  fd = Tcp();
  Observe("optfail_connect_refused", [&] { return connect(fd, Sa(&closed), sizeof closed); });
  close(fd);
}

// EMFILE from accept and accept4; then, with exactly one descriptor free,
// accept and connect succeed and their sockets are configured: the library
// needs no descriptor of its own.
void OutOfDescriptors(const Listener &l) {
  rlimit saved;
  getrlimit(RLIMIT_NOFILE, &saved);
  rlimit low = saved;
  low.rlim_cur = 64;
  if (setrlimit(RLIMIT_NOFILE, &low) != 0) Die("setrlimit");
  int pending[2] = {Pending(l), Pending(l)};
  std::vector<int> filler;
  for (;;) {
    int fd = dup(0);
    if (fd < 0) break;
    filler.push_back(fd);
  }
  if (errno != EMFILE) Die("filling the descriptor table");
  Observe("accept_emfile", [&] { return accept(l.fd, nullptr, nullptr); });
  Observe("accept4_emfile", [&] { return accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC); });
  Observe("socket_emfile", [] { return socket(AF_INET, SOCK_STREAM, 0); });
  close(filler.back());
  filler.pop_back();
  int s = Observe("accept_last_descriptor", [&] { return accept(l.fd, nullptr, nullptr); });
  ReportSock("accept_last_descriptor", s);
  close(s);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in to = l.addr;
  Observe("connect_last_descriptor", [&] { return connect(fd, Sa(&to), sizeof to); });
  ReportSock("connect_last_descriptor", fd);
  close(fd);
  for (int f : filler) close(f);
  for (int c : pending) close(c);
  // The two connections still queued (pending[1], connect_last_descriptor)
  // are drained.
  for (int i = 0; i < 2; ++i) close(accept(l.fd, nullptr, nullptr));
  setrlimit(RLIMIT_NOFILE, &saved);
}

void Basic(bool descriptors) {
  long page = sysconf(_SC_PAGESIZE);
  // [readable page][PROT_NONE page]
  char *pages = static_cast<char *>(
      mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (pages == MAP_FAILED) Die("mmap");
  char *no_access = pages + page;
  if (mprotect(no_access, page, PROT_NONE) != 0) Die("mprotect");

  Listener l = Listen(0);
  BadDescriptors(l);
  BadAccepts(l);
  AcceptAddresses(l, no_access);
  Interrupted(l);
  BadConnects(l, no_access, no_access);
  Refused();
  Connected(l);
  if (descriptors) OutOfDescriptors(l);
  close(l.fd);
}

void InNamespace() {
  sockaddr_in black_hole = ka_peer::Loopback4("127.0.0.1", 9);  // dropped by nft
  sockaddr_in unroutable = ka_peer::Loopback4("100.64.0.1", 9);

  int fd = Tcp();
  AlarmIn(200);
  Observe("connect_eintr", [&] { return connect(fd, Sa(&black_hole), sizeof black_hole); });
  SetOwn(fd);
  // After EINTR the connection goes on; asking again (non-blocking) says so.
  fcntl(fd, F_SETFL, O_NONBLOCK);
  Observe("connect_ealready_after_eintr",
          [&] { return connect(fd, Sa(&black_hole), sizeof black_hole); });
  ReportOwn("connect_retried_after_eintr", fd);
  close(fd);

  fd = Tcp(SOCK_NONBLOCK);
  Observe("connect_einprogress_black_hole",
          [&] { return connect(fd, Sa(&black_hole), sizeof black_hole); });
  ReportSock("connect_einprogress_black_hole", fd);
  Observe("connect_ealready", [&] { return connect(fd, Sa(&black_hole), sizeof black_hole); });
  close(fd);

  fd = Tcp();
  Observe("connect_enetunreach", [&] { return connect(fd, Sa(&unroutable), sizeof unroutable); });
  close(fd);
  fd = Tcp(SOCK_NONBLOCK);
  Observe("connect_enetunreach_nonblocking",
          [&] { return connect(fd, Sa(&unroutable), sizeof unroutable); });
  close(fd);
}

}  // namespace

int main(int argc, char **argv) {
  std::string mode = argc == 2 ? argv[1] : "";
  Report("process.preloaded", ka_peer::LibraryLoaded() ? "1" : "0");
  if (mode == "basic" || mode == "memcheck") {
    Basic(mode == "basic");
  } else if (mode == "optfail") {
    Listener l = Listen(0);
    UnderFailingOptions(l);
    close(l.fd);
  } else if (mode == "netns") {
    InNamespace();
  } else {
    fprintf(stderr, "usage: ka_faults basic|memcheck|optfail|netns\n");
    return 2;
  }
  Report("done", "1");
  return 0;
}
