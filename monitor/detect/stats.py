"""Small, dependency-free statistics used by the detectors."""

from __future__ import annotations

import math


def binomial_sf_log10(k: int, n: int, p: float) -> float:
    """-log10 P(X >= k) for X ~ Binomial(n, p): large means surprising.

    Bounded work whatever ``n`` (a storm's hour can hold tens of thousands of posts):
    far below the mean the tail is 1; otherwise the tail is summed from ``k`` up by the
    ratio of successive terms, stopping once they no longer change the sum.
    """
    if k <= 0:
        return 0.0
    if k > n:
        return math.inf
    p = min(max(p, 1e-9), 1 - 1e-9)
    mean = n * p
    if k < mean - 12 * math.sqrt(mean * (1 - p)) - 1:
        return 0.0  # P(X >= k) > 1 - 1e-30
    log_p, log_q = math.log(p), math.log1p(-p)
    log_first = (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                 + k * log_p + (n - k) * log_q)
    odds = p / (1 - p)
    # sum term_i / term_k: it grows while i is below the mode, then shrinks
    total = term = 1.0
    peak = 1.0
    for i in range(k, n):
        term *= (n - i) / (i + 1) * odds
        total += term
        if term > peak:
            peak = term
        elif term < total * 1e-17:
            break
    log_tail = log_first + math.log(total)
    return max(0.0, -log_tail / math.log(10))
