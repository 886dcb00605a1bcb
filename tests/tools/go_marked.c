/* go_marked.c — a C program that the build marks as a Go program: objcopy
 * adds the .note.go.buildid section that the Go toolchain writes, which is
 * what `keepalive run` and `keepalive inspect` look for. It holds a TCP
 * listener on 127.0.0.1 and a connection to it, prints "ready PORT" and
 * exits 0 when its standard input closes (or at once with --exit). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--exit") == 0) return 0;
  struct sockaddr_in address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  int client = socket(AF_INET, SOCK_STREAM, 0);
  if (listener < 0 || client < 0 || bind(listener, (struct sockaddr *)&address, length) != 0 ||
      listen(listener, 1) != 0 ||
      getsockname(listener, (struct sockaddr *)&address, &length) != 0 ||
      connect(client, (struct sockaddr *)&address, length) != 0 ||
      accept(listener, NULL, NULL) < 0) {
    perror("go_marked");
    return 1;
  }
  printf("ready %u\n", (unsigned)ntohs(address.sin_port));
  fflush(stdout);
  char buf[64];
  while (read(STDIN_FILENO, buf, sizeof buf) > 0) {
  }
  return 0;
}
