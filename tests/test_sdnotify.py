"""monitor.sdnotify against real AF_UNIX datagram sockets bound by the test."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.sdnotify import Notifier, watchdog_loop

WATCHDOG_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The test runner itself may run under systemd (a CI unit with a watchdog).
    for name in WATCHDOG_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket at a path in tmp_path, advertised as $NOTIFY_SOCKET."""
    path = tmp_path / "notify.sock"
    if len(os.fsencode(path)) >= 107:  # sun_path limit
        pytest.skip("tmp_path too long for an AF_UNIX socket path")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


@pytest.fixture
def abstract_listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket in the abstract namespace, advertised as $NOTIFY_SOCKET=@name."""
    name = f"brand-monitor-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    yield sock
    sock.close()


def drain(sock: socket.socket) -> list[bytes]:
    """Every datagram waiting on sock, without blocking."""
    received: list[bytes] = []
    sock.setblocking(False)
    try:
        while True:
            received.append(sock.recv(4096))
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(2)
    return received


def test_path_socket_exact_datagrams(listener: socket.socket) -> None:
    notifier = Notifier()
    assert notifier.enabled
    assert notifier.ready()
    assert listener.recv(4096) == b"READY=1"
    assert notifier.status("monitoring 3 brand(s)")
    assert listener.recv(4096) == b"STATUS=monitoring 3 brand(s)"
    assert notifier.watchdog()
    assert listener.recv(4096) == b"WATCHDOG=1"
    assert notifier.stopping()
    assert listener.recv(4096) == b"STOPPING=1"
    assert drain(listener) == []


def test_abstract_socket_exact_datagrams(abstract_listener: socket.socket) -> None:
    notifier = Notifier()
    assert notifier.enabled
    notifier.ready()
    notifier.status("ok")
    notifier.watchdog()
    notifier.stopping()
    got = [abstract_listener.recv(4096) for _ in range(4)]
    assert got == [b"READY=1", b"STATUS=ok", b"WATCHDOG=1", b"STOPPING=1"]


def test_status_cannot_inject_assignments(listener: socket.socket) -> None:
    Notifier().status("line one\nREADY=1\r\nline three")
    assert listener.recv(4096) == b"STATUS=line one READY=1 line three"


def test_reloading_sends_monotonic_usec(listener: socket.socket) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert Notifier().reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = listener.recv(4096).decode().split("\n")
    assert lines[0] == "RELOADING=1"
    key, value = lines[1].split("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after
    assert len(lines) == 2


def test_environ_argument_overrides_os_environ(listener: socket.socket) -> None:
    assert not Notifier(environ={}).enabled
    sockname = listener.getsockname()
    assert Notifier(environ={"NOTIFY_SOCKET": sockname}).ready()
    assert listener.recv(4096) == b"READY=1"


def test_noop_without_notify_socket() -> None:
    notifier = Notifier()
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.reloading()
    assert not notifier.status("x")
    assert not notifier.watchdog()
    assert not notifier.stopping()


@pytest.mark.parametrize("value", ["", "@", "vsock:2:1234", "relative/path.sock"])
def test_unusable_notify_socket_is_disabled(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    notifier = Notifier()
    assert not notifier.enabled
    assert not notifier.ready()


def test_send_errors_never_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens.sock"))
    caplog.set_level(logging.DEBUG, logger="monitor.sdnotify")
    notifier = Notifier()
    assert notifier.enabled
    assert not notifier.ready()
    assert not notifier.watchdog()
    assert "sd_notify" in caplog.text
    assert all(r.levelno == logging.DEBUG for r in caplog.records)


def test_full_receive_queue_does_not_block(listener: socket.socket) -> None:
    notifier = Notifier()
    started = time.monotonic()
    results = [notifier.status("x" * 4000) for _ in range(2000)]
    assert time.monotonic() - started < 5
    assert not all(results), "expected the receive queue to fill up"
    assert drain(listener)


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 30.0),
        ("30000000", "self", 30.0),
        ("20000", "self", 0.02),
        ("30000000", "other", None),
        ("30000000", "not-a-pid", None),
        ("0", None, None),
        ("-5", None, None),
        ("soon", None, None),
        (None, "self", None),
        (None, None, None),
    ],
)
def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None,
                           expected: float | None) -> None:
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is not None:
        value = {"self": str(os.getpid()), "other": str(os.getpid() + 1)}.get(pid, pid)
        monkeypatch.setenv("WATCHDOG_PID", value)
    assert Notifier().watchdog_interval() == expected


async def test_watchdog_loop_returns_when_watchdog_disabled(listener: socket.socket) -> None:
    await asyncio.wait_for(watchdog_loop(Notifier(), lambda: True), timeout=1)
    assert drain(listener) == []


async def test_watchdog_loop_returns_when_watchdog_is_another_pids(
        listener: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "20000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    await asyncio.wait_for(watchdog_loop(Notifier(), lambda: True), timeout=1)
    assert drain(listener) == []


async def test_watchdog_loop_pings_only_while_healthy(
        listener: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "20000")  # 20 ms: ping every 10 ms
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    healthy = True
    task = asyncio.create_task(watchdog_loop(Notifier(), lambda: healthy))

    await asyncio.sleep(0.1)
    pings = drain(listener)
    assert set(pings) == {b"WATCHDOG=1"}
    assert 3 <= len(pings) <= 15

    healthy = False
    await asyncio.sleep(0.02)  # let an in-flight iteration finish
    drain(listener)
    await asyncio.sleep(0.1)
    assert drain(listener) == []
    assert not task.done()

    healthy = True
    await asyncio.sleep(0.05)
    assert b"WATCHDOG=1" in drain(listener)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_watchdog_loop_treats_raising_health_check_as_unhealthy(
        listener: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "20000")

    def broken() -> bool:
        raise RuntimeError("health check exploded")

    task = asyncio.create_task(watchdog_loop(Notifier(), broken))
    await asyncio.sleep(0.08)
    assert not task.done()
    assert drain(listener) == []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
