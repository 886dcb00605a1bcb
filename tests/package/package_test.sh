#!/bin/bash
# package_test.sh - the Debian packages as an admin gets them: builds them with
# CPack from a /usr build tree, checks their metadata and contents and runs
# lintian, installs them on this machine, then from the installed files only:
# `keepalive run` configures a real server's connection (read back with
# `ss -tnoe`), `man keepalive` renders, the -dev package compiles a program;
# upgrades the package under a running preloaded server (which must keep
# running and keep configuring connections: dpkg replaces the library by
# rename, the process keeps its mapped copy); finally purges both packages,
# which must leave no file behind. The machine is restored on every exit.
#
# Usage: package_test.sh CMAKE SOURCE_DIR WORK_DIR VERSION
# Needs root and the Debian packages dpkg-dev, lintian, man-db, iproute2,
# python3, pkg-config, a C compiler. Without them the test is skipped (exit
# 77), or fails with LIBKEEPALIVE_PACKAGE_REQUIRED=1 (as CI sets).
set -euo pipefail

cmake=$1 source=$2 work=$3 version=$4
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
expect_eq() {  # expect_eq WHAT ACTUAL EXPECTED
  if [[ "$2" == "$3" ]]; then ok "$1"; else fail "$1: got '$2', expected '$3'"; fi
}
skip() {
  if [[ ${LIBKEEPALIVE_PACKAGE_REQUIRED:-0} == 1 ]]; then
    echo "FAIL: $* (LIBKEEPALIVE_PACKAGE_REQUIRED=1)" >&2
    exit 1
  fi
  echo "SKIPPED: package test: $*" >&2
  exit 77
}

[[ $(id -u) -eq 0 ]] || skip "needs root to install the packages"
for tool in dpkg-deb dpkg-shlibdeps lintian man ss pkg-config cc; do
  command -v "$tool" >/dev/null ||
    skip "$tool not found (apt-get install dpkg-dev lintian man-db iproute2 pkg-config gcc)"
done
python3=/usr/bin/python3
[[ -x $python3 ]] || skip "/usr/bin/python3 not found (apt-get install python3)"
if grep -qs '^path-exclude.*/usr/share/\(man\|doc\)' /etc/dpkg/dpkg.cfg /etc/dpkg/dpkg.cfg.d/*; then
  skip "dpkg is configured to drop /usr/share/man or /usr/share/doc (path-exclude)"
fi
# One package test at a time on this machine, and never over a libkeepalive
# installed by someone else.
exec 9>/run/lock/libkeepalive-package-test.lock
flock 9
for package in libkeepalive libkeepalive-dev; do
  if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'installed'; then
    echo "FAIL: $package is already installed on this machine; not touching it" >&2
    exit 1
  fi
done

unset LD_PRELOAD KEEPALIVE KEEPALIVE_IDLE KEEPALIVE_INTVL KEEPALIVE_CNT \
  KEEPALIVE_USER_TIMEOUT KEEPALIVE_RULES KEEPALIVE_LOG KEEPALIVE_STRICT KEEPALIVE_LIBRARY
arch=$(dpkg --print-architecture)
triplet=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
libdir=/usr/lib/$triplet
tmp=$(mktemp -d)
server_pid=
clients=()
cleanup() {
  if ((${#clients[@]} > 0)); then kill "${clients[@]}" 2>/dev/null || true; fi
  if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; fi
  dpkg --purge libkeepalive-dev libkeepalive >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "== build: $work (prefix /usr), cpack -G DEB"
packages=$work/packages
rm -rf "$packages"
if ! { "$cmake" -S "$source" -B "$work" -DCMAKE_INSTALL_PREFIX=/usr -DKEEPALIVE_BUILD_TESTS=OFF &&
  "$cmake" --build "$work" -j"$(nproc)" &&
  (cd "$work" && cpack -G DEB); } >"$tmp/build.log" 2>&1; then
  cat "$tmp/build.log" >&2
  echo "FAIL: building the packages failed" >&2
  exit 1
fi
deb=$packages/libkeepalive_${version}_${arch}.deb
dev=$packages/libkeepalive-dev_${version}_${arch}.deb
for file in "$deb" "$dev"; do
  [[ -f $file ]] || { echo "FAIL: $file not built; got: $(ls "$packages")" >&2; exit 1; }
  ok "built $(basename "$file")"
done

echo "== metadata"
field() { dpkg-deb -f "$1" "$2"; }
expect_eq "Package" "$(field "$deb" Package)" libkeepalive
expect_eq "Version" "$(field "$deb" Version)" "$version"
expect_eq "Architecture" "$(field "$deb" Architecture)" "$arch"
# Computed by dpkg-shlibdeps: the C library with the version its symbols need.
depends=$(field "$deb" Depends)
if [[ $depends =~ (^|, )libc6\ \(\>=\ 2\.[0-9]+\) ]]; then ok "Depends computed: $depends"; else fail "Depends: '$depends'"; fi
expect_eq "-dev Package" "$(field "$dev" Package)" libkeepalive-dev
expect_eq "-dev Depends" "$(field "$dev" Depends)" "libkeepalive (= $version)"
expect_eq "shlibs" "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./shlibs)" \
  "libkeepalive 0 libkeepalive (>= $version)"

echo "== contents"
contents() { dpkg-deb -c "$1" | awk '{print $6}' | sed 's|^\./|/|; s|/$||'; }
contents "$deb" >"$tmp/deb.list"
contents "$dev" >"$tmp/dev.list"
soname_target=$(dpkg-deb -c "$deb" | awk -v f="./usr/lib/$triplet/libkeepalive.so.0" '$6 == f {print $8}')
expect_eq "soname link libkeepalive.so.0" "$soname_target" "libkeepalive.so.$version"
expect_files() {  # expect_files PACKAGE LIST PATH...: LIST (its contents) has each PATH
  local package=$1 list=$2 path
  shift 2
  for path; do
    if grep -qx "$path" "$list"; then ok "$package has $path"; else fail "$package lacks $path"; fi
  done
}
expect_files libkeepalive "$tmp/deb.list" /usr/bin/keepalive "$libdir/libkeepalive.so.$version" \
  "$libdir/libkeepalive.so" /usr/share/man/man1/keepalive.1.gz \
  /usr/share/man/man7/libkeepalive.7.gz /usr/share/doc/libkeepalive/copyright \
  /usr/share/doc/libkeepalive/changelog.gz \
  /usr/share/doc/libkeepalive/examples/prosody/prosody.service.d/keepalive.conf
expect_files libkeepalive-dev "$tmp/dev.list" /usr/include/keepalive/keepalive.h \
  "$libdir/cmake/keepalive/keepalive-config.cmake" "$libdir/pkgconfig/keepalive.pc" \
  /usr/share/doc/libkeepalive-dev/copyright
if grep -v '^/usr\(/\|$\)' "$tmp/deb.list" "$tmp/dev.list"; then fail "files outside /usr"; fi
# The demos need the source tree (tests/e2e): not shipped.
if grep '/examples/\(prosody/\)\?demo$' "$tmp/deb.list"; then fail "a demo is shipped"; fi

echo "== lintian"
lintian --tag-display-limit 0 "$deb" "$dev" >"$tmp/lintian.log" 2>&1 || true
cat "$tmp/lintian.log"
if grep -q '^E:' "$tmp/lintian.log"; then fail "lintian reports errors"; else ok "lintian: no errors"; fi

echo "== install"
# What exists before, to tell the packages' directories from shared ones.
while read -r path; do [[ -e $path || -L $path ]] && echo "$path"; done \
  < <(cat "$tmp/deb.list" "$tmp/dev.list") >"$tmp/before.list"
dpkg -i "$deb" "$dev" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log" >&2; fail "dpkg -i"; exit 1; }
ok "dpkg -i libkeepalive libkeepalive-dev"
expect_eq "keepalive is /usr/bin/keepalive" "$(command -v keepalive)" /usr/bin/keepalive
expect_eq "keepalive --version" "$(/usr/bin/keepalive --version)" \
  "keepalive $version
License: MIT; see /usr/share/doc/libkeepalive/copyright (LICENSE in the sources)"
grep -q "^License: MIT" /usr/share/doc/libkeepalive/copyright && ok "copyright names the MIT licence" ||
  fail "copyright file"
expect_eq "LD_PRELOAD from keepalive run" \
  "$(/usr/bin/keepalive run -- sh -c 'echo "$LD_PRELOAD"')" "$libdir/libkeepalive.so"

echo "== man"
for page in "1 keepalive" "7 libkeepalive"; do
  # shellcheck disable=SC2086  # section and name
  if MANWIDTH=80 man -P cat $page 2>"$tmp/man.err" | grep -q "keepalive run"; then
    ok "man $page renders"
  else
    fail "man $page: $(cat "$tmp/man.err")"
  fi
done

echo "== -dev: pkg-config and a program linked with libkeepalive"
expect_eq "pkg-config --modversion" "$(pkg-config --modversion keepalive)" "$version"
# shellcheck disable=SC2046  # flags
if cc -o "$tmp/consumer" "$source/tests/tools/consumer/main.c" $(pkg-config --cflags --libs keepalive) \
  2>"$tmp/cc.log"; then
  expect_eq "consumer runs" "$("$tmp/consumer")" "libkeepalive $version: 4m30s = 270000 ms"
else
  fail "compiling with pkg-config: $(cat "$tmp/cc.log")"
fi

echo "== keepalive run: a real server's connection, seen by ss -tnoe"
# The server accepts connections and keeps them; the client (not preloaded)
# connects on request: a line on the server's stdin.
cat >"$tmp/server.py" <<'PY'
import socket, sys
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(8)
print(listener.getsockname()[1], flush=True)
kept = []
for line in sys.stdin:
    kept.append(listener.accept()[0])
    print("accepted", flush=True)
PY
mkfifo "$tmp/to_server" "$tmp/from_server"
/usr/bin/keepalive run --idle 37 --intvl 7 --cnt 4 -- "$python3" "$tmp/server.py" \
  <"$tmp/to_server" >"$tmp/from_server" &
server_pid=$!
exec 7>"$tmp/to_server" 8<"$tmp/from_server"
read -r -t 20 port <&8 || { fail "the server did not start"; exit 1; }
connect_and_check() {  # connect_and_check WHAT: one more connection, configured?
  local client_port=$tmp/client.${#clients[@]} reply line
  "$python3" -c "import socket,sys,time
s = socket.create_connection(('127.0.0.1', $port))
print(s.getsockname()[1], flush=True)
time.sleep(600)" >"$client_port" &
  clients+=($!)
  echo connect >&7
  read -r -t 20 reply <&8 || { fail "$1: the server did not accept"; return; }
  sleep 0.2
  # The server's end of this connection: its peer is the client's port.
  line=$(ss -tnoe state established "( sport = :$port and dport = :$(cat "$client_port") )" | tail -n +2)
  # A fresh connection's first keepalive timer runs from the idle time, 37 s.
  if [[ $line =~ timer:\(keepalive,(3[0-7](\.[0-9]+)?sec),0\) ]]; then
    ok "$1: ss -tnoe shows timer:(keepalive,${BASH_REMATCH[1]},0) (idle 37 s)"
  else
    fail "$1: ss -tnoe: '$line'"
  fi
}
connect_and_check "installed keepalive run"

echo "== upgrade to $version+1 while the preloaded server runs"
cpack_dir=$work/upgrade
rm -rf "$cpack_dir"
(cd "$work" && cpack -G DEB -B "$cpack_dir" -D CPACK_PACKAGE_VERSION="$version+1" \
  -D CPACK_COMPONENTS_ALL=runtime) >"$tmp/upgrade-build.log" 2>&1 ||
  { cat "$tmp/upgrade-build.log" >&2; fail "building $version+1"; }
upgrade=$(ls "$cpack_dir"/libkeepalive_"$version+1"_"$arch".deb)
inode_before=$(stat -c %i "$libdir/libkeepalive.so.$version")
dpkg -i "$upgrade" >"$tmp/upgrade.log" 2>&1 || { cat "$tmp/upgrade.log" >&2; fail "dpkg -i $upgrade"; }
expect_eq "installed version" "$(dpkg-query -W -f='${Version}' libkeepalive)" "$version+1"
inode_after=$(stat -c %i "$libdir/libkeepalive.so.$version")
if [[ $inode_before != "$inode_after" ]]; then ok "library replaced by a new file (inode $inode_before → $inode_after)"; else fail "library rewritten in place (inode $inode_before)"; fi
if kill -0 "$server_pid" 2>/dev/null; then ok "the preloaded server survived the upgrade"; else fail "the preloaded server died during the upgrade"; fi
if grep -q "libkeepalive.so.$version (deleted)" "/proc/$server_pid/maps"; then
  ok "the server still runs its copy of the replaced library"
else
  fail "the server's maps: $(grep libkeepalive "/proc/$server_pid/maps" || echo none)"
fi
connect_and_check "after the upgrade"
exec 7>&-
kill "${clients[@]}" 2>/dev/null || true
wait "$server_pid" 2>/dev/null || true
server_pid=

echo "== purge"
dpkg --purge libkeepalive-dev libkeepalive >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log" >&2; fail "dpkg --purge"; }
left=0
while read -r path; do
  if [[ -e $path || -L $path ]] && ! grep -qx "$path" "$tmp/before.list"; then
    fail "left behind by purge: $path"
    left=1
  fi
done < <(cat "$tmp/deb.list" "$tmp/dev.list")
if compgen -G "/var/lib/dpkg/info/libkeepalive*" >/dev/null; then fail "dpkg still knows: $(ls /var/lib/dpkg/info/libkeepalive*)"; left=1; fi
((left)) || ok "purge left no file behind"

if ((failures > 0)); then
  echo "package test: $failures check(s) failed" >&2
  exit 1
fi
echo "package test: all checks passed"
