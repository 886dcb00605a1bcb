// hook_connect.cc — connect(): a TCP socket that is not yet connecting is
// configured before the real call, so that non-blocking connects are covered
// too. Sockets already connecting, connected or listening are left alone:
// a program that polls a non-blocking connect by calling connect() again, or
// sets its own options in between, must not see our values come back. So is
// a socket whose timings were chosen (TCP_KEEPIDLE is not the kernel's
// default): by the program before connect(), or by us on an earlier
// connect() that was refused — once per socket.
//
// When a rule needs the destination (port= or peer= for outgoing sockets),
// the settings are applied right after the real call instead: the
// destination is then read back from the kernel, because the library never
// reads the application's sockaddr itself (a bad pointer must reach the
// kernel and come back as EFAULT).

#include <errno.h>
#include <netinet/tcp.h>

#include "init.h"
#include "real_calls.h"
#include "sockopts.h"

extern "C" __attribute__((visibility("default"))) int connect(int fd, const sockaddr *addr,
                                                              socklen_t addrlen) {
  keepalive::ConnectFn real = keepalive::real_connect();
  if (real == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  const keepalive_config *cfg = keepalive::active_config();
  if (cfg == nullptr) return real(fd, addr, addrlen);
  // TCP_KEEPIDLE is read at the IPPROTO_TCP level, which Unix and UDP
  // sockets and other families that reuse protocol number 6 reject: one
  // call for them. SO_PROTOCOL then rules out MPTCP.
  bool readable = false;
  if (keepalive::timings_chosen(fd, &readable)) {
    // At debug level only (the state costs a call): a socket about to connect.
    if (cfg->log_level >= KEEPALIVE_LOG_DEBUG && keepalive_tcp_state(fd) == TCP_CLOSE) {
      keepalive::log_left_alone(cfg, fd, KEEPALIVE_OUT);
    }
    return real(fd, addr, addrlen);
  }
  if (!readable || !keepalive::has_tcp_protocol(fd) || keepalive_tcp_state(fd) != TCP_CLOSE) {
    return real(fd, addr, addrlen);
  }
  if (keepalive_needs(cfg, KEEPALIVE_OUT) != 0) {
    int result = real(fd, addr, addrlen);
    // Connected, or connecting in the background (EINTR: the connect goes on).
    if (result == 0 || errno == EINPROGRESS || errno == EINTR) {
      keepalive::configure_socket(cfg, fd, KEEPALIVE_OUT);
    }
    return result;
  }
  keepalive_socket_facts facts;
  keepalive_settings settings;
  keepalive_apply_failure failure;
  bool applied = keepalive::decide_and_apply(cfg, fd, KEEPALIVE_OUT, &facts, &settings, &failure);
  int result = real(fd, addr, addrlen);
  if (applied) keepalive::log_socket(cfg, fd, KEEPALIVE_OUT, settings, failure);
  return result;
}
