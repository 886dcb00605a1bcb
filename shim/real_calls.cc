// real_calls.cc — see real_calls.h. dlsym lives in libc since glibc 2.34, so
// resolving needs no libdl. A race between threads only resolves twice and
// stores the same pointer.

#include "real_calls.h"

#include <dlfcn.h>
#include <errno.h>

#include "errno_guard.h"

namespace keepalive {
namespace {

template <typename Fn>
Fn resolve(Fn *slot, const char *name) {
  Fn fn = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
  if (fn == nullptr) {
    {
      ErrnoGuard guard;
      fn = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
    }
    __atomic_store_n(slot, fn, __ATOMIC_RELEASE);
  }
  return fn;
}

AcceptFn accept_slot;
Accept4Fn accept4_slot;
ConnectFn connect_slot;

}  // namespace

AcceptFn real_accept() { return resolve(&accept_slot, "accept"); }
Accept4Fn real_accept4() { return resolve(&accept4_slot, "accept4"); }
ConnectFn real_connect() { return resolve(&connect_slot, "connect"); }

}  // namespace keepalive
