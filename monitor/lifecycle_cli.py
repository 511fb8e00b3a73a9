"""``brand-monitor alerts | ack | silence``: the alert lifecycle on the state database.

These commands open the SQLite state database of the configuration directly
(WAL mode lets them run beside the daemon) and print JSON, one object a line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from monitor.clock import parse_time
from monitor.config.loader import load_config
from monitor.config.strict import parse_duration
from monitor.errors import BrandMonitorError
from monitor.route.lifecycle import STATES, AckError, Lifecycle
from monitor.route.silences import MATCHERS, Silence
from monitor.store.factory import open_store

COMMANDS = ("alerts", "ack", "silence")


def add_parsers(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    alerts = command("alerts", "alert history from the state database (JSON lines)")
    alerts.add_argument("--since", help="ISO-8601 time")
    alerts.add_argument("--brand")
    alerts.add_argument("--state", choices=STATES)
    alerts.add_argument("--limit", type=int, default=100)
    ack = command("ack", "acknowledge a firing alert (id or dedup key)")
    ack.add_argument("id")
    ack.add_argument("--by", default="cli")
    ack.add_argument("--comment", default="")
    silence = command("silence", "create, list or expire silences")
    silence.add_argument("action", choices=("add", "list", "expire"))
    silence.add_argument("id", nargs="?", help="silence id (expire)")
    for name in MATCHERS:
        silence.add_argument(f"--{name}", help=f"{name} to match (exact or glob)")
    silence.add_argument("--for", dest="duration", help="how long, e.g. 2h (add)")
    silence.add_argument("--by", default="cli")
    silence.add_argument("--comment", default="")
    silence.add_argument("--expired", action="store_true", help="list ended silences too")


def _print(data: Any, out: IO[str]) -> None:
    out.write(json.dumps(data, default=str, ensure_ascii=False) + "\n")


def run(args: argparse.Namespace, now: datetime | None = None,
        out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    now = now or datetime.now(UTC)
    config = load_config(Path(args.config))
    store = open_store(config)
    try:
        lifecycle = Lifecycle(store, config.channels)
        return _run(args, lifecycle, now, out)
    finally:
        store.close()


def _run(args: argparse.Namespace, lifecycle: Lifecycle, now: datetime, out: IO[str]) -> int:
    if args.command == "alerts":
        try:
            since = parse_time(args.since) if args.since else None
        except ValueError:
            raise BrandMonitorError(f"--since: not an ISO-8601 time: {args.since!r}") from None
        for row in lifecycle.history(since=since, brand=args.brand, state=args.state,
                                     limit=args.limit):
            _print(row, out)
        return 0
    if args.command == "ack":
        try:
            episode = lifecycle.ack(args.id, args.by, args.comment, now)
        except AckError as exc:
            sys.stderr.write(f"brand-monitor: {exc}\n")
            return 1
        _print(episode.to_json(), out)
        return 0
    silences = lifecycle.silences
    if args.action == "list":
        for silence in silences.entries(now, expired=args.expired):
            _print(silence.to_json(now), out)
        return 0
    if args.action == "expire":
        if not args.id:
            raise BrandMonitorError("silence expire needs the silence ID")
        if not silences.expire(args.id, now):
            sys.stderr.write(f"brand-monitor: no active silence {args.id!r}\n")
            return 1
        _print({"expired": args.id}, out)
        return 0
    body: dict[str, Any] = {k: getattr(args, k) for k in MATCHERS if getattr(args, k)}
    body.update({"created_by": args.by, "comment": args.comment})
    if not args.duration:
        raise BrandMonitorError("silence add needs --for DURATION (e.g. 2h)")
    try:
        parse_duration(args.duration)
        body["for"] = args.duration
        silence = Silence.from_json(body, now)
    except ValueError as exc:
        raise BrandMonitorError(f"silence add: {exc}") from None
    _print(silences.add(silence).to_json(now), out)
    return 0
