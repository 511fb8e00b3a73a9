"""Time buckets in event time, shared by the bucketed detectors."""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from monitor.detect.base import EnrichedPost

MAX_BUCKET_POSTS = 2000
BASELINE_TEXTS = 1000


def bucket_start(when: datetime, size: timedelta) -> datetime:
    seconds = size.total_seconds()
    epoch = when.timestamp()
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)




_order = itertools.count()  # arrival order: among the least reach, the oldest goes first;
# a newcomer needs more reach than the least kept (ties: the kept post stays)


@dataclass(slots=True)
class Bucket:
    """The open bucket: counts plus a bounded sample of its posts for explanations.

    Up to ``MAX_BUCKET_POSTS`` every post is kept, in arrival order; from then on a
    post replaces the lowest-reach one when its reach is higher (the sample becomes a
    min-heap on reach once full: O(log n) per post, whatever the storm).
    """

    start: datetime
    count: int = 0
    negatives: int = 0
    authors: set[str] = field(default_factory=set)
    _sample: list[tuple[int, int, EnrichedPost]] = field(default_factory=list, repr=False)

    @property
    def posts(self) -> list[EnrichedPost]:
        """The sampled posts, oldest sampled first."""
        sample = self._sample
        if len(sample) < MAX_BUCKET_POSTS:
            return [entry[2] for entry in sample]  # never full: still in arrival order
        return [entry[2] for entry in sorted(sample, key=lambda e: e[1])]

    def add(self, item: EnrichedPost) -> None:
        self.count += 1
        if item.negative:
            self.negatives += 1
        self.authors.add(item.post.author.id)
        sample = self._sample
        if len(sample) < MAX_BUCKET_POSTS:
            sample.append((item.reach, next(_order), item))
            if len(sample) == MAX_BUCKET_POSTS:  # full now: from here a min-heap
                heapq.heapify(sample)
        elif item.reach > sample[0][0]:  # keep the highest-reach posts
            heapq.heapreplace(sample, (item.reach, next(_order), item))


class RecentTexts:
    """A bounded sample of texts from closed buckets: the baseline for top terms."""

    def __init__(self, size: int = BASELINE_TEXTS) -> None:
        self._texts: deque[str] = deque(maxlen=size)

    def extend(self, items: list[EnrichedPost]) -> None:
        self._texts.extend(i.post.text for i in items[-200:])

    def texts(self) -> list[str]:
        return list(self._texts)


class OpenBuckets:
    """The open buckets of an event-time detector, with allowed lateness.

    The newest bucket (``current``) takes posts as they arrive.  When time moves into a
    new bucket, the one before it stays open (``prev``) for posts that arrive late --
    a feed polled every minute, a stream that reconnects -- until the watermark passes
    its end by ``lateness``; only then is it closed (learned by the baseline).  A post
    older than every open bucket is *late*: the detector counts it (the engine reports
    it in ``brandmon_posts_late_total``) and it is stored, but no closed bucket changes.

    The watermark is the event time of the newest post when posts arrive (so a backfill
    of old posts runs in its own time) and the clock's time on a tick.  ``fill_gap``:
    buckets skipped over within this span are closed as real zeros (a running daemon
    saw nothing); after a longer gap nothing is filled (missing data, not zeros).
    ``lateness`` must not exceed the bucket size (at most one bucket waits).
    """

    def __init__(self, size: timedelta, lateness: timedelta = timedelta(0),
                 fill_gap: timedelta | None = None) -> None:
        if lateness < timedelta(0) or lateness > size:
            raise ValueError("lateness must be between 0 and the bucket size")
        self.size = size
        self.lateness = lateness
        self.fill_gap = fill_gap
        self.current: Bucket | None = None
        self.prev: Bucket | None = None
        # before this time, advance() has nothing to do (most ticks and posts)
        self._quiet_until: datetime | None = None

    def _due(self, bucket: Bucket, watermark: datetime) -> bool:
        return bucket.start + self.size + self.lateness <= watermark

    def advance(self, watermark: datetime) -> list[tuple[Bucket, datetime]]:
        """Move time to ``watermark``; the buckets that close, oldest first, each with
        the start of the bucket that follows it."""
        current = self.current
        if current is None:
            return []
        quiet = self._quiet_until
        if quiet is not None and watermark < quiet:
            return []
        closed = self._advance(watermark)
        self._quiet_until = self._change_at()
        return closed

    def _change_at(self) -> datetime:
        """When the open buckets next change: the next bucket starts, or the one kept
        open for late posts closes."""
        assert self.current is not None
        until = self.current.start + self.size
        if self.prev is not None:
            until = min(until, self.prev.start + self.size + self.lateness)
        return until

    def _advance(self, watermark: datetime) -> list[tuple[Bucket, datetime]]:
        current = self.current
        assert current is not None
        pending: list[Bucket] = []
        to = bucket_start(watermark, self.size)
        if to > current.start:
            pending = [self.prev] if self.prev is not None else []
            pending.append(current)
            if self.fill_gap is not None and to - current.start <= self.fill_gap:
                start = current.start + self.size
                while start < to:
                    pending.append(Bucket(start))
                    start += self.size
            self.current, self.prev = Bucket(to), None
            last = pending[-1]
            if last.start + self.size == to and not self._due(last, watermark):
                self.prev = pending.pop()
        elif self.prev is not None and self._due(self.prev, watermark):
            pending, self.prev = [self.prev], None
        assert self.current is not None
        if not pending:
            return []
        follows = [b.start for b in pending[1:]] + [
            self.prev.start if self.prev is not None else self.current.start]
        return list(zip(pending, follows, strict=True))

    def place(self, when: datetime) -> tuple[list[tuple[Bucket, datetime]], Bucket | None]:
        """Advance to a post created at ``when`` (its time is the watermark unless the
        open buckets are already past it); return the closed buckets and the open
        bucket the post belongs in (None: it is late)."""
        current, quiet = self.current, self._quiet_until
        if current is not None and quiet is not None and current.start <= when < quiet:
            # the common case, without date arithmetic: nothing closes before ``quiet``
            # (at most the end of the current bucket), so the post is in the current one
            return [], current
        start = bucket_start(when, self.size)
        if self.current is None:
            self.current = Bucket(start)
            self._quiet_until = None
        closed = self.advance(when)
        if start == self.current.start:
            return closed, self.current
        if self.prev is not None and start == self.prev.start:
            return closed, self.prev
        return closed, None

    def next_change(self) -> datetime | None:
        """When ``advance`` will next have work (None: no bucket is open)."""
        if self.current is None:
            return None
        if self._quiet_until is not None:
            return self._quiet_until  # advance() computed it, and nothing moved since
        return self._change_at()

    def newest(self) -> datetime | None:
        """Start of the newest open bucket."""
        return self.current.start if self.current is not None else None

    def oldest(self) -> datetime | None:
        """Start of the oldest open bucket (a restart observes posts from here again)."""
        bucket = self.prev or self.current
        return bucket.start if bucket is not None else None

    def to_state(self) -> dict[str, float | None]:
        return {"bucket": self.current.start.timestamp() if self.current else None,
                "prev": self.prev.start.timestamp() if self.prev else None}

    def load_state(self, state: dict[str, object]) -> None:
        self.current = _empty_bucket(state.get("bucket"))
        self.prev = _empty_bucket(state.get("prev"))
        self._quiet_until = None


def _empty_bucket(start: object) -> Bucket | None:
    """An empty bucket starting at ``start`` (a saved timestamp), or None."""
    return Bucket(datetime.fromtimestamp(float(start), UTC)) if isinstance(start, int | float) \
        else None
