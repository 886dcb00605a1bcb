#!/bin/bash
# install_test.sh - installs the build into a temporary prefix and uses it as
# a user would: the installed `keepalive run` must preload the installed
# library; a CMake project must find_package(keepalive) and link
# keepalive::keepalive; pkg-config must describe it. The tree is then moved
# to check that nothing in it depends on the prefix it was installed to.
#
# Usage: install_test.sh CMAKE BUILD_DIR SOURCE_DIR VERSION
# Needs: a C compiler, pkg-config (Debian package pkg-config).
set -euo pipefail

cmake=$1 build=$2 source=$3 version=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
work=$(cd "$work" && pwd -P)
failures=0

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

expect_eq() {  # expect_eq WHAT ACTUAL EXPECTED
  if [[ "$2" == "$3" ]]; then
    echo "ok: $1"
  else
    fail "$1: got '$2', expected '$3'"
  fi
}

# Environment of the checks: nothing of the caller's configuration.
unset LD_PRELOAD KEEPALIVE KEEPALIVE_IDLE KEEPALIVE_INTVL KEEPALIVE_CNT \
  KEEPALIVE_USER_TIMEOUT KEEPALIVE_RULES KEEPALIVE_LOG KEEPALIVE_STRICT KEEPALIVE_LIBRARY

echo "== cmake --install $build --prefix $work/prefix"
"$cmake" --install "$build" --prefix "$work/prefix" >"$work/install.log" ||
  { cat "$work/install.log" >&2; exit 1; }

# The layout users and unit files point at.
for file in bin/keepalive lib/libkeepalive.so include/keepalive/keepalive.h \
  lib/cmake/keepalive/keepalive-config.cmake lib/cmake/keepalive/keepalive-config-version.cmake \
  lib/cmake/keepalive/keepalive-targets.cmake lib/pkgconfig/keepalive.pc \
  share/man/man1/keepalive.1.gz share/man/man7/libkeepalive.7.gz \
  share/doc/libkeepalive/copyright share/doc/libkeepalive/examples/prosody/prosody.service.d/keepalive.conf; do
  if [[ -e "$work/prefix/$file" ]]; then echo "ok: installed $file"; else fail "not installed: $file"; fi
done
# The demos need the source tree (tests/e2e): not installed.
for file in examples/demo examples/prosody/demo; do
  if [[ -e "$work/prefix/share/doc/libkeepalive/$file" ]]; then
    fail "installed $file, which runs only from the sources"
  else
    echo "ok: $file not installed"
  fi
done

check_run() {  # check_run PREFIX: the installed command preloads the installed library
  local prefix=$1 preload maps
  expect_eq "keepalive --version" "$("$prefix/bin/keepalive" --version | head -n 1)" "keepalive $version"
  preload=$("$prefix/bin/keepalive" run --idle 30 -- sh -c 'echo "$LD_PRELOAD"')
  expect_eq "LD_PRELOAD set by $prefix/bin/keepalive run" "$preload" "$prefix/lib/libkeepalive.so"
  # Loaded for real: the loader maps it into the command.
  maps=$("$prefix/bin/keepalive" run -- cat /proc/self/maps | grep -c "$prefix/lib/libkeepalive.so" || true)
  if (( maps > 0 )); then echo "ok: library mapped in the child"; else fail "library not mapped in the child"; fi
}
check_run "$work/prefix"

echo "== move the installed tree"
mv "$work/prefix" "$work/moved"
check_run "$work/moved"

echo "== CMake consumer: find_package(keepalive) with CMAKE_PREFIX_PATH=$work/moved"
if "$cmake" -S "$source/tests/tools/consumer" -B "$work/consumer" \
  -DCMAKE_PREFIX_PATH="$work/moved" -DCMAKE_BUILD_TYPE=Release >"$work/consumer.log" 2>&1 &&
  "$cmake" --build "$work/consumer" >>"$work/consumer.log" 2>&1; then
  expect_eq "CMake consumer runs" "$("$work/consumer/keepalive_consumer")" \
    "libkeepalive $version: 4m30s = 270000 ms"
  linked=$(ldd "$work/consumer/keepalive_consumer" | grep -c "$work/moved/lib/libkeepalive.so" || true)
  if (( linked > 0 )); then echo "ok: consumer uses the installed library"; else fail "consumer does not use $work/moved/lib"; fi
else
  cat "$work/consumer.log" >&2
  fail "CMake consumer did not configure or build"
fi

echo "== pkg-config"
if ! command -v pkg-config >/dev/null; then
  fail "pkg-config not found: install the Debian package pkg-config"
else
  export PKG_CONFIG_PATH="$work/moved/lib/pkgconfig"
  expect_eq "pkg-config --modversion" "$(pkg-config --modversion keepalive)" "$version"
  # Normalized: pkg-config prints the prefix as found from the .pc file's directory.
  cflags=$(pkg-config --cflags keepalive | sed 's/ *$//')
  libs=$(pkg-config --libs keepalive | sed 's/ *$//')
  echo "pkg-config --cflags --libs keepalive: $cflags $libs"
  expect_eq "include directory" "$(cd "${cflags#-I}" && pwd -P)" "$work/moved/include"
  libdir=$(sed -n 's/^-L\([^ ]*\) -lkeepalive$/\1/p' <<<"$libs")
  expect_eq "library directory" "$(cd "$libdir" && pwd -P)" "$work/moved/lib"
  # shellcheck disable=SC2086  # word splitting of the flags is intended
  if cc -o "$work/pc_consumer" "$source/tests/tools/consumer/main.c" $cflags $libs \
    -Wl,-rpath,"$libdir" 2>"$work/pc.log"; then
    expect_eq "pkg-config consumer runs" "$("$work/pc_consumer")" \
      "libkeepalive $version: 4m30s = 270000 ms"
  else
    cat "$work/pc.log" >&2
    fail "compiling with pkg-config flags failed"
  fi
fi

if (( failures > 0 )); then
  echo "install test: $failures check(s) failed" >&2
  exit 1
fi
echo "install test: all checks passed"
