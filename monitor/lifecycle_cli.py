"""``brand-monitor alerts | ack | unack | silence``: the alert lifecycle on the state
database.

These commands open the SQLite state database of the configuration directly (WAL mode
lets them run beside the daemon). For people they print aligned tables (coloured on a
terminal unless ``NO_COLOR`` is set); with ``--json`` they print JSON, one object a
line, for scripts. Acting on several alerts at once takes alert ids (or their first
characters, as the table shows them), dedup keys, globs (``'churn-risk*'``),
``--rule`` and ``--brand``; ``--dry-run`` shows what would be done.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from monitor.clitable import table
from monitor.clock import parse_time
from monitor.config.loader import load_all, load_config
from monitor.config.strict import parse_duration
from monitor.errors import BrandMonitorError
from monitor.route.lifecycle import STATES, AckError, Episode, Lifecycle
from monitor.route.select import SelectError, check_matchers, select_open
from monitor.route.silences import MATCHERS, Silence
from monitor.store.factory import open_store

COMMANDS = ("alerts", "ack", "unack", "silence")
Command = Callable[..., argparse.ArgumentParser]
_STATUS_STYLE = {"firing": "red", "acknowledged": "yellow", "resolved": "green",
                 "silenced": "dim"}
_SEVERITY_STYLE = {"critical": "bold-red", "warning": "yellow", "info": "cyan"}


def _user() -> str:
    try:
        return getpass.getuser() or "cli"
    except (KeyError, OSError):
        return "cli"


def add_parsers(command: Command) -> None:
    alerts = command(
        "alerts", "alert history with where each alert stands now",
        description="Alert history from the state database, newest first: when, status "
                    "(firing, acknowledged, resolved, silenced), severity, brand, rule, id "
                    "and what happened. Filters are case-insensitive; --rule takes a glob.",
        examples=["brand-monitor alerts --status firing",
                  "brand-monitor alerts --brand 'acme air' --rule 'churn*' --json"])
    alerts.add_argument("--since", help="only alerts from this ISO-8601 time on")
    alerts.add_argument("--brand", help="only this brand (any case)")
    alerts.add_argument("--rule", help="only this rule, or a glob such as 'churn*'")
    alerts.add_argument("--status", choices=STATES, help="only alerts whose episode is now so")
    alerts.add_argument("--state", choices=STATES, dest="status_alias",
                        help="the same as --status (kept for scripts)")
    alerts.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    alerts.add_argument("--json", action="store_true", help="JSON lines for scripts")
    descriptions = {
        "ack": "Acknowledge the open episode of each chosen alert: its reminders and "
               "escalation stop until it resolves. The first acknowledgement stands; every "
               "ack and unack is added to the alert's history (who, when, comment), "
               "nothing is overwritten.",
        "unack": "Withdraw the acknowledgement of each chosen alert: reminders and "
                 "escalation apply again. The history keeps who acknowledged and who "
                 "withdrew it.",
    }
    for name, what in (("ack", "acknowledge"), ("unack", "un-acknowledge")):
        parser = command(
            name, f"{what} firing alerts (ids, globs, --rule, --brand)",
            description=descriptions[name],
            examples=[f"brand-monitor {name} 0d86c81d974e --comment 'on it'",
                      f"brand-monitor {name} 'churn-risk*' --brand 'acme air'",
                      f"brand-monitor {name} --rule volume-spike --dry-run"])
        parser.add_argument("refs", nargs="*", metavar="ALERT",
                            help="alert id (or its first 6+ characters), dedup key or glob")
        parser.add_argument("--rule", help="only alerts of this rule (or glob)")
        parser.add_argument("--brand", help="only alerts of this brand (any case, or glob)")
        parser.add_argument("--by", default=_user(), help="who (default: your user name)")
        parser.add_argument("--comment", default="", help=f"why you {what} them")
        parser.add_argument("--dry-run", action="store_true", help="show, change nothing")
        parser.add_argument("--json", action="store_true", help="JSON lines for scripts")
    silence = command(
        "silence", "create, list or expire silences",
        description="A silence keeps matching alerts from being notified (they are still "
                    "stored) until it expires: every silence needs --for. 'add' takes alert "
                    "ids (one silence per rule and brand among them) or matchers; a matcher "
                    "that matches no known rule, brand or kind is refused (with the closest "
                    "name) unless --force.",
        examples=["brand-monitor silence add --rule churn-risk --brand 'acme air' --for 2h "
                  "--comment 'known outage'",
                  "brand-monitor silence add 0d86c81d974e --for 30m",
                  "brand-monitor silence list", "brand-monitor silence expire 5f2c9a1b0e3d4f60"])
    silence.add_argument("action", choices=("add", "list", "expire"))
    silence.add_argument("ids", nargs="*", metavar="ID",
                         help="add: alert ids to silence; expire: silence ids")
    for name in MATCHERS:
        silence.add_argument(f"--{name}", help=f"{name} to match (exact, any case, or glob)")
    silence.add_argument("--for", dest="duration", help="how long, e.g. 2h (add; required)")
    silence.add_argument("--by", default=_user(), help="who (default: your user name)")
    silence.add_argument("--comment", default="")
    silence.add_argument("--force", action="store_true",
                         help="add even when a matcher matches nothing known")
    silence.add_argument("--expired", action="store_true", help="list ended silences too")
    silence.add_argument("--json", action="store_true", help="JSON lines for scripts")


def _print(data: Any, out: IO[str]) -> None:
    out.write(json.dumps(data, default=str, ensure_ascii=False) + "\n")


def run(args: argparse.Namespace, now: datetime | None = None,
        out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    now = now or datetime.now(UTC)
    path = Path(args.config)
    if args.command == "silence" and args.action == "add":
        config, rules = load_all(path)  # matchers are checked against the rules
        known: dict[str, list[str]] = {
            "rule": [r.name for r in rules.rules], "brand": [b.name for b in config.brands],
            "kind": sorted({r.signal for r in rules.rules})}
    else:
        config, known = load_config(path), {}
    store = open_store(config)
    try:
        lifecycle = Lifecycle(store, config.channels)
        if args.command == "alerts":
            return _alerts(args, lifecycle, out)
        if args.command in ("ack", "unack"):
            return _ack(args, lifecycle, now, out)
        return _silence(args, lifecycle, known, now, out)
    finally:
        store.close()


# -- alerts --------------------------------------------------------------------------------
def _alerts(args: argparse.Namespace, lifecycle: Lifecycle, out: IO[str]) -> int:
    try:
        since = parse_time(args.since) if args.since else None
    except ValueError:
        raise BrandMonitorError(f"--since: not an ISO-8601 time: {args.since!r}") from None
    rows = lifecycle.history(since=since, brand=args.brand, rule=args.rule,
                             state=args.status or args.status_alias, limit=args.limit)
    if args.json:
        for row in rows:
            _print(row, out)
        return 0
    if not rows:
        sys.stderr.write("no alerts match\n")
        return 0
    table(["WHEN (UTC)", "STATUS", "SEVERITY", "BRAND", "RULE", "ID", "WHAT"],
          [[_when(r["created_at"]), r["status"], r["severity"], r["brand"], r["rule"],
            r["id"][:12], _what(r)] for r in rows], out, style=_alert_style)
    return 0


def _alert_style(column: int, value: str) -> str | None:
    if column == 1:
        return _STATUS_STYLE.get(value)
    if column == 2:
        return _SEVERITY_STYLE.get(value)
    return "dim" if column == 5 else None


def _when(iso: str) -> str:
    return iso.replace("T", " ")[:16]


def _what(row: dict[str, Any]) -> str:
    title = str(row.get("title", ""))
    prefix = next((p for p in ("Updated", "Still firing", "All clear", "Escalated")
                   if title.startswith(p + ":")), "")
    headline = str(row.get("headline") or row.get("summary", ""))
    return f"{prefix}: {headline}" if prefix else headline


# -- ack / unack ---------------------------------------------------------------------------
def _ack(args: argparse.Namespace, lifecycle: Lifecycle, now: datetime, out: IO[str]) -> int:
    try:
        chosen = select_open(lifecycle, args.refs, rule=args.rule, brand=args.brand)
    except SelectError as exc:
        raise BrandMonitorError(f"{args.command}: {exc}") from None
    for ref, why in chosen.unmatched:
        sys.stderr.write(f"brand-monitor: {ref!r}: {why}\n")
    episodes = chosen.episodes
    if args.command == "unack":
        skipped = [e for e in episodes if e.acked_at is None]
        for episode in skipped:
            sys.stderr.write(f"brand-monitor: {episode.dedup_key!r} is not acknowledged\n")
        episodes = [e for e in episodes if e.acked_at is not None]
    if not episodes:
        if not chosen.unmatched:
            sys.stderr.write("brand-monitor: no firing alert matches\n")
        return 1
    done: list[Episode] = []
    if args.dry_run:
        done = lifecycle.with_history(episodes)
    else:
        act = lifecycle.ack if args.command == "ack" else lifecycle.unack
        for episode in episodes:
            try:
                done.append(act(episode.dedup_key, args.by, args.comment, now))
            except AckError as exc:  # resolved meanwhile (the daemon runs beside us)
                sys.stderr.write(f"brand-monitor: {exc}\n")
    if args.json:
        for episode in done:
            _print(episode.to_json(), out)
    else:
        verb = {"ack": "acknowledged", "unack": "un-acknowledged"}[args.command]
        what = f"would be {verb}" if args.dry_run else verb
        out.write(f"{len(done)} alert(s) {what}:\n")
        table(["ALERT", "RULE", "FIRING SINCE (UTC)", "ACKNOWLEDGED BY", "HISTORY"],
              [[e.alert_id[:12], e.rule, _when(e.started_at.isoformat()),
                f"{e.acked_by} ({e.ack_comment})" if e.acked_by and e.ack_comment
                else e.acked_by or "-",
                "; ".join(f"{h.action} by {h.by} {_when(h.at.isoformat())}"
                          + (f": {h.comment}" if h.comment else "") for h in e.history) or "-"]
               for e in done], out)
    return 1 if chosen.unmatched or len(done) < len(episodes) else 0


# -- silences ------------------------------------------------------------------------------
def _silence(args: argparse.Namespace, lifecycle: Lifecycle, known: dict[str, list[str]],
             now: datetime, out: IO[str]) -> int:
    silences = lifecycle.silences
    if args.action == "list":
        found = silences.entries(now, expired=args.expired)
        if args.json:
            for silence in found:
                _print(silence.to_json(now), out)
        elif found:
            table(["ID", "MATCHES", "UNTIL (UTC)", "ACTIVE", "BY", "COMMENT"],
                  [[s.id, " ".join(f"{k}={v}" for k, v in s.matchers.items()),
                    _when(s.ends_at.isoformat()), "yes" if s.active(now) else "no",
                    s.created_by, s.comment] for s in found], out)
        else:
            sys.stderr.write("no silences\n")
        return 0
    if args.action == "expire":
        if not args.ids:
            raise BrandMonitorError("silence expire needs the silence ID(s)")
        failed = 0
        for silence_id in args.ids:
            if not silences.expire(silence_id, now):
                failed += 1
                sys.stderr.write(f"brand-monitor: no active silence {silence_id!r}\n")
            elif args.json:
                _print({"expired": silence_id}, out)
            else:
                out.write(f"expired {silence_id}\n")
        return 1 if failed else 0
    return _silence_add(args, lifecycle, known, now, out)


def _silence_add(args: argparse.Namespace, lifecycle: Lifecycle, known: dict[str, list[str]],
                 now: datetime, out: IO[str]) -> int:
    if not args.duration:
        raise BrandMonitorError("silence add needs --for DURATION (e.g. 2h): every silence "
                                "expires")
    try:
        parse_duration(args.duration)
    except ValueError as exc:
        raise BrandMonitorError(f"silence add: --for: {exc}") from None
    given = {k: getattr(args, k) for k in MATCHERS if getattr(args, k)}
    if args.ids and given:
        raise BrandMonitorError("silence add: give alert ids or matchers (--rule, --brand, "
                                "...), not both")
    wanted = _matchers_of_alerts(lifecycle, args.ids) if args.ids else [given]
    bodies = []
    for matchers in wanted:
        check = check_matchers(matchers, known)
        for note in check.notes:
            sys.stderr.write(f"note: {note}\n")
        if check.problems and not args.force:
            for problem in check.problems:
                sys.stderr.write(f"brand-monitor: silence add: {problem}\n")
            sys.stderr.write("brand-monitor: nothing was silenced (--force adds it anyway, "
                             "e.g. for a rule you are about to add)\n")
            return 1
        for problem in check.problems:
            sys.stderr.write(f"warning: {problem}\n")
        bodies.append({**check.matchers, "for": args.duration, "created_by": args.by,
                       "comment": args.comment})
    created = []
    for body in bodies:
        try:
            created.append(lifecycle.silences.add(Silence.from_json(body, now)))
        except ValueError as exc:
            raise BrandMonitorError(f"silence add: {exc}") from None
    for silence in created:
        if args.json:
            _print(silence.to_json(now), out)
        else:
            shown = " ".join(f"{k}={v}" for k, v in silence.matchers.items())
            out.write(f"silenced {shown} until {_when(silence.ends_at.isoformat())} UTC "
                      f"(silence {silence.id})\n")
    return 0


def _matchers_of_alerts(lifecycle: Lifecycle, ids: Sequence[str]) -> list[dict[str, str]]:
    """One ``{rule, brand}`` per distinct pair among the alerts ``ids`` name."""
    store = lifecycle.store
    pairs: list[dict[str, str]] = []
    for ref in ids:
        alert = store.get_alert(ref)
        if alert is None and len(ref) >= 6:
            found = store.alert_ids_with_prefix(ref, limit=2)
            alert = store.get_alert(found[0]) if len(found) == 1 else None
        if alert is None:
            raise BrandMonitorError(f"silence add: no alert {ref!r} (give an alert id, or its "
                                    "first 12 characters as 'alerts' shows them)")
        pair = {"rule": alert.rule, "brand": alert.brand}
        if pair not in pairs:
            pairs.append(pair)
    return pairs
