"""The CLI contract of DESIGN.md: replay, backtest, classify, screen, notify-test."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from monitor import commands
from monitor.cli import main
from tests.conftest import BASE_CONFIG, ROOT, write_project
from tests.test_engine import COMPLAINTS
from tests.timeline import T0, post, steady


def _write_jsonl(path: Path, rows: list[dict[str, object]], extra: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + extra)
    return path


def test_replay_writes_alerts_as_jsonl_and_skips_malformed(project: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    posts = steady(T0, 48, 8)
    storm_at = T0 + timedelta(hours=48, minutes=1)
    posts += [post(900_000 + i, storm_at + timedelta(seconds=2 * i), COMPLAINTS[i % 3],
                   author=f"a{i}") for i in range(100)]
    src = _write_jsonl(project.parent / "posts.jsonl", [p.to_json() for p in posts],
                       extra='{"id": "broken"\nnot json\n{"id":"x","source":"s"}\n')
    out = project.parent / "alerts.jsonl"
    assert main(["replay", str(src), "-c", str(project), "--alerts-out", str(out)]) == 0
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    rules = [a["rule"] for a in alerts if a["state"] == "firing"]
    assert rules.count("spike") == 1 and rules.count("negative") == 1
    spike = next(a for a in alerts if a["rule"] == "spike")
    assert spike["created_at"].startswith("2026-03-04T00:0")  # in event time
    assert "skipped 3 malformed" in capsys.readouterr().err


def test_replay_applies_retention_in_event_time(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A replay longer than ``storage.retention`` keeps only the last retention of posts,
    as the daemon would (its cost per post must not grow with the file's length)."""
    config = write_project(tmp_path, BASE_CONFIG + "storage:\n  retention: 8d\n")
    posts = steady(T0, 20 * 24, 1)
    src = _write_jsonl(tmp_path / "posts.jsonl", [p.to_json() for p in posts])
    kept: list[int] = []
    original = commands.SqliteStore.close

    def close(store: commands.SqliteStore) -> None:
        kept.append(store.post_count())
        original(store)

    monkeypatch.setattr(commands.SqliteStore, "close", close)
    assert main(["replay", str(src), "-c", str(config), "--alerts-out",
                 str(tmp_path / "alerts.jsonl")]) == 0
    per_day = len(posts) / 20
    # 8 days kept, plus at most the last hour and a chunk of event time before a prune
    assert 7.5 * per_day < kept[0] < 9.5 * per_day, (kept, len(posts))


def _spike_series(folder: Path) -> tuple[list[str], datetime]:
    """Four days of 5-minute counts around 20 with one bucket of 200, as ``flat.csv``
    in ``folder/series``; returns the CSV lines and the spike's time."""
    spike = 288 * 3 + 100
    lines = ["timestamp,value"]
    for i in range(288 * 4):
        at = T0 + timedelta(minutes=5 * i)
        lines.append(f"{at:%Y-%m-%d %H:%M:%S},{200 if i == spike else 20 + (i % 3)}")
    (folder / "series").mkdir()
    (folder / "series" / "flat.csv").write_text("\n".join(lines) + "\n")
    return lines, T0 + timedelta(minutes=5 * spike)


def test_backtest_prints_fired_bucket_timestamps(project: Path, tmp_path: Path) -> None:
    _, spike_at = _spike_series(tmp_path)
    result = commands.backtest(project, [tmp_path / "series"], None)
    assert result == {"flat.csv": [f"{spike_at:%Y-%m-%d %H:%M:%S}"]}


def test_backtest_reads_for_people_and_json_keeps_the_contract(
        project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines, spike_at = _spike_series(tmp_path)
    series = tmp_path / "series"
    (series / "calm.csv").write_text("\n".join(lines[:200]) + "\n")
    assert main(["backtest", "--series", str(series), "-c", str(project)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["calm.csv: no spike", f"flat.csv: 1 spike: {spike_at:%Y-%m-%d %H:%M:%S}",
                   "2 series, 1 spike(s) in 1 of them, with rule spike (bucket 5m, sensitivity "
                   "medium, min_count 10); --json for the machine-readable list"]
    assert main(["backtest", "--series", str(series), "--json", "-c", str(project)]) == 0
    text = capsys.readouterr().out
    assert json.loads(text) == {"calm.csv": [], "flat.csv": [f"{spike_at:%Y-%m-%d %H:%M:%S}"]}
    assert text == json.dumps(json.loads(text), indent=1) + "\n"  # byte for byte as before


def test_every_command_has_a_description_and_an_example(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    from monitor import __version__

    assert capsys.readouterr().out.strip() == f"brand-monitor {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    listing = capsys.readouterr().out
    commands_listed = ["run", "check", "replay", "backtest", "classify", "screen",
                       "notify-test", "alerts", "ack", "unack", "silence", "outbox"]
    for name in commands_listed:
        assert f"    {name}" in listing, name
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0
        text = capsys.readouterr().out
        usage, description = text.split("\n\n")[:2]
        assert usage.startswith(f"usage: brand-monitor {name}")
        assert len(description.split()) >= 8, name  # a sentence, not a word
        assert "\nExample" in text, name
        assert f"\n  brand-monitor {name}" in text or f"| brand-monitor {name}" in text, name


def test_backtest_names_a_missing_rule(project: Path) -> None:
    assert main(["backtest", "--series", str(project.parent), "--rule", "nope", "--json",
                 "-c", str(project)]) == 2


def test_classify_and_screen_read_and_write_jsonl(project: Path) -> None:
    out = io.StringIO()
    stdin = io.StringIO('{"id": 1, "text": "@acme you are the worst, awful service"}\n'
                        '{"id": 2, "text": "love it, thanks!"}\n')
    assert commands.classify(project, stdin, out) == 0
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["id"], r["label"]) for r in rows] == [(1, "negative"), (2, "positive")]
    out = io.StringIO()
    stdin = io.StringIO('{"id": "a", "text": "Our spring sale starts today!"}\n'
                        '{"id": "b", "text": "what a sh1t day, visit http://evil.example/x"}\n'
                        'oops\n')
    assert commands.screen(project, stdin, out) == 1  # one malformed line
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert rows[0] == {"id": "a", "flagged": False, "severity": None, "reasons": [],
                       "categories": [], "checks": []}  # categories, checks: added fields
    assert rows[1]["flagged"] and rows[1]["severity"] == "critical"
    assert any("evil.example" in r for r in rows[1]["reasons"])


def test_notify_test_sends_through_each_channel(tmp_path: Path) -> None:
    config = write_project(tmp_path)
    assert main(["notify-test", "-c", str(config)]) == 0
    line = json.loads((tmp_path / "state" / "alerts.jsonl").read_text().splitlines()[0])
    assert line["rule"] == "notify-test"
    assert main(["notify-test", "-c", str(config), "--channel", "nope"]) == 2


def test_notify_test_of_a_rotation_goes_to_the_member_on_duty(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_project(tmp_path, BASE_CONFIG.replace(
        "    url: jsonl://state/alerts.jsonl\n",
        "    url: jsonl://state/alerts.jsonl\n"
        "  - name: other\n    url: jsonl://state/other.jsonl\n"
        "  - name: on-call\n    rotation:\n      timezone: UTC\n      handoff: '00:00'\n"
        "      every: 5000d\n      start_date: '2024-01-01'\n      members: [other, file]\n"))
    assert main(["notify-test", "-c", str(config), "--channel", "on-call"]) == 0
    assert "on-call: on duty now: other" in capsys.readouterr().err
    assert (tmp_path / "state" / "other.jsonl").exists()
    assert not (tmp_path / "state" / "alerts.jsonl").exists()
    assert main(["notify-test", "-c", str(config)]) == 0  # every real channel
    assert (tmp_path / "state" / "alerts.jsonl").exists()


def test_python_dash_m_and_console_script_agree(project: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "monitor", "check", "-c", str(project)],
                            capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    assert "ok: 1 brand(s)" in result.stdout
