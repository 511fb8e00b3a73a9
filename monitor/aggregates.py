"""Per-brand, per-5-minute counts of what the engine saw: mentions, negative and
positive mentions, outbound posts (and, from the volume detector, the count it
expected).

They feed charts and history and outlive raw-post retention. The engine adds each
post in memory and writes the buffer at its checkpoints, in the checkpoint's
transaction, so the stored counts cover exactly the posts up to the checkpoint; posts
replayed after a restart are counted again from there, never twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from monitor.detect.base import EnrichedPost
from monitor.store.sqlite import Aggregate

BUCKET = timedelta(minutes=5)
_SECONDS = BUCKET.total_seconds()


class AggregateBuffer:
    def __init__(self) -> None:
        # (brand, bucket start epoch) -> [posts, negatives, positives, outbound]
        self._counts: dict[tuple[str, float], list[int]] = {}
        self._expected: dict[tuple[str, float], float] = {}

    def add(self, item: EnrichedPost) -> None:
        epoch = item.post.created_at.timestamp()
        key = (item.brand, epoch - epoch % _SECONDS)
        row = self._counts.get(key)
        if row is None:
            row = self._counts[key] = [0, 0, 0, 0]
        if item.post.kind == "outbound":
            row[3] += 1
            return
        row[0] += 1
        if item.label == "negative":
            row[1] += 1
        elif item.label == "positive":
            row[2] += 1

    def expect(self, brand: str, start: datetime, expected: float) -> None:
        """The volume detector's expected mention count for a bucket."""
        epoch = start.timestamp()
        self._expected[(brand, epoch - epoch % _SECONDS)] = expected

    def drain(self) -> list[Aggregate]:
        rows = [Aggregate(brand, datetime.fromtimestamp(start, UTC), counts[0], counts[1],
                          counts[2], counts[3], self._expected.pop((brand, start), None))
                for (brand, start), counts in self._counts.items()]
        rows += [Aggregate(brand, datetime.fromtimestamp(start, UTC), 0, 0, 0, 0, expected)
                 for (brand, start), expected in self._expected.items()]
        self.clear()
        return rows

    def restore(self, rows: Sequence[Aggregate]) -> None:
        """Put back what a failed checkpoint drained."""
        for a in rows:
            key = (a.brand, a.start.timestamp())
            row = self._counts.setdefault(key, [0, 0, 0, 0])
            for i, value in enumerate((a.posts, a.negatives, a.positives, a.outbound)):
                row[i] += value
            if a.expected is not None:
                self._expected.setdefault(key, a.expected)

    def clear(self) -> None:
        self._counts.clear()
        self._expected.clear()
