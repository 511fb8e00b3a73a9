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

    def observe(self, item: EnrichedPost, now: datetime) -> list[Signal]:
        params: InfluencerParams = self.params
        if item.reach < params.min_followers or item.label not in params.sentiment:
            return []
        post = item.post
        summary = (f"{self.brand.name}: {item.label} post by @{post.author.handle.lstrip('@')} "
                   f"({item.reach:,} followers): {post.text[:140]}")
        return [self.signal(post.created_at, "firing", summary, key=post.key,
                            details={"post": post_summary(item),
                                     "top_posts": [post_summary(item)],
                                     "observed": item.reach,
                                     "threshold": params.min_followers})]

    def next_tick(self) -> datetime | None:
        return None  # one signal per post: nothing to do as time passes
