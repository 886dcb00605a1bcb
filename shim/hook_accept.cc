// hook_accept.cc — accept(): the real call, then the new socket is configured.

#include <errno.h>

#include "init.h"
#include "real_calls.h"
#include "sockopts.h"

extern "C" __attribute__((visibility("default"))) int accept(int fd, sockaddr *addr,
                                                             socklen_t *addrlen) {
  keepalive::AcceptFn real = keepalive::real_accept();
  if (real == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  int client = real(fd, addr, addrlen);
  if (client >= 0) {
    const keepalive_config *cfg = keepalive::active_config();
    if (cfg != nullptr && keepalive::has_tcp_protocol(client)) {
      keepalive::configure_socket(cfg, client, KEEPALIVE_IN);
    }
  }
  return client;
}
