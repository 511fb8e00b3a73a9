"""Findings, the severity they add up to, and the registry of checks.

Each check registers itself with :func:`check`: a name (the key admins use under
``params.checks``), a default weight, a reason shown to people, a brand-safety
category (:mod:`.taxonomy`; a hit may name another) and a scope: ``text``
checks are pure functions of the post text (:mod:`.checks_content`,
:mod:`.checks_risk`), ``post`` checks need the post's time, client and the
detector's memory (:mod:`.checks_post`). A check returns :class:`Hit` values; the
hits' factors (each a fraction of the check's weight, e.g. 0.4 for mild profanity)
add up, capped at the check's ``cap``, and become one :class:`Finding` whose weight
is ``weight x factors`` and whose category is that of its strongest hit. A reason
reads ``"<reason>: <details> [<category>]"``.

Severity mapping (the score is the sum of the findings' weights):

============  =========  ======================================================
score         severity   meaning
============  =========  ======================================================
>= 1.0        critical   "high": one strong signal or several weaker ones agree
>= 0.5        warning    one moderate signal (a non-allowed link, a phone number)
> 0           info       weak single signals (a tragedy word in a memorial post)
============  =========  ======================================================

By default the detector alerts from ``warning`` up (``min_severity``); ``screen``
shows every finding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from monitor.detect.outbound.taxonomy import check_category
from monitor.model import SEVERITIES, Severity

CRITICAL, WARNING = 1.0, 0.5
Scope = Literal["text", "post"]


@dataclass(frozen=True, slots=True)
class Hit:
    detail: str
    factor: float = 1.0
    category: str | None = None  # None: the check's own category


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    reason: str
    weight: float
    category: str = ""


def severity_of(score: float) -> Severity:
    if score >= CRITICAL - 1e-9:
        return "critical"
    return "warning" if score >= WARNING - 1e-9 else "info"


def at_least(severity: Severity, minimum: Severity) -> bool:
    return SEVERITIES.index(severity) >= SEVERITIES.index(minimum)


@dataclass(frozen=True, slots=True)
class ScreenResult:
    findings: tuple[Finding, ...]

    @property
    def score(self) -> float:
        return round(sum(f.weight for f in self.findings), 6)

    @property
    def flagged(self) -> bool:
        return bool(self.findings)

    @property
    def severity(self) -> Severity:
        return severity_of(self.score)

    @property
    def reasons(self) -> list[str]:
        return [f.reason for f in self.findings]

    @property
    def checks(self) -> list[str]:
        return [f.check for f in self.findings]

    @property
    def categories(self) -> list[str]:
        return list(dict.fromkeys(f.category for f in self.findings))

    def plus(self, findings: list[Finding]) -> ScreenResult:
        return ScreenResult(self.findings + tuple(findings))

    def only(self, categories: tuple[str, ...] = (),
             exclude: tuple[str, ...] = ()) -> ScreenResult:
        """The findings in ``categories`` (all when empty) and not in ``exclude``."""
        return ScreenResult(tuple(f for f in self.findings
                                  if (not categories or f.category in categories)
                                  and f.category not in exclude))


@dataclass(frozen=True, slots=True)
class CheckSpec:
    name: str
    weight: float
    reason: str
    scope: Scope
    fn: Callable[[Any], list[Hit]]
    cap: float = 1.0  # the most the hits' factors may add up to
    category: str = "spam_harmful"

    def finding(self, hits: list[Hit], weight: float) -> Finding | None:
        if not hits:
            return None
        details = list(dict.fromkeys(h.detail for h in hits if h.detail))
        factor = min(self.cap, sum(h.factor for h in hits))
        strongest = max(hits, key=lambda h: h.factor)
        category = strongest.category or self.category
        reason = f"{self.reason}: {', '.join(details)}" if details else self.reason
        return Finding(self.name, f"{reason} [{category}]", round(weight * factor, 4), category)


CHECKS: dict[str, CheckSpec] = {}
F = TypeVar("F", bound=Callable[..., list[Hit]])


def check(name: str, *, weight: float, reason: str, category: str, scope: Scope = "text",
          cap: float = 1.0) -> Callable[[F], F]:
    """Register a check (see the module docstring)."""
    check_category(category)

    def decorate(fn: F) -> F:
        if name in CHECKS:
            raise RuntimeError(f"outbound check {name!r} registered twice")
        CHECKS[name] = CheckSpec(name, weight, reason, scope, fn, cap, category)
        return fn

    return decorate
