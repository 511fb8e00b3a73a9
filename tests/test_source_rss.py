"""The RSS / Atom source against a local aiohttp server (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor import __version__
from monitor.clock import ManualClock
from monitor.config.schema import BrandConfig, SourceConfig
from monitor.config.strict import Context, build
from monitor.errors import ConfigError
from monitor.metrics import Metrics
from monitor.model import Post
from monitor.sources import rss
from monitor.sources.base import SOURCES, SourceContext
from monitor.sources.feedparse import FeedError, parse_date, parse_feed, strip_html
from monitor.sources.rss import (
    DEFAULT_USER_AGENT,
    FeedOptions,
    RssOptions,
    RssSource,
    post_id,
    retry_after,
)
from monitor.store.sqlite import SqliteStore

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
ACME = BrandConfig(name="Acme", handles=("@acme",), keywords=("Acme",))

RSS2 = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel>
  <title>Gadget Reviews</title>
  <link>https://reviews.example/</link>
  <language>en-US</language>
  <item>
    <title>Acme Rocket 3 review: fast &amp;amp; loud</title>
    <link>https://reviews.example/acme-rocket-3</link>
    <guid isPermaLink="false">rev-1001</guid>
    <dc:creator>Jane Critic</dc:creator>
    <pubDate>Tue, 14 May 2024 09:03:17 +0200</pubDate>
    <description><![CDATA[<p>The <b>Acme</b> Rocket is fast.</p><script>track("x")</script>
      <p>Battery &amp; charger: meh&nbsp;!</p>]]></description>
  </item>
  <item>
    <title>Second review</title>
    <link>/second</link>
    <author>bob@reviews.example (Bob Tester)</author>
    <pubDate>Wed, 15 May 2024 10:00:00 GMT</pubDate>
    <description>Plain text &lt;i&gt;escaped&lt;/i&gt; markup</description>
  </item>
</channel>
</rss>
"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="fr">
  <title>Acme Blog</title>
  <author><name>Acme Team</name></author>
  <entry>
    <id>tag:acme.example,2024:post-7</id>
    <title type="html">&lt;em&gt;Launch&lt;/em&gt; day</title>
    <link rel="alternate" href="https://acme.example/blog/launch"/>
    <link rel="edit" href="https://acme.example/edit/7"/>
    <published>2024-05-16T08:00:00Z</published>
    <updated>2024-05-16T09:00:00Z</updated>
    <content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>We shipped
      <b>Rocket 4</b>.</p><p>Read more.</p></div></content>
  </entry>
  <entry>
    <id>tag:acme.example,2024:post-8</id>
    <title>Updated only</title>
    <author><name>Wile E.</name></author>
    <updated>2024-05-17T08:00:00+02:00</updated>
    <summary>Short &amp; sweet</summary>
  </entry>
</feed>
"""

RDF = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
         xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel rdf:about="http://news.example/">
    <title>News RDF</title>
    <dc:language>de</dc:language>
  </channel>
  <item rdf:about="http://news.example/1">
    <title>Acme recall</title>
    <link>http://news.example/1</link>
    <description>Acme recalls &lt;b&gt;toasters&lt;/b&gt;</description>
    <dc:date>2024-05-18T07:30:00Z</dc:date>
  </item>
</rdf:RDF>
"""

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<rss version="2.0"><channel><title>&lol4;</title>
<item><title>&lol4;</title><link>http://x.example/1</link></item></channel></rss>
"""


def rss_items(*items: tuple[str, str]) -> bytes:
    """An RSS 2.0 document with (guid, pubDate) items."""
    body = "".join(f"<item><title>Item {g}</title><guid>{g}</guid><pubDate>{d}</pubDate></item>"
                   for g, d in items)
    return f'<rss version="2.0"><channel><title>T</title>{body}</channel></rss>'.encode()


# harness ------------------------------------------------------------------------
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FeedServer:
    """Serves named feeds; records every request's headers and the status sent."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.headers: dict[str, list[dict[str, str]]] = {}
        self.statuses: dict[str, list[int]] = {}
        app = web.Application()
        app.router.add_get("/{name}", self._handle)
        self.server = TestServer(app, host="127.0.0.1")

    def url(self, name: str) -> str:
        return str(self.server.make_url(f"/{name}"))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.headers.setdefault(name, []).append(dict(request.headers))
        response = await self.handlers[name](request)
        self.statuses.setdefault(name, []).append(response.status)
        return response

    def serve(self, name: str, body: bytes, *, etag: str | None = None,
              modified: str | None = None, honour: bool = True) -> None:
        """Serve ``body``; with ``honour`` answer 304 when the validators match."""

        async def handler(request: web.Request) -> web.StreamResponse:
            headers = {k: v for k, v in (("ETag", etag), ("Last-Modified", modified)) if v}
            if honour and etag and request.headers.get("If-None-Match") == etag:
                return web.Response(status=304, headers=headers)
            if honour and modified and request.headers.get("If-Modified-Since") == modified:
                return web.Response(status=304, headers=headers)
            return web.Response(body=body, headers=headers, content_type="application/rss+xml")

        self.handlers[name] = handler


class Pacer:
    """Stands in for asyncio.sleep: records each delay, then waits to be released."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._budget = 0
        self._cond = asyncio.Condition()

    async def sleep(self, delay: float) -> None:
        async with self._cond:
            self.delays.append(delay)
            self._cond.notify_all()
            await self._cond.wait_for(lambda: self._budget > 0)
            self._budget -= 1

    async def release(self, count: int = 1, *, then: int | None = None) -> None:
        """Let ``count`` sleeps pass; with ``then``, wait until that many sleeps began."""
        async with asyncio.timeout(5), self._cond:
            self._budget += count
            self._cond.notify_all()
            if then is not None:
                await self._cond.wait_for(lambda: len(self.delays) >= then)


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    feeds = FeedServer()
    await feeds.server.start_server()
    try:
        yield feeds
    finally:
        await feeds.server.close()


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "state.db")


def make_source(store: SqliteStore, pacer: Pacer, *feeds: FeedOptions,
                session: aiohttp.ClientSession | None = None, brand: str | None = None,
                metrics: Metrics | None = None, **options: Any) -> RssSource:
    config = SourceConfig(name="reviews", type="rss", brand=brand,
                          options=RssOptions(feeds=feeds, **options))
    ctx = SourceContext(clock=ManualClock(NOW), store=store, metrics=metrics or Metrics(),
                        brands=(ACME,))
    return RssSource(config, ctx, session=session, sleep=pacer.sleep, rng=random.Random(3))


@contextlib.asynccontextmanager
async def running(source: RssSource, posts: list[Post]) -> AsyncIterator[asyncio.Task[None]]:
    async def emit(post: Post) -> None:
        posts.append(post)

    task = asyncio.create_task(source.run(emit))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def gauge(metrics: Metrics, name: str) -> float | None:
    return metrics.registry.get_sample_value("brandmon_source_up", {"source": name})


# formats ----------------------------------------------------------------------------
async def test_rss_atom_and_rdf_become_posts(server: FeedServer, store: SqliteStore) -> None:
    server.serve("rss", RSS2)
    server.serve("atom", ATOM)
    server.serve("rdf", RDF)
    pacer, metrics = Pacer(), Metrics()
    posts: list[Post] = []
    src = make_source(store, pacer, FeedOptions(server.url("rss")),
                      FeedOptions(server.url("atom"), brand="Acme", kind="outbound"),
                      FeedOptions(server.url("rdf")), metrics=metrics)
    async with running(src, posts):
        await pacer.release(3, then=6)  # three starts, three fetches, three waits
    assert len(posts) == 5
    by_id = {p.id: p for p in posts}

    review = by_id[post_id(server.url("rss"), "rev-1001")]
    assert review.text == ("Acme Rocket 3 review: fast & loud\n\n"
                           "The Acme Rocket is fast.\nBattery & charger: meh !")
    assert review.created_at == datetime(2024, 5, 14, 7, 3, 17, tzinfo=UTC)
    assert review.author.handle == "Jane Critic"
    assert (review.source, review.kind, review.brand, review.lang) == (
        "reviews", "mention", None, "en")
    assert review.url == "https://reviews.example/acme-rocket-3"
    second = by_id[post_id(server.url("rss"), server.url("second"))]  # no guid: the link
    assert second.text == "Second review\n\nPlain text escaped markup"
    assert second.author.handle == "Bob Tester"
    assert second.url == server.url("second")  # relative link resolved

    launch = by_id[post_id(server.url("atom"), "tag:acme.example,2024:post-7")]
    assert launch.text == "Launch day\n\nWe shipped Rocket 4.\nRead more."
    assert launch.created_at == datetime(2024, 5, 16, 8, 0, tzinfo=UTC)  # published
    assert launch.author.handle == "Acme Team"  # the feed's author
    assert (launch.kind, launch.brand, launch.lang) == ("outbound", "Acme", "fr")
    assert launch.url == "https://acme.example/blog/launch"
    updated = by_id[post_id(server.url("atom"), "tag:acme.example,2024:post-8")]
    assert updated.created_at == datetime(2024, 5, 17, 6, 0, tzinfo=UTC)
    assert (updated.author.handle, updated.text) == ("Wile E.", "Updated only\n\nShort & sweet")
    assert updated.url is None

    recall = by_id[post_id(server.url("rdf"), "http://news.example/1")]
    assert recall.text == "Acme recall\n\nAcme recalls toasters"
    assert recall.author.handle == "News RDF"  # no creator: the feed title
    assert (recall.lang, recall.url) == ("de", "http://news.example/1")
    assert recall.created_at == datetime(2024, 5, 18, 7, 30, tzinfo=UTC)

    rss_posts = [p for p in posts if p.id in {review.id, second.id}]
    assert [p.id for p in rss_posts] == [review.id, second.id]  # oldest first
    assert all(Post.from_json(p.to_json()) == p for p in posts)  # valid posts
    headers = server.headers["rss"][0]
    assert headers["User-Agent"] == DEFAULT_USER_AGENT
    assert f"brand-monitor/{__version__} (+self-hosted)" == DEFAULT_USER_AGENT
    assert "application/rss+xml" in headers["Accept"]
    assert (src.health.state, src.health.posts, src.health.malformed) == ("ok", 5, 0)
    assert gauge(metrics, "reviews") == 1
    assert 540 <= pacer.delays[-1] <= 660  # the 10-minute default, jittered
    assert all(0 <= d <= rss.START_SPREAD for d in pacer.delays[:3])


async def test_gzip_and_injected_session(server: FeedServer, store: SqliteStore) -> None:
    async def gzipped(request: web.Request) -> web.StreamResponse:
        response = web.Response(body=RSS2, content_type="application/rss+xml")
        response.enable_compression(web.ContentCoding.gzip)
        return response

    server.handlers["gz"] = gzipped
    pacer = Pacer()
    posts: list[Post] = []
    async with aiohttp.ClientSession() as session:
        src = make_source(store, pacer, FeedOptions(server.url("gz")), session=session,
                          user_agent="custom-agent/1")
        async with running(src, posts):
            await pacer.release(1, then=2)
        assert not session.closed  # an injected session belongs to the caller
    assert "gzip" in server.headers["gz"][0]["Accept-Encoding"]
    assert server.headers["gz"][0]["User-Agent"] == "custom-agent/1"
    assert len(posts) == 2


# conditional GET, restart -------------------------------------------------------------
async def test_conditional_get_304_then_only_new_entries(server: FeedServer,
                                                         store: SqliteStore) -> None:
    modified = "Wed, 15 May 2024 10:00:00 GMT"
    server.serve("f", RSS2, etag='"v1"', modified=modified)
    pacer = Pacer()
    posts: list[Post] = []
    src = make_source(store, pacer, FeedOptions(server.url("f"), interval=timedelta(minutes=2)))
    async with running(src, posts):
        await pacer.release(1, then=2)
        assert len(posts) == 2
        assert "If-None-Match" not in server.headers["f"][0]
        await pacer.release(1, then=3)
        sent = server.headers["f"][1]
        assert (sent["If-None-Match"], sent["If-Modified-Since"]) == ('"v1"', modified)
        assert server.statuses["f"] == [200, 304]
        assert len(posts) == 2 and src.health.state == "ok"
        newer = RSS2.replace(b"<item>", b"<item><title>Brand new</title><guid>new-1</guid>"
                             b"<pubDate>Thu, 16 May 2024 10:00:00 GMT</pubDate></item><item>", 1)
        server.serve("f", newer, etag='"v2"')
        await pacer.release(1, then=4)
        assert server.statuses["f"] == [200, 304, 200]
        assert [p.id for p in posts[2:]] == [post_id(server.url("f"), "new-1")]
        await pacer.release(1, then=5)
        assert server.headers["f"][3]["If-None-Match"] == '"v2"'
        assert "If-Modified-Since" not in server.headers["f"][3]  # the new 200 had none
    assert all(108 <= d <= 132 for d in pacer.delays[1:])


async def test_restart_keeps_validators_and_seen_entries(server: FeedServer,
                                                         store: SqliteStore) -> None:
    server.serve("f", RSS2, etag='"v1"')
    posts: list[Post] = []
    pacer = Pacer()
    async with running(make_source(store, pacer, FeedOptions(server.url("f"))), posts):
        await pacer.release(1, then=2)
    assert len(posts) == 2
    cursor = json.loads(store.get_cursor("rss:reviews") or "{}")
    assert cursor["feeds"][server.url("f")]["etag"] == '"v1"'

    pacer = Pacer()  # a new process: new source, same store
    async with running(make_source(store, pacer, FeedOptions(server.url("f"))), posts):
        await pacer.release(1, then=2)
        assert server.headers["f"][1]["If-None-Match"] == '"v1"'
        assert server.statuses["f"] == [200, 304]
        server.serve("f", RSS2, etag='"v1"', honour=False)  # a server ignoring validators
        await pacer.release(1, then=3)
        assert server.statuses["f"][-1] == 200
    assert len(posts) == 2  # nothing emitted twice


async def test_seen_ids_are_bounded(server: FeedServer, store: SqliteStore,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rss, "MIN_SEEN", 3)
    pacer = Pacer()
    posts: list[Post] = []
    src = make_source(store, pacer, FeedOptions(server.url("f")), max_items_per_fetch=1)
    async with running(src, posts):
        for n in range(5):
            server.serve("f", rss_items((f"g{n}", f"Wed, 15 May 2024 10:0{n}:00 GMT")))
            await pacer.release(1, then=n + 2)
    assert len(posts) == 5
    seen = json.loads(store.get_cursor("rss:reviews") or "{}")["feeds"][server.url("f")]["seen"]
    assert seen == [post_id(server.url("f"), f"g{n}") for n in (2, 3, 4)]


async def test_max_items_per_fetch_takes_the_newest(server: FeedServer,
                                                    store: SqliteStore) -> None:
    server.serve("f", rss_items(("a", "Mon, 13 May 2024 10:00:00 GMT"),
                                ("c", "Wed, 15 May 2024 10:00:00 GMT"),
                                ("b", "Tue, 14 May 2024 10:00:00 GMT")))
    pacer = Pacer()
    posts: list[Post] = []
    async with running(make_source(store, pacer, FeedOptions(server.url("f")),
                                   max_items_per_fetch=2), posts):
        await pacer.release(1, then=2)
    assert [p.text for p in posts] == ["Item b", "Item c"]


# errors ------------------------------------------------------------------------------
async def test_503_retry_after_then_429_backoff_then_recovery(server: FeedServer,
                                                              store: SqliteStore) -> None:
    answers = [web.Response(status=503, headers={"Retry-After": "120"}),
               web.Response(status=429), web.Response(body=RSS2)]

    async def handler(request: web.Request) -> web.StreamResponse:
        return answers.pop(0)

    server.handlers["f"] = handler
    pacer, metrics = Pacer(), Metrics()
    posts: list[Post] = []
    src = make_source(store, pacer, FeedOptions(server.url("f")), metrics=metrics)
    async with running(src, posts):
        await pacer.release(1, then=2)
        assert pacer.delays[1] == 120  # Retry-After honoured
        assert src.health.state == "error" and "HTTP 503" in (src.health.last_error or "")
        assert gauge(metrics, "reviews") == 0
        await pacer.release(1, then=3)
        assert 30 <= pacer.delays[2] <= 60  # no Retry-After: jittered backoff (2nd failure)
        assert "HTTP 429" in (src.health.last_error or "")
        await pacer.release(1, then=4)
        assert src.health.state == "ok" and gauge(metrics, "reviews") == 1
        assert 540 <= pacer.delays[3] <= 660
    assert len(posts) == 2


async def test_connection_refused_backs_off(store: SqliteStore) -> None:
    with socketless_port() as port:
        pacer = Pacer()
        src = make_source(store, pacer, FeedOptions(f"http://127.0.0.1:{port}/feed"))
        async with running(src, []):
            await pacer.release(2, then=3)
    assert src.health.state == "error" and "ClientConnectorError" in (src.health.last_error or "")
    assert 15 <= pacer.delays[1] <= 30 and 30 <= pacer.delays[2] <= 60


@contextlib.contextmanager
def socketless_port() -> Any:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


async def test_malformed_xml_and_empty_entries_are_counted(server: FeedServer,
                                                           store: SqliteStore) -> None:
    server.serve("bad", b"<rss><channel><item><title>cut off")
    server.serve("holes", b'<rss version="2.0"><channel><title>T</title><item></item>'
                          b"<item><guid>ok-1</guid><title>Fine</title></item></channel></rss>")
    server.serve("good", RSS2)
    pacer, metrics = Pacer(), Metrics()
    posts: list[Post] = []
    src = make_source(store, pacer, FeedOptions(server.url("bad")),
                      FeedOptions(server.url("holes")), FeedOptions(server.url("good")),
                      metrics=metrics)
    async with running(src, posts):
        await pacer.release(3, then=6)
    assert sorted(p.text.split("\n")[0] for p in posts) == [
        "Acme Rocket 3 review: fast & loud", "Fine", "Second review"]
    assert src.health.malformed == 2
    assert metrics.registry.get_sample_value("brandmon_posts_malformed_total",
                                             {"source": "reviews"}) == 2
    assert "not well-formed" in (src.feed_errors[server.url("bad")] or "")
    assert src.feed_errors[server.url("good")] is None
    assert src.health.state == "ok"  # the other feeds still work
    assert server.url("bad") in (src.health.last_error or "")


async def test_xml_bomb_is_refused(server: FeedServer, store: SqliteStore) -> None:
    server.serve("bomb", BOMB)
    pacer = Pacer()
    posts: list[Post] = []
    src = make_source(store, pacer, FeedOptions(server.url("bomb")))
    async with running(src, posts):
        await pacer.release(1, then=2)
    assert posts == [] and src.health.malformed == 1
    assert "refused" in (src.health.last_error or "") and src.health.state == "error"
    assert 540 <= pacer.delays[1] <= 660  # malformed: try again at the normal pace


@pytest.mark.parametrize("document", [
    BOMB,
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><rss>&x;</rss>',
    b'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]><rss/>',
    b'<!DOCTYPE r [<!ELEMENT rss ANY>]><rss version="2.0"><channel/></rss>',
])
def test_dtd_subsets_and_entities_are_refused(document: bytes) -> None:
    with pytest.raises(FeedError, match="refused"):
        parse_feed(document, "http://127.0.0.1/f")


def test_bare_doctype_of_rss_091_is_accepted() -> None:
    doc = (b'<?xml version="1.0" encoding="windows-1252"?>\n'
           b'<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
           b'"http://my.netscape.com/publish/formats/rss-0.91.dtd">\n'
           b'<rss version="0.91"><channel><title>Old</title><item><title>\x93Acme\x94&nbsp;'
           b"rocks</title><link>http://old.example/1</link></item></channel></rss>")
    feed = parse_feed(doc, "http://127.0.0.1/f")
    assert [(e.title, e.link) for e in feed.entries] == [("“Acme”rocks", "http://old.example/1")]


@pytest.mark.parametrize(("document", "message"), [
    (b"", "not well-formed"),
    (b"<html><body>Not a feed</body></html>", "not an RSS, RDF or Atom"),
    (b'<rss version="2.0"></rss>', "without a <channel>"),
    (b"<rss><channel><title>&undefined;</title></channel></rss>", "not well-formed"),
])
def test_not_a_feed(document: bytes, message: str) -> None:
    with pytest.raises(FeedError, match=message):
        parse_feed(document, "http://127.0.0.1/f")


async def test_http_errors_and_oversize_bodies(server: FeedServer, store: SqliteStore,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rss, "MAX_BODY", 200)

    async def gone(request: web.Request) -> web.StreamResponse:
        return web.Response(status=410)

    server.handlers["gone"] = gone
    server.serve("big", RSS2)
    pacer, metrics = Pacer(), Metrics()
    src = make_source(store, pacer, FeedOptions(server.url("gone")),
                      FeedOptions(server.url("big")), metrics=metrics)
    async with running(src, []):
        await pacer.release(2, then=4)
    assert src.feed_errors[server.url("gone")] == "HTTP 410"
    assert "larger than 200 bytes" in (src.feed_errors[server.url("big")] or "")
    assert src.health.state == "error" and gauge(metrics, "reviews") == 0  # every feed failed
    assert all(d >= 540 for d in pacer.delays[2:])  # never faster than the interval


async def test_bad_brand_settings_fail_only_that_feed(server: FeedServer,
                                                      store: SqliteStore) -> None:
    server.serve("ok", RSS2)
    pacer = Pacer()
    posts: list[Post] = []
    src = make_source(store, pacer, FeedOptions(server.url("nope"), brand="Nope"),
                      FeedOptions(server.url("blog"), kind="outbound"),
                      FeedOptions(server.url("ok"), brand="Acme"))
    async with running(src, posts):
        await pacer.release(1, then=2)
    assert src.feed_errors[server.url("nope")] == "unknown brand 'Nope'"
    assert "needs a brand" in (src.feed_errors[server.url("blog")] or "")
    assert set(server.headers) == {"ok"}  # the misconfigured feeds were never fetched
    assert {p.brand for p in posts} == {"Acme"} and src.health.state == "ok"


async def test_source_brand_applies_to_outbound_feeds(server: FeedServer,
                                                      store: SqliteStore) -> None:
    server.serve("blog", ATOM)
    pacer = Pacer()
    posts: list[Post] = []
    src = make_source(store, pacer, FeedOptions(server.url("blog"), kind="outbound"),
                      brand="Acme")
    async with running(src, posts):
        await pacer.release(1, then=2)
    assert [(p.kind, p.brand) for p in posts] == [("outbound", "Acme")] * 2


def test_source_stays_up_while_any_feed_works(store: SqliteStore) -> None:
    one, two = FeedOptions("http://127.0.0.1:9/one"), FeedOptions("http://127.0.0.1:9/two")
    metrics = Metrics()
    src = make_source(store, Pacer(), one, two, metrics=metrics)
    src._feed_ok(one)
    src._feed_failed(two, "HTTP 500")
    assert (src.health.state, gauge(metrics, "reviews")) == ("ok", 1)
    assert src.health.last_error == "feed http://127.0.0.1:9/two: HTTP 500"
    src._feed_failed(one, "HTTP 502")
    assert (src.health.state, gauge(metrics, "reviews")) == ("error", 0)
    src._feed_ok(two)
    assert (src.health.state, gauge(metrics, "reviews")) == ("ok", 1)
    assert src.feed_errors == {one.url: "HTTP 502", two.url: None}


# cancel ------------------------------------------------------------------------------
async def test_cancel_mid_request_closes_the_session(server: FeedServer,
                                                     store: SqliteStore) -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        arrived.set()
        await asyncio.wait_for(release.wait(), 5)
        return web.Response(body=RSS2)

    server.handlers["slow"] = slow
    pacer = Pacer()
    src = make_source(store, pacer, FeedOptions(server.url("slow")))
    task = asyncio.create_task(src.run(_discard))
    await pacer.release(1)
    await asyncio.wait_for(arrived.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert src.client is not None and src.client.closed
    release.set()


async def _discard(post: Post) -> None:
    raise AssertionError("no post expected")


# units -------------------------------------------------------------------------------
def test_strip_html() -> None:
    assert strip_html("<p>Hello &amp; <b>bye</b></p><style>p{}</style><p>a &lt; b</p>") == (
        "Hello & bye\na < b")
    assert strip_html("Tom &amp; Jerry&#39;s&nbsp;&nbsp;show") == "Tom & Jerry's show"
    assert strip_html("line<br/>break <script>alert(1)</script>done") == "line\nbreak done"
    assert strip_html("  plain   text \n\n ") == "plain text"


@pytest.mark.parametrize(("text", "expected"), [
    ("Tue, 14 May 2024 09:03:17 GMT", datetime(2024, 5, 14, 9, 3, 17, tzinfo=UTC)),
    ("14 May 2024 09:03 EST", datetime(2024, 5, 14, 14, 3, tzinfo=UTC)),
    ("Tue, 14 May 2024 09:03:17 -0000", datetime(2024, 5, 14, 9, 3, 17, tzinfo=UTC)),
    ("2024-05-14T09:03:17.5+02:00", datetime(2024, 5, 14, 7, 3, 17, 500000, tzinfo=UTC)),
    ("2024-05-14T09:03Z", datetime(2024, 5, 14, 9, 3, tzinfo=UTC)),
    ("2024-05-14", datetime(2024, 5, 14, tzinfo=UTC)),
    ("yesterday", None),
    ("2024-13-45T00:00:00Z", None),
    ("", None),
])
def test_parse_date(text: str, expected: datetime | None) -> None:
    assert parse_date(text) == expected


async def test_missing_or_future_dates_use_fetch_time(server: FeedServer,
                                                      store: SqliteStore) -> None:
    server.serve("f", b'<rss version="2.0"><channel><title>T</title>'
                      b"<item><guid>a</guid><title>undated</title></item>"
                      b"<item><guid>b</guid><title>future</title>"
                      b"<pubDate>Fri, 01 Jan 2100 00:00:00 GMT</pubDate></item>"
                      b"<item><guid>c</guid><title>garbled</title><pubDate>soon</pubDate></item>"
                      b"</channel></rss>")
    pacer = Pacer()
    posts: list[Post] = []
    async with running(make_source(store, pacer, FeedOptions(server.url("f"))), posts):
        await pacer.release(1, then=2)
    assert [p.created_at for p in posts] == [NOW] * 3
    assert {p.author.handle for p in posts} == {"T"}


def test_retry_after_values() -> None:
    assert retry_after("120", NOW) == 120
    assert retry_after("Sat, 01 Jun 2024 12:05:00 GMT", NOW) == 300
    assert retry_after("Sat, 01 Jun 2024 11:00:00 GMT", NOW) == 0  # in the past
    assert retry_after("9999999", NOW) == rss.MAX_RETRY_AFTER
    assert retry_after("soon", NOW) is None and retry_after(None, NOW) is None


def test_google_alerts_links_are_unwrapped(store: SqliteStore) -> None:
    url = "https://www.google.com/alerts/feeds/0123/4567"
    doc = (b'<feed xmlns="http://www.w3.org/2005/Atom"><title>Google Alert - acme</title>'
           b"<entry><id>tag:google.com,2013:googlealerts/feed:1</id>"
           b'<title type="html">&lt;b&gt;Acme&lt;/b&gt; outage</title>'
           b'<link href="https://www.google.com/url?rct=j&amp;sa=t&amp;'
           b'url=https://news.example/acme-outage&amp;ct=ga"/>'
           b"<published>2024-05-31T10:00:00Z</published>"
           b'<content type="html">The &lt;b&gt;Acme&lt;/b&gt; app is down</content>'
           b"</entry></feed>")
    feed = parse_feed(doc, url)
    src = make_source(store, Pacer(), FeedOptions(url))
    post = src._post(FeedOptions(url), None, feed, feed.entries[0], NOW)
    assert post.url == "https://news.example/acme-outage"
    assert post.author.handle == "news.example"  # the site, not "Google Alert - acme"
    assert post.text == "Acme outage\n\nThe Acme app is down"


# options ------------------------------------------------------------------------------
def test_options_from_yaml() -> None:
    options = build(RssOptions, {"feeds": [
        {"url": "https://reviews.example/acme.rss", "brand": "Acme"},
        {"url": "https://acme.example/blog/feed", "kind": "outbound", "interval": "30m"},
    ], "timeout": "10s", "max_items_per_fetch": 20}, Context("config.yaml"), "options")
    assert options.feeds[0] == FeedOptions("https://reviews.example/acme.rss", brand="Acme")
    assert options.feeds[0].interval == timedelta(minutes=10)
    assert (options.feeds[1].kind, options.feeds[1].interval) == ("outbound",
                                                                  timedelta(minutes=30))
    assert (options.timeout, options.max_items_per_fetch) == (timedelta(seconds=10), 20)
    assert options.user_agent == "brand-monitor/0.1.0 (+self-hosted)"
    assert SOURCES.get("rss") is RssSource


@pytest.mark.parametrize(("data", "message"), [
    ({"feeds": []}, "at least one feed"),
    ({}, "required key is missing"),
    ({"feeds": [{"url": "ftp://x.example/f"}]}, "http:// or https://"),
    ({"feeds": [{"url": "https://x.example/f"}, {"url": "https://x.example/f"}]}, "twice"),
    ({"feeds": [{"url": "https://x.example/f?token=abc123"}]}, "ENV_VAR"),
    ({"feeds": [{"url": "https://x.example/f", "kind": "blog"}]}, "must be one of"),
    ({"feeds": [{"url": "https://x.example/f", "interval": "0s"}]}, "at least 1s"),
    ({"feeds": [{"url": "https://x.example/f"}], "max_items_per_fetch": 0}, "at least 1"),
    ({"feeds": [{"url": "https://x.example/f"}], "timeout": "0s"}, "must be positive"),
])
def test_options_are_validated(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(RssOptions, data, Context("config.yaml"), "options")
