"""Command line: turns argv into options and calls the right entry point (DESIGN.md).

Every failure is one line on stderr naming what to fix, with a non-zero exit:
``check`` prints ``file:line: key: message`` lines and exits 1; other commands
exit 2 (``run`` exits 78, EX_CONFIG, on a configuration error, so that systemd
does not restart it in a loop). A Python traceback is shown only with
``--debug`` (before or after the command name).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import IO, NoReturn

from monitor import __version__, lifecycle_cli, logs, outbox_cli
from monitor.errors import BrandMonitorError, ConfigError
from monitor.secrets import mask

DEFAULT_CONFIG = "config.yaml"
EX_CONFIG = 78  # sysexits.h: `run` with an invalid configuration (no restart helps)


class _Help(argparse.HelpFormatter):
    """Descriptions wrap to the terminal; indented lines (the examples) stay as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out: list[str] = []
        for line in text.splitlines():
            if line.startswith("  ") or not line.strip():
                out.append(indent + line)
            else:
                out.append(super()._fill_text(line, width, indent))
        return "\n".join(out)


class _Parser(argparse.ArgumentParser):
    """Usage mistakes are one line too (``--help`` shows the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="brand-monitor",
                     description="Crisis and brand-safety monitoring daemon. "
                                 "'brand-monitor COMMAND --help' explains a command.",
                     epilog="Start with: brand-monitor run -c config.yaml (the built-in demo)",
                     formatter_class=_Help)
    parser.add_argument("--version", action="version",
                        version=f"brand-monitor {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str, *, description: str,
                examples: Sequence[str]) -> argparse.ArgumentParser:
        """A subcommand: one line in the list, a description and examples in --help."""
        epilog = "Example" + ("s" if len(examples) > 1 else "") + ":\n" + "\n".join(
            f"  {e}" for e in examples)
        p = sub.add_parser(name, help=help_text, description=description, epilog=epilog,
                           formatter_class=_Help)
        p.add_argument("-c", "--config", default=DEFAULT_CONFIG, type=Path,
                       help="config file (default: ./config.yaml)")
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the Python traceback of an error")
        return p

    run = command("run", "run the daemon",
                  description="Run the daemon: collect mentions, detect, alert. With the "
                              "shipped config.yaml it runs the built-in demo (a simulated "
                              "brand in accelerated time, in its own state folder, fresh "
                              "each start). SIGHUP reloads the rules, SIGTERM stops. "
                              "--role picks one part of a partitioned deployment.",
                  examples=["brand-monitor run -c config.yaml",
                            "brand-monitor run --role worker -c cluster.yaml"])
    run.add_argument("--role", choices=("all", "ingest", "worker", "notify"), default="all",
                     help="all (default): the whole daemon in this process; ingest, worker "
                          "or notify: one part of a partitioned deployment (needs "
                          "cluster.nats_url and PostgreSQL, see docs/scaling.md)")
    command("check", "validate config.yaml and the rules; exit 1 on problems",
            description="Load config.yaml and every rules file as 'run' would; print one "
                        "'file:line: key: message' line per problem and exit 1, or a summary.",
            examples=["brand-monitor check -c /etc/brand-monitor/config.yaml"])
    replay = command("replay", "run Post JSONL through the full pipeline in event time",
                     description="Run a JSONL file of posts (oldest first) through the whole "
                                 "pipeline in event time on a scratch store; the alerts are "
                                 "printed as JSON lines (or written to --alerts-out) and a "
                                 "summary goes to stderr.",
                     examples=["brand-monitor replay posts.jsonl --alerts-out alerts.jsonl"])
    replay.add_argument("posts", type=Path)
    replay.add_argument("--alerts-out", type=Path, help="write alerts as JSONL here")
    backtest = command(
        "backtest", "feed timestamp,value count series to a volume rule",
        description="Feed 5-minute 'timestamp,value' count series (NAB format) to a "
                    "volume_spike rule and show when it would have fired: a readable "
                    "summary, or with --json exactly {\"<file>\": [\"YYYY-MM-DD HH:MM:SS\", "
                    "...]}, each the start of a bucket that fired.",
        examples=["brand-monitor backtest --series data/realTweets",
                  "brand-monitor backtest --series a.csv b.csv --rule volume-spike --json"])
    backtest.add_argument("--series", nargs="+", required=True, type=Path,
                          help="CSV files or folders of CSV files")
    backtest.add_argument("--rule", help="volume_spike rule to use (default: the first)")
    backtest.add_argument("--json", action="store_true",
                          help="print {file: [timestamps]} as JSON (for scripts)")
    command("classify", "JSONL {id,text} on stdin -> {id,compound,label} on stdout",
            description="Score each input line's text with the configured sentiment "
                        "analyser (VADER and the lexicon packs).",
            examples=["echo '{\"id\": 1, \"text\": \"love it\"}' | brand-monitor classify"])
    command("screen", "JSONL outbound posts on stdin -> screening results on stdout",
            description="Screen the brand's own posts as the daemon would before they go "
                        "out: flagged or not, severity and reasons.",
            examples=["echo '{\"id\": 1, \"text\": \"free crypto, dm me\"}' | "
                      "brand-monitor screen"])
    notify = command("notify-test", "send a test alert through each channel",
                     description="Send a test notification through every configured channel "
                                 "(or one) and report each delivery.",
                     examples=["brand-monitor notify-test --channel pr-email"])
    notify.add_argument("--channel", help="only this channel")
    lifecycle_cli.add_parsers(command)
    outbox_cli.add_parsers(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    logs.setup("WARNING" if args.command not in ("run", "notify-test") else "INFO")
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if debug:
            traceback.print_exc()
        sys.stderr.write(mask(_one_line(args.command, exc)) + "\n")
        if isinstance(exc, ConfigError):
            return 1 if args.command == "check" else EX_CONFIG if args.command == "run" else 2
        return 2


def _one_line(command: str, exc: Exception) -> str:
    """What went wrong, for people: a config problem per line, else one line."""
    if isinstance(exc, ConfigError):
        return str(exc)
    if isinstance(exc, BrandMonitorError):
        return f"brand-monitor: {exc}"
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"brand-monitor {command}: {exc.strerror or exc}{where}"
    text = " ".join(str(exc).split())
    return (f"brand-monitor {command}: unexpected error {type(exc).__name__}"
            f"{': ' + text if text else ''} (run with --debug for the traceback)")


def _stdin() -> IO[str]:
    """Standard input for JSONL commands: bytes that are not UTF-8 are kept (as
    surrogates) so that the one bad line is reported and the rest still read."""
    if isinstance(sys.stdin, io.TextIOWrapper):
        sys.stdin.reconfigure(errors="surrogateescape")
    return sys.stdin


def _dispatch(args: argparse.Namespace) -> int:
    from monitor import commands

    config: Path = args.config
    if args.command in lifecycle_cli.COMMANDS:
        return lifecycle_cli.run(args)
    if args.command in outbox_cli.COMMANDS:
        return outbox_cli.run(args)
    if args.command == "run":
        if args.role != "all" or _has_stream(config):
            from monitor.cluster.node import serve as serve_role

            return asyncio.run(serve_role(config, args.role))
        from monitor.app import serve

        return asyncio.run(serve(config))
    if args.command == "check":
        return commands.check(config)
    if args.command == "replay":
        return commands.replay(config, args.posts, args.alerts_out)
    if args.command == "backtest":
        result = commands.backtest(config, args.series, args.rule)
        if args.json:  # the contract of DESIGN.md: exactly this
            sys.stdout.write(json.dumps(result, indent=1) + "\n")
        else:
            commands.backtest_summary(result, config, args.rule, sys.stdout)
        return 0
    if args.command == "classify":
        return commands.classify(config, _stdin(), sys.stdout)
    if args.command == "screen":
        return commands.screen(config, _stdin(), sys.stdout)
    if args.command == "notify-test":
        return asyncio.run(commands.notify_test(config, args.channel))
    raise AssertionError(args.command)


def _has_stream(config: Path) -> bool:
    """Whether ``config`` sets cluster.nats_url (role all then runs the partitioned
    node; without it, the single daemon of monitor.app)."""
    from monitor.config.loader import load_config

    cluster = load_config(config).cluster
    return cluster is not None and bool(cluster.nats_url)
