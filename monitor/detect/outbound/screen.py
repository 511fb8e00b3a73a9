"""The pure screen: every enabled text check over one post's text."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from monitor.detect.outbound import checks_content, checks_post, checks_risk
from monitor.detect.outbound.context import ScreenContext, Setup, Watch
from monitor.detect.outbound.core import CHECKS, CheckSpec, Finding, ScreenResult
from monitor.detect.outbound.params import OutboundParams
from monitor.detect.outbound.text import TextView

log = logging.getLogger(__name__)
_LOADED = (checks_content, checks_risk, checks_post)  # imported so that they register


def specs(scope: str) -> list[CheckSpec]:
    return [spec for spec in CHECKS.values() if spec.scope == scope]


def run_checks(scope: str, params: OutboundParams, ctx: object) -> list[Finding]:
    """Run the enabled checks of ``scope``; a failing check is logged, never fatal."""
    findings: list[Finding] = []
    for spec in specs(scope):
        if not params.enabled(spec.name):
            continue
        try:
            hits = spec.fn(ctx)
        except Exception:
            log.exception("outbound check %s failed", spec.name)
            continue
        finding = spec.finding(hits, params.weight(spec.name, spec.weight))
        if finding is not None and finding.weight > 0:
            findings.append(finding)
    return findings


class OutboundScreen:
    """Screens texts with one rule's parameters for one brand (or for all of them)."""

    def __init__(self, params: OutboundParams, allowed_domains: Iterable[str] = (),
                 brand_names: Iterable[str] = ()) -> None:
        self.params = params
        self.setup = Setup(params, allowed_domains, brand_names)
        self.allowed = self.setup.allowed

    def screen(self, text: str, *, watch: Sequence[Watch] = (),
               compound: float | None = None) -> ScreenResult:
        """Text checks only; ``watch``: runtime watchlist entries in force."""
        ctx = ScreenContext(self.setup, TextView.of(text), watch, compound)
        return ScreenResult(tuple(run_checks("text", self.params, ctx)))
