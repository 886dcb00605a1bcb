#!/usr/bin/env bash
# kernel_idle_test.sh LIBRARY — a kernel default idle time above what
# TCP_KEEPIDLE accepts (the sysctl takes 40000; an unset socket then reads
# 40000) must not make the library take every socket for one whose program
# chose its own timings: with KEEPALIVE_IDLE=33 both ends of a loopback
# connection in a fresh network namespace must read 33.
set -euo pipefail
library=$1
if [[ $(id -u) -ne 0 ]] || ! command -v unshare >/dev/null || ! command -v ip >/dev/null; then
  message="needs root, unshare and ip (iproute2)"
  if [[ ${LIBKEEPALIVE_E2E_REQUIRED:-0} == 1 ]]; then
    echo "FAIL: $message (LIBKEEPALIVE_E2E_REQUIRED=1)" >&2
    exit 1
  fi
  echo "SKIPPED: $message" >&2
  exit 77
fi
read -r -d '' program <<'PYTHON' || true
import socket
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
client = socket.create_connection(listener.getsockname())
accepted, _ = listener.accept()
idle = lambda s: s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
print(f"accepted={idle(accepted)} connected={idle(client)}")
PYTHON
result=$(unshare --net sh -c '
  ip link set lo up
  sysctl -qw net.ipv4.tcp_keepalive_time=40000
  echo "kernel default idle: $(cat /proc/sys/net/ipv4/tcp_keepalive_time)" >&2
  LD_PRELOAD="$1" KEEPALIVE_IDLE=33 /usr/bin/python3 -c "$2"' sh "$library" "$program")
echo "$result"
if [[ $result != "accepted=33 connected=33" ]]; then
  echo "FAIL: expected accepted=33 connected=33" >&2
  exit 1
fi
