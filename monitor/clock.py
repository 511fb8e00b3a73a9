"""Injectable clocks: the engine asks a clock for "now", never the OS directly.

The daemon runs on ``WallClock``; replay, backtests and tests use ``ManualClock``
(event time), so the same code runs a week of history in seconds without sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to (never backwards)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2020, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        if when > self._now:
            self._now = when

    def advance(self, delta: timedelta) -> None:
        self._now += delta


def utc(when: datetime) -> datetime:
    """Return ``when`` as aware UTC (naive values are taken as UTC)."""
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def parse_time(text: str) -> datetime:
    """Parse ISO-8601 (``Z`` suffix allowed) into aware UTC."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    return utc(datetime.fromisoformat(value))


class ScaledClock:
    """Simulated time running ``speed`` times faster than the wall clock.

    Used by the demo source so a new user sees a day of brand traffic in minutes.
    """

    def __init__(self, start: datetime, speed: float, wall: Clock | None = None) -> None:
        self._wall = wall or WallClock()
        self._origin_wall = self._wall.now()
        self._origin = utc(start)
        self.speed = speed

    def now(self) -> datetime:
        elapsed = (self._wall.now() - self._origin_wall).total_seconds()
        return self._origin + timedelta(seconds=elapsed * self.speed)

    def wall_seconds(self, simulated: timedelta) -> float:
        """How long to sleep on the wall clock for ``simulated`` to pass."""
        return max(0.0, simulated.total_seconds() / self.speed)
