"""One process of a partitioned deployment: ``brand-monitor run --role ROLE``.

- **ingest**: sources and ``POST /ingest``. Each post is matched to its brands (the
  engine's own matcher) and published to the partitions of those brands
  (``monitor.cluster.stream``); /ingest answers 202 only after JetStream acknowledged
  every publish, so an accepted post survives a NATS restart (file storage).
- **worker**: owns partitions through leases and runs the engine for their brands
  (``monitor.cluster.worker``).
- **notify**: delivers the outbox (claims: any number of notify processes).
- **all**: the three in one process.

Every role needs ``storage.backend: postgres`` and ``cluster.nats_url``. Without a
``cluster.nats_url``, ``run`` (role all) is the single daemon of ``monitor.app``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.clock import WallClock
from monitor.cluster.lease import process_id
from monitor.cluster.stream import PostStream, partition_of
from monitor.config.loader import load_config, load_rules
from monitor.config.schema import ClusterConfig, Config
from monitor.enrich.enricher import build_analyzer
from monitor.enrich.match import BrandMatcher
from monitor.errors import BrandMonitorError
from monitor.metrics import Metrics
from monitor.model import Post
from monitor.notify.channels import build_notifiers
from monitor.notify.outbox import OutboxWorker
from monitor.store.api import Store
from monitor.store.factory import open_store

if TYPE_CHECKING:  # psycopg (the cluster extra) is imported once the settings are checked
    from monitor.cluster.worker import WorkerRole

log = logging.getLogger(__name__)
ROLES = ("all", "ingest", "worker", "notify")


def cluster_of(config: Config, role: str) -> ClusterConfig:
    """The cluster settings a role needs, or a clear error."""
    cluster = config.cluster
    if cluster is None or not cluster.nats_url:
        raise BrandMonitorError(f"run --role {role} needs cluster.nats_url (a NATS "
                                "JetStream server) in the configuration; see docs/scaling.md")
    if config.storage.backend != "postgres":
        raise BrandMonitorError(f"run --role {role} needs storage.backend: postgres (every "
                                "role shares one PostgreSQL database); see docs/scaling.md")
    return cluster


class ClusterNode:
    def __init__(self, config_path: Path, role: str) -> None:
        self.config_path = Path(config_path)
        self.role = role
        self.config = load_config(self.config_path)
        self.cluster = cluster_of(self.config, role)
        self.rules = load_rules(Path(self.config.rules_dir), self.config)
        self.metrics = Metrics()
        store = open_store(self.config)  # a clear error without the cluster extra
        from monitor.store.postgres import PostgresStore

        assert isinstance(store, PostgresStore)
        self.pg = store
        self.store: Store = store
        self.owner = process_id(self.cluster.node)
        self.stream = PostStream(self.cluster)
        self.matcher = BrandMatcher(self.config.brands)
        self.clock = WallClock()
        self.stopping = asyncio.Event()
        self.failed = False
        self.outbox_wake = asyncio.Event()
        self.worker: WorkerRole | None = None
        self.published = 0
        self.http_port: int | None = None

    # -- ingest ------------------------------------------------------------------------
    def partitions_for(self, post: Post) -> set[int]:
        brands = self.matcher.match(post)
        n = self.cluster.partitions
        if not brands:  # stored and counted as unmatched, by the partition of its key
            return {partition_of(f"{post.source}:{post.id}", n)}
        return {partition_of(b, n) for b in brands}

    async def publish(self, posts: list[Post]) -> None:
        sends = [self.stream.publish(part, post) for post in posts
                 for part in sorted(self.partitions_for(post))]
        await asyncio.gather(*sends)
        self.published += len(posts)

    async def ingest(self, posts: list[Post]) -> tuple[int, int]:
        """DaemonApi: publish the batch; 202 only after every publish is acknowledged
        (duplicates are recognised by the workers: counted as accepted here)."""
        if self.role not in ("ingest", "all"):
            raise TimeoutError("this process has no ingest role")
        try:
            await self.publish(posts)
        except ConnectionError as exc:
            log.error("ingest: %s", exc)
            raise TimeoutError(str(exc)) from exc
        return len(posts), 0

    async def emit(self, post: Post) -> None:
        now = self.clock.now()
        if post.created_at > now + self.config.max_future:
            self.metrics.rejected_time.labels(post.source, "clamped").inc()
            post = dataclasses.replace(post, created_at=now)
        await self.publish([post])

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": "stopping" if self.stopping.is_set() else "ok",
                               "role": self.role, "node": self.owner,
                               "outbox": self.store.outbox_backlog(), "sources": {},
                               "queue": 0, "published": self.published}
        if self.worker is not None:
            out.update(self.worker.health())
        return out

    # -- running -------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        tasks: list[asyncio.Task[Any]] = []
        async with AsyncExitStack() as stack:
            stack.callback(self.store.close)
            if self.role != "notify":
                await self.stream.connect()
                stack.push_async_callback(self.stream.close)
            if self.role in ("notify", "all"):
                tasks.append(asyncio.create_task(self._deliver(), name="outbox"))
            if self.role in ("worker", "all"):
                from monitor.cluster.worker import WorkerRole

                self.worker = WorkerRole(
                    self.config, self.rules, self.cluster, self.pg.dsn, self.stream,
                    self.owner, self.metrics, build_analyzer(self.config),
                    on_alerts=self.outbox_wake.set)
                tasks.append(asyncio.create_task(self.worker.run(self.stopping),
                                                 name="worker"))
            if self.role in ("ingest", "all"):
                tasks += self._start_sources()
            if self.config.http.enabled:
                from monitor.http.server import bound_port, start_http

                runner = await start_http(self.config.http, self,
                                          max_future=self.config.max_future)
                stack.push_async_callback(runner.cleanup)
                self.http_port = bound_port(runner)
            for task in tasks:
                task.add_done_callback(self._fatal)
            log.info("brand-monitor %s running as %s (%d partition(s), stream %s)",
                     self.role, self.owner, self.cluster.partitions, self.cluster.stream)
            await self.stopping.wait()
            log.info("stopping")
            worker_task = [t for t in tasks if t.get_name() == "worker"]
            if worker_task:  # it checkpoints and releases its partitions itself
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(worker_task[0], 30)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        log.info("stopped")
        return 1 if self.failed else 0

    def _fatal(self, task: asyncio.Task[Any]) -> None:
        """A role's task that dies on its own stops the process (non-zero exit), so the
        service manager restarts it instead of leaving a process that looks alive."""
        if task.cancelled() or self.stopping.is_set() or task.exception() is None:
            return
        log.error("%s stopped unexpectedly: %r; shutting down", task.get_name(),
                  task.exception())
        self.failed = True
        self.stopping.set()

    def _start_sources(self) -> list[asyncio.Task[Any]]:
        from monitor.sources.base import SOURCES, SourceContext

        ctx = SourceContext(self.clock, self.store, self.metrics, self.config.brands)
        tasks = []
        for config in self.config.sources:
            if config.enabled:
                source = SOURCES.get(config.type)(config, ctx)
                tasks.append(asyncio.create_task(self._run_source(source),
                                                 name=f"source:{source.name}"))
        return tasks

    async def _run_source(self, source: Any) -> None:
        try:
            await source.run(self.emit)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("source %s stopped", source.name)
            source.failed(f"stopped: {exc}")

    async def _deliver(self) -> None:
        real = [c for c in self.config.channels if c.rotation is None]
        notifiers = build_notifiers(real, self.config_path.parent)
        worker = OutboxWorker(self.store, notifiers, {c.name: c for c in real}, self.clock,
                              self.metrics, claim=(self.owner, self.cluster.claim_ttl))
        await worker.run(self.outbox_wake)


async def serve(config_path: Path, role: str) -> int:
    from monitor import logs, plugins

    plugins.load()
    node = ClusterNode(config_path, role)
    logs.setup(node.config.log_level)
    return await node.run()
