"""Hostile timestamps cannot freeze or blind the engine (issue: one bad post)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.config.schema import BrandConfig, Rule
from monitor.detect.base import EnrichedPost
from monitor.detect.silence import SilenceDetector, SilenceParams
from monitor.model import Post
from tests.conftest import write_project
from tests.test_engine import burst
from tests.timeline import T0, Harness, post, steady

FAR = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
RULES = """\
rules:
  - name: spike
    signal: volume_spike
    channels: [file]
    params: {bucket: 5m, min_count: 10, min_authors: 5}
  - name: negative
    signal: negative_surge
    channels: [file]
    params: {window: 1h, min_count: 20, min_negative: 10, min_authors: 5, warmup_posts: 50}
  - name: silence
    signal: source_silence
    channels: [file]
    params: {max_silence: 30m, min_expected: 3}
  - name: outbound
    signal: outbound
    channels: [file]
    cooldown: 0s
"""


def _times(h: Harness) -> dict[tuple[str, str], datetime | None]:
    return {key: d.state_time() for key, d in h.engine.detectors.items()}


@pytest.mark.parametrize("when", [FAR, T0 + timedelta(days=20), T0 + timedelta(days=365)])
def test_a_post_from_the_future_is_bounded_work_and_moves_no_detector(tmp_path: Path,
                                                                      when: datetime) -> None:
    h = Harness(write_project(tmp_path, rules=RULES))
    h.feed(steady(T0, 30, 8))
    now = h.clock.now()
    before = _times(h)
    hostile = [post(900_000, when, "@acme future", author="mallory"),
               post(900_001, when, "our new @acme post", author="acme", kind="outbound")]
    started = time.perf_counter()
    for p in hostile:
        assert h.engine.process(p).accepted  # stored and counted, not silently lost
    h.engine.tick()
    assert time.perf_counter() - started < 0.1
    assert _times(h) == before
    assert h.clock.now() == now
    assert h.metrics.rejected_time.labels("test", "future")._value.get() == 2
    # and the detectors still see the storm that follows
    start = now + timedelta(minutes=2)
    fired = {a.rule for a in h.feed(burst(100_000, start, 150, 120, seconds=250))}
    assert {"spike", "negative"} <= fired


def test_posts_older_than_retention_are_stored_but_never_reach_a_detector(
        tmp_path: Path) -> None:
    h = Harness(write_project(tmp_path, rules=RULES))
    h.feed(steady(T0, 2, 8))
    before = _times(h)
    ancient = post(900_000, T0 - timedelta(days=400), "@acme from long ago")
    assert h.engine.process(ancient).accepted
    assert _times(h) == before
    assert h.metrics.rejected_time.labels("test", "ancient")._value.get() == 1


def test_silence_detector_steps_are_bounded_whatever_the_jump() -> None:
    rule = Rule(name="s", signal="source_silence", channels=("x",), params=SilenceParams())
    detector = SilenceDetector(rule, BrandConfig("Acme", ("@acme",)))
    t = T0
    for i in range(48 * 6):  # two days of a mention every 10 minutes
        t = T0 + timedelta(minutes=10 * i)
        item = EnrichedPost(post(i, t), "Acme", 0.0, "neutral")
        detector.observe(item, t)
    started = time.perf_counter()
    detector.tick(FAR)
    assert detector.expected(T0, FAR) > 0  # closed form over 8,000 years
    assert time.perf_counter() - started < 0.05


def test_poisoned_state_from_the_future_is_discarded_with_a_problem(tmp_path: Path) -> None:
    """A state written by an older version from a post dated weeks ahead would blind
    the detectors until then; at recovery it is discarded and reported."""
    config = write_project(tmp_path, rules=RULES)
    h = Harness(config)
    h.feed(steady(T0, 30, 8))
    # simulate the old behaviour: the detectors saw a post 20 days ahead, then a restart
    future = h.clock.now() + timedelta(days=20)
    for key, detector in h.engine.detectors.items():
        if key[0] in ("spike", "negative", "silence"):
            detector.observe(EnrichedPost(post(999_999, future), "Acme", 0.0, "neutral"),
                             future)
    h.engine.checkpoint(force=True)
    db, now = h.db, h.clock.now()
    h.store.close()

    again = Harness(config, db)
    again.clock.set(now)
    again.engine.recover()
    assert len(again.engine.problems) == 3
    assert all("beyond the clock" in p for p in again.engine.problems)
    assert all(t is None or t <= now + timedelta(minutes=5) for t in _times(again).values())
    fired = {a.rule for a in again.feed(burst(100_000, now + timedelta(minutes=1), 150, 120,
                                              seconds=250))}
    assert "negative" in fired  # not blind: a window that is only being learned anew


def test_followers_beyond_any_audience_are_a_clear_post_error() -> None:
    from monitor.errors import PostError

    raw = {"id": "1", "source": "s", "text": "hi", "created_at": "2026-01-01T00:00:00Z",
           "author": {"id": "a", "handle": "a", "followers": 2**63}}
    with pytest.raises(PostError, match=r"author\.followers"):
        Post.from_json(raw)
