"""Import every plugin module so that each registers itself, then look them up."""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = (
    "monitor.sources.replay",
    "monitor.sources.demo",
    "monitor.sources.rss",
    "monitor.sources.twitter",
    "monitor.sources.bluesky",
    "monitor.sources.mastodon",
    "monitor.detect.volume",
    "monitor.detect.sentiment_shift",
    "monitor.detect.influencer",
    "monitor.detect.silence",
    "monitor.detect.intent",
    "monitor.detect.outbound",
    "monitor.detect.digest",
)
_loaded = False


def load() -> None:
    global _loaded
    if not _loaded:
        for name in _MODULES:
            importlib.import_module(name)
        _loaded = True


def source_options(type_name: str) -> type[Any]:
    load()
    from monitor.sources.base import SOURCES

    return SOURCES.get(type_name).Options


def detector_params(signal: str) -> type[Any]:
    found: type[Any] = detector_class(signal).Params
    return found


def detector_class(signal: str) -> type[Any]:
    load()
    from monitor.detect.base import DETECTORS

    return DETECTORS.get(signal)


def detector_mode(name: str) -> Any:
    """The registered mode ``name`` (monitor.detect.base.Mode); KeyError if unknown."""
    load()
    from monitor.detect.base import MODES

    return MODES.get(name)


def signals_with_modes() -> list[str]:
    """The signals whose rules may choose a mode (per_post, digest)."""
    load()
    from monitor.detect.base import DETECTORS

    return [name for name in DETECTORS if DETECTORS.get(name).modes]
