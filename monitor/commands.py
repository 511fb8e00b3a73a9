"""The one-shot CLI commands (everything but ``run``)."""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from monitor.clock import ManualClock
from monitor.config.loader import load_all
from monitor.config.schema import Config, Rule, RuleSet
from monitor.engine import Engine, build_analyzer
from monitor.errors import BrandMonitorError, ConfigError, PostError
from monitor.metrics import Metrics
from monitor.model import Alert
from monitor.sources.replay import read_posts
from monitor.store.sqlite import SqliteStore

TICK = timedelta(seconds=30)


def check(config_path: Path) -> int:
    try:
        config, rules = load_all(config_path)
        build_analyzer(config)
    except ConfigError as exc:
        for problem in exc.problems:
            sys.stdout.write(f"{problem}\n")
        return 1
    except BrandMonitorError as exc:  # e.g. a lexicon pack
        sys.stdout.write(f"{exc}\n")
        return 1
    sys.stdout.write(f"{config_path}: ok: {len(config.brands)} brand(s), "
                     f"{len(config.sources)} source(s), {len(config.channels)} channel(s), "
                     f"{len(rules.rules)} rule(s)\n")
    return 0


def replay(config_path: Path, posts_path: Path, alerts_out: Path | None) -> int:
    """Full pipeline in event time on a scratch store; alerts as JSONL."""
    config, rules = load_all(config_path)
    out: IO[str] = alerts_out.open("w", encoding="utf-8") if alerts_out else sys.stdout
    malformed = processed = 0
    alerts: list[Alert] = []
    with tempfile.TemporaryDirectory(prefix="brand-monitor-replay-") as tmp:
        store = SqliteStore(Path(tmp) / "replay.db")
        clock = ManualClock(datetime(1970, 1, 1, tzinfo=UTC))
        engine = Engine(config, rules, store, clock, Metrics())
        engine.on_alerts = alerts.extend
        last_tick: datetime | None = None
        try:
            for item in read_posts(posts_path):
                if isinstance(item, PostError):
                    malformed += 1
                    sys.stderr.write(f"skipped: {item}\n")
                    continue
                clock.set(item.created_at)
                if last_tick is None or clock.now() - last_tick >= TICK:
                    engine.tick(clock.now())
                    last_tick = clock.now()
                engine.process(item)
                processed += 1
                for alert in alerts:
                    out.write(json.dumps(alert.to_json(), default=str) + "\n")
                alerts.clear()
            if last_tick is not None:  # let the last buckets close
                engine.tick(clock.now() + timedelta(days=1))
                for alert in alerts:
                    out.write(json.dumps(alert.to_json(), default=str) + "\n")
        finally:
            store.close()
            if alerts_out:
                out.close()
    sys.stderr.write(f"replayed {processed} post(s), skipped {malformed} malformed\n")
    return 0


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
        files.extend(sorted(path.glob("*.csv")) if path.is_dir() else [path])
    result: dict[str, list[str]] = {}
    for file in files:
        fired = run_backtest(load_series_csv(file), params)
        result[file.name] = [t.strftime("%Y-%m-%d %H:%M:%S") for t in fired]
    return result


def _jsonl(stream: IO[str]) -> list[tuple[int, dict[str, Any] | str]]:
    rows: list[tuple[int, dict[str, Any] | str]] = []
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            rows.append((number, f"invalid JSON: {exc.msg}"))
            continue
        if not isinstance(value, dict) or not isinstance(value.get("text"), str):
            rows.append((number, "expected an object with a string 'text'"))
            continue
        rows.append((number, value))
    return rows


def classify(config_path: Path, stdin: IO[str], stdout: IO[str]) -> int:
    from monitor.config.loader import load_config

    analyzer = build_analyzer(load_config(config_path))
    bad = 0
    for number, row in _jsonl(stdin):
        if isinstance(row, str):
            bad += 1
            sys.stderr.write(f"line {number}: {row}\n")
            continue
        score = analyzer.score(row["text"])
        stdout.write(json.dumps({"id": row.get("id"), "compound": score.compound,
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
    from monitor.engine import state_path
    from monitor.model import Author, Post

    config, rules = load_all(config_path)
    params, domains = _outbound_rule(config, rules)
    rule = next((r for r in rules.rules if r.signal == "outbound"), None)
    rule = rule or Rule(name="outbound", signal="outbound", channels=(), params=params)
    runtime = OutboundRuntime()
    db = state_path(config)
    if not db.is_absolute():
        db = config_path.parent / db
    store = SqliteStore(db) if db.exists() else None
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
                sys.stderr.write(f"line {number}: {row}\n")
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
                post = Post(id=str(row.get("id")), source="screen", kind="outbound",
                            author=Author("screen", "screen"), text=text, created_at=at,
                            brand=detector.brand.name, client=client)
                result = detector.evaluate(post, compound)
            else:
                now = at or datetime.now(UTC)
                watch = {w.id: w for b in config.brands for w in runtime.watches(b.name, now)}
                result = screener.screen(text, watch=list(watch.values()), compound=compound)
            stdout.write(json.dumps({"id": row.get("id"), "flagged": result.flagged,
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
            sys.stderr.write(f"{name}: FAILED: {exc}\n")
        else:
            sys.stderr.write(f"{name}: ok\n")
    return 1 if failed else 0


__all__ = ["PostError", "backtest", "check", "classify", "notify_test", "replay", "screen"]
