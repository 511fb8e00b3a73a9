"""Issue 12 item 8: the outbox retries for a time horizon (default 24 h), then uses the
fallback channel, then keeps a dead letter and tells the admins; dead letters are
listed and re-sent through the CLI and the HTTP API.

Time is a ManualClock moved to each next due time: no sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from monitor.app import Daemon
from monitor.cli import main
from monitor.clock import ManualClock
from monitor.config.schema import ChannelConfig, HttpConfig
from monitor.errors import DeliveryError
from monitor.http.server import create_app
from monitor.metrics import Metrics
from monitor.model import Alert, Post
from monitor.notify.outbox import OutboxWorker
from monitor.store.sqlite import OutboxItem, SqliteStore
from tests.conftest import write_project

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
API = "api-token-0123456789abcdef"


@dataclass
class Outage:
    """A channel that is down until ``until`` (clock time), then delivers."""

    name: str
    clock: ManualClock
    until: datetime
    attempts: list[datetime] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)

    async def send(self, alert: Alert) -> None:
        self.attempts.append(self.clock.now())
        if self.clock.now() < self.until:
            raise DeliveryError(f"channel {self.name!r}: HTTP 503", retryable=True)
        self.delivered.append(alert.id)


def make_alert(alert_id: str, *channels: str, kind: str = "volume_spike") -> Alert:
    return Alert(id=alert_id, dedup_key=f"spike|Acme|{alert_id}", rule="spike", kind=kind,
                 brand="Acme", severity="warning", state="firing", title="spike: Acme",
                 summary="Acme: spike", created_at=T0, channels=channels)


async def drive(worker: OutboxWorker, store: SqliteStore, clock: ManualClock,
                until: datetime) -> int:
    """Run the worker at each next retry time up to ``until``; return the passes made."""
    for passes in range(1, 10_000):
        await worker.run_once()
        pending = [datetime.fromisoformat(row["next_attempt"])
                   for row in store.outbox_items(status="pending", limit=1000)]
        if not pending:
            return passes
        later = [t for t in pending if t > clock.now()]
        assert later, "due items that the worker did not deliver"
        if min(later) > until:
            return passes
        clock.set(min(later))
    raise AssertionError("the outbox never settled")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    db = SqliteStore(tmp_path / "state.db")
    yield db
    db.close()


def outbox(store: SqliteStore, notifiers: list[Outage], configs: list[ChannelConfig],
           clock: ManualClock, dead: list[tuple[OutboxItem, str]]) -> OutboxWorker:
    return OutboxWorker(store, {n.name: n for n in notifiers}, {c.name: c for c in configs},
                        clock, Metrics(), random.Random(12),
                        on_dead=lambda item, error: dead.append((item, error)))


async def test_an_outage_of_23_hours_is_survived_with_the_default_settings(
        store: SqliteStore) -> None:
    clock = ManualClock(T0)
    pager = Outage("pager", clock, until=T0 + timedelta(hours=23))
    dead: list[tuple[OutboxItem, str]] = []
    w = outbox(store, [pager], [ChannelConfig(name="pager", url="console://")], clock, dead)
    store.add_alert(make_alert("a1", "pager"))
    await drive(w, store, clock, T0 + timedelta(days=3))
    assert pager.delivered == ["a1"] and dead == []
    assert store.outbox_counts() == {"sent": 1}
    # delivered within max_backoff (30 min) of the channel coming back, and the attempts
    # stayed spaced out (backoff doubling up to 30 min, not a tight loop)
    assert pager.attempts[-1] - pager.until <= timedelta(minutes=30)
    assert 60 <= len(pager.attempts) <= 160


async def test_an_outage_longer_than_retry_for_goes_dead_at_the_horizon(
        store: SqliteStore, caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock(T0)
    pager = Outage("pager", clock, until=T0 + timedelta(hours=25))
    dead: list[tuple[OutboxItem, str]] = []
    w = outbox(store, [pager], [ChannelConfig(name="pager", url="console://")], clock, dead)
    store.add_alert(make_alert("a1", "pager"))
    with caplog.at_level(logging.ERROR, logger="monitor.notify.outbox"):
        await drive(w, store, clock, T0 + timedelta(days=3))
    assert pager.delivered == [] and store.outbox_counts() == {"dead": 1}
    # the last try is at the horizon exactly, 24 h after the first failure
    assert pager.attempts[0] == T0 and pager.attempts[-1] == T0 + timedelta(hours=24)
    assert all(b - a <= timedelta(minutes=30) for a, b in itertools.pairwise(pager.attempts))
    [(item, error)] = dead
    assert item.alert.id == "a1" and "HTTP 503" in error and "retry_for 1d" in error
    assert "kept as dead letter 1: brand-monitor outbox retry 1" in caplog.text


async def test_a_backlog_held_behind_a_failing_alert_counts_the_same_outage(
        store: SqliteStore) -> None:
    clock = ManualClock(T0)
    pager = Outage("pager", clock, until=T0 + timedelta(hours=30))
    dead: list[tuple[OutboxItem, str]] = []
    w = outbox(store, [pager], [ChannelConfig(name="pager", url="console://")], clock, dead)
    store.add_alert(make_alert("a1", "pager"))
    store.add_alert(make_alert("a2", "pager"))
    await drive(w, store, clock, T0 + timedelta(hours=20))
    store.add_alert(make_alert("a3", "pager"))  # queued 20 h into the outage
    await drive(w, store, clock, T0 + timedelta(days=3))
    # a1 and a2 waited 24 h on the outage; a3 only 10 h when the channel came back
    assert [item.alert.id for item, _ in dead] == ["a1", "a2"]
    assert pager.delivered == ["a3"]
    # at the horizon: a1's last try, a2's only try, a3's first try
    assert pager.attempts.count(T0 + timedelta(hours=24)) == 3


async def test_retry_for_is_set_per_channel(store: SqliteStore) -> None:
    clock = ManualClock(T0)
    sms = Outage("sms", clock, until=T0 + timedelta(hours=5))
    mail = Outage("email", clock, until=T0 + timedelta(hours=5))
    dead: list[tuple[OutboxItem, str]] = []
    configs = [ChannelConfig(name="sms", url="console://", retry_for=timedelta(hours=2)),
               ChannelConfig(name="email", url="console://")]
    w = outbox(store, [sms, mail], configs, clock, dead)
    store.add_alert(make_alert("a1", "sms", "email"))
    await drive(w, store, clock, T0 + timedelta(days=1))
    assert sms.attempts[-1] == T0 + timedelta(hours=2) and sms.delivered == []
    assert mail.delivered == ["a1"]
    assert [item.channel for item, _ in dead] == ["sms"]


async def test_past_the_horizon_the_fallback_carries_the_alert_and_no_admin_alert(
        store: SqliteStore) -> None:
    clock = ManualClock(T0)
    pager = Outage("pager", clock, until=T0 + timedelta(days=9))
    mail = Outage("email", clock, until=T0)
    dead: list[tuple[OutboxItem, str]] = []
    configs = [ChannelConfig(name="pager", url="console://", fallback="email"),
               ChannelConfig(name="email", url="console://")]
    w = outbox(store, [pager, mail], configs, clock, dead)
    store.add_alert(make_alert("a1", "pager"))
    await drive(w, store, clock, T0 + timedelta(days=3))
    assert mail.delivered == ["a1"] and mail.attempts == [T0 + timedelta(hours=24)]
    assert dead == [] and store.outbox_counts() == {"dead": 1, "sent": 1}


async def test_fallbacks_that_point_at_each_other_still_end_in_a_dead_letter(
        store: SqliteStore) -> None:
    clock = ManualClock(T0)
    a = Outage("a", clock, until=T0 + timedelta(days=9))
    b = Outage("b", clock, until=T0 + timedelta(days=9))
    dead: list[tuple[OutboxItem, str]] = []
    configs = [ChannelConfig(name="a", url="console://", fallback="b"),
               ChannelConfig(name="b", url="console://", fallback="a")]
    w = outbox(store, [a, b], configs, clock, dead)
    store.add_alert(make_alert("a1", "a"))
    await drive(w, store, clock, T0 + timedelta(days=5))
    assert store.outbox_counts() == {"dead": 2}
    assert [item.channel for item, _ in dead] == ["b"]  # a went to b; b had nowhere to go


# --- the daemon: admin alert, then `outbox list|retry` ---------------------------------

@dataclass
class Receiver:
    """A webhook receiver that answers ``status`` and counts what it accepted."""

    status: int = 503
    accepted: list[str] = field(default_factory=list)
    port: int = 0

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.status < 300:
            self.accepted.append(body["id"])
        return web.json_response({}, status=self.status)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    rec.port = int(runner.addresses[0][1])
    yield rec
    await runner.cleanup()


def daemon_project(tmp_path: Path, port: int, extra_http: str = "") -> Path:
    return write_project(tmp_path, f"""\
        state_dir: state
        rules_dir: rules
        brands:
          - name: Acme
            keywords: [acme]
        channels:
          - name: file
            url: jsonl://state/alerts.jsonl
          - name: pager
            url: webhook://127.0.0.1:{port}/hook
            backoff: 1m
            max_backoff: 1h
          - name: admin
            url: jsonl://state/admin.jsonl
        admin_channels: [admin]
        http:
          enabled: false{extra_http}
        sentiment:
          packs: []
          lexicon_dir: {{lexicons}}
        """)


async def test_a_dead_letter_alerts_the_admins_and_is_listed_and_re_sent_once(
        tmp_path: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]) -> None:
    config = daemon_project(tmp_path, receiver.port)
    daemon = Daemon(config)
    clock = ManualClock(T0)
    try:
        worker = daemon.outbox_worker(clock)
        daemon.store.add_alert(make_alert("a1", "pager"))
        await drive(worker, daemon.store, clock, T0 + timedelta(days=2))
        assert daemon.store.outbox_counts() == {"dead": 1, "sent": 1}
        admin = [json.loads(line) for line in
                 (tmp_path / "state" / "admin.jsonl").read_text().splitlines()]
        assert [a["kind"] for a in admin] == ["admin"]
        assert "not delivered to channel pager" in admin[0]["title"]
        assert "brand-monitor outbox retry 1" in admin[0]["summary"]
        assert "HTTP 503" in admin[0]["summary"]
    finally:
        daemon.store.close()

    capsys.readouterr()
    assert main(["outbox", "list", "--status", "dead", "-c", str(config)]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["id"] == 1 and row["channel"] == "pager" and row["alert_id"] == "a1"
    assert row["status"] == "dead" and "HTTP 503" in row["last_error"]
    assert row["first_failed_at"] == T0.isoformat()

    assert main(["outbox", "retry", "2", "-c", str(config)]) == 2  # the admin alert: sent
    assert "outbox item 2 is sent, not dead" in capsys.readouterr().err
    assert main(["outbox", "retry", "-c", str(config)]) == 2
    assert "needs outbox item IDs or --all-dead" in capsys.readouterr().err

    receiver.status = 200
    assert main(["outbox", "retry", "1", "-c", str(config)]) == 0
    assert json.loads(capsys.readouterr().out) == {"retried": [1]}
    daemon = Daemon(config)  # a restarted daemon picks the item up
    try:
        worker = daemon.outbox_worker(clock)
        await drive(worker, daemon.store, clock, clock.now() + timedelta(days=2))
        assert receiver.accepted == ["a1"]  # re-sent once
        assert daemon.store.outbox_counts() == {"sent": 2}
    finally:
        daemon.store.close()
    assert main(["outbox", "list", "--status", "dead", "-c", str(config)]) == 0
    assert capsys.readouterr().out == ""


async def test_dead_letter_admin_alerts_are_limited_per_channel(
        tmp_path: Path, receiver: Receiver) -> None:
    daemon = Daemon(daemon_project(tmp_path, receiver.port))
    clock = ManualClock(T0)
    try:
        worker = daemon.outbox_worker(clock)
        for i in range(5):
            daemon.store.add_alert(make_alert(f"a{i}", "pager"))
        await drive(worker, daemon.store, clock, T0 + timedelta(days=2))
        assert daemon.store.outbox_counts() == {"dead": 5, "sent": 1}
        [admin] = (tmp_path / "state" / "admin.jsonl").read_text().splitlines()
        assert "dead letter(s) on this channel" in json.loads(admin)["summary"]
    finally:
        daemon.store.close()


def test_max_attempts_is_deprecated_with_a_located_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_project(tmp_path)
    text = config.read_text().replace("    url: jsonl://state/alerts.jsonl\n",
                                      "    url: jsonl://state/alerts.jsonl\n"
                                      "    max_attempts: 3\n")
    config.write_text(text)
    assert main(["check", "-c", str(config)]) == 0
    err = capsys.readouterr().err
    assert f"{config}:11: channels[0].max_attempts: deprecated and ignored" in err


def test_retry_for_must_be_positive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_project(tmp_path)
    config.write_text(config.read_text().replace(
        "    url: jsonl://state/alerts.jsonl\n",
        "    url: jsonl://state/alerts.jsonl\n    retry_for: 0s\n"))
    assert main(["check", "-c", str(config)]) == 1
    assert f"{config}:11: channels[0].retry_for: must be longer than 0" in capsys.readouterr().out


# --- HTTP API ---------------------------------------------------------------------------

class Api:
    def __init__(self, store: SqliteStore) -> None:
        self.metrics = Metrics()
        self.store = store
        self.clock = ManualClock(T0)
        self.outbox_wake = asyncio.Event()

    async def ingest(self, posts: list[Post]) -> tuple[int, int]:
        raise AssertionError("not used")

    def health(self) -> dict[str, Any]:
        return {"status": "ok"}


@pytest.fixture
async def api_store(store: SqliteStore) -> SqliteStore:
    clock = ManualClock(T0)
    dead: list[tuple[OutboxItem, str]] = []
    pager = Outage("pager", clock, until=T0 + timedelta(days=9))
    w = outbox(store, [pager], [ChannelConfig(name="pager", url="console://",
                                              retry_for=timedelta(hours=1))], clock, dead)
    for i in (1, 2):
        store.add_alert(make_alert(f"a{i}", "pager"))
    await drive(w, store, clock, T0 + timedelta(days=1))
    store.add_alert(make_alert("a3", "pager"))  # pending
    assert store.outbox_counts() == {"dead": 2, "pending": 1}
    return store


async def _client(api: Api, token: str | None) -> TestClient[Any, Any]:
    config = HttpConfig(host="127.0.0.1", port=0, api_token=token)
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(config, api)))
    await client.start_server()
    return client


async def test_http_lists_dead_letters_and_retries_them_behind_the_api_token(
        api_store: SqliteStore) -> None:
    api = Api(api_store)
    auth = {"Authorization": f"Bearer {API}"}
    client = await _client(api, API)
    open_client = await _client(api, None)
    try:
        assert (await client.get("/outbox")).status == 401
        resp = await client.get("/outbox?status=dead", headers=auth)
        assert resp.status == 200
        assert [r["id"] for r in await resp.json()] == [2, 1]
        bad = await client.get("/outbox?status=lost", headers=auth)
        assert bad.status == 400 and "status must be one of" in (await bad.json())["error"]
        assert (await client.get("/outbox?limit=0", headers=auth)).status == 400

        assert (await open_client.post("/outbox/1/retry")).status == 403
        assert (await client.post("/outbox/1/retry")).status == 401
        assert (await client.post("/outbox/99/retry", headers=auth)).status == 404
        resp = await client.post("/outbox/3/retry", headers=auth)
        assert resp.status == 409 and "is pending, not dead" in (await resp.json())["error"]
        resp = await client.post("/outbox/1/retry", headers=auth)
        assert resp.status == 200 and await resp.json() == {"retried": [1]}
        assert api.outbox_wake.is_set()
        assert api_store.outbox_counts() == {"dead": 1, "pending": 2}

        resp = await client.post("/outbox/retry", headers=auth, json={"ids": [7]})
        assert resp.status == 404
        resp = await client.post("/outbox/retry", headers=auth, json={"all": 1})
        assert resp.status == 400
        resp = await client.post("/outbox/retry", headers=auth, json={"all_dead": True})
        assert await resp.json() == {"retried": [2]}
        assert api_store.outbox_counts() == {"pending": 3}
    finally:
        await client.close()
        await open_client.close()


def test_a_state_database_from_before_retry_horizons_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the outbox table as the first release wrote it
        db.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT "
                   "NOT NULL, channel TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', "
                   "attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL, "
                   "last_error TEXT, created_at REAL NOT NULL, sent_at REAL, "
                   "UNIQUE (alert_id, channel))")
    db.close()
    store = SqliteStore(path)
    try:
        store.add_alert(make_alert("a1", "pager"))
        [item] = store.due(T0)
        assert item.first_failed_at is None
        store.mark_failed(item.id, "down", T0 + timedelta(minutes=1), T0)
        [item] = store.due(T0 + timedelta(minutes=1))
        assert item.first_failed_at == T0 and item.attempts == 1
    finally:
        store.close()
