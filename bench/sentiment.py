"""Sentiment benchmark on human-labelled airline tweets: accuracy and speed.

Prints, for the same texts:

* P/R/F1 per class, macro-F1 and accuracy of plain vaderSentiment
  (``SentimentIntensityAnalyzer``, compound cut at +-0.05) and of
  :class:`monitor.enrich.sentiment.SentimentAnalyzer` with the default lexicon packs
  and the brand terms a user would configure for these brands;
* texts/s of ``SentimentIntensityAnalyzer.polarity_scores`` and of
  :class:`monitor.enrich.vader_fast.FastVader` measured in the same run (interleaved
  rounds, best round of each), and their ratio. The two are checked to agree on
  every text first.

    /work/venv/bin/python bench/sentiment.py [--data PATH] [--packs customer-service]

The data is a CSV with ``text`` and ``airline_sentiment`` (negative|neutral|positive).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # noqa: E402

from monitor.enrich.sentiment import SentimentAnalyzer, load_packs, pack_paths  # noqa: E402
from monitor.enrich.vader_fast import FastVader  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "airline-dev" / "tweets_dev.csv"
LABELS = ("negative", "neutral", "positive")
# What config.yaml's brands (name, handles, keywords) would list for these airlines;
# SentimentAnalyzer neutralises them. This is configuration, not a rule of any pack.
BRAND_TERMS = (
    "United", "@united", "United Airlines", "UnitedAirlines",
    "US Airways", "@USAirways", "USAirways", "US Air", "USAir",
    "American Airlines", "@AmericanAir", "AmericanAir", "American Air",
)


def load(path: Path) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            texts.append(row["text"])
            labels.append(row["airline_sentiment"])
    return texts, labels


def label_of(compound: float, positive: float = 0.05, negative: float = -0.05) -> str:
    if compound >= positive:
        return "positive"
    if compound <= negative:
        return "negative"
    return "neutral"


def metrics(gold: Sequence[str], pred: Sequence[str]) -> dict[str, float]:
    """P/R/F1 per class ("negative_p", ...), "macro_f1" and "accuracy"."""
    out: dict[str, float] = {}
    f1s = []
    for label in LABELS:
        tp = sum(g == label and p == label for g, p in zip(gold, pred, strict=True))
        predicted = sum(p == label for p in pred)
        actual = sum(g == label for g in gold)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[f"{label}_p"], out[f"{label}_r"], out[f"{label}_f1"] = precision, recall, f1
        f1s.append(f1)
    out["macro_f1"] = sum(f1s) / len(f1s)
    out["accuracy"] = sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)
    return out


def table(rows: dict[str, dict[str, float]]) -> str:
    head = f"{'':38s}" + "".join(f"{label[:3]} P  R  F1      " for label in LABELS)
    lines = [head + "macro-F1  acc"]
    for name, m in rows.items():
        cells = "".join(
            f"{m[f'{lab}_p']:.2f} {m[f'{lab}_r']:.2f} {m[f'{lab}_f1']:.2f}    " for lab in LABELS)
        lines.append(f"{name:38s}{cells}{m['macro_f1']:.3f}     {m['accuracy']:.3f}")
    return "\n".join(lines)


def speed(functions: dict[str, Callable[[str], object]], texts: Sequence[str],
          rounds: int) -> dict[str, float]:
    """texts/s of each function: best of ``rounds`` interleaved passes over ``texts``."""
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.perf_counter()
            for text in texts:
                function(text)
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: len(texts) / seconds for name, seconds in best.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--packs", nargs="*", default=["customer-service"],
                        help="lexicon packs for SentimentAnalyzer (default: customer-service)")
    parser.add_argument("--lexicon-dir", type=Path, default=ROOT / "rules" / "lexicons")
    parser.add_argument("--rounds", type=int, default=5, help="speed passes (best is kept)")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"no data at {args.data} (use --data)", file=sys.stderr)
        return 2
    texts, gold = load(args.data)

    vader = SentimentIntensityAnalyzer()
    fast = FastVader()
    mismatches = sum(vader.polarity_scores(t) != fast.polarity_scores(t) for t in texts)
    analyzer = SentimentAnalyzer(load_packs(pack_paths(args.lexicon_dir, args.packs)),
                                 BRAND_TERMS)
    rows = {
        "vaderSentiment 3.3.2": metrics(
            gold, [label_of(vader.polarity_scores(t)["compound"]) for t in texts]),
        f"SentimentAnalyzer ({'+'.join(args.packs) or 'no packs'})": metrics(
            gold, [analyzer.score(t).label for t in texts]),
    }
    print(f"{len(texts)} texts from {args.data}")
    print(table(rows))
    print()

    rates = speed({"SentimentIntensityAnalyzer": vader.polarity_scores,
                   "FastVader": fast.polarity_scores,
                   "SentimentAnalyzer.score": analyzer.score}, texts, args.rounds)
    for name, rate in rates.items():
        print(f"{name:38s}{rate:10,.0f} texts/s")
    ratio = rates["FastVader"] / rates["SentimentIntensityAnalyzer"]
    print(f"FastVader / SentimentIntensityAnalyzer: {ratio:.2f}x "
          f"(scores identical on {len(texts) - mismatches}/{len(texts)} texts)")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
