"""On-call rotations: who is on duty (handoffs, DST, overrides), routing, config errors."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.config.loader import load_config
from monitor.config.schema import Rotation, RotationOverride
from monitor.errors import ConfigError
from monitor.route.schedule import on_duty, resolve_channels
from tests.conftest import BASE_CONFIG, write_project
from tests.lifecycle_env import CONFIG as LIFECYCLE_CONFIG
from tests.lifecycle_env import RULES as LIFECYCLE_RULES
from tests.lifecycle_env import Env
from tests.timeline import T0

LONDON = Rotation(members=("alice", "bob"), handoff="mon 09:00", every=timedelta(days=7),
                  timezone="Europe/London", start_date="2024-01-01")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# who is on duty --------------------------------------------------------------------
@pytest.mark.parametrize("at, member", [
    ("2024-01-01T08:59", "bob"),     # before the first handoff: the turn before alice's
    ("2024-01-01T09:00", "alice"),   # first shift (London is on GMT = UTC in winter)
    ("2024-01-05T23:00", "alice"),
    ("2024-01-08T08:59", "alice"),
    ("2024-01-08T09:00", "bob"),
    ("2024-01-15T09:00", "alice"),
    ("2023-12-25T09:00", "bob"),     # backwards in time too
    ("2023-12-18T09:00", "alice"),
])
def test_weekly_handoffs(at: str, member: str) -> None:
    assert on_duty(LONDON, utc(at)) == member


@pytest.mark.parametrize("at, member", [
    # spring forward (Sun 2024-03-31): Monday's 09:00 BST handoff is 08:00 UTC
    ("2024-03-25T09:00", "alice"),   # shift 12 starts (GMT)
    ("2024-04-01T07:59", "alice"),
    ("2024-04-01T08:00", "bob"),     # shift 13, at 09:00 local
    # fall back (Sun 2024-10-27): Monday's 09:00 GMT handoff is 09:00 UTC again
    ("2024-10-21T07:59", "bob"),     # shift 41 (BST) ...
    ("2024-10-21T08:00", "alice"),   # ... ended at 09:00 BST
    ("2024-10-28T08:30", "alice"),   # 08:30 local: still alice
    ("2024-10-28T09:00", "bob"),
])
def test_handoff_follows_local_time_across_dst(at: str, member: str) -> None:
    assert on_duty(LONDON, utc(at)) == member


def test_daily_and_sub_day_shifts() -> None:
    daily = Rotation(members=("a", "b", "c"), handoff="09:00", every=timedelta(days=1),
                     timezone="America/New_York", start_date="2024-03-09")
    # 2024-03-10 is the US spring-forward day: 09:00 EDT = 13:00 UTC (EST would be 14:00)
    assert on_duty(daily, utc("2024-03-09T14:00")) == "a"
    assert on_duty(daily, utc("2024-03-10T12:59")) == "a"
    assert on_duty(daily, utc("2024-03-10T13:00")) == "b"
    assert on_duty(daily, utc("2024-03-11T13:00")) == "c"
    assert on_duty(daily, utc("2024-03-12T13:00")) == "a"
    halves = Rotation(members=("day", "night"), handoff="07:00", every=timedelta(hours=12),
                      start_date="2024-01-01")
    assert [on_duty(halves, utc(f"2024-01-02T{h}")) for h in ("06:59", "07:00", "18:59",
                                                               "19:00")] == [
        "night", "day", "day", "night"]


def test_start_date_is_moved_to_the_handoff_day() -> None:
    rota = Rotation(members=("alice", "bob"), handoff="mon 09:00", start_date="2024-01-03")
    assert on_duty(rota, utc("2024-01-08T09:00")) == "alice"  # first Monday on/after
    assert on_duty(rota, utc("2024-01-08T08:59")) == "bob"
    assert on_duty(rota, utc("2024-01-15T09:00")) == "bob"


def test_overrides_win_and_the_last_one_listed_wins() -> None:
    rota = Rotation(
        members=("alice", "bob"), handoff="mon 09:00", timezone="Europe/London",
        start_date="2024-01-01", overrides=(
            RotationOverride("bob", "2024-01-03T00:00", "2024-01-05T00:00"),  # local time
            RotationOverride("carol", "2024-01-04T12:00Z", "2024-01-04T13:00+00:00"),
        ))
    assert on_duty(rota, utc("2024-01-02T23:59")) == "alice"
    assert on_duty(rota, utc("2024-01-03T00:00")) == "bob"
    assert on_duty(rota, utc("2024-01-04T12:30")) == "carol"  # later override wins
    assert on_duty(rota, utc("2024-01-04T13:00")) == "bob"
    assert on_duty(rota, utc("2024-01-05T00:00")) == "alice"  # end is exclusive
    summer = Rotation(members=("alice",), timezone="Europe/London", overrides=(
        RotationOverride("bob", "2024-07-01T09:00", "2024-07-01T10:00"),))
    assert on_duty(summer, utc("2024-07-01T07:59")) == "alice"
    assert on_duty(summer, utc("2024-07-01T08:00")) == "bob"  # 09:00 BST


def test_resolve_channels_keeps_order_and_drops_duplicates() -> None:
    from monitor.config.schema import ChannelConfig

    channels = {c.name: c for c in (ChannelConfig("alice", "console://"),
                                    ChannelConfig("bob", "console://"),
                                    ChannelConfig("file", "console://"),
                                    ChannelConfig("on-call", rotation=LONDON))}
    at = utc("2024-01-02T10:00")
    assert resolve_channels(("file", "on-call", "alice"), channels, at) == (
        ("file", "alice"), {"on-call": "alice"})
    assert resolve_channels(("file",), channels, at) == (("file",), {})
    assert resolve_channels(("on-call", "bob"), channels, at + timedelta(days=7)) == (
        ("bob",), {"on-call": "bob"})


# routing -------------------------------------------------------------------------
ROTA_CONFIG = LIFECYCLE_CONFIG.replace("""http:
  enabled: false
""", """  - name: alice-sms
    url: jsonl://state/alice.jsonl
  - name: bob-sms
    url: jsonl://state/bob.jsonl
    quiet_hours: {{start: "00:00", end: "23:59"}}
  - name: on-call
    rotation:
      timezone: Europe/London
      handoff: "mon 09:00"
      every: 7d
      start_date: "2026-03-02"
      members: [alice-sms, bob-sms]
      overrides:
        - {{member: alice-sms, start: "2026-03-13T00:00", end: "2026-03-14T00:00"}}
http:
  enabled: false
""")
ROTA_RULES = (LIFECYCLE_RULES.replace("escalate_to: [pager]", "escalate_to: [on-call]")
              .replace("""    channels: [file]
    cooldown: 30m""", """    channels: [file, on-call]
    cooldown: 30m"""))


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(write_project(tmp_path, ROTA_CONFIG, ROTA_RULES))


def test_alert_goes_to_the_member_on_duty(env: Env) -> None:
    assert (T0.weekday(), T0.hour) == (0, 0)  # a Monday, before the 09:00 handoff
    alert = env.fire(9 * 60)  # 09:00 UTC = 09:00 GMT: alice's first shift
    assert alert is not None
    assert alert.channels == ("file", "alice-sms")  # type: ignore[attr-defined]
    assert alert.details["rotation"] == {"on-call": "alice-sms"}  # type: ignore[attr-defined]
    [stored] = env.store.alerts()
    assert stored.channels == ("file", "alice-sms")
    assert [(c, s) for c, _, _, s in env.outbox()] == [("file", "pending"),
                                                        ("alice-sms", "pending")]


def test_escalation_and_quiet_hours_use_the_member_on_duty(env: Env) -> None:
    week = 7 * 24 * 60
    assert env.fire(week + 9 * 60) is not None  # bob's week: bob-sms is always quiet
    rows = env.outbox()
    assert [r[0] for r in rows] == ["file", "bob-sms"]
    assert rows[1][2] > env.at(week + 9 * 60).timestamp()  # deferred by bob's quiet hours
    [escalated] = env.router.tick(env.at(week + 9 * 60 + 31))
    assert escalated.channels == ("bob-sms",)
    assert escalated.details["rotation"] == {"on-call": "bob-sms"}



def test_escalation_off_the_rota_drops_the_original_rotation_detail(tmp_path: Path) -> None:
    rules = ROTA_RULES.replace("escalate_to: [on-call]", "escalate_to: [pager]")
    env = Env(write_project(tmp_path, ROTA_CONFIG, rules))
    first = env.fire(9 * 60)
    assert first is not None and first.details["rotation"]  # type: ignore[attr-defined]
    [escalated] = env.router.tick(env.at(9 * 60 + 31))
    assert escalated.channels == ("pager",) and "rotation" not in escalated.details


def test_an_alert_stored_again_after_a_handoff_keeps_its_member(env: Env) -> None:
    """A restart re-creates an alert (same id) after the handoff: nobody new is paged."""
    alert = env.fire(9 * 60)
    assert alert is not None
    routed = dataclasses.replace(alert, channels=("file", "on-call"))  # as the router makes it
    again = env.router.lifecycle.store_alert(routed, env.at(7 * 24 * 60 + 9 * 60 + 1))
    assert again.channels == ("file", "alice-sms")
    assert [c for c, _, _, _ in env.outbox()] == ["file", "alice-sms"]


def test_override_routes_to_the_substitute(env: Env) -> None:
    friday = 11 * 24 * 60 + 10 * 60  # Fri 2026-03-13 10:00, bob's week, alice covers
    alert = env.fire(friday)
    assert alert is not None
    assert alert.channels == ("file", "alice-sms")  # type: ignore[attr-defined]


async def test_daemon_admin_alerts_and_notifiers_skip_the_virtual_channel(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.app import Daemon

    monkeypatch.chdir(tmp_path)
    config = BASE_CONFIG.replace("""http:
  enabled: false
""", """  - name: alice-sms
    url: jsonl://state/alice.jsonl
  - name: on-call
    rotation: {{members: [alice-sms], handoff: "09:00", every: 1d}}
admin_channels: [on-call, file]
http:
  enabled: false
""")
    daemon = Daemon(write_project(tmp_path, config=config))
    try:
        daemon.admin_alert("x", "Something broke", "details")
        [stored] = daemon.store.alerts(since=daemon.clock.now() - timedelta(days=1))
        assert stored.channels == ("alice-sms", "file")
        assert stored.details == {"rotation": {"on-call": "alice-sms"}}
    finally:
        daemon.store.close()


# config errors --------------------------------------------------------------------
GOOD_CHANNELS = """\
brands:
  - name: Acme
    keywords: [acme]
channels:
  - name: alice-sms
    url: console://
  - name: day
    rotation: {members: [alice-sms]}
"""


@pytest.mark.parametrize("extra, expected", [
    ("  - name: r\n    rotation:\n      members: []\n",
     ["11: channels[2].rotation.members: name at least one member channel"]),
    ("  - name: r\n    rotation:\n      members: [alice-sms]\n      timezone: Mars/Olympus\n",
     ["12: channels[2].rotation.timezone: unknown time zone 'Mars/Olympus'"]),
    ("  - name: r\n    rotation:\n      members: [alice-sms]\n      handoff: '25:00'\n",
     ["12: channels[2].rotation.handoff: expected 'DAY HH:MM' (e.g. 'mon 09:00') or "
      "'HH:MM', got '25:00'"]),
    ("  - name: r\n    rotation:\n      members: [alice-sms]\n      every: 0s\n",
     ["12: channels[2].rotation.every: a shift must last at least 1m"]),
    ("  - name: r\n    rotation:\n      members: [alice-sms]\n      start_date: soon\n",
     ["12: channels[2].rotation.start_date: expected a date as YYYY-MM-DD, got 'soon'"]),
    ("  - name: r\n    rotation:\n      members: [alice-sms, alice-sms]\n",
     ["11: channels[2].rotation.members: a member is listed twice"]),
    ("  - name: r\n    rotation:\n      members: [ghost, day]\n",
     ["11: channels[2].rotation.members[0]: unknown channel 'ghost'",
      "11: channels[2].rotation.members[1]: 'day' is itself a rotation: name real channels"]),
    ("  - name: r\n    rotation:\n      members: [alice-sms]\n      overrides:\n"
     "        - member: ghost\n          start: '2024-01-01T00:00'\n"
     "          end: '2024-01-02T00:00'\n",
     ["13: channels[2].rotation.overrides[0].member: unknown channel 'ghost'"]),
    ("  - name: r\n    rotation:\n      members: [alice-sms]\n      overrides:\n"
     "        - {member: alice-sms, start: '2024-01-02', end: '2024-01-01'}\n",
     ["13: channels[2].rotation.overrides[0].end: must be after start"]),
    ("  - name: r\n    rotation:\n      members: [alice-sms]\n      overrides:\n"
     "        - {member: alice-sms, start: 'xmas', end: '2024-01-01'}\n",
     ["13: channels[2].rotation.overrides[0].start: not an ISO-8601 time: 'xmas'"]),
    ("  - name: r\n    url: console://\n    quiet_hours: {start: '22:00', end: '07:00'}\n"
     "    rotation: {members: [alice-sms]}\n",
     ["10: channels[2].url: not allowed on a rotation channel: set it on the member channels",
      "11: channels[2].quiet_hours: not allowed on a rotation channel: set it on the member "
      "channels"]),
    ("  - name: r\n    max_attempts: 3\n",
     ["9: channels[2].url: required key is missing (or give 'rotation' for an on-call rota)"]),
    ("  - name: r\n    url: console://\n    fallback: day\n",
     ["11: channels[2].fallback: 'day' is a rotation: name a real channel"]),
])
def test_rotation_config_errors(tmp_path: Path, extra: str, expected: list[str]) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(GOOD_CHANNELS + extra)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [str(p).removeprefix(f"{path}:") for p in info.value.problems] == expected


def test_valid_rotation_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(GOOD_CHANNELS + """\
  - name: on-call
    rotation:
      timezone: Europe/London
      handoff: "mon 09:00"
      every: 7d
      members: [alice-sms]
      overrides: [{member: alice-sms, start: "2024-12-24T00:00", end: "2024-12-27"}]
""")
    config = load_config(path)
    channel = config.channel("on-call")
    assert channel is not None and channel.rotation is not None and channel.url == ""
    assert channel.rotation.every == timedelta(days=7)
    assert channel.rotation.overrides[0].member == "alice-sms"
