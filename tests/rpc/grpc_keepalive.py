#!/usr/bin/python3
"""gRPC keepalive and PING policy of `conduit serve`, seen from raw HTTP/2
frames written by hand on a socket:

- a client that says nothing is sent a PING after the keepalive time, and
  the connection is closed when no ACK comes within the keepalive timeout;
- a client that answers the PINGs keeps its connection, and it still serves;
- a client that PINGs in a loop with no call between gets GOAWAY
  ENHANCE_YOUR_CALM "too_many_pings", as gRPC's servers answer;
- PINGs between calls that are answered are no strikes.

After each check a grpcio client must still be served.

Usage: grpc_keepalive.py CONDUIT_BINARY
Prints one line per check; exits 0 only when all passed.
"""
import socket
import struct
import sys
import time

from conduit_serve import ConduitServe
from grpc_bad_input import (DATA, END_HEADERS, END_STREAM, ENHANCE_YOUR_CALM, GOAWAY, HEADERS,
                            PREFACE, SETTINGS, Checks, frame, parse_frames, read_frames,
                            request_headers)

PING = 6
ACK = 0x1
KEEPALIVE_MS = 300
TIMEOUT_MS = 400


class KeepaliveChecks(Checks):
    def handshake(self):
        sock = self.connect()
        sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
        return sock

    def echo_request(self, stream):
        # An empty google.protobuf.Value, framed: the echo answers it.
        return (frame(HEADERS, END_HEADERS, stream, request_headers()) +
                frame(DATA, END_STREAM, stream, b"\x00\x00\x00\x00\x00"))

    def silent_client_is_pinged_then_closed(self):
        sock = self.handshake()
        started = time.monotonic()
        with sock:
            frames, closed = read_frames(sock, seconds=(KEEPALIVE_MS + TIMEOUT_MS) / 1000 + 3)
        took = time.monotonic() - started
        pings = [f for f in frames if f[0] == PING and not f[1] & ACK]
        assert pings, f"no PING came: {[f[0] for f in frames]}"
        assert len(pings[0][3]) == 8, pings[0]
        assert closed, "the connection stayed open though its PING was never answered"
        assert took >= (KEEPALIVE_MS + TIMEOUT_MS) / 1000 * 0.9, f"closed after only {took:.2f} s"

    def client_that_answers_pings_keeps_its_connection(self):
        sock = self.handshake()
        answered = 0
        pending = b""
        with sock:
            sock.settimeout(0.1)
            deadline = time.monotonic() + 4 * (KEEPALIVE_MS + TIMEOUT_MS) / 1000
            while time.monotonic() < deadline:
                try:
                    chunk = sock.recv(65536)
                except socket.timeout:
                    continue
                assert chunk, "the server closed a connection whose PINGs were answered"
                frames, pending = parse_frames(pending + chunk)
                for kind, flags, _, payload in frames:
                    assert kind != GOAWAY, f"GOAWAY {payload!r}"
                    if kind == PING and not flags & ACK:
                        sock.sendall(frame(PING, ACK, 0, payload))
                        answered += 1
            assert answered >= 2, f"only {answered} PING(s) in {4 * (KEEPALIVE_MS + TIMEOUT_MS)} ms"
            # The connection still serves a call.
            sock.sendall(self.echo_request(1))
            frames, _ = read_frames(sock, seconds=1)
        data = [f for f in frames if f[0] == DATA and f[2] == 1]
        assert data, f"no answer on the kept connection: {[(f[0], f[2]) for f in frames]}"

    def ping_flood_gets_too_many_pings(self):
        sock = self.handshake()
        with sock:
            # The first PING sets the clock, the next three are strikes; the
            # third strike is one too many. Sent in one write, so that the
            # server has read them all when it closes.
            sock.sendall(b"".join(frame(PING, 0, 0, struct.pack(">Q", i)) for i in range(4)))
            frames, closed = read_frames(sock, seconds=3)
        goaways = [f for f in frames if f[0] == GOAWAY]
        assert goaways, f"no GOAWAY: {[f[0] for f in frames]}"
        code = int.from_bytes(goaways[0][3][4:8], "big")
        assert code == ENHANCE_YOUR_CALM, f"GOAWAY with error {code}"
        assert goaways[0][3][8:] == b"too_many_pings", goaways[0][3][8:]
        assert closed, "the connection stayed open"

    def pings_between_answered_calls_are_no_strikes(self):
        sock = self.handshake()
        with sock:
            for round_ in range(5):
                sock.sendall(frame(PING, 0, 0, struct.pack(">Q", round_)))
                stream = 1 + 2 * round_
                sock.sendall(self.echo_request(stream))
                got_answer = False
                pending = b""
                deadline = time.monotonic() + 3
                sock.settimeout(0.2)
                while not got_answer and time.monotonic() < deadline:
                    try:
                        chunk = sock.recv(65536)
                    except socket.timeout:
                        continue
                    assert chunk, f"the server closed the connection in round {round_}"
                    frames, pending = parse_frames(pending + chunk)
                    for kind, flags, stream_id, payload in frames:
                        assert kind != GOAWAY, f"GOAWAY in round {round_}: {payload!r}"
                        if stream_id == stream and flags & END_STREAM:
                            got_answer = True
                assert got_answer, f"no answer in round {round_}"


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    with ConduitServe(sys.argv[1], ["tcp://127.0.0.1:0"],
                      ["--grpc-keepalive-time", str(KEEPALIVE_MS),
                       "--grpc-keepalive-timeout", str(TIMEOUT_MS),
                       "--grpc-min-ping-interval", "60000"]) as server:
        checks = KeepaliveChecks(sys.argv[1], server.port())
        for check in (checks.silent_client_is_pinged_then_closed,
                      checks.client_that_answers_pings_keeps_its_connection,
                      checks.ping_flood_gets_too_many_pings,
                      checks.pings_between_answered_calls_are_no_strikes):
            checks.run(check)
    print(f"{checks.failed} check(s) failed" if checks.failed else "all checks passed")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
