"""A dependency-free ``sd_notify(3)`` client for running under systemd ``Type=notify``.

systemd passes the address of its notification socket in ``$NOTIFY_SOCKET``: a file
system path, or a Linux abstract-namespace name written with a leading ``@``.  Each
notification is one datagram of newline-separated ``KEY=VALUE`` assignments.

Everything here is best effort: without ``$NOTIFY_SOCKET`` (not started by systemd,
or started with another ``Type=``) every method is a no-op, and a failed send is
logged at debug level and otherwise ignored, because losing a notification must
never take the daemon down.  Sends are non-blocking, so they are safe to call from
the event loop.

The watchdog: with ``WatchdogSec=`` set, systemd exports ``$WATCHDOG_USEC`` (and
``$WATCHDOG_PID``) and restarts the service when no ``WATCHDOG=1`` arrives within that
interval.  :func:`watchdog_loop` pings at half the interval, as ``sd_watchdog_enabled(3)``
recommends, but only while the daemon reports itself healthy, so a wedged event loop
(the loop never runs) or an unhealthy daemon (the loop runs but withholds pings) is
killed and restarted by systemd.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

__all__ = ["Notifier", "watchdog_loop"]

log = logging.getLogger(__name__)


class Notifier:
    """Sends state notifications to systemd's ``$NOTIFY_SOCKET``.

    ``environ`` defaults to :data:`os.environ`; it is read once, when the notifier
    is created.  ``$WATCHDOG_PID`` is compared with the calling process's pid each
    time, so a forked child never pings on its parent's behalf.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _parse_address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_usec = env.get("WATCHDOG_USEC", "")
        self._watchdog_pid = env.get("WATCHDOG_PID", "")

    @property
    def enabled(self) -> bool:
        """True if there is a notification socket to talk to."""
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` assignments as one datagram; True if it was sent.

        Never raises: without a socket this returns False, and send errors are
        logged at debug level.
        """
        if self._address is None or not assignments:
            return False
        payload = "\n".join(assignments).encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # A full receive queue must not stall the event loop.
                sock.setblocking(False)
                sock.sendto(payload, self._address)
        except (OSError, ValueError) as exc:
            log.debug("sd_notify %r to %r failed: %s", assignments, self._address, exc)
            return False
        return True

    def ready(self) -> bool:
        """Start-up (or a reload) is complete: ``READY=1``."""
        return self.notify("READY=1")

    def reloading(self) -> bool:
        """A configuration reload has started: ``RELOADING=1`` + ``MONOTONIC_USEC``.

        systemd >= 253 (``Type=notify-reload``) matches the timestamp against the
        reload request; older versions just record the reloading state.  Send
        :meth:`ready` when the reload is done.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        """Shutdown has begun: ``STOPPING=1``."""
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        """Free-form status line shown by ``systemctl status``: ``STATUS=text``.

        Newlines become spaces, since a newline would start another assignment.
        """
        one_line = " ".join(text.splitlines())
        return self.notify(f"STATUS={one_line}")

    def watchdog(self) -> bool:
        """Keep-alive ping for ``WatchdogSec=``: ``WATCHDOG=1``."""
        return self.notify("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        """The watchdog timeout in seconds, or None if the watchdog is not ours.

        That is ``$WATCHDOG_USEC`` as seconds; ping at least every half of it.  None
        when it is unset, not a positive integer, or ``$WATCHDOG_PID`` is set and
        names another process.
        """
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        if usec <= 0:
            return None
        if self._watchdog_pid:
            try:
                pid = int(self._watchdog_pid)
            except ValueError:
                return None
            if pid != os.getpid():
                return None
        return usec / 1_000_000


async def watchdog_loop(notifier: Notifier, is_healthy: Callable[[], bool]) -> None:
    """Ping the systemd watchdog at half its interval while ``is_healthy()`` is true.

    Returns at once if the watchdog is not enabled for this process; otherwise runs
    until cancelled.  While ``is_healthy()`` returns false (or raises), pings are
    withheld, so systemd restarts the service once the interval runs out.
    """
    interval = notifier.watchdog_interval()
    if interval is None or not notifier.enabled:
        return
    period = interval / 2
    was_healthy = True
    while True:
        try:
            healthy = bool(is_healthy())
        except Exception:
            if was_healthy:
                log.exception("health check raised; treating the daemon as unhealthy")
            healthy = False
        if healthy:
            notifier.watchdog()
            if not was_healthy:
                log.info("daemon healthy again; resuming watchdog pings")
        elif was_healthy:
            log.warning("daemon unhealthy; withholding watchdog pings (systemd restarts "
                        "it after %.1f s)", interval)
        was_healthy = healthy
        await asyncio.sleep(period)


def _parse_address(value: str) -> str | None:
    """``$NOTIFY_SOCKET`` -> an AF_UNIX address, or None if unset or unsupported."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value:
        # e.g. "vsock:CID:PORT" (systemd >= 254), which this client does not speak.
        log.debug("unsupported NOTIFY_SOCKET %r; notifications disabled", value)
    return None
