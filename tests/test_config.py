"""Config and rule loading: one fixture per error, each with its exact message."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from monitor import secrets
from monitor.cli import main
from monitor.config.loader import load_config, load_rules
from monitor.detect.volume import VolumeParams
from monitor.errors import ConfigError
from tests.conftest import BASE_CONFIG, ROOT, write_project

FIXTURES = Path(__file__).parent / "fixtures"
CONFIG_CASES = sorted((FIXTURES / "config").glob("*.bad.yaml"))
RULE_CASES = sorted((FIXTURES / "rules").glob("*.bad.yaml"))


def _expected(case: Path) -> str:
    return case.with_name(case.name.replace(".bad.yaml", ".expected")).read_text().strip()


@pytest.mark.parametrize("case", CONFIG_CASES, ids=[c.stem for c in CONFIG_CASES])
def test_bad_config_names_file_line_and_key(case: Path, tmp_path: Path) -> None:
    target = tmp_path / case.name
    shutil.copy(case, target)
    with pytest.raises(ConfigError) as info:
        load_config(target)
    messages = [str(p).replace(str(tmp_path) + "/", "") for p in info.value.problems]
    assert messages[0] == _expected(case)


@pytest.mark.parametrize("case", RULE_CASES, ids=[c.stem for c in RULE_CASES])
def test_bad_rule_file_names_file_line_and_key(case: Path, project: Path) -> None:
    rules_dir = project.parent / "rules"
    (rules_dir / "base.yaml").unlink()
    shutil.copy(case, rules_dir / case.name)
    config = load_config(project)
    with pytest.raises(ConfigError) as info:
        load_rules(rules_dir, config)
    messages = [str(p).replace(str(rules_dir) + "/", "") for p in info.value.problems]
    assert messages[0] == _expected(case)


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("brands:\n  - name: A\n    handles: [a]\n    typo: 1\nhttp:\n  port: x\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    keys = [p.key for p in info.value.problems]
    assert keys == ["brands[0].typo", "http.port"]


def test_valid_config_is_typed_and_immutable(project: Path) -> None:
    config = load_config(project)
    rules = load_rules(Path(config.rules_dir), config)
    assert config.brands[0].handles == ("@acme",)
    assert Path(config.state_dir) == project.parent / "state"
    spike = rules.by_name("spike")
    assert spike is not None and isinstance(spike.params, VolumeParams)
    assert spike.params.min_authors == 5 and spike.cooldown.total_seconds() == 1800
    with pytest.raises(AttributeError):
        config.log_level = "DEBUG"  # type: ignore[misc]


def test_duplicate_rule_names_across_files(project: Path) -> None:
    rules_dir = project.parent / "rules"
    (rules_dir / "more.yaml").write_text(
        "rules:\n  - name: spike\n    signal: influencer\n    channels: [file]\n")
    with pytest.raises(ConfigError) as info:
        load_rules(rules_dir, load_config(project))
    assert "rule 'spike' is already defined in" in str(info.value)
    assert str(info.value.problems[0].line) == "2"


def test_env_secret_is_expanded_and_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("BM_TEST_TOKEN", "s3cr3t-token-value")
    config_text = BASE_CONFIG.replace("http:\n  enabled: false",
                                      "http:\n  enabled: false\n  ingest_token: ${{BM_TEST_TOKEN}}")
    path = write_project(tmp_path, config_text)
    config = load_config(path)
    assert config.http.ingest_token == "s3cr3t-token-value"
    assert secrets.mask("token is s3cr3t-token-value") == "token is ***"
    logger = logging.getLogger("test.secret")
    handler = logging.StreamHandler()
    handler.addFilter(secrets.MaskingFilter())
    record = logger.makeRecord("t", logging.INFO, "f", 1, "sending with %s",
                               ("s3cr3t-token-value",), None)
    handler.filter(record)
    assert record.getMessage() == "sending with ***"


def test_check_cli_reports_problems_and_exit_code(project: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-c", str(project)]) == 0
    assert "ok: 1 brand(s)" in capsys.readouterr().out
    rules = project.parent / "rules" / "base.yaml"
    rules.write_text(rules.read_text().replace("channels: [file]", "channels: [nope]", 1))
    assert main(["check", "-c", str(project)]) == 1
    out = capsys.readouterr().out
    assert f"{rules}:4: rules[0].channels: unknown channel 'nope'" in out


def test_shipped_config_and_rules_are_valid() -> None:
    config = load_config(ROOT / "config.yaml")
    rules = load_rules(Path(config.rules_dir), config)
    signals = {r.signal for r in rules.rules}
    assert signals == {"volume_spike", "negative_surge", "influencer", "outbound",
                       "source_silence", "intent"}
    assert any(s.type == "demo" for s in config.sources)
