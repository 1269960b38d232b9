#!/usr/bin/python3
"""A soak of `conduit serve`: legitimate clients and hostile ones at once.

Starts `conduit serve` on a loopback TCP port, a UNIX socket and a shm+unix:
socket (--max-connections 200, its descriptors limited to 1024 as a default
shell would), then for --minutes runs side by side:

  legitimate clients, each making one call after another and checking every
  answer: JSON-RPC 2.0 one text per line over TCP, with Content-Length
  framing over the UNIX socket, over HTTP/1.1, and over shared memory
  (`conduit call shm+unix:`); gRPC unary, server-streaming and bidirectional
  calls over TCP and the UNIX socket (python3-grpcio), unary and
  server-streaming calls over shared memory (`conduit call grpc+shm+unix:`);

  hostile clients (--hostile of them), each cycling through these attacks:
    shm-handshake     shm+unix: handshakes left without attaching the rings
                      (closed at once, or after taking the memfd)
    jsonrpc-unread    JSON-RPC calls sent over lines and Content-Length
                      framing, no reply read
    grpc-unread       a gRPC bidirectional stream whose requests ask for
                      replies the client never reads (raw HTTP/2, its flow
                      control windows opened wide)
    grpc-timeout      gRPC calls with grpc-timeout: 99999999H
    idle-to-limit     idle connections up to --max-connections
    descriptors       connections by the hundred on every listener at once
    peer-killed       shm clients killed by SIGKILL in the middle of a stream

Once a minute it prints the calls the legitimate clients made, their errors
by status (none but deadline-related is the goal), and the server's resident
memory, threads and open descriptors read from /proc (flat after warm-up is
the goal); at the end, what the run left in /dev/shm, the mqueue filesystem
and System V IPC (tests/cleanup/ipc_objects.sh: objects any other process
made meanwhile show there too).

  bench/soak.py --conduit build/conduit [--minutes 10] [--hostile 2]
                [--max-connections 200]

Run by `./conduit.sh soak [--minutes N]`. Exits 1 when the server died or
no legitimate call succeeded, else 0.
"""
import argparse
import collections
import http.client
import json
import os
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import grpc
from google.protobuf import struct_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "rpc"))

from bench_support import fail, stop_process, varint  # noqa: E402
from conduit_serve import ConduitServe  # noqa: E402
from grpc_bad_input import (DATA, END_HEADERS, END_STREAM, HEADERS, PREFACE,  # noqa: E402
                            SETTINGS, frame, literal, request_headers)

ECHO = "/conduit.interop.JsonRpcExamples/echo"
TEST_SERVICE = "/grpc.testing.TestService/"
WINDOW_UPDATE = 8
SETTINGS_INITIAL_WINDOW_SIZE = 4
SERVER_DESCRIPTORS = 1024
CALL_TIMEOUT = 10  # seconds, every legitimate call
HOSTILE_MIB = 32  # what one unread episode sends or asks for


# ---- what is counted --------------------------------------------------------------

class Tally:
    """Calls and errors of the legitimate clients, by client kind."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = collections.Counter()
        self.errors = collections.Counter()
        self.attacks = collections.Counter()

    def ok(self, kind):
        with self.lock:
            self.calls[kind] += 1

    def error(self, kind, status):
        with self.lock:
            self.errors[(kind, status)] += 1

    def attacked(self, name):
        with self.lock:
            self.attacks[name] += 1

    def snapshot(self):
        with self.lock:
            return (collections.Counter(self.calls), collections.Counter(self.errors),
                    collections.Counter(self.attacks))


def usage_of(pid):
    """Resident bytes, threads and open descriptors of `pid`, from /proc."""
    resident = threads = None
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                resident = int(line.split()[1]) * 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return resident, threads, len(os.listdir(f"/proc/{pid}/fd"))


def status_of(error):
    """An exception as a short status: an errno's name, or the exception's."""
    if isinstance(error, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(error, OSError) and error.errno:
        return os.strerror(error.errno)
    return type(error).__name__


# ---- legitimate clients -----------------------------------------------------------

def legitimate(kind, tally, stop, call, reset=None):
    """Makes `call()` again and again until `stop`; counts each. `call`
    returns None when the answer was right, else the status to count.
    `reset()` drops the client's connection after an error."""
    while not stop.is_set():
        try:
            status = call()
        except grpc.RpcError as error:
            status = error.code().name
        except Exception as error:  # counted by kind; the client starts over
            status = status_of(error)
        if status is None:
            tally.ok(kind)
            continue
        tally.error(kind, status)
        if reset:
            reset()
        stop.wait(0.2)


class JsonRpcClient:
    """JSON-RPC echo calls on one connection, opened again after an error."""

    def __init__(self):
        self.connection = None
        self.id = 0

    def reset(self):
        if self.connection:
            self.connection.close()
        self.connection = None

    def call(self):
        if self.connection is None:
            self.connection = self.open()
        self.id += 1
        text = json.dumps({"jsonrpc": "2.0", "method": "echo", "params": [self.id],
                           "id": self.id}).encode()
        reply = self.exchange(text)
        if isinstance(reply, str):
            return reply  # a status of the transport's
        if "error" in reply:
            return f"JSON-RPC error {reply['error'].get('code')}"
        if reply.get("id") != self.id or reply.get("result") != [self.id]:
            return "wrong answer"
        return None


class JsonRpcStream(JsonRpcClient):
    """A text per line, or Content-Length framed, on a raw connection."""

    def __init__(self, connect, content_length):
        super().__init__()
        self.connect = connect
        self.content_length = content_length

    def open(self):
        sock = self.connect()
        sock.settimeout(CALL_TIMEOUT)
        self.buffer = b""
        return sock

    def exchange(self, text):
        if self.content_length:
            self.connection.sendall(b"Content-Length: %d\r\n\r\n" % len(text) + text)
            head = self.read_until(b"\r\n\r\n")
            return json.loads(self.read_exactly(int(head.split(b":", 1)[1])))
        self.connection.sendall(text + b"\n")
        return json.loads(self.read_until(b"\n"))

    def read_until(self, end):
        while end not in self.buffer:
            self.fill()
        return self.read_exactly(self.buffer.index(end) + len(end))

    def read_exactly(self, n):
        while len(self.buffer) < n:
            self.fill()
        taken, self.buffer = self.buffer[:n], self.buffer[n:]
        return taken

    def fill(self):
        chunk = self.connection.recv(65536)
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        self.buffer += chunk


class JsonRpcHttp(JsonRpcClient):
    """POST /jsonrpc on a kept-alive HTTP/1.1 connection."""

    def __init__(self, port):
        super().__init__()
        self.port = port

    def open(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=CALL_TIMEOUT)

    def exchange(self, text):
        self.connection.request("POST", "/jsonrpc", text, {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        body = response.read()
        return json.loads(body) if response.status == 200 else f"HTTP {response.status}"


def conduit_call(binary, arguments, expect, directory):
    """One `conduit call`; None when it printed `expect`, else its status
    (the run's directory written DIR)."""
    try:
        result = subprocess.run([binary, "call", "--timeout", str(CALL_TIMEOUT * 1000)] +
                                arguments, capture_output=True, text=True,
                                timeout=CALL_TIMEOUT + 5)
    except subprocess.TimeoutExpired:
        return "conduit call hung"
    if result.returncode != 0:
        first = (result.stderr.strip().splitlines() or ["(nothing on stderr)"])[0]
        for prefix in ("conduit call: ", "conduit: error: "):
            first = first.removeprefix(prefix)
        return f"exit {result.returncode}: {first.replace(directory, 'DIR')[:100]}"
    return None if expect in result.stdout else "wrong answer"


def streaming_request(sizes):
    """grpc.testing.StreamingOutputCallRequest asking for replies of `sizes`
    bytes (field 2, ResponseParameters: field 1, size)."""
    out = b""
    for size in sizes:
        parameters = b"\x08" + varint(size)
        out += b"\x12" + varint(len(parameters)) + parameters
    return out


def grpc_clients(target):
    """Unary, server-streaming and bidirectional calls on one channel."""
    channel = grpc.insecure_channel(target)
    echo = channel.unary_unary(ECHO, request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=struct_pb2.Value.FromString)
    streaming = channel.unary_stream(TEST_SERVICE + "StreamingOutputCall",
                                     request_serializer=lambda raw: raw,
                                     response_deserializer=lambda raw: raw)
    duplex = channel.stream_stream(TEST_SERVICE + "FullDuplexCall",
                                   request_serializer=lambda raw: raw,
                                   response_deserializer=lambda raw: raw)
    counter = iter(range(1 << 62))

    def unary():
        value = struct_pb2.Value(string_value=f"legit {next(counter)}")
        return None if echo(value, timeout=CALL_TIMEOUT) == value else "wrong answer"

    def server_stream():
        replies = list(streaming(streaming_request([64, 64, 64]), timeout=CALL_TIMEOUT))
        return None if len(replies) == 3 else f"{len(replies)} of 3 replies"

    def bidi():
        requests = [streaming_request([32])] * 4
        replies = list(duplex(iter(requests), timeout=CALL_TIMEOUT))
        return None if len(replies) == 4 else f"{len(replies)} of 4 replies"

    return channel, unary, server_stream, bidi


# ---- hostile clients ----------------------------------------------------------------

class Targets:
    def __init__(self, server, args, directory):
        self.binary = args.conduit
        self.port = server.port()
        self.unix = next(a for a in server.addresses if a.startswith("unix:"))[5:]
        self.shm = next(a for a in server.addresses if a.startswith("shm+unix:"))[9:]
        self.max_connections = args.max_connections

    def tcp(self):
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def unix_socket(self, path=None):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(path or self.unix)
        return sock


def send_without_reading(sock, block, limit, stop):
    """Sends `block` again and again until `limit` bytes went out, the peer
    took nothing for a second, or `stop`; the bytes sent."""
    sock.setblocking(False)
    sent = offset = 0
    stalled_since = None
    while sent < limit and not stop.is_set():
        try:
            n = sock.send(block[offset:])
        except BlockingIOError:
            now = time.monotonic()
            stalled_since = stalled_since or now
            if now - stalled_since > 1:
                break
            time.sleep(0.01)
            continue
        except OSError:
            break  # the server cut the connection off
        stalled_since = None
        sent += n
        offset = (offset + n) % len(block)
    return sent


def attack_shm_handshake(targets, stop):
    for i in range(100):
        if stop.is_set():
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(targets.shm)
            if i % 2:
                try:
                    _, fds, _, _ = socket.recv_fds(sock, 64, 1)
                    for fd in fds:
                        os.close(fd)
                except OSError:
                    pass


def attack_jsonrpc_unread(targets, stop):
    text = json.dumps({"jsonrpc": "2.0", "method": "echo", "params": ["x" * 4000],
                       "id": 1}).encode()
    lines = (text + b"\n") * 16
    framed = (b"Content-Length: %d\r\n\r\n" % len(text) + text) * 16
    for connect, block in ((targets.tcp, lines), (targets.unix_socket, framed)):
        with connect() as sock:
            send_without_reading(sock, block, HOSTILE_MIB << 20, stop)
            stop.wait(1)


def grpc_message(payload):
    return b"\x00" + struct.pack(">I", len(payload)) + payload


def open_windows():
    """The client's SETTINGS and WINDOW_UPDATE opening its receive windows
    as wide as HTTP/2 allows: the server's flow control never stops it."""
    return (frame(SETTINGS, 0, 0, struct.pack(">HI", SETTINGS_INITIAL_WINDOW_SIZE, 0x7FFFFFFF)) +
            frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF - 65535)))


def attack_grpc_unread(targets, stop):
    # Each request asks for a 4 KiB reply; a DATA frame of them, again and
    # again, until HOSTILE_MIB of replies were asked for.
    request = grpc_message(streaming_request([4096]))
    per_frame = 16000 // len(request)
    data = frame(DATA, 0, 1, request * per_frame)
    asked_per_frame = per_frame * 4096
    with targets.tcp() as sock:
        sock.sendall(PREFACE + open_windows() +
                     frame(HEADERS, END_HEADERS, 1,
                           request_headers(TEST_SERVICE + "FullDuplexCall")))
        frames = -(-(HOSTILE_MIB << 20) // asked_per_frame)
        send_without_reading(sock, data, frames * len(data), stop)
        stop.wait(1)


def attack_grpc_timeout(targets, stop):
    echo = grpc_message(struct_pb2.Value(string_value="forever").SerializeToString())
    headers = request_headers(ECHO) + literal("grpc-timeout", "99999999H")
    streaming = request_headers(TEST_SERVICE + "FullDuplexCall") + literal("grpc-timeout",
                                                                           "99999999H")
    with targets.tcp() as sock:
        sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
        stream = 1
        for _ in range(100):
            if stop.is_set():
                break
            # A unary call answered, and a stream left open beside it.
            sock.sendall(frame(HEADERS, END_HEADERS, stream, headers) +
                         frame(DATA, END_STREAM, stream, echo) +
                         frame(HEADERS, END_HEADERS, stream + 2, streaming))
            stream += 4
            try:
                sock.settimeout(0.01)
                while sock.recv(65536):
                    pass
            except (socket.timeout, BlockingIOError):
                pass
            except OSError:
                break
        stop.wait(1)


def attack_idle_to_limit(targets, stop):
    held = []
    try:
        for i in range(targets.max_connections):
            held.append(targets.tcp() if i % 2 else targets.unix_socket())
        stop.wait(5)
    except OSError:
        pass
    finally:
        for sock in held:
            sock.close()


def attack_descriptors(targets, stop):
    held = []
    try:
        for i in range(1500):
            if stop.is_set():
                break
            which = i % 3
            if which == 0:
                sock = targets.tcp()
            elif which == 1:
                sock = targets.unix_socket()
            else:
                sock = targets.unix_socket(targets.shm)
            if which != 2:
                sock.send(b"{")  # a request begun, never finished
            held.append(sock)
    except OSError:
        pass  # refused: the server or this process is out of descriptors
    stop.wait(3)
    for sock in held:
        sock.close()


def attack_peer_killed(targets, stop):
    for _ in range(5):
        if stop.is_set():
            return
        child = subprocess.Popen(
            [targets.binary, "call", "grpc+shm+unix:" + targets.shm,
             "grpc.testing.TestService/StreamingInputCall"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            child.stdin.write(b'{"payload": {"body": "aGVsbG8="}}\n')
            child.stdin.flush()
        except OSError:
            pass
        time.sleep(0.3)
        child.kill()
        child.wait()
        child.stdin.close()


ATTACKS = [("shm-handshake", attack_shm_handshake), ("jsonrpc-unread", attack_jsonrpc_unread),
           ("grpc-unread", attack_grpc_unread), ("grpc-timeout", attack_grpc_timeout),
           ("idle-to-limit", attack_idle_to_limit), ("descriptors", attack_descriptors),
           ("peer-killed", attack_peer_killed)]


def hostile(targets, tally, stop, start):
    attacks = ATTACKS[start:] + ATTACKS[:start]
    while not stop.is_set():
        for name, attack in attacks:
            if stop.is_set():
                return
            try:
                attack(targets, stop)
            except OSError:
                pass  # refused or cut off: what the server may do to an attacker
            tally.attacked(name)


# ---- the run ------------------------------------------------------------------------

def mib(n):
    return f"{n / (1 << 20):.1f}"


def report(minute, tally, previous, pid):
    calls, errors, attacks = tally.snapshot()
    resident, threads, descriptors = usage_of(pid)
    new_calls = sum(calls.values()) - sum(previous[0].values())
    new_errors = errors - previous[1]
    new_attacks = sum(attacks.values()) - sum(previous[2].values())
    print(f"{minute:>6}  {new_calls:>8}  {sum(new_errors.values()):>6}  {mib(resident):>8}  "
          f"{threads:>7}  {descriptors:>11}  {new_attacks:>8}", flush=True)
    for (kind, status), count in sorted(new_errors.items()):
        print(f"        {count:>6} x {kind}: {status}", flush=True)
    return calls, errors, attacks


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conduit", required=True, help="the conduit binary")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--hostile", type=int, default=2, help="hostile clients")
    parser.add_argument("--max-connections", type=int, default=200)
    args = parser.parse_args()
    if args.minutes <= 0 or args.hostile < 0 or args.max_connections <= 0:
        fail("--minutes and --max-connections must be positive, --hostile at least 0")

    # The hostile clients hold more descriptors than a default shell allows.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    cleanup = os.path.join(ROOT, "tests", "cleanup", "ipc_objects.sh")
    with tempfile.TemporaryDirectory(prefix="conduit-soak-") as directory:
        before = os.path.join(directory, "ipc-before")
        subprocess.run([cleanup, "snapshot", before], check=True)
        server = ConduitServe(args.conduit, ["tcp://127.0.0.1:0", f"unix:{directory}/rpc.sock",
                                             f"shm+unix:{directory}/shm.sock"],
                              ["--max-connections", str(args.max_connections)])
        pid = server.process.pid
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (SERVER_DESCRIPTORS, SERVER_DESCRIPTORS))
        # What the server writes from now on is read, so it never blocks on it.
        threading.Thread(target=lambda: server.process.stderr.read(), daemon=True).start()
        targets = Targets(server, args, directory)
        tally = Tally()
        stop = threading.Event()
        print(f"soak: conduit serve (pid {pid}) on {', '.join(server.addresses)}; "
              f"--max-connections {args.max_connections}, {SERVER_DESCRIPTORS} descriptors; "
              f"{args.hostile} hostile client(s); {args.minutes:g} minute(s)", flush=True)

        threads = []

        def run(target, *arguments):
            thread = threading.Thread(target=target, args=arguments, daemon=True)
            thread.start()
            threads.append(thread)

        for kind, client in (
                ("jsonrpc lines tcp", JsonRpcStream(targets.tcp, content_length=False)),
                ("jsonrpc content-length unix", JsonRpcStream(targets.unix_socket,
                                                              content_length=True)),
                ("jsonrpc http tcp", JsonRpcHttp(targets.port))):
            run(legitimate, kind, tally, stop, client.call, client.reset)
        run(legitimate, "jsonrpc shm", tally, stop,
            lambda: conduit_call(args.conduit, ["shm+unix:" + targets.shm, "echo", "[12345]"],
                                 "12345", directory))
        channels = []
        for name, target in (("tcp", f"127.0.0.1:{targets.port}"),
                             ("unix", f"unix:{targets.unix}")):
            channel, unary, server_stream, bidi = grpc_clients(target)
            channels.append(channel)
            run(legitimate, f"grpc unary {name}", tally, stop, unary)
            run(legitimate, f"grpc server-stream {name}", tally, stop, server_stream)
            run(legitimate, f"grpc bidi {name}", tally, stop, bidi)
        run(legitimate, "grpc unary shm", tally, stop,
            lambda: conduit_call(args.conduit,
                                 ["grpc+shm+unix:" + targets.shm,
                                  "grpc.testing.TestService/UnaryCall", '{"responseSize": 8}'],
                                 "payload", directory))
        run(legitimate, "grpc server-stream shm", tally, stop,
            lambda: conduit_call(args.conduit,
                                 ["grpc+shm+unix:" + targets.shm,
                                  "grpc.testing.TestService/StreamingOutputCall",
                                  '{"responseParameters": [{"size": 8}, {"size": 8}]}'],
                                 "payload", directory))
        for i in range(args.hostile):
            run(hostile, targets, tally, stop, (i * 3) % len(ATTACKS))

        print("minute     calls  errors  RSS MiB  threads  descriptors  attacks", flush=True)
        previous = report(0, tally, (collections.Counter(),) * 3, pid)
        started = time.monotonic()
        died = None
        minute = 0
        while minute < args.minutes and died is None:
            wait = min(60, (args.minutes - minute) * 60)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and died is None:
                time.sleep(0.5)
                died = server.process.poll()
            if died is not None:
                break
            minute += wait / 60
            previous = report(f"{minute:g}", tally, previous, pid)
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
        for channel in channels:
            channel.close()
        if died is not None:
            print(f"soak: the server exited with {died} after "
                  f"{(time.monotonic() - started) / 60:.1f} minutes", flush=True)
        else:
            resident, threads_now, descriptors = usage_of(pid)
            print(f"after the clients stopped: RSS {mib(resident)} MiB, {threads_now} threads, "
                  f"{descriptors} descriptors", flush=True)
        stop_process(server.process)
        calls, errors, attacks = tally.snapshot()
        print(f"calls: {sum(calls.values())} in all; " +
              ", ".join(f"{kind} {count}" for kind, count in sorted(calls.items())))
        print("errors of legitimate clients: " + ("none" if not errors else ""))
        for (kind, status), count in sorted(errors.items()):
            print(f"  {count:>6} x {kind}: {status}")
        print("attacks: " + ", ".join(f"{name} x{attacks[name]}" for name, _ in ATTACKS))
        check = subprocess.run([cleanup, "check", before], capture_output=True, text=True)
        print("left behind: " + check.stdout.strip())
    return 1 if died is not None or not calls else 0


if __name__ == "__main__":
    sys.exit(main())
