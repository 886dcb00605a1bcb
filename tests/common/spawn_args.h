// spawn_args.h — what the test harnesses hand to posix_spawn: argv and envp
// built from strings (for programs started with an environment of the test's
// choosing), and the file actions of a program that reads nothing and whose
// output the test collects.
#ifndef KEEPALIVE_TESTS_COMMON_SPAWN_ARGS_H
#define KEEPALIVE_TESTS_COMMON_SPAWN_ARGS_H

#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace keepalive_test {

// A NULL-ended array of C strings that owns its text (argv, envp).
class CStrings {
 public:
  explicit CStrings(std::vector<std::string> items) : items_(std::move(items)) {
    for (std::string &item : items_) pointers_.push_back(item.data());
    pointers_.push_back(nullptr);
  }
  CStrings(const CStrings &) = delete;
  CStrings &operator=(const CStrings &) = delete;

  char *const *get() const { return pointers_.data(); }

 private:
  std::vector<std::string> items_;
  std::vector<char *> pointers_;
};

// The environment of a started program: a standard PATH, the variables
// named in `passed_on` as the test has them (those it has), then `env`.
inline CStrings spawn_environment(const std::vector<std::pair<std::string, std::string>> &env,
                                  std::initializer_list<const char *> passed_on = {}) {
  std::vector<std::string> text = {
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  for (const char *name : passed_on) {
    if (const char *value = getenv(name)) text.push_back(std::string(name) + "=" + value);
  }
  for (const auto &[name, value] : env) text.push_back(name + "=" + value);
  return CStrings(std::move(text));
}

// posix_spawn's file actions: stdin on /dev/null, stdout and stderr onto
// `out_fd` and `err_fd` (the write ends of the test's pipes).
class OutputActions {
 public:
  OutputActions(int out_fd, int err_fd) {
    posix_spawn_file_actions_init(&actions_);
    posix_spawn_file_actions_addopen(&actions_, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions_, out_fd, 1);
    posix_spawn_file_actions_adddup2(&actions_, err_fd, 2);
  }
  OutputActions(const OutputActions &) = delete;
  OutputActions &operator=(const OutputActions &) = delete;
  ~OutputActions() { posix_spawn_file_actions_destroy(&actions_); }

  const posix_spawn_file_actions_t *get() const { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_;
};

}  // namespace keepalive_test

#endif  // KEEPALIVE_TESTS_COMMON_SPAWN_ARGS_H
