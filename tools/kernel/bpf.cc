// bpf.cc — see bpf.h.

#include "kernel/bpf.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "kernel/sockops.h"

namespace keepalive_kernel {
namespace {

using keepalive_cli::UniqueFd;

long bpf(int command, bpf_attr *attr) { return syscall(__NR_bpf, command, attr, sizeof *attr); }

uint64_t pointer(const void *p) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)); }

std::string errno_text(const char *what) { return std::string(what) + ": " + strerror(errno); }

// The verifier's reason: the last line of its log before its statistics.
std::string last_line(const std::string &log) {
  std::istringstream lines(log);
  std::string line, last;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.rfind("processed ", 0) != 0 && line.rfind("verification ", 0) != 0) {
      last = line;
    }
  }
  return last;
}

UniqueFd program_by_id(uint32_t id) {
  bpf_attr attr{};
  attr.prog_id = id;
  return UniqueFd(static_cast<int>(bpf(BPF_PROG_GET_FD_BY_ID, &attr)));
}

bool program_info(int fd, bpf_prog_info *info, std::vector<bpf_insn> *xlated) {
  *info = bpf_prog_info{};
  bpf_attr attr{};
  attr.info.bpf_fd = static_cast<uint32_t>(fd);
  attr.info.info_len = sizeof *info;
  attr.info.info = pointer(info);
  if (bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) != 0) return false;
  if (xlated == nullptr || info->xlated_prog_len == 0) return true;
  xlated->assign(info->xlated_prog_len / sizeof(bpf_insn), bpf_insn{});
  const uint32_t length = info->xlated_prog_len;
  *info = bpf_prog_info{};
  info->xlated_prog_len = length;
  info->xlated_prog_insns = pointer(xlated->data());
  attr = bpf_attr{};
  attr.info.bpf_fd = static_cast<uint32_t>(fd);
  attr.info.info_len = sizeof *info;
  attr.info.info = pointer(info);
  return bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) == 0;
}

UniqueFd load(const std::vector<bpf_insn> &program, std::string *error) {
  static const char kLicense[] = "Dual MIT/GPL";
  bpf_attr attr{};
  attr.prog_type = BPF_PROG_TYPE_SOCK_OPS;
  attr.insn_cnt = static_cast<uint32_t>(program.size());
  attr.insns = pointer(program.data());
  attr.license = pointer(kLicense);
  static_assert(sizeof kProgramName <= sizeof attr.prog_name, "a program name fits");
  memcpy(attr.prog_name, kProgramName, sizeof kProgramName);
  UniqueFd fd(static_cast<int>(bpf(BPF_PROG_LOAD, &attr)));
  if (fd.valid()) return fd;
  const int first_errno = errno;
  // Again with the verifier's log, to say why.
  std::string log(1 << 20, '\0');
  attr.log_level = 1;
  attr.log_size = static_cast<uint32_t>(log.size());
  attr.log_buf = pointer(log.data());
  fd = UniqueFd(static_cast<int>(bpf(BPF_PROG_LOAD, &attr)));
  if (fd.valid()) return fd;
  log.resize(strlen(log.c_str()));
  *error = std::string("the kernel refused the program: ") + strerror(first_errno);
  if (!log.empty()) *error += " (verifier: " + last_line(log) + ")";
  if (first_errno == EPERM) *error += "; loading BPF programs needs root (CAP_BPF, CAP_NET_ADMIN)";
  return UniqueFd();
}

}  // namespace

bool open_cgroup(const std::string &path, UniqueFd *fd, std::string *error) {
  *fd = UniqueFd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd->valid()) {
    *error = errno_text(path.c_str());
    return false;
  }
  struct statfs fs {};
  if (fstatfs(fd->get(), &fs) != 0 || fs.f_type != CGROUP2_SUPER_MAGIC) {
    *error = path + ": not a cgroup v2 directory (mount -t cgroup2; on systemd hosts, under " +
             "/sys/fs/cgroup)";
    fd->reset();
    return false;
  }
  return true;
}

bool cgroup_of_process(pid_t pid, std::string *path, std::string *error) {
  std::ifstream cgroups("/proc/" + std::to_string(pid) + "/cgroup");
  std::string line, relative;
  bool found = false;
  while (std::getline(cgroups, line)) {
    if (line.rfind("0::", 0) == 0) {
      relative = line.substr(3);
      found = true;
    }
  }
  if (!cgroups.eof() && !found) {
    *error = "no such process " + std::to_string(pid);
    return false;
  }
  if (!found) {
    *error = "process " + std::to_string(pid) + " has no cgroup v2 (no 0:: line in /proc/" +
             std::to_string(pid) + "/cgroup)";
    return false;
  }
  // mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ... - TYPE SOURCE ...
  std::ifstream mounts("/proc/self/mountinfo");
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string id, parent, device, root, mount_point, word;
    fields >> id >> parent >> device >> root >> mount_point;
    while (fields >> word && word != "-") {
    }
    std::string type;
    fields >> type;
    if (type != "cgroup2") continue;
    // The process's path is relative to the hierarchy's root; this mount
    // shows the part under `root`.
    if (root != "/" && relative.rfind(root, 0) != 0) continue;
    const std::string below = root == "/" ? relative : relative.substr(root.size());
    *path = mount_point + (below == "/" ? "" : below);
    return true;
  }
  *error = "no cgroup2 file system is mounted (mount -t cgroup2 none DIR)";
  return false;
}

bool attached_programs(int cgroup_fd, std::vector<Attached> *out, std::string *error) {
  out->clear();
  std::vector<uint32_t> ids(64);
  bpf_attr attr{};
  attr.query.target_fd = static_cast<uint32_t>(cgroup_fd);
  attr.query.attach_type = BPF_CGROUP_SOCK_OPS;
  attr.query.prog_ids = pointer(ids.data());
  attr.query.prog_cnt = static_cast<uint32_t>(ids.size());
  if (bpf(BPF_PROG_QUERY, &attr) != 0) {
    *error = errno_text("listing the cgroup's sock_ops programs (BPF_PROG_QUERY)");
    if (errno == EPERM) *error += "; kernel mode needs root (CAP_BPF, CAP_NET_ADMIN)";
    return false;
  }
  ids.resize(attr.query.prog_cnt);
  for (uint32_t id : ids) {
    Attached program;
    program.id = id;
    UniqueFd fd = program_by_id(id);
    bpf_prog_info info;
    std::vector<bpf_insn> xlated;
    if (fd.valid() && program_info(fd.get(), &info, &xlated)) {
      program.name = info.name;
      program.ours = program.name == kProgramName;
      if (program.ours) program.description = description_of(xlated);
    }
    out->push_back(program);
  }
  return true;
}

bool programs_applying_to(pid_t pid, std::vector<Applying> *out, std::string *error) {
  out->clear();
  std::string path;
  if (!cgroup_of_process(pid, &path, error)) return false;
  for (;;) {
    UniqueFd fd;
    std::vector<Attached> attached;
    if (!open_cgroup(path, &fd, error)) return false;
    if (!attached_programs(fd.get(), &attached, error)) return false;
    for (const Attached &program : attached) {
      if (program.ours) out->push_back({path, program});
    }
    // Up to the hierarchy's root: the parent is cgroup2 too, else stop.
    const size_t slash = path.find_last_of('/');
    if (slash == std::string::npos || slash == 0) return true;
    const std::string parent = path.substr(0, slash);
    struct statfs fs {};
    if (statfs(parent.c_str(), &fs) != 0 || fs.f_type != CGROUP2_SUPER_MAGIC) return true;
    path = parent;
  }
}

bool attach_program(int cgroup_fd, const std::vector<bpf_insn> &program, bool *replaced,
                    std::string *error) {
  std::vector<Attached> attached;
  if (!attached_programs(cgroup_fd, &attached, error)) return false;
  UniqueFd old;
  for (const Attached &each : attached) {
    if (each.ours) {
      old = program_by_id(each.id);
      break;
    }
  }
  UniqueFd fd = load(program, error);
  if (!fd.valid()) return false;
  bpf_attr attr{};
  attr.target_fd = static_cast<uint32_t>(cgroup_fd);
  attr.attach_bpf_fd = static_cast<uint32_t>(fd.get());
  attr.attach_type = BPF_CGROUP_SOCK_OPS;
  attr.attach_flags = BPF_F_ALLOW_MULTI;
  if (old.valid()) {
    attr.attach_flags |= BPF_F_REPLACE;
    attr.replace_bpf_fd = static_cast<uint32_t>(old.get());
  }
  if (bpf(BPF_PROG_ATTACH, &attr) != 0) {
    *error = errno_text("attaching to the cgroup (BPF_PROG_ATTACH)");
    if (errno == EPERM) {
      *error += "; a program attached there without BPF_F_ALLOW_MULTI keeps others out";
    }
    return false;
  }
  *replaced = old.valid();
  return true;
}

bool program_loads(const std::vector<bpf_insn> &program, std::string *error) {
  return load(program, error).valid();
}

bool detach_ours(int cgroup_fd, int *detached, std::string *error) {
  *detached = 0;
  std::vector<Attached> attached;
  if (!attached_programs(cgroup_fd, &attached, error)) return false;
  for (const Attached &each : attached) {
    if (!each.ours) continue;
    UniqueFd fd = program_by_id(each.id);
    bpf_attr attr{};
    attr.target_fd = static_cast<uint32_t>(cgroup_fd);
    attr.attach_bpf_fd = static_cast<uint32_t>(fd.get());
    attr.attach_type = BPF_CGROUP_SOCK_OPS;
    if (!fd.valid() || bpf(BPF_PROG_DETACH, &attr) != 0) {
      *error = errno_text("detaching from the cgroup (BPF_PROG_DETACH)");
      return false;
    }
    ++*detached;
  }
  return true;
}

}  // namespace keepalive_kernel
