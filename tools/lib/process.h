// process.h — a running process seen from outside: a pidfd on it, its TCP
// sockets (each duplicated with pidfd_getfd, read with getsockopt, closed at
// once), the libraries it has mapped and its KEEPALIVE_* environment.
//
// Used by `keepalive inspect`, and by the socket pass (socket_pass.h),
// which sets options through duplicate_socket.
// Both report a socket with direction_name and socket_identity_json.
// Nothing here changes the target: duplicates share its sockets, and only
// getsockopt/getsockname/getpeername are called on them.
#ifndef KEEPALIVE_TOOLS_PROCESS_H
#define KEEPALIVE_TOOLS_PROCESS_H

#include <sys/socket.h>
#include <sys/types.h>

#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "keepalive/keepalive.h"

namespace keepalive_cli {

// Owns a file descriptor; closes it when destroyed.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd &&other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd &operator=(UniqueFd &&other) noexcept;
  UniqueFd(const UniqueFd &) = delete;
  UniqueFd &operator=(const UniqueFd &) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset();
  // Gives the descriptor up to the caller, who closes it; -1 stays.
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

// Parses a command-line PID ("1234"): a positive number that fits pid_t.
bool parse_pid(const char *text, pid_t *out);

// True when the file `path` names is libkeepalive.so or a versioned name of it
// (libkeepalive.so.0, libkeepalive.so.0.1.0), in any directory.
bool is_keepalive_library(std::string_view path);

// One TCP socket of the target process, as read through a duplicate.
struct TcpSocket {
  int fd = -1;                   // descriptor number in the target process
  unsigned long long inode = 0;  // socket inode (the N of socket:[N], ss's ino:N)
  int family = 0;                // AF_INET or AF_INET6
  int state = 0;                 // TCP_ESTABLISHED, TCP_LISTEN, ... (tcpi_state)
  bool has_local = false;
  bool has_peer = false;
  sockaddr_storage local{};
  sockaddr_storage peer{};
  bool keepalive_read = false;     // false: the options could not be read
  keepalive_settings keepalive{};  // enable = SO_KEEPALIVE; kernel values when never set
  // Set by read_tcp_sockets, from all the process's sockets.
  bool listening = false;
  bool connected = false;
  keepalive_direction direction = KEEPALIVE_OUT;
};

// Descriptors of the target that could not be examined: each may be a TCP
// connection that is then missing from the result.
struct Unexamined {
  std::vector<int> fds;  // sorted
  std::string reason;    // what is missing, e.g. "permission denied: ... CAP_SYS_PTRACE"
};

// ss-style name of a TCP state: "ESTAB", "LISTEN", "SYN-SENT", ...
const char *tcp_state_name(int state);

// A pidfd on a process, and what can be read about it from outside.
class TargetProcess {
 public:
  // Opens a pidfd. On failure, *error says why (no such process, kernel too
  // old, ...) and false is returned.
  bool open(pid_t pid, std::string *error);

  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }

  // Short command name from /proc/PID/comm ("" when unreadable).
  std::string command_name() const;

  // Every TCP socket of the process, sorted by descriptor number, with its
  // direction (connection_direction) and listening/connected marks, and in
  // *unexamined the descriptors that could not be looked at (their link in
  // /proc/PID/fd unreadable, or a socket pidfd_getfd refused). Fails, with a
  // message naming the missing permission (ptrace access: same user under
  // the ptrace policy, or CAP_SYS_PTRACE), when none of the descriptors
  // that could be TCP sockets could be examined; also for an exited process
  // or a kernel lacking pidfd_getfd.
  bool read_tcp_sockets(std::vector<TcpSocket> *out, Unexamined *unexamined,
                        std::string *error) const;

  // Every descriptor of the process that is a socket, with the socket's
  // inode, sorted by descriptor; descriptors whose link cannot be read go to
  // *unexamined. Read from /proc/PID/fd; when that directory is closed to the
  // caller (another user's process, and CAP_SYS_PTRACE without
  // CAP_DAC_READ_SEARCH: enough for pidfd_getfd, not for reading the
  // directory), each descriptor number below the process's FDSize is
  // duplicated instead. Fails like read_tcp_sockets.
  bool socket_descriptors(std::vector<std::pair<int, unsigned long long>> *out,
                          Unexamined *unexamined, std::string *error) const;

  // A duplicate of the target's descriptor for `socket`, checked to still
  // be the same socket (inode); invalid with *error set otherwise. *gone
  // (may be null) tells whether that was because the process closed the
  // descriptor, or reused it for another file, since it was read.
  UniqueFd duplicate_socket(const TcpSocket &socket, std::string *error,
                            bool *gone = nullptr) const;

  // Paths of mapped files named libkeepalive.so* (from /proc/PID/maps).
  // Returns false with *error set when the maps cannot be read.
  bool loaded_keepalive_libraries(std::vector<std::string> *out, std::string *error) const;

  // NAME=VALUE pairs of the process's initial environment whose name starts
  // with KEEPALIVE, plus LD_PRELOAD. Returns false with *error set when
  // /proc/PID/environ cannot be read.
  bool keepalive_environment(std::vector<std::pair<std::string, std::string>> *out,
                             std::string *error) const;

  // The process's program file (/proc/PID/exe) opened for reading, and its
  // path in *path; invalid when it cannot be opened (no ptrace access).
  UniqueFd open_executable(std::string *path) const;

  // True when the process has exited since open().
  bool exited() const;

 private:
  std::string proc_path(const char *leaf) const;
  std::string access_denied(const char *what) const;
  bool socket_descriptors_by_duplication(std::vector<std::pair<int, unsigned long long>> *out,
                                         std::string *error) const;

  pid_t pid_ = 0;
  UniqueFd pidfd_;
};

// The port of an AF_INET/AF_INET6 address in host order; 0 for other families.
uint16_t port_of(const sockaddr_storage &address);

// A connected socket's direction: incoming (accepted) when its local port
// is one of `listening_ports`, the ports the process listens on; else
// outgoing, as for a socket that is not connected.
keepalive_direction connection_direction(const TcpSocket &socket,
                                         const std::set<uint16_t> &listening_ports);

// A classified socket's direction: "listen", "in", "out", or "-" for one
// neither listening nor connected.
const char *direction_name(const TcpSocket &socket);

}  // namespace keepalive_cli

#endif  // KEEPALIVE_TOOLS_PROCESS_H
