#!/bin/bash
# deb_test.sh - the cross build's Debian packages: cpack in the build tree must
# name the target's architecture (not the build machine's), compute Depends
# from the target's libraries (libc6, not the cross toolchain's
# libc6-arm64-cross), install the aarch64 library under its multiarch
# directory, and pass lintian without errors.
#
# Usage: deb_test.sh BUILD_DIR VERSION ARCH TRIPLET
set -euo pipefail
build=$1 version=$2 arch=$3 triplet=$4
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
for tool in dpkg-deb dpkg-shlibdeps lintian; do
  command -v "$tool" >/dev/null || { fail "$tool not found (apt-get install dpkg-dev lintian)"; exit 1; }
done

rm -rf "$build/packages"
(cd "$build" && cpack -G DEB) >"$build/cpack.log" 2>&1 || { cat "$build/cpack.log" >&2; exit 1; }
deb=$build/packages/libkeepalive_${version}_${arch}.deb
dev=$build/packages/libkeepalive-dev_${version}_${arch}.deb
for file in "$deb" "$dev"; do
  [[ -f $file ]] || { fail "$file not built: $(ls "$build/packages")"; exit 1; }
  ok "built $(basename "$file")"
  [[ $(dpkg-deb -f "$file" Architecture) == "$arch" ]] && ok "Architecture: $arch" ||
    fail "Architecture: $(dpkg-deb -f "$file" Architecture)"
done
depends=$(dpkg-deb -f "$deb" Depends)
if [[ $depends =~ (^|, )libc6\ \(\>=\ 2\.[0-9]+\) && $depends != *-cross* ]]; then
  ok "Depends computed for $arch: $depends"
else
  fail "Depends: '$depends'"
fi
library=./usr/lib/$triplet/libkeepalive.so.$version
contents=$(dpkg-deb -c "$deb")
if grep -q " $library\$" <<<"$contents"; then ok "has $library"; else fail "lacks $library"; fi
dpkg-deb -x "$deb" "$build/packages/root"
machine=$(readelf -h "$build/packages/root/$library" | sed -n 's/^ *Machine: *//p')
ok "library machine: $machine"
lintian --tag-display-limit 0 "$deb" "$dev" >"$build/lintian.log" 2>&1 || true
cat "$build/lintian.log"
if grep -q '^E:' "$build/lintian.log"; then fail "lintian reports errors"; else ok "lintian: no errors"; fi
((failures == 0)) || exit 1
echo "cross deb test: all checks passed"
