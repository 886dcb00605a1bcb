// files.h — the command's one reader and one writer of whole files.
#ifndef KEEPALIVE_TOOLS_FILES_H
#define KEEPALIVE_TOOLS_FILES_H

#include <string>

namespace keepalive_cli {

// Reads a whole file (also /proc files, whose size is unknown); false with
// errno set when it cannot.
bool read_file(const std::string &path, std::string *out);

// Writes `text` to `path`, mode 0644, through a temporary file renamed over
// it; false with *error set when it cannot.
bool write_file(const std::string &path, const std::string &text, std::string *error);

}  // namespace keepalive_cli

#endif  // KEEPALIVE_TOOLS_FILES_H
