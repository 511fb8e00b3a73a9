"""Logging set-up: one line per record on stderr, secrets masked."""

from __future__ import annotations

import logging
import sys

from monitor.secrets import MaskingFilter


def setup(level: str = "INFO") -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_brand_monitor", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._brand_monitor = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("aiohttp.access", "apprise"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
