"""Small, dependency-free statistics used by the detectors."""

from __future__ import annotations

import math


def binomial_sf_log10(k: int, n: int, p: float) -> float:
    """-log10 P(X >= k) for X ~ Binomial(n, p): large means surprising."""
    if k <= 0:
        return 0.0
    if k > n:
        return math.inf
    p = min(max(p, 1e-9), 1 - 1e-9)
    log_p, log_q = math.log(p), math.log1p(-p)
    lg_n1 = math.lgamma(n + 1)

    def log_pmf(i: int) -> float:
        return lg_n1 - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q

    # sum the upper tail in log space, starting from its largest term
    terms = [log_pmf(i) for i in range(k, n + 1)]
    top = max(terms)
    log_tail = top + math.log(sum(math.exp(t - top) for t in terms))
    return max(0.0, -log_tail / math.log(10))
