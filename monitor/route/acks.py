"""Acknowledgement history: who acknowledged or un-acknowledged an alert episode, when,
and why. Appended, never overwritten: a second acknowledgement adds an entry and does
not replace who acknowledged first (the episode's current acknowledgement stays the
first one until someone un-acknowledges it).

The entries are kept by the store (``LifecycleStore``: ``append_ack``, ``ack_history``,
``acks_by_alert``; the ``alert_acks`` table of migration v6).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from monitor.store.api import LifecycleStore
from monitor.store.records import AckEntry

__all__ = ["ACTIONS", "AckEntry", "AckLog"]

ACTIONS = ("ack", "unack")


class AckLog:
    def __init__(self, store: LifecycleStore) -> None:
        self.store = store

    def append(self, entry: AckEntry) -> None:
        self.store.append_ack(entry)

    def history(self, episodes: Iterable[tuple[str, datetime]]
                ) -> dict[tuple[str, float], list[AckEntry]]:
        """The entries of each ``(dedup_key, episode start)``, oldest first, keyed by
        ``(dedup_key, start timestamp)``."""
        return self.store.ack_history(episodes)

    def by_alert(self, alert_ids: Iterable[str]) -> dict[str, list[AckEntry]]:
        """The entries recorded against each of ``alert_ids`` (the alert that opened the
        episode they acknowledged), oldest first."""
        return self.store.acks_by_alert(alert_ids)
