"""SQLite (WAL) store: posts seen, detector state, alerts, outbox, cursors.

Every method that changes state commits before it returns, except inside
``transaction()``, which commits once at the end (or rolls back on error): the
engine uses it so a post, the detector state it changed and the alerts it caused
are durable together or not at all.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from monitor.errors import StoreBusy, StoreError
from monitor.model import Alert, Author, Post
from monitor.store import migrations

SCHEMA_VERSION = migrations.LATEST
#: SQLite waits at most this long for a lock held by another connection or process; it
#: runs on the caller's thread (the event loop in the daemon), so it stays short and a
#: busy store is reported (StoreBusy: retried later, HTTP 503 with Retry-After) instead.
BUSY_TIMEOUT = 0.05
_POST_COLUMNS = ("source, id, kind, brand, created_at, author_id, author_handle, followers, "
                 "text, url, lang, client, post_brand, compound, label, received_at")
_INSERT_POST = (f"INSERT INTO posts ({_POST_COLUMNS}) VALUES "
                "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (source, id) DO NOTHING")
_dumps = orjson.dumps
PRUNE_CHUNK = 2000  # rows per retention step: a few milliseconds of the event loop


# outbound screening (monitor.detect.outbound.runtime): bodies are the items' JSON
_OUTBOUND_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS outbound_watchlist (id TEXT PRIMARY KEY, body TEXT NOT NULL, "
    "expires_at REAL)",
    "CREATE TABLE IF NOT EXISTS outbound_approved (id TEXT PRIMARY KEY, brand TEXT, "
    "body TEXT NOT NULL, valid_until REAL NOT NULL)",
)


def _ts(when: datetime) -> float:
    return when.timestamp()


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    alert: Alert
    channel: str
    attempts: int
    first_failed_at: datetime | None = None  # start of the current run of failures


_OUTBOX_COLUMNS = ("id", "alert_id", "channel", "status", "attempts", "next_attempt",
                   "last_error", "created_at", "sent_at", "first_failed_at")


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


class SqliteStore:
    """The daemon's single store; one connection, used from the event-loop thread."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            # opening and migrating may wait for another process (a CLI command) longer
            # than the steady-state BUSY_TIMEOUT
            self._db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            migrations.migrate(self._db)
            self._db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open state database {self.path}: {exc}") from exc
        self._depth = 0

    @classmethod
    def reader(cls, path: Path | str) -> SqliteStore:
        """A read-only connection to an existing store (no migration, no writes), for
        readers on another thread than the daemon's (the dashboard's page queries)."""
        store = cls.__new__(cls)
        store.path = str(path)
        try:
            store._db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True,
                                        isolation_level=None, check_same_thread=False)
            store._db.execute("PRAGMA query_only=ON")
            store._db.execute("PRAGMA busy_timeout=2000")  # a worker thread may wait
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open state database {path} to read: {exc}") from exc
        store._depth = 0
        return store

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes: all of them are committed together, or none."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._rollback()
            raise
        self._depth = 0
        try:
            self._execute("COMMIT")
        except StoreError:  # e.g. disk full: never leave the transaction open
            self._rollback()
            raise

    def _rollback(self) -> None:
        # SQLite may already have rolled back by itself (SQLITE_FULL, SQLITE_IOERR...):
        # a second ROLLBACK would fail and hide the error that caused it.
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreBusy(f"state database {self.path}: {exc}") from exc
            raise StoreError(f"state database {self.path}: {exc}") from exc
        except (sqlite3.DatabaseError, OverflowError) as exc:  # corrupt, full, out of range
            raise StoreError(f"state database {self.path}: {exc}") from exc

    # posts -----------------------------------------------------------------
    def add_post(self, post: Post, brand: str | None, compound: float, label: str,
                 received_at: datetime | None = None) -> bool:
        """Store a post; False when its key was seen before (a duplicate).
        ``received_at``: the engine's time now (default: the post's own time)."""
        author = post.author
        created = post.created_at.timestamp()
        cur = self._execute(_INSERT_POST, (
            post.source, post.id, post.kind, brand, created, author.id,
            author.handle, author.followers, post.text, post.url, post.lang, post.client,
            post.brand, compound, label,
            created if received_at is None else received_at.timestamp()))
        return cur.rowcount == 1

    def add_posts(self, rows: Sequence[tuple[Post, str | None, float, str]],
                  received_at: datetime | Sequence[datetime]) -> list[bool]:
        """Store many posts at once (``(post, brand, compound, label)`` each, in order,
        ``received_at`` the engine's time for all or for each); per row, False for a
        duplicate (seen before, or earlier in ``rows``)."""
        fresh: list[bool] = []
        seen: set[tuple[str, str]] = set()
        keys = [(p.source, p.id) for p, *_ in rows]
        stored = self._existing(keys)
        if isinstance(received_at, datetime):
            times = [received_at.timestamp()] * len(rows)
        else:
            times = [t.timestamp() for t in received_at]
        params = []
        for (post, brand, compound, label), key, received in zip(rows, keys, times,
                                                                  strict=True):
            new = key not in stored and key not in seen
            fresh.append(new)
            if new:
                seen.add(key)
                author = post.author
                created = post.created_at.timestamp()
                params.append((post.source, post.id, post.kind, brand, created, author.id,
                               author.handle, author.followers, post.text, post.url,
                               post.lang, post.client, post.brand, compound, label,
                               received))
        if params:
            try:
                self._db.executemany(_INSERT_POST, params)
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise StoreBusy(f"state database {self.path}: {exc}") from exc
                raise StoreError(f"state database {self.path}: {exc}") from exc
            except (sqlite3.DatabaseError, OverflowError) as exc:
                raise StoreError(f"state database {self.path}: {exc}") from exc
        return fresh

    def _existing(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (source, id) keys are stored already."""
        found: set[tuple[str, str]] = set()
        by_source: dict[str, list[str]] = {}
        for source, post_id in keys:
            by_source.setdefault(source, []).append(post_id)
        for source, ids in by_source.items():
            for i in range(0, len(ids), 500):  # SQLite caps bound parameters
                part = ids[i:i + 500]
                rows = self._execute(f"SELECT id FROM posts WHERE source=? AND id IN "
                                     f"({','.join('?' * len(part))})", [source, *part])
                found.update((source, r[0]) for r in rows)
        return found

    def has_post(self, key: str) -> bool:
        source, _, post_id = key.partition(":")
        return self._execute("SELECT 1 FROM posts WHERE source=? AND id=?",
                             (source, post_id)).fetchone() is not None

    def posts_between(self, brand: str, start: datetime, end: datetime,
                      max_seq: int | None = None) -> list[StoredPost]:
        """A brand's posts created in [start, end), oldest first (with ``max_seq``: only
        those stored up to that sequence number)."""
        sql = (f"SELECT seq, {_POST_COLUMNS} FROM posts WHERE brand=? AND created_at>=? "
               "AND created_at<?")
        params: list[Any] = [brand, _ts(start), _ts(end)]
        if max_seq is not None:
            sql += " AND seq<=?"
            params.append(max_seq)
        rows = self._execute(sql + " ORDER BY created_at, seq", params).fetchall()
        return [_stored(r) for r in rows]

    def posts_after(self, seq: int, limit: int = 1000) -> list[StoredPost]:
        """Posts stored after sequence number ``seq``, in the order they were stored."""
        rows = self._execute(f"SELECT seq, {_POST_COLUMNS} FROM posts WHERE seq>? "
                             "ORDER BY seq LIMIT ?", (seq, limit)).fetchall()
        return [_stored(r) for r in rows]

    def last_seq(self) -> int:
        """Sequence number of the newest stored post (0: none yet). Never decreases:
        AUTOINCREMENT does not reuse numbers of pruned posts."""
        row = self._execute("SELECT seq FROM sqlite_sequence WHERE name='posts'").fetchone()
        return int(row[0]) if row else 0

    def prune_posts(self, older_than: datetime, limit: int = 5000) -> int:
        """Delete up to ``limit`` posts created before ``older_than`` (call again while
        it returns ``limit``: each call is one short transaction)."""
        return self._execute(
            "DELETE FROM posts WHERE seq IN (SELECT seq FROM posts WHERE created_at<? "
            "LIMIT ?)", (_ts(older_than), limit)).rowcount

    def post_count(self) -> int:
        return int(self._execute("SELECT count(*) FROM posts").fetchone()[0])

    # detector state: checkpoints -------------------------------------------
    def save_detector_state(self, rule: str, brand: str, state: dict[str, Any],
                            now: datetime, seq: int = 0) -> None:
        self._execute("INSERT OR REPLACE INTO detector_state VALUES (?,?,?,?,?)",
                      (rule, brand, _dumps(state).decode(), _ts(now), seq))

    def load_detector_state(self, rule: str, brand: str) -> dict[str, Any] | None:
        row = self._execute("SELECT state FROM detector_state WHERE rule=? AND brand=?",
                            (rule, brand)).fetchone()
        return None if row is None else dict(orjson.loads(row[0]))

    def checkpoint_seq(self) -> int:
        """The post sequence number the saved detector states cover (see Engine)."""
        row = self._execute("SELECT value FROM meta WHERE key='checkpoint_seq'").fetchone()
        return int(row[0]) if row else 0

    def set_checkpoint_seq(self, seq: int) -> None:
        self._execute("INSERT OR REPLACE INTO meta VALUES ('checkpoint_seq', ?)", (str(seq),))

    # per-brand aggregates (charts, history after raw posts are pruned) ---------
    def add_aggregates(self, rows: Sequence[Aggregate]) -> None:
        """Add counts to the buckets (creating them); ``expected`` replaces when set."""
        try:
            self._db.executemany(
                "INSERT INTO aggregates VALUES (?,?,?,?,?,?,?) ON CONFLICT (brand, start) DO "
                "UPDATE SET posts=posts+excluded.posts, negatives=negatives+excluded.negatives,"
                " positives=positives+excluded.positives, outbound=outbound+excluded.outbound,"
                " expected=coalesce(excluded.expected, expected)",
                [(a.brand, _ts(a.start), a.posts, a.negatives, a.positives, a.outbound,
                  a.expected) for a in rows])
        except sqlite3.OperationalError as exc:
            raise StoreError(f"state database {self.path}: {exc}") from exc

    def aggregates(self, brand: str, since: datetime,
                   until: datetime | None = None) -> list[Aggregate]:
        rows = self._execute(
            "SELECT brand, start, posts, negatives, positives, outbound, expected FROM "
            "aggregates WHERE brand=? AND start>=? AND start<? ORDER BY start",
            (brand, _ts(since), _ts(until) if until else 1e18)).fetchall()
        return [Aggregate(r[0], _dt(r[1]), r[2], r[3], r[4], r[5], r[6]) for r in rows]

    # alerts and their notification state ------------------------------------
    def add_alert(self, alert: Alert,
                  not_before: Mapping[str, datetime] | None = None) -> None:
        """Store an alert and queue one outbox item per channel (idempotent by id);
        ``not_before`` defers a channel's item (quiet hours)."""
        self._execute(
            "INSERT OR IGNORE INTO alerts VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (alert.id, alert.dedup_key, alert.rule, alert.kind, alert.brand, alert.severity,
             alert.state, alert.title, alert.summary, _ts(alert.created_at),
             _dumps(list(alert.channels)).decode(),
            _dumps(dict(alert.details), default=str,
                   option=orjson.OPT_NON_STR_KEYS).decode()))
        for channel in alert.channels:
            self.enqueue(alert.id, channel, alert.created_at,
                         (not_before or {}).get(channel))

    def enqueue(self, alert_id: str, channel: str, now: datetime,
                not_before: datetime | None = None) -> bool:
        """Queue an alert on a channel; False when it was queued there before."""
        cur = self._execute(
            "INSERT OR IGNORE INTO outbox (alert_id, channel, next_attempt, created_at)"
            " VALUES (?,?,?,?)",
            (alert_id, channel, _ts(not_before) if not_before else 0.0, _ts(now)))
        return cur.rowcount == 1

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Run one statement (for modules that keep their own tables, e.g. lifecycle)."""
        return self._execute(sql, params)

    def alerts(self, *, since: datetime | None = None, brand: str | None = None,
               limit: int = 100, rule: str | None = None) -> list[Alert]:
        """Stored alerts, newest first; ``brand`` and ``rule`` match case-insensitively
        (``rule`` may be a glob: ``churn*``)."""
        sql = "SELECT * FROM alerts WHERE created_at>=?"
        params: list[Any] = [_ts(since) if since else 0.0]
        if brand is not None:
            sql += " AND brand=? COLLATE NOCASE"
            params.append(brand)
        if rule is not None:
            sql += " AND lower(rule) GLOB lower(?)"
            params.append(rule)
        sql += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        params.append(limit)
        return [_alert(row) for row in self._execute(sql, params).fetchall()]

    def alert_ids_with_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        """Ids of stored alerts that start with ``prefix`` (at most ``limit``)."""
        rows = self._execute("SELECT id FROM alerts WHERE id GLOB ? ORDER BY id LIMIT ?",
                             (prefix.replace("[", "[[]").replace("*", "[*]").replace(
                                 "?", "[?]") + "*", limit)).fetchall()
        return [str(r[0]) for r in rows]

    def get_alert(self, alert_id: str) -> Alert | None:
        row = self._execute("SELECT * FROM alerts WHERE id=?", (alert_id,)).fetchone()
        return None if row is None else _alert(row)

    def alert_state(self, dedup_key: str) -> tuple[str, datetime, str] | None:
        row = self._execute("SELECT state, last_notified, last_alert FROM alert_state "
                            "WHERE dedup_key=?", (dedup_key,)).fetchone()
        return None if row is None else (row[0], _dt(row[1]), row[2])

    def set_alert_state(self, dedup_key: str, state: str, last_notified: datetime,
                        last_alert: str) -> None:
        self._execute("INSERT OR REPLACE INTO alert_state VALUES (?,?,?,?)",
                      (dedup_key, state, _ts(last_notified), last_alert))

    # outbox ----------------------------------------------------------------
    def due(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        rows = self._execute(
            "SELECT o.id, o.channel, o.attempts, o.first_failed_at, a.* FROM outbox o "
            "JOIN alerts a ON a.id = o.alert_id WHERE o.status='pending' AND o.next_attempt<=? "
            "ORDER BY o.id LIMIT ?", (_ts(now), limit)).fetchall()
        return [OutboxItem(r[0], _alert(r[4:]), r[1], r[2], None if r[3] is None else _dt(r[3]))
                for r in rows]

    def next_due(self, channel: str | None = None) -> datetime | None:
        sql = "SELECT min(next_attempt) FROM outbox WHERE status='pending'"
        row = self._execute(sql + " AND channel=?", (channel,)).fetchone() if channel \
            else self._execute(sql).fetchone()
        return None if row[0] is None else _dt(row[0])

    def pending_channels(self) -> list[str]:
        """Channels with pending outbox items."""
        rows = self._execute("SELECT DISTINCT channel FROM outbox WHERE status='pending'")
        return sorted(str(r[0]) for r in rows)

    def due_for_channel(self, channel: str, now: datetime, limit: int = 1) -> list[OutboxItem]:
        """A channel's due items in delivery order: most severe first, then oldest;
        an item waits while an earlier item of its dedup key is pending there."""
        rows = self._execute(
            "SELECT o.id, o.channel, o.attempts, o.first_failed_at, a.* FROM outbox o "
            "JOIN alerts a ON a.id = o.alert_id WHERE o.channel=? AND o.status='pending' "
            "AND o.next_attempt<=? AND NOT EXISTS (SELECT 1 FROM alerts a2 JOIN outbox o2 "
            "ON o2.alert_id = a2.id WHERE a2.dedup_key = a.dedup_key AND o2.channel = o.channel "
            "AND o2.status='pending' AND o2.id < o.id) ORDER BY CASE a.severity WHEN "
            "'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, o.id LIMIT ?",
            (channel, _ts(now), limit)).fetchall()
        return [OutboxItem(r[0], _alert(r[4:]), r[1], r[2], None if r[3] is None else _dt(r[3]))
                for r in rows]

    def channel_blocked_until(self, channel: str, now: datetime) -> datetime | None:
        """When a channel's item that failed waits for its retry: the time of that retry
        (the channel's other items wait too), else None."""
        row = self._execute("SELECT min(next_attempt) FROM outbox WHERE channel=? AND "
                            "status='pending' AND attempts>0 AND next_attempt>?",
                            (channel, _ts(now))).fetchone()
        return None if row[0] is None else _dt(row[0])

    def mark_sent(self, item_id: int, now: datetime) -> None:
        self._execute("UPDATE outbox SET status='sent', sent_at=?, attempts=attempts+1 "
                      "WHERE id=?", (_ts(now), item_id))

    def mark_failed(self, item_id: int, error: str, retry_at: datetime | None,
                    failed_at: datetime | None = None) -> None:
        """Record a failed attempt; ``retry_at`` None means give up (dead letter).
        ``failed_at`` starts the item's run of failures unless one is running."""
        first = None if failed_at is None else _ts(failed_at)
        if retry_at is None:
            self._execute("UPDATE outbox SET status='dead', attempts=attempts+1, last_error=?, "
                          "first_failed_at=coalesce(first_failed_at, ?) WHERE id=?",
                          (error, first, item_id))
        else:
            self._execute("UPDATE outbox SET attempts=attempts+1, last_error=?, next_attempt=?, "
                          "first_failed_at=coalesce(first_failed_at, ?) WHERE id=?",
                          (error, _ts(retry_at), first, item_id))

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
        rows = self._execute(sql + " ORDER BY o.id DESC LIMIT ?", (*params, limit)).fetchall()
        return [_outbox_row(row) for row in rows]

    def outbox_status(self, alert_id: str, channel: str) -> str | None:
        """The status of an alert's item on a channel, None when never queued there."""
        row = self._execute("SELECT status FROM outbox WHERE alert_id=? AND channel=?",
                            (alert_id, channel)).fetchone()
        return None if row is None else str(row[0])

    def outbox_item(self, item_id: int) -> dict[str, Any] | None:
        """One outbox row as :meth:`outbox_items` gives it, or None."""
        row = self._execute(_OUTBOX_SELECT + " WHERE o.id=?", (item_id,)).fetchone()
        return None if row is None else _outbox_row(row)

    def retry_dead(self, ids: Sequence[int] | None) -> list[int]:
        """Queue dead outbox items (``ids``, or every dead item when None) for delivery
        at once, with a fresh retry horizon; return the ids re-queued."""
        with self.transaction():
            if ids is None:
                found = [int(r[0]) for r in self._execute(
                    "SELECT id FROM outbox WHERE status='dead' ORDER BY id").fetchall()]
            else:
                found = [i for i in ids if self._execute(
                    "SELECT 1 FROM outbox WHERE id=? AND status='dead'", (i,)).fetchone()]
            for item_id in found:
                self._execute("UPDATE outbox SET status='pending', next_attempt=0, "
                              "first_failed_at=NULL WHERE id=?", (item_id,))
        return found

    def mark_waiting(self, item_ids: Sequence[int], since: datetime) -> None:
        """Pending items held back behind a failing one: their run of failures (and
        retry horizon) starts at ``since`` unless it has started already."""
        with self.transaction():
            for item_id in item_ids:
                self._execute("UPDATE outbox SET first_failed_at=? WHERE id=? AND "
                              "status='pending' AND first_failed_at IS NULL",
                              (_ts(since), item_id))

    def outbox_backlog(self) -> dict[str, int]:
        """Pending and dead items (index range counts: cheap however many were sent,
        for /healthz and the gauges)."""
        out = {}
        for status in ("pending", "dead"):
            row = self._execute("SELECT count(*) FROM outbox WHERE status=?",
                                (status,)).fetchone()
            out[status] = int(row[0])
        return out

    def outbox_counts(self) -> dict[str, int]:
        rows = self._execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    # cursors -----------------------------------------------------------------
    def get_cursor(self, source: str) -> str | None:
        row = self._execute("SELECT value FROM cursors WHERE source=?", (source,)).fetchone()
        return None if row is None else str(row[0])

    def set_cursor(self, source: str, value: str) -> None:
        self._execute("INSERT OR REPLACE INTO cursors VALUES (?,?)", (source, value))

    def prune(self, now: datetime, keep: timedelta,
              keep_alerts: timedelta = timedelta(days=365)) -> None:
        """Everything :meth:`prune_steps` does, at once (tests, tools)."""
        for step in self.prune_steps(now, keep, keep_alerts):
            while step():
                pass

    def prune_steps(self, now: datetime, keep: timedelta,
                    keep_alerts: timedelta) -> list[Callable[[], bool]]:
        """Retention as short steps, each one transaction of bounded work returning
        True while there is more to do (the daemon runs them between engine batches):
        posts created before ``now - keep``; delivered outbox rows older than that;
        alerts older than ``now - keep_alerts`` with nothing left to deliver, their
        outbox rows, and the notification state of keys quiet since then. Aggregates,
        detector state and pending or dead deliveries are kept."""
        posts_before, alerts_before = _ts(now - keep), _ts(now - keep_alerts)

        def step(sql: str, params: tuple[Any, ...]) -> Callable[[], bool]:
            def run() -> bool:
                with self.transaction():
                    return self._execute(sql, (*params, PRUNE_CHUNK)).rowcount >= PRUNE_CHUNK
            return run

        return [
            step("DELETE FROM posts WHERE seq IN (SELECT seq FROM posts WHERE created_at<? "
                 "LIMIT ?)", (posts_before,)),
            step("DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE status='sent' "
                 "AND sent_at<? LIMIT ?)", (posts_before,)),
            step("DELETE FROM outbox WHERE id IN (SELECT o.id FROM outbox o JOIN alerts a ON "
                 "a.id = o.alert_id WHERE a.created_at<? AND o.status='sent' LIMIT ?)",
                 (alerts_before,)),
            step("DELETE FROM alerts WHERE id IN (SELECT id FROM alerts a WHERE created_at<? "
                 "AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.alert_id = a.id) LIMIT ?)",
                 (alerts_before,)),
            step("DELETE FROM alert_state WHERE dedup_key IN (SELECT dedup_key FROM "
                 "alert_state WHERE last_notified<? AND state!='firing' LIMIT ?)",
                 (alerts_before,)),
        ]

    # outbound watchlist and approved-posts ledger (tables created on first use) ----
    def _outbound_tables(self) -> None:
        if getattr(self, "_outbound_ready", False):
            return
        for sql in _OUTBOUND_SCHEMA:
            self._execute(sql)
        self._outbound_ready = True

    def add_outbound_watch(self, entry_id: str, body: dict[str, Any],
                           expires_at: datetime | None) -> None:
        self._outbound_tables()
        self._execute("INSERT OR REPLACE INTO outbound_watchlist VALUES (?,?,?)",
                      (entry_id, json.dumps(body, ensure_ascii=False),
                       None if expires_at is None else _ts(expires_at)))

    def delete_outbound_watch(self, entry_id: str) -> bool:
        self._outbound_tables()
        return self._execute("DELETE FROM outbound_watchlist WHERE id=?",
                             (entry_id,)).rowcount == 1

    def outbound_watch_entries(self) -> list[dict[str, Any]]:
        self._outbound_tables()
        rows = self._execute("SELECT body FROM outbound_watchlist ORDER BY rowid").fetchall()
        return [dict(json.loads(r[0])) for r in rows]

    def add_approved_post(self, item_id: str, brand: str | None, body: dict[str, Any],
                          valid_until: datetime) -> None:
        self._outbound_tables()
        self._execute("INSERT OR REPLACE INTO outbound_approved VALUES (?,?,?,?)",
                      (item_id, brand, json.dumps(body, ensure_ascii=False), _ts(valid_until)))

    def approved_posts(self) -> list[dict[str, Any]]:
        self._outbound_tables()
        rows = self._execute("SELECT body FROM outbound_approved ORDER BY rowid").fetchall()
        return [dict(json.loads(r[0])) for r in rows]

    def prune_approved_posts(self, expired_before: datetime) -> int:
        self._outbound_tables()
        return self._execute("DELETE FROM outbound_approved WHERE valid_until<?",
                             (_ts(expired_before),)).rowcount


def _stored(r: Sequence[Any]) -> StoredPost:
    post = Post(id=r[2], source=r[1], kind=r[3], brand=r[13], created_at=_dt(r[5]),
                author=Author(id=r[6], handle=r[7], followers=r[8]), text=r[9], url=r[10],
                lang=r[11], client=r[12])
    return StoredPost(post, r[4], r[14], r[15], r[0], _dt(r[16]))


_OUTBOX_SELECT = ("SELECT o.id, o.alert_id, o.channel, o.status, o.attempts, o.next_attempt, "
                  "o.last_error, o.created_at, o.sent_at, o.first_failed_at, a.rule, a.brand, "
                  "a.title FROM outbox o LEFT JOIN alerts a ON a.id = o.alert_id")


def _outbox_row(row: Sequence[Any]) -> dict[str, Any]:
    item = dict(zip(_OUTBOX_COLUMNS, row[:10], strict=True))
    for key in ("next_attempt", "created_at", "sent_at", "first_failed_at"):
        if item[key] is not None:
            item[key] = _dt(item[key]).isoformat()
    item.update(rule=row[10], brand=row[11], title=row[12])
    return item


def _alert(row: Sequence[Any]) -> Alert:
    return Alert(
        id=row[0], dedup_key=row[1], rule=row[2], kind=row[3], brand=row[4], severity=row[5],
        state=row[6], title=row[7], summary=row[8], created_at=_dt(row[9]),
        channels=tuple(orjson.loads(row[10])), details=orjson.loads(row[11]))
