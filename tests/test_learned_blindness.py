"""A crisis monitor must not learn to ignore crises (issue 14).

On every NAB dev series, five earlier bursts of 50-100x the baseline are injected
on the three days before a 20x burst sustained for 30 minutes.  The shipped volume
rule must fire on that burst within 10 minutes (by the end of the burst's second
bucket), and no later than without the earlier bursts.  Before issue 14 it stayed
silent on every series.

Where it still fails (``BELOW_BAR``, expected failures, strict: they turn red the
day they pass): on those series a 20x rise over 10 minutes is not rare in the
brand's own calm history, so the absolute channel (monitor/detect/absolute.py), held
to one false alarm per brand per 90 days, cannot call it overwhelming, and the burst
channel is blinded by the earlier bursts it calibrates on.  AAPL's unlabelled
history holds 20-90x bursts over 5-10 minutes about once a week; the 20x burst
reaches an absolute evidence of 2.8 (AAPL), 3.3 (KO), 4.1 (IBM) and 4.5 (GOOG)
within 15 minutes against a bar of 4.89 (4.41 at a 30-day horizon, where GOOG
passes but the dev series get three more false alerts).  Firing there within 10
minutes would mean accepting about one false alarm per week on AAPL.
"""

from __future__ import annotations

import random
from datetime import datetime
from pathlib import Path

import pytest

from monitor.commands import volume_rule
from monitor.config.loader import load_all
from monitor.detect.countmodel import CountModel, CountModelParams, load_series_csv

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "nab-realtweets-dev"
DAY = 288
SERIES = sorted(DATA.glob("*.csv")) if DATA.exists() else []
#: series where the 20x burst stays below the absolute channel's bar (module doc)
BELOW_BAR = {"AAPL", "GOOG", "IBM", "KO"}


def series_param(path: Path) -> object:
    name = path.stem.rsplit("_", 1)[-1]
    marks = [pytest.mark.xfail(strict=True, reason="20x in 10 min is not rare on this "
                               "brand: below the absolute channel's bar")] \
        if name in BELOW_BAR else []
    return pytest.param(path, id=name, marks=marks)


def baseline(counts: list[float], i: int) -> float:
    """Trimmed mean of the same time of day (+-2 buckets) on the previous 7 days: the
    brand's usual level, defined without the detector."""
    values = sorted(counts[j] for d in range(1, 8) for j in range(i - d * DAY - 2,
                                                                   i - d * DAY + 3))
    cut = len(values) // 5
    kept = values[cut:len(values) - cut]
    return sum(kept) / len(kept)


def shipped_params() -> CountModelParams:
    _, rules = load_all(ROOT / "config.yaml")
    params: CountModelParams = volume_rule(rules, None).params.model_params()
    return params


def first_alert(rows: list[tuple[datetime, float]], params: CountModelParams,
                start: int) -> int | None:
    """Run the detector over ``rows``; the first bucket from ``start`` on that fired."""
    model = CountModel(params)
    for i, (when, count) in enumerate(rows):
        if model.evaluate(when, count).fired and i >= start:
            return i
        model.learn(when, count)
    return None


@pytest.mark.shared
@pytest.mark.skipif(not SERIES, reason="needs ../shared/data/nab-realtweets-dev")
@pytest.mark.parametrize("path", [series_param(p) for p in SERIES])
def test_earlier_bursts_do_not_blind_the_detector(path: Path) -> None:
    rows = load_series_csv(path)
    counts = [c for _, c in rows]
    rng = random.Random(path.stem)
    target = 40 * DAY + rng.randrange(DAY)  # day 40 of ~55: past every warm-up
    end = target + 6  # the 20x burst: 6 buckets = 30 minutes
    rows = rows[:end]
    counts = counts[:end]
    burst = list(counts)
    for i in range(target, end):
        burst[i] = counts[i] + round(19.0 * max(baseline(counts, i), 1.0))
    earlier = list(burst)
    for k in range(5):  # five bursts of 50-100x on the three days before, 15-60 min each
        start = target - 3 * DAY + k * 13 * 12 + rng.randrange(60)
        factor = rng.uniform(50.0, 100.0)
        for i in range(start, start + rng.randint(3, 12)):
            earlier[i] = counts[i] + round((factor - 1.0) * max(baseline(counts, i), 1.0))
    params = shipped_params()
    alone = first_alert([(t, c) for (t, _), c in zip(rows, burst, strict=True)], params,
                        target)
    after = first_alert([(t, c) for (t, _), c in zip(rows, earlier, strict=True)], params,
                        target)
    assert after is not None, f"the 20x burst at {rows[target][0]} after five 50-100x " \
        "bursts raised no alert: the detector learned to ignore crises"
    assert after - target <= 1, f"the 20x burst fired {after - target} buckets late"
    assert alone is None or after <= max(alone, target + 1), "earlier bursts delayed it"
