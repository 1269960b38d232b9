#!/usr/bin/python3
"""A gRPC server written with Debian's grpcio alone, for conduit's gRPC
client to call: grpc.testing.TestService's EmptyCall and UnaryCall (a
payload of response_size zero bytes, the status in response_status, the
interop echo of x-grpc-test-echo-initial and x-grpc-test-echo-trailing-bin),
and a SlowCall of its own that sleeps for the milliseconds in response_size.

Usage: grpcio_server.py PROTO_ROOT
Listens on 127.0.0.1 (a port the kernel picks), prints "ready PORT", and
stops at the end of stdin.
"""
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from concurrent import futures

import grpc


def load(directory, proto_root, name, where):
    spec = importlib.util.spec_from_file_location(
        "grpc_" + name, os.path.join(directory, "grpc", where, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    proto_root = sys.argv[1]
    with tempfile.TemporaryDirectory() as directory:
        subprocess.run(["protoc", "-I", proto_root, f"--python_out={directory}",
                        "grpc/testing/empty.proto", "grpc/testing/messages.proto"], check=True)
        empty_pb2 = load(directory, proto_root, "empty_pb2", "testing")
        messages_pb2 = load(directory, proto_root, "messages_pb2", "testing")

    def echo_metadata(context):
        initial, trailing = [], []
        for key, value in context.invocation_metadata():
            if key == "x-grpc-test-echo-initial":
                initial.append((key, value))
            if key == "x-grpc-test-echo-trailing-bin":
                trailing.append((key, value))
        if initial:
            context.send_initial_metadata(initial)
        if trailing:
            context.set_trailing_metadata(trailing)

    def empty_call(request, context):
        echo_metadata(context)
        return empty_pb2.Empty()

    def unary_call(request, context):
        echo_metadata(context)
        if request.response_status.code != 0:
            context.abort(grpc.StatusCode(
                [code for code in grpc.StatusCode if code.value[0] == request.response_status.code][0]),
                request.response_status.message)
        return messages_pb2.SimpleResponse(
            payload=messages_pb2.Payload(body=b"\0" * request.response_size))

    def slow_call(request, context):
        time.sleep(request.response_size / 1000)
        return messages_pb2.SimpleResponse()

    def unary(function, request_type):
        return grpc.unary_unary_rpc_method_handler(
            function, request_deserializer=request_type.FromString,
            response_serializer=lambda message: message.SerializeToString())

    handler = grpc.method_handlers_generic_handler("grpc.testing.TestService", {
        "EmptyCall": unary(empty_call, empty_pb2.Empty),
        "UnaryCall": unary(unary_call, messages_pb2.SimpleRequest),
        "SlowCall": unary(slow_call, messages_pb2.SimpleRequest),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"ready {port}", flush=True)
    sys.stdin.read()
    server.stop(0)


if __name__ == "__main__":
    main()
