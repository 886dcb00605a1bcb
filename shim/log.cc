// log.cc — see log.h.
//
// Never waiting for stderr, without touching its file status flags (they
// belong to an open file description that other processes share):
//   regular file       write(2): it does not wait for a reader
//   socket             send(2) with MSG_DONTWAIT | MSG_NOSIGNAL
//   anything else      pwritev2(2) with RWF_NOWAIT (pipes on recent kernels);
//   (pipe, FIFO, tty)  where the kernel refuses that flag, a private
//                      O_NONBLOCK open of /proc/thread-self/fd/2 — a new open
//                      file description of the same pipe or terminal — that
//                      is written once and closed at once
// A line (at most 1 KiB, below PIPE_BUF) is written whole or not at all;
// only a stream socket that is nearly full may take the beginning of one.

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "errno_guard.h"

namespace keepalive {
namespace {

// fd 2 as log_remember_stderr saw it.
enum StderrKnown : int { kNotRemembered = 0, kOpen = 1, kClosed = 2 };
int stderr_known = kNotRemembered;
dev_t stderr_dev;
ino_t stderr_ino;

// Lines not written because stderr could not take them at once, since the
// last line that got through.
unsigned dropped_lines = 0;

constexpr char kPrefix[] = "libkeepalive: ";
constexpr size_t kLineMax = 1024;   // one line, its newline included
constexpr size_t kNoticeMax = 128;  // "N lines dropped" before it

// Fills *now with fd 2's status; false when there is nothing to write to or
// fd 2 is no longer the stderr seen at load.
bool stat_stderr(struct stat *now) {
  int known = __atomic_load_n(&stderr_known, __ATOMIC_ACQUIRE);
  if (known == kClosed || fstat(STDERR_FILENO, now) != 0) return false;
  return known == kNotRemembered || (now->st_dev == stderr_dev && now->st_ino == stderr_ino);
}

// One write of p[0..n) through a descriptor of our own, opened without
// blocking on the same pipe or terminal as fd 2 (`seen`), then closed: no
// descriptor of ours outlives the call (a reader waiting for end-of-file
// must not wait for us). -1 when it cannot be opened (no /proc, no reader
// on a FIFO, a pipe of another user after a change of identity).
ssize_t write_through_private_open(const struct stat &seen, const char *p, size_t n) {
  int fd = open("/proc/thread-self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return -1;
  struct stat opened;
  ssize_t done = -1;
  // fd 2 may have been replaced since it was looked at.
  if (fstat(fd, &opened) == 0 && opened.st_dev == seen.st_dev && opened.st_ino == seen.st_ino) {
    done = write(fd, p, n);
  }
  close(fd);
  return done;
}

// One attempt to write p[0..n) to stderr that never waits. Returns the
// bytes written, or -1.
ssize_t write_at_once(const struct stat &seen, const char *p, size_t n) {
  ssize_t done;
  if (S_ISREG(seen.st_mode)) {
    do done = write(STDERR_FILENO, p, n);
    while (done < 0 && errno == EINTR);
    return done;
  }
  if (S_ISSOCK(seen.st_mode)) return send(STDERR_FILENO, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
  iovec line = {const_cast<char *>(p), n};
  done = pwritev2(STDERR_FILENO, &line, 1, -1, RWF_NOWAIT);
  // EOPNOTSUPP: this file does not do RWF_NOWAIT; EINVAL, ENOSYS: kernels
  // before 4.14 / 4.6.
  if (done < 0 && (errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS)) {
    done = write_through_private_open(seen, p, n);
  }
  return done;
}

// write_at_once with SIGPIPE blocked in this thread: a SIGPIPE that the
// write raised (the reader of a pipe went away) is taken back, one that was
// already pending stays.
ssize_t write_without_sigpipe(const struct stat &seen, const char *p, size_t n) {
  if (S_ISSOCK(seen.st_mode) || S_ISREG(seen.st_mode)) return write_at_once(seen, p, n);
  sigset_t pipe_only, old, pending;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
  sigpending(&pending);
  bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  ssize_t done = write_at_once(seen, p, n);
  if (done < 0 && errno == EPIPE && !was_pending) {
    timespec zero = {0, 0};
    while (sigtimedwait(&pipe_only, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return done;
}

}  // namespace

void log_remember_stderr() {
  ErrnoGuard guard;
  struct stat now;
  if (fstat(STDERR_FILENO, &now) == 0) {
    stderr_dev = now.st_dev;
    stderr_ino = now.st_ino;
    __atomic_store_n(&stderr_known, kOpen, __ATOMIC_RELEASE);
  } else {
    __atomic_store_n(&stderr_known, kClosed, __ATOMIC_RELEASE);
  }
}

void log_line(const char *format, ...) {
  ErrnoGuard guard;
  struct stat seen;
  if (!stat_stderr(&seen)) return;
  // [room for the notice][prefix, text, newline]: both go out in one write.
  char buffer[kNoticeMax + kLineMax];
  char *line = buffer + kNoticeMax;
  size_t n = sizeof kPrefix - 1;
  memcpy(line, kPrefix, n);
  va_list args;
  va_start(args, format);
  int written = vsnprintf(line + n, kLineMax - n, format, args);
  va_end(args);
  if (written < 0) written = 0;
  // The text, cut where the buffer ends, and the newline in place of the NUL.
  n += static_cast<size_t>(written) < kLineMax - n - 1 ? static_cast<size_t>(written)
                                                       : kLineMax - n - 1;
  line[n++] = '\n';

  char *start = line;
  unsigned earlier = __atomic_load_n(&dropped_lines, __ATOMIC_RELAXED);
  if (earlier > 0) {
    char notice[kNoticeMax];
    int length =
        snprintf(notice, sizeof notice, "%s%u line%s dropped: stderr could not take %s at once\n",
                 kPrefix, earlier, earlier == 1 ? "" : "s", earlier == 1 ? "it" : "them");
    // (An error, a negative length, is no size below sizeof notice.)
    if (static_cast<size_t>(length) < sizeof notice) {
      start -= length;
      memcpy(start, notice, static_cast<size_t>(length));
    } else {
      earlier = 0;
    }
  }
  size_t total = n + static_cast<size_t>(line - start);
  if (write_without_sigpipe(seen, start, total) > 0) {
    __atomic_fetch_sub(&dropped_lines, earlier, __ATOMIC_RELAXED);
  } else {
    __atomic_fetch_add(&dropped_lines, 1, __ATOMIC_RELAXED);
  }
}

}  // namespace keepalive
