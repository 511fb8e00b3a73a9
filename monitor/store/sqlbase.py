"""The statements both backends share, and the connection-neutral core they run on.

Statements are written once, in the SQL that SQLite (3.24+) and PostgreSQL both
speak: ``?`` placeholders (PostgreSQL's driver gets them rewritten), upserts with
``ON CONFLICT``, times as epoch seconds (REAL / DOUBLE PRECISION), JSON as text. A
backend supplies the connection: ``_cursor``, ``_executemany``, ``_begin``,
``_commit``, ``_rollback`` and the few statements that differ (``_LAST_SEQ``).

This module holds posts, checkpoints, aggregates, cursors, retention and leases;
``sql_alerts``, ``sql_outbox`` and ``sql_reads`` add the other concerns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from monitor.errors import LeaseLost
from monitor.model import Author, Post
from monitor.store.api import PostRow
from monitor.store.records import Aggregate, Lease, StoredPost

_dumps = orjson.dumps
PRUNE_CHUNK = 2000  # rows per retention step: a few milliseconds of the event loop
IN_CHUNK = 500      # bound parameters per IN (...) list (SQLite caps them)
POST_COLUMNS = ("source, id, kind, brand, created_at, author_id, author_handle, followers, "
                "text, url, lang, client, post_brand, compound, label, received_at")


def ts(when: datetime) -> float:
    return when.timestamp()


def dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def opt_dt(value: float | None) -> datetime | None:
    return None if value is None else dt(value)


def marks(n: int) -> str:
    return ",".join("?" * n)


class SqlCore:
    """Connection-neutral helpers and ``transaction()``; a backend fills in the rest."""

    backend = "sql"
    path: str
    _depth: int = 0
    _fence_lease: Lease | None = None
    #: "" or " FOR SHARE": how the fence check locks the lease row it read
    _FOR_SHARE = ""
    _BEGIN = "BEGIN"

    # -- what a backend provides ------------------------------------------------------
    def _cursor(self, sql: str, params: Sequence[Any] = ()) -> Any:
        raise NotImplementedError

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------------------
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self._cursor(sql, params).fetchall())

    def _one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row = self._cursor(sql, params).fetchone()
        return None if row is None else tuple(row)

    def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; the number of rows it changed."""
        return int(self._cursor(sql, params).rowcount)

    def _in_chunks(self, sql: str, values: Sequence[Any],
                   before: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """``sql`` with ``{in}`` replaced by placeholders, run per chunk of ``values``."""
        rows: list[tuple[Any, ...]] = []
        for i in range(0, len(values), IN_CHUNK):
            part = list(values[i:i + IN_CHUNK])
            rows += self._rows(sql.format(marks=marks(len(part))), [*before, *part])
        return rows

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
        self._cursor(self._BEGIN)
        self._depth = 1
        try:
            self._check_fence()
            yield
        except BaseException:
            self._depth = 0
            self._rollback()
            raise
        self._depth = 0
        try:
            self._cursor("COMMIT")
        except BaseException:  # e.g. disk full: never leave the transaction open
            self._rollback()
            raise

    # -- leases -------------------------------------------------------------------------
    def acquire_lease(self, name: str, owner: str, now: datetime,
                      ttl: timedelta) -> Lease | None:
        until = ts(now + ttl)
        with self.transaction():
            self._run("INSERT INTO leases (name, owner, epoch, expires_at) VALUES (?,?,0,0) "
                      "ON CONFLICT (name) DO NOTHING", (name, ""))
            row = self._one("SELECT owner, epoch, expires_at FROM leases WHERE name=?" +
                            self._FOR_UPDATE, (name,))
            assert row is not None
            held_by, epoch, expires = str(row[0]), int(row[1]), float(row[2])
            if held_by != owner:
                if held_by and expires > ts(now):
                    return None
                epoch += 1  # a new holder: the old one's writes are fenced off
            self._run("UPDATE leases SET owner=?, epoch=?, expires_at=? WHERE name=?",
                      (owner, epoch, until, name))
        return Lease(name, owner, epoch, dt(until))

    _FOR_UPDATE = ""

    def release_lease(self, name: str, owner: str) -> None:
        self._run("UPDATE leases SET owner='', expires_at=0 WHERE name=? AND owner=?",
                  (name, owner))

    def leases(self, prefix: str = "") -> list[Lease]:
        rows = self._rows("SELECT name, owner, epoch, expires_at FROM leases WHERE "
                          "substr(name, 1, ?)=? AND owner!='' ORDER BY name",
                          (len(prefix), prefix))
        return [Lease(r[0], r[1], int(r[2]), dt(r[3])) for r in rows]

    def fence(self, lease: Lease | None) -> None:
        self._fence_lease = lease

    def _check_fence(self) -> None:
        lease = self._fence_lease
        if lease is None:
            return
        row = self._one("SELECT owner, epoch FROM leases WHERE name=?" + self._FOR_SHARE,
                        (lease.name,))
        if row is None or row[0] != lease.owner or int(row[1]) != lease.epoch:
            raise LeaseLost(f"lease {lease.name} is no longer held by {lease.owner} "
                            f"(epoch {lease.epoch}): not writing")


class SqlStore(SqlCore):
    """Posts, checkpoints, aggregates, cursors, retention."""

    _INSERT_POST = (f"INSERT INTO posts ({POST_COLUMNS}) VALUES "
                    "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING")

    # posts -----------------------------------------------------------------
    def add_post(self, post: Post, brand: str | None, compound: float, label: str,
                 received_at: datetime | None = None) -> bool:
        """Store a post; False when its key was seen before (a duplicate).
        ``received_at``: the engine's time now (default: the post's own time)."""
        created = post.created_at.timestamp()
        return self._run(self._INSERT_POST, (*self._scope_params(), *_post_params(
            post, brand, compound, label,
            created if received_at is None else received_at.timestamp()))) == 1

    def add_posts(self, rows: Sequence[PostRow],
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
        scope = self._scope_params()  # a partition's store: the partition first
        for (post, brand, compound, label), key, received in zip(rows, keys, times,
                                                                  strict=True):
            new = key not in stored and key not in seen
            fresh.append(new)
            if new:
                seen.add(key)
                params.append((*scope, *_post_params(post, brand, compound, label, received)))
        if params:
            self._executemany(self._INSERT_POST, params)
        return fresh

    def _existing(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (source, id) keys are stored already."""
        return {(source, r[0]) for source, r in self._by_keys(
            "SELECT id FROM posts WHERE " + self._scope() + "source=? AND id IN ({marks})",
            keys, self._scope_params())}

    def _by_keys(self, sql: str, keys: Sequence[tuple[str, str]],
                 before: Sequence[Any] = ()) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """The rows of ``sql`` (ending ``source=? AND id IN ({marks})``) for the
        (source, id) ``keys``, one query per source and chunk; each with its source."""
        by_source: dict[str, list[str]] = {}
        for source, post_id in keys:
            by_source.setdefault(source, []).append(post_id)
        for source, ids in by_source.items():
            for row in self._in_chunks(sql, ids, [*before, source]):
                yield source, row

    # the ingest journal (JournalStore) --------------------------------------------
    # a journaled post is a posts row before the engine: no brand, sentiment or seq
    _JOURNAL_COLUMNS = ("source, id, kind, created_at, author_id, author_handle, followers, "
                        "text, url, lang, client, post_brand, received_at")
    # ... read back in the posts' column order (stored_post), the engine's part blank
    _JOURNAL_AS_POST = ("jseq, source, id, kind, NULL, created_at, author_id, author_handle, "
                        "followers, text, url, lang, client, post_brand, 0.0, '', received_at")

    def journal_add(self, posts: Sequence[Post], received_at: datetime) -> list[int | None]:
        """Journal the new posts of an HTTP batch, in one transaction; per post its
        journal number, None for a duplicate (stored, journaled, or earlier in ``posts``)."""
        keys = [(p.source, p.id) for p in posts]
        known = self._existing(keys) | set(self._journaled(keys))
        received = received_at.timestamp()
        fresh: list[tuple[str, str] | None] = []
        rows = []
        for post, key in zip(posts, keys, strict=True):
            if key in known:
                fresh.append(None)
                continue
            known.add(key)
            fresh.append(key)
            row = _post_params(post, None, 0.0, "", received)
            rows.append(row[:3] + row[4:13] + row[15:])  # without brand, compound, label
        if not rows:
            return [None] * len(posts)
        with self.transaction():
            self._executemany(f"INSERT INTO journal ({self._JOURNAL_COLUMNS}) VALUES "
                              "(?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            numbers = self._journaled(keys)
        return [None if key is None else numbers[key] for key in fresh]

    def _journaled(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The journal numbers of those (source, id) keys that are journaled."""
        return {(source, r[0]): int(r[1]) for source, r in self._by_keys(
            "SELECT id, jseq FROM journal WHERE source=? AND id IN ({marks})", keys)}

    def journal_done(self, seqs: Sequence[int]) -> None:
        """Remove journaled posts (in the caller's transaction: the one storing them)."""
        for i in range(0, len(seqs), IN_CHUNK):
            part = list(seqs[i:i + IN_CHUNK])
            self._run(f"DELETE FROM journal WHERE jseq IN ({marks(len(part))})", part)

    def journal_pending(self) -> list[tuple[int, Post]]:
        return [(int(r[0]), stored_post(r).post) for r in self._rows(
            f"SELECT {self._JOURNAL_AS_POST} FROM journal ORDER BY jseq")]

    def _scope(self) -> str:
        """The filter (with its trailing AND) of a store scoped to part of the posts."""
        return ""

    def _scope_params(self) -> list[Any]:
        return []

    def has_post(self, key: str) -> bool:
        source, _, post_id = key.partition(":")
        return self._one("SELECT 1 FROM posts WHERE source=? AND id=?",
                         (source, post_id)) is not None

    def post_text(self, source: str, post_id: str) -> str | None:
        row = self._one("SELECT text FROM posts WHERE source=? AND id=?", (source, post_id))
        return None if row is None else str(row[0])

    def posts_between(self, brand: str, start: datetime, end: datetime,
                      max_seq: int | None = None, chunk: int = 5000) -> Iterator[StoredPost]:
        """A brand's posts created in [start, end), oldest first (with ``max_seq``: only
        those stored up to that sequence number), read ``chunk`` at a time: a restart in
        a storm replays an open window of a million posts in bounded memory."""
        base = (f"SELECT seq, {POST_COLUMNS} FROM posts WHERE brand=? AND created_at<?"
                + (" AND seq<=?" if max_seq is not None else ""))
        head: list[Any] = [brand, ts(end)] + ([max_seq] if max_seq is not None else [])
        rows = self._rows(base + " AND created_at>=? ORDER BY created_at, seq LIMIT ?",
                          [*head, ts(start), chunk])
        # (created_at >= t: the index's lower bound; then past the last row's sequence)
        page = base + (" AND created_at>=? AND (created_at>? OR seq>?) ORDER BY created_at, "
                       "seq LIMIT ?")
        while True:
            for r in rows:
                yield stored_post(r)
            if len(rows) < chunk:
                return
            after, last = rows[-1][5], rows[-1][0]  # keyset: past the last row read
            rows = self._rows(page, [*head, after, after, last, chunk])

    def posts_after(self, seq: int, limit: int = 1000) -> list[StoredPost]:
        """Posts stored after sequence number ``seq``, in the order they were stored."""
        rows = self._rows(f"SELECT seq, {POST_COLUMNS} FROM posts WHERE " + self._scope() +
                          "seq>? ORDER BY seq LIMIT ?", [*self._scope_params(), seq, limit])
        return [stored_post(r) for r in rows]

    def last_seq(self) -> int:
        """Sequence number of the newest stored post (0: none yet); never decreases."""
        raise NotImplementedError

    def prune_posts(self, older_than: datetime, limit: int = 5000) -> int:
        """Delete up to ``limit`` posts created before ``older_than`` (call again while
        it returns ``limit``: each call is one short transaction)."""
        return self._run("DELETE FROM posts WHERE seq IN (SELECT seq FROM posts WHERE "
                         "created_at<? LIMIT ?)", (ts(older_than), limit))

    def post_count(self) -> int:
        row = self._one("SELECT count(*) FROM posts")
        return int(row[0]) if row else 0

    # detector state: checkpoints -------------------------------------------
    def save_detector_state(self, rule: str, brand: str, state: dict[str, Any],
                            now: datetime, seq: int = 0) -> None:
        self._run("INSERT INTO detector_state (rule, brand, state, updated_at, seq) "
                  "VALUES (?,?,?,?,?) ON CONFLICT (rule, brand) DO UPDATE SET "
                  "state=excluded.state, updated_at=excluded.updated_at, seq=excluded.seq",
                  (rule, brand, _dumps(state).decode(), ts(now), seq))

    def load_detector_state(self, rule: str, brand: str) -> dict[str, Any] | None:
        row = self._one("SELECT state FROM detector_state WHERE rule=? AND brand=?",
                        (rule, brand))
        return None if row is None else dict(orjson.loads(row[0]))

    def checkpoint_seq(self) -> int:
        """The post sequence number the saved detector states cover (see Engine)."""
        row = self._one("SELECT value FROM meta WHERE key='checkpoint_seq'")
        return int(row[0]) if row else 0

    def set_checkpoint_seq(self, seq: int) -> None:
        self._run("INSERT INTO meta (key, value) VALUES ('checkpoint_seq', ?) ON CONFLICT "
                  "(key) DO UPDATE SET value=excluded.value", (str(seq),))

    # per-brand aggregates ------------------------------------------------------
    def add_aggregates(self, rows: Sequence[Aggregate]) -> None:
        """Add counts to the buckets (creating them); ``expected`` replaces when set."""
        if not rows:
            return
        self._executemany(
            "INSERT INTO aggregates (brand, start, posts, negatives, positives, outbound, "
            "expected) VALUES (?,?,?,?,?,?,?) ON CONFLICT (brand, start) DO UPDATE SET "
            "posts=aggregates.posts+excluded.posts, "
            "negatives=aggregates.negatives+excluded.negatives, "
            "positives=aggregates.positives+excluded.positives, "
            "outbound=aggregates.outbound+excluded.outbound, "
            "expected=coalesce(excluded.expected, aggregates.expected)",
            [(a.brand, ts(a.start), a.posts, a.negatives, a.positives, a.outbound,
              a.expected) for a in rows])

    def aggregates(self, brand: str, since: datetime,
                   until: datetime | None = None) -> list[Aggregate]:
        rows = self._rows(
            "SELECT brand, start, posts, negatives, positives, outbound, expected FROM "
            "aggregates WHERE brand=? AND start>=? AND start<? ORDER BY start",
            (brand, ts(since), ts(until) if until else 1e18))
        return [Aggregate(r[0], dt(r[1]), r[2], r[3], r[4], r[5], r[6]) for r in rows]

    # cursors -----------------------------------------------------------------
    def get_cursor(self, source: str) -> str | None:
        row = self._one("SELECT value FROM cursors WHERE source=?", (source,))
        return None if row is None else str(row[0])

    def set_cursor(self, source: str, value: str) -> None:
        self._run("INSERT INTO cursors (source, value) VALUES (?,?) ON CONFLICT (source) "
                  "DO UPDATE SET value=excluded.value", (source, value))

    # retention ---------------------------------------------------------------
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
        posts_before, alerts_before = ts(now - keep), ts(now - keep_alerts)

        def step(sql: str, params: tuple[Any, ...]) -> Callable[[], bool]:
            def run() -> bool:
                with self.transaction():
                    return self._run(sql, (*params, PRUNE_CHUNK)) >= PRUNE_CHUNK
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


def _post_params(post: Post, brand: str | None, compound: float, label: str,
                 received: float) -> tuple[Any, ...]:
    author = post.author
    return (post.source, post.id, post.kind, brand, post.created_at.timestamp(), author.id,
            author.handle, author.followers, post.text, post.url, post.lang, post.client,
            post.brand, compound, label, received)


def stored_post(r: Sequence[Any]) -> StoredPost:
    post = Post(id=r[2], source=r[1], kind=r[3], brand=r[13], created_at=dt(r[5]),
                author=Author(id=r[6], handle=r[7], followers=r[8]), text=r[9], url=r[10],
                lang=r[11], client=r[12])
    return StoredPost(post, r[4], r[14], r[15], r[0], dt(r[16]))
