"""What people did in the dashboard, kept by the store (``WebActionStore``).

Each action names who did it (the name given at sign-in), when, what, and the alert
it concerns: the alert timeline shows acknowledgements after their episode ended,
and the outbound review queue knows which flagged posts were approved or dismissed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from monitor.store.api import WebActionStore
from monitor.store.records import Action

__all__ = ["REVIEWS", "Action", "for_alerts", "recent", "record", "reviews"]

REVIEWS = ("approve", "dismiss")


def record(store: WebActionStore, now: datetime, actor: str, action: str,
           alert_id: str | None = None, **detail: Any) -> None:
    store.record_action(now, actor, action, alert_id, detail)


def for_alerts(store: WebActionStore, alert_ids: Iterable[str]) -> list[Action]:
    """Actions on these alerts, oldest first."""
    return store.actions_for(alert_ids)


def reviews(store: WebActionStore, alert_ids: Iterable[str]) -> dict[str, Action]:
    """The latest review (approve or dismiss) of each reviewed alert."""
    return {a.alert_id: a for a in for_alerts(store, alert_ids)
            if a.action in REVIEWS and a.alert_id is not None}


def recent(store: WebActionStore, limit: int = 50) -> list[Action]:
    return store.recent_actions(limit)
