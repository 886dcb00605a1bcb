// real_calls.h — the typed table of the real libc functions behind the hooks.
#ifndef KEEPALIVE_SHIM_REAL_CALLS_H
#define KEEPALIVE_SHIM_REAL_CALLS_H

#include <sys/socket.h>

namespace keepalive {

using AcceptFn = int (*)(int, sockaddr *, socklen_t *);
using Accept4Fn = int (*)(int, sockaddr *, socklen_t *, int);
using ConnectFn = int (*)(int, const sockaddr *, socklen_t);

// Each returns the next definition after this library (dlsym RTLD_NEXT),
// resolved on first use and cached; safe from any thread and before the
// constructor ran. nullptr only if libc has no such function.
AcceptFn real_accept();
Accept4Fn real_accept4();
ConnectFn real_connect();

}  // namespace keepalive

#endif
