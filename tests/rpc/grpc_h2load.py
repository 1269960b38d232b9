#!/usr/bin/python3
"""h2load (nghttp2-client) sending thousands of concurrent unary gRPC calls
to `conduit serve`: 8 connections with up to 32 streams each, every call
grpc.testing.TestService/EmptyCall. Every response must be HTTP 200 and
every call must succeed. (h2load does not read trailers; grpc-status of
concurrent calls is checked by grpc_python_client.py with grpcio.)

Usage: grpc_h2load.py CONDUIT_BINARY
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading

CALLS = 4000


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    server = subprocess.Popen([sys.argv[1], "serve", "--listen", "tcp://127.0.0.1:0"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    timer = threading.Timer(10, server.kill)
    timer.start()
    line = server.stderr.readline()
    timer.cancel()
    found = re.search(r"listening on tcp://127\.0\.0\.1:(\d+)", line)
    if not found:
        server.kill()
        raise SystemExit(f"conduit serve did not start: {line!r}")
    try:
        with tempfile.TemporaryDirectory() as directory:
            body = os.path.join(directory, "empty-call")
            with open(body, "wb") as out:
                out.write(b"\x00\x00\x00\x00\x00")  # one empty message, uncompressed
            result = subprocess.run(
                ["h2load", "-n", str(CALLS), "-c", "8", "-m", "32", "-d", body,
                 "-H", "content-type: application/grpc", "-H", "te: trailers",
                 f"http://127.0.0.1:{found.group(1)}/grpc.testing.TestService/EmptyCall"],
                capture_output=True, text=True, timeout=120)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    output = result.stdout + result.stderr
    print(output)
    requests = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
                         r"(\d+) failed, (\d+) errored", output)
    statuses = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", output)
    if not requests or not statuses:
        print("FAIL: h2load printed no totals")
        return 1
    total, done, succeeded, failed, errored = map(int, requests.groups())
    ok = (total == done == succeeded == CALLS and failed == errored == 0
          and int(statuses.group(1)) == CALLS)
    print("all calls answered with 200" if ok else "FAIL: not every call succeeded")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
