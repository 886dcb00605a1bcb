/* main.c - uses the installed C API: the library's version, the duration
 * parser and the configuration loader. Built twice by install_test.sh: with
 * CMake (find_package) and with pkg-config. Exits 0 when every call answers
 * as documented in keepalive.h. */
#include <keepalive/keepalive.h>
#include <stdio.h>
#include <string.h>

static const char *lookup(const char *name, void *context) {
  (void)context;
  return strcmp(name, "KEEPALIVE_IDLE") == 0 ? "4m30s" : NULL;
}

int main(void) {
  long long ms = 0;
  if (!keepalive_parse_duration_ms("4m30s", &ms) || ms != 270000) {
    fprintf(stderr, "keepalive_parse_duration_ms(\"4m30s\") gave %lld\n", ms);
    return 1;
  }
  static keepalive_config config;
  if (!keepalive_config_load(&config, lookup, NULL, 75) || config.global.idle_s != 270) {
    fprintf(stderr, "keepalive_config_load: idle %d\n", config.global.idle_s);
    return 1;
  }
  if (strcmp(keepalive_version(), KEEPALIVE_VERSION_STRING) != 0) {
    fprintf(stderr, "library %s, header %s\n", keepalive_version(), KEEPALIVE_VERSION_STRING);
    return 1;
  }
  printf("libkeepalive %s: 4m30s = %lld ms\n", keepalive_version(), ms);
  return 0;
}
