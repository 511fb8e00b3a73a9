"""A worker role outlives a NATS outage that catches it taking partitions: it keeps
balancing and takes them once the stream answers again (a real nats-server and
PostgreSQL; the role runs in this process)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta
from typing import Any

import pytest

from monitor.config.schema import BrandConfig, ClusterConfig, Config, RuleSet, StorageConfig
from monitor.enrich.enricher import build_analyzer
from monitor.metrics import Metrics
from tests.conftest import ROOT
from tests.daemon import wait_for_async


def test_a_worker_outlives_nats_down_while_taking_partitions(pg_dsn: str,
                                                              nats_server: Any) -> None:
    from monitor.cluster.stream import PostStream
    from monitor.cluster.worker import WorkerRole

    cluster = ClusterConfig(node="w", nats_url=nats_server.url, partitions=2,
                            lease_ttl=timedelta(seconds=1))
    config = Config(brands=(BrandConfig(name="Acme", keywords=("acme",)),),
                    storage=StorageConfig(backend="postgres", dsn=pg_dsn), cluster=cluster)

    async def scenario() -> None:
        stream = await PostStream(cluster).connect()
        nats_server.stop()  # down before the first partition's consumer is created
        role = WorkerRole(config, RuleSet(), cluster, pg_dsn, stream, "w/1", Metrics(),
                          build_analyzer(config), on_alerts=lambda: None)
        stopping = asyncio.Event()
        task = asyncio.create_task(role.run(stopping))
        try:
            await asyncio.sleep(2.0)  # several balancing rounds against a dead NATS
            assert not task.done(), task.exception() if task.done() else None
            assert not role.owned
            nats_server.start()
            await wait_for_async(lambda: len(role.owned) == 2 or task.done(), 30,
                         "both partitions taken after NATS came back")
            assert not task.done(), task.exception() if task.done() else None
            assert sorted(role.owned) == [0, 1]
        finally:
            stopping.set()
            await asyncio.wait_for(task, 30)
            await stream.close()

    asyncio.run(scenario())


def test_a_role_task_that_dies_stops_the_node_with_a_failure(pg_dsn: str, nats_server: Any,
                                                             tmp_path: Any,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """A dead worker balancer must not leave a process that looks alive: the node
    stops and exits 1, so the service manager restarts it."""
    from monitor.cluster import node as node_module
    from monitor.cluster.worker import WorkerRole

    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text("rules: []\n")
    config = tmp_path / "config.yaml"
    config.write_text(
        "state_dir: state\nbrands:\n  - name: Acme\n    keywords: [acme]\n"
        "channels:\n  - {name: console, url: 'console://'}\nhttp: {enabled: false}\n"
        f"sentiment:\n  packs: []\n  lexicon_dir: {ROOT / 'rules' / 'lexicons'}\n"
        "storage: {backend: postgres, dsn: '${BM_TEST_DSN}'}\n"
        "cluster: {nats_url: '${BM_NATS}', partitions: 2, lease_ttl: 1s}\n")
    monkeypatch.setenv("BM_TEST_DSN", pg_dsn)
    monkeypatch.setenv("BM_NATS", nats_server.url)

    async def broken(self: WorkerRole, stopping: asyncio.Event) -> None:
        self.store.close()  # what the real run() does on its way out
        raise RuntimeError("balancer bug")

    monkeypatch.setattr(WorkerRole, "run", broken)
    node = node_module.ClusterNode(config, "worker")
    assert asyncio.run(asyncio.wait_for(node.run(), 30)) == 1
    assert node.failed


def test_a_takeover_keeps_what_no_commit_acknowledged(nats_server: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages delivered but never acknowledged (a lost delivery around a NATS
    restart, or the batch a dead owner was processing) are delivered again to the next
    owner, even when the committed position is already past them (later messages were
    committed first): the takeover must not restart the consumer after that position."""
    from datetime import UTC, datetime

    from monitor.cluster import stream as stream_module
    from monitor.cluster.stream import PostStream
    from monitor.model import Author, Post

    monkeypatch.setattr(stream_module, "ACK_WAIT", 1.0)
    cluster = ClusterConfig(nats_url=nats_server.url, partitions=1, stream="gaps")
    at = datetime(2026, 3, 1, tzinfo=UTC)

    async def scenario() -> None:
        stream = await PostStream(cluster).connect()
        try:
            for i in range(10):
                await stream.publish(0, Post(id=f"p{i}", source="t", kind="mention",
                                             author=Author(id="a", handle="a"),
                                             text=f"acme {i}", created_at=at))
            first = await stream.consumer(0, 0)
            lost = await first.fetch(5, 2.0)  # delivered, never acknowledged
            assert [m.post.id for m in lost if m.post] == [f"p{i}" for i in range(5)]
            rest = await first.fetch(5, 2.0)
            await first.ack(rest)  # p5..p9 processed and committed first
            committed = rest[-1].seq
            await first.close()
            # the next owner starts from the committed position ...
            second = await stream.consumer(0, committed)
            want = {f"p{i}" for i in range(5)}
            again: set[str] = set()
            deadline = time.monotonic() + 15
            while not want <= again and time.monotonic() < deadline:
                got = await second.fetch(5, 1.0)
                again |= {m.post.id for m in got if m.post}
                await second.ack(got)
            # ... and still gets the five that no commit acknowledged (an acknowledged
            # one may come again too: acks are not awaited; the engine drops duplicates)
            assert want <= again, again
            await second.close()
        finally:
            await stream.close()

    asyncio.run(scenario())


def test_a_partition_taken_mid_backfill_does_not_tick_its_history_away(
        project: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A partition taken over while history streams in (its recovered detectors hold
    buckets of days ago) must not tick at the wall clock before its first messages
    arrive: that tick would close every open bucket up to now, the rest of the
    backfill would be late, and a storm in it would never fire. (The consumer is a
    stub that has nothing yet: a takeover around a NATS restart.)"""
    from monitor.cluster import worker as worker_module
    from monitor.cluster.worker import Partition
    from tests.timeline import T0, Harness, steady

    h = Harness(project)
    h.feed(steady(T0, 2.0, 12))  # two hours of history, then the clock is days later
    spike = h.engine.detectors[("spike", "Acme")]
    open_bucket = spike.state_time()
    assert open_bucket is not None
    h.clock.set(T0 + timedelta(days=3))

    class Quiet:  # the stream has nothing for the new owner yet
        async def fetch(self, batch: int, wait: float) -> list[Any]:
            await asyncio.sleep(0.01)
            return []

        async def ack(self, messages: list[Any]) -> None:
            return None

    monkeypatch.setattr(worker_module, "TICK_SECONDS", 0.01)

    async def run_a_while() -> None:
        partition = Partition(0, None, None, h.engine, Quiet())  # type: ignore[arg-type]
        task = asyncio.create_task(partition.run())
        await asyncio.sleep(0.3)  # thirty tick periods
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run_a_while())
    assert spike.state_time() == open_bucket  # no bucket was closed at the wall clock
