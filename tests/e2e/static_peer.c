/* static_peer.c — a server or a client that no libc hook reaches, for
 * follow_test.cc: the test links it with `gcc -static`, and the client
 * connects with a raw syscall(SYS_connect, ...). Report lines as peer.h's
 * ("EVENT key=value ... t=SECONDS"), one per event, flushed at once.
 *
 *   static_peer server ADDR PORT SILENCE   accept one connection, answer
 *       "hello" with "welcome", stay silent SILENCE s, send "message", then
 *       keep the connection 3 s more
 *   static_peer client ADDR PORT WAIT      wait for SIGUSR1 (the test's
 *       go, once its follower runs), connect, send "hello", read "welcome",
 *       then wait up to WAIT s for "message"
 *
 * Events: listening, welcome_sent, message_sent; ready, welcome_received,
 * then message_received or nothing_received; error (exit 1). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double start;

static void report(const char *event) {
  printf("%s pid=%d t=%.3f\n", event, (int)getpid(), now_s() - start);
  fflush(stdout);
}

static void fail(const char *what) {
  printf("error what=%s t=%.3f\n", what, now_s() - start);
  fflush(stdout);
  exit(1);
}

/* Waits up to `seconds` for a line starting with `word`; 1 when it came. */
static int receive(int fd, const char *word, double seconds) {
  char buf[256];
  size_t got = 0;
  double deadline = now_s() + seconds;
  while (got < sizeof buf - 1) {
    int left_ms = (int)((deadline - now_s()) * 1000);
    if (left_ms <= 0) return 0;
    struct pollfd entry = {fd, POLLIN, 0};
    if (poll(&entry, 1, left_ms) <= 0) return 0;
    ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
    if (n <= 0) return 0;
    got += (size_t)n;
    buf[got] = '\0';
    if (strchr(buf, '\n') != NULL) return strncmp(buf, word, strlen(word)) == 0;
  }
  return 0;
}

static void send_line(int fd, const char *line) {
  if (write(fd, line, strlen(line)) != (ssize_t)strlen(line)) fail("write");
}

int main(int argc, char **argv) {
  start = now_s();
  if (argc != 5) {
    fprintf(stderr, "usage: %s server|client ADDR PORT SECONDS\n", argv[0]);
    return 2;
  }
  struct sockaddr_in address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_port = htons((unsigned short)atoi(argv[3]));
  if (inet_pton(AF_INET, argv[2], &address.sin_addr) != 1) fail("address");
  double seconds = atof(argv[4]);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) fail("socket");

  if (strcmp(argv[1], "server") == 0) {
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0) fail("bind");
    if (listen(fd, 4) != 0) fail("listen");
    report("listening");
    int connection = accept(fd, NULL, NULL);
    if (connection < 0) fail("accept");
    if (!receive(connection, "hello", 10)) fail("hello");
    send_line(connection, "welcome\n");
    report("welcome_sent");
    sleep((unsigned)seconds);
    send_line(connection, "message\n");
    report("message_sent");
    sleep(3);
    return 0;
  }
  sigset_t go;
  sigemptyset(&go);
  sigaddset(&go, SIGUSR1);
  sigprocmask(SIG_BLOCK, &go, NULL);
  report("ready");
  int signal_number = 0;
  sigwait(&go, &signal_number);
  if (syscall(SYS_connect, fd, (struct sockaddr *)&address, sizeof address) != 0) fail("connect");
  send_line(fd, "hello\n");
  if (!receive(fd, "welcome", 10)) fail("welcome");
  report("welcome_received");
  report(receive(fd, "message", seconds) ? "message_received" : "nothing_received");
  return 0;
}
