"""Time structure of a count series: the time-of-day profile and the recent window.

:class:`SeasonalProfile` keeps the last ``days`` days of (winsorised) bucket counts in
a ring of ``days * slots_per_day`` cells -- 2,016 numbers for a week of 5-minute
buckets, the only per-series memory that grows with the period.  The expected count of
bucket ``b`` is a **trimmed mean over the previous days** of the count around the same
time of day (the mean of the ``2 * smooth + 1`` buckets centred on that time, so that
small, mostly-zero series get a usable rate), dropping the highest and lowest fifth of
the days (at least one each once three days are known).

Why days and a trimmed mean: a brand's daily rhythm is stable while single days are
not -- a news day, an outage or last night's spike is one value out of seven and is
trimmed away.  A lasting change of level is followed once it has lasted about half the
window.

The weekly rhythm is multiplicative: :class:`WeekRhythm` learns a factor per weekday
(UTC), the ring stores counts divided by their day's factor and the expectation is the
trimmed mean times the factor of the day asked about -- a Sunday is judged against
Sundays' usual share of a week, from the days of the last week.  Factors come from a
robust daily level (a median of 3-hour blocks, not day totals, which news dominates)
and are shrunk toward "no weekly effect" by two pseudo-weeks, so one odd Saturday does
not teach the detector that Saturdays are busy: about half the weekend dip is learned
after two weeks, two thirds after four.

Before a full day has been seen there is no value for the time of day yet; the
baseline is then the running level of everything seen so far (an exponentially
weighted mean with a one-hour half-life, a plain mean at first), and
:meth:`SeasonalProfile.expected` reports an extra relative variance
``shape_prior_var / (1 + days seen) ** 2`` for the unknown daily shape, which the
detector adds to its dispersion so it is cautious on day one.

Missing buckets (collection gaps) are simply absent from the ring: means use the days
that have data at that time, and nothing is decayed or reset by a gap.

:class:`WindowSums` keeps the recent buckets' observed and expected counts for the
multi-scale windows of the detector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

_DOW_OFFSET = 3  # 1970-01-01, day 0 of the bucket numbering, was a Thursday (Monday = 0)
_BLOCKS = 8     # a day is compared with its baseline in 8 blocks of 3 hours


@dataclass(slots=True)
class WeekRhythm:
    """Day-of-week factors: how busy each weekday (UTC) is relative to the baseline.

    When a day closes, its level is measured robustly against the day-of-week-neutral
    baseline: the **median** over its eight 3-hour blocks of observed / expected (blocks
    expecting less than one mention are skipped; at least five are needed), so a
    news event of a few hours does not move it.  The log of that ratio is averaged
    per weekday over the past weeks (half-life ``halflife_weeks``) and shrunk toward 0
    (no weekly effect) by ``prior_weight`` pseudo-weeks.  Factors describe the brand,
    not the last week, so they survive a baseline reset after a long gap.
    """

    slots_per_day: int
    prior_weight: float = 2.0
    halflife_weeks: float = 4.0
    num: list[float] = field(default_factory=lambda: [0.0] * 7)
    den: list[float] = field(default_factory=lambda: [0.0] * 7)
    day: int | None = None
    obs: list[float] = field(default_factory=lambda: [0.0] * _BLOCKS)
    exp: list[float] = field(default_factory=lambda: [0.0] * _BLOCKS)

    def factor(self, bucket: int) -> float:
        """Multiplier of the weekday ``bucket`` falls on (1.0 while nothing is known)."""
        dow = (bucket // self.slots_per_day + _DOW_OFFSET) % 7
        return math.exp(self.num[dow] / (self.den[dow] + self.prior_weight))

    def observe(self, bucket: int, count: float, base: float) -> None:
        """A learned bucket with its day-of-week-neutral expectation ``base``."""
        day = bucket // self.slots_per_day
        if day != self.day:
            self._close()
            self.day = day
            self.obs = [0.0] * _BLOCKS
            self.exp = [0.0] * _BLOCKS
        block = (bucket % self.slots_per_day) * _BLOCKS // self.slots_per_day
        self.obs[block] += count
        self.exp[block] += base

    def _close(self) -> None:
        if self.day is None:
            return
        ratios = sorted(o / e for o, e in zip(self.obs, self.exp, strict=True) if e >= 1.0)
        if len(ratios) < 5:
            return
        n = len(ratios)
        median = (ratios[n // 2] if n % 2 else 0.5 * (ratios[n // 2 - 1] + ratios[n // 2]))
        log_ratio = min(max(math.log(max(median, 1e-3)), -2.0), 2.0)
        dow = (self.day + _DOW_OFFSET) % 7
        decay = 0.5 ** (1.0 / self.halflife_weeks)
        self.num[dow] = decay * self.num[dow] + log_ratio
        self.den[dow] = decay * self.den[dow] + 1.0

    def to_state(self) -> dict[str, Any]:
        return {"num": list(self.num), "den": list(self.den), "day": self.day,
                "obs": list(self.obs), "exp": list(self.exp)}

    def load_state(self, state: dict[str, Any]) -> None:
        num, den = [float(v) for v in state["num"]], [float(v) for v in state["den"]]
        obs, exp = [float(v) for v in state["obs"]], [float(v) for v in state["exp"]]
        if (len(num), len(den), len(obs), len(exp)) != (7, 7, _BLOCKS, _BLOCKS) or not all(
                math.isfinite(v) for v in (*num, *den, *obs, *exp)):
            raise ValueError("bad week rhythm in state")
        self.num, self.den, self.obs, self.exp = num, den, obs, exp
        day = state["day"]
        self.day = None if day is None else int(day)


@dataclass(slots=True)
class SeasonalProfile:
    """Ring of recent bucket counts by time of day; see the module docstring."""

    slots_per_day: int
    days: int = 7
    smooth: int = 2
    shape_prior_var: float = 0.25
    level_halflife: float = 12.0
    level: float = 0.0
    n_learned: int = 0
    last_bucket: int | None = None
    values: list[float] = field(default_factory=list)
    stamps: list[int] = field(default_factory=list)
    week: WeekRhythm | None = None
    # (bucket, neutral expectation, days): a bucket is asked about when it is scored
    # and again when it is learned; nothing changes in between
    _memo: tuple[int, float, int] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        size = self.days * self.slots_per_day
        if self.week is None:
            self.week = WeekRhythm(self.slots_per_day)
        if not self.values:
            self.values = [0.0] * size
            self.stamps = [-1] * size

    @property
    def size(self) -> int:
        return self.days * self.slots_per_day

    def _day_values(self, bucket: int) -> list[float]:
        """The smoothed count around ``bucket``'s time of day on each earlier day with data."""
        size, values, stamps = self.size, self.values, self.stamps
        out: list[float] = []
        for day in range(1, self.days + 1):
            centre = bucket - day * self.slots_per_day
            total = 0.0
            seen = 0
            for cell in range(centre - self.smooth, centre + self.smooth + 1):
                i = cell % size
                if stamps[i] == cell:
                    total += values[i]
                    seen += 1
            if seen:
                out.append(total / seen)
        return out

    def _neutral(self, bucket: int) -> tuple[float, int]:
        """(day-of-week-neutral expectation of ``bucket``, days behind it; 0 = none)."""
        memo = self._memo
        if memo is not None and memo[0] == bucket:
            return memo[1], memo[2]
        days = self._day_values(bucket)
        n = len(days)
        if n == 0:
            base = self.level
        else:
            if n >= 3:
                days.sort()
                trim = max(1, round(0.2 * n))
                days = days[trim:n - trim]
            base = sum(days) / len(days)
        self._memo = (bucket, base, n)
        return base, n

    def expected(self, bucket: int) -> tuple[float, float]:
        """(expected count of ``bucket``, extra relative variance of that expectation)."""
        base, n = self._neutral(bucket)
        if n == 0:
            return base, self.shape_prior_var
        assert self.week is not None
        return base * self.week.factor(bucket), self.shape_prior_var / (1.0 + n) ** 2

    def learn(self, bucket: int, count: float) -> None:
        """Store one closed, already winsorised bucket."""
        week = self.week
        assert week is not None
        base, n = self._neutral(bucket)
        if n:
            week.observe(bucket, count, base)
        self._memo = None
        i = bucket % self.size
        self.values[i] = count / week.factor(bucket)
        self.stamps[i] = bucket
        self.n_learned += 1
        rate = max(1.0 - 0.5 ** (1.0 / self.level_halflife), 1.0 / self.n_learned)
        self.level += rate * (count - self.level)
        self.last_bucket = bucket if self.last_bucket is None else max(bucket, self.last_bucket)

    # -- persistence ------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """JSON form: the ring from oldest to newest bucket, ``None`` where nothing was seen."""
        last = self.last_bucket
        ring: list[float | None] = []
        if last is not None:
            size, values, stamps = self.size, self.values, self.stamps
            ring = [values[cell % size] if stamps[cell % size] == cell else None
                    for cell in range(last - size + 1, last + 1)]
        assert self.week is not None
        return {"level": self.level, "n_learned": self.n_learned, "last_bucket": last,
                "ring": ring, "week": self.week.to_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self._memo = None
        self.level = float(state["level"])
        self.n_learned = int(state["n_learned"])
        last = state["last_bucket"]
        self.last_bucket = None if last is None else int(last)
        if "week" in state:  # absent in states saved before the weekly rhythm
            assert self.week is not None
            self.week.load_state(state["week"])
        ring = state["ring"]
        if self.last_bucket is None or not ring:
            return
        if len(ring) != self.size:
            raise ValueError(f"profile state holds {len(ring)} buckets, expected {self.size}")
        for offset, value in enumerate(ring):
            if value is None:
                continue
            v = float(value)
            if not math.isfinite(v) or v < 0.0:
                raise ValueError("bad count in seasonal profile state")
            cell = self.last_bucket - self.size + 1 + offset
            self.values[cell % self.size] = v
            self.stamps[cell % self.size] = cell


class WindowSums:
    """Observed and expected counts of the recent buckets, summed per window length.

    For the usual call -- the bucket right after the last learned one -- the sums of
    every scale's closed part are kept up to date incrementally (O(1) per bucket);
    any other bucket (after a gap, or an old one) is summed from the kept entries.
    Only buckets that were learned count: a gap shortens a window, it adds no zeros.
    """

    def __init__(self, scales: tuple[int, ...]) -> None:
        self.scales = scales
        self.span = max(scales)
        self._buckets: list[int] = []
        self._obs: list[float] = []
        self._exp: list[float] = []
        self._start = [0] * len(scales)
        self._run = [[0.0, 0.0, 0.0] for _ in scales]
        # closed() of a bucket, until the next add: the running bucket asks on every post
        self._closed: tuple[int, list[tuple[float, float, int]]] | None = None

    def add(self, bucket: int, observed: float, expected: float) -> None:
        """Append a learned bucket (buckets must increase)."""
        self._closed = None
        self._buckets.append(bucket)
        self._obs.append(observed)
        self._exp.append(expected)
        n = len(self._buckets)
        for i, scale in enumerate(self.scales):
            run = self._run[i]
            run[0] += observed
            run[1] += expected
            run[2] += 1.0
            lo = self._start[i]
            while lo < n and self._buckets[lo] <= bucket - scale + 1:
                run[0] -= self._obs[lo]
                run[1] -= self._exp[lo]
                run[2] -= 1.0
                lo += 1
            self._start[i] = lo
        if bucket % (4 * self.span) == 0:  # trim at fixed buckets: restored copies agree
            cut = self._start[-1]
            del self._buckets[:cut], self._obs[:cut], self._exp[:cut]
            self._start = [s - cut for s in self._start]
            for i, start in enumerate(self._start):  # re-sum: no drift from +/- updates
                self._run[i] = [sum(self._obs[start:]), sum(self._exp[start:]),
                                float(len(self._obs) - start)]

    def closed(self, bucket: int) -> list[tuple[float, float, int]]:
        """Per scale: (observed, expected, buckets) over the learned buckets that precede
        ``bucket`` inside its window."""
        memo = self._closed
        if memo is not None and memo[0] == bucket:
            return memo[1]
        buckets = self._buckets
        if buckets and bucket > buckets[-1]:
            # after the last learned bucket (the next one, or the one after it while a
            # late bucket is still open): the running sums less what has left the window
            out = []
            n = len(buckets)
            for scale, run, j in zip(self.scales, self._run, self._start, strict=True):
                obs, exp, seen = run
                edge = bucket - scale
                while j < n and buckets[j] <= edge:
                    obs -= self._obs[j]
                    exp -= self._exp[j]
                    seen -= 1.0
                    j += 1
                out.append((obs, exp, round(seen)) if seen > 0.5 else (0.0, 0.0, 0))
            self._closed = (bucket, out)
            return out
        out = []
        for scale in self.scales:
            obs = exp = 0.0
            seen = 0
            for j in range(len(self._buckets) - 1, -1, -1):
                b = self._buckets[j]
                if b <= bucket - scale:
                    break
                if b < bucket:
                    obs += self._obs[j]
                    exp += self._exp[j]
                    seen += 1
            out.append((obs, exp, seen))
        self._closed = (bucket, out)
        return out

    def to_state(self) -> dict[str, Any]:
        """Exact JSON form: the entries still inside a window and the running sums."""
        first = min(self._start) if self._buckets else 0
        entries = [[self._buckets[j], self._obs[j], self._exp[j]]
                   for j in range(first, len(self._buckets))]
        return {"entries": entries, "starts": [s - first for s in self._start],
                "sums": [list(r) for r in self._run]}

    def load_state(self, state: dict[str, Any]) -> None:
        entries = state["entries"]
        self._buckets = [int(e[0]) for e in entries]
        self._obs = [float(e[1]) for e in entries]
        self._exp = [float(e[2]) for e in entries]
        starts = [int(s) for s in state["starts"]]
        sums = [[float(v) for v in r] for r in state["sums"]]
        if len(starts) != len(self.scales) or len(sums) != len(self.scales):
            raise ValueError("window state does not match the scales")
        self._start, self._run = starts, sums
        self._closed = None
