"""From signals to alerts: rule severity and channels, dedup, cooldown, repeat.

Per dedup key (rule | brand | key) the router remembers, in the store, whether
the condition is firing and when people were last told:

- firing while already firing: suppressed (dedup), unless ``repeat_interval``
  has passed since the last notification (a reminder);
- firing again within ``cooldown`` of the last notification: recorded, not
  notified (``firing_quiet``), so a flapping signal does not page twice;
- resolved after a notified firing: an "all clear" if the rule asks for it.

Alert ids are derived from the signal, so replaying the same signal after a
crash cannot create a second alert.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from monitor.config.schema import RuleSet
from monitor.metrics import Metrics
from monitor.model import Alert, Signal
from monitor.store.sqlite import SqliteStore

FIRING, QUIET, RESOLVED = "firing", "firing_quiet", "resolved"


def alert_id(signal: Signal, reminder: int = 0) -> str:
    raw = f"{signal.dedup_key}|{signal.state}|{signal.at.isoformat()}|{reminder}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


class Router:
    def __init__(self, rules: RuleSet, store: SqliteStore, metrics: Metrics) -> None:
        self.rules = rules
        self.store = store
        self.metrics = metrics

    def route(self, signal: Signal, now: datetime) -> Alert | None:
        rule = self.rules.by_name(signal.rule)
        if rule is None or not rule.enabled:
            return None
        self.metrics.signals.labels(rule.name, signal.state).inc()
        key = signal.dedup_key
        known = self.store.alert_state(key)
        state, last, _ = known if known else (RESOLVED, None, "")
        title_prefix = ""
        if signal.state == "firing":
            if state == FIRING:
                if not rule.repeat_interval or last is None or now - last < rule.repeat_interval:
                    return self._suppress(rule.name, "duplicate")
                title_prefix = "Still firing: "
            elif state == QUIET:
                return self._suppress(rule.name, "cooldown")
            elif last is not None and now - last < rule.cooldown:
                self.store.set_alert_state(key, QUIET, last, "")
                return self._suppress(rule.name, "cooldown")
        else:
            if state != FIRING or not rule.notify_resolved:
                if state != RESOLVED:
                    self.store.set_alert_state(key, RESOLVED, last or now, "")
                return self._suppress(rule.name, "resolved_quiet")
            title_prefix = "All clear: "
        severity = signal.severity or rule.severity
        if signal.state == "resolved":
            severity = "info"
        reminder = int((now - last).total_seconds()) if title_prefix.startswith("Still") and last \
            else 0
        alert = Alert(
            id=alert_id(signal, reminder),
            dedup_key=key,
            rule=rule.name,
            kind=signal.kind,
            brand=signal.brand,
            severity=severity,
            state=signal.state,
            title=f"{title_prefix}[{severity.upper()}] {rule.name}: {signal.brand}",
            summary=signal.summary,
            created_at=now,
            channels=rule.channels,
            details=dict(signal.details),
        )
        self.store.add_alert(alert)
        self.store.set_alert_state(key, FIRING if signal.state == "firing" else RESOLVED, now,
                                   alert.id)
        self.metrics.alerts.labels(rule.name, severity, signal.state).inc()
        return alert

    def _suppress(self, rule: str, reason: str) -> Alert | None:
        self.metrics.suppressed.labels(rule, reason).inc()
        return None
