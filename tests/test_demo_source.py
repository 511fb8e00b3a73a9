"""The demo source: realistic simulated traffic, a scripted storm, restart-safe."""

from __future__ import annotations

import asyncio
import json
import re
import statistics
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from monitor.clock import ManualClock, ScaledClock
from monitor.config.schema import BrandConfig, SourceConfig
from monitor.config.strict import Context, build
from monitor.errors import ConfigError
from monitor.metrics import Metrics
from monitor.model import Post
from monitor.sources.base import SOURCES, SourceContext
from monitor.sources.demo import (
    BUCKET,
    DemoOptions,
    DemoSource,
    demo_clock,
    generate,
    load_state,
    timeline,
)
from monitor.store.sqlite import SqliteStore

ACME = BrandConfig(name="Acme", handles=("@AcmeHelp",), keywords=("Acme",),
                   allowed_domains=("acme.com",))
LIVE = datetime(2024, 5, 14, 9, 3, 17, tzinfo=UTC)  # a Tuesday morning
FAST = DemoOptions(history=timedelta(hours=12), loop=False)
_VADER = SentimentIntensityAnalyzer()


class JumpClock(ManualClock):
    """Simulated time that jumps to wherever the source waits for (no real sleeping)."""

    def wall_seconds(self, simulated: timedelta) -> float:
        self.advance(simulated)
        return 0.0


def negative(text: str) -> bool:
    return float(_VADER.polarity_scores(text)["compound"]) <= -0.05


def source_for(store: SqliteStore, clock: object, options: DemoOptions,
               brands: tuple[BrandConfig, ...] = (ACME,), brand: str | None = None,
               name: str = "demo") -> DemoSource:
    config = SourceConfig(name=name, type="demo", brand=brand, options=options)
    ctx = SourceContext(clock=clock, store=store, metrics=Metrics(), brands=brands)  # type: ignore[arg-type]
    return DemoSource(config, ctx)


def recorder(clock: ManualClock | ScaledClock,
             out: list[Post], lags: list[timedelta]) -> Callable[[Post], Awaitable[None]]:
    async def emit(post: Post) -> None:
        out.append(post)
        lags.append(post.created_at - clock.now())  # > 0 means emitted too early

    return emit


async def run_until(task: asyncio.Task[None], clock: ManualClock, until: datetime) -> None:
    for _ in range(2_000_000):
        if clock.now() >= until or task.done():
            break
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    db = SqliteStore(tmp_path / "state.db")
    yield db
    db.close()


# options -----------------------------------------------------------------------
def test_registered_with_defaults_and_strict_yaml_options() -> None:
    assert SOURCES.get("demo") is DemoSource
    assert DemoSource.Options is DemoOptions
    d = DemoOptions()
    assert (d.speed, d.history, d.seed, d.peak_rate, d.storm_factor, d.loop) == (
        120.0, timedelta(days=3), 7, 30.0, 6.0, True)
    assert (d.storm_after, d.storm_duration, d.outbound_every, d.offmessage_after) == (
        timedelta(minutes=40), timedelta(minutes=90), timedelta(hours=3), timedelta(minutes=20))
    built = build(DemoOptions, {"history": "2d", "speed": 60, "storm_after": "10m",
                                "loop": False}, Context("config.yaml"), "sources[0].options")
    assert built == DemoOptions(history=timedelta(days=2), speed=60.0,
                                storm_after=timedelta(minutes=10), loop=False)
    with pytest.raises(ConfigError, match="speed"):
        build(DemoOptions, {"speed": 0}, Context("config.yaml"))


# the pure generator ---------------------------------------------------------------
def test_generation_is_deterministic_and_split_invariant() -> None:
    start, end = LIVE - timedelta(hours=6), LIVE + timedelta(hours=3)
    one = generate(ACME, DemoOptions(), start, end, live_start=LIVE)
    again = generate(ACME, DemoOptions(), start, end, live_start=LIVE)
    assert [(p.id, p.text, p.author) for p in one] == [(p.id, p.text, p.author) for p in again]
    cut = LIVE + timedelta(minutes=47, seconds=13)  # not on a bucket boundary
    halves = (generate(ACME, DemoOptions(), start, cut, live_start=LIVE)
              + generate(ACME, DemoOptions(), cut, end, live_start=LIVE))
    assert [p.id for p in halves] == [p.id for p in one]
    other = generate(ACME, DemoOptions(seed=8), start, end, live_start=LIVE)
    assert [p.text for p in other] != [p.text for p in one]
    assert len({p.id for p in one}) == len(one)
    assert [p.created_at for p in one] == sorted(p.created_at for p in one)


def test_daily_rhythm_weekends_and_outbound_cadence() -> None:
    start = datetime(2024, 5, 13, tzinfo=UTC)  # Monday 00:00, one week
    posts = generate(ACME, DemoOptions(), start, start + timedelta(days=7))
    counts: Counter[datetime] = Counter()
    for p in posts:
        if p.kind == "mention":
            counts[p.created_at.replace(minute=p.created_at.minute // 5 * 5, second=0)] += 1

    def mean(days: range, hours: range) -> float:
        return statistics.mean(counts[start + timedelta(days=d, hours=h, minutes=m)]
                               for d in days for h in hours for m in range(0, 60, 5))

    weekday_day, weekday_night = mean(range(5), range(13, 19)), mean(range(5), range(2, 6))
    assert 22 < weekday_day < 33  # near the 30 / 5 min peak
    assert weekday_night < 0.3 * weekday_day
    assert 0.55 < mean(range(5, 7), range(13, 19)) / weekday_day < 0.85
    outbound = [p for p in posts if p.kind == "outbound"]
    assert len(outbound) == 7 * 8  # every 3 hours
    assert all(p.author.handle == "AcmeHelp" for p in outbound)


def test_storm_is_loud_negative_and_from_many_authors() -> None:
    line = timeline(DemoOptions(), LIVE)
    assert line.storm_start == LIVE + timedelta(minutes=40)
    posts = generate(ACME, DemoOptions(), LIVE, line.end, live_start=LIVE)
    calm = generate(ACME, DemoOptions(), LIVE, line.end, live_start=LIVE,
                    skip=frozenset({"storm", "offmessage"}))
    peak = (line.storm_peak, line.storm_peak + timedelta(minutes=30))

    def in_peak(items: list[Post]) -> int:
        return sum(1 for p in items if p.kind == "mention" and peak[0] <= p.created_at < peak[1])

    assert in_peak(posts) > 4 * in_peak(calm)
    before = [p for p in posts if p.created_at < line.storm_start]
    assert not any("-s" in p.id for p in before)  # nothing before the storm starts
    storm = [p for p in posts if re.search(r"-(s\d+|i)$", p.id)]
    assert sum(negative(p.text) for p in storm) > 0.85 * len(storm)
    assert len({p.author.id for p in storm}) > 0.9 * len(storm) > 300
    influencer = [p for p in storm if p.author.followers and p.author.followers >= 250_000]
    assert len(influencer) == 1 and negative(influencer[0].text)
    assert line.storm_start < influencer[0].created_at < line.storm_end
    words = Counter(w for p in storm for w in set(re.findall(r"[#\w']+", p.text.lower())))
    top = {w for w, _ in words.most_common(15)}
    assert {"app", "down", "charged", "twice"} <= top
    assert any(w.startswith("#") for w in top) or words["#acmedown"] > 50


def test_mentions_name_the_brand_both_ways_with_heavy_tailed_reach() -> None:
    posts = generate(ACME, DemoOptions(), LIVE - timedelta(hours=12), LIVE)
    mentions = [p for p in posts if p.kind == "mention"]
    assert all(re.search(r"@AcmeHelp|\bAcme\b", p.text) for p in mentions)
    with_at = sum("@AcmeHelp" in p.text for p in mentions)
    assert 0.3 * len(mentions) < with_at < 0.8 * len(mentions)
    followers = sorted(p.author.followers or 0 for p in mentions)
    assert statistics.median(followers) < 1000 and followers[-1] > 50 * statistics.median(
        followers)
    assert len({p.author.id for p in mentions}) > 0.5 * len(mentions)
    labels = Counter(negative(p.text) for p in mentions)
    assert labels[True] < 0.25 * len(mentions)  # a normal day is mostly not negative
    p = mentions[0]
    assert (p.source, p.lang, p.brand) == ("demo", "en", "Acme")
    assert p.url == f"https://demo.invalid/{p.author.handle}/status/{p.id}"
    assert re.fullmatch(r"demo-\d+-\d+", p.id) and p.id.startswith(
        f"demo-{int(p.created_at.timestamp())}-")


def test_exactly_one_off_message_outbound_post() -> None:
    line = timeline(DemoOptions(), LIVE)
    posts = generate(ACME, DemoOptions(), LIVE - timedelta(days=1), line.end + timedelta(hours=12),
                     live_start=LIVE)
    outbound = [p for p in posts if p.kind == "outbound"]
    flagged = [p for p in outbound
               if "shit" in p.text.lower() or any(not d.endswith("acme.com") for d in
                                                  re.findall(r"https?://([^/\s]+)", p.text))]
    assert len(flagged) == 1
    off = flagged[0]
    assert off.created_at == line.offmessage_at == LIVE + timedelta(minutes=20)
    assert "shit" in off.text and "https://bit.ly/" in off.text
    assert off.author.handle == "AcmeHelp"
    allowed_everything = BrandConfig(name="Acme", handles=("@AcmeHelp",),
                                     allowed_domains=("bit.ly",))
    other = generate(allowed_everything, DemoOptions(), LIVE, line.end, live_start=LIVE)
    assert "bit.ly" not in next(p for p in other if p.id.endswith("-x")).text


# the running source ------------------------------------------------------------------
async def test_backfill_then_live_timeline_in_time_order(store: SqliteStore) -> None:
    clock = JumpClock(LIVE)
    posts: list[Post] = []
    lags: list[timedelta] = []
    source = source_for(store, clock, FAST)
    await source.run(recorder(clock, posts, lags))
    line = timeline(FAST, LIVE)
    backfill = [p for p in posts if p.created_at < LIVE]
    assert LIVE - FAST.history <= backfill[0].created_at < LIVE - FAST.history + BUCKET * 6
    assert backfill[-1].created_at > LIVE - BUCKET * 6
    assert [p.created_at for p in posts] == sorted(p.created_at for p in posts)
    live = posts[len(backfill):]
    assert all(lag <= timedelta(0) for lag in lags[len(backfill):])  # paced by the clock
    assert [p.id for p in live] == [p.id for p in generate(ACME, FAST, LIVE, line.end,
                                                           live_start=LIVE)]
    assert sum(p.id.endswith("-x") for p in posts) == 1
    assert sum("-s" in p.id for p in live) > 300
    assert source.health.state == "finished" and source.health.posts == len(posts)
    assert source.health.last_post_at == posts[-1].created_at
    state = load_state(store, "demo")
    assert state is not None and state.at == line.end and state.live_start == LIVE
    assert state.done == {"storm", "offmessage"}
    assert json.loads(store.get_cursor("demo:demo") or "")["done"] == ["offmessage", "storm"]


async def test_resume_neither_backfills_nor_replays_the_storm(store: SqliteStore) -> None:
    first = JumpClock(LIVE)
    await source_for(store, first, FAST).run(recorder(first, [], []))
    state = load_state(store, "demo")
    assert state is not None
    resumed = demo_clock(SourceConfig(name="demo", type="demo", options=FAST), store)
    assert abs(resumed.now() - state.at) < timedelta(minutes=1)
    assert resumed.speed == FAST.speed
    clock = JumpClock(state.at)
    posts: list[Post] = []
    options = DemoOptions(history=FAST.history, loop=True)
    task = asyncio.create_task(source_for(store, clock, options).run(recorder(clock, posts, [])))
    await run_until(task, clock, state.at + timedelta(hours=8))
    assert posts and all(p.created_at >= state.at for p in posts)
    assert not any(re.search(r"-(s\d+|i|x)$", p.id) for p in posts)
    assert any(p.kind == "outbound" for p in posts)  # ordinary outbound posts go on
    later = load_state(store, "demo")
    assert later is not None and later.at > state.at + timedelta(hours=7)
    assert later.live_start == LIVE


async def test_restart_mid_storm_continues_it_with_the_same_ids(store: SqliteStore) -> None:
    line = timeline(FAST, LIVE)
    clock = JumpClock(LIVE)
    before: list[Post] = []
    options = DemoOptions(history=FAST.history, loop=True)
    task = asyncio.create_task(source_for(store, clock, options).run(
        recorder(clock, before, [])))
    await run_until(task, clock, line.storm_peak + timedelta(minutes=2, seconds=30))
    state = load_state(store, "demo")
    assert state is not None and "storm" not in state.done and "offmessage" in state.done
    after: list[Post] = []
    clock2 = JumpClock(state.at)
    await source_for(store, clock2, FAST).run(recorder(clock2, after, []))
    seen = {p.id: p.text for p in before}
    assert all(seen.get(p.id, p.text) == p.text for p in after)  # overlap is identical
    live_ids = {p.id for p in before + after if p.created_at >= LIVE}
    assert live_ids == {p.id for p in generate(ACME, FAST, LIVE, line.end, live_start=LIVE)}
    assert sum(p.id.endswith("-x") for p in after) == 0


async def test_cancel_stops_during_backfill_and_live(store: SqliteStore) -> None:
    clock = JumpClock(LIVE)
    posts: list[Post] = []
    task = asyncio.create_task(source_for(store, clock, DemoOptions()).run(
        recorder(clock, posts, [])))
    for _ in range(3):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 0 < len(posts) < 2000 and store.get_cursor("demo:demo") is None
    task = asyncio.create_task(source_for(store, clock, DemoOptions()).run(
        recorder(clock, posts, [])))
    await run_until(task, clock, clock.now() + timedelta(hours=1))
    assert task.cancelled()


async def test_real_scaled_clock_paces_live_posts(store: SqliteStore) -> None:
    options = DemoOptions(speed=2e5, history=timedelta(hours=1), storm_after=timedelta(minutes=10),
                          storm_duration=timedelta(minutes=15),
                          offmessage_after=timedelta(minutes=5), loop=False)
    config = SourceConfig(name="demo", type="demo", options=options)
    clock = demo_clock(config, store)
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(hours=1)
    posts: list[Post] = []
    source = source_for(store, clock, options)
    await asyncio.wait_for(source.run(recorder(clock, posts, [])), timeout=10)
    assert sum(p.id.endswith("-x") for p in posts) == 1
    assert posts[-1].created_at <= clock.now()
    assert source.health.state == "finished" and source.health.last_ok_at is not None


async def test_brand_choice_and_missing_brand(store: SqliteStore) -> None:
    beta = BrandConfig(name="Beta Bank", keywords=("Beta Bank",))
    clock = JumpClock(LIVE)
    posts: list[Post] = []
    one_hour = DemoOptions(history=timedelta(hours=1), storm_after=timedelta(0),
                           storm_duration=timedelta(minutes=10), offmessage_after=timedelta(0),
                           loop=False)
    source = source_for(store, clock, one_hour, brands=(ACME, beta), brand="Beta Bank")
    await source.run(recorder(clock, posts, []))
    assert posts and {p.brand for p in posts} == {"Beta Bank"}
    assert all("Beta Bank" in p.text or "@BetaBank" in p.text
               for p in posts if p.kind == "mention")
    assert {p.author.handle for p in posts if p.kind == "outbound"} == {"BetaBank"}
    lost = source_for(store, clock, one_hour, brand="Nope", name="other")
    await lost.run(recorder(clock, [], []))
    assert lost.health.state == "error" and "Nope" in (lost.health.last_error or "")


async def test_unreadable_cursor_means_a_fresh_start(store: SqliteStore) -> None:
    store.set_cursor("demo:demo", "not json")
    assert load_state(store, "demo") is None
    clock = JumpClock(LIVE)
    posts: list[Post] = []
    await source_for(store, clock, FAST).run(recorder(clock, posts, []))
    assert posts[0].created_at < LIVE - timedelta(hours=11)  # backfilled


# own state, fresh each start (issue 15) ----------------------------------------
def test_demo_state_is_its_own_and_fresh_unless_resumed(tmp_path: Path) -> None:
    """The demo's state database lives in state/demo (its simulated clock runs hours
    ahead and must never reach a real state folder); each start removes it unless the
    source has resume: true; a fresh run gets a new run id (new alert ids for the same
    timeline), a resumed one keeps it."""
    import dataclasses

    from monitor.config.loader import load_config
    from monitor.engine import state_path
    from monitor.sources.demo import options_of, reset_state, run_id
    from tests.conftest import BASE_CONFIG, write_project

    config = load_config(write_project(tmp_path, BASE_CONFIG.replace(
        "channels:", "sources:\n  - {{name: demo, type: demo}}\nchannels:")))
    db = state_path(config)
    assert db == Path(config.state_dir) / "demo" / "brand-monitor.db"
    without = dataclasses.replace(config, sources=())
    assert state_path(without) == Path(config.state_dir) / "brand-monitor.db"
    demo = config.sources[0]
    assert options_of(demo).resume is False
    store = SqliteStore(db)
    first = run_id(demo, store)
    assert run_id(demo, store) == first  # kept while the state is (resume: true)
    store.close()
    assert reset_state(db) and not db.exists() and not reset_state(db)
    store = SqliteStore(db)
    assert run_id(demo, store) != first  # a fresh run
    store.close()
    assert not (Path(config.state_dir) / "brand-monitor.db").exists()


def test_alerts_of_a_simulated_clock_say_so() -> None:
    from monitor.model import Alert
    from monitor.notify.templates import render

    alert = Alert(id="a1", dedup_key="k", rule="spike", kind="volume_spike", brand="Acme",
                  severity="warning", state="firing", title="[WARNING] spike: Acme",
                  summary="Acme: spike", created_at=LIVE, channels=(),
                  details={"clock": "simulated"})
    assert "2024-05-14 09:03 UTC (simulated demo time)" in render(alert)[1]
