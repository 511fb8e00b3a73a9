"""Alert emails carry a PNG chart of a volume spike against its expected band: sent
through apprise's email plugin to a real SMTP server (aiosmtpd), decoded and checked
pixel by pixel; other channels and other alerts get no attachment."""

from __future__ import annotations

import struct
import textwrap
import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.controller import Controller

from monitor.clock import WallClock
from monitor.metrics import Metrics
from monitor.notify.channels import build_notifiers
from monitor.notify.chartimg import BAND, BAR, SPIKE, AlertCharts, spike_chart
from monitor.notify.outbox import OutboxWorker
from tests.conftest import write_project
from tests.daemon import free_port, wait_for_async
from tests.fault_helpers import Inbox
from tests.timeline import T0, Harness, post, steady

CONFIG = """\
state_dir: state
brands:
  - name: Acme
    handles: ["@acme"]
    keywords: ["acme"]
channels:
  - name: email
    url: mailto://bm@127.0.0.1:{smtp}?from=bm@example.com&to=pr@example.com&mode=insecure
  - name: hook
    url: json://127.0.0.1:{hook}/hook
http:
  enabled: false
sentiment:
  packs: []
  lexicon_dir: {{lexicons}}
"""

RULES = """\
rules:
  - name: spike
    signal: volume_spike
    channels: [email, hook]
    notify_resolved: false
    params: {bucket: 5m, min_count: 10, min_authors: 5}
  - name: vip
    signal: influencer
    channels: [email]
    cooldown: 0s
    params: {min_followers: 100000}
"""


def decode_png(data: bytes) -> tuple[int, int, Counter[tuple[int, int, int]]]:
    """Width, height and a colour histogram of an 8-bit RGB PNG (filter 0 rows)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert (depth, colour) == (8, 2)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * 3 + 1
    colours: Counter[tuple[int, int, int]] = Counter()
    for y in range(height):
        row = raw[y * stride:(y + 1) * stride]
        assert row[0] == 0
        for x in range(width):
            colours[tuple(row[1 + 3 * x:4 + 3 * x])] += 1  # type: ignore[index]
    return width, height, colours


def test_the_chart_shows_history_band_and_the_spike() -> None:
    start = datetime(2026, 3, 2, 12, tzinfo=UTC)
    rows = [(start + timedelta(minutes=5 * i), 8.0 + i % 3, 9.0) for i in range(72)]
    png = spike_chart(rows, (start + timedelta(hours=6), 120.0, 9.0))
    width, height, colours = decode_png(png)
    assert (width, height) == (480, 180)
    assert colours[SPIKE] > 200  # the spike's bar, far above the others
    assert colours[BAR] > 500 and colours[BAND] > 500
    assert len(png) < 20_000


async def test_email_alerts_attach_the_chart_and_other_channels_do_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from apprise.plugins.email import NotifyEmail

    monkeypatch.setattr(NotifyEmail, "request_rate_per_sec", 0)
    hooked: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        hooked.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1", port=free_port())
    await server.start_server()
    smtp_port = free_port()
    config = write_project(tmp_path, textwrap.dedent(CONFIG).format(smtp=smtp_port,
                                                                    hook=server.port), RULES)
    h = Harness(config)
    h.feed(steady(T0, 3.0, 10))
    h.feed(steady(T0 + timedelta(hours=3), 4 / 60, 150, first_id=9000, seed=9,
                  texts=["@acme the app is down", "acme charged me twice"]))
    h.feed([post(20_000, T0 + timedelta(hours=3, minutes=6), "@acme awful, terrible service",
                 author="star", followers=900_000)])
    h.engine.checkpoint(force=True)
    assert [a.rule for a in h.alerts] == ["spike", "vip"]
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    try:
        notifiers = build_notifiers(h.config.channels, tmp_path, AlertCharts(h.store))
        worker = OutboxWorker(h.store, notifiers, {c.name: c for c in h.config.channels},
                              WallClock(), Metrics())
        await worker.run_once()
        await wait_for_async(lambda: len(inbox.messages) == 2 and hooked, 20,
                             "2 emails and a hook")
    finally:
        smtp.stop()
        await server.close()
    spike_mail, vip_mail = inbox.messages
    images = [p for p in spike_mail.walk() if p.get_content_type() == "image/png"]
    assert len(images) == 1 and images[0].get_filename() == "spike-Acme.png"
    width, height, colours = decode_png(images[0].get_payload(decode=True))
    assert (width, height) == (480, 180)
    assert colours[SPIKE] > 100 and colours[BAR] > 100 and colours[BAND] > 100
    assert not [p for p in vip_mail.walk() if p.get_content_type() == "image/png"]
    assert "followers, posted negatively about Acme" in str(vip_mail["Subject"])  # the vip rule
    assert not hooked[0].get("attachments")  # json:// is not an email channel


async def test_a_chart_that_cannot_be_drawn_never_stops_the_email(tmp_path: Path) -> None:
    from monitor.notify.channels import AppriseNotifier
    from tests.timeline import T0 as t0

    def broken(alert: Any) -> bytes | None:
        raise RuntimeError("no chart today")

    url = "mailto://bm@127.0.0.1:2525?from=bm@example.com&to=pr@example.com&mode=insecure"
    notifier = AppriseNotifier("email", url, charts=broken)
    from monitor.model import Alert

    alert = Alert(id="a1", dedup_key="k", rule="spike", kind="volume_spike", brand="Acme",
                  severity="warning", state="firing", title="t", summary="s", created_at=t0,
                  channels=("email",), details={"window": {"start": t0.isoformat()},
                                                "observed": 5})
    assert notifier._chart(alert) is None
    assert AppriseNotifier("hook", "json://127.0.0.1:9/hook", charts=broken).charts is None
