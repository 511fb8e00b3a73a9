"""HTTP API: auth, all-or-nothing ingestion, limits, JSON errors, alerts, health, metrics."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from monitor.clock import ManualClock
from monitor.config.schema import HttpConfig
from monitor.errors import StoreError
from monitor.http.server import DaemonApi, bound_port, create_app, start_http
from monitor.metrics import Metrics
from monitor.model import Alert, Post
from monitor.store.sqlite import SqliteStore

INGEST = "ingest-s3cret"
API = "api-s3cret"
AUTH = {"Authorization": f"Bearer {INGEST}"}
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class FakeDaemon:
    """Minimal DaemonApi: stores posts in one transaction, counting duplicates."""

    def __init__(self, store: SqliteStore) -> None:
        self.metrics = Metrics()
        self.store = store
        self.status: dict[str, Any] = {"status": "ok", "sources": {}, "outbox": {}, "rules": 2}
        self.batches: list[int] = []
        self.fail: Exception | None = None

    async def ingest(self, posts: list[Post]) -> tuple[int, int]:
        self.batches.append(len(posts))
        if self.fail is not None:
            raise self.fail
        accepted = duplicates = 0
        with self.store.transaction():
            for post in posts:
                if self.store.add_post(post, None, 0.0, "neutral"):
                    accepted += 1
                else:
                    duplicates += 1
        return accepted, duplicates

    def health(self) -> dict[str, Any]:
        return self.status


def post(n: int | str = 1, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": f"p{n}", "source": "webhook", "kind": "mention",
        "author": {"id": "u1", "handle": "alice", "followers": 10},
        "text": f"@acme my order {n} never arrived", "created_at": "2024-05-01T12:00:00Z",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def config(**changes: Any) -> HttpConfig:
    base = HttpConfig(host="127.0.0.1", port=0, ingest_token=INGEST, api_token=None,
                      max_body_bytes=8192, max_batch=5)
    return replace(base, **changes)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "state.db")
    yield s
    s.close()


@pytest.fixture
def daemon(store: SqliteStore) -> FakeDaemon:
    return FakeDaemon(store)


MakeClient = Callable[..., Any]


@pytest.fixture
async def make_client(daemon: FakeDaemon) -> AsyncIterator[MakeClient]:
    clients: list[TestClient[Any, Any]] = []

    async def make(**changes: Any) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(config(**changes),
                                                                        daemon)))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client: MakeClient) -> TestClient[Any, Any]:
    c: TestClient[Any, Any] = await make_client()
    return c


def test_fake_daemon_satisfies_protocol(daemon: FakeDaemon) -> None:
    api: DaemonApi = daemon  # checked by mypy when tests are type-checked
    assert api.store is daemon.store


# auth ----------------------------------------------------------------------------
@pytest.mark.parametrize("headers, message", [
    ({}, "requires 'Authorization: Bearer <token>'"),
    ({"Authorization": "Bearer wrong"}, "invalid bearer token"),
    ({"Authorization": f"Basic {INGEST}"}, "invalid bearer token"),
    ({"Authorization": "Bearer "}, "invalid bearer token"),
    ({"Authorization": "Bearer ingest-s3cretX"}, "invalid bearer token"),
    ({"Authorization": "Bearer \u00e9t\u00e9"}, "invalid bearer token"),
])
async def test_ingest_rejects_missing_or_wrong_token(client: TestClient[Any, Any],
                                                     store: SqliteStore,
                                                     headers: dict[str, str],
                                                     message: str) -> None:
    resp = await client.post("/ingest", json=[post()], headers=headers)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert message in (await resp.json())["error"]
    assert store.post_count() == 0


async def test_ingest_accepts_right_token_case_insensitive_scheme(
        client: TestClient[Any, Any], store: SqliteStore) -> None:
    resp = await client.post("/ingest", json=[post(1)],
                             headers={"Authorization": f"bearer {INGEST}"})
    assert resp.status == 202
    assert await resp.json() == {"accepted": 1, "duplicates": 0}
    assert store.has_post("webhook:p1")


@pytest.mark.parametrize("token", [None, ""])
async def test_ingest_disabled_without_token(make_client: MakeClient, store: SqliteStore,
                                             token: str | None) -> None:
    client = await make_client(ingest_token=token)
    for headers in ({}, {"Authorization": "Bearer "}, AUTH):
        resp = await client.post("/ingest", json=[post()], headers=headers)
        assert resp.status == 403
        assert "disabled" in (await resp.json())["error"]
    assert store.post_count() == 0


# ingest bodies ---------------------------------------------------------------------
@pytest.mark.parametrize("body", [
    [post(1), post(2)],
    {"posts": [post(1), post(2)]},
])
async def test_ingest_shapes(client: TestClient[Any, Any], store: SqliteStore, body: Any) -> None:
    resp = await client.post("/ingest", json=body, headers=AUTH)
    assert resp.status == 202, await resp.text()
    assert await resp.json() == {"accepted": 2, "duplicates": 0}
    assert store.post_count() == 2


async def test_ingest_single_object(client: TestClient[Any, Any], store: SqliteStore) -> None:
    resp = await client.post("/ingest", json=post(7), headers=AUTH)
    assert await resp.json() == {"accepted": 1, "duplicates": 0}
    assert store.has_post("webhook:p7")


async def test_duplicates_counted(client: TestClient[Any, Any], store: SqliteStore) -> None:
    await client.post("/ingest", json=[post(1), post(2)], headers=AUTH)
    resp = await client.post("/ingest", json=[post(2), post(3), post(3)], headers=AUTH)
    assert resp.status == 202
    assert await resp.json() == {"accepted": 1, "duplicates": 2}
    assert store.post_count() == 3


async def test_one_bad_post_rejects_whole_batch(client: TestClient[Any, Any], store: SqliteStore,
                                                daemon: FakeDaemon) -> None:
    batch = [post(1), post(2, text=None), post(3), post(4, source=None),
             post(5, created_at="yesterday"), "not an object"]
    resp = await client.post("/ingest", json=batch[:5], headers=AUTH)
    assert resp.status == 400
    data = await resp.json()
    assert data["error"].startswith("3 of 5 post(s) invalid, nothing was stored")
    assert [e["index"] for e in data["errors"]] == [1, 3, 4]
    assert data["errors"][0]["error"].startswith("text:")
    assert data["errors"][1]["error"].startswith("source:")
    assert data["errors"][2]["error"].startswith("created_at:")
    assert store.post_count() == 0
    assert daemon.batches == []  # never reached the daemon
    resp = await client.post("/ingest", json=[post(1), "x"], headers=AUTH)
    assert (await resp.json())["errors"] == [{"index": 1, "error": "post must be a JSON object"}]
    assert daemon.metrics.registry.get_sample_value(
        "brandmon_posts_malformed_total", {"source": "http"}) == 4


async def test_ndjson(client: TestClient[Any, Any], store: SqliteStore) -> None:
    lines = [json.dumps(post(1)), "", json.dumps(post(2, text="a\u2028b")), json.dumps(post(1))]
    body = "\r\n".join(lines) + "\n"
    resp = await client.post("/ingest", data=body.encode(), headers={
        **AUTH, "Content-Type": "application/x-ndjson"})
    assert resp.status == 202, await resp.text()
    assert await resp.json() == {"accepted": 2, "duplicates": 1}
    assert store.post_count() == 2


async def test_ndjson_bad_line_names_index_and_line(client: TestClient[Any, Any],
                                                    store: SqliteStore) -> None:
    body = "\n".join([json.dumps(post(1)), "", "{oops", json.dumps(post(3, kind="repost"))])
    resp = await client.post("/ingest", data=body.encode(), headers={
        **AUTH, "Content-Type": "application/x-ndjson; charset=utf-8"})
    assert resp.status == 400
    errors = (await resp.json())["errors"]
    assert errors[0]["index"] == 1 and errors[0]["line"] == 3
    assert errors[0]["error"].startswith("invalid JSON: Expecting property name")
    assert errors[1] == {"index": 2, "line": 4, "error": "kind: must be 'mention' or 'outbound'"}
    assert store.post_count() == 0


@pytest.mark.parametrize("body, message", [
    (b'[{"id": "p1",', "invalid JSON: Expecting property name enclosed in double quotes "
                      "at line 1 column 14"),
    (b'[\n  {"id": 1}\n  {"id": 2}]', "invalid JSON: Expecting ',' delimiter at line 3 column 3"),
    (b"", "request body is empty"),
    (b"  \n", "request body is empty"),
    (b"\xff\xfe[]", "not valid UTF-8"),
    (b"[NaN]", "invalid JSON: NaN is not allowed"),
    (b"[" * 4000 + b"]" * 4000, "invalid JSON: nested too deeply"),
    (b"42", "request body must be a JSON array of posts"),
    (b'"hello"', "not a string"),
    (b'{"posts": {"id": "p1"}}', "posts: must be a JSON array"),
    (b'{"posts": [], "extra": 1}', "unknown field(s) next to 'posts': extra"),
])
async def test_invalid_json_messages(client: TestClient[Any, Any], store: SqliteStore,
                                     body: bytes, message: str) -> None:
    resp = await client.post("/ingest", data=body, headers={**AUTH,
                                                            "Content-Type": "application/json"})
    assert resp.status == 400
    assert resp.content_type == "application/json"
    assert message in (await resp.json())["error"]
    assert store.post_count() == 0


async def test_lone_surrogate_rejected_not_500(client: TestClient[Any, Any],
                                               store: SqliteStore) -> None:
    body = json.dumps([post(1), post(2, text="bad \ud800 text")])
    resp = await client.post("/ingest", data=body, headers=AUTH)
    assert resp.status == 400
    assert (await resp.json())["errors"] == [
        {"index": 1, "error": "text: contains invalid Unicode (a lone surrogate)"}]
    assert store.post_count() == 0


async def test_empty_batch_accepted(client: TestClient[Any, Any], daemon: FakeDaemon) -> None:
    resp = await client.post("/ingest", json={"posts": []}, headers=AUTH)
    assert resp.status == 202
    assert await resp.json() == {"accepted": 0, "duplicates": 0}
    assert daemon.batches == []


async def test_oversize_body_413(client: TestClient[Any, Any], store: SqliteStore) -> None:
    big = [post(1, text="x" * 9000)]
    resp = await client.post("/ingest", json=big, headers=AUTH)
    assert resp.status == 413
    assert "max_body_bytes (8192" in (await resp.json())["error"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while reading
        yield b"["
        for _ in range(20):
            yield b" " * 1000
        yield b"]"

    resp = await client.post("/ingest", data=chunks(), headers=AUTH)
    assert resp.status == 413
    assert store.post_count() == 0


async def test_too_many_posts_413(client: TestClient[Any, Any], store: SqliteStore) -> None:
    resp = await client.post("/ingest", json=[post(i) for i in range(6)], headers=AUTH)
    assert resp.status == 413
    assert (await resp.json())["error"] == ("too many posts in one request: 6 (max_batch is 5); "
                                            "split the batch")
    ndjson = "\n".join(json.dumps(post(i)) for i in range(6))
    resp = await client.post("/ingest", data=ndjson, headers={
        **AUTH, "Content-Type": "application/x-ndjson"})
    assert resp.status == 413
    resp = await client.post("/ingest", json=[post(i) for i in range(5)], headers=AUTH)
    assert resp.status == 202
    assert store.post_count() == 5


@pytest.mark.parametrize("error, status", [(StoreError("database is locked"), 503),
                                           (RuntimeError("boom"), 500)])
async def test_daemon_failures_are_json(client: TestClient[Any, Any], daemon: FakeDaemon,
                                        error: Exception, status: int) -> None:
    daemon.fail = error
    resp = await client.post("/ingest", json=[post(1)], headers=AUTH)
    assert resp.status == status
    assert "error" in await resp.json()


# health and metrics ----------------------------------------------------------------
async def test_healthz(client: TestClient[Any, Any], daemon: FakeDaemon) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["rules"] == 2
    for status in ("degraded", "starting"):
        daemon.status = {"status": status, "sources": {"x": "down"}, "outbox": {}, "rules": 0}
        resp = await client.get("/healthz")
        assert resp.status == 503
        assert (await resp.json())["status"] == status


async def test_metrics(client: TestClient[Any, Any], daemon: FakeDaemon) -> None:
    daemon.metrics.posts.labels(source="webhook", kind="mention").inc(3)
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    assert 'brandmon_posts_total{kind="mention",source="webhook"} 3.0' in text
    assert "# TYPE brandmon_queue_depth gauge" in text


# alerts ----------------------------------------------------------------------------
def alert(n: int, brand: str, minutes: int) -> Alert:
    return Alert(id=f"a{n}", dedup_key=f"spike|{brand}|", rule="spike", kind="volume",
                 brand=brand, severity="warning", state="firing", title=f"spike {n}",
                 summary="volume x4", created_at=T0 + timedelta(minutes=minutes),
                 channels=("ops",), details={"observed": n})


@pytest.fixture
def alerts(store: SqliteStore) -> None:
    for n, brand, minutes in [(1, "acme", 0), (2, "globex", 10), (3, "acme", 20),
                              (4, "acme", 30)]:
        store.add_alert(alert(n, brand, minutes))


@pytest.mark.usefixtures("alerts")
async def test_alerts_listing_and_filters(client: TestClient[Any, Any]) -> None:
    async def ids(params: dict[str, str]) -> list[str]:
        resp = await client.get("/alerts", params=params)
        assert resp.status == 200, await resp.text()
        return [a["id"] for a in await resp.json()]

    assert await ids({}) == ["a4", "a3", "a2", "a1"]
    assert await ids({"brand": "acme"}) == ["a4", "a3", "a1"]
    assert await ids({"since": "2024-05-01T12:10:00Z"}) == ["a4", "a3", "a2"]
    assert await ids({"since": "2024-05-01T14:15:00+02:00", "brand": "acme"}) == ["a4", "a3"]
    assert await ids({"limit": "2"}) == ["a4", "a3"]
    assert await ids({"brand": "nobody"}) == []
    # an unencoded "+" in the offset arrives as a space
    resp = await client.get("/alerts?since=2024-05-01T14:25:00+02:00")
    assert [a["id"] for a in await resp.json()] == ["a4"]
    resp = await client.get("/alerts", params={"limit": "1"})
    first = (await resp.json())[0]
    # alert.to_json() as it was, plus where its episode stands (status) and its acks
    assert {k: v for k, v in first.items() if k not in ("status", "acks")} == \
        alert(4, "acme", 30).to_json()
    assert first["status"] == "resolved" and first["acks"] == []
    assert await ids({"brand": "ACME"}) == ["a4", "a3", "a1"]  # any case


@pytest.mark.parametrize("query, message", [
    ("since=yesterday", "since: not an ISO-8601 time"),
    ("limit=0", "limit: must be an integer from 1 to 1000"),
    ("limit=abc", "limit: must be an integer"),
    ("limit=" + "9" * 5000, "limit: must be an integer"),
    ("limit=1001", "limit: must be an integer"),
    ("brand=", "brand: must not be empty"),
    ("brnad=acme", "unknown query parameter(s): brnad"),
    ("brand=a&brand=b", "given more than once: brand"),
])
async def test_alerts_bad_query(client: TestClient[Any, Any], query: str, message: str) -> None:
    resp = await client.get(f"/alerts?{query}")
    assert resp.status == 400
    assert message in (await resp.json())["error"]


@pytest.mark.usefixtures("alerts")
async def test_alert_by_id(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/alerts/a2")
    assert resp.status == 200
    assert (await resp.json())["brand"] == "globex"
    resp = await client.get("/alerts/nope")
    assert resp.status == 404
    assert await resp.json() == {"error": "alert 'nope' not found"}


@pytest.mark.usefixtures("alerts")
async def test_alerts_api_token(make_client: MakeClient) -> None:
    client = await make_client(api_token=API)
    for path in ("/alerts", "/alerts/a1"):
        assert (await client.get(path)).status == 401
        assert (await client.get(path, headers={"Authorization": "Bearer nope"})).status == 401
        assert (await client.get(path, headers=AUTH)).status == 401  # ingest token is not enough
        resp = await client.get(path, headers={"Authorization": f"Bearer {API}"})
        assert resp.status == 200
    # health and metrics stay open for probes and scrapers
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/metrics")).status == 200
    locked = await make_client(api_token="")
    assert (await locked.get("/alerts", headers={"Authorization": "Bearer "})).status == 401


# routing errors ----------------------------------------------------------------------
async def test_unknown_route_and_wrong_method_are_json(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/nope")
    assert resp.status == 404
    assert resp.content_type == "application/json"
    assert await resp.json() == {"error": "not found: /nope"}
    resp = await client.get("/ingest")
    assert resp.status == 405
    assert "POST" in resp.headers["Allow"]
    assert "method GET not allowed on /ingest" in (await resp.json())["error"]
    resp = await client.post("/alerts")
    assert resp.status == 405
    assert resp.content_type == "application/json"


# real server -----------------------------------------------------------------------
async def test_start_http_on_port_zero(daemon: FakeDaemon, store: SqliteStore) -> None:
    runner = await start_http(config(), daemon)
    try:
        port = bound_port(runner)
        assert port > 0
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}"
            async with session.get(f"{url}/healthz") as resp:
                assert resp.status == 200
            async with session.post(f"{url}/ingest", json=[post(1)], headers=AUTH) as resp:
                assert resp.status == 202
        assert store.post_count() == 1
    finally:
        await runner.cleanup()


async def test_start_http_bind_failure(daemon: FakeDaemon) -> None:
    runner = await start_http(config(), daemon)
    try:
        with pytest.raises(OSError):
            await start_http(config(port=bound_port(runner)), daemon)
    finally:
        await runner.cleanup()


# fuzzing ---------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)
field_values = (json_values | st.sampled_from(["", " ", "p\ud800", "2024-05-01T12:00:00Z",
                                                "mention", "outbound", "x" * 10_001]))
mutated_posts = st.builds(
    lambda n, changes, drop: {k: v for k, v in {**post(n), **changes}.items() if k not in drop},
    st.integers(0, 3),
    st.dictionaries(st.sampled_from(["id", "source", "kind", "author", "text", "created_at",
                                     "brand", "url", "extra"]), field_values, max_size=2),
    st.sets(st.sampled_from(["id", "source", "author", "text", "created_at"]), max_size=1))
post_like = st.builds(post, st.integers(0, 50)) | mutated_posts | json_values
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(json.dumps).map(str.encode),
    st.lists(post_like, max_size=7).map(lambda v: json.dumps(v).encode()),
    st.lists(post_like, max_size=7).map(lambda v: json.dumps({"posts": v}).encode()),
    st.lists(post_like, max_size=7).map(
        lambda v: "\n".join(json.dumps(p) for p in v).encode()),
    st.lists(st.builds(post, st.integers(0, 50)), min_size=1, max_size=7).map(
        lambda v: json.dumps(v).encode()),
)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=bodies, ndjson=st.booleans())
async def test_fuzz_ingest_never_5xx_and_all_or_nothing(client: TestClient[Any, Any],
                                                        store: SqliteStore, body: bytes,
                                                        ndjson: bool) -> None:
    content_type = "application/x-ndjson" if ndjson else "application/json"
    before = store.post_count()
    resp = await client.post("/ingest", data=body,
                             headers={**AUTH, "Content-Type": content_type})
    assert resp.status < 500, await resp.text()
    event(f"HTTP {resp.status}")
    data = await resp.json()
    if resp.status == 202:
        assert store.post_count() == before + data["accepted"]
    else:
        assert resp.status in (400, 413)
        assert isinstance(data["error"], str) and data["error"]
        assert store.post_count() == before


# HMAC-signed /ingest ------------------------------------------------------------------
HMAC_SECRET = "hmac-s3cret-0123456789abcdef"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def sign(body: bytes, stamp: int | str | None = None, secret: str = HMAC_SECRET
         ) -> dict[str, str]:
    stamp = str(int(NOW.timestamp()) if stamp is None else stamp)
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-BrandMonitor-Timestamp": stamp, "X-BrandMonitor-Signature": f"sha256={digest}",
            "Content-Type": "application/json"}


def github_sign(body: bytes, secret: str = HMAC_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


@pytest.fixture
async def signed_client(daemon: FakeDaemon) -> AsyncIterator[TestClient[Any, Any]]:
    """Token and HMAC secret both configured; the server's wall clock is fixed at NOW."""
    app = create_app(config(ingest_hmac_secret=HMAC_SECRET), daemon, clock=ManualClock(NOW))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


@pytest.mark.parametrize("shift", [0, -300, 300, -1, 1])
async def test_signed_ingest_accepted(signed_client: TestClient[Any, Any], store: SqliteStore,
                                      shift: int) -> None:
    body = json.dumps([post(1), post(2)]).encode()
    resp = await signed_client.post("/ingest", data=body,
                                    headers=sign(body, int(NOW.timestamp()) + shift))
    assert resp.status == 202, await resp.text()
    assert await resp.json() == {"accepted": 2, "duplicates": 0}
    assert store.has_post("webhook:p1") and store.has_post("webhook:p2")


async def test_github_signature_accepted(signed_client: TestClient[Any, Any],
                                         store: SqliteStore) -> None:
    body = json.dumps(post(7)).encode()
    headers = github_sign(body)
    headers["X-Hub-Signature-256"] = headers["X-Hub-Signature-256"].upper().replace(
        "SHA256=", "sha256=")  # hex case does not matter
    resp = await signed_client.post("/ingest", data=body, headers=headers)
    assert resp.status == 202, await resp.text()
    assert store.has_post("webhook:p7")


async def test_signed_ingest_ndjson(signed_client: TestClient[Any, Any],
                                    store: SqliteStore) -> None:
    body = b"\n".join(json.dumps(post(n)).encode() for n in (1, 2, 3))
    headers = {**sign(body), "Content-Type": "application/x-ndjson"}
    resp = await signed_client.post("/ingest", data=body, headers=headers)
    assert resp.status == 202
    assert store.post_count() == 3


async def test_bearer_token_still_accepted_with_hmac_configured(
        signed_client: TestClient[Any, Any], store: SqliteStore) -> None:
    resp = await signed_client.post("/ingest", json=[post(1)], headers=AUTH)
    assert resp.status == 202
    assert store.post_count() == 1


async def test_hmac_only_configuration(daemon: FakeDaemon, store: SqliteStore) -> None:
    app = create_app(config(ingest_token=None, ingest_hmac_secret=HMAC_SECRET), daemon,
                     clock=ManualClock(NOW))
    async with TestClient(TestServer(app)) as client:
        body = json.dumps([post(1)]).encode()
        resp = await client.post("/ingest", data=body, headers=sign(body))
        assert resp.status == 202
        for headers in ({}, AUTH, {"Authorization": "Bearer "}):
            resp = await client.post("/ingest", data=body, headers=headers)
            assert resp.status == 401
            error = (await resp.json())["error"]
            assert "X-BrandMonitor-Signature" in error and "Bearer <token>" not in error
    assert store.post_count() == 1


async def test_default_clock_is_wall_time(daemon: FakeDaemon, store: SqliteStore) -> None:
    app = create_app(config(ingest_hmac_secret=HMAC_SECRET), daemon)
    async with TestClient(TestServer(app)) as client:
        body = json.dumps([post(1)]).encode()
        now = int(datetime.now(UTC).timestamp())
        assert (await client.post("/ingest", data=body, headers=sign(body, now))).status == 202
        assert (await client.post("/ingest", data=body, headers=sign(body))).status == 401


def _tampered(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body.replace(b"never", b"always"), sign(body)


@pytest.mark.parametrize("case, message", [
    ("wrong secret", "invalid X-BrandMonitor-Signature"),
    ("tampered body", "invalid X-BrandMonitor-Signature"),
    ("stale", "away from the server clock"),
    ("future", "away from the server clock"),
    ("no timestamp", "needs X-BrandMonitor-Timestamp"),
    ("bad timestamp", "must be unix seconds"),
    ("no signature", "requires 'Authorization: Bearer <token>' or X-BrandMonitor-Signature"),
    ("no prefix", "invalid X-BrandMonitor-Signature"),
    ("signed other stamp", "invalid X-BrandMonitor-Signature"),
    ("github wrong secret", "invalid X-Hub-Signature-256"),
    ("github tampered", "invalid X-Hub-Signature-256"),
    ("wrong bearer", "invalid bearer token and no signature"),
    ("non-ascii signature", "invalid X-BrandMonitor-Signature"),
])
async def test_bad_signatures_rejected(signed_client: TestClient[Any, Any], store: SqliteStore,
                                       case: str, message: str) -> None:
    body = json.dumps([post(1)]).encode()
    now = int(NOW.timestamp())
    headers: dict[str, str]
    if case == "wrong secret":
        headers = sign(body, secret="another-secret-0123456789")
    elif case == "tampered body":
        body, headers = _tampered(body)
    elif case == "stale":
        headers = sign(body, now - 301)
    elif case == "future":
        headers = sign(body, now + 301)
    elif case == "no timestamp":
        headers = sign(body)
        del headers["X-BrandMonitor-Timestamp"]
    elif case == "bad timestamp":
        headers = sign(body, "2024-05-01T12:00:00Z")
    elif case == "no signature":
        headers = {"X-BrandMonitor-Timestamp": str(now)}
    elif case == "no prefix":
        headers = sign(body)
        headers["X-BrandMonitor-Signature"] = headers["X-BrandMonitor-Signature"][7:]
    elif case == "signed other stamp":
        headers = dict(sign(body, now - 10), **{"X-BrandMonitor-Timestamp": str(now)})
    elif case == "github wrong secret":
        headers = github_sign(body, secret="another-secret-0123456789")
    elif case == "github tampered":
        headers = github_sign(body)
        body = body.replace(b"never", b"always")
    elif case == "wrong bearer":
        headers = {"Authorization": "Bearer wrong"}
    else:
        headers = sign(body)
        headers["X-BrandMonitor-Signature"] = "sha256=\u00e9" * 3
    resp = await signed_client.post("/ingest", data=body, headers=headers)
    assert resp.status == 401
    text = await resp.text()
    assert message in json.loads(text)["error"]
    assert HMAC_SECRET not in text and INGEST not in text
    expected = hmac.new(HMAC_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert expected not in text
    assert store.post_count() == 0


async def test_body_limit_applies_before_signature(signed_client: TestClient[Any, Any],
                                                   store: SqliteStore) -> None:
    body = json.dumps([post(1, text="x" * 9000)]).encode()
    resp = await signed_client.post("/ingest", data=body, headers=sign(body))
    assert resp.status == 413
    body = b"x" * 9000  # bad signature, oversize body: still 413 (the limit comes first)
    resp = await signed_client.post("/ingest", data=body, headers=sign(b"other"))
    assert resp.status == 413
    assert store.post_count() == 0


async def test_signed_ingest_validates_posts_after_signature(
        signed_client: TestClient[Any, Any], store: SqliteStore) -> None:
    body = b"[{not json"
    resp = await signed_client.post("/ingest", data=body, headers=sign(body))
    assert resp.status == 400
    assert "invalid JSON" in (await resp.json())["error"]
    resp = await signed_client.post("/ingest", data=body, headers=sign(b"[]"))
    assert resp.status == 401  # unsigned garbage is not even parsed


def test_short_or_literal_hmac_secret_refused(tmp_path: Path) -> None:
    from monitor.config.loader import load_config
    from monitor.errors import ConfigError

    path = tmp_path / "config.yaml"
    base = "brands:\n  - name: Acme\n    keywords: [acme]\nhttp:\n  ingest_hmac_secret: "
    path.write_text(base + "literal-secret-0123456789\n")
    with pytest.raises(ConfigError) as literal:
        load_config(path, {})
    assert [str(p) for p in literal.value.problems] == [
        f"{path}:5: http.ingest_hmac_secret: secrets must not be written in files: use "
        "${ENV_VAR} instead"]
    path.write_text(base + "${INGEST_HMAC_SECRET}\n")
    with pytest.raises(ConfigError) as short:
        load_config(path, {"INGEST_HMAC_SECRET": "short"})
    [problem] = short.value.problems
    assert "http.ingest_hmac_secret: too short" in str(problem) and "short\n" not in str(problem)
    config = load_config(path, {"INGEST_HMAC_SECRET": HMAC_SECRET})
    assert config.http.ingest_hmac_secret == HMAC_SECRET


signed_forms = st.sampled_from(["brandmonitor", "github", "none", "both"])
header_text = st.text(max_size=40) | st.sampled_from(
    ["sha256=", "sha256=" + "0" * 64, "SHA256=zz", str(int(NOW.timestamp())), "-1",
     "9" * 30, "1e9", " 1714564800 "])


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=bodies, form=signed_forms, sign_right=st.booleans(), skew=st.integers(-400, 400),
       junk=st.dictionaries(st.sampled_from(["X-BrandMonitor-Timestamp",
                                             "X-BrandMonitor-Signature",
                                             "X-Hub-Signature-256", "Authorization"]),
                            header_text, max_size=2),
       ndjson=st.booleans())
async def test_fuzz_signed_ingest_never_5xx(signed_client: TestClient[Any, Any],
                                            store: SqliteStore, body: bytes, form: str,
                                            sign_right: bool, skew: int,
                                            junk: dict[str, str], ndjson: bool) -> None:
    stamp = int(NOW.timestamp()) + skew
    secret = HMAC_SECRET if sign_right else "not-the-secret-0123456789"
    headers: dict[str, str] = {}
    if form in ("brandmonitor", "both"):
        headers.update(sign(body, stamp, secret))
    if form in ("github", "both"):
        headers.update(github_sign(body, secret))
    # header values must be latin-1 without control characters to be sent at all
    headers.update({k: v for k, v in junk.items()
                    if v.isprintable() and all(ord(c) < 256 for c in v)})
    headers["Content-Type"] = "application/x-ndjson" if ndjson else "application/json"
    before = store.post_count()
    resp = await signed_client.post("/ingest", data=body, headers=headers)
    assert resp.status < 500, await resp.text()
    event(f"HTTP {resp.status}")
    data = await resp.json()
    if resp.status == 202:
        assert store.post_count() == before + data["accepted"]
    else:
        assert resp.status in (400, 401, 413)
        assert HMAC_SECRET not in json.dumps(data)
        assert store.post_count() == before
    clean = form != "none" and sign_right and not junk
    if clean and (form == "github" or abs(skew) <= 300) and len(body) <= 8192:
        assert resp.status != 401, data
    if not sign_right and not any(k == "Authorization" for k in junk):
        assert resp.status in (401, 413)
