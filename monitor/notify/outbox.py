"""Delivers the durable outbox: retries with backoff, dead letters, fallbacks.

Every alert is written to the outbox (one row per channel) before anything is
sent, so a crash or an unreachable service delays a notification but does not
lose it. The worker:

* delivers alerts **in order per channel** (outbox id order): while the oldest
  pending item of a channel waits for its retry, later items of that channel
  wait too, so a pager never sees "all clear" before the alert it clears.
  The rule comes from the store, so it also holds across restarts;
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
* delivers different channels concurrently, so one slow service does not hold
  up the others.

Delivery is at-least-once: an alert whose send succeeded but whose "sent" mark
did not reach the database (crash in between) is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from monitor.clock import Clock
from monitor.config.schema import ChannelConfig
from monitor.errors import DeliveryError
from monitor.metrics import Metrics
from monitor.notify.channels import Notifier
from monitor.secrets import mask
from monitor.store.sqlite import OutboxItem, SqliteStore

log = logging.getLogger(__name__)

SCAN_LIMIT = 1000            # pending items looked at per pass (oldest first)
POLL = timedelta(seconds=5)  # re-check interval when the next due time is unknown
MAX_WAIT = 60.0              # longest sleep (seconds) between passes, a safety net
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
_STATUSES = ("pending", "sent", "dead")


class Outcome(enum.Enum):
    SENT = "sent"
    RETRY = "retry"
    DEAD = "dead"


class OutboxWorker:
    def __init__(self, store: SqliteStore, notifiers: Mapping[str, Notifier],
                 channels: Mapping[str, ChannelConfig], clock: Clock, metrics: Metrics,
                 rng: random.Random | None = None, *, send_timeout: float = 60.0,
                 on_dead: Callable[[OutboxItem, str], None] | None = None) -> None:
        self.store = store
        self.on_dead = on_dead  # (item, masked error) of a dead item no fallback carries
        self.notifiers = notifiers
        self.channels = channels
        self.clock = clock
        self.metrics = metrics
        self.rng = rng or random.Random()
        self.send_timeout = send_timeout
        # channel -> (id, retry time) of its oldest pending item, when it failed here
        self._held: dict[str, tuple[int, datetime]] = {}
        # earliest time a channel blocked behind a not-yet-due item may move again
        self._hint: datetime | None = None

    # -- policy -------------------------------------------------------------
    def policy(self, channel: str) -> ChannelConfig:
        """The channel's retry settings (defaults for a notifier without config)."""
        return self.channels.get(channel) or ChannelConfig(name=channel, url="")

    def retry_delay(self, channel: ChannelConfig, failures: int) -> timedelta:
        """Full-jitter exponential backoff after ``failures`` (>= 1) failed attempts."""
        return timedelta(seconds=self.rng.uniform(0.0, backoff_ceiling(channel, failures)))

    # -- delivery -------------------------------------------------------------
    async def run_once(self) -> int:
        """Deliver every item that is due now; return how many were delivered."""
        delivered = 0
        stalled: set[str] = set()   # channels that had a retry during this call
        waiting: dict[str, int] = {}  # channel -> its not-yet-due item that due ones wait for
        while True:
            now = self.clock.now()
            due = {item.id for item in self.store.due(now, limit=SCAN_LIMIT)}
            if not due:
                break
            runs, blocked = self._runs(due, stalled)
            waiting.update(blocked)
            if not runs:
                break
            results = await asyncio.gather(*(self._deliver_run(items) for items in runs.values()),
                                           return_exceptions=True)
            errors: list[BaseException] = []
            for channel, result in zip(runs, results, strict=True):
                if isinstance(result, BaseException):
                    errors.append(result)
                    stalled.add(channel)
                    continue
                sent, retried = result
                delivered += sent
                if retried:
                    stalled.add(channel)
            if errors:
                self._update_gauge()
                raise errors[0]
        self._hint = self._wake_hint(stalled, waiting)
        self._update_gauge()
        return delivered

    def _runs(self, due: set[int], stalled: set[str]) -> tuple[dict[str, list[OutboxItem]],
                                                                 dict[str, int]]:
        """Per channel, the due items that may go now, oldest first.

        A channel's items stop at its first pending item that is not due (it waits
        for a retry), so later alerts never overtake it.
        """
        runs: dict[str, list[OutboxItem]] = {}
        stopped = set(stalled)
        heads: dict[str, OutboxItem] = {}
        blocked: dict[str, int] = {}
        behind_failure: list[int] = []  # due, but held behind an item that failed
        for item in self.store.due(_FAR_FUTURE, limit=SCAN_LIMIT):
            channel = item.channel
            head = heads.setdefault(channel, item)
            if channel in stopped:
                if item.id in due:
                    blocked[channel] = head.id
                    if head.first_failed_at is not None and item.first_failed_at is None:
                        behind_failure.append(item.id)
                continue
            if item.id not in due:
                stopped.add(channel)
                continue
            runs.setdefault(channel, []).append(item)
        if behind_failure:  # their retry horizon runs from now: they wait on the outage
            self.store.mark_waiting(behind_failure, self.clock.now())
        return runs, blocked

    async def _deliver_run(self, items: Sequence[OutboxItem]) -> tuple[int, bool]:
        """Deliver one channel's items in order; stop at the first that must wait."""
        sent = 0
        for item in items:
            outcome = await self.deliver(item)
            if outcome is Outcome.SENT:
                sent += 1
            elif outcome is Outcome.RETRY:
                return sent, True
        return sent, False

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
            self._held.pop(channel, None)
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
        self._held[channel] = (item.id, retry_at)
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
        self._held.pop(channel, None)
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
        """Deliver forever: after each pass sleep until the next due time or ``wake``."""
        while True:
            try:
                await self.run_once()
                timeout = self.seconds_until_next()
            except Exception:
                log.exception("outbox pass failed; trying again in %ss",
                              int(POLL.total_seconds()))
                timeout = POLL.total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)
            wake.clear()

    def seconds_until_next(self) -> float:
        """How long (real seconds) run() sleeps after a pass unless woken."""
        now = self.clock.now()
        next_due = self.store.next_due()
        candidates = [t for t in (next_due, self._hint) if t is not None and t > now]
        if self._hint is not None and self._hint <= now:
            return 0.0
        if candidates:
            when = min(candidates)
        elif next_due is None:
            return MAX_WAIT
        else:  # due but undeliverable rows (e.g. no alert row): re-check later
            when = now + POLL
        return max(0.0, min(MAX_WAIT, self._wall_seconds(when - now)))

    def _wall_seconds(self, delta: timedelta) -> float:
        """Real seconds for ``delta`` of clock time (a ScaledClock runs faster)."""
        scale = getattr(self.clock, "wall_seconds", None)
        if callable(scale):
            return float(scale(delta))
        return delta.total_seconds()

    def _wake_hint(self, stalled: set[str], waiting: Mapping[str, int]) -> datetime | None:
        """When a channel held back during the last pass may move again.

        Known exactly for items that failed in this process; otherwise (e.g. the
        item failed before a restart) the store is checked again after POLL.
        """
        now = self.clock.now()
        times: list[datetime] = []
        for channel in stalled | set(waiting):
            held = self._held.get(channel)
            if held is not None and (channel in stalled or held[0] == waiting.get(channel)):
                times.append(held[1])
            else:
                times.append(now + POLL)
        return min(times, default=None)

    def _update_gauge(self) -> None:
        counts = self.store.outbox_counts()
        for status in {*_STATUSES, *counts}:
            self.metrics.outbox.labels(status).set(counts.get(status, 0))


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
