"""Alert lifecycle: episodes, acknowledgement, escalation, grouping, quiet hours.

An **episode** starts when the router notifies a new firing alert for a dedup
key and ends when that key resolves. Per episode the ``alert_episodes`` table
keeps who acknowledged it and whether it was escalated:

- **ack** (by dedup key or by the id of an alert of the open episode) stops
  reminders (``repeat_interval``) and escalation until the key resolves; **unack**
  undoes it. Every ack and unack is appended to the episode's history (who, when,
  comment: :mod:`monitor.route.acks`), never overwritten: a second ack does not
  replace who acknowledged first;
- **escalation**: :meth:`Lifecycle.tick` (called from ``Engine.tick``) queues,
  once per episode, an ``Escalated: ...`` alert on the rule's ``escalate_to``
  channels when the episode is older than ``escalate_after``, still firing,
  not acknowledged and not silenced;
- **grouping** (rules with ``group_window`` > 0): the first firing alert of a
  brand opens a group. A new firing alert of *another* grouped rule for that
  brand within ``group_window`` of the group's start (while the group's alert
  is still firing) is attached to the group (``details.group`` and
  ``details.related``, the list of attached signals so far). It is notified as
  ``Updated: ...`` when no update went out in the last ``group_window``;
  otherwise it is stored without channels and its key is left quiet;
- **on-call rotations**: a rotation channel among an alert's channels is replaced,
  when the alert is stored, by the member channel on duty (escalations included);
- **quiet hours**: a channel's non-critical items are queued with
  ``next_attempt`` at the end of the quiet period; a critical alert goes at once
  and releases the channel's deferred items first (the outbox keeps per-channel
  order, so they are delivered before it).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from monitor.config.schema import ChannelConfig, Rule, RuleSet
from monitor.model import Alert
from monitor.route.acks import AckEntry, AckLog
from monitor.route.schedule import quiet_until, resolve_channels
from monitor.route.silences import Silences
from monitor.store.api import Store
from monitor.store.records import Episode, iso

__all__ = ["STATES", "AckError", "Episode", "Lifecycle"]

STATES = ("firing", "acknowledged", "resolved", "silenced")
_iso = iso


class AckError(Exception):
    """Nothing to acknowledge: unknown alert, or its episode is over (``status``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Lifecycle:
    def __init__(self, store: Store, channels: Iterable[ChannelConfig] = ()) -> None:
        self.store = store
        self.channels = {c.name: c for c in channels}
        self.silences = Silences(store)
        #: escalate only these brands' episodes (a cluster worker's partition); None: all
        self.brands: frozenset[str] | None = None
        self.acks = AckLog(store)

    # -- episodes -------------------------------------------------------------
    def episode(self, dedup_key: str) -> Episode | None:
        return self.store.episode(dedup_key)

    def episodes(self, keys: Iterable[str] | None = None) -> list[Episode]:
        """Open episodes (only those of dedup ``keys`` when given), oldest first."""
        return self.store.episodes(keys)

    def started(self, alert: Alert, now: datetime) -> None:
        self.store.start_episode(alert.dedup_key, alert.rule, alert.id, now)

    def resolved(self, dedup_key: str) -> None:
        self.store.end_episode(dedup_key)

    def acked(self, dedup_key: str) -> bool:
        found = self.episode(dedup_key)
        return found is not None and found.acked_at is not None

    def open_episode(self, ref: str) -> Episode:
        """The open episode of dedup key ``ref`` or of alert id ``ref`` (AckError 404:
        unknown, 409: that alert's episode is over)."""
        episode = self.episode(ref)
        if episode is None:
            alert = self.store.get_alert(ref)
            if alert is None:
                raise AckError(404, f"no alert or firing dedup key {ref!r}")
            episode = self.episode(alert.dedup_key)
            if episode is None or alert.created_at < episode.started_at:
                raise AckError(409, f"alert {ref!r} is not firing (already resolved)")
        return episode

    def ack(self, ref: str, by: str, comment: str, now: datetime) -> Episode:
        """Acknowledge the open episode of dedup key or alert id ``ref``. The first
        acknowledgement stands; each one is added to the history."""
        episode = self.open_episode(ref)
        if episode.acked_at is None:
            self.store.ack_episode(episode.dedup_key, by, comment, now)
        return self._record(episode, "ack", by, comment, now)

    def unack(self, ref: str, by: str, comment: str, now: datetime) -> Episode:
        """Withdraw the acknowledgement of an open episode (reminders and escalation
        apply again); AckError 409 when it is not acknowledged."""
        episode = self.open_episode(ref)
        if episode.acked_at is None:
            raise AckError(409, f"{ref!r} is not acknowledged")
        self.store.unack_episode(episode.dedup_key)
        return self._record(episode, "unack", by, comment, now)

    def _record(self, episode: Episode, action: str, by: str, comment: str,
                now: datetime) -> Episode:
        self.acks.append(AckEntry(episode.dedup_key, episode.started_at, episode.alert_id,
                                  action, by, now, comment))
        found = self.episode(episode.dedup_key)
        assert found is not None
        return self.with_history([found])[0]

    def with_history(self, episodes: list[Episode]) -> list[Episode]:
        found = self.acks.history((e.dedup_key, e.started_at) for e in episodes)
        return [dataclasses.replace(e, history=tuple(
            found.get((e.dedup_key, e.started_at.timestamp()), ()))) for e in episodes]

    def status(self, alert: Alert, episodes: Mapping[str, Episode]) -> str:
        """``firing``, ``acknowledged``, ``resolved`` or ``silenced`` for a stored alert."""
        if alert.state == "resolved":
            return "resolved"
        if "silenced" in alert.details:
            return "silenced"
        episode = episodes.get(alert.dedup_key)
        if episode is None or alert.created_at < episode.started_at:
            return "resolved"
        return "acknowledged" if episode.acked_at is not None else "firing"

    def history(self, *, since: datetime | None = None, brand: str | None = None,
                state: str | None = None, limit: int = 100,
                rule: str | None = None) -> list[dict[str, Any]]:
        """Stored alerts, newest first, each with its ``status`` (where its episode is
        now: firing, acknowledged, resolved or silenced; ``state`` is what the alert
        itself announced: firing or resolved), its current ``ack`` and its episode's
        ``acks`` history. ``brand`` and ``rule`` match case-insensitively (``rule``
        may be a glob); ``state`` filters on the status."""
        scan = limit if state is None else max(limit, 10_000)
        found = self.store.alerts(since=since, brand=brand, rule=rule, limit=scan)
        return self.rows(found, state=state, limit=limit)

    def rows(self, alerts: list[Alert], *, state: str | None = None,
             limit: int | None = None) -> list[dict[str, Any]]:
        """``alerts`` as JSON rows with ``status``, ``ack`` and ``acks`` (see history)."""
        episodes = {e.dedup_key: e for e in self.episodes(a.dedup_key for a in alerts)}
        out: list[tuple[Alert, dict[str, Any]]] = []
        for alert in alerts:
            status = self.status(alert, episodes)
            if state is not None and status != state:
                continue
            row = dict(alert.to_json(), status=status)
            episode = episodes.get(alert.dedup_key)
            if status == "acknowledged" and episode is not None:
                row["ack"] = {"by": episode.acked_by, "comment": episode.ack_comment,
                              "at": _iso(episode.acked_at) if episode.acked_at else None}
            out.append((alert, row))
            if limit is not None and len(out) >= limit:
                break
        self._add_acks(out, episodes)
        return [row for _, row in out]

    def _add_acks(self, rows: list[tuple[Alert, dict[str, Any]]],
                  episodes: Mapping[str, Episode]) -> None:
        """``acks``: the history of the alert's episode while it is open (on every alert
        of it); after it resolved, on the alert that opened it."""
        slots: dict[str, tuple[str, datetime]] = {}
        for alert, _ in rows:
            episode = episodes.get(alert.dedup_key)
            if episode is not None and alert.created_at >= episode.started_at:
                slots[alert.id] = (episode.dedup_key, episode.started_at)
        current = self.acks.history(slots.values())
        closed = self.acks.by_alert(a.id for a, _ in rows if a.id not in slots)
        for alert, row in rows:
            slot = slots.get(alert.id)
            entries = current.get((slot[0], slot[1].timestamp()), []) if slot else \
                closed.get(alert.id, [])
            row["acks"] = [entry.to_json() for entry in entries]

    # -- quiet hours ----------------------------------------------------------
    def store_alert(self, alert: Alert, now: datetime) -> Alert:
        """Store ``alert`` and return it as stored: rotation channels replaced by the
        member on duty at ``now`` (``details.rotation``: {rotation: member}), and
        non-critical items deferred on channels in quiet hours.  An alert stored
        before (a crash replayed) is returned as it was stored: the member on duty
        then stands, and nothing is queued or released again."""
        channels, picked = resolve_channels(alert.channels, self.channels, now)
        if picked:
            alert = dataclasses.replace(alert, channels=channels,
                                        details=dict(alert.details, rotation=picked))
        deferred: dict[str, datetime] = {}
        release: list[str] = []
        for name in alert.channels:
            quiet = self.channels[name].quiet_hours if name in self.channels else None
            if quiet is None:
                continue
            if alert.severity == "critical":
                release.append(name)
                continue
            until = quiet_until(quiet, now)
            if until is not None:
                deferred[name] = until
        if not self.store.add_alert(alert, deferred):  # one statement in the usual case
            return self.store.get_alert(alert.id) or alert
        for name in release:
            self.store.release_deferred(name, now)
        return alert

    # -- escalation -----------------------------------------------------------
    def tick(self, now: datetime, rules: RuleSet) -> list[Alert]:
        """Escalate firing, unacknowledged, unsilenced episodes older than the rule's
        ``escalate_after`` (once per episode)."""
        alerts: list[Alert] = []
        for episode in self._escalation_candidates(now, rules):
            rule = rules.by_name(episode.rule)
            if (rule is None or not rule.escalate_to or not rule.escalate_after
                    or episode.acked_at is not None or episode.escalated_at is not None
                    or now - episode.started_at < rule.escalate_after):
                continue
            state = self.store.alert_state(episode.dedup_key)
            original = self.store.get_alert(episode.alert_id)
            if state is None or state[0] != "firing" or original is None:
                continue
            if self.brands is not None and original.brand not in self.brands:
                continue
            if self.silenced(original, now):
                continue
            raw = f"{episode.dedup_key}|escalated|{episode.started_at.isoformat()}"
            alert = dataclasses.replace(
                original, id=hashlib.sha256(raw.encode()).hexdigest()[:24],
                title=f"Escalated: {original.title}", created_at=now,
                channels=rule.escalate_to,
                details={**{k: v for k, v in original.details.items() if k != "rotation"},
                         "escalated_after": str(rule.escalate_after),
                         "escalated_from": original.id})
            alert = self.store_alert(alert, now)
            self.store.mark_escalated(episode.dedup_key, now)
            alerts.append(alert)
        return alerts

    def _escalation_candidates(self, now: datetime, rules: RuleSet) -> list[Episode]:
        """Open, unacknowledged, unescalated episodes of escalating rules that are old
        enough: an indexed query per such rule, never a scan of every episode."""
        found: list[Episode] = []
        for rule in rules.rules:
            if not rule.escalate_to or not rule.escalate_after:
                continue
            found += self.store.escalation_candidates(rule.name, now - rule.escalate_after)
        return found

    def silenced(self, alert: Alert, now: datetime) -> str | None:
        labels = {"rule": alert.rule, "brand": alert.brand, "kind": alert.kind,
                  "severity": alert.severity}
        found = self.silences.matching(labels, now)
        return None if found is None else found.id

    # -- grouping -------------------------------------------------------------
    def group(self, alert: Alert, rule: Rule, now: datetime) -> tuple[Alert, bool]:
        """Attach a new firing ``alert`` to its brand's open group (see the module
        doc); returns the alert to store and whether it is notified."""
        window = rule.group_window
        if not window or alert.state != "firing":
            return alert, True
        group = self.store.alert_group(alert.brand)
        if group is not None:
            head_rule, head_id = group.rule, group.alert_id
            last_update = group.last_update
            head = self.store.get_alert(head_id)
            open_ = head is not None and self.status(
                head, {e.dedup_key: e for e in self.episodes([head.dedup_key])}
            ) in ("firing", "acknowledged")
            if open_ and now - group.started_at < window:
                if head_rule == rule.name:
                    return alert, True
                related = [*group.related,
                           {"rule": alert.rule, "kind": alert.kind, "summary": alert.summary,
                            "alert_id": alert.id, "at": _iso(now)}]
                notify = last_update is None or now - last_update >= window
                details = dict(alert.details, group=head_id, related=related)
                self.store.update_group(alert.brand, related, now if notify else last_update)
                if not notify:
                    return dataclasses.replace(alert, channels=(), details=details), False
                title = (f"Updated: [{alert.severity.upper()}] {head_rule}: {alert.brand} "
                         f"(+{len(related)} related: {', '.join(r['rule'] for r in related)})")
                return dataclasses.replace(alert, title=title, details=details), True
        self.store.open_group(alert.brand, rule.name, alert.id, now)
        return alert, True
