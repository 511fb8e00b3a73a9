"""The one-shot CLI commands (everything but ``run``)."""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import math
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from monitor import heap
from monitor.clock import ManualClock
from monitor.config.loader import load_all
from monitor.config.schema import Config, Rule, RuleSet
from monitor.engine import PRUNE_EVERY, CheckpointPolicy, Engine, build_analyzer
from monitor.enrich.pool import enrich_batch, fields, new_executor, workers_for
from monitor.errors import BrandMonitorError, ConfigError, PostError
from monitor.metrics import Metrics
from monitor.model import Alert, Post
from monitor.secrets import mask
from monitor.sources.replay import read_posts
from monitor.store.sqlite import SqliteStore

TICK = timedelta(seconds=30)
MAX_LINE = 1_048_576  # characters per classify/screen input line
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8 (surrogateescape)


def check(config_path: Path) -> int:
    try:
        config, rules = load_all(config_path)
        build_analyzer(config)
    except ConfigError as exc:
        for problem in exc.problems:
            sys.stdout.write(mask(str(problem)) + "\n")
        return 1
    except BrandMonitorError as exc:  # e.g. a lexicon pack
        sys.stdout.write(mask(str(exc)) + "\n")
        return 1
    sys.stdout.write(f"{config_path}: ok: {len(config.brands)} brand(s), "
                     f"{len(config.sources)} source(s), {len(config.channels)} channel(s), "
                     f"{len(rules.rules)} rule(s)\n")
    return 0


REPLAY_CHUNK = 2000


def _chunks(posts_path: Path, malformed: list[int]) -> Iterator[list[Post]]:
    chunk: list[Post] = []
    for item in _read_posts(posts_path):
        if isinstance(item, PostError):
            malformed[0] += 1
            sys.stderr.write(f"skipped: {item}\n")
            continue
        chunk.append(item)
        if len(chunk) >= REPLAY_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def replay(config_path: Path, posts_path: Path, alerts_out: Path | None) -> int:
    """Full pipeline in event time on a scratch store; alerts as JSONL.

    With an enrichment worker (``enrich_workers``, one by default on a machine with two
    cores), chunk *n+1* is enriched in the worker while the engine runs chunk *n*.
    """
    config, rules = load_all(config_path)
    _readable_file(posts_path, "replay reads one JSONL file of posts")
    out: IO[str] = alerts_out.open("w", encoding="utf-8") if alerts_out else sys.stdout
    malformed = [0]
    processed = 0
    alerts: list[Alert] = []
    workers = workers_for(config.enrich_workers)
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="brand-monitor-replay-"))
        store = SqliteStore(Path(tmp) / "replay.db")
        stack.callback(store.close)
        clock = ManualClock(datetime(1970, 1, 1, tzinfo=UTC))
        # a scratch store is never recovered: checkpoints only keep the aggregates'
        # memory flat (flushed to the store) on long replays
        engine = Engine(config, rules, store, clock, Metrics(),
                        checkpoints=CheckpointPolicy(every_posts=200_000, every_seconds=1e18))
        engine.on_alerts = alerts.extend
        heap.settle()
        stack.callback(heap.unsettle)
        if alerts_out:
            stack.callback(out.close)

        def flush() -> None:
            for alert in alerts:
                out.write(json.dumps(alert.to_json(), default=str) + "\n")
            alerts.clear()
            prune()

        pruned = [clock.now()]

        def prune() -> None:
            """Retention in event time, as the daemon applies it in wall time: a long
            replay keeps the last ``storage.retention`` of posts, so its per-post cost
            does not grow with the length of the file."""
            now = clock.now()
            if now - pruned[0] < PRUNE_EVERY:
                return
            pruned[0] = now
            for step in engine.prune_steps():
                while step():
                    pass

        chunks = _chunks(posts_path, malformed)
        progress = Progress("replaying", "posts")
        started = time.perf_counter()
        if workers:
            pool = stack.enter_context(new_executor(config, workers))
            pending = [(c, pool.submit(enrich_batch, fields(c)))
                       for c in itertools.islice(chunks, workers + 1)]
            while pending:
                chunk, future = pending.pop(0)
                nxt = next(chunks, None)
                if nxt is not None:  # keep the worker busy while the engine runs
                    pending.append((nxt, pool.submit(enrich_batch, fields(nxt))))
                engine.process_events(chunk, clock, TICK, future.result())
                processed += len(chunk)
                progress.update(processed)
                flush()
        else:
            for chunk in chunks:
                engine.process_events(chunk, clock, TICK)
                processed += len(chunk)
                progress.update(processed)
                flush()
        if processed:  # let the last buckets close
            engine.tick(clock.now() + timedelta(days=1))
        flush()
        elapsed = time.perf_counter() - started
        progress.done()
        engine.checkpoint(force=True)
        size = sum(f.stat().st_size for f in Path(tmp).glob("replay.db*"))
        kept = store.post_count()
        metrics = engine.metrics
        unmatched = _total(metrics.unmatched)
        raised = _by_label(metrics.alerts, "rule")
    rate = processed / elapsed if elapsed > 0 else 0.0
    by_rule = ", ".join(f"{rule} {n}" for rule, n in sorted(raised.items())) or "none"
    sys.stderr.write(
        f"replayed {processed} post(s) in {elapsed:.1f}s ({rate:,.0f} posts/s): "
        f"{sum(raised.values())} alert(s) ({by_rule}); {unmatched} matched no brand; "
        f"skipped {malformed[0]} malformed; store {size / max(kept, 1):,.0f} "
        f"bytes/post ({kept} post(s) kept by retention)\n")
    return 0


def _checked_series(path: Path, rows: list[tuple[datetime, float]]
                    ) -> list[tuple[datetime, float]]:
    """Counts are finite, not negative, at increasing times (line numbers count the
    header as line 1)."""
    for index, (at, value) in enumerate(rows):
        line = index + 2
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{path}:{line}: value {value!r} is not a count (expected a "
                             "finite number >= 0)")
        if index and (at.tzinfo is None) != (rows[index - 1][0].tzinfo is None):
            raise ValueError(f"{path}:{line}: timestamps mix with and without a UTC offset")
        if index and at <= rows[index - 1][0]:
            raise ValueError(f"{path}:{line}: timestamp {at} is not after the previous "
                             "line's: sort the series by time")
    return rows


def _readable_file(path: Path, what: str) -> None:
    if path.is_dir():
        raise BrandMonitorError(f"{path} is a folder: {what}")
    if not path.is_file():
        raise BrandMonitorError(f"{path}: no such file ({what})")


def _read_posts(path: Path) -> Iterator[Post | PostError]:
    """read_posts, with a file that cannot be read as text as one error."""
    try:
        yield from read_posts(path)
    except UnicodeDecodeError as exc:
        raise BrandMonitorError(f"{path}: not a UTF-8 text file (byte {exc.start}): replay "
                                "reads JSONL posts") from None
    except OSError as exc:
        raise BrandMonitorError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _total(counter: Any) -> int:
    return int(sum(s.value for m in counter.collect() for s in m.samples
                   if s.name.endswith("_total")))


def _by_label(counter: Any, label: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                key = sample.labels[label]
                out[key] = out.get(key, 0) + int(sample.value)
    return out


class Progress:
    """A one-line progress report on a terminal (nothing when stderr is not one)."""

    def __init__(self, what: str, unit: str) -> None:
        self.what, self.unit = what, unit
        self.on = sys.stderr.isatty()
        self.started = self.shown = time.perf_counter()

    def update(self, count: int) -> None:
        now = time.perf_counter()
        if self.on and now - self.shown >= 0.5:
            self.shown = now
            rate = count / max(now - self.started, 1e-9)
            sys.stderr.write(f"\r{self.what}: {count:,} {self.unit} ({rate:,.0f}/s)\x1b[K")
            sys.stderr.flush()

    def done(self) -> None:
        if self.on:
            sys.stderr.write("\r\x1b[K")


def volume_rule(rules: RuleSet, name: str | None) -> Rule:
    candidates = [r for r in rules.rules if r.signal == "volume_spike"]
    if name is not None:
        candidates = [r for r in candidates if r.name == name]
    if not candidates:
        what = f"volume_spike rule {name!r}" if name else "volume_spike rule"
        raise BrandMonitorError(f"no {what} in the rules folder")
    return candidates[0]


def backtest(config_path: Path, series: Sequence[Path], rule_name: str | None
             ) -> dict[str, list[str]]:
    from monitor.detect.countmodel import backtest as run_backtest
    from monitor.detect.countmodel import load_series_csv

    _, rules = load_all(config_path)
    rule = volume_rule(rules, rule_name)
    params = rule.params.model_params()
    files: list[Path] = []
    for path in series:
        if path.is_dir():
            found = sorted(path.glob("*.csv"))
            if not found:
                raise BrandMonitorError(f"{path}: no *.csv files in this folder")
            files.extend(found)
        else:
            _readable_file(path, "--series takes timestamp,value CSV files or folders of them")
            files.append(path)
    result: dict[str, list[str]] = {}
    for file in files:
        try:
            fired = run_backtest(_checked_series(file, load_series_csv(file)), params)
        except (ValueError, csv.Error) as exc:  # load_series_csv names file:line
            message = str(exc) if str(exc).startswith(str(file)) else f"{file}: {exc}"
            if "expected" not in message:
                message += " (expected a 'timestamp,value' CSV)"
            raise BrandMonitorError(message) from None
        except OSError as exc:
            raise BrandMonitorError(f"{file}: cannot read: {exc.strerror or exc}") from None
        result[file.name] = [t.strftime("%Y-%m-%d %H:%M:%S") for t in fired]
    return result


def backtest_summary(result: dict[str, list[str]], config_path: Path, rule_name: str | None,
                     out: IO[str]) -> None:
    """The backtest for people: per file how often and when the rule fired, then a total
    (``--json`` prints ``result`` itself)."""
    _, rules = load_all(config_path)
    rule = volume_rule(rules, rule_name)
    params = rule.params
    shown = 5
    for name, fired in result.items():
        if not fired:
            out.write(f"{name}: no spike\n")
            continue
        times = ", ".join(fired[:shown]) + (f", ... ({len(fired) - shown} more)"
                                            if len(fired) > shown else "")
        out.write(f"{name}: {len(fired)} spike{'s' if len(fired) != 1 else ''}: {times}\n")
    total = sum(len(v) for v in result.values())
    with_spikes = sum(1 for v in result.values() if v)
    out.write(f"{len(result)} series, {total} spike(s) in {with_spikes} of them, with rule "
              f"{rule.name} (bucket {_span(params.bucket)}, sensitivity {params.sensitivity}, "
              f"min_count {params.min_count}); --json for the machine-readable list\n")


def _span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def _lines(stream: IO[str], limit: int) -> Iterator[tuple[int, str | None]]:
    """``(number, line)`` for each line of ``stream``, reading at most ``limit``
    characters of a line into memory: a longer line is skipped (``None``)."""
    number = 0
    while line := stream.readline(limit + 1):
        number += 1
        if len(line) > limit and not line.endswith("\n"):
            while (rest := stream.readline(limit)) and not rest.endswith("\n"):
                pass
            yield number, None
            continue
        yield number, line


def _jsonl(stream: IO[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Each non-blank input line as ``(number, object)``, or ``(number, problem)``
    for a line that is too long, not valid UTF-8 or JSON, or lacks ``id``/``text``."""
    for number, line in _lines(stream, MAX_LINE):
        if line is None:
            yield number, f"line longer than {MAX_LINE} characters: skipped"
            continue
        if not line.strip():
            continue
        if _UNDECODABLE.search(line):
            yield number, "not valid UTF-8"
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"invalid JSON: {exc.msg}"
            continue
        except RecursionError:
            yield number, "invalid JSON: nested too deeply"
            continue
        if not isinstance(value, dict) or not isinstance(value.get("text"), str):
            yield number, "expected an object with a string 'text'"
            continue
        if not _valid_id(value.get("id")):
            yield number, "expected an 'id' (a string or an integer)"
            continue
        yield number, value


def _valid_id(value: object) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


def _bad_line(number: int, problem: str, stdout: IO[str]) -> None:
    """An input line that cannot be processed: an error record in the output (in
    input order) and a line on stderr."""
    sys.stderr.write(f"line {number}: {problem}\n")
    stdout.write(json.dumps({"line": number, "error": problem}) + "\n")


def classify(config_path: Path, stdin: IO[str], stdout: IO[str]) -> int:
    from monitor.config.loader import load_config

    analyzer = build_analyzer(load_config(config_path))
    bad = 0
    for number, row in _jsonl(stdin):
        if isinstance(row, str):
            bad += 1
            _bad_line(number, row, stdout)
            continue
        score = analyzer.score(row["text"])
        stdout.write(json.dumps({"id": row["id"], "compound": score.compound,
                                 "label": score.label}) + "\n")
    return 1 if bad else 0


def _outbound_rule(config: Config, rules: RuleSet) -> tuple[Any, list[str]]:
    from monitor.detect.outbound import OutboundParams

    rule = next((r for r in rules.rules if r.signal == "outbound"), None)
    params = rule.params if rule is not None else OutboundParams()
    domains = [d for b in config.brands for d in b.allowed_domains]
    return params, domains


def screen(config_path: Path, stdin: IO[str], stdout: IO[str]) -> int:
    """Screen JSONL posts as the daemon would: ``{"id", "text"}`` gets the text checks
    with every brand's allowed domains; with a configured ``brand`` and a
    ``created_at`` (and optionally ``client``) the post also gets that brand's posting
    hours, burst, client and ledger checks, in input order. The watchlist and the
    ledger are read from the daemon's state database when it exists."""
    from monitor.clock import parse_time
    from monitor.detect.base import DetectorContext
    from monitor.detect.outbound import OutboundDetector, OutboundRuntime, OutboundScreen
    from monitor.model import Author
    from monitor.store.factory import open_store, store_exists

    config, rules = load_all(config_path)
    params, domains = _outbound_rule(config, rules)
    rule = next((r for r in rules.rules if r.signal == "outbound"), None)
    rule = rule or Rule(name="outbound", signal="outbound", channels=(), params=params)
    runtime = OutboundRuntime()
    store = open_store(config, config_path.parent) \
        if store_exists(config, config_path.parent) else None
    if store is not None:
        runtime.bind(store)
    names = [n for b in config.brands for n in (b.name, *b.handles)]
    screener = OutboundScreen(params, domains, names)
    detectors = {b.name: OutboundDetector(rule, b, DetectorContext(outbound=runtime))
                 for b in config.brands
                 if rule.applies_to(b.name)}
    analyzer = build_analyzer(config)
    bad = 0
    try:
        for number, row in _jsonl(stdin):
            if isinstance(row, str):
                bad += 1
                _bad_line(number, row, stdout)
                continue
            text = row["text"]
            compound = analyzer.score(text).compound
            detector = detectors.get(str(row.get("brand")))
            created = row.get("created_at")
            try:
                at = parse_time(created) if isinstance(created, str) else None
            except ValueError:
                at = None
            if detector is not None and at is not None:
                client = row.get("client") if isinstance(row.get("client"), str) else None
                post = Post(id=str(row["id"]), source="screen", kind="outbound",
                            author=Author("screen", "screen"), text=text, created_at=at,
                            brand=detector.brand.name, client=client)
                result = detector.evaluate(post, compound)
            else:
                now = at or datetime.now(UTC)
                watch = {w.id: w for b in config.brands for w in runtime.watches(b.name, now)}
                result = screener.screen(text, watch=list(watch.values()), compound=compound)
            stdout.write(json.dumps({"id": row["id"], "flagged": result.flagged,
                                     "severity": result.severity if result.flagged else None,
                                     "reasons": result.reasons,
                                     "categories": result.categories,
                                     "checks": result.checks}) + "\n")
    finally:
        if store is not None:
            store.close()
    return 1 if bad else 0


async def notify_test(config_path: Path, channel: str | None) -> int:
    from monitor.config.loader import load_config
    from monitor.errors import DeliveryError
    from monitor.notify.channels import build_notifiers
    from monitor.route.schedule import resolve_channels

    config = load_config(config_path)
    by_name = {c.name: c for c in config.channels}
    if channel is not None and channel not in by_name:
        raise BrandMonitorError(f"no channel named {channel!r}")
    # a rotation is tested through the member on duty now (rotations have no URL)
    names, picked = resolve_channels([channel] if channel else list(by_name), by_name,
                                     datetime.now(UTC))
    channels = [by_name[n] for n in names if by_name[n].rotation is None]
    if not channels:
        raise BrandMonitorError("no channels configured")
    for rotation, member in picked.items():
        sys.stderr.write(f"{rotation}: on duty now: {member}\n")
    failed = 0
    notifiers = build_notifiers(channels, config_path.parent)
    for name, notifier in notifiers.items():
        alert = Alert(id=f"test-{int(datetime.now(UTC).timestamp())}", dedup_key="test",
                      rule="notify-test", kind="test", brand="brand-monitor", severity="info",
                      state="firing", title="brand-monitor test notification",
                      summary=f"Test notification for channel {name}: delivery works.",
                      created_at=datetime.now(UTC), channels=(name,))
        try:
            await notifier.send(alert)
        except DeliveryError as exc:
            failed += 1
            sys.stderr.write(mask(f"{name}: FAILED: {exc}") + "\n")
        else:
            sys.stderr.write(f"{name}: ok\n")
    return 1 if failed else 0


__all__ = ["PostError", "backtest", "backtest_summary", "check", "classify", "notify_test",
           "replay", "screen"]
