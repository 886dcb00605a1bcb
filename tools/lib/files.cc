// files.cc — see files.h.

#include "lib/files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

namespace keepalive_cli {

bool read_file(const std::string &path, std::string *out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out->clear();
  char buf[8192];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int saved = errno;
      close(fd);
      errno = saved;
      return false;
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return true;
}

bool write_file(const std::string &path, const std::string &text, std::string *error) {
  std::string temporary = path + ".tmp";
  FILE *out = fopen(temporary.c_str(), "w");
  if (out == nullptr) {
    *error = "cannot write " + temporary + ": " + strerror(errno);
    return false;
  }
  bool ok = fwrite(text.data(), 1, text.size(), out) == text.size();
  ok = fflush(out) == 0 && ok;
  ok = fchmod(fileno(out), 0644) == 0 && ok;
  ok = fclose(out) == 0 && ok;
  if (!ok || rename(temporary.c_str(), path.c_str()) != 0) {
    *error = "cannot write " + path + ": " + strerror(errno);
    unlink(temporary.c_str());
    return false;
  }
  return true;
}

}  // namespace keepalive_cli
