"""The pipeline end to end in event time: detect on arrival, route, store, recover."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from monitor.model import Post
from tests.conftest import BASE_RULES, write_project
from tests.timeline import T0, Harness, post, steady

COMPLAINTS = ("@acme app is down again and I am furious, terrible service",
              "acme charged me twice, awful support, worst experience",
              "the acme app crashed again, horrible and useless")


def burst(start_id: int, at, count: int, authors: int, seconds: float = 200) -> list[Post]:
    return [post(start_id + i, at + timedelta(seconds=seconds * i / count),
                 COMPLAINTS[i % 3], author=f"angry{i % authors}") for i in range(count)]


def test_volume_spike_fires_on_arrival_once_and_clears(project: Path) -> None:
    h = Harness(project)
    assert h.feed(steady(T0, 48, 8)) == []
    start = T0 + timedelta(hours=48, minutes=2)
    fired = h.feed(burst(100_000, start, 120, 90))
    spikes = [a for a in fired if a.rule == "spike"]
    assert len(spikes) == 1
    alert = spikes[0]
    # fired while the bucket was still open, not at its close
    assert alert.created_at < start.replace(minute=5) + timedelta(minutes=5)
    d = alert.details
    assert d["observed"] >= 10 and d["expected"] < d["observed"]
    assert d["distinct_authors"] >= 5
    assert d["top_posts"] and d["top_posts"][0]["url"].startswith("https://")
    assert any(term in ("app", "down", "charged", "twice") for term, _ in d["top_terms"])
    assert sum(d["sentiment_mix"].values()) == d["observed"]
    assert d["sentiment_mix"]["negative"] >= 5
    # the same storm keeps going: no second notification
    assert [a for a in h.feed(burst(200_000, start + timedelta(minutes=5), 100, 80))
            if a.rule == "spike"] == []
    cleared = h.feed(steady(start + timedelta(minutes=15), 3, 8, first_id=300_000, seed=2))
    clears = [a for a in cleared if a.rule == "spike"]
    assert [a.state for a in clears] == ["resolved"]
    assert clears[0].title.startswith("All clear")
    stored = h.store.alerts(limit=10)
    assert {a.id for a in stored} >= {alert.id, clears[0].id}


def test_one_account_posting_a_hundred_times_is_not_a_crisis(project: Path) -> None:
    h = Harness(project)
    h.feed(steady(T0, 48, 8))
    start = T0 + timedelta(hours=48, minutes=1)
    fired = h.feed(burst(100_000, start, 100, authors=1))
    assert [a for a in fired if a.rule == "spike"] == []


def test_negative_share_surge_with_flat_volume(project: Path) -> None:
    h = Harness(project)
    h.feed(steady(T0, 30, 8))
    start = T0 + timedelta(hours=30)
    mixed = []
    for i, p in enumerate(steady(start, 1, 8, first_id=500_000, seed=5)):
        if i % 3 != 2:  # two in three posts turn into complaints, volume unchanged
            p = post(int(p.id), p.created_at, COMPLAINTS[i % 3], author=p.author.id)
        mixed.append(p)
    fired = [a for a in h.feed(mixed) if a.rule == "negative"]
    assert len(fired) == 1
    assert fired[0].details["observed"] > fired[0].details["expected"] + 0.15
    assert "app" in [t for t, _ in fired[0].details["top_terms"]] or \
        "charged" in [t for t, _ in fired[0].details["top_terms"]]


def test_influencer_post_one_alert_per_post(project: Path) -> None:
    h = Harness(project)
    at = T0 + timedelta(hours=1)
    alerts = h.feed([
        post(1, at, "@acme lost my luggage, disgraceful and awful service", author="star",
             followers=250_000),
        post(2, at + timedelta(seconds=5), "@acme thanks, great flight!", author="star",
             followers=250_000),
        post(3, at + timedelta(seconds=9), "@acme worst airline, terrible service",
             author="star", followers=250_000),
        post(4, at + timedelta(seconds=9), "@acme terrible service", author="nobody",
             followers=10),
    ])
    assert [(a.rule, a.details["post"]["id"]) for a in alerts] == [("influencer", "1"),
                                                                   ("influencer", "3")]


def test_outbound_post_flagged_at_once_each_post(project: Path) -> None:
    h = Harness(project)
    at = T0 + timedelta(hours=2)
    alerts = h.feed([
        post(1, at, "Spring sale! 20% off at https://acme.example/sale", author="acme",
             kind="outbound"),
        post(2, at, "these f*cking drivers lol https://bit.ly/xyz", author="acme",
             kind="outbound"),
        post(3, at + timedelta(seconds=1), "shit happens", author="@acme", kind="outbound"),
    ])
    assert [a.details["post"]["id"] for a in alerts] == ["2", "3"]
    assert alerts[0].severity == "critical"
    reasons = alerts[0].details["reasons"]
    assert any("profanity" in r for r in reasons) and any("bit.ly" in r for r in reasons)


def test_duplicates_are_dropped_and_unmatched_counted(project: Path) -> None:
    h = Harness(project)
    p = post(1, T0, "hello @acme")
    assert h.engine.process(p).accepted
    assert not h.engine.process(p).accepted
    assert h.engine.process(post(2, T0, "nothing to see")).accepted
    assert h.metrics.duplicates.labels("test")._value.get() == 1
    assert h.metrics.unmatched.labels("test")._value.get() == 1


def test_restart_mid_storm_neither_loses_nor_repeats_the_alert(project: Path,
                                                              make_store: Any) -> None:
    """On each backend (SQLite, PostgreSQL)."""
    h = Harness(project, store=make_store())
    h.feed(steady(T0, 48, 8))
    start = T0 + timedelta(hours=48, minutes=1)
    storm = burst(100_000, start, 120, 90, seconds=240)
    h.feed(storm[:4])  # too few to fire
    db = h.db
    h.store.close()  # "crash": nothing but the store survives

    h2 = Harness(project, db, store=make_store())
    h2.clock.set(storm[4].created_at)
    assert h2.engine.recover() == []
    fired = [a for a in h2.feed(storm[4:]) if a.rule == "spike"]
    assert len(fired) == 1
    h2.store.close()

    h3 = Harness(project, db, store=make_store())  # restart after the alert: no second one
    h3.clock.set(storm[-1].created_at)
    assert h3.engine.recover() == []
    assert len([a for a in h3.store.alerts(limit=50) if a.rule == "spike"]) == 1


def test_late_post_is_counted_not_silently_dropped(project: Path) -> None:
    h = Harness(project)
    h.feed(steady(T0, 2, 8))
    late = post(999_999, T0 + timedelta(minutes=10), "@acme hello from the past")
    assert h.engine.process(late).accepted
    assert h.metrics.late.labels("Acme")._value.get() == 1


def test_out_of_order_post_within_lateness_counts_in_its_own_bucket(project: Path) -> None:
    h = Harness(project)
    h.feed(steady(T0, 2, 8))
    detector = h.engine.detectors[("spike", "Acme")]
    end = T0 + timedelta(hours=2)  # steady() filled buckets up to here
    h.feed([post(900_000, end + timedelta(seconds=30), "@acme new bucket")])
    previous = detector.buckets.prev
    assert previous is not None and previous.start == end - timedelta(minutes=5)
    before = previous.count
    # created in the previous bucket, arriving after a post of the next one: not late
    h.clock.set(end + timedelta(seconds=90))
    assert h.engine.process(post(900_001, end - timedelta(seconds=20), "@acme delayed")).accepted
    assert previous.count == before + 1
    assert h.metrics.late.labels("Acme")._value.get() == 0
    # two minutes (the rule's lateness) after its end the bucket closes and is learned
    h.clock.set(end + timedelta(minutes=2))
    h.engine.tick()
    assert detector.buckets.prev is None
    assert h.engine.process(post(900_002, end - timedelta(seconds=10), "@acme too late")).accepted
    assert h.metrics.late.labels("Acme")._value.get() == 1
    assert h.store.post_count() == len(steady(T0, 2, 8)) + 3  # stored all the same


def test_lateness_zero_closes_buckets_as_soon_as_time_moves_on(tmp_path: Path) -> None:
    config = write_project(tmp_path, rules=BASE_RULES.replace(
        "min_count: 10, min_authors: 5}", "min_count: 10, min_authors: 5, lateness: 0s}"))
    h = Harness(config)
    h.feed(steady(T0, 1, 8))
    end = T0 + timedelta(hours=1)
    h.feed([post(900_000, end + timedelta(seconds=30), "@acme new bucket")])
    assert h.engine.detectors[("spike", "Acme")].buckets.prev is None
    assert h.engine.process(post(900_001, end - timedelta(seconds=20), "@acme delayed")).accepted
    assert h.metrics.late.labels("Acme")._value.get() == 1


def test_a_rolled_back_batch_is_not_counted_twice_when_retried(project: Path) -> None:
    """Database full mid-batch: the retry after space is freed counts each post once."""
    import pytest

    from monitor.errors import StoreError

    h = Harness(project)
    h.feed(steady(T0, 2, 8))
    detector = h.engine.detectors[("spike", "Acme")]
    start = T0 + timedelta(hours=2, minutes=1)
    batch = [post(800_000 + i, start + timedelta(seconds=i), "@acme " + "x" * 3000,
                  author=f"b{i}") for i in range(40)]
    h.clock.set(batch[-1].created_at)
    db = h.store._db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count={pages + 10}")
    with pytest.raises(StoreError, match="full"):
        h.engine.process_batch(batch)
    db.execute("PRAGMA max_page_count=1073741823")
    h.engine.process_batch(batch)
    detector = h.engine.detectors[("spike", "Acme")]
    open_since = detector.buckets.oldest()
    assert open_since is not None
    assert sum(b.count for b in (detector.buckets.prev, detector.buckets.current) if b) == len(
        [p for p in [*steady(T0, 2, 8), *batch] if p.created_at >= open_since])
    assert h.store.post_count() == len(steady(T0, 2, 8)) + len(batch)


def test_the_post_counters_count_a_retried_batch_once(project: Path) -> None:
    """A batch that fails after its posts went through the detectors (here in the
    cluster worker's commit hook) rolls back; its retry is what the counters show."""
    import pytest

    h = Harness(project)
    batch = [post(900_000 + i, T0 + timedelta(seconds=i), "@acme hello" if i % 2 else "nothing")
             for i in range(10)]
    h.clock.set(batch[-1].created_at)

    def fail() -> None:
        raise RuntimeError("the stream position could not be written")

    with pytest.raises(RuntimeError):
        h.engine.process_batch(batch, commit_with=fail)
    assert h.store.post_count() == 0
    h.engine.process_batch(batch)
    assert h.metrics.posts.labels("test", "mention")._value.get() == len(batch)
    assert h.metrics.unmatched.labels("test")._value.get() == 5


def test_crash_between_checkpoints_replays_to_the_same_alerts(project: Path,
                                                             make_store: Any) -> None:
    """With checkpoints far apart, a crash at any point and a restart raise exactly the
    alerts of an uninterrupted run, and the detectors end in the same state (on each
    backend: SQLite, PostgreSQL)."""
    from monitor.engine import CheckpointPolicy, Engine

    never = CheckpointPolicy(every_posts=10**9, every_seconds=1e12)
    posts = steady(T0, 30, 8)
    start = T0 + timedelta(hours=30, minutes=2)
    posts += burst(100_000, start, 150, 120, seconds=250)
    posts += steady(start + timedelta(minutes=10), 3, 8, first_id=500_000, seed=4)

    def run(crash_at: list[int]) -> tuple[list[str], dict[str, object]]:
        name = f"crash{len(crash_at)}-{crash_at[:1]}".replace("[", "").replace("]", "")
        h = Harness(project, store=make_store(name))
        h.engine = Engine(h.config, h.rules, h.store, h.clock, h.metrics, checkpoints=never)
        h.engine.on_alerts = h.alerts.extend
        h.engine.checkpoint(force=True)
        done = 0
        ids: list[str] = []
        for cut in [*crash_at, len(posts)]:
            h.feed(posts[done:cut])
            done = cut
            ids += [a.id for a in h.alerts]
            if cut < len(posts):  # crash: nothing but the store survives
                clock_at = h.clock.now()
                h.store.close()
                h = Harness(project, store=make_store(name))
                h.engine = Engine(h.config, h.rules, h.store, h.clock, h.metrics,
                                  checkpoints=never)
                h.engine.on_alerts = h.alerts.extend
                h.clock.set(clock_at)
                h.engine.recover()
                h.alerts.clear()  # recovery re-routes, but the store already has them
        h.advance(timedelta(hours=1))
        ids += [a.id for a in h.alerts]
        state = {f"{r}/{b}": d.to_state() for (r, b), d in h.engine.detectors.items()}
        stored = [a.id for a in h.store.alerts(limit=1000)]
        h.store.close()
        return sorted(set(stored)), state

    reference, ref_state = run([])
    assert reference
    storm = next(i for i, p in enumerate(posts) if p.created_at >= start)
    for crash_at in ([len(posts) // 3], [storm - 5, storm + 3, storm + 40, len(posts) - 20]):
        got, state = run(crash_at)
        assert got == reference
        assert state == ref_state


def test_ticks_only_reach_detectors_with_work(tmp_path: Path) -> None:
    """Breadth: with 60 brands configured and one of them talked about, a tick calls
    only the detectors that have something due (their buckets or hours end), not
    every brand x rule."""
    from tests.conftest import BASE_CONFIG

    extra = "".join(f"  - name: Other{i}\n    handles: ['@other{i}']\n" for i in range(60))
    config = BASE_CONFIG.replace("channels:\n", extra + "channels:\n", 1)
    h = Harness(write_project(tmp_path, config=config))
    h.feed(steady(T0, 2, 8))
    calls: dict[str, int] = {}
    for (rule, brand), detector in h.engine.detectors.items():
        original = detector.tick

        def counted(now, _orig=original, _key=f"{rule}/{brand}"):  # type: ignore[no-untyped-def]
            calls[_key] = calls.get(_key, 0) + 1
            return _orig(now)

        detector.tick = counted  # type: ignore[method-assign]
    end = h.clock.now()
    for seconds in (10, 20, 40):  # inside the open 5-minute bucket: nothing is due
        h.engine.tick(end + timedelta(seconds=seconds))
    assert calls == {}
    h.engine.tick(end + timedelta(minutes=10))  # the open bucket and window have ended
    assert set(calls) == {"spike/Acme", "negative/Acme"}
    assert len(h.engine.detectors) > 60 * 2


def test_a_batch_that_fails_in_a_detector_is_forgotten_whole(project: Path) -> None:
    """Any error mid-batch (not only the store's) rolls the batch back, and the detectors
    forget what they saw of it: the retry counts each post once."""
    import pytest

    h = Harness(project)
    h.feed(steady(T0, 2, 8))
    start = T0 + timedelta(hours=2, minutes=1)
    batch = [post(700_000 + i, start + timedelta(seconds=i), "@acme hi", author=f"x{i}")
             for i in range(30)]
    h.clock.set(batch[-1].created_at)
    stored = h.store.post_count()
    detector = h.engine.detectors[("influencer", "Acme")]
    seen = 0

    def explode(item, now):  # type: ignore[no-untyped-def]
        nonlocal seen
        seen += 1
        if seen == 20:
            raise RuntimeError("a detector bug")
        return []

    detector.observe = explode  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        h.engine.process_batch(batch)
    assert h.store.post_count() == stored  # nothing of the batch
    h.engine.process_batch(batch)  # detectors rebuilt from the checkpoint + replay
    spike = h.engine.detectors[("spike", "Acme")]
    open_since = spike.buckets.oldest()  # type: ignore[attr-defined]
    assert open_since is not None
    counted = sum(b.count for b in (spike.buckets.prev, spike.buckets.current) if b)  # type: ignore[attr-defined]
    assert counted == len([p for p in [*steady(T0, 2, 8), *batch]
                           if p.created_at >= open_since])
    assert h.store.post_count() == stored + len(batch)
