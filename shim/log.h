// log.h — the only place that writes diagnostics: one line to stderr per
// call, prefixed "libkeepalive: ", written whole in a single call or not at
// all. The library never waits for its own output: a line stderr cannot
// take at once (a full pipe nobody reads, a terminal on hold) is dropped and
// counted, and the next line that gets through is preceded by "N lines
// dropped". fd 2's file status flags are never changed.
#ifndef KEEPALIVE_SHIM_LOG_H
#define KEEPALIVE_SHIM_LOG_H

namespace keepalive {

// Remembers which file fd 2 is now (the process's stderr at load). From then
// on log_line writes only while fd 2 is still that file: a program that
// closed stderr may have reused fd 2 for a socket or a file of its own.
// Without this call (the command, the tests) log_line always writes.
void log_remember_stderr();

// Formats and writes one line (at most 1024 bytes with its newline); never
// blocks, never allocates, preserves errno, and never raises SIGPIPE (a
// stderr pipe nobody reads any more must not kill the program).
__attribute__((format(printf, 1, 2))) void log_line(const char *format, ...);

}  // namespace keepalive

#endif
