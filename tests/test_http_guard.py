"""The HTTP server under hostile or heavy load: slow clients, too many connections,
future timestamps, a full queue, a busy store."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.config.schema import HttpConfig
from monitor.errors import StoreBusy
from monitor.http.server import bound_port, start_http
from monitor.intake import Backpressure, Intake
from monitor.metrics import Metrics
from monitor.model import Author, Post
from monitor.store.sqlite import SqliteStore
from tests.test_http import INGEST, FakeDaemon, post

AUTH = {"Authorization": f"Bearer {INGEST}"}


def _config(**changes: Any) -> HttpConfig:
    base = HttpConfig(host="127.0.0.1", port=0, ingest_token=INGEST, max_batch=100,
                      idle_timeout=timedelta(seconds=0.6), body_timeout=timedelta(seconds=0.6),
                      max_connections=8)
    return replace(base, **changes)


async def _serve(tmp_path: Path, **changes: Any) -> tuple[Any, FakeDaemon, int]:
    daemon = FakeDaemon(SqliteStore(tmp_path / "s.db"))
    runner = await start_http(_config(**changes), daemon)
    return runner, daemon, bound_port(runner)


async def _healthz(port: int) -> int:
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{port}/healthz") as resp:
        return resp.status


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(1024):
                pass
        return True
    except TimeoutError:
        return False


async def test_slow_headers_are_cut_off_while_others_are_served(tmp_path: Path) -> None:
    runner, _, port = await _serve(tmp_path)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /ingest HTTP/1.1\r\nHost: x\r\n")  # never finishes the headers
        await writer.drain()
        started = time.monotonic()
        assert await _healthz(port) == 200  # the server is not stuck on it
        assert await _closed_within(reader, 3.0)
        assert time.monotonic() - started < 2.5
        writer.close()
    finally:
        await runner.cleanup()


async def test_slow_body_gets_408(tmp_path: Path) -> None:
    runner, daemon, port = await _serve(tmp_path)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"POST /ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {INGEST}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 500\r\n\r\n[".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3.0)
        assert head.startswith(b"HTTP/1.1 408")
        assert daemon.batches == []
        writer.close()
    finally:
        await runner.cleanup()


async def test_connections_over_the_cap_get_503_retry_after(tmp_path: Path) -> None:
    runner, _, port = await _serve(tmp_path, max_connections=3,
                                   idle_timeout=timedelta(seconds=30))
    held = []
    try:
        for _ in range(3):
            held.append(await asyncio.open_connection("127.0.0.1", port))
        await asyncio.sleep(0.05)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = await asyncio.wait_for(reader.read(), 3.0)
        assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in answer
        writer.close()
        for _, w in held:
            w.close()
        held.clear()
        await asyncio.sleep(0.4)  # the guard notices the closed connections
        assert await _healthz(port) == 200
    finally:
        for _, w in held:
            w.close()
        await runner.cleanup()


async def test_created_at_beyond_max_future_is_400_naming_the_field(tmp_path: Path) -> None:
    runner, daemon, port = await _serve(tmp_path)
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    try:
        async with aiohttp.ClientSession() as session:
            for when in (future, "2999-01-01T00:00:00Z", "9999-12-31T23:59:59Z"):
                async with session.post(f"http://127.0.0.1:{port}/ingest", headers=AUTH,
                                        json=[post(1), post(2, created_at=when)]) as resp:
                    body = await resp.json()
                    assert resp.status == 400, body
                    assert body["errors"][0]["index"] == 1
                    assert body["errors"][0]["error"].startswith("created_at:")
            big = post(3, author={"id": "u", "handle": "u", "followers": 2**63})
            async with session.post(f"http://127.0.0.1:{port}/ingest", headers=AUTH,
                                    json=[big]) as resp:
                assert resp.status == 400
                assert "author.followers" in (await resp.json())["error"]
        assert daemon.batches == []
    finally:
        await runner.cleanup()


async def test_full_queue_is_429_with_retry_after_and_busy_store_is_503(
        tmp_path: Path) -> None:
    runner, daemon, port = await _serve(tmp_path)
    try:
        async with aiohttp.ClientSession() as session:
            daemon.fail = Backpressure(3.2, 10_000)
            async with session.post(f"http://127.0.0.1:{port}/ingest", headers=AUTH,
                                    json=[post(1)]) as resp:
                assert resp.status == 429
                assert resp.headers["Retry-After"] == "4"
                assert "nothing of this request was stored" in (await resp.json())["error"]
            daemon.fail = StoreBusy("state database x: database is locked")
            async with session.post(f"http://127.0.0.1:{port}/ingest", headers=AUTH,
                                    json=[post(1)]) as resp:
                assert resp.status == 503 and resp.headers["Retry-After"] == "1"
    finally:
        await runner.cleanup()


def _posts(n: int, start: int = 0) -> list[Post]:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return [Post(id=str(i), source="t", kind="mention", author=Author("a", "a"), text="x",
                 created_at=at) for i in range(start, start + n)]


async def test_intake_refuses_past_capacity_and_resolves_each_batch_when_stored() -> None:
    metrics = Metrics()
    intake = Intake(250, metrics, batch=100)
    first = intake.offer(_posts(200))
    with pytest.raises(Backpressure) as refused:
        intake.offer(_posts(100, 200))
    assert refused.value.retry_after >= 1 and refused.value.depth == 200
    assert metrics.ingest_refused._value.get() == 1
    second = intake.offer(_posts(50, 300))
    seen: list[int] = []

    def process(posts: list[Post], _: Any, seqs: list[int]) -> list[bool]:
        seen.append(len(posts))
        return [int(p.id) % 2 == 0 for p in posts]

    task = asyncio.create_task(intake.run(process))
    results = await asyncio.wait_for(first, 2)
    assert len(results) == 200 and sum(results) == 100
    assert len(await asyncio.wait_for(second, 2)) == 50
    assert seen == [100, 100, 50] and intake.depth == 0
    task.cancel()


async def test_a_source_waits_for_room_instead_of_growing_the_queue() -> None:
    intake = Intake(10, Metrics(), batch=4)
    for p in _posts(10):
        await intake.put(p)
    blocked = asyncio.create_task(intake.put(_posts(1, 10)[0]))
    await asyncio.sleep(0.05)
    assert not blocked.done() and intake.depth == 10
    done: list[str] = []
    all_in = asyncio.Event()

    def process(posts: list[Post], _: Any, seqs: list[int]) -> list[bool]:
        done.extend(p.id for p in posts)
        if len(done) == 11:
            all_in.set()
        return [True] * len(posts)

    task = asyncio.create_task(intake.run(process))
    await asyncio.wait_for(blocked, 2)
    await asyncio.wait_for(all_in.wait(), 2)
    assert done == [str(i) for i in range(11)]  # in order
    task.cancel()


async def test_a_poisonous_post_is_skipped_and_the_rest_stored() -> None:
    metrics = Metrics()
    intake = Intake(100, metrics, batch=10)

    def process(posts: list[Post], _: Any, seqs: list[int]) -> list[bool]:
        if any(p.id == "3" for p in posts):
            raise RuntimeError("detector bug")
        return [True] * len(posts)

    done = intake.offer(_posts(6))
    task = asyncio.create_task(intake.run(process))
    assert await asyncio.wait_for(done, 2) == [True, True, True, False, True, True]
    assert metrics.failed.labels("t")._value.get() == 1
    task.cancel()


def _own(n: int) -> list[Post]:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return [Post(id=f"own{i}", source="t", kind="outbound", author=Author("b", "brand"),
                 text="x", created_at=at) for i in range(n)]


async def test_a_full_queue_still_takes_the_brands_own_posts() -> None:
    """A storm of mentions fills the queue: more mentions get 429 (and a source's
    wait), but the brand's own posts (what the security screen must see) are taken at
    once, HTTP and source alike, up to their own room (URGENT_ROOM)."""
    from monitor.intake import URGENT_ROOM

    intake = Intake(100, Metrics(), batch=50)
    intake.offer(_posts(100))
    with pytest.raises(Backpressure):
        intake.offer(_posts(1, 100))
    taken = intake.offer(_own(2))  # not refused
    blocked = asyncio.create_task(intake.put(_posts(1, 200)[0]))
    own_source = asyncio.create_task(intake.put(_own(3)[2]))
    await asyncio.sleep(0.05)
    assert own_source.done() and not blocked.done()
    assert intake.depth == 103
    with pytest.raises(Backpressure):  # (its own room is bounded too)
        intake.offer(_own(URGENT_ROOM))
    order: list[str] = []

    def process(posts: list[Post], _: Any, seqs: list[int]) -> list[bool]:
        order.extend(p.id for p in posts)
        return [True] * len(posts)

    task = asyncio.create_task(intake.run(process))
    assert await asyncio.wait_for(taken.done, 2) == [True, True]
    await asyncio.wait_for(blocked, 2)
    assert order[:3] == ["own0", "own1", "own2"]
    task.cancel()


async def test_an_outbound_post_does_not_wait_for_the_worker() -> None:
    """While the enrichment worker is still on the next batch of mentions, an
    outbound post that arrives is run at once (it is enriched inline)."""
    intake = Intake(10_000, Metrics(), batch=100)
    storm = intake.offer(_posts(100))
    release = asyncio.Event()
    order: list[str] = []

    async def slow_worker(posts: list[Post]) -> list[Any] | None:
        await release.wait()
        return None

    def process(posts: list[Post], _: Any, seqs: list[int]) -> list[bool]:
        order.extend(p.id for p in posts)
        return [True] * len(posts)

    task = asyncio.create_task(intake.run(process, slow_worker))
    await asyncio.sleep(0.05)  # the engine waits for the worker's first batch
    own = intake.offer(_own(1))
    assert await asyncio.wait_for(own.done, 1) == [True]
    assert order == ["own0"]  # before any mention: the worker has not answered yet
    release.set()
    assert len(await asyncio.wait_for(storm.done, 2)) == 100
    task.cancel()


def test_http_errors_are_json(tmp_path: Path) -> None:
    """The 503 of the connection cap is JSON like every other error."""
    from monitor.http.guard import _Refuse

    head, _, body = _Refuse._RESPONSE.partition(b"\r\n\r\n")
    assert json.loads(body)["error"].startswith("too many connections")
    assert f"Content-Length: {len(body)}".encode() in head


async def test_outbound_posts_go_ahead_of_a_storm_and_answers_keep_request_order() -> None:
    intake = Intake(10_000, Metrics(), batch=100)
    storm = intake.offer(_posts(500))
    at = datetime(2026, 1, 1, tzinfo=UTC)
    own = Post(id="own", source="t", kind="outbound", author=Author("b", "brand"), text="x",
               created_at=at)
    mixed = intake.offer([_posts(1, 900)[0], own, _posts(1, 901)[0]])
    order: list[str] = []

    def process(posts: list[Post], _: Any, seqs: list[int]) -> list[bool]:
        order.extend(p.id for p in posts)
        return [p.id != "901" for p in posts]  # 901 "a duplicate"

    task = asyncio.create_task(intake.run(process))
    assert await asyncio.wait_for(mixed, 2) == [True, True, False]
    assert await asyncio.wait_for(storm, 2) == [True] * 500
    assert order[0] == "own"  # ahead of the 500 queued mentions
    assert order.index("900") > order.index("499")  # mentions keep their order
    task.cancel()


def test_the_enrichment_worker_exits_when_its_daemon_is_killed(tmp_path: Path) -> None:
    """SIGKILL leaves no orphan: the worker process notices it was adopted and exits."""
    import os
    import signal
    import subprocess
    import sys

    from tests.daemon import wait_for

    code = ("import os, sys, time\n"
            "from monitor.config.loader import load_config\n"
            "from monitor.enrich.pool import new_executor, enrich_batch\n"
            "pool = new_executor(load_config(__import__('pathlib').Path(sys.argv[1])), 1)\n"
            "pool.submit(enrich_batch, []).result()\n"
            "print(pool._processes and list(pool._processes)[0], flush=True)\n"
            "time.sleep(60)\n")
    from tests.conftest import write_project

    config = write_project(tmp_path)
    parent = subprocess.Popen([sys.executable, "-c", code, str(config)],
                              stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    parent.stdout.close()
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()

    def gone() -> bool:
        try:
            with open(f"/proc/{worker}/stat") as handle:
                return handle.read().split()[2] == "Z"  # a zombie has exited
        except FileNotFoundError:
            return True

    wait_for(gone, 10, "the orphaned worker to exit")


async def test_the_worker_enriches_the_next_batch_while_the_engine_runs_this_one(
        tmp_path: Path) -> None:
    """Batch n+1 reaches the (real) worker process before the engine starts on batch n:
    the two cores overlap. (The first version handed it over only when the engine
    yielded, after batch n, and the daemon ran on one core at a time.)"""
    from monitor.config.loader import load_config
    from monitor.enrich.pool import EnrichPool
    from tests.conftest import write_project

    pool = EnrichPool(load_config(write_project(tmp_path)), workers=1)
    events: list[str] = []
    submit = pool._pool.submit

    def recorded(fn: Any, batch: Any) -> Any:
        events.append(f"submit {batch[0][3] if batch else '-'}")
        return submit(fn, batch)

    pool._pool.submit = recorded  # type: ignore[method-assign]
    try:
        await pool.start()
        intake = Intake(1000, Metrics(), batch=100)
        done = intake.offer([replace(p, text=p.id) for p in _posts(400)])

        def process(posts: list[Post], enrichments: Any, seqs: list[int]) -> list[bool]:
            assert enrichments is not None and len(enrichments) == len(posts)
            events.append(f"process {posts[0].text}")
            return [True] * len(posts)

        task = asyncio.create_task(intake.run(process, pool.enrich))
        assert len(await asyncio.wait_for(done, 30)) == 400
        task.cancel()
    finally:
        pool.close()
    batches = [e.split()[1] for e in events if e.startswith("process")]
    assert len(batches) == 4
    for this, following in itertools.pairwise(batches):
        assert events.index(f"submit {following}") < events.index(f"process {this}")


async def test_a_killed_enrichment_worker_is_replaced(tmp_path: Path) -> None:
    """The batch the dead worker held is enriched in the daemon (None: enrich inline);
    the next batch goes to a new worker."""
    import os
    import signal

    from monitor.config.loader import load_config
    from monitor.enrich.pool import EnrichPool
    from tests.conftest import write_project

    pool = EnrichPool(load_config(write_project(tmp_path)), workers=1)
    try:
        await pool.start()
        (first,) = list(pool._pool._processes)  # type: ignore[union-attr]
        os.kill(first, signal.SIGKILL)
        assert await asyncio.wait_for(pool.enrich(_posts(3)), 30) is None
        again = await asyncio.wait_for(pool.enrich(_posts(3)), 30)
        assert again is not None and len(again) == 3
        assert first not in pool._pool._processes  # type: ignore[operator]
    finally:
        pool.close()
