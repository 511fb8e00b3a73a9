"""The twitter source: query building, tweet parsing, and tweepy against a local v2 server."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.clock import ManualClock
from monitor.config.schema import BrandConfig, SourceConfig
from monitor.config.strict import Context, build
from monitor.errors import ConfigError, PostError
from monitor.metrics import Metrics
from monitor.model import Post
from monitor.sources import twitter_wire as wire
from monitor.sources.base import SOURCES, SourceContext
from monitor.sources.twitter import TwitterOptions, TwitterSource
from monitor.store.sqlite import SqliteStore
from tests.twitter_server import FakeX, snowflake, tweet

TOKEN = "AAAAAAAAtest-bearer-Zk3f9Q0123456789"
NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)
ACME = BrandConfig(name="Acme", handles=("@acme",), keywords=("acme app",),
                   exclude=("acme brick",))
BOLT = BrandConfig(name="Bolt Bikes", handles=("@boltbikes",), keywords=("bolt",))
ACME_ID, FAN_ID, CRITIC_ID = "100", "200", "300"
POLL = 60.0


class Stop(Exception):
    """Raised by the fake sleep to end a run after the wanted number of polls."""


class Sleeper:
    """Injected sleep: records every wait, moves the clock, stops after ``polls`` polls."""

    def __init__(self, clock: ManualClock, polls: int = 1, block_waits: bool = False) -> None:
        self.clock = clock
        self.polls = polls
        self.block_waits = block_waits  # every other wait blocks until cancelled
        self.calls: list[float] = []
        self.errors: list[str | None] = []  # the source's health error at each non-poll wait
        self.waited = asyncio.Event()
        self.source: TwitterSource | None = None

    async def __call__(self, delay: float) -> None:
        self.calls.append(delay)
        if delay != POLL:
            self.waited.set()
            if self.source is not None:
                health = self.source.health
                self.errors.append(health.last_error if health.state == "error" else None)
        self.clock.advance(timedelta(seconds=delay))
        if delay == POLL:
            self.polls -= 1
            if self.polls <= 0:
                raise Stop
        elif self.block_waits:
            await asyncio.Event().wait()
        await asyncio.sleep(0)

    @property
    def waits(self) -> list[float]:
        """Every wait that was not the poll interval."""
        return [c for c in self.calls if c != POLL]


@pytest.fixture
async def fake_x() -> AsyncIterator[FakeX]:
    server = FakeX()
    server.add_user(ACME_ID, "acme", 48_200)
    server.add_user(FAN_ID, "fan", 12)
    server.add_user(CRITIC_ID, "critic", 250_000)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    db = SqliteStore(tmp_path / "state.db")
    yield db
    db.close()


def options(**changes: Any) -> TwitterOptions:
    base = TwitterOptions(bearer_token=TOKEN, poll_interval=timedelta(seconds=POLL),
                          max_results=10)
    return replace(base, **changes)


def make_source(fake: FakeX, store: SqliteStore, sleeper: Sleeper, opts: TwitterOptions,
                brands: tuple[BrandConfig, ...] = (ACME,), name: str = "x") -> TwitterSource:
    ctx = SourceContext(clock=sleeper.clock, store=store, metrics=Metrics(), brands=brands)
    config = SourceConfig(name=name, type="twitter", options=opts)
    source = TwitterSource(config, ctx, session_factory=fake.session, sleep=sleeper,
                           rng=random.Random(1))
    sleeper.source = source
    return source


async def run(source: TwitterSource) -> list[Post]:
    posts: list[Post] = []

    async def emit(post: Post) -> None:
        posts.append(post)

    with pytest.raises(Stop):
        await asyncio.wait_for(source.run(emit), timeout=10)
    return posts


def at(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


# query building ---------------------------------------------------------------------
def test_query_for_a_brand_has_terms_exclusions_and_filters() -> None:
    assert wire.build_queries(ACME, lang="en") == [
        '(@acme OR acme OR "acme app") -"acme brick" -from:acme -is:retweet lang:en']
    assert wire.build_queries(BOLT, exclude_retweets=False) == [
        '(@boltbikes OR boltbikes OR "Bolt Bikes" OR bolt) -from:boltbikes']


def test_query_terms_are_deduplicated_and_quotes_stripped() -> None:
    brand = BrandConfig(name="Acme", handles=("@Acme", "acme"), keywords=('ac"me', "ACME"))
    assert wire.brand_terms(brand) == ["@Acme", "Acme", '"ac me"']


def test_long_query_is_split_and_every_part_keeps_the_exclusions() -> None:
    keywords = tuple(f"keyword{n:03d} phrase" for n in range(60))
    brand = replace(ACME, keywords=keywords)
    queries = wire.build_queries(brand)
    assert len(queries) > 1
    suffix = '-"acme brick" -from:acme -is:retweet'
    for query in queries:
        assert len(query) <= wire.QUERY_LIMIT
        assert query.endswith(suffix)
    joined = " ".join(queries)
    for term in wire.brand_terms(brand):
        assert joined.count(term + " ") + joined.count(term + ")") >= 1


def test_a_term_that_cannot_fit_is_an_error() -> None:
    brand = replace(ACME, exclude=tuple(f"excluded phrase number {n}" for n in range(30)))
    with pytest.raises(wire.QueryTooLong, match="512"):
        wire.build_queries(brand)


# tweet parsing ----------------------------------------------------------------------
def test_tweet_to_post_expands_urls_and_takes_followers_from_includes() -> None:
    tid = snowflake(at(5))
    raw = tweet(tid, "@acme broken again https://t.co/abc", CRITIC_ID, source="X for iPhone",
                entities={"urls": [{"start": 20, "end": 43, "url": "https://t.co/abc",
                                    "expanded_url": "https://status.example/outage",
                                    "display_url": "status.example/outage"}]})
    users = wire.users_by_id({"users": [{"id": CRITIC_ID, "username": "critic",
                                         "public_metrics": {"followers_count": 250_000}}]})
    post = wire.tweet_to_post(raw, users, source="x")
    assert post.id == tid and post.kind == "mention" and post.brand is None
    assert post.text == "@acme broken again https://status.example/outage"
    assert post.author.handle == "critic" and post.author.followers == 250_000
    assert post.url == f"https://x.com/critic/status/{tid}"
    assert post.created_at == at(5).replace(microsecond=0) and post.lang == "en"
    assert post.client == "X for iPhone"


def test_long_post_text_comes_from_note_tweet_and_unknown_author_still_works() -> None:
    tid = snowflake(at(1))
    raw = tweet(tid, "truncated…", "999", lang="und",
                note_tweet={"text": "a very long complaint about acme " * 20})
    post = wire.tweet_to_post(raw, {}, source="x")
    assert post.text.startswith("a very long complaint") and post.lang is None
    assert post.author.handle == "999" and post.author.followers is None
    assert post.url == f"https://x.com/i/web/status/{tid}"


@pytest.mark.parametrize("broken", [
    {"text": "no id", "author_id": "1", "created_at": "2024-05-14T11:00:00Z"},
    {"id": "123", "author_id": "1", "created_at": "2024-05-14T11:00:00Z"},
    {"id": "123", "text": "no author", "created_at": "2024-05-14T11:00:00Z"},
    {"id": "123", "text": "bad time", "author_id": "1", "created_at": "yesterday"},
    "not an object",
])
def test_malformed_tweets_raise_post_error(broken: object) -> None:
    with pytest.raises(PostError):
        wire.tweet_to_post(broken, {}, source="x")


def test_problem_text_names_the_reason() -> None:
    body = {"title": "Client Forbidden", "reason": "client-not-enrolled",
            "detail": "When authenticating requests to the Twitter API v2 endpoints, you must "
                      "use keys and tokens from a Twitter developer App that is attached to a "
                      "Project.", "type": "https://api.twitter.com/2/problems/client-forbidden"}
    text = wire.problem_text(403, body)
    assert text.startswith("HTTP 403 Client Forbidden (client-not-enrolled): When authenticating")
    assert wire.problem_text(503, None) == "HTTP 503"


def test_options_refuse_a_literal_token_and_out_of_range_values() -> None:
    ctx = Context("config.yaml", environ={"X_TOKEN": TOKEN})
    built = build(TwitterOptions, {"bearer_token": "${X_TOKEN}", "poll_interval": "2m",
                                   "own_user_ids": {"Acme": 100}}, ctx)
    assert built.bearer_token == TOKEN and built.poll_interval == timedelta(minutes=2)
    assert dict(built.own_user_ids) == {"Acme": ("100",)}
    with pytest.raises(ConfigError, match="secrets must not be written"):
        build(TwitterOptions, {"bearer_token": TOKEN}, Context("config.yaml"))
    with pytest.raises(ConfigError, match="at most 100"):
        build(TwitterOptions, {"bearer_token": "${X_TOKEN}", "max_results": 500},
              Context("config.yaml", environ={"X_TOKEN": TOKEN}))
    assert SOURCES.get("twitter") is TwitterSource


# polling against the local server -----------------------------------------------------
async def test_poll_sends_the_fields_a_monitor_needs_and_emits_posts(
        fake_x: FakeX, store: SqliteStore) -> None:
    mention = snowflake(at(3))
    own = snowflake(at(2))
    fake_x.tweets += [tweet(mention, "acme app ate my order", CRITIC_ID),
                      tweet(own, "We're on it! DM us.", ACME_ID,
                            referenced_tweets=[{"type": "replied_to", "id": mention}])]
    sleeper = Sleeper(ManualClock(NOW))
    source = make_source(fake_x, store, sleeper, options(lang="en"))
    posts = await run(source)

    (lookup,) = fake_x.requests("/2/users/by")
    assert lookup.query["usernames"] == "acme"
    (search,) = fake_x.requests("/2/tweets/search/recent")
    assert search.query["query"] == wire.build_queries(ACME, lang="en")[0]
    fields = set(search.query["tweet.fields"].split(","))
    assert {"author_id", "created_at", "public_metrics", "entities", "lang",
            "referenced_tweets"} <= fields
    assert search.query["expansions"] == "author_id"
    assert "public_metrics" in search.query["user.fields"].split(",")
    assert search.query["max_results"] == "10" and "since_id" not in search.query
    assert search.headers["Authorization"] == f"Bearer {TOKEN}"
    (timeline,) = fake_x.requests(f"/2/users/{ACME_ID}/tweets")
    assert timeline.query["exclude"] == "retweets"

    by_id = {p.id: p for p in posts}
    assert by_id[mention].kind == "mention" and by_id[mention].author.followers == 250_000
    assert by_id[own].kind == "outbound" and by_id[own].brand == "Acme"
    assert by_id[own].author.followers == 48_200
    assert len(posts) == 2 and all(p.source == "x" for p in posts)
    assert source.health.state == "ok" and source.health.posts == 2


async def test_since_id_cursors_survive_a_restart(fake_x: FakeX, store: SqliteStore) -> None:
    first = [snowflake(at(30 - n)) for n in range(3)]
    fake_x.tweets += [tweet(i, f"acme post {n}", FAN_ID) for n, i in enumerate(first)]
    clock = ManualClock(NOW)
    posts = await run(make_source(fake_x, store, Sleeper(clock), options(timeline=False)))
    assert [p.id for p in posts] == first  # oldest first

    later = [snowflake(at(1), n) for n in range(2)]
    fake_x.tweets += [tweet(i, "acme again", FAN_ID) for i in later]
    fake_x.seen.clear()
    posts = await run(make_source(fake_x, store, Sleeper(clock), options(timeline=False)))
    (search,) = fake_x.requests("/2/tweets/search/recent")
    assert search.query["since_id"] == first[-1]
    assert [p.id for p in posts] == later


async def test_pages_are_bounded_and_a_backlog_resumes_without_gaps_or_repeats(
        fake_x: FakeX, store: SqliteStore) -> None:
    clock = ManualClock(NOW)
    seed = snowflake(at(60))
    fake_x.tweets.append(tweet(seed, "acme", FAN_ID))
    await run(make_source(fake_x, store, Sleeper(clock), options(timeline=False)))

    backlog = [snowflake(at(50), n) for n in range(25)]
    fake_x.tweets += [tweet(i, f"acme {n}", FAN_ID) for n, i in enumerate(backlog)]
    fake_x.seen.clear()
    source = make_source(fake_x, store, Sleeper(clock, polls=2), options(timeline=False,
                                                                         max_pages=2))
    posts = await run(source)
    calls = fake_x.requests("/2/tweets/search/recent")
    assert [c.query.get("next_token") for c in calls] == [None, "10", "20"]
    assert all(c.query["since_id"] == seed for c in calls)
    assert sorted(p.id for p in posts) == sorted(backlog)
    assert len(posts) == len(set(p.id for p in posts))
    cursor = json.loads(store.get_cursor("twitter:x:search:Acme:0") or "{}")
    assert cursor == {"since_id": backlog[-1], "query": calls[0].query["query"]}


async def test_429_waits_until_the_rate_limit_reset(fake_x: FakeX, store: SqliteStore) -> None:
    reset = int(NOW.timestamp()) + 420
    fake_x.fail("/2/tweets/search/recent", 429,
                {"title": "Too Many Requests", "detail": "Too Many Requests", "status": 429},
                **{"x-rate-limit-limit": "60", "x-rate-limit-remaining": "0",
                   "x-rate-limit-reset": str(reset)})
    fake_x.tweets.append(tweet(snowflake(at(1)), "acme", FAN_ID))
    sleeper = Sleeper(ManualClock(NOW))
    source = make_source(fake_x, store, sleeper, options(timeline=False))
    posts = await run(source)
    assert sleeper.waits == [421.0]
    assert len(posts) == 1 and source.health.state == "ok"
    assert len(fake_x.requests("/2/tweets/search/recent")) == 2


async def test_usage_cap_is_a_health_error(fake_x: FakeX, store: SqliteStore) -> None:
    fake_x.fail("/2/tweets/search/recent", 429,
                {"title": "UsageCapExceeded", "detail": "Usage cap exceeded: Monthly product cap",
                 "type": "https://api.twitter.com/2/problems/usage-capped", "period": "Monthly"},
                **{"x-rate-limit-reset": str(int(NOW.timestamp()) + 86_400)})
    sleeper = Sleeper(ManualClock(NOW))
    await run(make_source(fake_x, store, sleeper, options(timeline=False)))
    assert sleeper.waits == [900.0]  # capped: re-checked every 15 minutes
    (error,) = sleeper.errors
    assert error is not None and error.startswith("monthly post cap reached: HTTP 429")


async def test_an_exhausted_limit_waits_before_the_next_call(
        fake_x: FakeX, store: SqliteStore) -> None:
    reset = int(NOW.timestamp()) + 300
    fake_x.limits = {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)}
    sleeper = Sleeper(ManualClock(NOW), polls=2)
    await run(make_source(fake_x, store, sleeper, options(timeline=False)))
    # poll 1 at NOW learns remaining=0; poll 2 starts at NOW+60 and waits for the reset
    assert sleeper.waits == [241.0]


async def test_5xx_backs_off_then_recovers(fake_x: FakeX, store: SqliteStore) -> None:
    fake_x.fail("/2/tweets/search/recent", 503, {"title": "Service Unavailable"})
    fake_x.scripted.append(replace(fake_x.scripted[0], body="<html>busy</html>",
                                   content_type="text/html"))
    fake_x.tweets.append(tweet(snowflake(at(1)), "acme", FAN_ID))
    sleeper = Sleeper(ManualClock(NOW))
    source = make_source(fake_x, store, sleeper, options(timeline=False))
    posts = await run(source)
    assert sleeper.errors == ["HTTP 503 Service Unavailable", "HTTP 503"]
    assert len(sleeper.waits) == 2
    assert 1.0 <= sleeper.waits[0] <= 2.0 and 2.0 <= sleeper.waits[1] <= 4.0
    assert len(posts) == 1 and source.health.state == "ok"


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_errors_are_reported_in_health_and_retried_slowly(
        fake_x: FakeX, store: SqliteStore, status: int) -> None:
    body = ({"title": "Client Forbidden", "reason": "client-not-enrolled",
             "detail": "When authenticating requests to the Twitter API v2 endpoints, you "
                       "must use keys and tokens from a Twitter developer App that is "
                       "attached to a Project.",
             "type": "https://api.twitter.com/2/problems/client-forbidden"}
            if status == 403 else
            {"title": "Unauthorized", "type": "about:blank", "status": 401,
             "detail": "Unauthorized"})
    fake_x.fail("/2/users/by", status, body)
    sleeper = Sleeper(ManualClock(NOW))
    source = make_source(fake_x, store, sleeper, options())
    await run(source)
    (error,) = sleeper.errors
    expected = "client-not-enrolled" if status == 403 else "HTTP 401 Unauthorized"
    assert expected in (error or "") and "refused the credentials" in (error or "")
    assert len(sleeper.waits) == 1 and 150 <= sleeper.waits[0] <= 300
    assert source.health.state == "ok"  # the retry succeeded


async def test_malformed_tweets_are_counted_and_skipped(
        fake_x: FakeX, store: SqliteStore, caplog: pytest.LogCaptureFixture) -> None:
    good = snowflake(at(2))
    fake_x.tweets.append(tweet(good, "acme fine", FAN_ID))
    fake_x.extra_search += [{"id": snowflake(at(1)), "author_id": FAN_ID,
                             "created_at": "2024-05-14T11:59:00Z"},
                            {"text": "no id", "author_id": FAN_ID}]
    source = make_source(fake_x, store, Sleeper(ManualClock(NOW)), options(timeline=False))
    with caplog.at_level(logging.WARNING):
        posts = await run(source)
    assert [p.id for p in posts] == [good]
    assert source.health.malformed == 2
    assert "skipped malformed post" in caplog.text and "no text" in caplog.text


async def test_bearer_token_never_reaches_the_logs(
        fake_x: FakeX, store: SqliteStore, caplog: pytest.LogCaptureFixture) -> None:
    fake_x.fail("/2/tweets/search/recent", 401,
                {"title": "Unauthorized", "detail": f"bad token {TOKEN}"})
    fake_x.tweets.append(tweet(snowflake(at(1)), "acme", FAN_ID))
    with caplog.at_level(logging.DEBUG):
        await run(make_source(fake_x, store, Sleeper(ManualClock(NOW)), options()))
    assert any("Making API request" in r.getMessage() for r in caplog.records)  # tweepy DEBUG
    assert any("refused the credentials" in r.getMessage() for r in caplog.records)
    assert TOKEN not in caplog.text
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


async def test_cancel_propagates_and_closes_the_session(
        fake_x: FakeX, store: SqliteStore) -> None:
    polled = asyncio.Event()

    async def sleep(delay: float) -> None:
        polled.set()
        await asyncio.Event().wait()  # forever

    ctx = SourceContext(clock=ManualClock(NOW), store=store, metrics=Metrics(), brands=(ACME,))
    source = TwitterSource(SourceConfig(name="x", type="twitter", options=options()), ctx,
                           session_factory=fake_x.session, sleep=sleep)

    async def emit(post: Post) -> None:
        return None

    task = asyncio.create_task(source.run(emit))
    await asyncio.wait_for(polled.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake_x.sessions and all(s.closed for s in fake_x.sessions)


async def test_a_cursor_older_than_the_search_window_is_dropped(
        fake_x: FakeX, store: SqliteStore, caplog: pytest.LogCaptureFixture) -> None:
    stale = snowflake(NOW - timedelta(days=8))
    query = wire.build_queries(ACME)[0]
    store.set_cursor("twitter:x:search:Acme:0", json.dumps({"since_id": stale, "query": query}))
    fake_x.tweets.append(tweet(snowflake(at(1)), "acme", FAN_ID))
    with caplog.at_level(logging.WARNING):
        posts = await run(make_source(fake_x, store, Sleeper(ManualClock(NOW)),
                                      options(timeline=False)))
    (search,) = fake_x.requests("/2/tweets/search/recent")
    assert "since_id" not in search.query and len(posts) == 1
    assert "7-day search window" in caplog.text


async def test_own_user_ids_skip_the_lookup_and_unknown_brands_fail(
        fake_x: FakeX, store: SqliteStore) -> None:
    fake_x.tweets.append(tweet(snowflake(at(1)), "hello from acme", ACME_ID))
    fake_x.honour_from = False  # search also returns the brand's own post...
    opts = options(own_user_ids={"Acme": (ACME_ID,)})
    posts = await run(make_source(fake_x, store, Sleeper(ManualClock(NOW)), opts))
    assert not fake_x.requests("/2/users/by")
    assert len(fake_x.requests(f"/2/users/{ACME_ID}/tweets")) == 1
    assert [p.kind for p in posts] == ["outbound"]  # ...which is emitted once, as outbound

    async def emit(post: Post) -> None:
        return None

    for opts in (options(brands=("Nope",)), options(own_user_ids={"Nope": ("1",)})):
        source = make_source(fake_x, store, Sleeper(ManualClock(NOW)), opts)
        await source.run(emit)
        assert source.health.state == "error" and "Nope" in (source.health.last_error or "")


# filtered stream -------------------------------------------------------------------
async def test_stream_syncs_rules_fills_the_gap_and_emits_streamed_posts(
        fake_x: FakeX, store: SqliteStore) -> None:
    fake_x.rules = [{"id": "1", "value": "old query", "tag": "brandmon:x:search:Acme:0"},
                    {"id": "2", "value": "someone else", "tag": "other-app"}]
    gap = snowflake(at(10))
    fake_x.tweets.append(tweet(gap, "acme while we were away", FAN_ID))
    live = snowflake(at(0))
    sleeper = Sleeper(ManualClock(NOW), block_waits=True)
    source = make_source(fake_x, store, sleeper, options(stream=True))
    streamed: list[Post] = []
    done = asyncio.Event()

    async def emit(post: Post) -> None:
        streamed.append(post)
        if post.id == live:
            done.set()

    task = asyncio.create_task(source.run(emit))
    await asyncio.wait_for(fake_x.stream_connected.wait(), timeout=10)
    for line in (b"", json.dumps({"errors": [{"title": "note"}]}).encode(), b"{not json",
                 json.dumps({"data": tweet(live, "acme live!", CRITIC_ID),
                             "includes": {"users": [fake_x.users[CRITIC_ID]]},
                             "matching_rules": [{"id": "9000",
                                                 "tag": "brandmon:x:search:Acme:0"}]}).encode()):
        fake_x.stream_lines.put_nowait(line)
    await asyncio.wait_for(done.wait(), timeout=10)
    fake_x.stream_lines.put_nowait(None)  # server closes the stream: reconnect after backoff
    await asyncio.wait_for(sleeper.waited.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert sorted((r["tag"], r["value"]) for r in fake_x.rules) == [
        ("brandmon:x:search:Acme:0", wire.build_queries(ACME)[0]),
        (f"brandmon:x:timeline:{ACME_ID}", f"from:{ACME_ID} -is:retweet"),
        ("other-app", "someone else")]
    (stream,) = fake_x.requests("/2/tweets/search/stream")
    assert "author_id" in stream.query["tweet.fields"] and stream.query["expansions"] == "author_id"
    assert [p.id for p in streamed] == [gap, live]
    assert streamed[1].author.followers == 250_000
    assert source.health.malformed == 1
    cursor = json.loads(store.get_cursor("twitter:x:search:Acme:0") or "{}")
    assert cursor["since_id"] == live
    assert source.health.state == "error" and "closed" in (source.health.last_error or "")
