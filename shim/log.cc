// log.cc — see log.h.

#include "log.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

namespace keepalive {
namespace {

// fd 2 as log_remember_stderr saw it.
enum StderrKnown : int { kNotRemembered = 0, kOpen = 1, kClosed = 2 };
int stderr_known = kNotRemembered;
dev_t stderr_dev;
ino_t stderr_ino;

bool stderr_is_ours() {
  int known = __atomic_load_n(&stderr_known, __ATOMIC_ACQUIRE);
  if (known == kNotRemembered) return true;
  if (known == kClosed) return false;
  struct stat now;
  return fstat(STDERR_FILENO, &now) == 0 && now.st_dev == stderr_dev && now.st_ino == stderr_ino;
}

// write(2) of the whole buffer with SIGPIPE blocked in this thread; a
// SIGPIPE that the write raised is taken back, one that was already pending
// stays.
void write_without_sigpipe(const char *p, size_t n) {
  sigset_t pipe_only, old, pending;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
  sigpending(&pending);
  bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  bool broken = false;
  while (n > 0) {
    ssize_t done = write(STDERR_FILENO, p, n);
    if (done < 0 && errno == EINTR) continue;
    if (done < 0 && errno == EPIPE) broken = true;
    if (done <= 0) break;
    p += done;
    n -= static_cast<size_t>(done);
  }
  if (broken && !was_pending) {
    timespec zero = {0, 0};
    while (sigtimedwait(&pipe_only, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

}  // namespace

void log_remember_stderr() {
  int saved = errno;
  struct stat now;
  if (fstat(STDERR_FILENO, &now) == 0) {
    stderr_dev = now.st_dev;
    stderr_ino = now.st_ino;
    __atomic_store_n(&stderr_known, kOpen, __ATOMIC_RELEASE);
  } else {
    __atomic_store_n(&stderr_known, kClosed, __ATOMIC_RELEASE);
  }
  errno = saved;
}

void log_line(const char *format, ...) {
  int saved = errno;
  if (!stderr_is_ours()) {
    errno = saved;
    return;
  }
  constexpr char kPrefix[] = "libkeepalive: ";
  char line[1024];
  size_t n = sizeof kPrefix - 1;
  memcpy(line, kPrefix, n);
  va_list args;
  va_start(args, format);
  int written = vsnprintf(line + n, sizeof line - n - 1, format, args);
  va_end(args);
  if (written < 0) written = 0;
  n += static_cast<size_t>(written) < sizeof line - n - 1 ? static_cast<size_t>(written)
                                                          : sizeof line - n - 2;
  line[n++] = '\n';
  write_without_sigpipe(line, n);
  errno = saved;
}

}  // namespace keepalive
