"""The outbound screen's functional suite: its shape, and that the generated slices are current."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests import functional_suite as fs
from tests.conftest import ROOT


def test_generated_slices_are_current() -> None:
    assert fs.main(["--check"]) == 0


def test_suite_size_functionalities_and_split() -> None:
    dev, held = fs.read("dev"), fs.read("heldout")
    cases = dev + held
    per = Counter(c["functionality"] for c in cases)
    assert len(cases) >= 600 and len(per) >= 25
    assert len({c["id"] for c in cases}) == len(cases)
    assert 0.15 <= len(held) / len(cases) <= 0.35  # about a quarter of the units
    assert sum(n for f, n in per.items() if f.startswith("ordinary_")) >= 300
    families = {c["family"] for c in cases}
    assert {"hate", "group_benign", "newsjack", "condolence", "hijack", "staff",
            "aggression", "risk", "ordinary"} <= families
    assert all(c["expect"] in fs.EXPECTS for c in cases)
    # a unit (template, base sentence or case) never straddles the two slices
    held_texts = {c["text"] for c in held}
    assert not held_texts & {c["text"] for c in dev}


def test_templates_cover_every_dimension_of_protected_groups() -> None:
    dims = {c.get("group") for c in fs.read("dev") + fs.read("heldout") if c["family"] == "hate"}
    assert {"race", "nationality", "immigration", "religion", "gender", "gender_identity",
            "orientation", "disability", "age"} <= dims


def test_obfuscations_change_the_spelling() -> None:
    group = {"plural": "Muslims", "one": "a Muslim", "bare": "Muslim", "dim": "religion"}
    base = "{G} are [vermin]."
    outs = {t: fs.obfuscate(base, group, t, seed) for t in
            ("leet", "delete", "swap", "space_add", "space_remove", "homoglyph")
            for seed in (0, 1, 2)}
    assert all(text != "Muslims are vermin." for text in outs.values()), outs
    assert fs.obfuscate(base, group, "space_remove", 2) == "Muslimsarevermin"
    assert fs.swap("Muslims", 0) == "Msulims" and fs.delete("vermin", 0) == "vrmin"


@pytest.fixture(scope="module")
def functional() -> ModuleType:
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_outbound_functional",
                                                  ROOT / "bench" / "outbound_functional.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def rule_params() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "rules" / "outbound.yaml").read_text(encoding="utf-8"))
    return dict(data["rules"][0]["params"])


def test_the_dev_slice_meets_every_target(functional: ModuleType) -> None:
    suite = functional.run_suite("dev", rule_params())
    missed = [(name, value) for name, value, _, met in suite.targets() if not met]
    assert not missed, missed


def test_the_held_out_slice_meets_the_aggregate_targets(functional: ModuleType) -> None:
    """Held out while tuning; its per-functionality figures are reported by the bench."""
    suite = functional.run_suite("heldout", rule_params())
    figures = {name: (value, met) for name, value, _, met in suite.targets()}
    for name in ("hate warning+", "hate critical", "group neutral/positive above info",
                 "counter-speech critical", "tragedy + promotion critical",
                 "tragedy condolence critical"):
        assert figures[name][1], (name, figures[name])
    ordinary = next(v for k, v in figures.items() if k.startswith("ordinary posts"))
    assert ordinary[1], ordinary
