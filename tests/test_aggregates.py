"""Per-brand 5-minute aggregates: counts of what the engine saw and, from the volume
detector, the count it expected of each closed bucket (the dashboard's band)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from monitor.aggregates import BUCKET
from tests.conftest import write_project
from tests.timeline import T0, Harness, steady


def _bucket_start(when):  # type: ignore[no-untyped-def]
    epoch = when.timestamp()
    return epoch - epoch % BUCKET.total_seconds()


def test_counts_and_expected_reach_the_store(project: Path) -> None:
    h = Harness(project)
    posts = steady(T0, 3.0, 12)
    h.feed(posts)
    h.advance(timedelta(minutes=20))
    h.engine.checkpoint(force=True)
    rows = h.store.aggregates("Acme", T0 - timedelta(hours=1), T0 + timedelta(hours=4))
    counts = Counter(_bucket_start(p.created_at) for p in posts)
    by_start = {r.start.timestamp(): r for r in rows}
    assert {k: by_start[k].posts for k in counts} == dict(counts)
    assert sum(r.posts for r in rows) == len(posts)
    # nothing is expected while the model warms up (the first hour), then every
    # closed bucket carries the detector's expectation, close to the real level
    first_hour = [r for r in rows if r.start < T0 + timedelta(minutes=55)]
    assert first_hour and all(r.expected is None for r in first_hour)
    later = [r for r in rows if T0 + timedelta(hours=1, minutes=10) <= r.start
             < T0 + timedelta(hours=3)]
    assert later and all(r.expected is not None for r in later)
    assert all(6 <= (r.expected or 0) <= 20 for r in later)
    # buckets closed empty after the traffic stopped are stored too, with their expectation
    empty = [r for r in rows if r.start >= T0 + timedelta(hours=3)]
    assert empty and all(r.posts == 0 and r.expected is not None for r in empty)


def test_expected_survives_a_restart_without_double_counting(project: Path) -> None:
    h = Harness(project)
    posts = steady(T0, 2.0, 10)
    h.feed(posts[: len(posts) // 2])
    h.engine.checkpoint(force=True)
    h.feed(posts[len(posts) // 2:])  # not checkpointed: replayed after the "restart"
    h.store.close()
    again = Harness(project, h.db)
    again.clock.set(posts[-1].created_at)
    again.engine.recover()
    again.advance(timedelta(minutes=15))
    again.engine.checkpoint(force=True)
    rows = again.store.aggregates("Acme", T0 - timedelta(hours=1), T0 + timedelta(hours=3))
    assert sum(r.posts for r in rows) == len(posts)
    assert any(r.expected is not None for r in rows)


def test_the_band_comes_from_rules_counting_in_its_bucket_size(tmp_path: Path) -> None:
    """The band is per 5-minute aggregate: a volume rule with 20-minute buckets (whose
    expectation is about four times a 5-minute one) must not write into it, and with
    it configured the band is the same as without it."""
    posts = steady(T0, 6.0, 12)  # the 20-minute rule is warm after 4 hours

    def band(config: Path) -> dict[float, float | None]:
        h = Harness(config)
        h.feed(posts)
        h.advance(timedelta(minutes=40))
        h.engine.checkpoint(force=True)
        rows = h.store.aggregates("Acme", T0 - timedelta(hours=1), T0 + timedelta(hours=8))
        return {r.start.timestamp(): r.expected for r in rows}

    alone = band(write_project(tmp_path / "alone"))
    both = write_project(tmp_path / "both")
    (both.parent / "rules" / "slow.yaml").write_text(
        "rules:\n  - name: slow-volume\n    signal: volume_spike\n    channels: [file]\n"
        "    params: {bucket: 20m, min_count: 10, min_authors: 5}\n")
    assert sum(v is not None for v in alone.values()) > 50
    assert band(both) == alone
