"""``brand-monitor outbox list | retry``: the delivery queue and its dead letters.

Like the lifecycle commands these open the configuration's state database
directly (WAL mode lets them run beside the daemon) and print JSON, one object a
line. A running daemon picks re-queued items up at its next outbox pass (within
a minute); ``POST /outbox/{id}/retry`` wakes it at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

from monitor.config.loader import load_config
from monitor.errors import BrandMonitorError
from monitor.store.api import OutboxStore
from monitor.store.factory import open_store, state_path, store_exists

COMMANDS = ("outbox",)
STATUSES = ("pending", "sent", "dead")


def add_parsers(command: Callable[..., argparse.ArgumentParser]) -> None:
    outbox = command(
        "outbox", "list outbox deliveries, re-send dead letters",
        description="The delivery queue: every alert on every channel, with attempts and "
                    "the last error. 'retry' re-sends dead letters (given ids, or "
                    "--all-dead) with a fresh retry horizon.",
        examples=["brand-monitor outbox list --status dead", "brand-monitor outbox retry 12 13",
                  "brand-monitor outbox retry --all-dead"])
    outbox.add_argument("action", choices=("list", "retry"))
    outbox.add_argument("ids", nargs="*", type=int, metavar="ID",
                        help="outbox item ids to re-send (retry)")
    outbox.add_argument("--status", choices=STATUSES, help="only items in this state (list)")
    outbox.add_argument("--channel", help="only this channel (list)")
    outbox.add_argument("--limit", type=int, default=100, help="at most this many (list)")
    outbox.add_argument("--all-dead", action="store_true", help="re-send every dead item (retry)")


def run(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    config = load_config(Path(args.config))
    db = state_path(config)
    if not store_exists(config):
        raise BrandMonitorError(f"no state database at {db}: has the daemon run with this "
                                "configuration?")
    store = open_store(config)
    try:
        return _run(args, store, out)
    finally:
        store.close()


def _run(args: argparse.Namespace, store: OutboxStore, out: IO[str]) -> int:
    if args.action == "list":
        if args.ids or args.all_dead:
            raise BrandMonitorError("outbox list takes no IDs or --all-dead (see outbox retry)")
        if args.limit < 1:
            raise BrandMonitorError("--limit must be at least 1")
        for item in store.outbox_items(status=args.status, channel=args.channel,
                                       limit=args.limit):
            out.write(json.dumps(item, ensure_ascii=False) + "\n")
        return 0
    if bool(args.ids) == bool(args.all_dead):
        raise BrandMonitorError("outbox retry needs outbox item IDs or --all-dead (not both)")
    if args.all_dead:
        retried = store.retry_dead(None)
    else:
        problems = []
        for item_id in args.ids:
            found = store.outbox_item(item_id)
            if found is None:
                problems.append(f"outbox item {item_id} not found")
            elif found["status"] != "dead":
                problems.append(f"outbox item {item_id} is {found['status']}, not dead")
        if problems:
            raise BrandMonitorError("; ".join(problems) + " (nothing re-sent)")
        retried = store.retry_dead(args.ids)
    out.write(json.dumps({"retried": retried}) + "\n")
    return 0
