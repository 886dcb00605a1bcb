#!/bin/bash
# try-it.sh - `keepalive run` on loopback in a few seconds: a small server is
# started with the library preloaded, a client connects and stays idle, and
# `ss -tnoe` and `keepalive inspect` show the keepalive timer on the server's
# end of the connection (and none on the client's, which is not preloaded).
#
# Usage: examples/run/try-it.sh [KEEPALIVE]
#   KEEPALIVE: the keepalive command; default: `keepalive` from PATH, else
#   build/bin/keepalive. Needs python3 and ss (iproute2); no root.
set -euo pipefail

keepalive=${1:-$(command -v keepalive || echo build/bin/keepalive)}
rules='in idle=20 intvl=5 cnt=3; off'

# A server that accepts connections and holds them open, printing its port.
server='
import socket, sys, threading, time
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
print(listener.getsockname()[1], flush=True)
held = []
while True:
    held.append(listener.accept()[0])
'
# A client that connects and stays silent.
client='
import socket, sys, time
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print("connected", flush=True)
time.sleep(60)
'

workdir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$workdir"
}
trap cleanup EXIT

echo "\$ keepalive check --rules '$rules'"
"$keepalive" check --rules "$rules"
echo

echo "\$ keepalive run --rules '$rules' -- python3 -c \"\$server\" &"
mkfifo "$workdir/server.out" "$workdir/client.out"
"$keepalive" run --rules "$rules" -- python3 -c "$server" >"$workdir/server.out" &
pids+=($!)
server_pid=$!
read -r port <"$workdir/server.out"
echo "server pid $server_pid listens on 127.0.0.1:$port"

python3 -c "$client" "$port" >"$workdir/client.out" &
pids+=($!)
read -r _ <"$workdir/client.out"
echo "a client connected and stays idle"
sleep 0.2
echo

echo "\$ ss -tnoe state established '( sport = :$port or dport = :$port )'"
ss -tnoe state established "( sport = :$port or dport = :$port )"
echo
echo "\$ keepalive inspect $server_pid"
"$keepalive" inspect "$server_pid"
