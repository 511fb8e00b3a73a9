"""Tables for people on a terminal: aligned columns, colour only on a TTY.

Colour follows https://no-color.org: never when ``NO_COLOR`` is set (to anything but
an empty string) or the output is not a terminal. The last column is cut to the
terminal's width; the others keep their full width.
"""

from __future__ import annotations

import os
import shutil
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import IO

RESET = "\x1b[0m"
STYLES = {"red": "\x1b[31m", "bold-red": "\x1b[1;31m", "yellow": "\x1b[33m",
          "green": "\x1b[32m", "cyan": "\x1b[36m", "dim": "\x1b[2m", "bold": "\x1b[1m"}


def use_colour(out: IO[str], environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR", ""):
        return False
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty())


def width(text: str) -> int:
    """Columns ``text`` takes on a terminal (wide characters count twice)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else
               0 if unicodedata.combining(ch) else 1 for ch in text)


def cut(text: str, limit: int) -> str:
    if width(text) <= limit:
        return text
    out, used = [], 0
    for ch in text:
        w = width(ch)
        if used + w > limit - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "\u2026"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], out: IO[str], *,
          style: Callable[[int, str], str | None] = lambda column, value: None,
          colour: bool | None = None, max_width: int | None = None) -> None:
    """Write ``rows`` under ``headers``, aligned; ``style(column, value)`` names a style
    of :data:`STYLES` for a cell (used only with colour)."""
    colour = use_colour(out) if colour is None else colour
    if max_width is None:
        max_width = shutil.get_terminal_size((120, 24)).columns if colour else 10_000
    cells = [[" ".join(str(v).split()) for v in row] for row in rows]
    widths = [width(h) for h in headers]
    for row in cells:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], width(value))
    fixed = sum(widths[:-1]) + 2 * (len(widths) - 1)
    widths[-1] = max(10, min(widths[-1], max_width - fixed))

    def line(values: Sequence[str], header: bool = False) -> str:
        parts = []
        for i, value in enumerate(values):
            shown = cut(value, widths[i])
            pad = " " * (widths[i] - width(shown)) if i < len(values) - 1 else ""
            name = "bold" if header else style(i, value)
            if colour and name in STYLES:
                shown = f"{STYLES[name]}{shown}{RESET}"
            parts.append(shown + pad)
        return "  ".join(parts).rstrip()

    out.write(line(headers, header=True) + "\n")
    for row in cells:
        out.write(line(row) + "\n")
