"""A small PNG chart for alert emails: a volume spike against its expected band.

Pure Python (``zlib`` and ``struct``): a tiny RGB canvas, a PNG writer and a 3x5
digit font. The chart shows the brand's mentions per 5 minutes over the 6 hours
before the alert's window (the stored aggregates), the window itself (the alert's
observed count, highlighted), the volume detector's expected count (dashed) and the
typical range around it (expected +- 2 sqrt(expected), shaded) -- the same picture
as the dashboard's, so the reader sees the spike without opening anything.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from monitor.clock import parse_time
from monitor.model import Alert
from monitor.store.api import AggregateStore

WIDTH, HEIGHT = 480, 180
HISTORY = timedelta(hours=6)
Color = tuple[int, int, int]
WHITE: Color = (255, 255, 255)
GRID: Color = (225, 225, 225)
AXIS: Color = (60, 60, 60)
BAR: Color = (0, 114, 178)       # Okabe-Ito blue
SPIKE: Color = (213, 94, 0)      # vermillion
BAND: Color = (200, 228, 243)    # sky blue, light
EXPECTED: Color = (0, 0, 0)

_FONT = {  # 3x5 glyphs, rows top to bottom, bits left to right
    "0": (7, 5, 5, 5, 7), "1": (2, 6, 2, 2, 7), "2": (7, 1, 7, 4, 7), "3": (7, 1, 7, 1, 7),
    "4": (5, 5, 7, 1, 1), "5": (7, 4, 7, 1, 7), "6": (7, 4, 7, 5, 7), "7": (7, 1, 1, 1, 1),
    "8": (7, 5, 7, 5, 7), "9": (7, 5, 7, 1, 7), ":": (0, 2, 0, 2, 0), ".": (0, 0, 0, 0, 2),
    " ": (0, 0, 0, 0, 0), "-": (0, 0, 7, 0, 0),
}


class Canvas:
    def __init__(self, width: int, height: int, background: Color = WHITE) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def set(self, x: int, y: int, color: Color) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = (y * self.width + x) * 3
            self.pixels[i:i + 3] = bytes(color)

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
        """Fill [x0, x1] x [y0, y1] (any order, clipped)."""
        xa, xb = sorted((max(0, x0), min(self.width - 1, x1)))
        ya, yb = sorted((max(0, min(y0, y1)), min(self.height - 1, max(y0, y1))))
        row = bytes(color) * (xb - xa + 1)
        for y in range(ya, yb + 1):
            i = (y * self.width + xa) * 3
            self.pixels[i:i + len(row)] = row

    def line(self, x0: int, y0: int, x1: int, y1: int, color: Color, dash: int = 0) -> None:
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err, step = dx + dy, 0
        while True:
            if not dash or (step // dash) % 2 == 0:
                self.set(x0, y0, color)
            if x0 == x1 and y0 == y1:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy
            step += 1

    def text(self, x: int, y: int, text: str, color: Color, scale: int = 2) -> None:
        for ch in text:
            for row, bits in enumerate(_FONT.get(ch, _FONT[" "])):
                for col in range(3):
                    if bits & (4 >> col):
                        self.rect(x + col * scale, y + row * scale,
                                  x + col * scale + scale - 1, y + row * scale + scale - 1,
                                  color)
            x += 4 * scale

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(self.pixels[y * self.width * 3:(y + 1) * self.width * 3])
                       for y in range(self.height))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return (struct.pack(">I", len(data)) + kind + data
                    + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def spike_chart(buckets: Sequence[tuple[datetime, float, float | None]],
                spike: tuple[datetime, float, float | None]) -> bytes:
    """PNG of ``buckets`` (start, mentions, expected or None) followed by the alert's
    own ``spike`` bucket, highlighted."""
    rows = [*buckets, spike]
    canvas = Canvas(WIDTH, HEIGHT)
    left, right, top, bottom = 44, WIDTH - 10, 12, HEIGHT - 26
    peak = max([1.0, *(r[1] for r in rows),
                *(e + 2 * math.sqrt(e) for _, _, e in rows if e is not None)])
    top_value = _nice(peak)

    def y_of(value: float) -> int:
        return bottom - round((bottom - top) * min(value, top_value) / top_value)

    for i in range(5):  # grid and y labels
        value = top_value * i / 4
        y = y_of(value)
        canvas.line(left, y, right, y, GRID)
        label = f"{value:g}" if value < 1000 else f"{value / 1000:g}"
        canvas.text(left - 6 - 8 * len(label), y - 5, label, AXIS)
    n = len(rows)
    slot = (right - left) / n
    for i, (_, _, expected) in enumerate(rows):  # the typical range behind the bars
        if expected is None:
            continue
        width = 2 * math.sqrt(expected)
        x0, x1 = round(left + i * slot), round(left + (i + 1) * slot) - 1
        canvas.rect(x0, y_of(expected + width), x1, y_of(max(0.0, expected - width)), BAND)
    for i, (_, count, _) in enumerate(rows):
        x0 = round(left + i * slot) + (1 if slot > 3 else 0)
        x1 = max(x0, round(left + (i + 1) * slot) - 1)
        if count > 0:
            canvas.rect(x0, y_of(count), x1, bottom, SPIKE if i == n - 1 else BAR)
    previous: tuple[int, int] | None = None
    for i, (_, _, expected) in enumerate(rows):  # the expected count, dashed
        if expected is None:
            previous = None
            continue
        point = (round(left + (i + 0.5) * slot), y_of(expected))
        if previous is not None:
            canvas.line(*previous, *point, EXPECTED, dash=3)
        previous = point
    canvas.line(left, bottom, right, bottom, AXIS)
    canvas.line(left, top, left, bottom, AXIS)
    first, last = rows[0][0], rows[-1][0]
    canvas.text(left, bottom + 8, first.strftime("%H:%M"), AXIS)
    stamp = last.strftime("%H:%M")
    canvas.text(right - 8 * len(stamp), bottom + 8, stamp, SPIKE)
    return canvas.png()


def _nice(value: float) -> float:
    """A round axis maximum at or above ``value``."""
    magnitude = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * magnitude >= value:
            return float(factor * magnitude)
    return float(10 * magnitude)


class AlertCharts:
    """``(alert) -> PNG bytes or None``: the chart of a volume alert from the store's
    aggregates (given to the email channels, see monitor.notify.channels)."""

    def __init__(self, store: AggregateStore) -> None:
        self.store = store

    def __call__(self, alert: Alert) -> bytes | None:
        window = _window(alert.details)
        if window is None or alert.state != "firing":
            return None
        start, observed, expected = window
        history = self.store.aggregates(alert.brand, start - HISTORY, start)
        buckets = [(a.start, float(a.posts), a.expected) for a in history]
        return spike_chart(buckets, (start, observed, expected))


def _window(details: Mapping[str, Any]) -> tuple[datetime, float, float | None] | None:
    """The alert's bucket start, observed and expected counts (volume alerts only)."""
    window = details.get("window")
    observed = details.get("observed")
    if not isinstance(window, Mapping) or not isinstance(observed, int | float):
        return None
    try:
        start = parse_time(str(window.get("start")))
    except ValueError:
        return None
    expected = details.get("expected")
    return start, float(observed), float(expected) if isinstance(expected, int | float) else None
