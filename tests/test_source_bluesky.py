"""The Bluesky source against a local Jetstream + AppView speaking the real wire format."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor.clock import ManualClock
from monitor.config.schema import BrandConfig, SourceConfig
from monitor.config.strict import Context, build
from monitor.enrich.match import BrandMatcher
from monitor.errors import ConfigError
from monitor.metrics import Metrics
from monitor.model import Post
from monitor.sources.base import SourceContext
from monitor.sources.bluesky import BlueskyOptions, BlueskySource, cursor_key
from monitor.sources.bluesky_wire import (
    LRU,
    POST,
    Classifier,
    RateLimit,
    SeenSet,
    WireError,
    created_time,
    parse_event,
    parse_post,
    subscribe_url,
)
from monitor.store.sqlite import SqliteStore

ACME = BrandConfig(name="Acme", handles=("@acme", "@acme.bsky.social"), keywords=("acme",),
                   exclude=("acme anvil",))
GLOBEX = BrandConfig(name="Globex", handles=("@globex",), keywords=("globex",))
BRAND = "did:plc:acmebrand"
FAN = "did:plc:fan"
OTHER = "did:plc:other"
T0 = 1725911162329308  # 2024-09-09T19:46:02.329308Z
SEC = 1_000_000


# Jetstream messages --------------------------------------------------------------------
def post_msg(did: str, rkey: str, body: str, t: int, *, op: str = "create",
             collection: str = POST, **record: Any) -> str:
    commit: dict[str, Any] = {"rev": f"rev{rkey}", "operation": op, "collection": collection,
                              "rkey": rkey}
    if op != "delete":
        commit["record"] = {"$type": collection, "text": body, "langs": ["en"],
                            "createdAt": "2024-09-09T19:46:01.000Z", **record}
        commit["cid"] = f"bafy{rkey}"
    return json.dumps({"did": did, "time_us": t, "kind": "commit", "commit": commit})


def identity_msg(did: str, handle: str, t: int) -> str:
    return json.dumps({"did": did, "time_us": t, "kind": "identity",
                       "identity": {"did": did, "handle": handle, "seq": 1,
                                    "time": "2024-09-09T19:46:02.000Z"}})


def account_msg(did: str, t: int) -> str:
    return json.dumps({"did": did, "time_us": t, "kind": "account",
                       "account": {"active": False, "did": did, "seq": 2, "status": "deleted",
                                   "time": "2024-09-09T19:46:02.000Z"}})


def mention(did: str) -> list[dict[str, Any]]:
    return [{"index": {"byteStart": 4, "byteEnd": 26},
             "features": [{"$type": "app.bsky.richtext.facet#mention", "did": did}]}]


def link(uri: str) -> list[dict[str, Any]]:
    return [{"index": {"byteStart": 0, "byteEnd": 9},
             "features": [{"$type": "app.bsky.richtext.facet#link", "uri": uri}]}]


# a local Jetstream + AppView -----------------------------------------------------------
@dataclass
class Conn:
    messages: list[str | bytes] = field(default_factory=list)
    close: bool = False  # close after the messages; False: stay open until the client leaves
    status: int | None = None  # refuse the WebSocket upgrade with this HTTP status


class FakeBluesky:
    def __init__(self) -> None:
        self.conns: list[Conn] = []
        self.queries: list[dict[str, list[str]]] = []
        self.left = asyncio.Event()
        self.handles: dict[str, str] = {}
        self.resolve_status = 200
        self.profiles: dict[str, dict[str, Any]] = {}
        self.profile_status = 200
        self.profile_requests: list[list[str]] = []
        app = web.Application()
        app.router.add_get("/subscribe", self.subscribe)
        app.router.add_get("/xrpc/com.atproto.identity.resolveHandle", self.resolve)
        app.router.add_get("/xrpc/app.bsky.actor.getProfiles", self.get_profiles)
        self.server = TestServer(app, host="127.0.0.1", port=0)

    @property
    def ws_url(self) -> str:
        return str(self.server.make_url("/subscribe")).replace("http://", "ws://")

    @property
    def http_url(self) -> str:
        return str(self.server.make_url(""))

    async def subscribe(self, request: web.Request) -> web.StreamResponse:
        query = {k: request.query.getall(k) for k in request.query}
        self.queries.append(query)
        n = len(self.queries) - 1
        conn = self.conns[n] if n < len(self.conns) else Conn()
        if conn.status is not None:
            return web.Response(status=conn.status, text="busy")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for message in conn.messages:
            await (ws.send_bytes(message) if isinstance(message, bytes) else ws.send_str(message))
        if conn.close:
            await ws.close()
        else:
            async for _ in ws:
                pass
            self.left.set()
        return ws

    async def resolve(self, request: web.Request) -> web.Response:
        handle = request.query["handle"]
        if self.resolve_status != 200:
            return web.json_response({"error": "InternalServerError"},
                                     status=self.resolve_status)
        if handle not in self.handles:
            return web.json_response({"error": "InvalidRequest",
                                      "message": "Unable to resolve handle"}, status=400)
        return web.json_response({"did": self.handles[handle]})

    async def get_profiles(self, request: web.Request) -> web.Response:
        actors = request.query.getall("actors")
        self.profile_requests.append(actors)
        if self.profile_status != 200:
            return web.json_response({"error": "oops"}, status=self.profile_status)
        return web.json_response({"profiles": [self.profiles[a] for a in actors
                                               if a in self.profiles]})


@pytest.fixture
async def bsky() -> Any:
    fake = FakeBluesky()
    await fake.server.start_server()
    yield fake
    for run in Running.started:  # a failed test may leave its source running
        run.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await run.task
    Running.started.clear()
    await fake.server.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "state.db")
    yield s
    s.close()


class Sleeps:
    """Injected sleep: records each delay and returns at once (optionally running a hook)."""

    def __init__(self, hook: Callable[[float], None] | None = None) -> None:
        self.delays: list[float] = []
        self.hook = hook

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self.hook is not None:
            self.hook(delay)
        await asyncio.sleep(0)


class Running:
    started: ClassVar[list[Running]] = []

    def __init__(self, source: BlueskySource) -> None:
        self.source = source
        self.posts: list[Post] = []
        self.task = asyncio.create_task(source.run(self.emit))
        self.started.append(self)

    async def emit(self, post: Post) -> None:
        self.posts.append(post)

    async def until(self, check: Callable[[], bool]) -> None:
        """Wait (at most 5 s) until ``check()`` holds."""
        async def poll() -> None:
            while not check():
                if self.task.done():
                    self.task.result()  # surfaces the source's exception
                    raise AssertionError("source finished early")
                await asyncio.sleep(0.005)
        await asyncio.wait_for(poll(), 5.0)

    async def posts_with(self, n: int) -> list[Post]:
        await self.until(lambda: len(self.posts) >= n)
        return self.posts

    async def stop(self) -> None:
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


def make(bsky: FakeBluesky, store: SqliteStore, *, brands: tuple[BrandConfig, ...] = (ACME,),
         brand: str | None = None, name: str = "bsky", sleep: Sleeps | None = None,
         clock: ManualClock | None = None, session: aiohttp.ClientSession | None = None,
         monotonic: Callable[[], float] | None = None, **options: Any) -> BlueskySource:
    opts = BlueskyOptions(jetstream=bsky.ws_url, appview=bsky.http_url, **options)
    config = SourceConfig(name=name, type="bluesky", brand=brand, options=opts)
    ctx = SourceContext(clock=clock or ManualClock(), store=store, metrics=Metrics(),
                        brands=brands)
    extra: dict[str, Any] = {"monotonic": monotonic} if monotonic else {}
    return BlueskySource(config, ctx, sleep=sleep or Sleeps(), rng=random.Random(3),
                         session=session, **extra)


def saved(store: SqliteStore, name: str = "bsky") -> dict[str, Any] | None:
    raw = store.get_cursor(cursor_key(name))
    return None if raw is None else dict(json.loads(raw))


def up(source: BlueskySource) -> float | None:
    return source.ctx.metrics.registry.get_sample_value("brandmon_source_up",
                                                        {"source": source.name})


# filtering ------------------------------------------------------------------------------
async def test_keyword_handle_mention_facet_reply_and_link_filtering(
        bsky: FakeBluesky, store: SqliteStore) -> None:
    t = T0
    bsky.conns = [Conn([
        identity_msg(FAN, "Fan.bsky.social", t),
        post_msg(FAN, "p1", "Loving my new @acme gadget", t + 1),
        post_msg(OTHER, "p2", "acme is down again", t + 2),
        post_msg(OTHER, "p3", "acmeville is a nice town", t + 3),
        post_msg(OTHER, "p4", "nothing to see here", t + 4),
        post_msg(OTHER, "p5", "hey @acmecorp.bsky.social please help", t + 5,
                 facets=mention(BRAND)),
        post_msg(OTHER, "p6", "hey @someone.bsky.social hi", t + 6, facets=mention(FAN)),
        post_msg(OTHER, "p7", "read this", t + 7, facets=link("https://www.acme.example/s")),
        post_msg(OTHER, "p8", "an acme anvil fell on me", t + 8),
        post_msg(OTHER, "p9", "that did not help at all", t + 9,
                 reply={"root": {"uri": f"at://{BRAND}/{POST}/r0", "cid": "x"},
                        "parent": {"uri": f"at://{BRAND}/{POST}/r0", "cid": "x"}}),
        post_msg(OTHER, "p10", "look at this", t + 10,
                 embed={"$type": "app.bsky.embed.record",
                        "record": {"uri": f"at://{BRAND}/{POST}/r1", "cid": "y"}}),
        post_msg(OTHER, "p11", "@acme.bsky.social sorted, thanks", t + 11, langs=["de", "en"]),
    ])]
    run = Running(make(bsky, store, brand_dids=(BRAND,)))
    posts = await run.posts_with(7)
    await run.stop()
    assert [p.id.rsplit("/", 1)[1] for p in posts] == ["p1", "p2", "p5", "p7", "p9", "p10",
                                                       "p11"]
    first = posts[0]
    assert first.id == f"at://{FAN}/{POST}/p1"
    assert first.url == f"https://bsky.app/profile/{FAN}/post/p1"
    assert (first.kind, first.source, first.lang, first.brand) == ("mention", "bsky", "en", None)
    assert first.author.id == FAN and first.author.handle == "fan.bsky.social"
    assert first.author.followers is None
    assert first.created_at == datetime(2024, 9, 9, 19, 46, 1, tzinfo=UTC)
    assert posts[1].author.handle == OTHER  # no handle known: the DID
    assert posts[6].lang == "de"
    # text matches are left to the engine (brand None); reference matches name the brand
    by_ref = {p.id.rsplit("/", 1)[1]: p.brand for p in posts if p.brand}
    assert by_ref == {"p5": "Acme", "p7": "Acme", "p9": "Acme", "p10": "Acme"}
    matcher = BrandMatcher((ACME,))
    assert all(matcher.match(p) == ["Acme"] for p in posts)
    assert run.source.health.posts == 7 and run.source.health.malformed == 0


async def test_pinned_brand_listens_only_for_that_brand(bsky: FakeBluesky,
                                                        store: SqliteStore) -> None:
    bsky.conns = [Conn([post_msg(FAN, "g", "globex rocks", T0),
                        post_msg(FAN, "a", "acme rocks", T0 + 1)])]
    run = Running(make(bsky, store, brands=(ACME, GLOBEX), brand="Acme"))
    posts = await run.posts_with(1)
    await run.stop()
    assert [(p.id.rsplit("/", 1)[1], p.brand) for p in posts] == [("a", "Acme")]


async def test_unknown_pinned_brand_fails(bsky: FakeBluesky, store: SqliteStore) -> None:
    source = make(bsky, store, brand="Nope")
    posts: list[Post] = []

    async def emit(post: Post) -> None:
        posts.append(post)

    await asyncio.wait_for(source.run(emit), 5)
    assert source.health.state == "error" and "Nope" in (source.health.last_error or "")
    assert bsky.queries == []


async def test_brand_dids_posts_are_outbound(bsky: FakeBluesky, store: SqliteStore) -> None:
    bsky.conns = [Conn([
        identity_msg(BRAND, "acme.bsky.social", T0),
        post_msg(BRAND, "b1", "Big sale today at acme!", T0 + 1),
        post_msg(BRAND, "b2", "We are looking into it", T0 + 2, facets=mention(FAN)),
        post_msg(FAN, "f1", "acme sale!", T0 + 3),
    ])]
    run = Running(make(bsky, store, brand_dids=(BRAND,)))
    posts = await run.posts_with(3)
    await run.stop()
    assert [(p.kind, p.brand, p.author.handle) for p in posts] == [
        ("outbound", "Acme", "acme.bsky.social"), ("outbound", "Acme", "acme.bsky.social"),
        ("mention", None, FAN)]
    assert BrandMatcher((ACME,)).match(posts[1]) == ["Acme"]


async def test_brand_handles_resolved_on_the_appview_then_remembered(
        bsky: FakeBluesky, store: SqliteStore) -> None:
    bsky.handles = {"acme.bsky.social": BRAND}
    bsky.resolve_status = 503

    def recover(_: float) -> None:
        bsky.resolve_status = 200

    sleeps = Sleeps(recover)
    bsky.conns = [Conn([post_msg(BRAND, "b1", "hello from us", T0)])]
    source = make(bsky, store, brands=(ACME, GLOBEX), brand_handles=("@Acme.bsky.social",),
                  sleep=sleeps)
    run = Running(source)
    posts = await run.posts_with(1)
    await run.stop()
    assert len(sleeps.delays) == 1  # one failed resolution, retried after a backoff
    assert (posts[0].kind, posts[0].brand, posts[0].author.handle) == (
        "outbound", "Acme", "acme.bsky.social")  # the brand whose handles list it
    assert saved(store) == {"time_us": T0, "handles": {"acme.bsky.social": BRAND}}

    # a restart while the AppView is down uses the DID saved with the cursor
    bsky.resolve_status = 500
    bsky.conns = [Conn([post_msg(BRAND, "b2", "still us", T0 + SEC)])]
    bsky.queries.clear()
    again = make(bsky, store, brands=(ACME, GLOBEX), brand_handles=("acme.bsky.social",))
    run = Running(again)
    posts = await run.posts_with(1)
    await run.stop()
    assert (posts[0].kind, posts[0].brand) == ("outbound", "Acme")
    assert bsky.queries[0]["cursor"] == [str(T0 - 5 * SEC)]


async def test_unresolvable_handle_reports_error_and_keeps_retrying(
        bsky: FakeBluesky, store: SqliteStore) -> None:
    sleeps = Sleeps()
    source = make(bsky, store, brand_handles=("typo.bsky.social",), sleep=sleeps)
    run = Running(source)
    await run.until(lambda: len(sleeps.delays) >= 3)
    assert source.health.state == "error"
    assert "typo.bsky.social" in (source.health.last_error or "")
    assert up(source) == 0
    assert bsky.queries == []  # no firehose until the brand's own account is known
    await run.stop()
    assert sleeps.delays[2] > sleeps.delays[0]  # backing off


# what is ignored or malformed -------------------------------------------------------------
async def test_deletes_updates_other_collections_and_account_events_ignored(
        bsky: FakeBluesky, store: SqliteStore) -> None:
    bsky.conns = [Conn([
        post_msg(FAN, "d1", "", T0, op="delete"),
        post_msg(FAN, "u1", "acme edited", T0 + 1, op="update"),
        post_msg(FAN, "l1", "acme", T0 + 2, collection="app.bsky.feed.like"),
        account_msg(FAN, T0 + 3),
        json.dumps({"did": FAN, "time_us": T0 + 4, "kind": "sync", "sync": {}}),
        post_msg(FAN, "s1", "acme sentinel", T0 + 5),
    ])]
    run = Running(make(bsky, store, cursor_every=timedelta(0)))
    posts = await run.posts_with(1)
    await run.until(lambda: (saved(store) or {}).get("time_us") == T0 + 5)
    await run.stop()
    assert [p.id.rsplit("/", 1)[1] for p in posts] == ["s1"]
    assert run.source.health.malformed == 0


async def test_malformed_messages_are_counted_and_skipped(bsky: FakeBluesky,
                                                          store: SqliteStore) -> None:
    bad_record = json.dumps({"did": FAN, "time_us": T0 + 4, "kind": "commit", "commit": {
        "rev": "r", "operation": "create", "collection": POST, "rkey": "x", "record": "acme"}})
    bsky.conns = [Conn([
        "not json {",
        "[1, 2]",
        json.dumps({"did": FAN, "kind": "commit"}),  # no time_us
        json.dumps({"did": FAN, "time_us": T0 + 3, "kind": "commit"}),  # no commit
        bad_record,
        post_msg(FAN, "n", "acme", T0 + 5, text=42),
        post_msg(FAN, "t", "acme", T0 + 6, **{"$type": "app.bsky.feed.like"}),
        b"\x28\xb5\x2f\xfd compressed",
        post_msg(FAN, "ok", "acme still works", T0 + 7),
    ])]
    run = Running(make(bsky, store))
    posts = await run.posts_with(1)
    await run.stop()
    assert [p.id.rsplit("/", 1)[1] for p in posts] == ["ok"]
    assert run.source.health.malformed == 8
    metrics = run.source.ctx.metrics.registry
    assert metrics.get_sample_value("brandmon_posts_malformed_total", {"source": "bsky"}) == 8


# cursor, reconnect, backoff, cancel -----------------------------------------------------------
async def test_reconnect_sends_cursor_minus_rewind_and_drops_replays(
        bsky: FakeBluesky, store: SqliteStore) -> None:
    t1, t2, t3 = T0, T0 + 2 * SEC, T0 + 3 * SEC
    bsky.conns = [
        Conn([post_msg(FAN, "a", "acme one", t1), post_msg(FAN, "b", "acme two", t2)],
             close=True),
        Conn([post_msg(FAN, "a", "acme one", t1), post_msg(FAN, "b", "acme two", t2),
              post_msg(FAN, "c", "acme three", t3)]),
    ]
    sleeps = Sleeps()
    run = Running(make(bsky, store, sleep=sleeps, cursor_every=timedelta(hours=1)))
    posts = await run.posts_with(3)
    await run.until(lambda: run.source.cursor == t3)
    assert "cursor" not in bsky.queries[0]
    assert bsky.queries[0]["wantedCollections"] == [POST]
    assert bsky.queries[1]["cursor"] == [str(t2 - 5 * SEC)]
    assert (saved(store) or {}).get("time_us") == t2  # saved at the disconnect
    await run.stop()
    assert [p.id.rsplit("/", 1)[1] for p in posts] == ["a", "b", "c"]
    assert len(sleeps.delays) == 1 and 0.5 <= sleeps.delays[0] <= 1.0
    assert run.source.connections == 2
    assert (saved(store) or {}).get("time_us") == t3  # and at shutdown


@pytest.mark.parametrize(("stored", "rewind", "expected"), [
    (json.dumps({"time_us": T0, "handles": {}}), timedelta(seconds=2), [str(T0 - 2 * SEC)]),
    (str(T0), timedelta(seconds=5), [str(T0 - 5 * SEC)]),
    ("garbage{", timedelta(seconds=5), None),
])
async def test_restart_resumes_from_saved_cursor(bsky: FakeBluesky, store: SqliteStore,
                                                 stored: str, rewind: timedelta,
                                                 expected: list[str] | None) -> None:
    store.set_cursor(cursor_key("bsky"), stored)
    run = Running(make(bsky, store, cursor_rewind=rewind))
    await run.until(lambda: bool(bsky.queries))
    await run.stop()
    assert bsky.queries[0].get("cursor") == expected


async def test_cursor_saves_are_throttled(bsky: FakeBluesky, store: SqliteStore) -> None:
    now = [1000.0]
    bsky.conns = [Conn([post_msg(FAN, f"p{i}", "acme", T0 + i) for i in range(3)])]
    run = Running(make(bsky, store, cursor_every=timedelta(seconds=5), monotonic=lambda: now[0]))
    await run.posts_with(3)
    assert saved(store) is None  # less than cursor_every since start
    now[0] += 5
    bsky.conns.append(Conn())
    await run.stop()
    assert (saved(store) or {}).get("time_us") == T0 + 2

    # once cursor_every has passed, the next event saves while still connected
    bsky.queries.clear()
    bsky.conns = [Conn([post_msg(FAN, "x", "acme", T0 + 10),
                        post_msg(FAN, "y", "acme", T0 + 11)])]
    emitted: list[Post] = []  # time moves 6 s per emitted post
    run = Running(make(bsky, store, cursor_every=timedelta(seconds=5),
                       monotonic=lambda: 1000.0 + 6 * len(emitted)))
    emitted = run.posts
    await run.posts_with(1)
    await run.until(lambda: (saved(store) or {}).get("time_us") == T0 + 11)
    assert not run.task.done()
    await run.stop()


async def test_handshake_failures_back_off_and_productive_connection_resets(
        bsky: FakeBluesky, store: SqliteStore) -> None:
    states: list[tuple[str, float | None]] = []
    source: BlueskySource

    def record(_: float) -> None:
        states.append((source.health.state, up(source)))

    sleeps = Sleeps(record)
    bsky.conns = [Conn(status=503), Conn(status=503),
                  Conn([post_msg(FAN, "a", "acme", T0)], close=True),
                  Conn([post_msg(FAN, "b", "acme", T0 + 1)])]
    source = make(bsky, store, sleep=sleeps)
    run = Running(source)
    await run.posts_with(2)
    assert source.health.state == "ok" and up(source) == 1
    await run.stop()
    assert states == [("error", 0), ("error", 0), ("error", 0)]
    d = sleeps.delays
    assert len(d) == 3
    assert 0.5 <= d[0] <= 1 and 1 <= d[1] <= 2 and 0.5 <= d[2] <= 1  # reset after data
    assert "503" not in (source.health.last_error or "503")  # last error: the server close


async def test_cancel_closes_the_socket_and_saves_the_cursor(bsky: FakeBluesky,
                                                             store: SqliteStore) -> None:
    bsky.conns = [Conn([post_msg(FAN, "a", "acme", T0)])]
    run = Running(make(bsky, store, cursor_every=timedelta(hours=1)))
    await run.posts_with(1)
    await run.until(lambda: run.source.cursor == T0)
    assert not bsky.left.is_set()
    await run.stop()
    await asyncio.wait_for(bsky.left.wait(), 5)
    assert (saved(store) or {}).get("time_us") == T0


async def test_injected_session_is_used_and_left_open(bsky: FakeBluesky,
                                                      store: SqliteStore) -> None:
    bsky.conns = [Conn([post_msg(FAN, "a", "acme", T0)])]
    async with aiohttp.ClientSession() as session:
        run = Running(make(bsky, store, session=session))
        await run.posts_with(1)
        await run.stop()
        assert not session.closed


async def test_catching_up_while_replaying_old_events(bsky: FakeBluesky,
                                                      store: SqliteStore) -> None:
    seen = datetime.fromtimestamp(T0 / SEC, UTC)
    clock = ManualClock(seen + timedelta(hours=1))
    bsky.conns = [Conn([post_msg(FAN, "old", "acme", T0)])]
    run = Running(make(bsky, store, clock=clock))
    await run.posts_with(1)
    await run.until(lambda: run.source.cursor == T0)
    assert run.source.catching_up
    await run.stop()


# profiles ---------------------------------------------------------------------------------
async def test_fetch_profiles_adds_followers_with_cache(bsky: FakeBluesky,
                                                        store: SqliteStore) -> None:
    bsky.profiles = {FAN: {"did": FAN, "handle": "fan.bsky.social", "followersCount": 12345}}
    bsky.conns = [Conn([post_msg(FAN, "a", "acme", T0), post_msg(OTHER, "b", "acme", T0 + 1),
                        post_msg(FAN, "c", "acme", T0 + 2), post_msg(OTHER, "d", "acme", T0 + 3),
                        post_msg(FAN, "e", "no match", T0 + 4)])]
    run = Running(make(bsky, store, fetch_profiles=True))
    posts = await run.posts_with(4)
    await run.stop()
    assert [(p.author.handle, p.author.followers) for p in posts] == [
        ("fan.bsky.social", 12345), (OTHER, None), ("fan.bsky.social", 12345), (OTHER, None)]
    assert bsky.profile_requests == [[FAN], [OTHER]]  # cached, unknown accounts too


async def test_profile_failures_do_not_block_posts_and_cool_down(bsky: FakeBluesky,
                                                                 store: SqliteStore) -> None:
    bsky.profile_status = 500
    bsky.conns = [Conn([post_msg(FAN, "a", "acme", T0), post_msg(OTHER, "b", "acme", T0 + 1)])]
    run = Running(make(bsky, store, fetch_profiles=True, monotonic=lambda: 50.0))
    posts = await run.posts_with(2)
    await run.stop()
    assert [p.author.followers for p in posts] == [None, None]
    assert bsky.profile_requests == [[FAN]]  # the second lookup waits out the cool-down


async def test_rate_limit_token_bucket() -> None:
    now = [0.0]
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)
        now[0] += delay

    limit = RateLimit(2.0, 2.0, lambda: now[0], sleep)
    for _ in range(4):
        await limit.acquire()
    assert delays == [0.5, 0.5]


# options and wire helpers ------------------------------------------------------------------
def test_options_from_yaml() -> None:
    opts = build(BlueskyOptions, {"brand_dids": ["did:plc:abc"], "cursor_rewind": "10s",
                                  "fetch_profiles": True}, Context("config.yaml"))
    assert opts.jetstream == "wss://jetstream2.us-east.bsky.network/subscribe"
    assert opts.collections == (POST,) and opts.cursor_rewind == timedelta(seconds=10)
    assert opts.appview == "https://public.api.bsky.app"
    with pytest.raises(ConfigError) as err:
        build(BlueskyOptions, {"brand_dids": ["acme"], "jetstream": "https://x",
                               "collections": ["app.bsky.feed.like"]}, Context("config.yaml"))
    text = str(err.value)
    assert "brand_dids[0]" in text and "jetstream" in text and "collections" in text


def test_subscribe_url_and_event_parsing() -> None:
    url = subscribe_url("wss://js.example/subscribe", (POST, "app.bsky.feed.like"), 42)
    assert url == ("wss://js.example/subscribe?wantedCollections=app.bsky.feed.post"
                   "&wantedCollections=app.bsky.feed.like&cursor=42")
    assert "cursor" not in subscribe_url("wss://js.example/subscribe", (POST,), None)
    ident = parse_event(identity_msg(FAN, "handle.invalid", T0))
    assert getattr(ident, "handle", "x") is None
    with pytest.raises(WireError):
        parse_event(json.dumps({"did": FAN, "time_us": True, "kind": "commit"}))


def test_post_record_parts_and_times() -> None:
    record = parse_post({"text": "x", "embed": {
        "$type": "app.bsky.embed.recordWithMedia",
        "record": {"record": {"uri": f"at://{BRAND}/{POST}/q", "cid": "c"}},
        "media": {"$type": "app.bsky.embed.external",
                  "external": {"uri": "https://acme.example/"}}}})
    assert record.quoted == (BRAND,) and record.lang is None
    external = parse_post({"text": "x", "embed": {"$type": "app.bsky.embed.external",
                                                  "external": {"uri": "https://acme.example/"}}})
    assert external.links == ("https://acme.example/",)
    assert Classifier((ACME,), {}).classify(FAN, external) == ("mention", "Acme")
    seen = datetime.fromtimestamp(T0 / SEC, UTC)
    assert created_time("2030-01-01T00:00:00Z", T0) == seen  # never in the future
    assert created_time("not a date", T0) == seen
    assert created_time(None, T0) == seen


def test_bounded_caches() -> None:
    lru: LRU[str, int] = LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1
    lru.put("c", 3)  # evicts b, the least recently used
    assert (lru.get("b"), lru.get("a"), len(lru)) == (None, 1, 2)
    seen = SeenSet(2)
    assert seen.add("x") and not seen.add("x")
    seen.add("y")
    seen.add("z")
    assert len(seen) == 2 and seen.add("x")



def test_classifier_text_references_links_and_exclusions() -> None:
    def record(text: str, **parts: Any) -> Any:
        return parse_post({"text": text, **parts})

    def link(uri: str) -> list[dict[str, Any]]:
        return [{"features": [{"$type": "app.bsky.richtext.facet#link", "uri": uri}]}]

    reply = {"parent": {"uri": f"at://{BRAND}/{POST}/r0", "cid": "x"}}
    both = Classifier((ACME, GLOBEX), {BRAND: "Acme", OTHER: None})
    # text: the engine's rules (handles with or without @/#, whole words, exclusions)
    assert both.classify(FAN, record("@ACME help")) == ("mention", None)
    assert both.classify(FAN, record("#globex sale")) == ("mention", None)
    assert both.classify(FAN, record("Acme.bsky.social rocks")) == ("mention", None)
    assert both.classify(FAN, record("acmecorp and globexcorp")) is None
    assert both.classify(FAN, record("an acme anvil fell")) is None
    # the brand's own posts, and references to them (unless excluded)
    assert both.classify(BRAND, record("anything")) == ("outbound", "Acme")
    assert both.classify(FAN, record("fixed, thanks", reply=reply)) == ("mention", "Acme")
    assert both.classify(FAN, record("acme anvil again", reply=reply)) is None
    assert both.classify(FAN, record("hi", facets=mention(OTHER))) == ("mention", None)
    # links whose address names a brand
    assert both.classify(FAN, record("look", facets=link("https://shop.globex.com/x"))) \
        == ("mention", "Globex")
    assert both.classify(FAN, record("acme anvil", facets=link("https://acme.example/"))) \
        is None
    assert both.classify(FAN, record("look", facets=link("https://example.com/"))) is None
    pinned = Classifier((ACME,), {BRAND: None}, "Acme")
    assert pinned.classify(FAN, record("acme!")) == ("mention", "Acme")
    assert pinned.classify(BRAND, record("hello")) == ("outbound", "Acme")
