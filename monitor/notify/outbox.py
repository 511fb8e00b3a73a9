"""Delivers the durable outbox: retries with backoff, dead letters, fallbacks.

Every alert is written to the outbox (one row per channel) before anything is
sent, so a crash or an unreachable service delays a notification but does not
lose it. The worker:

* delivers each channel on its own lane (task): a slow or failing channel never
  delays another. Within a channel, the most severe due item goes first (a critical
  alert is never queued behind lower-severity ones), the items of one dedup key in
  the order they were queued (a pager never sees "all clear" before the alert it
  clears), and while an item of the channel waits for its retry, the channel's
  other items wait too (the service is down for all of them). These rules come
  from the store, so they also hold across restarts;
* on a retryable failure reschedules the item after an exponential backoff with
  full jitter (``uniform(0, min(max_backoff, backoff * 2**(failures-1)))``), for
  as long as the channel's ``retry_for`` (default 24 h) from the item's first
  failure: the last retry is at that horizon, so an outage the channel recovers
  from within ``retry_for`` loses nothing. An item held back behind a failing one
  counts its horizon from when it was first held back (it waits on the same
  outage), so a long outage does not make a backlog wait ``retry_for`` per item;
* past the horizon, or at once on a non-retryable error, marks the item dead and,
  when the channel has a ``fallback``, queues the same alert on the fallback
  channel (at most once per alert and channel); otherwise (no fallback, or the
  alert already went dead there) calls ``on_dead`` - the daemon tells the admin
  channels. Dead items stay in the store: ``brand-monitor outbox list --status
  dead`` lists them, ``outbox retry`` (or ``POST /outbox/{id}/retry``) re-queues
  them with a fresh horizon;

Delivery is at-least-once: an alert whose send succeeded but whose "sent" mark
did not reach the database (crash in between) is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from monitor.clock import Clock
from monitor.config.schema import ChannelConfig
from monitor.errors import DeliveryError
from monitor.metrics import Metrics
from monitor.notify.channels import Notifier
from monitor.secrets import mask
from monitor.store.api import OutboxStore
from monitor.store.records import OutboxItem

log = logging.getLogger(__name__)

SCAN_LIMIT = 1000            # pending items looked at per pass (oldest first)
POLL = timedelta(seconds=5)  # re-check interval when the next due time is unknown
MAX_WAIT = 60.0              # longest sleep (seconds) between passes, a safety net
SHARED_POLL = 1.0            # ... when other processes write the store (claims)


class Outcome(enum.Enum):
    SENT = "sent"
    RETRY = "retry"
    DEAD = "dead"


class OutboxWorker:
    def __init__(self, store: OutboxStore, notifiers: Mapping[str, Notifier],
                 channels: Mapping[str, ChannelConfig], clock: Clock, metrics: Metrics,
                 rng: random.Random | None = None, *, send_timeout: float = 60.0,
                 on_dead: Callable[[OutboxItem, str], None] | None = None,
                 claim: tuple[str, timedelta] | None = None) -> None:
        self.store = store
        #: (owner, how long) when other processes drain the same store: each item is
        #: claimed before it is sent (see monitor.store.sql_outbox)
        self.claim = claim
        self.on_dead = on_dead  # (item, masked error) of a dead item no fallback carries
        self.notifiers = notifiers
        self.channels = channels
        self.clock = clock
        self.metrics = metrics
        self.rng = rng or random.Random()
        self.send_timeout = send_timeout

    # -- policy -------------------------------------------------------------
    def policy(self, channel: str) -> ChannelConfig:
        """The channel's retry settings (defaults for a notifier without config)."""
        return self.channels.get(channel) or ChannelConfig(name=channel, url="")

    def retry_delay(self, channel: ChannelConfig, failures: int) -> timedelta:
        """Full-jitter exponential backoff after ``failures`` (>= 1) failed attempts."""
        return timedelta(seconds=self.rng.uniform(0.0, backoff_ceiling(channel, failures)))

    # -- delivery -------------------------------------------------------------
    async def run_once(self) -> int:
        """Deliver every item that is due now, each channel on its own (concurrently);
        return how many were delivered."""
        delivered = 0
        while True:  # again while items moved: a fallback may have new items now
            channels = self.store.pending_channels()
            results = await asyncio.gather(*(self._drain(c) for c in channels),
                                           return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                self._update_gauge()
                raise errors[0]
            done = [r for r in results if isinstance(r, tuple)]
            delivered += sum(sent for sent, _ in done)
            if not any(tried for _, tried in done):
                break
        self._update_gauge()
        return delivered

    async def _drain(self, channel: str) -> tuple[int, int]:
        """Deliver a channel's due items one at a time, most severe first (a channel's
        items of one dedup key keep their order); stop while the channel waits for a
        retry. The store is asked again after each item, so an alert stored meanwhile
        (a critical one above all) goes next. Returns (delivered, attempted)."""
        sent = tried = 0
        while True:
            now = self.clock.now()
            if self.store.channel_blocked_until(channel, now) is not None:
                self._hold(channel, now)
                return sent, tried
            items = self._next(channel, now)
            if not items:
                return sent, tried
            outcome = await self.deliver(items[0])
            tried += 1
            if outcome is Outcome.SENT:
                sent += 1
            elif outcome is Outcome.RETRY:
                self._hold(channel, now)
                return sent, tried

    def _next(self, channel: str, now: datetime) -> list[OutboxItem]:
        if self.claim is None:
            return self.store.due_for_channel(channel, now, limit=1)
        owner, hold = self.claim
        return self.store.claim_for_channel(channel, now, owner, now + hold, limit=1)

    def _hold(self, channel: str, now: datetime) -> None:
        """The channel waits for a retry: its due items held back start their retry
        horizon now (they wait on the same outage)."""
        waiting = self.store.due_for_channel(channel, now, limit=SCAN_LIMIT)
        fresh = [i.id for i in waiting if i.first_failed_at is None and i.attempts == 0]
        if fresh:
            self.store.mark_waiting(fresh, now)

    async def deliver(self, item: OutboxItem) -> Outcome:
        """Attempt one outbox item and record the result in the store."""
        channel, alert = item.channel, item.alert
        notifier = self.notifiers.get(channel)
        if notifier is None:
            error = (f"unknown channel {channel!r}: no such channel is configured "
                     f"(alert {alert.id})")
            return self._dead(item, error, fallback=None)
        try:
            await asyncio.wait_for(notifier.send(alert), self.send_timeout)
        except DeliveryError as exc:
            error, retryable = str(exc), exc.retryable
        except TimeoutError:
            error, retryable = f"no answer within {self.send_timeout:g}s", True
        except Exception as exc:  # a notifier bug must not stop the outbox
            log.debug("notifier %r raised", channel, exc_info=True)
            error, retryable = f"{type(exc).__name__}: {exc}", True
        else:
            self.store.mark_sent(item.id, self.clock.now())
            self.metrics.deliveries.labels(channel, Outcome.SENT.value).inc()
            log.debug("delivered alert %s to %s (attempt %d)", alert.id, channel,
                      item.attempts + 1)
            return Outcome.SENT
        error = mask(error)
        policy = self.policy(channel)
        now = self.clock.now()
        failures = item.attempts + 1
        first = item.first_failed_at or now
        horizon = first + policy.retry_for
        if not retryable or now >= horizon:
            why = ("not retryable" if not retryable else
                   f"{failures} attempts over {_span(now - first)}, retry_for "
                   f"{_span(policy.retry_for)}")
            return self._dead(item, error, fallback=policy.fallback, why=why)
        retry_at = min(now + self.retry_delay(policy, failures), horizon)
        self.store.mark_failed(item.id, error, retry_at, now)
        self.metrics.deliveries.labels(channel, Outcome.RETRY.value).inc()
        log.warning("delivery of alert %s to %s failed (attempt %d, retrying until %s), "
                    "next try at %s: %s", alert.id, channel, failures,
                    horizon.isoformat(timespec="seconds"),
                    retry_at.isoformat(timespec="seconds"), error)
        return Outcome.RETRY

    def _dead(self, item: OutboxItem, error: str, *, fallback: str | None,
              why: str = "") -> Outcome:
        channel, alert = item.channel, item.alert
        error = mask(error)
        self.store.mark_failed(item.id, error, None, self.clock.now())
        self.metrics.deliveries.labels(channel, Outcome.DEAD.value).inc()
        reason = f" ({why})" if why else ""
        if fallback and fallback != channel:
            if self.store.enqueue(alert.id, fallback, self.clock.now()):
                log.error("gave up delivering alert %s to %s%s: %s; queued on fallback "
                          "channel %s", alert.id, channel, reason, error, fallback)
                return Outcome.DEAD
            if self.store.outbox_status(alert.id, fallback) in ("pending", "sent"):
                log.error("gave up delivering alert %s to %s%s: %s; it is already on "
                          "fallback channel %s", alert.id, channel, reason, error, fallback)
                return Outcome.DEAD
        log.error("gave up delivering alert %s to %s%s: %s (kept as dead letter %d: "
                  "brand-monitor outbox retry %d)", alert.id, channel, reason, error, item.id,
                  item.id)
        if self.on_dead is not None:
            try:
                self.on_dead(item, f"{error}{reason}")
            except Exception:  # telling the admins must not stop the outbox
                log.exception("could not report dead letter %d", item.id)
        return Outcome.DEAD

    # -- loop -----------------------------------------------------------------
    async def run(self, wake: asyncio.Event) -> None:
        """Deliver forever: one lane (task) per channel with pending items, each sleeping
        until its own next due time; ``wake`` (new alerts) wakes every lane and starts
        lanes for channels that have work again."""
        lanes: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}
        try:
            while True:
                try:
                    for channel in self.store.pending_channels():
                        lane = lanes.get(channel)
                        if lane is None or lane[0].done():
                            event = asyncio.Event()
                            task = asyncio.create_task(self._lane(channel, event),
                                                       name=f"outbox:{channel}")
                            lanes[channel] = (task, event)
                    self._update_gauge()
                    # other processes add alerts to a shared store without waking us
                    timeout = MAX_WAIT if self.claim is None else SHARED_POLL
                except Exception:
                    log.exception("outbox: cannot read the store; trying again in %ss",
                                  int(POLL.total_seconds()))
                    timeout = POLL.total_seconds()
                for _, event in lanes.values():
                    event.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout)
                wake.clear()
        finally:
            for task, _ in lanes.values():
                task.cancel()
            for task, _ in lanes.values():
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _lane(self, channel: str, event: asyncio.Event) -> None:
        """One channel's deliveries: a slow or failing channel never delays another."""
        while True:
            try:
                await self._drain(channel)
                timeout = self.seconds_until_next(channel)
            except Exception:
                log.exception("outbox %s: pass failed; trying again in %ss", channel,
                              int(POLL.total_seconds()))
                timeout = POLL.total_seconds()
            if timeout is None:
                return  # nothing pending: the next wake starts the lane again
            event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)

    def seconds_until_next(self, channel: str | None = None) -> float | None:
        """How long (real seconds) a channel's lane (or, without ``channel``, the
        earliest lane) sleeps after a pass unless woken; None: nothing is pending."""
        now = self.clock.now()
        channels = [channel] if channel is not None else self.store.pending_channels()
        times: list[datetime] = []
        for name in channels:
            blocked = self.store.channel_blocked_until(name, now)
            nxt = blocked if blocked is not None else self.store.next_due(name)
            if nxt is not None:
                times.append(nxt)
        if not times:
            return None if channel is not None else MAX_WAIT
        when = min(times)
        if when <= now:  # due but not deliverable (e.g. no alert row): re-check later
            return POLL.total_seconds()
        return min(MAX_WAIT, self._wall_seconds(when - now))

    def _wall_seconds(self, delta: timedelta) -> float:
        """Real seconds for ``delta`` of clock time (a ScaledClock runs faster)."""
        scale = getattr(self.clock, "wall_seconds", None)
        if callable(scale):
            return float(scale(delta))
        return delta.total_seconds()

    def _update_gauge(self) -> None:
        """Pending and dead items (delivered ones are counted by
        brandmon_deliveries_total{result="sent"})."""
        for status, count in self.store.outbox_backlog().items():
            self.metrics.outbox.labels(status).set(count)


def _span(delta: timedelta) -> str:
    """``1d 2h``, ``3h 5m``, ``40s``: a duration for people."""
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m")) if v]
    if not parts or (secs and not days and not hours):
        parts.append(f"{secs}s")
    return " ".join(parts[:2])


def backoff_ceiling(channel: ChannelConfig, failures: int) -> float:
    """Upper bound (seconds) of the retry delay after ``failures`` failed attempts."""
    base = max(0.0, channel.backoff.total_seconds())
    cap = max(0.0, channel.max_backoff.total_seconds())
    return min(cap, base * 2.0 ** min(max(failures, 1) - 1, 64))


__all__ = ["OutboxWorker", "Outcome", "backoff_ceiling"]
