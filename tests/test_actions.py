"""Bulk and safe actions (issue 15): ack/unack/silence by id list, rule, brand and glob,
on the command line and over HTTP; the ack history is appended, never overwritten;
silences are checked against the known rules and brands and always expire."""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from monitor.cli import main
from monitor.config.schema import HttpConfig
from monitor.http.server import create_app
from monitor.model import Alert
from monitor.route.lifecycle import AckError
from monitor.store import migrations
from monitor.store.sqlite import SqliteStore
from tests.conftest import write_project
from tests.lifecycle_env import CONFIG, RULES, Env
from tests.test_lifecycle_http import API, GOOD, Daemon
from tests.timeline import T0


@pytest.fixture
def env(tmp_path: Path) -> Env:
    """The lifecycle project with a second brand."""
    return Env(write_project(tmp_path, CONFIG.replace(
        '    allowed_domains: ["acme.example"]',
        '    allowed_domains: ["acme.example"]\n  - name: Globex\n    handles: ["@globex"]'),
        RULES))


def fired(env: Env) -> dict[str, Alert]:
    """Four firing episodes: spike and negative for Acme, spike and an influencer post
    for Globex."""
    out = {}
    for name, (minutes, rule, brand, key) in {
            "spike-acme": (0, "spike", "Acme", ""), "neg-acme": (1, "negative", "Acme", ""),
            "spike-globex": (2, "spike", "Globex", ""),
            "vip-globex": (3, "influencer", "Globex", "post-9")}.items():
        alert = env.fire(minutes, rule=rule, brand=brand, key=key)
        assert isinstance(alert, Alert), name
        out[name] = alert
    return out


def test_ack_history_is_appended_and_never_overwritten(env: Env) -> None:
    alert = fired(env)["spike-acme"]
    lifecycle = env.router.lifecycle
    first = lifecycle.ack(alert.id, "alice", "on it", env.at(5))
    second = lifecycle.ack(alert.dedup_key, "bob", "me too", env.at(6))
    assert (second.acked_by, second.ack_comment) == ("alice", "on it")  # the first stands
    assert [(h.action, h.by, h.comment) for h in second.history] == [
        ("ack", "alice", "on it"), ("ack", "bob", "me too")]
    assert first.history[0].at == T0 + timedelta(minutes=5)
    # unack: reminders come back; the history keeps everything
    assert env.fire(70) is None  # acknowledged: no reminder
    withdrawn = lifecycle.unack(alert.id, "carol", "not fixed", env.at(71))
    assert withdrawn.acked_by is None
    assert isinstance(env.fire(140), Alert)  # a reminder again (repeat_interval 1h)
    again = lifecycle.ack(alert.id, "dave", "", env.at(141))
    assert again.acked_by == "dave"
    assert [(h.action, h.by) for h in again.history] == [
        ("ack", "alice"), ("ack", "bob"), ("unack", "carol"), ("ack", "dave")]
    with pytest.raises(AckError):
        lifecycle.unack("nope", "x", "", env.at(142))
    # the listing shows the episode's history on every alert of it
    rows = lifecycle.history(limit=10)
    row = next(r for r in rows if r["id"] == alert.id)
    assert [a["by"] for a in row["acks"]] == ["alice", "bob", "carol", "dave"]
    assert row["ack"]["by"] == "dave"
    # a new episode of the same key starts with an empty history
    assert env.fire(150, state="resolved") is not None
    new = env.fire(200)
    assert isinstance(new, Alert)
    assert next(r for r in lifecycle.history(limit=10) if r["id"] == new.id)["acks"] == []


def test_migration_v6_keeps_the_acks_stored_before(tmp_path: Path) -> None:
    """A v3 database with an acknowledged episode: the upgrade makes it the first entry
    of the history (released steps are never edited: v6 is a new one)."""
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for step in migrations.STEPS[:3]:
        conn.execute("BEGIN")
        step(conn)
        conn.execute("COMMIT")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '3')")
    conn.execute("CREATE TABLE alert_episodes (dedup_key TEXT PRIMARY KEY, rule TEXT NOT NULL, "
                 "alert_id TEXT NOT NULL, started_at REAL NOT NULL, acked_by TEXT, "
                 "acked_at REAL, ack_comment TEXT, escalated_at REAL)")
    conn.execute("INSERT INTO alert_episodes VALUES ('spike|Acme|', 'spike', 'a1', ?, 'old-ann', "
                 "?, 'from v3', NULL)", (T0.timestamp(), T0.timestamp() + 60))
    conn.close()
    store = SqliteStore(db)
    from monitor.route.lifecycle import Lifecycle

    lifecycle = Lifecycle(store)
    episode = lifecycle.ack("spike|Acme|", "new-bob", "", T0 + timedelta(minutes=5))
    assert [(h.by, h.comment) for h in episode.history] == [("old-ann", "from v3"),
                                                            ("new-bob", "")]
    assert episode.acked_by == "old-ann"
    version = store._one("SELECT value FROM meta WHERE key='schema_version'")[0]
    assert int(version) == migrations.LATEST == 8
    store.close()


# -- command line ----------------------------------------------------------------------------
def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_cli_acks_by_id_list_glob_rule_and_brand(
        env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    alerts = fired(env)
    env.store.close()
    c = ["-c", str(env.db.parent.parent / "config.yaml")]
    # two ids in one ack (one of them as the table shows it: 12 characters)
    assert main(["ack", alerts["spike-acme"].id, alerts["neg-acme"].id[:12], *c, "--json",
                 "--by", "ann"]) == 0
    assert {e["rule"] for e in _json_lines(capsys.readouterr().out)} == {"spike", "negative"}
    # a glob over dedup keys and rules, narrowed to a brand in another case
    assert main(["ack", "spike*", "--brand", "globex", *c, "--json", "--by", "bob"]) == 0
    [episode] = _json_lines(capsys.readouterr().out)
    assert episode["dedup_key"] == "spike|Globex|"
    # --rule alone, dry run: shows, changes nothing
    assert main(["ack", "--rule", "INFLUENCER", *c, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "1 alert(s) would be acknowledged" in out and "influencer" in out
    env.open()
    assert not env.router.lifecycle.acked(alerts["vip-globex"].dedup_key)
    env.store.close()
    # unmatched references are reported, the rest still acted on; exit 1
    assert main(["ack", "churn-risk*", alerts["vip-globex"].id, *c, "--by", "cy"]) == 1
    captured = capsys.readouterr()
    assert "'churn-risk*': matches no firing alert" in captured.err
    assert "1 alert(s) acknowledged" in captured.out
    # nothing chosen is an error, never "everything"
    assert main(["ack", *c]) == 2
    assert "give alert ids" in capsys.readouterr().err
    # unack by glob; the history keeps who acknowledged
    assert main(["unack", "*", "--brand", "acme", *c, "--json", "--by", "dee"]) == 0
    episodes = _json_lines(capsys.readouterr().out)
    assert len(episodes) == 2 and all(e["acked_by"] is None for e in episodes)
    assert [(h["action"], h["by"]) for h in episodes[0]["acks"]] == [("ack", "ann"),
                                                                      ("unack", "dee")]


def test_cli_alerts_table_case_insensitive_filters_and_colour(
        env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor import lifecycle_cli

    alerts = fired(env)
    env.store.close()
    c = ["-c", str(env.db.parent.parent / "config.yaml")]
    assert main(["alerts", *c, "--brand", "acme"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["WHEN", "(UTC)", "STATUS", "SEVERITY", "BRAND", "RULE", "ID",
                                "WHAT"]
    assert len(lines) == 3 and all("Acme" in line for line in lines[1:])
    status_at = lines[0].index("STATUS")
    assert all(line[status_at:].startswith("firing") for line in lines[1:])  # aligned
    assert "\x1b[" not in "\n".join(lines)  # not a terminal: no colour
    assert alerts["neg-acme"].id[:12] in lines[1]
    assert main(["alerts", *c, "--rule", "SPI*", "--json"]) == 0
    assert {r["brand"] for r in _json_lines(capsys.readouterr().out)} == {"Acme", "Globex"}

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    args = main.__globals__["_parser"]().parse_args(["alerts", *c])
    tty = Tty()
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert lifecycle_cli.run(args, out=tty) == 0
    assert "\x1b[31mfiring\x1b[0m" in tty.getvalue()  # firing in red on a terminal
    monkeypatch.setenv("NO_COLOR", "1")
    tty = Tty()
    assert lifecycle_cli.run(args, out=tty) == 0
    assert "\x1b[" not in tty.getvalue()


def test_cli_silences_are_checked_and_always_expire(
        env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    alerts = fired(env)
    env.store.close()
    c = ["-c", str(env.db.parent.parent / "config.yaml")]
    # a typo matches nothing: refused, with the closest rule
    assert main(["silence", "add", "--rule", "spkie", "--for", "2h", *c]) == 1
    err = capsys.readouterr().err
    assert "rule 'spkie' matches no rule" in err and "did you mean 'spike'?" in err
    assert "nothing was silenced" in err
    assert main(["silence", "add", "--brand", "Acme Ar", "--for", "2h", *c]) == 1
    assert "did you mean 'Acme'?" in capsys.readouterr().err
    assert main(["silence", "add", "--rule", "churn*", "--for", "2h", *c]) == 1
    assert "rule 'churn*' matches no rule" in capsys.readouterr().err
    # --force adds it anyway (a rule about to be added), with a warning
    assert main(["silence", "add", "--rule", "spkie", "--for", "1h", "--force", *c,
                 "--json"]) == 0
    captured = capsys.readouterr()
    assert "warning: rule 'spkie'" in captured.err
    assert _json_lines(captured.out)[0]["rule"] == "spkie"
    # any case is written as configured
    assert main(["silence", "add", "--brand", "acme", "--rule", "SPIKE", "--for", "2h", *c,
                 "--json"]) == 0
    made = _json_lines(capsys.readouterr().out)[0]
    assert (made["brand"], made["rule"]) == ("Acme", "spike")
    # by alert ids: one silence per rule and brand among them
    assert main(["silence", "add", alerts["spike-globex"].id[:12], alerts["vip-globex"].id,
                 "--for", "30m", *c, "--json"]) == 0
    made = _json_lines(capsys.readouterr().out)
    assert [(s["rule"], s["brand"]) for s in made] == [("spike", "Globex"),
                                                       ("influencer", "Globex")]
    assert all(s["ends_at"] > s["starts_at"] for s in made)
    # every silence expires: no --for, no silence
    assert main(["silence", "add", "--rule", "spike", *c]) == 2
    assert "every silence expires" in capsys.readouterr().err
    # bulk expiry
    assert main(["silence", "expire", made[0]["id"], made[1]["id"], *c]) == 0
    capsys.readouterr()


# -- HTTP ------------------------------------------------------------------------------------
class LabelledDaemon(Daemon):
    def labels(self) -> dict[str, list[str]]:
        return {"rule": ["spike", "negative", "influencer", "outbound"],
                "brand": ["Acme", "Globex"], "kind": ["volume_spike", "negative_surge"]}


@pytest.fixture
async def client(env: Env) -> AsyncIterator[TestClient[Any, Any]]:
    config = HttpConfig(host="127.0.0.1", port=0, api_token=API)
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(config,
                                                                    LabelledDaemon(env))))
    await client.start_server()
    yield client
    await client.close()


async def test_http_bulk_ack_unack_and_alert_status(env: Env,
                                                    client: TestClient[Any, Any]) -> None:
    alerts = fired(env)
    resp = await client.post("/alerts/ack", headers=GOOD,
                             json={"ids": ["spike*", "nope"], "brand": "ACME", "by": "ann",
                                   "comment": "looking"})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert [e["dedup_key"] for e in body["episodes"]] == ["spike|Acme|"]
    assert body["unmatched"] == [{"ref": "nope", "error": "no such alert id or firing dedup "
                                                          "key"}]
    # GET /alerts/{id}: state (what it announced) and status (where it is now) both there
    one = await (await client.get(f"/alerts/{alerts['spike-acme'].id}", headers=GOOD)).json()
    assert one["state"] == "firing" and one["status"] == "acknowledged"
    assert one["ack"]["by"] == "ann" and one["acks"][0]["comment"] == "looking"
    listed = await (await client.get("/alerts", headers=GOOD,
                                     params={"status": "acknowledged"})).json()
    assert [a["id"] for a in listed] == [alerts["spike-acme"].id]
    # a second ack is appended, does not overwrite
    resp = await client.post(f"/alerts/{alerts['spike-acme'].id}/ack", headers=GOOD,
                             json={"by": "bob"})
    episode = await resp.json()
    assert episode["acked_by"] == "ann" and [a["by"] for a in episode["acks"]] == ["ann", "bob"]
    # by rule, dry run
    resp = await client.post("/alerts/ack", headers=GOOD, json={"rule": "infl*",
                                                                "dry_run": True})
    assert (await resp.json())["dry_run"] is True
    assert not env.router.lifecycle.acked(alerts["vip-globex"].dedup_key)
    # unack one, then unack many (a not-acknowledged one is reported)
    resp = await client.post(f"/alerts/{alerts['spike-acme'].id}/unack", headers=GOOD,
                             json={"by": "cy", "comment": "reopened"})
    assert (await resp.json())["acked_by"] is None
    resp = await client.post(f"/alerts/{alerts['spike-acme'].id}/unack", headers=GOOD)
    assert resp.status == 409
    resp = await client.post("/alerts/unack", headers=GOOD, json={"brand": "acme"})
    assert resp.status == 404 and len((await resp.json())["unmatched"]) == 2
    resp = await client.post("/alerts/ack", headers=GOOD, json={})
    assert resp.status == 400 and "give alert ids" in (await resp.json())["error"]
    assert (await client.post("/alerts/ack", json={"rule": "x"})).status == 401


async def test_http_silences_checked_by_alert_ids_and_with_expiry(
        env: Env, client: TestClient[Any, Any]) -> None:
    alerts = fired(env)
    resp = await client.post("/silences", headers=GOOD, json={"rule": "churn-rsk", "for": "1h"})
    assert resp.status == 400
    body = await resp.json()
    assert "matches no rule" in body["error"] and "nothing was silenced" in body["error"]
    resp = await client.post("/silences", headers=GOOD,
                             json={"rule": "churn-rsk", "for": "1h", "force": True})
    assert resp.status == 201 and (await resp.json())["warnings"]
    resp = await client.post("/silences", headers=GOOD, json={"brand": "acme", "for": "1h"})
    made = await resp.json()
    assert resp.status == 201 and made["brand"] == "Acme" and made["warnings"]
    resp = await client.post("/silences", headers=GOOD, json={"brand": "Acme"})
    assert resp.status == 400 and "'for'" in (await resp.json())["error"]  # must expire
    resp = await client.post("/silences", headers=GOOD, json={
        "alert_ids": [alerts["spike-globex"].id, alerts["vip-globex"].id[:10]], "for": "2h"})
    assert resp.status == 201, await resp.text()
    assert [(s["rule"], s["brand"]) for s in (await resp.json())["silences"]] == [
        ("spike", "Globex"), ("influencer", "Globex")]
    resp = await client.post("/silences", headers=GOOD, json={"alert_ids": ["nope00"],
                                                              "for": "2h"})
    assert resp.status == 404
    # a silenced Globex spike is stored, not notified (matchers in any case)
    env.fire(10, state="resolved", brand="Globex")
    assert env.fire(45, brand="Globex") is None
    assert env.suppressed("spike", "silenced") >= 1
