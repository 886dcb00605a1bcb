// process.cc — see process.h. pidfd_open/pidfd_getfd are called through
// syscall() so that the command builds with C libraries older than glibc 2.36.

#include "lib/process.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <string_view>

#include "lib/cli.h"
#include "lib/files.h"
#include "lib/output.h"

namespace keepalive_cli {
namespace {

int sys_pidfd_open(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0u)); }

int sys_pidfd_getfd(int pidfd, int target_fd) {
  return static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, target_fd, 0u));
}

// True for a /proc/PID/fd link target "socket:[12345]".
bool is_socket_link(const char *link) { return strncmp(link, "socket:[", 8) == 0; }

int ptrace_scope() {
  std::string text;
  if (!read_file("/proc/sys/kernel/yama/ptrace_scope", &text)) return -1;  // no Yama
  int scope = -1;
  return sscanf(text.c_str(), "%d", &scope) == 1 ? scope : -1;
}

// Whether this process has CAP_SYS_PTRACE in its effective set (CapEff of
// /proc/self/status); root without it cannot reach other users' processes.
bool has_cap_sys_ptrace() {
  std::string status;
  if (!read_file("/proc/self/status", &status)) return true;  // unknown: do not claim it
  const char *line = strstr(status.c_str(), "\nCapEff:");
  unsigned long long effective = 0;
  if (line == nullptr || sscanf(line, "\nCapEff: %llx", &effective) != 1) return true;
  constexpr int kCapSysPtrace = 19;  // <linux/capability.h>
  return (effective >> kCapSysPtrace & 1) != 0;
}

std::string user_name(uid_t uid) {
  struct passwd *entry = getpwuid(uid);
  std::string text = entry != nullptr ? std::string(entry->pw_name) + " " : std::string();
  return text + "(uid " + std::to_string(uid) + ")";
}

bool read_int_option(int fd, int level, int option, int *value) {
  socklen_t len = sizeof *value;
  return getsockopt(fd, level, option, value, &len) == 0 && len == sizeof *value;
}

// Reads one duplicated socket; false when it is not an AF_INET/AF_INET6 TCP socket.
bool describe_socket(int dup, int target_fd, TcpSocket *socket) {
  if (!keepalive_socket_is_tcp(dup)) return false;
  socket->fd = target_fd;
  struct stat st;
  if (fstat(dup, &st) == 0) socket->inode = st.st_ino;
  read_int_option(dup, SOL_SOCKET, SO_DOMAIN, &socket->family);
  tcp_info info;
  memset(&info, 0, sizeof info);
  socklen_t len = sizeof info;
  if (getsockopt(dup, IPPROTO_TCP, TCP_INFO, &info, &len) == 0) socket->state = info.tcpi_state;
  len = sizeof socket->local;
  socket->has_local = getsockname(dup, reinterpret_cast<sockaddr *>(&socket->local), &len) == 0;
  len = sizeof socket->peer;
  socket->has_peer = getpeername(dup, reinterpret_cast<sockaddr *>(&socket->peer), &len) == 0;
  socket->keepalive_read = keepalive_read_settings(dup, &socket->keepalive) == 1;
  return true;
}

// Marks listening sockets, and sets each socket's direction
// (connection_direction).
void classify_directions(std::vector<TcpSocket> *sockets) {
  std::set<uint16_t> listening_ports;
  for (TcpSocket &socket : *sockets) {
    socket.listening = socket.state == TCP_LISTEN;
    socket.connected = socket.has_peer && !socket.listening;
    if (socket.listening && socket.has_local) listening_ports.insert(port_of(socket.local));
  }
  for (TcpSocket &socket : *sockets)
    socket.direction = connection_direction(socket, listening_ports);
}

}  // namespace

uint16_t port_of(const sockaddr_storage &address) {
  if (address.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in &>(address).sin_port);
  }
  if (address.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6 &>(address).sin6_port);
  }
  return 0;
}

UniqueFd &UniqueFd::operator=(UniqueFd &&other) noexcept {
  if (this != &other) {
    reset();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

void UniqueFd::reset() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

bool is_keepalive_library(std::string_view path) {
  size_t slash = path.rfind('/');
  std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
  return base.rfind("libkeepalive.so", 0) == 0;
}

bool parse_pid(const char *text, pid_t *out) {
  if (text == nullptr || *text < '1' || *text > '9') return false;
  errno = 0;
  char *end = nullptr;
  long value = strtol(text, &end, 10);
  if (errno != 0 || *end != '\0' || value <= 0 || value > INT_MAX) return false;
  *out = static_cast<pid_t>(value);
  return true;
}

const char *tcp_state_name(int state) {
  switch (state) {
    case TCP_ESTABLISHED:
      return "ESTAB";
    case TCP_SYN_SENT:
      return "SYN-SENT";
    case TCP_SYN_RECV:
      return "SYN-RECV";
    case TCP_FIN_WAIT1:
      return "FIN-WAIT-1";
    case TCP_FIN_WAIT2:
      return "FIN-WAIT-2";
    case TCP_TIME_WAIT:
      return "TIME-WAIT";
    case TCP_CLOSE:
      return "UNCONN";
    case TCP_CLOSE_WAIT:
      return "CLOSE-WAIT";
    case TCP_LAST_ACK:
      return "LAST-ACK";
    case TCP_LISTEN:
      return "LISTEN";
    case TCP_CLOSING:
      return "CLOSING";
    default:
      return "UNKNOWN";
  }
}

bool TargetProcess::open(pid_t pid, std::string *error) {
  pid_ = pid;
  int fd = sys_pidfd_open(pid);
  if (fd < 0) {
    switch (errno) {
      case ESRCH:
        *error = "no such process: " + std::to_string(pid);
        break;
      case ENOSYS:
        *error =
            "this kernel has no pidfd_open(); reading another process's sockets needs "
            "Linux 5.6 or later (pidfd_open and pidfd_getfd)";
        break;
      case EINVAL:  // a thread ID, before Linux 6.9
      case ENOENT:  // a thread ID, since Linux 6.9
        *error = std::to_string(pid) +
                 " is not a process ID but a thread of one; give the process's PID "
                 "(the Tgid: line of /proc/" +
                 std::to_string(pid) + "/status)";
        break;
      default:
        *error = std::string("cannot open process ") + std::to_string(pid) + ": " + strerror(errno);
    }
    return false;
  }
  pidfd_ = UniqueFd(fd);
  return true;
}

std::string TargetProcess::proc_path(const char *leaf) const {
  return "/proc/" + std::to_string(pid_) + "/" + leaf;
}

bool TargetProcess::exited() const {
  pollfd entry{pidfd_.get(), POLLIN, 0};
  return poll(&entry, 1, 0) == 1 && (entry.revents & POLLIN) != 0;
}

UniqueFd TargetProcess::open_executable(std::string *path) const {
  std::string link = proc_path("exe");
  char target[PATH_MAX];
  ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
  *path = n > 0 ? std::string(target, static_cast<size_t>(n)) : link;
  return UniqueFd(::open(link.c_str(), O_RDONLY | O_CLOEXEC));
}

std::string TargetProcess::command_name() const {
  std::string name;
  if (!read_file(proc_path("comm"), &name)) return "";
  while (!name.empty() && name.back() == '\n') name.pop_back();
  return name;
}

// Why access to the process was refused, and what would grant it.
std::string TargetProcess::access_denied(const char *what) const {
  std::string message = std::string("permission denied: ") + what + " of process " +
                        std::to_string(pid_) + " needs ptrace access to it";
  // The effective user from /proc/PID/status: the owner of /proc/PID is
  // root for a non-dumpable process, whoever it runs as.
  uid_t me = geteuid();
  std::string status;
  const char *uid_line = nullptr;
  if (read_file(proc_path("status"), &status)) uid_line = strstr(status.c_str(), "\nUid:");
  unsigned long real_uid = 0, effective_uid = 0;
  bool other_user = uid_line != nullptr &&
                    sscanf(uid_line, "\nUid: %lu %lu", &real_uid, &effective_uid) == 2 &&
                    effective_uid != me;
  int scope = ptrace_scope();
  if (scope == 3) {
    return message +
           ": the Yama ptrace policy (kernel.yama.ptrace_scope=3) forbids it for everyone, "
           "root included, until the next reboot";
  }
  if (me == 0 && !has_cap_sys_ptrace()) {
    // Root, but with a reduced capability set (a container, a unit's
    // CapabilityBoundingSet, capsh --drop): listing /proc/PID/fd works,
    // reading the links and pidfd_getfd do not.
    return message + ": " +
           (other_user ? "it runs as " + user_name(static_cast<uid_t>(effective_uid)) + " and " +
                             "you are root (uid 0) "
                       : std::string("you are root (uid 0) ")) +
           "without CAP_SYS_PTRACE in your effective capabilities (a container or a service's "
           "CapabilityBoundingSet may drop it); run with CAP_SYS_PTRACE";
  }
  if (other_user) {
    return message + ": it runs as " + user_name(static_cast<uid_t>(effective_uid)) +
           " and you are " + user_name(me) +
           "; run it as root (e.g. with sudo) or with CAP_SYS_PTRACE";
  }
  switch (scope) {
    case 1:
      return message +
             ": the Yama ptrace policy (kernel.yama.ptrace_scope=1) lets a same-user process "
             "reach only its own descendants; run as root or with CAP_SYS_PTRACE";
    case 2:
      return message +
             ": the Yama ptrace policy (kernel.yama.ptrace_scope=2) requires CAP_SYS_PTRACE; "
             "run as root";
    default:
      return message +
             ": the process is yours but not dumpable (it changed its user or group IDs, or "
             "set PR_SET_DUMPABLE to 0); run with CAP_SYS_PTRACE (e.g. as root)";
  }
}

bool TargetProcess::socket_descriptors(std::vector<std::pair<int, unsigned long long>> *out,
                                       Unexamined *unexamined, std::string *error) const {
  out->clear();
  unexamined->fds.clear();
  unexamined->reason.clear();
  std::string fd_dir = proc_path("fd");
  DIR *dir = opendir(fd_dir.c_str());
  if (dir == nullptr) {
    if (errno == EACCES || errno == EPERM) return socket_descriptors_by_duplication(out, error);
    if (errno == ENOENT) {
      *error = "process " + std::to_string(pid_) + " exited";
    } else {
      *error = "cannot read " + fd_dir + ": " + strerror(errno);
    }
    return false;
  }
  // A link that cannot be read is not a descriptor closed meanwhile (ENOENT):
  // without ptrace access (root without CAP_SYS_PTRACE too) the directory
  // lists but every link says EACCES, and those descriptors may be sockets.
  int unreadable_links = 0;
  int link_error = 0;
  while (dirent *entry = readdir(dir)) {
    char *end = nullptr;
    long fd_number = strtol(entry->d_name, &end, 10);
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9' || *end != '\0') continue;
    char link[64];
    ssize_t n = readlinkat(dirfd(dir), entry->d_name, link, sizeof link - 1);
    if (n <= 0) {
      if (n < 0 && errno == ENOENT) continue;  // closed meanwhile
      link_error = n < 0 ? errno : EIO;
      unexamined->fds.push_back(static_cast<int>(fd_number));
      ++unreadable_links;
      continue;
    }
    link[n] = '\0';
    if (is_socket_link(link)) {
      out->emplace_back(static_cast<int>(fd_number), strtoull(link + 8, nullptr, 10));
    }
  }
  closedir(dir);
  std::sort(out->begin(), out->end());
  if (unreadable_links > 0) {
    unexamined->reason = link_error == EACCES || link_error == EPERM
                             ? access_denied("reading the descriptors")
                             : "cannot read their links in " + fd_dir + ": " + strerror(link_error);
  }
  return true;
}

bool TargetProcess::socket_descriptors_by_duplication(
    std::vector<std::pair<int, unsigned long long>> *out, std::string *error) const {
  std::string status;
  const char *line = nullptr;
  if (read_file(proc_path("status"), &status)) line = strstr(status.c_str(), "\nFDSize:");
  long fd_size = 0;
  if (line == nullptr || sscanf(line, "\nFDSize: %ld", &fd_size) != 1 || fd_size <= 0) {
    *error = access_denied("reading the descriptors");
    return false;
  }
  for (int target_fd = 0; target_fd < fd_size; ++target_fd) {
    UniqueFd dup(sys_pidfd_getfd(pidfd_.get(), target_fd));
    if (!dup.valid()) {
      if (errno == EBADF) continue;  // no such descriptor
      // Refused: the directory was closed for want of ptrace access, not of
      // a capability to read it; said as for the directory.
      *error = errno == EPERM || errno == EACCES
                   ? access_denied("reading the descriptors")
                   : "pidfd_getfd(" + std::to_string(pid_) + ", fd " + std::to_string(target_fd) +
                         "): " + strerror(errno);
      return false;
    }
    struct stat st;
    if (fstat(dup.get(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      out->emplace_back(target_fd, static_cast<unsigned long long>(st.st_ino));
    }
  }
  return true;
}

bool TargetProcess::read_tcp_sockets(std::vector<TcpSocket> *out, Unexamined *unexamined,
                                     std::string *error) const {
  out->clear();
  std::vector<std::pair<int, unsigned long long>> socket_fds;
  if (!socket_descriptors(&socket_fds, unexamined, error)) return false;

  int duplicated = 0;
  for (const auto &[target_fd, socket_inode] : socket_fds) {
    int dup = sys_pidfd_getfd(pidfd_.get(), target_fd);
    if (dup < 0) {
      switch (errno) {
        case EBADF:
          continue;  // closed since the listing
        case EPERM:
        case EACCES:
          unexamined->fds.push_back(target_fd);
          if (unexamined->reason.empty()) {
            unexamined->reason = access_denied("duplicating the sockets (pidfd_getfd)");
          }
          continue;
        case ESRCH:
          *error = "process " + std::to_string(pid_) + " exited";
          return false;
        case ENOSYS:
          *error =
              "this kernel has no pidfd_getfd(); reading another process's sockets needs "
              "Linux 5.6 or later";
          return false;
        default:
          *error = "pidfd_getfd(" + std::to_string(pid_) + ", fd " + std::to_string(target_fd) +
                   "): " + strerror(errno);
          return false;
      }
    }
    ++duplicated;
    UniqueFd owned(dup);
    TcpSocket socket;
    // The duplicate is read, not the listing: the fd may have been reused since.
    if (describe_socket(owned.get(), target_fd, &socket)) out->push_back(socket);
  }
  std::sort(unexamined->fds.begin(), unexamined->fds.end());
  if (exited()) {
    *error = "process " + std::to_string(pid_) + " exited while it was being read";
    return false;
  }
  if (!unexamined->fds.empty() && duplicated == 0) {
    // Not one descriptor that could be a socket was reached: an error, not
    // an empty report.
    *error = unexamined->reason;
    return false;
  }
  classify_directions(out);
  return true;
}

UniqueFd TargetProcess::duplicate_socket(const TcpSocket &socket, std::string *error,
                                         bool *gone) const {
  if (gone != nullptr) *gone = false;
  UniqueFd dup(sys_pidfd_getfd(pidfd_.get(), socket.fd));
  if (!dup.valid()) {
    int error_number = errno;
    if (gone != nullptr) *gone = error_number == EBADF;
    *error = error_number == EPERM || error_number == EACCES
                 ? access_denied("duplicating the sockets (pidfd_getfd)")
             : error_number == EBADF
                 ? "fd " + std::to_string(socket.fd) + " was closed meanwhile"
                 : "fd " + std::to_string(socket.fd) + ": " + strerror(error_number);
    return UniqueFd();
  }
  struct stat st;
  if (fstat(dup.get(), &st) != 0 || st.st_ino != socket.inode) {
    if (gone != nullptr) *gone = true;
    *error = "fd " + std::to_string(socket.fd) + " is no longer the same socket";
    return UniqueFd();
  }
  return dup;
}

bool TargetProcess::loaded_keepalive_libraries(std::vector<std::string> *out,
                                               std::string *error) const {
  out->clear();
  std::string maps;
  if (!read_file(proc_path("maps"), &maps)) {
    *error = errno == EACCES || errno == EPERM
                 ? access_denied("reading the memory map")
                 : "cannot read " + proc_path("maps") + ": " + strerror(errno);
    return false;
  }
  size_t start = 0;
  while (start < maps.size()) {
    size_t end = maps.find('\n', start);
    if (end == std::string::npos) end = maps.size();
    std::string_view line(maps.data() + start, end - start);
    start = end + 1;
    size_t slash = line.find('/');
    if (slash == std::string_view::npos) continue;
    std::string path(line.substr(slash));
    if (!is_keepalive_library(path)) continue;
    if (std::find(out->begin(), out->end(), path) == out->end()) out->push_back(path);
  }
  return true;
}

bool TargetProcess::keepalive_environment(std::vector<std::pair<std::string, std::string>> *out,
                                          std::string *error) const {
  out->clear();
  std::string environ_text;
  if (!read_file(proc_path("environ"), &environ_text)) {
    *error = errno == EACCES || errno == EPERM
                 ? access_denied("reading the environment")
                 : "cannot read " + proc_path("environ") + ": " + strerror(errno);
    return false;
  }
  size_t start = 0;
  while (start < environ_text.size()) {
    size_t end = environ_text.find('\0', start);
    if (end == std::string::npos) end = environ_text.size();
    std::string entry = environ_text.substr(start, end - start);
    start = end + 1;
    size_t equals = entry.find('=');
    if (equals == std::string::npos) continue;
    std::string name = entry.substr(0, equals);
    if (name.rfind("KEEPALIVE", 0) == 0 || name == "LD_PRELOAD") {
      out->emplace_back(name, entry.substr(equals + 1));
    }
  }
  return true;
}

keepalive_direction connection_direction(const TcpSocket &socket,
                                         const std::set<uint16_t> &listening_ports) {
  bool incoming =
      socket.connected && socket.has_local && listening_ports.count(port_of(socket.local)) != 0;
  return incoming ? KEEPALIVE_IN : KEEPALIVE_OUT;
}

const char *direction_name(const TcpSocket &socket) {
  if (socket.listening) return "listen";
  if (!socket.connected) return "-";
  return socket.direction == KEEPALIVE_IN ? "in" : "out";
}

}  // namespace keepalive_cli
