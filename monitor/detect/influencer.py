"""Influencer posts: a negative mention by an author whose reach is above a threshold."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from monitor.detect.base import DETECTORS, Detector, EnrichedPost
from monitor.detect.explain import post_summary
from monitor.model import Signal


@dataclass(frozen=True, slots=True)
class InfluencerParams:
    min_followers: int = field(default=50_000, metadata={"min": 0})
    sentiment: tuple[Literal["negative", "neutral", "positive"], ...] = ("negative",)


@DETECTORS.register("influencer")
class InfluencerDetector(Detector):
    """One signal per qualifying post (its id is the dedup key); nothing to resolve."""

    Params = InfluencerParams
    modes = ("per_post", "digest")  # a post by a large audience is an incident by itself
    timeless = True  # one signal per post: nothing to do as time passes

    def observe(self, item: EnrichedPost, now: datetime) -> list[Signal]:
        params: InfluencerParams = self.params
        if item.reach < params.min_followers or item.label not in params.sentiment:
            return []
        post = item.post
        handle = post.author.handle.lstrip("@")
        summary = (f"{self.brand.name}: {item.label} post by @{handle} "
                   f"({item.reach:,} followers): {post.text[:140]}")
        how = {"negative": "negatively ", "positive": "positively "}.get(item.label, "")
        headline = f"@{handle}, with {item.reach:,} followers, posted {how}about {self.brand.name}"
        return [self.signal(post.created_at, "firing", summary, key=post.key,
                            details={"headline": headline,
                                     "post": post_summary(item),
                                     "top_posts": [post_summary(item)],
                                     "observed": item.reach,
                                     "threshold": params.min_followers})]

    def next_tick(self) -> datetime | None:
        return None

    def digest_phrase(self, people: int) -> str:
        params: InfluencerParams = self.params
        who = "high-reach author" if people == 1 else "high-reach authors"
        how = "negatively " if tuple(params.sentiment) == ("negative",) else ""
        return f"{people:,} {who} posted {how}about {self.brand.name}"
