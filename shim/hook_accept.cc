// hook_accept.cc — accept(): the real call, then the accept path (init.h).

#include <errno.h>

#include "init.h"
#include "real_calls.h"

extern "C" __attribute__((visibility("default"))) int accept(int fd, sockaddr *addr,
                                                             socklen_t *addrlen) {
  keepalive::AcceptFn real = keepalive::real_accept();
  if (real == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  return keepalive::configure_accepted(fd, real(fd, addr, addrlen));
}
