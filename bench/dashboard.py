"""Dashboard load time: the Pulse overview of 10 brands over 30 days (8,640 five-minute
buckets each, 86,400 in all) served by the real daemon, in Debian's headless Chromium.

"First chart" is the time from navigation start until every chart of the page is
drawn (the page's ``bm-charts-ready`` performance mark), median of 5 loads with a warm
HTTP cache for the static files (as for a person who opened the dashboard before).
Also the server's time for the page alone (HTML with the embedded series). Target:
first chart in under 1 s. Without a browser only the server figure is printed.

Usage: python bench/dashboard.py
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.model import Alert  # noqa: E402
from monitor.store.sqlite import Aggregate, SqliteStore  # noqa: E402

BRANDS = 10
DAYS = 30
TARGET = 1.0
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build(folder: Path, port: int) -> None:
    """config.yaml with 10 brands and a store holding 30 days of their aggregates."""
    brands = "".join(f"  - name: Brand{i}\n    keywords: [brand{i}]\n" for i in range(BRANDS))
    (folder / "rules").mkdir()
    (folder / "rules" / "rules.yaml").write_text(textwrap.dedent("""\
        rules:
          - name: spike
            signal: volume_spike
            channels: [file]
        """))
    (folder / "config.yaml").write_text(
        f"state_dir: state\nenrich_workers: 0\nbrands:\n{brands}"
        "channels:\n  - name: file\n    url: jsonl://state/alerts.jsonl\n"
        f"http:\n  host: 127.0.0.1\n  port: {port}\n"
        f"sentiment:\n  packs: []\n  lexicon_dir: {ROOT / 'rules' / 'lexicons'}\n")
    store = SqliteStore(folder / "state" / "brand-monitor.db")
    rng = random.Random(1)
    now = datetime.now(UTC)
    start = now.replace(second=0, microsecond=0) - timedelta(days=DAYS)
    start -= timedelta(minutes=start.minute % 5)
    rows = []
    for b in range(BRANDS):
        level = 5 + 10 * b
        for i in range(DAYS * 288):
            at = start + timedelta(minutes=5 * i)
            daily = 1 + 0.6 * ((i % 288) / 288 - 0.5)
            expected = level * daily
            count = max(0, round(rng.gauss(expected, expected ** 0.5)))
            rows.append(Aggregate(f"Brand{b}", at, count, count // 4, count // 3, 0,
                                  round(expected, 2)))
    with store.transaction():
        store.add_aggregates(rows)
        for n in range(100):  # alert markers
            at = start + timedelta(minutes=rng.randrange(DAYS * 288) * 5)
            store.add_alert(Alert(id=f"bench{n}", dedup_key=f"spike|Brand{n % BRANDS}|",
                                  rule="spike", kind="volume_spike",
                                  brand=f"Brand{n % BRANDS}", severity="warning",
                                  state="firing", title="[WARNING] spike", summary="bench",
                                  created_at=at, channels=()))
    store.close()


def wait_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the daemon did not start")


def server_time(url: str, runs: int = 5) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as resp:
            size = len(resp.read())
        times.append(time.perf_counter() - started)
    return statistics.median(times), size


def browser_time(url: str, runs: int = 5) -> float | None:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="bm-bench-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic",
                 "--window-size=1300,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(url)  # warm-up: static files into the cache
        times = []
        for _ in range(runs):
            driver.get("about:blank")
            driver.get(url)
            deadline = time.monotonic() + 30
            mark = None
            while mark is None and time.monotonic() < deadline:
                mark = driver.execute_script(
                    "var m = performance.getEntriesByName('bm-charts-ready');"
                    "return m.length ? m[0].startTime : null;")
            if mark is None:
                raise SystemExit("the charts were not drawn")
            drawn = driver.execute_script("return document.body.dataset.chartsReady")
            if drawn != str(BRANDS):
                raise SystemExit(f"expected {BRANDS} charts, the page drew {drawn}")
            times.append(float(mark) / 1000)
        return statistics.median(times)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="bm-dash-bench-"))
    port = _port()
    try:
        build(folder, port)
        log = (folder / "daemon.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "monitor", "run", "-c",
                                 str(folder / "config.yaml")], cwd=folder, stdout=log,
                                stderr=log, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            wait_up(port, proc)
            url = f"http://127.0.0.1:{port}/ui/pulse?range=30d"
            page, size = server_time(url)
            chart = browser_time(url)
        finally:
            proc.terminate()
            proc.wait(30)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    buckets = BRANDS * DAYS * 288
    if chart is None:
        print(f"dashboard: {DAYS} days x {BRANDS} brands ({buckets:,} buckets): page served in "
              f"{page * 1000:.0f} ms ({size / 1024:.0f} KB); no browser, first chart not "
              "measured")
        return
    verdict = "ok" if chart < TARGET else "SLOW"
    print(f"dashboard: {DAYS} days x {BRANDS} brands ({buckets:,} buckets): first chart in "
          f"{chart * 1000:.0f} ms (headless Chromium, median of 5; page served in "
          f"{page * 1000:.0f} ms, {size / 1024:.0f} KB) target < {TARGET * 1000:.0f} ms: "
          f"{verdict}")


if __name__ == "__main__":
    main()
