// program.h — what a program's ELF file tells about libkeepalive's reach:
// whether the dynamic loader can preload the library into it (64-bit,
// dynamically linked) and whether a C library hook sees its sockets at all
// (not in a Go program: the Go runtime makes its own system calls).
// Used by `keepalive run` (the file it is about to start) and `keepalive
// inspect` (/proc/PID/exe).
#ifndef KEEPALIVE_TOOLS_PROGRAM_H
#define KEEPALIVE_TOOLS_PROGRAM_H

#include <string>

namespace keepalive_cli {

struct ProgramFacts {
  bool elf = false;            // an ELF executable or shared object
  bool not_64bit = false;      // ELF, but not the class this build preloads into
  bool static_linked = false;  // no PT_INTERP: nothing is preloaded
  bool go = false;             // a .note.go.buildid or .go.buildinfo section
};

// Reads the ELF headers of the open file `fd`; a file that is not ELF (a
// script) gives facts with elf false. Never fails: what cannot be read is
// not claimed.
ProgramFacts read_program_facts(int fd);

// Why libkeepalive cannot configure this program's sockets, said after its
// name ("is a Go program: ..."), with what works instead; "" when nothing
// stands in the way that the file shows.
std::string library_obstacle(const ProgramFacts &facts);

}  // namespace keepalive_cli

#endif  // KEEPALIVE_TOOLS_PROGRAM_H
