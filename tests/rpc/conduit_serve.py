"""`conduit serve` as the Python tests run it: started on the listeners
given, each announced address read back, stopped with SIGTERM (SIGKILL if it
ignores that for 10 s)."""
import re
import signal
import subprocess
import threading


class ConduitServe:
    def __init__(self, binary, listeners, extra=()):
        arguments = [binary, "serve"]
        for listener in listeners:
            arguments += ["--listen", listener]
        self.process = subprocess.Popen(arguments + list(extra), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        text=True)
        self.addresses = []
        timer = threading.Timer(10, self.process.kill)
        timer.start()
        try:
            while len(self.addresses) < len(listeners):
                line = self.process.stderr.readline()
                if not line:
                    raise SystemExit("conduit serve ended before it listened")
                found = re.search(r"listening on (\S+)", line)
                if found:
                    self.addresses.append(found.group(1))
        finally:
            timer.cancel()

    def port(self):
        """The port of the first tcp:// listener."""
        for address in self.addresses:
            if address.startswith("tcp://"):
                return int(address.rsplit(":", 1)[1])
        raise SystemExit("conduit serve has no TCP listener")

    def grpc_targets(self):
        """The listeners as gRPC targets: HOST:PORT and unix:/path."""
        return [address.replace("tcp://", "") for address in self.addresses]

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.stop()
