"""Collection gaps: a silent brand pages the admins once; recovery is not a spike."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from monitor.source_watch import OutageWatch
from monitor.sources.base import SourceHealth
from tests.conftest import write_project
from tests.timeline import T0, Harness, post, steady

RULES = """\
rules:
  - name: spike
    signal: volume_spike
    channels: [file]
    params: {bucket: 5m, min_count: 10, min_authors: 5}
  - name: silence
    signal: source_silence
    channels: [file]
    cooldown: 0s
    params: {max_silence: 30m, min_expected: 3}
"""


def test_outage_fires_silence_once_resolves_and_recovery_is_no_spike(tmp_path: Path) -> None:
    h = Harness(write_project(tmp_path, rules=RULES))
    assert h.feed(steady(T0, 48, 8)) == []
    outage = h.clock.now()
    during = h.advance(timedelta(hours=3))  # the daemon keeps ticking, nothing arrives
    assert [(a.rule, a.state) for a in during] == [("silence", "firing")]
    fired = during[0]
    assert timedelta(minutes=30) <= fired.created_at - outage <= timedelta(minutes=31)
    assert "collection problem" in fired.summary and "not a brand event" in fired.summary
    assert fired.details["expected"] >= 3 and fired.details["observed"] == 0
    resumed = steady(outage + timedelta(hours=3), 6, 8, first_id=1_000_000, seed=7)
    after = h.feed(resumed)
    assert [(a.rule, a.state) for a in after] == [("silence", "resolved")]
    assert after[0].created_at == resumed[0].created_at
    assert [a for a in h.alerts if a.rule == "spike"] == []


def test_an_outage_shorter_than_max_gap_is_not_learned_as_zeros(tmp_path: Path) -> None:
    h = Harness(write_project(tmp_path, rules=RULES))
    h.feed(steady(T0, 48, 8))
    model = h.engine.detectors[("spike", "Acme")].model  # type: ignore[attr-defined]
    learned = model._base.n_learned
    h.advance(timedelta(minutes=45))  # 9 buckets, inside max_gap (1h): the daemon ticks on
    # the first empty buckets are plausible silence and learned; once ~9 mentions were
    # expected and none came (P < 1e-4) the rest is a gap: not learned
    assert 1 <= model._base.n_learned - learned <= 3


def test_a_quiet_brand_keeps_learning_its_empty_buckets(tmp_path: Path) -> None:
    h = Harness(write_project(tmp_path, rules=RULES))
    # one mention every 20 minutes for two days: ~0.25 per 5-minute bucket
    h.feed([post(i, T0 + timedelta(minutes=20 * i + 1), "@acme hi") for i in range(144)])
    model = h.engine.detectors[("spike", "Acme")].model  # type: ignore[attr-defined]
    learned = model._base.n_learned
    h.advance(timedelta(minutes=55))  # 11 empty buckets: unremarkable for this brand
    assert model._base.n_learned - learned >= 10


def test_gap_seen_only_when_posts_resume_is_not_a_spike(tmp_path: Path) -> None:
    """No tick during the gap (a longer gap than max_gap): missing data, not zeros."""
    h = Harness(write_project(tmp_path, rules=RULES))
    h.feed(steady(T0, 48, 8))
    after = h.feed(steady(T0 + timedelta(hours=51), 6, 8, first_id=1_000_000, seed=3))
    assert [(a.rule, a.state) for a in after] == [("silence", "firing"), ("silence", "resolved")]


def test_quiet_brand_at_night_does_not_page(tmp_path: Path) -> None:
    h = Harness(write_project(tmp_path, rules=RULES))
    posts = []
    for day in range(3):  # busy days 08-20h, a mention every 2 hours at night
        start = T0 + timedelta(days=day)
        posts += steady(start + timedelta(hours=8), 12, 8, first_id=day * 100_000, seed=day)
        posts += [post(day * 100_000 + 90_000 + i, start + timedelta(hours=20 + 2 * i))
                  for i in range(6)]
    h.feed(sorted(posts, key=lambda p: p.created_at))
    # the third night: silences of 2 h where ~1 mention is expected stay quiet
    assert [a for a in h.alerts if a.rule == "silence"] == []
    # a silent working morning on day four does page
    h.clock.set(T0 + timedelta(days=3, hours=8))
    h.engine.tick()
    alerts = h.advance(timedelta(hours=2))
    assert [(a.rule, a.state) for a in alerts] == [("silence", "firing")]


def test_restart_measures_silence_from_the_restart(tmp_path: Path) -> None:
    path = write_project(tmp_path, rules=RULES)
    h = Harness(path)
    h.feed(steady(T0, 30, 8))
    h.store.close()
    again = Harness(path)  # the same database: warm state, new process
    again.clock.set(T0 + timedelta(hours=34))
    assert again.advance(timedelta(minutes=29)) == []
    assert [a.state for a in again.advance(timedelta(minutes=3))] == ["firing"]


@dataclass
class FakeSource:
    name: str
    health: SourceHealth = field(default_factory=SourceHealth)


def test_source_in_error_for_two_minutes_pages_admins_once_with_all_clear() -> None:
    sent: list[tuple[str, str, str]] = []
    watch = OutageWatch(lambda key, title, summary: sent.append((key, title, summary)))
    src, other = FakeSource("x"), FakeSource("rss")
    src.health.state = other.health.state = "ok"

    def at(minutes: float) -> datetime:
        return T0 + timedelta(minutes=minutes)

    watch.check([src, other], at(0))
    src.health.state, src.health.last_error = "error", "401 client-not-enrolled"
    for minute in (1, 2, 3):  # down since minute 1: not yet more than 2 minutes
        watch.check([src, other], at(minute))
    assert sent == []
    watch.check([src, other], at(3.5))
    assert len(sent) == 1
    key, title, summary = sent[0]
    assert key == f"source-outage|x|{at(1).isoformat()}"
    assert "'x'" in title and "401 client-not-enrolled" in summary
    for minute in range(4, 60):
        watch.check([src, other], at(minute))
    assert len(sent) == 1
    src.health.state = "ok"
    watch.check([src, other], at(60))
    watch.check([src, other], at(61))
    assert [s[1] for s in sent] == ["Source 'x' is down", "All clear: source 'x' is back"]
    # a short blip: no alert at all
    src.health.state = "error"
    watch.check([src], at(70))
    watch.check([src], at(71.5))
    src.health.state = "ok"
    watch.check([src], at(72))
    assert len(sent) == 2


async def test_daemon_wires_source_outages_to_admin_alerts(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.app import Daemon
    from tests.conftest import BASE_CONFIG

    monkeypatch.chdir(tmp_path)
    daemon = Daemon(write_project(tmp_path, config=BASE_CONFIG + "admin_channels: [file]\n"))
    try:
        source = FakeSource("x")
        source.health.state, source.health.last_error = "error", "connection refused"
        now = daemon.clock.now()
        for minute in (0, 1, 3, 4):
            daemon.outages.check([source], now + timedelta(minutes=minute))
        source.health.state = "ok"
        daemon.outages.check([source], now + timedelta(minutes=5))
        stored = daemon.store.alerts(since=now - timedelta(days=1))
        assert sorted(a.title for a in stored) == ["All clear: source 'x' is back",
                                                    "Source 'x' is down"]
        assert all(a.channels == ("file",) and a.kind == "admin" for a in stored)
    finally:
        daemon.store.close()
