"""Fault test (issue 7): the SMTP server is down for a while, then back.

Alerts are raised while nothing listens on the mail port; the outbox retries with
the configured small backoff. Once a real SMTP server (aiosmtpd) listens, every
alert arrives exactly once and in creation order, and nothing is dead-lettered.
The delivery path is the product's: config loaded from YAML, the engine raising
alerts, the durable outbox and apprise's email plugin. Only apprise's own spacing
of emails (5.5 s per message) is switched off, to keep the test short.
"""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from monitor.clock import WallClock
from monitor.metrics import Metrics
from monitor.notify.channels import build_notifiers
from monitor.notify.outbox import OutboxWorker
from tests.conftest import write_project
from tests.daemon import free_port
from tests.fault_helpers import Inbox
from tests.timeline import T0, Harness, post

CONFIG = """\
state_dir: state
brands:
  - name: Acme
    handles: ["@acme"]
    keywords: ["acme"]
channels:
  - name: email
    url: mailto://bm@127.0.0.1:{port}?from=bm@example.com&to=pr@example.com&mode=insecure
    backoff: 0.2s
    max_backoff: 1s
    max_attempts: 1000
http:
  enabled: false
sentiment:
  packs: []
  lexicon_dir: {{lexicons}}
"""

RULES = """\
rules:
  - name: outbound
    signal: outbound
    severity: critical
    channels: [email]
    cooldown: 0s
"""

BAD_POSTS = ["shit happens, deal with it", "these f*cking delays lol",
             "screw you all, we are done", "what a bunch of idiots, damn it",
             "f*ck this weather"]


async def _until(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_smtp_down_then_back_delivers_all_in_order_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from apprise.plugins.email import NotifyEmail

    monkeypatch.setattr(NotifyEmail, "request_rate_per_sec", 0)
    smtp_port = free_port()
    config_path = write_project(tmp_path, textwrap.dedent(CONFIG).format(port=smtp_port),
                                RULES)
    h = Harness(config_path)
    posts = [post(i, T0 + timedelta(minutes=i), text, author="acme", kind="outbound")
             for i, text in enumerate(BAD_POSTS)]
    alerts = h.feed(posts)
    assert len(alerts) >= 4  # one alert per flagged post, in this order
    worker = OutboxWorker(h.store, build_notifiers(h.config.channels, tmp_path),
                          {c.name: c for c in h.config.channels}, WallClock(), Metrics())
    wake = asyncio.Event()
    task = asyncio.create_task(worker.run(wake))
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    try:
        # down: the oldest alert fails and is retried; the later ones wait behind it
        def attempts() -> int:
            row = h.store._db.execute("SELECT max(attempts) FROM outbox").fetchone()
            return int(row[0] or 0)

        await _until(lambda: attempts() >= 3, 20, "three failed attempts")
        assert h.store.outbox_counts() == {"pending": len(alerts)}
        smtp.start()  # back
        await _until(lambda: h.store.outbox_counts().get("sent") == len(alerts), 20,
                     "every alert to be sent")
        await asyncio.sleep(0.3)  # nothing more may arrive
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if smtp._thread is not None:
            smtp.stop()
        h.store.close()
    assert inbox.ids() == [a.id for a in alerts]
    assert all("Outbound post by @" in s for s in inbox.subjects())
