#!/bin/bash
# glibc_symbols_test.sh - the library and the command must run on glibc 2.28
# (the oldest supported: RHEL/Alma 8, Debian 10). Builds them as an older
# system would (shim/compat.h's fallbacks instead of gettid and
# strerrorname_np), then reads the glibc version of every symbol they import:
# one newer than 2.28 is allowed only where older glibc has the same symbol
# under an older version, so that the same source links there:
#   dl*, pthread_*, __libc_start_main   moved into libc in 2.34 (libdl, libpthread before)
#   stat, fstat, lstat, fstatat         2.33 (inline wrappers of __xstat before)
#   exp, exp2, log, log2, pow           2.29 (new versions without SVID errors)
# The normal build may use only the functions with a fallback besides.
#
# Usage: glibc_symbols_test.sh CMAKE SOURCE_DIR BUILD_DIR [COMPILER_LAUNCHER]
# Needs: readelf (Debian package binutils).
set -euo pipefail

cmake=$1 source=$2 build=$3 launcher=${4:-}
minimum=2.28
moved='^(dl[a-z]+|pthread_[a-z_]+|__libc_start_main|f?stat|lstat|fstatat|exp2?|log2?|pow)$'
with_fallback='^(gettid|strerrorname_np)$'
# Kept between runs (rebuilt incrementally) beside the normal build.
fallback=$build/glibc-fallback-build
failures=0

newer_symbols() {  # newer_symbols FILE: "symbol version" for each import newer than $minimum
  readelf -W --dyn-syms "$1" | awk '$7 == "UND" && $8 ~ /@GLIBC_[0-9.]+/ {
      split($8, part, "@"); sub(/^GLIBC_/, "", part[2]); sub(/ .*/, "", part[2]);
      print part[1], part[2] }' |
    while read -r symbol version; do
      if [[ $(printf '%s\n%s\n' "$minimum" "$version" | sort -V | tail -n 1) != "$minimum" ]]; then
        echo "$symbol $version"
      fi
    done | sort -u
}

check() {  # check FILE ALLOWED_REGEX
  local file=$1 allowed=$2 symbol version bad=0
  while read -r symbol version; do
    if [[ $symbol =~ $allowed ]]; then
      echo "ok: $(basename "$file"): $symbol@GLIBC_$version (exists in glibc $minimum under an older version or has a fallback)"
    else
      echo "FAIL: $(basename "$file") needs $symbol@GLIBC_$version, newer than glibc $minimum" >&2
      bad=1
    fi
  done < <(newer_symbols "$file")
  failures=$((failures + bad))
}

echo "== the normal build: $build"
for file in "$build"/lib/libkeepalive.so "$build"/bin/keepalive; do
  [[ -e $file ]] || { echo "FAIL: $file not built" >&2; exit 1; }
  check "$file" "$moved|$with_fallback"
done

echo "== built as on glibc $minimum (no gettid, no strerrorname_np)"
if ! "$cmake" -S "$source" -B "$fallback" -DKEEPALIVE_BUILD_TESTS=OFF \
  -DKEEPALIVE_HAVE_GETTID=OFF -DKEEPALIVE_HAVE_STRERRORNAME_NP=OFF \
  -DCMAKE_C_COMPILER_LAUNCHER="$launcher" -DCMAKE_CXX_COMPILER_LAUNCHER="$launcher" >"$fallback.log" 2>&1 ||
  ! "$cmake" --build "$fallback" --target keepalive keepalive_command >>"$fallback.log" 2>&1; then
  cat "$fallback.log" >&2
  echo "FAIL: the build with the fallbacks failed" >&2
  exit 1
fi
library=$(find "$fallback/lib" -name libkeepalive.so -print -quit)
for file in "$library" "$fallback"/bin/keepalive; do
  [[ -e $file ]] || { echo "FAIL: '$file' not built" >&2; exit 1; }
  check "$file" "$moved"
done

if ((failures > 0)); then
  echo "glibc symbol test: $failures file(s) need a glibc newer than $minimum" >&2
  exit 1
fi
echo "glibc symbol test: every import exists in glibc $minimum"
