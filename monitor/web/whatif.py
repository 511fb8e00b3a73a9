"""What-if backtest: a volume rule at another sensitivity over the stored history.

The series is the brand's stored 5-minute mention counts (the ``aggregates``, kept
after raw posts are pruned), summed into the rule's bucket; missing buckets inside
the rule's ``max_gap`` are empty buckets, longer gaps stay gaps (as the detector
treats them). Both sensitivities run through :func:`monitor.detect.countmodel.backtest`
-- the code of the ``brand-monitor backtest`` command and of the detector's model --
so the page shows which buckets would have fired then and now. The distinct-author
floor (``min_authors``) cannot be replayed: the aggregates do not keep authors.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.config.schema import Rule
from monitor.detect.countmodel import SENSITIVITY_LEVELS, backtest, sensitivity_threshold
from monitor.detect.volume import VolumeParams
from monitor.store.api import Store
from monitor.web.pulse import STEP

DAYS = (7, 14, 30, 90)
MAX_LIST = 200


class WhatIfError(ValueError):
    """A request the backtest cannot answer (shown on the page)."""


def volume_rules(rules: Sequence[Rule]) -> list[Rule]:
    return [r for r in rules if r.signal == "volume_spike" and isinstance(r.params, VolumeParams)]


def parse_sensitivity(raw: str) -> str | float:
    raw = raw.strip().lower()
    if raw in SENSITIVITY_LEVELS:
        return raw
    try:
        value = float(raw)
    except ValueError:
        raise WhatIfError("sensitivity: low, medium, high or a tail probability such as "
                          "0.001") from None
    if not 0.0 < value < 1.0:
        raise WhatIfError("sensitivity: a number must be a tail probability between 0 and 1")
    return value


def history(store: Store, brand: str, params: VolumeParams, start: datetime,
            end: datetime) -> list[tuple[datetime, float]]:
    """The brand's mention counts per rule bucket in [start, end), gaps as the detector
    sees them."""
    size = int(params.bucket.total_seconds())
    if size % STEP:
        raise WhatIfError(f"the rule's bucket ({params.bucket}) is not a multiple of the "
                          f"stored 5-minute aggregates")
    sums: dict[int, float] = {}
    for row in store.aggregates(brand, start, end):
        key = int(row.start.timestamp()) // size * size
        sums[key] = sums.get(key, 0.0) + row.posts
    out: list[tuple[datetime, float]] = []
    gap = int(params.max_gap.total_seconds())
    previous: int | None = None
    for key in sorted(sums):
        if previous is not None and key - previous <= gap:
            for filler in range(previous + size, key, size):
                out.append((datetime.fromtimestamp(filler, UTC), 0.0))
        out.append((datetime.fromtimestamp(key, UTC), sums[key]))
        previous = key
    return out


def run(store: Store, rule: Rule, brand: str, sensitivity: str | float, days: int,
        now: datetime) -> dict[str, Any]:
    """Backtest ``rule`` for ``brand`` over the last ``days`` at its own and at the new
    sensitivity; also the alerts the rule really raised then."""
    params: VolumeParams = rule.params
    if days not in DAYS:
        raise WhatIfError(f"days: one of {', '.join(map(str, DAYS))}")
    started = time.perf_counter()
    end = now
    start = end - timedelta(days=days)
    rows = history(store, brand, params, start, end)
    current = backtest(rows, params.model_params())
    changed = dataclasses.replace(params, sensitivity=sensitivity)
    proposed = backtest(rows, changed.model_params())
    real = store.firing_alerts(since=start, rule=rule.name, brand=brand, limit=MAX_LIST,
                               newest_first=False)
    before, after = set(current), set(proposed)
    return {
        "rule": rule.name, "brand": brand, "days": days,
        "buckets": len(rows), "bucket_seconds": int(params.bucket.total_seconds()),
        "start": _iso(start), "end": _iso(end),
        "current": {"sensitivity": params.sensitivity,
                    "threshold": round(sensitivity_threshold(params.sensitivity), 3),
                    "fired": [_iso(t) for t in current[:MAX_LIST]], "count": len(current)},
        "proposed": {"sensitivity": sensitivity,
                     "threshold": round(sensitivity_threshold(sensitivity), 3),
                     "fired": [_iso(t) for t in proposed[:MAX_LIST]], "count": len(proposed)},
        "added": [_iso(t) for t in sorted(after - before)][:MAX_LIST],
        "removed": [_iso(t) for t in sorted(before - after)][:MAX_LIST],
        "real": [{"id": r.id, "at": _iso(r.created_at), "title": r.title} for r in real],
        "series": {"start": int(rows[0][0].timestamp()) if rows else None,
                   "times": [int(t.timestamp()) for t, _ in rows],
                   "counts": [c for _, c in rows]},
        "seconds": round(time.perf_counter() - started, 3),
        "min_count": params.min_count,
    }


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def per_day(count: int, days: int) -> float:
    return math.floor(count / days * 100) / 100 if days else 0.0
