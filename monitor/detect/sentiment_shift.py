"""Negative-sentiment surges: the share of negative posts rising above its baseline.

Per window (default one hour, in event time) the detector tests the number of
negative posts against Binomial(n, p0), where p0 is the brand's long-run
negative share (a volume-weighted average with a half-life, learned from closed
windows). It fires on arrival once the tail probability is below the rule's
sensitivity and the share exceeds the baseline by ``min_increase``, with floors
on volume, negatives and distinct authors — so it also fires when total volume
is flat, and a handful of posts never moves it.

Sensitivity: low = 1e-6, medium = 1e-4, high = 1e-3 (tail probability), or a
number: -log10 of the tail probability to exceed.
Warm-up: until ``warmup_posts`` posts have been seen, p0 is the prior (25%).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.config.schema import BrandConfig, Rule
from monitor.detect.base import DETECTORS, Detector, DetectorContext, EnrichedPost
from monitor.detect.explain import (
    brand_words,
    explain_terms,
    minutes,
    sentiment_mix,
    top_by_reach,
)
from monitor.detect.stats import binomial_sf_log10
from monitor.detect.windows import Bucket, OpenBuckets, RecentTexts
from monitor.model import Signal

LEVELS = {"low": 6.0, "medium": 4.0, "high": 3.0}
PRIOR_SHARE = 0.25
MIN_SHARE = 0.02  # a brand never "usually" has fewer negatives than this (test stability)


@dataclass(frozen=True, slots=True)
class NegativeSurgeParams:
    window: timedelta = timedelta(hours=1)
    sensitivity: str | float = "medium"
    min_count: int = field(default=20, metadata={"min": 1})
    min_negative: int = field(default=10, metadata={"min": 1})
    min_authors: int = field(default=5, metadata={"min": 1})
    min_increase: float = field(default=0.15, metadata={"min": 0.0, "max": 1.0})
    half_life: timedelta = timedelta(days=3)
    warmup_posts: int = field(default=200, metadata={"min": 0})
    lateness: timedelta = timedelta(minutes=2)

    @property
    def threshold(self) -> float:
        if isinstance(self.sensitivity, str):
            return LEVELS[self.sensitivity]
        return float(self.sensitivity)

    def problems(self) -> list[tuple[str, str]]:
        if isinstance(self.sensitivity, str) and self.sensitivity not in LEVELS:
            return [("sensitivity", "must be low, medium, high or a number")]
        if self.window < timedelta(minutes=1):
            return [("window", "must be at least 1m")]
        if not timedelta(0) <= self.lateness <= self.window:
            return [("lateness", "must be between 0s and the window")]
        return []


@DETECTORS.register("negative_surge")
class NegativeSurgeDetector(Detector):
    Params = NegativeSurgeParams

    def __init__(self, rule: Rule, brand: BrandConfig,
                 ctx: DetectorContext | None = None) -> None:
        super().__init__(rule, brand, ctx)
        self.params: NegativeSurgeParams = rule.params
        self.neg_sum = 0.0
        self.total_sum = 0.0
        self.seen = 0
        self.buckets = OpenBuckets(self.params.window, self.params.lateness)
        self.alerting = False
        self.recent = RecentTexts()
        self._dirty = False

    @property
    def baseline(self) -> float:
        if self.seen < self.params.warmup_posts or self.total_sum <= 0:
            return PRIOR_SHARE
        return max(MIN_SHARE, self.neg_sum / self.total_sum)

    def _statistic(self, bucket: Bucket) -> float:
        share = bucket.negatives / bucket.count if bucket.count else 0.0
        if share - self.baseline < self.params.min_increase:
            return 0.0
        return binomial_sf_log10(bucket.negatives, bucket.count, self.baseline)

    def _significant(self, bucket: Bucket) -> bool:
        p = self.params
        return (bucket.count >= p.min_count and bucket.negatives >= p.min_negative
                and len(bucket.authors) >= p.min_authors
                and self._statistic(bucket) >= p.threshold)

    def _close(self, bucket: Bucket, end: datetime) -> list[Signal]:
        signals = []
        if self.alerting and not self._significant(bucket):
            self.alerting = False
            details = self._numbers(bucket)
            share = bucket.negatives / bucket.count if bucket.count else 0.0
            details["headline"] = (f"The share of negative posts about {self.brand.name} is "
                                   f"back to normal: {share:.0%} (usually {self.baseline:.0%})")
            signals.append(self.signal(end, "resolved",
                                       f"{self.brand.name}: negative share back to normal",
                                       details=details))
        gaps = max(1.0, (end - bucket.start) / self.params.window)
        decay = 0.5 ** (gaps * self.params.window / self.params.half_life)
        self.neg_sum = self.neg_sum * decay + bucket.negatives
        self.total_sum = self.total_sum * decay + bucket.count
        self.seen += bucket.count
        self.recent.extend(bucket.posts)
        self._dirty = True
        return signals

    def _close_all(self, closed: list[tuple[Bucket, datetime]]) -> list[Signal]:
        signals: list[Signal] = []
        for bucket, follows in closed:
            signals += self._close(bucket, follows)
        return signals

    def tick(self, now: datetime) -> list[Signal]:
        return self._close_all(self.buckets.advance(now))

    def next_tick(self) -> datetime | None:
        return self.buckets.next_change()

    def observe(self, item: EnrichedPost, now: datetime) -> list[Signal]:
        closed, bucket = self.buckets.place(item.post.created_at)
        signals = self._close_all(closed) if closed else []
        if bucket is None:
            self.late += 1  # closed windows stay closed; the engine reports the count
            return signals
        bucket.add(item)
        if not self.alerting and item.negative and self._significant(bucket):
            self.alerting = True
            self._dirty = True
            signals.append(self._firing(item, bucket))
        return signals

    def _numbers(self, bucket: Bucket) -> dict[str, Any]:
        return {
            "observed": round(bucket.negatives / bucket.count, 3) if bucket.count else 0.0,
            "expected": round(self.baseline, 3),
            "negatives": bucket.negatives,
            "posts": bucket.count,
            "statistic": round(min(self._statistic(bucket), 99.0), 2),
            "threshold": self.params.threshold,
            "window": {"start": bucket.start.isoformat(),
                       "seconds": self.params.window.total_seconds()},
            "distinct_authors": len(bucket.authors),
        }

    def _firing(self, item: EnrichedPost, bucket: Bucket) -> Signal:
        details = self._numbers(bucket)
        negatives = [p for p in bucket.posts if p.negative]
        details.update(explain_terms((p.post.text for p in negatives), self.recent.texts(),
                                     brand_words(self.brand)))
        details["top_posts"] = top_by_reach(negatives)
        elapsed = max(item.post.created_at - bucket.start, self.params.window * 0.01)
        people = len(bucket.authors)
        details["headline"] = (
            f"{details['observed']:.0%} of posts about {self.brand.name} are negative "
            f"(usually {self.baseline:.0%}): {bucket.negatives:,} of {bucket.count:,} in "
            f"{minutes(min(elapsed, self.params.window))}, from {people:,} "
            f"{'person' if people == 1 else 'people'}")
        details["sentiment_mix"] = sentiment_mix(bucket.posts)
        summary = (f"{self.brand.name}: negative posts at {details['observed']:.0%} of "
                   f"{bucket.count} mentions this window vs {self.baseline:.0%} usually "
                   f"({bucket.negatives} negative, {len(bucket.authors)} authors)")
        return self.signal(item.post.created_at, "firing", summary, details=details)

    def dirty(self) -> bool:
        dirty, self._dirty = self._dirty, False
        return dirty

    def to_state(self) -> dict[str, Any]:
        return {"neg_sum": self.neg_sum, "total_sum": self.total_sum, "seen": self.seen,
                "alerting": self.alerting, **self.buckets.to_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.neg_sum = float(state.get("neg_sum", 0.0))
        self.total_sum = float(state.get("total_sum", 0.0))
        self.seen = int(state.get("seen", 0))
        self.alerting = bool(state.get("alerting", False))
        self.buckets.load_state(state)

    def state_time(self) -> datetime | None:
        return self.buckets.newest()

    def resume_from(self) -> datetime | None:
        return self.buckets.oldest()
