"""Silences: time-boxed matchers; a silenced signal is recorded, not notified.

A silence matches a signal when every matcher it sets (``rule``, ``brand``,
``kind``, ``severity``; exact or an ``fnmatch`` glob such as ``neg*``, in any case)
matches, and ``starts_at <= now < ends_at``: every silence has an end. The command
line and the HTTP API check matchers against the known rules, brands and kinds
first (:func:`monitor.route.select.check_matchers`). Expiring a silence sets ``ends_at`` to now.
Ended silences are kept for :data:`SILENCE_RETENTION` (history), then the
daemon's hourly prune deletes them.
"""

from __future__ import annotations

import fnmatch
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.clock import parse_time
from monitor.store.sqlite import SqliteStore

MATCHERS = ("rule", "brand", "kind", "severity")
#: Expired silences stay listable (``?expired=true``) this long after they end.
SILENCE_RETENTION = timedelta(days=30)
_SCHEMA = ("CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, matchers TEXT NOT NULL, "
           "starts_at REAL NOT NULL, ends_at REAL NOT NULL, created_by TEXT NOT NULL, "
           "comment TEXT NOT NULL, created_at REAL NOT NULL)")


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    starts_at: datetime
    ends_at: datetime
    matchers: Mapping[str, str] = field(default_factory=dict)
    created_by: str = ""
    comment: str = ""
    created_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(fnmatch.fnmatchcase(labels.get(k, "").casefold(), pattern.casefold())
                   for k, pattern in self.matchers.items())

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, **dict(self.matchers),
            "starts_at": _iso(self.starts_at), "ends_at": _iso(self.ends_at),
            "created_by": self.created_by, "comment": self.comment,
        }
        if now is not None:
            out["active"] = self.active(now)
        return out

    @classmethod
    def from_json(cls, data: object, now: datetime) -> Silence:
        """``{"rule"|"brand"|"kind"|"severity": pattern (at least one), "for": "2h" or
        "ends_at": ISO, "starts_at"?: ISO, "created_by"?, "comment"?}``."""
        from monitor.config.strict import parse_duration

        if not isinstance(data, Mapping):
            raise ValueError("a silence must be a JSON object")
        allowed = {*MATCHERS, "for", "starts_at", "ends_at", "created_by", "comment"}
        unknown = sorted(str(k) for k in set(data) - allowed)
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(unknown)}")
        matchers: dict[str, str] = {}
        for key in MATCHERS:
            value = data.get(key)
            if value is None:
                continue
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{key}: must be a non-empty string")
            matchers[key] = value
        if not matchers:
            raise ValueError(f"give at least one matcher: {', '.join(MATCHERS)}")
        starts = _time(data, "starts_at") or now
        if ("for" in data) == ("ends_at" in data):
            raise ValueError("give exactly one of 'for' (a duration such as 2h) or 'ends_at'")
        if "for" in data:
            duration = parse_duration(data["for"])
            ends = starts + duration
        else:
            ends = _time(data, "ends_at") or now
        if ends <= starts:
            raise ValueError("the silence must end after it starts")
        texts = {k: data.get(k, "") for k in ("created_by", "comment")}
        for key, value in texts.items():
            if not isinstance(value, str):
                raise ValueError(f"{key}: must be a string")
        return cls(id=secrets.token_hex(8), starts_at=starts, ends_at=ends, matchers=matchers,
                   created_by=str(texts["created_by"]), comment=str(texts["comment"]),
                   created_at=now)


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _time(data: Mapping[str, Any], key: str) -> datetime | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key}: must be an ISO-8601 time")
    try:
        return parse_time(value)
    except ValueError:
        raise ValueError(f"{key}: not an ISO-8601 time: {value!r}") from None


class Silences:
    """The persisted silences of one store."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        store.execute(_SCHEMA)

    def add(self, silence: Silence) -> Silence:
        self.store.execute(
            "INSERT INTO silences VALUES (?,?,?,?,?,?,?)",
            (silence.id, json.dumps(dict(silence.matchers)), silence.starts_at.timestamp(),
             silence.ends_at.timestamp(), silence.created_by, silence.comment,
             (silence.created_at or silence.starts_at).timestamp()))
        return silence

    def entries(self, now: datetime, *, expired: bool = False) -> list[Silence]:
        """Silences not yet ended at ``now`` (every one with ``expired``), oldest first."""
        rows = self.store.execute("SELECT id, matchers, starts_at, ends_at, created_by, "
                                  "comment, created_at FROM silences WHERE ends_at>? "
                                  "ORDER BY created_at, id",
                                  (float("-inf") if expired else now.timestamp(),)).fetchall()
        return [Silence(r[0], _dt(r[2]), _dt(r[3]), json.loads(r[1]), r[4], r[5], _dt(r[6]))
                for r in rows]

    def get(self, silence_id: str) -> Silence | None:
        return next((s for s in self.entries(_dt(0), expired=True) if s.id == silence_id), None)

    def expire(self, silence_id: str, now: datetime) -> bool:
        """End a silence now; False when there is no such silence or it has ended."""
        cur = self.store.execute("UPDATE silences SET ends_at=? WHERE id=? AND ends_at>?",
                                 (now.timestamp(), silence_id, now.timestamp()))
        return cur.rowcount == 1

    def matching(self, labels: Mapping[str, str], now: datetime) -> Silence | None:
        return next((s for s in self.entries(now) if s.active(now) and s.matches(labels)), None)

    def prune(self, older_than: timedelta, now: datetime) -> int:
        """Delete silences that ended more than ``older_than`` before ``now`` (active
        and recently expired ones stay); returns how many were deleted."""
        return self.store.execute("DELETE FROM silences WHERE ends_at<?",
                                  ((now - older_than).timestamp(),)).rowcount
