"""Collection gaps: a brand that normally gets mentions has gone silent.

Silence is a *collection* problem to check (a source down, a token revoked, a
filter gone wrong), not a brand event. The detector learns how many mentions the
brand gets per hour of the day (an EWMA per hour-of-day slot over observed
hours) and fires once no mention arrived for ``max_silence`` while the expected
count over the silent span is at least ``min_expected``, so a quiet brand at
night does not page. It resolves as soon as posts flow again.

Hours that fall inside such an outage are not learned (they are a gap, not
zeros); a silence measured after a restart starts no earlier than the restart,
so the daemon's own downtime does not read as a source outage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.config.schema import BrandConfig, Rule
from monitor.detect.base import DETECTORS, Detector, DetectorContext, EnrichedPost
from monitor.model import Signal

HOUR = timedelta(hours=1)
ALPHA = 0.3  # EWMA weight of the newest day's count in an hour-of-day slot
WARM_HOURS = 24  # hours learned before the detector may fire
_LAST = datetime.max.replace(tzinfo=UTC) - timedelta(days=2)  # hour arithmetic stays valid
MAX_STEP = timedelta(hours=24)  # longer jumps in time are gaps: nothing is learned for them


@dataclass(frozen=True, slots=True)
class SilenceParams:
    max_silence: timedelta = timedelta(minutes=30)
    min_expected: float = field(default=3.0, metadata={"min": 0})

    def problems(self) -> list[tuple[str, str]]:
        if self.max_silence < timedelta(minutes=1):
            return [("max_silence", "must be at least 1m")]
        return []


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _fmt(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


@DETECTORS.register("source_silence")
class SilenceDetector(Detector):
    Params = SilenceParams

    def __init__(self, rule: Rule, brand: BrandConfig,
                 ctx: DetectorContext | None = None) -> None:
        super().__init__(rule, brand, ctx)
        self.params: SilenceParams = rule.params
        self.rates: list[float | None] = [None] * 24  # mentions per hour, by UTC hour
        self.learned = 0  # hours learned so far
        self.hour: datetime | None = None  # the open hour
        self.count = 0  # mentions in the open hour
        self.last_post: datetime | None = None
        self.alerting = False
        self.started: datetime | None = None  # first call in this process
        self._dirty = False

    # -- the learned rate ------------------------------------------------------
    def expected(self, start: datetime, end: datetime) -> float:
        """Mentions expected in [start, end) from the hour-of-day rates (bounded work:
        whole days count as one day's sum each, whatever the span)."""
        end = min(end, _LAST)
        if end <= start:
            return 0.0
        day_total = sum(r for r in self.rates if r is not None)
        days = (end - start) // timedelta(days=1)
        total = days * day_total
        t = start + days * timedelta(days=1)
        while t < end:  # at most 25 steps
            nxt = min(end, _hour(t) + HOUR)
            rate = self.rates[t.hour]
            if rate is not None:
                total += rate * (nxt - t).total_seconds() / 3600
            t = nxt
        return total

    def _outage(self, at: datetime) -> bool:
        """True when a silence up to ``at`` counts as a collection gap."""
        since = self._silent_since()
        return (since is not None and at - since >= self.params.max_silence
                and self.learned >= WARM_HOURS
                and self.expected(since, at) >= self.params.min_expected)

    def _silent_since(self) -> datetime | None:
        if self.last_post is None or self.started is None:
            return None
        return max(self.last_post, self.started)

    def _learn(self, hour: datetime, count: int) -> None:
        if count == 0 and self._outage(hour + HOUR):
            return  # inside an outage: a gap, not a zero
        slot = hour.hour
        old = self.rates[slot]
        self.rates[slot] = float(count) if old is None else (1 - ALPHA) * old + ALPHA * count
        self.learned += 1
        self._dirty = True

    def _advance(self, now: datetime) -> None:
        hour = self.hour
        if hour is not None and self.started is not None and hour <= now < hour + HOUR:
            return  # still in the open hour (most calls)
        now = min(now, _LAST)
        if self.started is None:
            self.started = now
        current = _hour(now)
        if self.hour is None:
            self.hour, self.count = current, 0
            return
        if current - self.hour > MAX_STEP:
            # a jump of more than a day (downtime, or a clock set far ahead): learn the
            # open hour, skip the gap (missing data, not zeros) and resume at ``current``
            self._learn(self.hour, self.count)
            self.hour, self.count = current, 0
            self._dirty = True
            return
        while self.hour < current:  # at most MAX_STEP hours
            self._learn(self.hour, self.count)
            self.hour, self.count = self.hour + HOUR, 0
            self._dirty = True

    # -- detector --------------------------------------------------------------
    def next_tick(self) -> datetime | None:
        """The next hour to learn, or, once a silence reaches ``max_silence``, every
        tick while it may grow into an outage."""
        if self.hour is None:
            return None
        nxt = self.hour + HOUR
        since = self._silent_since()
        if since is not None and not self.alerting:
            nxt = min(nxt, since + self.params.max_silence)
        return nxt

    def state_time(self) -> datetime | None:
        times = [t for t in (self.hour, self.last_post) if t is not None]
        return max(times) if times else None

    def resumed(self, now: datetime) -> None:
        self.started = now  # the daemon's own downtime is not a source outage

    def observe(self, item: EnrichedPost, now: datetime) -> list[Signal]:
        at = item.post.created_at
        self._advance(max(now, at))
        assert self.hour is not None
        if at >= self.hour:
            self.count += 1
        signals: list[Signal] = []
        if self.alerting:
            self.alerting = False
            since = self._silent_since() or at
            signals.append(self.signal(
                at, "resolved",
                f"{self.brand.name}: mentions are arriving again after "
                f"{_fmt(max(now, at) - since)} of silence (source '{item.post.source}')",
                details={"silent_since": since.isoformat(), "resumed_at": at.isoformat(),
                         "source": item.post.source,
                         "headline": f"Mentions of {self.brand.name} are arriving again "
                                     f"after {_fmt(max(now, at) - since)} of silence"}))
        if self.last_post is None or at > self.last_post:
            self.last_post = at
        self._dirty = True
        return signals

    def tick(self, now: datetime) -> list[Signal]:
        self._advance(now)
        since = self._silent_since()
        if self.alerting or since is None or not self._outage(now):
            return []
        self.alerting = True
        self._dirty = True
        expected = self.expected(since, now)
        summary = (f"{self.brand.name}: no mention for {_fmt(now - since)} where "
                   f"~{expected:.0f} were expected. This is a collection problem to check "
                   f"(a source down, credentials, filters), not a brand event.")
        return [self.signal(now, "firing", summary, details={
            "headline": (f"No mention of {self.brand.name} for {_fmt(now - since)}, where "
                         f"about {expected:.0f} were expected: check the collection (a "
                         f"source down, credentials, filters)"),
            "observed": 0, "expected": round(expected, 1),
            "threshold": self.params.min_expected,
            "silent_since": since.isoformat(),
            "window": {"start": since.isoformat(), "seconds": (now - since).total_seconds()},
            "max_silence_seconds": self.params.max_silence.total_seconds(),
        })]

    # -- persistence -------------------------------------------------------------
    def dirty(self) -> bool:
        dirty, self._dirty = self._dirty, False
        return dirty

    def to_state(self) -> dict[str, Any]:
        return {"rates": self.rates, "learned": self.learned, "count": self.count,
                "hour": self.hour.timestamp() if self.hour else None,
                "last_post": self.last_post.timestamp() if self.last_post else None,
                "alerting": self.alerting}

    def load_state(self, state: dict[str, Any]) -> None:
        rates = state["rates"]
        if len(rates) != 24:
            raise ValueError("rates must have 24 slots")
        self.rates = [None if r is None else float(r) for r in rates]
        self.learned = int(state["learned"])
        self.count = int(state.get("count", 0))
        hour, last = state.get("hour"), state.get("last_post")
        self.hour = datetime.fromtimestamp(float(hour), UTC) if hour is not None else None
        self.last_post = datetime.fromtimestamp(float(last), UTC) if last is not None else None
        self.alerting = bool(state.get("alerting", False))
