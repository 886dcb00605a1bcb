// tests/e2e/peer.h — what the peer programs of the end-to-end tests share:
// the report format, a monotonic clock, line I/O, an epoll set's waits and
// reading a socket's keepalive and TCP state. The peers do not link the library: they are the
// applications that libkeepalive is preloaded into.
//
// Report format, one line per event on stdout, flushed at once:
//   EVENT key=value ... t=SECONDS
// t is the time since the program started (CLOCK_MONOTONIC). The tests and
// examples/demo parse these lines; keys are only ever added, never renamed.
#ifndef KEEPALIVE_TESTS_E2E_PEER_H
#define KEEPALIVE_TESTS_E2E_PEER_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <functional>
#include <initializer_list>
#include <string>

namespace peer {

inline double now_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

inline const double kStart = now_s();

// Sleeps until now_s() reaches `deadline`.
inline void sleep_until(double deadline) {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(deadline);
  ts.tv_nsec = static_cast<long>((deadline - static_cast<double>(ts.tv_sec)) * 1e9);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

// Prints "event details t=..." and flushes: a reader must see each event
// when it happens, not when the program exits.
__attribute__((format(printf, 2, 3))) inline void report(const char *event, const char *fmt, ...) {
  char details[512] = "";
  va_list args;
  va_start(args, fmt);
  vsnprintf(details, sizeof details, fmt, args);
  va_end(args);
  printf("%s%s%s t=%.3f\n", event, details[0] ? " " : "", details, now_s() - kStart);
  fflush(stdout);
}

inline const char *errno_name(int e) {
  const char *name = strerrorname_np(e);
  return name ? name : "unknown";
}

inline void report(const char *event) { report(event, "%s", ""); }

// Reports a failed step ("bind", "accept": one word) and exits 1.
[[noreturn]] inline void fail(const char *what) {
  report("error", "what=%s errno=%s", what, errno_name(errno));
  exit(1);
}

// Adds (op EPOLL_CTL_ADD) or changes (EPOLL_CTL_MOD) `fd` in an epoll set,
// with `data` telling the events of `fd` apart; exits 1 when it cannot.
inline void epoll_watch(int epoll, int op, int fd, uint32_t events, uint64_t data) {
  epoll_event event{};
  event.events = events;
  event.data.u64 = data;
  if (epoll_ctl(epoll, op, fd, &event) != 0) fail("epoll_ctl");
}

// Waits for events of an epoll set until `deadline` (on now_s()), retrying
// after EINTR: returns how many came into `events` (0: none yet), or -1
// once the deadline has passed.
inline int epoll_wait_until(int epoll, epoll_event *events, int max, double deadline) {
  for (double left; (left = deadline - now_s()) > 0;) {
    int n = epoll_wait(epoll, events, max, static_cast<int>(left * 1000) + 1);
    if (n >= 0) return n;
    if (errno != EINTR) fail("epoll_wait");
  }
  return -1;
}

// Whether libkeepalive is mapped into this process: a test that expects the
// library must know that LD_PRELOAD really loaded it (ld.so only warns).
inline int libkeepalive_loaded() {
  FILE *maps = fopen("/proc/self/maps", "r");
  if (!maps) return -1;
  char line[1024];
  int found = 0;
  while (!found && fgets(line, sizeof line, maps)) found = strstr(line, "/libkeepalive") != nullptr;
  fclose(maps);
  return found;
}

// Raises this process's limit on open descriptors to at least `need`: the
// soft limit up to the hard one, and the hard one too when the process may
// (CAP_SYS_RESOURCE, up to fs.nr_open). Returns the soft limit reached,
// which is below `need` when neither was possible.
inline rlim_t raise_open_files(rlim_t need) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur >= need) return limit.rlim_cur;
  if (limit.rlim_max < need) {
    rlimit wanted{need, need};
    if (setrlimit(RLIMIT_NOFILE, &wanted) == 0) return need;
  }
  rlimit raised{limit.rlim_max, limit.rlim_max};
  return setrlimit(RLIMIT_NOFILE, &raised) == 0 ? raised.rlim_cur : limit.rlim_cur;
}

// "so_keepalive=1 keepidle=1 keepintvl=1 keepcnt=9 user_timeout_ms=0": what
// the kernel holds for this socket, whoever set it.
inline std::string keepalive_state(int fd) {
  int on = -1, idle = -1, intvl = -1, cnt = -1;
  unsigned user_timeout = 0;
  socklen_t len = sizeof(int);
  getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, &len);
  len = sizeof(int);
  getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, &len);
  len = sizeof(int);
  getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, &len);
  len = sizeof(int);
  getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, &len);
  len = sizeof user_timeout;
  getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, &len);
  char text[160];
  snprintf(text, sizeof text,
           "so_keepalive=%d keepidle=%d keepintvl=%d keepcnt=%d user_timeout_ms=%u", on, idle,
           intvl, cnt, user_timeout);
  return text;
}

inline const char *tcp_state_name(int state) {
  static const char *const names[] = {"?",          "ESTABLISHED", "SYN_SENT",  "SYN_RECV",
                                      "FIN_WAIT1",  "FIN_WAIT2",   "TIME_WAIT", "CLOSE",
                                      "CLOSE_WAIT", "LAST_ACK",    "LISTEN",    "CLOSING"};
  return state > 0 && state < 12 ? names[state] : "?";
}

// The kernel's view of the connection: its state, segments sent but not
// acknowledged, retransmissions so far, and how long ago the peer last
// acknowledged anything (its last sign of life).
inline std::string tcp_state(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return "state=unknown";
  char text[160];
  snprintf(text, sizeof text, "state=%s unacked=%u retransmits=%u silence=%.3f",
           tcp_state_name(info.tcpi_state), info.tcpi_unacked, info.tcpi_total_retrans,
           info.tcpi_last_ack_recv / 1000.0);
  return text;
}

// "198.51.100.2:5222" → address; exits with a usage error otherwise.
inline sockaddr_in parse_endpoint(const char *text) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  const char *colon = strrchr(text, ':');
  std::string host = colon ? std::string(text, colon) : "";
  char *end = nullptr;
  long port = colon ? strtol(colon + 1, &end, 10) : 0;
  if (!colon || *end || port < 1 || port > 65535 ||
      inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
    fprintf(stderr, "bad endpoint '%s': want IPv4:PORT\n", text);
    exit(2);
  }
  sa.sin_port = htons(static_cast<uint16_t>(port));
  return sa;
}

inline double parse_seconds(const char *text) {
  char *end = nullptr;
  double value = strtod(text, &end);
  if (end == text || *end || value < 0) {
    fprintf(stderr, "bad seconds '%s'\n", text);
    exit(2);
  }
  return value;
}

// A whole number ≥ 1; exits with a usage error otherwise.
inline long parse_count(const char *text) {
  char *end = nullptr;
  errno = 0;
  long value = strtol(text, &end, 10);
  if (end == text || *end || errno || value < 1) {
    fprintf(stderr, "bad count '%s'\n", text);
    exit(2);
  }
  return value;
}

// One "--flag value" option of a peer: its name and what to do with the value.
struct Flag {
  const char *name;
  std::function<void(const char *)> set;
};

// Prints "usage: PROGRAM USAGE" and exits 2.
[[noreturn]] inline void usage_error(const char *program, const char *usage) {
  fprintf(stderr, "usage: %s %s\n", program, usage);
  exit(2);
}

// Applies argv's "--flag value" pairs; an unknown flag or a flag without a
// value is a usage error.
inline void parse_flags(int argc, char **argv, std::initializer_list<Flag> flags,
                        const char *usage) {
  for (int i = 1; i < argc; i += 2) {
    const Flag *flag = nullptr;
    for (const Flag &candidate : flags)
      if (!strcmp(argv[i], candidate.name)) flag = &candidate;
    if (!flag || i + 1 == argc) usage_error(argv[0], usage);
    flag->set(argv[i + 1]);
  }
}

inline void write_all(int fd, const char *text) {
  size_t left = strlen(text);
  while (left > 0) {
    ssize_t n = write(fd, text, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("write");
    text += n;
    left -= static_cast<size_t>(n);
  }
}

enum class Wait { kLine, kClosed, kError, kTimeout };

// Waits until `line` (with its '\n'; nullptr: none is expected) has arrived,
// the peer closed, the socket failed (errno is then the error read()
// returned) or `deadline` (on now_s()) passed. poll() only adds the
// deadline: an error comes from the blocked read itself.
inline Wait wait_for_line(int fd, const char *line, double deadline, std::string *received) {
  for (;;) {
    if (line && received->find(line) != std::string::npos) return Wait::kLine;
    double left = deadline - now_s();
    if (left <= 0) return Wait::kTimeout;
    pollfd p{fd, POLLIN, 0};
    int ready = poll(&p, 1, static_cast<int>(left * 1000) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) fail("poll");
    if (ready == 0) continue;
    char buf[512];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Wait::kError;
    if (n == 0) return Wait::kClosed;
    received->append(buf, static_cast<size_t>(n));
  }
}

}  // namespace peer

#endif  // KEEPALIVE_TESTS_E2E_PEER_H
