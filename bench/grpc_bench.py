#!/usr/bin/python3
"""gRPC unary calls: conduit's server against gRPC C++'s (libgrpc++), side by side.

Both serve grpc.testing.TestService/UnaryCall and answer alike: a payload of
`response_size` zero bytes. conduit runs as `conduit serve --threads 1`;
gRPC C++ as bench/grpc_cpp_server, its asynchronous completion-queue API
with one queue and one thread (gRPC's core adds sleeping helper threads of
its own; see that file). Beside them runs the floor (bench/grpc_floor.cpp):
a bare epoll loop that reads each batch of requests whole, walks their HTTP/2
frames by their headers only and answers every finished stream with
pre-encoded bytes in one write, decoding no HPACK and no protobuf; what it
costs is what the kernel costs for one recv and one send per batch, the least
any server can spend (one floor process per payload size, as its answer is
built at start). Each server runs pinned to one CPU and h2load, the
load generator, to the other; h2load sends the same pre-encoded request
(the 5-byte gRPC prefix and a SimpleRequest asking for as many bytes as it
carries) to all three. For every payload size and connections x streams the
figures are:

  requests/s       calls answered per second over the timed run
  p50, p99         latency of each call as h2load logged it (--log-file)
  CPU/call         the server's CPU time (user + system, all threads, read
                   from /proc/PID/stat before and after) / calls answered:
                   the fair figure when h2load, not the server, saturates first

then conduit ÷ libgrpc++ for each, floor ÷ libgrpc++ for CPU/call, and
verdicts on the targets over TCP: CPU/call at most 0.5x at every point
(where it is not met and the floor alone is above 0.5x of libgrpc++, the
verdict says so: no server could meet it there), requests/s at least 1.3x at
8x16 (8 connections, 16 streams each), p99 lower at every point. A round trip
over a UNIX socket (1 connection, 1 stream) is measured for all three as well.

Before the load each server is called once per size over TCP and over its
UNIX socket by grpcio (python3-grpcio), a client of neither, and its answer
compared byte for byte with the expected SimpleResponse (not the floor's:
it answers canned bytes whatever it is asked). In every run h2load
must count no failed, errored or timed-out request and only 2xx answers, and
the DATA bytes it received must be exactly one whole response message per
call (an answer with a gRPC error carries none), or the run fails.

Then the clients, on the same two servers (conduit's and libgrpc++'s, still
pinned to one CPU): bench/grpc_client_load, pinned to the other CPU, makes
the same UnaryCall (`--client-size` bytes each way) as fast as it can with
conduit's client (conduit::rpc::GrpcChannel) and with libgrpc++'s own
(its asynchronous stub and completion queues), for every shape
CONNECTIONSxIN-FLIGHTxTHREADS of --client-shapes: that many channels, each
its own HTTP/2 connection, that many calls kept in flight on each, by that
many threads sharing the channels (one call per thread: conduit's threads
make blocking calls). It checks every answer and Status itself and has
timeouts: a failed or lost call ends the run with an error. For every
server x shape x client the figures are

  calls/s          calls ended per second over the timed run (after 1 s
                   of warm-up, not counted)
  CPU/call         the client process's CPU time (user + system, all its
                   threads, getrusage) over the timed run / calls ended
  p50, p99         each call's latency as the thread that made it saw it
  srv CPU          the server's CPU time over the whole client run / its
                   length: near 100 %, the server, not the client, limits
                   calls/s

then conduit's client ÷ libgrpc++'s on the same server and shape, and
verdicts on the client targets: calls/s at least 1.3x, CPU/call at most
1.0x, p99 lower, at every point. --no-clients runs the servers' part only,
--clients-only the clients' only (without h2load or the floor).

  bench/grpc_bench.py --conduit build/conduit \
      --grpc-cpp build/bench/grpc_cpp_server --floor build/bench/grpc_floor
      --client-load build/bench/grpc_client_load
      [--seconds 5] [--sizes 16,4096] [--streams 1x1,8x16]
      [--unix-sizes 16] [--client-shapes 1x1x1,8x16x4] [--client-size 16]
      [--no-clients | --clients-only] [--json FILE]

Run by `./conduit.sh bench grpc`, which installs libgrpc++-dev,
protobuf-compiler-grpc and nghttp2-client and builds all four.
"""

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from bench_support import cpu_seconds, fail, stop_process, usable_cpus, varint

FLOOR = "floor"
SERVERS = ("conduit", "libgrpc++", FLOOR)
METHOD = "/grpc.testing.TestService/UnaryCall"
# Targets: conduit ÷ libgrpc++.
CPU_TARGET = 0.5
RATE_TARGET = 1.3
RATE_TARGET_STREAMS = (8, 16)
# The clients, as grpc_client_load names them, and as the tables do.
CLIENTS = (("conduit", "conduit"), ("grpc", "libgrpc++"))
# Client targets: conduit's client ÷ libgrpc++'s, same server and shape.
CLIENT_RATE_TARGET = 1.3
CLIENT_CPU_TARGET = 1.0


def thread_names(pid):
    names = []
    for task in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
        with open(f"/proc/{pid}/task/{task}/comm") as comm:
            names.append(comm.read().strip())
    return names


# Protocol buffers by hand: the few fields of messages.proto used here.


def length_delimited(number, data):
    return varint(number << 3 | 2) + varint(len(data)) + data


def payload(size):
    """Payload{body: size zero bytes} (type COMPRESSABLE, 0, is not written)."""
    return length_delimited(2, bytes(size)) if size else b""


def simple_request(size):
    """SimpleRequest{response_size: size, payload: size bytes}."""
    response_size = varint(2 << 3 | 0) + varint(size) if size else b""
    return response_size + length_delimited(3, payload(size))


def simple_response(size):
    """SimpleResponse{payload: size bytes}, as both servers answer."""
    return length_delimited(1, payload(size))


def grpc_message(message):
    """The gRPC length prefix (not compressed) and the message."""
    return b"\0" + len(message).to_bytes(4, "big") + message


class Server:
    """A server process started pinned to `cpu` on a TCP port and a UNIX
    socket, stopped with SIGTERM."""

    def __init__(self, name, command):
        self.name = name
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        self.tcp = None
        self.unix = None
        timer = threading.Timer(10, self.process.kill)
        timer.start()
        try:
            while self.tcp is None or self.unix is None:
                line = self.process.stderr.readline()
                if not line:
                    break
                found = re.search(r"listening on (?:tcp://)?(127\.0\.0\.1:\d+|unix:\S+)", line)
                if found and found.group(1).startswith("unix:"):
                    self.unix = found.group(1)
                elif found:
                    self.tcp = found.group(1)
        finally:
            timer.cancel()
        if self.tcp is None or self.unix is None:
            self.stop()
            fail(f"{name} did not say where it was listening: {' '.join(command)}")
        # What it writes later is read, so that a full pipe never stops it.
        self.log = []
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()

    def _read_stderr(self):
        for line in self.process.stderr:
            self.log = (self.log + [line])[-20:]

    def stop(self):
        stop_process(self.process)

    def alive(self):
        if self.process.poll() is not None:
            fail(f"{self.name} ended (exit status {self.process.returncode}):\n"
                 + "".join(self.log))


def check_unary_call(server, target, size):
    import grpc
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(METHOD)
        try:
            answer = call(simple_request(size), timeout=10)
        except grpc.RpcError as error:
            fail(f"{server.name} answered UnaryCall ({size} B) on {target} with "
                 f"{error.code()}: {error.details()}")
    if answer != simple_response(size):
        fail(f"{server.name} answered UnaryCall ({size} B) on {target} with "
             f"{answer[:64].hex()}..., not {simple_response(size)[:64].hex()}...")


def parse_duration(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1}[unit]


def percentile(ordered, fraction):
    """The nearest-rank percentile of sorted values."""
    return ordered[max(1, math.ceil(len(ordered) * fraction)) - 1]


def run_h2load(server, point, seconds, cpu, work_dir):
    size, connections, streams, transport = point
    body = os.path.join(work_dir, f"request{size}.bin")
    if not os.path.exists(body):
        with open(body, "wb") as out:
            out.write(grpc_message(simple_request(size)))
    log = os.path.join(work_dir, "h2load.log")
    command = ["taskset", "-c", str(cpu), "h2load", "-t1", f"-c{connections}",
               f"-m{streams}", "-d", body, "-H", "content-type: application/grpc",
               "-H", "te: trailers"]
    if transport == "unix":
        command += ["-B", server.unix]
        url = "http://localhost" + METHOD
    else:
        url = f"http://{server.tcp}{METHOD}"
    # A short warm-up, not counted.
    subprocess.run(command + ["-D1", url], capture_output=True, text=True, timeout=60)
    server.alive()
    before = cpu_seconds(server.process.pid)
    result = subprocess.run(command + [f"-D{seconds}", f"--log-file={log}", url],
                            capture_output=True, text=True, timeout=seconds + 60)
    after = cpu_seconds(server.process.pid)
    server.alive()
    output = result.stdout
    where = f"h2load against {server.name} ({size} B, {connections}x{streams}, {transport})"
    if result.returncode != 0:
        fail(f"{where} failed: {result.stderr or output}")
    requests = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                         r"(\d+) failed, (\d+) errored, (\d+) timeout", output)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", output)
    data = re.search(r"traffic: .*\((\d+)\) data", output)
    finished = re.search(r"finished in ([\d.]+(?:us|ms|s)),", output)
    if not (requests and codes and data and finished):
        fail(f"{where}: output not understood:\n{output}")
    _, _, done, succeeded, failed, errored, timeouts = map(int, requests.groups())
    ok_codes = int(codes.group(1))
    if failed or errored or timeouts or ok_codes != succeeded or succeeded != done or not succeeded:
        fail(f"{where}: not every request succeeded with 2xx:\n{output}")
    response_bytes = len(grpc_message(simple_response(size)))
    if int(data.group(1)) != succeeded * response_bytes:
        fail(f"{where}: {data.group(1)} bytes of DATA for {succeeded} calls, not "
             f"{response_bytes} per call (an answer without its message?):\n{output}")
    latencies = []
    with open(log) as lines:
        for line in lines:
            columns = line.split("\t")
            if columns[1] != "200":
                fail(f"{where}: h2load logged a request with status {columns[1]}")
            latencies.append(int(columns[2]))
    os.unlink(log)
    if not latencies:
        fail(f"{where}: h2load logged no request")
    latencies.sort()
    return {
        "requests_per_second": succeeded / parse_duration(finished.group(1)),
        "p50_us": percentile(latencies, 0.50),
        "p99_us": percentile(latencies, 0.99),
        "cpu_us_per_call": (after - before) / succeeded * 1e6,
        "calls": succeeded,
    }


def parse_streams(text):
    pairs = []
    for item in text.split(","):
        found = re.fullmatch(r"(\d+)x(\d+)", item)
        if not found:
            fail(f"--streams wants CONNECTIONSxSTREAMS items, e.g. 1x1,8x16; got {item!r}")
        pairs.append((int(found.group(1)), int(found.group(2))))
    return pairs


def verdict(met, figures):
    return ("met" if met else "NOT met") + ": " + ", ".join(figures)


def report_servers(figures, threads, floor_count, seconds, server_cpu, load_cpu, elapsed):
    """Prints the servers' table and verdicts; returns the verdicts."""
    print(f"server on CPU {server_cpu}, h2load on CPU {load_cpu}, {seconds} s per run, "
          f"better of two runs each (by CPU per call); {elapsed:.0f} s in all")
    header = (f"{'size':>6} {'conn x streams':>14} {'via':>4} | {'server':<10} {'req/s':>9} "
              f"{'p50 µs':>8} {'p99 µs':>8} {'CPU µs/call':>11}")
    print(header)
    print("-" * len(header))
    for row in figures:
        streams = f"{row['connections']}x{row['streams']}"
        for name in SERVERS:
            figure = row[name]
            print(f"{row['size']:>6} {streams:>14} {row['transport']:>4} | {name:<10} "
                  f"{figure['requests_per_second']:>9.0f} {figure['p50_us']:>8.0f} "
                  f"{figure['p99_us']:>8.0f} {figure['cpu_us_per_call']:>11.2f}")
        ours, theirs, floor = row["conduit"], row["libgrpc++"], row[FLOOR]
        row["ratios"] = {
            "cpu_per_call": ours["cpu_us_per_call"] / theirs["cpu_us_per_call"],
            "requests_per_second": ours["requests_per_second"] / theirs["requests_per_second"],
            "p50": ours["p50_us"] / theirs["p50_us"],
            "p99": ours["p99_us"] / theirs["p99_us"],
            "floor_cpu_per_call": floor["cpu_us_per_call"] / theirs["cpu_us_per_call"],
            "cpu_per_call_over_floor": ours["cpu_us_per_call"] / floor["cpu_us_per_call"],
        }
        ratios = row["ratios"]
        print(f"{'':>26} | conduit ÷ libgrpc++: CPU/call {ratios['cpu_per_call']:.2f}, "
              f"req/s {ratios['requests_per_second']:.2f}, p50 {ratios['p50']:.2f}, "
              f"p99 {ratios['p99']:.2f}")
        print(f"{'':>26} | CPU/call: floor ÷ libgrpc++ {ratios['floor_cpu_per_call']:.2f}, "
              f"conduit ÷ floor {ratios['cpu_per_call_over_floor']:.2f}")

    tcp_rows = [row for row in figures if row["transport"] == "tcp"]
    rate_rows = [row for row in tcp_rows
                 if (row["connections"], row["streams"]) == RATE_TARGET_STREAMS]
    unix_rows = [row for row in figures if row["transport"] == "unix"]

    def named(row, ratio, note=""):
        return (f"{row['ratios'][ratio]:.2f} ({row['size']} B "
                f"{row['connections']}x{row['streams']}{note})")

    def named_cpu(row):
        """The CPU ratio at a point, and where it misses the target while the
        floor alone is above it, how far the floor is already."""
        ratios = row["ratios"]
        note = ""
        floor = ratios["floor_cpu_per_call"]
        if ratios["cpu_per_call"] > CPU_TARGET and floor > CPU_TARGET:
            # Three places where two would show 0.50, just above the target.
            shown = f"{floor:.2f}" if round(floor, 2) > CPU_TARGET else f"{floor:.3f}"
            note = f"; the kernel's floor alone is {shown} of libgrpc++ here"
        return named(row, "cpu_per_call", note)

    verdicts = {
        "cpu_per_call": all(row["ratios"]["cpu_per_call"] <= CPU_TARGET for row in tcp_rows),
        "requests_per_second": bool(rate_rows) and all(
            row["ratios"]["requests_per_second"] >= RATE_TARGET for row in rate_rows),
        "p99": all(row["ratios"]["p99"] < 1 for row in tcp_rows),
    }
    rate_point = f"{RATE_TARGET_STREAMS[0]}x{RATE_TARGET_STREAMS[1]}"
    lines = [(f"CPU per call ≤ {CPU_TARGET:.2f}x at every point",
              verdict(verdicts["cpu_per_call"],
                      [named_cpu(row) for row in tcp_rows])),
             (f"requests/s ≥ {RATE_TARGET:.2f}x at {rate_point}",
              verdict(verdicts["requests_per_second"],
                      [named(row, "requests_per_second") for row in rate_rows])
              if rate_rows else f"not measured (--streams has no {rate_point})"),
             ("p99 lower at every point",
              verdict(verdicts["p99"], [named(row, "p99") for row in tcp_rows]))]
    width = max(len(label) for label, _ in lines)
    print()
    print("targets, conduit ÷ libgrpc++ over TCP:")
    for label, text in lines:
        print(f"  {label + ':':<{width + 1}}  {text}")
    for row in unix_rows:
        print(f"UNIX socket round trip, {row['size']} B, 1x1: p50 conduit "
              f"{row['conduit']['p50_us']:.0f} µs, libgrpc++ {row['libgrpc++']['p50_us']:.0f} µs, "
              f"floor {row[FLOOR]['p50_us']:.0f} µs "
              f"(conduit ÷ libgrpc++ {row['ratios']['p50']:.2f})")
    for name in SERVERS:
        names = threads.get(name, [])
        each = " each" if name == FLOOR and floor_count > 1 else ""
        print(f"threads in {name}{each} after the runs: {len(names)} ({', '.join(names)})")
    return verdicts


def parse_client_shapes(text):
    shapes = []
    for item in text.split(","):
        found = re.fullmatch(r"(\d+)x(\d+)x(\d+)", item)
        if not found:
            fail("--client-shapes wants CONNECTIONSxIN-FLIGHTxTHREADS items, e.g. "
                 f"1x1x1,8x16x4; got {item!r}")
        connections, in_flight, threads = map(int, found.groups())
        if not (connections and in_flight and threads) or threads > connections * in_flight:
            fail(f"--client-shapes: {item} wants at least one of each, and no more threads "
                 "than calls in flight")
        shapes.append((connections, in_flight, threads))
    return shapes


def shape_name(row):
    threads = row["threads"]
    return (f"{row['connections']}x{row['in_flight']}, {threads} "
            f"thread{'s' if threads > 1 else ''}")


def run_client(program, client, server, shape, size, seconds, cpu):
    """One run of grpc_client_load against `server`, pinned to `cpu`."""
    connections, in_flight, threads = shape
    command = ["taskset", "-c", str(cpu), program, "--client", client,
               "--target", server.tcp, "--connections", str(connections),
               "--in-flight", str(in_flight), "--threads", str(threads), "--size", str(size),
               "--seconds", str(seconds), "--warmup", "1", "--timeout-ms", "5000"]
    where = (f"grpc_client_load --client {client} against {server.name} "
             f"({size} B, {connections}x{in_flight}, {threads} threads)")
    server.alive()
    before = cpu_seconds(server.process.pid)
    begun = time.monotonic()
    try:
        # On a timeout, run() kills the client before it raises.
        result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        fail(f"{where} did not end within {seconds + 60} s")
    elapsed = time.monotonic() - begun
    after = cpu_seconds(server.process.pid)
    server.alive()
    if result.returncode != 0:
        fail(f"{where} failed (exit status {result.returncode}): "
             f"{result.stderr.strip() or result.stdout.strip()}")
    try:
        measured = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        fail(f"{where}: output not understood:\n{result.stdout}{result.stderr}")
    if measured["tcp_connections"] != connections:
        fail(f"{where}: {measured['tcp_connections']} TCP connections to the server, "
             f"not {connections}")
    measured["server_cpu_share"] = (after - before) / elapsed
    return measured


def report_clients(rows, size, seconds, server_cpu, load_cpu, elapsed):
    """Prints the clients' table and verdicts; returns the verdicts."""
    print()
    print(f"clients: conduit's (conduit::rpc::GrpcChannel) and libgrpc++'s (async stub, "
          f"completion queues), UnaryCall {size} B")
    print(f"server on CPU {server_cpu}, grpc_client_load on CPU {load_cpu}, {seconds} s per run "
          f"after 1 s of warm-up, better of two runs each (by CPU per call); "
          f"{elapsed:.0f} s in all")
    print("shape: connections (one channel each) x calls in flight on each, threads sharing them")
    header = (f"{'server':<10} {'shape':>18} | {'client':<10} {'calls/s':>9} {'p50 µs':>8} "
              f"{'p99 µs':>8} {'CPU µs/call':>11} {'srv CPU':>7}")
    print(header)
    print("-" * len(header))
    for row in rows:
        for _, name in CLIENTS:
            figure = row[name]
            print(f"{row['server']:<10} {shape_name(row):>18} | {name:<10} "
                  f"{figure['calls_per_second']:>9.0f} {figure['p50_us']:>8.0f} "
                  f"{figure['p99_us']:>8.0f} {figure['cpu_us_per_call']:>11.2f} "
                  f"{figure['server_cpu_share'] * 100:>6.0f}%")
        ours, theirs = row["conduit"], row["libgrpc++"]
        row["ratios"] = {
            "calls_per_second": ours["calls_per_second"] / theirs["calls_per_second"],
            "cpu_per_call": ours["cpu_us_per_call"] / theirs["cpu_us_per_call"],
            "p50": ours["p50_us"] / theirs["p50_us"],
            "p99": ours["p99_us"] / theirs["p99_us"],
        }
        ratios = row["ratios"]
        print(f"{'':>29} | conduit ÷ libgrpc++ client: calls/s "
              f"{ratios['calls_per_second']:.2f}, CPU/call {ratios['cpu_per_call']:.2f}, "
              f"p50 {ratios['p50']:.2f}, p99 {ratios['p99']:.2f}")

    def named(row, ratio):
        return (f"{row['ratios'][ratio]:.2f} ({row['server']} server, "
                f"{row['connections']}x{row['in_flight']})")

    verdicts = {
        "calls_per_second": all(row["ratios"]["calls_per_second"] >= CLIENT_RATE_TARGET
                                for row in rows),
        "cpu_per_call": all(row["ratios"]["cpu_per_call"] <= CLIENT_CPU_TARGET for row in rows),
        "p99": all(row["ratios"]["p99"] < 1 for row in rows),
    }
    lines = [(f"calls/s ≥ {CLIENT_RATE_TARGET:.2f}x at every point",
              verdict(verdicts["calls_per_second"],
                      [named(row, "calls_per_second") for row in rows])),
             (f"CPU per call ≤ {CLIENT_CPU_TARGET:.2f}x at every point",
              verdict(verdicts["cpu_per_call"], [named(row, "cpu_per_call") for row in rows])),
             ("p99 lower at every point",
              verdict(verdicts["p99"], [named(row, "p99") for row in rows]))]
    width = max(len(label) for label, _ in lines)
    print()
    print("client targets, conduit's client ÷ libgrpc++'s, same server and shape:")
    for label, text in lines:
        print(f"  {label + ':':<{width + 1}}  {text}")
    # What each client did, and how many threads it ran, per shape.
    seen = {}
    for row in rows:
        for _, name in CLIENTS:
            figure = row[name]
            key = (name, row["connections"], row["in_flight"], row["threads"])
            seen.setdefault(key, (figure["mode"], figure["process_threads"]))
    for (name, connections, in_flight, threads), (mode, count) in seen.items():
        print(f"{name} client at {connections}x{in_flight}, {threads} "
              f"thread{'s' if threads > 1 else ''}: {mode}; {count} threads in the process")
    return verdicts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conduit", default="build/conduit")
    parser.add_argument("--grpc-cpp", default="build/bench/grpc_cpp_server")
    parser.add_argument("--floor", default="build/bench/grpc_floor")
    parser.add_argument("--client-load", default="build/bench/grpc_client_load")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--sizes", default="16,4096",
                        help="payload bytes, each way (default 16,4096)")
    parser.add_argument("--streams", default="1x1,8x16",
                        help="connections x streams per connection (default 1x1,8x16)")
    parser.add_argument("--unix-sizes", default="16",
                        help="payload bytes of the 1x1 round trip over a UNIX socket "
                             "(default 16; empty: none)")
    parser.add_argument("--client-shapes", default="1x1x1,8x16x4",
                        help="the clients' connections x calls in flight on each x threads "
                             "(default 1x1x1,8x16x4)")
    parser.add_argument("--client-size", type=int, default=16,
                        help="payload bytes of the clients' calls, each way (default 16)")
    halves = parser.add_mutually_exclusive_group()
    halves.add_argument("--no-clients", action="store_true",
                        help="measure the servers only")
    halves.add_argument("--clients-only", action="store_true",
                        help="measure the clients only (no h2load, no floor)")
    parser.add_argument("--json", help="also write the figures to this file")
    options = parser.parse_args()
    do_servers = not options.clients_only
    do_clients = not options.no_clients

    programs = [options.conduit, options.grpc_cpp]
    if do_servers:
        programs.append(options.floor)
    if do_clients:
        programs.append(options.client_load)
    for program in programs:
        if not os.access(program, os.X_OK):
            fail(f"{program} is not built; run ./conduit.sh bench grpc, which builds it")
    if do_servers and shutil.which("h2load") is None:
        fail("h2load is not installed (apt-get install nghttp2-client)")
    try:
        import grpc  # noqa: F401  (checks the answers before the load)
    except ImportError:
        fail("grpcio is not installed (apt-get install python3-grpcio)")
    server_cpu, load_cpu = usable_cpus("h2load" if do_servers else "grpc_client_load")
    sizes = [int(size) for size in options.sizes.split(",")] if do_servers else []
    unix_sizes = ([int(size) for size in options.unix_sizes.split(",") if size]
                  if do_servers else [])
    points = [(size, connections, streams, "tcp") for size in sizes
              for connections, streams in parse_streams(options.streams)]
    points += [(size, 1, 1, "unix") for size in unix_sizes]
    client_shapes = parse_client_shapes(options.client_shapes) if do_clients else []
    checked_sizes = sorted(set(sizes + unix_sizes + ([options.client_size] if do_clients
                                                      else [])))

    pin = ["taskset", "-c", str(server_cpu)]
    figures = []
    client_rows = []
    threads = {}
    started = time.monotonic()
    server_seconds = client_seconds = 0
    with tempfile.TemporaryDirectory(prefix="grpc_bench.") as work_dir:
        servers = []
        floors = {}  # by payload size
        try:
            servers.append(Server("conduit", pin + [
                options.conduit, "serve", "--threads", "1",
                "--listen", "tcp://127.0.0.1:0",
                "--listen", "unix:" + os.path.join(work_dir, "conduit.sock")]))
            servers.append(Server("libgrpc++", pin + [
                options.grpc_cpp, "--listen", "127.0.0.1:0",
                "--listen", "unix:" + os.path.join(work_dir, "grpc_cpp.sock")]))
            conduit_and_grpc_cpp = list(servers)
            for size in sorted(set(sizes + unix_sizes)):
                floors[size] = Server(FLOOR, pin + [
                    options.floor, "--response-size", str(size),
                    "--listen", "127.0.0.1:0",
                    "--listen", "unix:" + os.path.join(work_dir, f"floor{size}.sock")])
                servers.append(floors[size])
            # The floor is not asked here: it answers the same canned bytes
            # whatever the request, so grpcio would prove nothing of it. h2load's
            # checks in each run (every call 2xx, one whole response message of
            # DATA per call) hold for it as for the others.
            for server in conduit_and_grpc_cpp:
                for size in checked_sizes:
                    for target in (server.tcp, server.unix):
                        check_unary_call(server, target, size)
            if do_servers:
                print(f"grpc_bench: conduit and libgrpc++ answer UnaryCall correctly over TCP "
                      f"and a UNIX socket; {len(points)} points, 6 runs of 1 + "
                      f"{options.seconds} s each", file=sys.stderr, flush=True)
            for point in points:
                size, connections, streams, transport = point
                row = {"size": size, "connections": connections, "streams": streams,
                       "transport": transport}
                point_servers = conduit_and_grpc_cpp + [floors[size]]
                # Order A B C C B A, better run kept, so drift weighs on all.
                for server in point_servers + point_servers[::-1]:
                    print(f"  {server.name}: {size} B, {connections}x{streams}, "
                          f"{transport}...", file=sys.stderr, flush=True)
                    measured = run_h2load(server, point, options.seconds, load_cpu, work_dir)
                    kept = row.get(server.name)
                    if kept is None or measured["cpu_us_per_call"] < kept["cpu_us_per_call"]:
                        row[server.name] = measured
                figures.append(row)
            if do_servers:
                for server in servers:
                    threads.setdefault(server.name, thread_names(server.process.pid))
            server_seconds = time.monotonic() - started
            if do_clients:
                print(f"grpc_bench: clients: {len(client_shapes)} shapes x 2 servers, 4 runs of "
                      f"1 + {options.seconds} s each", file=sys.stderr, flush=True)
            for shape in client_shapes:
                connections, in_flight, thread_count = shape
                for server in conduit_and_grpc_cpp:
                    row = {"server": server.name, "size": options.client_size,
                           "connections": connections, "in_flight": in_flight,
                           "threads": thread_count}
                    # Order A B B A, better run kept, so drift weighs on both.
                    for client, name in CLIENTS + CLIENTS[::-1]:
                        print(f"  {name} client -> {server.name} server: {options.client_size} B, "
                              f"{connections}x{in_flight}, {thread_count} "
                              f"thread{'s' if thread_count > 1 else ''}...",
                              file=sys.stderr, flush=True)
                        measured = run_client(options.client_load, client, server, shape,
                                              options.client_size, options.seconds, load_cpu)
                        kept = row.get(name)
                        if kept is None or measured["cpu_us_per_call"] < kept["cpu_us_per_call"]:
                            row[name] = measured
                    client_rows.append(row)
            client_seconds = time.monotonic() - started - server_seconds
        finally:
            for server in servers:
                server.stop()

    results = {}
    if do_servers:
        verdicts = report_servers(figures, threads, len(floors), options.seconds, server_cpu,
                                  load_cpu, server_seconds)
        results.update({"points": figures, "targets_met": verdicts, "threads": threads})
    if do_clients:
        client_verdicts = report_clients(client_rows, options.client_size, options.seconds,
                                         server_cpu, load_cpu, client_seconds)
        results.update({"clients": client_rows, "client_targets_met": client_verdicts})
    if options.json:
        with open(options.json, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
