// probe.cc — see probe.h.

#include "natprobe/probe.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <algorithm>
#include <cmath>

#include "compat.h"
#include "lib/output.h"
#include "natprobe/natprobe.h"

namespace keepalive_natprobe {

long long to_ms(double seconds) { return std::llround(seconds * 1000); }

// A span of time as text, cut to whole seconds: "4m30s" for 270.6 s.
std::string whole_seconds_text(double seconds) {
  return keepalive_cli::format_duration_ms(to_ms(seconds) / 1000 * 1000);
}

std::string errno_name(int error) {
  const char *name = keepalive::errno_name(error);
  return name != nullptr ? name : "error " + std::to_string(error);
}

// Switches keepalive off on a probe connection, whatever a preloaded
// libkeepalive (or the listening socket) set: SO_KEEPALIVE 0, TCP_USER_TIMEOUT
// back to the kernel's default, and SO_KEEPALIVE read back.
bool switch_keepalive_off(int fd, std::string *error) {
  int off = 0;
  unsigned int kernel_default = 0;
  if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &off, sizeof off) != 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &kernel_default, sizeof kernel_default) != 0) {
    *error = std::string("cannot switch keepalive off on a probe connection: ") + strerror(errno);
    return false;
  }
  int value = -1;
  socklen_t length = sizeof value;
  if (getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &value, &length) != 0 || value != 0) {
    *error = "SO_KEEPALIVE is still on after switching it off on a probe connection";
    return false;
  }
  return true;
}

// Closes with a reset: no FIN that the kernel would retransmit for minutes
// into a NAT that has forgotten the connection. Nothing when *fd is closed.
void close_abortively(keepalive_cli::UniqueFd *fd) {
  if (!fd->valid()) return;
  linger abort_now{1, 0};
  setsockopt(fd->get(), SOL_SOCKET, SO_LINGER, &abort_now, sizeof abort_now);
  fd->reset();
}

bool send_all(int fd, const std::string &text) {
  ssize_t sent = send(fd, text.data(), text.size(), MSG_NOSIGNAL);
  return sent == static_cast<ssize_t>(text.size());
}

bool split_endpoint(std::string_view text, int lowest_port, std::string *host, std::string *port,
                    std::string *error) {
  size_t colon;
  if (!text.empty() && text[0] == '[') {
    size_t close_bracket = text.find(']');
    if (close_bracket == std::string_view::npos || close_bracket + 1 >= text.size() ||
        text[close_bracket + 1] != ':') {
      *error = "expected [IPv6]:PORT";
      return false;
    }
    *host = std::string(text.substr(1, close_bracket - 1));
    colon = close_bracket + 1;
  } else {
    colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      *error = "expected HOST:PORT";
      return false;
    }
    *host = std::string(text.substr(0, colon));
    if (host->find(':') != std::string::npos) {
      *error = "write an IPv6 address in brackets: [2001:db8::1]:7200";
      return false;
    }
  }
  *port = std::string(text.substr(colon + 1));
  bool digits =
      !port->empty() && port->size() <= 5 &&
      std::all_of(port->begin(), port->end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || atoi(port->c_str()) < lowest_port || atoi(port->c_str()) > 65535) {
    *error = "the port must be a number from " + std::to_string(lowest_port) + " to 65535";
    return false;
  }
  return true;
}

// Reads what is ready into *buffer (never past kMaxLineBytes + what one recv
// brings). kError leaves errno set.
ReadState read_ready(int fd, std::string *buffer) {
  for (;;) {
    char chunk[256];
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n > 0) {
      buffer->append(chunk, static_cast<size_t>(n));
      if (buffer->size() > keepalive_natprobe::kMaxLineBytes) return ReadState::kMore;
      continue;
    }
    if (n == 0) return ReadState::kEof;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return ReadState::kMore;
    return ReadState::kError;
  }
}

// Takes one "\n"-terminated line off the front of *buffer.
bool take_line(std::string *buffer, std::string *line) {
  size_t end = buffer->find('\n');
  if (end == std::string::npos) return false;
  *line = buffer->substr(0, end);
  buffer->erase(0, end + 1);
  return true;
}

}  // namespace keepalive_natprobe
