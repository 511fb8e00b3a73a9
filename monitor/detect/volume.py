"""Mention-volume spikes per brand, evaluated on arrival against a learned baseline.

The statistics live in ``countmodel`` (seasonal baseline, count-distribution
tail, and the absolute-evidence channel of ``absolute``, which cannot learn to ignore
crises); this module adds what the daemon needs around it: event-time buckets,
the minimum-count and minimum-distinct-author floors (one account posting a
hundred times is not a crisis), the explanation (``details.channel`` says which
channel opened the episode: ``burst`` or ``absolute``), and restart recovery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.config.schema import BrandConfig, Rule
from monitor.detect.base import DETECTORS, Detector, DetectorContext, EnrichedPost
from monitor.detect.countmodel import CountModel, CountModelParams, Verdict
from monitor.detect.explain import (
    brand_words,
    explain_terms,
    minutes,
    repeated_text,
    sentiment_mix,
    times,
    tokens,
    top_by_reach,
)
from monitor.detect.windows import Bucket, OpenBuckets, RecentTexts
from monitor.model import Signal

#: A run of empty buckets less likely than this (log10) under the count model -- about
#: nine mentions expected and none seen -- is a collection gap: those buckets are not
#: learned as zeros.  A brand that is often silent keeps learning its silences.
SILENT_LOG10P = -4.0



@dataclass(frozen=True, slots=True)
class VolumeParams:
    """``sensitivity``: low | medium | high or a number (see countmodel for its meaning)."""

    bucket: timedelta = timedelta(minutes=5)
    sensitivity: str | float = "medium"
    min_count: int = field(default=10, metadata={"min": 0})
    min_authors: int = field(default=5, metadata={"min": 1})
    max_gap: timedelta = timedelta(hours=1)
    lateness: timedelta = timedelta(minutes=2)

    def model_params(self) -> CountModelParams:
        return CountModelParams(bucket_seconds=int(self.bucket.total_seconds()),
                                sensitivity=self.sensitivity, min_count=self.min_count)

    def problems(self) -> list[tuple[str, str]]:
        if self.bucket < timedelta(seconds=10):
            return [("bucket", "must be at least 10s")]
        if not timedelta(0) <= self.lateness <= self.bucket:
            return [("lateness", "must be between 0s and the bucket size")]
        if isinstance(self.sensitivity, str) and self.sensitivity not in ("low", "medium",
                                                                          "high"):
            return [("sensitivity", "must be low, medium, high or a number")]
        if not isinstance(self.sensitivity, str) and not 0 < self.sensitivity < 1:
            return [("sensitivity", "a number must be a tail probability between 0 and 1")]
        return []


@DETECTORS.register("volume_spike")
class VolumeSpikeDetector(Detector):
    Params = VolumeParams

    def __init__(self, rule: Rule, brand: BrandConfig,
                 ctx: DetectorContext | None = None) -> None:
        super().__init__(rule, brand, ctx)
        self.params: VolumeParams = rule.params
        self.model = CountModel(self.params.model_params())
        self.buckets = OpenBuckets(self.params.bucket, self.params.lateness,
                                   fill_gap=self.params.max_gap)
        self.alerting = False
        self.silent = 0.0  # log10 probability of the current run of empty buckets
        self.recent = RecentTexts()
        self._dirty = False
        # the dashboard's expected band is per aggregate bucket (5 minutes): only a rule
        # counting in that bucket size can say what one was expected to hold (a 20-minute
        # rule's expectation is four times it, and would write spikes into the band)
        self._expect = ctx.expect if ctx is not None and \
            self.params.bucket == ctx.expect_bucket else None

    # -- time ---------------------------------------------------------------
    def _close_all(self, closed: list[tuple[Bucket, datetime]]) -> list[Signal]:
        signals: list[Signal] = []
        for bucket, _ in closed:
            signals += self._close(bucket)
        return signals

    def _close(self, bucket: Bucket) -> list[Signal]:
        verdict: Verdict | None = None
        if self.alerting or self.model.active:  # the episode may end with this bucket
            verdict = self.model.evaluate(bucket.start, bucket.count, fraction=1.0)
        # else nothing to resolve, and nothing fires at a close: a post fires (observe),
        # and one that the floors held back (min_authors) must not open a silent episode
        if self._expect is not None and self.model.warm:
            self._expect(self.brand.name, bucket.start,
                         round(self.model.expected(bucket.start), 2))
        if bucket.count:
            self.silent = 0.0
        else:
            self.silent += self.model.log10_p_zero(bucket.start)
        if self.silent > SILENT_LOG10P:
            self.model.learn(bucket.start, bucket.count)
        # else: a run of empty buckets this unlikely is a collection gap (a source down
        # inside max_gap), not real silence: the buckets stay missing, as after a gap
        self.recent.extend(bucket.posts)
        self._dirty = True
        if self.alerting and verdict is not None and not verdict.active:
            self.alerting = False
            details = self._numbers(verdict, bucket)
            details["headline"] = (
                f"Mentions of {self.brand.name} are back to normal: {bucket.count:g} in "
                f"{minutes(self.params.bucket)} (about {verdict.expected:.0f} usual)")
            return [self.signal(bucket.start + self.params.bucket, "resolved",
                                f"{self.brand.name}: mention volume back to normal "
                                f"({bucket.count:g} vs ~{verdict.expected:.0f} expected)",
                                details=details)]
        return []

    def tick(self, now: datetime) -> list[Signal]:
        return self._close_all(self.buckets.advance(now))

    def next_tick(self) -> datetime | None:
        return self.buckets.next_change()

    # -- posts --------------------------------------------------------------
    def observe(self, item: EnrichedPost, now: datetime) -> list[Signal]:
        closed, bucket = self.buckets.place(item.post.created_at)
        signals = self._close_all(closed) if closed else []
        if bucket is None:
            self.late += 1  # closed buckets stay closed; the engine reports the count
            return signals
        bucket.add(item)
        if (self.alerting or bucket.count < self.params.min_count
                or len(bucket.authors) < self.params.min_authors):
            return signals  # cheap floors first: the model is only asked when it matters
        if bucket is self.buckets.current:
            size = self.params.bucket.total_seconds()
            elapsed = (max(now, item.post.created_at) - bucket.start).total_seconds()
            fraction = min(1.0, max(elapsed / size, 0.05))
        else:  # a late post for the bucket that is still open for them: it is complete
            fraction = 1.0
        if not self.model.active and not self.model.could_fire(
                bucket.start, bucket.count, fraction=fraction):
            return signals  # the cheap bound says it cannot fire: no tail to compute
        verdict = self.model.evaluate(bucket.start, bucket.count, fraction=fraction)
        if verdict.active:
            self.alerting = True
            self._dirty = True
            signals.append(self._firing(item, verdict, bucket))
        return signals

    def _numbers(self, verdict: Verdict, bucket: Bucket) -> dict[str, Any]:
        numbers = {
            "channel": verdict.channel,
            "observed": bucket.count,
            "expected": round(verdict.expected, 2),
            "statistic": round(verdict.statistic, 3),
            "threshold": round(verdict.threshold, 3),
            "window": {"start": bucket.start.isoformat(),
                       "seconds": self.params.bucket.total_seconds()},
            "distinct_authors": len(bucket.authors),
            "warm": verdict.warm,
        }
        evidence = verdict.absolute
        if verdict.channel == "absolute" and evidence is not None:
            size = self.params.bucket
            numbers["absolute"] = {
                "surprise": round(evidence.surprise, 3),
                "threshold": round(verdict.absolute_threshold, 3),
                "observed": evidence.observed,
                "expected": round(evidence.expected, 2),
                "window": {"start": (bucket.start - (evidence.scale - 1) * size).isoformat(),
                           "seconds": evidence.scale * size.total_seconds()},
            }
        return numbers

    def _firing(self, item: EnrichedPost, verdict: Verdict, bucket: Bucket) -> Signal:
        details = self._numbers(verdict, bucket)
        own = brand_words(self.brand)
        details.update(explain_terms((p.post.text for p in bucket.posts), self.recent.texts(),
                                     own))
        # the posts that show what the spike is about: those with its words, by reach
        why = {term for term, _ in details["top_terms"]}
        telling = [p for p in bucket.posts if why.intersection(tokens(p.post.text, own))]
        details["top_posts"] = top_by_reach(telling or bucket.posts)
        details["sentiment_mix"] = sentiment_mix(bucket.posts)
        copies = repeated_text(bucket.posts)
        if copies is not None:
            details["repeated_post"] = copies
        ratio = bucket.count / verdict.expected if verdict.expected > 0 else float("inf")
        elapsed = min(max(item.post.created_at - bucket.start, self.params.bucket * 0.05),
                      self.params.bucket)
        people = len(bucket.authors)
        details["headline"] = (
            f"Mentions of {self.brand.name} are {times(ratio)} usual: {bucket.count:,} "
            f"post{'' if bucket.count == 1 else 's'} from {people:,} "
            f"{'person' if people == 1 else 'people'} in {minutes(elapsed)}"
            + (f", mostly copies of one post ({copies['copies']:,})" if copies else ""))
        what = "a copy/retweet storm of one post" if copies else "a mention spike"
        summary = (f"{self.brand.name}: {what}: {bucket.count} mentions from "
                   f"{len(bucket.authors)} authors in the current "
                   f"{int(self.params.bucket.total_seconds() // 60)}-minute window, "
                   f"~{verdict.expected:.1f} expected ({ratio:.1f}x)")
        evidence = verdict.absolute
        if verdict.channel == "absolute" and evidence is not None:
            span = int(evidence.scale * self.params.bucket.total_seconds() // 60)
            summary += (f"; {evidence.observed:g} in the last {span} minutes vs "
                        f"~{evidence.expected:.1f} usual: beyond what this brand reaches "
                        f"once a quarter (absolute evidence)")
        return self.signal(item.post.created_at, "firing", summary, details=details)

    # -- persistence ----------------------------------------------------------
    def dirty(self) -> bool:
        dirty, self._dirty = self._dirty, False
        return dirty

    def to_state(self) -> dict[str, Any]:
        return {"model": self.model.to_state(), "alerting": self.alerting,
                "silent": self.silent, **self.buckets.to_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.model = CountModel.from_state(self.params.model_params(), state["model"])
        self.alerting = bool(state.get("alerting", False))
        self.silent = float(state.get("silent", 0.0))
        self.buckets.load_state(state)

    def state_time(self) -> datetime | None:
        return self.buckets.newest()

    def resume_from(self) -> datetime | None:
        """Posts from here on must be observed again after a restart."""
        return self.buckets.oldest()
