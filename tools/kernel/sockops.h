// sockops.h — kernel mode: a configuration compiled into a sock_ops BPF
// program (BPF_PROG_TYPE_SOCK_OPS) that the kernel runs for every TCP
// connection of a cgroup when it becomes established, outgoing
// (BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) or accepted
// (BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB). It decides as keepalive_decide
// does — the first rule whose direction, port (local for accepted, the
// peer's for outgoing connections) and peer address (IPv4, IPv6, IPv4-mapped
// as IPv4) match, else the global settings — and sets the decided options
// with bpf_setsockopt: TCP_USER_TIMEOUT, TCP_KEEPIDLE, TCP_KEEPINTVL,
// TCP_KEEPCNT, then SO_KEEPALIVE. `off` sets nothing. A connection whose
// TCP_KEEPIDLE (bpf_getsockopt) is not the kernel's default — its program
// chose its timings, before connect() or on its listener — is left alone,
// as the library leaves it; the default is the one of the namespace the
// program was compiled for. Pure: no system call.
#ifndef KEEPALIVE_TOOLS_KERNEL_SOCKOPS_H
#define KEEPALIVE_TOOLS_KERNEL_SOCKOPS_H

#include <linux/bpf.h>

#include <string>
#include <vector>

#include "keepalive/keepalive.h"

namespace keepalive_kernel {

// The program's name in the kernel (bpf_prog_info.name): how `attach`
// finds its own program on a cgroup, beside anyone else's.
inline constexpr char kProgramName[] = "keepalive";

// The program for a valid, enabled configuration; `kernel_idle_s` is the
// namespace's net.ipv4.tcp_keepalive_time. Empty when the configuration is
// too large for one program (a jump over more than 32767 instructions). The configuration's text
// (`description`, at most kMaxDescription bytes) travels inside it, as
// immediates loaded at its start, so that what is attached can be shown.
inline constexpr size_t kMaxDescription = 2048;
std::vector<bpf_insn> compile_sockops(const keepalive_config &config, int kernel_idle_s,
                                      const std::string &description);

// The description compile_sockops put into `program` (as the kernel gives
// it back, BPF_OBJ_GET_INFO_BY_FD), or "" when it has none.
std::string description_of(const std::vector<bpf_insn> &program);

}  // namespace keepalive_kernel

#endif  // KEEPALIVE_TOOLS_KERNEL_SOCKOPS_H
