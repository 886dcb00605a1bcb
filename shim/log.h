// log.h — the only place that writes diagnostics: one line to stderr per
// call, prefixed "libkeepalive: ", written with a single write(2).
#ifndef KEEPALIVE_SHIM_LOG_H
#define KEEPALIVE_SHIM_LOG_H

namespace keepalive {

// Formats and writes one line; never allocates, preserves errno.
__attribute__((format(printf, 1, 2))) void log_line(const char *format, ...);

}  // namespace keepalive

#endif
