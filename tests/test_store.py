"""What only the SQLite backend does: WAL, a locked file, an unusable path. The
behaviour both backends share is the contract suite (tests/test_store_contract*.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from monitor.errors import StoreError
from monitor.store.sqlite import SqliteStore
from tests.timeline import T0, post


def test_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "s.db").close()
    mode = sqlite3.connect(tmp_path / "s.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_locked_database_is_a_clear_store_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    store._db.execute("PRAGMA busy_timeout=100")
    try:
        with pytest.raises(StoreError, match="locked"), store.transaction():
            store.add_post(post(1, T0), "Acme", 0.0, "neutral")
    finally:
        other.execute("ROLLBACK")
    assert store.add_post(post(1, T0), "Acme", 0.0, "neutral")  # usable again


def test_unusable_path_is_a_clear_store_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StoreError, match="cannot open state database"):
        SqliteStore(tmp_path / "dir.db")


def test_a_v6_database_whose_modules_made_their_own_tables_migrates(tmp_path: Path) -> None:
    """Before v7, lifecycle, silences and the outbound lists created their tables on
    first use: v7 takes them over (IF NOT EXISTS) and keeps their rows."""
    from monitor.store import migrations

    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for step in migrations.STEPS[:6]:
        step(db)
    db.execute("INSERT INTO meta VALUES ('schema_version', '6')")
    db.execute("CREATE TABLE silences (id TEXT PRIMARY KEY, matchers TEXT NOT NULL, "
               "starts_at REAL NOT NULL, ends_at REAL NOT NULL, created_by TEXT NOT NULL, "
               "comment TEXT NOT NULL, created_at REAL NOT NULL)")
    db.execute("INSERT INTO silences VALUES ('s1', '{\"brand\": \"Acme\"}', 0, 2e9, 'a', '', 0)")
    db.close()
    store = SqliteStore(path)
    assert [s.id for s in store.silences(None)] == ["s1"]
    assert store._one("SELECT value FROM meta WHERE key='schema_version'") == (
        str(migrations.LATEST),)
