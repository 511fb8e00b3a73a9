"""The worker role: own partitions through leases and run the engine for their brands.

Each owned partition has its own store connection (scoped to the partition and
fenced with the partition's lease), its own Engine over the partition's brands (the
same pipeline as the single process: detectors, routing, lifecycle, outbox rows) and
the partition's durable consumer. A batch of messages, the detector state and
aggregates it changed (at checkpoints), the alerts and outbox rows it caused and the
stream sequence of its last message are committed in one PostgreSQL transaction;
only then are the messages acknowledged. A worker that dies leaves a position that
is exactly what was committed: the next owner recovers the engine from the
checkpoint (replaying the partition's posts stored after it, as after a restart)
and consumes from the next stream sequence.

**Balance.** Every worker holds a ``member/<id>`` lease (a heartbeat). Each round
(a quarter of the lease time) it renews its leases, counts the live members, and
aims at ``ceil(partitions / members)`` partitions: it releases those above its share
(after a checkpoint) and takes free or expired ones below it. A killed worker's
partitions are free once its leases expire (``cluster.lease_ttl``): the others take
them over within that time plus a round.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
from collections.abc import Callable
from datetime import datetime, timedelta

from monitor.clock import WallClock
from monitor.cluster.lease import LeaseKeeper
from monitor.cluster.stream import Consumer, PostStream, brands_of
from monitor.config.schema import ClusterConfig, Config, RuleSet
from monitor.engine import CheckpointPolicy, Engine
from monitor.enrich.sentiment import SentimentAnalyzer
from monitor.errors import LeaseLost, StoreError
from monitor.metrics import Metrics
from monitor.store.postgres import PostgresStore

log = logging.getLogger(__name__)
BATCH = 200
FETCH_WAIT = 0.5  # seconds a fetch waits for messages
TICK_SECONDS = 2.0
#: posts older than this are a backfill: no tick (it would close their buckets) until
#: the partition has been idle for IDLE_TICK seconds
BACKFILL = timedelta(minutes=2)
IDLE_TICK = 10.0


class Partition:
    """One owned partition: store, engine, consumer, and the loop that feeds them."""

    def __init__(self, part: int, keeper: LeaseKeeper, store: PostgresStore, engine: Engine,
                 consumer: Consumer) -> None:
        self.part = part
        self.keeper = keeper
        self.store = store
        self.engine = engine
        self.consumer = consumer
        self.processed = 0
        # the newest post time processed; a partition taken over mid-backfill starts
        # where its recovered detectors stand, not as "live": a tick at the wall clock
        # before its first messages arrive would close every open bucket up to now and
        # make the rest of the backfill late (a storm in it would never fire)
        self.newest: datetime | None = engine.newest_event_time()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + TICK_SECONDS
        last_message = loop.time()
        while True:
            messages = await self.consumer.fetch(BATCH, FETCH_WAIT)
            if messages:
                posts = [m.post for m in messages if m.post is not None]
                last = messages[-1].seq

                def position(seq: int = last) -> None:
                    self.store.set_stream_seq(seq)

                self.engine.process_batch(posts, commit_with=position)
                self.processed += len(posts)
                last_message = loop.time()
                if posts:
                    newest = max(p.created_at for p in posts)
                    self.newest = newest if self.newest is None else max(self.newest, newest)
                await self.consumer.ack(messages)
            # like the single daemon: no tick while a backlog waits, nor while history is
            # streaming in (closing the buckets of its posts first would make them late)
            caught_up = not messages or messages[-1].pending == 0
            live = self.newest is None or self.newest >= self.engine.clock.now() - BACKFILL
            idle = loop.time() - last_message >= IDLE_TICK
            if caught_up and (live or idle) and loop.time() >= next_tick:
                next_tick = loop.time() + TICK_SECONDS
                self.engine.tick()
            await asyncio.sleep(0)

    async def stop(self, *, graceful: bool) -> None:
        """Stop the loop; ``graceful``: checkpoint and give the lease back."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        if graceful:
            with contextlib.suppress(StoreError):
                self.engine.checkpoint(force=True)
            self.keeper.release()
        await self.consumer.close()
        self.store.close()


class WorkerRole:
    def __init__(self, config: Config, rules: RuleSet, cluster: ClusterConfig, dsn: str,
                 stream: PostStream, owner: str, metrics: Metrics,
                 analyzer: SentimentAnalyzer, on_alerts: Callable[[], None]) -> None:
        self.config = config
        self.rules = rules
        self.cluster = cluster
        self.dsn = dsn
        self.stream = stream
        self.owner = owner
        self.metrics = metrics
        self.analyzer = analyzer
        self.on_alerts = on_alerts
        self.store = PostgresStore(dsn)  # leases and membership
        self.member = LeaseKeeper(self.store, f"member/{owner}", owner, cluster.lease_ttl)
        self.owned: dict[int, Partition] = {}
        self.policy = CheckpointPolicy(every_posts=config.checkpoint_posts,
                                       every_seconds=config.checkpoint_every.total_seconds())

    def _keeper(self, part: int) -> LeaseKeeper:
        return LeaseKeeper(self.store, f"part/{part}", self.owner, self.cluster.lease_ttl)

    async def run(self, stopping: asyncio.Event) -> None:
        try:
            while not stopping.is_set():
                try:
                    await self.balance()
                except StoreError as exc:
                    log.warning("worker: balancing skipped: %s", exc)
                except Exception as exc:  # e.g. NATS restarting while a
                    # partition's consumer is created: the worker must outlive it (a dead
                    # balancer would hold no partition and take none ever again)
                    log.warning("worker: balancing failed, retrying in %.1f s: %r",
                                self.member.renew_every, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), self.member.renew_every)
        finally:
            for part in list(self.owned):
                await self._drop(part, graceful=True)
            self.member.release()
            self.store.close()

    async def balance(self) -> None:
        """One round: renew, count members, drop or take partitions to the share."""
        if self.member.lease is None or not self.member.renew():
            self.member.try_acquire()
        for part, partition in list(self.owned.items()):
            if partition.task is not None and partition.task.done():
                problem = partition.task.exception() if not partition.task.cancelled() \
                    else None
                log.error("partition %d stopped: %r", part, problem)
                await self._drop(part, graceful=not isinstance(problem, LeaseLost))
            elif not partition.keeper.renew():
                log.warning("partition %d: lease lost, dropping it", part)
                await self._drop(part, graceful=False)
        now = WallClock().now()
        members = [m for m in self.store.leases("member/") if m.expires_at > now]
        share = math.ceil(self.cluster.partitions / max(1, len(members)))
        while len(self.owned) > share:
            await self._drop(max(self.owned), graceful=True)
        if len(self.owned) >= share:
            return
        held = {lease.name for lease in self.store.leases("part/") if lease.expires_at > now}
        for part in range(self.cluster.partitions):
            if len(self.owned) >= share:
                break
            if part in self.owned or f"part/{part}" in held:
                continue
            await self._take(part)
            self._renew_held()  # taking one recovers its engine: keep the others' leases

    def _renew_held(self) -> None:
        """Renew the member lease and every partition lease held (a lost one is dropped
        by the next round)."""
        self.member.renew()
        for partition in self.owned.values():
            partition.keeper.renew()

    async def _take(self, part: int) -> None:
        keeper = self._keeper(part)
        lease = keeper.try_acquire()
        if lease is None:
            return
        store = PostgresStore(self.dsn, part=part, migrate=False)
        try:
            store.fence(lease)
            brands = brands_of(self.config.brands, part, self.cluster.partitions)
            config = dataclasses.replace(self.config, brands=brands)
            engine = Engine(config, self.rules, store, WallClock(), self.metrics,
                            analyzer=self.analyzer, checkpoints=self.policy)
            engine.router.lifecycle.brands = frozenset(b.name for b in brands)
            engine.on_alerts = lambda alerts: self.on_alerts()
            recovered = engine.recover()
            consumer = await self.stream.consumer(part, store.stream_seq())
        except BaseException:
            store.close()
            keeper.release()
            raise
        partition = Partition(part, keeper, store, engine, consumer)
        partition.task = asyncio.create_task(partition.run(), name=f"partition:{part}")
        self.owned[part] = partition
        log.info("partition %d taken (epoch %d, %d brand(s), stream position %d, %d alert(s) "
                 "recovered)", part, lease.epoch, len(brands), store.stream_seq(),
                 len(recovered))

    async def _drop(self, part: int, *, graceful: bool) -> None:
        partition = self.owned.pop(part, None)
        if partition is not None:
            await partition.stop(graceful=graceful)
            log.info("partition %d released", part)

    def health(self) -> dict[str, object]:
        return {"partitions": sorted(self.owned),
                "processed": {p: x.processed for p, x in self.owned.items()}}
