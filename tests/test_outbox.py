"""The outbox worker on a real SQLite store: retries, backoff, dead letters, fallback, order."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.clock import ManualClock, WallClock
from monitor.config.schema import ChannelConfig
from monitor.errors import DeliveryError
from monitor.metrics import Metrics
from monitor.model import Alert
from monitor.notify.channels import AppriseNotifier, Notifier, build_notifier
from monitor.notify.outbox import MAX_WAIT, POLL, OutboxWorker, backoff_ceiling
from monitor.store.sqlite import SqliteStore
from tests.test_notify import free_port, mail_url, start_smtp

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@dataclass
class FlakyNotifier:
    """Fails ``failures`` times (retryable or not), then delivers; records every attempt."""

    name: str
    failures: int = 0
    retryable: bool = True
    attempts: list[str] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, alert: Alert) -> None:
        self.attempts.append(alert.id)
        if self.failures:
            self.failures -= 1
            raise DeliveryError(f"{self.name} is down (token=abcd1234)", retryable=self.retryable)
        self.delivered.append(alert.id)
        self.arrived.set()


class TopOfRange(random.Random):
    """Always draws the top of the jitter range, exposing the backoff ceiling."""

    def random(self) -> float:
        return 1.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    db = SqliteStore(tmp_path / "state.db")
    yield db
    db.close()


def alert(alert_id: str, *channels: str, at: datetime = T0) -> Alert:
    return Alert(id=alert_id, dedup_key=f"spike|Acme|{alert_id}", rule="spike",
                 kind="volume_spike", brand="Acme", severity="warning", state="firing",
                 title="[WARNING] spike: Acme", summary=f"Acme: spike {alert_id}",
                 created_at=at, channels=channels)


def channel(name: str, **kw: object) -> ChannelConfig:
    settings: dict[str, object] = {"backoff": timedelta(seconds=1),
                                   "max_backoff": timedelta(seconds=8)}
    settings.update(kw)
    return ChannelConfig(name=name, url="console://", **settings)  # type: ignore[arg-type]


def worker(store: SqliteStore, clock: ManualClock, notifiers: list[FlakyNotifier],
           configs: list[ChannelConfig], rng: random.Random | None = None,
           metrics: Metrics | None = None) -> OutboxWorker:
    by_name: dict[str, Notifier] = {n.name: n for n in notifiers}
    return OutboxWorker(store, by_name, {c.name: c for c in configs}, clock,
                        metrics or Metrics(), rng or random.Random(7))


def delay_of_next_retry(store: SqliteStore, clock: ManualClock) -> float:
    next_due = store.next_due()
    assert next_due is not None
    return (next_due - clock.now()).total_seconds()


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_backoff_doubles_up_to_the_cap_then_delivers_exactly_once(
        store: SqliteStore) -> None:
    clock, metrics = ManualClock(T0), Metrics()
    pager = FlakyNotifier("pager", failures=5)
    w = worker(store, clock, [pager], [channel("pager")], TopOfRange(), metrics)
    store.add_alert(alert("a1", "pager"))
    delays = []
    for _ in range(5):
        assert await w.run_once() == 0
        delays.append(delay_of_next_retry(store, clock))
        assert await w.run_once() == 0  # not due yet: no extra attempt
        clock.advance(timedelta(seconds=delays[-1]))
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert await w.run_once() == 1
    clock.advance(timedelta(hours=1))
    assert await w.run_once() == 0
    assert pager.delivered == ["a1"] and pager.attempts == ["a1"] * 6
    assert store.outbox_counts() == {"sent": 1} and store.next_due() is None
    assert sample(metrics, "brandmon_deliveries_total", channel="pager", result="retry") == 5
    assert sample(metrics, "brandmon_deliveries_total", channel="pager", result="sent") == 1
    assert sample(metrics, "brandmon_outbox_items", status="pending") == 0
    assert sample(metrics, "brandmon_outbox_items", status="dead") == 0


async def test_jitter_is_full_and_bounded_by_the_growing_ceiling(store: SqliteStore) -> None:
    clock = ManualClock(T0)
    config = channel("pager", backoff=timedelta(seconds=2), max_backoff=timedelta(seconds=60))
    pager = FlakyNotifier("pager", failures=30)
    w = worker(store, clock, [pager], [config], random.Random(2024))
    store.add_alert(alert("a1", "pager"))
    ratios = []
    for failures in range(1, 31):
        await w.run_once()
        delay = delay_of_next_retry(store, clock)
        ceiling = backoff_ceiling(config, failures)
        assert ceiling == min(60.0, 2.0 * 2 ** (failures - 1))
        assert 0.0 <= delay <= ceiling + 1e-6
        ratios.append(delay / ceiling)
        clock.advance(timedelta(seconds=delay))
    # full jitter: draws spread over the whole range, not pinned to the ceiling
    assert min(ratios) < 0.3 and max(ratios) > 0.7
    await w.run_once()
    assert pager.delivered == ["a1"]


async def test_dead_after_retry_for_without_fallback(store: SqliteStore,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    clock, metrics = ManualClock(T0), Metrics()
    pager = FlakyNotifier("pager", failures=100)
    dead: list[tuple[int, str]] = []
    w = worker(store, clock, [pager], [channel("pager", retry_for=timedelta(minutes=30))],
               metrics=metrics)
    w.on_dead = lambda item, error: dead.append((item.id, error))
    store.add_alert(alert("a1", "pager"))
    with caplog.at_level(logging.WARNING, logger="monitor.notify.outbox"):
        for _ in range(6):
            await w.run_once()
            clock.advance(timedelta(minutes=10))
    # tries at 0, 10, 20 and 30 minutes: the horizon is 30 minutes after the first failure
    assert pager.attempts == ["a1"] * 4 and pager.delivered == []
    assert store.outbox_counts() == {"dead": 1} and store.next_due() is None
    assert sample(metrics, "brandmon_deliveries_total", channel="pager", result="dead") == 1
    assert sample(metrics, "brandmon_outbox_items", status="dead") == 1
    text = caplog.text
    assert "gave up delivering alert a1 to pager (4 attempts over 30m, retry_for 30m)" in text
    assert "abcd1234" not in text  # errors are masked before they are logged
    assert len(dead) == 1 and "abcd1234" not in dead[0][1]


async def test_dead_channel_falls_back_and_the_alert_is_still_delivered(
        store: SqliteStore) -> None:
    clock = ManualClock(T0)
    pager = FlakyNotifier("pager", failures=100)
    mail = FlakyNotifier("email")
    w = worker(store, clock, [pager, mail],
               [channel("pager", retry_for=timedelta(minutes=1), fallback="email"),
                channel("email")])
    store.add_alert(alert("a1", "pager"))
    assert await w.run_once() == 0
    assert mail.attempts == []  # still retrying the primary channel
    clock.advance(timedelta(minutes=1))
    assert await w.run_once() == 1  # primary dead -> fallback queued and sent in the same pass
    assert pager.attempts == ["a1", "a1"] and mail.delivered == ["a1"]
    assert store.outbox_counts() == {"dead": 1, "sent": 1}


async def test_non_retryable_error_goes_dead_at_once_and_uses_fallback(
        store: SqliteStore) -> None:
    clock, metrics = ManualClock(T0), Metrics()
    pager = FlakyNotifier("pager", failures=1, retryable=False)
    mail = FlakyNotifier("email")
    w = worker(store, clock, [pager, mail], [channel("pager", fallback="email"),
                                             channel("email")], metrics=metrics)
    store.add_alert(alert("a1", "pager"))
    assert await w.run_once() == 1
    assert pager.attempts == ["a1"] and pager.delivered == []
    assert mail.delivered == ["a1"]
    assert sample(metrics, "brandmon_deliveries_total", channel="pager", result="retry") == 0
    assert sample(metrics, "brandmon_deliveries_total", channel="pager", result="dead") == 1


async def test_fallback_is_not_sent_twice_when_the_alert_already_went_there(
        store: SqliteStore) -> None:
    clock = ManualClock(T0)
    pager = FlakyNotifier("pager", failures=1, retryable=False)
    mail = FlakyNotifier("email")
    w = worker(store, clock, [pager, mail], [channel("pager", fallback="email"),
                                             channel("email")])
    dead: list[str] = []
    w.on_dead = lambda item, error: dead.append(item.channel)
    store.add_alert(alert("a1", "email", "pager"))
    assert await w.run_once() == 1
    clock.advance(timedelta(hours=1))
    await w.run_once()
    assert mail.delivered == ["a1"]
    assert dead == []  # the fallback has the alert: no dead-letter report


async def test_unknown_channel_is_dead_with_a_clear_error(
        store: SqliteStore, caplog: pytest.LogCaptureFixture) -> None:
    clock, metrics = ManualClock(T0), Metrics()
    mail = FlakyNotifier("email")
    w = worker(store, clock, [mail], [channel("email")], metrics=metrics)
    store.add_alert(alert("a1", "sms", "email"))
    with caplog.at_level(logging.ERROR, logger="monitor.notify.outbox"):
        assert await w.run_once() == 1
    assert mail.delivered == ["a1"]
    assert store.outbox_counts() == {"dead": 1, "sent": 1}
    assert "unknown channel 'sms'" in caplog.text
    assert sample(metrics, "brandmon_deliveries_total", channel="sms", result="dead") == 1


async def test_alerts_stay_in_order_per_channel_while_others_flow(store: SqliteStore) -> None:
    clock = ManualClock(T0)
    pager = FlakyNotifier("pager", failures=2)
    mail = FlakyNotifier("email")
    w = worker(store, clock, [pager, mail], [channel("pager"), channel("email")])
    for i in range(1, 4):
        store.add_alert(alert(f"a{i}", "pager", "email", at=T0 + timedelta(seconds=i)))
    assert await w.run_once() == 3
    assert mail.delivered == ["a1", "a2", "a3"]  # a failing channel does not hold others
    assert pager.attempts == ["a1"]              # a2, a3 wait behind a1
    assert await w.run_once() == 0               # a2 and a3 are due, a1 is not: nothing moves
    assert pager.attempts == ["a1"]
    # a restarted worker (no memory) still sees a1 waiting first in the store
    restarted = worker(store, clock, [pager, mail], [channel("pager"), channel("email")])
    assert await restarted.run_once() == 0 and pager.attempts == ["a1"]
    for _ in range(3):
        clock.advance(timedelta(seconds=30))
        await restarted.run_once()
    assert pager.attempts == ["a1", "a1", "a1", "a2", "a3"]
    assert pager.delivered == ["a1", "a2", "a3"]
    assert store.outbox_counts() == {"sent": 6}


class CountingWorker(OutboxWorker):
    passes = 0

    async def run_once(self) -> int:
        self.passes += 1
        return await super().run_once()


async def test_run_loop_sleeps_until_the_retry_is_due_and_cancels_cleanly(
        store: SqliteStore) -> None:
    # real (wall) time here: the loop must wake up by itself when the retry is due.
    # a2 is due at once but waits behind a1, so the store's next_due() is in the past:
    # the loop must neither spin on it nor fall back to its slow POLL re-check.
    config = channel("pager", backoff=timedelta(milliseconds=50),
                     max_backoff=timedelta(milliseconds=50))
    pager = FlakyNotifier("pager", failures=2)
    w = CountingWorker(store, {"pager": pager}, {"pager": config}, WallClock(), Metrics(),
                       random.Random(3))
    wake = asyncio.Event()
    task = asyncio.create_task(w.run(wake))
    try:
        await asyncio.sleep(0)  # the loop starts with an empty outbox and sleeps
        now = datetime.now(UTC)
        store.add_alert(alert("a1", "pager", at=now))
        store.add_alert(alert("a2", "pager", at=now))
        wake.set()
        while pager.delivered != ["a1", "a2"]:
            pager.arrived.clear()
            await asyncio.wait_for(pager.arrived.wait(), timeout=POLL.total_seconds() / 2)
        assert pager.attempts == ["a1", "a1", "a1", "a2"]
        assert w.passes < 10
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert task.cancelled()


async def test_run_loop_wakes_on_the_event_with_a_manual_clock(store: SqliteStore) -> None:
    clock = ManualClock(T0)
    mail = FlakyNotifier("email")
    w = worker(store, clock, [mail], [channel("email")])
    wake = asyncio.Event()
    task = asyncio.create_task(w.run(wake))
    try:
        for i in (1, 2):
            mail.arrived.clear()
            store.add_alert(alert(f"a{i}", "email"))
            wake.set()
            await asyncio.wait_for(mail.arrived.wait(), timeout=5)
        assert mail.delivered == ["a1", "a2"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_email_is_delivered_once_after_the_smtp_server_comes_back(
        store: SqliteStore, tmp_path: Path) -> None:
    port = free_port()  # nothing listens here yet: connection refused
    config = ChannelConfig(name="email", url=mail_url(port), backoff=timedelta(seconds=30),
                           max_backoff=timedelta(minutes=5))
    notifier = build_notifier(config, tmp_path)
    assert isinstance(notifier, AppriseNotifier)
    # apprise spaces emails to one server 5.5 s apart (real time, in its worker thread);
    # switch that off here so the retry does not sleep
    for service in notifier.apprise:
        service.request_rate_per_sec = 0
    clock, metrics = ManualClock(T0), Metrics()
    w = OutboxWorker(store, {"email": notifier}, {"email": config}, clock, metrics,
                     random.Random(5))
    store.add_alert(alert("a1", "email"))
    assert await w.run_once() == 0
    assert store.outbox_counts() == {"pending": 1}
    controller, box = start_smtp(port)
    try:
        clock.advance(timedelta(seconds=delay_of_next_retry(store, clock)))
        assert await w.run_once() == 1
        clock.advance(timedelta(hours=1))
        assert await w.run_once() == 0
        assert len(box.messages) == 1
        assert box.messages[0]["Subject"].startswith("FIRING [WARNING] Acme: Spike a1")
    finally:
        controller.stop()
    assert store.outbox_counts() == {"sent": 1}
    assert sample(metrics, "brandmon_deliveries_total", channel="email", result="retry") == 1
    assert sample(metrics, "brandmon_deliveries_total", channel="email", result="sent") == 1


async def test_sleep_after_a_pass_follows_the_next_due_time(store: SqliteStore) -> None:
    clock = ManualClock(T0)
    pager = FlakyNotifier("pager", failures=1)
    configs = [channel("pager", backoff=timedelta(seconds=30),
                       max_backoff=timedelta(seconds=30))]
    w = worker(store, clock, [pager], configs, TopOfRange())
    await w.run_once()
    assert w.seconds_until_next() == MAX_WAIT  # idle: only the safety-net re-check
    store.add_alert(alert("a1", "pager"))
    store.add_alert(alert("a2", "pager"))
    await w.run_once()
    # a2 is overdue in the store but waits behind a1, whose retry time is known
    assert w.seconds_until_next() == 30.0
    # after a restart the store still tells when a1 is retried: no spin, no blind POLL
    restarted = worker(store, clock, [pager], configs)
    await restarted.run_once()
    assert restarted.seconds_until_next() == 30.0
    clock.advance(timedelta(seconds=30))
    assert await restarted.run_once() == 2
    # an outbox row whose alert is missing is never due for delivery: no busy loop
    store.enqueue("no-such-alert", "pager", clock.now())
    await restarted.run_once()
    assert restarted.seconds_until_next() == POLL.total_seconds()


async def test_a_critical_alert_overtakes_a_backlog_and_each_incident_keeps_its_order(
        store: SqliteStore) -> None:
    clock = ManualClock(T0)
    mail = FlakyNotifier("email")
    w = worker(store, clock, [mail], [channel("email")])
    for i in range(5):  # a backlog of warnings, one incident with its all clear
        store.add_alert(replace(alert(f"w{i}", "email"), dedup_key=f"churn|{i}"))
    store.add_alert(replace(alert("spike", "email"), dedup_key="spike"))
    store.add_alert(replace(alert("spike-clear", "email"), dedup_key="spike",
                            severity="info", state="resolved"))
    store.add_alert(replace(alert("hijack", "email"), dedup_key="outbound|1",
                            severity="critical"))
    assert await w.run_once() == 8
    assert mail.delivered[0] == "hijack"
    assert mail.delivered.index("spike") < mail.delivered.index("spike-clear")
    assert mail.delivered[1:6] == ["w0", "w1", "w2", "w3", "w4"]


async def test_a_slow_channel_never_delays_another(store: SqliteStore) -> None:
    """Lanes: the security channel's alert goes while the chat channel is stuck."""
    slow_started, release = asyncio.Event(), asyncio.Event()

    class Slow(FlakyNotifier):
        async def send(self, alert: Alert) -> None:
            slow_started.set()
            await release.wait()
            await super().send(alert)

    chat, security = Slow("chat"), FlakyNotifier("security")
    w = worker(store, WallClock(), [chat, security], [channel("chat"), channel("security")])
    wake = asyncio.Event()
    task = asyncio.create_task(w.run(wake))
    try:
        now = datetime.now(UTC)
        for i in range(3):
            store.add_alert(alert(f"c{i}", "chat", at=now))
        wake.set()
        await asyncio.wait_for(slow_started.wait(), 5)
        store.add_alert(replace(alert("s1", "security", at=now), severity="critical"))
        wake.set()
        await asyncio.wait_for(security.arrived.wait(), 5)
        assert security.delivered == ["s1"] and chat.delivered == []
        release.set()
        while len(chat.delivered) < 3:
            chat.arrived.clear()
            await asyncio.wait_for(chat.arrived.wait(), 5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
