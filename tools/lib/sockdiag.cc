// sockdiag.cc — see sockdiag.h.

#include "lib/sockdiag.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sched.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

namespace keepalive_cli {
namespace {

void fill_address(int family, const __be32 *address, __be16 port, sockaddr_storage *out) {
  memset(out, 0, sizeof *out);
  if (family == AF_INET) {
    auto *in = reinterpret_cast<sockaddr_in *>(out);
    in->sin_family = AF_INET;
    in->sin_port = port;
    memcpy(&in->sin_addr, address, 4);
  } else {
    auto *in6 = reinterpret_cast<sockaddr_in6 *>(out);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = port;
    memcpy(&in6->sin6_addr, address, 16);
  }
}

// The inode of a namespace file, or 0.
unsigned long long namespace_inode(const std::string &path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

int open_diag_socket() { return socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG); }

}  // namespace

const char *diag_timer_name(int timer) {
  switch (timer) {
    case 0:
      return "off";
    case 1:
      return "on";
    case 2:
      return "keepalive";
    case 3:
      return "timewait";
    case 4:
      return "persist";
    default:
      return "unknown";
  }
}

DiagParse parse_inet_diag_messages(const void *buf, size_t len, std::vector<DiagSocket> *out,
                                   std::string *error) {
  const char *start = static_cast<const char *>(buf);
  size_t offset = 0;
  while (len - offset >= sizeof(nlmsghdr)) {
    nlmsghdr header;
    memcpy(&header, start + offset, sizeof header);
    if (header.nlmsg_len < sizeof header || header.nlmsg_len > len - offset) {
      *error = "malformed netlink message (length " + std::to_string(header.nlmsg_len) + ")";
      return DiagParse::kError;
    }
    const char *payload = start + offset + NLMSG_HDRLEN;
    size_t payload_len = header.nlmsg_len - NLMSG_HDRLEN;
    if (header.nlmsg_type == NLMSG_DONE) return DiagParse::kDone;
    if (header.nlmsg_type == NLMSG_ERROR) {
      nlmsgerr failure;
      if (payload_len < sizeof failure) {
        *error = "truncated netlink error";
      } else {
        memcpy(&failure, payload, sizeof failure);
        *error = std::string("socket diagnostics refused the dump: ") + strerror(-failure.error);
      }
      return DiagParse::kError;
    }
    if (header.nlmsg_type == SOCK_DIAG_BY_FAMILY) {
      inet_diag_msg message;
      if (payload_len < sizeof message) {
        *error = "truncated inet_diag message (" + std::to_string(payload_len) + " bytes)";
        return DiagParse::kError;
      }
      memcpy(&message, payload, sizeof message);
      if (message.idiag_family == AF_INET || message.idiag_family == AF_INET6) {
        DiagSocket socket;
        socket.inode = message.idiag_inode;
        socket.family = message.idiag_family;
        socket.state = message.idiag_state;
        socket.timer = message.idiag_timer;
        socket.expires_ms = message.idiag_expires;
        socket.uid = message.idiag_uid;
        fill_address(socket.family, message.id.idiag_src, message.id.idiag_sport, &socket.local);
        fill_address(socket.family, message.id.idiag_dst, message.id.idiag_dport, &socket.peer);
        out->push_back(socket);
      }
    }
    offset += NLMSG_ALIGN(header.nlmsg_len);
    if (offset > len) break;
  }
  return DiagParse::kMore;
}

bool in_network_namespace(pid_t pid, const char *purpose, const std::function<void()> &work,
                          std::string *error) {
  std::string target_ns = "/proc/" + std::to_string(pid) + "/ns/net";
  unsigned long long theirs = namespace_inode(target_ns);
  if (theirs == 0 || theirs == namespace_inode("/proc/self/ns/net")) {
    work();
    return true;
  }
  UniqueFd own(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
  UniqueFd target(::open(target_ns.c_str(), O_RDONLY | O_CLOEXEC));
  if (!own.valid() || !target.valid() || setns(target.get(), CLONE_NEWNET) != 0) {
    *error = "process " + std::to_string(pid) + " is in another network namespace, which " +
             purpose + " needs to enter: " + strerror(errno) +
             " (run as root or with CAP_SYS_ADMIN)";
    return false;
  }
  work();
  int saved = errno;
  if (setns(own.get(), CLONE_NEWNET) != 0) {
    *error = std::string("cannot return to the own network namespace: ") + strerror(errno);
    return false;
  }
  errno = saved;
  return true;
}

bool SockDiag::open(pid_t pid, std::string *error) {
  // A socket stays in the namespace it was created in: the process's.
  auto open_socket = [this] { fd_ = UniqueFd(open_diag_socket()); };
  if (!in_network_namespace(pid, "listing its connections", open_socket, error)) return false;
  if (!fd_.valid()) {
    *error = std::string("cannot open a socket diagnostics (NETLINK_SOCK_DIAG) socket: ") +
             strerror(errno);
    return false;
  }
  return true;
}

bool SockDiag::dump_tcp(unsigned states, std::vector<DiagSocket> *out, std::string *error) const {
  out->clear();
  return dump_family(AF_INET, states, out, error) && dump_family(AF_INET6, states, out, error);
}

bool SockDiag::dump_family(int family, unsigned states, std::vector<DiagSocket> *out,
                           std::string *error) const {
  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } message;
  memset(&message, 0, sizeof message);
  message.header.nlmsg_len = sizeof message;
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  message.request.sdiag_family = static_cast<__u8>(family);
  message.request.sdiag_protocol = IPPROTO_TCP;
  message.request.idiag_states = states;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd_.get(), &message, sizeof message, 0, reinterpret_cast<sockaddr *>(&kernel),
             sizeof kernel) != static_cast<ssize_t>(sizeof message)) {
    *error = std::string("socket diagnostics: sending the request failed: ") + strerror(errno);
    return false;
  }
  // Large enough for a few hundred sockets per recv(); the kernel fills it.
  alignas(nlmsghdr) char buffer[64 * 1024];
  for (;;) {
    ssize_t n = recv(fd_.get(), buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = std::string("socket diagnostics: reading the answer failed: ") + strerror(errno);
      return false;
    }
    if (n == 0) {
      *error = "socket diagnostics: the answer ended early";
      return false;
    }
    DiagParse parsed = parse_inet_diag_messages(buffer, static_cast<size_t>(n), out, error);
    if (parsed == DiagParse::kDone) return true;
    if (parsed == DiagParse::kError) return false;
  }
}

}  // namespace keepalive_cli
