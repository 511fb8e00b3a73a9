"""Run the real daemon process for end-to-end tests (signals, restarts, SIGKILL)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll a real process's observable state (not a sleep in the engine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def wait_for_async(predicate: Any, seconds: float = 30.0,
                         what: str = "condition") -> Any:
    """:func:`wait_for` inside an event loop that must keep running meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class DaemonProcess:
    def __init__(self, config: Path, port: int, env: dict[str, str] | None = None, *,
                 session: bool = False) -> None:
        self.config = config
        self.session = session  # its own process group (signals to the group, as a TTY)
        self.port = port
        self.env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
        self.log = config.parent / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        with self.log.open("ab") as handle:  # the child keeps its own descriptor
            self.proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "-c",
                                          str(self.config)], stdout=handle, stderr=handle,
                                         env=self.env, cwd=self.config.parent,
                                          start_new_session=self.session)
        wait_for(self.healthy, 30, "the daemon to answer /healthz")
        return self

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log_text()}")
        try:
            status, _ = self.request("GET", "/healthz")
        except OSError:
            return False
        return status in (200, 503)

    def request(self, method: str, path: str, body: Any = None,
                token: str | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
