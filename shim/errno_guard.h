// errno_guard.h — keeps the application's errno: whatever the library calls
// in a scope, errno is what it was when the scope began. Header only, shared
// by the core and the hook side.
#ifndef KEEPALIVE_SHIM_ERRNO_GUARD_H
#define KEEPALIVE_SHIM_ERRNO_GUARD_H

#include <errno.h>

namespace keepalive {

class ErrnoGuard {
 public:
  ErrnoGuard() : saved_(errno) {}
  ~ErrnoGuard() { errno = saved_; }
  ErrnoGuard(const ErrnoGuard &) = delete;
  ErrnoGuard &operator=(const ErrnoGuard &) = delete;

 private:
  int saved_;
};

}  // namespace keepalive

#endif  // KEEPALIVE_SHIM_ERRNO_GUARD_H
