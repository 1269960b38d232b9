#!/usr/bin/env python3
"""JSON-RPC over HTTP/1.1: conduit's server against libjson-rpc-cpp's, side by side.

Both serve `echo` with one string param. Beside them runs the floor
(bench/http_floor.cpp): a bare epoll loop that reads each request and writes
its body back, parsing no JSON; what it costs is what the kernel costs, the
least any server with one read and one write per call can spend.
Each server runs pinned to one CPU
and wrk, the load generator, to the other; for every payload size and
connection count each server gets the same wrk run, and the figures are:

  requests/s       calls served per second over the timed run
  p50, p99         wrk's latency percentiles
  CPU/call         the server's CPU time (user + system, all threads, read
                   from /proc/PID/stat before and after) / calls served:
                   the fair figure when wrk, not the server, saturates first

  over the floor  CPU/call above the floor's, conduit's ÷ libjson-rpc-cpp's:
                   what each server spends beyond the kernel's part

On a virtual machine the CPU time of a run moves by more than the servers
differ at 16 B, so each figure is the best of --runs runs (in the order
A B C C B A ...), and beside it stands a count that does not move:

  instr/call       user-space instructions per call, counted by callgrind
                   (valgrind) over --counted-calls calls after a warm-up,
                   each server alone under h2load --h1 with the same body;
                   the kernel's work is not in it, so the floor's count is
                   close to nothing and the others' are their own work

Before the load each server is asked once, and its answer checked, so that a
server answering errors cannot look fast; wrk's count of non-2xx answers and
socket errors must stay 0 or the run fails.

  bench/jsonrpc_http_bench.py --conduit build/conduit \
      --peer build/tests/jsonrpccpp_peer --floor build/bench/http_floor
      [--seconds 5] [--runs 3] [--sizes 16,4096] [--connections 1,8]
      [--counted-calls 4000 | --no-instructions] [--json FILE]

Run by `./conduit.sh bench jsonrpc-http`, which builds both and installs wrk.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from bench_support import cpu_seconds, fail, stop_process, usable_cpus

FLOOR = "floor"
SERVERS = ("conduit", "libjson-rpc-cpp", FLOOR)


class Server:
    """A server process started pinned to `cpu`, stopped with SIGTERM."""

    def __init__(self, name, command, ready_pattern, ready_seconds=10):
        self.name = name
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        stream = self.process.stdout if ready_pattern[0] == "stdout" \
            else self.process.stderr
        deadline = time.monotonic() + ready_seconds
        self.port = None
        while time.monotonic() < deadline:
            line = stream.readline()
            if not line:
                break
            found = re.search(ready_pattern[1], line)
            if found:
                self.port = int(found.group(1))
                break
        if self.port is None:
            self.stop()
            fail(f"{name} did not say it was listening: {' '.join(command)}")

    def stop(self):
        stop_process(self.process)


def body(size):
    return json.dumps({"jsonrpc": "2.0", "method": "echo",
                       "params": ["x" * size], "id": 1}, separators=(",", ":"))


def check_echo(server, size):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("POST", "/jsonrpc", body(size),
                       {"Content-Type": "application/json"})
    response = connection.getresponse()
    text = response.read()
    connection.close()
    if response.status != 200:
        fail(f"{server.name} answered the echo with HTTP {response.status}")
    if server.name == FLOOR:
        if text != body(size).encode():
            fail(f"the floor answered {text[:200]!r}, not the request's body")
        return
    answer = json.loads(text)
    if answer.get("result") != ["x" * size] or answer.get("id") != 1:
        fail(f"{server.name} answered the echo wrongly: {text[:200]!r}")


def parse_duration(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]


def run_wrk(server, size, connections, seconds, cpu, script_dir):
    script = os.path.join(script_dir, f"echo{size}.lua")
    with open(script, "w") as out:
        out.write('wrk.method = "POST"\n')
        out.write(f"wrk.body = {json.dumps(body(size))}\n")
        out.write('wrk.headers["Content-Type"] = "application/json"\n')
    url = f"http://127.0.0.1:{server.port}/jsonrpc"
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
               "-s", script, url]
    # A short warm-up, not counted.
    subprocess.run(["taskset", "-c", str(cpu)] + command[:3] + ["-d1s"] + command[4:],
                   capture_output=True, text=True, timeout=30)
    before = cpu_seconds(server.process.pid)
    result = subprocess.run(["taskset", "-c", str(cpu)] + command, capture_output=True,
                            text=True, timeout=seconds + 30)
    after = cpu_seconds(server.process.pid)
    output = result.stdout
    if result.returncode != 0:
        fail(f"wrk failed against {server.name}: {result.stderr or output}")
    for bad in ("Non-2xx or 3xx responses", "Socket errors"):
        if bad in output:
            fail(f"wrk against {server.name} ({size} B, {connections} conn): {bad}:\n{output}")
    calls = int(re.search(r"(\d+) requests in", output).group(1))
    seconds_run = float(re.search(r"requests in ([\d.]+)s", output).group(1))
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.M))
    return {
        "requests_per_second": calls / seconds_run,
        "p50_us": parse_duration(percentiles["50"]),
        "p99_us": parse_duration(percentiles["99"]),
        "cpu_us_per_call": (after - before) / calls * 1e6 if calls else float("inf"),
        "calls": calls,
    }


def count_instructions(name, command, ready_pattern, size, connections, calls, server_cpu, cpu):
    """User-space instructions per call of the server `command`, run under
    callgrind: a warm-up, the counters zeroed, `calls` calls from h2load, a
    dump of the counters."""
    with tempfile.TemporaryDirectory() as directory:
        server = Server(name, ["taskset", "-c", str(server_cpu), "valgrind", "--tool=callgrind",
                               f"--callgrind-out-file={directory}/cg.%p"] + command,
                        ready_pattern, ready_seconds=120)
        try:
            request = os.path.join(directory, "request.json")
            with open(request, "w") as out:
                out.write(body(size))
            load = ["taskset", "-c", str(cpu), "h2load", "--h1", "-c", str(connections),
                    "-d", request, "-H", "Content-Type: application/json",
                    f"http://127.0.0.1:{server.port}/jsonrpc"]
            pid = server.process.pid
            subprocess.run(load[:4] + ["-n", "500"] + load[4:], capture_output=True,
                           timeout=600, check=True)
            subprocess.run(["callgrind_control", "-z", str(pid)], capture_output=True,
                           timeout=60, check=True)
            done = subprocess.run(load[:4] + ["-n", str(calls)] + load[4:], capture_output=True,
                                  text=True, timeout=1800)
            if f"{calls} succeeded" not in done.stdout:
                fail(f"h2load against {name} under callgrind: not every call succeeded:\n"
                     f"{done.stdout}{done.stderr}")
            subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True,
                           timeout=60, check=True)
            # The dump is written when the server's thread next runs valgrind's
            # scheduler, a moment after callgrind_control returns.
            total = 0
            deadline = time.monotonic() + 60
            while total == 0 and time.monotonic() < deadline:
                time.sleep(0.5)
                for file in os.listdir(directory):
                    if file.startswith(f"cg.{pid}."):
                        with open(os.path.join(directory, file)) as dump:
                            found = re.search(r"^totals: (\d+)", dump.read(), re.M)
                            total += int(found.group(1)) if found else 0
            if total == 0:
                fail(f"callgrind wrote no counts for {name} (pid {pid}): "
                     f"{sorted(os.listdir(directory))}")
            return total / calls
        finally:
            server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conduit", default="build/conduit")
    parser.add_argument("--peer", default="build/tests/jsonrpccpp_peer")
    parser.add_argument("--floor", default="build/bench/http_floor")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3,
                        help="wrk runs per server and point; the one with the least CPU/call "
                             "is kept")
    parser.add_argument("--counted-calls", type=int, default=4000,
                        help="calls counted by callgrind per server and point")
    parser.add_argument("--no-instructions", action="store_true",
                        help="skip the instruction counts (valgrind not needed)")
    parser.add_argument("--sizes", default="16,4096")
    parser.add_argument("--connections", default="1,8")
    parser.add_argument("--conduit-threads", type=int, default=1,
                        help="conduit serve --threads (default 1: it has one CPU)")
    parser.add_argument("--peer-threads", type=int, default=50,
                        help="libjson-rpc-cpp HttpServer threads (default 50, its own default)")
    parser.add_argument("--json", help="also write the figures to this file")
    options = parser.parse_args()

    for program in (options.conduit, options.peer, options.floor):
        if not os.access(program, os.X_OK):
            fail(f"{program} is not built; run ./conduit.sh build first")
    if shutil.which("wrk") is None:
        fail("wrk is not installed (apt-get install wrk)")
    if not options.no_instructions:
        for tool in ("valgrind", "callgrind_control", "h2load"):
            if shutil.which(tool) is None:
                fail(f"{tool} is not installed (apt-get install valgrind nghttp2-client), "
                     "or pass --no-instructions")
    server_cpu, load_cpu = usable_cpus("wrk")
    sizes = [int(size) for size in options.sizes.split(",")]
    connection_counts = [int(count) for count in options.connections.split(",")]

    pin = ["taskset", "-c", str(server_cpu)]
    commands = [
        ("conduit", [options.conduit, "serve", "--listen", "tcp://127.0.0.1:0",
                     "--threads", str(options.conduit_threads)],
         ("stderr", r"listening on tcp://127\.0\.0\.1:(\d+)")),
        ("libjson-rpc-cpp", [options.peer, "server", "0", str(options.peer_threads)],
         ("stdout", r"ready (\d+)")),
        (FLOOR, [options.floor, "0"], ("stdout", r"ready (\d+)")),
    ]
    servers = [Server(name, pin + command, ready) for name, command, ready in commands]
    figures = []
    try:
        for size in sizes:
            for server in servers:
                check_echo(server, size)
        with tempfile.TemporaryDirectory() as script_dir:
            for size in sizes:
                for connections in connection_counts:
                    row = {"size": size, "connections": connections}
                    # Order A B C C B A ..., best run kept, so drift weighs on all.
                    order = []
                    for run in range(options.runs):
                        order += servers if run % 2 == 0 else servers[::-1]
                    for server in order:
                        print(f"  {server.name}: {size} B, {connections} connection(s)...",
                              file=sys.stderr, flush=True)
                        measured = run_wrk(server, size, connections, options.seconds,
                                           load_cpu, script_dir)
                        kept = row.get(server.name)
                        if kept is None or measured["cpu_us_per_call"] < kept["cpu_us_per_call"]:
                            row[server.name] = measured
                    figures.append(row)
    finally:
        for server in servers:
            server.stop()
    if not options.no_instructions:
        for row in figures:
            for name, command, ready in commands:
                print(f"  {name}: {row['size']} B, {row['connections']} connection(s), "
                      "counting instructions under callgrind...", file=sys.stderr, flush=True)
                row[name]["instructions_per_call"] = count_instructions(
                    name, command, ready, row["size"], row["connections"],
                    options.counted_calls, server_cpu, load_cpu)

    print(f"server on CPU {server_cpu}, wrk on CPU {load_cpu}, {options.seconds} s per run, "
          f"best of {options.runs} runs each (by CPU per call)")
    header = (f"{'size':>6} {'conn':>4} | {'server':<16} {'req/s':>9} {'p50 µs':>8} "
              f"{'p99 µs':>8} {'CPU µs/call':>11} {'instr/call':>10}")
    print(header)
    print("-" * len(header))
    for row in figures:
        for name in SERVERS:
            figure = row[name]
            instructions = figure.get("instructions_per_call")
            print(f"{row['size']:>6} {row['connections']:>4} | {name:<16} "
                  f"{figure['requests_per_second']:>9.0f} {figure['p50_us']:>8.1f} "
                  f"{figure['p99_us']:>8.1f} {figure['cpu_us_per_call']:>11.2f} "
                  f"{instructions if instructions is not None else float('nan'):>10.0f}")
        ours, theirs = row["conduit"], row["libjson-rpc-cpp"]
        row["ratios"] = {
            "cpu_per_call": ours["cpu_us_per_call"] / theirs["cpu_us_per_call"],
            "requests_per_second": ours["requests_per_second"] / theirs["requests_per_second"],
            "p99": ours["p99_us"] / theirs["p99_us"],
            "cpu_per_call_over_floor": ours["cpu_us_per_call"] / row[FLOOR]["cpu_us_per_call"],
            "libjsonrpccpp_cpu_per_call_over_floor":
                theirs["cpu_us_per_call"] / row[FLOOR]["cpu_us_per_call"],
        }
        print(f"{'':>11} | conduit ÷ libjson-rpc-cpp: CPU/call "
              f"{row['ratios']['cpu_per_call']:.2f}, req/s "
              f"{row['ratios']['requests_per_second']:.2f}, p99 {row['ratios']['p99']:.2f}")
        print(f"{'':>11} | CPU/call over the floor's: conduit "
              f"{row['ratios']['cpu_per_call_over_floor']:.2f}, libjson-rpc-cpp "
              f"{row['ratios']['libjsonrpccpp_cpu_per_call_over_floor']:.2f}")
        floor = row[FLOOR]
        ours_above = ours["cpu_us_per_call"] - floor["cpu_us_per_call"]
        theirs_above = theirs["cpu_us_per_call"] - floor["cpu_us_per_call"]
        row["ratios"]["cpu_above_floor"] = ours_above / theirs_above if theirs_above > 0 else None
        line = (f"{'':>11} | above the floor, conduit ÷ libjson-rpc-cpp: CPU/call "
                f"{ours_above:.2f} / {theirs_above:.2f} µs")
        if theirs_above > 0:
            line += f" = {ours_above / theirs_above:.2f}"
        if "instructions_per_call" in ours:
            ours_instr = ours["instructions_per_call"] - floor["instructions_per_call"]
            theirs_instr = theirs["instructions_per_call"] - floor["instructions_per_call"]
            row["ratios"]["instructions_above_floor"] = ours_instr / theirs_instr
            line += (f"; instructions/call {ours_instr:.0f} / {theirs_instr:.0f} = "
                     f"{ours_instr / theirs_instr:.2f}")
        print(line)
    if options.json:
        with open(options.json, "w") as out:
            json.dump(figures, out, indent=2)


if __name__ == "__main__":
    main()
