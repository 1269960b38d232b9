#!/usr/bin/python3
"""gRPC's interoperability test cases (doc/interop-test-descriptions.md in
gRPC's repository), run by Debian's grpcio against
grpc.testing.TestService in `conduit serve`, over TCP and a UNIX socket, and
the health service (grpc.health.v1.Health) and server reflection (v1 and
v1alpha) there too.
The Python classes of grpc/testing/*.proto are generated at start with
protoc from Debian's grpc-proto.

Usage: grpc_interop_cases.py CONDUIT_BINARY [PROTO_ROOT]
Prints one line per case and target; exits 0 only when every case passed.
"""
import importlib.util
import os
import queue
import subprocess
import sys
import tempfile

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool

from conduit_serve import ConduitServe

PROTO_ROOT = "/usr/share/grpc-proto"


def load_messages(directory, proto_root):
    subprocess.run(["protoc", "-I", proto_root, f"--python_out={directory}",
                    "grpc/testing/empty.proto", "grpc/testing/messages.proto",
                    "grpc/health/v1/health.proto", "grpc/reflection/v1/reflection.proto",
                    "grpc/reflection/v1alpha/reflection.proto"], check=True)
    # Loaded by path: as a package, grpc/testing would clash with grpcio's
    # own `grpc` package.
    modules = []
    for name, where in (("empty_pb2", "testing"), ("messages_pb2", "testing"),
                        ("health_pb2", "health/v1"), ("reflection_pb2", "reflection/v1"),
                        ("reflection_pb2", "reflection/v1alpha")):
        spec = importlib.util.spec_from_file_location(
            "grpc_" + where.replace("/", "_") + "_" + name,
            os.path.join(directory, "grpc", where, name + ".py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules.append(module)
    return modules


def cases(channel, empty_pb2, messages_pb2):
    def unary(method, response_type):
        return channel.unary_unary("/grpc.testing.TestService/" + method,
                                   request_serializer=lambda message: message.SerializeToString(),
                                   response_deserializer=response_type.FromString)

    empty_call = unary("EmptyCall", empty_pb2.Empty)
    unary_call = unary("UnaryCall", messages_pb2.SimpleResponse)

    def expect_failure(call, code, message=None):
        try:
            call()
        except grpc.RpcError as error:
            assert error.code() == code, f"{error.code()} ({error.details()!r})"
            if message is not None:
                assert error.details() == message, repr(error.details())
            return
        raise AssertionError(f"the call succeeded instead of failing with {code}")

    def empty_unary():
        assert empty_call(empty_pb2.Empty(), timeout=10) == empty_pb2.Empty()

    def large_unary():
        request = messages_pb2.SimpleRequest(
            response_type=messages_pb2.COMPRESSABLE, response_size=314159,
            payload=messages_pb2.Payload(body=b"\0" * 271828))
        response = unary_call(request, timeout=10)
        assert response.payload.type == messages_pb2.COMPRESSABLE
        assert response.payload.body == b"\0" * 314159

    def client_compressed_unary():
        request = messages_pb2.SimpleRequest(response_size=314159,
                                             payload=messages_pb2.Payload(body=b"\0" * 271828))
        # The probe: a request that expects compression, sent without it.
        request.expect_compressed.value = True
        expect_failure(lambda: unary_call(request, timeout=10), grpc.StatusCode.INVALID_ARGUMENT)
        response = unary_call(request, timeout=10, compression=grpc.Compression.Gzip)
        assert len(response.payload.body) == 314159
        request.expect_compressed.value = False
        assert len(unary_call(request, timeout=10).payload.body) == 314159

    def server_compressed_unary():
        for compressed in (True, False):
            request = messages_pb2.SimpleRequest(
                response_size=314159, payload=messages_pb2.Payload(body=b"\0" * 271828))
            request.response_compressed.value = compressed
            assert len(unary_call(request, timeout=10).payload.body) == 314159

    def client_compressed_streaming():
        first = messages_pb2.StreamingInputCallRequest(
            payload=messages_pb2.Payload(body=b"\0" * 27182))
        first.expect_compressed.value = True
        expect_failure(lambda: streaming_input(iter([first]), timeout=10),
                       grpc.StatusCode.INVALID_ARGUMENT)
        second = messages_pb2.StreamingInputCallRequest(
            payload=messages_pb2.Payload(body=b"\0" * 45904))
        total = streaming_input(iter([first, second]), timeout=10,
                                compression=grpc.Compression.Gzip)
        assert total.aggregated_payload_size == 73086, total

    def server_compressed_streaming():
        request = messages_pb2.StreamingOutputCallRequest(response_parameters=[
            messages_pb2.ResponseParameters(size=31415),
            messages_pb2.ResponseParameters(size=92653)])
        request.response_parameters[0].compressed.value = True
        got = [len(response.payload.body) for response in streaming_output(request, timeout=10)]
        assert got == [31415, 92653], got

    def custom_metadata():
        request = messages_pb2.SimpleRequest(response_size=314159,
                                             payload=messages_pb2.Payload(body=b"\0" * 271828))
        metadata = (("x-grpc-test-echo-initial", "test_initial_metadata_value"),
                    ("x-grpc-test-echo-trailing-bin", b"\x0a\x0b\x0a\x0b\x0a\x0b"))
        response, call = unary_call.with_call(request, metadata=metadata, timeout=10)
        assert len(response.payload.body) == 314159
        initial = dict(call.initial_metadata())
        trailing = dict(call.trailing_metadata())
        assert initial.get("x-grpc-test-echo-initial") == "test_initial_metadata_value", initial
        assert trailing.get("x-grpc-test-echo-trailing-bin") == b"\x0a\x0b\x0a\x0b\x0a\x0b", \
            trailing

    def status_code_and_message():
        request = messages_pb2.SimpleRequest(
            response_status=messages_pb2.EchoStatus(code=2, message="test status message"))
        expect_failure(lambda: unary_call(request, timeout=10), grpc.StatusCode.UNKNOWN,
                       "test status message")

    def special_status_message():
        text = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"
        request = messages_pb2.SimpleRequest(
            response_status=messages_pb2.EchoStatus(code=2, message=text))
        expect_failure(lambda: unary_call(request, timeout=10), grpc.StatusCode.UNKNOWN, text)

    def unimplemented_method():
        call = unary("UnimplementedCall", empty_pb2.Empty)
        expect_failure(lambda: call(empty_pb2.Empty(), timeout=10), grpc.StatusCode.UNIMPLEMENTED)

    def unimplemented_service():
        call = channel.unary_unary("/grpc.testing.UnimplementedService/UnimplementedCall",
                                   request_serializer=lambda message: message.SerializeToString(),
                                   response_deserializer=empty_pb2.Empty.FromString)
        expect_failure(lambda: call(empty_pb2.Empty(), timeout=10), grpc.StatusCode.UNIMPLEMENTED)

    def streaming(kind, method, response_type):
        return getattr(channel, kind)(
            "/grpc.testing.TestService/" + method,
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=response_type.FromString)

    streaming_input = streaming("stream_unary", "StreamingInputCall",
                                messages_pb2.StreamingInputCallResponse)
    streaming_output = streaming("unary_stream", "StreamingOutputCall",
                                 messages_pb2.StreamingOutputCallResponse)
    full_duplex = streaming("stream_stream", "FullDuplexCall",
                            messages_pb2.StreamingOutputCallResponse)

    def output_request(response_size, payload_size=0, **fields):
        return messages_pb2.StreamingOutputCallRequest(
            response_parameters=[messages_pb2.ResponseParameters(size=response_size)],
            payload=messages_pb2.Payload(body=b"\0" * payload_size), **fields)

    class Requests:
        """Requests handed to grpcio one at a time, as a test decides."""
        def __init__(self):
            self.queue = queue.Queue()

        def add(self, request):
            self.queue.put(request)

        def close(self):
            self.queue.put(None)

        def __iter__(self):
            return self

        def __next__(self):
            request = self.queue.get(timeout=10)
            if request is None:
                raise StopIteration
            return request

    def client_streaming():
        sizes = [27182, 8, 1828, 45904]
        requests = (messages_pb2.StreamingInputCallRequest(
            payload=messages_pb2.Payload(body=b"\0" * size)) for size in sizes)
        assert streaming_input(requests, timeout=10).aggregated_payload_size == 74922

    def server_streaming():
        sizes = [31415, 9, 2653, 58979]
        request = messages_pb2.StreamingOutputCallRequest(
            response_parameters=[messages_pb2.ResponseParameters(size=size) for size in sizes])
        got = [len(response.payload.body) for response in streaming_output(request, timeout=10)]
        assert got == sizes, got

    def ping_pong():
        requests = Requests()
        responses = full_duplex(requests, timeout=10)
        for response_size, payload_size in [(31415, 27182), (9, 8), (2653, 1828), (58979, 45904)]:
            requests.add(output_request(response_size, payload_size))
            response = next(responses)
            assert len(response.payload.body) == response_size
        requests.close()
        assert list(responses) == []

    def empty_stream():
        assert list(full_duplex(iter([]), timeout=10)) == []

    def timeout_on_sleeping_server():
        requests = Requests()
        responses = full_duplex(requests, timeout=0.001)
        requests.add(output_request(0, 27182))
        try:
            list(responses)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, error.code()
            return
        finally:
            requests.close()
        raise AssertionError("the call outlived its 1 ms deadline")

    def cancel_after_begin():
        requests = Requests()
        future = streaming_input.future(requests, timeout=10)
        future.cancel()
        requests.close()
        assert future.cancelled()
        try:
            future.result()
        except grpc.FutureCancelledError:
            return
        raise AssertionError("the cancelled call returned a result")

    def cancel_after_first_response():
        requests = Requests()
        responses = full_duplex(requests, timeout=10)
        requests.add(output_request(31415, 27182))
        assert len(next(responses).payload.body) == 31415
        responses.cancel()
        requests.close()
        try:
            next(responses)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.CANCELLED, error.code()
            return
        raise AssertionError("a response came after the cancel")

    def custom_metadata_streaming():
        metadata = (("x-grpc-test-echo-initial", "test_initial_metadata_value"),
                    ("x-grpc-test-echo-trailing-bin", b"\x0a\x0b\x0a\x0b\x0a\x0b"))
        responses = full_duplex(iter([output_request(314159, 271828)]), metadata=metadata,
                                timeout=10)
        assert [len(response.payload.body) for response in responses] == [314159]
        initial = dict(responses.initial_metadata())
        trailing = dict(responses.trailing_metadata())
        assert initial.get("x-grpc-test-echo-initial") == "test_initial_metadata_value", initial
        assert trailing.get("x-grpc-test-echo-trailing-bin") == b"\x0a\x0b\x0a\x0b\x0a\x0b", \
            trailing

    def status_code_and_message_streaming():
        request = messages_pb2.StreamingOutputCallRequest(
            response_status=messages_pb2.EchoStatus(code=2, message="test status message"))
        expect_failure(lambda: list(full_duplex(iter([request]), timeout=10)),
                       grpc.StatusCode.UNKNOWN, "test status message")

    return [empty_unary, large_unary, client_compressed_unary, server_compressed_unary,
            client_compressed_streaming, server_compressed_streaming, custom_metadata,
            status_code_and_message, special_status_message, unimplemented_method,
            unimplemented_service, client_streaming, server_streaming, ping_pong, empty_stream,
            timeout_on_sleeping_server, cancel_after_begin, cancel_after_first_response,
            custom_metadata_streaming, status_code_and_message_streaming]


def health_cases(channel, health_pb2):
    """grpc.health.v1.Health, as grpc_health_probe and load balancers ask it."""
    serialize = lambda message: message.SerializeToString()  # noqa: E731
    check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=serialize,
                                response_deserializer=health_pb2.HealthCheckResponse.FromString)
    watch = channel.unary_stream("/grpc.health.v1.Health/Watch", request_serializer=serialize,
                                 response_deserializer=health_pb2.HealthCheckResponse.FromString)
    serving = health_pb2.HealthCheckResponse.SERVING

    def health_check():
        for service in ("", "grpc.testing.TestService", "conduit.interop.JsonRpcExamples"):
            response = check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert response.status == serving, (service, response)
        try:
            check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND, error.code()
            return
        raise AssertionError("an unknown service was reported healthy")

    def health_watch():
        responses = watch(health_pb2.HealthCheckRequest(service="grpc.testing.TestService"),
                          timeout=10)
        assert next(responses).status == serving
        unknown = watch(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
        assert next(unknown).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
        for stream in (responses, unknown):
            stream.cancel()
            try:
                next(stream)
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.CANCELLED, error.code()
                continue
            raise AssertionError("a second status came without a change")

    return [health_check, health_watch]


def reflection_cases(channel, reflection_pb2, version):
    """Server reflection as grpcurl uses it: list the services, fetch the
    file of a symbol with its imports, and build a working descriptor pool
    from what came back."""
    info = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    Request = reflection_pb2.ServerReflectionRequest

    def reflection():
        requests = [Request(list_services=""),
                    Request(file_containing_symbol="grpc.testing.TestService"),
                    Request(file_by_filename="grpc/testing/messages.proto"),
                    Request(file_containing_symbol="no.such.Symbol")]
        answers = list(info(iter(requests), timeout=10))
        assert len(answers) == 4, answers
        services = {service.name for service in answers[0].list_services_response.service}
        for expected in ("grpc.testing.TestService", "grpc.health.v1.Health",
                         f"grpc.reflection.{version}.ServerReflection",
                         "conduit.interop.JsonRpcExamples"):
            assert expected in services, services
        files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
                 for raw in answers[1].file_descriptor_response.file_descriptor_proto]
        names = [file.name for file in files]
        assert names[0] == "grpc/testing/test.proto", names
        assert {"grpc/testing/empty.proto", "grpc/testing/messages.proto"} <= set(names), names
        pool = descriptor_pool.DescriptorPool()
        for file in reversed(files):  # imports first
            pool.Add(file)
        method = pool.FindMethodByName("grpc.testing.TestService.UnaryCall")
        assert method.input_type.full_name == "grpc.testing.SimpleRequest"
        by_name = answers[2].file_descriptor_response.file_descriptor_proto
        assert descriptor_pb2.FileDescriptorProto.FromString(by_name[0]).name == \
            "grpc/testing/messages.proto"
        assert answers[3].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0], \
            answers[3]

    reflection.__name__ = f"reflection_{version}"
    return [reflection]


def main():
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    proto_root = sys.argv[2] if len(sys.argv) == 3 else PROTO_ROOT
    failed = 0
    with tempfile.TemporaryDirectory() as directory:
        empty_pb2, messages_pb2, health_pb2, reflection_v1, reflection_v1alpha = \
            load_messages(directory, proto_root)
        listeners = ["tcp://127.0.0.1:0", "unix:" + os.path.join(directory, "grpc.sock")]
        with ConduitServe(sys.argv[1], listeners) as server:
            for target in server.grpc_targets():
                with grpc.insecure_channel(target) as channel:
                    for case in (cases(channel, empty_pb2, messages_pb2) +
                                 health_cases(channel, health_pb2) +
                                 reflection_cases(channel, reflection_v1, "v1") +
                                 reflection_cases(channel, reflection_v1alpha, "v1alpha")):
                        try:
                            case()
                            print(f"ok {case.__name__} over {target}")
                        except Exception as error:  # every failure is reported, then counted
                            failed += 1
                            print(f"FAIL {case.__name__} over {target}: {error!r}")
    print(f"{failed} case(s) failed" if failed else "all cases passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
