"""Enrichment in a worker process, so the daemon uses a second core.

Brand matching, sentiment and intent tagging (:class:`~monitor.enrich.enricher.Enricher`)
are a pure function of a post's text and a few fields: a worker process computes them
for batch *n+1* while the event loop's engine stores batch *n* (see
:class:`monitor.intake.Intake`). Only those fields cross the process boundary, and
only small :class:`Enrichment` values come back. If the worker dies, the batch is
enriched in the daemon itself and a new worker is started.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Awaitable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from monitor import heap
from monitor.config.schema import Config
from monitor.enrich.enricher import Enricher, Enrichment
from monitor.model import Post

log = logging.getLogger(__name__)
Fields = tuple[str, str | None, str, str]  # kind, brand, author handle, text

_ENRICHER: Enricher | None = None  # in the worker process
PARENT_CHECK_SECONDS = 0.5


def _start(config: Config) -> None:
    global _ENRICHER
    # Ctrl-C in a terminal reaches the whole process group: the daemon drains and
    # closes the pool itself, so the worker must not die mid-batch with a traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _ENRICHER = Enricher(config)
    heap.settle()  # lexicons and patterns out of the collector's walks
    parent = os.getppid()
    threading.Thread(target=_exit_with, args=(parent,), daemon=True,
                     name="parent-watch").start()


def _exit_with(parent: int) -> None:
    """A worker whose daemon died (SIGKILL, OOM killer) exits too instead of waiting
    forever on a queue nobody writes to: it has been adopted by another process."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def _enrich(batch: list[Fields]) -> list[Enrichment]:
    assert _ENRICHER is not None, "worker not initialised"
    return [_ENRICHER.enrich_fields(*fields) for fields in batch]


def fields(posts: list[Post]) -> list[Fields]:
    return [(p.kind, p.brand, p.author.handle, p.text) for p in posts]


def enrich_batch(batch: list[Fields]) -> list[Enrichment]:
    """In a worker started with :func:`start_worker`: enrich one batch."""
    return _enrich(batch)


def start_worker(config: Config) -> None:
    """``initializer`` of a worker process (see :class:`EnrichPool`)."""
    _start(config)


def new_executor(config: Config, workers: int) -> ProcessPoolExecutor:
    # spawn: a clean interpreter, nothing inherited from the caller's threads and loop
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start, initargs=(config,))


def workers_for(setting: int) -> int:
    """``enrich_workers``: -1 (auto) means one worker when there are 2+ cores."""
    if setting >= 0:
        return setting
    return 1 if (os.cpu_count() or 1) >= 2 else 0


class EnrichPool:
    def __init__(self, config: Config, workers: int = 1) -> None:
        self.config = config
        self.workers = workers
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return new_executor(self.config, self.workers)

    async def start(self) -> None:
        """Start the worker now (imports and lexicons take a moment), not on the first
        batch."""
        await self.enrich([])

    def enrich(self, posts: list[Post]) -> Awaitable[list[Enrichment] | None]:
        """Enrichments for ``posts``, or None when the worker failed (enrich inline).

        The batch goes to the worker *now*, not when the result is first awaited: the
        intake hands batch *n+1* over and then runs the engine on batch *n* without
        yielding, and only work already submitted overlaps with it.
        """
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._pool, _enrich, fields(posts))
        except BrokenProcessPool:  # the pool knew already: no future to wait for
            return self._restarted()
        return self._guarded(future)

    async def _guarded(self, future: Awaitable[list[Enrichment]]) -> list[Enrichment] | None:
        try:
            return await future
        except BrokenProcessPool:
            await self._restarted()
            return None

    async def _restarted(self) -> None:
        """The worker died: a new pool for the next batches (this one is enriched in
        the daemon: the caller gets None)."""
        log.error("enrichment worker died; enriching in the daemon until a new one is up")
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
