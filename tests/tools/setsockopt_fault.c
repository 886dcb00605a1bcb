/* setsockopt_fault.c — a fault-injection library; every call not named here
 * goes to libc.
 *   - setsockopt of TCP_KEEPCNT (and of TCP_KEEPINTVL too when
 *     $LIBKEEPALIVE_TEST_FAULT_INTVL_TOO is set) fails with EPERM on sockets
 *     whose local port is $LIBKEEPALIVE_TEST_FAULT_PORT, or on every socket
 *     when it is "any".
 *     apply_test.py preloads it into the `keepalive` command (never into a
 *     target), so that `keepalive apply` meets a socket it cannot set next to
 *     sockets it can; faults_test.cc preloads it after libkeepalive.so into a
 *     program, so that the library's own option calls fail inside the
 *     program's accept() and connect(): errno must still be what libc left.
 *   - readlinkat of the link named $LIBKEEPALIVE_TEST_FAULT_UNREADABLE_FD
 *     (a descriptor number in /proc/PID/fd) fails with EACCES, so that
 *     inspect and apply meet a descriptor they cannot examine next to
 *     descriptors they can.
 *   - recv on a netlink socket (the command's socket diagnostics) fails
 *     with EINTR the first $LIBKEEPALIVE_TEST_FAULT_NETLINK_EINTR times, and
 *     with ENOBUFS every time when $LIBKEEPALIVE_TEST_FAULT_NETLINK_ENOBUFS
 *     is set, and ends (returns 0) every time when
 *     $LIBKEEPALIVE_TEST_FAULT_NETLINK_EOF is set, and gives a netlink error
 *     message (EPERM) every time when $LIBKEEPALIVE_TEST_FAULT_NETLINK_REFUSED
 *     is set: an interrupted read is retried, a failed, ended or refused one
 *     reported.
 *   - opendir of a /proc/PID/fd directory fails with EPERM when
 *     $LIBKEEPALIVE_TEST_FAULT_FD_DIR_EPERM is set (as a security module
 *     may refuse it): the command then duplicates descriptor by number. */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef int (*setsockopt_fn)(int, int, int, const void *, socklen_t);

static int local_port(int fd) {
  struct sockaddr_storage address;
  socklen_t len = sizeof address;
  if (getsockname(fd, (struct sockaddr *)&address, &len) != 0) return -1;
  if (address.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&address)->sin_port);
  if (address.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&address)->sin6_port);
  return -1;
}

__attribute__((visibility("default"))) int setsockopt(int fd, int level, int option,
                                                      const void *value, socklen_t len) {
  const char *port = getenv("LIBKEEPALIVE_TEST_FAULT_PORT");
  const int faulty = option == TCP_KEEPCNT || (option == TCP_KEEPINTVL &&
                                               getenv("LIBKEEPALIVE_TEST_FAULT_INTVL_TOO") != NULL);
  if (level == IPPROTO_TCP && faulty && port != NULL &&
      (strcmp(port, "any") == 0 || local_port(fd) == atoi(port))) {
    errno = EPERM;
    return -1;
  }
  setsockopt_fn real = (setsockopt_fn)dlsym(RTLD_NEXT, "setsockopt");
  if (real == NULL) {
    errno = ENOSYS;
    return -1;
  }
  return real(fd, level, option, value, len);
}

typedef ssize_t (*readlinkat_fn)(int, const char *, char *, size_t);

__attribute__((visibility("default"))) ssize_t readlinkat(int dirfd, const char *path, char *buf,
                                                          size_t size) {
  const char *unreadable = getenv("LIBKEEPALIVE_TEST_FAULT_UNREADABLE_FD");
  if (unreadable != NULL && strcmp(path, unreadable) == 0) {
    errno = EACCES;
    return -1;
  }
  readlinkat_fn real = (readlinkat_fn)dlsym(RTLD_NEXT, "readlinkat");
  if (real == NULL) {
    errno = ENOSYS;
    return -1;
  }
  return real(dirfd, path, buf, size);
}

typedef DIR *(*opendir_fn)(const char *);

__attribute__((visibility("default"))) DIR *opendir(const char *name) {
  size_t length = strlen(name);
  if (getenv("LIBKEEPALIVE_TEST_FAULT_FD_DIR_EPERM") != NULL && strncmp(name, "/proc/", 6) == 0 &&
      length > 3 && strcmp(name + length - 3, "/fd") == 0) {
    errno = EPERM;
    return NULL;
  }
  opendir_fn real = (opendir_fn)dlsym(RTLD_NEXT, "opendir");
  if (real == NULL) {
    errno = ENOSYS;
    return NULL;
  }
  return real(name);
}

typedef ssize_t (*recv_fn)(int, void *, size_t, int);

static int is_netlink(int fd) {
  int domain = -1;
  socklen_t len = sizeof domain;
  return getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_NETLINK;
}

__attribute__((visibility("default"))) ssize_t recv(int fd, void *buf, size_t size, int flags) {
  static int interrupted;
  const char *eintr = getenv("LIBKEEPALIVE_TEST_FAULT_NETLINK_EINTR");
  const char *enobufs = getenv("LIBKEEPALIVE_TEST_FAULT_NETLINK_ENOBUFS");
  const char *eof = getenv("LIBKEEPALIVE_TEST_FAULT_NETLINK_EOF");
  const char *refused = getenv("LIBKEEPALIVE_TEST_FAULT_NETLINK_REFUSED");
  if ((eintr != NULL || enobufs != NULL || eof != NULL || refused != NULL) && is_netlink(fd)) {
    if (eof != NULL) return 0;
    if (refused != NULL) {
      struct {
        struct nlmsghdr header;
        struct nlmsgerr error;
      } answer;
      memset(&answer, 0, sizeof answer);
      answer.header.nlmsg_len = NLMSG_LENGTH(sizeof answer.error);
      answer.header.nlmsg_type = NLMSG_ERROR;
      answer.error.error = -EPERM;
      size_t length = size < sizeof answer ? size : sizeof answer;
      memcpy(buf, &answer, length);
      return (ssize_t)length;
    }
    if (eintr != NULL && interrupted < atoi(eintr)) {
      ++interrupted;
      errno = EINTR;
      return -1;
    }
    if (enobufs != NULL) {
      errno = ENOBUFS;
      return -1;
    }
  }
  recv_fn real = (recv_fn)dlsym(RTLD_NEXT, "recv");
  if (real == NULL) {
    errno = ENOSYS;
    return -1;
  }
  return real(fd, buf, size, flags);
}
