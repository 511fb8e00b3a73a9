"""Synthetic-injection benchmark of the volume detector (used by ``bench/detection.py``).

Known anomalies are added to the real NAB dev series at random times after NAB's
probation, and the shipped detector (the volume rule's parameters, run in-process
exactly as ``brand-monitor backtest`` runs them) must find them:

(a) ``burst``   sharp bursts of 10x, 20x or 50x the baseline for 15-60 minutes;
                detected = an alert while the burst lasts.
(b) ``buildup`` a slow build-up, the rate rising linearly from 1.5x to 4x over 6 hours;
                detected = an alert within 2 hours of its start.
(c) ``shift``   a level shift to 2x for two days; detected = an alert within 3 hours.

Each kind is injected twice: alone (``clean``) and after five earlier bursts of
50-100x the baseline (15-60 minutes each, on the previous three days, at least
four hours apart and ending at least six hours before) -- the "learned blindness"
case: a crisis monitor must not stop seeing crises because the brand had some.

Injection is additive and keeps the real noise: a bucket's count becomes
``count + Poisson((k - 1) * b)`` for a rate multiplier ``k``, where ``b`` is the
*true* baseline of that bucket, defined independently of the detector on the untouched
series: the mean count at the same time of day (+-2 buckets) on each of the previous
seven days, averaged over the days with the highest and lowest fifth of the days
dropped (at least one each from three days on) -- the brand's usual level at that
time, robust to a news day.  It is floored at one mention per bucket: "10x" of 0.1
mentions per 5 minutes is one extra mention, which nobody could call a burst (the
issue's example is a baseline of 1-2 becoming 100-200).  Targets never overlap a
NAB-labelled window (with six hours of margin), where the detector may already be in
an episode.

Fairness notes (checked for issue 14): until then ``b`` was the trimmed mean of the
35 individual buckets, which is biased low on skewed, mostly-zero counts (on PFE it
was 0.0-0.2 at most hours, so a "20x burst" added 0-3 mentions), and it had no floor.
A trial whose onset falls inside an alert episode the detector opened on the real
data cannot fire again; such trials still count as misses and are reported in the
``busy`` column.

Delay is measured from the start of the anomaly to the *end* of the bucket that fired
(when a backtest, which scores whole buckets, could first have said it; the daemon
evaluates on arrival and is earlier).  Positions depend only on the seed and the data,
never on the detector, so two detector versions see the same trials.  Each trial
restarts from a snapshot of the detector taken on the untouched series just before
the trial's first injected bucket, so a trial costs only the buckets it spans.
"""

from __future__ import annotations

import copy
import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.detect.countmodel import CountModel, CountModelParams

DAY = 288  # 5-minute buckets
BUCKET = timedelta(minutes=5)
Rows = list[tuple[datetime, float]]


def probation(n: int) -> int:
    """NAB's unscored leading rows."""
    return min(math.floor(0.15 * n), 750)


#: injected multiples apply to at least this many mentions per bucket (module doc)
BASE_FLOOR = 1.0


def true_baseline(counts: Sequence[float], i: int) -> float:
    """The usual count of bucket ``i``: per earlier day (up to 7) the mean of the same
    time of day +-2 buckets, then the mean over days without the highest and lowest
    fifth of them (at least one each from three days on)."""
    days: list[float] = []
    for d in range(1, 8):
        cells = [counts[j] for j in range(i - d * DAY - 2, i - d * DAY + 3) if j >= 0]
        if cells:
            days.append(sum(cells) / len(cells))
    if not days:
        return 0.0
    days.sort()
    if len(days) >= 3:
        cut = max(1, round(0.2 * len(days)))
        days = days[cut:len(days) - cut]
    return sum(days) / len(days)


def injected_base(counts: Sequence[float], i: int) -> float:
    """The level an injected multiple applies to: the true baseline, floored."""
    return max(true_baseline(counts, i), BASE_FLOOR)


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0.0:
        return 0
    if lam > 60.0:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


@dataclass(frozen=True, slots=True)
class Kind:
    """``deadline``: buckets after the onset in which an alert counts (``None``: while
    the anomaly lasts); ``multiplier(rng)`` -> rate multiplier at bucket ``t`` of it."""

    label: str
    deadline: int | None
    multiplier: Callable[[random.Random], Callable[[int], float]]
    length: Callable[[random.Random], int]


def _burst(rng: random.Random) -> Callable[[int], float]:
    k = rng.choice((10.0, 20.0, 50.0))
    return lambda t: k


KINDS: dict[str, Kind] = {
    "burst": Kind("(a) bursts 10/20/50x, 15-60 min", None, _burst,
                  lambda rng: rng.randint(3, 12)),
    "buildup": Kind("(b) build-up 1.5x->4x in 6 h, 2 h", 24,
                    lambda _r: (lambda t: 1.5 + 2.5 * t / 72.0), lambda _r: 72),
    "shift": Kind("(c) level shift 2x 2 days, 3 h", 36, lambda _r: (lambda t: 2.0),
                  lambda _r: 2 * DAY),
}


@dataclass(slots=True)
class Trial:
    series: str
    kind: str
    variant: str            # "clean" | "after bursts"
    onset: int
    length: int
    deadline: int
    extra: dict[int, float] = field(default_factory=dict)  # bucket -> rate to add
    detected: bool = False
    delay_min: float | None = None
    multiplier: float = 0.0
    busy: bool = False      # the detector was already in an episode at the onset


def _overlaps(lo: int, hi: int, spans: Sequence[tuple[int, int]]) -> bool:
    return any(lo <= b and a <= hi for a, b in spans)


def plan(name: str, counts: Sequence[float], windows: Sequence[tuple[int, int]], seed: int,
         per_kind: int) -> list[Trial]:
    """``per_kind`` clean and ``per_kind`` after-burst trials of every kind for one series."""
    rng = random.Random(f"{seed}/{name}")
    n = len(counts)
    first = probation(n)
    margin = 6 * 12
    trials: list[Trial] = []
    for key, kind in KINDS.items():
        for variant in ("clean", "after bursts"):
            made = 0
            while made < per_kind:
                lo = first + (3 * DAY + margin if variant == "after bursts" else 0)
                length = kind.length(rng)
                deadline = length if kind.deadline is None else kind.deadline
                onset = rng.randrange(lo, n - deadline - 1)
                if _overlaps(onset - margin, onset + deadline + margin, windows):
                    continue
                mult = kind.multiplier(rng)
                trial = Trial(name, key, variant, onset, length, deadline,
                              multiplier=mult(0))
                for t in range(min(length, deadline)):
                    base = injected_base(counts, onset + t)
                    trial.extra[onset + t] = (mult(t) - 1.0) * base
                if variant == "after bursts" and not _earlier_bursts(rng, counts, trial,
                                                                      first, windows):
                    continue
                trials.append(trial)
                made += 1
    return trials


def _earlier_bursts(rng: random.Random, counts: Sequence[float], trial: Trial, first: int,
                    windows: Sequence[tuple[int, int]]) -> bool:
    """Five 50-100x bursts of 15-60 min on the three days before ``trial`` (in place)."""
    placed: list[tuple[int, int]] = []
    for _ in range(200):
        if len(placed) == 5:
            break
        length = rng.randint(3, 12)
        start = rng.randrange(trial.onset - 3 * DAY, trial.onset - 6 * 12 - length)
        if start < first or any(abs(start - s) < 4 * 12 + length for s, _ in placed):
            continue
        placed.append((start, length))
    if len(placed) < 5:
        return False
    for start, length in placed:
        k = rng.uniform(50.0, 100.0)
        for t in range(start, start + length):
            trial.extra[t] = (k - 1.0) * injected_base(counts, t)
    return True


def run_trials(rows: Rows, params: CountModelParams, trials: list[Trial]) -> list[datetime]:
    """Backtest the untouched series and, from snapshots, every trial; returns the
    untouched series' alerts.  Trials are updated in place."""
    counts = [c for _, c in rows]
    starts = sorted(((min(t.extra), idx) for idx, t in enumerate(trials)), reverse=True)
    model = CountModel(params)
    fired: list[datetime] = []
    for i, (when, count) in enumerate(rows):
        while starts and starts[-1][0] == i:
            _, idx = starts.pop()
            _run_trial(copy.deepcopy(model), rows, counts, trials[idx])
        if model.evaluate(when, count).fired:
            fired.append(when)
        model.learn(when, count)
    return fired


def _run_trial(model: CountModel, rows: Rows, counts: Sequence[float], trial: Trial) -> None:
    rng = random.Random(f"noise/{trial.series}/{trial.onset}/{trial.kind}/{trial.variant}")
    begin = min(trial.extra)
    end = min(trial.onset + trial.deadline, len(rows))
    for i in range(begin, end):
        when = rows[i][0]
        count = counts[i] + poisson(rng, trial.extra.get(i, 0.0))
        if i == trial.onset:
            trial.busy = model.active
        verdict = model.evaluate(when, count)
        if verdict.fired and i >= trial.onset:
            trial.detected = True
            trial.delay_min = (i + 1 - trial.onset) * 5.0
            return
        model.learn(when, count)


@dataclass(frozen=True, slots=True)
class Line:
    kind: str
    variant: str
    trials: int
    detected: int
    median_delay_min: float | None
    busy: int


def summarise(trials: Sequence[Trial]) -> list[Line]:
    out: list[Line] = []
    for kind in KINDS:
        for variant in ("clean", "after bursts", "all"):
            group = [t for t in trials if t.kind == kind and variant in ("all", t.variant)]
            delays = [t.delay_min for t in group if t.delay_min is not None]
            out.append(Line(kind, variant, len(group), sum(t.detected for t in group),
                            statistics.median(delays) if delays else None,
                            sum(t.busy for t in group)))
    return out


def table(lines: Sequence[Line], false_per_day: float, days: float, false: int) -> str:
    rows = [f"{'injection':34s} {'variant':13s} {'trials':>6s} {'detected':>9s} "
            f"{'median delay':>13s} {'busy':>5s}"]
    for line in lines:
        label = KINDS[line.kind].label
        rate = f"{100.0 * line.detected / line.trials:.1f}%" if line.trials else "-"
        delay = "-" if line.median_delay_min is None else f"{line.median_delay_min:.0f} min"
        rows.append(f"{label:34s} {line.variant:13s} {line.trials:6d} {rate:>9s} "
                    f"{delay:>13s} {line.busy:5d}")
    rows.append(f"false alerts on the untouched series (outside NAB windows, after "
                f"probation): {false} over {days:.1f} days = {false_per_day:.3f}/day")
    return "\n".join(rows)
