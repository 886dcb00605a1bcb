// bpf.h — kernel mode's system calls: a cgroup v2 directory found and
// opened, sock_ops programs loaded, attached beside others, replaced,
// listed and detached (bpf(2), no library). Needs CAP_BPF and CAP_NET_ADMIN
// (root) for all but finding the cgroup.
#ifndef KEEPALIVE_TOOLS_KERNEL_BPF_H
#define KEEPALIVE_TOOLS_KERNEL_BPF_H

#include <linux/bpf.h>
#include <stdint.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "lib/process.h"

namespace keepalive_kernel {

// Opens `path`, which must be a directory of a cgroup v2 hierarchy.
bool open_cgroup(const std::string &path, keepalive_cli::UniqueFd *fd, std::string *error);

// The cgroup v2 directory of process `pid`: its "0::" line of
// /proc/PID/cgroup under the cgroup2 mount of /proc/self/mountinfo.
bool cgroup_of_process(pid_t pid, std::string *path, std::string *error);

// A sock_ops program attached to a cgroup.
struct Attached {
  uint32_t id = 0;
  std::string name;         // as loaded (bpf_prog_info.name)
  bool ours = false;        // named kProgramName
  std::string description;  // ours: the configuration it carries
};
bool attached_programs(int cgroup_fd, std::vector<Attached> *out, std::string *error);

// Our programs that apply to the connections of process `pid`: those on
// its cgroup and on each ancestor up to the hierarchy's root, nearest
// first, with the directory each is attached to. False (with *error) when it
// cannot be told: no cgroup v2, or listing needs root.
struct Applying {
  std::string cgroup;
  Attached program;
};
bool programs_applying_to(pid_t pid, std::vector<Applying> *out, std::string *error);

// Loads `program` and attaches it to the cgroup beside the programs there
// (BPF_F_ALLOW_MULTI); when one of ours is attached already, the new one
// takes its place in one step (BPF_F_REPLACE): no connection meets neither.
// *replaced says which. A program the verifier refuses is an error with its
// log's last line.
bool attach_program(int cgroup_fd, const std::vector<bpf_insn> &program, bool *replaced,
                    std::string *error);

// Loads `program` and lets it go, attached nowhere: whether the kernel (its
// verifier, the caller's privileges) takes it; false with the reason.
bool program_loads(const std::vector<bpf_insn> &program, std::string *error);

// Detaches every program of ours from the cgroup, and nothing else.
bool detach_ours(int cgroup_fd, int *detached, std::string *error);

}  // namespace keepalive_kernel

#endif  // KEEPALIVE_TOOLS_KERNEL_BPF_H
