"""SQLite (WAL) store: the embedded default, one file, zero setup.

The statements are shared with PostgreSQL (``sqlbase``, ``sql_alerts``,
``sql_outbox``, ``sql_reads``); this module supplies the connection: WAL, a short
busy timeout (a locked store is reported as StoreBusy instead of stalling the event
loop), ``BEGIN IMMEDIATE`` transactions and the schema (``migrations``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.config.schema import Config
from monitor.errors import StoreBusy, StoreError
from monitor.store import migrations
from monitor.store.api import Store
from monitor.store.records import Aggregate, OutboxItem, StoredPost
from monitor.store.sql_alerts import SqlAlerts
from monitor.store.sql_outbox import SqlOutbox
from monitor.store.sql_reads import SqlReads
from monitor.store.sqlbase import PRUNE_CHUNK, SqlStore

__all__ = ["PRUNE_CHUNK", "SCHEMA_VERSION", "Aggregate", "OutboxItem", "SqliteStore", "StoredPost"]

SCHEMA_VERSION = migrations.LATEST
#: SQLite waits at most this long for a lock held by another connection or process; it
#: runs on the caller's thread (the event loop in the daemon), so it stays short and a
#: busy store is reported (StoreBusy: retried later, HTTP 503 with Retry-After) instead.
BUSY_TIMEOUT = 0.05


class SqliteStore(SqlStore, SqlAlerts, SqlOutbox, SqlReads):
    """The daemon's store in one SQLite file; one connection, used from one thread."""

    backend = "sqlite"
    _BEGIN = "BEGIN IMMEDIATE"

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

    @property
    def shareable(self) -> bool:
        return self.path != ":memory:"

    def reader(self) -> SqliteStore:
        """A read-only connection to this store's file (no migration, no writes), for
        readers on another thread than the daemon's (the dashboard's page queries)."""
        return self.open_reader(self.path)

    @classmethod
    def open_reader(cls, path: Path | str) -> SqliteStore:
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

    def _rollback(self) -> None:
        # SQLite may already have rolled back by itself (SQLITE_FULL, SQLITE_IOERR...):
        # a second ROLLBACK would fail and hide the error that caused it.
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _cursor(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        except OverflowError as exc:  # an integer beyond 64 bits
            raise StoreError(f"state database {self.path}: {exc}") from exc

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            self._db.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        except OverflowError as exc:
            raise StoreError(f"state database {self.path}: {exc}") from exc

    def _error(self, exc: sqlite3.Error) -> StoreError:
        if isinstance(exc, sqlite3.OperationalError) and (
                "locked" in str(exc) or "busy" in str(exc)):
            return StoreBusy(f"state database {self.path}: {exc}")
        return StoreError(f"state database {self.path}: {exc}")

    def last_seq(self) -> int:
        """Sequence number of the newest stored post (0: none yet). Never decreases:
        AUTOINCREMENT does not reuse numbers of pruned posts."""
        row = self._one("SELECT seq FROM sqlite_sequence WHERE name='posts'")
        return int(row[0]) if row else 0


def state_path(config: Config, base: Path | None = None) -> Path:
    """The SQLite file of ``config`` (relative paths under ``base`` when given). A
    configuration with the demo source keeps its state in ``<state_dir>/demo/``: the
    demo's simulated clock never touches a real state."""
    folder = Path(config.state_dir)
    if any(s.type == "demo" and s.enabled for s in config.sources):
        folder = folder / "demo"
    path = folder / config.storage.path
    return base / path if base is not None and not path.is_absolute() else path


def open_from(config: Config, base: Path | None = None) -> SqliteStore:
    """The store of ``config`` (``storage.path`` under ``state_dir``)."""
    return SqliteStore(state_path(config, base))


if TYPE_CHECKING:
    def _implements_the_boundary(store: SqliteStore) -> Store:  # checked by mypy
        return store
