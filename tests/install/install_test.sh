#!/usr/bin/env bash
# Installs conduit from the build tree into a scratch prefix, then builds the
# examples against it twice — with find_package(conduit) and with pkg-config —
# and runs them.
set -euo pipefail
source_dir=$1
build_dir=$2
scratch=$(mktemp -d /tmp/conduit-install-XXXXXX)
trap 'rm -rf "$scratch"' EXIT

cmake --install "$build_dir" --prefix "$scratch/prefix" >/dev/null
test -f "$scratch/prefix/include/conduit/ipc/channel.hpp"
test -f "$scratch/prefix/lib/cmake/conduit/conduitConfig.cmake"
test -f "$scratch/prefix/lib/pkgconfig/conduit.pc"
test -x "$scratch/prefix/bin/conduit"

# CMake package
cmake -S "$source_dir/examples" -B "$scratch/cmake-build" -G Ninja \
      -DCMAKE_PREFIX_PATH="$scratch/prefix" >/dev/null
cmake --build "$scratch/cmake-build" >/dev/null
out=$("$scratch/cmake-build/echo_pair" "unix:@conduit-install-test-$$")
[ "$out" = "hello over unix:@conduit-install-test-$$" ] || { echo "unexpected: $out"; exit 1; }

# pkg-config
export PKG_CONFIG_PATH="$scratch/prefix/lib/pkgconfig"
# shellcheck disable=SC2046
c++ -o "$scratch/echo_pair_pc" "$source_dir/examples/echo_pair.cpp" $(pkg-config --cflags --libs conduit)
out=$("$scratch/echo_pair_pc" tcp://127.0.0.1:0)
case "$out" in "hello over tcp://127.0.0.1:"*) ;; *) echo "unexpected: $out"; exit 1 ;; esac
echo "installed package works with find_package and pkg-config"
