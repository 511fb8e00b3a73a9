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
from dataclasses import dataclass

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
    """Peaks-over-threshold calibration of a surprise statistic (SPOT-style EVT).

    Real mention counts have heavier tails than any fitted count model (retweet
    cascades, bots), so a nominal ``-log10 p`` overstates how rare a bucket is.  This
    keeps an exponentially weighted record of how often the raw surprise exceeds
    ``base`` and by how much (excesses are exponential with mean ``1/ln 10`` when the
    model is exact), and maps a raw surprise ``s`` to the *calibrated* one
    ``-log10(rate_base * exp(-(s - base) / beta))``.  The prior (``prior_weight``
    pseudo-exceedances) is the exact model, so a young series is judged on the model
    alone; excesses are censored at ``cap`` (the alert threshold) so that alerts
    themselves do not teach the detector to ignore them.
    """

    base: float = 2.0
    prior_weight: float = 10.0
    n: float = 0.0
    exceed: float = 0.0
    uncensored: float = 0.0
    excess: float = 0.0

    def _rate_beta(self) -> tuple[float, float]:
        k = self.prior_weight
        rate = (self.exceed + k) / (self.n + k * 10.0 ** self.base)
        beta = (self.excess + k / _LN10) / (self.uncensored + k)
        return rate, beta

    def calibrated(self, surprise: float) -> float:
        """Calibrated ``-log10`` exceedance probability of a raw surprise."""
        rate, beta = self._rate_beta()
        head = -math.log10(min(rate, 1.0))
        if surprise <= self.base:
            return surprise * head / self.base
        return head + (surprise - self.base) / (beta * _LN10)

    def observe(self, surprise: float, cap: float, decay: float) -> None:
        """Record one raw surprise; excess above ``cap`` is censored."""
        self.n = decay * self.n + 1.0
        self.exceed *= decay
        self.uncensored *= decay
        self.excess *= decay
        if surprise > self.base:
            self.exceed += 1.0
            if surprise < cap:
                self.uncensored += 1.0
                self.excess += surprise - self.base
            else:
                self.excess += max(cap - self.base, 0.0)

    def raw_for(self, calibrated: float) -> float:
        """The raw surprise whose calibrated value is ``calibrated`` (inverse of ``calibrated``)."""
        rate, beta = self._rate_beta()
        head = -math.log10(min(rate, 1.0))
        if calibrated <= head:
            return calibrated * self.base / head if head > 0 else self.base
        return self.base + (calibrated - head) * beta * _LN10

    def to_state(self) -> list[float]:
        return [self.n, self.exceed, self.uncensored, self.excess]

    def load_state(self, values: list[float]) -> None:
        self.n, self.exceed, self.uncensored, self.excess = (float(v) for v in values)
