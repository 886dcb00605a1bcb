/* foreign_sockops.c — someone else's sock_ops program, for kernel_test.py:
 * `foreign_sockops attach DIR` loads a program named "other" that does
 * nothing and attaches it to the cgroup DIR beside others
 * (BPF_F_ALLOW_MULTI); `foreign_sockops detach DIR` detaches every program
 * named "other" there. Exit 1 with the reason on failure. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static long bpf(int command, union bpf_attr *attr) {
  return syscall(__NR_bpf, command, attr, sizeof *attr);
}

static int fail(const char *what) {
  fprintf(stderr, "foreign_sockops: %s: %s\n", what, strerror(errno));
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: foreign_sockops attach|detach DIR\n");
    return 2;
  }
  int cgroup = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cgroup < 0) return fail(argv[2]);
  union bpf_attr attr;
  if (strcmp(argv[1], "attach") == 0) {
    struct bpf_insn program[2];
    memset(program, 0, sizeof program);
    program[0].code = BPF_ALU64 | BPF_MOV | BPF_K; /* r0 = 1 */
    program[0].imm = 1;
    program[1].code = BPF_JMP | BPF_EXIT;
    static const char license[] = "GPL";
    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_SOCK_OPS;
    attr.insn_cnt = 2;
    attr.insns = (uint64_t)(uintptr_t)program;
    attr.license = (uint64_t)(uintptr_t)license;
    strcpy(attr.prog_name, "other");
    int fd = (int)bpf(BPF_PROG_LOAD, &attr);
    if (fd < 0) return fail("BPF_PROG_LOAD");
    memset(&attr, 0, sizeof attr);
    attr.target_fd = (uint32_t)cgroup;
    attr.attach_bpf_fd = (uint32_t)fd;
    attr.attach_type = BPF_CGROUP_SOCK_OPS;
    attr.attach_flags = BPF_F_ALLOW_MULTI;
    return bpf(BPF_PROG_ATTACH, &attr) == 0 ? 0 : fail("BPF_PROG_ATTACH");
  }
  uint32_t ids[64];
  memset(&attr, 0, sizeof attr);
  attr.query.target_fd = (uint32_t)cgroup;
  attr.query.attach_type = BPF_CGROUP_SOCK_OPS;
  attr.query.prog_ids = (uint64_t)(uintptr_t)ids;
  attr.query.prog_cnt = 64;
  if (bpf(BPF_PROG_QUERY, &attr) != 0) return fail("BPF_PROG_QUERY");
  uint32_t count = attr.query.prog_cnt;
  for (uint32_t i = 0; i < count; ++i) {
    memset(&attr, 0, sizeof attr);
    attr.prog_id = ids[i];
    int fd = (int)bpf(BPF_PROG_GET_FD_BY_ID, &attr);
    if (fd < 0) return fail("BPF_PROG_GET_FD_BY_ID");
    struct bpf_prog_info info;
    memset(&info, 0, sizeof info);
    memset(&attr, 0, sizeof attr);
    attr.info.bpf_fd = (uint32_t)fd;
    attr.info.info_len = sizeof info;
    attr.info.info = (uint64_t)(uintptr_t)&info;
    if (bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) != 0) return fail("BPF_OBJ_GET_INFO_BY_FD");
    if (strcmp(info.name, "other") != 0) continue;
    memset(&attr, 0, sizeof attr);
    attr.target_fd = (uint32_t)cgroup;
    attr.attach_bpf_fd = (uint32_t)fd;
    attr.attach_type = BPF_CGROUP_SOCK_OPS;
    if (bpf(BPF_PROG_DETACH, &attr) != 0) return fail("BPF_PROG_DETACH");
  }
  return 0;
}
