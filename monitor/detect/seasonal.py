"""Robust seasonal baseline of a count series: the typical count at this time of day.

The profile keeps the last ``days`` days of (winsorised) bucket counts in a ring of
``days * slots_per_day`` cells -- 2,016 numbers for a week of 5-minute buckets, the
only per-series memory that grows with the period.  The expected count of bucket ``b``
is the **median over the previous days** of the count around the same time of day
(the mean of the ``2 * smooth + 1`` buckets centred on that time, so that small,
mostly-zero series get a usable rate instead of a median of zeros).

Why a median of days: a brand's daily rhythm is stable while single days are not --
a news day, an outage or last night's spike is one value out of seven and cannot move
the median.  A lasting change of level is followed once it has lasted about half the
window (three to four days for a week).

Before a full day has been seen there is no value for the time of day yet; the
baseline is then the running level of everything seen so far (an exponentially
weighted mean with a one-hour half-life, a plain mean at first), and
:meth:`SeasonalProfile.expected` reports an extra relative variance
``shape_prior_var / (1 + days seen) ** 2`` for the unknown daily shape, which the
detector adds to its dispersion so it is cautious on day one.

Missing buckets (collection gaps) are simply absent from the ring: medians use the
days that have data at that time, and nothing is decayed or reset by a gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


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

    def __post_init__(self) -> None:
        size = self.days * self.slots_per_day
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

    def expected(self, bucket: int) -> tuple[float, float]:
        """(expected count of ``bucket``, extra relative variance of that expectation)."""
        days = self._day_values(bucket)
        n = len(days)
        if n == 0:
            return self.level, self.shape_prior_var
        days.sort()
        mid = n // 2
        median = days[mid] if n % 2 else 0.5 * (days[mid - 1] + days[mid])
        return median, self.shape_prior_var / (1.0 + n) ** 2

    def learn(self, bucket: int, count: float) -> None:
        """Store one closed, already winsorised bucket."""
        i = bucket % self.size
        self.values[i] = count
        self.stamps[i] = bucket
        self.n_learned += 1
        rate = max(1.0 - 0.5 ** (1.0 / self.level_halflife), 1.0 / self.n_learned)
        self.level += rate * (count - self.level)
        self.last_bucket = bucket if self.last_bucket is None else max(bucket, self.last_bucket)

    # -- persistence ------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Compact JSON form: only the cells that hold data, as [bucket, count] pairs."""
        cells = [[s, v] for s, v in zip(self.stamps, self.values, strict=True) if s >= 0]
        return {"level": self.level, "n_learned": self.n_learned,
                "last_bucket": self.last_bucket, "cells": cells}

    def load_state(self, state: dict[str, Any]) -> None:
        self.level = float(state["level"])
        self.n_learned = int(state["n_learned"])
        last = state["last_bucket"]
        self.last_bucket = None if last is None else int(last)
        for stamp, value in state["cells"]:
            b = int(stamp)
            v = float(value)
            if not math.isfinite(v):
                raise ValueError("non-finite count in seasonal profile state")
            self.values[b % self.size] = v
            self.stamps[b % self.size] = b
