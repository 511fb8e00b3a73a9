"""Time buckets in event time, shared by the bucketed detectors."""

from __future__ import annotations

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


@dataclass
class Bucket:
    """The open bucket: counts plus a bounded sample of its posts for explanations."""

    start: datetime
    count: int = 0
    negatives: int = 0
    authors: set[str] = field(default_factory=set)
    posts: list[EnrichedPost] = field(default_factory=list)

    def add(self, item: EnrichedPost) -> None:
        self.count += 1
        self.negatives += item.negative
        self.authors.add(item.post.author.id)
        if len(self.posts) < MAX_BUCKET_POSTS:
            self.posts.append(item)
        else:  # keep the highest-reach posts once the sample is full
            low = min(range(len(self.posts)), key=lambda i: self.posts[i].reach)
            if item.reach > self.posts[low].reach:
                self.posts[low] = item


class RecentTexts:
    """A bounded sample of texts from closed buckets: the baseline for top terms."""

    def __init__(self, size: int = BASELINE_TEXTS) -> None:
        self._texts: deque[str] = deque(maxlen=size)

    def extend(self, items: list[EnrichedPost]) -> None:
        self._texts.extend(i.post.text for i in items[-200:])

    def texts(self) -> list[str]:
        return list(self._texts)
