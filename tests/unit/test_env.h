// test_env.h — a fake environment for keepalive_config_load in unit tests.
#ifndef KEEPALIVE_TESTS_UNIT_TEST_ENV_H
#define KEEPALIVE_TESTS_UNIT_TEST_ENV_H

#include <map>
#include <memory>
#include <string>

#include "keepalive/keepalive.h"

namespace keepalive_test {

using Env = std::map<std::string, std::string>;

inline const char *lookup(const char *name, void *context) {
  const Env &env = *static_cast<const Env *>(context);
  auto it = env.find(name);
  return it == env.end() ? nullptr : it->second.c_str();
}

// keepalive_config is large (fixed-size rule storage): keep it off the stack.
inline std::unique_ptr<keepalive_config> load(const Env &env, int kernel_intvl_s = 75) {
  auto cfg = std::make_unique<keepalive_config>();
  keepalive_config_load(cfg.get(), lookup, const_cast<Env *>(&env), kernel_intvl_s);
  return cfg;
}

}  // namespace keepalive_test

#endif
