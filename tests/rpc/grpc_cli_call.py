#!/usr/bin/python3
"""`conduit call grpc://...` and `conduit call --list` against `conduit serve`:
schemas from server reflection, proto3 JSON in and out, streams as JSON
lines, and the exit codes.

Usage: grpc_cli_call.py CONDUIT_BINARY
"""
import json
import os
import subprocess
import sys
import tempfile

from conduit_serve import ConduitServe


def main():
    binary = sys.argv[1]
    failed = 0
    with tempfile.TemporaryDirectory() as directory:
        socket_path = os.path.join(directory, "grpc.sock")
        with ConduitServe(binary, ["tcp://127.0.0.1:0", "unix:" + socket_path]) as server:
            port = server.port()

            def call(*arguments, stdin=""):
                result = subprocess.run([binary, "call"] + list(arguments), input=stdin,
                                        capture_output=True, text=True, timeout=30)
                return result.returncode, result.stdout, result.stderr

            tcp = f"grpc://127.0.0.1:{port}"
            unix = "grpc+unix:" + socket_path
            checks = []

            def check(name, condition, detail):
                checks.append((name, condition, detail))

            for uri in (tcp, unix):
                code, out, err = call(uri, "grpc.testing.TestService/UnaryCall", '{"responseSize": 10}')
                body = json.loads(out)["payload"]["body"] if code == 0 else None
                check(f"unary call over {uri}", code == 0 and body == "AAAAAAAAAAAAAA==", (out, err))

            code, out, err = call("--list", tcp)
            check("list shows services and streaming methods",
                  code == 0 and "grpc.testing.TestService\n" in out and
                  "  FullDuplexCall(stream grpc.testing.StreamingOutputCallRequest) returns "
                  "(stream grpc.testing.StreamingOutputCallResponse)" in out and
                  "grpc.health.v1.Health\n" in out, (out, err))

            code, out, err = call(tcp, "grpc.testing.TestService/StreamingOutputCall",
                                  '{"responseParameters":[{"size":3},{"size":1}]}')
            check("server stream prints one line per response",
                  code == 0 and out.splitlines() == ['{"payload":{"body":"AAAA"}}',
                                                     '{"payload":{"body":"AA=="}}'], (out, err))

            code, out, err = call(tcp, "grpc.testing.TestService/StreamingInputCall",
                                  stdin='{"payload":{"body":"AAAA"}}\n{"payload":{"body":"AAAAAAAA"}}\n')
            check("client stream reads requests from stdin",
                  code == 0 and json.loads(out) == {"aggregatedPayloadSize": 9}, (out, err))

            code, out, err = call(tcp, "grpc.testing.TestService/UnaryCall",
                                  '{"responseStatus":{"code":5,"message":"nope"}}')
            check("a failed call prints its status and exits 1",
                  code == 1 and "NOT_FOUND: nope" in err, (code, out, err))

            code, out, err = call(tcp, "grpc.testing.TestService/UnaryCall", '{"noSuchField": 1}')
            check("a request that does not fit is refused before sending",
                  code == 2 and "noSuchField" in err, (code, out, err))

            code, out, err = call(tcp, "no.such.Service/Method")
            check("an unknown service is named", code == 1 and "no.such.Service" in err, (code, err))

            code, out, err = call("grpc://127.0.0.1:1", "a.B/C")
            check("nothing listening exits 2", code == 2 and "UNAVAILABLE" in err, (code, err))


    for name, condition, detail in checks:
        print(f"ok {name}" if condition else f"FAIL {name}: {detail!r}")
        failed += 0 if condition else 1
    print(f"{failed} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
