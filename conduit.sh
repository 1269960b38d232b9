#!/usr/bin/env bash
# Set up, build and run conduit on Debian 12, from nothing but bash and apt.
#
#   ./conduit.sh compare [ARGS...]   build, then measure every mechanism on this machine
#   ./conduit.sh test [--sanitize|--tsan]
#                                    build, then run the whole test suite (CTest);
#                                    --sanitize: with ASan and UBSan; --tsan: the
#                                    RPC tests with ThreadSanitizer
#   ./conduit.sh build               build only; the binary is build/conduit
#   ./conduit.sh bench jsonrpc-http [ARGS...]
#                                    JSON-RPC over HTTP against libjson-rpc-cpp
#                                    with wrk (bench/jsonrpc_http_bench.py)
#   ./conduit.sh bench grpc [ARGS...]
#                                    gRPC unary calls against gRPC C++ (libgrpc++)
#                                    with h2load, then conduit's gRPC client
#                                    against libgrpc++'s (bench/grpc_bench.py)
#   ./conduit.sh soak [--minutes N] [--hostile N]
#                                    build, then N minutes (10) of legitimate
#                                    JSON-RPC and gRPC calls beside hostile
#                                    clients against `conduit serve`, printing
#                                    calls, errors and the server's memory,
#                                    threads and descriptors once a minute
#                                    (bench/soak.py; not part of the tests)
#
# Missing Debian packages (compiler, CMake, libraries, test peers) are installed
# with apt-get; run as root, or as a user with sudo.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

PACKAGES=(
  g++ cmake ninja-build ccache pkg-config
  libcli11-dev libfmt-dev
  libboost1.81-dev libnghttp2-dev zlib1g-dev libprotobuf-dev libprotoc-dev protobuf-compiler grpc-proto rapidjson-dev
  libgtest-dev libgmock-dev libbenchmark-dev libjsonrpccpp-dev
  socat python3 python3-grpcio nghttp2-client procps util-linux
)

say() { printf 'conduit.sh: %s\n' "$*" >&2; }

install_missing_packages() {
  local missing=()
  for package in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$package")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { say "need root (or sudo) to install: ${missing[*]}"; exit 2; }
    sudo=(sudo)
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# build DIR TARGET [CMAKE-OPTIONS...]
build() {
  local dir=$1 target=$2; shift 2
  install_missing_packages
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  fi
  cmake --build "$dir" --target "$target" -j "$(nproc)"
}

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
  build)
    build build all
    ;;
  compare)
    build build conduit-cli
    exec build/conduit compare "$@"
    ;;
  bench)
    case "${1:-}" in
      jsonrpc-http)
        shift
        PACKAGES+=(wrk valgrind)
        build build all
        exec python3 bench/jsonrpc_http_bench.py --conduit build/conduit \
          --peer build/tests/jsonrpccpp_peer --floor build/bench/http_floor "$@"
        ;;
      grpc)
        shift
        PACKAGES+=(libgrpc++-dev protobuf-compiler-grpc nghttp2-client)
        build build all
        # A build directory configured before libgrpc++ was installed has not
        # looked for it since.
        if [ ! -x build/bench/grpc_cpp_server ] || [ ! -x build/bench/grpc_client_load ]; then
          cmake -S . -B build >/dev/null
          cmake --build build --target grpc_cpp_server grpc_client_load -j "$(nproc)"
        fi
        # Debian's python3: the one with python3-grpcio, which checks the answers.
        exec /usr/bin/python3 bench/grpc_bench.py --conduit build/conduit \
          --grpc-cpp build/bench/grpc_cpp_server --floor build/bench/grpc_floor \
          --client-load build/bench/grpc_client_load "$@"
        ;;
      *)
        echo "usage: $0 bench jsonrpc-http [--seconds N] [--sizes 16,4096] [--connections 1,8]" >&2
        echo "       $0 bench grpc [--seconds N] [--sizes 16,4096] [--streams 1x1,8x16] [--unix-sizes 16]" >&2
        echo "                     [--client-shapes 1x1x1,8x16x4] [--client-size 16] [--no-clients|--clients-only]" >&2
        exit 2
        ;;
    esac
    ;;
  soak)
    build build conduit-cli
    # Debian's python3: the one with python3-grpcio.
    exec /usr/bin/python3 bench/soak.py --conduit build/conduit "$@"
    ;;
  test)
    if [ "${1:-}" = "--tsan" ]; then
      # ThreadSanitizer on the RPC clients and servers (the tests of
      # conduit_rpc_tests), built with clang: GCC 12's instrumentation
      # breaks protobuf's maps.
      PACKAGES+=(clang)
      CC=clang CXX=clang++ build build-tsan conduit_rpc_tests -DCONDUIT_SANITIZE=thread \
        -DCONDUIT_BUILD_BENCH=OFF -DCONDUIT_BUILD_EXAMPLES=OFF
      export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
      exec ctest --test-dir build-tsan --output-on-failure -j 2 --timeout 600 -L conduit_rpc_tests
    fi
    if [ "${1:-}" = "--sanitize" ]; then
      build build-sanitize all -DCONDUIT_SANITIZE=address,undefined -DCONDUIT_BUILD_BENCH=OFF
      exec ctest --test-dir build-sanitize --output-on-failure -j 2
    fi
    build build all
    exec ctest --test-dir build --output-on-failure -j 2
    ;;
  *)
    echo "usage: $0 compare [ARGS...] | test [--sanitize|--tsan] | build | bench jsonrpc-http|grpc [ARGS...] | soak [--minutes N]" >&2
    exit 2
    ;;
esac
