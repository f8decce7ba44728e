"""hbsa_server.py: a real hbsa-server as a child process for the client tests (stdlib only).

    with HbsaServer(binary, ready=lambda target: ..., extra_args=[...]) as s:
        s.target        # "127.0.0.1:PORT"
        s.metrics_url   # "http://127.0.0.1:PORT/metrics"

CPU backend, free loopback ports, `extra_args` appended (e.g. --tls-cert-file ...), waits until
`ready(target)` is true (bounded), and on exit sends SIGTERM (graceful drain) and reaps the
process (SIGKILL after 30 s).

make_test_certs(dir) makes the test PKI of tests/common/make_test_certs.sh (openssl CLI).
"""
import os
import signal
import socket
import subprocess
import time

CERTS_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common",
                            "make_test_certs.sh")


def make_test_certs(directory):
    """ca, server, client, other-ca, other-server, other-client (.pem/.key) in `directory`."""
    subprocess.run(["bash", CERTS_SCRIPT, str(directory)], check=True)
    return str(directory)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HbsaServer:
    def __init__(self, binary, ready, start_timeout=90.0, extra_args=()):
        self.binary = binary
        self.ready = ready
        self.extra_args = list(extra_args)
        self.start_timeout = start_timeout
        self.port = free_port()
        self.metrics_port = free_port()
        self.target = "127.0.0.1:%d" % self.port
        self.metrics_url = "http://127.0.0.1:%d/metrics" % self.metrics_port
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen([
            self.binary, "--listen", self.target,
            "--metrics-listen", "127.0.0.1:%d" % self.metrics_port, "--backend", "cpu",
            "--cpu-threads", "2", "--log-level", "warn", "--drain-grace-seconds", "5"]
            + self.extra_args)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("hbsa-server exited during start-up (%d)" % self.proc.returncode)
            try:
                if self.ready(self.target):
                    return self
            except Exception:  # not up yet
                pass
            time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError("hbsa-server did not become SERVING within %.0f s" % self.start_timeout)

    def __exit__(self, *exc):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
