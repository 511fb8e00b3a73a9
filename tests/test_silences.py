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
