// log.cc — see log.h.

#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

namespace keepalive {

void log_line(const char *format, ...) {
  int saved = errno;
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
  const char *p = line;
  while (n > 0) {
    ssize_t done = write(STDERR_FILENO, p, n);
    if (done < 0 && errno == EINTR) continue;
    if (done <= 0) break;
    p += done;
    n -= static_cast<size_t>(done);
  }
  errno = saved;
}

}  // namespace keepalive
