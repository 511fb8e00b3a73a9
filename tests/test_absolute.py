"""The absolute-evidence channel (monitor/detect/absolute.py): its statistics, its union
bound, its immunity to earlier crises, state compatibility and the volume alert."""

from __future__ import annotations

import json
import math
import random
from datetime import timedelta

import pytest

from monitor.config.schema import BrandConfig, Rule
from monitor.detect.absolute import (
    DISPERSION_GAIN,
    DISPERSION_QUANTILE,
    SCALES,
    RobustDispersion,
    RobustTail,
    union_bound_threshold,
)
from monitor.detect.base import EnrichedPost
from monitor.detect.countmodel import CountModel, CountModelParams
from monitor.detect.countmodel_stats import nb_tail_probability, nb_upper_share
from monitor.detect.volume import VolumeParams, VolumeSpikeDetector
from tests.test_countmodel import DAY, START, STEP, poisson, rate, run, series
from tests.timeline import post


def nb_draw(rng: random.Random, mu: float, alpha: float) -> int:
    """NB(mu, alpha) as a Poisson-gamma mixture."""
    return poisson(rng, rng.gammavariate(1.0 / alpha, alpha * mu))


def test_union_bound_threshold_is_one_false_alarm_per_horizon() -> None:
    # 288 buckets a day, 3 scales, 90 days: 77,760 tests; one false alarm among them
    assert union_bound_threshold(288) == pytest.approx(math.log10(288 * 90 * len(SCALES)))
    assert union_bound_threshold(288) == pytest.approx(4.89, abs=0.01)
    assert union_bound_threshold(288, horizon_days=30) == pytest.approx(4.41, abs=0.01)


@pytest.mark.parametrize(("mu", "alpha"), [(0.3, 2.0), (3.0, 0.5), (40.0, 0.1), (8.0, 1e-5)])
def test_upper_share_has_mean_q_under_the_model(mu: float, alpha: float) -> None:
    """The randomised-PIT share is exactly q on average (small, discrete counts too)."""
    q = DISPERSION_QUANTILE
    rng = random.Random(7)
    draws = [nb_draw(rng, mu, alpha) if alpha > 1e-4 else poisson(rng, mu)
             for _ in range(20000)]
    mean = sum(nb_upper_share(x, mu, alpha, q) for x in draws) / len(draws)
    assert mean == pytest.approx(q, abs=0.01)


def test_upper_share_screens_agree_with_the_exact_tail() -> None:
    rng = random.Random(3)
    q = DISPERSION_QUANTILE
    for _ in range(3000):
        mu, alpha = math.exp(rng.uniform(-3, 6)), math.exp(rng.uniform(-8, 2))
        x = rng.randint(0, int(3 * mu + 10))
        hi, lo = nb_tail_probability(x, mu, alpha), nb_tail_probability(x + 1, mu, alpha)
        exact = 1.0 if hi <= q else 0.0 if lo >= q else (q - lo) / (hi - lo)
        assert nb_upper_share(x, mu, alpha, q) == pytest.approx(exact, abs=1e-6)


def test_robust_dispersion_finds_alpha_and_extremes_move_it_a_bounded_step() -> None:
    rng = random.Random(11)
    disp = RobustDispersion()
    for _ in range(6000):
        disp.observe(nb_draw(rng, 10.0, 0.4), 10.0, 0.0)
    assert 0.25 < disp.alpha < 0.6
    before = disp.log_alpha
    for _ in range(30):  # thirty buckets of a 100x crisis
        disp.observe(1000.0, 10.0, 0.0)
    assert disp.log_alpha - before <= 30 * DISPERSION_GAIN * (1 - DISPERSION_QUANTILE) + 1e-9


def test_robust_tail_is_a_rank_statistic() -> None:
    """Extremes count, their size does not: 100x and 5x excesses give the same tail."""
    rng = random.Random(5)
    body = [rng.expovariate(4.0) for _ in range(3000)]
    fits = []
    for extreme in (2.5, 9.0):
        tail = RobustTail(min_weight=288)
        for z in body + [extreme] * 20:
            tail.observe(z, 1.0)
        fits.append(tail.surprise(3.0))
    assert fits[0] == pytest.approx(fits[1])
    assert RobustTail(min_weight=288).surprise(5.0) == 0.0  # cold: silent


def crisis_series(days: int, base: float, seed: int, earlier: bool
                  ) -> tuple[list[tuple[float, float]], int]:
    """Over-dispersed traffic; optionally five 50-100x bursts on the three days before
    a 20x burst of 30 minutes on the last day.  Returns (counts, burst start)."""
    rng = random.Random(seed)
    counts = [float(nb_draw(rng, rate(i, base), 0.2)) for i in range(days * DAY)]
    target = (days - 1) * DAY + 150
    if earlier:
        for k in range(5):
            start = target - 3 * DAY + k * 13 * 12
            for i in range(start, start + 6):
                counts[i] += poisson(rng, rng.uniform(50, 100) * rate(i, base))
    for i in range(target, target + 6):
        counts[i] += poisson(rng, 19.0 * rate(i, base))
    return [(i, c) for i, c in enumerate(counts)], target


@pytest.mark.parametrize("base", [1.0, 8.0])
def test_earlier_crises_do_not_blind_the_absolute_channel(base: float) -> None:
    params = CountModelParams(min_count=5)
    delays = []
    for earlier in (False, True):
        rows, target = crisis_series(16, base, 21, earlier)
        model = CountModel(params)
        fired = run(model, [(START + i * STEP, c) for i, c in rows[:target + 6]])
        after = [(t - START) // STEP - target for t in fired
                 if (t - START) // STEP >= target]
        assert after, f"no alert on the 20x burst (earlier bursts: {earlier})"
        delays.append(after[0])
    alone, with_earlier = delays
    assert with_earlier <= max(alone, 1), "earlier crises delayed the alert"


def test_live_evaluation_compares_the_running_count_with_the_whole_bucket() -> None:
    """Looking on every arrival adds no tests: the evidence of a running count does not
    depend on how much of the bucket has elapsed."""
    model = CountModel(CountModelParams())
    run(model, series(9, 3.0, 4))
    when = START + 9 * DAY * STEP
    model_b = CountModel.from_state(model.params, json.loads(json.dumps(model.to_state())))
    early = model.evaluate(when, 40.0, fraction=0.1)
    late = model_b.evaluate(when, 40.0, fraction=1.0)
    assert early.absolute is not None and late.absolute is not None
    assert early.absolute.surprise == pytest.approx(late.absolute.surprise)


def test_state_without_the_absolute_channel_still_loads() -> None:
    """States saved before the channel load; the burst channel scores as before and the
    absolute channel warms up again."""
    rows = series(9, 6.0, 14)
    model = CountModel(CountModelParams())
    run(model, rows)
    state = json.loads(json.dumps(model.to_state()))
    del state["absolute"]
    old = CountModel.from_state(model.params, state)
    when = rows[-1][0] + STEP
    assert old.evaluate(when, 60.0).statistic == pytest.approx(
        model.evaluate(when, 60.0).statistic)
    run(old, [(when + i * STEP, 6.0) for i in range(20)])  # learns on without errors
    restored = CountModel.from_state(model.params, json.loads(json.dumps(model.to_state())))
    assert restored.to_state() == model.to_state()


def _quiet_detector(params: VolumeParams, days: int, base: float, seed: int
                    ) -> tuple[Rule, BrandConfig, VolumeSpikeDetector, int]:
    """A volume detector fed ``days`` of quiet traffic (``base`` mentions per bucket,
    daily rhythm); with the number of posts it saw."""
    rule = Rule(name="v", signal="volume_spike", channels=("x",), params=params)
    brand = BrandConfig("Acme", ("@acme",))
    detector = VolumeSpikeDetector(rule, brand)
    rng = random.Random(seed)
    n = 0
    for i in range(days * DAY):
        at = START + i * STEP + timedelta(seconds=30)
        for _ in range(poisson(rng, rate(i, base))):
            n += 1
            detector.observe(EnrichedPost(post(n, at), "Acme", 0.0, "neutral"), at)
    return rule, brand, detector, n


def test_volume_detector_explains_an_absolute_alert_and_loads_old_states() -> None:
    # nine quiet days, ~1 mention per bucket
    rule, brand, detector, n = _quiet_detector(VolumeParams(min_count=5, min_authors=2), 9,
                                               1.0, 9)
    state = json.loads(json.dumps(detector.to_state()))
    del state["model"]["absolute"]  # as saved before the channel existed
    old = VolumeSpikeDetector(rule, brand)
    old.load_state(state)
    assert not old.model._abs.warm
    at = START + 9 * DAY * STEP
    signals = []
    for k in range(60):  # a crisis: 60 mentions from 60 authors in two minutes
        n += 1
        when = at + timedelta(seconds=2 * k)
        signals += detector.observe(EnrichedPost(post(n, when, author=f"a{k}"), "Acme",
                                                 -0.5, "negative"), when)
    firing = [s for s in signals if s.state == "firing"]
    assert len(firing) == 1
    details = firing[0].details
    assert details["channel"] in ("burst", "absolute")
    if details["channel"] == "absolute":
        assert details["absolute"]["surprise"] >= details["absolute"]["threshold"]
        assert "absolute evidence" in firing[0].summary


def test_a_burst_the_author_floor_holds_back_opens_no_silent_episode() -> None:
    """A bucket the detector's floors kept from firing (one account posting a lot)
    must not become an episode of the model when it closes: the detector would stay
    blind to a real crisis until that episode calmed down."""
    # eight quiet days
    _, _, detector, n = _quiet_detector(VolumeParams(min_count=5, min_authors=5), 8, 2.0, 4)
    day = START + 8 * DAY * STEP
    signals = []
    for k in range(80):  # one account, 80 posts in a bucket: held back by min_authors
        n += 1
        when = day + timedelta(seconds=3 * k)
        signals += detector.observe(EnrichedPost(post(n, when, author="bot"), "Acme", 0.0,
                                                 "neutral"), when)
    signals += detector.tick(day + 2 * STEP + timedelta(minutes=3))  # the bucket closes
    assert not [s for s in signals if s.state == "firing"]
    assert not detector.model.active
    at = day + 3 * STEP  # then a real crisis: 60 people in two minutes
    for k in range(60):
        n += 1
        when = at + timedelta(seconds=2 * k)
        signals += detector.observe(EnrichedPost(post(n, when, author=f"a{k}"), "Acme",
                                                 -0.5, "negative"), when)
    assert len([s for s in signals if s.state == "firing"]) == 1
