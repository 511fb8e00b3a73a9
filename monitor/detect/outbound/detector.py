"""The ``outbound`` detector: one signal per flagged post of the brand's own accounts.

It adds to the pure screen what needs memory or context: posting hours, bursts
(the brand's recent post times, kept in the detector state), the client app, the
approved-posts ledger and the engine's trending context. Each flagged post is its
own signal, keyed by the post, so the router's cooldown never holds back a distinct
post. A rule with ``categories`` (or ``exclude_categories``) only sees the findings
of those brand-safety categories: several outbound rules route one post's hate
findings to one channel and its phishing findings to another.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime
from typing import Any

from monitor.clock import parse_time
from monitor.config.schema import BrandConfig, Rule
from monitor.detect.base import DETECTORS, Detector, DetectorContext, EnrichedPost
from monitor.detect.explain import post_summary
from monitor.detect.outbound.checks_post import PostContext
from monitor.detect.outbound.core import ScreenResult, at_least
from monitor.detect.outbound.params import OutboundParams
from monitor.detect.outbound.runtime import LedgerMatch, OutboundRuntime
from monitor.detect.outbound.screen import OutboundScreen, run_checks
from monitor.model import Post, Signal

MAX_RECENT = 1000


@DETECTORS.register("outbound")
class OutboundDetector(Detector):
    """Screens each outbound post of one brand; flags it at once."""

    Params = OutboundParams
    kinds = ("outbound",)

    def __init__(self, rule: Rule, brand: BrandConfig,
                 ctx: DetectorContext | None = None) -> None:
        super().__init__(rule, brand, ctx)
        self.params: OutboundParams = rule.params or OutboundParams()
        names = (brand.name, *brand.handles)
        self.screener = OutboundScreen(self.params, brand.allowed_domains, names)
        self.screener.warm()  # at start-up or reload, not on the first post
        # the engine's watchlist and ledger; standalone (tests, tools): an empty one
        self.runtime = ctx.outbound if ctx is not None else OutboundRuntime()
        self.recent: deque[datetime] = deque(maxlen=MAX_RECENT)
        self._dirty = False

    def ledger(self, text: str, at: datetime) -> LedgerMatch | None:
        mode = self.params.ledger
        if mode == "off" or (mode == "auto" and not self.runtime.ledger_used(self.brand.name)):
            return None
        return self.runtime.match(self.brand.name, text, at)

    def evaluate(self, post: Post, compound: float | None = None) -> ScreenResult:
        """Every check on one post; remembers the post for the burst check."""
        at = post.created_at
        watch = self.runtime.watches(self.brand.name, at)
        result = self.screener.screen(post.text, watch=watch, compound=compound,
                                      trending=self.runtime.trending, brand=self.brand.name,
                                      at=at)
        window = self.params.burst_window
        self.recent.append(at)
        while self.recent and self.recent[0] < at - window:
            self.recent.popleft()
        recent = sum(1 for t in self.recent if at - window <= t <= at)
        self._dirty = self.params.burst_limit > 0
        ctx = PostContext(self.params, at, post.client, recent, self.ledger(post.text, at))
        return result.plus(run_checks("post", self.params, ctx))

    def observe(self, item: EnrichedPost, now: datetime) -> list[Signal]:
        post = item.post
        # a rule routed to some categories sees only their findings (and their severity)
        result = self.evaluate(post, item.compound).only(self.params.categories,
                                                         self.params.exclude_categories)
        if not result.flagged or not at_least(result.severity, self.params.min_severity):
            return []
        handle = post.author.handle.lstrip("@")
        link = f" {post.url}" if post.url else ""
        summary = (f"{self.brand.name}: outbound post by @{handle} flagged "
                   f"({'; '.join(result.reasons)}): {post.text[:140]}{link}")
        return [self.signal(post.created_at, "firing", summary, key=post.key,
                            severity=result.severity,
                            details={"post": post_summary(item), "link": post.url,
                                     "reasons": result.reasons, "checks": result.checks,
                                     "categories": result.categories,
                                     "score": round(result.score, 2),
                                     "client": post.client})]

    def dirty(self) -> bool:
        return self._dirty

    def state_time(self) -> datetime | None:
        return max(self.recent) if self.recent else None

    def next_tick(self) -> datetime | None:
        return None  # screened on arrival: nothing to do as time passes

    def to_state(self) -> dict[str, Any]:
        self._dirty = False
        return {"recent": [t.isoformat() for t in self.recent]}

    def load_state(self, state: dict[str, Any]) -> None:
        self.recent.extend(parse_time(t) for t in state.get("recent", []))
