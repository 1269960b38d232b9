#!/usr/bin/env bash
# Installs conduit from the build tree into a scratch prefix, then builds the
# examples against it twice — with find_package(conduit) and with pkg-config —
# and runs them. The RPC example (examples/rpc: a service of its own .proto,
# compiled with conduit_generate_grpc) is served with reflection on and
# called from its generated stub, from grpcio and with the installed
# `conduit call`.
set -euo pipefail
source_dir=$1
build_dir=$2
scratch=$(mktemp -d /tmp/conduit-install-XXXXXX)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT

cmake --install "$build_dir" --prefix "$scratch/prefix" >/dev/null
test -f "$scratch/prefix/include/conduit/ipc/channel.hpp"
test -f "$scratch/prefix/lib/cmake/conduit/conduitConfig.cmake"
test -f "$scratch/prefix/lib/pkgconfig/conduit.pc"
test -x "$scratch/prefix/bin/conduit"
test -f "$scratch/prefix/include/conduit/rpc/client_channel.hpp"
test -x "$scratch/prefix/bin/protoc-gen-conduit"
test -f "$scratch/prefix/lib/cmake/conduit/conduitGenerate.cmake"

# CMake package
cmake -S "$source_dir/examples" -B "$scratch/cmake-build" -G Ninja \
      -DCMAKE_PREFIX_PATH="$scratch/prefix" >/dev/null
cmake --build "$scratch/cmake-build" >/dev/null
out=$("$scratch/cmake-build/echo_pair" "unix:@conduit-install-test-$$")
[ "$out" = "hello over unix:@conduit-install-test-$$" ] || { echo "unexpected: $out"; exit 1; }

# The RPC example, served with reflection on a port the kernel picks.
"$scratch/cmake-build/greeter_server" tcp://127.0.0.1:0 "unix:$scratch/greeter.sock" \
  >"$scratch/server.out" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  [ "$(wc -l <"$scratch/server.out")" -ge 2 ] && break
  sleep 0.1
done
address=$(sed -n 1p "$scratch/server.out")
case "$address" in tcp://127.0.0.1:*) ;; *) echo "the server said: $(cat "$scratch/server.out")"; exit 1 ;; esac
host_port=${address#tcp://}

# its generated stub, over gRPC on TCP and a UNIX socket
expected=$'Hello, installed!\n1\n2\n3'
for target in "grpc://$host_port" "grpc+unix:$scratch/greeter.sock"; do
  out=$(timeout 20 "$scratch/cmake-build/greeter_client" "$target" installed)
  [ "$out" = "$expected" ] || { echo "greeter_client $target: $out"; exit 1; }
done

# grpcio, with the messages written by hand (field 1, a string; field 1, an int)
out=$(timeout 20 /usr/bin/python3 - "$host_port" <<'PY'
import sys, grpc
channel = grpc.insecure_channel(sys.argv[1])
hello = channel.unary_unary("/example.Greeter/SayHello")(b"\x0a\x06grpcio", timeout=10)
counts = channel.unary_stream("/example.Greeter/CountTo")(b"\x08\x02", timeout=10)
print(hello[2:].decode(), [c for c in counts] == [b"\x08\x01", b"\x08\x02"])
PY
)
[ "$out" = "Hello, grpcio! True" ] || { echo "grpcio: $out"; exit 1; }

# the installed `conduit call`, which reads the schema by reflection
out=$(timeout 20 "$scratch/prefix/bin/conduit" call "grpc://$host_port" example.Greeter/SayHello \
      '{"name": "cli"}')
case "$out" in *'"message":"Hello, cli!"'*) ;; *) echo "conduit call: $out"; exit 1 ;; esac
out=$(timeout 20 "$scratch/prefix/bin/conduit" call --list "grpc://$host_port")
case "$out" in *"CountTo(example.CountRequest) returns (stream example.Count)"*) ;; *) echo "conduit call --list: $out"; exit 1 ;; esac
kill "$server_pid"
wait "$server_pid" || { echo "the server did not end cleanly on SIGTERM"; exit 1; }
server_pid=

# pkg-config
export PKG_CONFIG_PATH="$scratch/prefix/lib/pkgconfig"
# shellcheck disable=SC2046
c++ -o "$scratch/echo_pair_pc" "$source_dir/examples/echo_pair.cpp" $(pkg-config --cflags --libs conduit)
out=$("$scratch/echo_pair_pc" tcp://127.0.0.1:0)
case "$out" in "hello over tcp://127.0.0.1:"*) ;; *) echo "unexpected: $out"; exit 1 ;; esac
echo "installed package works with find_package and pkg-config; the RPC example answers its stub, grpcio and conduit call"
