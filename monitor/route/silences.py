"""Silences: time-boxed matchers; a silenced signal is recorded, not notified.

A silence matches a signal when every matcher it sets (``rule``, ``brand``,
``kind``, ``severity``; exact or an ``fnmatch`` glob such as ``neg*``, in any case)
matches, and ``starts_at <= now < ends_at``: every silence has an end. The command
line and the HTTP API check matchers against the known rules, brands and kinds
first (:func:`monitor.route.select.check_matchers`). Expiring a silence sets ``ends_at``
to now.
Ended silences are kept for :data:`SILENCE_RETENTION` (history), then the
daemon's hourly prune deletes them. The silence value is ``monitor.model.Silence``;
the store keeps them (``SilenceStore``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from monitor.model import SILENCE_MATCHERS as MATCHERS
from monitor.model import Silence
from monitor.store.api import SilenceStore

__all__ = ["MATCHERS", "SILENCE_RETENTION", "Silence", "Silences"]

#: Expired silences stay listable (``?expired=true``) this long after they end.
SILENCE_RETENTION = timedelta(days=30)


class Silences:
    """The persisted silences of one store."""

    def __init__(self, store: SilenceStore) -> None:
        self.store = store

    def add(self, silence: Silence) -> Silence:
        self.store.add_silence(silence)
        return silence

    def entries(self, now: datetime, *, expired: bool = False) -> list[Silence]:
        """Silences not yet ended at ``now`` (every one with ``expired``), oldest first."""
        return self.store.silences(None if expired else now)

    def get(self, silence_id: str) -> Silence | None:
        return next((s for s in self.entries(datetime.fromtimestamp(0, UTC), expired=True)
                     if s.id == silence_id), None)

    def expire(self, silence_id: str, now: datetime) -> bool:
        """End a silence now; False when there is no such silence or it has ended."""
        return self.store.expire_silence(silence_id, now)

    def matching(self, labels: Mapping[str, str], now: datetime) -> Silence | None:
        return next((s for s in self.entries(now) if s.active(now) and s.matches(labels)), None)

    def prune(self, older_than: timedelta, now: datetime) -> int:
        """Delete silences that ended more than ``older_than`` before ``now`` (active
        and recently expired ones stay); returns how many were deleted."""
        return self.store.prune_silences(now - older_than)
