"""Partitioned workers: per-worker throughput and scaling from 1 to 2 workers.

A real PostgreSQL and nats-server (Debian's, as the tests start them: temporary
folders, random ports) and real ``brand-monitor run --role worker`` processes. The
stream is filled first (posts of 20 brands, 8 partitions, the shipped-like spike rule),
then 1 worker, then (on a fresh database and stream) 2 workers consume it; the time
runs from the first post committed to the last. Both figures come from this one run,
so a busy machine shifts both sides.

Run: ``.venv/bin/python bench/cluster.py`` (about 2 minutes; ``--posts N``). Prints
one summary line per worker count and one for the scaling; docs/scaling.md sizes a
deployment from the per-worker figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.cluster.stream import PostStream, partition_of  # noqa: E402
from monitor.config.schema import ClusterConfig  # noqa: E402
from monitor.model import Author, Post  # noqa: E402
from tests.nats_server import start_or_skip as start_nats  # noqa: E402
from tests.pg_server import start_or_skip as start_pg  # noqa: E402

BRANDS = [f"brand{i:02d}" for i in range(20)]
PARTITIONS = 8


def make_posts(n: int, seed: int = 3) -> list[Post]:
    rng = random.Random(seed)
    end = datetime.now(UTC) - timedelta(minutes=10)
    start = end - timedelta(days=3)
    step = (end - start) / n
    texts = ["using {b} today", "{b} support was quick", "@{b} what time is it",
             "{b} is down again, refund me", "love the new {b} app"]
    return [Post(id=f"p{i}", source="bench", kind="mention",
                 author=Author(id=f"u{rng.randrange(50_000)}", handle=f"u{i % 50_000}",
                               followers=rng.randrange(10, 5000)),
                 text=rng.choice(texts).format(b=rng.choice(BRANDS)),
                 created_at=start + step * i) for i in range(n)]


def write_project(tmp: Path, node: str) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "rules").mkdir(exist_ok=True)
    brands = "".join(f"  - name: {b}\n    keywords: [{b}]\n" for b in BRANDS)
    (tmp / "config.yaml").write_text(
        f"state_dir: state\nbrands:\n{brands}"
        "channels:\n  - name: file\n    url: jsonl://state/alerts.jsonl\n"
        "http:\n  enabled: false\n"
        f"sentiment:\n  packs: []\n  lexicon_dir: {ROOT / 'rules' / 'lexicons'}\n"
        "storage:\n  backend: postgres\n  dsn: ${BM_DSN}\n"
        f"cluster:\n  node: {node}\n  nats_url: ${{BM_NATS}}\n  stream: ${{BM_STREAM}}\n"
        f"  partitions: {PARTITIONS}\n")
    (tmp / "rules" / "rules.yaml").write_text(
        "rules:\n  - name: spike\n    signal: volume_spike\n    channels: [file]\n"
        "    params: {bucket: 5m, min_count: 10, min_authors: 5}\n"
        "  - name: negative\n    signal: negative_surge\n    channels: [file]\n"
        "    params: {window: 1h, min_count: 20, min_negative: 10, min_authors: 5}\n")
    return tmp / "config.yaml"


async def fill(url: str, stream: str, posts: list[Post]) -> float:
    config = ClusterConfig(nats_url=url, stream=stream, partitions=PARTITIONS)
    client = await PostStream(config).connect()
    started = time.perf_counter()
    for i in range(0, len(posts), 1000):
        await asyncio.gather(*(client.publish(partition_of(_brand(p), PARTITIONS), p)
                               for p in posts[i:i + 1000]))
    elapsed = time.perf_counter() - started
    await client.close()
    return elapsed


def _brand(post: Post) -> str:
    return next(b for b in BRANDS if b in post.text)


def count(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM posts").fetchone()
        return int(row[0]) if row else 0


def run_workers(pg: Any, nats: Any, posts: list[Post], workers: int, tmp: Path) -> float:
    """Posts per second processed by ``workers`` worker processes (first commit to last)."""
    dsn = pg.new_database()
    stream = f"bench{workers}"
    asyncio.run(fill(nats.url, stream, posts))
    env = {**os.environ, "BM_DSN": dsn, "BM_NATS": nats.url, "BM_STREAM": stream,
           "PYTHONPATH": str(ROOT)}
    procs = []
    for w in range(workers):
        config = write_project(tmp / f"{stream}-w{w}", f"w{w}")
        with (config.parent / "worker.log").open("ab") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "monitor", "run", "--role", "worker", "-c",
                 str(config)], stdout=log, stderr=log, env=env, cwd=config.parent))
    try:
        first = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            done = count(dsn)
            if done and first is None:
                first = (time.perf_counter(), done)
            if done >= len(posts):
                break
            time.sleep(0.05)
        else:
            raise SystemExit(f"{workers} worker(s) did not finish: {count(dsn)}/{len(posts)}")
        assert first is not None
        return (len(posts) - first[1]) / (time.perf_counter() - first[0])
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=40_000)
    args = parser.parse_args()
    posts = make_posts(args.posts)
    pg, nats = start_pg(), start_nats()
    try:
        with tempfile.TemporaryDirectory(prefix="bm-bench-cluster-") as tmp:
            rates = {w: run_workers(pg, nats, posts, w, Path(tmp)) for w in (1, 2)}
    finally:
        nats.close()
        pg.stop()
    cores = os.cpu_count() or 1
    for w, rate in rates.items():
        print(f"cluster: {w} worker(s), {PARTITIONS} partitions, {len(BRANDS)} brands: "
              f"{rate:,.0f} posts/s in all, {rate / w:,.0f} posts/s per worker "
              f"({len(posts):,} posts, {cores} cores, PostgreSQL and NATS on this machine)")
    print(f"cluster: scaling 1 -> 2 workers: {rates[2] / rates[1]:.2f}x on {cores} cores "
          f"(ideal 2.00x with a core per worker; PostgreSQL, NATS and the workers share "
          f"these {cores})")


if __name__ == "__main__":
    main()
