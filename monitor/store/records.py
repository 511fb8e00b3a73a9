"""The values the store hands out and takes in, besides the pipeline's own (Post, Alert,
Silence in monitor.model): what a row means, independent of the backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor.model import Alert, Post


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    alert: Alert
    channel: str
    attempts: int
    first_failed_at: datetime | None = None  # start of the current run of failures


@dataclass(frozen=True, slots=True)
class StoredPost:
    post: Post
    brand: str | None
    compound: float
    label: str
    seq: int = 0
    received_at: datetime | None = None  # the engine's time when it was first processed


@dataclass(frozen=True, slots=True)
class Aggregate:
    """Mentions of a brand in one 5-minute bucket (kept after raw posts are pruned)."""

    brand: str
    start: datetime
    posts: int
    negatives: int
    positives: int
    outbound: int
    expected: float | None = None


@dataclass(frozen=True, slots=True)
class AckEntry:
    """One acknowledgement or un-acknowledgement of an episode (monitor.route.acks)."""

    dedup_key: str
    episode_started: datetime
    alert_id: str
    action: str  # ack | unack
    by: str
    at: datetime
    comment: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "by": self.by, "at": iso(self.at),
                "comment": self.comment, "alert_id": self.alert_id}


@dataclass(frozen=True, slots=True)
class Episode:
    """An alert key's firing episode (monitor.route.lifecycle)."""

    dedup_key: str
    rule: str
    alert_id: str
    started_at: datetime
    acked_by: str | None = None
    acked_at: datetime | None = None
    ack_comment: str | None = None
    escalated_at: datetime | None = None
    history: tuple[AckEntry, ...] = ()  # every ack and unack, oldest first

    def to_json(self) -> dict[str, Any]:
        return {"dedup_key": self.dedup_key, "rule": self.rule, "alert_id": self.alert_id,
                "started_at": iso(self.started_at), "acked_by": self.acked_by,
                "acked_at": iso(self.acked_at) if self.acked_at else None,
                "comment": self.ack_comment,
                "escalated_at": iso(self.escalated_at) if self.escalated_at else None,
                "acks": [entry.to_json() for entry in self.history]}


@dataclass(frozen=True, slots=True)
class AlertGroup:
    """A brand's open group of related alerts (monitor.route.lifecycle)."""

    brand: str
    rule: str
    alert_id: str
    started_at: datetime
    last_update: datetime | None
    related: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Action:
    """What someone did in the dashboard (monitor.web.actions)."""

    at: datetime
    actor: str
    action: str
    alert_id: str | None
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"at": iso(self.at), "actor": self.actor, "action": self.action,
                "alert_id": self.alert_id, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Delivery:
    """An alert's outbox row on one channel, as the dashboard shows it."""

    channel: str
    status: str
    attempts: int
    sent_at: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class AlertLine:
    """The few fields of a stored alert that lists and charts need."""

    id: str
    brand: str
    rule: str
    severity: str
    state: str
    title: str
    created_at: datetime
    silenced: bool = False


@dataclass(frozen=True, slots=True)
class Lease:
    """A named lease held by one owner until ``expires_at``; ``epoch`` grows with
    each new holder (a fencing token)."""

    name: str
    owner: str
    epoch: int
    expires_at: datetime
