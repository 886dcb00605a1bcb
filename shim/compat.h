// compat.h — the C library functions newer than the oldest supported glibc
// (2.28), with their fallbacks. cmake/platform.cmake detects them.
#ifndef KEEPALIVE_SHIM_COMPAT_H
#define KEEPALIVE_SHIM_COMPAT_H

#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace keepalive {

// The calling thread's id (gettid: glibc 2.30).
inline pid_t current_tid() {
#if KEEPALIVE_HAVE_GETTID
  return gettid();
#else
  return static_cast<pid_t>(syscall(SYS_gettid));
#endif
}

// The errno constant's name ("EINVAL"), or nullptr where unknown or where the
// C library cannot name it (strerrorname_np: glibc 2.32).
inline const char *errno_name(int error) {
#if KEEPALIVE_HAVE_STRERRORNAME_NP
  return strerrorname_np(error);
#else
  (void)error;
  return nullptr;
#endif
}

}  // namespace keepalive

#endif
