"""Keeping a named lease on the shared store: acquire, renew, notice the loss.

A lease is a row (``LeaseStore``) held by one owner until it expires; a new holder
gets a higher epoch, and a store fenced with the lease (``LeaseStore.fence``)
refuses to commit once another holder has it. The keeper renews every quarter of
the time to live; when it cannot renew before the lease runs out (the database is
unreachable, or another process took over) it reports the loss: the holder stands
down (the active daemon exits, a worker drops the partition).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from monitor.clock import Clock, WallClock
from monitor.errors import StoreError
from monitor.store.api import LeaseStore
from monitor.store.records import Lease

log = logging.getLogger(__name__)


def process_id(node: str | None = None) -> str:
    """A name for this process that no other process shares: node (default: the host
    name), pid and a random part (a restarted process is a new holder)."""
    return f"{node or socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:6]}"


class LeaseKeeper:
    def __init__(self, store: LeaseStore, name: str, owner: str, ttl: timedelta,
                 clock: Clock | None = None) -> None:
        self.store = store
        self.name = name
        self.owner = owner
        self.ttl = ttl
        self.clock = clock or WallClock()
        self.lease: Lease | None = None

    @property
    def renew_every(self) -> float:
        return max(0.05, self.ttl.total_seconds() / 4)

    def try_acquire(self) -> Lease | None:
        """One attempt: the lease (taken or renewed), or None when another holds it."""
        self.lease = self.store.acquire_lease(self.name, self.owner, self.clock.now(), self.ttl)
        return self.lease

    async def acquire(self, stopping: asyncio.Event, poll: float = 1.0) -> Lease | None:
        """Wait until the lease is ours (None when ``stopping`` is set first)."""
        while not stopping.is_set():
            try:
                if self.try_acquire() is not None:
                    return self.lease
            except StoreError as exc:
                log.warning("lease %s: %s (trying again)", self.name, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), poll)
        return None

    def renew(self) -> bool:
        """Renew now; False when the lease is lost (another holder, or it expired
        while the store could not be reached)."""
        held = self.lease
        if held is None:
            return False
        try:
            renewed = self.try_acquire()
        except StoreError as exc:
            log.warning("lease %s: cannot renew: %s", self.name, exc)
            self.lease = held
            return self.clock.now() < held.expires_at
        if renewed is None or renewed.epoch != held.epoch:
            self.lease = None
            return False
        return True

    async def keep(self, on_lost: Callable[[str], None]) -> None:
        """Renew until cancelled; call ``on_lost(reason)`` once when the lease is lost."""
        while True:
            await asyncio.sleep(self.renew_every)
            if not self.renew():
                on_lost(f"lease {self.name} lost (held by {self.owner})")
                return

    def release(self) -> None:
        with contextlib.suppress(StoreError):
            self.store.release_lease(self.name, self.owner)
        self.lease = None

    def expires_at(self) -> datetime | None:
        return None if self.lease is None else self.lease.expires_at
