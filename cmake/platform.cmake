# platform.cmake — what the C library offers. The oldest supported glibc is
# 2.28 (Debian 10, RHEL/Alma 8, Ubuntu 20.04 has 2.31): functions added later
# are used only where present, with the fallbacks in shim/compat.h. Set a
# variable to OFF to build the fallback on a newer system (the glibc symbol
# test does).
include(CheckSymbolExists)
find_package(Threads REQUIRED)

set(CMAKE_REQUIRED_DEFINITIONS -D_GNU_SOURCE)
check_symbol_exists(gettid unistd.h KEEPALIVE_HAVE_GETTID)            # glibc 2.30
check_symbol_exists(strerrorname_np string.h KEEPALIVE_HAVE_STRERRORNAME_NP)  # glibc 2.32
unset(CMAKE_REQUIRED_DEFINITIONS)
add_compile_definitions(
  KEEPALIVE_HAVE_GETTID=$<BOOL:${KEEPALIVE_HAVE_GETTID}>
  KEEPALIVE_HAVE_STRERRORNAME_NP=$<BOOL:${KEEPALIVE_HAVE_STRERRORNAME_NP}>)
