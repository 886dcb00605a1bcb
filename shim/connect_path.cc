// connect_path.cc — connect(): the settings are decided and applied before
// the real call, so that they hold from the SYN on (TCP_USER_TIMEOUT bounds
// a blocking connect's SYN phase) and non-blocking connects are covered. A
// rule by destination (port= or peer= on outgoing sockets) is decided from
// connect()'s own address, which is the connection's peer.
//
// The socket is read once: its TCP_KEEPIDLE tells TCP from Unix, UDP and
// the families without a TCP level (the read fails there) and a socket
// whose timings were chosen — by the program, or by us on an earlier
// connect() of the same socket (a non-blocking connect polled by calling
// connect() again, a retry after a refusal) — which is left alone. MPTCP is
// told apart by the options themselves (apply_to_tcp). With rules, or a
// decision that sets no idle time of its own, the socket's TCP state is read
// too, and only a socket that is not yet connecting is configured.
//
// The library reads the application's address only through
// process_vm_readv(2): a bad pointer must reach the kernel and come back as
// EFAULT, never crash the program here. When the address cannot be read or
// cannot stand for the peer, the decision waits until after the real call
// and reads the peer back from the kernel, as before.

#include "connect_path.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "default_idle.h"
#include "errno_guard.h"
#include "init.h"
#include "sockopts.h"

namespace keepalive {
namespace {

pid_t own_pid = 0;  // 0: not known (yet, or since a fork)

void forget_pid() { __atomic_store_n(&own_pid, 0, __ATOMIC_RELAXED); }

// Copies `len` bytes of connect()'s address; false when any of them cannot
// be read. Preserves errno.
bool copy_address(const sockaddr *addr, socklen_t len, sockaddr_storage *out) {
  ErrnoGuard guard;
  size_t size = len < sizeof *out ? len : sizeof *out;
  memset(out, 0, sizeof *out);
  if (addr == nullptr || size == 0) return false;
  pid_t pid = __atomic_load_n(&own_pid, __ATOMIC_RELAXED);
  if (pid == 0) {
    pid = getpid();
    __atomic_store_n(&own_pid, pid, __ATOMIC_RELAXED);
  }
  iovec local = {out, size};
  iovec remote = {const_cast<sockaddr *>(addr), size};
  return process_vm_readv(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(size);
}

// The path of a socket whose address could not be used before the call:
// the real call, then the facts read back from the kernel.
int connect_then_configure(const keepalive_config *cfg, ConnectFn real, int fd,
                           const sockaddr *addr, socklen_t addrlen) {
  if (!has_tcp_protocol(fd) || keepalive_tcp_state(fd) != TCP_CLOSE) {
    return real(fd, addr, addrlen);
  }
  int result = real(fd, addr, addrlen);
  // Connected, or connecting in the background (EINTR: the connect goes on).
  if (result == 0 || errno == EINPROGRESS || errno == EINTR) {
    configure_socket(cfg, fd, KEEPALIVE_OUT);
  }
  return result;
}

// A TCP socket not yet connecting, for a debug line (two calls).
bool about_to_connect(int fd) {
  return keepalive_tcp_state(fd) == TCP_CLOSE && has_tcp_protocol(fd);
}

}  // namespace

void watch_forks() { pthread_atfork(nullptr, nullptr, forget_pid); }

void log_left_alone_before_connect(const keepalive_config *cfg, int fd) {
  if (cfg->log_level >= KEEPALIVE_LOG_DEBUG && about_to_connect(fd)) {
    log_left_alone(cfg, fd, KEEPALIVE_OUT);
  }
}

int connect_configured(const keepalive_config *cfg, ConnectFn real, int fd, const sockaddr *addr,
                       socklen_t addrlen) {
  bool debug = cfg->log_level >= KEEPALIVE_LOG_DEBUG;
  keepalive_socket_facts facts;
  memset(&facts, 0, sizeof facts);
  facts.direction = KEEPALIVE_OUT;
  unsigned needs = keepalive_needs(cfg, KEEPALIVE_OUT);
  sockaddr_storage destination;
  if (needs != 0 && !(copy_address(addr, addrlen, &destination) &&
                      destination_facts(destination, addrlen, needs, &facts))) {
    return connect_then_configure(cfg, real, fd, addr, addrlen);
  }
  keepalive_settings settings;
  keepalive_decide(cfg, &facts, &settings);
  keepalive_apply_failure failure = {nullptr, 0};
  // Our idle time marks the socket for its next connect(), so the state
  // need not be asked: a socket already connecting has the mark. Without
  // one, or with rules, only a socket not yet connecting is configured:
  // connect() on a listening socket (a program's mistake, EISCONN) must not
  // give the sockets it accepts an outgoing decision (an `in off` rule). With
  // no rule both directions get the same settings anyway.
  bool marked =
      settings.idle_s != KEEPALIVE_UNSET && settings.idle_s != default_idle() && cfg->nrules == 0;
  bool applied = false;
  if (!settings.enable) {
    applied = debug && about_to_connect(fd);  // nothing to set: reported only
  } else if (marked || keepalive_tcp_state(fd) == TCP_CLOSE) {
    applied = apply_to_tcp(fd, &settings, &failure);
  }
  int result = real(fd, addr, addrlen);
  if (applied) log_socket(cfg, fd, KEEPALIVE_OUT, settings, failure);
  return result;
}

}  // namespace keepalive
