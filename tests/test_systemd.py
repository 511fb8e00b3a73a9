"""The shipped systemd unit: it parses, is sandboxed, and declares notify + watchdog.

Needs ``systemd-analyze`` (CI installs it with .ci/install-systemd-tools.sh); the
tests that run it are skipped when it is absent.  systemd need not be PID 1.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "brand-monitor.service"
MAX_EXPOSURE = 1.5
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    env = {**os.environ, "SYSTEMD_PAGER": "", "PAGER": "cat", "SYSTEMD_COLORS": "0",
           "SYSTEMD_LOG_COLOR": "0", "LC_ALL": "C.UTF-8"}
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, encoding="utf-8",
                          errors="replace", env=env, timeout=120, check=False)


def _service_settings(text: str) -> dict[str, list[str]]:
    """[Service] assignments of a unit file: key -> values in order (no continuations)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section == "Service" and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def _quote(arg: str) -> str:
    return f'"{arg}"' if re.search(r'[\s"\\$%;]', arg) else arg


def _exec_start_candidates() -> list[object]:
    """This venv's console script (if installed) and ``python -m monitor``."""
    script = shutil.which("brand-monitor")
    beside = Path(sys.executable).parent / "brand-monitor"
    if beside.is_file() and os.access(beside, os.X_OK):
        script = str(beside)
    config = ["run", "-c", "/etc/brand-monitor/config.yaml"]
    return [
        pytest.param("console-script", [script, *config] if script else None,
                     id="console-script"),
        pytest.param("python-module", [sys.executable, "-m", "monitor", *config],
                     id="python-module"),
    ]


@needs_analyze
@pytest.mark.parametrize(("variant", "argv"), _exec_start_candidates())
def test_unit_verifies(tmp_path: Path, variant: str, argv: list[str] | None) -> None:
    if argv is None:
        pytest.skip(f"no {variant} in this environment")
    # The real ExecStart= names /opt/brand-monitor/..., which does not exist here and
    # makes verify fail; check a copy that runs this venv's daemon instead.
    text = UNIT.read_text(encoding="utf-8")
    exec_start = "ExecStart=" + " ".join(_quote(a) for a in argv)
    copied, count = re.subn(r"(?m)^ExecStart=.*$", lambda _m: exec_start, text)
    assert count == 1, "expected exactly one ExecStart= line"
    unit = tmp_path / UNIT.name
    unit.write_text(copied, encoding="utf-8")

    result = _analyze("verify", "--man=no", str(unit))
    print(result.stdout)
    print(result.stderr, file=sys.stderr)
    assert result.returncode == 0, f"systemd-analyze verify failed:\n{result.stderr}"
    # verify exits 0 on unknown keys and unparsable values ("..., ignoring"); those
    # are reported against the file, so any complaint naming it is a failure too.
    complaints = [line for line in result.stderr.splitlines() if str(unit) in line
                  or line.startswith(UNIT.name)]
    assert not complaints, "\n".join(complaints)


@needs_analyze
def test_unit_security_exposure() -> None:
    result = _analyze("security", "--offline=true", str(UNIT))
    print(result.stdout)
    print(result.stderr, file=sys.stderr)
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert match, f"no exposure level in output (rc={result.returncode}):\n{result.stderr}"
    exposure = float(match[1])
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE}"
    assert f"{UNIT}:" not in result.stderr, result.stderr


def test_unit_declares_notify_watchdog_restart() -> None:
    settings = _service_settings(UNIT.read_text(encoding="utf-8"))

    def one(key: str) -> str:
        values = settings.get(key)
        assert values, f"{key}= missing from [Service]"
        return values[-1]

    assert one("Type") == "notify"
    assert one("NotifyAccess") == "main"
    assert re.fullmatch(r"\d+(s|sec|min)?", one("WatchdogSec")), one("WatchdogSec")
    assert one("Restart") == "on-failure"
    assert one("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one("ExecStart").split()[1:] == ["run", "-c", "/etc/brand-monitor/config.yaml"]
    assert one("TimeoutStopSec")
    # The daemon talks TCP (HTTPS/SMTP/local HTTP) and AF_UNIX (notify socket), and
    # must reach arbitrary remote hosts, so it may not deny every address.
    assert set(one("RestrictAddressFamilies").split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    denied = " ".join(settings.get("IPAddressDeny", [])).split()
    assert "any" not in denied
    assert one("StateDirectory") == "brand-monitor"
    assert one("ConfigurationDirectory") == "brand-monitor"
