"""Synthetic crisis-scale workloads for ``bench/pipeline.py``, built from real tweets.

Texts come from the airline-dev tweets (``../shared/data/airline-dev``); each brand's
name in a text is rewritten to the brand the post is assigned to, so brand matching
does real work. Times follow a daily rhythm over ``days`` days with a few complaint
storms (10-40x for an hour) so the detectors fire and alerts accumulate, as they do in a
real month. About 1% of posts are the brands' own outbound posts (mostly ordinary, a
few off-message). Everything is seeded: the same arguments give the same file.
"""

from __future__ import annotations

import csv
import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
TWEETS = ROOT.parent / "shared" / "data" / "airline-dev" / "tweets_dev.csv"
START = datetime(2026, 3, 1, tzinfo=UTC)

#: The brands of the bench config; the first three are the "3 airline brands".
AIRLINES = [("United", "@united"), ("Delta", "@Delta"), ("Southwest", "@SouthwestAir"),
            ("American", "@AmericanAir"), ("JetBlue", "@JetBlue"),
            ("Virgin America", "@VirginAmerica"), ("US Airways", "@USAirways")]
_BRAND_WORDS = re.compile(
    r"@?(?:united|delta|southwestair|southwest|americanair|american|jetblue|"
    r"virginamerica|virgin america|usairways|us airways)\b", re.IGNORECASE)
OUTBOUND_TEXTS = [
    "Thanks for flying with us today! Tell us how your trip went.",
    "We're sorry to hear about the delay. Please DM us your confirmation number.",
    "New routes this spring: book now at our site and save on weekend fares.",
    "Our crews are working hard to get everyone home safely tonight. Thank you for "
    "your patience.",
    "Happy Monday! Where are you flying this week?",
    "Free wifi on all domestic flights starting next month.",
    "We're hiring pilots and flight attendants: join our team!",
    "That's a great photo! Thanks for sharing your view from seat 12A.",
    "this airline is a f***ing joke lol send 1 btc to double it bit.ly/x",  # off-message
]


def load_texts(path: Path = TWEETS) -> list[str]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle) if row.get("text")]


@dataclass(frozen=True)
class Workload:
    posts: int
    brands: int = 3
    days: int = 30
    outbound_share: float = 0.01
    storms: int = 6
    seed: int = 7


def _rate(t: float) -> float:
    """Relative posting rate at ``t`` seconds into the month: day/night and weekday."""
    hour = (t / 3600) % 24
    day = int(t // 86400) % 7
    daily = 0.35 + 0.65 * math.sin(math.pi * max(0.0, hour - 5) / 19) ** 2
    return daily * (0.8 if day >= 5 else 1.0)


def _times(work: Workload, rng: random.Random) -> list[float]:
    """``work.posts`` event times (seconds from START), sorted, with storms."""
    span = work.days * 86400
    storms = [(rng.uniform(span * 0.3, span * 0.95), rng.uniform(10, 40))
              for _ in range(work.storms)]
    storm_share = 0.06
    base_n = int(work.posts * (1 - storm_share))
    times: list[float] = []
    uniform, random_ = rng.uniform, rng.random
    while len(times) < base_n:  # thinning against the daily rhythm
        t = uniform(0, span)
        if random_() < _rate(t):
            times.append(t)
    weights = [mult for _, mult in storms]
    total = sum(weights)
    for start, mult in storms:
        n = int((work.posts - base_n) * mult / total)
        times += [start + rng.uniform(0, 3600) for _ in range(n)]
    while len(times) < work.posts:
        times.append(rng.uniform(0, span))
    times.sort()
    return times[:work.posts]


def posts(work: Workload, texts: list[str]) -> Iterator[dict[str, object]]:
    rng = random.Random(work.seed)
    brands = [AIRLINES[i % len(AIRLINES)] for i in range(min(work.brands, 3))]
    weights = [0.5, 0.3, 0.2][:len(brands)]
    authors = 0
    for index, t in enumerate(_times(work, rng)):
        name, handle = rng.choices(brands, weights)[0]
        when = START + timedelta(seconds=t)
        if rng.random() < work.outbound_share:
            text = rng.choice(OUTBOUND_TEXTS)
            yield {"id": f"o{index}", "source": "bench", "kind": "outbound", "brand": name,
                   "author": {"id": f"brand-{name}", "handle": handle.lstrip("@")},
                   "text": text, "created_at": when.isoformat().replace("+00:00", "Z"),
                   "url": f"https://x.example/{handle.lstrip('@')}/status/o{index}"}
            continue
        text = _BRAND_WORDS.sub(handle, rng.choice(texts))
        if handle.lower() not in text.lower():
            text = f"{handle} {text}"
        authors += 1
        author = rng.randrange(max(1000, work.posts // 3))
        followers = int(rng.paretovariate(1.2) * 50)
        yield {"id": f"m{index}", "source": "bench", "kind": "mention",
               "author": {"id": f"u{author}", "handle": f"user{author}",
                          "followers": followers},
               "text": text, "created_at": when.isoformat().replace("+00:00", "Z"),
               "url": f"https://x.example/user{author}/status/m{index}"}


def write(work: Workload, path: Path, texts: list[str] | None = None) -> Path:
    texts = texts if texts is not None else load_texts()
    with path.open("wb") as handle:
        for post in posts(work, texts):
            handle.write(orjson.dumps(post) + b"\n")
    return path


def config_text(brands: int, rules_dir: Path, state_dir: Path, *, real: int = 3,
                extra: str = "", channels: str = "") -> str:
    """A config.yaml for the bench: ``brands`` brands, of which the first ``real`` are
    airlines the posts talk about and the rest distinct names that never match."""
    lines = [f"state_dir: {state_dir}", f"rules_dir: {rules_dir}", "log_level: WARNING",
             "brands:"]
    for i in range(brands):
        if i < real:
            name, handle = AIRLINES[i]
            keyword = name.lower()
        else:
            name, handle, keyword = f"Brand {i:03d}", f"@brand{i:03d}", f"brandco{i:03d}"
        lines += [f"  - name: {name}", f"    handles: [\"{handle}\"]",
                  f"    keywords: [\"{keyword}\"]"]
    lines += ["channels:", "  - {name: console, url: \"console://\"}",
              "  - {name: alerts-file, url: \"jsonl://alerts.jsonl\"}",
              channels or "  - {name: security, url: \"jsonl://security.jsonl\"}",
              "admin_channels: [console]", extra or "http: {enabled: false}",
              f"sentiment: {{packs: [customer-service], lexicon_dir: {rules_dir / 'lexicons'}}}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--posts", type=int, default=200_000)
    parser.add_argument("--brands", type=int, default=3)
    args = parser.parse_args()
    write(Workload(args.posts, args.brands), args.out)
