"""Fault test (issue 7): config and rule loading under malformed input (hypothesis).

Documents are built from the real schema's keys (every dataclass field of the
config, the rules, each source's options and each detector's params) mixed with
junk keys, random nesting and scalars, plus raw random text and damaged copies of
a valid file. Loading either succeeds or raises ConfigError whose every problem
names its file, a line (int or None), a key and a message - never anything else.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from monitor import plugins
from monitor.config.loader import load_config, load_rules
from monitor.config.schema import Config, Rule
from monitor.errors import ConfigError
from tests.conftest import BASE_CONFIG, BASE_RULES, ROOT


def _schema_keys() -> list[str]:
    plugins.load()
    from monitor.detect.base import DETECTORS
    from monitor.sources.base import SOURCES

    roots: list[Any] = [Config, Rule]
    roots += [SOURCES.get(name).Options for name in SOURCES]
    roots += [DETECTORS.get(name).Params for name in DETECTORS]
    keys: set[str] = set()
    seen: set[Any] = set()
    while roots:
        cls = roots.pop()
        if cls in seen or not dataclasses.is_dataclass(cls):
            continue
        seen.add(cls)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            keys.add(f.name)
            for arg in (hints.get(f.name), *typing.get_args(hints.get(f.name))):
                for inner in (arg, *typing.get_args(arg)):
                    if dataclasses.is_dataclass(inner):
                        roots.append(inner)
    return sorted(keys)


KEYS = _schema_keys()
SIGNALS = ["volume_spike", "negative_surge", "influencer", "outbound", "nope"]
SOURCE_TYPES = ["replay", "demo", "rss", "twitter", "bluesky", "mastodon", "nope"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["5m", "1h", "0s", "-3m", "30 minutes", "low", "high", "medium", "file",
                     "console://", "jsonl://state/x.jsonl", "mailto://a:b@x", "${NOPE}",
                     "${BM_FUZZ:-x}", "json://127.0.0.1:1/h?token=abc", "Acme", "warning",
                     "critical", "", " ", "~", "[", "0.5", "1e-4", "mon", "25:99", *SIGNALS,
                     *SOURCE_TYPES]),
    st.text(max_size=20),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)), max_leaves=25)
documents = st.dictionaries(keys, values, max_size=8)


def _damaged(text: str) -> st.SearchStrategy[str]:
    """A valid file with a slice cut out or random text spliced in."""
    return st.tuples(st.integers(0, len(text)), st.integers(0, 40), st.text(max_size=30)).map(
        lambda t: text[:t[0]] + t[2] + text[t[0] + t[1]:])


base_config = BASE_CONFIG.format(lexicons=ROOT / "rules" / "lexicons")
config_texts = st.one_of(
    documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    documents.map(lambda d: yaml.safe_dump({**yaml.safe_load(base_config), **d})),
    _damaged(base_config),
    st.text(max_size=200),
)
rules_texts = st.one_of(
    st.lists(documents, max_size=4).map(lambda rules: yaml.safe_dump({"rules": rules})),
    st.lists(st.tuples(st.sampled_from(SIGNALS), documents), max_size=3).map(
        lambda rules: yaml.safe_dump({"rules": [
            {"name": f"r{i}", "signal": s, "channels": ["file"], **d}
            for i, (s, d) in enumerate(rules)]})),
    documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    _damaged(BASE_RULES),
    st.text(max_size=200),
)


def _check(exc: ConfigError) -> None:
    assert exc.problems, "a ConfigError without problems"
    for problem in exc.problems:
        assert isinstance(problem.file, str) and problem.file, problem
        assert problem.line is None or (type(problem.line) is int and problem.line >= 0), problem
        assert isinstance(problem.key, str), problem
        assert isinstance(problem.message, str) and problem.message.strip(), problem
        assert str(problem)  # renders as file:line: key: message


def _load(folder: Path, config_text: str, rules_text: str) -> None:
    (folder / "config.yaml").write_text(config_text, encoding="utf-8")
    (folder / "rules").mkdir(exist_ok=True)
    (folder / "rules" / "fuzz.yaml").write_text(rules_text, encoding="utf-8")
    try:
        config = load_config(folder / "config.yaml", environ={})
    except ConfigError as exc:
        _check(exc)
        return
    try:
        load_rules(Path(config.rules_dir), config)
    except ConfigError as exc:
        _check(exc)


# one folder per test, rewritten by each example
FUZZ = settings(max_examples=100, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@FUZZ
@given(text=config_texts)
def test_fuzzed_config_loads_or_reports_located_problems(tmp_path: Path, text: str) -> None:
    _load(tmp_path, text, BASE_RULES)


@FUZZ
@given(text=rules_texts)
@example(text="rules:\n- name: r\n  signal: influencer\n  channels: [file]\n"
              "  cooldown: .inf\n  escalate_after: 86400000000000.0\n")  # was OverflowError
def test_fuzzed_rules_load_or_report_located_problems(tmp_path: Path, text: str) -> None:
    _load(tmp_path, base_config, text)
