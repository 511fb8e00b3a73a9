"""Issue 12 item 9: the install steps of systemd/README.md work as written.

The ``install`` lines of the README's install block are run, as they are, with
``DESTDIR`` set to a scratch root; then ``brand-monitor check`` runs on the
installed config, the layout is checked against the unit (config from
``ConfigurationDirectory=``, every path the daemon writes inside
``StateDirectory=``), and ``systemd-analyze verify`` runs on the installed unit
(skipped only when systemd-analyze is absent: .ci/install-systemd-tools.sh
installs it).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config.loader import load_config, load_rules
from tests.conftest import ROOT
from tests.test_systemd import ANALYZE, _analyze, _quote, _service_settings

README = ROOT / "systemd" / "README.md"
ETC = "/etc/brand-monitor"


def install_lines() -> list[str]:
    """The ``install ...`` commands of the README's first sh block under "## Install"."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Install"):]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "no sh block in the README's Install section"
    lines = [line.strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line.startswith("install ")]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("destdir")
    lines = install_lines()
    assert len(lines) >= 5
    for line in lines:
        result = subprocess.run(["bash", "-euc", line], cwd=ROOT, capture_output=True,
                                text=True, env={**os.environ, "DESTDIR": str(dest)},
                                check=False)
        assert result.returncode == 0, f"{line}: {result.stderr}"
    return dest


def test_the_install_lines_write_only_under_destdir(root: Path) -> None:
    for line in install_lines():
        absolute = [w for w in shlex.split(line) if w.startswith("/")]
        assert set(absolute) <= {"/dev/null"}, line  # targets are "$DESTDIR/..."
        assert "$DESTDIR/" in line, line
    config = root / "etc" / "brand-monitor"
    assert (config / "config.yaml").is_file()
    assert sorted(p.name for p in (config / "rules").glob("*.yaml")) == sorted(
        p.name for p in (ROOT / "rules").glob("*.yaml"))
    assert (config / "rules" / "lexicons" / "customer-service.yaml").is_file()
    assert (config / "brand-monitor.env").stat().st_mode & 0o777 == 0o600
    assert (root / "etc" / "systemd" / "system" / "brand-monitor.service").is_file()


def test_check_passes_on_the_installed_config(root: Path) -> None:
    config = root / "etc" / "brand-monitor" / "config.yaml"
    result = subprocess.run([sys.executable, "-m", "monitor", "check", "-c", str(config)],
                            capture_output=True, text=True, cwd="/", check=False,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok: 1 brand(s), 0 source(s), 3 channel(s), " in result.stdout
    assert result.stderr == ""


def test_the_installed_layout_matches_the_unit(root: Path) -> None:
    unit = _service_settings((root / "etc" / "systemd" / "system" /
                              "brand-monitor.service").read_text(encoding="utf-8"))
    state = f"/var/lib/{unit['StateDirectory'][-1]}"
    assert f"/etc/{unit['ConfigurationDirectory'][-1]}" == ETC
    assert unit["WorkingDirectory"][-1] == state
    assert unit["ExecStart"][-1].split()[-1] == f"{ETC}/config.yaml"
    assert unit["RestartPreventExitStatus"][-1] == "78"  # `run` with a bad config

    config = load_config(root / "etc" / "brand-monitor" / "config.yaml")
    # rules and lexicons beside the config; everything written inside StateDirectory=
    assert Path(config.rules_dir) == root / "etc" / "brand-monitor" / "rules"
    assert len(load_rules(Path(config.rules_dir), config).rules) >= 5
    assert Path(config.sentiment.lexicon_dir).is_relative_to(root / "etc" / "brand-monitor")
    assert config.state_dir == state
    written = [c.url.removeprefix("jsonl://") for c in config.channels
               if c.url.startswith("jsonl://")]
    assert written and all(Path(p).is_absolute() and Path(p).is_relative_to(state)
                           for p in written), written
    assert not any(s.type == "demo" for s in config.sources)


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_installed_unit(root: Path, tmp_path: Path) -> None:
    installed = root / "etc" / "systemd" / "system" / "brand-monitor.service"
    text = installed.read_text(encoding="utf-8")
    # ExecStart= names /opt/brand-monitor/venv (step 1, not run here): point it at this
    # Python and the installed config instead; everything else is verified as installed
    exec_start = "ExecStart=" + " ".join(_quote(a) for a in [
        sys.executable, "-m", "monitor", "run", "-c",
        str(root / "etc" / "brand-monitor" / "config.yaml")])
    copied, count = re.subn(r"(?m)^ExecStart=.*$", lambda _m: exec_start, text)
    assert count == 1
    unit = tmp_path / installed.name
    unit.write_text(copied, encoding="utf-8")
    result = _analyze("verify", "--man=no", str(unit))
    assert result.returncode == 0, result.stderr
    complaints = [line for line in result.stderr.splitlines() if installed.name in line]
    assert not complaints, "\n".join(complaints)
