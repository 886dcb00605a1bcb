// odd_peer: the helper of odd_callers_test.cc and hostile_test.cc, run
// under LD_PRELOAD (it never links the library). Each mode connects to
// 127.0.0.1:PORT (a listener of the test) in an unusual way and reports,
// as key=value lines on stdout:
//   process.preloaded=0|1     libkeepalive is loaded in this process
//   process.at_secure=0|1     getauxval(AT_SECURE): secure execution
//   process.stderr_flags=N    fcntl(2, F_GETFL) as main() finds it
//   sock.<name>=<state>       keepalive/idle/intvl/cnt/user_timeout
//
//   ka_odd connect PORT [NAME]   a plain blocking connect (sock.NAME,
//                                default sock.connect)
//   ka_odd clearenv PORT         clears the environment, sets KEEPALIVE=off
//                                and KEEPALIVE_IDLE=999, then connects: the
//                                configuration read at load must still hold
//   ka_odd dlopen LIB PORT       connects through a dlopen()ed library,
//                                again after dlclose + dlopen, from the
//                                program after the last dlclose, and through
//                                an RTLD_DEEPBIND copy
//   ka_odd vfork PORT            vfork + exec of `ka_odd connect PORT vfork`,
//                                and posix_spawn of `... posix_spawn`
//   ka_odd stderr_reused         closes fd 2, then makes a TCP connection to
//                                its own listener whose client socket gets
//                                fd 2 (as in a daemon that closed stderr):
//                                reports the bytes the peer received that
//                                the program never sent (stderr_reused.bytes);
//                                then fd 2 becomes another pipe (the same
//                                file system as a piped stderr, another
//                                inode) and one more connection is made:
//                                stderr_repiped.bytes, what that pipe got
//   ka_odd log_flood N           N connections to its own listener (an
//                                accept and a connect each), then prints
//                                ka_peer::kReadStderrLine and waits up to
//                                20 s for its stderr to take a line
//                                (stderr.writable=0|1), then one connection
//                                more (sock.last_connect, sock.last_accept);
//                                stderr.flags_after: F_GETFL of fd 2 then
//   ka_odd idle                  nothing (a host for libka_early.so)
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "peer_util.h"

extern char **environ;

namespace {

void Report(const std::string &key, const std::string &value) {
  printf("%s=%s\n", key.c_str(), value.c_str());
  fflush(stdout);
}

int ConnectTo(uint16_t port) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in to = ka_peer::Loopback4("127.0.0.1", port);
  errno = ka_peer::kErrnoSentinel;
  int ret = connect(s, reinterpret_cast<sockaddr *>(&to), sizeof to);
  Report("call.connect", ka_peer::Outcome(ret, errno));
  return s;
}

void ReportSock(const std::string &name, int fd) {
  Report("sock." + name, fd < 0 ? "no socket" : ka_peer::StateText(ka_peer::ReadState(fd)));
  if (fd >= 0) close(fd);
}

using DlConnect = int (*)(int);

void ThroughDlopen(const char *library, uint16_t port) {
  for (const char *round : {"dlopen", "dlopen_again"}) {
    void *handle = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      Report("error", dlerror());
      return;
    }
    auto fn = reinterpret_cast<DlConnect>(dlsym(handle, "ka_dl_connect"));
    ReportSock(round, fn != nullptr ? fn(port) : -1);
    Report(std::string("call.") + round + ".dlclose", std::to_string(dlclose(handle)));
  }
  ReportSock("after_dlclose", ConnectTo(port));
}

// RTLD_DEEPBIND puts the library's own dependencies (libc) ahead of the
// global scope, so its connect() is libc's: a known limit of LD_PRELOAD.
// (The sanitizers refuse RTLD_DEEPBIND: unsanitized builds only.)
void ThroughDeepbind(const char *library, uint16_t port) {
  void *handle = dlopen(library, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  auto fn =
      handle != nullptr ? reinterpret_cast<DlConnect>(dlsym(handle, "ka_dl_connect")) : nullptr;
  ReportSock("deepbind", fn != nullptr ? fn(port) : -1);
  if (handle != nullptr) dlclose(handle);
}

void ThroughVfork(const char *self, const char *port_text) {
  char *const args[] = {const_cast<char *>(self), const_cast<char *>("connect"),
                        const_cast<char *>(port_text), const_cast<char *>("vfork"), nullptr};
  pid_t pid = vfork();
  if (pid == 0) {
    execve(self, args, environ);
    _exit(127);
  }
  int status = -1;
  waitpid(pid, &status, 0);
  Report("vfork.exit", std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128));

  char *const spawn_args[] = {const_cast<char *>(self), const_cast<char *>("connect"),
                              const_cast<char *>(port_text), const_cast<char *>("posix_spawn"),
                              nullptr};
  if (posix_spawn(&pid, self, nullptr, nullptr, spawn_args, environ) != 0) pid = -1;
  status = -1;
  if (pid > 0) waitpid(pid, &status, 0);
  Report("posix_spawn.exit", std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128));
}

// A daemon that closed stderr: its next socket is fd 2. Nothing but the
// program may write into that connection.
void StderrReused() {
  sockaddr_in addr;
  int listener = ka_peer::LoopbackListener(4, &addr);
  if (listener < 0) {
    Report("error", "listener");
    return;
  }
  close(2);
  int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  Report("stderr_reused.client_fd", std::to_string(client));
  connect(client, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
  int server = accept(listener, nullptr, nullptr);
  // And the other way round: the accepted socket gets fd 2.
  int client2 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  close(client);
  connect(client2, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
  int server2 = accept(listener, nullptr, nullptr);
  Report("stderr_reused.server_fd", std::to_string(server2));
  long received = 0;
  for (int fd : {server, client2}) {
    pollfd p = {fd, POLLIN, 0};
    while (poll(&p, 1, 200) == 1) {
      char buf[512];
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      received += n;
    }
  }
  Report("stderr_reused.bytes", std::to_string(received));
  // A pipe on fd 2 again, not the one the program started with.
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0 || dup2(pipe_fds[1], 2) != 2) {
    Report("error", "pipe");
    return;
  }
  int client3 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  connect(client3, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
  int server3 = accept(listener, nullptr, nullptr);
  char buf[512];
  ssize_t got = read(pipe_fds[0], buf, sizeof buf);
  Report("stderr_repiped.bytes", std::to_string(got > 0 ? got : 0));
  close(client3);
  close(server3);
}

// One connection to `listener` (a loopback listener of this process):
// connect and accept both go through the hooks.
void ConnectAndAccept(int listener, const sockaddr_in &to, bool report) {
  int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(client, reinterpret_cast<const sockaddr *>(&to), sizeof to) != 0) {
    Report("error", "connect");
  }
  int server = accept(listener, nullptr, nullptr);
  if (report) {
    ReportSock("last_connect", client);
    ReportSock("last_accept", server);
  } else {
    close(client);
    if (server >= 0) close(server);
  }
}

// Many log lines at KEEPALIVE_LOG=debug into a stderr the test keeps full,
// then a last connection once the test reads it again.
void LogFlood(int connections) {
  sockaddr_in addr;
  int listener = ka_peer::LoopbackListener(16, &addr);
  if (listener < 0) {
    Report("error", "listener");
    return;
  }
  for (int i = 0; i < connections; ++i) ConnectAndAccept(listener, addr, false);
  printf("%s\n", ka_peer::kReadStderrLine);
  fflush(stdout);
  pollfd p = {2, POLLOUT, 0};
  Report("stderr.writable", poll(&p, 1, 20000) == 1 ? "1" : "0");
  ConnectAndAccept(listener, addr, true);
  Report("stderr.flags_after", std::to_string(fcntl(2, F_GETFL)));
  close(listener);
}

}  // namespace

int main(int argc, char **argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string mode = argc >= 2 ? argv[1] : "";
  if (mode != "connect" || argc < 4) {
    // The child modes report only their socket: the parent reports these.
    Report("process.preloaded", ka_peer::LibraryLoaded() ? "1" : "0");
    Report("process.at_secure", std::to_string(getauxval(AT_SECURE)));
    Report("process.stderr_flags", std::to_string(fcntl(2, F_GETFL)));
  }
  bool library_mode = mode == "dlopen" || mode == "deepbind";
  const char *port_text = library_mode ? (argc >= 4 ? argv[3] : "0") : (argc >= 3 ? argv[2] : "0");
  uint16_t port = static_cast<uint16_t>(atoi(port_text));
  if (mode == "connect" && (argc == 3 || argc == 4)) {
    ReportSock(argc == 4 ? argv[3] : "connect", ConnectTo(port));
  } else if (mode == "clearenv" && argc == 3) {
    clearenv();
    setenv("KEEPALIVE", "off", 1);
    setenv("KEEPALIVE_IDLE", "999", 1);
    ReportSock("clearenv", ConnectTo(port));
  } else if (mode == "dlopen" && argc == 4) {
    ThroughDlopen(argv[2], port);
  } else if (mode == "deepbind" && argc == 4) {
    ThroughDeepbind(argv[2], port);
  } else if (mode == "vfork" && argc == 3) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return 2;
    self[n] = '\0';
    ThroughVfork(self, argv[2]);
  } else if (mode == "stderr_reused" && argc == 2) {
    StderrReused();
  } else if (mode == "log_flood" && argc == 3) {
    LogFlood(atoi(argv[2]));
  } else if (mode == "idle" && argc == 2) {
  } else {
    fprintf(
        stderr,
        "usage: ka_odd connect PORT [NAME] | clearenv PORT | dlopen LIB PORT | deepbind LIB PORT | "
        "vfork PORT | "
        "stderr_reused | log_flood N | idle\n");
    return 2;
  }
  Report("done", "1");
  return 0;
}
