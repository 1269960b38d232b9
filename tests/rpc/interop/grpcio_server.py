#!/usr/bin/python3
"""A gRPC server written with Debian's grpcio alone, for conduit's gRPC
client to call: grpc.testing.TestService as gRPC's interop descriptions ask
(EmptyCall; UnaryCall with a payload of response_size zero bytes, the status
in response_status and response_compressed; StreamingOutputCall with sizes
and intervals; StreamingInputCall's aggregated size; FullDuplexCall; the
echo of x-grpc-test-echo-initial and x-grpc-test-echo-trailing-bin), and a
SlowCall of its own that sleeps for the milliseconds in response_size. A
response_status whose message is "with details" also gets a rich status in
grpc-status-details-bin.
UnimplementedCall is left out, so grpcio answers it UNIMPLEMENTED. grpcio
tells a handler nothing of how a request was compressed, so expect_compressed
is not checked here (conduit's own server checks it).

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

    def fail_as_asked(status, context):
        if status.code != 0:
            if status.message == "with details":
                # A rich status, as grpcio-status sends one: a google.rpc.Status
                # (code, message) in grpc-status-details-bin.
                text = status.message.encode()
                context.set_trailing_metadata([(
                    "grpc-status-details-bin",
                    bytes([0x08, status.code, 0x12, len(text)]) + text)])
            context.abort(grpc.StatusCode(
                [code for code in grpc.StatusCode if code.value[0] == status.code][0]),
                status.message)

    def unary_call(request, context):
        echo_metadata(context)
        fail_as_asked(request.response_status, context)
        if request.response_compressed.value:
            context.set_compression(grpc.Compression.Gzip)
        return messages_pb2.SimpleResponse(
            payload=messages_pb2.Payload(body=b"\0" * request.response_size))

    def slow_call(request, context):
        time.sleep(request.response_size / 1000)
        return messages_pb2.SimpleResponse()

    def respond(request, context):
        """The responses one StreamingOutputCallRequest asks for."""
        for parameters in request.response_parameters:
            if parameters.interval_us:
                time.sleep(parameters.interval_us / 1e6)
            if parameters.compressed.value:
                context.set_compression(grpc.Compression.Gzip)
            elif any(p.compressed.value for p in request.response_parameters):
                context.disable_next_message_compression()
            yield messages_pb2.StreamingOutputCallResponse(
                payload=messages_pb2.Payload(body=b"\0" * parameters.size))

    def streaming_output_call(request, context):
        yield from respond(request, context)
        fail_as_asked(request.response_status, context)

    def streaming_input_call(requests, context):
        total = sum(len(request.payload.body) for request in requests)
        return messages_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

    def full_duplex_call(requests, context):
        echo_metadata(context)
        for request in requests:
            fail_as_asked(request.response_status, context)
            yield from respond(request, context)

    def unary(function, request_type):
        return grpc.unary_unary_rpc_method_handler(
            function, request_deserializer=request_type.FromString,
            response_serializer=lambda message: message.SerializeToString())

    def serialize(message):
        return message.SerializeToString()

    handler = grpc.method_handlers_generic_handler("grpc.testing.TestService", {
        "EmptyCall": unary(empty_call, empty_pb2.Empty),
        "UnaryCall": unary(unary_call, messages_pb2.SimpleRequest),
        "SlowCall": unary(slow_call, messages_pb2.SimpleRequest),
        "StreamingOutputCall": grpc.unary_stream_rpc_method_handler(
            streaming_output_call,
            request_deserializer=messages_pb2.StreamingOutputCallRequest.FromString,
            response_serializer=serialize),
        "StreamingInputCall": grpc.stream_unary_rpc_method_handler(
            streaming_input_call,
            request_deserializer=messages_pb2.StreamingInputCallRequest.FromString,
            response_serializer=serialize),
        "FullDuplexCall": grpc.stream_stream_rpc_method_handler(
            full_duplex_call,
            request_deserializer=messages_pb2.StreamingOutputCallRequest.FromString,
            response_serializer=serialize),
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
