"""Statistics of the volume detector (pure Python + ``math``).

Count-model tails: how surprising is an observed count ``x`` when the model expects a
mean ``mu`` with over-dispersion ``alpha``?  Counts are negative binomial,
``Var[X] = mu + alpha * mu**2`` (``alpha -> 0`` is Poisson), and the answer is
``-log10 P(X >= x)``.  For NB(mean ``mu``, size ``r = 1/alpha``) that tail is the
regularised incomplete beta ``I_q(x, r)`` with ``q = mu / (mu + r)``, the Poisson limit
the regularised lower incomplete gamma ``P(x, mu)``; both are evaluated exactly with
the classic continued fractions (Lentz) for small counts, and by the Lugannani-Rice
saddlepoint approximation (error < 0.01 in ``-log10`` units) from 20 mentions up.

:class:`Dispersion` learns ``alpha`` from residuals; :class:`TailCalibrator` learns how
heavy a brand's real tail is (the part no count model captures).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

_EPS = 1e-15
_TINY = 1e-300
_MAX_ITER = 400
_LN10 = math.log(10.0)
_SQRT2 = math.sqrt(2.0)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_LN_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_SADDLEPOINT_MIN = 20.0
#: Below this dispersion the Poisson tail is used (the beta fraction gets slow as r grows).
POISSON_ALPHA = 1e-4


def _betacf(a: float, b: float, z: float) -> float:
    """Continued fraction for the incomplete beta (Numerical Recipes ``betacf``)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * z / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_ITER + 1):
        m2 = 2 * m
        aa = m * (b - m) * z / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * z / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def _ln_betainc(a: float, b: float, z: float) -> float:
    """``ln I_z(a, b)``, the log regularised incomplete beta (a, b > 0, 0 <= z <= 1)."""
    if z <= 0.0:
        return -math.inf
    if z >= 1.0:
        return 0.0
    ln_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                + a * math.log(z) + b * math.log1p(-z))
    if z < (a + 1.0) / (a + b + 2.0):
        return ln_front + math.log(_betacf(a, b, z) / a)
    rest = math.exp(ln_front) * _betacf(b, a, 1.0 - z) / b
    return math.log1p(-rest) if rest < 1.0 else -math.inf


def _ln_gammainc_lower(a: float, x: float) -> float:
    """``ln P(a, x)``, the log regularised lower incomplete gamma (a > 0, x >= 0)."""
    if x <= 0.0:
        return -math.inf
    ln_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:  # series
        term = total = 1.0 / a
        ap = a
        for _ in range(_MAX_ITER):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        return ln_front + math.log(total)
    # continued fraction for Q = 1 - P
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_ITER + 1):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = b + an / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    q = math.exp(ln_front) * h
    return math.log1p(-q) if q < 1.0 else -math.inf


def nb_surprise_upto(x: float, mu: float, alpha: float, cap: float) -> float:
    """``min(nb_surprise(x, mu, alpha), cap)``, skipping the exact tail when the Chernoff
    bound ``P(X >= x) <= exp(-I(x))`` (``I`` = the NB rate function) already exceeds ``cap``."""
    if x <= mu or x <= 0.0:
        return 0.0
    if cap < math.inf:
        m = max(mu, 1e-9)
        if alpha < POISSON_ALPHA:
            rate = x * math.log(x / m) - x + m
        else:
            r = 1.0 / alpha
            rate = x * math.log(x / m) - (x + r) * math.log((x + r) / (m + r))
        if rate / _LN10 >= cap:
            return cap
    return min(nb_surprise(x, mu, alpha), cap)


#: nb_surprise is exact below _SADDLEPOINT_MIN and within 0.04 of it above (module doc)
_APPROX_SLACK = 0.05


def nb_surprise_cap(x: float, mu: float, alpha: float) -> float:
    """An upper bound of :func:`nb_surprise` with no series or fraction to evaluate.

    The tail ``P(X >= x)`` holds the point probability ``P(X = ceil(x))`` (the
    continuous extension decreases in ``x``), so ``-log10`` of that point, plus the
    saddlepoint's error, is at least the surprise. Within about ``log10(1 / (1 - rho))``
    of it, ``rho`` being the ratio of successive probabilities: tight far above the mean,
    where a spike detector has to decide. Three ``lgamma`` calls.
    """
    if x <= mu or x <= 0.0:
        return 0.0
    ln_p = _nb_ln_pmf(float(math.ceil(x)), max(mu, 1e-9), alpha)
    return max(0.0, -ln_p / _LN10) + _APPROX_SLACK


def _nb_ln_pmf(k: float, mu: float, alpha: float) -> float:
    """``ln P(X = k)`` for X ~ NB(mean ``mu`` > 0, dispersion ``alpha``), Poisson below
    ``POISSON_ALPHA``."""
    if alpha < POISSON_ALPHA:
        return k * math.log(mu) - mu - math.lgamma(k + 1.0)
    r = 1.0 / alpha
    return (math.lgamma(k + r) - math.lgamma(r) - math.lgamma(k + 1.0)
            + r * math.log(r / (r + mu)) + k * math.log(mu / (r + mu)))


def _saddlepoint_surprise(x: float, mu: float, alpha: float) -> float | None:
    """Lugannani-Rice saddlepoint approximation of ``-log10 P(X >= x)`` with Daniels'
    continuity correction (``x - 1/2``); for x >= 20 within 0.01 of the exact value
    (0.04 just above the mean under extreme dispersion).
    ``None`` right at the mean, where the formula loses precision."""
    xc = x - 0.5
    if alpha < POISSON_ALPHA:
        t = math.log(xc / mu)
        rate = xc * t - xc + mu
        k2 = xc
    else:
        r = 1.0 / alpha
        t = math.log(xc * (mu + r) / (mu * (xc + r)))
        rate = xc * math.log(xc / mu) - (xc + r) * math.log((xc + r) / (mu + r))
        k2 = xc * (xc + r) / r
    if rate < 0.005:  # w < 0.1
        return None
    w = math.sqrt(2.0 * rate)
    u = 2.0 * math.sinh(0.5 * t) * math.sqrt(k2)
    ln_phi = -rate - _LN_SQRT_2PI
    if w < 30.0:
        mills = 0.5 * math.erfc(w / _SQRT2) * math.exp(rate) * _SQRT_2PI
    else:
        mills = (1.0 - 1.0 / (w * w) + 3.0 / w ** 4) / w
    value = mills + 1.0 / u - 1.0 / w
    if value <= 0.0:
        return None
    return -(ln_phi + math.log(value)) / _LN10


def nb_surprise(x: float, mu: float, alpha: float) -> float:
    """``-log10 P(X >= x)`` for X ~ NB(mean ``mu``, dispersion ``alpha``); 0 when x <= mu.

    Only the upper tail matters to a spike detector, so counts at or below the mean
    score 0.  ``x`` may be fractional (it is treated through the continuous extension
    of the tail, which is exact at integers).
    """
    if x <= mu or x <= 0.0:
        return 0.0
    mu = max(mu, 1e-9)
    if x >= _SADDLEPOINT_MIN and x - 0.5 > mu:
        approx = _saddlepoint_surprise(x, mu, alpha)
        if approx is not None:
            return max(0.0, approx)
    if alpha < POISSON_ALPHA:
        ln_p = _ln_gammainc_lower(x, mu)
    else:
        r = 1.0 / alpha
        ln_p = _ln_betainc(x, r, mu / (mu + r))
    return max(0.0, -ln_p / _LN10)


def nb_tail_probability(x: float, mu: float, alpha: float) -> float:
    """``P(X >= x)`` for X ~ NB(mean ``mu``, dispersion ``alpha``) over the whole range
    (below the mean too, unlike :func:`nb_surprise`); exact, by the same incomplete
    beta / gamma as the small-count path.  ``x`` <= 0 gives 1."""
    if x <= 0.0:
        return 1.0
    mu = max(mu, 1e-9)
    if alpha < POISSON_ALPHA:
        return math.exp(_ln_gammainc_lower(x, mu))
    r = 1.0 / alpha
    return math.exp(_ln_betainc(x, r, mu / (mu + r)))


#: Counts and means up to this take the tail as one minus a sum of point probabilities
_SUM_MAX = 64


def _nb_tail_by_sum(x: int, mu: float, alpha: float) -> tuple[float, float]:
    """``(P(X >= x), P(X = x))`` for a small integer ``x``, summing the point
    probabilities below it by their recurrence (no continued fraction). Used only
    where the tail is not tiny (``nb_upper_share``'s screens have taken those), so
    one minus the sum keeps its precision."""
    if alpha < POISSON_ALPHA:
        p = math.exp(-mu)
        below = 0.0
        for k in range(x):
            below += p
            p *= mu / (k + 1)
    else:
        r = 1.0 / alpha
        q = mu / (mu + r)
        p = math.exp(r * math.log1p(-q))
        below = 0.0
        for k in range(x):
            below += p
            p *= (k + r) / (k + 1) * q
    return max(1.0 - below, 0.0), p


def nb_upper_share(x: float, mu: float, alpha: float, q: float) -> float:
    """The probability that a randomised PIT of the count ``x`` lies in the upper ``q``
    tail of NB(``mu``, ``alpha``): ``P_V(P(X > x) + V P(X = x) <= q)``, V uniform.

    Its mean is exactly ``q`` when the count follows the model (also for small,
    discrete counts).  Cheap screens first: Cantelli's inequality says a count at
    least ``sd * sqrt(q / (1 - q))`` under the mean is in the body
    (``P(X >= x + 1) >= q``: 0); the Chernoff bound says a count whose rate function
    exceeds ``ln(1 / q)`` is in the tail (``P(X >= x) <= q``: 1), and so is one the
    saddlepoint puts at ``P(X >= x) < 0.03`` (q is 0.1 here); only counts between need
    the exact tail probability.
    """
    x = math.ceil(x - 1e-9)
    mu = max(mu, 1e-9)
    sd = math.sqrt(mu + alpha * mu * mu)
    if x + 1 <= mu - sd * math.sqrt(q / (1.0 - q)):
        return 0.0
    if x > mu:
        if alpha < POISSON_ALPHA:
            rate = x * math.log(x / mu) - x + mu
        else:
            r = 1.0 / alpha
            rate = x * math.log(x / mu) - (x + r) * math.log((x + r) / (mu + r))
        if rate >= -math.log(q):
            return 1.0
    if x >= _SADDLEPOINT_MIN and x - 0.5 > mu and nb_surprise(x, mu, alpha) >= 1.5:
        return 1.0  # P(X >= x) ~ 0.03 or less: in the tail even with the approximation's error
    if x <= _SUM_MAX and mu <= _SUM_MAX:
        hi, pmf = _nb_tail_by_sum(x, mu, alpha)
    else:
        hi = nb_tail_probability(x, mu, alpha)
        pmf = math.exp(_nb_ln_pmf(x, mu, alpha))
    lo = max(hi - pmf, 0.0)
    if hi <= q:
        return 1.0
    if lo >= q:
        return 0.0
    return (q - lo) / (hi - lo)


def upper_bound(mu: float, alpha: float, z: float) -> float:
    """``mu + z * sd + 1`` under NB(``mu``, ``alpha``): the winsorising bound of a bucket
    (``+1`` keeps single mentions of near-silent brands from being clipped)."""
    return mu + z * math.sqrt(mu + alpha * mu * mu) + 1.0


_ALPHA_FLOOR = 1e-3
_CLIP_SD = 4.0
_REFIT_EVERY = 36


@dataclass(slots=True)
class Dispersion:
    """Running estimate of the NB over-dispersion ``alpha`` of one window length.

    A weighted moment estimator, ``alpha = sum w * r / sum w`` with
    ``r = ((observed - expected)**2 - expected) / expected**2`` minus the baseline's own
    relative variance, weights ``(expected / (1 + alpha * expected))**2`` (the inverse
    variance of ``r`` up to a constant) and squared residuals clipped at 4 sd, so the
    bursts that the calibration handles do not inflate the body of the distribution.
    The prior ``alpha`` counts as 12 observations.
    """

    prior: float
    num: float = 0.0
    den: float = 0.0

    @property
    def alpha(self) -> float:
        return max(self.num / self.den, _ALPHA_FLOOR) if self.den > 0.0 else self.prior

    def observe(self, observed: float, expected: float, extra: float, decay: float) -> None:
        expected = max(expected, 1e-3)
        alpha = self.alpha
        var = expected + (alpha + extra) * expected * expected
        sq = min((observed - expected) ** 2, _CLIP_SD * _CLIP_SD * var)
        r = (sq - expected) / (expected * expected) - extra
        w = (expected / (1.0 + (alpha + extra) * expected)) ** 2
        if self.den == 0.0:
            self.num, self.den = self.prior * w * 12.0, w * 12.0
        self.num = decay * self.num + w * r
        self.den = decay * self.den + w

    def to_state(self) -> list[float]:
        return [self.num, self.den]

    def load_state(self, values: list[float]) -> None:
        self.num, self.den = (float(v) for v in values)


_Fit = TypeVar("_Fit", bound=tuple[Any, ...])


@dataclass(slots=True)
class WeightedHistogram(Generic[_Fit]):
    """An exponentially weighted histogram of a statistic ``z`` (``bins`` bins of
    ``width`` from 0, the last one open-ended), the part the fitted tails share
    (:class:`TailCalibrator` and the absolute channel's
    :class:`~monitor.detect.absolute.RobustTail`): older samples lose weight by ``decay``
    per sample (a growing ``gain``, renormalised before it overflows), and the tail is
    refitted (``_refit``) on a fixed schedule of samples, never when asked -- a score
    must not depend on when (or whether) earlier buckets were scored. Until
    ``min_weight`` samples have been seen the tail is not trusted."""

    NAME: ClassVar[str] = "tail"  # in errors: "bad <NAME> histogram in state"

    width: float = 0.05
    bins: int = 200
    min_weight: float = 288.0
    counts: list[float] = field(default_factory=list)
    gain: float = 1.0
    total: float = 0.0
    _fit: _Fit | None = None
    _stale: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0.0] * self.bins

    def observe(self, z: float, decay: float) -> None:
        """Add one sample; older samples lose weight by ``decay`` per sample."""
        self.gain /= decay
        if self.gain > 1e200:
            self.counts = [c / self.gain for c in self.counts]
            self.total /= self.gain
            self.gain = 1.0
        i = int(z / self.width) if z > 0.0 else 0
        self.counts[i if i < self.bins else self.bins - 1] += self.gain
        self.total += self.gain
        self._stale += 1
        if self._stale >= _REFIT_EVERY or self._fit is None:
            self._refit()

    @property
    def weight(self) -> float:
        """Effective number of samples."""
        return self.total / self.gain

    def _refit(self) -> _Fit:
        raise NotImplementedError

    def to_state(self) -> dict[str, Any]:
        """Exact JSON form (the current fit included, so a restored tail scores alike)."""
        return {"counts": list(self.counts), "gain": self.gain, "total": self.total,
                "stale": self._stale, "fit": None if self._fit is None else list(self._fit)}

    def load_state(self, state: dict[str, Any]) -> None:
        counts = [float(v) for v in state["counts"]]
        if len(counts) != self.bins or any(not math.isfinite(c) or c < 0 for c in counts):
            raise ValueError(f"bad {self.NAME} histogram in state")
        self.counts, self.gain, self.total = counts, float(state["gain"]), float(state["total"])
        self._stale = int(state["stale"])
        fit = state["fit"]
        self._fit = None if fit is None else self._fit_from_state(fit)

    def _fit_from_state(self, fit: list[Any]) -> _Fit:
        raise NotImplementedError


@dataclass(slots=True)
class TailCalibrator(WeightedHistogram[tuple[float, float, float, list[float]]]):
    """Empirical tail of an effect-size statistic with an exponential (EVT) extrapolation.

    Real mention counts have heavier tails than any count model (retweet cascades,
    bots, news), and how heavy differs from brand to brand.  The calibrator keeps an
    exponentially weighted histogram of a statistic ``z`` (a shrunk log rate ratio,
    whose excesses over a high quantile are close to exponential on real series) and
    maps a value to ``-log10`` of its estimated exceedance probability: empirical up
    to the ``1 - tail_share`` quantile ``u``, beyond it peaks-over-threshold with an
    exponential tail, ``P(Z > z) = tail_share * exp(-(z - u) / beta)``, whose mean
    excess ``beta`` is shrunk toward ``prior_beta`` by ``prior_weight`` pseudo-excesses.
    Until ``min_weight`` samples have been seen it knows nothing and returns ``inf``.
    """

    NAME = "calibration"

    tail_share: float = 0.02
    prior_beta: float = 0.5
    prior_weight: float = 5.0

    def _refit(self) -> tuple[float, float, float, list[float]]:
        """(u, -log10 tail share at u, 1 / (beta ln 10), surprise of each bin up to u)."""
        bins, counts, total = self.bins, self.counts, self.total
        surv = [0.0] * bins
        acc = 0.0
        for i in range(bins - 1, -1, -1):
            acc += counts[i]
            surv[i] = acc / total
        u_bin = next((i for i in range(bins) if surv[i] <= self.tail_share), bins - 1)
        u = u_bin * self.width
        excess = 0.0
        for i in range(u_bin, bins):
            excess += counts[i] * ((i + 0.5) * self.width - u)
        excess /= self.gain
        n_exc = surv[u_bin] * self.weight
        beta = (excess + self.prior_weight * self.prior_beta) / (n_exc + self.prior_weight)
        table = [-math.log10(max(v, 1e-12)) for v in surv[:u_bin + 1]]
        self._fit = (u, table[u_bin], 1.0 / (max(beta, self.width) * _LN10), table)
        self._stale = 0
        return self._fit

    def reach(self, level: float) -> float:
        """The least ``z >= 0`` whose :meth:`surprise` can be ``level`` (> 0): every
        ``z`` below it scores less (the surprise never falls as ``z`` grows)."""
        if self.total <= 0.0 or self.weight < self.min_weight:
            return 0.0  # untrusted: any excess scores inf
        u, head, slope, table = self._fit or self._refit()
        if level > head:
            return u + (level - head) / slope
        return self.width * bisect.bisect_left(table, level)  # (table never falls)

    def surprise(self, z: float) -> float:
        """Calibrated ``-log10 P(Z >= z)``; ``inf`` while too few samples were seen."""
        if self.total <= 0.0 or self.weight < self.min_weight:
            return math.inf  # (a fit exists from the first sample on: it is not trusted yet)
        fit = self._fit or self._refit()
        u, head, slope, table = fit
        if z > u:
            return head + (z - u) * slope
        return table[int(z / self.width)] if z > 0.0 else 0.0

    def _fit_from_state(self, fit: list[Any]) -> tuple[float, float, float, list[float]]:
        return float(fit[0]), float(fit[1]), float(fit[2]), [float(v) for v in fit[3]]
