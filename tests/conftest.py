"""Shared fixtures: the repo root, ../shared data, and a small valid config on disk."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

BASE_CONFIG = """\
state_dir: state
rules_dir: rules
brands:
  - name: Acme
    handles: ["@acme"]
    keywords: ["acme"]
    allowed_domains: ["acme.example"]
channels:
  - name: file
    url: jsonl://state/alerts.jsonl
http:
  enabled: false
sentiment:
  packs: []
  lexicon_dir: {lexicons}
"""

BASE_RULES = """\
rules:
  - name: spike
    signal: volume_spike
    channels: [file]
    cooldown: 30m
    params: {bucket: 5m, min_count: 10, min_authors: 5}
  - name: negative
    signal: negative_surge
    channels: [file]
    params: {window: 1h, min_count: 20, min_negative: 10, min_authors: 5}
  - name: influencer
    signal: influencer
    channels: [file]
    cooldown: 0s
    params: {min_followers: 10000}
  - name: outbound
    signal: outbound
    severity: critical
    channels: [file]
    cooldown: 0s
"""


def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED


def write_project(tmp: Path, config: str = BASE_CONFIG, rules: str = BASE_RULES) -> Path:
    """Write config.yaml + rules/ under ``tmp``; return the config path."""
    (tmp / "rules").mkdir(parents=True, exist_ok=True)
    path = tmp / "config.yaml"
    path.write_text(textwrap.dedent(config).format(lexicons=ROOT / "rules" / "lexicons"))
    (tmp / "rules" / "base.yaml").write_text(textwrap.dedent(rules))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path)


@pytest.fixture(autouse=True)
def _drop_cli_log_handlers() -> Iterator[None]:
    """``main()`` installs a stderr log handler on the stream of its moment (often
    pytest's capture, closed after the test): remove it when the test ends."""
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_brand_monitor", False):
            root.removeHandler(handler)


@pytest.fixture(autouse=True)
def _isolate_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets registered while loading a test's config (a process-wide registry in
    monitor.secrets) must not mask another test's output."""
    from monitor import secrets

    monkeypatch.setattr(secrets, "_SECRETS", set(secrets._SECRETS))
    monkeypatch.setattr(secrets, "_pattern", secrets._pattern)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """A real PostgreSQL server for the session (tests/pg_server.py); skips with the
    reason when its binaries are not installed."""
    from tests.pg_server import start_or_skip

    server = start_or_skip()
    yield server
    server.stop()


@pytest.fixture
def nats_server() -> Iterator[Any]:
    """A real nats-server with JetStream for one test (tests/nats_server.py; it can be
    stopped and started again on the same port and storage); skips with the reason
    when the binary is not installed."""
    from tests.nats_server import start_or_skip

    server = start_or_skip()
    yield server
    server.close()


@pytest.fixture
def pg_dsn(pg_server: Any) -> str:
    """A fresh, migrated PostgreSQL database for one test."""
    return str(pg_server.new_database())


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Contract tests (STYLE #8): ``make_store(name="s")`` opens a store of the
    parametrised backend; the same name opens the same database again (as after a
    restart), another name a new one. All are closed at teardown."""
    opened: list[Any] = []
    dsns: dict[str, str] = {}

    def make(name: str = "s") -> Any:
        if request.param == "sqlite":
            from monitor.store.sqlite import SqliteStore

            opened.append(SqliteStore(tmp_path / f"{name}.db"))
        else:
            server = request.getfixturevalue("pg_server")  # skips without PostgreSQL
            from monitor.store.postgres import PostgresStore

            if name not in dsns:
                dsns[name] = server.new_database()
            opened.append(PostgresStore(dsns[name]))
        return opened[-1]

    make.backend = request.param  # type: ignore[attr-defined]
    yield make
    for store in opened:
        store.close()
