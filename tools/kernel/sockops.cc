// sockops.cc — see sockops.h. The program is written instruction by
// instruction (<linux/bpf.h>'s struct bpf_insn), as the rules are laid out:
//
//   (description: ld_imm64 r0, 8 bytes at a time)
//   r6 = ctx
//   op == PASSIVE_ESTABLISHED → in:   op != ACTIVE_ESTABLISHED → exit
//   out: r7 = the peer's port                 in: r7 = the local port
//        r8, r9 = the peer (IPv4 address, kind 4 | 6 | 0)
//        rule 1: port ranges → peer CIDRs → its settings block, else rule 2 ...
//        no rule: the global settings block
//   each distinct settings block: off → exit; TCP_KEEPIDLE read back, not
//        the kernel's default → exit (the program chose); set the options
//   exit: r0 = 1
//
// Registers: r6 the context, r7 the port (host order), r8 the IPv4 peer (as
// the bytes lie in memory), r9 the peer's kind; r1-r5 and r0 for the helper
// calls and scratch. The stack holds one value for each helper call.

#include "kernel/sockops.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <algorithm>
#include <utility>

namespace keepalive_kernel {
namespace {

enum Reg : uint8_t { R0 = 0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 };

constexpr int kPeerNone = 0, kPeerV4 = 4, kPeerV6 = 6;
constexpr int16_t kValueSlot = -4;     // bpf_setsockopt's value
constexpr int16_t kReadBackSlot = -8;  // bpf_getsockopt's buffer

// Instructions with forward jumps to labels, resolved when bound.
class Builder {
 public:
  int label() {
    bound_.push_back(-1);
    return static_cast<int>(bound_.size()) - 1;
  }
  void bind(int label) { bound_[label] = static_cast<int>(code_.size()); }

  void emit(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
    bpf_insn insn{};
    insn.code = code;
    insn.dst_reg = dst & 0xf;
    insn.src_reg = src & 0xf;
    insn.off = off;
    insn.imm = imm;
    code_.push_back(insn);
  }
  void mov64(Reg dst, Reg src) { emit(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0); }
  void mov64(Reg dst, int32_t imm) { emit(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm); }
  void mov32(Reg dst, Reg src) { emit(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0); }
  void and32(Reg dst, uint32_t imm) {
    emit(BPF_ALU | BPF_AND | BPF_K, dst, 0, 0, static_cast<int32_t>(imm));
  }
  void add64(Reg dst, int32_t imm) { emit(BPF_ALU64 | BPF_ADD | BPF_K, dst, 0, 0, imm); }
  // Network to host order of a 32-bit value (a byte swap on little-endian).
  void to_host32(Reg dst) { emit(BPF_ALU | BPF_END | BPF_TO_BE, dst, 0, 0, 32); }
  void load32(Reg dst, Reg base, size_t offset) { load32(dst, base, static_cast<int16_t>(offset)); }
  void load32(Reg dst, Reg base, int16_t offset) {
    emit(BPF_LDX | BPF_MEM | BPF_W, dst, base, offset, 0);
  }
  void store32(int16_t offset, int32_t imm) { emit(BPF_ST | BPF_MEM | BPF_W, R10, 0, offset, imm); }
  void load64(Reg dst, uint64_t value) {
    emit(BPF_LD | BPF_DW | BPF_IMM, dst, 0, 0, static_cast<int32_t>(value & 0xffffffffu));
    emit(0, 0, 0, 0, static_cast<int32_t>(value >> 32));
  }
  // if (dst OP imm) goto label, comparing the low 32 bits, unsigned.
  void jump32(uint8_t op, Reg dst, uint32_t imm, int label) {
    fixups_.emplace_back(code_.size(), label);
    emit(BPF_JMP32 | op | BPF_K, dst, 0, 0, static_cast<int32_t>(imm));
  }
  void jump(int label) {
    fixups_.emplace_back(code_.size(), label);
    emit(BPF_JMP | BPF_JA, 0, 0, 0, 0);
  }
  void call(int32_t helper) { emit(BPF_JMP | BPF_CALL, 0, 0, 0, helper); }
  void exit() { emit(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }

  // The program, or nothing when a jump reaches farther than an
  // instruction can say (32767 instructions).
  std::vector<bpf_insn> finish() {
    for (const auto &[at, label] : fixups_) {
      const int offset = bound_[label] - static_cast<int>(at) - 1;
      if (offset > INT16_MAX || offset < INT16_MIN) return {};
      code_[at].off = static_cast<int16_t>(offset);
    }
    return code_;
  }

 private:
  std::vector<bpf_insn> code_;
  std::vector<int> bound_;
  std::vector<std::pair<size_t, int>> fixups_;
};

// `bytes` (4 of them) as the 32-bit value a load from memory gives.
uint32_t as_loaded(const uint8_t *bytes) {
  uint32_t value;
  memcpy(&value, bytes, sizeof value);
  return value;
}

// The mask of the first `bits` of 4 bytes, as loaded from memory.
uint32_t mask_as_loaded(int bits) {
  uint8_t bytes[4];
  for (int i = 0; i < 4; ++i) {
    int in_byte = std::clamp(bits - 8 * i, 0, 8);
    bytes[i] = static_cast<uint8_t>((0xff00 >> in_byte) & 0xff);
  }
  return as_loaded(bytes);
}

bool same_values(const keepalive_settings &a, const keepalive_settings &b) {
  return a.enable == b.enable && a.idle_s == b.idle_s && a.intvl_s == b.intvl_s && a.cnt == b.cnt &&
         a.user_timeout_ms == b.user_timeout_ms;
}

// r8/r9 from the context: the peer's IPv4 address (an IPv4-mapped IPv6
// peer counts as IPv4, as the library reads it), or kind 6, or 0.
void load_peer(Builder *b) {
  const int v4 = b->label(), v6 = b->label(), done = b->label();
  b->mov64(R9, kPeerNone);
  b->load32(R2, R6, offsetof(bpf_sock_ops, family));
  b->jump32(BPF_JEQ, R2, AF_INET, v4);
  b->jump32(BPF_JNE, R2, AF_INET6, done);
  const uint8_t mapped_prefix[4] = {0, 0, 0xff, 0xff};
  for (int word = 0; word < 3; ++word) {
    b->load32(R2, R6, offsetof(bpf_sock_ops, remote_ip6) + 4 * word);
    b->jump32(BPF_JNE, R2, word < 2 ? 0 : as_loaded(mapped_prefix), v6);
  }
  b->load32(R8, R6, offsetof(bpf_sock_ops, remote_ip6) + 12);
  b->mov64(R9, kPeerV4);
  b->jump(done);
  b->bind(v4);
  b->load32(R8, R6, offsetof(bpf_sock_ops, remote_ip4));
  b->mov64(R9, kPeerV4);
  b->jump(done);
  b->bind(v6);
  b->mov64(R9, kPeerV6);
  b->bind(done);
}

// Jumps to `matched` when the peer lies in `cidr`; falls through otherwise.
void match_cidr(Builder *b, const keepalive_cidr &cidr, int matched) {
  const int next = b->label();
  if (cidr.net.family == 4) {
    b->jump32(BPF_JNE, R9, kPeerV4, next);
    b->mov32(R2, R8);
    b->and32(R2, mask_as_loaded(cidr.prefix));
    b->jump32(BPF_JEQ, R2, as_loaded(cidr.net.addr), matched);
  } else {
    b->jump32(BPF_JNE, R9, kPeerV6, next);
    for (int word = 0; word < 4; ++word) {
      const int bits = std::clamp(cidr.prefix - 32 * word, 0, 32);
      if (bits == 0) continue;
      b->load32(R2, R6, offsetof(bpf_sock_ops, remote_ip6) + 4 * word);
      if (bits < 32) b->and32(R2, mask_as_loaded(bits));
      b->jump32(BPF_JNE, R2, as_loaded(cidr.net.addr + 4 * word), next);
    }
    b->jump(matched);
  }
  b->bind(next);
}

// Jumps to `settings_block` when `rule` matches; falls through otherwise.
void match_rule(Builder *b, const keepalive_rule &rule, int settings_block) {
  const int next = b->label();
  if (rule.nports > 0) {
    const int port_ok = b->label();
    for (int i = 0; i < rule.nports; ++i) {
      const int next_range = b->label();
      b->jump32(BPF_JLT, R7, rule.ports[i].first, next_range);
      b->jump32(BPF_JLE, R7, rule.ports[i].last, port_ok);
      b->bind(next_range);
    }
    b->jump(next);
    b->bind(port_ok);
  }
  if (rule.npeers > 0) {
    const int peer_ok = b->label();
    for (int i = 0; i < rule.npeers; ++i) match_cidr(b, rule.peers[i], peer_ok);
    b->jump(next);
    b->bind(peer_ok);
  }
  b->jump(settings_block);
  b->bind(next);
}

// bpf_setsockopt(ctx, level, option, &value, 4); its result is not looked at
// (the library's failures change nothing either).
void set_option(Builder *b, int level, int option, int32_t value) {
  b->store32(kValueSlot, value);
  b->mov64(R1, R6);
  b->mov64(R2, level);
  b->mov64(R3, option);
  b->mov64(R4, R10);
  b->add64(R4, kValueSlot);
  b->mov64(R5, 4);
  b->call(BPF_FUNC_setsockopt);
}

// A settings block: leaves a connection whose program chose its timings
// alone, else sets what `s` sets, SO_KEEPALIVE last.
void settings_block(Builder *b, const keepalive_settings &s, int kernel_idle_s, int exit) {
  if (!s.enable) {
    b->jump(exit);
    return;
  }
  const int set = b->label();
  b->store32(kReadBackSlot, 0);
  b->mov64(R1, R6);
  b->mov64(R2, IPPROTO_TCP);
  b->mov64(R3, TCP_KEEPIDLE);
  b->mov64(R4, R10);
  b->add64(R4, kReadBackSlot);
  b->mov64(R5, 4);
  b->call(BPF_FUNC_getsockopt);
  b->jump32(BPF_JNE, R0, 0, set);  // cannot tell (an older kernel): set
  b->load32(R2, R10, kReadBackSlot);
  b->jump32(BPF_JNE, R2, static_cast<uint32_t>(kernel_idle_s), exit);
  b->bind(set);
  if (s.user_timeout_ms != KEEPALIVE_UNSET) {
    set_option(b, IPPROTO_TCP, TCP_USER_TIMEOUT, static_cast<int32_t>(s.user_timeout_ms));
  }
  if (s.idle_s != KEEPALIVE_UNSET) set_option(b, IPPROTO_TCP, TCP_KEEPIDLE, s.idle_s);
  if (s.intvl_s != KEEPALIVE_UNSET) set_option(b, IPPROTO_TCP, TCP_KEEPINTVL, s.intvl_s);
  if (s.cnt != KEEPALIVE_UNSET) set_option(b, IPPROTO_TCP, TCP_KEEPCNT, s.cnt);
  set_option(b, SOL_SOCKET, SO_KEEPALIVE, 1);
  b->jump(exit);
}

}  // namespace

std::vector<bpf_insn> compile_sockops(const keepalive_config &config, int kernel_idle_s,
                                      const std::string &description) {
  Builder b;
  const std::string text = description.substr(0, kMaxDescription);
  for (size_t i = 0; i < text.size(); i += 8) {
    uint64_t chunk = 0;
    memcpy(&chunk, text.data() + i, std::min<size_t>(8, text.size() - i));
    b.load64(R0, chunk);
  }
  const int exit = b.label(), in = b.label();
  b.mov64(R6, R1);
  b.load32(R2, R6, offsetof(bpf_sock_ops, op));
  b.jump32(BPF_JEQ, R2, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB, in);
  b.jump32(BPF_JNE, R2, BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, exit);

  // One block per distinct settings, shared by the rules that decide them.
  std::vector<std::pair<keepalive_settings, int>> blocks;
  auto block_of = [&](const keepalive_settings &settings) {
    for (const auto &[known, label] : blocks) {
      if (same_values(known, settings)) return label;
    }
    blocks.emplace_back(settings, b.label());
    return blocks.back().second;
  };
  for (keepalive_direction direction : {KEEPALIVE_OUT, KEEPALIVE_IN}) {
    if (direction == KEEPALIVE_IN) {
      b.bind(in);
      b.load32(R7, R6, offsetof(bpf_sock_ops, local_port));  // host order
    } else {
      b.load32(R7, R6, offsetof(bpf_sock_ops, remote_port));  // network order, high half
      b.to_host32(R7);
    }
    load_peer(&b);
    bool decided = false;  // a rule without port= and peer= takes every connection left
    for (int i = 0; i < config.nrules && !decided; ++i) {
      const keepalive_rule &rule = config.rules[i];
      if (rule.directions != 0 && (rule.directions & direction) == 0) continue;
      match_rule(&b, rule, block_of(rule.settings));
      decided = rule.nports == 0 && rule.npeers == 0;
    }
    // The verifier refuses instructions no path reaches.
    if (!decided) b.jump(block_of(config.global));
  }
  for (const auto &[settings, label] : blocks) {
    b.bind(label);
    settings_block(&b, settings, kernel_idle_s, exit);
  }
  b.bind(exit);
  b.mov64(R0, 1);
  b.exit();
  return b.finish();
}

std::string description_of(const std::vector<bpf_insn> &program) {
  std::string text;
  for (size_t i = 0; i + 1 < program.size(); i += 2) {
    const bpf_insn &insn = program[i];
    if (insn.code != (BPF_LD | BPF_DW | BPF_IMM) || insn.dst_reg != R0 || insn.src_reg != 0) break;
    const uint64_t chunk = static_cast<uint32_t>(insn.imm) |
                           static_cast<uint64_t>(static_cast<uint32_t>(program[i + 1].imm)) << 32;
    char bytes[8];
    memcpy(bytes, &chunk, sizeof bytes);
    text.append(bytes, sizeof bytes);
  }
  return text.substr(0, text.find('\0'));
}

}  // namespace keepalive_kernel
