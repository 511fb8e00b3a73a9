"""The store boundary: one typed interface per concern, one ``Store`` that has them all.

Every table and every statement lives behind these interfaces (``monitor/store/``);
the rest of the program names the narrowest interface it needs. Two backends
implement all of them: SQLite (``sqlite.py``, the embedded default) and PostgreSQL
(``postgres.py``, the ``cluster`` extra); ``factory.open_store`` chooses from
``storage.backend``. One contract test suite (tests/store/) runs on both.

Every method that changes state commits before it returns, except inside
``transaction()``, which commits once at the end (or rolls back on error).
Times are timezone-aware datetimes (UTC).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol

from monitor.model import Alert, Post, Silence
from monitor.store.records import (
    AckEntry,
    Action,
    Aggregate,
    AlertGroup,
    AlertLine,
    Delivery,
    Episode,
    Lease,
    OutboxItem,
    StoredPost,
)

#: (post, matched brand, compound, label): a row of ``PostStore.add_posts``
PostRow = tuple[Post, str | None, float, str]
#: (text, author handle, followers, url, created_at epoch seconds)
MentionRow = tuple[str, str, int | None, str | None, float]


class Transactional(Protocol):
    def transaction(self) -> AbstractContextManager[None]:
        """Group writes: all of them are committed together, or none (nests)."""

    def close(self) -> None: ...


class PostStore(Protocol):
    """Posts seen, under a sequence number that only grows (checkpoints refer to it)."""

    def add_post(self, post: Post, brand: str | None, compound: float, label: str,
                 received_at: datetime | None = None) -> bool: ...

    def add_posts(self, rows: Sequence[PostRow],
                  received_at: datetime | Sequence[datetime]) -> list[bool]: ...

    def has_post(self, key: str) -> bool: ...

    def post_text(self, source: str, post_id: str) -> str | None: ...

    def posts_between(self, brand: str, start: datetime, end: datetime,
                      max_seq: int | None = None, chunk: int = 5000) -> Iterator[StoredPost]:
        """Oldest first, read ``chunk`` posts at a time (bounded memory)."""

    def posts_after(self, seq: int, limit: int = 1000) -> list[StoredPost]: ...

    def last_seq(self) -> int: ...

    def prune_posts(self, older_than: datetime, limit: int = 5000) -> int: ...

    def post_count(self) -> int: ...


class JournalStore(Protocol):
    """The ingest journal: posts acknowledged to an HTTP sender before the engine ran
    them. A journaled post is removed in the transaction that stores it for good
    (:meth:`journal_done`); after a crash the daemon runs what is left."""

    def journal_add(self, posts: Sequence[Post], received_at: datetime) -> list[int | None]:
        """Journal the new posts (one transaction); per post its journal number, None
        for a duplicate (stored, journaled, or earlier in ``posts``)."""

    def journal_done(self, seqs: Sequence[int]) -> None: ...

    def journal_pending(self) -> list[tuple[int, Post]]:
        """The journaled posts, oldest first."""


class CheckpointStore(Protocol):
    """Detector state and the post sequence number it covers (see monitor.engine)."""

    def save_detector_state(self, rule: str, brand: str, state: dict[str, Any],
                            now: datetime, seq: int = 0) -> None: ...

    def load_detector_state(self, rule: str, brand: str) -> dict[str, Any] | None: ...

    def checkpoint_seq(self) -> int: ...

    def set_checkpoint_seq(self, seq: int) -> None: ...


class AggregateStore(Protocol):
    """Per-brand 5-minute counts (charts and history after raw posts are pruned)."""

    def add_aggregates(self, rows: Sequence[Aggregate]) -> None: ...

    def aggregates(self, brand: str, since: datetime,
                   until: datetime | None = None) -> list[Aggregate]: ...


class AlertStore(Protocol):
    """Alerts (each queued on its channels in the outbox) and per-key notification state."""

    def add_alert(self, alert: Alert,
                  not_before: Mapping[str, datetime] | None = None) -> bool:
        """Store an alert and queue it on its channels (``not_before``: deferred per
        channel); False, queuing nothing, when its id was stored before."""

    def alerts(self, *, since: datetime | None = None, brand: str | None = None,
               limit: int = 100, rule: str | None = None) -> list[Alert]:
        """Stored alerts, newest first; ``brand`` and ``rule`` match case-insensitively
        (``rule`` may be a glob: ``churn*``)."""

    def alert_ids_with_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        """Ids of stored alerts that start with ``prefix`` (at most ``limit``)."""

    def get_alert(self, alert_id: str) -> Alert | None: ...

    def alert_state(self, dedup_key: str) -> tuple[str, datetime, str] | None: ...

    def set_alert_state(self, dedup_key: str, state: str, last_notified: datetime,
                        last_alert: str) -> None: ...


class LifecycleStore(Protocol):
    """Episodes (ack, escalation) and per-brand alert groups (monitor.route.lifecycle)."""

    def episode(self, dedup_key: str) -> Episode | None: ...

    def episodes(self, keys: Iterable[str] | None = None) -> list[Episode]: ...

    def start_episode(self, dedup_key: str, rule: str, alert_id: str,
                      started_at: datetime) -> None: ...

    def end_episode(self, dedup_key: str) -> None: ...

    def ack_episode(self, dedup_key: str, by: str, comment: str, at: datetime) -> None: ...

    def unack_episode(self, dedup_key: str) -> None: ...

    def append_ack(self, entry: AckEntry) -> None:
        """Add an ack or unack to the history (never overwritten)."""

    def ack_history(self, episodes: Iterable[tuple[str, datetime]]
                    ) -> dict[tuple[str, float], list[AckEntry]]:
        """The entries of each ``(dedup_key, episode start)``, oldest first, keyed by
        ``(dedup_key, start timestamp)``."""

    def acks_by_alert(self, alert_ids: Iterable[str]) -> dict[str, list[AckEntry]]: ...

    def mark_escalated(self, dedup_key: str, at: datetime) -> None: ...

    def escalation_candidates(self, rule: str, started_by: datetime) -> list[Episode]: ...

    def alert_group(self, brand: str) -> AlertGroup | None: ...

    def open_group(self, brand: str, rule: str, alert_id: str, at: datetime) -> None: ...

    def update_group(self, brand: str, related: list[dict[str, Any]],
                     last_update: datetime | None) -> None: ...


class SilenceStore(Protocol):
    def add_silence(self, silence: Silence) -> None: ...

    def silences(self, ending_after: datetime | None) -> list[Silence]:
        """Silences that end after ``ending_after`` (every one with None), oldest first."""

    def expire_silence(self, silence_id: str, now: datetime) -> bool: ...

    def prune_silences(self, ended_before: datetime) -> int: ...


class OutboxStore(Protocol):
    """One row per alert and channel; per-channel lanes; claims for many drainers."""

    def enqueue(self, alert_id: str, channel: str, now: datetime,
                not_before: datetime | None = None) -> bool: ...

    def due(self, now: datetime, limit: int = 50) -> list[OutboxItem]: ...

    def next_due(self, channel: str | None = None) -> datetime | None: ...

    def pending_channels(self) -> list[str]: ...

    def due_for_channel(self, channel: str, now: datetime,
                        limit: int = 1) -> list[OutboxItem]: ...

    def claim_for_channel(self, channel: str, now: datetime, owner: str,
                          until: datetime, limit: int = 1) -> list[OutboxItem]:
        """Like ``due_for_channel`` but only items nobody else holds, each claimed by
        ``owner`` until ``until`` (safe with several drainers on one database)."""

    def channel_blocked_until(self, channel: str, now: datetime) -> datetime | None: ...

    def release_deferred(self, channel: str, now: datetime) -> None:
        """A channel's items deferred by quiet hours become due at once."""

    def mark_sent(self, item_id: int, now: datetime) -> None: ...

    def mark_failed(self, item_id: int, error: str, retry_at: datetime | None,
                    failed_at: datetime | None = None) -> None: ...

    def mark_waiting(self, item_ids: Sequence[int], since: datetime) -> None: ...

    def outbox_items(self, *, status: str | None = None, channel: str | None = None,
                     limit: int = 100) -> list[dict[str, Any]]: ...

    def outbox_status(self, alert_id: str, channel: str) -> str | None: ...

    def outbox_item(self, item_id: int) -> dict[str, Any] | None: ...

    def retry_dead(self, ids: Sequence[int] | None) -> list[int]: ...

    def outbox_backlog(self) -> dict[str, int]: ...

    def outbox_counts(self) -> dict[str, int]: ...

    def deliveries(self, alert_id: str) -> list[Delivery]: ...


class CursorStore(Protocol):
    """Where each source left off."""

    def get_cursor(self, source: str) -> str | None: ...

    def set_cursor(self, source: str, value: str) -> None: ...


class OutboundStore(Protocol):
    """The outbound screen's watchlist and approved-posts ledger (JSON bodies)."""

    def add_outbound_watch(self, entry_id: str, body: dict[str, Any],
                           expires_at: datetime | None) -> None: ...

    def delete_outbound_watch(self, entry_id: str) -> bool: ...

    def outbound_watch_entries(self) -> list[dict[str, Any]]: ...

    def add_approved_post(self, item_id: str, brand: str | None, body: dict[str, Any],
                          valid_until: datetime) -> None: ...

    def approved_posts(self) -> list[dict[str, Any]]: ...

    def prune_approved_posts(self, expired_before: datetime) -> int: ...


class WebActionStore(Protocol):
    """What people did in the dashboard."""

    def record_action(self, at: datetime, actor: str, action: str, alert_id: str | None,
                      detail: Mapping[str, Any]) -> None: ...

    def actions_for(self, alert_ids: Iterable[str]) -> list[Action]: ...

    def recent_actions(self, limit: int = 50) -> list[Action]: ...


class DashboardReads(Protocol):
    """The dashboard's page queries (run on reader connections, see ``Store.reader``)."""

    def alert_facets(self) -> dict[str, list[str]]: ...

    def alerts_with_key(self, dedup_key: str, limit: int = 500) -> list[AlertLine]: ...

    def firing_alerts(self, *, since: datetime, kind: str | None = None,
                      rule: str | None = None, brand: str | None = None,
                      limit: int = 500, newest_first: bool = True) -> list[AlertLine]: ...

    def latest_alert(self) -> AlertLine | None: ...

    def alert_markers(self, brands: Sequence[str], start: float, end: float,
                      limit: int) -> list[AlertLine]: ...

    def aggregate_rows(self, brand: str, first: float,
                       last: float) -> list[tuple[float, int, int, float | None]]:
        """(start, posts, negatives, expected) of buckets starting in [first, last]."""

    def mentions_by_brand(self, first: float, last: float) -> dict[str, int]: ...

    def aggregate_brands(self) -> list[str]: ...

    def top_posts(self, brand: str, since: float, limit: int) -> list[StoredPost]: ...

    def recent_mentions(self, brand: str, start: float, end: float, limit: int, *,
                        include_end: bool) -> list[MentionRow]: ...


class Retention(Protocol):
    def prune(self, now: datetime, keep: timedelta,
              keep_alerts: timedelta = ...) -> None: ...

    def prune_steps(self, now: datetime, keep: timedelta,
                    keep_alerts: timedelta) -> list[Callable[[], bool]]: ...


class LeaseStore(Protocol):
    """Named leases with expiry (one active daemon, partition owners) and fencing."""

    def acquire_lease(self, name: str, owner: str, now: datetime,
                      ttl: timedelta) -> Lease | None:
        """Take ``name`` when it is free, expired or already ``owner``'s (renewing it);
        None when someone else holds it."""

    def release_lease(self, name: str, owner: str) -> None: ...

    def leases(self, prefix: str = "") -> list[Lease]: ...

    def fence(self, lease: Lease | None) -> None:
        """From now on every ``transaction()`` first checks that ``lease`` is still
        held (same owner and epoch) and fails with LeaseLost otherwise."""


class Store(Transactional, PostStore, JournalStore, CheckpointStore, AggregateStore, AlertStore,
            LifecycleStore, SilenceStore, OutboxStore, CursorStore, OutboundStore,
            WebActionStore, DashboardReads, Retention, LeaseStore, Protocol):
    """Everything durable. ``backend`` names the implementation."""

    backend: str

    @property
    def shareable(self) -> bool:
        """True when other connections see this store (a file or a server, not a
        private in-memory database): readers on other threads may open one."""

    def reader(self) -> Store:
        """A new read-only connection to the same store, for another thread."""
