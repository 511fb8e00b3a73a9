"""The pipeline for one post: dedup -> brand match -> sentiment -> detect -> route -> store.

The engine is synchronous and clock-driven: the daemon feeds it from a queue on
the wall clock, replay and tests feed it in event time. A post, the detector
state it changed and the alerts it caused are committed in one transaction, so
a crash at any point loses nothing and repeats nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from monitor import plugins
from monitor.clock import Clock
from monitor.config.schema import Config, RuleSet
from monitor.detect.base import DETECTORS, Detector, DetectorContext, EnrichedPost
from monitor.detect.outbound.runtime import OutboundRuntime
from monitor.enrich import intent
from monitor.enrich.match import BrandMatcher
from monitor.enrich.sentiment import SentimentAnalyzer, load_packs, pack_paths
from monitor.errors import StoreError
from monitor.metrics import Metrics
from monitor.model import Alert, Post, Signal
from monitor.route.router import Router
from monitor.store.sqlite import SqliteStore

log = logging.getLogger(__name__)
RETENTION = timedelta(days=8)


def build_analyzer(config: Config) -> SentimentAnalyzer:
    """VADER with the configured lexicon packs; every brand's terms neutralised."""
    packs = load_packs(pack_paths(config.sentiment.lexicon_dir, config.sentiment.packs))
    terms = [t for b in config.brands for t in (b.name, *b.handles, *b.keywords)]
    return SentimentAnalyzer(packs, terms)


@dataclass(frozen=True, slots=True)
class Outcome:
    accepted: bool
    alerts: tuple[Alert, ...] = ()


class Engine:
    def __init__(self, config: Config, rules: RuleSet, store: SqliteStore, clock: Clock,
                 metrics: Metrics, analyzer: SentimentAnalyzer | None = None,
                 context: DetectorContext | None = None) -> None:
        plugins.load()
        self.config = config
        self.store = store
        if context is None:  # the outbound watchlist and ledger live in this store
            runtime = OutboundRuntime()
            runtime.bind(store)
            context = DetectorContext(outbound=runtime)
        self.context = context
        self.clock = clock
        self.metrics = metrics
        self.analyzer = analyzer or build_analyzer(config)
        self.matcher = BrandMatcher(config.brands)
        self.rules = rules
        self.router = Router(rules, store, metrics, config.channels)
        self.detectors: dict[tuple[str, str], Detector] = {}
        self.on_alerts: Callable[[Sequence[Alert]], None] = lambda alerts: None
        self._rewound = False
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
                detector = DETECTORS.get(rule.signal)(rule, brand, self.context)
                state = self.store.load_detector_state(rule.name, brand.name)
                if state is not None and old is None:
                    try:
                        detector.load_state(state)
                    except (KeyError, TypeError, ValueError) as exc:
                        log.warning("rule %s/%s: stored detector state unusable (%s); "
                                    "starting cold", rule.name, brand.name, exc)
                detectors[key] = detector
                fresh.append(detector)
        self.detectors = detectors
        return fresh

    def swap_rules(self, rules: RuleSet) -> None:
        """Install a new rule set; detectors of unchanged rules keep their state."""
        self._build_detectors(rules, self.detectors)
        self.rules = rules
        self.router.rules = rules
        self.metrics.rules_loaded.set(len(rules.rules))

    def recover(self) -> list[Alert]:
        """After a restart: observe again the posts of every detector's open window."""
        alerts: list[Alert] = []
        now = self.clock.now()
        for (_, brand), detector in self.detectors.items():
            since = detector.resume_from()
            if since is None:
                continue
            with self.store.transaction():
                for stored in self.store.posts_between(brand, since, now + timedelta(days=1)):
                    item = EnrichedPost(stored.post, brand, stored.compound, stored.label,
                                        self._intent_tags(stored.post, brand))
                    if stored.post.kind in detector.kinds:
                        alerts += self._route(detector.observe(item, now), now)
                self._persist()
        self._announce(alerts)
        return alerts

    # -- posts ---------------------------------------------------------------
    def enrich(self, post: Post) -> list[EnrichedPost]:
        brands = self.matcher.match(post)
        if not brands:
            return []
        score = self.analyzer.score(post.text)
        return [EnrichedPost(post, brand, score.compound, score.label,
                             self._intent_tags(post, brand)) for brand in brands]

    def _intent_tags(self, post: Post, brand: str) -> tuple[str, ...]:
        """purchase_intent / churn_risk (monitor.enrich.intent) of a mention."""
        if post.kind != "mention":
            return ()
        config = next((b for b in self.config.brands if b.name == brand), None)
        return intent.tags(post.text, intent.own_terms(config) if config else frozenset())

    def process(self, post: Post) -> Outcome:
        """Run one post through the pipeline (one transaction)."""
        return self.process_batch([post])[0]

    def process_batch(self, posts: Iterable[Post]) -> list[Outcome]:
        """Run posts through the pipeline; all of them are stored, or none."""
        self._recover_if_rewound()
        outcomes: list[Outcome] = []
        alerts: list[Alert] = []
        try:
            with self.store.transaction():
                for post in posts:
                    started = time.perf_counter()
                    outcome = self._process(post)
                    outcomes.append(outcome)
                    alerts.extend(outcome.alerts)
                    self.metrics.latency.observe(time.perf_counter() - started)
                self._persist()
        except StoreError:
            self._rewind()
            raise
        self._announce(alerts)
        return outcomes

    def _rewind(self) -> None:
        """The store rolled a batch back: forget what the detectors saw of it.

        Detectors are rebuilt from their stored state; the posts of their open
        windows are observed again from the store before the next batch, exactly
        as after a restart, so a retried batch is not counted twice.
        """
        self.detectors = {}
        self._build_detectors(self.rules, {})
        self._rewound = True

    def _recover_if_rewound(self) -> None:
        if self._rewound:
            self._rewound = False
            try:
                self.recover()
            except StoreError:
                self._rewind()
                raise

    def _process(self, post: Post) -> Outcome:
        items = self.enrich(post)
        first = items[0] if items else None
        label = first.label if first else "neutral"
        compound = first.compound if first else 0.0
        if not self.store.add_post(post, first.brand if first else None, compound, label):
            self.metrics.duplicates.labels(post.source).inc()
            return Outcome(False)
        self.metrics.posts.labels(post.source, post.kind).inc()
        if post.kind == "mention":  # what the live stream is saying (outbound trending context)
            self.context.outbound.trending.observe(post, compound if items else None,
                                                   tuple(i.brand for i in items))
        if not items:
            self.metrics.unmatched.labels(post.source).inc()
            return Outcome(True)
        now = max(self.clock.now(), post.created_at)
        signals: list[Signal] = []
        for item in items:
            late = False
            for (_, brand), detector in self.detectors.items():
                if brand == item.brand and post.kind in detector.kinds:
                    before = detector.late
                    signals += detector.observe(item, now)
                    late = late or detector.late > before
            if late:
                self.metrics.late.labels(item.brand).inc()
        return Outcome(True, tuple(self._route(signals, now)))

    def tick(self, now: datetime | None = None) -> list[Alert]:
        """Let time pass: close buckets and resolve what has subsided."""
        now = now or self.clock.now()
        self._recover_if_rewound()
        alerts: list[Alert] = []
        try:
            with self.store.transaction():
                for detector in self.detectors.values():
                    alerts += self._route(detector.tick(now), now)
                alerts += self.router.tick(now)  # escalation (monitor.route.lifecycle)
                self._persist()
        except StoreError:
            self._rewind()  # a signal whose alert was rolled back must fire again
            raise
        self._announce(alerts)
        return alerts

    def prune(self) -> None:
        self.store.prune(self.clock.now(), RETENTION)

    def _route(self, signals: Iterable[Signal], now: datetime) -> list[Alert]:
        return [a for s in signals if (a := self.router.route(s, now)) is not None]

    def _persist(self) -> None:
        now = self.clock.now()
        for (rule, brand), detector in self.detectors.items():
            if detector.dirty():
                self.store.save_detector_state(rule, brand, detector.to_state(), now)

    def _announce(self, alerts: Sequence[Alert]) -> None:
        if alerts:
            for alert in alerts:
                log.info("alert %s %s %s: %s", alert.severity, alert.state, alert.rule,
                         alert.summary)
            self.on_alerts(alerts)


def state_path(config: Config) -> Path:
    return Path(config.state_dir) / config.storage.path
