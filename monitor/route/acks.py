"""Acknowledgement history: who acknowledged or un-acknowledged an alert episode, when,
and why. Appended, never overwritten: a second acknowledgement adds an entry and does
not replace who acknowledged first (the episode's current acknowledgement stays the
first one until someone un-acknowledges it).

The ``alert_acks`` table is created by the store's migration v4 (which also copies
the acknowledgements stored before it); all of its SQL is here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from monitor.store.sqlite import SqliteStore

ACTIONS = ("ack", "unack")


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class AckEntry:
    dedup_key: str
    episode_started: datetime
    alert_id: str
    action: str  # ack | unack
    by: str
    at: datetime
    comment: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "by": self.by, "at": _iso(self.at),
                "comment": self.comment, "alert_id": self.alert_id}


class AckLog:
    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    def append(self, entry: AckEntry) -> None:
        self.store.execute(
            "INSERT INTO alert_acks (dedup_key, episode_started, alert_id, action, by, at, "
            "comment) VALUES (?,?,?,?,?,?,?)",
            (entry.dedup_key, entry.episode_started.timestamp(), entry.alert_id, entry.action,
             entry.by, entry.at.timestamp(), entry.comment))

    def history(self, episodes: Iterable[tuple[str, datetime]]
                ) -> dict[tuple[str, float], list[AckEntry]]:
        """The entries of each ``(dedup_key, episode start)``, oldest first, keyed by
        ``(dedup_key, start timestamp)``."""
        wanted = {(key, started.timestamp()) for key, started in episodes}
        keys = sorted({key for key, _ in wanted})
        found: dict[tuple[str, float], list[AckEntry]] = {}
        for i in range(0, len(keys), 500):  # SQLite caps bound parameters
            part = keys[i:i + 500]
            rows = self.store.execute(
                "SELECT dedup_key, episode_started, alert_id, action, by, at, comment FROM "
                f"alert_acks WHERE dedup_key IN ({','.join('?' * len(part))}) ORDER BY seq",
                part).fetchall()
            for row in rows:
                slot = (row[0], float(row[1]))
                if slot in wanted:
                    found.setdefault(slot, []).append(AckEntry(
                        row[0], _dt(row[1]), row[2], row[3], row[4], _dt(row[5]), row[6]))
        return found


    def by_alert(self, alert_ids: Iterable[str]) -> dict[str, list[AckEntry]]:
        """The entries recorded against each of ``alert_ids`` (the alert that opened the
        episode they acknowledged), oldest first."""
        ids = sorted(set(alert_ids))
        found: dict[str, list[AckEntry]] = {}
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            rows = self.store.execute(
                "SELECT dedup_key, episode_started, alert_id, action, by, at, comment FROM "
                f"alert_acks WHERE alert_id IN ({','.join('?' * len(part))}) ORDER BY seq",
                part).fetchall()
            for row in rows:
                found.setdefault(row[2], []).append(AckEntry(
                    row[0], _dt(row[1]), row[2], row[3], row[4], _dt(row[5]), row[6]))
        return found


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)
