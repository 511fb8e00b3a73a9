"""The labelled outbound set: its coverage, and the targets of the benchmark."""

from __future__ import annotations

import importlib.util
import json
import sys
from types import ModuleType

import pytest

from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "outbound"
INCIDENTS = {"political_joke", "profanity", "personal_voice", "layoffs", "hashtag_newsjack",
             "tragedy_promo", "hijack_sold", "crypto_scam", "phishing", "personal_data",
             "confrontational", "divisive", "competitor", "account_misuse", "unsanctioned"}
ORDINARY = {"promotion", "support_apology", "outage", "recall", "holiday", "memorial",
            "weather_closure"}


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_outbound", ROOT / "bench" / "outbound.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_outbound"] = module
    spec.loader.exec_module(module)
    return module


def rows(name: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines()]


def test_labelled_set_covers_every_incident_and_ordinary_type() -> None:
    posts = rows("labelled")
    off = [p for p in posts if p["label"] == "off"]
    assert len(posts) >= 60 and len(off) * 2 == len(posts)
    assert {p["category"] for p in off} >= INCIDENTS
    assert {p["category"] for p in posts if p["label"] == "ok"} >= ORDINARY
    assert len({p["brand"] for p in posts}) == 5
    assert len({p["id"] for p in posts}) == len(posts)


def test_bench_meets_the_targets(bench: ModuleType) -> None:
    report = bench.run(FIXTURES / "labelled.jsonl")
    assert report.recall >= 0.9, report.summary()
    assert report.false_high <= 0.05, report.summary()


@pytest.mark.parametrize("name", ["heldout", "heldout2"])
def test_held_out_sets_generalise(bench: ModuleType, name: str) -> None:
    report = bench.run(FIXTURES / f"{name}.jsonl")
    assert report.recall >= 0.8, report.summary()
    assert report.false_high <= 0.05, report.summary()


def test_bench_prints_recall_false_high_and_categories(bench: ModuleType,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    assert bench.main(["--set", str(FIXTURES / "labelled.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "recall (warning or critical)" in out and "false-high rate" in out
    assert "crypto_scam" in out and "weather_closure" in out
    assert bench.main(["--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) == {"labelled", "heldout", "heldout2"}
