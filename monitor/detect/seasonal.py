"""Seasonal baseline of a count series: level x hour-of-day shape x weekday factor.

``expected(t) = level * daily(t) * weekly(t)`` (counts per bucket), where

* ``level`` is a local-level Kalman filter on the de-seasonalised rate.  Its relative
  variance ``level_var`` grows by ``drift_var`` per bucket elapsed -- including buckets
  that were never seen (collection gaps) -- and shrinks with every learned bucket.  So the
  first buckets set the level almost outright (warm-up), a restart after a gap
  re-learns quickly, and the level's own uncertainty is reported to the detector, which
  widens its tails accordingly instead of firing on a stale baseline.
* ``daily`` holds 24 hourly factors (mean 1), linearly interpolated between hour
  centres; each is an exponentially weighted mean (half-life ``daily_halflife_days``)
  of the ratio count / (level * weekly), a plain mean while it has few observations.
* ``weekly`` holds 7 weekday factors (mean 1), learned the same way over weeks.

Seasonal factors are shrunk toward 1 while young and their remaining uncertainty
(prior variance ``shape_prior_var`` divided by ``1 + days observed``) is added to the
level's, so the detector is cautious on day one and fully seasonal after a week or two.
Memory is fixed: 31 factors, their counts and the level state (no history kept).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

HOURS = 24
DAYS = 7


def _rate(halflife: float) -> float:
    """Per-step EWMA weight giving the requested half-life (in steps)."""
    return 1.0 - 0.5 ** (1.0 / max(halflife, 1e-9))


@dataclass(slots=True)
class SeasonalBaseline:
    """Mutable baseline state; see the module docstring for the model."""

    buckets_per_day: float
    drift_var: float
    daily_halflife_days: float = 7.0
    weekly_halflife_days: float = 28.0
    shape_prior_var: float = 0.09
    level: float = 0.0
    level_var: float = 1e6
    last_bucket: int | None = None
    n_learned: int = 0
    daily: list[float] = field(default_factory=lambda: [1.0] * HOURS)
    daily_n: list[float] = field(default_factory=lambda: [0.0] * HOURS)
    weekly: list[float] = field(default_factory=lambda: [1.0] * DAYS)
    weekly_n: list[float] = field(default_factory=lambda: [0.0] * DAYS)

    # -- lookup -----------------------------------------------------------------------
    def _daily_slots(self, hour: float) -> tuple[int, int, float]:
        pos = hour - 0.5
        lo = math.floor(pos)
        frac = pos - lo
        return lo % HOURS, (lo + 1) % HOURS, frac

    def factors(self, hour: float, weekday: int) -> tuple[float, float, float]:
        """(daily, weekly, shape variance) at a time given as UTC hour (fractional) and weekday."""
        i, j, f = self._daily_slots(hour)
        d = (1.0 - f) * self.daily[i] + f * self.daily[j]
        n_days = ((1.0 - f) * self.daily_n[i] + f * self.daily_n[j]) * HOURS / self.buckets_per_day
        n_weeks = self.weekly_n[weekday] / self.buckets_per_day
        var = self.shape_prior_var * (1.0 / (1.0 + n_days) + 0.25 / (1.0 + n_weeks))
        return max(d, 1e-3), max(self.weekly[weekday], 1e-3), var

    def predicted_level_var(self, bucket: int) -> float:
        """Relative variance of the level at ``bucket`` (grows across unseen buckets)."""
        if self.last_bucket is None:
            return self.level_var
        steps = max(bucket - self.last_bucket, 1)
        return self.level_var + self.drift_var * steps

    def expected(self, bucket: int, hour: float, weekday: int) -> tuple[float, float]:
        """(expected count per bucket, extra relative variance of that expectation)."""
        d, w, shape_var = self.factors(hour, weekday)
        return self.level * d * w, self.predicted_level_var(bucket) + shape_var

    # -- learning ---------------------------------------------------------------------
    def learn(self, bucket: int, hour: float, weekday: int, count: float, noise_var: float) -> None:
        """Absorb one closed (already winsorised) bucket.

        ``noise_var`` is the relative variance of a single bucket around its expectation
        (over-dispersion + Poisson), the Kalman filter's observation noise.
        """
        d, w, _ = self.factors(hour, weekday)
        if self.n_learned == 0:
            self.level = count / (d * w)
            self.level_var = noise_var
        else:
            p = self.predicted_level_var(bucket)
            gain = p / (p + noise_var)
            self.level += gain * (count / (d * w) - self.level)
            self.level_var = (1.0 - gain) * p
        self.level = max(self.level, 1e-6)
        self.last_bucket = bucket if self.last_bucket is None else max(bucket, self.last_bucket)
        self.n_learned += 1

        per_day = self.buckets_per_day
        i, j, f = self._daily_slots(hour)
        ratio_d = count / (self.level * w)
        rate_d = _rate(self.daily_halflife_days * per_day / HOURS)
        for slot, weight in ((i, 1.0 - f), (j, f)):
            if weight <= 0.0:
                continue
            self.daily_n[slot] += weight
            eta = weight * max(rate_d, 1.0 / self.daily_n[slot])
            self.daily[slot] += min(eta, 1.0) * (ratio_d - self.daily[slot])
        ratio_w = count / (self.level * d)
        self.weekly_n[weekday] += 1.0
        eta_w = max(_rate(self.weekly_halflife_days / DAYS * per_day), 1.0 / self.weekly_n[weekday])
        self.weekly[weekday] += eta_w * (ratio_w - self.weekly[weekday])
        if self.n_learned % 12 == 0:
            self._normalise()

    def _normalise(self) -> None:
        """Keep the factors at mean 1 (over the slots seen so far); the level absorbs the rest."""
        for values, counts in ((self.daily, self.daily_n), (self.weekly, self.weekly_n)):
            seen = [v for v, n in zip(values, counts, strict=True) if n > 0]
            if not seen:
                continue
            mean = sum(seen) / len(seen)
            if mean <= 0.0:
                continue
            for k, n in enumerate(counts):
                if n > 0:
                    values[k] /= mean
            self.level *= mean

    # -- persistence ------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "level": self.level, "level_var": self.level_var, "last_bucket": self.last_bucket,
            "n_learned": self.n_learned, "daily": list(self.daily), "daily_n": list(self.daily_n),
            "weekly": list(self.weekly), "weekly_n": list(self.weekly_n),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.level = float(state["level"])
        self.level_var = float(state["level_var"])
        last = state["last_bucket"]
        self.last_bucket = None if last is None else int(last)
        self.n_learned = int(state["n_learned"])
        self.daily = _floats(state["daily"], HOURS)
        self.daily_n = _floats(state["daily_n"], HOURS)
        self.weekly = _floats(state["weekly"], DAYS)
        self.weekly_n = _floats(state["weekly_n"], DAYS)


def _floats(values: Any, size: int) -> list[float]:
    out = [float(v) for v in values]
    if len(out) != size:
        raise ValueError(f"expected {size} values, got {len(out)}")
    return out
