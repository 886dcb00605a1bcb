// peer_util.h — small pieces shared by the hardening helper programs (the
// programs that run under LD_PRELOAD; they never link the library): reading
// a socket's keepalive state, naming errno values, loopback addresses and
// listeners.
// Everything here is async-signal-safe where a comment says so, because
// stress_peer calls it in forked children of a threaded process.
#ifndef KEEPALIVE_TESTS_HARDENING_PEER_UTIL_H
#define KEEPALIVE_TESTS_HARDENING_PEER_UTIL_H

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace ka_peer {

// errno is set to this before every observed call: a call that succeeds
// must leave it there (libc never writes errno on success).
constexpr int kErrnoSentinel = EDOM;

// A socket's keepalive state as five ints, read with getsockopt. -1 marks an
// option the socket does not have (Unix, UDP). Async-signal-safe.
struct KeepaliveState {
  int keepalive = -1, idle = -1, intvl = -1, cnt = -1, user_timeout = -1;
};

inline int GetInt(int fd, int level, int option) {
  int value = 0;
  socklen_t len = sizeof value;
  return getsockopt(fd, level, option, &value, &len) == 0 ? value : -1;
}

inline KeepaliveState ReadState(int fd) {
  int saved = errno;
  KeepaliveState s;
  s.keepalive = GetInt(fd, SOL_SOCKET, SO_KEEPALIVE);
  s.idle = GetInt(fd, IPPROTO_TCP, TCP_KEEPIDLE);
  s.intvl = GetInt(fd, IPPROTO_TCP, TCP_KEEPINTVL);
  s.cnt = GetInt(fd, IPPROTO_TCP, TCP_KEEPCNT);
  s.user_timeout = GetInt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT);
  errno = saved;
  return s;
}

// "keepalive/idle/intvl/cnt/user_timeout", e.g. "1/17/5/4/6001".
inline std::string StateText(const KeepaliveState &s) {
  char text[96];
  snprintf(text, sizeof text, "%d/%d/%d/%d/%d", s.keepalive, s.idle, s.intvl, s.cnt,
           s.user_timeout);
  return text;
}

inline std::string ErrnoName(int error) {
  if (error == 0) return "0";
  const char *name = strerrorname_np(error);
  return name != nullptr ? name : std::to_string(error);
}

// "ok" for a call that succeeded and left errno alone, "ok+errno=X" for one
// that succeeded but changed errno, else the errno name.
inline std::string Outcome(int ret, int error) {
  if (ret >= 0) return error == kErrnoSentinel ? "ok" : "ok+errno=" + ErrnoName(error);
  return ErrnoName(error);
}

// A helper prints this line on stdout when the test should start reading its
// stderr (harness.h: Stderr::kFullPipe).
inline constexpr char kReadStderrLine[] = "ka.read_stderr=1";

inline bool LibraryLoaded() { return dlsym(RTLD_DEFAULT, "keepalive_version") != nullptr; }

inline sockaddr_in Loopback4(const char *address, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, address, &a.sin_addr);
  return a;
}

inline sockaddr_in6 Loopback6(uint16_t port) {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  a.sin6_addr = in6addr_loopback;
  return a;
}

// A TCP listener on 127.0.0.1, port chosen by the kernel and written to
// *addr; -1 when it cannot be made.
inline int LoopbackListener(int backlog, sockaddr_in *addr, int extra_flags = 0) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | extra_flags, 0);
  *addr = Loopback4("127.0.0.1", 0);
  socklen_t len = sizeof *addr;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr *>(addr), len) != 0 ||
      listen(fd, backlog) != 0 || getsockname(fd, reinterpret_cast<sockaddr *>(addr), &len) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

inline uint16_t LocalPort(int fd) {
  sockaddr_storage s{};
  socklen_t len = sizeof s;
  if (getsockname(fd, reinterpret_cast<sockaddr *>(&s), &len) != 0) return 0;
  return ntohs(s.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6 &>(s).sin6_port
                                       : reinterpret_cast<sockaddr_in &>(s).sin_port);
}

}  // namespace ka_peer

#endif
