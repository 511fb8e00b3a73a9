"""The outbox: one row per alert and channel, per-channel lanes, claims, dead letters.

Several processes may drain one database (high availability): a drainer *claims*
the item it is about to send until a time (``claim_for_channel``); another drainer
skips claimed items until the claim expires (its holder died), so an item is sent
by one drainer at a time. PostgreSQL claims with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from monitor.store.records import Delivery, OutboxItem
from monitor.store.sql_alerts import ALERT_COLUMNS, alert_from_row
from monitor.store.sqlbase import SqlCore, dt, opt_dt, ts

_OUTBOX_COLUMNS = ("id", "alert_id", "channel", "status", "attempts", "next_attempt",
                   "last_error", "created_at", "sent_at", "first_failed_at")
_OUTBOX_SELECT = ("SELECT o.id, o.alert_id, o.channel, o.status, o.attempts, o.next_attempt, "
                  "o.last_error, o.created_at, o.sent_at, o.first_failed_at, a.rule, a.brand, "
                  "a.title FROM outbox o LEFT JOIN alerts a ON a.id = o.alert_id")
_ITEM = "o.id, o.channel, o.attempts, o.first_failed_at, " + ", ".join(
    f"a.{c.strip()}" for c in ALERT_COLUMNS.split(","))
#: a channel's due items in delivery order (see ``due_for_channel``); {claim} adds the
#: claim filter
LANE = ("SELECT " + _ITEM + " FROM outbox o JOIN alerts a ON a.id = o.alert_id "
        "WHERE o.channel=? AND o.status='pending' AND o.next_attempt<=?{claim} AND NOT EXISTS "
        "(SELECT 1 FROM alerts a2 JOIN outbox o2 ON o2.alert_id = a2.id WHERE "
        "a2.dedup_key = a.dedup_key AND o2.channel = o.channel AND o2.status='pending' AND "
        "o2.id < o.id) ORDER BY CASE a.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 "
        "ELSE 2 END, o.id LIMIT ?")
UNCLAIMED = " AND (o.claim_until IS NULL OR o.claim_until<=?)"


def item_from_row(r: Sequence[Any]) -> OutboxItem:
    return OutboxItem(r[0], alert_from_row(r[4:]), r[1], r[2], opt_dt(r[3]))


def _outbox_row(row: Sequence[Any]) -> dict[str, Any]:
    item = dict(zip(_OUTBOX_COLUMNS, row[:10], strict=True))
    for key in ("next_attempt", "created_at", "sent_at", "first_failed_at"):
        if item[key] is not None:
            item[key] = dt(item[key]).isoformat()
    item.update(rule=row[10], brand=row[11], title=row[12])
    return item


class SqlOutbox(SqlCore):
    #: how a claim locks the rows it picks (PostgreSQL: FOR UPDATE ... SKIP LOCKED)
    _CLAIM_LOCK = ""

    def due(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        rows = self._rows(
            f"SELECT {_ITEM} FROM outbox o JOIN alerts a ON a.id = o.alert_id "
            "WHERE o.status='pending' AND o.next_attempt<=? ORDER BY o.id LIMIT ?",
            (ts(now), limit))
        return [item_from_row(r) for r in rows]

    def next_due(self, channel: str | None = None) -> datetime | None:
        sql = "SELECT min(next_attempt) FROM outbox WHERE status='pending'"
        row = self._one(sql + " AND channel=?", (channel,)) if channel else self._one(sql)
        return None if row is None or row[0] is None else dt(row[0])

    def pending_channels(self) -> list[str]:
        """Channels with pending outbox items."""
        rows = self._rows("SELECT DISTINCT channel FROM outbox WHERE status='pending'")
        return sorted(str(r[0]) for r in rows)

    def due_for_channel(self, channel: str, now: datetime, limit: int = 1) -> list[OutboxItem]:
        """A channel's due items in delivery order: most severe first, then oldest;
        an item waits while an earlier item of its dedup key is pending there."""
        rows = self._rows(LANE.format(claim=""), (channel, ts(now), limit))
        return [item_from_row(r) for r in rows]

    def claim_for_channel(self, channel: str, now: datetime, owner: str,
                          until: datetime, limit: int = 1) -> list[OutboxItem]:
        with self.transaction():  # SQLite: one writer at a time; PostgreSQL locks the rows
            rows = self._rows(LANE.format(claim=UNCLAIMED) + self._CLAIM_LOCK,
                              (channel, ts(now), ts(now), limit))
            items = [item_from_row(r) for r in rows]
            for item in items:
                self._run("UPDATE outbox SET claimed_by=?, claim_until=? WHERE id=?",
                          (owner, ts(until), item.id))
        return items

    def channel_blocked_until(self, channel: str, now: datetime) -> datetime | None:
        """When a channel's item that failed waits for its retry: the time of that retry
        (the channel's other items wait too), else None."""
        row = self._one("SELECT min(next_attempt) FROM outbox WHERE channel=? AND "
                        "status='pending' AND attempts>0 AND next_attempt>?",
                        (channel, ts(now)))
        return None if row is None or row[0] is None else dt(row[0])

    def release_deferred(self, channel: str, now: datetime) -> None:
        self._run("UPDATE outbox SET next_attempt=0 WHERE channel=? AND status='pending' "
                  "AND attempts=0 AND next_attempt>?", (channel, ts(now)))

    def mark_sent(self, item_id: int, now: datetime) -> None:
        self._run("UPDATE outbox SET status='sent', sent_at=?, attempts=attempts+1, "
                  "claimed_by=NULL, claim_until=NULL WHERE id=?", (ts(now), item_id))

    def mark_failed(self, item_id: int, error: str, retry_at: datetime | None,
                    failed_at: datetime | None = None) -> None:
        """Record a failed attempt; ``retry_at`` None means give up (dead letter).
        ``failed_at`` starts the item's run of failures unless one is running."""
        first = None if failed_at is None else ts(failed_at)
        if retry_at is None:
            self._run("UPDATE outbox SET status='dead', attempts=attempts+1, last_error=?, "
                      "first_failed_at=coalesce(first_failed_at, ?), claimed_by=NULL, "
                      "claim_until=NULL WHERE id=?", (error, first, item_id))
        else:
            self._run("UPDATE outbox SET attempts=attempts+1, last_error=?, next_attempt=?, "
                      "first_failed_at=coalesce(first_failed_at, ?), claimed_by=NULL, "
                      "claim_until=NULL WHERE id=?", (error, ts(retry_at), first, item_id))

    def outbox_items(self, *, status: str | None = None, channel: str | None = None,
                     limit: int = 100) -> list[dict[str, Any]]:
        """Outbox rows, newest first, as JSON-ready dicts (times ISO-8601) with the
        alert's rule, brand and title."""
        where, params = [], []
        for column, value in (("o.status", status), ("o.channel", channel)):
            if value is not None:
                where.append(f"{column}=?")
                params.append(value)
        sql = _OUTBOX_SELECT + (" WHERE " + " AND ".join(where) if where else "")
        rows = self._rows(sql + " ORDER BY o.id DESC LIMIT ?", (*params, limit))
        return [_outbox_row(row) for row in rows]

    def outbox_status(self, alert_id: str, channel: str) -> str | None:
        """The status of an alert's item on a channel, None when never queued there."""
        row = self._one("SELECT status FROM outbox WHERE alert_id=? AND channel=?",
                        (alert_id, channel))
        return None if row is None else str(row[0])

    def outbox_item(self, item_id: int) -> dict[str, Any] | None:
        """One outbox row as :meth:`outbox_items` gives it, or None."""
        row = self._one(_OUTBOX_SELECT + " WHERE o.id=?", (item_id,))
        return None if row is None else _outbox_row(row)

    def retry_dead(self, ids: Sequence[int] | None) -> list[int]:
        """Queue dead outbox items (``ids``, or every dead item when None) for delivery
        at once, with a fresh retry horizon; return the ids re-queued."""
        with self.transaction():
            if ids is None:
                found = [int(r[0]) for r in self._rows(
                    "SELECT id FROM outbox WHERE status='dead' ORDER BY id")]
            else:
                found = [i for i in ids if self._one(
                    "SELECT 1 FROM outbox WHERE id=? AND status='dead'", (i,))]
            for item_id in found:
                self._run("UPDATE outbox SET status='pending', next_attempt=0, "
                          "first_failed_at=NULL WHERE id=?", (item_id,))
        return found

    def mark_waiting(self, item_ids: Sequence[int], since: datetime) -> None:
        """Pending items held back behind a failing one: their run of failures (and
        retry horizon) starts at ``since`` unless it has started already."""
        with self.transaction():
            for item_id in item_ids:
                self._run("UPDATE outbox SET first_failed_at=? WHERE id=? AND "
                          "status='pending' AND first_failed_at IS NULL", (ts(since), item_id))

    def outbox_backlog(self) -> dict[str, int]:
        """Pending and dead items (index range counts: cheap however many were sent,
        for /healthz and the gauges)."""
        out = {}
        for status in ("pending", "dead"):
            row = self._one("SELECT count(*) FROM outbox WHERE status=?", (status,))
            out[status] = int(row[0]) if row else 0
        return out

    def outbox_counts(self) -> dict[str, int]:
        rows = self._rows("SELECT status, count(*) FROM outbox GROUP BY status")
        return {str(r[0]): int(r[1]) for r in rows}

    def deliveries(self, alert_id: str) -> list[Delivery]:
        rows = self._rows("SELECT channel, status, attempts, sent_at, last_error FROM outbox "
                          "WHERE alert_id=? ORDER BY id", (alert_id,))
        return [Delivery(r[0], r[1], int(r[2]), opt_dt(r[3]) if r[3] else None, r[4])
                for r in rows]
