"""Absolute evidence: a second volume channel that cannot learn to ignore crises.

The burst statistic of :mod:`~monitor.detect.countmodel` is calibrated on the brand's
own history, so a brand with crises behind it learns heavier tails and judges the next
crisis ordinary (issue 14).  This channel answers a narrower question with statistics
that past extremes cannot move: *is the running bucket, or the sum of the last 2 or 3
buckets, so far above the baseline that it would be a false alarm less than once a
month?*  The volume detector fires when either channel does.

Evidence
    For each scale ``s`` in ``SCALES`` (5, 10, 15 minutes) the observed sum ``x`` of the
    running bucket and the ``s - 1`` learned buckets before it (a collection gap
    shortens the window; it adds no zeros) is compared with its expected sum ``m`` (the
    count model's seasonal baseline).  Its surprise is the *smaller* of two
    ``-log10`` tail probabilities, so it must be extreme under both:

    * the count model: negative binomial ``NB(m, alpha_s)``, with ``alpha_s`` learned
      by :class:`RobustDispersion` (a quantile match, not a moment estimate);
    * the brand's own tail: the shrunk log rate ratio ``z = ln((x + c s) / (m + c s))``
      (``c`` = the count model's pseudo-count) under :class:`RobustTail`, a
      peaks-over-threshold fit whose scale is a *median* of excesses.

    The channel's surprise is the maximum over scales.

Why it cannot go blind
    * Bounded influence: the dispersion moves by at most ``DISPERSION_GAIN`` per
      bucket in log scale whatever the count, and the tail's scale is a median (a rank
      statistic): a 100x bucket changes it exactly as much as any bucket above the
      median excess does.  Neither has a mean over raw extremes.
    * Calm history only: buckets of an alert episode (either channel) do not enter
      the dispersion, and a bucket whose evidence reaches this channel's own alarm
      level does not enter the tail (``learn(..., outlying=True)``): the channel never
      learns from what it would call a crisis, while everything below its bar,
      including the natural bursts the burst channel fires on, keeps the tail honest.
    * Old evidence decays (the tail with a half-life of the horizon, so a few days of
      extremes are a small share of it; the dispersion's step size gives it a memory
      of a few days).

Threshold (the union bound; no per-series constant)
    A brand is judged at ``HORIZON_DAYS * buckets_per_day * len(SCALES)`` (bucket,
    scale) pairs in ``HORIZON_DAYS``.  If each pair fires with probability at most
    ``p`` under the model, the expected number of false alarms in the horizon is at
    most that count times ``p`` (Boole's inequality, whatever the dependence between
    scales and buckets).  One false alarm per horizon per brand gives
    ``threshold = log10(HORIZON_DAYS * buckets_per_day * len(SCALES))``; for 5-minute
    buckets and the 90-day horizon, ``log10(25920 * 3) = 4.89`` (30 days: 4.41).

    Evaluating on arrival does not add tests: the running bucket is compared with the
    expectation of the *whole* bucket (and whole windows), so its evidence only grows
    as posts arrive and "the running count was ever surprising" is the same event as
    "the complete bucket is surprising".  The price is a firing a little later than
    the burst channel's fractional comparison would allow.

Warm-up
    The tail extrapolates a once-a-quarter probability from the top ``TAIL_SHARE`` of
    the buckets, so it speaks only once it holds a week of calm buckets (about 40
    excesses at 5-minute buckets); until then the channel is silent and the burst
    channel works alone.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from monitor.detect.countmodel_stats import (
    WeightedHistogram,
    nb_surprise_cap,
    nb_surprise_upto,
    nb_upper_share,
)

#: Window lengths in buckets (5, 10, 15 min): "within 10 minutes" needs scales up to 2,
#: and a third bucket catches a rise split across bucket borders.  Longer rises are the
#: burst channel's (scales up to 5 h 20).
SCALES: tuple[int, ...] = (1, 2, 3)
#: The union bound's horizon: at most one false alarm per brand in this many days under
#: the model.  The issue asks for rarer than one per month; at 30 days the channel cost
#: three false alerts on the NAB dev series (NAB 82.6 -> 81.6), so the bar was raised by
#: the principle, not by fitting: a quarter (90 days), at which the dev alerts are
#: exactly those of the burst channel alone.  The tail is learned over the same horizon.
HORIZON_DAYS = 90.0
#: The tail is extrapolated from the top 2% of the buckets (the same share as the burst
#: channel's calibration; excesses over a high quantile are close to exponential).
TAIL_SHARE = 0.02
#: Days of calm buckets before the tail speaks (module doc: about 40 excesses).
MIN_DAYS = 7.0
#: Shrinkage of the tail scale toward PRIOR_BETA by PRIOR_EXCESSES pseudo-excesses (the
#: burst channel's calibration prior).
PRIOR_BETA = 0.5
PRIOR_EXCESSES = 5.0
#: Robust dispersion: the NB is fitted so that a calm bucket lies above its upper
#: DISPERSION_QUANTILE-tail point with that probability (the upper decile: a quantile of
#: the body that up to 10% of extreme buckets cannot move far), by a stochastic
#: approximation on log(alpha) with this gain per bucket (a change of at most 0.027 in
#: log scale per bucket, so half a day of extremes moves alpha by at most a factor ~50
#: only if every single bucket is extreme; calm buckets pull it back at the same rate).
DISPERSION_QUANTILE = 0.1
DISPERSION_GAIN = 0.01
ALPHA_RANGE = (1e-3, 10.0)
PRIOR_ALPHA = 0.25
_LN10 = math.log(10.0)
_LOG_ALPHA_LO, _LOG_ALPHA_HI = (math.log(a) for a in ALPHA_RANGE)


def union_bound_threshold(buckets_per_day: int, horizon_days: float = HORIZON_DAYS,
                          scales: int = len(SCALES)) -> float:
    """``-log10`` of the per-test tail probability that allows one false alarm per
    ``horizon_days`` over ``buckets_per_day * scales`` tests a day (module doc)."""
    return math.log10(horizon_days * buckets_per_day * scales)


@dataclass(slots=True)
class RobustDispersion:
    """NB over-dispersion matched to a quantile of calm buckets (bounded influence).

    Per learned bucket, ``g`` = the probability that a randomised PIT of the observed
    count lies in the upper ``DISPERSION_QUANTILE`` tail of ``NB(m, alpha)`` (exactly
    ``DISPERSION_QUANTILE`` on average when the model is right, also for small counts);
    ``log alpha`` moves by ``DISPERSION_GAIN * (g - DISPERSION_QUANTILE)``: up when too
    many buckets are high, down otherwise, never by more than the gain.
    """

    log_alpha: float = math.log(PRIOR_ALPHA)

    @property
    def alpha(self) -> float:
        return math.exp(self.log_alpha)

    def observe(self, observed: float, expected: float, extra: float) -> None:
        q = DISPERSION_QUANTILE
        g = nb_upper_share(observed, expected, self.alpha + extra, q)
        self.log_alpha = min(max(self.log_alpha + DISPERSION_GAIN * (g - q), _LOG_ALPHA_LO),
                             _LOG_ALPHA_HI)


@dataclass(slots=True)
class RobustTail(WeightedHistogram[tuple[float, float, float]]):
    """Peaks-over-threshold tail of ``z`` whose scale is the median excess.

    The weighted histogram of the burst channel's
    :class:`~monitor.detect.countmodel_stats.TailCalibrator`; ``u`` is its
    ``1 - TAIL_SHARE`` quantile and, beyond it,
    ``P(Z > z) = TAIL_SHARE * exp(-(z - u) / beta)`` with ``beta`` = the weighted
    median excess over ``u`` divided by ``ln 2`` (the median of an exponential),
    shrunk toward ``PRIOR_BETA``.  A rank statistic: extremes count, their size does not.
    """

    NAME = "absolute-channel"

    def _refit(self) -> tuple[float, float, float]:
        """(u, -log10 P(Z > u), 1 / (beta ln 10))."""
        counts, total = self.counts, self.total
        acc, u_bin = 0.0, self.bins - 1
        for i in range(self.bins - 1, -1, -1):
            if acc + counts[i] > TAIL_SHARE * total:
                u_bin = i + 1 if i + 1 < self.bins else i
                break
            acc += counts[i]
        u = u_bin * self.width
        tail = sum(counts[u_bin:])
        half, run, median = 0.5 * tail, 0.0, 0.0
        for i in range(u_bin, self.bins):
            run += counts[i]
            if run >= half:
                median = (i + 0.5) * self.width - u
                break
        n_exc = tail / self.gain
        beta = (n_exc * median / math.log(2.0) + PRIOR_EXCESSES * PRIOR_BETA) / (
            n_exc + PRIOR_EXCESSES)
        share = max(tail / total, 1e-12)
        self._fit = (u, -math.log10(share), 1.0 / (max(beta, self.width) * _LN10))
        self._stale = 0
        return self._fit

    def reach(self, level: float) -> float:
        """The least ``z`` whose :meth:`surprise` can be ``level`` (> 0; ``inf`` while
        the tail is silent): every ``z`` below it scores less."""
        if self.weight < self.min_weight:
            return math.inf
        u, head, slope = self._fit or self._refit()
        return u if level <= head else u + (level - head) / slope

    def surprise(self, z: float) -> float:
        """``-log10 P(Z >= z)`` beyond ``u`` (0 below it: the channel only looks at the
        extreme tail); ``0`` while fewer than ``min_weight`` buckets were seen."""
        if self.weight < self.min_weight:
            return 0.0
        u, head, slope = self._fit or self._refit()
        return head + (z - u) * slope if z > u else 0.0

    def _fit_from_state(self, fit: list[Any]) -> tuple[float, float, float]:
        return float(fit[0]), float(fit[1]), float(fit[2])


@dataclass(frozen=True, slots=True)
class Evidence:
    """The channel's verdict on one bucket: ``surprise`` (max over scales) at ``scale``
    buckets, where ``observed`` mentions were seen and ``expected`` were expected."""

    surprise: float
    scale: int
    observed: float
    expected: float


class AbsoluteChannel:
    """Per-brand state of the absolute-evidence channel (module doc)."""

    def __init__(self, buckets_per_day: int, pseudo_count: float,
                 horizon_days: float = HORIZON_DAYS) -> None:
        self.pseudo_count = pseudo_count
        self.threshold = union_bound_threshold(buckets_per_day, horizon_days)
        # the tail that bounds one false alarm per horizon is learned over the horizon
        self._decay = 0.5 ** (1.0 / (horizon_days * buckets_per_day))
        self._disp = [RobustDispersion() for _ in SCALES]
        self._tail = [RobustTail(min_weight=MIN_DAYS * buckets_per_day) for _ in SCALES]
        # the last learned buckets: (bucket number, count, expected count)
        self._recent: deque[tuple[int, float, float]] = deque(maxlen=max(SCALES) - 1)
        # (bucket, mu, its windows without the running count): could_fire, per post
        self._base: tuple[int, float, list[tuple[int, float, float, int]]] | None = None

    @property
    def warm(self) -> bool:
        return self._tail[0].weight >= self._tail[0].min_weight

    def _windows(self, bucket: int, count: float, mu: float
                 ) -> list[tuple[int, float, float, int]]:
        """Per scale: (scale, observed, expected, buckets present) ending at ``bucket``."""
        out = []
        obs, exp, seen = count, mu, 1
        recent = [r for r in self._recent if bucket - max(SCALES) < r[0] < bucket]
        for scale in SCALES:
            obs_s, exp_s, seen_s = obs, exp, seen
            for b, c, m in recent:
                if bucket - scale < b:
                    obs_s += c
                    exp_s += m
                    seen_s += 1
            out.append((scale, obs_s, exp_s, seen_s))
        return out

    def _open(self, bucket: int, mu: float) -> list[tuple[int, float, float, int]]:
        """``_windows`` without the running count, once per bucket: the floor, the
        bound on every post and the close all start from it."""
        base = self._base
        if base is None or base[0] != bucket or base[1] != mu:
            base = self._base = (bucket, mu, self._windows(bucket, 0.0, mu))
        return base[2]

    def could_fire(self, bucket: int, count: float, mu: float, extra: float) -> bool:
        """Cheap necessary condition for :meth:`evaluate` to reach the threshold: each
        window's evidence is capped by its tail's surprise and by the count model's
        point probability (:func:`nb_surprise_cap`: no series)."""
        if not self.warm:
            return False
        for (_, obs, exp, seen), disp, tail in zip(self._open(bucket, mu), self._disp,
                                                   self._tail,
                                                   strict=True):
            obs += count
            if obs <= exp:
                continue
            shrink = self.pseudo_count * seen
            cap = tail.surprise(math.log((obs + shrink) / (exp + shrink)))
            if cap >= self.threshold and \
                    nb_surprise_cap(obs, exp, disp.alpha + extra) >= self.threshold:
                return True
        return False

    def floor(self, bucket: int, mu: float) -> float:
        """A count below which :meth:`could_fire` is false for ``bucket`` (``inf`` while
        the channel is silent): the least count whose window ``z`` reaches its tail's
        alarm level, over the scales.  Per bucket, so a post costs one comparison."""
        if not self.warm:
            return math.inf
        least = math.inf
        for (_, obs, exp, seen), tail in zip(self._open(bucket, mu), self._tail,
                                             strict=True):
            reach = tail.reach(self.threshold)
            if reach < 700.0:  # (beyond: no count can reach it)
                shrink = self.pseudo_count * seen
                least = min(least, math.exp(reach) * (exp + shrink) - shrink - obs)
        return least

    def evaluate(self, bucket: int, count: float, mu: float, extra: float) -> Evidence:
        """Evidence of the running bucket (count so far) against *whole* expectations."""
        best = Evidence(0.0, SCALES[0], count, mu)
        if not self.warm:
            return best
        for (scale, obs, exp, seen), disp, tail in zip(self._windows(bucket, count, mu),
                                                       self._disp, self._tail, strict=True):
            if obs <= exp:
                continue
            shrink = self.pseudo_count * seen
            z = math.log((obs + shrink) / (exp + shrink))
            surprise = nb_surprise_upto(obs, exp, disp.alpha + extra, tail.surprise(z))
            if surprise > best.surprise:
                best = Evidence(surprise, scale, obs, exp)
        return best

    def learn(self, bucket: int, count: float, mu: float, extra: float, *,
              calm: bool, outlying: bool) -> None:
        """A closed bucket: ``calm`` = outside every alert episode (the dispersion learns
        it); ``outlying`` = its evidence reached this channel's alarm level (the tail
        does not learn it)."""
        windows = [(scale, obs + count, exp, seen)
                   for scale, obs, exp, seen in self._open(bucket, mu)]
        for (_, obs, exp, seen), disp, tail in zip(windows, self._disp, self._tail,
                                                   strict=True):
            if not calm:
                continue
            disp.observe(obs, exp, extra)
            if not outlying:
                shrink = self.pseudo_count * seen
                tail.observe(math.log((obs + shrink) / (exp + shrink)), self._decay)
        self._recent.append((bucket, count, mu))
        self._base = None

    def to_state(self) -> dict[str, Any]:
        return {"dispersion": [d.log_alpha for d in self._disp],
                "tail": [t.to_state() for t in self._tail],
                "recent": [list(r) for r in self._recent]}

    def load_state(self, state: dict[str, Any]) -> None:
        logs = [float(v) for v in state["dispersion"]]
        if len(logs) != len(SCALES) or len(state["tail"]) != len(SCALES):
            raise ValueError("absolute-channel state does not match its scales")
        for disp, value in zip(self._disp, logs, strict=True):
            disp.log_alpha = value
        for tail, values in zip(self._tail, state["tail"], strict=True):
            tail.load_state(values)
        self._recent.clear()
        self._base = None
        for b, c, m in state["recent"]:
            self._recent.append((int(b), float(c), float(m)))
