// hook_connect.cc — connect(): one read of the socket (its TCP_KEEPIDLE)
// tells TCP from Unix and UDP sockets and a socket whose timings were chosen,
// which is left alone; any other is configured before the real call
// (connect_path.cc), so that its settings hold from the SYN on and
// non-blocking connects are covered too.

#include <errno.h>

#include "connect_path.h"
#include "default_idle.h"
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
  int idle_s = 0;
  if (cfg == nullptr || !keepalive::read_idle(fd, &idle_s)) return real(fd, addr, addrlen);
  if (keepalive::idle_chosen(idle_s)) {
    keepalive::log_left_alone_before_connect(cfg, fd);
    return real(fd, addr, addrlen);
  }
  return keepalive::connect_configured(cfg, real, fd, addr, addrlen);
}
