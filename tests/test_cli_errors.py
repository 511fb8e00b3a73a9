"""Issue 12 items 4, 5 and 10: every bad input is one line naming what to fix, with a
non-zero exit and no traceback (unless ``--debug``); ``check`` refuses exactly what
``run`` refuses, because both build the channels with the same function.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from monitor import commands
from monitor.app import Daemon
from monitor.cli import EX_CONFIG, main
from monitor.clock import ManualClock
from monitor.config.loader import load_config
from monitor.errors import ConfigError
from tests.conftest import BASE_CONFIG, ROOT, write_project
from tests.test_notify import free_port

URL_LINE = 12  # the line of the second channel's url in _with_channel()


def _with_channel(tmp_path: Path, url: str) -> Path:
    config = BASE_CONFIG.replace("    url: jsonl://state/alerts.jsonl\n",
                                 "    url: jsonl://state/alerts.jsonl\n"
                                 f"  - name: extra\n    url: {_braces(json.dumps(url))}\n")
    path = write_project(tmp_path, config)
    assert path.read_text().splitlines()[URL_LINE - 1].startswith("    url: ")
    return path


def _braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")  # write_project formats the text


def _run_process(config: Path, *args: str, env: dict[str, str] | None = None,
                 stdin: bytes | None = None, timeout: float = 60
                 ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "monitor", *args, "-c", str(config)],
                          input=stdin, capture_output=True, timeout=timeout, check=False,
                          cwd=config.parent, env={**os.environ, **(env or {}),
                                                  "PYTHONPATH": str(ROOT)})


# --- item 5: check refuses what run refuses ------------------------------------------

REFUSED = {
    "consol://": "unknown notification scheme consol:// (did you mean console://?)",
    "webhook://": "webhook:// needs a host, e.g. webhook://hooks.example.com/brand-monitor",
    "webhook:///alerts": "webhook:// needs a host",
    "webhooks://hooks.example.com:99999/x": "invalid webhooks:// URL (bad host or port",
    "nosuchscheme://x": "unknown notification scheme nosuchscheme://",
    "send the alerts to the PR team please": "not a notification URL: expected scheme://...",
    "jsonl://": "jsonl:// needs a file path",
    "json://": "invalid json:// URL: apprise does not accept it",
    "mailto://": "invalid mailto:// URL: apprise does not accept it",
}


@pytest.mark.parametrize("url", list(REFUSED))
def test_check_refuses_each_url_run_refuses_with_the_same_located_line(
        url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _with_channel(tmp_path, url)
    prefix = f"{config}:{URL_LINE}: channels[1].url: {REFUSED[url]}"
    assert main(["check", "-c", str(config)]) == 1
    out, err = capsys.readouterr()
    [line] = out.splitlines()
    assert line.startswith(prefix), line
    assert err == ""  # no apprise log line per word of free text
    assert main(["run", "-c", str(config)]) == EX_CONFIG  # the daemon does not start
    out, err = capsys.readouterr()
    assert err.splitlines() == [line] and out == ""


ACCEPTED = ["console://", "jsonl://state/x.jsonl", "webhook://127.0.0.1:9/hook",
            "webhooks://hooks.example.com/a?secret=${BM_HOOK_SECRET}",
            "json://127.0.0.1:9/hook",
            "mailtos://u:${BM_HOOK_SECRET}@smtp.example.com?to=a@example.com"
            "&from=b@example.com",
            "ntfy://ntfy.sh/brand-monitor-test"]


@pytest.mark.parametrize("url", ACCEPTED)
async def test_a_url_check_accepts_is_one_the_daemon_builds(
        url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BM_HOOK_SECRET", "hook-secret-0123456789")
    config = _with_channel(tmp_path, url)
    assert commands.check(config) == 0
    daemon = Daemon(config)
    try:
        worker = daemon.outbox_worker(ManualClock())
        assert set(worker.notifiers) == {"file", "extra"}
    finally:
        daemon.store.close()


def test_free_text_url_fails_run_in_one_line_without_apprise_noise(tmp_path: Path) -> None:
    config = _with_channel(tmp_path, "send the alerts to the PR team please")
    result = _run_process(config, "run")
    assert result.returncode == EX_CONFIG
    err = result.stderr.decode().splitlines()
    assert len(err) == 1 and "channels[1].url: not a notification URL" in err[0], err


# --- item 4: no open API on a public address; tokens of 16+ characters -------------

def _http(tmp_path: Path, http: str) -> Path:
    return write_project(tmp_path, BASE_CONFIG.replace("http:\n  enabled: false\n",
                                                       f"http:\n{_braces(http)}"))


def test_the_real_daemon_refuses_a_public_bind_without_api_token(tmp_path: Path) -> None:
    port = free_port()
    config = _http(tmp_path, f"  host: 0.0.0.0\n  port: {port}\n")
    result = _run_process(config, "run")
    assert result.returncode == EX_CONFIG
    [line] = result.stderr.decode().splitlines()
    assert line.startswith(f"{config}:12: http.host: '0.0.0.0' is reachable from the "
                           "network, but api_token is not set"), line
    assert "http.allow_no_api_token: true" in line
    with socket.socket() as probe:  # nothing was bound
        probe.bind(("127.0.0.1", port))


def test_check_reports_the_public_bind_too(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    config = _http(tmp_path, "  host: '::'\n")
    assert main(["check", "-c", str(config)]) == 1
    assert f"{config}:12: http.host: '::' is reachable" in capsys.readouterr().out


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost",
                                  "LOCALHOST."])
def test_loopback_hosts_need_no_api_token(tmp_path: Path, host: str) -> None:
    assert load_config(_http(tmp_path, f"  host: '{host}'\n")).http.host == host


@pytest.mark.parametrize("http", [
    "  host: 0.0.0.0\n  api_token: ${BM_API}\n",
    "  host: 192.0.2.10\n  allow_no_api_token: true\n",  # documented opt-out
    "  host: 0.0.0.0\n  enabled: false\n",
])
def test_a_public_bind_with_a_token_or_the_opt_out_loads(tmp_path: Path, http: str) -> None:
    config = load_config(_http(tmp_path, http), {"BM_API": "a" * 16})
    assert config.http.host


@pytest.mark.parametrize("key", ["api_token", "ingest_token", "ingest_hmac_secret"])
def test_tokens_shorter_than_16_characters_are_refused(tmp_path: Path, key: str) -> None:
    path = _http(tmp_path, f"  {key}: ${{BM_TOKEN}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {"BM_TOKEN": "fifteen-chars.."})
    [problem] = info.value.problems
    assert str(problem) == (f"{path}:12: http.{key}: too short (15 characters): use at "
                            "least 16 random characters, e.g. from 'openssl rand -hex 16'")
    assert load_config(path, {"BM_TOKEN": "sixteen-chars..."}).http


# --- item 10: config details -----------------------------------------------------------

def test_a_misspelled_lexicon_pack_names_its_config_line(tmp_path: Path) -> None:
    path = write_project(tmp_path, BASE_CONFIG.replace(
        "  packs: []\n", "  packs:\n    - travel\n    - customer-servise\n"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    [problem] = info.value.problems
    assert str(problem) == (f"{path}:16: sentiment.packs[1]: unknown lexicon pack "
                            "'customer-servise': did you mean 'customer-service'? (known in "
                            f"{ROOT / 'rules' / 'lexicons'}: customer-service, travel)")


async def test_an_empty_rules_file_keeps_the_running_rules_on_reload(tmp_path: Path) -> None:
    config = write_project(tmp_path)
    daemon = Daemon(config)
    try:
        before = len(daemon.engine.rules.rules)
        (tmp_path / "rules" / "base.yaml").write_text("")  # a truncated save
        assert daemon.reload() is False
        assert len(daemon.engine.rules.rules) == before == 4
    finally:
        daemon.store.close()


def test_rules_written_as_an_empty_list_are_allowed(tmp_path: Path) -> None:
    config = write_project(tmp_path)
    (tmp_path / "rules" / "none.yaml").write_text("rules: []\n")
    assert commands.check(config) == 0


def test_yaml_merge_keys_may_be_overridden_without_a_duplicate_error(tmp_path: Path) -> None:
    config = write_project(tmp_path, BASE_CONFIG.replace(
        "channels:\n  - name: file\n    url: jsonl://state/alerts.jsonl\n",
        "channels:\n  - &base\n    name: file\n    url: jsonl://state/alerts.jsonl\n"
        "    backoff: 1m\n  - <<: *base\n    name: other\n"))
    assert [c.name for c in load_config(config).channels] == ["file", "other"]


# --- item 10: one plain line, non-zero exit, traceback only with --debug --------------

def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_replay_of_a_missing_file_or_a_folder_is_one_line(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = project.parent / "nope.jsonl"
    assert main(["replay", str(missing), "-c", str(project)]) == 2
    assert _one_error_line(capsys) == (f"brand-monitor: {missing}: no such file (replay "
                                       "reads one JSONL file of posts)")
    assert main(["replay", str(project.parent), "-c", str(project)]) == 2
    assert _one_error_line(capsys) == (f"brand-monitor: {project.parent} is a folder: "
                                       "replay reads one JSONL file of posts")
    binary = project.parent / "posts.jsonl"
    binary.write_bytes(b'{"id": "1"}\n\xff\xfe\x00garbage\n')
    assert main(["replay", str(binary), "-c", str(project)]) == 2
    assert "not a UTF-8 text file" in _one_error_line(capsys)


@pytest.mark.parametrize("content, message", [
    ("time,count\n2024-01-01 00:00:00,3\n", "expected a 'timestamp,value' header"),
    ("timestamp,value\n2024-01-01 00:00:00,3\n2024-01-01 00:05:00,lots\n",
     ":3: could not convert string to float"),
    ("timestamp,value\nyesterday,3\n", ":2: Invalid isoformat string"),
    ("", "expected a 'timestamp,value' header"),
    ("\x00\x01\x02binary", "expected a 'timestamp,value' header"),
    ("timestamp,value\n2024-01-01 00:00:00,nan\n", ":2: value nan is not a count"),
    ("timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:05:00,-3\n",
     ":3: value -3.0 is not a count"),
    ("timestamp,value\n2024-01-01 00:05:00,1\n2024-01-01 00:00:00,2\n",
     ":3: timestamp 2024-01-01 00:00:00 is not after the previous line's"),
    ("timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:05:00+01:00,2\n",
     ":3: timestamps mix with and without a UTC offset"),
])
def test_a_malformed_backtest_csv_is_one_line(project: Path, content: str, message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    csv = project.parent / "series.csv"
    csv.write_text(content)
    assert main(["backtest", "--series", str(csv), "--json", "-c", str(project)]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"brand-monitor: {csv}") and message in line, line


def test_backtest_of_a_missing_file_or_an_empty_folder_is_one_line(
        project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--series", str(tmp_path / "x.csv"), "--json",
                 "-c", str(project)]) == 2
    assert "x.csv: no such file" in _one_error_line(capsys)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["backtest", "--series", str(empty), "--json", "-c", str(project)]) == 2
    assert _one_error_line(capsys) == f"brand-monitor: {empty}: no *.csv files in this folder"


def test_a_missing_config_file_is_one_line(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    for command in (["classify"], ["replay", "x.jsonl"], ["outbox", "list"], ["alerts"]):
        assert main([*command, "-c", str(missing)]) == 2, command
        assert _one_error_line(capsys).startswith(f"{missing}:?: <root>: cannot read"), command


def test_an_unexpected_error_is_one_line_and_a_traceback_with_debug(
        project: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def broken(*args: Any) -> int:
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(commands, "replay", broken)
    assert main(["replay", "x.jsonl", "-c", str(project)]) == 2
    assert _one_error_line(capsys) == ("brand-monitor replay: unexpected error RuntimeError: "
                                       "disk on fire second line (run with --debug for the "
                                       "traceback)")
    for argv in (["--debug", "replay", "x.jsonl"], ["replay", "x.jsonl", "--debug"]):
        assert main([*argv, "-c", str(project)]) == 2
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and "disk on fire" in err


def test_port_in_use_is_one_line_from_the_real_daemon(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = _http(tmp_path, f"  port: {port}\n")
        result = _run_process(config, "run")
    err = result.stderr.decode()
    assert result.returncode == 2 and "Traceback" not in err, err
    last = err.splitlines()[-1]
    assert last.startswith(f"brand-monitor: http: cannot listen on 127.0.0.1:{port}: "), last
    assert "address already in use" in last.lower() and "change http.port" in last


# --- item 10: classify / screen input ------------------------------------------------

def _records(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize("command", [commands.classify, commands.screen])
def test_an_over_long_line_is_an_error_record_and_the_rest_is_read(
        project: Path, command: Any, capsys: pytest.CaptureFixture[str]) -> None:
    long_text = "x" * (commands.MAX_LINE + 10)
    stdin = io.StringIO('{"id": "a", "text": "fine"}\n'
                        f'{{"id": "b", "text": "{long_text}"}}\n'
                        '{"id": "c", "text": "fine too"}\n'
                        f'{long_text}')  # and one at the very end, without a newline
    out = io.StringIO()
    assert command(project, stdin, out) == 1
    rows = _records(out)
    assert [r.get("id") for r in rows] == ["a", None, "c", None]
    problem = f"line longer than {commands.MAX_LINE} characters: skipped"
    assert rows[1] == {"line": 2, "error": problem} and rows[3] == {"line": 4, "error": problem}
    assert capsys.readouterr().err.splitlines() == [f"line 2: {problem}", f"line 4: {problem}"]


class CountingStream(io.StringIO):
    """Fails the test if a line is ever read whole, whatever its length."""

    largest = 0

    def readline(self, size: int | None = -1) -> str:
        assert size is not None and 0 < size <= commands.MAX_LINE + 1
        line = super().readline(size)
        self.largest = max(self.largest, len(line))
        return line


def test_a_48_mb_line_is_never_held_in_memory(project: Path) -> None:
    stream = CountingStream('{"id": 1, "text": "' + "y" * 48_000_000 + '"}\n'
                            '{"id": 2, "text": "ok"}\n')
    out = io.StringIO()
    assert commands.classify(project, stream, out) == 1
    assert stream.largest <= commands.MAX_LINE + 1
    assert [r.get("id") for r in _records(out)] == [None, 2]


@pytest.mark.parametrize("command", [commands.classify, commands.screen])
@pytest.mark.parametrize("line", ['{"text": "no id"}', '{"id": null, "text": "null id"}',
                                  '{"id": true, "text": "bool id"}',
                                  '{"id": {"a": 1}, "text": "object id"}'])
def test_an_input_without_a_usable_id_is_an_error_record(project: Path, command: Any,
                                                         line: str) -> None:
    out = io.StringIO()
    assert command(project, io.StringIO(line + '\n{"id": 7, "text": "fine"}\n'), out) == 1
    rows = _records(out)
    assert rows[0] == {"line": 1, "error": "expected an 'id' (a string or an integer)"}
    assert rows[1]["id"] == 7 and "error" not in rows[1]


def test_invalid_utf8_on_stdin_is_an_error_record_for_that_line(project: Path) -> None:
    stdin = b'{"id": 1, "text": "good"}\n{"id": 2, "text": "bad \xff\xfe"}\n' \
            b'{"id": 3, "text": "good again"}\n'
    result = _run_process(project, "classify", stdin=stdin)
    assert result.returncode == 1
    rows = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [r.get("id") for r in rows] == [1, None, 3]
    assert rows[1] == {"line": 2, "error": "not valid UTF-8"}
    assert result.stderr.decode().splitlines() == ["line 2: not valid UTF-8"]


@pytest.mark.parametrize("argv, message", [
    (["replay"], "brand-monitor replay: the following arguments are required: posts"),
    (["outbox", "frob"], "brand-monitor outbox: argument action: invalid choice: 'frob'"),
    (["outbox", "list", "--limit", "many"], "argument --limit: invalid int value: 'many'"),
    (["nope"], "brand-monitor: argument command: invalid choice: 'nope'"),
])
def test_a_usage_mistake_is_one_line(argv: list[str], message: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    line = _one_error_line(capsys)
    assert message in line and line.endswith("--help)"), line
