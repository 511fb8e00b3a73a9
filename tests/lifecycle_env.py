"""A project with escalation, grouping and quiet hours, for the lifecycle tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from monitor.clock import ManualClock
from monitor.config.loader import load_all
from monitor.engine import state_path
from monitor.metrics import Metrics
from monitor.model import Signal
from monitor.route.router import Router
from monitor.store.sqlite import SqliteStore
from tests.conftest import BASE_CONFIG, write_project
from tests.timeline import T0

CONFIG = BASE_CONFIG.replace("""http:
  enabled: false
""", """  - name: pager
    url: jsonl://state/pager.jsonl
  - name: night
    url: jsonl://state/night.jsonl
    quiet_hours:
      start: "22:00"
      end: "07:00"
      timezone: Europe/Paris
http:
  enabled: false
""")

RULES = """\
rules:
  - name: spike
    signal: volume_spike
    channels: [file]
    cooldown: 30m
    repeat_interval: 1h
    escalate_after: 30m
    escalate_to: [pager]
    group_window: 1h
    params: {bucket: 5m, min_count: 10, min_authors: 5}
  - name: negative
    signal: negative_surge
    channels: [file]
    group_window: 1h
    params: {window: 1h, min_count: 20, min_negative: 10, min_authors: 5}
  - name: influencer
    signal: influencer
    channels: [night]
    cooldown: 0s
    params: {min_followers: 10000}
  - name: outbound
    signal: outbound
    severity: critical
    channels: [night]
    cooldown: 0s
"""


def lifecycle_project(tmp: Path) -> Path:
    return write_project(tmp, CONFIG, RULES)


class Env:
    """Router + real SqliteStore + ManualClock over the lifecycle project."""

    def __init__(self, config_path: Path) -> None:
        self.config, self.rules = load_all(config_path)
        self.db = state_path(self.config)
        self.clock = ManualClock(T0)
        self.open()

    def open(self) -> None:
        self.store = SqliteStore(self.db)
        self.metrics = Metrics()
        self.router = Router(self.rules, self.store, self.metrics, self.config.channels)

    def reopen(self) -> None:
        self.store.close()
        self.open()

    def at(self, minutes: float) -> datetime:
        self.clock.set(T0 + timedelta(minutes=minutes))
        return self.clock.now()

    def fire(self, minutes: float, rule: str = "spike", key: str = "",
             state: str = "firing", brand: str = "Acme") -> object:
        kinds = {"spike": "volume_spike", "negative": "negative_surge",
                 "influencer": "influencer", "outbound": "outbound"}
        now = self.at(minutes)
        signal = Signal(rule=rule, kind=kinds[rule], brand=brand, at=now,
                        state=state,  # type: ignore[arg-type]
                        summary=f"{rule} {state}", key=key)
        return self.router.route(signal, now)

    def outbox(self) -> list[tuple[str, str, float, str]]:
        """(channel, title, next_attempt, status) of every outbox row, in order."""
        rows = self.store._rows(  # the test looks at raw rows
            "SELECT o.channel, a.title, o.next_attempt, o.status FROM outbox o "
            "JOIN alerts a ON a.id = o.alert_id ORDER BY o.id")
        return [(r[0], r[1], float(r[2]), r[3]) for r in rows]

    def suppressed(self, rule: str, reason: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "brandmon_alerts_suppressed_total", {"rule": rule, "reason": reason})
        return value or 0.0
