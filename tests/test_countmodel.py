"""Count model (volume-spike statistics): synthetic behaviour and the NAB dev targets."""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import random
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.detect.countmodel import (
    CountModel,
    CountModelParams,
    backtest,
    load_series_csv,
    sensitivity_threshold,
)
from monitor.detect.countmodel_stats import nb_surprise

START = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday
STEP = timedelta(minutes=5)
DAY = 288
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def poisson(rng: random.Random, lam: float) -> int:
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def rate(i: int, base: float) -> float:
    """Daily rhythm (peak mid-afternoon UTC) and quieter weekends."""
    hour = (i % DAY) / 12.0
    weekend = (i // DAY) % 7 >= 5
    return base * (1.0 + 0.6 * math.sin(2 * math.pi * (hour - 9.0) / 24.0)) * (
        0.7 if weekend else 1.0)


def series(days: int, base: float, seed: int) -> list[tuple[datetime, float]]:
    rng = random.Random(seed)
    return [(START + i * STEP, float(poisson(rng, rate(i, base)))) for i in range(days * DAY)]


def run(model: CountModel, rows: list[tuple[datetime, float]]) -> list[datetime]:
    fired = []
    for when, count in rows:
        if model.evaluate(when, count).fired:
            fired.append(when)
        model.learn(when, count)
    return fired


@pytest.mark.parametrize(("base", "seed"), [(40.0, 1), (5.0, 2), (0.5, 3)])
def test_seasonal_poisson_without_anomaly_stays_quiet(base: float, seed: int) -> None:
    rows = series(21, base, seed)
    assert len(backtest(rows, CountModelParams())) <= 1


def test_surge_fires_early_and_once_per_episode() -> None:
    rows = series(14, 20.0, 4)
    onset = 10 * DAY + 150  # day 10, 12:30
    for i in range(onset, onset + 24):  # two hours at 4x
        when, _ = rows[i]
        rows[i] = (when, float(poisson(random.Random(i), 4.0 * rate(i, 20.0))))
    fired = backtest(rows, CountModelParams())
    during = [t for t in fired if rows[onset][0] <= t <= rows[onset + 23][0]]
    assert len(during) == 1
    assert during[0] - rows[onset][0] <= timedelta(minutes=20)
    assert len(fired) <= 2  # the episode fires once; at most one unrelated alert


def test_low_volume_single_three_does_not_fire() -> None:
    rng = random.Random(5)
    rows = [(START + i * STEP, float(poisson(rng, 0.05))) for i in range(10 * DAY)]
    model = CountModel(CountModelParams())
    run(model, rows)
    verdict = model.evaluate(START + len(rows) * STEP, 3.0)
    assert verdict.warm and not verdict.fired
    assert verdict.statistic < verdict.threshold


def test_collection_gap_then_normal_data_does_not_fire() -> None:
    rows = series(16, 20.0, 6)
    model = CountModel(CountModelParams())
    run(model, rows[: 8 * DAY])
    for gap in (12, DAY // 2, 3 * DAY):  # 1 hour, 12 hours, 3 days missing
        rows_after = rows[8 * DAY + gap: 8 * DAY + gap + DAY]
        fresh = CountModel.from_state(model.params, model.to_state())
        assert run(fresh, rows_after) == []


def test_gap_longer_than_profile_warms_up_again_without_firing() -> None:
    rows = series(30, 20.0, 7)
    model = CountModel(CountModelParams())
    run(model, rows[: 5 * DAY])
    assert run(model, rows[15 * DAY: 18 * DAY]) == []


def test_state_round_trip_gives_identical_verdicts() -> None:
    rows = series(10, 8.0, 8)
    rows[9 * DAY + 20] = (rows[9 * DAY + 20][0], 200.0)
    params = CountModelParams()
    model = CountModel(params)
    run(model, rows[: 9 * DAY])
    clone = CountModel.from_state(params, json.loads(json.dumps(model.to_state())))
    for when, count in rows[9 * DAY:]:
        assert model.evaluate(when, count) == clone.evaluate(when, count)
        model.learn(when, count)
        clone.learn(when, count)
    assert model.to_state() == clone.to_state()


def test_state_for_other_params_is_refused() -> None:
    model = CountModel(CountModelParams())
    with pytest.raises(ValueError, match="bucket_seconds"):
        CountModel.from_state(CountModelParams(bucket_seconds=60), model.to_state())


def test_partial_bucket_fires_before_close_and_only_once() -> None:
    rows = series(9, 10.0, 9)
    model = CountModel(CountModelParams())
    run(model, rows)
    when = rows[-1][0] + STEP
    expected_full = model.evaluate(when, 0.0).expected
    first = model.evaluate(when, 20.0 * expected_full * 0.3, fraction=0.3)
    assert first.fired and first.active and first.observed < 7 * expected_full
    again = model.evaluate(when, 25.0 * expected_full * 0.6, fraction=0.6)
    closed = model.evaluate(when, 30.0 * expected_full, fraction=1.0)
    assert not again.fired and not closed.fired and closed.active


def test_episode_resolves_after_calm() -> None:
    rows = series(10, 10.0, 10)
    for i in range(9 * DAY, 9 * DAY + 6):
        rows[i] = (rows[i][0], 150.0)
    model = CountModel(CountModelParams())
    verdicts = []
    for when, count in rows:
        verdicts.append(model.evaluate(when, count))
        model.learn(when, count)
    tail = verdicts[9 * DAY:]
    assert sum(v.fired for v in tail) == 1
    assert sum(v.resolved for v in tail) == 1
    assert not tail[-1].active


def test_warm_up_from_hour_one() -> None:
    model = CountModel(CountModelParams())
    rows = series(1, 30.0, 11)
    early = [model.evaluate(t, c) for t, c in rows[:1]]
    assert not early[0].warm
    run(model, rows[:12])
    assert model.warm
    spike = model.evaluate(rows[12][0], 600.0)  # 20x after one hour of data
    assert spike.fired


def test_min_count_floor() -> None:
    rows = series(9, 0.3, 12)
    model = CountModel(CountModelParams(min_count=10))
    run(model, rows)
    assert not model.evaluate(rows[-1][0] + STEP, 8.0).fired


def test_aware_and_naive_timestamps_agree() -> None:
    rows = series(8, 10.0, 13)
    naive = [(t.replace(tzinfo=None), c) for t, c in rows]
    assert [t.replace(tzinfo=None) for t in backtest(rows, CountModelParams())] == backtest(
        naive, CountModelParams())


def test_sensitivity_knob() -> None:
    assert sensitivity_threshold("low") > sensitivity_threshold("medium") > sensitivity_threshold(
        "high")
    assert sensitivity_threshold(0.001) == pytest.approx(3.0)
    for bad in ("extreme", 0.0, 1.5):
        with pytest.raises(ValueError):
            CountModelParams(sensitivity=bad)


def test_negative_binomial_tail_matches_direct_sum() -> None:
    def direct(x: int, mu: float, alpha: float) -> float:
        r = 1.0 / alpha
        q = mu / (mu + r)
        cdf = sum(math.exp(math.lgamma(k + r) - math.lgamma(r) - math.lgamma(k + 1)
                           + r * math.log1p(-q) + k * math.log(q)) for k in range(x))
        return -math.log10(1.0 - cdf)

    for x, mu, alpha in [(3, 0.5, 0.2), (12, 2.0, 0.5), (60, 20.0, 0.1), (40, 25.0, 0.05)]:
        assert nb_surprise(x, mu, alpha) == pytest.approx(direct(x, mu, alpha), abs=0.01)


def test_load_series_csv(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("timestamp,value\n2015-02-26 21:42:53,104\n2015-02-26 21:47:53,0\n")
    assert load_series_csv(path) == [(datetime(2015, 2, 26, 21, 42, 53), 104.0),
                                     (datetime(2015, 2, 26, 21, 47, 53), 0.0)]
    path.write_text("time,count\n")
    with pytest.raises(ValueError, match="header"):
        load_series_csv(path)


SCORER = SHARED / "bench" / "nab_score.py"
needs_scorer = pytest.mark.skipif(
    not SCORER.exists() or importlib.util.find_spec("pandas") is None,
    reason="needs ../shared and pandas for the NAB scorer")


@functools.cache
def dev_score() -> dict[str, float]:
    """The shipped volume rule (as `brand-monitor backtest` runs it) on the NAB dev series."""
    from monitor.commands import backtest as cli_backtest

    data = SHARED / "data" / "nab-realtweets-dev"
    alerts = cli_backtest(Path(__file__).resolve().parents[1] / "config.yaml", [data], None)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "alerts.json").write_text(json.dumps(alerts))
        subprocess.run([sys.executable, str(SCORER), "--data", str(data),
                        "--windows", str(data / "windows.json"),
                        "--alerts", str(Path(tmp) / "alerts.json"),
                        "--json-out", str(Path(tmp) / "r.json")],
                       check=True, capture_output=True)
        total: dict[str, float] = json.loads((Path(tmp) / "r.json").read_text())[
            "standard"]["total"]
    return total


@pytest.mark.shared
@needs_scorer
def test_dev_series_false_alerts_and_score_floor() -> None:
    """Regression floor; measured: NAB 82.6, 0.057 false alerts/day, 15 of 16 windows
    (the same alerts with and without the absolute channel of issue 14)."""
    total = dev_score()
    assert total["false_alerts_per_day"] < 0.1
    assert total["normalised"] >= 80.0


# -- weekly rhythm ---------------------------------------------------------------------
def weekly_rows(days: int, base: float, weekend: float, seed: int) -> list[tuple[datetime, float]]:
    """A daily rhythm with weekends at ``weekend`` times the weekday level."""
    rng = random.Random(seed)
    rows = []
    for i in range(days * DAY):
        lam = rate(i, base) / (0.7 if (i // DAY) % 7 >= 5 else 1.0)
        if (i // DAY) % 7 >= 5:
            lam *= weekend
        rows.append((START + i * STEP, float(poisson(rng, lam))))
    return rows


def factor_on(model: CountModel, weekday: str) -> float:
    """The learned factor of ``weekday`` ("Mon".."Sun")."""
    week = model._base.week
    assert week is not None
    day = next(START + timedelta(days=d) for d in range(7)
               if (START + timedelta(days=d)).strftime("%a") == weekday)
    return week.factor(int(day.timestamp()) // 300)


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def test_weekly_rhythm_is_learned_and_survives_a_news_day() -> None:
    rows = weekly_rows(35, 20.0, 0.4, 11)
    tuesday = 29 * DAY  # START is a Monday: day 29 is a Tuesday; 3 hours at 6x
    for i in range(tuesday + 150, tuesday + 186):
        rows[i] = (rows[i][0], rows[i][1] * 6.0)
    model = CountModel(CountModelParams())
    run(model, rows)
    by_day = {day: factor_on(model, day) for day in WEEKDAYS}
    assert by_day["Sat"] < 0.75 and by_day["Sun"] < 0.75
    for day in ("Mon", "Wed", "Thu", "Fri"):
        assert 0.9 < by_day[day] < 1.35
    assert by_day["Tue"] < 1.35  # the median of 3-hour blocks ignores the news burst


def test_weekend_surge_to_weekday_level_fires_only_with_the_weekly_rhythm() -> None:
    rows = weekly_rows(35, 20.0, 0.4, 12)
    sunday = 34 * DAY  # the fifth Sunday; from 13:00, six hours at the weekday level
    for i in range(sunday + 156, sunday + 228):
        rows[i] = (rows[i][0], float(poisson(random.Random(i), rate(i, 20.0) / 0.7)))
    window = (rows[sunday + 156][0], rows[sunday + 227][0])
    with_week = backtest(rows, CountModelParams())
    without = backtest(rows, CountModelParams(weekly=False))
    assert [t for t in with_week if window[0] <= t <= window[1]]
    assert not [t for t in without if window[0] <= t <= window[1]]
    assert len([t for t in with_week if not window[0] <= t <= window[1]]) <= 1


def test_state_saved_before_the_weekly_rhythm_still_loads() -> None:
    rows = series(9, 8.0, 13)
    model = CountModel(CountModelParams())
    run(model, rows)
    state = json.loads(json.dumps(model.to_state()))
    del state["profile"]["week"]
    old = CountModel.from_state(model.params, state)
    assert [factor_on(old, day) for day in WEEKDAYS] == [1.0] * 7
    assert factor_on(model, "Sat") < 1.0
    assert old.evaluate(*rows[-1]).expected > 0


def test_point_probability_bounds_the_tail_from_above_and_tightly() -> None:
    from monitor.detect.countmodel_stats import nb_surprise_cap

    rng = random.Random(11)
    gaps = []
    for _ in range(20_000):
        mu = math.exp(rng.uniform(-5.0, 7.0))
        alpha = rng.choice([0.0, 5e-5, math.exp(rng.uniform(-7.0, 2.3))])
        x = rng.uniform(0.0, mu * rng.uniform(1.0, 6.0) + 30.0)
        whole = rng.random() < 0.8  # counts are whole; fractional ones are bounded too
        x = float(round(x)) if whole else x
        exact, cap = nb_surprise(x, mu, alpha), nb_surprise_cap(x, mu, alpha)
        assert exact <= cap + 1e-9, (x, mu, alpha)
        if exact > 2.0 and whole:
            gaps.append(cap - exact)
    gaps.sort()
    # tight where a detector decides: far above the mean the tail is its first point
    assert gaps[len(gaps) // 2] < 0.2
    assert gaps[int(len(gaps) * 0.9)] < 0.6


def _copy(model: CountModel) -> CountModel:
    return CountModel.from_state(model.params, json.loads(json.dumps(model.to_state())))


@pytest.mark.parametrize(("base", "sensitivity"), [(20.0, "medium"), (2.0, "high")])
def test_cheap_bound_says_yes_whenever_the_model_would_fire(base: float,
                                                             sensitivity: str) -> None:
    """could_fire is what the volume detector asks on every post: it must never turn
    down a count that evaluate fires on, and it must turn down most that it does not."""
    rng = random.Random(5)
    params = CountModelParams(sensitivity=sensitivity)
    model = CountModel(params)
    rows = series(10, base, seed=8)
    for k in range(3):  # earlier bursts make the calibrated tails heavier
        i = (3 + 2 * k) * DAY + 100
        rows[i] = (rows[i][0], rows[i][1] * 6 + 20)
    run(model, rows)
    fired = declined = asked = 0
    for i in range(300):
        when = rows[-1][0] + (i + 1) * STEP
        mu = rate(10 * DAY + i, base)
        for _ in range(4):
            count = float(rng.randint(0, int(mu * 5 + 25)))
            fraction = rng.choice([0.05, 0.3, 0.7, 1.0])
            probe = _copy(model)
            verdict = probe.evaluate(when, count, fraction=fraction)
            may = model.could_fire(when, count, fraction=fraction)
            if verdict.fired:
                fired += 1
                assert may, (when, count, fraction, verdict)
            else:
                asked += 1
                declined += not may
        model.learn(when, float(poisson(rng, mu)))
    assert fired >= 20  # the property was exercised
    assert declined >= 0.5 * asked  # and the bound is not trivially "yes"


def test_the_per_bucket_floor_never_changes_what_the_bound_says(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """could_fire first compares the count with a floor computed once per bucket (the
    least count whose calibrated tail, or absolute window, reaches the threshold); it
    is only a shortcut: with and without it the bound says the same on every case."""
    from monitor.detect import countmodel

    rng = random.Random(11)
    params = CountModelParams(sensitivity="high")
    rows = series(12, 6.0, seed=3)
    for k in range(4):
        i = (3 + 2 * k) * DAY + 50
        rows[i] = (rows[i][0], rows[i][1] * 5 + 15)
    model = CountModel(params)
    run(model, rows)
    cases = []
    for i in range(200):
        when = rows[-1][0] + (i + 1) * STEP
        for _ in range(6):
            cases.append((i, when, float(rng.randint(0, 60)),
                          rng.choice([0.05, 0.2, 0.5, 0.9, 1.0])))
    learned = [float(poisson(rng, rate(12 * DAY + i, 6.0))) for i in range(200)]

    def answers() -> list[bool]:
        m = _copy(model)
        out, step = [], 0
        for i, when, count, fraction in cases:
            while step < i:
                m.learn(rows[-1][0] + (step + 1) * STEP, learned[step])
                step += 1
            out.append(m.could_fire(when, count, fraction=fraction))
        return out

    gated = answers()
    monkeypatch.setattr(countmodel._Probe, "least", lambda self, fraction: -math.inf)
    assert answers() == gated
    assert 0 < sum(gated) < len(gated)  # both answers exercised


@pytest.mark.parametrize("tail", ["calibrator", "absolute"])
def test_reach_is_the_least_z_that_scores_the_level(tail: str) -> None:
    """``reach(level)``: every z below it scores less than ``level``, and z just
    above it scores at least ``level`` (a tight floor, not just a safe one)."""
    from monitor.detect.absolute import RobustTail
    from monitor.detect.countmodel_stats import TailCalibrator

    rng = random.Random(2)
    calib: TailCalibrator | RobustTail = (
        TailCalibrator(min_weight=100) if tail == "calibrator" else RobustTail(min_weight=100))
    for _ in range(3000):
        calib.observe(abs(rng.gauss(0.0, 0.5)) + (rng.random() < 0.03) * 2.0, 0.999)
    for level in (0.5, 1.0, 1.7, 2.0, 2.6, 4.9, 8.0):
        reach = calib.reach(level)
        below = [reach - d for d in (1e-6, 0.01, 0.3, 1.0) if reach - d > 0.0]
        assert all(calib.surprise(z) < level for z in below), level
        assert calib.surprise(reach + 1e-6) >= level - 1e-9, level


def test_scores_do_not_depend_on_when_they_were_asked_for() -> None:
    """Two models fed the same buckets, one scored at every step and one never,
    agree exactly: the calibration refits on a schedule of samples, not on demand."""
    rows = series(9, 8.0, seed=21)
    asked, quiet = CountModel(CountModelParams()), CountModel(CountModelParams())
    for i, (when, count) in enumerate(rows):
        if i % 7 == 0:  # (evaluate could fire: an episode is state; the bound is not)
            asked.could_fire(when, count * 4 + 9, fraction=0.2)
        asked.learn(when, count)
        quiet.learn(when, count)
    assert asked.to_state() == quiet.to_state()
    when = rows[-1][0] + STEP
    assert asked.evaluate(when, 40.0).statistic == quiet.evaluate(when, 40.0).statistic


def test_calibration_speaks_only_after_a_day_of_buckets() -> None:
    """Until ``min_weight`` buckets were seen the calibrated tail knows nothing (inf: the
    count model alone decides), although it refits from the first sample on."""
    from monitor.detect.countmodel_stats import TailCalibrator

    calib = TailCalibrator(min_weight=288)
    for i in range(287):
        calib.observe(0.1 * (i % 5), 1.0)
    assert calib.surprise(0.3) == math.inf
    calib.observe(0.1, 1.0)
    assert calib.surprise(0.3) < math.inf


def test_a_storm_on_the_first_afternoon_fires() -> None:
    """Three hours of history (calibration not warm yet) and a bucket of 140 mentions
    where 8 are usual: the count model fires on its own."""
    model = CountModel(CountModelParams())
    rows = [(START + i * STEP, 8.0) for i in range(36)]
    assert run(model, rows) == []
    assert model.evaluate(START + 36 * STEP, 140.0, fraction=0.5).fired


def test_window_sums_agree_with_a_sum_over_the_learned_buckets() -> None:
    """The closed part of a window, asked for the next bucket, the one after it (a late
    bucket still open) or one after a gap, is the sum over the learned buckets inside
    it."""
    from monitor.detect.seasonal import WindowSums

    scales = (1, 4, 16, 64)
    rng = random.Random(5)
    sums = WindowSums(scales)
    learned: dict[int, tuple[float, float]] = {}
    bucket = 1000
    for _ in range(3000):
        bucket += 1 if rng.random() < 0.9 else rng.randint(2, 90)  # gaps, some long
        for ask in (bucket, bucket + 1, bucket + rng.randint(2, 80)):
            got = sums.closed(ask)
            for scale, (obs, exp, seen) in zip(scales, got, strict=True):
                inside = [v for b, v in learned.items() if ask - scale < b < ask]
                assert seen == len(inside)
                assert obs == pytest.approx(sum(o for o, _ in inside), abs=1e-9)
                assert exp == pytest.approx(sum(e for _, e in inside), rel=1e-9, abs=1e-9)
        observed, expected = float(rng.randint(0, 40)), rng.uniform(0.1, 30.0)
        sums.add(bucket, observed, expected)
        learned[bucket] = (observed, expected)
