"""Source outages: a source whose health stays "error" too long pages the admins.

The daemon calls :meth:`OutageWatch.check` on every tick. A source in state
"error" for longer than ``grace`` raises one admin alert per outage (the key
holds the source and the outage start, so it is never sent twice); when the
source is healthy again an "all clear" follows, once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Protocol

from monitor.sources.base import SourceHealth

GRACE = timedelta(minutes=2)


class HasHealth(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def health(self) -> SourceHealth: ...


AdminAlert = Callable[[str, str, str], None]  # (key, title, summary)


class OutageWatch:
    def __init__(self, admin_alert: AdminAlert, grace: timedelta = GRACE) -> None:
        self.admin_alert = admin_alert
        self.grace = grace
        self.down_since: dict[str, datetime] = {}  # source -> when it turned to error
        self.alerted: set[str] = set()  # sources whose current outage was announced

    def check(self, sources: Iterable[HasHealth], now: datetime) -> None:
        for source in sources:
            name, health = source.name, source.health
            if health.state == "error":
                since = self.down_since.setdefault(name, now)
                if name not in self.alerted and now - since > self.grace:
                    self.alerted.add(name)
                    self.admin_alert(
                        f"source-outage|{name}|{since.isoformat()}",
                        f"Source '{name}' is down",
                        f"Source '{name}' has reported errors since {since.isoformat()} "
                        f"({_minutes(now - since)}): {health.last_error or 'no detail'}. "
                        f"Mentions from it are not being collected; detectors treat the "
                        f"outage as a gap.")
            elif name in self.down_since:
                since = self.down_since.pop(name)
                if name in self.alerted:
                    self.alerted.discard(name)
                    self.admin_alert(
                        f"source-recovered|{name}|{since.isoformat()}",
                        f"All clear: source '{name}' is back",
                        f"Source '{name}' recovered at {now.isoformat()} (state "
                        f"{health.state}) after an outage of {_minutes(now - since)} "
                        f"that began {since.isoformat()}.")


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:.0f} min"
