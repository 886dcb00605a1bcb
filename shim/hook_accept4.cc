// hook_accept4.cc — accept4(): the real call (flags untouched), then the new
// socket is configured.

#include <errno.h>

#include "init.h"
#include "real_calls.h"
#include "sockopts.h"

extern "C" __attribute__((visibility("default"))) int accept4(int fd, sockaddr *addr,
                                                              socklen_t *addrlen, int flags) {
  keepalive::Accept4Fn real = keepalive::real_accept4();
  if (real == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  int client = real(fd, addr, addrlen, flags);
  if (client >= 0) {
    const keepalive_config *cfg = keepalive::active_config();
    if (cfg != nullptr && keepalive::has_tcp_protocol(client)) {
      keepalive::configure_socket(cfg, client, KEEPALIVE_IN);
    }
  }
  return client;
}
