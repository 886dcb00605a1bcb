// sockopts.cc — the only place that talks to sockets: classify a socket, read
// the facts a rule needs, apply settings, read settings back. Every function
// preserves errno, so that nothing here is visible to the host program.

#include "sockopts.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "errno_guard.h"
#include "keepalive/keepalive.h"

namespace {

using keepalive::ErrnoGuard;

bool get_int(int fd, int level, int option, int *value) {
  socklen_t len = sizeof *value;
  return getsockopt(fd, level, option, value, &len) == 0 && len == sizeof *value;
}

bool set_int(int fd, int level, int option, int value) {
  return setsockopt(fd, level, option, &value, sizeof value) == 0;
}

// Fills address (IPv4-mapped IPv6 becomes IPv4) and port from a sockaddr.
bool from_sockaddr(const sockaddr_storage &storage, keepalive_address *address, uint16_t *port) {
  if (storage.ss_family == AF_INET) {
    const auto &in = reinterpret_cast<const sockaddr_in &>(storage);
    address->family = 4;
    memcpy(address->addr, &in.sin_addr, 4);
    *port = ntohs(in.sin_port);
    return true;
  }
  if (storage.ss_family == AF_INET6) {
    const auto &in6 = reinterpret_cast<const sockaddr_in6 &>(storage);
    if (IN6_IS_ADDR_V4MAPPED(&in6.sin6_addr)) {
      address->family = 4;
      memcpy(address->addr, in6.sin6_addr.s6_addr + 12, 4);
    } else {
      address->family = 6;
      memcpy(address->addr, in6.sin6_addr.s6_addr, 16);
    }
    *port = ntohs(in6.sin6_port);
    return true;
  }
  return false;
}

// The peer of a socket. While a non-blocking connect() is still in progress
// getpeername() says ENOTCONN; SO_PEERNAME answers then, but only into a
// buffer no longer than the address (else EINVAL): ask for an IPv4 address,
// and again for IPv6 when the family says so.
bool read_peer(int fd, keepalive_address *address, uint16_t *port) {
  sockaddr_storage storage;
  memset(&storage, 0, sizeof storage);
  socklen_t len = sizeof storage;
  if (getpeername(fd, reinterpret_cast<sockaddr *>(&storage), &len) == 0) {
    return from_sockaddr(storage, address, port);
  }
  if (errno != ENOTCONN) return false;
  len = sizeof(sockaddr_in);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERNAME, &storage, &len) != 0) return false;
  if (storage.ss_family == AF_INET6) {
    len = sizeof(sockaddr_in6);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERNAME, &storage, &len) != 0) return false;
  }
  return from_sockaddr(storage, address, port);
}

bool read_local_port(int fd, uint16_t *port) {
  sockaddr_storage storage;
  socklen_t len = sizeof storage;
  memset(&storage, 0, sizeof storage);
  if (getsockname(fd, reinterpret_cast<sockaddr *>(&storage), &len) != 0) return false;
  keepalive_address ignored;
  return from_sockaddr(storage, &ignored, port);
}

// Sets the options of `s`, TCP-level ones first: SO_KEEPALIVE, set last,
// arms the keepalive timer once with the final idle time (set before it,
// TCP_KEEPIDLE would re-arm it), and the first TCP-level option can serve as
// the family check. Returns the number of failed calls, or -1 when the family
// was not known and the socket is not AF_INET/AF_INET6 (nothing was set).
// `is_target` (nullptr: known) tells, after the first TCP-level option
// failed or before SO_KEEPALIVE when no TCP-level option is set, whether fd
// is a socket to configure at all.
int apply_options(int fd, const keepalive_settings *s, keepalive_apply_failure *failure,
                  bool (*is_target)(int fd)) {
  ErrnoGuard guard;
  if (failure != nullptr) {
    failure->option = nullptr;
    failure->error = 0;
  }
  if (!s->enable) return 0;
  struct Option {
    const char *name;
    int level;
    int option;
    long long value;
  };
  // TCP_USER_TIMEOUT first: MPTCP refuses it (apply_to_tcp).
  const Option options[] = {
      {"TCP_USER_TIMEOUT", IPPROTO_TCP, TCP_USER_TIMEOUT, s->user_timeout_ms},
      {"TCP_KEEPIDLE", IPPROTO_TCP, TCP_KEEPIDLE, s->idle_s},
      {"TCP_KEEPINTVL", IPPROTO_TCP, TCP_KEEPINTVL, s->intvl_s},
      {"TCP_KEEPCNT", IPPROTO_TCP, TCP_KEEPCNT, s->cnt},
      {"SO_KEEPALIVE", SOL_SOCKET, SO_KEEPALIVE, 1},
  };
  int failures = 0;
  for (const Option &option : options) {
    if (option.value == KEEPALIVE_UNSET) continue;
    if (is_target != nullptr && option.level != IPPROTO_TCP) {
      if (!is_target(fd)) return -1;  // no TCP-level value to try
      is_target = nullptr;
    }
    bool ok = set_int(fd, option.level, option.option, static_cast<int>(option.value));
    if (is_target != nullptr) {
      // Sockets we must not configure reject the first TCP-level option; a
      // TCP socket refuses a valid value only in odd cases (a BPF sockopt
      // filter): ask then.
      if (!ok && !is_target(fd)) return -1;
      is_target = nullptr;
    }
    if (!ok && failures++ == 0 && failure != nullptr) {
      failure->option = option.name;
      failure->error = errno;
    }
  }
  return failures;
}

// A positive number of seconds, at most `max`, from a /proc/sys file;
// `fallback` when it cannot be read.
int read_proc_seconds(const char *path, int max, int fallback) {
  ErrnoGuard guard;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fallback;
  char buf[16];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return fallback;
  int value = 0;
  for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) {
    int digit = buf[i] - '0';
    if (value > (max - digit) / 10) return fallback;
    value = value * 10 + digit;
  }
  return value > 0 ? value : fallback;
}

}  // namespace

namespace keepalive {

bool read_idle(int fd, int *idle_s) {
  ErrnoGuard guard;
  return get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle_s);
}

bool has_tcp_protocol(int fd) {
  ErrnoGuard guard;
  int protocol = 0;
  return get_int(fd, SOL_SOCKET, SO_PROTOCOL, &protocol) && protocol == IPPROTO_TCP;
}

bool has_inet_domain(int fd) {
  ErrnoGuard guard;
  int domain = 0;
  return get_int(fd, SOL_SOCKET, SO_DOMAIN, &domain) && (domain == AF_INET || domain == AF_INET6);
}

bool apply_if_inet(int fd, const keepalive_settings *s, keepalive_apply_failure *failure) {
  return apply_options(fd, s, failure, has_inet_domain) >= 0;
}

bool apply_to_tcp(int fd, const keepalive_settings *s, keepalive_apply_failure *failure) {
  bool ask_first = s->user_timeout_ms == KEEPALIVE_UNSET;
  if (ask_first && s->enable && !has_tcp_protocol(fd)) {
    if (failure != nullptr) {
      failure->option = nullptr;
      failure->error = 0;
    }
    return false;
  }
  return apply_options(fd, s, failure, ask_first ? nullptr : has_tcp_protocol) >= 0;
}

int change_settings(int fd, const keepalive_settings &from, const keepalive_settings &to,
                    const keepalive_kernel_defaults &kernel, keepalive_apply_failure *failure) {
  ErrnoGuard guard;
  failure->option = nullptr;
  failure->error = 0;
  int failures = 0;
  auto set = [&](const char *name, int level, int option, long long value) {
    if (set_int(fd, level, option, static_cast<int>(value))) return;
    if (failures++ == 0) {
      failure->option = name;
      failure->error = errno;
    }
  };
  // Off first: no keepalive timer is re-armed by the values that follow.
  if (!to.enable) set("SO_KEEPALIVE", SOL_SOCKET, SO_KEEPALIVE, 0);
  struct Value {
    const char *name;
    int option;
    long long from, to, kernel;
  };
  const Value values[] = {
      {"TCP_USER_TIMEOUT", TCP_USER_TIMEOUT, from.user_timeout_ms, to.user_timeout_ms, 0},
      {"TCP_KEEPIDLE", TCP_KEEPIDLE, from.idle_s, to.idle_s, kernel.idle_s},
      {"TCP_KEEPINTVL", TCP_KEEPINTVL, from.intvl_s, to.intvl_s, kernel.intvl_s},
      {"TCP_KEEPCNT", TCP_KEEPCNT, from.cnt, to.cnt, kernel.cnt},
  };
  for (const Value &value : values) {
    long long now = value.from == KEEPALIVE_UNSET ? value.kernel : value.from;
    long long wanted = !to.enable || value.to == KEEPALIVE_UNSET ? value.kernel : value.to;
    if (wanted != now) set(value.name, IPPROTO_TCP, value.option, wanted);
  }
  return failures;
}

bool destination_facts(const sockaddr_storage &storage, socklen_t len, unsigned needs,
                       keepalive_socket_facts *facts) {
  memset(facts, 0, sizeof *facts);
  facts->direction = KEEPALIVE_OUT;
  // The kernel's own minimum lengths (tcp_v4_connect, SIN6_LEN_RFC2133).
  size_t least = storage.ss_family == AF_INET    ? sizeof(sockaddr_in)
                 : storage.ss_family == AF_INET6 ? offsetof(sockaddr_in6, sin6_scope_id)
                                                 : sizeof storage + 1;
  if (len < least) return false;
  keepalive_address peer;
  uint16_t port = 0;
  if (!from_sockaddr(storage, &peer, &port)) return false;
  static const uint8_t kZero[16] = {};
  if (memcmp(peer.addr, kZero, peer.family == 4 ? 4 : 16) == 0) return false;
  if ((needs & KEEPALIVE_NEED_PEER) != 0) {
    facts->peer = peer;
    facts->has_peer = 1;
  }
  if ((needs & KEEPALIVE_NEED_PORT) != 0) {
    facts->port = port;
    facts->has_port = 1;
  }
  return true;
}

int kernel_default_idle_or(int fallback) {
  // The sysctl may exceed what TCP_KEEPIDLE accepts (32767), and an unset
  // socket then reads it as it is: capping it would make every socket look
  // as if its program had chosen its timings.
  return read_proc_seconds("/proc/sys/net/ipv4/tcp_keepalive_time", INT_MAX, fallback);
}

}  // namespace keepalive

extern "C" {

int keepalive_socket_is_tcp(int fd) {
  return keepalive::has_tcp_protocol(fd) && keepalive::has_inet_domain(fd) ? 1 : 0;
}

int keepalive_tcp_state(int fd) {
  ErrnoGuard guard;
  // The state is the first byte of struct tcp_info; the kernel copies as
  // much as asked for.
  uint8_t state = 0;
  socklen_t len = sizeof state;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &state, &len) != 0 || len != sizeof state) return -1;
  return state;
}

void keepalive_read_facts(int fd, keepalive_direction direction, unsigned needs,
                          keepalive_socket_facts *facts) {
  ErrnoGuard guard;
  memset(facts, 0, sizeof *facts);
  facts->direction = direction;
  if (needs == 0) return;
  uint16_t peer_port = 0;
  bool need_peer = (needs & KEEPALIVE_NEED_PEER) != 0 ||
                   (direction == KEEPALIVE_OUT && (needs & KEEPALIVE_NEED_PORT) != 0);
  if (need_peer && read_peer(fd, &facts->peer, &peer_port)) {
    facts->has_peer = (needs & KEEPALIVE_NEED_PEER) != 0;
    if (direction == KEEPALIVE_OUT) {
      facts->port = peer_port;
      facts->has_port = (needs & KEEPALIVE_NEED_PORT) != 0;
    }
  }
  if (direction == KEEPALIVE_IN && (needs & KEEPALIVE_NEED_PORT) != 0 &&
      read_local_port(fd, &facts->port)) {
    facts->has_port = 1;
  }
}

int keepalive_apply(int fd, const keepalive_settings *s, keepalive_apply_failure *failure) {
  return apply_options(fd, s, failure, nullptr);
}

int keepalive_read_settings(int fd, keepalive_settings *out) {
  ErrnoGuard guard;
  int enable = 0, idle = 0, intvl = 0, cnt = 0, timeout = 0;
  bool ok = get_int(fd, SOL_SOCKET, SO_KEEPALIVE, &enable) &&
            get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle) &&
            get_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl) &&
            get_int(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt) &&
            get_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout);
  out->enable = enable != 0;
  out->idle_s = idle;
  out->intvl_s = intvl;
  out->cnt = cnt;
  out->user_timeout_ms = static_cast<unsigned>(timeout);
  out->rule = KEEPALIVE_RULE_GLOBAL;
  return ok ? 1 : 0;
}

int keepalive_kernel_default_intvl(void) {
  return read_proc_seconds("/proc/sys/net/ipv4/tcp_keepalive_intvl", KEEPALIVE_INTVL_MAX_S,
                           KEEPALIVE_FALLBACK_KERNEL_INTVL_S);
}

int keepalive_kernel_default_idle(void) {
  return keepalive::kernel_default_idle_or(KEEPALIVE_FALLBACK_KERNEL_IDLE_S);
}

}  // extern "C"

extern "C" {

void keepalive_facts_from_sockaddr(keepalive_direction direction, const struct sockaddr *local,
                                   const struct sockaddr *peer, keepalive_socket_facts *facts) {
  memset(facts, 0, sizeof *facts);
  facts->direction = direction;
  sockaddr_storage storage;
  uint16_t port = 0;
  const sockaddr *service = direction == KEEPALIVE_IN ? local : peer;
  if (service != nullptr) {
    memcpy(&storage, service,
           service->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
    keepalive_address ignored;
    facts->has_port = from_sockaddr(storage, &ignored, &facts->port);
  }
  if (peer != nullptr) {
    memcpy(&storage, peer,
           peer->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in));
    facts->has_peer = from_sockaddr(storage, &facts->peer, &port);
  }
}

int keepalive_read_kernel_defaults(keepalive_kernel_defaults *out) {
  // 0 stands for "not read": read_proc_seconds returns only positive values.
  out->idle_s = read_proc_seconds("/proc/sys/net/ipv4/tcp_keepalive_time", INT_MAX, 0);
  out->intvl_s =
      read_proc_seconds("/proc/sys/net/ipv4/tcp_keepalive_intvl", KEEPALIVE_INTVL_MAX_S, 0);
  out->cnt = read_proc_seconds("/proc/sys/net/ipv4/tcp_keepalive_probes", INT_MAX, 0);
  out->from_proc = out->idle_s > 0 && out->intvl_s > 0 && out->cnt > 0;
  if (out->idle_s == 0) out->idle_s = KEEPALIVE_FALLBACK_KERNEL_IDLE_S;
  if (out->intvl_s == 0) out->intvl_s = KEEPALIVE_FALLBACK_KERNEL_INTVL_S;
  if (out->cnt == 0) out->cnt = KEEPALIVE_FALLBACK_KERNEL_CNT;
  return out->from_proc;
}

}  // extern "C"
