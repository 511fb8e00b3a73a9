"""Versioned schema of the PostgreSQL store, the one place its tables are created.

The same tables as SQLite's (``migrations.py`` v7) in PostgreSQL's types, plus what
several processes on one database need: ``posts.part`` (the partition a worker
stored a post for, see monitor/cluster) and ``partitions`` (per partition: the post
sequence its detector checkpoint covers and the stream position processed).
Insertion order, which SQLite keeps as ``rowid``, is a ``rowid`` identity column.

Each step runs in its own transaction, all under an advisory lock, so processes
starting together migrate once. Never edit a released step: add a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MIGRATION_LOCK = 0x62726D6F  # pg_advisory_lock key ("brmo") while migrating

_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE posts (
    seq BIGSERIAL PRIMARY KEY, part INTEGER NOT NULL DEFAULT 0,
    source TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL, brand TEXT,
    created_at DOUBLE PRECISION NOT NULL, author_id TEXT NOT NULL,
    author_handle TEXT NOT NULL, followers BIGINT, text TEXT NOT NULL, url TEXT, lang TEXT,
    client TEXT, post_brand TEXT, compound DOUBLE PRECISION NOT NULL, label TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL,
    UNIQUE (part, source, id));
CREATE INDEX posts_brand_time ON posts (brand, created_at);
CREATE INDEX posts_created ON posts (created_at);
CREATE INDEX posts_part_seq ON posts (part, seq);
CREATE TABLE detector_state (
    rule TEXT NOT NULL, brand TEXT NOT NULL, state TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL, seq BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (rule, brand));
CREATE TABLE aggregates (
    brand TEXT NOT NULL, start DOUBLE PRECISION NOT NULL, posts INTEGER NOT NULL,
    negatives INTEGER NOT NULL, positives INTEGER NOT NULL, outbound INTEGER NOT NULL,
    expected DOUBLE PRECISION, PRIMARY KEY (brand, start));
CREATE TABLE alerts (
    id TEXT PRIMARY KEY, dedup_key TEXT NOT NULL, rule TEXT NOT NULL, kind TEXT NOT NULL,
    brand TEXT NOT NULL, severity TEXT NOT NULL, state TEXT NOT NULL, title TEXT NOT NULL,
    summary TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, channels TEXT NOT NULL,
    details TEXT NOT NULL, rowid BIGSERIAL NOT NULL);
CREATE INDEX alerts_time ON alerts (created_at);
CREATE INDEX alerts_key ON alerts (dedup_key);
CREATE TABLE alert_state (
    dedup_key TEXT PRIMARY KEY, state TEXT NOT NULL,
    last_notified DOUBLE PRECISION NOT NULL, last_alert TEXT NOT NULL);
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY, alert_id TEXT NOT NULL, channel TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt DOUBLE PRECISION NOT NULL, last_error TEXT,
    created_at DOUBLE PRECISION NOT NULL, sent_at DOUBLE PRECISION,
    first_failed_at DOUBLE PRECISION, claimed_by TEXT, claim_until DOUBLE PRECISION,
    UNIQUE (alert_id, channel));
CREATE INDEX outbox_due ON outbox (status, next_attempt);
CREATE INDEX outbox_lane ON outbox (channel, status, next_attempt);
CREATE TABLE cursors (source TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE web_actions (
    id BIGSERIAL PRIMARY KEY, at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, alert_id TEXT, detail TEXT NOT NULL);
CREATE INDEX web_actions_alert ON web_actions (alert_id, at);
CREATE TABLE alert_episodes (dedup_key TEXT PRIMARY KEY, rule TEXT NOT NULL,
    alert_id TEXT NOT NULL, started_at DOUBLE PRECISION NOT NULL, acked_by TEXT,
    acked_at DOUBLE PRECISION, ack_comment TEXT, escalated_at DOUBLE PRECISION);
CREATE INDEX alert_episodes_open ON alert_episodes (rule, started_at)
    WHERE acked_at IS NULL AND escalated_at IS NULL;
CREATE TABLE alert_groups (brand TEXT PRIMARY KEY, rule TEXT NOT NULL,
    alert_id TEXT NOT NULL, started_at DOUBLE PRECISION NOT NULL,
    last_update DOUBLE PRECISION, related TEXT NOT NULL);
CREATE TABLE silences (id TEXT PRIMARY KEY, matchers TEXT NOT NULL,
    starts_at DOUBLE PRECISION NOT NULL, ends_at DOUBLE PRECISION NOT NULL,
    created_by TEXT NOT NULL, comment TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL);
CREATE TABLE outbound_watchlist (id TEXT PRIMARY KEY, body TEXT NOT NULL,
    expires_at DOUBLE PRECISION, rowid BIGSERIAL NOT NULL);
CREATE TABLE outbound_approved (id TEXT PRIMARY KEY, brand TEXT, body TEXT NOT NULL,
    valid_until DOUBLE PRECISION NOT NULL, rowid BIGSERIAL NOT NULL);
CREATE TABLE leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, epoch BIGINT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL);
CREATE TABLE alert_acks (
    seq BIGSERIAL PRIMARY KEY, dedup_key TEXT NOT NULL,
    episode_started DOUBLE PRECISION NOT NULL, alert_id TEXT NOT NULL,
    action TEXT NOT NULL, "by" TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
    comment TEXT NOT NULL DEFAULT '');
CREATE INDEX alert_acks_key ON alert_acks (dedup_key, episode_started);
CREATE INDEX alert_acks_alert ON alert_acks (alert_id);
CREATE TABLE partitions (part INTEGER PRIMARY KEY, checkpoint_seq BIGINT NOT NULL DEFAULT 0,
    stream_seq BIGINT NOT NULL DEFAULT 0)
"""

Step = Callable[[Any], None]


def _script(cur: Any, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            cur.execute(statement)


def _v1(cur: Any) -> None:
    _script(cur, _V1)


_V2_JOURNAL = """
CREATE TABLE journal (
    jseq BIGSERIAL PRIMARY KEY,
    source TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL, author_id TEXT NOT NULL,
    author_handle TEXT NOT NULL, followers BIGINT, text TEXT NOT NULL, url TEXT, lang TEXT,
    client TEXT, post_brand TEXT, received_at DOUBLE PRECISION NOT NULL,
    UNIQUE (source, id))
"""


def _v2(cur: Any) -> None:
    """The ingest journal (SQLite v8)."""
    _script(cur, _V2_JOURNAL)


STEPS: tuple[Step, ...] = (_v1, _v2)
LATEST = len(STEPS)


def migrate(conn: Any) -> int:
    """Bring the database of ``conn`` (a psycopg connection in autocommit mode) to
    :data:`LATEST`; return the version it had."""
    cur = conn.cursor()
    cur.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        cur.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, "
                    "value TEXT NOT NULL)")
        found = _version(cur)
        if found > LATEST:
            raise RuntimeError(
                f"schema version {found} is newer than this brand-monitor understands "
                f"({LATEST}): upgrade brand-monitor or use another database")
        for version in range(found + 1, LATEST + 1):
            cur.execute("BEGIN")
            try:
                STEPS[version - 1](cur)
                cur.execute("INSERT INTO meta (key, value) VALUES ('schema_version', %s) "
                            "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                            (str(version),))
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
    finally:
        cur.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return found


def _version(cur: Any) -> int:
    cur.execute("SELECT value FROM meta WHERE key='schema_version'")
    row = cur.fetchone()
    return int(row[0]) if row else 0
