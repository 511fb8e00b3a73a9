"""The pipeline for one post: dedup -> enrich -> detect -> route -> store.

The engine is synchronous and clock-driven: the daemon feeds it batches from a queue
on the wall clock, replay and tests feed it in event time. A batch of posts and the
alerts they caused are committed in one transaction, so a crash at any point loses
nothing and repeats nothing.

**Checkpoints.** Detector state is not rewritten with every batch: every
``CheckpointPolicy`` posts or seconds the engine saves the state of every detector
that changed, the per-brand aggregates and the sequence number of the newest stored
post, in one transaction. After a restart (or a batch the store rolled back) the
detectors load the checkpoint and the engine replays, through the whole pipeline,
the posts stored after it; the posts of the detectors' open windows from before it
are observed again, as they are not part of the saved state. Alerts are derived from
the signals deterministically and routed against the stored alert state, so the
replay neither loses nor repeats an alert.

**Time at the door.** A post dated more than ``max_future`` ahead of the clock never
reaches a detector (the HTTP API and the sources refuse or clamp it before it gets
here; this is the last line), nor does a post older than the raw-post retention:
both are stored and counted, and no detector's clock moves because of them.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from monitor import plugins
from monitor.aggregates import BUCKET as AGGREGATE_BUCKET
from monitor.aggregates import AggregateBuffer
from monitor.clock import Clock, ManualClock
from monitor.config.schema import BrandConfig, Config, Rule, RuleSet
from monitor.detect.base import Detector, DetectorContext, EnrichedPost, build_detector
from monitor.detect.outbound.runtime import OutboundRuntime
from monitor.enrich.enricher import Enricher, Enrichment, build_analyzer
from monitor.enrich.sentiment import SentimentAnalyzer
from monitor.errors import StoreError
from monitor.metrics import Metrics
from monitor.model import Alert, Post, Signal
from monitor.route.router import Router
from monitor.store.api import Store
from monitor.store.factory import state_path
from monitor.store.records import StoredPost

__all__ = ["CheckpointPolicy", "Engine", "Outcome", "build_analyzer", "state_path"]

log = logging.getLogger(__name__)
RECOVERY_CHUNK = 2000
#: how often retention runs: hourly in wall time in the daemon, in event time in replay
PRUNE_EVERY = timedelta(hours=1)
_NO_GROUP: tuple[tuple[Detector, ...], tuple[Detector, ...]] = ((), ())


@dataclass(frozen=True, slots=True)
class CheckpointPolicy:
    """Save detector state after this many posts or seconds (whichever comes first).

    A restart replays the posts stored since the last checkpoint, so these bound the
    work of a restart; a checkpoint costs a few milliseconds per hundred detectors.
    """

    every_posts: int = 20_000
    every_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class Outcome:
    accepted: bool
    alerts: tuple[Alert, ...] = ()
    #: why the detectors could not place a stored post in time: "late" (before a
    #: detector's open window), "too_old" (before the raw-post retention), "future"
    unplaced: str | None = None


class Engine:
    def __init__(self, config: Config, rules: RuleSet, store: Store, clock: Clock,
                 metrics: Metrics, analyzer: SentimentAnalyzer | None = None,
                 context: DetectorContext | None = None,
                 checkpoints: CheckpointPolicy = CheckpointPolicy()) -> None:
        plugins.load()
        self.config = config
        self.store = store
        self.aggregates = AggregateBuffer()
        if context is None:  # the outbound watchlist and ledger live in this store
            runtime = OutboundRuntime()
            runtime.bind(store)
            context = DetectorContext(outbound=runtime, expect=self.aggregates.expect,
                                      expect_bucket=AGGREGATE_BUCKET)
        self.context = context
        self.clock = clock
        self.metrics = metrics
        self.enricher = Enricher(config, analyzer)
        self.analyzer = self.enricher.analyzer
        self.matcher = self.enricher.matcher
        self.rules = rules
        self.router = Router(rules, store, metrics, config.channels)
        self.detectors: dict[tuple[str, str], Detector] = {}
        self._by_brand_kind: dict[tuple[str, str], tuple[tuple[Detector, ...],
                                                         tuple[Detector, ...]]] = {}
        self.on_alerts: Callable[[Sequence[Alert]], None] = lambda alerts: None
        self.checkpoints = checkpoints
        self.max_future = config.max_future
        self.retention = config.storage.retention
        self._needs_recovery = True  # before the first post: replay what the store holds
        self._save_all = False
        self._since_checkpoint = 0
        self._checkpoint_at = time.monotonic()
        self._last_event_tick: datetime | None = None
        self._children: dict[tuple[str, ...], Any] = {}
        self._tally: dict[tuple[str, ...], int] = {}  # counts of the running batch
        self._order = itertools.count()
        self._unplaced: str | None = None  # of the post _detect just handled
        #: problems found with stored state (the daemon sends them to the admins)
        self.problems: list[str] = []
        self._build_detectors(rules, {})

    # -- rules ------------------------------------------------------------------
    def _build_detectors(self, rules: RuleSet,
                         keep: dict[tuple[str, str], Detector]) -> list[Detector]:
        """Create detectors for ``rules``; those in ``keep`` (unchanged) carry over."""
        fresh: list[Detector] = []
        detectors: dict[tuple[str, str], Detector] = {}
        for rule in rules.rules:
            if not rule.enabled:
                continue
            for brand in self.config.brands:
                if not rule.applies_to(brand.name):
                    continue
                key = (rule.name, brand.name)
                old = keep.get(key)
                if old is not None and old.rule == rule:
                    detectors[key] = old
                    continue
                detector = self._new_detector(rule, brand, load=old is None)
                detectors[key] = detector
                fresh.append(detector)
        self.detectors = detectors
        self._index_detectors()
        return fresh

    def _index_detectors(self) -> None:
        index: dict[tuple[str, str], list[Detector]] = {}
        for (_, brand_name), detector in self.detectors.items():
            for kind in detector.kinds:
                index.setdefault((brand_name, kind), []).append(detector)
        # per (brand, kind): the detectors that read those posts, and those of them
        # whose next tick a post may move (the engine plans only theirs)
        self._by_brand_kind = {k: (tuple(v), tuple(d for d in v if not d.timeless))
                               for k, v in index.items()}
        # (time, rank, order, detector): detectors due at the same time tick in the
        # order of the configuration (rank); stale entries (order) are skipped
        self._schedule: list[tuple[datetime, int, int, Detector]] = []
        self._rank = {id(d): rank for rank, d in enumerate(self.detectors.values())}
        # id(detector) -> (order, time) of its live entry in the schedule
        self._scheduled: dict[int, tuple[int, datetime]] = {}
        self._reschedule: dict[int, Detector] = {id(d): d for d in self.detectors.values()}
        # the (brand, kind) groups that observed posts since the last plan: one mark per
        # post instead of one per detector
        self._reschedule_groups: dict[tuple[str, str], tuple[Detector, ...]] = {}

    def _new_detector(self, rule: Rule, brand: BrandConfig, *, load: bool) -> Detector:
        """A detector for ``rule`` and ``brand``, warm from its stored state when that
        loads (see also :meth:`_discard_poisoned`)."""
        detector = build_detector(rule, brand, self.context)
        state = self.store.load_detector_state(rule.name, brand.name) if load else None
        if state is None:
            return detector
        try:
            detector.load_state(state)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("rule %s/%s: stored detector state unusable (%s); starting cold",
                        rule.name, brand.name, exc)
            return build_detector(rule, brand, self.context)
        return detector

    def _discard_poisoned(self) -> None:
        """State holding times beyond the clock (e.g. the bucket of a post dated in the
        future, stored before the door checked times) would blind a detector until
        that time: it is discarded, the detector starts cold, and the problem is
        reported in ``self.problems`` (the daemon tells the admins)."""
        limit = self.clock.now() + self.max_future
        for key, detector in list(self.detectors.items()):
            held = detector.state_time()
            if held is None or held <= limit:
                continue
            problem = (f"rule {key[0]}, brand {key[1]}: the stored detector state reaches "
                       f"{held.isoformat()}, beyond the clock ({limit.isoformat()}); it was "
                       f"discarded and the detector starts cold")
            log.error("%s", problem)
            self.problems.append(problem)
            fresh = build_detector(detector.rule, detector.brand, self.context)
            self.detectors[key] = fresh
            self._index_detectors()

    def swap_rules(self, rules: RuleSet) -> None:
        """Install a new rule set; detectors of unchanged rules keep their state."""
        self._recover_if_needed()
        self.checkpoint(force=True)  # new detectors of a rule start from its current state
        self._build_detectors(rules, self.detectors)
        self.rules = rules
        self.router.rules = rules
        self.metrics.rules_loaded.set(len(rules.rules))

    # -- recovery ---------------------------------------------------------------
    def recover(self) -> list[Alert]:
        """After a restart or a rollback: bring the detectors from the checkpoint to
        the newest stored post (see the module docstring)."""
        self._needs_recovery = False
        self.aggregates.clear()
        self._discard_poisoned()
        covered = self.store.checkpoint_seq()
        now = self.clock.now()
        alerts: list[Alert] = []
        with self.store.transaction():  # the open windows' posts from before the checkpoint
            for (_, brand), detector in self.detectors.items():
                since = detector.resume_from()
                if since is None:
                    continue
                for stored in self.store.posts_between(brand, since, now + timedelta(days=1),
                                                       max_seq=covered):
                    if stored.post.kind in detector.kinds:
                        item = self._item(stored, brand)
                        at = _seen_at(stored)
                        alerts += self._route(detector.observe(item, at), at)
        seq = covered
        replayed = 0
        while batch := self.store.posts_after(seq, RECOVERY_CHUNK):
            with self.store.transaction():
                for stored in batch:
                    alerts += self._detect(stored.post, self.enricher.enrich(stored.post),
                                           stored.received_at)
            seq = batch[-1].seq
            replayed += len(batch)
        if replayed:
            log.info("recovery: replayed %d post(s) stored after the last checkpoint",
                     replayed)
        for detector in self.detectors.values():
            detector.resumed(now)
            self._reschedule[id(detector)] = detector
        self.checkpoint(force=True)
        self._announce(alerts)
        return alerts

    def newest_event_time(self) -> datetime | None:
        """The newest event time the detectors' state holds (None: no state yet): where
        a recovered engine stands in its posts' time."""
        times = [t for d in self.detectors.values() if (t := d.state_time()) is not None]
        return max(times) if times else None

    def _item(self, stored: StoredPost, brand: str) -> EnrichedPost:
        return EnrichedPost(stored.post, brand, stored.compound, stored.label,
                            self.enricher.tags(stored.post, brand))

    def _recover_if_needed(self) -> None:
        if self._needs_recovery:
            try:
                self.recover()
            except BaseException:
                self._rewind()
                raise

    def reload(self) -> None:
        """Forget what is in memory and start again from the store (a standby that
        became active: the store moved on while it waited); ``recover`` next."""
        self._rewind()
        self.context.outbound.bind(self.store)

    def _rewind(self) -> None:
        """The store rolled a batch back: forget what the detectors saw of it.

        Detectors are rebuilt from the checkpoint; the posts stored after it are
        replayed before the next batch, exactly as after a restart, so a retried
        batch is not counted twice.
        """
        self.detectors = {}
        self._build_detectors(self.rules, {})
        self.aggregates.clear()
        self._tally.clear()
        self._needs_recovery = True

    # -- posts ---------------------------------------------------------------
    def enrich(self, post: Post) -> list[EnrichedPost]:
        return self._items(post, self.enricher.enrich(post))

    @staticmethod
    def _items(post: Post, e: Enrichment) -> list[EnrichedPost]:
        return [EnrichedPost(post, brand, e.compound, e.label, e.tags[i] if e.tags else ())
                for i, brand in enumerate(e.brands)]

    def process(self, post: Post) -> Outcome:
        """Run one post through the pipeline (one transaction)."""
        return self.process_batch([post])[0]

    def process_batch(self, posts: Sequence[Post],
                      enrichments: Sequence[Enrichment] | None = None,
                      commit_with: Callable[[], None] | None = None) -> list[Outcome]:
        """Run posts through the pipeline; all of them are stored, or none.

        ``enrichments`` (one per post) come from a worker process ahead of the engine;
        without them the posts are enriched here. ``commit_with`` writes something more
        in the same transaction (a cluster worker: the stream position processed).
        """
        self._recover_if_needed()
        outcomes: list[Outcome] = []
        alerts: list[Alert] = []
        started = time.perf_counter()
        try:
            with self.store.transaction():
                for post, e, new in self._store(posts, enrichments):
                    outcome = self._outcome(post, e, new)
                    outcomes.append(outcome)
                    alerts.extend(outcome.alerts)
                if commit_with is not None:
                    commit_with()
        except BaseException:
            self._rewind()  # whatever failed, the detectors must not keep what rolled back
            raise
        if posts:
            per_post = (time.perf_counter() - started) / len(posts)
            for _ in posts:
                self.metrics.latency.observe(per_post)
        self._after_commit(sum(o.accepted for o in outcomes))
        self._announce(alerts)
        return outcomes

    def _store(self, posts: Sequence[Post], enrichments: Sequence[Enrichment] | None
               ) -> list[tuple[Post, Enrichment, bool]]:
        """Enrich (unless done elsewhere) and store ``posts`` in one statement; each with
        its enrichment and whether it is new (not a duplicate)."""
        if enrichments is None:
            enrichments = [self.enricher.enrich(p) for p in posts]
        fresh = self.store.add_posts([(p, e.brand, e.compound, e.label)
                                      for p, e in zip(posts, enrichments, strict=True)],
                                     self.clock.now())
        return list(zip(posts, enrichments, fresh, strict=True))

    def process_events(self, posts: Sequence[Post], clock: ManualClock,
                       tick_every: timedelta,
                       enrichments: Sequence[Enrichment] | None = None) -> list[Alert]:
        """Replay: posts in event time with ``clock`` following them and a tick every
        ``tick_every`` of event time, all in one transaction (``enrichments``: one per
        post, from a worker process, as in :meth:`process_batch`)."""
        self._recover_if_needed()
        alerts: list[Alert] = []
        last = self._last_event_tick
        count = 0
        try:
            with self.store.transaction():
                for post, e, new in self._stored_in_event_time(posts, enrichments, clock):
                    clock.set(post.created_at)
                    now = clock.now()
                    if last is None or now - last >= tick_every:
                        alerts += self._tick(now)
                        last = now
                    outcome = self._outcome(post, e, new)
                    count += outcome.accepted
                    alerts.extend(outcome.alerts)
        except BaseException:
            self._rewind()
            raise
        self._last_event_tick = last
        self._after_commit(count)
        self._announce(alerts)
        return alerts

    def _stored_in_event_time(self, posts: Sequence[Post],
                              enrichments: Sequence[Enrichment] | None, clock: ManualClock
                              ) -> list[tuple[Post, Enrichment, bool]]:
        """Store a replay chunk in one statement, each post received at the time the
        event clock will show when it is processed."""
        if enrichments is None:
            enrichments = [self.enricher.enrich(p) for p in posts]
        times: list[datetime] = []
        now = clock.now()
        for p in posts:  # the clock only moves forward
            now = max(now, p.created_at)
            times.append(now)
        fresh = self.store.add_posts([(p, e.brand, e.compound, e.label)
                                      for p, e in zip(posts, enrichments, strict=True)], times)
        return list(zip(posts, enrichments, fresh, strict=True))

    def _outcome(self, post: Post, e: Enrichment, new: bool) -> Outcome:
        """Metrics, detection and routing of a post that ``_store`` has handled."""
        if not new:
            self._count("duplicates", post.source)
            return Outcome(False)
        self._count("posts", post.source, post.kind)
        if post.kind == "mention" and self._in_time(post.created_at, self.clock.now()):
            # what the live stream is saying (the outbound screen's trending context)
            trending = self.context.outbound.trending
            compound = e.compound if e.brands else None
            if e.trend is None:
                trending.observe(post, compound, e.brands)
            else:
                trending.observe_keys(post.created_at.timestamp(), e.trend, compound,
                                      e.brands)
        if not e.brands:
            self._count("unmatched", post.source)
            return Outcome(True)
        self._unplaced = None
        alerts = tuple(self._detect(post, e))
        return Outcome(True, alerts, self._unplaced)

    def _count(self, metric: str, *labels: str) -> None:
        """Count one toward a labelled counter of ``self.metrics``, published when the
        batch commits (:meth:`_publish_counts`): a batch that rolls back is retried,
        and its posts are counted once; a counter's lock is taken once per batch."""
        key = (metric, *labels)
        self._tally[key] = self._tally.get(key, 0) + 1

    def _publish_counts(self) -> None:
        for key, n in self._tally.items():
            child = self._children.get(key)
            if child is None:  # (children cached: a labels() lookup adds up)
                child = self._children[key] = getattr(self.metrics, key[0]).labels(*key[1:])
            child.inc(n)
        self._tally.clear()

    def _detect(self, post: Post, e: Enrichment,
                received_at: datetime | None = None) -> list[Alert]:
        """Detectors and routing for a stored post; replayed after a restart with the
        time it was first processed at (``received_at``)."""
        if not e.brands:
            return []
        clock_now = received_at or self.clock.now()
        at = post.created_at
        if not self._in_time(at, clock_now):
            # a hostile or broken timestamp must not move any detector's clock
            reason = "future" if at > clock_now else "ancient"
            self.metrics.rejected_time.labels(post.source, reason).inc()
            self._unplaced = "future" if reason == "future" else "too_old"
            return []
        now = max(clock_now, at)
        signals: list[Signal] = []
        for i, brand in enumerate(e.brands):
            item = EnrichedPost(post, brand, e.compound, e.label, e.tags[i] if e.tags else ())
            self.aggregates.add(item)
            late = False
            group, timed = self._by_brand_kind.get((brand, post.kind), _NO_GROUP)
            for detector in group:
                before = detector.late
                signals += detector.observe(item, now)
                if detector.late != before:
                    late = True
            if timed:
                self._reschedule_groups[(brand, post.kind)] = timed
            if late:
                self.metrics.late.labels(brand).inc()
                self._unplaced = "late"
        return self._route(signals, now)

    def _in_time(self, at: datetime, now: datetime) -> bool:
        """A post time the detectors may place: not beyond ``max_future`` ahead of
        ``now``, not older than the raw-post retention."""
        return now - self.retention <= at <= now + self.max_future

    def tick(self, now: datetime | None = None) -> list[Alert]:
        """Let time pass: close buckets and resolve what has subsided."""
        now = now or self.clock.now()
        self._recover_if_needed()
        try:
            with self.store.transaction():
                alerts = self._tick(now)
        except BaseException:
            self._rewind()  # a signal whose alert was rolled back must fire again
            raise
        self._after_commit(0)
        self._announce(alerts)
        return alerts

    def _tick(self, now: datetime) -> list[Alert]:
        """Tick the detectors that have work by ``now`` (each says when it next has:
        ``Detector.next_tick``), each once, so ticks cost nothing for idle brands and
        rules."""
        alerts: list[Alert] = []
        self._plan()
        schedule = self._schedule
        due: list[Detector] = []
        while schedule and schedule[0][0] <= now:
            _, _, order, detector = heapq.heappop(schedule)
            live = self._scheduled.get(id(detector))
            if live is None or live[0] != order:
                continue  # superseded by a later entry
            del self._scheduled[id(detector)]
            due.append(detector)
        for detector in due:
            alerts += self._route(detector.tick(now), now)
            self._reschedule[id(detector)] = detector
        self._plan()
        alerts += self.router.tick(now)  # escalation (monitor.route.lifecycle)
        return alerts

    def _plan(self) -> None:
        """(Re)schedule the detectors whose next tick may have changed."""
        scheduled = self._scheduled
        marked = itertools.chain(itertools.chain.from_iterable(self._reschedule_groups.values()),
                                 self._reschedule.values())
        for detector in marked:  # (a detector may come twice: the second finds it planned)
            key = id(detector)
            when = detector.next_tick()
            if when is None:
                scheduled.pop(key, None)
                continue
            live = scheduled.get(key)
            if live is not None and live[1] == when:
                continue  # unchanged: most posts move no detector's next tick
            order = next(self._order)
            scheduled[key] = (order, when)
            heapq.heappush(self._schedule, (when, self._rank[key], order, detector))
        self._reschedule_groups.clear()
        self._reschedule.clear()

    def prune_steps(self) -> list[Callable[[], bool]]:
        """Retention (``storage.retention`` for posts, ``alert_retention`` for alerts)
        in short steps: see SqlStore.prune_steps."""
        return self.store.prune_steps(self.clock.now(), self.retention,
                                      self.config.storage.alert_retention)

    def _route(self, signals: Iterable[Signal], now: datetime) -> list[Alert]:
        return [a for s in signals if (a := self.router.route(s, now)) is not None]

    # -- checkpoints ----------------------------------------------------------------
    def _after_commit(self, posts: int) -> None:
        self._publish_counts()
        self._since_checkpoint += posts
        try:
            self.checkpoint()
        except StoreError as exc:  # the batch is safe; the next checkpoint catches up
            log.warning("checkpoint postponed: %s", exc)

    def checkpoint(self, force: bool = False) -> bool:
        """Save changed detector state and aggregates with the sequence number they
        cover, when the policy says so (or ``force``); True when saved."""
        policy = self.checkpoints
        if not force and self._since_checkpoint < policy.every_posts and \
                time.monotonic() - self._checkpoint_at < policy.every_seconds:
            return False
        if self._needs_recovery:
            return False  # the detectors are behind the store: nothing consistent to save
        now = self.clock.now()
        save_all, self._save_all = self._save_all, True  # until this one commits
        pending = self.aggregates.drain()
        try:
            with self.store.transaction():
                seq = self.store.last_seq()
                for (rule, brand), detector in self.detectors.items():
                    if detector.dirty() or save_all:
                        self.store.save_detector_state(rule, brand, detector.to_state(), now,
                                                       seq)
                self.store.add_aggregates(pending)
                self.store.set_checkpoint_seq(seq)
        except BaseException:
            self.aggregates.restore(pending)
            raise
        self._save_all = False
        self._since_checkpoint = 0
        self._checkpoint_at = time.monotonic()
        return True

    def _announce(self, alerts: Sequence[Alert]) -> None:
        if alerts:
            for alert in alerts:
                log.debug("alert %s %s %s: %s", alert.severity, alert.state, alert.rule,
                          alert.summary)
            self.on_alerts(alerts)


def _seen_at(stored: StoredPost) -> datetime:
    """The time a detector saw a stored post at when it was first processed."""
    at = stored.post.created_at
    return at if stored.received_at is None else max(stored.received_at, at)
