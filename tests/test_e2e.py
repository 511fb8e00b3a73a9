"""The real daemon process: /ingest, email to a real SMTP server, SIGKILL, restart,
SIGHUP with a bad rule file, SIGTERM drain."""

from __future__ import annotations

import signal
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.daemon import DaemonProcess, free_port, wait_for
from tests.fault_helpers import Inbox
from tests.timeline import steady

pytestmark = pytest.mark.e2e
TOKEN = "e2e-ingest-token-0123456789"


def _config(tmp: Path, http_port: int, smtp_port: int, verdict_wait: str = "50ms") -> Path:
    (tmp / "rules").mkdir()
    (tmp / "config.yaml").write_text(textwrap.dedent(f"""\
        state_dir: state
        brands:
          - name: Acme
            handles: ["@acme"]
            keywords: [acme]
        channels:
          - name: email
            url: mailto://bm@127.0.0.1:{smtp_port}?from=bm@example.com&to=pr@example.com&mode=insecure
            backoff: 0.5s
            max_backoff: 1s
            max_attempts: 1000
          - name: file
            url: jsonl://state/alerts.jsonl
        admin_channels: [file]
        http:
          host: 127.0.0.1
          port: {http_port}
          ingest_token: ${{BM_E2E_TOKEN}}
          verdict_wait: {verdict_wait}
        sentiment:
          packs: []
        """))
    (tmp / "rules" / "volume.yaml").write_text(textwrap.dedent("""\
        rules:
          - name: spike
            signal: volume_spike
            channels: [email, file]
            notify_resolved: false
            params: {bucket: 5m, min_count: 10, min_authors: 5}
        """))
    return tmp / "config.yaml"


def _as_json(posts: list[Any]) -> list[dict[str, Any]]:
    return [p.to_json() for p in posts]


def test_burst_email_survives_sigkill_without_loss_or_duplicate(tmp_path: Path) -> None:
    http_port, smtp_port = free_port(), free_port()
    config = _config(tmp_path, http_port, smtp_port)
    daemon = DaemonProcess(config, http_port, {"BM_E2E_TOKEN": TOKEN}).start()
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    try:
        now = datetime.now(UTC)
        history = steady(now - timedelta(days=2), 47.5, 8)
        for i in range(0, len(history), 1000):
            status, body = daemon.request("POST", "/ingest", _as_json(history[i:i + 1000]), TOKEN)
            assert status == 202, body
        # a burst of complaints from many accounts, while the SMTP server is down
        burst = steady(now - timedelta(minutes=3), 0.05, 150, first_id=900_000, seed=9,
                       texts=["@acme the app is down, cannot log in",
                              "acme charged me twice?!"])
        status, body = daemon.request("POST", "/ingest", _as_json(burst), TOKEN)
        assert status == 202 and body["accepted"] == len(burst)
        alerts_file = tmp_path / "state" / "alerts.jsonl"
        wait_for(lambda: alerts_file.exists() and alerts_file.read_text().strip(), 30,
                 "the alert in the JSONL channel")
        daemon.kill()  # SIGKILL with the email still in the outbox

        smtp.start()
        daemon.start()  # restart: the outbox delivers what was pending
        wait_for(lambda: inbox.messages, 30, "the alert email")
        assert "Mentions of Acme are" in inbox.subjects()[0]
        body_text = inbox.messages[0].get_payload(decode=True)
        assert body_text is None or b"mentions" in body_text or inbox.messages[0].is_multipart()

        # a second crash once the delivery is recorded (a crash between the SMTP
        # server's "250 OK" and that record would re-send: delivery is at-least-once)
        wait_for(lambda: daemon.request("GET", "/healthz")[1]["outbox"].get("pending", 0) == 0,
                 30, "the outbox to record the delivery")
        daemon.kill()
        daemon.start()
        status, body = daemon.request("POST", "/ingest", _as_json(burst), TOKEN)
        assert status == 202 and body == {"accepted": 0, "duplicates": len(burst)}
        status, health = daemon.request("GET", "/healthz")
        assert status == 200 and health["outbox"].get("pending", 0) == 0
        assert len(inbox.messages) == 1
        assert len(alerts_file.read_text().strip().splitlines()) == 1
        assert daemon.stop() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()
        if smtp._thread is not None:
            smtp.stop()


def test_sighup_with_bad_rules_keeps_old_rules_and_sigterm_exits_0(tmp_path: Path) -> None:
    http_port = free_port()
    config = _config(tmp_path, http_port, free_port())
    daemon = DaemonProcess(config, http_port, {"BM_E2E_TOKEN": TOKEN}).start()
    try:
        assert daemon.request("GET", "/healthz")[1]["rules"] == 1
        (tmp_path / "rules" / "broken.yaml").write_text(
            "rules:\n  - name: x\n    signal: nope\n    channels: [file]\n")
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: "reload rejected" in daemon.log_text(), 20, "the reload error")
        assert "broken.yaml:3: rules[0].signal" in daemon.log_text()
        assert daemon.request("GET", "/healthz")[1]["rules"] == 1
        alerts_file = tmp_path / "state" / "alerts.jsonl"
        wait_for(lambda: alerts_file.exists() and '"rule":"admin"' in alerts_file.read_text(),
                 20, "the admin alert about the rejected reload")
        (tmp_path / "rules" / "broken.yaml").write_text(textwrap.dedent("""\
            rules:
              - name: vip
                signal: influencer
                channels: [file]
            """))
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: daemon.request("GET", "/healthz")[1]["rules"] == 2, 20, "the reload")
        # a change to the rules folder reloads without a signal too
        (tmp_path / "rules" / "more.yaml").write_text(textwrap.dedent("""\
            rules:
              - name: vip2
                signal: influencer
                channels: [file]
            """))
        wait_for(lambda: daemon.request("GET", "/healthz")[1]["rules"] == 3, 20,
                 "the reload on file change")
        assert daemon.stop() == 0
        assert "stopped" in daemon.log_text()
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()


def test_ctrl_c_stops_the_daemon_and_its_worker_without_a_traceback(tmp_path: Path) -> None:
    """Ctrl-C in a terminal sends SIGINT to the whole process group: the daemon and its
    enrichment worker process must stop cleanly (exit 0, no traceback from either)."""
    import os

    http_port = free_port()
    config = _config(tmp_path, http_port, free_port())
    config.write_text(config.read_text() + "enrich_workers: 1\n")
    daemon = DaemonProcess(config, http_port, {"BM_E2E_TOKEN": TOKEN}, session=True).start()
    try:
        now = datetime.now(UTC)
        status, _ = daemon.request("POST", "/ingest", {"posts": _as_json(
            steady(now - timedelta(minutes=30), 0.4, 3))}, token=TOKEN)
        assert status == 202  # the worker has enriched a batch: it is running
        assert daemon.proc is not None
        os.killpg(daemon.proc.pid, signal.SIGINT)
        assert daemon.proc.wait(30) == 0
        log = daemon.log_text()
        assert "stopped" in log
        assert "Traceback" not in log and "KeyboardInterrupt" not in log, log[-3000:]
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()


def test_shipped_default_config_shows_real_alerts(tmp_path: Path) -> None:
    """The README's `make demo`: the shipped config, sped up 4x, raises every kind of
    alert, one console block each, its time marked simulated; a second `make demo`
    shows the storm again; the demo's state never touches the real state folder."""
    import json
    import shutil

    from tests.conftest import ROOT

    port = free_port()
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    text = (ROOT / "config.yaml").read_text()
    text = text.replace("port: 8080", f"port: {port}").replace("speed: 120", "speed: 480")
    (tmp_path / "config.yaml").write_text(text)
    files = [tmp_path / "state" / "alerts.jsonl", tmp_path / "state" / "security-alerts.jsonl"]

    def fired() -> list[dict[str, Any]]:
        return [json.loads(line) for f in files if f.exists()
                for line in f.read_text().splitlines()]

    def firings(rule: str) -> int:
        return sum(a["rule"] == rule and a["state"] == "firing" for a in fired())

    wanted = {"volume-spike", "negative-surge", "influencer-negative", "outbound-off-message",
              "churn-risk"}

    def storm_seen(run: int) -> bool:  # run 2: the storm again, under new alert ids
        return ({a["rule"] for a in fired()} >= wanted
                and firings("influencer-negative") >= run and firings("churn-risk") >= run
                and firings("volume-spike") + firings("negative-surge") >= 2 * run)

    for run in (1, 2):
        daemon = DaemonProcess(tmp_path / "config.yaml", port).start()
        try:
            wait_for(lambda run=run: storm_seen(run), 60, f"run {run}: alerts of {wanted}")
            assert daemon.stop() == 0
        finally:
            if daemon.proc and daemon.proc.poll() is None:
                daemon.kill()
    assert (tmp_path / "state" / "demo" / "brand-monitor.db").exists()
    assert not (tmp_path / "state" / "brand-monitor.db").exists()  # no real state touched
    log = daemon.log_text()
    assert "demo: starting afresh" in log
    churn = [a for a in fired() if a["rule"] == "churn-risk"]
    assert churn[0]["headline"].endswith(tuple(f"{n} min" for n in range(1, 31)))
    assert " customers said they are leaving Acme Air in the last " in churn[0]["headline"]
    # quiet console: one block per console alert, no log line per alert or delivery
    lines = log.splitlines()
    blocks = [i for i, line in enumerate(lines) if line.startswith("=" * 20)]
    assert blocks and len(blocks) % 2 == 0
    titles = [lines[i + 1] for i in blocks[::2]]
    assert all(t.startswith(("FIRING [", "RESOLVED [", "UPDATED [")) for t in titles)
    assert "(simulated demo time)" in log
    assert " INFO monitor.notify.outbox: delivered" not in log
    assert " monitor.engine: alert " not in log


def test_ingest_reports_posts_the_detectors_cannot_place(tmp_path: Path) -> None:
    """A post too old for the detectors' open windows, or older than the retention, is
    stored but counted by no detector: the answer says so (and why), the log has a line,
    the metrics count it. Posts dated in the future are refused (400)."""
    import urllib.request

    http_port = free_port()
    # the answer waits for the detectors' verdicts however busy the test machine is
    config = _config(tmp_path, http_port, free_port(), verdict_wait="10s")
    daemon = DaemonProcess(config, http_port, {"BM_E2E_TOKEN": TOKEN}).start()
    try:
        now = datetime.now(UTC)
        status, body = daemon.request("POST", "/ingest",
                                      _as_json(steady(now - timedelta(hours=1), 1, 8)), TOKEN)
        assert status == 202 and "unplaced" not in body
        old = steady(now - timedelta(hours=3), 0.02, 30, first_id=50_000, seed=3)[:1]
        ancient = steady(now - timedelta(days=40), 0.02, 30, first_id=60_000, seed=4)[:1]
        status, body = daemon.request("POST", "/ingest", _as_json(old + ancient), TOKEN)
        assert status == 202 and body["accepted"] == 2, body
        assert [(u["index"], u["reason"]) for u in body["unplaced"]] == [(0, "late"),
                                                                         (1, "too_old")]
        assert "no spike or digest can come from it" in body["unplaced"][0]["error"]
        future = steady(now + timedelta(hours=2), 0.02, 30, first_id=70_000, seed=5)[:1]
        status, body = daemon.request("POST", "/ingest", _as_json(future), TOKEN)
        assert status == 400 and "in the future" in body["error"]
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics") as resp:
            metrics = resp.read().decode()
        assert 'brandmon_posts_late_total{brand="Acme"} 1.0' in metrics
        assert 'brandmon_posts_time_rejected_total{reason="ancient"' in metrics or \
            'reason="ancient",source=' in metrics
        wait_for(lambda: "POST /ingest: 2 of 2 post(s) stored but not placed by the "
                 "detectors" in daemon.log_text(), 10, "the log line")
        assert daemon.stop() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()


def test_posts_answered_from_the_journal_survive_sigkill(tmp_path: Path) -> None:
    """/ingest answers once a batch is journaled, before the detectors run it
    (``"queued"``); SIGKILL right after the answer loses nothing: the restarted daemon
    runs the journal through the engine, and a resend is all duplicates."""
    import sqlite3

    http_port = free_port()
    config = _config(tmp_path, http_port, free_port(), verdict_wait="0s")
    daemon = DaemonProcess(config, http_port, {"BM_E2E_TOKEN": TOKEN}).start()
    db = tmp_path / "state" / "brand-monitor.db"
    try:
        now = datetime.now(UTC)
        posts = _as_json(steady(now - timedelta(hours=2), 0.5, 1000, seed=21))
        batches = [posts[i:i + 500] for i in range(0, len(posts), 500)]
        for batch in batches:
            status, body = daemon.request("POST", "/ingest", batch, TOKEN)
            assert status == 202 and body["accepted"] == len(batch), body
        assert body.get("queued") == len(batches[-1])  # answered before the detectors ran
        daemon.kill()
        con = sqlite3.connect(db)
        stored = con.execute("SELECT count(*) FROM posts").fetchone()[0]
        journaled = con.execute("SELECT count(*) FROM journal").fetchone()[0]
        con.close()
        assert journaled > 0 and stored + journaled == len(posts)  # the kill came first
        daemon.start()
        wait_for(lambda: f"resuming {journaled} journaled post(s)" in daemon.log_text(), 30,
                 "the journal to be resumed")
        for batch in batches:  # once stored for good, a resend is all duplicates
            wait_for(lambda b=batch: daemon.request("POST", "/ingest", b, TOKEN)[1] == {
                "accepted": 0, "duplicates": len(b)}, 30, "the journaled posts to be stored")
        assert daemon.stop() == 0
        con = sqlite3.connect(db)
        assert con.execute("SELECT count(*) FROM posts").fetchone()[0] == len(posts)
        assert con.execute("SELECT count(*) FROM journal").fetchone()[0] == 0
        con.close()
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()
    assert "Traceback" not in daemon.log_text()
