// replay_main.cc — runs config_fuzzer.cc's checks over files and directories
// of inputs, without libFuzzer: every build (GCC included) replays the
// checked-in corpus and the regression inputs of past findings this way.
// Fails when an argument names nothing readable, or when no input was run.

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

namespace {

bool Collect(const std::string &path, std::vector<std::string> *files) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return false;
  if (S_ISREG(st.st_mode)) {
    files->push_back(path);
    return true;
  }
  if (!S_ISDIR(st.st_mode)) return false;
  DIR *dir = opendir(path.c_str());
  if (dir == nullptr) return false;
  std::vector<std::string> names;
  while (dirent *entry = readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != ".." && name != "README.md") names.push_back(name);
  }
  closedir(dir);
  std::sort(names.begin(), names.end());
  for (const std::string &name : names) Collect(path + "/" + name, files);
  return true;
}

}  // namespace

int main(int argc, char **argv) {
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    if (!Collect(argv[i], &files)) {
      fprintf(stderr, "replay: cannot read %s\n", argv[i]);
      return 2;
    }
  }
  for (const std::string &file : files) {
    std::ifstream in(file, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    fprintf(stderr, "replay: %s (%zu bytes)\n", file.c_str(), bytes.size());
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size());
  }
  if (files.empty()) {
    fprintf(stderr, "replay: no input found\n");
    return 2;
  }
  printf("replay: %zu inputs passed every check\n", files.size());
  return 0;
}
