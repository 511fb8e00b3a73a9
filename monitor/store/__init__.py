"""Durable state: SQLite in WAL mode."""

from monitor.store.sqlite import OutboxItem, SqliteStore

__all__ = ["OutboxItem", "SqliteStore"]
