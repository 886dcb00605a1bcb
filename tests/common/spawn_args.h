// spawn_args.h — argv and envp for posix_spawn, built from strings, for the
// test harnesses that start programs with an environment of their choosing.
#ifndef KEEPALIVE_TESTS_COMMON_SPAWN_ARGS_H
#define KEEPALIVE_TESTS_COMMON_SPAWN_ARGS_H

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

}  // namespace keepalive_test

#endif  // KEEPALIVE_TESTS_COMMON_SPAWN_ARGS_H
