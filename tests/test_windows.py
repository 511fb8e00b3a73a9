"""OpenBuckets: event-time buckets with allowed lateness (shared by bucketed detectors)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from monitor.detect.base import EnrichedPost
from monitor.detect.windows import Bucket, OpenBuckets
from monitor.model import Author, Post

T = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
M = timedelta(minutes=1)
FIVE = timedelta(minutes=5)


def starts(closed: list[tuple[object, datetime]]) -> list[tuple[datetime, datetime]]:
    return [(b.start, follows) for b, follows in closed]  # type: ignore[attr-defined]


def test_previous_bucket_waits_for_the_lateness_then_closes() -> None:
    ob = OpenBuckets(FIVE, 2 * M, fill_gap=timedelta(hours=1))
    closed, bucket = ob.place(T + M)
    assert closed == [] and bucket is ob.current and bucket is not None
    closed, bucket = ob.place(T + 5 * M + 10 * (M / 60))   # next bucket: T stays open
    assert closed == [] and ob.prev is not None and ob.prev.start == T
    closed, bucket = ob.place(T + 4 * M)                   # a late arrival for T
    assert bucket is ob.prev
    assert starts(ob.advance(T + 7 * M)) == [(T, T + FIVE)]  # end + lateness reached
    assert ob.prev is None
    assert ob.place(T + 4 * M) == ([], None)               # now it is late


def test_a_jump_closes_old_buckets_and_fills_zeros_only_within_the_gap() -> None:
    ob = OpenBuckets(FIVE, 2 * M, fill_gap=timedelta(minutes=30))
    ob.place(T)
    closed, _ = ob.place(T + 21 * M)  # buckets T, T+5, T+10 close; T+15 waits (lateness)
    assert starts(closed) == [(T, T + FIVE), (T + FIVE, T + 2 * FIVE),
                              (T + 2 * FIVE, T + 3 * FIVE)]
    assert ob.prev is not None and ob.prev.start == T + 3 * FIVE
    closed, _ = ob.place(T + timedelta(hours=3))  # beyond fill_gap: no zeros invented
    assert starts(closed) == [(T + 3 * FIVE, T + 4 * FIVE), (T + 4 * FIVE,
                                                             T + timedelta(hours=3))]


def test_without_fill_a_gap_closes_only_the_buckets_that_exist() -> None:
    ob = OpenBuckets(timedelta(hours=1), 5 * M)
    ob.place(T)
    closed, _ = ob.place(T + timedelta(hours=5, minutes=10))
    assert starts(closed) == [(T, T + timedelta(hours=5))]


def test_zero_lateness_closes_at_once_and_state_round_trips() -> None:
    ob = OpenBuckets(FIVE)
    ob.place(T)
    assert starts(ob.place(T + FIVE)[0]) == [(T, T + FIVE)]
    waiting = OpenBuckets(FIVE, 2 * M)
    waiting.place(T)
    waiting.place(T + FIVE)
    copy = OpenBuckets(FIVE, 2 * M)
    copy.load_state(waiting.to_state())
    assert copy.oldest() == T and copy.current is not None and copy.current.start == T + FIVE


def test_lateness_longer_than_a_bucket_is_refused() -> None:
    with pytest.raises(ValueError, match="lateness"):
        OpenBuckets(FIVE, 6 * M)


def _item(n: int, followers: int) -> EnrichedPost:
    post = Post(str(n), "test", "mention", Author(f"a{n % 97}", f"a{n % 97}", followers),
                f"post {n}", T + n * (M / 1000))
    return EnrichedPost(post, "Acme", 0.0, "neutral")


def test_the_bucket_sample_keeps_the_highest_reach_posts_in_arrival_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every post until the sample is full, then a post enters only with more reach than
    the least kept one, which it replaces (the earliest of them); oldest first."""
    from monitor.detect import windows

    size = 50
    monkeypatch.setattr(windows, "MAX_BUCKET_POSTS", size)
    rng = random.Random(3)
    bucket = Bucket(T)
    kept: list[int] = []  # the reference: indexes into items
    items = [_item(n, rng.choice((0, 10, 100, rng.randint(0, 10**6)))) for n in range(400)]
    for n, item in enumerate(items):
        bucket.add(item)
        if len(kept) < size:
            kept.append(n)
        elif item.reach > min(items[i].reach for i in kept):
            kept.remove(min(kept, key=lambda i: (items[i].reach, i)))
            kept.append(n)
        assert bucket.posts == [items[i] for i in kept]
    assert bucket.count == len(items) and len(bucket.authors) == 97
