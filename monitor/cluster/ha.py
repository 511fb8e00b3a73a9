"""High availability: one active daemon per PostgreSQL store, the others standing by.

Every ``run --role all`` on PostgreSQL (without a stream) competes for the ``active``
lease. The holder runs the whole pipeline with its store fenced by the lease (a
transaction after someone else took it over is refused: no double alerts from a
paused or partitioned ex-active); the others wait, delivering the outbox meanwhile
(claims keep two drainers off one item). When the active one dies its lease expires
(``cluster.lease_ttl``) and a standby takes it, reloads detector state and replays
the posts stored after the checkpoint (``Engine.reload`` + ``recover``), exactly as
a restarted single daemon does, and starts its sources and HTTP server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from monitor.cluster.lease import LeaseKeeper
from monitor.store.api import Store

log = logging.getLogger(__name__)
LEASE = "active"


class ActiveLease:
    def __init__(self, store: Store, owner: str, ttl: timedelta) -> None:
        self.store = store
        self.keeper = LeaseKeeper(store, LEASE, owner, ttl)

    async def wait(self, stopping: asyncio.Event) -> bool:
        """Stand by until this process holds the lease (False: stopping first)."""
        poll = min(1.0, self.keeper.ttl.total_seconds() / 5)
        if self.keeper.try_acquire() is None:
            log.info("standby: another daemon is active; waiting for its lease (%s)",
                     self.keeper.ttl)
        lease = await self.keeper.acquire(stopping, poll=poll)
        if lease is None:
            return False
        self.store.fence(lease)
        log.info("active: holding the %s lease as %s (epoch %d)", LEASE, lease.owner,
                 lease.epoch)
        return True

    async def keep(self, on_lost: Callable[[str], None]) -> None:
        await self.keeper.keep(on_lost)

    def release(self) -> None:
        self.keeper.release()
