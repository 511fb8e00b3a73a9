"""Helpers for the fault tests (issue 7): a replay timeline with known incidents, a
project on disk for the real daemon, and receivers that count what arrives."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import re
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

from aiohttp import web

from monitor.model import Author, Post
from tests.conftest import ROOT
from tests.daemon import DaemonProcess, wait_for

BRANDS = {"Acme": "acme", "Globex": "globex"}
_ALERT_ID = re.compile(r"\balert ([0-9a-f]{24})\b")  # the footer of every notification


# -- the timeline -------------------------------------------------------------------------
def _post(pid: str, at: datetime, text: str, author: str, *, followers: int = 120,
          kind: str = "mention") -> Post:
    return Post(id=pid, source="replay", kind=kind,  # type: ignore[arg-type]
                author=Author(id=author, handle=author, followers=followers), text=text,
                created_at=at, url=f"https://x.example/{author}/{pid}")


def timeline(end: datetime, *, days: float = 2.0, per_bucket: int = 3,
             seed: int = 7) -> list[Post]:
    """``days`` of ordinary traffic for two brands up to ``end`` plus four incidents.

    The incidents, each meant to raise one known alert: a complaint storm for Acme
    (end - 9h), a negative post by a 500k-follower account about Acme (end - 7h), a
    complaint storm for Globex (end - 5h) and a profane outbound post from Acme's own
    account (end - 3h). Traffic continues after each one, so a storm's "all clear"
    comes from the posts themselves, not from the wall clock.
    """
    rng = random.Random(seed)
    end = _bucket(end)  # the traffic's 5-minute slots are the detector's buckets
    start = end - timedelta(days=days)
    posts: list[Post] = []
    calm = {"Acme": ["flying with @acme today", "acme lounge is nice",
                     "@acme what time is boarding"],
            "Globex": ["ordered a globex router", "@globex support was quick",
                       "globex shipping update received"]}
    t = start
    while t < end:
        for brand, handle in BRANDS.items():
            # at most twice the mean: ordinary traffic never reaches a spike's min_count
            count = round(rng.gauss(per_bucket, per_bucket ** 0.5))
            for _ in range(min(2 * per_bucket, max(0, count))):
                at = t + timedelta(seconds=rng.uniform(0, 299))
                posts.append(_post(f"{handle}-{len(posts)}", at, rng.choice(calm[brand]),
                                   f"u{rng.randrange(5000)}"))
        t += timedelta(minutes=5)

    def storm(brand: str, at: datetime, texts: list[str], n: int = 120) -> None:
        handle = BRANDS[brand]
        for i in range(n):
            posts.append(_post(f"{handle}-storm-{i}", at + timedelta(seconds=rng.uniform(0, 240)),
                               rng.choice(texts), f"angry{handle}{i}"))

    storm("Acme", _bucket(end - timedelta(hours=9)),
          ["@acme the app is down, cannot log in", "acme charged me twice?!"])
    posts.append(_post("acme-vip-1", end - timedelta(hours=7, minutes=2),
                       "@acme worst airline ever, lost my bag and the staff was rude. "
                       "terrible, awful service", "famous_traveller", followers=500_000))
    storm("Globex", _bucket(end - timedelta(hours=5)),
          ["@globex outage again, my router is dead", "globex billing is broken, refund me"])
    posts.append(_post("acme-out-1", end - timedelta(hours=3, minutes=1),
                       "shit, these f*cking delays are not our fault", "acme",
                       kind="outbound", followers=90_000))
    return sorted(posts, key=lambda p: p.created_at)


def _bucket(when: datetime) -> datetime:
    return when.replace(minute=when.minute - when.minute % 5, second=0, microsecond=0)


def write_jsonl(path: Path, posts: list[Post]) -> Path:
    path.write_text("".join(json.dumps(p.to_json(), separators=(",", ":")) + "\n"
                            for p in posts))
    return path


# -- the project on disk --------------------------------------------------------------------
RULES = """\
rules:
  - name: spike
    signal: volume_spike
    channels: {spike_channels}
    params: {{bucket: 5m, min_count: 10, min_authors: 5}}
  - name: vip
    signal: influencer
    channels: {vip_channels}
    cooldown: 0s
    params: {{min_followers: 100000}}
  - name: off-message
    signal: outbound
    severity: critical
    channels: {channels}
    cooldown: 0s
"""


def write_project(tmp: Path, http_port: int, replay: Path | None, channels: dict[str, str],
                  *, spike_channels: list[str] | None = None, backoff: str = "0.2s",
                  token: str | None = None, email_rules: bool = True,
                  replay_rate: float = 0.0) -> Path:
    """config.yaml + rules/ for the real daemon; ``channels`` maps name to URL.

    The off-message rule goes to every channel; the spike rule to ``spike_channels``
    (default: all), the vip rule to all or, without ``email_rules``, all but "email".
    """
    (tmp / "rules").mkdir(parents=True, exist_ok=True)
    chans = "".join(f"  - name: {name}\n    url: {url}\n    backoff: {backoff}\n"
                    f"    max_backoff: 1s\n    max_attempts: 1000\n"
                    for name, url in channels.items())
    sources = ""
    if replay is not None:
        sources = (f"sources:\n  - name: history\n    type: replay\n"
                   f"    options: {{path: {json.dumps(str(replay))}, rate: {replay_rate}}}\n")
    ingest = f"  ingest_token: ${{{token}}}\n" if token else ""
    brands = "".join(f"  - name: {brand}\n    handles: ['@{handle}']\n    keywords: [{handle}]\n"
                     for brand, handle in BRANDS.items())
    (tmp / "config.yaml").write_text(
        f"state_dir: state\nbrands:\n{brands}{sources}channels:\n{chans}"
        f"http:\n  host: 127.0.0.1\n  port: {http_port}\n{ingest}"
        f"sentiment:\n  packs: []\n  lexicon_dir: {ROOT / 'rules' / 'lexicons'}\n")
    names = list(channels)
    (tmp / "rules" / "rules.yaml").write_text(textwrap.dedent(RULES).format(
        channels=json.dumps(names), spike_channels=json.dumps(spike_channels or names),
        vip_channels=json.dumps([n for n in names if email_rules or n != "email"])))
    return tmp / "config.yaml"


def read_jsonl_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


# -- receivers --------------------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    """One raw POST to the ``webhook://`` endpoint, as it arrived."""

    key: str | None        # Idempotency-Key header
    alert_id: str          # the alert id in the JSON body
    signature_ok: bool     # X-BrandMonitor-Signature verified (True when no secret is set)


@dataclass
class HookReceiver:
    """A local aiohttp server with two endpoints.

    ``/hook`` takes apprise's ``json://`` and records each POST's alert id.
    ``/webhook`` takes the native ``webhook://`` channel and behaves like a real
    idempotent receiver: it records every raw delivery, and processes an alert only
    the first time its Idempotency-Key is seen (a repeat is answered 200, unprocessed).
    With ``secret`` it also checks each delivery's HMAC signature.
    """

    secret: bytes | None = None
    received: list[str] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    processed: dict[str, str] = field(default_factory=dict)  # key -> alert id, in order
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        found = _ALERT_ID.search(str(body.get("message", "")))
        with self._lock:
            self.received.append(found.group(1) if found else f"?{body.get('title')}")
        return web.json_response({"ok": True})

    async def _webhook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        alert_id = str(json.loads(raw).get("id"))
        key = request.headers.get("Idempotency-Key")
        ok = True
        if self.secret is not None:
            stamp = request.headers.get("X-BrandMonitor-Timestamp", "")
            mac = hmac.new(self.secret, stamp.encode() + b"." + raw, hashlib.sha256)
            ok = (stamp.isdigit() and abs(time.time() - int(stamp)) <= 300
                  and hmac.compare_digest(request.headers.get("X-BrandMonitor-Signature", ""),
                                          "sha256=" + mac.hexdigest()))
        with self._lock:
            self.deliveries.append(Delivery(key, alert_id, ok))
            if not ok or key is None:
                return web.json_response({"error": "bad signature or no key"}, status=400)
            if key in self.processed:
                return web.json_response({"ok": True, "replayed": True})
            self.processed[key] = alert_id
        return web.json_response({"ok": True})

    def start(self) -> HookReceiver:
        ready = threading.Event()

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/hook", self._hook)
            app.router.add_post("/webhook", self._webhook)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = int(self._runner.addresses[0][1])
            ready.set()

        def thread() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(serve())
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
            loop.close()

        self._thread = threading.Thread(target=thread, name="hook-receiver", daemon=True)
        self._thread.start()
        assert ready.wait(10), "the hook receiver did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def ids(self) -> list[str]:
        """Alert ids of the ``json://`` posts, as received."""
        with self._lock:
            return list(self.received)

    def raw_ids(self) -> list[str]:
        """Alert ids of every raw ``webhook://`` delivery, duplicates included."""
        with self._lock:
            return [d.alert_id for d in self.deliveries]

    def raw(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def processed_ids(self) -> list[str]:
        """Alert ids the idempotent receiver acted on (once per key), in order."""
        with self._lock:
            return list(self.processed.values())


class Inbox:
    """aiosmtpd handler: every message, and a login check that accepts anyone."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def subjects(self) -> list[str]:
        """Decoded (a headline with "\u00d7" arrives as an RFC 2047 encoded word)."""
        from email.header import decode_header, make_header

        return [str(make_header(decode_header(str(m["Subject"])))) for m in self.messages]

    def ids(self) -> list[str]:
        out = []
        for message in self.messages:
            parts = message.walk() if message.is_multipart() else [message]
            text = "".join((p.get_payload(decode=True) or b"").decode("utf-8", "replace")
                           for p in parts if not p.is_multipart())
            found = _ALERT_ID.search(text)
            out.append(found.group(1) if found else f"?{message['Subject']}")
        return out


def accept_any_login(server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> Any:
    from aiosmtpd.smtp import AuthResult

    return AuthResult(success=True)


# -- driving the daemon --------------------------------------------------------------------
def spawn(daemon: DaemonProcess) -> None:
    """Start the daemon process without waiting for it to answer (to kill it anywhere)."""
    with daemon.log.open("ab") as handle:
        daemon.proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "-c",
                                        str(daemon.config)], stdout=handle, stderr=handle,
                                       env=daemon.env, cwd=daemon.config.parent)


def post_count(db: Path) -> int:
    """Posts stored so far (read-only; 0 while the database does not exist yet)."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.Error:
        return 0
    try:
        return int(con.execute("SELECT count(*) FROM posts").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        con.close()


def outbox_rows(db: Path) -> list[tuple[str, str, str]]:
    """(alert id, channel, status) of every outbox row, oldest first."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [(str(r[0]), str(r[1]), str(r[2])) for r in
                con.execute("SELECT alert_id, channel, status FROM outbox ORDER BY id")]
    finally:
        con.close()


def settled(daemon: DaemonProcess, source: str = "history") -> bool:
    """The replay finished, nothing is queued and the outbox has nothing pending."""
    status, health = daemon.request("GET", "/healthz")
    if status != 200:
        return False
    return (health["sources"].get(source, {}).get("state") == "finished"
            and health["queue"] == 0 and health["outbox"].get("pending", 0) == 0)


def run_to_end(daemon: DaemonProcess, timeout: float = 60.0) -> None:
    daemon.start()
    wait_for(lambda: settled(daemon), timeout, "the replay to finish and the outbox to drain")
    time.sleep(0.3)  # a tick or two after the end: nothing more may be raised
    wait_for(lambda: settled(daemon), timeout, "the outbox to drain")
    assert daemon.stop() == 0


def duplicates(ids: list[str]) -> dict[str, int]:
    return {k: n for k, n in Counter(ids).items() if n > 1}
