"""Page queries off the event loop: read-only store connections in worker threads.

The daemon's store has one connection, used from the event loop. The dashboard's
reads (30 days of aggregates, alert history, raw posts for terms) and its CPU work
(what-if backtests, rendering big pages) run in a small thread pool, each thread with
its own read-only connection (``Store.reader``; SQLite's WAL and PostgreSQL's MVCC:
readers never block the writer). A store in memory (tests) has no second
connection: its reads run on the loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from monitor.store.api import Store

T = TypeVar("T")
WORKERS = 2


class Reader:
    def __init__(self, store: Store, workers: int = WORKERS) -> None:
        self.main = store
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[Store] = []
        self._pool: ThreadPoolExecutor | None = None
        self._workers = workers

    @property
    def threaded(self) -> bool:
        return self.main.shareable

    async def run(self, fn: Callable[[Store], T]) -> T:
        """``fn(store)`` on a worker thread with a read-only store (the main store, on
        the loop, when it lives in memory)."""
        if not self.threaded:
            return fn(self.main)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="web-read")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._call, fn)

    def _call(self, fn: Callable[[Store], T]) -> T:
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            store = self.main.reader()
            self._local.store = store
            with self._lock:
                self._opened.append(store)
        return fn(store)

    def close(self) -> None:
        """Stop the threads (after their current query) and close their connections."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        with self._lock:
            for store in self._opened:
                store.close()
            self._opened.clear()
        self._local = threading.local()
