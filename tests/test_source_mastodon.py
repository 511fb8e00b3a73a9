"""The mastodon source against a local Mastodon: streaming WebSocket + REST timelines."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monitor.clock import ManualClock
from monitor.config.schema import BrandConfig, SourceConfig
from monitor.config.strict import Context, build
from monitor.errors import ConfigError
from monitor.metrics import Metrics
from monitor.model import Post
from monitor.sources.base import SourceContext
from monitor.sources.mastodon import MastodonSource
from monitor.sources.mastodon_wire import (
    MastodonOptions,
    Normaliser,
    html_to_text,
    rate_limit_wait,
)
from monitor.store.sqlite import SqliteStore

NOW = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)
DATE = "Tue, 14 May 2024 09:00:00 GMT"  # the fake server's clock
DOMAIN = "mastodon.test"
ACME = BrandConfig(name="Acme Air", handles=("@acmeair",), keywords=("acme air",))
OTHER = BrandConfig(name="Globex", handles=("@globex",), keywords=("globex",))
BASE_ID = 112_400_000_000_000_000
TOKEN = "s3cret-masto-token-abc"


# realistic entities ---------------------------------------------------------------
def account(id_: str, username: str, domain: str | None = None,
            followers: int = 12) -> dict[str, Any]:
    host = domain or DOMAIN
    return {
        "id": id_, "username": username,
        "acct": username if domain is None else f"{username}@{domain}",
        "display_name": username.title(), "locked": False, "bot": False, "discoverable": True,
        "indexable": True, "group": False, "created_at": "2022-11-03T00:00:00.000Z",
        "note": "<p>Just a person.</p>", "url": f"https://{host}/@{username}",
        "uri": f"https://{host}/users/{username}",
        "avatar": f"https://files.{host}/avatars/{id_}.png",
        "avatar_static": f"https://files.{host}/avatars/{id_}.png",
        "header": f"https://{host}/headers/original/missing.png",
        "header_static": f"https://{host}/headers/original/missing.png",
        "followers_count": followers, "following_count": 31, "statuses_count": 402,
        "last_status_at": "2024-05-14", "hide_collections": None, "noindex": False,
        "emojis": [], "roles": [], "fields": [],
    }


ALICE = account("109001", "alice", followers=321)
BOB = account("109002", "bob", "remote.example", followers=5)
BRAND = account("1001", "acmeair", followers=48_200)


def sid(n: int) -> str:
    return str(BASE_ID + n)


def status(n: int, who: dict[str, Any], html: str, *, reblog: dict[str, Any] | None = None,
           lang: str | None = "en", app: str | None = None, edited: bool = False,
           mentions: tuple[dict[str, Any], ...] = (), tags: tuple[str, ...] = (),
           spoiler: str = "") -> dict[str, Any]:
    host = DOMAIN if "@" not in who["acct"] else who["acct"].split("@")[1]
    at = NOW - timedelta(minutes=30) + timedelta(seconds=n)
    return {
        "id": sid(n), "created_at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "in_reply_to_id": None, "in_reply_to_account_id": None, "sensitive": bool(spoiler),
        "spoiler_text": spoiler, "visibility": "public", "language": lang,
        "uri": f"https://{host}/users/{who['username']}/statuses/{sid(n)}"
               + ("/activity" if reblog else ""),
        "url": None if reblog else f"https://{host}/@{who['username']}/{sid(n)}",
        "replies_count": 0, "reblogs_count": 2, "favourites_count": 3, "quotes_count": 0,
        "edited_at": (at + timedelta(minutes=2)).isoformat().replace("+00:00", "Z")
                     if edited else None,
        "favourited": False, "reblogged": False, "muted": False, "bookmarked": False,
        "content": "" if reblog else html, "filtered": [], "reblog": reblog,
        "application": {"name": app, "website": None} if app else None,
        "account": who, "media_attachments": [],
        "mentions": [{"id": m["id"], "username": m["username"], "url": m["url"],
                      "acct": m["acct"]} for m in mentions],
        "tags": [{"name": t, "url": f"https://{DOMAIN}/tags/{t}"} for t in tags],
        "emojis": [], "card": None, "poll": None,
    }


MENTION_HTML = (
    '<p>Flight delayed again <span class="h-card" translate="no"><a href="https://mastodon.test/'
    '@acmeair" class="u-url mention">@<span>acmeair</span></a></span> <a href="https://mastodon.'
    'test/tags/fail" class="mention hashtag" rel="tag">#<span>fail</span></a></p><p>see <a href='
    '"https://status.example.com/incidents/42" target="_blank" rel="nofollow noopener noreferrer'
    '" translate="no"><span class="invisible">https://</span><span class="ellipsis">status.examp'
    'le.com/incident</span><span class="invisible">s/42</span></a> &amp; more<br />bye</p>')
MENTION_TEXT = ("Flight delayed again @acmeair #fail\n\n"
                "see https://status.example.com/incidents/42 & more\nbye")


def plain(n: int, who: dict[str, Any], text: str, **kw: Any) -> dict[str, Any]:
    return status(n, who, f"<p>{text}</p>", **kw)


# the fake instance ------------------------------------------------------------------
class FakeMastodon:
    """Timelines with Mastodon's paging, rate-limit headers, auth, and a streaming server."""

    def __init__(self) -> None:
        self.timelines: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.requests: list[tuple[str, dict[str, str], str | None]] = []
        self.sockets: list[tuple[str, web.WebSocketResponse]] = []
        self.connected: asyncio.Queue[str] = asyncio.Queue()
        self.closed: asyncio.Queue[str] = asyncio.Queue()
        self.ws_status: int | None = None  # refuse the handshake with this status
        self.token: str | None = None  # when set, requests must carry it
        self.script: list[tuple[int, dict[str, str]]] = []  # next REST timeline responses
        self.remaining = 299
        self.url = ""
        self.tasks: list[asyncio.Task[None]] = []  # sources to stop before shutting down
        app = web.Application()
        r = app.router
        r.add_get("/api/v2/instance", self.instance)
        r.add_get("/streaming-host/api/v1/streaming", self.streaming)
        r.add_get("/api/v1/timelines/public", self.timeline("public"))
        r.add_get("/api/v1/timelines/tag/{tag}", self.timeline("tag"))
        r.add_get("/api/v1/timelines/home", self.timeline("home", auth=True))
        r.add_get("/api/v1/notifications", self.timeline("notifications", auth=True))
        r.add_get("/api/v1/accounts/lookup", self.lookup)
        r.add_get("/api/v1/accounts/{id}/statuses", self.timeline("account"))
        self.app = app

    def headers(self) -> dict[str, str]:
        return {"Date": DATE, "X-RateLimit-Limit": "300",
                "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": "2024-05-14T09:05:00.000Z"}

    def log(self, request: web.Request) -> None:
        self.requests.append((request.path, dict(request.query),
                              request.headers.get("Authorization")))

    def auth_error(self, request: web.Request, required: bool) -> web.Response | None:
        given = request.headers.get("Authorization")
        if given is None and not required:
            return None
        if self.token is None or given != f"Bearer {self.token}":
            message = ("The access token is invalid" if given else
                       "This method requires an authenticated user")
            return web.json_response({"error": message}, status=401, headers=self.headers())
        return None

    async def instance(self, request: web.Request) -> web.Response:
        self.log(request)
        return web.json_response({
            "domain": DOMAIN, "title": "Mastodon Test", "version": "4.2.8",
            "source_url": "https://github.com/mastodon/mastodon",
            "configuration": {"urls": {"streaming": f"{self.url}/streaming-host"},
                              "statuses": {"max_characters": 500}}}, headers=self.headers())

    async def lookup(self, request: web.Request) -> web.Response:
        self.log(request)
        acct = request.query.get("acct", "").lower()
        if acct in ("acmeair", f"acmeair@{DOMAIN}"):
            return web.json_response(BRAND, headers=self.headers())
        return web.json_response({"error": "Record not found"}, status=404)

    def timeline(self, kind: str, *, auth: bool = False) -> Callable[..., Any]:
        async def handler(request: web.Request) -> web.Response:
            self.log(request)
            if (refused := self.auth_error(request, auth)) is not None:
                return refused
            if self.script and kind != "account":
                code, extra = self.script.pop(0)
                if code != 200:
                    return web.json_response({"error": "Too many requests"}, status=code,
                                             headers={**self.headers(), **extra})
                headers = {**self.headers(), **extra}
            else:
                headers = self.headers()
            name = {"tag": f"tag:{request.match_info.get('tag', '').lower()}",
                    "account": f"account:{request.match_info.get('id')}"}.get(kind, kind)
            if kind == "public" and request.query.get("local") == "true":
                name = "public:local"
            return web.json_response(self.page(self.timelines[name], request.query),
                                     headers=headers)
        return handler

    @staticmethod
    def page(items: list[dict[str, Any]], query: Any) -> list[dict[str, Any]]:
        """Mastodon's paging: newest first; min_id gives the items just after it."""
        limit = min(int(query.get("limit", 20)), 40)
        ordered = sorted(items, key=lambda s: int(s["id"]))
        if "min_id" in query:
            after = [s for s in ordered if int(s["id"]) > int(query["min_id"])][:limit]
            return after[::-1]
        since = int(query.get("since_id", 0))
        return [s for s in ordered if int(s["id"]) > since][::-1][:limit]

    async def streaming(self, request: web.Request) -> web.StreamResponse:
        self.log(request)
        if self.ws_status is not None:
            return web.json_response({"error": "nope"}, status=self.ws_status)
        stream = request.query.get("stream", "")
        if (refused := self.auth_error(request, stream == "user")) is not None:
            return refused
        key = f"hashtag:{request.query['tag'].lower()}" if stream == "hashtag" else stream
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        entry = (key, ws)
        self.sockets.append(entry)
        self.connected.put_nowait(key)
        async for _ in ws:
            pass
        self.sockets.remove(entry)
        self.closed.put_nowait(key)
        return ws

    async def send(self, key: str, frame: str) -> None:
        for stream, ws in list(self.sockets):
            if stream == key:
                await ws.send_str(frame)

    async def push(self, key: str, item: dict[str, Any], event: str = "update") -> None:
        names = key.split(":", 1) if key.startswith("hashtag:") else [key]
        await self.send(key, json.dumps({"stream": names, "event": event,
                                         "payload": json.dumps(item)}))

    async def drop(self, key: str) -> None:
        for stream, ws in list(self.sockets):
            if stream == key:
                await ws.close()


@pytest.fixture
async def server() -> AsyncIterator[FakeMastodon]:
    fake = FakeMastodon()
    runner = web.AppRunner(fake.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    for task in fake.tasks:  # a failed test must not leave its source running
        task.cancel()
    await asyncio.gather(*fake.tasks, return_exceptions=True)
    await runner.cleanup()


class Harness:
    """A source wired to the fake server, with recorded sleeps and emitted posts."""

    def __init__(self, server: FakeMastodon, store: SqliteStore, *, brand: str | None = None,
                 session: aiohttp.ClientSession | None = None, block_over: float | None = None,
                 **options: Any) -> None:
        self.block_over = block_over  # sleeps longer than this never end
        self.sleeps: list[float] = []
        self.posts: list[Post] = []
        self.catching_up: list[bool] = []  # the source's flag as each post was emitted
        opts = MastodonOptions(instance=server.url, **options)
        config = SourceConfig(name="masto", type="mastodon", brand=brand, options=opts)
        self.metrics = Metrics()
        ctx = SourceContext(clock=ManualClock(NOW), store=store, metrics=self.metrics,
                            brands=(ACME, OTHER))
        self.source = MastodonSource(config, ctx, session=session, sleep=self.sleep,
                                     rng=random.Random(3))
        self.task: asyncio.Task[None] | None = None
        self.server = server

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        if self.block_over is not None and delay > self.block_over:
            await asyncio.Event().wait()
        await asyncio.sleep(0.01)  # let the loop run; never the real delay

    async def emit(self, post: Post) -> None:
        self.posts.append(post)
        self.catching_up.append(self.source.catching_up)

    def start(self) -> Harness:
        self.task = asyncio.create_task(self.source.run(self.emit))
        self.server.tasks.append(self.task)
        return self

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task

    def ids(self) -> list[str]:
        return [p.id for p in self.posts]


async def until(cond: Callable[[], bool], what: str = "condition") -> None:
    for _ in range(500):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def next_connect(server: FakeMastodon) -> str:
    return await asyncio.wait_for(server.connected.get(), 5)


def uri(n: int, who: dict[str, Any] = ALICE) -> str:
    host = DOMAIN if "@" not in who["acct"] else who["acct"].split("@")[1]
    return f"https://{host}/users/{who['username']}/statuses/{sid(n)}"


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "state.db")


# tests --------------------------------------------------------------------------------
async def test_stream_updates_emitted_and_public_stream_filtered(
        server: FakeMastodon, store: SqliteStore) -> None:
    server.token = TOKEN
    server.timelines["tag:acmeair"].append(plain(1, BOB, "#AcmeAir lounge was nice"))
    h = Harness(server, store, access_token=TOKEN, streams=("public",),
                hashtags=("#AcmeAir",)).start()
    assert {await next_connect(server), await next_connect(server)} == {"public",
                                                                        "hashtag:acmeair"}
    await until(lambda: len(h.posts) == 1, "the latest tag page")
    mention = status(2, ALICE, MENTION_HTML, app="Tusky", mentions=(BRAND,), tags=("fail",))
    await server.push("public", plain(3, BOB, "Lovely weather today"))
    await server.push("public", mention)
    await server.push("hashtag:acmeair", mention)  # the same status on two streams
    await server.push("hashtag:acmeair", plain(4, BOB, "#AcmeAir any wifi on board?"))
    await server.push("public", plain(5, BOB, "what about Globex lately"))  # sentinel
    await until(lambda: len(h.posts) == 4, "stream posts")
    await h.stop()

    assert h.ids()[0] == uri(1, BOB)  # two sockets: no order between them
    assert sorted(h.ids()[1:]) == sorted([uri(2), uri(4, BOB), uri(5, BOB)])
    post = next(p for p in h.posts if p.id == uri(2))
    assert post.source == "masto" and post.kind == "mention" and post.brand is None
    assert post.text == MENTION_TEXT
    assert post.author.id == "109001" and post.author.handle == f"alice@{DOMAIN}"
    assert post.author.followers == 321
    assert post.created_at == NOW - timedelta(minutes=30) + timedelta(seconds=2)
    assert post.url == f"https://{DOMAIN}/@alice/{sid(2)}"
    assert (post.lang, post.client) == ("en", "Tusky")
    assert h.posts[0].author.handle == "bob@remote.example"
    sockets = [r for r in server.requests if r[0].endswith("/streaming")]
    assert sorted(tuple(sorted(q.items())) for _, q, _ in sockets) == [
        (("stream", "hashtag"), ("tag", "AcmeAir")), (("stream", "public"),)]
    assert all(a == f"Bearer {TOKEN}" for _, _, a in sockets)
    assert h.source.health.state == "ok" and h.source.health.posts == 4
    assert h.source.modes == {"public": "streaming", "hashtag:AcmeAir": "streaming"}


async def test_brand_account_statuses_are_outbound(server: FakeMastodon,
                                                   store: SqliteStore) -> None:
    server.timelines["account:1001"] += [
        plain(1, BRAND, "Spring sale: https://acme.example/sale"),
        status(2, BRAND, "", reblog=plain(0, BOB, "damn good crew on AcmeAir")),
    ]
    h = Harness(server, store, streams=("public",), account=f"acmeair@{DOMAIN}").start()
    await next_connect(server)
    await until(lambda: len(h.posts) == 2, "the account's latest statuses")
    lookups = [q for p, q, _ in server.requests if p == "/api/v1/accounts/lookup"]
    assert lookups == [{"acct": f"acmeair@{DOMAIN}"}]
    first = next(q for p, q, _ in server.requests if p == "/api/v1/accounts/1001/statuses")
    assert first == {"exclude_replies": "false", "limit": "40"}
    own, boost = h.posts
    assert (own.kind, own.brand, own.author.handle) == ("outbound", "Acme Air",
                                                        f"acmeair@{DOMAIN}")
    assert own.text == "Spring sale: https://acme.example/sale" and own.id == uri(1, BRAND)
    # a boost by the brand: the boosted words, authored by the brand, under the boost's id
    assert (boost.kind, boost.author.handle) == ("outbound", f"acmeair@{DOMAIN}")
    assert boost.text == "damn good crew on AcmeAir" and boost.id == uri(2, BRAND) + "/activity"
    assert boost.url == f"https://remote.example/@bob/{sid(0)}"

    # the brand's status on the public stream, then an edit of it: outbound (edit id)
    live = plain(3, BRAND, "We are back on schedule")
    await server.push("public", live)
    edited = plain(3, BRAND, "We are back on schedule. Sorry!", edited=True)
    await server.push("public", edited, event="status.update")
    await server.push("public", plain(4, ALICE, "acmeair you too", edited=True),
                      event="status.update")  # an edited mention: not counted again
    await server.push("public", plain(5, ALICE, "thanks acmeair"))  # sentinel
    await until(lambda: len(h.posts) == 5, "stream statuses")
    assert [p.kind for p in h.posts[2:]] == ["outbound", "outbound", "mention"]
    edit_at = NOW - timedelta(minutes=30) + timedelta(seconds=3, minutes=2)
    assert h.posts[3].id == f"{uri(3, BRAND)}:edit:{int(edit_at.timestamp())}"
    assert h.posts[3].text == "We are back on schedule. Sorry!"
    assert h.posts[3].created_at == edit_at

    # the account poll later returns the status already seen live, and a new one
    server.timelines["account:1001"] += [live, plain(6, BRAND, "Boarding now")]
    await until(lambda: len(h.posts) == 6, "the next account poll")
    await h.stop()
    assert h.posts[5].id == uri(6, BRAND) and h.posts[5].kind == "outbound"
    assert len(set(h.ids())) == len(h.ids())


async def test_disconnect_fills_gap_over_rest_then_reconnects(server: FakeMastodon,
                                                              store: SqliteStore) -> None:
    h = Harness(server, store, hashtags=("acmeair",)).start()
    await next_connect(server)
    first = plain(1, ALICE, "#acmeair boarding")
    server.timelines["tag:acmeair"].append(first)
    await server.push("hashtag:acmeair", first)
    await until(lambda: len(h.posts) == 1)
    gap = [plain(n, BOB, f"#acmeair gap {n}") for n in range(2, 47)]  # 45: more than a page
    server.timelines["tag:acmeair"] += gap
    mark = len(server.requests)
    await server.drop("hashtag:acmeair")
    assert await next_connect(server) == "hashtag:acmeair"
    await until(lambda: len(h.posts) == 46, "the gap")
    await server.push("hashtag:acmeair", plain(47, ALICE, "#acmeair after reconnect"))
    await until(lambda: len(h.posts) == 47, "the live post after reconnecting")
    await h.stop()

    assert h.ids() == [uri(n, ALICE if n in (1, 47) else BOB) for n in range(1, 48)]
    after = [(p.rsplit("/", 1)[-1], q.get("min_id")) for p, q, _ in server.requests[mark:]]
    # gap read oldest first right after the drop, then reconnect, then a (now empty) re-check
    assert after[:4] == [("acmeair", sid(1)), ("acmeair", sid(41)), ("streaming", None),
                         ("acmeair", sid(46))]
    assert len(h.sleeps) == 1 and 0.5 <= h.sleeps[0] <= 1.0  # one jittered backoff
    # a gap of more than a page is history: the daemon is told so while it is read
    assert h.catching_up == [False] + [True] * 45 + [False] and not h.source.catching_up
    assert h.source.health.state == "ok"


async def test_malformed_frames_and_items_counted_and_skipped(server: FakeMastodon,
                                                              store: SqliteStore) -> None:
    broken = plain(1, ALICE, "#acmeair x")
    del broken["account"]
    server.timelines["tag:acmeair"].append(broken)
    h = Harness(server, store, hashtags=("acmeair",)).start()
    await next_connect(server)
    await until(lambda: h.source.health.malformed == 1, "the broken REST item")
    no_content = plain(2, ALICE, "#acmeair y")
    del no_content["content"]
    for frame in (
        "{not json",
        json.dumps({"stream": ["hashtag", "acmeair"], "event": "update", "payload": "{bad"}),
        json.dumps({"stream": ["hashtag", "acmeair"], "event": "update"}),
        json.dumps({"stream": ["hashtag", "acmeair"], "event": "update",
                    "payload": json.dumps(no_content)}),
        json.dumps({"stream": ["hashtag", "acmeair"], "event": "update",
                    "payload": json.dumps({**plain(3, ALICE, "x"), "created_at": "soon"})}),
        json.dumps({"stream": ["hashtag", "acmeair"], "event": "delete", "payload": sid(2)}),
        json.dumps({"stream": ["hashtag", "acmeair"], "event": "filters_changed"}),
    ):
        await server.send("hashtag:acmeair", frame)
    await server.push("hashtag:acmeair", plain(4, ALICE, "#acmeair fine"))
    await until(lambda: len(h.posts) == 1)
    await h.stop()
    assert h.ids() == [uri(4)]
    assert h.source.health.malformed == 6
    value = h.metrics.registry.get_sample_value("brandmon_posts_malformed_total",
                                                {"source": "masto"})
    assert value == 6
    assert h.source.health.state == "ok"  # a bad payload is not an outage


async def test_rate_limit_429_and_exhausted_window_wait_for_reset(
        server: FakeMastodon, store: SqliteStore) -> None:
    server.timelines["tag:acmeair"].append(plain(1, ALICE, "#acmeair one"))
    server.script = [(429, {"X-RateLimit-Remaining": "0",
                            "X-RateLimit-Reset": "2024-05-14T09:00:30.000Z"}),
                     (200, {"X-RateLimit-Remaining": "0",
                            "X-RateLimit-Reset": "2024-05-14T09:02:00.000Z"})]
    h = Harness(server, store, hashtags=("acmeair",), use_streaming=False).start()
    def polls() -> list[dict[str, str]]:
        return [q for p, q, _ in server.requests if p.startswith("/api/v1/timelines/tag/")]

    await until(lambda: len(h.posts) == 1)
    await until(lambda: len(polls()) >= 3, "the poll after the spent window")
    await h.stop()
    # 30 s until the 429's reset (by the server's Date), then the poll interval, then the
    # 120 s left in the window the 200 reported as spent
    assert 29.5 <= h.sleeps[0] <= 30.0
    assert h.sleeps[1] == 60.0
    assert 119.5 <= h.sleeps[2] <= 120.0
    assert polls()[:3] == [{"limit": "40"}, {"limit": "40"}, {"limit": "40", "min_id": sid(1)}]
    assert h.source.health.state == "ok"


async def test_invalid_token_reported_in_health_without_leaking_it(
        server: FakeMastodon, store: SqliteStore, caplog: pytest.LogCaptureFixture) -> None:
    server.token = "the-right-token"
    caplog.set_level(logging.DEBUG)
    h = Harness(server, store, access_token=TOKEN, hashtags=("acmeair",)).start()
    await until(lambda: sum(p.endswith("/tag/acmeair") for p, _, _ in server.requests) >= 3,
                "repeated polls")
    await h.stop()
    health = h.source.health.to_json()
    assert health["state"] == "error"
    assert "HTTP 401" in health["last_error"] and "access token is invalid" in \
        health["last_error"]
    assert h.metrics.registry.get_sample_value("brandmon_source_up", {"source": "masto"}) == 0
    assert h.source.modes == {"hashtag:acmeair": "polling"}
    # a refused stream is not hammered: one handshake, then REST with backoff
    assert sum(p.endswith("/streaming") for p, _, _ in server.requests) == 1
    assert TOKEN not in caplog.text and "HTTP 401" in caplog.text


async def test_streaming_unavailable_falls_back_to_polling(server: FakeMastodon,
                                                          store: SqliteStore) -> None:
    server.ws_status = 404
    server.timelines["tag:acmeair"].append(plain(1, ALICE, "#acmeair one"))
    h = Harness(server, store, hashtags=("acmeair",), poll_interval=timedelta(seconds=20)).start()
    await until(lambda: len(h.posts) == 1)
    server.timelines["tag:acmeair"].append(plain(2, ALICE, "#acmeair two"))
    await until(lambda: len(h.posts) == 2, "the next poll")
    await h.stop()
    assert h.ids() == [uri(1), uri(2)]
    assert sum(p.endswith("/streaming") for p, _, _ in server.requests) == 1
    health = h.source.health
    assert health.state == "ok" and h.source.modes == {"hashtag:acmeair": "polling"}
    assert health.last_error is not None and "polling every 20s" in health.last_error
    assert "HTTP 404" in health.last_error
    assert 20.0 in h.sleeps


async def test_repeated_stream_failures_fall_back_after_the_limit(
        server: FakeMastodon, store: SqliteStore) -> None:
    server.ws_status = 502  # a proxy in trouble: transient, retried with backoff
    h = Harness(server, store, hashtags=("acmeair",), stream_failures=3).start()
    await until(lambda: h.source.modes.get("hashtag:acmeair") == "polling", "the fallback")
    await h.stop()
    assert sum(p.endswith("/streaming") for p, _, _ in server.requests) == 3
    assert h.sleeps[0] <= 1.0 and 1.0 <= h.sleeps[1] <= 2.0  # jittered, growing
    assert "502" in (h.source.health.last_error or "")


async def test_unknown_account_keeps_the_source_in_error(server: FakeMastodon,
                                                        store: SqliteStore) -> None:
    h = Harness(server, store, hashtags=("acmeair",), account="nobody@elsewhere.example",
                block_over=1.0).start()  # the lookup is tried once, then waits
    await next_connect(server)
    await until(lambda: bool(h.sleeps), "the failed lookup")
    await server.push("hashtag:acmeair", plain(1, ALICE, "#acmeair ok"))
    await until(lambda: len(h.posts) == 1)
    # the working stream does not hide the broken part
    assert h.source.health.state == "error"
    assert "account: nobody@elsewhere.example: lookup failed: HTTP 404" in (
        h.source.health.last_error or "")
    assert h.metrics.registry.get_sample_value("brandmon_source_up", {"source": "masto"}) == 0
    assert len(h.sleeps) == 1 and 2.5 <= h.sleeps[0] <= 5.0  # the lookup's own backoff
    await h.stop()


async def test_cursor_survives_restart_without_repeats(server: FakeMastodon,
                                                       store: SqliteStore) -> None:
    one, two = plain(1, ALICE, "#acmeair one"), plain(2, ALICE, "#acmeair two")
    h = Harness(server, store, hashtags=("acmeair",)).start()
    await next_connect(server)
    for item in (one, two):
        server.timelines["tag:acmeair"].append(item)
        await server.push("hashtag:acmeair", item)
    await until(lambda: len(h.posts) == 2)
    await h.stop()
    saved = json.loads(store.get_cursor("mastodon:masto") or "{}")
    assert saved == {"instance": server.url, "since": {"hashtag:acmeair": sid(2)}}

    server.timelines["tag:acmeair"].append(plain(3, BOB, "#acmeair while down"))
    mark = len(server.requests)
    again = Harness(server, store, hashtags=("acmeair",)).start()
    await next_connect(server)
    await until(lambda: len(again.posts) == 1, "the status posted while down")
    await server.push("hashtag:acmeair", plain(4, ALICE, "#acmeair live"))
    await until(lambda: len(again.posts) == 2)
    await again.stop()
    assert again.ids() == [uri(3, BOB), uri(4)]
    fills = [q for p, q, _ in server.requests[mark:] if p.endswith("/tag/acmeair")]
    assert fills[0] == {"limit": "40", "min_id": sid(2)}


async def test_user_stream_mentions_from_notifications(server: FakeMastodon,
                                                       store: SqliteStore) -> None:
    server.token = TOKEN
    h = Harness(server, store, access_token=TOKEN, streams=("user",)).start()
    await next_connect(server)
    await until(lambda: any(p == "/api/v1/notifications" for p, _, _ in server.requests))
    note = {"id": "3301", "type": "mention", "created_at": "2024-05-14T08:59:00.000Z",
            "account": BOB, "status": plain(1, BOB, "@acmeair where is my bag")}
    fav = {**note, "id": "3302", "type": "favourite", "status": plain(2, BOB, "fav")}
    await server.push("user", fav, event="notification")
    await server.push("user", note, event="notification")
    await server.push("user", plain(3, ALICE, "home timeline post"))
    await until(lambda: len(h.posts) == 2)
    await h.stop()
    assert h.ids() == [uri(1, BOB), uri(3)]
    query = next(q for p, q, _ in server.requests if p == "/api/v1/notifications")
    assert query == {"types[]": "mention", "limit": "40"}
    saved = json.loads(store.get_cursor("mastodon:masto") or "{}")
    assert saved["since"] == {"user": sid(3), "user:mentions": "3301"}


async def test_cancel_closes_socket_and_owned_session(server: FakeMastodon, store: SqliteStore,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    sessions: list[aiohttp.ClientSession] = []
    real = aiohttp.ClientSession

    def recording(*args: Any, **kwargs: Any) -> aiohttp.ClientSession:
        session = real(*args, **kwargs)
        sessions.append(session)
        return session

    monkeypatch.setattr(aiohttp, "ClientSession", recording)  # as the source sees it
    h = Harness(server, store, hashtags=("acmeair",), account="acmeair").start()
    await next_connect(server)
    await until(lambda: "account" in h.source.modes)
    await h.stop()
    assert await asyncio.wait_for(server.closed.get(), 5) == "hashtag:acmeair"
    assert len(sessions) == 1 and sessions[0].closed

    async with real() as mine:  # an injected session is the caller's to close
        h2 = Harness(server, store, hashtags=("acmeair",), session=mine).start()
        await next_connect(server)
        await h2.stop()
        assert not mine.closed
        assert await asyncio.wait_for(server.closed.get(), 5) == "hashtag:acmeair"


# units ------------------------------------------------------------------------------
def test_html_to_text_keeps_mentions_hashtags_and_whole_links() -> None:
    assert html_to_text(MENTION_HTML) == MENTION_TEXT
    assert html_to_text("<p>a</p><p></p><p>b &lt;3</p>") == "a\n\nb <3"


def test_reblogs_and_ids_in_mention_feeds() -> None:
    norm = Normaliser("m", DOMAIN, frozenset({f"acmeair@{DOMAIN}"}), "Acme Air")
    original = plain(1, BOB, "acmeair lost my bag", spoiler="travel rant")
    boost = status(2, ALICE, "", reblog=original)
    post = norm.post(boost)
    assert post is not None and post.id == uri(1, BOB)  # collapses onto the original
    assert post.author.handle == "bob@remote.example" and post.kind == "mention"
    assert post.text == "travel rant\n\nacmeair lost my bag"
    odd = {**plain(3, ALICE, "x"), "uri": "https://odd.example/notes?id=9#frag"}
    post = norm.post(odd)
    assert post is not None and post.id == f"{DOMAIN}:{sid(3)}"
    assert norm.post(plain(4, ALICE, "x", edited=True), edit=True) is None
    brand_boost_of_brand = norm.post(status(5, ALICE, "", reblog=plain(6, BRAND, "hi")))
    assert brand_boost_of_brand is not None and brand_boost_of_brand.kind == "outbound"
    assert brand_boost_of_brand.brand == "Acme Air"


def test_rate_limit_wait_uses_server_date_and_retry_after() -> None:
    reset = {"Date": DATE, "X-RateLimit-Remaining": "0",
             "X-RateLimit-Reset": "2024-05-14T09:00:45.000Z"}
    skewed_now = NOW + timedelta(hours=1)  # our clock is off; the server's Date is not
    assert rate_limit_wait(200, reset, skewed_now) == 45.0
    assert rate_limit_wait(200, {**reset, "X-RateLimit-Remaining": "12"}, NOW) is None
    assert rate_limit_wait(429, {"Retry-After": "7"}, NOW) == 7.0
    assert rate_limit_wait(429, {}, NOW) == 60.0
    far = {**reset, "X-RateLimit-Reset": "2024-05-15T09:00:00.000Z"}
    assert rate_limit_wait(429, far, NOW) == 900.0


def test_options_from_yaml_refuse_literal_tokens_and_bad_streams() -> None:
    def options(data: dict[str, Any]) -> MastodonOptions:
        return build(MastodonOptions, data, Context("config.yaml", {"MASTO_TOKEN": TOKEN}))

    ok = options({"instance": "https://mastodon.social", "access_token": "${MASTO_TOKEN}",
                  "streams": ["user", "hashtag:acmeair"], "poll_interval": "2m"})
    assert ok.access_token == TOKEN and ok.poll_interval == timedelta(minutes=2)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"instance": "https://m.example", "access_token": "literal", "hashtags": ["a"]},
         "secrets must not be written in files"),
        ({"instance": "https://m.example", "streams": ["firehose"]}, "unknown stream"),
        ({"instance": "https://m.example", "streams": ["user"]}, "needs an access_token"),
        ({"instance": "https://m.example"}, "nothing to follow"),
        ({"instance": "m.example", "hashtags": ["a"]}, "http(s) URL"),
    ]
    for data, message in cases:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            options(data)
