"""The daemon: builds the long-lived parts once, runs them, reloads rules by swapping.

Sources put posts on a bounded queue; one consumer runs them through the engine
in batches (one transaction each); a ticker lets time pass; the outbox worker
delivers alerts; the HTTP server takes webhooks and serves health and metrics.
SIGTERM/SIGINT drain and exit 0; SIGHUP reloads the rules (a bad file keeps the
old ones). Under systemd it reports READY, STATUS and WATCHDOG.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import logging
import signal
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from monitor import heap, logs
from monitor.clock import Clock, WallClock
from monitor.cluster.ha import ActiveLease
from monitor.cluster.lease import process_id
from monitor.config.loader import load_config, load_rules
from monitor.config.schema import Config
from monitor.detect.outbound.folder import default_validity, folder_specs, watch_folders
from monitor.detect.outbound.runtime import OutboundRuntime
from monitor.engine import PRUNE_EVERY, CheckpointPolicy, Engine
from monitor.enrich.enricher import Enrichment
from monitor.enrich.pool import EnrichPool, workers_for
from monitor.errors import BrandMonitorError, ConfigError, StoreError
from monitor.http.server import start_http
from monitor.intake import Intake
from monitor.metrics import Metrics
from monitor.model import Alert, Post
from monitor.notify.channels import build_notifiers
from monitor.notify.chartimg import AlertCharts
from monitor.notify.outbox import OutboxWorker
from monitor.route.schedule import resolve_channels
from monitor.route.silences import SILENCE_RETENTION
from monitor.sdnotify import Notifier as SdNotifier
from monitor.sdnotify import watchdog_loop
from monitor.secrets import mask
from monitor.source_watch import OutageWatch
from monitor.sources.base import SOURCES, Source, SourceContext
from monitor.sources.demo import demo_clock, options_of, reset_state, run_id
from monitor.store.factory import open_store, state_path
from monitor.store.records import OutboxItem

log = logging.getLogger(__name__)
BATCH = 200  # posts per engine transaction: ~10-40 ms of event-loop time
INGEST_WAIT = 10.0  # seconds /ingest waits for its batch to be stored before a 503
TICK_SECONDS = 2.0
LOOP_PROBE_SECONDS = 0.1
RULES_POLL_SECONDS = 2.0
DEAD_LETTER_REPORT = timedelta(hours=1)  # at most one dead-letter admin alert per channel
UNPLACED_KEEP = 10_000  # posts whose reason /ingest may still ask for
UNPLACED = {
    "late": "older than the detectors' open windows: stored and counted as late, but no "
            "spike or digest can come from it",
    "too_old": "older than the raw-post retention: stored, no detector saw it",
    "future": "dated ahead of the daemon's clock: stored, no detector saw it",
}


class Daemon:
    def __init__(self, config_path: Path) -> None:
        self.config_path = Path(config_path)
        self.config: Config = load_config(self.config_path)
        self.rules = load_rules(Path(self.config.rules_dir), self.config)
        self.metrics = Metrics()
        demo = next((s for s in self.config.sources if s.type == "demo" and s.enabled), None)
        db = state_path(self.config)  # the demo's own folder when it runs
        if demo is not None and self.config.storage.backend == "sqlite" \
                and not options_of(demo).resume and reset_state(db):
            log.info("demo: starting afresh (the last run's demo state in %s was removed; "
                     "resume: true on the demo source keeps it)", db.parent)
        self.store = open_store(self.config)
        cluster = self.config.cluster
        #: this process in leases and outbox claims
        self.owner = process_id(cluster.node if cluster else None)
        #: one active daemon per shared store (None: SQLite, this process is alone)
        self.ha: ActiveLease | None = None
        if self.store.backend != "sqlite":
            ttl = cluster.lease_ttl if cluster else timedelta(seconds=5)
            self.ha = ActiveLease(self.store, self.owner, ttl)
        self.exit_code = 0
        self.clock: Clock = WallClock()
        if demo is not None:
            self.clock = demo_clock(demo, self.store)
        policy = CheckpointPolicy(every_posts=self.config.checkpoint_posts,
                                  every_seconds=self.config.checkpoint_every.total_seconds())
        self.engine = Engine(self.config, self.rules, self.store, self.clock, self.metrics,
                             checkpoints=policy)
        if demo is not None:  # alerts say their time is simulated; a fresh run, new ids
            self.engine.router.simulated = True
            self.engine.router.id_salt = run_id(demo, self.store)
        self._unplaced: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._unplaced_logged = 0.0
        # outbound screen: watchlist and approved-posts ledger (the engine's detector
        # context, bound to the store), also served by the HTTP API
        self.outbound: OutboundRuntime = self.engine.context.outbound
        self.outbound.validity = default_validity(self.rules)
        self.metrics.rules_loaded.set(len(self.rules.rules))
        ctx = SourceContext(self.clock, self.store, self.metrics, self.config.brands)
        self.sources: list[Source] = [SOURCES.get(s.type)(s, ctx) for s in self.config.sources
                                      if s.enabled]
        self.intake = Intake(self.config.queue_size, self.metrics, batch=BATCH,
                             journal=self.store, clock=self.clock)
        self._queued: dict[int, int] = {}  # id(an /ingest batch) -> its posts still queued
        self.pool: EnrichPool | None = None
        self.stopping = asyncio.Event()
        self.outbox_wake = asyncio.Event()
        self.engine.on_alerts = lambda alerts: self.outbox_wake.set()
        self.sd = SdNotifier()
        self.outages = OutageWatch(self.admin_alert)  # source down > 2 min: admin alert
        self._dead_reported: dict[str, datetime] = {}  # channel -> last dead-letter alert
        self.http_port: int | None = None
        #: the last rule reload (SIGHUP or a changed rules folder), for the dashboard
        self.last_reload: dict[str, Any] | None = None
        self.max_loop_lag = 0.0
        self._last_loop_beat = asyncio.get_event_loop().time()

    # -- DaemonApi (HTTP) --------------------------------------------------------
    async def ingest(self, posts: list[Post]) -> tuple[int, int]:
        """Journal the batch (Backpressure when the queue is full, the store's error when
        it refuses) and answer: with the detectors' verdicts when they come within
        ``http.verdict_wait`` and nothing was queued ahead, else at once (the journal
        holds the posts; :meth:`queued` says how many are still waiting)."""
        ahead = self.intake.depth
        offered = self.intake.offer(posts)
        journaled = offered.journaled
        if journaled is None:  # (no journal) the answer waits for the engine
            results = await asyncio.wait_for(asyncio.shield(offered.done), INGEST_WAIT)
        else:
            # verdicts only from an idle engine: behind other posts they come too late
            wait = self.config.http.verdict_wait.total_seconds() if not ahead else 0.0
            try:
                if not wait and not offered.done.done():
                    raise TimeoutError  # behind a backlog: answer now
                results = await asyncio.wait_for(asyncio.shield(offered.done), wait)
            except TimeoutError:
                offered.done.add_done_callback(_settled)
                results = journaled
                self._queued[id(posts)] = sum(journaled)
        accepted = sum(results)
        return accepted, len(results) - accepted

    def queued(self, posts: list[Post]) -> int:
        """How many posts of the /ingest batch just answered are journaled but not yet
        through the detectors (0: the answer has their verdicts)."""
        return self._queued.pop(id(posts), 0)

    def unplaced(self, posts: list[Post]) -> list[dict[str, Any]]:
        """The posts of an /ingest batch that were stored but that the detectors could
        not place in time (see monitor.engine.Outcome), each with the reason; logged."""
        now = self.clock.now()
        found = []
        for index, post in enumerate(posts):
            reason = self._unplaced.pop(post.key, None)
            if reason is not None:
                found.append({"index": index, "id": post.id, "reason": reason,
                              "created_at": post.created_at.isoformat(),
                              "error": UNPLACED[reason] + f" (the daemon's clock is at "
                                                          f"{now.isoformat()})"})
        if found:
            first = found[0]
            log.warning("POST /ingest: %d of %d post(s) stored but not placed by the detectors "
                        "(first: %s dated %s: %s)", len(found), len(posts), first["id"],
                        first["created_at"], first["error"])
        return found

    def labels(self) -> dict[str, list[str]]:
        """Known rule, brand and kind names (silences are checked against them)."""
        rules = self.engine.rules.rules
        return {"rule": [r.name for r in rules], "brand": [b.name for b in self.config.brands],
                "kind": sorted({r.signal for r in rules})}

    def health(self) -> dict[str, Any]:
        sources = {s.name: s.health.to_json() for s in self.sources}
        bad = [n for n, h in sources.items() if h["state"] == "error"]
        status = "degraded" if bad else "ok"
        if self.stopping.is_set():
            status = "stopping"
        return {"status": status, "sources": sources, "outbox": self.store.outbox_backlog(),
                "rules": len(self.engine.rules.rules), "queue": self.intake.depth,
                "lag_seconds": round(self.intake.lag(), 3)}

    # -- running ---------------------------------------------------------------
    async def emit(self, post: Post) -> None:
        """A source's post: time checked at the door, then queued (waits when full)."""
        now = self.clock.now()
        if post.created_at > now + self.config.max_future:
            self.metrics.rejected_time.labels(post.source, "clamped").inc()
            log.warning("source %s: post %s is dated %s, more than %s ahead of now: "
                        "clamped to now", post.source, post.id,
                        post.created_at.isoformat(), self.config.max_future)
            post = dataclasses.replace(post, created_at=now)
        await self.intake.put(post)

    def _process(self, batch: list[Post], enrichments: list[Enrichment] | None,
                 seqs: list[int]) -> list[bool]:
        journaled = [n for n in seqs if n]
        outcomes = self.engine.process_batch(
            batch, enrichments,
            commit_with=(lambda: self.store.journal_done(journaled)) if journaled else None)
        unplaced = [(p, o.unplaced) for p, o in zip(batch, outcomes, strict=True) if o.unplaced]
        if unplaced:
            self._note_unplaced(unplaced)
        return [o.accepted for o in outcomes]

    def _note_unplaced(self, found: list[tuple[Post, str]]) -> None:
        """Remember why (for /ingest's answer, bounded) and log it, at most once a minute
        (the counts are in brandmon_posts_late_total / brandmon_posts_time_rejected_total)."""
        for post, reason in found:
            self._unplaced[post.key] = reason
            self._unplaced.move_to_end(post.key)
        while len(self._unplaced) > UNPLACED_KEEP:
            self._unplaced.popitem(last=False)
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._unplaced_logged >= 60.0:
            self._unplaced_logged = loop_time
            post, reason = found[0]
            log.warning("%d post(s) stored but not placed by the detectors (first: %s from %s "
                        "dated %s: %s)", len(found), post.id, post.source,
                        post.created_at.isoformat(), UNPLACED[reason])

    async def _tick(self) -> None:
        since_prune = 0.0
        while True:
            await asyncio.sleep(TICK_SECONDS)
            # Posts still queued may be older than "now" (a backfill, a burst): let them
            # reach their buckets first, or closing buckets now would make them late.
            if self.intake.depth == 0 and not any(s.catching_up for s in self.sources):
                try:
                    self.engine.tick()
                except StoreError as exc:  # a locked or full store must not stop the ticker
                    log.error("tick skipped: %s", exc)
            self.outages.check(self.sources, self.clock.now())
            self._last_loop_beat = asyncio.get_running_loop().time()
            since_prune += TICK_SECONDS
            if since_prune >= PRUNE_EVERY.total_seconds():
                since_prune = 0.0
                try:
                    await self.prune()
                except StoreError as exc:
                    log.error("prune skipped: %s", exc)

    async def prune(self) -> None:
        """Hourly: posts past ``storage.retention``, alerts past ``alert_retention``
        (in short steps, yielding to the event loop between them), expired outbound
        items, and silences that ended more than SILENCE_RETENTION ago."""
        now = self.clock.now()
        for step in self.engine.prune_steps():
            more = True
            while more:
                more = step()
                await asyncio.sleep(0)  # engine batches and HTTP between the steps
        self.outbound.prune(now)
        removed = self.engine.router.lifecycle.silences.prune(SILENCE_RETENTION, now)
        if removed:
            log.info("pruned %d silence(s) that ended before %s", removed,
                     (now - SILENCE_RETENTION).isoformat())

    async def _run_source(self, source: Source) -> None:
        try:
            await source.run(self.emit)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a source must never take the daemon down
            log.exception("source %s stopped", source.name)
            source.failed(f"stopped: {exc}")

    def reload(self) -> bool:
        """Rebuild the rule set beside the old one and swap; keep the old on error."""
        try:
            rules = load_rules(Path(self.config.rules_dir), self.config)
        except ConfigError as exc:
            self.metrics.reloads.labels("error").inc()
            self.last_reload = {"at": self.clock.now(), "ok": False,
                                "problems": [str(p) for p in exc.problems]}
            for problem in exc.problems:
                log.error("reload rejected, keeping the previous rules: %s", problem)
            self.admin_alert("rules-reload", "Rule reload rejected: the previous rules stay "
                             "active", "\n".join(str(p) for p in exc.problems))
            return False
        self.engine.swap_rules(rules)
        self.last_reload = {"at": self.clock.now(), "ok": True, "rules": len(rules.rules),
                            "problems": []}
        self.metrics.reloads.labels("ok").inc()
        log.info("rules reloaded: %d rules", len(rules.rules))
        return True

    def admin_alert(self, key: str, title: str, summary: str) -> None:
        """Tell the admins about the daemon's own problems (deduplicated by content)."""
        if not self.config.admin_channels:
            return
        now = self.clock.now()
        channels, picked = resolve_channels(self.config.admin_channels,
                                            {c.name: c for c in self.config.channels}, now)
        summary = mask(summary)
        alert = Alert(id=hashlib.sha256(f"{key}|{summary}".encode()).hexdigest()[:24],
                      dedup_key=f"admin|{key}", rule="admin", kind="admin", brand="-",
                      severity="warning", state="firing", title=title, summary=summary,
                      created_at=now, channels=channels,
                      details={"rotation": picked} if picked else {})
        if self.store.get_alert(alert.id) is None:
            self.store.add_alert(alert)
            self.outbox_wake.set()

    def outbox_worker(self, clock: Clock) -> OutboxWorker:
        """The outbox worker over every real (non-rotation) channel; a dead letter no
        fallback carries is reported to the admin channels."""
        real = [c for c in self.config.channels if c.rotation is None]  # not virtual
        notifiers = build_notifiers(real, self.config_path.parent, AlertCharts(self.store))
        channels = {c.name: c for c in real}
        claim = None
        if self.ha is not None:  # several processes drain this store
            cluster = self.config.cluster
            claim = (self.owner, cluster.claim_ttl if cluster else timedelta(seconds=30))
        return OutboxWorker(self.store, notifiers, channels, clock, self.metrics,
                            on_dead=self.dead_letter, claim=claim)

    def dead_letter(self, item: OutboxItem, error: str) -> None:
        """Admin alert for an alert the outbox gave up on (at most one per channel and
        DEAD_LETTER_REPORT; the rest are counted in it and listed by ``outbox list``)."""
        if item.alert.kind == "admin":  # an admin alert that failed: only the log has it
            return
        now = self.clock.now()
        last = self._dead_reported.get(item.channel)
        if last is not None and now - last < DEAD_LETTER_REPORT:
            return
        self._dead_reported[item.channel] = now
        dead = len(self.store.outbox_items(status="dead", channel=item.channel, limit=10_000))
        alert = item.alert
        self.admin_alert(
            f"outbox-dead|{item.channel}",
            f"Alert not delivered to channel {item.channel}",
            f"Gave up delivering alert {alert.id} ({alert.rule}, {alert.brand}: {alert.title}) "
            f"to channel {item.channel}: {error}. {dead} dead letter(s) on this channel: "
            f"list them with 'brand-monitor outbox list --status dead', re-send with "
            f"'brand-monitor outbox retry {item.id}' (or --all-dead) or POST "
            f"/outbox/{item.id}/retry.")

    async def _watch_rules(self) -> None:
        """Reload when a rules file is added, changed or removed (as on SIGHUP)."""
        seen = _rules_fingerprint(Path(self.config.rules_dir))
        while True:
            await asyncio.sleep(RULES_POLL_SECONDS)
            current = _rules_fingerprint(Path(self.config.rules_dir))
            if current != seen:
                seen = current
                log.info("rules folder changed: reloading")
                self.reload()

    def healthy(self) -> bool:
        loop_time = asyncio.get_running_loop().time()
        return loop_time - self._last_loop_beat < 10 * TICK_SECONDS + 30

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.add_signal_handler(signal.SIGINT, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        self._last_loop_beat = loop.time()
        async with AsyncExitStack() as stack:
            stack.callback(self.store.close)
            worker = self.outbox_worker(WallClock())
            tasks = []
            if self.ha is not None:  # deliver while standing by; then become active
                tasks = [asyncio.create_task(worker.run(self.outbox_wake), name="outbox")]
                stack.push_async_callback(self._drain_outbox, worker, tasks[0])
                if not await self.ha.wait(self.stopping):
                    return 0
                stack.callback(self.ha.release)
                self.engine.reload()
                keeper = asyncio.create_task(self.ha.keep(self._lease_lost), name="lease")
                stack.push_async_callback(_cancel, [keeper])
            recovered = self.engine.recover()
            for problem in self.engine.problems:  # poisoned state, discarded at recovery
                self.admin_alert("poisoned-state", "Detector state from the future was "
                                 "discarded", problem)
            self.engine.problems.clear()
            if recovered:
                log.info("recovered %d alert(s) after restart", len(recovered))
            journaled = self.store.journal_pending()
            if journaled:  # acknowledged to HTTP senders, not yet stored for good
                log.info("resuming %d journaled post(s) from before the restart",
                         len(journaled))
                self.intake.resume(journaled)
            if not tasks:
                tasks = [asyncio.create_task(worker.run(self.outbox_wake), name="outbox")]
                stack.push_async_callback(self._drain_outbox, worker, tasks[0])
            workers = workers_for(self.config.enrich_workers)
            if workers:
                self.pool = EnrichPool(self.config, workers)
                stack.callback(self.pool.close)
                await self.pool.start()
            consumer = asyncio.create_task(
                self.intake.run(self._process, self.pool.enrich if self.pool else None),
                name="consumer")
            stack.push_async_callback(self._drain_queue, consumer)
            sources = [asyncio.create_task(self._run_source(s), name=f"source:{s.name}")
                       for s in self.sources]
            stack.push_async_callback(_cancel, sources)
            ticker = asyncio.create_task(self._tick(), name="ticker")
            watchdog = asyncio.create_task(watchdog_loop(self.sd, self.healthy))
            watcher = asyncio.create_task(self._watch_rules(), name="rules-watcher")
            approved = asyncio.create_task(self._watch_approved(), name="approved-folder")
            stack.push_async_callback(_cancel, [ticker, watchdog, watcher, approved])
            await asyncio.sleep(0)  # the tasks take their first look (rules fingerprint...)
            # HTTP last: a /healthz answer means everything is running
            if self.config.http.enabled:
                http = self.config.http
                try:
                    runner = await start_http(http, self, max_future=self.config.max_future)
                except OSError as exc:
                    raise BrandMonitorError(
                        f"http: cannot listen on {http.host}:{http.port}: "
                        f"{exc.strerror or exc} (is another brand-monitor running? change "
                        f"http.port or http.host in {self.config_path})") from exc
                stack.push_async_callback(runner.cleanup)
                self.http_port = _port(runner)
                log.info("http listening on %s:%s", self.config.http.host, self.http_port)
            frozen = heap.settle()  # start-up state out of the collector's walks
            stack.callback(heap.unsettle)
            log.debug("%d objects frozen after start-up", frozen)
            # stalls are measured from here: start-up (imports, recovery) is not serving
            probe = asyncio.create_task(self._probe_loop(), name="loop-probe")
            stack.push_async_callback(_cancel, [probe])
            self.sd.ready()
            self.sd.status(f"monitoring {len(self.config.brands)} brand(s), "
                           f"{len(self.engine.rules.rules)} rule(s)")
            log.info("brand-monitor running: %d brand(s), %d source(s), %d rule(s)",
                     len(self.config.brands), len(self.sources), len(self.engine.rules.rules))
            await self.stopping.wait()
            log.info("stopping: draining")
            self.sd.stopping()
        log.info("stopped")
        return self.exit_code

    def _lease_lost(self, reason: str) -> None:
        """Another daemon is active now: stand down (the store refuses our writes)."""
        log.error("%s: another daemon took over; stopping", reason)
        self.exit_code = 1
        self.stopping.set()

    async def _watch_approved(self) -> None:
        """Poll the outbound rules' ``ledger_folder`` (re-read after each reload)."""
        def specs() -> list[Any]:
            self.outbound.validity = default_validity(self.engine.rules)
            return folder_specs(self.engine.rules, self.config_path.parent)

        await watch_folders(self.outbound, specs, self.clock.now)

    def _on_hup(self) -> None:
        self.sd.reloading()
        self.reload()
        self.sd.ready()

    async def _drain_queue(self, consumer: asyncio.Task[None]) -> None:
        """Stop: store what is queued (sources' posts and accepted HTTP batches) within
        DRAIN_SECONDS, then checkpoint so the next start replays nothing."""
        await _cancel([consumer])
        left = await self.intake.drain(self._process, self.pool.enrich if self.pool else None)
        if left:
            log.warning("stopping with %d queued post(s) not through the detectors (those "
                        "sent over HTTP wait in the journal for the next start; sources "
                        "resume from their cursors)", left)
        with contextlib.suppress(StoreError):
            self.engine.checkpoint(force=True)

    async def _probe_loop(self) -> None:
        """Measure event-loop stalls: how late a short sleep wakes up (max per ~10 s)."""
        loop = asyncio.get_running_loop()
        worst, since = 0.0, loop.time()
        while True:
            before = loop.time()
            await asyncio.sleep(LOOP_PROBE_SECONDS)
            lag = loop.time() - before - LOOP_PROBE_SECONDS
            worst = max(worst, lag)
            self.max_loop_lag = max(self.max_loop_lag, lag)
            if loop.time() - since >= 10.0:
                self.metrics.loop_lag.set(worst)
                worst, since = 0.0, loop.time()

    async def _drain_outbox(self, worker: OutboxWorker, task: asyncio.Task[None]) -> None:
        await _cancel([task])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(worker.run_once(), timeout=10)


def _settled(future: asyncio.Future[list[bool]]) -> None:
    """Retrieve the outcome of a batch answered from the journal (an error there, say
    at shutdown, was already logged: the posts wait in the journal)."""
    if not future.cancelled():
        future.exception()


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _rules_fingerprint(folder: Path) -> tuple[tuple[str, int, int], ...]:
    try:
        files = sorted(folder.glob("*.y*ml"))
        return tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    except OSError:
        return ()


def _port(runner: Any) -> int | None:
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    return None


async def serve(config_path: Path) -> int:
    daemon = Daemon(config_path)
    logs.setup(daemon.config.log_level)
    return await daemon.run()
