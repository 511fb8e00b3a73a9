"""Per-brand mention-volume spike detector for 5-minute (or other) count buckets.

Baseline
    :class:`~monitor.detect.seasonal.SeasonalProfile`: the expected count of a bucket
    is a trimmed mean, over the previous ``profile_days`` days, of the count around
    the same time of day, scaled by a learned day-of-week factor (weekends are quieter
    for most brands; :class:`~monitor.detect.seasonal.WeekRhythm`).  Buckets enter it
    winsorised (``winsor_z`` standard deviations above the expectation), so neither a
    spike nor a whole news day moves it much.  Memory: one week of buckets and seven
    factors.

Evidence, at several scales
    Each evaluation compares the observed sum of the last ``m`` buckets (running
    bucket included) with its expected sum, for every ``m`` in ``scales`` (default
    1, 4, 16, 64 buckets: 5 min, 20 min, 80 min, 5 h 20), so a single huge bucket and
    a sustained moderate rise both count.  At each scale two tail probabilities are
    computed and the *larger* (less surprising) is kept:

    * the count model's: negative binomial, ``Var = mu + alpha * mu**2``, with the
      dispersion ``alpha`` learned per scale from residuals (plus the baseline's own
      uncertainty while it is young) -- 3 mentions where 0.2 are expected is judged
      as a count, never by a z-score;
    * the brand's own history: the shrunk log rate ratio
      ``z = ln((observed + c) / (expected + c))`` (``c = pseudo_count`` per bucket,
      so low-volume brands need a larger relative surge) is calibrated on its own
      exponentially weighted histogram, with an exponential peaks-over-threshold tail
      (:class:`~monitor.detect.countmodel_stats.TailCalibrator`).  Real mention
      counts are far burstier than any count model, and differently so per brand.

**statistic** = the mean over the scales of those ``-log10`` tail probabilities, i.e.
``-log10`` of their geometric mean: a surge must be unusual at several time scales at
once, which separates real events from the isolated bursts of bots and retweet
cascades.  Counts at or below the expectation contribute 0.

Absolute evidence (second channel)
    A bucket also fires when :class:`~monitor.detect.absolute.AbsoluteChannel` finds
    it overwhelming (one false alarm per brand per ``absolute_horizon_days`` under
    its robust model, a union bound over buckets and its 5/10/15-minute windows);
    its statistics learn only calm buckets with bounded influence, so earlier crises
    cannot hide later ones.  Both channels share the episode (one alert);
    :attr:`Verdict.channel` says which one opened it.  The calibration and the
    dispersion of this model learn as before; an episode the absolute channel opened
    is an episode like any other (the dispersion skips it).

Sensitivity (one knob)
    The statistic must reach ``threshold = -log10(p)``: ``sensitivity`` is ``p``, the
    geometric-mean tail probability per bucket that counts as a surge.  Names:
    ``"high"`` = 0.01, ``"medium"`` = 0.005, ``"low"`` = 0.0025 (thresholds 2.0, 2.3,
    2.6).  On the NAB realTweets dev series (5 brands, 8 weeks) they gave about 0.15,
    0.06 and 0.04 false alerts per day per brand.

Episodes
    ``fired`` is set once, on the transition into an episode (evaluating the same
    running bucket again never fires twice); the episode stays ``active`` until
    ``calm_buckets`` consecutive closed buckets score below ``calm_surprise``, and the
    next evaluation below it reports ``resolved``.  Buckets of an episode still feed
    the baseline (winsorised) and the calibration, but not the dispersion.

Warm-up, gaps, restarts
    Nothing fires before ``warmup_buckets`` (one hour) were learned.  During the first
    day the baseline is the running level and the shape of the day is unknown: its
    prior variance (``shape_prior_var``) widens the count-model tails, and only the
    count model speaks until a calibration histogram holds a day of data.  Seasonal
    from day two, fully calibrated after about a week.  Missing buckets (collection
    gaps) are never learned and never counted as zeros: windows sum the buckets that
    exist and the baseline is the same time on earlier days, so recovery after a gap
    does not look like a spike.  After a gap longer than the profile the baseline
    warms up again (calibration and dispersion, which describe the brand, are kept).
    :meth:`CountModel.to_state` / :meth:`CountModel.from_state` persist everything as
    JSON (about 3,000 numbers), so a restart is warm.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.clock import utc
from monitor.detect.absolute import HORIZON_DAYS, AbsoluteChannel, Evidence
from monitor.detect.countmodel_stats import (
    Dispersion,
    TailCalibrator,
    nb_surprise_cap,
    nb_surprise_upto,
    upper_bound,
)
from monitor.detect.seasonal import SeasonalProfile, WeekRhythm, WindowSums

Sensitivity = str | float
SENSITIVITY_LEVELS: dict[str, float] = {"high": 0.01, "medium": 0.005, "low": 0.0025}
_STATE_VERSION = 2
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def sensitivity_threshold(sensitivity: Sensitivity) -> float:
    """The statistic an episode must reach for a sensitivity name or tail probability."""
    if isinstance(sensitivity, str):
        try:
            p = SENSITIVITY_LEVELS[sensitivity]
        except KeyError:
            raise ValueError("sensitivity must be low, medium, high or a probability in (0, 1)"
                             ) from None
    else:
        p = float(sensitivity)
        if not 0.0 < p < 1.0:
            raise ValueError("a numeric sensitivity is a tail probability in (0, 1)")
    return -math.log10(p)


@dataclass(frozen=True, slots=True)
class CountModelParams:
    """Detector parameters; one configuration serves every brand.

    bucket_seconds        bucket width; must divide a day.
    sensitivity           "low" | "medium" | "high" or a tail probability (module doc).
    min_count             never fire while the running bucket holds fewer mentions.
    scales                window lengths in buckets, increasing (default 5 min .. 5 h 20).
    profile_days          days of history behind the time-of-day baseline.
    weekly                learn day-of-week factors (``WeekRhythm``); off: every day alike.
    smooth_buckets        the baseline averages this many buckets on each side.
    shape_prior_var       relative variance of the unknown daily shape (day one).
    pseudo_count          per-bucket pseudo-count of the shrunk log rate ratio.
    dispersion_halflife_days, prior_dispersion   memory and start of the NB dispersion.
    calibration_halflife_days                    memory of the calibration histograms.
    winsor_z              buckets are clipped this many sd above expectation when learned.
    warmup_buckets        learned buckets before anything can fire.
    calm_surprise, calm_buckets   an episode ends after ``calm_buckets`` closed buckets
                          whose statistic stays below ``calm_surprise``.
    absolute, absolute_horizon_days   the absolute-evidence channel
                          (:mod:`~monitor.detect.absolute`) and the horizon of its union
                          bound (one false alarm per brand per horizon under the model).
    """

    bucket_seconds: int = 300
    sensitivity: Sensitivity = "medium"
    min_count: int = 0
    scales: tuple[int, ...] = (1, 4, 16, 64)
    profile_days: int = 7
    weekly: bool = True
    smooth_buckets: int = 2
    shape_prior_var: float = 0.25
    pseudo_count: float = 2.0
    dispersion_halflife_days: float = 3.0
    prior_dispersion: float = 0.25
    calibration_halflife_days: float = 14.0
    winsor_z: float = 3.0
    warmup_buckets: int = 12
    calm_surprise: float = 1.5
    calm_buckets: int = 6
    absolute: bool = True
    absolute_horizon_days: float = HORIZON_DAYS

    def __post_init__(self) -> None:
        if self.bucket_seconds <= 0 or 86400 % self.bucket_seconds:
            raise ValueError("bucket_seconds must divide a day")
        if not self.scales or self.scales[0] < 1 or list(self.scales) != sorted(set(self.scales)):
            raise ValueError("scales must be increasing positive bucket counts")
        if self.profile_days < 1 or self.smooth_buckets < 0 or self.pseudo_count <= 0:
            raise ValueError("profile_days >= 1, smooth_buckets >= 0, pseudo_count > 0")
        sensitivity_threshold(self.sensitivity)

    @property
    def buckets_per_day(self) -> int:
        return 86400 // self.bucket_seconds

    @property
    def threshold(self) -> float:
        return sensitivity_threshold(self.sensitivity)


@dataclass(frozen=True, slots=True)
class Verdict:
    """One evaluation.  ``statistic``: mean over scales of ``-log10`` tail probabilities
    (module doc); it fires at ``threshold``.  ``expected``: expected count of the
    running part of the bucket.  ``channel``: ``"burst"`` (the statistic) or
    ``"absolute"`` (``absolute``, the absolute-evidence channel, reached
    ``absolute_threshold``) -- which one opened the episode when ``fired``."""

    fired: bool
    active: bool
    resolved: bool
    observed: float
    expected: float
    statistic: float
    threshold: float
    warm: bool
    channel: str = "burst"
    absolute: Evidence | None = None
    absolute_threshold: float = math.inf


@dataclass(frozen=True, slots=True)
class _Probe:
    """What scoring a running bucket needs that only learning changes."""

    start: datetime
    bucket: int
    mu: float
    extra: float
    closed: list[tuple[float, float, int]]  # per scale: WindowSums.closed
    alphas: list[float]  # per scale: the count model's dispersion (+ the baseline's)
    # the least count that could fire: per scale ``a + b * fraction`` (the count whose
    # calibrated tail reaches the threshold), and the absolute channel's (any fraction)
    floors: list[tuple[float, float]]
    absolute_floor: float

    def least(self, fraction: float) -> float:
        """Below this count :meth:`CountModel.could_fire` is false: the mean over the
        scales reaches the threshold only if one scale's calibrated tail does."""
        least = self.absolute_floor
        for a, b in self.floors:
            need = a + b * fraction
            if need < least:
                least = need
        return least - 1e-9 * (1.0 + abs(least))  # rounding never wrongly rejects


class CountModel:
    """Online detector for one count series (see the module docstring)."""

    def __init__(self, params: CountModelParams) -> None:
        self.params = params
        per_day = params.buckets_per_day
        self._threshold = params.threshold
        self._disp_decay = 0.5 ** (1.0 / (params.dispersion_halflife_days * per_day))
        self._calib_decay = 0.5 ** (1.0 / (params.calibration_halflife_days * per_day))
        self._base = self._new_profile()
        self._disp = [Dispersion(params.prior_dispersion) for _ in params.scales]
        self._calib = [TailCalibrator(min_weight=per_day) for _ in params.scales]
        self._sums = WindowSums(params.scales)
        self._abs = AbsoluteChannel(per_day, params.pseudo_count,
                                    params.absolute_horizon_days)
        self._active = False
        self._calm = 0
        self._pending_resolve = False
        # per-bucket caches: (bucket, mu, extra), (bucket, count, per-scale terms) and
        # what scoring the running bucket needs that only learning changes (_Probe)
        self._mu_cache: tuple[int, float, float] | None = None
        self._eval_cache: tuple[int, float, list[tuple[float, float]]] | None = None
        self._probe_cache: _Probe | None = None

    def _new_profile(self) -> SeasonalProfile:
        p = self.params
        week = WeekRhythm(p.buckets_per_day, prior_weight=2.0 if p.weekly else math.inf)
        return SeasonalProfile(slots_per_day=p.buckets_per_day, days=p.profile_days,
                               smooth=p.smooth_buckets, shape_prior_var=p.shape_prior_var,
                               week=week)

    def _locate(self, when: datetime) -> int:
        """The bucket number (since the epoch, UTC) that ``when`` falls in."""
        return math.floor((utc(when) - _EPOCH).total_seconds() / self.params.bucket_seconds)

    def _probe(self, bucket_start: datetime) -> _Probe:
        """The running bucket's fixed part, computed once per bucket: the volume
        detector scores the same bucket on every post until it closes."""
        probe = self._probe_cache
        if probe is not None and probe.start == bucket_start:
            return probe
        bucket = self._locate(bucket_start)
        mu, extra = self._expect(bucket)
        closed = self._sums.closed(bucket)
        pseudo = self.params.pseudo_count
        floors: list[tuple[float, float]] = []
        for (obs, exp, seen), calib in zip(closed, self._calib, strict=True):
            # z >= reach  <=>  obs + count + c (seen + f) >= e^reach (exp + mu f + c (seen + f))
            reach = calib.reach(self._threshold)
            if reach < 700.0:  # (beyond: no count reaches it at this scale)
                grow = math.exp(reach)
                floors.append((grow * (exp + pseudo * seen) - obs - pseudo * seen,
                               grow * (mu + pseudo) - pseudo))
        absolute_floor = self._abs.floor(bucket, mu) if self.params.absolute else math.inf
        probe = _Probe(bucket_start, bucket, mu, extra, closed,
                       [disp.alpha + extra for disp in self._disp], floors, absolute_floor)
        self._probe_cache = probe
        return probe

    @property
    def warm(self) -> bool:
        return self._base.n_learned >= self.params.warmup_buckets

    @property
    def active(self) -> bool:
        """Whether an episode is open (it fired and has not resolved yet)."""
        return self._active

    # -- scoring ------------------------------------------------------------------------
    def _expect(self, bucket: int) -> tuple[float, float]:
        cached = self._mu_cache
        if cached is not None and cached[0] == bucket:
            return cached[1], cached[2]
        mu, extra = self._base.expected(bucket)
        mu = max(mu, 1e-3)
        self._mu_cache = (bucket, mu, extra)
        return mu, extra

    def _log_ratios(self, bucket: int, count: float, mu: float,
                    fraction: float = 1.0) -> list[float]:
        """Per scale, the shrunk log rate ratio of the running bucket (what the
        calibration learns of a whole one; ``_terms`` scores it)."""
        pseudo = self.params.pseudo_count
        expected = mu * fraction
        return [math.log((obs + count + shrink) / (exp + expected + shrink))
                for obs, exp, seen in self._sums.closed(bucket)
                for shrink in (pseudo * (seen + fraction),)]

    def _terms(self, bucket: int, count: float, mu: float, extra: float,
               fraction: float) -> list[tuple[float, float]]:
        """Per scale: (shrunk log rate ratio, min(count-model, calibrated) surprise)."""
        expected = mu * fraction
        out: list[tuple[float, float]] = []
        for (obs, exp, _), z, disp, calib in zip(
                self._sums.closed(bucket), self._log_ratios(bucket, count, mu, fraction),
                self._disp, self._calib, strict=True):
            calibrated = calib.surprise(z) if z > 0.0 else 0.0
            out.append((z, nb_surprise_upto(obs + count, exp + expected, disp.alpha + extra,
                                            calibrated)))
        return out

    @staticmethod
    def _statistic(terms: list[tuple[float, float]]) -> float:
        return sum(surprise for _, surprise in terms) / len(terms)

    def evaluate(self, bucket_start: datetime, count: float, *, fraction: float = 1.0) -> Verdict:
        """Score a running bucket (``fraction`` = elapsed share of it); does not learn.

        Calling it repeatedly for the same bucket with growing counts fires at most once
        per episode.
        """
        fraction = min(max(fraction, 1e-3), 1.0)
        bucket = self._locate(bucket_start)
        if self._base.n_learned == 0:
            return Verdict(False, self._active, False, count, 0.0, 0.0, self._threshold, False)
        mu, extra = self._expect(bucket)
        terms = self._terms(bucket, count, mu, extra, fraction)
        if fraction >= 1.0:
            self._eval_cache = (bucket, count, terms)
        statistic = self._statistic(terms)
        fired = resolved = False
        channel = "burst"
        evidence: Evidence | None = None
        if self._active:
            if self._pending_resolve and statistic < self.params.calm_surprise:
                self._active = self._pending_resolve = False
                self._calm = 0
                resolved = True
        elif self.warm and count >= self.params.min_count:
            if self.params.absolute:
                # against the whole bucket's expectation: evidence only grows as posts
                # arrive, so looking on every arrival adds no tests (absolute.py)
                evidence = self._abs.evaluate(bucket, count, mu, extra)
            if statistic >= self._threshold:
                fired = True
            elif evidence is not None and evidence.surprise >= self._abs.threshold:
                fired, channel = True, "absolute"
            if fired:
                self._active = True
                self._calm = 0
        return Verdict(fired, self._active, resolved, count, mu * fraction, statistic,
                       self._threshold, self.warm, channel, evidence, self._abs.threshold)

    def expected(self, bucket_start: datetime) -> float:
        """The expected count of the whole bucket (0.0 while nothing was learned), as
        :meth:`evaluate` reports it at ``fraction=1``."""
        if self._base.n_learned == 0:
            return 0.0
        return self._expect(self._locate(bucket_start))[0]

    def could_fire(self, bucket_start: datetime, count: float, *,
                   fraction: float = 1.0) -> bool:
        """A cheap necessary condition for :meth:`evaluate` to fire now (no episode
        open). Every term of the burst statistic is the smaller of the count model's
        tail and the calibrated one, so the calibrated tail capped by the count model's
        point probability (:func:`nb_surprise_cap`, no series) bounds it from above (the
        absolute channel likewise, :meth:`AbsoluteChannel.could_fire`). Before that,
        one comparison with a floor computed once per bucket (:meth:`_Probe.least`)
        turns down most posts. The volume detector asks this on every post and
        :meth:`evaluate` only when it says yes: in ordinary traffic no tail series is
        computed at all."""
        if self._base.n_learned == 0 or not self.warm or count < self.params.min_count:
            return False
        fraction = min(max(fraction, 1e-3), 1.0)
        probe = self._probe(bucket_start)
        if count < probe.least(fraction):
            return False  # no scale's calibrated tail, no absolute window reaches it
        expected = probe.mu * fraction
        pseudo = self.params.pseudo_count
        scales = len(self._calib)
        terms: list[tuple[float, float, float, float]] = []
        bound = 0.0
        for (obs, exp, seen), alpha, calib in zip(probe.closed, probe.alphas, self._calib,
                                                  strict=True):
            total, mean = obs + count, exp + expected
            if total <= mean:
                continue
            shrink = pseudo * (seen + fraction)
            calibrated = calib.surprise(math.log((total + shrink) / (mean + shrink)))
            if calibrated > 0.0:
                bound += calibrated
                terms.append((calibrated, total, mean, alpha))
        if bound / scales >= self._threshold:  # the calibrated tails allow it: cap
            bound = sum(min(c, nb_surprise_cap(total, mean, alpha))  # them by the
                        for c, total, mean, alpha in terms)  # count model's
            if bound / scales >= self._threshold:
                return True
        return bool(self.params.absolute and self._abs.could_fire(probe.bucket, count,
                                                                  probe.mu, probe.extra))

    def log10_p_zero(self, bucket_start: datetime) -> float:
        """``log10 P(count = 0)`` for that bucket under the count model (0.0 while the
        model has learned nothing): how unlikely an empty bucket is."""
        if self._base.n_learned == 0:
            return 0.0
        mu, extra = self._expect(self._locate(bucket_start))
        alpha = self._disp[0].alpha + extra
        if alpha < 1e-9:
            return -mu / math.log(10.0)
        return -math.log1p(alpha * mu) / (alpha * math.log(10.0))

    # -- learning -----------------------------------------------------------------------
    def learn(self, bucket_start: datetime, count: float) -> None:
        """A closed bucket enters the model.  Missing buckets are simply never learned;
        a bucket at or before the last learned one is ignored."""
        p = self.params
        bucket = self._locate(bucket_start)
        last = self._base.last_bucket
        if last is not None and bucket <= last:
            return
        count = max(float(count), 0.0)
        if last is not None and bucket - last > self._base.size:
            week = self._base.week  # the profile is stale: warm up again (the weekly
            self._base = self._new_profile()  # rhythm describes the brand: keep it)
            self._base.week = week
        if self._base.n_learned == 0:
            self._base.learn(bucket, count)
            self._sums.add(bucket, count, count)
            self._mu_cache = self._eval_cache = self._probe_cache = None
            return
        mu, extra = self._expect(bucket)
        calm = not self._active
        if calm:  # the calibration learns the log rate ratios; no tail is needed
            zs = self._log_ratios(bucket, count, mu)
            self._update_dispersion(bucket, count, mu, extra)
        else:  # the episode counts calm buckets by their statistic
            cached = self._eval_cache
            if cached is not None and cached[0] == bucket and cached[1] == count:
                terms = cached[2]
            else:
                terms = self._terms(bucket, count, mu, extra, 1.0)
            zs = [z for z, _ in terms]
            self._calm = self._calm + 1 if self._statistic(terms) < p.calm_surprise else 0
            self._pending_resolve = self._calm >= p.calm_buckets
        for calib, z in zip(self._calib, zs, strict=True):
            calib.observe(z, self._calib_decay)
        if p.absolute:
            outlying = (self._abs.could_fire(bucket, count, mu, extra)  # cheap bound first
                        and self._abs.evaluate(bucket, count, mu, extra).surprise
                        >= self._abs.threshold)
            self._abs.learn(bucket, count, mu, extra, calm=calm, outlying=outlying)
        hi = upper_bound(mu, self._disp[0].alpha + extra, p.winsor_z)
        self._base.learn(bucket, min(max(count, 2.0 * mu - hi), hi))
        self._sums.add(bucket, count, mu)
        self._mu_cache = self._eval_cache = self._probe_cache = None

    def _update_dispersion(self, bucket: int, count: float, mu: float, extra: float) -> None:
        for scale, disp, (obs, exp, seen) in zip(self.params.scales, self._disp,
                                                 self._sums.closed(bucket), strict=True):
            if seen + 1 == scale:  # only complete windows (no gap inside)
                disp.observe(obs + count, exp + mu, extra, self._disp_decay)

    # -- persistence --------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """JSON-serialisable snapshot; the params are not included (pass them back)."""
        return {
            "version": _STATE_VERSION,
            "bucket_seconds": self.params.bucket_seconds,
            "scales": list(self.params.scales),
            "profile": self._base.to_state(),
            "dispersion": [d.to_state() for d in self._disp],
            "calibration": [c.to_state() for c in self._calib],
            "window": self._sums.to_state(),
            "episode": [self._active, self._calm, self._pending_resolve],
            "absolute": self._abs.to_state(),
        }

    @classmethod
    def from_state(cls, params: CountModelParams, state: dict[str, Any]) -> CountModel:
        """Rebuild a model saved by :meth:`to_state` with compatible params."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported count model state version {state.get('version')!r}")
        if (state.get("bucket_seconds") != params.bucket_seconds
                or list(state.get("scales", ())) != list(params.scales)):
            raise ValueError("count model state was saved with other bucket_seconds/scales")
        model = cls(params)
        model._base.load_state(state["profile"])
        for disp, values in zip(model._disp, state["dispersion"], strict=True):
            disp.load_state(values)
        for calib, values in zip(model._calib, state["calibration"], strict=True):
            calib.load_state(values)
        model._sums.load_state(state["window"])
        if "absolute" in state:  # absent in states saved before issue 14: the channel
            model._abs.load_state(state["absolute"])  # warms up again (MIN_DAYS)
        active, calm, pending = state["episode"]
        model._active, model._calm, model._pending_resolve = bool(active), int(calm), bool(pending)
        return model


def backtest(rows: Sequence[tuple[datetime, float]], params: CountModelParams) -> list[datetime]:
    """Feed a complete series in order (evaluate at fraction 1.0, then learn); return the
    bucket timestamps that fired."""
    model = CountModel(params)
    fired: list[datetime] = []
    for when, count in rows:
        if model.evaluate(when, count).fired:
            fired.append(when)
        model.learn(when, count)
    return fired


def load_series_csv(path: Path) -> list[tuple[datetime, float]]:
    """Read a NAB ``timestamp,value`` CSV; timestamps are returned as written (naive = UTC)."""
    rows: list[tuple[datetime, float]] = []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"timestamp", "value"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected a 'timestamp,value' header")
        for line, rec in enumerate(reader, start=2):
            try:
                rows.append((datetime.fromisoformat(rec["timestamp"].strip()),
                             float(rec["value"])))
            except (AttributeError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{line}: {exc}") from None
    return rows
