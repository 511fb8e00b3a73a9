"""Count-distribution tails for the volume detector (pure Python + ``math``).

The detector asks one question: how surprising is an observed count ``x`` when the
model expects a mean ``mu`` with over-dispersion ``alpha``?  Counts are modelled as
negative binomial, ``Var[X] = mu + alpha * mu**2`` (``alpha -> 0`` is Poisson), and
the answer is the upper-tail probability ``P(X >= x)`` on a ``-log10`` scale.

``P(X >= x)`` for NB(mean ``mu``, size ``r = 1/alpha``) equals the regularised
incomplete beta ``I_q(x, r)`` with ``q = mu / (mu + r)``; the Poisson limit is the
regularised lower incomplete gamma ``P(x, mu)``.  Both are evaluated with the classic
continued fractions (Lentz), which also accept a non-integer ``x``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

_EPS = 1e-15
_TINY = 1e-300
_MAX_ITER = 400
_LN10 = math.log(10.0)
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


def nb_surprise(x: float, mu: float, alpha: float) -> float:
    """``-log10 P(X >= x)`` for X ~ NB(mean ``mu``, dispersion ``alpha``); 0 when x <= mu.

    Only the upper tail matters to a spike detector, so counts at or below the mean
    score 0.  ``x`` may be fractional (it is treated through the continuous extension
    of the tail, which is exact at integers).
    """
    if x <= mu or x <= 0.0:
        return 0.0
    mu = max(mu, 1e-9)
    if alpha < POISSON_ALPHA:
        ln_p = _ln_gammainc_lower(x, mu)
    else:
        r = 1.0 / alpha
        ln_p = _ln_betainc(x, r, mu / (mu + r))
    return max(0.0, -ln_p / _LN10)


def nb_quantile_hi(mu: float, alpha: float, z: float) -> float:
    """A cheap upper bound used for winsorising: ``mu + z * sd + 1`` (``+1`` for discreteness)."""
    return mu + z * math.sqrt(mu + alpha * mu * mu) + 1.0


@dataclass(slots=True)
class TailCalibrator:
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

    width: float = 0.05
    bins: int = 200
    tail_share: float = 0.02
    prior_beta: float = 0.5
    prior_weight: float = 5.0
    min_weight: float = 288.0
    counts: list[float] = field(default_factory=list)
    gain: float = 1.0
    total: float = 0.0
    _fit: tuple[float, float, list[float]] | None = None
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
        i = min(max(int(z / self.width), 0), self.bins - 1)
        self.counts[i] += self.gain
        self.total += self.gain
        self._stale += 1
        if self._stale >= 12:
            self._fit = None

    @property
    def weight(self) -> float:
        """Effective number of samples."""
        return self.total / self.gain

    def _refit(self) -> tuple[float, float, list[float]]:
        """(u, beta, survival share above each bin's lower edge)."""
        surv = [0.0] * (self.bins + 1)
        acc = 0.0
        for i in range(self.bins - 1, -1, -1):
            acc += self.counts[i]
            surv[i] = acc / self.total
        u_bin = next((i for i in range(self.bins) if surv[i] <= self.tail_share), self.bins - 1)
        u = u_bin * self.width
        excess = sum(self.counts[i] * ((i + 0.5) * self.width - u)
                     for i in range(u_bin, self.bins)) / self.gain
        n_exc = surv[u_bin] * self.weight
        beta = (excess + self.prior_weight * self.prior_beta) / (n_exc + self.prior_weight)
        self._fit = (u, max(beta, self.width), surv)
        self._stale = 0
        return self._fit

    def surprise(self, z: float) -> float:
        """Calibrated ``-log10 P(Z >= z)``; ``inf`` while too few samples were seen."""
        if self.total <= 0.0 or self.weight < self.min_weight:
            return math.inf
        u, beta, surv = self._fit or self._refit()
        if z > u:
            share = surv[int(u / self.width + 0.5)]
            return -math.log10(max(share, 1e-12)) + (z - u) / (beta * _LN10)
        i = min(max(int(z / self.width), 0), self.bins - 1)
        return -math.log10(max(surv[i], 1e-12))

    def to_state(self) -> list[float]:
        return [c / self.gain for c in self.counts]

    def load_state(self, values: list[float]) -> None:
        counts = [float(v) for v in values]
        if len(counts) != self.bins or any(not math.isfinite(c) or c < 0 for c in counts):
            raise ValueError("bad calibration histogram in state")
        self.counts, self.gain, self.total = counts, 1.0, sum(counts)
        self._fit = None
