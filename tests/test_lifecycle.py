"""Lifecycle: acknowledgement, escalation, quiet hours, grouping, persistence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.config.loader import load_all
from monitor.config.schema import QuietHours
from monitor.errors import ConfigError
from monitor.model import Alert
from monitor.route.lifecycle import AckError
from monitor.route.schedule import quiet_until
from tests.lifecycle_env import RULES, Env, lifecycle_project
from tests.timeline import T0, Harness


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(lifecycle_project(tmp_path))


def _alert(value: object) -> Alert:
    assert isinstance(value, Alert)
    return value


def test_ack_stops_repeats_and_escalation_only_for_that_key(env: Env) -> None:
    acked = _alert(env.fire(0, key="a"))
    _alert(env.fire(0, key="b"))
    episode = env.router.lifecycle.ack(acked.id, "alice", "on it", env.at(10))
    assert episode.acked_by == "alice" and episode.ack_comment == "on it"
    escalated = env.router.tick(env.at(30))
    assert [a.dedup_key for a in escalated] == ["spike|Acme|b"]
    assert env.fire(61, key="a") is None  # a reminder was due, but acknowledged
    assert env.suppressed("spike", "acknowledged") == 1
    reminder = _alert(env.fire(61, key="b"))
    assert reminder.title.startswith("Still firing")
    assert env.router.tick(env.at(120)) == []


def test_escalation_after_the_delay_exactly_once_per_episode(env: Env) -> None:
    first = _alert(env.fire(0))
    assert env.router.tick(env.at(29)) == []
    escalated = env.router.tick(env.at(30))
    assert len(escalated) == 1
    alert = escalated[0]
    assert alert.title == f"Escalated: {first.title}" and alert.channels == ("pager",)
    assert alert.details["escalated_from"] == first.id
    assert ("pager", alert.title, 0.0, "pending") in env.outbox()
    assert env.router.tick(env.at(31)) == [] and env.router.tick(env.at(300)) == []
    # resolved: a new episode (after the cooldown) escalates again
    assert env.fire(301, state="resolved") is not None
    second = _alert(env.fire(400))
    again = env.router.tick(env.at(430))
    assert [a.details["escalated_from"] for a in again] == [second.id]
    assert again[0].id != alert.id


def test_escalation_runs_from_engine_tick(tmp_path: Path) -> None:
    h = Harness(lifecycle_project(tmp_path))
    h.clock.set(T0)
    router = h.engine.router
    env_signal = Env.__new__(Env)  # reuse the signal builder on the engine's router
    env_signal.router, env_signal.clock = router, h.clock
    assert isinstance(env_signal.fire(0), Alert)
    assert [a.title[:10] for a in h.engine.tick(T0 + timedelta(minutes=30))] == ["Escalated:"]
    assert h.engine.tick(T0 + timedelta(minutes=45)) == []


def test_resolve_clears_the_ack(env: Env) -> None:
    first = _alert(env.fire(0))
    env.router.lifecycle.ack("spike|Acme|", "bob", "", env.at(5))
    assert env.fire(10, state="resolved") is not None
    with pytest.raises(AckError) as info:
        env.router.lifecycle.ack(first.id, "bob", "", env.at(11))
    assert info.value.status == 409
    assert _alert(env.fire(60)).state == "firing"
    assert not env.router.lifecycle.acked("spike|Acme|")
    assert len(env.router.tick(env.at(90))) == 1  # the new episode escalates


def test_ack_unknown_is_404(env: Env) -> None:
    with pytest.raises(AckError) as info:
        env.router.lifecycle.ack("nope", "x", "", env.at(0))
    assert info.value.status == 404


def test_ack_and_escalation_survive_a_store_reopen(env: Env) -> None:
    _alert(env.fire(0, key="a"))
    _alert(env.fire(0, key="b"))
    env.router.lifecycle.ack("spike|Acme|a", "carol", "", env.at(1))
    assert len(env.router.tick(env.at(30))) == 1  # b
    env.reopen()
    assert env.router.lifecycle.acked("spike|Acme|a")
    assert env.router.tick(env.at(40)) == []  # b was escalated before the restart
    assert env.fire(61, key="a") is None


# quiet hours -----------------------------------------------------------------------
def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_quiet_hours_defer_non_critical_and_critical_overrides(env: Env) -> None:
    # T0 is 01:00 in Paris (CET): the night channel is quiet until 07:00 = 06:00 UTC
    morning = _utc("2026-03-02T06:00:00").timestamp()
    warn = _alert(env.fire(0, rule="influencer", key="p1"))
    assert env.outbox() == [("night", warn.title, morning, "pending")]
    assert env.store.due(env.at(1)) == []  # not delivered at night
    spike = _alert(env.fire(2))  # the file channel has no quiet hours
    assert env.outbox()[-1] == ("file", spike.title, 0.0, "pending")
    crit = _alert(env.fire(3, rule="outbound", key="p2"))
    # the critical one goes now, and releases what waited before it (order kept)
    assert [(c, t, n) for c, t, n, _ in env.outbox() if c == "night"] == [
        ("night", warn.title, 0.0), ("night", crit.title, 0.0)]
    assert [i.alert.id for i in env.store.due(env.at(3)) if i.channel == "night"] == [
        warn.id, crit.id]


def test_outside_quiet_hours_nothing_waits(env: Env) -> None:
    env.at(12 * 60)  # 13:00 in Paris
    alert = _alert(env.fire(12 * 60, rule="influencer", key="p1"))
    assert env.outbox() == [("night", alert.title, 0.0, "pending")]


def test_quiet_until_days_and_timezone() -> None:
    weekend = QuietHours(start="22:00", end="07:00", timezone="America/New_York",
                         days=("sat",))
    saturday_night = _utc("2026-03-08T04:00:00")  # Sat 23:00 in New York
    assert quiet_until(weekend, saturday_night) == _utc("2026-03-08T11:00:00")  # DST began
    assert quiet_until(weekend, _utc("2026-03-03T04:00:00")) is None  # Monday night
    day = QuietHours(start="12:00", end="13:30")
    assert quiet_until(day, _utc("2026-03-03T12:59:00")) == _utc("2026-03-03T13:30:00")
    assert quiet_until(day, _utc("2026-03-03T13:30:00")) is None


def test_bad_quiet_hours_and_escalation_are_config_errors(tmp_path: Path) -> None:
    from tests.conftest import write_project
    from tests.lifecycle_env import CONFIG

    bad = CONFIG.replace('start: "22:00"', 'start: "25h"').replace(
        "Europe/Paris", "Mars/Olympus")
    with pytest.raises(ConfigError) as info:
        load_all(write_project(tmp_path / "a", bad, RULES))
    text = str(info.value)
    assert "quiet_hours.start" in text and "unknown time zone 'Mars/Olympus'" in text
    rules = RULES.replace("escalate_to: [pager]", "escalate_to: [nobody]")
    with pytest.raises(ConfigError) as info:
        load_all(write_project(tmp_path / "b", CONFIG, rules))
    assert "escalate_to: unknown channel 'nobody'" in str(info.value)
    rules = RULES.replace("    escalate_after: 30m\n", "")
    with pytest.raises(ConfigError) as info:
        load_all(write_project(tmp_path / "c", CONFIG, rules))
    assert "escalation needs both" in str(info.value)


# grouping --------------------------------------------------------------------------
def test_grouping_merges_two_rules_for_a_brand_into_one_updating_alert(env: Env) -> None:
    head = _alert(env.fire(0))
    update = _alert(env.fire(5, rule="negative"))
    assert update.title.startswith("Updated: [WARNING] spike: Acme (+1 related: negative)")
    assert update.details["group"] == head.id
    assert [r["rule"] for r in update.details["related"]] == ["negative"]
    # a third related signal within group_window of the last update: stored, not notified
    assert env.fire(10, rule="negative", key="x") is None
    assert env.suppressed("negative", "grouped") == 1
    quiet = [a for a in env.store.alerts() if a.details.get("group") and not a.channels]
    assert len(quiet) == 1 and len(quiet[0].details["related"]) == 2
    assert [t for _, t, _, _ in env.outbox()] == [head.title, update.title]
    # the same rule with another key is not "related": notified on its own
    own = _alert(env.fire(12, key="other"))
    assert not own.title.startswith("Updated")
    # other brands are not grouped with Acme
    assert not _alert(env.fire(15, rule="negative", brand="Globex")).title.startswith("Upd")


def test_grouping_window_ends(env: Env) -> None:
    _alert(env.fire(0))
    late = _alert(env.fire(61, rule="negative"))  # group_window 1h has passed
    assert late.title.startswith("[WARNING] negative")
