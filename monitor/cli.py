"""Command line: turns argv into options and calls the right entry point (DESIGN.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from monitor import lifecycle_cli, logs
from monitor.errors import BrandMonitorError, ConfigError

DEFAULT_CONFIG = "config.yaml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brand-monitor",
                                     description="Crisis and brand-safety monitoring daemon")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("-c", "--config", default=DEFAULT_CONFIG, type=Path,
                       help="config file (default: ./config.yaml)")
        return p

    command("run", "run the daemon")
    command("check", "validate config.yaml and the rules; exit 1 on problems")
    replay = command("replay", "run Post JSONL through the full pipeline in event time")
    replay.add_argument("posts", type=Path)
    replay.add_argument("--alerts-out", type=Path, help="write alerts as JSONL here")
    backtest = command("backtest", "feed timestamp,value count series to a volume rule")
    backtest.add_argument("--series", nargs="+", required=True, type=Path,
                          help="CSV files or folders of CSV files")
    backtest.add_argument("--rule", help="volume_spike rule to use (default: the first)")
    backtest.add_argument("--json", action="store_true", required=True,
                          help="print {file: [timestamps]} as JSON")
    command("classify", "JSONL {id,text} on stdin -> {id,compound,label} on stdout")
    command("screen", "JSONL outbound posts on stdin -> screening results on stdout")
    notify = command("notify-test", "send a test alert through each channel")
    notify.add_argument("--channel", help="only this channel")
    lifecycle_cli.add_parsers(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.setup("WARNING" if args.command not in ("run", "notify-test") else "INFO")
    try:
        return _dispatch(args)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1 if args.command == "check" else 2
    except BrandMonitorError as exc:
        sys.stderr.write(f"brand-monitor: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from monitor import commands

    config: Path = args.config
    if args.command in lifecycle_cli.COMMANDS:
        return lifecycle_cli.run(args)
    if args.command == "run":
        from monitor.app import serve

        return asyncio.run(serve(config))
    if args.command == "check":
        return commands.check(config)
    if args.command == "replay":
        return commands.replay(config, args.posts, args.alerts_out)
    if args.command == "backtest":
        result = commands.backtest(config, args.series, args.rule)
        sys.stdout.write(json.dumps(result, indent=1) + "\n")
        return 0
    if args.command == "classify":
        return commands.classify(config, sys.stdin, sys.stdout)
    if args.command == "screen":
        return commands.screen(config, sys.stdin, sys.stdout)
    if args.command == "notify-test":
        return asyncio.run(commands.notify_test(config, args.channel))
    raise AssertionError(args.command)
