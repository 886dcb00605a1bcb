/* without_syscall.c — runs a command as on a kernel that lacks one system
 * call: a seccomp filter makes that call fail with ENOSYS, as an old kernel
 * does, and everything else passes. Used by apply_test.py to see
 * `keepalive apply` explain a kernel without pidfd_open or pidfd_getfd.
 *
 *   without_syscall pidfd_open|pidfd_getfd CMD [ARGS...]
 *
 * Exit status: CMD's; 2 usage; 1 the filter could not be installed. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define THIS_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define THIS_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "without_syscall: add this architecture's AUDIT_ARCH_* value"
#endif

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s pidfd_open|pidfd_getfd CMD [ARGS...]\n", argv[0]);
    return 2;
  }
  unsigned number;
  if (strcmp(argv[1], "pidfd_open") == 0) {
    number = SYS_pidfd_open;
  } else if (strcmp(argv[1], "pidfd_getfd") == 0) {
    number = SYS_pidfd_getfd;
  } else {
    fprintf(stderr, "without_syscall: unknown system call '%s'\n", argv[1]);
    return 2;
  }
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, THIS_AUDIT_ARCH, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, number, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog program = {(unsigned short)(sizeof filter / sizeof filter[0]), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
    perror("without_syscall: cannot install the seccomp filter");
    return 1;
  }
  execvp(argv[2], argv + 2);
  perror("without_syscall: cannot run the command");
  return 127;
}
