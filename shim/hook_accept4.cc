// hook_accept4.cc — accept4(): the real call (flags untouched), then the
// accept path shared with accept() (init.h).

#include <errno.h>

#include "init.h"
#include "real_calls.h"

extern "C" __attribute__((visibility("default"))) int accept4(int fd, sockaddr *addr,
                                                              socklen_t *addrlen, int flags) {
  keepalive::Accept4Fn real = keepalive::real_accept4();
  if (real == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  return keepalive::configure_accepted(fd, real(fd, addr, addrlen, flags));
}
