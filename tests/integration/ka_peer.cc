// ka_peer: the integration tests' helper program. The tests run it with and
// without LD_PRELOAD of libkeepalive.so; it never links the library itself.
//
// It performs one scenario and reports what it saw as key=value lines:
//   process.preloaded=0|1  whether libkeepalive is loaded in this process
//   call.<step>.<field>    what a call returned: ret, errno (preset to EDOM
//                          before each call, so success must leave EDOM),
//                          addrlen, addr, flags... — identical with and
//                          without the library, or the library leaks through
//   listen.<name>.port     the port a listener got (bound to port 0)
//   sock.<name>.<field>    a socket's options read back by getsockopt:
//                          fd, keepalive, idle, intvl, cnt, user_timeout, and
//                          its inode, local and peer (as `ss -tn` prints them)
// then prints "ready" and waits until stdin closes, so that the test can run
// `ss -tnoe` while the sockets are alive.
//
// Scenarios:
//   ka_peer script STEP...   listen/accept/connect steps (see RunScript)
//   ka_peer errors           the errno/return pass-through table
//   ka_peer untouched        Unix, UDP and MPTCP sockets, plus a TCP control
#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

namespace {

constexpr int kErrnoSentinel = EDOM;  // libc leaves errno alone on success
constexpr int kPollTimeoutMs = 5000;

[[noreturn]] void Die(const std::string &what) {
  std::fprintf(stderr, "ka_peer: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(2);
}

void Report(const std::string &key, const std::string &value) {
  std::printf("%s=%s\n", key.c_str(), value.c_str());
}
void Report(const std::string &key, long long value) { Report(key, std::to_string(value)); }

std::string ErrnoName(int error) {
  const char *name = strerrorname_np(error);
  return name ? name : std::to_string(error);
}

// ---- addresses -------------------------------------------------------------

struct Address {
  sockaddr_storage storage{};
  socklen_t len = 0;
  const sockaddr *get() const { return reinterpret_cast<const sockaddr *>(&storage); }
  sockaddr *get() { return reinterpret_cast<sockaddr *>(&storage); }
};

Address MakeAddress(const std::string &host, uint16_t port) {
  Address a;
  auto *v4 = reinterpret_cast<sockaddr_in *>(&a.storage);
  auto *v6 = reinterpret_cast<sockaddr_in6 *>(&a.storage);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.len = sizeof(sockaddr_in6);
  } else {
    errno = EINVAL;
    Die("bad address " + host);
  }
  return a;
}

// "127.0.0.1" / "::1"; with_port: "127.0.0.1:80" / "[::1]:80" as ss prints.
std::string FormatAddress(const sockaddr *sa, bool with_port) {
  char text[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  bool v6 = sa->sa_family == AF_INET6;
  if (sa->sa_family == AF_INET) {
    auto *v4 = reinterpret_cast<const sockaddr_in *>(sa);
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    port = ntohs(v4->sin_port);
  } else if (v6) {
    auto *a6 = reinterpret_cast<const sockaddr_in6 *>(sa);
    inet_ntop(AF_INET6, &a6->sin6_addr, text, sizeof text);
    port = ntohs(a6->sin6_port);
  } else {
    return "family" + std::to_string(sa->sa_family);
  }
  if (!with_port) return text;
  return (v6 ? "[" + std::string(text) + "]" : std::string(text)) + ":" + std::to_string(port);
}

int PortOf(const sockaddr *sa) {
  if (sa->sa_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in *>(sa)->sin_port);
  if (sa->sa_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6 *>(sa)->sin6_port);
  return -1;
}

int LocalPort(int fd) {
  Address a;
  a.len = sizeof a.storage;
  if (getsockname(fd, a.get(), &a.len) != 0) Die("getsockname");
  return PortOf(a.get());
}

// ---- sockets ---------------------------------------------------------------

// Every socket the scenario made, by name, in creation order, for `show`.
std::vector<std::pair<std::string, int>> g_sockets;
std::map<std::string, int> g_listeners;

int GetIntOption(int fd, int level, int option, const char *what) {
  int value = 0;
  socklen_t len = sizeof value;
  if (getsockopt(fd, level, option, &value, &len) != 0) Die(std::string("getsockopt ") + what);
  return value;
}

// Reports sock.<name>.*: the options as this process sees them.
void ShowSocket(const std::string &name, int fd) {
  const std::string p = "sock." + name + ".";
  Report(p + "fd", fd);
  Report(p + "keepalive", GetIntOption(fd, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE"));
  int protocol = GetIntOption(fd, SOL_SOCKET, SO_PROTOCOL, "SO_PROTOCOL");
  // MPTCP answers TCP_KEEPIDLE (and refuses TCP_USER_TIMEOUT).
  if (protocol == IPPROTO_TCP || protocol == IPPROTO_MPTCP)
    Report(p + "idle", GetIntOption(fd, IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE"));
  if (protocol == IPPROTO_TCP) {
    Report(p + "intvl", GetIntOption(fd, IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL"));
    Report(p + "cnt", GetIntOption(fd, IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT"));
    Report(p + "user_timeout", GetIntOption(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, "TCP_USER_TIMEOUT"));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) Die("fstat");
  Report(p + "ino", static_cast<long long>(st.st_ino));
  Address local, peer;
  local.len = peer.len = sizeof(sockaddr_storage);
  if (getsockname(fd, local.get(), &local.len) == 0 && local.len > sizeof(sa_family_t))
    Report(p + "local", FormatAddress(local.get(), true));
  if (getpeername(fd, peer.get(), &peer.len) == 0)
    Report(p + "peer", FormatAddress(peer.get(), true));
}

void ShowAll() {
  for (const auto &[name, fd] : g_sockets) ShowSocket(name, fd);
}

bool IsNonblocking(int fd) { return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0; }
bool IsCloexec(int fd) { return (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0; }

bool WaitFor(int fd, short events) {
  pollfd p{fd, events, 0};
  return poll(&p, 1, kPollTimeoutMs) == 1;
}

// Runs one call with errno preset to the sentinel; reports call.<step>.ret
// and .errno (the sentinel when the call succeeded and left errno alone).
int Call(const std::string &step, const std::function<int()> &call) {
  errno = kErrnoSentinel;
  int ret = call();
  int error = errno;
  Report("call." + step + ".ret", ret);
  Report("call." + step + ".errno", ErrnoName(error));
  errno = error;
  return ret;
}

// A loopback listener: family "4" (127.0.0.1), "6" (::1) or "mapped" (an
// IPv6 dual-stack socket bound to ::ffff:127.0.0.1, so that it accepts IPv4
// clients as v4-mapped peers without listening beyond loopback).
int Listen(const std::string &family, bool nonblock) {
  if (family != "4" && family != "6" && family != "mapped") {
    errno = EINVAL;
    Die("bad family " + family);
  }
  bool v4 = family == "4";
  int fd = socket(v4 ? AF_INET : AF_INET6, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) Die("socket");
  int v6only = family == "6" ? 1 : 0;
  if (!v4 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) != 0)
    Die("IPV6_V6ONLY");
  Address a = MakeAddress(v4 ? "127.0.0.1" : family == "6" ? "::1" : "::ffff:127.0.0.1", 0);
  if (bind(fd, a.get(), a.len) != 0) Die("bind listener");
  if (listen(fd, 16) != 0) Die("listen");
  return fd;
}

// "accept", or "accept4" with "+nonblock" / "+cloexec" flags.
struct AcceptCall {
  bool is_accept4 = false;
  int flags = 0;
};

AcceptCall ParseAcceptCall(const std::string &text) {
  AcceptCall c;
  if (text == "accept") return c;
  if (text.rfind("accept4", 0) != 0) {
    errno = EINVAL;
    Die("bad accept call " + text);
  }
  c.is_accept4 = true;
  if (text.find("+nonblock") != std::string::npos) c.flags |= SOCK_NONBLOCK;
  if (text.find("+cloexec") != std::string::npos) c.flags |= SOCK_CLOEXEC;
  return c;
}

// Accepts on `listener` and reports the call, the returned address (its
// family/address, and whether its port is the peer's) and the new socket's
// O_NONBLOCK / FD_CLOEXEC. Returns the new fd or -1.
int AcceptStep(const std::string &name, int listener, const AcceptCall &how) {
  Address peer;
  peer.len = sizeof peer.storage;
  int fd = Call(name, [&] {
    return how.is_accept4 ? accept4(listener, peer.get(), &peer.len, how.flags)
                          : accept(listener, peer.get(), &peer.len);
  });
  if (fd < 0) return -1;
  const std::string p = "call." + name + ".";
  Report(p + "addrlen", peer.len);
  Report(p + "addr", FormatAddress(peer.get(), false));
  Address real;
  real.len = sizeof real.storage;
  if (getpeername(fd, real.get(), &real.len) != 0) Die("getpeername");
  Report(p + "addr_port_is_peer", PortOf(peer.get()) == PortOf(real.get()));
  Report(p + "nonblock", IsNonblocking(fd));
  Report(p + "cloexec", IsCloexec(fd));
  return fd;
}

// Connects a new TCP socket to host:port; a non-blocking connect is then
// awaited (when `wait`) and its SO_ERROR reported. Returns the fd.
int ConnectStep(const std::string &name, const std::string &host, uint16_t port, bool nonblock,
                bool wait) {
  Address to = MakeAddress(host, port);
  int fd = socket(to.storage.ss_family, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) Die("socket");
  int ret = Call(name, [&] { return connect(fd, to.get(), to.len); });
  if (ret != 0 && errno == EINPROGRESS && wait) {
    if (!WaitFor(fd, POLLOUT)) Die("connect never completed");
    Report("call." + name + ".so_error",
           ErrnoName(GetIntOption(fd, SOL_SOCKET, SO_ERROR, "SO_ERROR")));
  }
  return fd;
}

// ---- scenario: script ------------------------------------------------------
//
// Steps, run in order:
//   listen NAME 4|6|mapped [nonblock]     prints listen.NAME.port
//   inherit NAME FD                       a listener the test passed in (as
//                                         systemd socket activation does)
//   tryaccept NAME LISTENER CALL          calls at once (EAGAIN when nothing waits)
//   accept NAME LISTENER CALL             waits (poll) for a connection, then calls
//   connect NAME HOST PORT|@LISTENER [nonblock [nowait]]
//                                         nowait: leave a non-blocking connect
//                                         in progress
//   again STEP SOCKET HOST PORT|@LISTENER connect() once more on an existing
//                                         socket (a listener, or one already
//                                         connected: EISCONN)
//   setidle SOCKET SECONDS                TCP_KEEPIDLE set by the application
//   socket NAME 4|6                       a TCP socket, not yet connected (for
//                                         options set before `again`)
//   bound NAME                            a socket bound to 127.0.0.1, never
//                                         listening: @NAME is a refused port
//   keepalive SOCKET IDLE INTVL CNT       SO_KEEPALIVE on and the values set by
//                                         the application (0: that one not set)
//   show                                  reports sock.* of every socket so far
//   pause                                 prints "paused" and waits for a line
//                                         on stdin (the test changes something)
// CALL is accept | accept4[+nonblock][+cloexec].
int RunScript(const std::vector<std::string> &args) {
  size_t i = 0;
  auto next = [&](const char *what) -> const std::string & {
    if (i >= args.size()) {
      errno = EINVAL;
      Die(std::string("script: missing ") + what);
    }
    return args[i++];
  };
  auto flag = [&](const std::string &word) {
    bool present = i < args.size() && args[i] == word;
    if (present) ++i;
    return present;
  };
  auto listener = [&](const std::string &name) {
    auto it = g_listeners.find(name);
    if (it == g_listeners.end()) {
      errno = EINVAL;
      Die("script: no listener " + name);
    }
    return it->second;
  };
  auto socket_named = [&](const std::string &name) {
    for (const auto &[known, fd] : g_sockets)
      if (known == name) return fd;
    errno = EINVAL;
    Die("script: no socket " + name);
  };
  while (i < args.size()) {
    const std::string &step = next("step");
    if (step == "listen") {
      std::string name = next("name"), family = next("family");
      int fd = Listen(family, flag("nonblock"));
      g_listeners[name] = fd;
      g_sockets.emplace_back(name, fd);
      Report("listen." + name + ".port", LocalPort(fd));
    } else if (step == "inherit") {
      std::string name = next("name");
      int fd = std::atoi(next("fd").c_str());
      g_listeners[name] = fd;
      Report("listen." + name + ".port", LocalPort(fd));
    } else if (step == "accept" || step == "tryaccept") {
      std::string name = next("name");
      int lfd = listener(next("listener"));
      AcceptCall how = ParseAcceptCall(next("call"));
      if (step == "accept" && !WaitFor(lfd, POLLIN)) Die("no connection to accept");
      int fd = AcceptStep(name, lfd, how);
      if (fd >= 0) g_sockets.emplace_back(name, fd);
    } else if (step == "connect") {
      std::string name = next("name"), host = next("host"), port = next("port");
      bool nonblock = flag("nonblock");
      bool wait = !(nonblock && flag("nowait"));
      int port_number =
          port[0] == '@' ? LocalPort(listener(port.substr(1))) : std::atoi(port.c_str());
      int fd = ConnectStep(name, host, static_cast<uint16_t>(port_number), nonblock, wait);
      g_sockets.emplace_back(name, fd);
    } else if (step == "again") {
      std::string name = next("step name");
      int fd = socket_named(next("socket"));
      std::string host = next("host"), port = next("port");
      int port_number =
          port[0] == '@' ? LocalPort(listener(port.substr(1))) : std::atoi(port.c_str());
      Address to = MakeAddress(host, static_cast<uint16_t>(port_number));
      Call(name, [&] { return connect(fd, to.get(), to.len); });
    } else if (step == "setidle") {
      int fd = socket_named(next("socket"));
      int seconds = std::atoi(next("seconds").c_str());
      if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &seconds, sizeof seconds) != 0)
        Die("TCP_KEEPIDLE");
    } else if (step == "socket") {
      std::string name = next("name"), family = next("family");
      int fd = socket(family == "6" ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
      if (fd < 0) Die("socket");
      g_sockets.emplace_back(name, fd);
    } else if (step == "bound") {
      std::string name = next("name");
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      Address a = MakeAddress("127.0.0.1", 0);
      if (fd < 0 || bind(fd, a.get(), a.len) != 0) Die("bound socket");
      g_listeners[name] = fd;
    } else if (step == "keepalive") {
      int fd = socket_named(next("socket"));
      int on = 1;
      if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) != 0) Die("SO_KEEPALIVE");
      for (int option : {TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT}) {
        int value = std::atoi(next("value").c_str());
        if (value != 0 && setsockopt(fd, IPPROTO_TCP, option, &value, sizeof value) != 0)
          Die("TCP_KEEP*");
      }
    } else if (step == "show") {
      ShowAll();
    } else if (step == "pause") {
      std::printf("paused\n");
      std::fflush(stdout);
      char line[16];
      if (!std::fgets(line, sizeof line, stdin)) Die("pause: stdin closed");
    } else {
      errno = EINVAL;
      Die("script: unknown step " + step);
    }
  }
  return 0;
}

// ---- scenario: errors ------------------------------------------------------

// A page that faults on access: a pointer the kernel answers with EFAULT.
void *FaultingPage() {
  void *page = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) Die("mmap");
  return page;
}

std::string Hex(const unsigned char *bytes, size_t n) {
  std::string out;
  char two[3];
  for (size_t k = 0; k < n; ++k) {
    std::snprintf(two, sizeof two, "%02x", bytes[k]);
    out += two;
  }
  return out;
}

// Each case makes what it needs, calls once, reports and closes what it
// made, so that fd numbers (reported as return values) repeat between runs.
int RunErrors() {
  const int listener4 = Listen("4", false);
  const int listener6 = Listen("6", false);
  const int idle_listener = Listen("4", true);  // non-blocking, nothing ever waits
  const int port4 = LocalPort(listener4), port6 = LocalPort(listener6);
  // A bound, non-listening socket: its port refuses connections.
  const int reserved = socket(AF_INET, SOCK_STREAM, 0);
  Address any4 = MakeAddress("127.0.0.1", 0);
  if (reserved < 0 || bind(reserved, any4.get(), any4.len) != 0) Die("reserve a port");
  const int refused_port = LocalPort(reserved);
  const int reserved6 = socket(AF_INET6, SOCK_STREAM, 0);
  Address any6 = MakeAddress("::1", 0);
  if (reserved6 < 0 || bind(reserved6, any6.get(), any6.len) != 0) Die("reserve a v6 port");
  const int refused_port6 = LocalPort(reserved6);
  const int devnull = open("/dev/null", O_RDWR);
  if (devnull < 0) Die("open /dev/null");
  const int closed_fd = dup(devnull);
  close(closed_fd);
  void *faulting = FaultingPage();

  auto tcp = [](int family, int flags = 0) {
    int fd = socket(family, SOCK_STREAM | flags, 0);
    if (fd < 0) Die("socket");
    return fd;
  };
  // A client connection waiting in listener4's queue (made without Call:
  // its connect is not what the case is about).
  auto pending = [&](int listener, const char *host, int port) {
    Address to = MakeAddress(host, static_cast<uint16_t>(port));
    int fd = tcp(to.storage.ss_family);
    if (connect(fd, to.get(), to.len) != 0 || !WaitFor(listener, POLLIN)) Die("pending connection");
    return fd;
  };
  auto close_if = [](int fd) {
    if (fd >= 0) close(fd);
  };
  Address to_refused = MakeAddress("127.0.0.1", static_cast<uint16_t>(refused_port));
  Address to_refused6 = MakeAddress("::1", static_cast<uint16_t>(refused_port6));
  Address to_listener = MakeAddress("127.0.0.1", static_cast<uint16_t>(port4));

  // connect() -------------------------------------------------------------
  {
    int fd = tcp(AF_INET);
    Call("connect_refused_v4", [&] { return connect(fd, to_refused.get(), to_refused.len); });
    close(fd);
  }
  {
    int fd = tcp(AF_INET6);
    Call("connect_refused_v6", [&] { return connect(fd, to_refused6.get(), to_refused6.len); });
    close(fd);
  }
  for (auto [name, to] : {std::pair{"connect_refused_nonblock", &to_refused},
                          std::pair{"connect_inprogress", &to_listener}}) {
    int fd = tcp(AF_INET, SOCK_NONBLOCK);
    int ret = Call(name, [&] { return connect(fd, to->get(), to->len); });
    if (ret != 0 && errno == EINPROGRESS) {
      if (!WaitFor(fd, POLLOUT)) Die("connect never completed");
      Report(std::string("call.") + name + ".so_error",
             ErrnoName(GetIntOption(fd, SOL_SOCKET, SO_ERROR, "SO_ERROR")));
    }
    close(fd);
  }
  {
    int fd = pending(listener4, "127.0.0.1", port4);
    Call("connect_isconn", [&] { return connect(fd, to_listener.get(), to_listener.len); });
    close(fd);
    close_if(accept(listener4, nullptr, nullptr));
  }
  Call("connect_badf", [&] { return connect(-1, to_listener.get(), to_listener.len); });
  Call("connect_closed_fd", [&] { return connect(closed_fd, to_listener.get(), to_listener.len); });
  Call("connect_notsock", [&] { return connect(devnull, to_listener.get(), to_listener.len); });
  {
    int fd = tcp(AF_INET);
    Call("connect_short_addrlen",
         [&] { return connect(fd, to_listener.get(), sizeof(sa_family_t)); });
    Call("connect_bad_pointer",
         [&] { return connect(fd, static_cast<sockaddr *>(faulting), sizeof(sockaddr_in)); });
    close(fd);
  }
  {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un nowhere{};
    nowhere.sun_family = AF_UNIX;
    std::snprintf(nowhere.sun_path, sizeof nowhere.sun_path, "/nonexistent/ka_peer.sock");
    Call("connect_unix_enoent",
         [&] { return connect(fd, reinterpret_cast<sockaddr *>(&nowhere), sizeof nowhere); });
    close(fd);
  }
  {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    Call("connect_udp", [&] { return connect(fd, to_refused.get(), to_refused.len); });
    close(fd);
  }

  // accept() and accept4() failures ----------------------------------------
  Address scratch;
  socklen_t scratch_len = sizeof scratch.storage;
  auto reset = [&] { scratch_len = sizeof scratch.storage; };
  reset();
  Call("accept_again", [&] { return accept(idle_listener, scratch.get(), &scratch_len); });
  Report("call.accept_again.addrlen", scratch_len);
  reset();
  Call("accept4_again",
       [&] { return accept4(idle_listener, scratch.get(), &scratch_len, SOCK_CLOEXEC); });
  Report("call.accept4_again.addrlen", scratch_len);
  Call("accept_badf", [&] { return accept(-1, nullptr, nullptr); });
  Call("accept4_badf", [&] { return accept4(-1, nullptr, nullptr, 0); });
  Call("accept_closed_fd", [&] { return accept(closed_fd, nullptr, nullptr); });
  Call("accept_notsock", [&] { return accept(devnull, nullptr, nullptr); });
  Call("accept4_notsock", [&] { return accept4(devnull, nullptr, nullptr, SOCK_NONBLOCK); });
  {
    int fd = tcp(AF_INET);
    Call("accept_not_listening", [&] { return accept(fd, nullptr, nullptr); });
    Call("accept4_not_listening", [&] { return accept4(fd, nullptr, nullptr, 0); });
    close(fd);
  }
  Call("accept4_bad_flags", [&] { return accept4(idle_listener, nullptr, nullptr, 0x1); });

  // accept() and accept4() of a waiting connection --------------------------
  // Each case passes one of these address buffers and reports what the call
  // left in it: `full` (room for any address), `small` (8 bytes filled with
  // 0xaa, addrlen 2: only the family fits) or none.
  enum Buffer { kNone, kFull, kSmall };
  struct AcceptCase {
    const char *name;
    int listener;
    Buffer buffer;
    std::function<int(int)> call;
  };
  unsigned char small[8];
  socklen_t small_len = 0;
  socklen_t negative_len = static_cast<socklen_t>(-1);
  Address full;
  socklen_t full_len = 0;
  const std::vector<AcceptCase> accept_cases = {
      {"accept_null_addr", listener4, kNone, [](int l) { return accept(l, nullptr, nullptr); }},
      {"accept_small_addrlen", listener4, kSmall,
       [&](int l) { return accept(l, reinterpret_cast<sockaddr *>(small), &small_len); }},
      {"accept_null_addrlen", listener4, kFull,
       [&](int l) { return accept(l, full.get(), nullptr); }},
      {"accept_negative_addrlen", listener4, kNone,
       [&](int l) { return accept(l, full.get(), &negative_len); }},
      {"accept_bad_addr_pointer", listener4, kFull,
       [&](int l) { return accept(l, static_cast<sockaddr *>(faulting), &full_len); }},
      {"accept_v4", listener4, kFull, [&](int l) { return accept(l, full.get(), &full_len); }},
      {"accept_v6", listener6, kFull, [&](int l) { return accept(l, full.get(), &full_len); }},
      {"accept4_no_flags", listener4, kFull,
       [&](int l) { return accept4(l, full.get(), &full_len, 0); }},
      {"accept4_nonblock_cloexec", listener4, kFull,
       [&](int l) { return accept4(l, full.get(), &full_len, SOCK_NONBLOCK | SOCK_CLOEXEC); }},
      {"accept4_v6_nonblock", listener6, kFull,
       [&](int l) { return accept4(l, full.get(), &full_len, SOCK_NONBLOCK); }},
  };
  for (const AcceptCase &c : accept_cases) {
    bool v6 = c.listener == listener6;
    int client = pending(c.listener, v6 ? "::1" : "127.0.0.1", v6 ? port6 : port4);
    std::memset(small, 0xaa, sizeof small);
    small_len = 2;
    full = Address{};
    full_len = sizeof full.storage;
    int fd = Call(c.name, [&] { return c.call(c.listener); });
    const std::string p = std::string("call.") + c.name + ".";
    if (c.buffer == kSmall) {
      Report(p + "addrlen", small_len);
      Report(p + "bytes", Hex(small, sizeof small));
    } else if (c.buffer == kFull) {
      Report(p + "addrlen", full_len);
      Report(p + "addr", FormatAddress(full.get(), false));
    }
    if (fd >= 0) {
      Report(p + "nonblock", IsNonblocking(fd));
      Report(p + "cloexec", IsCloexec(fd));
    }
    close_if(fd);
    close(client);
  }
  return 0;
}

// ---- scenario: untouched ---------------------------------------------------

// Sockets the library must leave alone (Unix stream, UDP v4/v6, MPTCP), and a
// TCP pair as the control that shows the library was active in this run.
int RunUntouched() {
  // Unix stream: connect, accept, accept4 on an abstract address.
  int unix_listener = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un ua{};
  ua.sun_family = AF_UNIX;
  std::snprintf(ua.sun_path + 1, sizeof ua.sun_path - 1, "ka_peer.%d", getpid());
  socklen_t ua_len =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + std::strlen(ua.sun_path + 1));
  if (unix_listener < 0 || bind(unix_listener, reinterpret_cast<sockaddr *>(&ua), ua_len) != 0 ||
      listen(unix_listener, 4) != 0)
    Die("unix listener");
  for (const char *kind : {"accept", "accept4"}) {
    int client = socket(AF_UNIX, SOCK_STREAM, 0);
    const std::string name = std::string("unix_") + kind;
    Call(name + "_connect",
         [&] { return connect(client, reinterpret_cast<sockaddr *>(&ua), ua_len); });
    g_sockets.emplace_back(name + "_client", client);
    int fd = AcceptStep(name, unix_listener, ParseAcceptCall(kind));
    if (fd >= 0) g_sockets.emplace_back(name + "_server", fd);
  }
  // UDP: connect() only sets the peer.
  for (const char *host : {"127.0.0.1", "::1"}) {
    Address to = MakeAddress(host, 9);
    int fd = socket(to.storage.ss_family, SOCK_DGRAM, 0);
    const std::string name = to.storage.ss_family == AF_INET ? "udp4" : "udp6";
    Call(name, [&] { return connect(fd, to.get(), to.len); });
    g_sockets.emplace_back(name, fd);
  }
  // MPTCP: SOCK_STREAM, but not IPPROTO_TCP.
  int mptcp_listener = socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP);
  Report("mptcp.available", mptcp_listener >= 0);
  if (mptcp_listener >= 0) {
    Address a = MakeAddress("127.0.0.1", 0);
    if (bind(mptcp_listener, a.get(), a.len) != 0 || listen(mptcp_listener, 4) != 0)
      Die("mptcp listener");
    Address to = MakeAddress("127.0.0.1", static_cast<uint16_t>(LocalPort(mptcp_listener)));
    int client = socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP);
    Call("mptcp_connect", [&] { return connect(client, to.get(), to.len); });
    g_sockets.emplace_back("mptcp_client", client);
    int fd = AcceptStep("mptcp_accept", mptcp_listener, ParseAcceptCall("accept"));
    if (fd >= 0) g_sockets.emplace_back("mptcp_server", fd);
  }
  // TCP control.
  int tcp_listener = Listen("4", false);
  int client = ConnectStep("tcp_connect", "127.0.0.1",
                           static_cast<uint16_t>(LocalPort(tcp_listener)), false, true);
  g_sockets.emplace_back("tcp_client", client);
  int fd = AcceptStep("tcp_accept", tcp_listener, ParseAcceptCall("accept"));
  if (fd >= 0) g_sockets.emplace_back("tcp_server", fd);
  ShowAll();
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  alarm(30);  // never outlive a test that lost track of us
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::fprintf(stderr, "usage: ka_peer script STEP... | errors | untouched\n");
    return 2;
  }
  Report("process.preloaded", dlsym(RTLD_DEFAULT, "keepalive_version") != nullptr);
  const std::string scenario = args[0];
  args.erase(args.begin());
  int status;
  if (scenario == "script") {
    status = RunScript(args);
  } else if (scenario == "errors") {
    status = RunErrors();
  } else if (scenario == "untouched") {
    status = RunUntouched();
  } else {
    std::fprintf(stderr, "ka_peer: unknown scenario %s\n", scenario.c_str());
    return 2;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  char buf[256];
  while (std::fgets(buf, sizeof buf, stdin)) {
  }
  return status;
}
