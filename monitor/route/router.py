"""From signals to alerts: rule severity and channels, dedup, cooldown, repeat.

Per dedup key (rule | brand | key) the router remembers, in the store, whether
the condition is firing and when people were last told:

- firing while already firing: suppressed (dedup), unless ``repeat_interval``
  has passed since the last notification (a reminder);
- firing again within ``cooldown`` of the last notification: recorded, not
  notified (``firing_quiet``), so a flapping signal does not page twice;
- resolved after a notified firing: an "all clear" if the rule asks for it;
- an update of a firing episode (``signal.update`` > 0: a digest that grew) is
  notified as ``Updated: ...`` unless a silence matches it (an acknowledgement does
  not hold updates back: they carry new information, and digests send them sparingly).

Acknowledgements, silences, escalation, grouping and quiet hours live in
:mod:`monitor.route.lifecycle`: an acknowledged or silenced key gets no
reminders; a new firing that matches a silence is stored (``details.silenced``,
no channels) but not notified, and the key is left ``firing_silenced`` so it is
notified if it still fires after the silence ends.

Alert ids are derived from the signal, so replaying the same signal after a
crash cannot create a second alert.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime

from monitor.config.schema import ChannelConfig, RuleSet
from monitor.metrics import Metrics
from monitor.model import Alert, Severity, Signal
from monitor.route.lifecycle import Lifecycle
from monitor.store.api import Store

FIRING, QUIET, RESOLVED = "firing", "firing_quiet", "resolved"
SILENCED = "firing_silenced"
_NEVER = datetime.fromtimestamp(0, UTC)


def alert_id(signal: Signal, reminder: int = 0, salt: str = "") -> str:
    """Derived from the signal (a replay after a crash gives the same id); ``salt``
    tells runs apart that replay the same timeline afresh (the demo)."""
    raw = f"{signal.dedup_key}|{signal.state}|{signal.at.isoformat()}|{reminder}"
    if signal.update:
        raw += f"|update{signal.update}"
    if salt:
        raw = f"{salt}|{raw}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


class Router:
    def __init__(self, rules: RuleSet, store: Store, metrics: Metrics,
                 channels: Iterable[ChannelConfig] = ()) -> None:
        self.rules = rules
        self.store = store
        self.metrics = metrics
        self.lifecycle = Lifecycle(store, channels)
        #: the engine runs on a simulated clock (the demo): alerts say so
        self.simulated = False
        #: set for each fresh demo run: it replays the same timeline, and its alerts
        #: must not take the ids of the last run's (a jsonl:// file would skip them)
        self.id_salt = ""

    def tick(self, now: datetime) -> list[Alert]:
        """Escalate what has waited too long unacknowledged (see lifecycle)."""
        alerts = self.lifecycle.tick(now, self.rules)
        for alert in alerts:
            self.metrics.alerts.labels(alert.rule, alert.severity, "escalated").inc()
        return alerts

    def route(self, signal: Signal, now: datetime) -> Alert | None:
        rule = self.rules.by_name(signal.rule)
        if rule is None or not rule.enabled:
            return None
        self.metrics.signals.labels(rule.name, signal.state).inc()
        key = signal.dedup_key
        known = self.store.alert_state(key)
        state, last, _ = known if known else (RESOLVED, None, "")
        title_prefix = ""
        severity = signal.severity or rule.severity
        if signal.state == "firing" and state not in (FIRING, QUIET):
            labels = {"rule": rule.name, "brand": signal.brand, "kind": signal.kind,
                      "severity": severity}
            silence = self.lifecycle.silences.matching(labels, now)
            if silence is not None:
                if state != SILENCED:
                    self._record_silenced(signal, rule.name, severity, silence.id, now)
                    self.store.set_alert_state(key, SILENCED, last or _NEVER, "")
                return self._suppress(rule.name, "silenced")
        if signal.state == "firing":
            if state == FIRING and signal.update:
                known_alert = self.store.get_alert(known[2]) if known else None
                if known_alert and self.lifecycle.silenced(known_alert, now):
                    return self._suppress(rule.name, "silenced")
                title_prefix = "Updated: "
            elif state == FIRING:
                if not rule.repeat_interval or last is None or now - last < rule.repeat_interval:
                    return self._suppress(rule.name, "duplicate")
                if self.lifecycle.acked(key):
                    return self._suppress(rule.name, "acknowledged")
                known_alert = self.store.get_alert(known[2]) if known else None
                if known_alert and self.lifecycle.silenced(known_alert, now):
                    return self._suppress(rule.name, "silenced")
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
                self.lifecycle.resolved(key)
                return self._suppress(rule.name, "resolved_quiet")
            title_prefix = "All clear: "
        if signal.state == "resolved":
            severity = "info"
        reminder = int((now - last).total_seconds()) if title_prefix.startswith("Still") and last \
            else 0
        alert = Alert(
            id=alert_id(signal, reminder, self.id_salt),
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
            details=dict(signal.details, clock="simulated") if self.simulated
            else dict(signal.details),
        )
        notify = True
        if signal.state == "resolved":
            self.lifecycle.resolved(key)
        elif not title_prefix:
            alert, notify = self.lifecycle.group(alert, rule, now)
            self.lifecycle.started(alert, now)
        alert = self.lifecycle.store_alert(alert, now)
        self.store.set_alert_state(key, (QUIET if not notify else FIRING)
                                   if signal.state == "firing" else RESOLVED, now, alert.id)
        if not notify:
            return self._suppress(rule.name, "grouped")
        self.metrics.alerts.labels(rule.name, severity, signal.state).inc()
        return alert

    def _record_silenced(self, signal: Signal, rule: str, severity: Severity, silence: str,
                         now: datetime) -> None:
        """Keep a silenced firing in the history, with no channels (not notified)."""
        alert = Alert(id=alert_id(signal, salt=self.id_salt), dedup_key=signal.dedup_key,
                      rule=rule,
                      kind=signal.kind, brand=signal.brand,
                      severity=severity,
                      state="firing", title=f"Silenced: [{severity.upper()}] {rule}: "
                      f"{signal.brand}", summary=signal.summary, created_at=now, channels=(),
                      details=dict(signal.details, silenced=silence))
        self.store.add_alert(alert)

    def _suppress(self, rule: str, reason: str) -> Alert | None:
        self.metrics.suppressed.labels(rule, reason).inc()
        return None
