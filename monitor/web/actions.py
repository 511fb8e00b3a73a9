"""What people did in the dashboard, kept in the ``web_actions`` table (migration v4).

Each action names who did it (the name given at sign-in), when, what, and the alert
it concerns: the alert timeline shows acknowledgements after their episode ended,
and the outbound review queue knows which flagged posts were approved or dismissed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from monitor.store.sqlite import SqliteStore

REVIEWS = ("approve", "dismiss")


@dataclass(frozen=True, slots=True)
class Action:
    at: datetime
    actor: str
    action: str
    alert_id: str | None
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat().replace("+00:00", "Z"), "actor": self.actor,
                "action": self.action, "alert_id": self.alert_id, "detail": self.detail}


def record(store: SqliteStore, now: datetime, actor: str, action: str,
           alert_id: str | None = None, **detail: Any) -> None:
    store.execute("INSERT INTO web_actions (at, actor, action, alert_id, detail) "
                  "VALUES (?,?,?,?,?)", (now.timestamp(), actor, action, alert_id,
                                         json.dumps(detail, ensure_ascii=False, default=str)))


def for_alerts(store: SqliteStore, alert_ids: Iterable[str]) -> list[Action]:
    """Actions on these alerts, oldest first."""
    wanted = sorted(set(alert_ids))
    rows: list[Sequence[Any]] = []
    for i in range(0, len(wanted), 500):  # SQLite caps bound parameters
        part = wanted[i:i + 500]
        rows += store.execute(
            "SELECT at, actor, action, alert_id, detail FROM web_actions WHERE alert_id IN "
            f"({','.join('?' * len(part))})", part).fetchall()
    rows.sort(key=lambda r: r[0])
    return [Action(datetime.fromtimestamp(r[0], UTC), r[1], r[2], r[3], json.loads(r[4]))
            for r in rows]


def reviews(store: SqliteStore, alert_ids: Iterable[str]) -> dict[str, Action]:
    """The latest review (approve or dismiss) of each reviewed alert."""
    return {a.alert_id: a for a in for_alerts(store, alert_ids)
            if a.action in REVIEWS and a.alert_id is not None}


def recent(store: SqliteStore, limit: int = 50) -> list[Action]:
    rows = store.execute("SELECT at, actor, action, alert_id, detail FROM web_actions "
                         "ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return [Action(datetime.fromtimestamp(r[0], UTC), r[1], r[2], r[3], json.loads(r[4]))
            for r in rows]
