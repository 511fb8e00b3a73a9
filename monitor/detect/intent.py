"""Intent: mentions tagged purchase intent or churn risk (see enrich.intent).

One signal per tagged post; a rule presents them as a digest per brand (``mode:
digest``, the default: see monitor.detect.digest) or one alert per post
(``mode: per_post``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from monitor.config.schema import BrandConfig, Rule
from monitor.detect.base import DETECTORS, Detector, DetectorContext, EnrichedPost
from monitor.detect.explain import post_summary
from monitor.enrich import intent
from monitor.model import Signal

Tag = Literal["purchase_intent", "churn_risk"]
_WHAT = {intent.PURCHASE: "purchase intent", intent.CHURN: "churn risk"}
#: per tag: what one author did, for headlines ("@ann said they are leaving Acme Air")
_DID = {intent.PURCHASE: "asked how to buy from {brand}",
        intent.CHURN: "said they are leaving {brand}"}


@dataclass(frozen=True, slots=True)
class IntentParams:
    """``purchase_phrases``/``churn_phrases``: admin additions to the built-in lexicon."""

    tags: tuple[Tag, ...] = ("churn_risk",)
    min_followers: int = field(default=0, metadata={"min": 0})
    purchase_phrases: tuple[str, ...] = ()
    churn_phrases: tuple[str, ...] = ()


@DETECTORS.register("intent")
class IntentDetector(Detector):
    """One signal per tagged post (its id is the dedup key); nothing to resolve."""

    Params = IntentParams
    modes = ("digest", "per_post")
    timeless = True  # one signal per post: nothing to do as time passes

    def __init__(self, rule: Rule, brand: BrandConfig,
                 ctx: DetectorContext | None = None) -> None:
        super().__init__(rule, brand, ctx)
        self.params: IntentParams = rule.params
        self.extra = (*intent.phrase_patterns(intent.PURCHASE, self.params.purchase_phrases),
                      *intent.phrase_patterns(intent.CHURN, self.params.churn_phrases))
        self.wanted = frozenset(self.params.tags)

    def observe(self, item: EnrichedPost, now: datetime) -> list[Signal]:
        params = self.params
        if item.reach < params.min_followers:
            return []
        wanted = self.wanted
        if not self.extra and wanted.isdisjoint(item.tags):
            return []  # the engine's tags come from the built-in lexicon
        own = intent.own_terms(self.brand)
        matches = [m for m in intent.find(item.post.text, self.extra, own) if m.tag in wanted]
        if not matches:
            return []
        post = item.post
        tags = sorted({m.tag for m in matches}, key=intent.TAGS.index)
        what = " and ".join(_WHAT[t] for t in tags)
        phrases = ", ".join(f'"{m.phrase}"' for m in matches)
        handle = post.author.handle.lstrip("@")
        summary = (f"{self.brand.name}: {what} from @{handle} "
                   f"({item.reach:,} followers), matched {phrases}: {post.text[:140]}")
        did = " and ".join(_DID[t] for t in tags).format(brand=self.brand.name)
        return [self.signal(post.created_at, "firing", summary, key=post.key, details={
            "headline": f"@{handle} ({item.reach:,} followers) {did}",
            "why_title": "What they said",
            "why": [f"\u201c{m.phrase}\u201d" for m in matches],
            "post": post_summary(item),
            "top_posts": [post_summary(item)],
            "tags": tags,
            "matches": [{"tag": m.tag, "pattern": m.label, "phrase": m.phrase}
                        for m in matches],
        })]

    def next_tick(self) -> datetime | None:
        return None

    def digest_phrase(self, people: int) -> str:
        """``12 customers said they are leaving Acme Air``, ``3 people asked how to buy
        from Acme Air``, or both kinds together."""
        brand = self.brand.name
        tags = set(self.params.tags)
        if tags == {intent.CHURN}:
            who = "customer" if people == 1 else "customers"
            return f"{people:,} {who} said they are leaving {brand}"
        who = "person" if people == 1 else "people"
        if tags == {intent.PURCHASE}:
            return f"{people:,} {who} asked how to buy from {brand}"
        return f"{people:,} {who} said they would buy from or leave {brand}"
