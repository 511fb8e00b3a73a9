"""A real nats-server with JetStream for the cluster tests (Debian's package; .ci/run
installs it): file storage in a temporary folder, a random port on 127.0.0.1. It can
be stopped and started again on the same port and storage (a NATS restart)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.daemon import free_port

SKIP_REASON = ("nats-server not found: apt-get install nats-server (.ci/run does), or the "
               "cluster tests skip")


class NatsServer:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="bm-nats-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        with (self.root / "nats.log").open("ab") as log:  # the child keeps its own
            self.proc = subprocess.Popen([self.binary, "-js", "-sd", str(self.root / "js"),
                                          "-a", "127.0.0.1", "-p", str(self.port)],
                                         stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nats-server did not start: " +
                             (self.root / "nats.log").read_text(errors="replace"))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def start_or_skip() -> NatsServer:
    binary = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None)
    if binary is None:
        pytest.skip(SKIP_REASON)
    try:
        import nats  # noqa: F401
    except ImportError:
        pytest.skip("nats-py is not installed: pip install -e '.[test]'")
    return NatsServer(binary).start()
