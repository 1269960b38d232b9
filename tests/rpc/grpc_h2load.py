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
import subprocess
import sys
import tempfile

from conduit_serve import ConduitServe

CALLS = 4000


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    with ConduitServe(sys.argv[1], ["tcp://127.0.0.1:0"]) as server, \
            tempfile.TemporaryDirectory() as directory:
        body = os.path.join(directory, "empty-call")
        with open(body, "wb") as out:
            out.write(b"\x00\x00\x00\x00\x00")  # one empty message, uncompressed
        result = subprocess.run(
            ["h2load", "-n", str(CALLS), "-c", "8", "-m", "32", "-d", body,
             "-H", "content-type: application/grpc", "-H", "te: trailers",
             f"http://127.0.0.1:{server.port()}/grpc.testing.TestService/EmptyCall"],
            capture_output=True, text=True, timeout=120)
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
