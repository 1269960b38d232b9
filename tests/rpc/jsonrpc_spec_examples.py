#!/usr/bin/python3
"""Every example of section 7 of the JSON-RPC 2.0 specification, sent byte for
byte to `conduit serve` by Python's standard library: over HTTP (http.client,
POST /jsonrpc) and as one text per line on the same TCP port.

Usage: jsonrpc_spec_examples.py CONDUIT_BINARY
Exits 0 when every response matches the specification's; prints each
mismatch and exits 1 otherwise.
"""
import http.client
import json
import re
import signal
import socket
import subprocess
import sys

# (request text exactly as in the specification, expected response or None)
EXAMPLES = [
    ('{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}',
     {"jsonrpc": "2.0", "result": 19, "id": 1}),
    ('{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}',
     {"jsonrpc": "2.0", "result": -19, "id": 2}),
    ('{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}',
     {"jsonrpc": "2.0", "result": 19, "id": 3}),
    ('{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}',
     {"jsonrpc": "2.0", "result": 19, "id": 4}),
    ('{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}', None),
    ('{"jsonrpc": "2.0", "method": "foobar"}', None),
    ('{"jsonrpc": "2.0", "method": "foobar", "id": "1"}',
     {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"}),
    ('{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]',
     {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}),
    ('{"jsonrpc": "2.0", "method": 1, "params": "bar"}',
     {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}),
    ('[\n  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},\n'
     '  {"jsonrpc": "2.0", "method"\n]',
     {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}),
    ('[]',
     {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}),
    ('[1]',
     [{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}]),
    ('[1,2,3]',
     [{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}] * 3),
    ('[\n'
     '        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},\n'
     '        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},\n'
     '        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},\n'
     '        {"foo": "boo"},\n'
     '        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},\n'
     '        {"jsonrpc": "2.0", "method": "get_data", "id": "9"} \n'
     '    ]',
     [{"jsonrpc": "2.0", "result": 7, "id": "1"},
      {"jsonrpc": "2.0", "result": 19, "id": "2"},
      {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None},
      {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},
      {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}]),
    ('[\n'
     '        {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},\n'
     '        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}\n'
     '    ]', None),
]

problems = []


def without_data(response):
    """The specification's responses have no error data; conduit may add it."""
    if isinstance(response, list):
        return [without_data(item) for item in response]
    if isinstance(response, dict) and isinstance(response.get("error"), dict):
        response = dict(response)
        response["error"] = {k: v for k, v in response["error"].items() if k != "data"}
    return response


def check(transport, request, expected, got):
    if expected is None:
        if got is not None:
            problems.append(f"{transport}: {request!r}: expected no response, got {got!r}")
        return
    if got is None:
        problems.append(f"{transport}: {request!r}: no response, expected {expected!r}")
        return
    if without_data(got) != expected:
        problems.append(f"{transport}: {request!r}:\n  expected {expected!r}\n  got      {got!r}")


def over_http(port):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for request, expected in EXAMPLES:
        connection.request("POST", "/jsonrpc", body=request.encode(),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        body = response.read()
        if expected is None:
            if response.status != 204 or body:
                problems.append(f"http: {request!r}: expected 204 and no body, got "
                                f"{response.status} {body!r}")
            continue
        if response.status != 200 or response.getheader("Content-Type") != "application/json":
            problems.append(f"http: {request!r}: status {response.status}, "
                            f"Content-Type {response.getheader('Content-Type')}")
        check("http", request, expected, json.loads(body))
    connection.close()


def over_lines(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = sock.makefile("r", encoding="utf-8")
        for request, expected in EXAMPLES:
            # One text per line: the multi-line examples are sent on one line.
            sock.sendall(request.replace("\n", " ").encode() + b"\n")
            if expected is None:
                continue
            line = reader.readline()
            check("lines", request, expected, json.loads(line) if line else None)
        # Nothing may be left over: notifications had no response.
        sock.sendall(b'{"jsonrpc": "2.0", "method": "get_data", "id": "last"}\n')
        last = json.loads(reader.readline())
        if last.get("id") != "last":
            problems.append(f"lines: a response was sent for a notification: {last!r}")


def main():
    server = subprocess.Popen([sys.argv[1], "serve", "--listen", "tcp://127.0.0.1:0"],
                              stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline()
        match = re.search(r"listening on tcp://127\.0\.0\.1:(\d+)", line)
        if not match:
            print(f"the server did not start: {line!r}")
            return 1
        port = int(match.group(1))
        over_http(port)
        over_lines(port)
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=10)
        if code != 0:
            problems.append(f"the server exited with {code} on SIGTERM")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    for problem in problems:
        print(problem)
    return 1 if problems else 0


sys.exit(main())
