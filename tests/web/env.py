"""A real daemon for the dashboard tests: two brands, tokens, and a known history fed
through POST /ingest (ordinary traffic, a complaint storm, a VIP complaint and a
profane outbound post)."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.model import Post
from tests.conftest import ROOT
from tests.daemon import DaemonProcess, free_port, wait_for
from tests.timeline import post, steady

__all__ = ["post"]

INGEST = "web-ingest-token-0123456789"
API = "web-admin-token-0123456789ab"
READ = "web-read-token-0123456789abc"
ENV = {"BM_WEB_INGEST": INGEST, "BM_WEB_API": API, "BM_WEB_READ": READ}
GLOBEX_TEXTS = ("ordered a globex router", "@globex support was quick",
                "globex shipping update received")


def write_project(tmp: Path, port: int, *, tokens: bool = True) -> Path:
    (tmp / "rules").mkdir(parents=True, exist_ok=True)
    auth = ("  api_token: ${BM_WEB_API}\n  read_token: ${BM_WEB_READ}\n" if tokens else "")
    (tmp / "config.yaml").write_text(textwrap.dedent("""\
        state_dir: state
        checkpoint_every: 1s
        enrich_workers: 0
        brands:
          - name: Acme
            handles: ["@acme"]
            keywords: [acme]
          - name: Globex
            handles: ["@globex"]
            keywords: [globex]
        channels:
          - name: file
            url: jsonl://state/alerts.jsonl
        http:
          host: 127.0.0.1
          port: {port}
          ingest_token: ${{BM_WEB_INGEST}}
        {auth}sentiment:
          packs: []
          lexicon_dir: {lexicons}
        """).format(port=port, auth=auth, lexicons=ROOT / "rules" / "lexicons"))
    (tmp / "rules" / "rules.yaml").write_text(textwrap.dedent("""\
        rules:
          - name: spike
            signal: volume_spike
            channels: [file]
            notify_resolved: false
            params: {bucket: 5m, min_count: 10, min_authors: 5}
          - name: vip
            signal: influencer
            channels: [file]
            cooldown: 0s
            params: {min_followers: 100000}
          - name: off-message
            signal: outbound
            severity: critical
            channels: [file]
            cooldown: 0s
        """))
    return tmp / "config.yaml"


def history(now: datetime, hours: float = 3.0) -> list[Post]:
    """Ordinary traffic for both brands over the last ``hours`` (up to 10 min ago)."""
    start = now - timedelta(hours=hours)
    acme = steady(start, hours - 1 / 6, 8, seed=3)
    globex = steady(start, hours - 1 / 6, 4, first_id=500_000, seed=4, texts=GLOBEX_TEXTS)
    for i, p in enumerate(globex):
        globex[i] = post(500_000 + i, p.created_at, p.text, author=p.author.handle)
    return sorted(acme + globex, key=lambda p: p.created_at)


def storm(now: datetime, n: int = 150) -> list[Post]:
    """A complaint storm over the 5 minutes before ``now``, all dated before it: the
    daemon accepts posts dated up to ``max_future`` ahead, but the pulse page draws
    buckets up to the current one, so a post dated after ``now`` may land in a bucket
    the page does not show yet (``steady`` places posts in whole 5-minute steps)."""
    return steady(now - timedelta(minutes=5), 5 / 60, n, first_id=900_000, seed=9,
                  texts=("@acme the app is down, cannot log in", "acme charged me twice?!"))


def vip(n: int, now: datetime) -> Post:
    return post(800_000 + n, now - timedelta(seconds=30),
                "@acme worst airline ever, lost my bag and the staff was rude. terrible",
                author=f"famous{n}", followers=500_000)


def outbound(n: int, now: datetime) -> Post:
    return post(700_000 + n, now - timedelta(seconds=20),
                "shit, these f*cking delays are not our fault", author="acme",
                kind="outbound", followers=90_000)


def ingest(daemon: DaemonProcess, posts: list[Post]) -> None:
    for i in range(0, len(posts), 1000):
        status, body = daemon.request("POST", "/ingest", [p.to_json() for p in posts[i:i + 1000]],
                                      INGEST)
        assert status == 202, body


def alerts(daemon: DaemonProcess, **query: str) -> list[dict[str, Any]]:
    path = "/alerts?limit=500" + "".join(f"&{k}={v}" for k, v in query.items())
    status, body = daemon.request("GET", path, token=API)
    assert status == 200, body
    return list(body)


def wait_alert(daemon: DaemonProcess, rule: str, count: int = 1,
               timeout: float = 30) -> list[dict[str, Any]]:
    return list(wait_for(lambda: [a for a in alerts(daemon) if a["rule"] == rule][:count]
                         if len([a for a in alerts(daemon) if a["rule"] == rule]) >= count
                         else None, timeout, f"{count} {rule} alert(s)"))


def start(tmp: Path, *, tokens: bool = True) -> DaemonProcess:
    port = free_port()
    config = write_project(tmp, port, tokens=tokens)
    return DaemonProcess(config, port, ENV).start()


def now() -> datetime:
    return datetime.now(UTC)
