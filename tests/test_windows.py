"""OpenBuckets: event-time buckets with allowed lateness (shared by bucketed detectors)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.detect.windows import OpenBuckets

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
