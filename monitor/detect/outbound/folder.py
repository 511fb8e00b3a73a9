"""The approved-posts ledger fed by a watched folder.

The publishing workflow drops files into the outbound rule's ``ledger_folder``:

- ``*.json``: one approved post ``{"text": ..., "brand"?, "id"?, "valid_for"? |
  "valid_until"?}``, a list of them, or ``{"posts": [...]}``;
- ``*.txt``: the whole file (UTF-8) is one approved post for any brand.

The folder is polled (``ledger_poll``); a file is read once it has not changed for a
second (so a half-written file is not taken) and again whenever it changes. Without
an ``id`` an item's id is derived from its brand and text, so reading a file twice
(or after a restart) registers nothing new. Files are never moved or deleted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.config.schema import RuleSet
from monitor.detect.outbound.params import OutboundParams
from monitor.detect.outbound.runtime import MAX_APPROVED_TEXT, ApprovedPost, OutboundRuntime

log = logging.getLogger(__name__)
SETTLE_SECONDS = 1.0
MAX_FILE_BYTES = 1_048_576


@dataclass(frozen=True, slots=True)
class FolderSpec:
    path: Path
    validity: timedelta
    poll: timedelta


class ApprovedFolder:
    def __init__(self, runtime: OutboundRuntime, spec: FolderSpec) -> None:
        self.runtime = runtime
        self.spec = spec
        self._seen: dict[str, tuple[int, int]] = {}  # name -> (mtime_ns, size) taken or refused

    def scan(self, now: datetime, wall: float | None = None) -> int:
        """Read new or changed files; return how many approved posts were new."""
        folder = self.spec.path
        if not folder.is_dir():
            return 0
        wall = wall if wall is not None else time.time()
        added = 0
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.suffix.lower() not in (".json", ".txt"):
                continue
            try:
                stat = path.stat()
            except OSError:
                continue
            key = (stat.st_mtime_ns, stat.st_size)
            if self._seen.get(path.name) == key or wall - stat.st_mtime < SETTLE_SECONDS:
                continue
            self._seen[path.name] = key
            try:
                items = self._read(path, now)
            except (OSError, ValueError) as exc:
                log.warning("approved-posts folder: %s refused: %s", path.name, exc)
                continue
            for item in items:
                _, created = self.runtime.approve(item)
                added += created
        if added:
            log.info("approved-posts folder %s: %d new approved post(s)", folder, added)
        return added

    def _read(self, path: Path, now: datetime) -> list[ApprovedPost]:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8").removeprefix("\ufeff")
        source = f"folder:{path.name}"
        if path.suffix.lower() == ".txt":
            if not text.strip():
                raise ValueError("empty file")
            data: Any = {"text": text.strip()[:MAX_APPROVED_TEXT]}
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"invalid JSON: {exc.msg} at line {exc.lineno}") from None
        if isinstance(data, dict) and set(data) == {"posts"}:
            data = data["posts"]
        items = data if isinstance(data, list) else [data]
        out = []
        for index, item in enumerate(items):
            try:
                out.append(ApprovedPost.from_json(item, now, self.spec.validity, source=source))
            except ValueError as exc:
                raise ValueError(f"item {index}: {exc}") from None
        return out


async def watch_folders(runtime: OutboundRuntime, specs: Callable[[], list[FolderSpec]],
                        now: Callable[[], datetime]) -> None:
    """Poll every configured folder until cancelled (``specs`` is re-read each round,
    so a rules reload can add, move or drop folders)."""
    watchers: dict[Path, ApprovedFolder] = {}
    while True:
        current = specs()
        wait = min((s.poll.total_seconds() for s in current), default=30.0)
        for spec in current:
            watcher = watchers.get(spec.path)
            if watcher is None or watcher.spec != spec:
                watcher = watchers[spec.path] = ApprovedFolder(runtime, spec)
            try:
                watcher.scan(now())
            except Exception:  # a broken folder must never take the daemon down
                log.exception("approved-posts folder %s: scan failed", spec.path)
        await asyncio.sleep(max(1.0, wait))


def _outbound_params(rules: RuleSet) -> list[OutboundParams]:
    return [r.params for r in rules.for_signal("outbound") if isinstance(r.params, OutboundParams)]


def folder_specs(rules: RuleSet, base: Path) -> list[FolderSpec]:
    """The watched folders of the enabled outbound rules (relative to ``base``)."""
    specs: dict[Path, FolderSpec] = {}
    for params in _outbound_params(rules):
        if params.ledger_folder:
            path = (base / params.ledger_folder).resolve()
            specs.setdefault(path, FolderSpec(path, params.ledger_validity, params.ledger_poll))
    return list(specs.values())


def default_validity(rules: RuleSet) -> timedelta:
    """How long an approved post without its own validity stays valid (the first rule's)."""
    found = _outbound_params(rules)
    return found[0].ledger_validity if found else OutboundParams().ledger_validity
