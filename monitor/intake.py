"""The daemon's intake: one bounded queue between everything that produces posts (the
sources, ``POST /ingest``) and the engine.

- **Bounded, in posts.** ``offer`` (HTTP) either takes a whole batch or refuses it
  with :class:`Backpressure` carrying a ``Retry-After`` estimate (HTTP 429); ``put``
  (sources) waits for room, so a source slows down instead of growing memory.
- **Durable before acknowledged.** A batch offered by HTTP comes with a future that
  is resolved once the engine has committed it (or failed it), so ``202`` still means
  "stored".
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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from monitor.enrich.enricher import Enrichment
from monitor.errors import StoreError
from monitor.metrics import Metrics
from monitor.model import Post

log = logging.getLogger(__name__)

Process = Callable[[list[Post], list[Enrichment] | None], list[bool]]
Enrich = Callable[[list[Post]], Awaitable[list[Enrichment] | None]]
STORE_RETRY_SECONDS = 0.25  # a batch the store refused (locked, full) is retried,
STORE_RETRY_MAX = 5.0  # with a doubling delay up to this
DRAIN_SECONDS = 30.0  # at shutdown, queued posts are stored for at most this long


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
    reserved: int = 0  # posts of this item handed out for processing
    taken: int = 0  # posts of this item the engine has finished with
    results: list[bool] = field(default_factory=list)


class Intake:
    def __init__(self, capacity: int, metrics: Metrics, *, batch: int = 200) -> None:
        self.capacity = capacity
        self.batch = batch
        self.metrics = metrics
        self._items: collections.deque[_Item] = collections.deque()
        # outbound posts (the brand's own: a hijack or a rogue post is a security
        # incident) go ahead of the mentions of a storm; the two kinds touch different
        # detectors, so their order relative to each other does not matter
        self._urgent: collections.deque[_Item] = collections.deque()
        self._depth = 0
        self._ready = asyncio.Event()  # items waiting
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

    def offer(self, posts: list[Post]) -> asyncio.Future[list[bool]]:
        """Queue a whole batch (HTTP) or raise Backpressure; the future gets, per post,
        whether it was new (True) or a duplicate, once committed."""
        if self.store_error is not None:
            raise self.store_error
        if self._depth and self._depth + len(posts) > self.capacity:
            self.metrics.ingest_refused.inc()
            retry = max(1.0, min(60.0, (self._depth + len(posts)) / max(self._rate, 1.0)))
            raise Backpressure(retry, self._depth)
        loop = asyncio.get_running_loop()
        urgent = [p for p in posts if p.kind == "outbound"]
        if not urgent or len(urgent) == len(posts):
            done: asyncio.Future[list[bool]] = loop.create_future()
            self._push(_Item(list(posts), time.monotonic(), done, "http"), bool(urgent))
            return done
        # a mixed batch: outbound posts ahead, the answer in the request's order
        first: asyncio.Future[list[bool]] = loop.create_future()
        rest: asyncio.Future[list[bool]] = loop.create_future()
        self._push(_Item(urgent, time.monotonic(), first, "http"), True)
        self._push(_Item([p for p in posts if p.kind != "outbound"], time.monotonic(), rest,
                         "http"), False)
        return asyncio.ensure_future(_merged(posts, first, rest))

    async def put(self, post: Post) -> None:
        """Queue one post from a source, waiting while the queue is full."""
        if self._depth >= self.capacity:
            self.metrics.queue_dropped.labels(post.source).inc()  # counted: it waits
            while self._depth >= self.capacity:
                self._room.clear()
                await self._room.wait()
        urgent = post.kind == "outbound"
        queue = self._urgent if urgent else self._items
        tail = queue[-1] if queue else None
        if tail is not None and tail.done is None and tail.reserved == 0 and \
                len(tail.posts) < self.batch:
            tail.posts.append(post)  # sources' posts travel in batches too
            self._depth += 1
            self._gauges()
            self._ready.set()
            return
        self._push(_Item([post], time.monotonic(), None, post.source), urgent)

    def _push(self, item: _Item, urgent: bool = False) -> None:
        (self._urgent if urgent else self._items).append(item)
        self._depth += len(item.posts)
        self._gauges()
        self._ready.set()

    def _gauges(self) -> None:
        self.metrics.queue_depth.set(self._depth)
        self.metrics.queue_lag.set(self.lag())
        if self._depth < self.capacity:
            self._room.set()

    # -- consumer -------------------------------------------------------------
    def _reserve(self) -> tuple[list[Post], list[tuple[_Item, int]]]:
        """Up to ``batch`` posts not yet handed out, oldest first, and their items."""
        posts: list[Post] = []
        parts: list[tuple[_Item, int]] = []
        for item in itertools.chain(self._urgent, self._items):
            room = self.batch - len(posts)
            if room <= 0:
                break
            chunk = item.posts[item.reserved:item.reserved + room]
            if not chunk:
                continue
            item.reserved += len(chunk)
            posts += chunk
            parts.append((item, len(chunk)))
        return posts, parts

    def _unreserved(self) -> bool:
        return any(q and q[-1].reserved < len(q[-1].posts) for q in (self._urgent, self._items))

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
            posts, parts = self._reserve()
            enrichments = await enrich(posts) if enrich is not None else None
            self._settle(parts, process(posts, enrichments))
            await asyncio.sleep(0)
        return self._depth

    def fail_pending(self, exc: BaseException) -> None:
        """Shutdown: tell the HTTP clients still waiting that their batch was not taken."""
        for item in itertools.chain(self._urgent, self._items):
            if item.done is not None and not item.done.done():
                item.done.set_exception(exc)

    async def run(self, process: Process, enrich: Enrich | None = None) -> None:
        """Feed the engine forever. With ``enrich`` (a worker process), batch *n+1* is
        enriched while the engine stores batch *n*."""
        Batch = tuple[list[tuple[_Item, int]], list[Post],
                      asyncio.Future[list[Enrichment] | None] | None]

        def reserve() -> Batch:
            posts, parts = self._reserve()
            return parts, posts, asyncio.ensure_future(enrich(posts)) if enrich else None

        pending: Batch | None = None
        while True:
            if pending is None:
                while not self._unreserved():
                    self._ready.clear()
                    await self._ready.wait()
                pending = reserve()
            parts, posts, task = pending
            enrichments = await task if task is not None else None
            pending = reserve() if enrich is not None and self._unreserved() else None
            started = time.perf_counter()
            results = await self._process_retrying(process, posts, enrichments, parts)
            elapsed = time.perf_counter() - started
            if elapsed > 0:
                self._rate = 0.8 * self._rate + 0.2 * (len(posts) / elapsed)
            self._settle(parts, results)
            await asyncio.sleep(0)  # let HTTP handlers and timers run between batches

    async def _process_retrying(self, process: Process, posts: list[Post],
                                enrichments: list[Enrichment] | None,
                                parts: list[tuple[_Item, int]]) -> list[bool]:
        delay = STORE_RETRY_SECONDS
        isolate = False
        while True:
            try:
                if isolate:
                    results = self._one_by_one(process, posts, enrichments)
                else:
                    results = process(posts, enrichments)
                if self.store_error is not None:
                    log.info("the store takes posts again")
                    self.store_error = None
                return results
            except StoreError as exc:  # locked or full: keep the batch, try again
                self.store_error = exc
                if delay == STORE_RETRY_SECONDS:
                    log.error("cannot store %d post(s), retrying: %s", len(posts), exc)
                for item, _ in parts:  # the HTTP clients hear of it (503, Retry-After)
                    if item.done is not None and not item.done.done():
                        item.done.set_exception(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, STORE_RETRY_MAX)
            except Exception:  # a bug or a poisonous post: find it, skip it, go on
                log.exception("engine failed on a batch of %d post(s); retrying one by one",
                              len(posts))
                isolate = True

    def _one_by_one(self, process: Process, posts: list[Post],
                    enrichments: list[Enrichment] | None) -> list[bool]:
        results: list[bool] = []
        for i, post in enumerate(posts):
            try:
                one = [enrichments[i]] if enrichments is not None else None
                results += process([post], one)
            except StoreError:
                raise  # retried as a whole by the caller (done posts are duplicates then)
            except Exception:
                log.exception("post %s from %s could not be processed: skipped", post.id,
                              post.source)
                self.metrics.failed.labels(post.source).inc()
                results.append(False)
        return results


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
