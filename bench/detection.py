"""Volume-spike detection benchmark on NAB realTweets (5-minute mention counts).

Runs the CLI exactly as the issue specifies -- ``brand-monitor backtest --series DIR
-c config.yaml --json``, i.e. the shipped volume-spike rule of ``rules/`` with no
per-series tuning -- scores its alerts with the shared NAB scorer
(``shared/bench/nab_score.py``, run as a subprocess; it needs pandas) and prints the NAB
standard score and the false alerts per day (alerts outside every labelled window,
divided by the days of data the scorer counts).

    /work/venv/bin/python bench/detection.py [--series DIR] [--shared PATH] [-c CONFIG]

``--sensitivity``/``--min-count`` instead run the detector in-process with the rule's
parameters overridden (for exploring the knob; the score to report is the default).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.commands import volume_rule  # noqa: E402
from monitor.config.loader import load_all  # noqa: E402
from monitor.detect.countmodel import (  # noqa: E402
    CountModelParams,
    Sensitivity,
    backtest,
    load_series_csv,
)

DEFAULT_SHARED = ROOT.parent / "shared"


def run_cli(series_dir: Path, config: Path) -> dict[str, list[str]]:
    """``brand-monitor backtest --series DIR -c CONFIG --json``, parsed."""
    cli = Path(sys.executable).with_name("brand-monitor")
    cmd = ([str(cli)] if cli.exists() else [sys.executable, "-m", "monitor"]) + [
        "backtest", "--series", str(series_dir), "-c", str(config), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"brand-monitor backtest failed:\n{done.stderr}")
    alerts: dict[str, list[str]] = json.loads(done.stdout)
    return alerts


def run_alerts(series_dir: Path, params: CountModelParams) -> dict[str, list[str]]:
    """Backtest every CSV of ``series_dir``; alerts keyed by file name."""
    alerts: dict[str, list[str]] = {}
    for path in sorted(series_dir.glob("*.csv")):
        fired = backtest(load_series_csv(path), params)
        alerts[path.name] = [t.strftime("%Y-%m-%d %H:%M:%S") for t in fired]
    return alerts


def score(series_dir: Path, shared: Path, alerts: dict[str, list[str]],
          python: str = sys.executable) -> dict[str, object]:
    """Run the shared NAB scorer on ``alerts``; returns its standard-profile result."""
    scorer = shared / "bench" / "nab_score.py"
    windows = series_dir / "windows.json"
    labels = series_dir / "labels.json"
    with tempfile.TemporaryDirectory() as tmp:
        alerts_path = Path(tmp) / "alerts.json"
        report_path = Path(tmp) / "report.json"
        alerts_path.write_text(json.dumps(alerts, indent=1))
        cmd = [python, str(scorer), "--data", str(series_dir), "--windows", str(windows),
               "--alerts", str(alerts_path), "--profile", "standard", "--per-file",
               "--json-out", str(report_path)]
        if labels.exists():
            cmd += ["--labels", str(labels)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"nab_score.py failed:\n{done.stderr}")
        report: dict[str, object] = json.loads(report_path.read_text())["standard"]
    return report


def whole_series_false_alerts(series_dir: Path, alerts: dict[str, list[str]]
                              ) -> tuple[int, float]:
    """Alerts outside every labelled window over the whole files (probation included)."""
    windows = json.loads((series_dir / "windows.json").read_text())
    false, days = 0, 0.0
    for path in sorted(series_dir.glob("*.csv")):
        rows = load_series_csv(path)
        days += (rows[-1][0] - rows[0][0]).total_seconds() / 86400.0
        spans = [(a[:19], b[:19]) for key, wins in windows.items()
                 if key.rsplit("/", 1)[-1] == path.name for a, b in wins]
        false += sum(1 for t in alerts.get(path.name, [])
                     if not any(a <= t <= b for a, b in spans))
    return false, days


def _sensitivity(text: str) -> Sensitivity:
    try:
        return float(text)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=Path, default=None,
                    help="folder of Twitter_volume_*.csv with windows.json "
                         "(default: SHARED/data/nab-realtweets-dev)")
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED,
                    help="the shared folder holding bench/nab_score.py (default: ../shared)")
    ap.add_argument("-c", "--config", type=Path, default=ROOT / "config.yaml",
                    help="config whose rules folder holds the volume rule (default: ours)")
    ap.add_argument("--sensitivity", type=_sensitivity, default=None,
                    help="override the rule's sensitivity (low|medium|high or a probability)")
    ap.add_argument("--min-count", type=int, default=None,
                    help="override the rule's min_count")
    ap.add_argument("--alerts-out", type=Path, help="also write the alerts JSON here")
    a = ap.parse_args(argv)
    series_dir = a.series or a.shared / "data" / "nab-realtweets-dev"
    started = time.perf_counter()
    if a.sensitivity is None and a.min_count is None:
        how = f"brand-monitor backtest -c {a.config} (shipped rule)"
        alerts = run_cli(series_dir, a.config)
    else:
        _, rules = load_all(a.config)
        params = volume_rule(rules, None).params.model_params()
        overrides: dict[str, object] = {}
        if a.sensitivity is not None:
            overrides["sensitivity"] = a.sensitivity
        if a.min_count is not None:
            overrides["min_count"] = a.min_count
        params = dataclasses.replace(params, **overrides)
        how = f"in-process, rule params with {overrides}"
        alerts = run_alerts(series_dir, params)
    elapsed = time.perf_counter() - started
    print(f"alerts from: {how}")
    if a.alerts_out:
        a.alerts_out.write_text(json.dumps(alerts, indent=1))
    report = score(series_dir, a.shared, alerts)

    files = report["files"]
    assert isinstance(files, dict)
    print(f"{'file':28s} {'NAB':>6s} {'windows':>8s} {'FP':>4s} {'FP/day':>7s}")
    for name, r in files.items():
        found = f"{r['windows_detected']}/{r['windows_total']}"
        print(f"{name:28s} {r['normalised']:6.1f} {found:>8s} {r['false_alerts']:4d}"
              f" {r['false_alerts_per_day']:7.3f}")
    total = report["total"]
    assert isinstance(total, dict)
    print(f"NAB standard score: {total['normalised']:.2f}")
    print(f"false alerts per day: {total['false_alerts_per_day']:.3f} "
          f"({total['false_alerts']} over {total['scored_days']:.1f} scored days)")
    false, days = whole_series_false_alerts(series_dir, alerts)
    print(f"false alerts per day, whole files incl. NAB probation: {false / days:.3f} "
          f"({false} over {days:.1f} days)")
    print(f"windows detected: {total['windows_detected']}/{total['windows_total']}; "
          f"backtest time {elapsed:.2f}s for {len(alerts)} series")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
