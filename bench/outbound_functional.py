"""The outbound screen's functional suite: per-functionality rates, targets and throughput.

Run through ``bench/outbound.py --functional``. Every case of a slice
(tests/fixtures/outbound/functional/{dev,heldout}.jsonl, see tests/functional_suite.py)
goes through the real :class:`~monitor.detect.outbound.OutboundDetector` of one brand
with the shipped rule, the VADER compound of the ``screen`` command and, for the
hashtag-hijack cases, a fresh runtime whose trending context first saw the case's
inbound posts (as the engine feeds it).

Targets (issue 13):

- hate family: >= 95% warning or above, >= 85% critical, no functionality under 80%;
- neutral and positive statements about groups: <= 3% above info;
- tragedy + promotion (newsjack family): >= 90% critical;
- the same tragedies with a plain condolence: <= 10% above warning (critical);
- ordinary brand posts: <= 2% warning or above;
- throughput of the screen alone: >= 5,000 posts/s.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.config.schema import BrandConfig, Rule
from monitor.config.strict import Context, build
from monitor.detect.base import DetectorContext
from monitor.detect.outbound import OutboundDetector, OutboundParams, OutboundRuntime
from monitor.enrich.sentiment import SentimentAnalyzer, load_packs, pack_paths
from monitor.model import Author, Post

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONAL = ROOT / "tests" / "fixtures" / "outbound" / "functional"
SPLITS = ("dev", "heldout")
BRAND = BrandConfig(name="Harbor Bank", handles=("@HarborBank", "@HarborBankHelp"),
                    allowed_domains=("harborbank.example",), keywords=("Skylark Air",))
AT = datetime(2025, 3, 8, 15, 0, tzinfo=UTC)
TARGET_THROUGHPUT = 5000.0
SEVERITY_RANK = {None: 0, "info": 1, "warning": 2, "critical": 3}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


@dataclass
class Result:
    case: dict[str, Any]
    severity: str | None
    reasons: list[str]

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self.severity]

    @property
    def passed(self) -> bool:
        expect = self.case["expect"]
        if expect == "critical":
            return self.rank >= 3
        if expect == "warning":
            return self.rank >= 2
        if expect == "quiet":
            return self.rank <= 1
        return self.rank <= 2  # not_critical


@dataclass
class Rates:
    results: list[Result] = field(default_factory=list)

    def share(self, test: Callable[[Result], bool]) -> float:
        return sum(map(test, self.results)) / len(self.results) if self.results else 0.0

    @property
    def n(self) -> int:
        return len(self.results)

    @property
    def critical(self) -> float:
        return self.share(lambda r: r.rank >= 3)

    @property
    def warning_up(self) -> float:
        return self.share(lambda r: r.rank >= 2)

    @property
    def passed(self) -> float:
        return self.share(lambda r: r.passed)


@dataclass
class Suite:
    split: str
    results: list[Result] = field(default_factory=list)

    def by(self, key: str) -> dict[str, Rates]:
        groups: dict[str, Rates] = defaultdict(Rates)
        for r in self.results:
            groups[r.case[key]].results.append(r)
        return dict(sorted(groups.items()))

    def select(self, test: Callable[[dict[str, Any]], bool]) -> Rates:
        return Rates([r for r in self.results if test(r.case)])

    def targets(self) -> list[tuple[str, float, str, bool]]:
        """(name, value, target, met) for each target of the issue."""
        hate = self.select(lambda c: c["family"] == "hate")
        worst = min((rates.warning_up for name, rates in self.by("functionality").items()
                     if rates.results[0].case["family"] == "hate"), default=0.0)
        benign = self.select(lambda c: c["family"] == "group_benign"
                             and c["expect"] == "quiet")
        counter = self.select(lambda c: c["functionality"] == "counter_speech")
        promo = self.select(lambda c: c["family"] == "newsjack")
        condolence = self.select(lambda c: c["family"] == "condolence")
        ordinary = self.select(lambda c: c["functionality"].startswith("ordinary_"))
        quiet = self.select(lambda c: c["family"] == "ordinary")
        return [
            ("hate warning+", hate.warning_up, ">= 0.95", hate.warning_up >= 0.95),
            ("hate critical", hate.critical, ">= 0.85", hate.critical >= 0.85),
            ("hate worst functionality warning+", worst, ">= 0.80", worst >= 0.80),
            ("group neutral/positive above info", benign.warning_up, "<= 0.03",
             benign.warning_up <= 0.03),
            ("counter-speech critical", counter.critical, "0 (warning ok)",
             counter.critical <= 0.1),
            ("tragedy + promotion critical", promo.critical, ">= 0.90", promo.critical >= 0.9),
            ("tragedy condolence critical", condolence.critical, "<= 0.10",
             condolence.critical <= 0.1),
            (f"ordinary posts warning+ (n={ordinary.n})", ordinary.warning_up, "<= 0.02",
             ordinary.warning_up <= 0.02),
            (f"all ordinary-family warning+ (n={quiet.n})", quiet.warning_up, "<= 0.02",
             quiet.warning_up <= 0.02),
        ]

    def summary(self) -> dict[str, Any]:
        return {"split": self.split, "cases": len(self.results),
                "functionalities": len(self.by("functionality")),
                **{name: round(value, 3) for name, value, _, _ in self.targets()}}


class Runner:
    """The shipped rule's detector for one brand, and the ``screen`` command's sentiment."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = build(OutboundParams, params, Context("rules/outbound.yaml"))
        self.rule = Rule(name="outbound-off-message", signal="outbound",
                         channels=("security",), severity="critical", params=self.params)
        self.analyzer = SentimentAnalyzer(
            load_packs(pack_paths(ROOT / "rules" / "lexicons", ("customer-service",))),
            [BRAND.name, *BRAND.handles])
        self.detector = self.fresh(OutboundRuntime())

    def fresh(self, runtime: OutboundRuntime) -> OutboundDetector:
        return OutboundDetector(self.rule, BRAND, DetectorContext(outbound=runtime))

    def run(self, case: dict[str, Any], number: int) -> Result:
        detector = self.detector
        inbound = case.get("inbound")
        if inbound:
            runtime = OutboundRuntime()
            feed_inbound(runtime, inbound, self.analyzer)
            detector = self.fresh(runtime)
        post = Post(id=case["id"], source="bench", kind="outbound",
                    author=Author(id="HarborBank", handle="HarborBank"), text=case["text"],
                    created_at=AT + timedelta(seconds=number), brand=BRAND.name)
        result = detector.evaluate(post, self.analyzer.score(post.text).compound)
        return Result(case, result.severity if result.flagged else None, result.reasons)


def feed_inbound(runtime: OutboundRuntime, inbound: list[dict[str, Any]],
                 analyzer: SentimentAnalyzer) -> None:
    """The case's inbound posts, spread over the two hours before the brand posts."""
    step = timedelta(hours=2) / max(1, len(inbound))
    for index, item in enumerate(inbound):
        at = AT - timedelta(hours=2) + step * index
        post = Post(id=f"in-{index}", source="bench", kind="mention",
                    author=Author(id=f"u{index}", handle=f"u{index}"), text=item["text"],
                    created_at=at, brand=BRAND.name if item["brand"] else None)
        runtime.trending.observe(post, analyzer.score(post.text).compound,
                                 (BRAND.name,) if item["brand"] else ())


def run_suite(split: str, params: dict[str, Any]) -> Suite:
    runner = Runner(params)
    suite = Suite(split)
    for number, case in enumerate(read_jsonl(FUNCTIONAL / f"{split}.jsonl")):
        suite.results.append(runner.run(case, number))
    return suite


def throughput(params: dict[str, Any], passes: int = 9,
               only: Callable[[dict[str, Any]], bool] | None = None) -> float:
    """Posts per second of the screen alone (text checks, as `screen` runs without a brand),
    per second of CPU time of this process: the best of ``passes`` passes over every case
    text. CPU time, not wall time, so that other work on a shared machine does not count
    as the screen's (on an idle core the two agree)."""
    from monitor.detect.outbound import OutboundScreen

    runner = Runner(params)
    screen = OutboundScreen(runner.params, BRAND.allowed_domains, (BRAND.name, *BRAND.handles))
    texts = [c["text"] for split in SPLITS for c in read_jsonl(FUNCTIONAL / f"{split}.jsonl")
             if only is None or only(c)]
    for text in texts[:50]:
        screen.screen(text)  # warm the caches (packs, phrase sets)
    best = float("inf")
    for _ in range(passes):
        started = time.process_time()
        for text in texts:
            screen.screen(text)
        best = min(best, time.process_time() - started)
    return len(texts) / best


def print_suite(suite: Suite, misses: bool) -> None:
    s = suite.summary()
    failed = [name for name, _, _, met in suite.targets() if not met]
    print(f"== functional {suite.split}: {s['cases']} cases, {s['functionalities']} "
          f"functionalities; hate warning+ {s['hate warning+']:.3f} critical "
          f"{s['hate critical']:.3f}; targets missed: {', '.join(failed) or 'none'}")
    for name, value, target, met in suite.targets():
        print(f"  {name:44} {value:6.3f}  target {target:14} {'ok' if met else 'MISSED'}")
    print(f"\n  {'functionality':30} {'family':12} {'expect':12} {'n':>4} {'crit':>6} "
          f"{'warn+':>6} {'pass':>6}")
    for name, rates in suite.by("functionality").items():
        case = rates.results[0].case
        print(f"  {name:30} {case['family']:12} {case['expect']:12} {rates.n:4} "
              f"{rates.critical:6.2f} {rates.warning_up:6.2f} {rates.passed:6.2f}")
    if misses and suite.split == "dev":
        failed_cases = [r for r in suite.results if not r.passed]
        print(f"\n  dev cases not as expected: {len(failed_cases)}")
        for r in failed_cases:
            print(f"    {r.case['functionality']} [{r.severity}] expected "
                  f"{r.case['expect']}: {r.case['text'][:110]}")
            for reason in r.reasons:
                print(f"        - {reason}")


def main(params: dict[str, Any], *, misses: bool, speed: bool, as_json: bool,
         splits: tuple[str, ...] = ()) -> int:
    suites = [run_suite(split, params) for split in splits or SPLITS]
    rate = throughput(params) if speed else None
    ordinary_rate = throughput(params, only=lambda c: c["family"] == "ordinary") if speed \
        else None
    if as_json:
        out: dict[str, Any] = {s.split: s.summary() for s in suites}
        if rate is not None and ordinary_rate is not None:
            out["throughput_posts_per_s"] = round(rate)
            out["throughput_ordinary_posts_per_s"] = round(ordinary_rate)
        print(json.dumps(out, indent=1))
        return 0
    for suite in suites:
        print_suite(suite, misses)
        print()
    if rate is not None and ordinary_rate is not None:
        print(f"screen throughput (per CPU second) {rate:,.0f} posts/s over the whole suite, "
              f"{ordinary_rate:,.0f} posts/s over its ordinary posts "
              f"(target >= {TARGET_THROUGHPUT:,.0f}; ratios {rate / TARGET_THROUGHPUT:.2f}, "
              f"{ordinary_rate / TARGET_THROUGHPUT:.2f})")
    return 0
