"""Lifecycle over HTTP (ack, silences, alert states) and the CLI on a real state DB."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from monitor.cli import main
from monitor.clock import ManualClock
from monitor.config.schema import HttpConfig
from monitor.http.server import create_app
from monitor.model import Alert, Post
from tests.lifecycle_env import Env, lifecycle_project

API = "api-s3cret"
GOOD = {"Authorization": f"Bearer {API}"}
BAD = {"Authorization": "Bearer nope"}


class Daemon:
    def __init__(self, env: Env) -> None:
        self.metrics = env.metrics
        self.store = env.store
        self.clock: ManualClock = env.clock

    async def ingest(self, posts: list[Post]) -> tuple[int, int]:
        raise AssertionError("not used")

    def health(self) -> dict[str, Any]:
        return {"status": "ok"}


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(lifecycle_project(tmp_path))


MakeClient = Callable[..., Any]


@pytest.fixture
async def make_client(env: Env) -> AsyncIterator[MakeClient]:
    clients: list[TestClient[Any, Any]] = []

    async def make(token: str | None = API) -> TestClient[Any, Any]:
        config = HttpConfig(host="127.0.0.1", port=0, api_token=token)
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(config, Daemon(env))))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_writes_need_the_api_token(env: Env, make_client: MakeClient) -> None:
    alert = env.fire(0)
    assert isinstance(alert, Alert)
    open_ = await make_client(None)
    for method, path in [("POST", f"/alerts/{alert.id}/ack"), ("POST", "/silences"),
                         ("DELETE", "/silences/x")]:
        resp = await open_.request(method, path, json={"rule": "spike", "for": "1h"})
        assert resp.status == 403, path
        assert "set http.api_token" in (await resp.json())["error"]
    client = await make_client()
    for method, path in [("POST", f"/alerts/{alert.id}/ack"), ("POST", "/silences"),
                         ("DELETE", "/silences/x"), ("GET", "/silences")]:
        assert (await client.request(method, path)).status == 401, path
        assert (await client.request(method, path, headers=BAD)).status == 401, path
    assert not env.router.lifecycle.acked(alert.dedup_key)
    assert (await open_.get("/silences")).status == 200  # reads follow /alerts: open


async def test_ack_over_http_and_alert_states(env: Env, make_client: MakeClient) -> None:
    client = await make_client()
    alert = env.fire(0)
    assert isinstance(alert, Alert)
    resolved = env.fire(0, rule="negative")
    assert isinstance(resolved, Alert) and env.fire(5, rule="negative", state="resolved")

    async def states(state: str) -> list[str]:
        resp = await client.get("/alerts", params={"state": state}, headers=GOOD)
        assert resp.status == 200
        return [a["title"][:20] for a in await resp.json()]

    assert await states("firing") == [alert.title[:20]]
    resp = await client.post(f"/alerts/{alert.id}/ack", headers=GOOD,
                             json={"by": "dana", "comment": "looking"})
    assert resp.status == 200
    body = await resp.json()
    assert body["acked_by"] == "dana" and body["comment"] == "looking"
    assert await states("firing") == []
    assert await states("acknowledged") == [alert.title[:20]]
    assert len(await states("resolved")) == 2  # the grouped update and its all clear
    resp = await client.get("/alerts", params={"state": "acknowledged"}, headers=GOOD)
    assert (await resp.json())[0]["ack"]["by"] == "dana"
    assert (await client.post("/alerts/nope/ack", headers=GOOD)).status == 404
    grouped = next(a for a in env.store.alerts() if a.rule == "negative" and a.state == "firing")
    resp = await client.post(f"/alerts/{grouped.id}/ack", headers=GOOD)
    assert resp.status == 409
    resp = await client.post(f"/alerts/{alert.id}/ack", headers=GOOD, json={"who": "x"})
    assert resp.status == 400
    resp = await client.get("/alerts?state=open", headers=GOOD)
    assert resp.status == 400 and "state: must be one of" in (await resp.json())["error"]
    assert env.router.tick(env.at(60)) == []  # acknowledged: no escalation


async def test_silences_crud(env: Env, make_client: MakeClient) -> None:
    client = await make_client()
    resp = await client.post("/silences", headers=GOOD,
                             json={"brand": "Acme", "for": "2h", "comment": "launch"})
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["active"] is True and created["comment"] == "launch"
    assert env.fire(1) is None  # silenced
    listed = await (await client.get("/silences", headers=GOOD)).json()
    assert [s["id"] for s in listed] == [created["id"]]
    resp = await client.post("/silences", headers=GOOD, json={"for": "2h"})
    assert resp.status == 400 and "matcher" in (await resp.json())["error"]
    env.at(10)
    resp = await client.delete(f"/silences/{created['id']}", headers=GOOD)
    assert resp.status == 200
    assert (await client.delete(f"/silences/{created['id']}", headers=GOOD)).status == 409
    assert (await client.delete("/silences/unknown", headers=GOOD)).status == 404
    assert await (await client.get("/silences", headers=GOOD)).json() == []
    everything = await (await client.get("/silences?expired=true", headers=GOOD)).json()
    assert everything[0]["active"] is False
    assert isinstance(env.fire(11), Alert)


# command line ----------------------------------------------------------------------
def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_cli_alerts_ack_and_silences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = lifecycle_project(tmp_path)
    env = Env(config)
    alert = env.fire(0)
    assert isinstance(alert, Alert)
    env.store.close()  # the CLI opens the state database itself
    c = ["-c", str(config), "--json"]
    assert main(["alerts", *c, "--state", "firing"]) == 0
    assert [a["id"] for a in _lines(capsys.readouterr().out)] == [alert.id]
    assert main(["ack", alert.id, *c, "--by", "erin", "--comment", "mine"]) == 0
    assert _lines(capsys.readouterr().out)[0]["acked_by"] == "erin"
    assert main(["alerts", *c, "--state", "firing"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["alerts", *c, "--brand", "Acme", "--since", "2026-03-01T00:00:00Z"]) == 0
    assert _lines(capsys.readouterr().out)[0]["status"] == "acknowledged"
    assert main(["ack", "nope", *c]) == 1
    assert "no such alert id" in capsys.readouterr().err
    assert main(["silence", "add", *c, "--rule", "spike", "--for", "2h",
                 "--comment", "deploy"]) == 0
    added = _lines(capsys.readouterr().out)[0]
    assert added["rule"] == "spike" and added["comment"] == "deploy"
    assert main(["silence", "list", *c]) == 0
    assert [s["id"] for s in _lines(capsys.readouterr().out)] == [added["id"]]
    assert main(["silence", "add", *c, "--rule", "spike"]) == 2  # no --for
    assert main(["silence", "expire", added["id"], *c]) == 0
    assert main(["silence", "expire", added["id"], *c]) == 1
    capsys.readouterr()
    assert main(["silence", "list", *c]) == 0
    assert capsys.readouterr().out == ""
    env.open()  # the daemon's view: the CLI's ack is there
    assert env.router.lifecycle.acked(alert.dedup_key)
