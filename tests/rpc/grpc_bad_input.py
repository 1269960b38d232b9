#!/usr/bin/python3
"""Hostile and malformed HTTP/2 and gRPC input sent to `conduit serve`: raw
frames written by hand on a socket, and requests made with nghttp
(nghttp2-client). After each one a grpcio client must still be served.

Usage: grpc_bad_input.py CONDUIT_BINARY
Prints one line per check; exits 0 only when all passed.
"""
import gzip
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time

import grpc
from google.protobuf import struct_pb2

from conduit_serve import ConduitServe

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY = 0, 1, 3, 4, 7
END_STREAM, END_HEADERS = 0x1, 0x4
PROTOCOL_ERROR, INTERNAL_ERROR, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = \
    0x1, 0x2, 0x6, 0x7, 0x8, 0xB
ACK = 0x1
ECHO = "/conduit.interop.JsonRpcExamples/echo"


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack_length(length, prefix_bits=7, first=0):
    limit = (1 << prefix_bits) - 1
    if length < limit:
        return bytes([first | length])
    out = bytearray([first | limit])
    length -= limit
    while length >= 128:
        out.append((length & 0x7F) | 0x80)
        length >>= 7
    out.append(length)
    return bytes(out)


def literal(name, value, indexed=False):
    """A header field with a literal name; added to the dynamic table when
    `indexed`, else not."""
    name, value = name.encode(), value.encode()
    return (b"\x40" if indexed else b"\x00") + hpack_length(len(name)) + name + \
        hpack_length(len(value)) + value


def request_headers(path=ECHO):
    return b"".join(literal(name, value) for name, value in [
        (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "test"),
        ("content-type", "application/grpc"), ("te", "trailers")])


def read_frames(sock, seconds=5):
    """Frames until the server closes the connection or `seconds` pass:
    [(type, flags, stream, payload)], and whether the connection closed."""
    sock.settimeout(seconds)
    data = b""
    closed = False
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                closed = True
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        closed = closed or False
    return parse_frames(data)[0], closed


def parse_frames(data):
    """The whole frames at the start of `data` as [(type, flags, stream,
    payload)], and the bytes left over."""
    frames = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        if len(data) < 9 + length:
            break
        frames.append((data[3], data[4], int.from_bytes(data[5:9], "big") & 0x7FFFFFFF,
                       data[9:9 + length]))
        data = data[9 + length:]
    return frames, data


def goaway_code(frames):
    for kind, _, _, payload in frames:
        if kind == GOAWAY:
            return int.from_bytes(payload[4:8], "big")
    return None


class Checks:
    def __init__(self, binary, port):
        self.binary = binary
        self.port = port
        self.failed = 0

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def still_serving(self):
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            echo = channel.unary_unary(ECHO, request_serializer=lambda m: m.SerializeToString(),
                                       response_deserializer=struct_pb2.Value.FromString)
            value = struct_pb2.Value(string_value="still here")
            assert echo(value, timeout=5) == value, "the server stopped answering"

    def run(self, check):
        try:
            check()
            self.still_serving()
            print(f"ok {check.__name__}")
        except Exception as error:  # every failure is reported, then counted
            self.failed += 1
            print(f"FAIL {check.__name__}: {error!r}")

    # ---- the checks ----

    def garbage_after_the_preface(self):
        with self.connect() as sock:
            sock.sendall(PREFACE + b"\x00\x00\x01this is not a frame of HTTP/2" * 4)
            frames, closed = read_frames(sock)
        assert goaway_code(frames) in (PROTOCOL_ERROR, FRAME_SIZE_ERROR), frames
        assert closed, "the connection stayed open"

    def frame_larger_than_max_frame_size(self):
        with self.connect() as sock:
            sock.sendall(PREFACE + frame(SETTINGS, 0, 0) +
                         frame(HEADERS, END_HEADERS, 1, request_headers() + b"\x00" * 20000))
            frames, closed = read_frames(sock)
        assert goaway_code(frames) == FRAME_SIZE_ERROR, frames
        assert closed, "the connection stayed open"

    def hpack_header_list_bomb(self):
        # One 4000-byte header put in the dynamic table, then referenced 200
        # times: 25 kB on the wire, 800 kB decoded.
        bomb = literal("x-bomb", "a" * 4000, indexed=True) + bytes([0x80 | 62]) * 200
        with self.connect() as sock:
            sock.sendall(PREFACE + frame(SETTINGS, 0, 0) +
                         frame(HEADERS, END_HEADERS | END_STREAM, 1, request_headers() + bomb))
            frames, _ = read_frames(sock, seconds=2)
        resets = [f for f in frames if f[0] == RST_STREAM and f[2] == 1]
        assert resets or goaway_code(frames) is not None, \
            f"the stream was served: {[(f[0], f[2]) for f in frames]}"
        answered = [f for f in frames if f[0] == DATA and f[2] == 1]
        assert not answered, "a response body came for the bomb"

    def rapid_reset_flood(self):
        # Streams opened and reset at once, in a loop (CVE-2023-44487).
        flood = b"".join(frame(HEADERS, END_HEADERS, stream, request_headers()) +
                         frame(RST_STREAM, 0, stream, struct.pack(">I", CANCEL))
                         for stream in range(1, 2 * 3000, 2))
        with self.connect() as sock:
            sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
            try:
                sock.sendall(flood)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server has hung up already
            frames, closed = read_frames(sock)
        # nghttp2's limit on resets answers INTERNAL_ERROR; ENHANCE_YOUR_CALM
        # would say the same. Without a limit no GOAWAY comes at all.
        assert goaway_code(frames) in (INTERNAL_ERROR, ENHANCE_YOUR_CALM), goaway_code(frames)
        assert closed, "the connection stayed open"

    def streams_beyond_max_concurrent_streams_are_refused(self):
        # The server allows 100 streams at once (SETTINGS_MAX_CONCURRENT_STREAMS,
        # in force once acknowledged): 100 requests left open, then one more.
        opened = b"".join(frame(HEADERS, END_HEADERS, stream, request_headers())
                          for stream in range(1, 2 * 101, 2))
        with self.connect() as sock:
            sock.sendall(PREFACE + frame(SETTINGS, 0, 0) + frame(SETTINGS, ACK, 0))
            time.sleep(0.2)  # the acknowledgement first, then the streams
            sock.sendall(opened)
            frames, _ = read_frames(sock, seconds=2)
        # RFC 9113, 5.1.2: a stream error (REFUSED_STREAM or PROTOCOL_ERROR) or,
        # as nghttp2 answers once the limit is acknowledged, a connection
        # error: GOAWAY PROTOCOL_ERROR naming stream 199, the last of the 100
        # it took, as the last processed.
        resets = {f[2]: int.from_bytes(f[3][:4], "big") for f in frames if f[0] == RST_STREAM}
        goaways = [f for f in frames if f[0] == GOAWAY]
        if goaways:
            last = int.from_bytes(goaways[0][3][:4], "big") & 0x7FFFFFFF
            assert goaway_code(frames) == PROTOCOL_ERROR, goaway_code(frames)
            assert last == 199, f"GOAWAY names stream {last} as the last processed"
        else:
            assert resets.get(201) in (REFUSED_STREAM, PROTOCOL_ERROR), \
                f"stream 201 was not refused: resets {resets}"
        assert not [s for s in resets if s < 201], f"streams within the limit were reset: {resets}"

    def wrong_content_type_gets_415(self):
        output = self.nghttp(["-H", "content-type: text/plain"], b"hello")
        assert re.search(r":status: 415", output), output

    def length_prefix_over_the_limit(self):
        # A message announcing 100 MB; the server refuses it from the prefix.
        output = self.nghttp(["-H", "content-type: application/grpc", "-H", "te: trailers"],
                             b"\x00\x06\x00\x00\x00abc")
        assert re.search(r"grpc-status: 8\b", output), output
        assert "larger than the server's limit" in output, output

    def gzip_bomb(self):
        # 20 MB of zeros in about 20 kB of gzip: refused once it expands
        # past the 4 MiB limit, without the server holding 20 MB.
        bomb = gzip.compress(b"\0" * (20 << 20))
        output = self.nghttp(["-H", "content-type: application/grpc", "-H", "te: trailers",
                              "-H", "grpc-encoding: gzip"],
                             b"\x01" + struct.pack(">I", len(bomb)) + bomb)
        assert re.search(r"grpc-status: 8\b", output), output
        assert "expands beyond" in output, output

    def unknown_encoding(self):
        output = self.nghttp(["-H", "content-type: application/grpc", "-H", "te: trailers",
                              "-H", "grpc-encoding: snappy"], b"\x01\x00\x00\x00\x01x")
        assert re.search(r"grpc-status: 12\b", output), output

    def nghttp(self, headers, body):
        with tempfile.NamedTemporaryFile() as data:
            data.write(body)
            data.flush()
            result = subprocess.run(
                ["nghttp", "-v", "-d", data.name] + headers +
                [f"http://127.0.0.1:{self.port}{ECHO}"],
                capture_output=True, text=True, timeout=20)
        return result.stdout + result.stderr


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    with ConduitServe(sys.argv[1], ["tcp://127.0.0.1:0"]) as server:
        checks = Checks(sys.argv[1], server.port())
        for check in (checks.garbage_after_the_preface, checks.frame_larger_than_max_frame_size,
                      checks.hpack_header_list_bomb, checks.rapid_reset_flood,
                      checks.streams_beyond_max_concurrent_streams_are_refused,
                      checks.wrong_content_type_gets_415, checks.length_prefix_over_the_limit,
                      checks.gzip_bomb, checks.unknown_encoding):
            checks.run(check)
    print(f"{checks.failed} check(s) failed" if checks.failed else "all checks passed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
