"""PostgreSQL store (psycopg 3, synchronous like the engine): several processes, one
database: a standby daemon, outbox drainers, partitioned workers (docs/scaling.md).

The statements are SQLite's (``sqlbase`` and friends, ``?`` rewritten to ``%s``); this
module supplies the connection (autocommit, explicit ``BEGIN``/``COMMIT`` in
``transaction()``), the schema (``pg_migrations``), row locks where several processes
meet (lease rows, outbox claims with ``FOR UPDATE SKIP LOCKED``) and one reconnect
when the server went away between transactions.

A store may be *scoped* to one partition (``part``): it stores posts under that
partition, replays only them, and keeps its checkpoint and stream position in the
partition's row: a worker holds one such store per partition it owns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import psycopg.errors

from monitor.config.schema import Config
from monitor.errors import StoreBusy, StoreError
from monitor.secrets import mask
from monitor.store import pg_migrations
from monitor.store.api import Store
from monitor.store.sql_alerts import SqlAlerts
from monitor.store.sql_outbox import SqlOutbox
from monitor.store.sql_reads import SqlReads
from monitor.store.sqlbase import POST_COLUMNS, SqlStore

__all__ = ["PostgresStore", "open_from"]

CONNECT_TIMEOUT = 5  # seconds
LOCK_TIMEOUT = "5s"  # a row lock held longer (a stuck process) fails the statement
_BUSY = (psycopg.errors.LockNotAvailable, psycopg.errors.SerializationFailure,
         psycopg.errors.DeadlockDetected, psycopg.errors.QueryCanceled)


class PostgresStore(SqlStore, SqlAlerts, SqlOutbox, SqlReads):
    backend = "postgres"
    _FOR_SHARE = " FOR SHARE"
    _FOR_UPDATE = " FOR UPDATE"
    _CLAIM_LOCK = " FOR UPDATE OF o SKIP LOCKED"

    def __init__(self, dsn: str, *, part: int | None = None, read_only: bool = False,
                 migrate: bool = True) -> None:
        self.dsn = dsn
        self.part = part
        self.read_only = read_only
        self.path = "postgresql"  # for messages: never the DSN (it holds a password)
        self._depth = 0
        self._conversions: dict[str, str] = {}
        self._db = self._connect()
        if migrate and not read_only:
            try:
                pg_migrations.migrate(self._db)
            except (psycopg.Error, RuntimeError) as exc:
                raise StoreError(f"cannot migrate the PostgreSQL state database: "
                                 f"{mask(str(exc))}") from exc
        if part is not None:
            self._run("INSERT INTO partitions (part) VALUES (?) ON CONFLICT DO NOTHING",
                      (part,))
            self._INSERT_POST = (f"INSERT INTO posts (part, {POST_COLUMNS}) VALUES "
                                 "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING")

    def _connect(self) -> psycopg.Connection[Any]:
        options = f"-c lock_timeout={LOCK_TIMEOUT}"
        if self.read_only:
            options += " -c default_transaction_read_only=on"
        try:
            return psycopg.connect(self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                                   options=options)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the PostgreSQL state database: "
                             f"{mask(str(exc))}") from exc

    # -- the connection -------------------------------------------------------------------
    @property
    def shareable(self) -> bool:
        return True

    def reader(self) -> PostgresStore:
        return PostgresStore(self.dsn, read_only=True, migrate=False)

    def scoped(self, part: int) -> PostgresStore:
        """A new connection to this database that works for partition ``part``."""
        return PostgresStore(self.dsn, part=part, migrate=False)

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self._db.close()

    def _sql(self, sql: str) -> str:
        found = self._conversions.get(sql)
        if found is None:
            found = self._conversions[sql] = sql.replace("%", "%%").replace("?", "%s")
        return found

    def _cursor(self, sql: str, params: Sequence[Any] = ()) -> Any:
        for attempt in (1, 2):
            if self._db.closed and self._depth == 0:
                self._db = self._connect()
            try:
                if params:
                    return self._db.execute(self._sql(sql), params)
                return self._db.execute(sql)
            except psycopg.OperationalError as exc:
                # the server went away: reconnect once when no transaction was open
                if attempt == 1 and self._depth == 0 and sql not in ("COMMIT",) \
                        and self._db.closed:
                    continue
                raise self._error(exc) from exc
            except psycopg.Error as exc:
                raise self._error(exc) from exc
            except OverflowError as exc:
                raise StoreError(f"state database {self.path}: {exc}") from exc
        raise AssertionError("unreachable")

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            with self._db.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
        except psycopg.Error as exc:
            raise self._error(exc) from exc
        except OverflowError as exc:
            raise StoreError(f"state database {self.path}: {exc}") from exc

    def _error(self, exc: psycopg.Error) -> StoreError:
        text = f"state database {self.path}: {mask(str(exc).strip())}"
        return StoreBusy(text) if isinstance(exc, _BUSY) else StoreError(text)

    def _rollback(self) -> None:
        if self._db.closed:
            return
        with contextlib.suppress(psycopg.Error):
            self._db.execute("ROLLBACK")

    # -- what differs from SQLite ----------------------------------------------------------
    def _scope(self) -> str:
        return "" if self.part is None else "part=? AND "

    def _scope_params(self) -> list[Any]:
        return [] if self.part is None else [self.part]

    def last_seq(self) -> int:
        if self.part is not None:
            row = self._one("SELECT coalesce(max(seq), 0) FROM posts WHERE part=?",
                            (self.part,))
            return max(int(row[0]) if row else 0, self.checkpoint_seq())
        row = self._one("SELECT last_value, is_called FROM posts_seq_seq")
        return int(row[0]) if row and row[1] else 0

    def checkpoint_seq(self) -> int:
        if self.part is None:
            return super().checkpoint_seq()
        row = self._one("SELECT checkpoint_seq FROM partitions WHERE part=?", (self.part,))
        return int(row[0]) if row else 0

    def set_checkpoint_seq(self, seq: int) -> None:
        if self.part is None:
            super().set_checkpoint_seq(seq)
            return
        self._run("UPDATE partitions SET checkpoint_seq=? WHERE part=?", (seq, self.part))

    def stream_seq(self) -> int:
        """The last stream sequence number this partition's worker committed."""
        row = self._one("SELECT stream_seq FROM partitions WHERE part=?", (self.part,))
        return int(row[0]) if row else 0

    def set_stream_seq(self, seq: int) -> None:
        """Record the stream position processed (inside the batch's transaction)."""
        self._run("UPDATE partitions SET stream_seq=greatest(stream_seq, ?) WHERE part=?",
                  (seq, self.part))


def open_from(config: Config, base: Path | None = None) -> PostgresStore:
    if not config.storage.dsn:
        raise StoreError("storage.backend postgres needs storage.dsn")
    return PostgresStore(config.storage.dsn)


if TYPE_CHECKING:
    def _implements_the_boundary(store: PostgresStore) -> Store:  # checked by mypy
        return store
