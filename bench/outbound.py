"""Outbound screening benchmark on a labelled set of brand posts.

Runs every post of ``tests/fixtures/outbound/labelled.jsonl`` (or ``--set``) through
the real :class:`~monitor.detect.outbound.OutboundDetector` of its brand, in time
order, with the shipped rule (``rules/outbound.yaml``) plus each brand's profile
(``brands.jsonl``: competitors, hours, clients, ledger mode), the runtime watchlist
an admin would have added (``watchlist.jsonl``) and the approved posts registered by
a publishing workflow (``approved.jsonl``).

The sets: ``labelled`` (86 posts, written before the checks), ``heldout`` (24 posts
written after the first version of the checks; it scored recall 0.417 then and the
checks were generalised from its misses, so it is no longer held out) and ``heldout2``
(20 posts written after that; recall 0.60 / false-high 0.0 on first run, then the
possessive bug and two general gaps it showed were fixed). It prints:

- recall: off-message posts raised to security (severity warning or critical);
- critical recall: off-message posts raised as critical;
- false-high rate: ordinary posts flagged critical (the target is at most 5%);
- false-warning rate: ordinary posts raised at warning or above;
- per category results, and each miss or false flag with its reasons.

``--functional`` runs the functional suite instead (tests/functional_suite.py: dev and
held-out slices, generated from tests/fixtures/outbound/functional/src) through the
real detector of one brand, feeding each hashtag-hijack case's inbound posts to the
engine's trending context first, and prints one summary line per slice, the figures
per family against the targets of issue 13, per-functionality rates and the screen's
throughput (``--throughput``). Misses are listed for the dev slice only (``--misses``):
the held-out slice is reported as rates, never as cases.

    .venv/bin/python bench/outbound.py [--set FILE] [--json] [--quiet]
    .venv/bin/python bench/outbound.py --functional [--misses] [--throughput]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.clock import parse_time  # noqa: E402
from monitor.config.schema import BrandConfig, Rule  # noqa: E402
from monitor.config.strict import Context, build  # noqa: E402
from monitor.detect.base import DetectorContext  # noqa: E402
from monitor.detect.outbound import (  # noqa: E402
    ApprovedPost,
    OutboundDetector,
    OutboundParams,
    OutboundRuntime,
    WatchEntry,
)
from monitor.enrich.sentiment import SentimentAnalyzer, load_packs, pack_paths  # noqa: E402
from monitor.model import Author, Post  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "outbound"
RULE_FILE = ROOT / "rules" / "outbound.yaml"
SETS = ("labelled", "heldout", "heldout2")
TARGET_RECALL = 0.9
TARGET_FALSE_HIGH = 0.05


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


@dataclass
class Outcome:
    id: str
    brand: str
    label: str
    category: str
    severity: str | None
    score: float
    reasons: list[str]
    text: str


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    def _of(self, label: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.label == label]

    @property
    def off(self) -> list[Outcome]:
        return self._of("off")

    @property
    def ok(self) -> list[Outcome]:
        return self._of("ok")

    @staticmethod
    def _rate(items: list[Outcome], severities: tuple[str, ...]) -> float:
        return sum(o.severity in severities for o in items) / len(items) if items else 0.0

    @property
    def recall(self) -> float:
        return self._rate(self.off, ("warning", "critical"))

    @property
    def critical_recall(self) -> float:
        return self._rate(self.off, ("critical",))

    @property
    def false_high(self) -> float:
        return self._rate(self.ok, ("critical",))

    @property
    def false_warning(self) -> float:
        return self._rate(self.ok, ("warning", "critical"))

    def by_category(self) -> dict[tuple[str, str], list[Outcome]]:
        groups: dict[tuple[str, str], list[Outcome]] = defaultdict(list)
        for o in self.outcomes:
            groups[(o.label, o.category)].append(o)
        return dict(sorted(groups.items()))

    def summary(self) -> dict[str, Any]:
        return {"posts": len(self.outcomes), "off_message": len(self.off),
                "ordinary": len(self.ok), "recall": round(self.recall, 3),
                "critical_recall": round(self.critical_recall, 3),
                "false_high_rate": round(self.false_high, 3),
                "false_warning_rate": round(self.false_warning, 3)}


def rule_params() -> dict[str, Any]:
    data = yaml.safe_load(RULE_FILE.read_text(encoding="utf-8"))
    rule = next(r for r in data["rules"] if r["signal"] == "outbound")
    return dict(rule.get("params") or {})


def build_runtime(fixtures: Path, now: datetime) -> OutboundRuntime:
    runtime = OutboundRuntime()
    if (fixtures / "watchlist.jsonl").exists():
        for n, row in enumerate(read_jsonl(fixtures / "watchlist.jsonl")):
            entry = WatchEntry.from_json(row, now)
            runtime.add_watch(WatchEntry(f"w{n}", entry.term, now, entry.expires_at,
                                         entry.brand, entry.note, entry.weight))
    if (fixtures / "approved.jsonl").exists():
        validity = OutboundParams().ledger_validity
        for row in read_jsonl(fixtures / "approved.jsonl"):
            runtime.approve(ApprovedPost.from_json(row, now, validity, source="bench"))
    return runtime


def detectors(fixtures: Path, runtime: OutboundRuntime) -> dict[str, OutboundDetector]:
    base = rule_params()
    found: dict[str, OutboundDetector] = {}
    for profile in read_jsonl(fixtures / "brands.jsonl"):
        params = build(OutboundParams, {**base, **profile.get("params", {})},
                       Context(f"brands.jsonl:{profile['name']}"))
        brand = BrandConfig(name=profile["name"], handles=tuple(profile["handles"]),
                            allowed_domains=tuple(profile["allowed_domains"]))
        rule = Rule(name="outbound-off-message", signal="outbound", channels=("security",),
                    severity="critical", params=params)
        found[brand.name] = OutboundDetector(rule, brand, DetectorContext(outbound=runtime))
    return found


def run(posts_file: Path | None = None, fixtures: Path = FIXTURES) -> Report:
    posts = read_jsonl(posts_file or fixtures / "labelled.jsonl")
    posts.sort(key=lambda p: p["created_at"])
    start = min(parse_time(p["created_at"]) for p in posts)
    runtime = build_runtime(fixtures, start.replace(hour=0, minute=0))
    screens = detectors(fixtures, runtime)
    terms = [t for d in screens.values() for t in (d.brand.name, *d.brand.handles)]
    analyzer = SentimentAnalyzer(load_packs(pack_paths(ROOT / "rules" / "lexicons",
                                                       ("customer-service",))), terms)
    report = Report()
    for row in posts:
        detector = screens[row["brand"]]
        handle = detector.brand.handles[0]
        post = Post(id=row["id"], source="bench", kind="outbound",
                    author=Author(id=handle, handle=handle), text=row["text"],
                    created_at=parse_time(row["created_at"]), brand=row["brand"],
                    client=row.get("client"))
        result = detector.evaluate(post, analyzer.score(post.text).compound)
        report.outcomes.append(Outcome(
            row["id"], row["brand"], row["label"], row["category"],
            result.severity if result.flagged else None, round(result.score, 2),
            result.reasons, row["text"]))
    return report


def print_report(report: Report, title: str, verbose: bool) -> None:
    s = report.summary()
    print(f"== {title}: {s['posts']} posts ({s['off_message']} off-message, "
          f"{s['ordinary']} ordinary)")
    print(f"recall (warning or critical) {s['recall']:.3f}  (target >= {TARGET_RECALL})")
    print(f"critical recall              {s['critical_recall']:.3f}")
    print(f"false-high rate (critical)   {s['false_high_rate']:.3f}  "
          f"(target <= {TARGET_FALSE_HIGH})")
    print(f"false-warning rate           {s['false_warning_rate']:.3f}")
    print(f"\n{'label':5} {'category':18} {'n':>3} {'crit':>5} {'warn':>5} {'info':>5} "
          f"{'none':>5}")
    for (label, category), items in report.by_category().items():
        counts = [sum(o.severity == sev for o in items)
                  for sev in ("critical", "warning", "info", None)]
        print(f"{label:5} {category:18} {len(items):3} " + " ".join(f"{c:5}" for c in counts))
    if not verbose:
        return
    misses = [o for o in report.off if o.severity not in ("warning", "critical")]
    false = [o for o in report.ok if o.severity in ("warning", "critical")]
    for heading, items in (("missed off-message posts", misses),
                           ("ordinary posts raised (warning/critical)", false)):
        print(f"\n{heading}: {len(items)}")
        for o in items:
            print(f"  {o.id} [{o.severity} {o.score}] {o.text[:90]}")
            for reason in o.reasons:
                print(f"      - {reason}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", type=Path, action="append",
                        help="labelled JSONL (default: the labelled and held-out sets)")
    parser.add_argument("--json", action="store_true", help="print the summaries as JSON")
    parser.add_argument("--quiet", action="store_true", help="no per-post details")
    parser.add_argument("--functional", action="store_true",
                        help="run the functional suite (dev and held-out slices)")
    parser.add_argument("--misses", action="store_true",
                        help="with --functional: list the dev cases not as expected")
    parser.add_argument("--throughput", action="store_true",
                        help="with --functional: measure the screen's posts per second")
    parser.add_argument("--split", choices=("dev", "heldout"), action="append",
                        help="with --functional: only these slices (default: both)")
    args = parser.parse_args(argv)
    if args.functional:
        sys.path.insert(0, str(ROOT / "bench"))
        import outbound_functional

        return outbound_functional.main(rule_params(), misses=args.misses,
                                        speed=args.throughput, as_json=args.json,
                                        splits=tuple(args.split or ()))
    sets = args.set or [FIXTURES / f"{name}.jsonl" for name in SETS
                        if (FIXTURES / f"{name}.jsonl").exists()]
    results = {path.stem: run(path) for path in sets}
    if args.json:
        print(json.dumps({name: r.summary() for name, r in results.items()}, indent=1))
        return 0
    for name, report in results.items():
        print_report(report, name, not args.quiet)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
