// program.cc — see program.h.

#include "lib/program.h"

#include <elf.h>
#include <string.h>
#include <unistd.h>

#include <vector>

namespace keepalive_cli {
namespace {

constexpr char kApplyInstead[] =
    "; set its listening sockets from outside instead, with keepalive apply PID --listeners "
    "(connections accepted afterwards inherit their options)";
// Go sets TCP_KEEPIDLE 15 s on every connection unless the program asks for
// KeepAlive: -1 (net.ListenConfig, net.Dialer): the leave-alone rule keeps it.
constexpr char kGoInstead[] =
    "; and Go sets its own keepalive, 15 s, on every connection it accepts or dials, which "
    "keepalive leaves alone as the program's choice: replace it from outside with keepalive "
    "apply PID --override --follow (connections inherit from a listener set with --listeners "
    "only where the program turned Go's keepalive off, KeepAlive: -1)";

bool read_at(int fd, void *buf, size_t size, off_t offset) {
  return pread(fd, buf, size, offset) == static_cast<ssize_t>(size);
}

// The program headers name an interpreter (the dynamic loader). Unreadable
// headers count as dynamic: do not guess.
bool has_interpreter(int fd, const Elf64_Ehdr &header) {
  if (header.e_phentsize != sizeof(Elf64_Phdr)) return true;
  for (unsigned i = 0; i < header.e_phnum; ++i) {
    Elf64_Phdr program_header;
    if (!read_at(fd, &program_header, sizeof program_header,
                 static_cast<off_t>(header.e_phoff + i * sizeof program_header))) {
      return true;
    }
    if (program_header.p_type == PT_INTERP) return true;
  }
  return false;
}

// A section of the Go toolchain: its build ID note, or its build
// information (both kept by `go build -ldflags=-s`, which strips symbols).
bool has_go_section(int fd, const Elf64_Ehdr &header) {
  constexpr unsigned kMaxSections = 4096;
  if (header.e_shentsize != sizeof(Elf64_Shdr) || header.e_shnum == 0 ||
      header.e_shnum > kMaxSections || header.e_shstrndx >= header.e_shnum) {
    return false;
  }
  std::vector<Elf64_Shdr> sections(header.e_shnum);
  if (!read_at(fd, sections.data(), sections.size() * sizeof(Elf64_Shdr),
               static_cast<off_t>(header.e_shoff))) {
    return false;
  }
  const Elf64_Shdr &names = sections[header.e_shstrndx];
  constexpr size_t kMaxNames = 1 << 20;
  if (names.sh_size == 0 || names.sh_size > kMaxNames) return false;
  std::vector<char> text(names.sh_size + 1, '\0');
  if (!read_at(fd, text.data(), names.sh_size, static_cast<off_t>(names.sh_offset))) return false;
  for (const Elf64_Shdr &section : sections) {
    if (section.sh_name >= names.sh_size) continue;
    const char *name = text.data() + section.sh_name;
    if (strcmp(name, ".note.go.buildid") == 0 || strcmp(name, ".go.buildinfo") == 0) return true;
  }
  return false;
}

}  // namespace

ProgramFacts read_program_facts(int fd) {
  ProgramFacts facts;
  Elf64_Ehdr header;
  if (!read_at(fd, &header, sizeof header, 0) || memcmp(header.e_ident, ELFMAG, SELFMAG) != 0) {
    return facts;
  }
  facts.elf = true;
  if (header.e_ident[EI_CLASS] != ELFCLASS64 || sizeof(void *) != 8) {
    facts.not_64bit = true;
    return facts;
  }
  if (header.e_type == ET_EXEC || header.e_type == ET_DYN) {
    facts.static_linked = !has_interpreter(fd, header);
  }
  facts.go = has_go_section(fd, header);
  return facts;
}

std::string library_obstacle(const ProgramFacts &facts) {
  if (facts.not_64bit) {
    return "is not a 64-bit program: the loader cannot preload this build of libkeepalive "
           "into it";
  }
  if (facts.go) {
    return std::string(facts.static_linked ? "is a statically linked Go program"
                                           : "is a Go program") +
           ": the Go runtime makes its system calls itself, not through the C library, so "
           "libkeepalive configures none of its sockets even when it is loaded" +
           kGoInstead;
  }
  if (facts.static_linked) {
    return std::string(
               "is statically linked: LD_PRELOAD cannot reach it, so libkeepalive has no effect "
               "(set the options in the program itself)") +
           kApplyInstead;
  }
  return "";
}

}  // namespace keepalive_cli
