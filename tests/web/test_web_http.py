"""The dashboard over HTTP, in process (aiohttp test client, real engine and SQLite):
sign-in, session cookie, CSRF and read-only refusals, pages and their data, the
what-if backtest, and the event loop staying free while big pages are built."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from monitor.config.schema import HttpConfig
from monitor.detect.countmodel import backtest
from monitor.http.server import create_app
from monitor.metrics import Metrics
from monitor.store.sqlite import Aggregate
from tests.timeline import T0, Harness, post, steady

API = "dash-admin-token-0123456789"
READ = "dash-read-token-0123456789a"


class Daemon:
    """What the HTTP server needs, around a real engine and store (Harness)."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.store = h.store
        self.metrics = Metrics()
        self.config = h.config
        self.engine = h.engine
        self.outbound = h.engine.context.outbound
        self.clock = h.clock

    async def ingest(self, posts: list[Any]) -> tuple[int, int]:
        outcomes = self.engine.process_batch(posts)
        accepted = sum(o.accepted for o in outcomes)
        return accepted, len(posts) - accepted

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "sources": {}, "outbox": self.store.outbox_counts(),
                "rules": len(self.engine.rules.rules), "queue": 0, "lag_seconds": 0.0}


Make = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def harness(project: Path) -> Harness:
    h = Harness(project)
    h.feed(steady(T0, 3.0, 10))
    storm = steady(T0 + timedelta(hours=3), 5 / 60, 120, first_id=10_000, seed=5,
                   texts=["@acme the app is down", "acme charged me twice"])
    h.feed(storm)
    h.feed([post(20_000, T0 + timedelta(hours=3, minutes=6), "@acme you are awful, terrible",
                 author="star", followers=900_000)])
    h.advance(timedelta(minutes=10))
    h.engine.checkpoint(force=True)
    assert {a.rule for a in h.alerts} >= {"spike", "influencer"}
    return h


@pytest.fixture
async def make(harness: Harness) -> AsyncIterator[Make]:
    clients: list[TestClient[Any, Any]] = []

    async def make(**changes: Any) -> TestClient[Any, Any]:
        config = replace(HttpConfig(host="127.0.0.1", port=0), **changes)
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(config,
                                                                        Daemon(harness))))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


async def _login(client: TestClient[Any, Any], token: str, name: str = "Ann") -> str:
    resp = await client.post("/ui/login", data={"token": token, "name": name,
                                                "next": "/ui/alerts"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/ui/alerts"
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    page = await client.get("/ui/alerts")
    assert page.status == 200
    return _csrf(await page.text())


def _alert_id(harness: Harness, rule: str) -> str:
    return next(a.id for a in harness.alerts if a.rule == rule and a.state == "firing")


# -- sign-in and the session cookie -------------------------------------------------------
async def test_pages_ask_for_a_token_once_then_keep_a_session(make: Make) -> None:
    client = await make(api_token=API)
    resp = await client.get("/ui/pulse?range=7d", allow_redirects=False)
    assert resp.status == 303
    location = URL(resp.headers["Location"])
    assert location.path == "/ui/login" and location.query["next"] == "/ui/pulse?range=7d"
    assert (await client.get("/ui/data/series")).status == 401
    for path in ("/", "/dashboard", "/ui"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/ui/pulse"
    bad = await client.post("/ui/login", data={"token": "wrong-token-0123456789"})
    assert bad.status == 401 and "that token is not valid" in await bad.text()
    await _login(client, API)
    for path in ("/ui/pulse", "/ui/pulse/Acme?range=30d", "/ui/alerts", "/ui/outbound",
                 "/ui/admin", "/ui/whatif"):
        resp = await client.get(path)
        assert resp.status == 200, path
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        assert API not in await resp.text()
    # the token went into a session, never into a page or the cookie
    assert API not in str(client.session.cookie_jar.filter_cookies(client.make_url("/")))


async def test_a_session_ends_on_sign_out(make: Make) -> None:
    client = await make(api_token=API)
    csrf = await _login(client, API)
    resp = await client.post("/ui/logout", data={"csrf_token": "nope"})
    assert resp.status == 403
    resp = await client.post("/ui/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/ui/login"
    assert (await client.get("/ui/alerts", allow_redirects=False)).status == 303


async def test_failed_sign_ins_are_throttled(make: Make) -> None:
    client = await make(api_token=API)
    for _ in range(10):
        assert (await client.post("/ui/login", data={"token": "x" * 20})).status == 401
    resp = await client.post("/ui/login", data={"token": API})
    assert resp.status == 429  # even the right token waits: the address is throttled


async def test_open_on_loopback_without_a_token_but_read_only(make: Make,
                                                              harness: Harness) -> None:
    client = await make()
    page = await client.get("/ui/alerts")
    assert page.status == 200
    html = await page.text()
    assert "read-only (no token configured)" in html and "/ack" not in html
    alert_id = _alert_id(harness, "spike")
    resp = await client.post(f"/ui/alerts/{alert_id}/ack", data={"csrf_token": "x"})
    assert resp.status == 403 and "set http.api_token" in await resp.text()
    assert harness.engine.router.lifecycle.episode(
        harness.store.get_alert(alert_id).dedup_key).acked_at is None  # type: ignore[union-attr]


# -- CSRF and read-only refusals -------------------------------------------------------------
async def test_actions_need_the_csrf_token_and_the_same_site(make: Make,
                                                             harness: Harness) -> None:
    client = await make(api_token=API, read_token=READ)
    csrf = await _login(client, API)
    alert_id = _alert_id(harness, "spike")
    key = harness.store.get_alert(alert_id).dedup_key  # type: ignore[union-attr]
    episode = harness.engine.router.lifecycle.episode
    for data, headers in (({}, {}), ({"csrf_token": "forged"}, {}),
                          ({"csrf_token": csrf}, {"Origin": "https://evil.example"}),
                          ({"csrf_token": csrf}, {"Sec-Fetch-Site": "cross-site"})):
        resp = await client.post(f"/ui/alerts/{alert_id}/ack", data=data, headers=headers)
        assert resp.status == 403, (data, headers)
        assert "refused" in await resp.text()
        assert episode(key).acked_at is None  # type: ignore[union-attr]
    resp = await client.post(f"/ui/alerts/{alert_id}/ack",
                             data={"csrf_token": csrf, "comment": "on it"},
                             allow_redirects=False)
    assert resp.status == 303
    found = episode(key)
    assert found is not None and found.acked_by == "Ann" and found.ack_comment == "on it"
    # a cookie without a session (another browser) is a 401, not a change
    fresh = await make(api_token=API)
    resp = await fresh.post(f"/ui/alerts/{alert_id}/ack", data={"csrf_token": csrf})
    assert resp.status == 401


async def test_the_read_token_opens_a_read_only_session(make: Make, harness: Harness) -> None:
    client = await make(api_token=API, read_token=READ)
    csrf = await _login(client, READ, "Rita")
    page = await (await client.get("/ui/alerts")).text()
    assert "read-only" in page and 'action="/ui/alerts/bulk"' not in page
    alert_id = _alert_id(harness, "spike")
    resp = await client.post(f"/ui/alerts/{alert_id}/ack", data={"csrf_token": csrf})
    assert resp.status == 403 and "read-only" in await resp.text()
    resp = await client.post("/ui/silences", data={"csrf_token": csrf, "rule": "spike",
                                                   "for": "1h"})
    assert resp.status == 403
    assert harness.engine.router.lifecycle.silences.entries(harness.clock.now()) == []
    # the API takes the read token for reads only
    bearer = {"Authorization": f"Bearer {READ}"}
    assert (await client.get("/alerts", headers=bearer)).status == 200
    assert (await client.get("/silences", headers=bearer)).status == 200
    assert (await client.post("/silences", json={"rule": "x", "for": "1h"},
                              headers=bearer)).status == 401
    assert (await client.get("/alerts")).status == 401


# -- pages and data ----------------------------------------------------------------------------
async def test_series_are_dense_5_minute_counts_with_expected_and_markers(
        make: Make, harness: Harness) -> None:
    client = await make()
    resp = await client.get("/ui/data/series?range=24h&brands=Acme")
    data = await resp.json()
    assert data["step"] == 300 and data["count"] == 288
    acme = data["brands"]["Acme"]
    stored = harness.store.aggregates("Acme", T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert sum(p or 0 for p in acme["posts"]) == sum(a.posts for a in stored)
    assert sum(p is not None for p in acme["posts"]) == len(stored)
    assert any(e is not None for e in acme["expected"])
    assert {a["rule"] for a in data["alerts"]} >= {"spike", "influencer"}
    since = data["start"] + 280 * 300
    tail = await (await client.get(f"/ui/data/series?range=24h&brands=Acme&since={since}"))\
        .json()
    assert tail["count"] == 8 and tail["brands"]["Acme"]["posts"] == acme["posts"][280:]


async def test_silence_preview_counts_the_alerts_it_would_have_silenced(
        make: Make, harness: Harness) -> None:
    client = await make()
    preview = await (await client.get("/ui/data/silence-preview?rule=spike&brand=Acme")).json()
    firing = [a for a in harness.alerts if a.rule == "spike" and a.state == "firing"]
    assert preview["count"] == len(firing) >= 1
    glob = await (await client.get("/ui/data/silence-preview?brand=Ac*")).json()
    assert glob["count"] == len([a for a in harness.alerts if a.state == "firing"])
    none = await (await client.get("/ui/data/silence-preview?rule=nope")).json()
    assert none["count"] == 0


async def test_whatif_runs_the_count_model_backtest_on_the_stored_counts(
        make: Make, harness: Harness) -> None:
    client = await make()
    page = await (await client.get("/ui/whatif?rule=spike&brand=Acme&sensitivity=0.2"
                                   "&days=7")).text()
    rule = harness.engine.rules.by_name("spike")
    assert rule is not None
    stored = harness.store.aggregates("Acme", T0 - timedelta(days=8), T0 + timedelta(days=1))
    rows = [(a.start, float(a.posts)) for a in stored]
    now_fired = backtest(rows, rule.params.model_params())
    loose = backtest(rows, replace(rule.params, sensitivity=0.2).model_params())
    assert len(loose) >= len(now_fired) >= 1
    assert f'class="count-current">{len(now_fired)}<' in page
    assert f'class="count-proposed">{len(loose)}<' in page
    bad = await (await client.get("/ui/whatif?rule=spike&sensitivity=2")).text()
    assert "a number must be a tail probability between 0 and 1" in bad


async def test_unknown_alert_and_brand_are_404_pages(make: Make) -> None:
    client = await make()
    resp = await client.get("/ui/alerts/nope")
    assert resp.status == 404 and "alert &#39;nope&#39; not found" in await resp.text()
    resp = await client.get("/ui/pulse/Nobody")
    assert resp.status == 404 and resp.content_type == "text/html"


async def test_hostile_post_text_is_escaped_and_links_are_http_only(
        make: Make, harness: Harness) -> None:
    harness.feed([post(30_000, T0 + timedelta(hours=3, minutes=20),
                       "@acme <script>alert(1)</script> </script><img src=x onerror=alert(2)>",
                       author="evil", followers=2_000_000)])
    harness.store._run("UPDATE posts SET url='javascript:alert(3)' WHERE id='30000'")
    harness.engine.checkpoint(force=True)
    harness.clock.set(T0 + timedelta(hours=3, minutes=25))
    client = await make()
    html = await (await client.get("/ui/pulse/Acme")).text()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)" in html
    assert "javascript:alert(3)" not in html


# -- the event loop stays free ----------------------------------------------------------------
async def test_big_pages_and_backtests_do_not_block_the_event_loop(
        make: Make, harness: Harness) -> None:
    brands = [f"B{i}" for i in range(10)]
    start = T0 - timedelta(days=30)
    harness.store.add_aggregates([Aggregate(b, start + timedelta(minutes=5 * i), 10 + i % 7,
                                            i % 3, 1, 0, 10.0)
                                  for b in (*brands, "Acme") for i in range(30 * 288)])
    client = await make()
    worst = 0.0
    done = asyncio.Event()

    async def probe() -> None:
        nonlocal worst
        loop = asyncio.get_running_loop()
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(0.005)
            worst = max(worst, loop.time() - before - 0.005)

    task = asyncio.create_task(probe())
    started = time.perf_counter()
    pages = await asyncio.gather(
        client.get("/ui/pulse?range=30d"), client.get("/ui/pulse/Acme?range=30d"),
        client.get("/ui/whatif?rule=spike&brand=Acme&sensitivity=high&days=30"),
        client.get("/ui/data/series?range=30d"))
    elapsed = time.perf_counter() - started
    done.set()
    await task
    assert [p.status for p in pages] == [200, 200, 200, 200]
    whatif = await pages[2].text()
    buckets = re.search(r"([\d,]+) stored buckets", whatif)
    assert buckets and int(buckets.group(1).replace(",", "")) > 8000
    assert worst < 0.1, f"the event loop was blocked for {worst * 1000:.0f} ms"
    assert elapsed < 20
