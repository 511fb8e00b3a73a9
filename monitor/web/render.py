"""HTML rendering: Jinja2 templates (autoescaped) from the package, a few filters."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from jinja2 import ChainableUndefined, Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
#: Okabe-Ito: distinguishable with the common colour-vision deficiencies
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#000000")


def _when(value: Any) -> str:
    """An ISO-8601 time or epoch seconds as ``2026-11-01 12:05 UTC``."""
    if value is None or value == "":
        return "-"
    if isinstance(value, int | float):
        when = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, datetime):
        when = value.astimezone(UTC)
    else:
        try:
            when = datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            return str(value)
    return when.strftime("%Y-%m-%d %H:%M UTC")


def json_script(value: Any) -> Markup:
    """JSON for a ``<script type="application/json">`` element: ``<``, ``>`` and ``&``
    escaped, so no text in the data can close the element."""
    text = orjson.dumps(value, default=str).decode()
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _percent(value: Any) -> str:
    return "-" if value is None else f"{float(value) * 100:.1f}%"


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


@functools.cache
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      undefined=ChainableUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=_when, json_script=json_script, percent=_percent, number=_number)
    env.globals.update(palette=PALETTE)
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def static_version() -> str:
    """Changes when a static file changes (cache busting for ``?v=``)."""
    newest = max((p.stat().st_mtime_ns for p in STATIC.rglob("*") if p.is_file()), default=0)
    return f"{newest:x}"[-8:]
