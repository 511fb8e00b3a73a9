"""Versioned schema of the SQLite store, the one place its tables are created: each step
moves a database one version up.

A new database runs every step in order; an existing one runs the steps above its
``meta.schema_version``, each in its own transaction, so an interrupted upgrade
resumes where it stopped. Never edit a released step: add a new one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

Step = Callable[[sqlite3.Connection], None]

_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS posts (
    key TEXT PRIMARY KEY, brand TEXT, kind TEXT NOT NULL, created_at REAL NOT NULL,
    author_id TEXT NOT NULL, author_handle TEXT NOT NULL, followers INTEGER,
    text TEXT NOT NULL, url TEXT, compound REAL NOT NULL, label TEXT NOT NULL,
    body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS posts_brand_time ON posts (brand, created_at);
CREATE TABLE IF NOT EXISTS detector_state (
    rule TEXT NOT NULL, brand TEXT NOT NULL, state TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (rule, brand));
CREATE TABLE IF NOT EXISTS buckets (
    brand TEXT NOT NULL, series TEXT NOT NULL, start REAL NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (brand, series, start));
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY, dedup_key TEXT NOT NULL, rule TEXT NOT NULL, kind TEXT NOT NULL,
    brand TEXT NOT NULL, severity TEXT NOT NULL, state TEXT NOT NULL, title TEXT NOT NULL,
    summary TEXT NOT NULL, created_at REAL NOT NULL, channels TEXT NOT NULL,
    details TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alerts_time ON alerts (created_at);
CREATE TABLE IF NOT EXISTS alert_state (
    dedup_key TEXT PRIMARY KEY, state TEXT NOT NULL, last_notified REAL NOT NULL,
    last_alert TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL, channel TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL, last_error TEXT, created_at REAL NOT NULL, sent_at REAL,
    UNIQUE (alert_id, channel));
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt);
CREATE TABLE IF NOT EXISTS cursors (source TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# v2: posts keep their fields in columns (no JSON copy of each post) under a sequence
# number that only grows (AUTOINCREMENT: never reused, even after pruning), which the
# detector checkpoint refers to, and the engine time at which they were processed (a
# replay after a restart sees each post at the same time again); per-brand 5-minute
# aggregates outlive raw posts.
_V2_POSTS = """
CREATE TABLE posts_v2 (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL, brand TEXT,
    created_at REAL NOT NULL, author_id TEXT NOT NULL, author_handle TEXT NOT NULL,
    followers INTEGER, text TEXT NOT NULL, url TEXT, lang TEXT, client TEXT,
    post_brand TEXT, compound REAL NOT NULL, label TEXT NOT NULL,
    received_at REAL NOT NULL,
    UNIQUE (source, id));
INSERT INTO posts_v2 (source, id, kind, brand, created_at, author_id, author_handle,
                      followers, text, url, lang, client, post_brand, compound, label,
                      received_at)
    SELECT json_extract(body, '$.source'), json_extract(body, '$.id'), kind, brand,
           created_at, author_id, author_handle, followers, text, url,
           json_extract(body, '$.lang'), json_extract(body, '$.client'),
           json_extract(body, '$.brand'), compound, label, created_at
    FROM posts ORDER BY rowid;
DROP TABLE posts;
ALTER TABLE posts_v2 RENAME TO posts;
CREATE INDEX posts_brand_time ON posts (brand, created_at);
DROP TABLE IF EXISTS buckets;
CREATE TABLE aggregates (
    brand TEXT NOT NULL, start REAL NOT NULL, posts INTEGER NOT NULL,
    negatives INTEGER NOT NULL, positives INTEGER NOT NULL, outbound INTEGER NOT NULL,
    expected REAL, PRIMARY KEY (brand, start)) WITHOUT ROWID;
ALTER TABLE detector_state ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
"""


def _script(db: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated statements inside the caller's transaction (executescript
    would commit it)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _v1(db: sqlite3.Connection) -> None:
    _script(db, _V1)


def _v2(db: sqlite3.Connection) -> None:
    _script(db, _V2_POSTS)
    # states saved by v1 were current up to the last stored post
    db.execute("INSERT OR REPLACE INTO meta VALUES ('checkpoint_seq', "
               "(SELECT coalesce(max(seq), 0) FROM posts))")


def _v3(db: sqlite3.Connection) -> None:
    # the outbox retries for a time horizon counted from the first failure
    db.execute("ALTER TABLE outbox ADD COLUMN first_failed_at REAL")


def _v4(db: sqlite3.Connection) -> None:
    # per-channel delivery lanes: a channel's pending items, and a dedup key's alerts
    db.execute("CREATE INDEX outbox_lane ON outbox (channel, status, next_attempt)")
    db.execute("CREATE INDEX alerts_key ON alerts (dedup_key)")


# v5: the dashboard's record of what people did in the browser (monitor/web/actions.py):
# acknowledgements with comments, silences, outbound reviews (approved as sanctioned,
# dismissed with a reason), watchlist and outbox actions. It is the alert timeline's
# memory (an acknowledgement outlives its episode) and the outbound queue's state.
_V5_ACTIONS = """
CREATE TABLE web_actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, alert_id TEXT, detail TEXT NOT NULL);
CREATE INDEX web_actions_alert ON web_actions (alert_id, at)
"""


def _v5(db: sqlite3.Connection) -> None:
    _script(db, _V5_ACTIONS)


# v6: the acknowledgement history (monitor.route.acks): every ack and un-ack of an alert
# episode is appended, never overwritten. The acknowledgements stored before (one per
# open episode, in alert_episodes, a table the lifecycle creates) become its first entries.
_V6_ACKS = """
CREATE TABLE alert_acks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, dedup_key TEXT NOT NULL,
    episode_started REAL NOT NULL, alert_id TEXT NOT NULL, action TEXT NOT NULL,
    by TEXT NOT NULL, at REAL NOT NULL, comment TEXT NOT NULL DEFAULT '');
CREATE INDEX alert_acks_key ON alert_acks (dedup_key, episode_started);
"""


def _v6(db: sqlite3.Connection) -> None:
    _script(db, _V6_ACKS)
    if db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='alert_episodes'"
                  ).fetchone():
        db.execute("INSERT INTO alert_acks (dedup_key, episode_started, alert_id, action, by, "
                   "at, comment) SELECT dedup_key, started_at, alert_id, 'ack', "
                   "coalesce(acked_by, ''), acked_at, coalesce(ack_comment, '') FROM "
                   "alert_episodes WHERE acked_at IS NOT NULL ORDER BY acked_at")


# v7: every table in one place. Lifecycle (episodes, groups), silences and the outbound
# screen's watchlist and ledger were created by their modules on first use; they are
# part of the schema now (IF NOT EXISTS: a database of v6 may have them already). The
# outbox gets claims (several drainers on one database), and leases (one active daemon).
_V7_ALL_TABLES = """
CREATE TABLE IF NOT EXISTS alert_episodes (dedup_key TEXT PRIMARY KEY, rule TEXT NOT NULL,
    alert_id TEXT NOT NULL, started_at REAL NOT NULL, acked_by TEXT, acked_at REAL,
    ack_comment TEXT, escalated_at REAL);
CREATE TABLE IF NOT EXISTS alert_groups (brand TEXT PRIMARY KEY, rule TEXT NOT NULL,
    alert_id TEXT NOT NULL, started_at REAL NOT NULL, last_update REAL,
    related TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alert_episodes_open ON alert_episodes (rule, started_at)
    WHERE acked_at IS NULL AND escalated_at IS NULL;
CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, matchers TEXT NOT NULL,
    starts_at REAL NOT NULL, ends_at REAL NOT NULL, created_by TEXT NOT NULL,
    comment TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS outbound_watchlist (id TEXT PRIMARY KEY, body TEXT NOT NULL,
    expires_at REAL);
CREATE TABLE IF NOT EXISTS outbound_approved (id TEXT PRIMARY KEY, brand TEXT,
    body TEXT NOT NULL, valid_until REAL NOT NULL);
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN claim_until REAL;
CREATE TABLE leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, epoch INTEGER NOT NULL,
    expires_at REAL NOT NULL)
"""


def _v7(db: sqlite3.Connection) -> None:
    _script(db, _V7_ALL_TABLES)


_V8_JOURNAL = """
CREATE TABLE journal (
    jseq INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL, created_at REAL NOT NULL,
    author_id TEXT NOT NULL, author_handle TEXT NOT NULL, followers INTEGER,
    text TEXT NOT NULL, url TEXT, lang TEXT, client TEXT, post_brand TEXT,
    received_at REAL NOT NULL,
    UNIQUE (source, id))
"""


def _v8(db: sqlite3.Connection) -> None:
    """The ingest journal: HTTP posts acknowledged before the engine ran them."""
    _script(db, _V8_JOURNAL)


STEPS: tuple[Step, ...] = (_v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8)
LATEST = len(STEPS)


def migrate(db: sqlite3.Connection) -> int:
    """Bring ``db`` (autocommit mode) to :data:`LATEST`; return the version it had."""
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    found = int(row[0]) if row else 0
    if found > LATEST:
        raise sqlite3.DatabaseError(
            f"schema version {found} is newer than this brand-monitor understands "
            f"({LATEST}): upgrade brand-monitor or use another state folder")
    for version in range(found + 1, LATEST + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            STEPS[version - 1](db)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                       (str(version),))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    return found
