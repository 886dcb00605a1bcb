/* raw_peer.c — a program no preloaded library reaches, for kernel_test.py:
 * linked statically (glibc, or musl with musl-gcc), it makes its sockets
 * with raw system calls. It listens on 127.0.0.1 (any port), connects to
 * itself, accepts, and prints the keepalive values of both ends:
 *   client KEEPALIVE IDLE INTVL CNT USER_TIMEOUT
 *   server KEEPALIVE IDLE INTVL CNT USER_TIMEOUT
 * With an argument N, the client sets TCP_KEEPIDLE to N before connecting
 * (a program that chose its own timings). Exit 1 on any failure. */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static long sys(long number, long a, long b, long c) { return syscall(number, a, b, c, 0, 0); }

static int option(int fd, int level, int name) {
  int value = -1;
  socklen_t length = sizeof value;
  if (getsockopt(fd, level, name, &value, &length) != 0) return -1;
  return value;
}

static void report(const char *name, int fd) {
  printf("%s %d %d %d %d %d\n", name, option(fd, SOL_SOCKET, SO_KEEPALIVE),
         option(fd, IPPROTO_TCP, TCP_KEEPIDLE), option(fd, IPPROTO_TCP, TCP_KEEPINTVL),
         option(fd, IPPROTO_TCP, TCP_KEEPCNT), option(fd, IPPROTO_TCP, TCP_USER_TIMEOUT));
}

int main(int argc, char **argv) {
  struct sockaddr_in address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  int listener = (int)sys(SYS_socket, AF_INET, SOCK_STREAM, 0);
  if (listener < 0 || sys(SYS_bind, listener, (long)&address, sizeof address) != 0 ||
      sys(SYS_listen, listener, 4, 0) != 0 ||
      sys(SYS_getsockname, listener, (long)&address, (long)&length) != 0) {
    perror("listen");
    return 1;
  }
  int client = (int)sys(SYS_socket, AF_INET, SOCK_STREAM, 0);
  if (argc > 1) {
    int idle = atoi(argv[1]);
    setsockopt(client, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  }
  if (client < 0 || sys(SYS_connect, client, (long)&address, sizeof address) != 0) {
    perror("connect");
    return 1;
  }
  int server = (int)syscall(SYS_accept4, listener, 0, 0, 0);
  if (server < 0) {
    perror("accept4");
    return 1;
  }
  report("client", client);
  report("server", server);
  return 0;
}
