#!/usr/bin/python3
"""What a gRPC client can make `conduit serve` hold by sending requests its
handlers do not read, measured in the server's RSS (VmRSS of
/proc/PID/status). The client is raw HTTP/2 written by hand that keeps to
flow control, as any client must: it sends only as far as the server's
windows let it, and it announces a receive window of 0, so that the server's
handlers block on their first writes and read nothing more.

- one FullDuplexCall sent 50 MB of requests (each asking for a response)
  while its handler is blocked on a write: the server must stop opening its
  window rather than hold the 50 MB;
- one HalfDuplexCall, whose handler reads every request and answers only
  after the client half-closes, sent 50 MB: it must stop buffering (the
  call may fail) rather than hold the 50 MB;
- 80 StreamingOutputCalls on one connection, each handler pausing before
  its response (so reading nothing more), sent 1 MB each: what the
  connection holds across its streams is bounded too (calls beyond it may
  fail).

After each check a grpcio client must still be served.

Usage: grpc_stream_memory.py CONDUIT_BINARY
Prints one line per check; exits 0 only when all passed.
"""
import os
import select
import struct
import sys
import time

from conduit_serve import ConduitServe
from grpc_bad_input import (DATA, END_HEADERS, GOAWAY, HEADERS, PREFACE, RST_STREAM, SETTINGS,
                            ACK, Checks, frame, parse_frames, request_headers)

WINDOW_UPDATE = 8
PING = 6
SETTINGS_INITIAL_WINDOW_SIZE = 4
FULL_DUPLEX = "/grpc.testing.TestService/FullDuplexCall"
HALF_DUPLEX = "/grpc.testing.TestService/HalfDuplexCall"
STREAMING_OUTPUT = "/grpc.testing.TestService/StreamingOutputCall"
MB = 1000 * 1000
MIB = 1024 * 1024
# What the server may grow by while an attack is held. Far below what each
# attack sends: a server that holds what it is sent fails by tens of MB.
SINGLE_STREAM_BOUND = 24 * MIB
CONNECTION_BOUND = 32 * MIB
# The connection check's server holds at most this of a connection's
# unread requests (--grpc-connection-buffer; 32 MiB unless set).
CONNECTION_BUFFER = 8 * MIB


def varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(number, payload):
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def streaming_output_request(response_size, payload_size, pause_us=0):
    """grpc.testing.StreamingOutputCallRequest asking for one response of
    `response_size` bytes after `pause_us`, carrying `payload_size` bytes,
    framed for gRPC."""
    parameters = varint(1 << 3) + varint(response_size)  # ResponseParameters.size
    if pause_us:
        parameters += varint(2 << 3) + varint(pause_us)  # .interval_us
    body = field(2, parameters) + field(3, field(2, b"x" * payload_size))
    return b"\x00" + struct.pack(">I", len(body)) + body


def rss(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise SystemExit("no VmRSS in /proc/{pid}/status")


class FlowControlledClient:
    """One HTTP/2 connection that sends DATA only within the server's
    windows and lets the server send none (its receive window is 0)."""

    def __init__(self, sock):
        self.sock = sock
        self.pending = b""
        self.connection_window = 65535
        self.initial_stream_window = 65535
        self.stream_windows = {}
        self.ended = set()  # streams the server reset or answered with END_STREAM
        self.goaway = False
        sock.sendall(PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", SETTINGS_INITIAL_WINDOW_SIZE, 0)))

    def open(self, stream, path):
        self.stream_windows[stream] = self.initial_stream_window
        self.sock.sendall(frame(HEADERS, END_HEADERS, stream, request_headers(path)))

    def pump(self, wait):
        """Reads what the server sent within `wait` seconds; False once the
        connection is closed."""
        readable, _, _ = select.select([self.sock], [], [], wait)
        if not readable:
            return True
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            return False
        frames, self.pending = parse_frames(self.pending + chunk)
        for kind, flags, stream, payload in frames:
            if kind == SETTINGS and not flags & ACK:
                for offset in range(0, len(payload), 6):
                    key, value = struct.unpack(">HI", payload[offset:offset + 6])
                    if key == SETTINGS_INITIAL_WINDOW_SIZE:
                        for id_ in self.stream_windows:
                            self.stream_windows[id_] += value - self.initial_stream_window
                        self.initial_stream_window = value
                self.sock.sendall(frame(SETTINGS, ACK, 0))
            elif kind == WINDOW_UPDATE:
                increment = struct.unpack(">I", payload)[0] & 0x7FFFFFFF
                if stream == 0:
                    self.connection_window += increment
                elif stream in self.stream_windows:
                    self.stream_windows[stream] += increment
            elif kind == PING and not flags & ACK:
                self.sock.sendall(frame(PING, ACK, 0, payload))
            elif kind == RST_STREAM or (kind == HEADERS and flags & 0x1):
                self.ended.add(stream)
            elif kind == GOAWAY:
                self.goaway = True
        return True

    def send(self, stream, data, stall_seconds=2.0):
        """Sends `data` on `stream` as the windows allow. Returns the bytes
        sent: fewer than asked when the server kept its window shut for
        `stall_seconds`, or ended the stream."""
        sent = 0
        stalled_since = None
        while sent < len(data):
            if stream in self.ended or self.goaway:
                break
            room = min(self.connection_window, self.stream_windows[stream], 16384,
                       len(data) - sent)
            if room <= 0:
                now = time.monotonic()
                stalled_since = stalled_since or now
                if now - stalled_since > stall_seconds:
                    break
                if not self.pump(0.05):
                    break
                continue
            stalled_since = None
            self.sock.sendall(frame(DATA, 0, stream, data[sent:sent + room]))
            self.connection_window -= room
            self.stream_windows[stream] -= room
            sent += room
            if not self.pump(0):
                break
        return sent


class MemoryChecks(Checks):
    def __init__(self, binary, port, pid):
        super().__init__(binary, port)
        self.pid = pid

    def requests(self, total, payload=64 * 1024):
        one = streaming_output_request(64 * 1024, payload)
        return one * (total // len(one) + 1)

    def one_stream_sent_50_mb(self, path):
        before = rss(self.pid)
        with self.connect() as sock:
            client = FlowControlledClient(sock)
            client.pump(0.2)
            client.open(1, path)
            sent = client.send(1, self.requests(50 * MB)[:50 * MB])
            client.pump(0.3)
            grown = rss(self.pid) - before
        print(f"  one stream: {sent / MB:.1f} MB sent, the server grew by {grown / MIB:.1f} MiB")
        assert grown < SINGLE_STREAM_BOUND, \
            f"the server grew by {grown / MIB:.1f} MiB (bound {SINGLE_STREAM_BOUND // MIB} MiB)"

    def one_stream_sent_50_mb_its_handler_does_not_read(self):
        self.one_stream_sent_50_mb(FULL_DUPLEX)

    def half_duplex_call_sent_50_mb_before_half_close(self):
        self.one_stream_sent_50_mb(HALF_DUPLEX)

    def eighty_streams_sent_1_mb_each_on_one_connection(self):
        before = rss(self.pid)
        # The first request has the handler pause 20 s before it answers.
        data = (streaming_output_request(1, 0, pause_us=20 * 1000 * 1000) + self.requests(MB))[:MB]
        total = 0
        with self.connect() as sock:
            client = FlowControlledClient(sock)
            client.pump(0.2)
            for index in range(80):
                stream = 1 + 2 * index
                client.open(stream, STREAMING_OUTPUT)
                total += client.send(stream, data, stall_seconds=0.3)
            client.pump(0.3)
            grown = rss(self.pid) - before
        print(f"  80 streams: {total / MB:.1f} MB sent, {len(client.ended)} ended by the server, "
              f"the server grew by {grown / MIB:.1f} MiB")
        assert grown < CONNECTION_BOUND, \
            f"the server grew by {grown / MIB:.1f} MiB (bound {CONNECTION_BOUND // MIB} MiB)"


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    failed = 0
    # Under AddressSanitizer freed memory waits in a quarantine before it is
    # reused, which RSS would count as held: the server keeps none.
    os.environ["ASAN_OPTIONS"] = ":".join(
        filter(None, [os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=0",
                      "thread_local_quarantine_size_kb=0"]))
    # A server of its own for each check: freed memory the allocator keeps
    # would hide what the next attack costs.
    for name, flags in (("one_stream_sent_50_mb_its_handler_does_not_read", []),
                        ("half_duplex_call_sent_50_mb_before_half_close", []),
                        ("eighty_streams_sent_1_mb_each_on_one_connection",
                         ["--grpc-connection-buffer", str(CONNECTION_BUFFER)])):
        with ConduitServe(sys.argv[1], ["tcp://127.0.0.1:0"], flags) as server:
            checks = MemoryChecks(sys.argv[1], server.port(), server.process.pid)
            checks.still_serving()  # warmed up before the first measure
            checks.run(getattr(checks, name))
            failed += checks.failed
    print(f"{failed} check(s) failed" if failed else "all checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
