"""The pure screen: every enabled text check over one post's text."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from monitor.detect.outbound import (
    checks_content,
    checks_events,
    checks_identity,
    checks_post,
    checks_risk,
    checks_staff,
)
from monitor.detect.outbound.context import ScreenContext, Setup, Trending, Watch
from monitor.detect.outbound.core import CHECKS, CheckSpec, Finding, ScreenResult
from monitor.detect.outbound.params import OutboundParams
from monitor.detect.outbound.text import TextView

log = logging.getLogger(__name__)
_LOADED = (checks_content, checks_risk, checks_post, checks_identity, checks_events,
           checks_staff)  # imported so that they register


def specs(scope: str) -> list[CheckSpec]:
    return [spec for spec in CHECKS.values() if spec.scope == scope]


def plan(scope: str, params: OutboundParams) -> list[tuple[CheckSpec, float]]:
    """The enabled checks of ``scope`` with their weights under ``params``."""
    return [(spec, params.weight(spec.name, spec.weight)) for spec in specs(scope)
            if params.enabled(spec.name)]


def run_checks(scope: str, params: OutboundParams, ctx: object,
               checks: list[tuple[CheckSpec, float]] | None = None) -> list[Finding]:
    """Run the enabled checks of ``scope``; a failing check is logged, never fatal."""
    findings: list[Finding] = []
    for spec, weight in plan(scope, params) if checks is None else checks:
        try:
            hits = spec.fn(ctx)
        except Exception:
            log.exception("outbound check %s failed", spec.name)
            continue
        if not hits:
            continue
        finding = spec.finding(hits, weight)
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
        self._plan = plan("text", params) if len(CHECKS) else []
        self._checks = len(CHECKS)

    def warm(self) -> None:
        """Build what the checks load on first use (data packs, vocabularies, patterns)
        now: the first outbound post must not pay for it on the daemon's event loop
        (a 200 ms stall was measured). Cached per parameter set, so cheap when repeated."""
        self.screen("We are sorry to hear about the storm, our team is on it: 20% off "
                    "#travel today at https://example.com with @support", compound=0.0,
                    at=datetime(2000, 1, 1, tzinfo=UTC))

    def screen(self, text: str, *, watch: Sequence[Watch] = (), compound: float | None = None,
               trending: Trending | None = None, brand: str | None = None,
               at: datetime | None = None) -> ScreenResult:
        """Text checks only; ``watch``: runtime watchlist entries in force; ``trending``:
        the engine's view of the inbound stream (with the brand and the post's time)."""
        ctx = ScreenContext(self.setup, TextView.of(text), watch, compound, trending, brand, at)
        if self._checks != len(CHECKS):  # a check registered since (plugins, tests)
            self._plan, self._checks = plan("text", self.params), len(CHECKS)
        return ScreenResult(tuple(run_checks("text", self.params, ctx, self._plan)))
