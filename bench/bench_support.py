"""What the server benchmarks (jsonrpc_http_bench.py, grpc_bench.py) share:
failing with a message, the two CPUs they pin to, a process's CPU time, and
stopping a server."""
import os
import signal
import subprocess
import sys

TICKS = os.sysconf("SC_CLK_TCK")


def fail(message):
    """Ends the benchmark, naming the script that failed and why."""
    name = os.path.basename(sys.argv[0]).removesuffix(".py")
    print(f"{name}: {message}", file=sys.stderr)
    sys.exit(1)


def usable_cpus(load_generator):
    """The server's CPU and the load generator's: the first two usable."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        fail(f"needs two usable CPUs (one for the server, one for {load_generator}); found "
             f"{len(cpus)}")
    return cpus[0], cpus[1]


def cpu_seconds(pid):
    """User and system time of the process, all its threads, in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name may hold spaces; the fields after it are fixed.
        fields = stat.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the whole line.
    return (int(fields[11]) + int(fields[12])) / TICKS


def stop_process(process):
    """SIGTERM, then SIGKILL when it has not ended within 10 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def varint(value):
    """A protocol buffers base-128 varint, for messages built by hand."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
