"""The daemon's intake: one bounded queue between everything that produces posts (the
sources, ``POST /ingest``) and the engine.

- **Bounded, in posts.** ``offer`` (HTTP) either takes a whole batch or refuses it
  with :class:`Backpressure` carrying a ``Retry-After`` estimate (HTTP 429); ``put``
  (sources) waits for room, so a source slows down instead of growing memory. The
  brand's own (outbound) posts have room of their own (``URGENT_ROOM``): a storm of
  mentions that fills the queue never turns away, nor holds up, the posts that the
  security screen must see (a source's, or a request of outbound posts only: a mixed
  request is taken or refused whole).
- **Durable before acknowledged.** With a ``journal`` (the daemon's store), a batch
  offered by HTTP is written to the ingest journal before ``offer`` returns; the
  engine removes each post from it in the transaction that stores it for good, and a
  restart runs what is left (:meth:`Intake.resume`). So the HTTP answer need not wait
  for the detectors (``202`` means "stored"), and a storm does not turn into seconds of
  HTTP latency. The offer's future is resolved once the engine has committed the batch
  (or failed it), for senders that can wait for the detectors' verdicts.
- **Measured.** Queue depth and the age of the oldest waiting post (lag) are
  Prometheus gauges; refusals are counted.

The consumer (:meth:`Intake.run`) takes up to ``batch`` posts at a time, has them
enriched (in a worker process when one is configured, overlapping with the engine's
work on the previous batch) and hands them to ``process``: the engine's stateful
stage, which runs on the event loop in bounded slices.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.clock import Clock, WallClock
from monitor.enrich.enricher import Enrichment
from monitor.errors import StoreError
from monitor.metrics import Metrics
from monitor.model import Post
from monitor.store.api import JournalStore

log = logging.getLogger(__name__)

#: the engine's stage: posts, their enrichments (None: enrich inline) and their journal
#: numbers (0: not journaled; the journaled are removed in the same transaction)
Process = Callable[[list[Post], list[Enrichment] | None, list[int]], list[bool]]
Enrich = Callable[[list[Post]], Awaitable[list[Enrichment] | None]]
STORE_RETRY_SECONDS = 0.25  # a batch the store refused (locked, full) is retried,
STORE_RETRY_MAX = 5.0  # with a doubling delay up to this
DRAIN_SECONDS = 30.0  # at shutdown, queued posts are stored for at most this long
AHEAD = 2  # batches handed to the enrichment worker ahead of the one the engine runs
YIELDS = 4  # turns the other tasks get between two batches of the engine
URGENT_ROOM = 1_000  # outbound posts queued on top of ``capacity`` (Intake._full)


class Backpressure(Exception):
    """The queue cannot take the batch now; ask again after ``retry_after`` seconds."""

    def __init__(self, retry_after: float, depth: int) -> None:
        super().__init__(f"ingest queue full ({depth} posts waiting)")
        self.retry_after = retry_after
        self.depth = depth


@dataclass(eq=False)
class _Item:
    posts: list[Post]
    queued_at: float
    done: asyncio.Future[list[bool]] | None = None
    source: str = ""
    seqs: list[int] = field(default_factory=list)  # journal numbers (journaled posts)
    reserved: int = 0  # posts of this item handed out for processing
    taken: int = 0  # posts of this item the engine has finished with
    results: list[bool] = field(default_factory=list)


@dataclass(eq=False)
class Offered:
    """An HTTP batch the intake took: ``journaled`` (per post: new, or a duplicate;
    None without a journal) is known at once; awaiting it gives, per post, whether it
    was new once the engine has committed it."""

    done: asyncio.Future[list[bool]]
    journaled: list[bool] | None = None

    def __await__(self) -> Generator[Any, None, list[bool]]:
        return self.done.__await__()


class Intake:
    def __init__(self, capacity: int, metrics: Metrics, *, batch: int = 200,
                 journal: JournalStore | None = None, clock: Clock | None = None) -> None:
        self.capacity = capacity
        self.batch = batch
        self.metrics = metrics
        self.journal = journal
        self.clock = clock or WallClock()
        self._items: collections.deque[_Item] = collections.deque()
        # outbound posts (the brand's own: a hijack or a rogue post is a security
        # incident) go ahead of the mentions of a storm; the two kinds touch different
        # detectors, so their order relative to each other does not matter
        self._urgent: collections.deque[_Item] = collections.deque()
        self._depth = 0
        self._ready = asyncio.Event()  # items waiting
        self._urgent_ready = asyncio.Event()  # outbound posts waiting
        self._room = asyncio.Event()  # depth below capacity
        self._room.set()
        self._rate = 1000.0  # posts/s the engine has been taking (for Retry-After)
        #: set while the store refuses batches: new HTTP batches fail at once (503)
        self.store_error: StoreError | None = None

    # -- producers ------------------------------------------------------------
    @property
    def depth(self) -> int:
        return self._depth

    def lag(self) -> float:
        """Seconds the oldest waiting post has waited."""
        heads = [q[0].queued_at for q in (self._urgent, self._items) if q]
        return time.monotonic() - min(heads) if heads else 0.0

    def offer(self, posts: list[Post]) -> Offered:
        """Take a whole batch (HTTP) or raise Backpressure (or the store's error: nothing
        was taken). With a journal the batch is durable when this returns (and the
        journal's own write says whether the store takes posts)."""
        if self.store_error is not None and self.journal is None:
            raise self.store_error
        if self._full(len(posts), all(p.kind == "outbound" for p in posts)):
            self.metrics.ingest_refused.inc()
            retry = max(1.0, min(60.0, (self._depth + len(posts)) / max(self._rate, 1.0)))
            raise Backpressure(retry, self._depth)
        loop = asyncio.get_running_loop()
        journaled: list[bool] | None = None
        taken, seqs = list(posts), []
        if self.journal is not None:  # duplicates are answered now and go no further
            numbers = self.journal.journal_add(posts, self.clock.now())
            journaled = [n is not None for n in numbers]
            taken = [p for p, n in zip(posts, numbers, strict=True) if n is not None]
            seqs = [n for n in numbers if n is not None]
        offered = Offered(self._queue_http(loop, taken, seqs), journaled)
        if journaled is not None and len(taken) < len(posts):
            offered.done = asyncio.ensure_future(_with_duplicates(journaled, offered.done))
        return offered

    def _queue_http(self, loop: asyncio.AbstractEventLoop, posts: list[Post],
                    seqs: list[int]) -> asyncio.Future[list[bool]]:
        """Queue an HTTP batch, outbound posts ahead; the future: results in its order."""
        if not posts:
            done: asyncio.Future[list[bool]] = loop.create_future()
            done.set_result([])
            return done
        urgent = [p.kind == "outbound" for p in posts]
        if not any(urgent) or all(urgent):
            done = loop.create_future()
            self._push(_Item(posts, time.monotonic(), done, "http", seqs), urgent[0])
            return done
        # a mixed batch: outbound posts ahead, the answer in the request's order
        first: asyncio.Future[list[bool]] = loop.create_future()
        rest: asyncio.Future[list[bool]] = loop.create_future()
        for flag, future in ((True, first), (False, rest)):
            part = [i for i, u in enumerate(urgent) if u == flag]
            self._push(_Item([posts[i] for i in part], time.monotonic(), future, "http",
                             [seqs[i] for i in part] if seqs else []), flag)
        return asyncio.ensure_future(_merged(posts, first, rest))

    def resume(self, pending: Sequence[tuple[int, Post]]) -> None:
        """After a restart: queue the journaled posts the engine had not stored (ahead of
        anything new; outbound posts first, as always)."""
        for urgent in (True, False):
            part = [(n, p) for n, p in pending if (p.kind == "outbound") == urgent]
            for i in range(0, len(part), self.batch):
                chunk = part[i:i + self.batch]
                self._push(_Item([p for _, p in chunk], time.monotonic(), None, "http",
                                 [n for n, _ in chunk]), urgent)

    async def put(self, post: Post) -> None:
        """Queue one post from a source, waiting while the queue is full."""
        urgent = post.kind == "outbound"
        if self._full(1, urgent):
            self.metrics.queue_dropped.labels(post.source).inc()  # counted: it waits
            while self._full(1, urgent):
                self._room.clear()
                await self._room.wait()
        queue = self._urgent if urgent else self._items
        tail = queue[-1] if queue else None
        if tail is not None and tail.done is None and not tail.seqs and tail.reserved == 0 \
                and len(tail.posts) < self.batch:
            tail.posts.append(post)  # sources' posts travel in batches too
            self._added(1, urgent)
            return
        self._push(_Item([post], time.monotonic(), None, post.source), urgent)

    def _full(self, adding: int, urgent: bool) -> bool:
        """No room for ``adding`` more posts. Mentions share ``capacity``; the brand's
        own posts (``urgent``: outbound, few, and the security screen must see them
        during a storm, when mentions fill the queue) have ``URGENT_ROOM`` of their own."""
        if urgent:
            waiting = self._urgent_waiting()
            return waiting > 0 and waiting + adding > URGENT_ROOM
        return self._depth > 0 and self._depth + adding > self.capacity

    def _urgent_waiting(self) -> int:
        return sum(len(item.posts) - item.taken for item in self._urgent)

    def _push(self, item: _Item, urgent: bool = False) -> None:
        (self._urgent if urgent else self._items).append(item)
        self._added(len(item.posts), urgent)

    def _added(self, posts: int, urgent: bool) -> None:
        """Count queued posts and wake the consumer."""
        self._depth += posts
        self._gauges()
        self._ready.set()
        if urgent:
            self._urgent_ready.set()

    def _gauges(self) -> None:
        self.metrics.queue_depth.set(self._depth)
        self.metrics.queue_lag.set(self.lag())
        if self._depth < self.capacity or self._urgent_waiting() < URGENT_ROOM:
            self._room.set()  # (a waiter checks its own kind of room again)

    # -- consumer -------------------------------------------------------------
    def _reserve(self, urgent: bool = False
                 ) -> tuple[list[Post], list[int], list[tuple[_Item, int]]]:
        """Up to ``batch`` posts not yet handed out (``urgent``: outbound ones only),
        outbound first, oldest first, their journal numbers (0: not journaled) and their
        items."""
        posts: list[Post] = []
        seqs: list[int] = []
        parts: list[tuple[_Item, int]] = []
        for item in self._urgent if urgent else itertools.chain(self._urgent, self._items):
            room = self.batch - len(posts)
            if room <= 0:
                break
            start = item.reserved
            chunk = item.posts[start:start + room]
            if not chunk:
                continue
            item.reserved += len(chunk)
            posts += chunk
            seqs += item.seqs[start:start + len(chunk)] if item.seqs else [0] * len(chunk)
            parts.append((item, len(chunk)))
        return posts, seqs, parts

    def _unreserved(self, urgent: bool = False) -> bool:
        queues = (self._urgent,) if urgent else (self._urgent, self._items)
        return any(q and q[-1].reserved < len(q[-1].posts) for q in queues)

    def _settle(self, parts: list[tuple[_Item, int]], results: Sequence[bool]) -> None:
        offset = 0
        for item, n in parts:
            item.results += results[offset:offset + n]
            offset += n
            item.taken += n
            self._depth -= n
        for queue in (self._urgent, self._items):
            while queue and queue[0].taken >= len(queue[0].posts):
                item = queue.popleft()
                if item.done is not None and not item.done.done():
                    item.done.set_result(item.results)
        self._gauges()

    async def drain(self, process: Process, enrich: Enrich | None = None,
                    within: float = DRAIN_SECONDS) -> int:
        """Shutdown: store what is still queued (enriched by the worker when there is
        one), for at most ``within`` seconds; return how many posts were left."""
        for item in itertools.chain(self._urgent, self._items):
            item.reserved = item.taken  # anything handed out but unsettled goes again
        deadline = time.monotonic() + within
        while (self._urgent or self._items) and time.monotonic() < deadline:
            posts, seqs, parts = self._reserve()
            enrichments = await enrich(posts) if enrich is not None else None
            self._settle(parts, process(posts, enrichments, seqs))
            await asyncio.sleep(0)
        return self._depth

    def fail_pending(self, exc: BaseException) -> None:
        """Shutdown: tell the HTTP clients still waiting that their batch was not taken."""
        for item in itertools.chain(self._urgent, self._items):
            if item.done is not None and not item.done.done():
                item.done.set_exception(exc)

    async def run(self, process: Process, enrich: Enrich | None = None) -> None:
        """Feed the engine forever. With ``enrich`` (a worker process), the next
        ``AHEAD`` batches are handed to the worker while the engine stores this one:
        the worker always has the next batch at hand, whatever the latency of the
        hand-over (threads, pipes, the GIL), so the two cores overlap."""
        Batch = tuple[list[tuple[_Item, int]], list[Post], list[int],
                      asyncio.Future[list[Enrichment] | None] | None]

        def reserve() -> Batch:
            posts, seqs, parts = self._reserve()
            return (parts, posts, seqs,
                    asyncio.ensure_future(enrich(posts)) if enrich else None)

        pending: collections.deque[Batch] = collections.deque()
        while True:
            if not pending:
                while not self._unreserved():
                    self._ready.clear()
                    await self._ready.wait()
            if self._unreserved(urgent=True):
                # outbound posts that came after the batches handed to the worker: they
                # do not wait behind them (enriched here: they are few)
                posts, seqs, parts = self._reserve(urgent=True)
                self._settle(parts, await self._process_retrying(process, posts, None, seqs,
                                                                 parts))
                for _ in range(YIELDS):  # its alert's delivery starts before the next batch
                    await asyncio.sleep(0)
                continue
            if not pending:
                pending.append(reserve())
            task = pending[0][3]
            if task is not None and not task.done():
                # the worker is still on this batch: an outbound post that arrives
                # meanwhile runs at once instead of waiting for it
                self._urgent_ready.clear()
                if not self._unreserved(urgent=True):
                    waiter = asyncio.ensure_future(self._urgent_ready.wait())
                    await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                if self._unreserved(urgent=True):
                    continue
            parts, posts, seqs, task = pending.popleft()
            enrichments = await task if task is not None else None
            while enrich is not None and len(pending) < AHEAD and self._unreserved():
                pending.append(reserve())
            started = time.perf_counter()
            results = await self._process_retrying(process, posts, enrichments, seqs, parts)
            elapsed = time.perf_counter() - started
            if elapsed > 0:
                self._rate = 0.8 * self._rate + 0.2 * (len(posts) / elapsed)
            self._settle(parts, results)
            # let HTTP handlers, deliveries and timers run between batches: a request or
            # a webhook call takes a few steps, and each step would otherwise wait for
            # a whole batch
            for _ in range(YIELDS):
                await asyncio.sleep(0)

    async def _process_retrying(self, process: Process, posts: list[Post],
                                enrichments: list[Enrichment] | None, seqs: list[int],
                                parts: list[tuple[_Item, int]]) -> list[bool]:
        delay = STORE_RETRY_SECONDS
        isolate = False
        while True:
            try:
                if isolate:
                    results = self._one_by_one(process, posts, enrichments, seqs)
                else:
                    results = process(posts, enrichments, seqs)
                if self.store_error is not None:
                    log.info("the store takes posts again")
                    self.store_error = None
                return results
            except StoreError as exc:  # locked or full: keep the batch, try again
                self.store_error = exc
                if delay == STORE_RETRY_SECONDS:
                    log.error("cannot store %d post(s), retrying: %s", len(posts), exc)
                for item, _ in parts:  # the HTTP clients hear of it (503, Retry-After)
                    if item.done is not None and not item.done.done() and not item.seqs:
                        item.done.set_exception(exc)  # (journaled ones are safe: they wait)
                await asyncio.sleep(delay)
                delay = min(delay * 2, STORE_RETRY_MAX)
            except Exception:  # a bug or a poisonous post: find it, skip it, go on
                log.exception("engine failed on a batch of %d post(s); retrying one by one",
                              len(posts))
                isolate = True

    def _one_by_one(self, process: Process, posts: list[Post],
                    enrichments: list[Enrichment] | None, seqs: list[int]) -> list[bool]:
        """Posts one at a time, skipping (and counting) those the engine fails on."""
        results: list[bool] = []
        for i, post in enumerate(posts):
            seq = [seqs[i]] if seqs[i] else []
            try:
                one = [enrichments[i]] if enrichments is not None else None
                results += process([post], one, seq)
            except StoreError:
                raise  # retried as a whole by the caller (done posts are duplicates then)
            except Exception:
                log.exception("post %s from %s could not be processed: skipped", post.id,
                              post.source)
                self.metrics.failed.labels(post.source).inc()
                results.append(False)
                if seq and self.journal is not None:  # not again after a restart
                    self.journal.journal_done(seq)
        return results


async def _with_duplicates(journaled: list[bool], new: asyncio.Future[list[bool]]
                           ) -> list[bool]:
    """The engine's results for the new posts of a batch, with False for the posts the
    journal found to be duplicates, in the batch's order."""
    results = iter(await new)
    return [next(results) if fresh else False for fresh in journaled]


async def _merged(posts: list[Post], first: asyncio.Future[list[bool]],
                  rest: asyncio.Future[list[bool]]) -> list[bool]:
    """Results of a batch split into outbound posts (``first``) and the rest, in the
    batch's order."""
    a, b = iter(await first), iter(await rest)
    return [next(a) if p.kind == "outbound" else next(b) for p in posts]


async def cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
