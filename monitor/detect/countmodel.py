"""Per-brand mention-volume spike detector: seasonal baseline + negative-binomial tails.

Model
-----
Each closed bucket (default 5 minutes) updates a :class:`~monitor.detect.seasonal.
SeasonalBaseline` -- a Kalman-filtered level times an hour-of-day shape times a weekday
factor -- that gives the expected count ``mu`` of any bucket and the relative
uncertainty ``v`` of that expectation.  Counts are negative binomial around it,
``Var = mu + alpha * mu**2``, with the over-dispersion ``alpha`` learned from the
model's own one-step-ahead residuals, separately for every evaluation scale.

A bucket is scored at several scales (``scales``, default 1, 3 and 12 buckets: 5 min,
15 min, 1 hour): the observed sum of the last ``m`` buckets (the running one included)
is compared with the expected sum under NB(sum, ``alpha_m + v``).  The
**statistic** is the largest ``-log10 P(X >= observed)`` over the scales, so a single
huge bucket and a sustained moderate rise both count; counts below the expectation
score 0.  Only the upper tail is tested (a spike detector), and because the tail is a
count distribution, 3 mentions where 0.2 are expected is judged as such, not by a
z-score.

Sensitivity (one knob)
----------------------
``sensitivity`` is the *nominal* false-alert budget: the threshold is the surprise a
bucket must reach so that, if the model were exact, about ``rate`` buckets per day
would reach it on some scale, i.e. ``threshold = log10(buckets_per_day * n_scales /
rate)``.  Names map to rates: ``"low"`` = 0.001/day, ``"medium"`` = 0.01/day, ``"high"``
= 0.1/day; a number is taken as the rate itself (alerts per day, > 0).  Real series
have heavier tails than any fitted model, so the realised rate is higher than nominal.

Episodes
--------
``fired`` is set once, on the transition into an episode; the episode stays ``active``
until ``calm_buckets`` consecutive closed buckets score below ``calm_surprise`` (p > 1%
at every scale by default), and the next evaluation then reports ``resolved``.
Calling :meth:`CountModel.evaluate` again for the same running bucket with a growing
count never fires twice.

Robust learning
---------------
:meth:`CountModel.learn` winsorises a bucket at ``winsor_z`` standard deviations
around its expectation before it enters the baseline, and buckets of an active episode
do not update the dispersion, so a spike barely moves the baseline it is judged
against.

Warm-up, gaps and restarts
--------------------------
Nothing fires until ``warmup_buckets`` (default 12, one hour) buckets were learned.
From then on the baseline is the level seen so far, with the daily and weekly shapes
treated as unknown (their prior variance widens the tails) until days and weeks of
data shrink that uncertainty: alerts from hour one are possible but conservative; the
model is fully seasonal after one to two weeks.  Missing buckets (a collection gap)
are simply not learned: the level's variance grows with the time elapsed, so the first
buckets after a gap are judged with wider tails and quickly re-set the level -- no
false spike on recovery.  :meth:`CountModel.to_state` / :meth:`CountModel.from_state`
persist everything (about 100 numbers) as JSON, so a restart is warm.
"""

from __future__ import annotations

import csv
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.clock import utc
from monitor.detect.countmodel_stats import TailCalibrator, nb_quantile_hi, nb_surprise
from monitor.detect.seasonal import SeasonalProfile

Sensitivity = str | float
SENSITIVITY_RATES: dict[str, float] = {"low": 0.001, "medium": 0.01, "high": 0.1}
_STATE_VERSION = 1
_ALPHA_FLOOR = 1e-3
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CountModelParams:
    """Detector parameters; one configuration is meant to serve every brand.

    bucket_seconds:       bucket width (the series' sampling step).
    sensitivity:          "low" | "medium" | "high" or a nominal false-alert rate per day.
    min_count:            never fire while the running bucket holds fewer mentions.
    scales:               window lengths (in buckets) tested at every evaluation.
    level_drift_per_day:  how fast the underlying rate may wander: log-scale standard
                          deviation per day of the level's random walk (sets the level
                          filter's speed and how much a gap widens the tails).
    daily_halflife_days:  memory of the hour-of-day shape.
    weekly_halflife_days: memory of the weekday factors.
    shape_prior_var:      log-scale variance of the seasonal shape before any data.
    dispersion_halflife_days: memory of the over-dispersion estimates.
    prior_dispersion:     over-dispersion assumed before residuals are seen.
    winsor_z:             buckets are clipped at this many standard deviations before
                          they are learned (outlier-robust baseline).
    warmup_buckets:       buckets to learn before anything can fire.
    calm_surprise:        an episode ends after ``calm_buckets`` closed buckets whose
    calm_buckets:         statistic stays below ``calm_surprise`` (-log10 p).
    """

    bucket_seconds: int = 300
    sensitivity: Sensitivity = "medium"
    min_count: int = 0
    scales: tuple[int, ...] = (1, 3, 12)
    profile_days: int = 7
    smooth_buckets: int = 2
    shape_prior_var: float = 0.25
    dispersion_halflife_days: float = 3.0
    prior_dispersion: float = 0.25
    calibration_halflife_days: float = 28.0
    winsor_z: float = 3.0
    pseudo_count: float = 1.0
    cap_sums: bool = False
    warmup_buckets: int = 12
    calm_surprise: float = 2.0
    calm_buckets: int = 6

    def __post_init__(self) -> None:
        if self.bucket_seconds <= 0 or 86400 % self.bucket_seconds:
            raise ValueError("bucket_seconds must divide a day")
        if self.profile_days < 1:
            raise ValueError("profile_days must be at least 1")
        if not self.scales or min(self.scales) < 1 or list(self.scales) != sorted(set(self.scales)):
            raise ValueError("scales must be increasing positive bucket counts")
        sensitivity_rate(self.sensitivity)

    @property
    def buckets_per_day(self) -> float:
        return 86400.0 / self.bucket_seconds

    @property
    def threshold(self) -> float:
        """The statistic (``-log10`` tail probability) at which an episode fires."""
        rate = sensitivity_rate(self.sensitivity)
        return math.log10(self.buckets_per_day * len(self.scales) / rate)


def sensitivity_rate(sensitivity: Sensitivity) -> float:
    """Nominal false alerts per day for a sensitivity name or number (see module doc)."""
    if isinstance(sensitivity, str):
        try:
            return SENSITIVITY_RATES[sensitivity]
        except KeyError:
            raise ValueError(
                f"sensitivity must be one of {', '.join(SENSITIVITY_RATES)} or a number"
            ) from None
    rate = float(sensitivity)
    if not rate > 0.0 or math.isinf(rate):
        raise ValueError("numeric sensitivity is a false-alert rate per day and must be > 0")
    return rate


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one evaluation.

    statistic: largest ``-log10 P(sum >= observed)`` over the scales (0 when at or below
    the expectation); ``threshold`` is the value it must reach to fire.
    expected: expected count of the (running part of the) bucket.
    """

    fired: bool
    active: bool
    resolved: bool
    observed: float
    expected: float
    statistic: float
    threshold: float
    warm: bool


@dataclass(slots=True)
class _Dispersion:
    """Weighted running moment estimate of alpha for one scale."""

    num: float = 0.0
    den: float = 0.0

    def value(self, prior: float) -> float:
        return max(self.num / self.den, _ALPHA_FLOOR) if self.den > 0.0 else prior


class CountModel:
    """Online detector for one count series (see the module docstring)."""

    def __init__(self, params: CountModelParams) -> None:
        self.params = params
        per_day = params.buckets_per_day
        self._threshold = params.threshold
        self._decay = 0.5 ** (1.0 / (params.dispersion_halflife_days * per_day))
        self._base = SeasonalProfile(
            slots_per_day=86400 // params.bucket_seconds,
            days=params.profile_days,
            smooth=params.smooth_buckets,
            shape_prior_var=params.shape_prior_var,
        )
        self._disp = [_Dispersion() for _ in params.scales]
        self._calib = [TailCalibrator() for _ in params.scales]
        self._combo = TailCalibrator()
        self._calib_decay = 0.5 ** (1.0 / (params.calibration_halflife_days * per_day))
        self._cache: tuple[int, float, list[tuple[float, float]]] | None = None
        self._mu_cache: tuple[int, float, float] | None = None
        self._history: deque[tuple[int, float, float, float]] = deque(maxlen=max(params.scales))
        self._active = False
        self._calm = 0
        self._pending_resolve = False

    # -- time ---------------------------------------------------------------------------
    def _locate(self, when: datetime) -> int:
        """The bucket number (since the epoch, UTC) that ``when`` falls in."""
        seconds = (utc(when) - _EPOCH).total_seconds()
        return math.floor(seconds / self.params.bucket_seconds)

    # -- scoring ------------------------------------------------------------------------
    def _window_sums(self, bucket: int) -> list[tuple[float, float, float, int]]:
        """(observed, capped observed, expected, buckets seen) over each scale's closed part."""
        sums: list[tuple[float, float, float, int]] = []
        obs = cap = exp = 0.0
        seen = 0
        entries = reversed(self._history)
        entry = next(entries, None)
        for scale in self.params.scales:
            low = bucket - scale
            while entry is not None and entry[0] > low:
                if entry[0] < bucket:
                    obs += entry[1]
                    cap += entry[2]
                    exp += entry[3]
                    seen += 1
                entry = next(entries, None)
            sums.append((obs, cap, exp, seen))
        return sums

    def _raw(self, bucket: int, count: float, mu: float, extra: float,
             fraction: float) -> list[tuple[float, float]]:
        """(count-model surprise, shrunk log rate ratio) of ``count`` at every scale."""
        p = self.params
        expected = mu * fraction
        capped = min(count, self._cap(expected, extra))
        out: list[tuple[float, float]] = []
        for scale, (obs, cap, exp, seen), disp in zip(p.scales, self._window_sums(bucket),
                                                      self._disp, strict=True):
            if scale == 1 or not p.cap_sums:
                total = obs + count
            else:
                total = cap + capped
            mean = exp + expected
            shrink = p.pseudo_count * (seen + fraction)
            nb = nb_surprise(total, mean, disp.value(p.prior_dispersion) + extra)
            out.append((nb, math.log((total + shrink) / (mean + shrink))))
        return out

    def _cap(self, mu: float, extra: float) -> float:
        """Winsorising bound of one bucket: ``winsor_z`` standard deviations above ``mu``."""
        alpha = self._disp[0].value(self.params.prior_dispersion) + extra
        return nb_quantile_hi(mu, alpha, self.params.winsor_z)

    def _evidence(self, raws: list[tuple[float, float]]) -> float:
        """Mean over scales of min(count-model surprise, calibrated effect-size surprise)."""
        total = 0.0
        for calib, (nb, z) in zip(self._calib, raws, strict=True):
            total += min(nb, calib.surprise(z))
        return total / len(raws)

    def _statistic(self, evidence: float) -> float:
        combined = self._combo.surprise(evidence)
        return evidence if math.isinf(combined) else combined

    def _expect(self, bucket: int) -> tuple[float, float]:
        cached = self._mu_cache
        if cached is not None and cached[0] == bucket:
            return cached[1], cached[2]
        mu, extra = self._base.expected(bucket)
        mu = max(mu, 1e-3)
        self._mu_cache = (bucket, mu, extra)
        return mu, extra

    @property
    def warm(self) -> bool:
        return self._base.n_learned >= self.params.warmup_buckets

    def evaluate(self, bucket_start: datetime, count: float, *, fraction: float = 1.0) -> Verdict:
        """Score a running bucket (``fraction`` = elapsed share of it); does not learn.

        Calling it repeatedly for the same bucket with growing counts fires at most once
        per episode.
        """
        fraction = min(max(fraction, 1e-3), 1.0)
        bucket = self._locate(bucket_start)
        warm = self.warm
        if self._base.n_learned == 0:
            return Verdict(False, self._active, False, count, 0.0, 0.0, self._threshold, False)
        mu, extra = self._expect(bucket)
        raws = self._raw(bucket, count, mu, extra, fraction)
        if fraction >= 1.0:
            self._cache = (bucket, count, raws)
        statistic = self._statistic(self._evidence(raws))
        fired = resolved = False
        if self._active:
            if self._pending_resolve and statistic < self.params.calm_surprise:
                self._active = self._pending_resolve = False
                self._calm = 0
                resolved = True
        elif warm and statistic >= self._threshold and count >= self.params.min_count:
            self._active = fired = True
            self._calm = 0
            self._pending_resolve = False
        return Verdict(fired, self._active, resolved, count, mu * fraction, statistic,
                       self._threshold, warm)

    def learn(self, bucket_start: datetime, count: float) -> None:
        """Let a closed bucket enter the baseline (missing buckets are simply never learned)."""
        p = self.params
        bucket = self._locate(bucket_start)
        if self._history and bucket <= self._history[-1][0]:
            return  # already learned (or out of order): the baseline only moves forward
        count = max(float(count), 0.0)
        if self._base.n_learned == 0:
            self._base.learn(bucket, count)
            self._history.append((bucket, count, count, count))
            return
        mu, extra = self._expect(bucket)
        cached = self._cache
        if cached is not None and cached[0] == bucket and cached[1] == count:
            raws = cached[2]
        else:
            raws = self._raw(bucket, count, mu, extra, 1.0)
        self._cache = None
        hi = self._cap(mu, extra)
        clipped = min(max(count, 2.0 * mu - hi), hi)
        self._history.append((bucket, count, min(count, hi), mu))
        self._base.learn(bucket, clipped)
        self._mu_cache = None
        evidence = self._evidence(raws)
        if self._active:
            calm = self._statistic(evidence) < p.calm_surprise
            self._calm = self._calm + 1 if calm else 0
            self._pending_resolve = self._calm >= p.calm_buckets
            return  # an episode's buckets teach neither dispersion nor calibration
        for calib, (_, z) in zip(self._calib, raws, strict=True):
            calib.observe(z, self._calib_decay)
        if not math.isinf(evidence):
            self._combo.observe(evidence, self._calib_decay)
        self._update_dispersion(bucket, count, min(count, hi), mu, extra)

    def _update_dispersion(self, bucket: int, count: float, capped: float, mu: float,
                           extra: float) -> None:
        prior = self.params.prior_dispersion
        sums = self._window_sums(bucket)
        for scale, disp, (obs, cap, exp, seen) in zip(self.params.scales, self._disp, sums,
                                                      strict=True):
            if seen + 1 < scale:
                continue  # a gap inside the window: skip rather than mix scales
            if scale == 1 or not self.params.cap_sums:
                observed = obs + count
            else:
                observed = cap + capped
            expected = exp + mu
            alpha = disp.value(prior)
            var = expected + (alpha + extra) * expected * expected
            sq = min((observed - expected) ** 2, 16.0 * var)
            r = (sq - expected) / (expected * expected) - extra
            w = (expected / (1.0 + (alpha + extra) * expected)) ** 2
            if disp.den == 0.0:
                disp.num, disp.den = prior * w * 12.0, w * 12.0
            disp.num = self._decay * disp.num + w * r
            disp.den = self._decay * disp.den + w

    # -- persistence --------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """JSON-serialisable snapshot (params are not included; pass them to from_state)."""
        return {
            "version": _STATE_VERSION,
            "bucket_seconds": self.params.bucket_seconds,
            "scales": list(self.params.scales),
            "baseline": self._base.to_state(),
            "dispersion": [[d.num, d.den] for d in self._disp],
            "calibration": [c.to_state() for c in self._calib],
            "combined": self._combo.to_state(),
            "history": [list(h) for h in self._history],
            "active": self._active,
            "calm": self._calm,
            "pending_resolve": self._pending_resolve,
        }

    @classmethod
    def from_state(cls, params: CountModelParams, state: dict[str, Any]) -> CountModel:
        """Rebuild a model from :meth:`to_state`; a state for other buckets/scales is refused."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported count model state version {state.get('version')!r}")
        if (state.get("bucket_seconds") != params.bucket_seconds
                or list(state.get("scales", ())) != list(params.scales)):
            raise ValueError("count model state was saved with other bucket_seconds/scales")
        model = cls(params)
        model._base.load_state(state["baseline"])
        for disp, (num, den) in zip(model._disp, state["dispersion"], strict=True):
            disp.num, disp.den = float(num), float(den)
        for calib, values in zip(model._calib, state["calibration"], strict=True):
            calib.load_state(values)
        model._combo.load_state(state["combined"])
        for b, obs, cap, exp in state["history"]:
            model._history.append((int(b), float(obs), float(cap), float(exp)))
        model._active = bool(state["active"])
        model._calm = int(state["calm"])
        model._pending_resolve = bool(state["pending_resolve"])
        return model


def backtest(rows: Sequence[tuple[datetime, float]], params: CountModelParams) -> list[datetime]:
    """Feed a complete series in order (evaluate at fraction 1.0, then learn); return firings."""
    model = CountModel(params)
    fired: list[datetime] = []
    for when, count in rows:
        if model.evaluate(when, count).fired:
            fired.append(when)
        model.learn(when, count)
    return fired


def load_series_csv(path: Path) -> list[tuple[datetime, float]]:
    """Read a NAB ``timestamp,value`` CSV; naive timestamps are returned as given (UTC)."""
    rows: list[tuple[datetime, float]] = []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"timestamp", "value"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected a 'timestamp,value' header")
        for line, rec in enumerate(reader, start=2):
            try:
                rows.append((datetime.fromisoformat(rec["timestamp"].strip()),
                             float(rec["value"])))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{line}: {exc}") from None
    return rows
