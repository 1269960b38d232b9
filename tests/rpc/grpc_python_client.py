#!/usr/bin/python3
"""Debian's grpcio (python3-grpcio) calling `conduit serve` over gRPC: h2c
with prior knowledge on a TCP port, and gRPC's unix: target form.

Usage: grpc_python_client.py CONDUIT_BINARY
Starts `conduit serve` on a loopback TCP port and a UNIX socket in a private
directory, runs every check over both, prints one line per check and exits
0 only when all passed.
"""
import os
import struct
import sys
import tempfile

import grpc
from google.protobuf import empty_pb2, struct_pb2

from conduit_serve import ConduitServe

SERVICE = "/conduit.interop.JsonRpcExamples/"


def method(channel, name, response_type):
    return channel.unary_unary(SERVICE + name,
                               request_serializer=lambda message: message.SerializeToString(),
                               response_deserializer=response_type.FromString)


def subtract_request(minuend, subtrahend):
    # conduit.interop.SubtractRequest: two doubles, fields 1 and 2.
    return struct.pack("<BdBd", 0x09, minuend, 0x11, subtrahend)


def checks(channel):
    echo = method(channel, "echo", struct_pb2.Value)
    total = method(channel, "sum", struct_pb2.Value)

    def nested_echo():
        value = struct_pb2.Value()
        value.struct_value.update({"list": [1, "two", True, None], "text": "é😀"})
        assert echo(value, timeout=5) == value

    def sum_of_numbers():
        numbers = struct_pb2.ListValue()
        numbers.extend([1, 2, 4])
        assert total(numbers, timeout=5).number_value == 7

    def subtract_by_bytes():
        subtract = channel.unary_unary(SERVICE + "subtract",
                                       request_serializer=lambda raw: raw,
                                       response_deserializer=struct_pb2.Value.FromString)
        assert subtract(subtract_request(42, 23), timeout=5).number_value == 19

    def get_data_with_empty_request():
        data = method(channel, "get_data", struct_pb2.ListValue)(empty_pb2.Empty(), timeout=5)
        assert [value.string_value or value.number_value for value in data.values] == ["hello", 5]

    def handler_failure_carries_code_and_message():
        numbers = struct_pb2.ListValue()
        numbers.extend([1, "x"])
        try:
            total(numbers, timeout=5)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.code()
            assert error.details() == "params[1] is a string, not a number", error.details()
            return
        raise AssertionError("the call succeeded")

    def unknown_method_is_unimplemented():
        try:
            method(channel, "foobar", struct_pb2.Value)(struct_pb2.Value(), timeout=5)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNIMPLEMENTED, error.code()
            return
        raise AssertionError("the call succeeded")

    def unknown_service_is_unimplemented():
        call = channel.unary_unary("/no.such.Service/Method")
        try:
            call(b"", timeout=5)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNIMPLEMENTED, error.code()
            return
        raise AssertionError("the call succeeded")

    def request_that_does_not_parse_is_internal():
        subtract = channel.unary_unary(SERVICE + "subtract")
        try:
            subtract(b"\xff\xff\xff", timeout=5)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.INTERNAL, error.code()
            return
        raise AssertionError("the call succeeded")

    def three_megabyte_message_both_ways():
        value = struct_pb2.Value(string_value="y" * (3 << 20))
        assert echo(value, timeout=20).string_value == value.string_value

    def two_hundred_calls_at_once():
        futures = []
        for i in range(200):
            value = struct_pb2.Value(number_value=i)
            futures.append((i, echo.future(value, timeout=20)))
        for i, future in futures:
            assert future.result().number_value == i

    return [nested_echo, sum_of_numbers, subtract_by_bytes, get_data_with_empty_request,
            handler_failure_carries_code_and_message, unknown_method_is_unimplemented,
            unknown_service_is_unimplemented, request_that_does_not_parse_is_internal,
            three_megabyte_message_both_ways, two_hundred_calls_at_once]


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    failed = 0
    with tempfile.TemporaryDirectory() as directory:
        listeners = ["tcp://127.0.0.1:0", "unix:" + os.path.join(directory, "grpc.sock")]
        with ConduitServe(sys.argv[1], listeners) as server:
            for target in server.grpc_targets():
                with grpc.insecure_channel(target) as channel:
                    for check in checks(channel):
                        try:
                            check()
                            print(f"ok {check.__name__} over {target}")
                        except Exception as error:  # every failure is reported, then counted
                            failed += 1
                            print(f"FAIL {check.__name__} over {target}: {error!r}")
    print(f"{failed} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
