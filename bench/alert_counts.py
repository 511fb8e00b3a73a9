"""Alert counts by rule: what a PR team receives from ``make demo`` and from a replay of
the dev airline tweets (issue 15: measure before and after changing the alerts).

- ``airline``: converts ``../shared/data/airline-dev/tweets_dev.csv`` into Post JSONL
  (each tweet's airline is its brand, oldest first), replays it through the shipped
  rules with ``brand-monitor replay`` and counts the alerts by rule and state;
- ``demo``: runs the daemon on a copy of the shipped ``config.yaml`` (a temporary state
  folder, any free HTTP port) for ``--seconds`` wall-clock seconds, stops it with
  SIGTERM and counts the alerts it stored by rule and state, and the blocks the
  console printed;
- ``convert``: only write the airline Post JSONL (``--out``).

Each part prints one summary line. Run: ``.venv/bin/python bench/alert_counts.py airline``
(about a minute) or ``... demo --seconds 120``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent / "brand-monitor"
TWEETS = ROOT.parent / "shared" / "data" / "airline-dev" / "tweets_dev.csv"
AIRLINES = {"United": ("@united", "united airlines"),
            "US Airways": ("@USAirways", "us airways"),
            "American": ("@AmericanAir", "american airlines"),
            "Southwest": ("@SouthwestAir", "southwest airlines"),
            "Delta": ("@Delta", "delta airlines"),
            "Virgin America": ("@VirginAmerica", "virgin america")}
_HANDLE = re.compile(r"[^\w]")


def airline_posts(path: Path = TWEETS) -> Iterator[dict[str, object]]:
    """The tweets as Post JSON objects, oldest first (brand = the tweet's airline)."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    out = []
    for row in rows:
        created = datetime.strptime(row["tweet_created"], "%Y-%m-%d %H:%M:%S %z")
        handle_name = _HANDLE.sub("", row["name"]) or "someone"
        out.append((created, row["tweet_id"], {
            "id": row["tweet_id"], "source": "twitter", "kind": "mention",
            "brand": row["airline"],
            "author": {"id": row["name"], "handle": handle_name},
            "text": row["text"],
            "created_at": created.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "url": f"https://twitter.com/{handle_name}/status/{row['tweet_id']}",
            "lang": "en"}))
    out.sort(key=lambda item: (item[0], item[1]))
    for _, _, post in out:
        yield post


def write_airline(out: Path) -> int:
    count = 0
    with out.open("w", encoding="utf-8") as handle:
        for post in airline_posts():
            handle.write(json.dumps(post, ensure_ascii=False) + "\n")
            count += 1
    return count


def airline_config(folder: Path) -> Path:
    brands = sorted({p["brand"] for p in airline_posts()}, key=str)
    lines = [f"state_dir: {folder / 'state'}", f"rules_dir: {ROOT / 'rules'}",
             "log_level: WARNING", "brands:"]
    for name in brands:
        handle, keyword = AIRLINES.get(str(name), (f"@{name}", str(name).lower()))
        lines += [f"  - name: {name}", f"    handles: [\"{handle}\"]",
                  f"    keywords: [\"{keyword}\"]"]
    lines += ["channels:", "  - {name: console, url: \"console://\"}",
              "  - {name: alerts-file, url: \"jsonl://alerts.jsonl\"}",
              "  - {name: security, url: \"jsonl://security.jsonl\"}",
              "admin_channels: [console]", "http: {enabled: false}",
              f"sentiment: {{packs: [customer-service], "
              f"lexicon_dir: {ROOT / 'rules' / 'lexicons'}}}"]
    path = folder / "airline.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _summary(name: str, counts: Counter[tuple[str, str]], extra: str = "") -> None:
    total = sum(n for (_, state), n in counts.items() if state != "silent")
    by_rule: Counter[str] = Counter()
    for (rule, state), n in counts.items():
        if state != "silent":
            by_rule[rule] += n
    parts = ", ".join(f"{rule} {n}" for rule, n in sorted(by_rule.items())) or "none"
    states = ", ".join(f"{rule}/{state} {n}" for (rule, state), n in sorted(counts.items()))
    print(f"{name}: {total} notified alert(s) ({parts}){extra}", flush=True)
    print(f"  by rule and state: {states}", flush=True)


def run_airline(folder: Path) -> None:
    posts = folder / "airline.jsonl"
    n = write_airline(posts)
    config = airline_config(folder)
    out = folder / "alerts.jsonl"
    result = subprocess.run([str(BIN), "replay", str(posts), "-c", str(config),
                             "--alerts-out", str(out)], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise SystemExit(f"replay failed: {result.stderr[-2000:]}")
    counts: Counter[tuple[str, str]] = Counter()
    for raw in out.read_text(encoding="utf-8").splitlines():
        alert = json.loads(raw)
        counts[(alert["rule"], alert["state"])] += 1
    _summary("airline-dev replay", counts, f" from {n:,} tweets")


def demo_config(folder: Path) -> Path:
    """config.yaml as shipped, with a private state folder and any free HTTP port."""
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^state_dir:.*$", f"state_dir: {folder / 'state'}", text)
    text = re.sub(r"(?m)^rules_dir:.*$", f"rules_dir: {ROOT / 'rules'}", text)
    text = re.sub(r"(?m)^  port: \d+", "  port: 0", text)
    text = re.sub(r"(?m)^  packs:(.*)$",
                  rf"  packs:\1\n  lexicon_dir: {ROOT / 'rules' / 'lexicons'}", text)
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run_demo(folder: Path, seconds: float, extra_args: list[str]) -> None:
    config = demo_config(folder)
    stdout, stderr = folder / "stdout.txt", folder / "stderr.txt"
    with stdout.open("w") as out, stderr.open("w") as err:
        proc = subprocess.Popen([str(BIN), "run", "-c", str(config), *extra_args],
                                stdout=out, stderr=err, env={**os.environ, "NO_COLOR": "1"})
        try:
            time.sleep(seconds)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    path = folder / "state" / "demo" / "brand-monitor.db"  # the demo's own state
    if not path.exists():
        path = folder / "state" / "brand-monitor.db"  # before issue 15
    db = sqlite3.connect(path)
    counts: Counter[tuple[str, str]] = Counter()
    for rule, state, channels in db.execute("SELECT rule, state, channels FROM alerts"):
        counts[(rule, state if json.loads(channels) else "silent")] += 1
    db.close()
    lines = stdout.read_text(encoding="utf-8", errors="replace").splitlines()
    log_lines = stderr.read_text(encoding="utf-8", errors="replace").splitlines()
    blocks = sum(1 for line in lines if line.startswith("=====")) // 2  # a rule above and below
    _summary(f"demo ({seconds:.0f}s)", counts,
             f"; console: {blocks} block(s), {len(lines)} stdout line(s), "
             f"{len(log_lines)} log line(s)")
    print(f"  output kept in {folder}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("airline", "demo", "convert"))
    parser.add_argument("--seconds", type=float, default=120.0, help="demo: how long")
    parser.add_argument("--keep", type=Path, help="work in this folder (kept)")
    parser.add_argument("--out", type=Path, help="convert: the JSONL file to write")
    parser.add_argument("--run-arg", action="append", default=[],
                        help="demo: extra argument for 'brand-monitor run'")
    args = parser.parse_args()
    if args.part == "convert":
        if args.out is None:
            raise SystemExit("convert needs --out FILE")
        print(f"wrote {write_airline(args.out):,} posts to {args.out}")
        return
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        folder = args.keep
    else:
        folder = Path(tempfile.mkdtemp(prefix="brand-monitor-counts-"))
    if args.part == "airline":
        run_airline(folder)
    else:
        run_demo(folder, args.seconds, args.run_arg)


if __name__ == "__main__":
    main()
