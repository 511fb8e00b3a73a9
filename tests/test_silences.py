"""Silences: matchers, recorded-not-notified, early expiry, persistence, validation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from monitor.model import Alert
from monitor.route.silences import Silence
from tests.lifecycle_env import Env, lifecycle_project
from tests.timeline import T0


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(lifecycle_project(tmp_path))


def silence(env: Env, minutes: float, **body: object) -> Silence:
    body.setdefault("for", "1h")
    created = Silence.from_json(body, env.at(minutes))
    return env.router.lifecycle.silences.add(created)


def test_silenced_signal_is_recorded_not_notified_then_expires(env: Env) -> None:
    s = silence(env, 0, brand="Ac*", rule="spike", created_by="ops", comment="known")
    assert env.fire(1) is None
    assert env.suppressed("spike", "silenced") == 1
    [stored] = env.store.alerts()
    assert stored.details["silenced"] == s.id and stored.channels == ()
    assert env.outbox() == []
    assert env.fire(2) is None  # still silenced: no second record
    assert len(env.store.alerts()) == 1
    assert env.router.lifecycle.history(state="silenced")[0]["id"] == stored.id
    assert env.router.tick(env.at(40)) == []  # a silenced key is not escalated
    assert env.router.lifecycle.silences.expire(s.id, env.at(20))
    assert not env.router.lifecycle.silences.expire(s.id, env.at(21))  # already ended
    alert = env.fire(21)
    assert isinstance(alert, Alert) and alert.channels == ("file",)
    assert [c for c, _, _, _ in env.outbox()] == ["file"]


def test_silence_ends_on_time_and_matchers_must_all_match(env: Env) -> None:
    silence(env, 0, rule="spike", severity="critical")  # spike is a warning: no match
    assert isinstance(env.fire(1, key="a"), Alert)
    silence(env, 0, kind="volume_*", brand="Acme")
    assert env.fire(1, key="b") is None
    assert isinstance(env.fire(1, rule="negative"), Alert)  # another kind
    assert env.fire(60, key="b") is None  # made at 1 min (the clock never goes back)
    assert isinstance(env.fire(61, key="b"), Alert)  # the silence ended


def test_silence_while_firing_stops_reminders(env: Env) -> None:
    assert isinstance(env.fire(0), Alert)
    silence(env, 10, rule="spike", **{"for": "3h"})
    assert env.fire(61) is None
    assert env.suppressed("spike", "silenced") == 1


def test_silences_survive_a_store_reopen(env: Env) -> None:
    s = silence(env, 0, brand="Acme", comment="maintenance")
    env.reopen()
    [again] = env.router.lifecycle.silences.entries(env.at(1))
    assert again == s
    assert env.fire(2) is None
    assert env.router.lifecycle.silences.entries(env.at(61)) == []
    assert env.router.lifecycle.silences.entries(env.at(61), expired=True) == [s]


@pytest.mark.parametrize("body, message", [
    ({"for": "1h"}, "at least one matcher"),
    ({"rule": "x"}, "exactly one of 'for'"),
    ({"rule": "x", "for": "1h", "ends_at": "2026-03-02T02:00:00Z"}, "exactly one of"),
    ({"rule": "x", "ends_at": "2026-03-01T00:00:00Z"}, "must end after it starts"),
    ({"rule": "", "for": "1h"}, "rule: must be a non-empty string"),
    ({"rule": "x", "for": "1h", "colour": "red"}, "unknown field(s): colour"),
    ({"rule": "x", "for": "soon"}, "duration"),
    ([], "must be a JSON object"),
])
def test_silence_validation(body: object, message: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        Silence.from_json(body, T0)
    assert message in str(info.value)


def test_silence_json_round_trip() -> None:
    s = Silence.from_json({"brand": "Acme", "for": "2h", "created_by": "ann"}, T0)
    assert s.ends_at - s.starts_at == timedelta(hours=2)
    assert s.to_json(T0)["active"] is True and s.to_json(T0)["brand"] == "Acme"


def _ended(env: Env, ends_days_ago: float, now_minutes: float = 0, **body: object) -> Silence:
    """A silence that ended ``ends_days_ago`` days before ``env.at(now_minutes)``."""
    now = env.at(now_minutes)
    ends = now - timedelta(days=ends_days_ago)
    created = Silence.from_json({"rule": "spike", **body,
                                 "starts_at": (ends - timedelta(hours=1)).isoformat(),
                                 "ends_at": ends.isoformat()}, ends - timedelta(hours=1))
    return env.router.lifecycle.silences.add(created)


def test_prune_keeps_active_and_recently_expired_silences(env: Env) -> None:
    from monitor.route.silences import SILENCE_RETENTION

    silences = env.router.lifecycle.silences
    old = _ended(env, 31)
    just_old = _ended(env, SILENCE_RETENTION.days + 0.01)
    recent = _ended(env, 29)
    expired_today = _ended(env, 0.01)
    # active for a long time: started 60 days ago, ends in a day
    long_running = silences.add(Silence.from_json(
        {"brand": "Acme", "starts_at": (env.at(0) - timedelta(days=60)).isoformat(),
         "for": "61d"}, env.at(0) - timedelta(days=60)))
    future = silences.add(Silence.from_json(
        {"kind": "spike", "starts_at": (env.at(0) + timedelta(days=5)).isoformat(),
         "for": "1h"}, env.at(0)))
    assert silences.prune(SILENCE_RETENTION, env.at(0)) == 2
    left = {s.id for s in silences.entries(env.at(0), expired=True)}
    assert left == {recent.id, expired_today.id, long_running.id, future.id}
    assert old.id not in left and just_old.id not in left
    assert silences.prune(SILENCE_RETENTION, env.at(0)) == 0  # idempotent
    # the silence that was active then pruned later once it has been over for 30 days
    assert silences.prune(SILENCE_RETENTION, env.at(0) + timedelta(days=32)) == 3
    assert [s.id for s in silences.entries(env.at(0), expired=True)] == [future.id]


async def test_daemon_prune_removes_old_silences(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.app import Daemon
    from monitor.route.silences import SILENCE_RETENTION
    from tests.conftest import BASE_CONFIG, write_project

    monkeypatch.chdir(tmp_path)
    daemon = Daemon(write_project(tmp_path, config=BASE_CONFIG))
    try:
        silences = daemon.engine.router.lifecycle.silences
        now = daemon.clock.now()

        def add(ends: timedelta, **matchers: str) -> Silence:
            end = now - ends
            return silences.add(Silence.from_json(
                {**matchers, "starts_at": (end - timedelta(hours=2)).isoformat(),
                 "ends_at": end.isoformat()}, end - timedelta(hours=2)))

        old = add(SILENCE_RETENTION + timedelta(hours=1), rule="a")
        recent = add(SILENCE_RETENTION - timedelta(hours=1), rule="b")
        active = add(-timedelta(hours=1), rule="c")  # ends in an hour
        await daemon.prune()
        left = {s.id for s in silences.entries(now, expired=True)}
        assert left == {recent.id, active.id}
        assert old.id not in left
    finally:
        daemon.store.close()
