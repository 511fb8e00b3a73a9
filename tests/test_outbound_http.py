"""HTTP API of the outbound screen: /watchlist and /approved-posts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from monitor.clock import ManualClock
from monitor.config.schema import HttpConfig
from monitor.detect.outbound import OutboundRuntime
from monitor.http.server import create_app
from monitor.metrics import Metrics
from monitor.store.sqlite import SqliteStore

API = "api-s3cret"
AUTH = {"Authorization": f"Bearer {API}"}
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class Daemon:
    def __init__(self, store: SqliteStore, outbound: bool = True) -> None:
        self.metrics = Metrics()
        self.store = store
        self.clock = ManualClock(NOW)
        if outbound:
            self.outbound = OutboundRuntime(validity=timedelta(days=2))
            self.outbound.bind(store)

    async def ingest(self, posts: list[Any]) -> tuple[int, int]:
        return 0, 0

    def health(self) -> dict[str, Any]:
        return {"status": "ok"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "state.db")
    yield s
    s.close()


@pytest.fixture
async def make(store: SqliteStore) -> AsyncIterator[Any]:
    clients: list[TestClient[Any, Any]] = []

    async def build(token: str | None = API, outbound: bool = True
                    ) -> tuple[TestClient[Any, Any], Daemon]:
        daemon = Daemon(store, outbound)
        config = HttpConfig(host="127.0.0.1", port=0, api_token=token, max_body_bytes=8192,
                            max_batch=3)
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(config, daemon)))
        await client.start_server()
        clients.append(client)
        return client, daemon

    yield build
    for c in clients:
        await c.close()


async def test_watchlist_add_list_delete_and_persist(make: Any, store: SqliteStore) -> None:
    client, daemon = await make()
    resp = await client.post("/watchlist", json={"term": "#SomeTragedy", "note": "breaking",
                                                 "expires_in": "48h"}, headers=AUTH)
    assert resp.status == 201
    entry = await resp.json()
    assert entry["term"] == "#SomeTragedy" and entry["expires_at"] == "2026-03-04T12:00:00Z"
    resp = await client.post("/watchlist", json=[{"term": "Easton", "brand": "Acme"},
                                                 {"term": "Lyon", "expires_at": None}],
                             headers=AUTH)
    assert resp.status == 201 and len((await resp.json())["entries"]) == 2
    listed = await (await client.get("/watchlist", headers=AUTH)).json()
    assert [e["term"] for e in listed] == ["#SomeTragedy", "Easton", "Lyon"]
    acme = await (await client.get("/watchlist?brand=Other", headers=AUTH)).json()
    assert [e["term"] for e in acme] == ["#SomeTragedy", "Lyon"]
    daemon.clock.set(NOW + timedelta(days=3))
    current = await (await client.get("/watchlist", headers=AUTH)).json()
    assert [e["term"] for e in current] == ["Easton", "Lyon"]
    everything = await (await client.get("/watchlist?expired=true", headers=AUTH)).json()
    assert len(everything) == 3
    resp = await client.delete(f"/watchlist/{entry['id']}", headers=AUTH)
    assert resp.status == 200 and (await resp.json()) == {"deleted": entry["id"]}
    assert (await client.delete(f"/watchlist/{entry['id']}", headers=AUTH)).status == 404
    assert len(store.outbound_watch_entries()) == 2


@pytest.mark.parametrize("token, headers, status", [
    (API, {}, 401), (API, {"Authorization": "Bearer nope"}, 401), (None, AUTH, 403),
])
async def test_writes_need_the_api_token(make: Any, token: str | None,
                                         headers: dict[str, str], status: int) -> None:
    client, _ = await make(token)
    for path, body in (("/watchlist", {"term": "x"}), ("/approved-posts", {"text": "x"})):
        resp = await client.post(path, json=body, headers=headers)
        assert resp.status == status, path
        assert "error" in await resp.json()
    assert (await client.delete("/watchlist/x", headers=headers)).status == status


async def test_reads_follow_the_alerts_rule(make: Any) -> None:
    locked, _ = await make(API)
    assert (await locked.get("/watchlist")).status == 401
    assert (await locked.get("/approved-posts", headers=AUTH)).status == 200
    open_, _ = await make(None)
    assert (await open_.get("/watchlist")).status == 200


@pytest.mark.parametrize("body, status, message", [
    ({"term": ""}, 400, "non-empty"),
    ([{"term": "ok"}, {"nope": 1}], 400, "1 of 2 item(s) invalid"),
    ([], 400, "empty"),
    ([{"term": "a"}, {"term": "b"}, {"term": "c"}, {"term": "d"}], 413, "max_batch"),
    ("text", 400, "JSON object"),
])
async def test_watchlist_validation_adds_nothing(make: Any, store: SqliteStore, body: Any,
                                                 status: int, message: str) -> None:
    client, _ = await make()
    resp = await client.post("/watchlist", json=body, headers=AUTH)
    assert resp.status == status
    assert message in (await resp.json())["error"]
    assert store.outbound_watch_entries() == []
    bad = await client.post("/watchlist", data=b"{nope", headers=AUTH)
    assert bad.status == 400 and "invalid JSON" in (await bad.json())["error"]


async def test_approved_posts_register_and_list(make: Any, store: SqliteStore) -> None:
    client, daemon = await make()
    resp = await client.post("/approved-posts", json={"text": "Spring sale!", "brand": "Acme"},
                             headers=AUTH)
    assert resp.status == 201
    item = await resp.json()
    assert item["created"] is True and item["valid_until"] == "2026-03-04T12:00:00Z"
    again = await (await client.post("/approved-posts", json={"posts": [
        {"text": "Spring sale!", "brand": "Acme"}, {"text": "Other", "valid_for": "1h"}]},
        headers=AUTH)).json()
    assert [p["created"] for p in again["posts"]] == [False, True]
    listed = await (await client.get("/approved-posts?brand=Acme", headers=AUTH)).json()
    assert [p["text"] for p in listed] == ["Spring sale!", "Other"]
    daemon.clock.set(NOW + timedelta(hours=2))
    assert len(await (await client.get("/approved-posts", headers=AUTH)).json()) == 1
    assert len(store.approved_posts()) == 2
    match = daemon.outbound.match("Acme", "Spring sale! 🌸", NOW)
    assert match.best is not None and match.score >= 0.9


async def test_query_validation_and_missing_outbound(make: Any) -> None:
    client, _ = await make()
    for query in ("?nope=1", "?expired=maybe", "?brand=", "?brand=a&brand=b"):
        assert (await client.get(f"/watchlist{query}", headers=AUTH)).status == 400, query
    bare, _ = await make(outbound=False)
    resp = await bare.get("/watchlist", headers=AUTH)
    assert resp.status == 404 and "outbound" in (await resp.json())["error"]
    assert (await bare.patch("/watchlist", headers=AUTH)).status == 405
