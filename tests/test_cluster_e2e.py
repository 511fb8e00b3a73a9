"""Partitioned scale-out with the real parts: nats-server (JetStream, file storage) and
PostgreSQL started by fixtures, five real processes: one ingest, three workers, one
notify. A storm replay across 20 brands (two days of calm traffic, a complaint storm
for 10 of them) goes in through /ingest; mid-way one worker is SIGKILLed and, later,
NATS is restarted. Every expected alert is stored in PostgreSQL exactly once and is
acted on once by the deduplicating receiver; the killed worker's partitions are
owned by the others again within 10 s; nothing is lost across the NATS restart
(/ingest answers 202 only after JetStream acknowledged each post)."""

from __future__ import annotations

import random
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.model import Author, Post
from tests.conftest import ROOT
from tests.daemon import DaemonProcess, free_port, wait_for
from tests.fault_helpers import HookReceiver

pytestmark = pytest.mark.e2e

BRANDS = [f"brand{i:02d}" for i in range(20)]
STORMY = BRANDS[::2]  # 10 brands get a complaint storm
PARTITIONS = 8
TOKEN = "cluster-test-token-0123456789"


def posts_for(end: datetime, *, days: float = 2.0, per_bucket: int = 2,
              seed: int = 17) -> list[Post]:
    """Calm traffic for every brand (never enough for a spike) and, for STORMY, a
    storm of 120 complaints in 4 minutes at staggered hours; traffic goes on after
    each storm, so its "all clear" comes from the posts."""
    rng = random.Random(seed)
    start = end - timedelta(days=days)
    posts: list[Post] = []

    def add(pid: str, at: datetime, text: str, author: str) -> None:
        posts.append(Post(id=pid, source="replay", kind="mention",
                          author=Author(id=author, handle=author, followers=100), text=text,
                          created_at=at))

    t = start
    while t < end:
        for brand in BRANDS:
            for _ in range(min(2 * per_bucket, max(0, round(rng.gauss(per_bucket, 1))))):
                add(f"{brand}-{len(posts)}", t + timedelta(seconds=rng.uniform(0, 299)),
                    f"using {brand} today", f"u{rng.randrange(5000)}")
        t += timedelta(minutes=5)
    for i, brand in enumerate(STORMY):
        at = end - timedelta(hours=14) + timedelta(hours=i)
        at = at.replace(minute=at.minute - at.minute % 5, second=0, microsecond=0)
        for n in range(120):
            add(f"{brand}-storm-{n}", at + timedelta(seconds=rng.uniform(0, 240)),
                f"{brand} is down again, refund me", f"angry-{brand}-{n}")
    return sorted(posts, key=lambda p: p.created_at)


def project(tmp: Path, node: str, hook_port: int, *, http_port: int | None) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "rules").mkdir(exist_ok=True)
    brands = "".join(f"  - name: {b}\n    keywords: [{b}]\n" for b in BRANDS)
    http = (f"http:\n  host: 127.0.0.1\n  port: {http_port}\n  ingest_token: ${{BM_TOKEN}}\n"
            if http_port else "http:\n  enabled: false\n")
    (tmp / "config.yaml").write_text(
        f"state_dir: state\nbrands:\n{brands}"
        f"channels:\n  - name: hook\n    url: webhook://127.0.0.1:{hook_port}/webhook\n"
        f"    backoff: 0.2s\n    max_backoff: 1s\n{http}"
        f"sentiment:\n  packs: []\n  lexicon_dir: {ROOT / 'rules' / 'lexicons'}\n"
        "storage:\n  backend: postgres\n  dsn: ${BM_TEST_DSN}\n"
        f"cluster:\n  node: {node}\n  nats_url: ${{BM_NATS}}\n  partitions: {PARTITIONS}\n"
        "  lease_ttl: 4s\n  claim_ttl: 5s\n")
    (tmp / "rules" / "rules.yaml").write_text(textwrap.dedent("""\
        rules:
          - name: spike
            signal: volume_spike
            channels: [hook]
            params: {bucket: 5m, min_count: 10, min_authors: 5}
        """))
    return tmp / "config.yaml"


class Role(DaemonProcess):
    def __init__(self, config: Path, port: int, role: str, env: dict[str, str]) -> None:
        super().__init__(config, port, env)
        self.role = role

    def launch(self) -> Role:
        import subprocess
        import sys

        with self.log.open("ab") as handle:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "monitor", "run", "--role", self.role, "-c",
                 str(self.config)], stdout=handle, stderr=handle, env=self.env,
                cwd=self.config.parent)
        return self


def pg(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return [tuple(r) for r in conn.execute(sql).fetchall()]


def owners(dsn: str) -> dict[int, str]:
    """Partition -> the node holding its lease now (unexpired)."""
    now = time.time()
    rows = pg(dsn, "SELECT name, owner, expires_at FROM leases WHERE name LIKE 'part/%' "
                   "AND owner != ''")
    return {int(n.split("/")[1]): o.split("/")[0] for n, o, exp in rows if exp > now}


def test_storm_across_20_brands_with_a_worker_killed_and_nats_restarted(
        pg_server: Any, nats_server: Any, tmp_path: Path,
        record_property: Callable[[str, object], None]) -> None:
    dsn = pg_server.new_database()
    env = {"BM_TEST_DSN": dsn, "BM_NATS": nats_server.url, "BM_TOKEN": TOKEN}
    posts = posts_for(datetime.now(UTC).replace(second=0, microsecond=0)
                      - timedelta(minutes=30))
    hook = HookReceiver().start()
    procs: list[Role] = []
    try:
        port = free_port()
        ingest = Role(project(tmp_path / "ingest", "ingest", hook.port, http_port=port),
                      port, "ingest", env).launch()
        procs.append(ingest)
        workers = [Role(project(tmp_path / f"w{i}", f"w{i}", hook.port, http_port=None),
                        0, "worker", env).launch() for i in (1, 2, 3)]
        procs += workers
        notify = Role(project(tmp_path / "notify", "notify", hook.port, http_port=None),
                      0, "notify", env).launch()
        procs.append(notify)
        wait_for(ingest.healthy, 60, "the ingest role to answer /healthz")
        wait_for(lambda: len(owners(dsn)) == PARTITIONS
                 and len(set(owners(dsn).values())) == 3, 60,
                 "three workers to share the partitions")

        sent = [0]
        problems: list[str] = []

        def feed() -> None:
            for i in range(0, len(posts), 500):
                chunk = [p.to_json() for p in posts[i:i + 500]]
                for _ in range(20):  # a 503 while NATS restarts: send the batch again
                    status, body = ingest.request("POST", "/ingest", {"posts": chunk},
                                                  token=TOKEN)
                    if status == 202:
                        break
                    time.sleep(0.5)
                else:
                    problems.append(f"batch {i}: {status} {body}")
                    return
                sent[0] = i + len(chunk)

        feeder = threading.Thread(target=feed, name="feeder")
        feeder.start()
        wait_for(lambda: sent[0] >= len(posts) // 3, 120, "a third of the posts sent")
        victim = workers[0]
        lost = {p for p, o in owners(dsn).items() if o == "w1"}
        victim.kill()
        killed_at = time.monotonic()
        wait_for(lambda: len(owners(dsn)) == PARTITIONS and "w1" not in owners(dsn).values(),
                 30, "the partitions of the killed worker to be taken over")
        rebalance = time.monotonic() - killed_at
        wait_for(lambda: sent[0] >= 2 * len(posts) // 3, 120, "two thirds sent")
        nats_server.stop()
        time.sleep(1.0)
        nats_server.start()
        feeder.join(300)
        assert not problems, problems
        assert sent[0] == len(posts)

        seen: list[tuple[int, int, int]] = []

        def done() -> bool:
            stored = pg(dsn, "SELECT count(*) FROM posts")[0][0]
            pending = pg(dsn, "SELECT count(*) FROM outbox WHERE status='pending'")[0][0]
            resolved = pg(dsn, "SELECT count(*) FROM alerts WHERE state='resolved'")[0][0]
            seen[:] = [(stored, pending, resolved)]
            return stored == len(posts) and pending == 0 and resolved == len(STORMY)

        try:
            wait_for(done, 180, "every post stored, every alert resolved and delivered")
        except AssertionError:
            alerts = pg(dsn, "SELECT rule, brand, state FROM alerts ORDER BY created_at")
            raise AssertionError(f"(stored, pending, resolved) = {seen}, want "
                                 f"({len(posts)}, 0, {len(STORMY)}); alerts: {alerts}; "
                                 f"positions: {pg(dsn, 'SELECT * FROM partitions')}") from None
        time.sleep(3)  # a few more ticks: nothing more may be raised
        alerts = pg(dsn, "SELECT id, rule, brand, state FROM alerts")
        got = sorted(f"{r}/{b}/{s}" for _, r, b, s in alerts)
        want = sorted(f"spike/{b}/{s}" for b in STORMY for s in ("firing", "resolved"))
        processed = list(hook.processed.values())
        raw = len(hook.raw())
        record_property("rebalance_seconds", round(rebalance, 2))
        record_property("partitions_moved", len(lost))
        print(f"\ncluster: {len(posts)} posts, 20 brands, {PARTITIONS} partitions, 1 ingest + "
              f"3 workers + 1 notify; worker w1 SIGKILLed holding {len(lost)} partition(s): "
              f"taken over in {rebalance:.2f} s; NATS restarted mid-feed; {len(alerts)} alerts "
              f"stored, {len(processed)} processed by the receiver ({raw} raw deliveries)")
        assert rebalance < 10
        assert got == want  # every expected alert, exactly once, nothing else
        assert sorted(processed) == sorted(a[0] for a in alerts)
        assert len(set(processed)) == len(processed)
        for proc in procs[1:] + procs[:1]:
            if proc is not victim:
                assert proc.stop(60) == 0, proc.log_text()[-3000:]
        assert not owners(dsn)  # graceful stops gave every partition back
    finally:
        for proc in procs:
            if proc.proc is not None and proc.proc.poll() is None:
                proc.proc.kill()
                proc.proc.wait(30)  # reaped: no process outlives its test
        hook.stop()
