"""A real PostgreSQL server for the tests, from Debian's package (``.ci/run`` installs it).

``PgServer.start`` runs initdb and pg_ctl into a temporary folder (owned by the
``postgres`` user when the tests run as root: PostgreSQL refuses to run as root),
listening on a random port on 127.0.0.1 and on a unix socket in that folder. Each
test gets a fresh database cloned from a migrated template (milliseconds).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.daemon import free_port

SKIP_REASON = ("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install "
               "postgresql (.ci/run does), or these tests skip")


def binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PgServer:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="bm-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self._names = itertools.count(1)
        self.template_ready = False

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(a) for a in args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)

    def start(self) -> PgServer:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust",
                  "-U", self.user, "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        conf = (f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\nfsync = off\n"
                "synchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n"
                "shared_buffers = 64MB\n")
        with (self.data / "postgresql.conf").open("a") as handle:
            handle.write(conf)
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.root / "log"), "-w", "-t", "60", "start")
        return self

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.root} port={self.port} user={self.user} dbname={dbname}"

    def new_database(self) -> str:
        """A fresh, migrated database; its DSN."""
        import psycopg

        from monitor.store.postgres import PostgresStore

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            if not self.template_ready:
                conn.execute("CREATE DATABASE bm_template")
                PostgresStore(self.dsn("bm_template")).close()
                self.template_ready = True
            name = f"t{next(self._names)}"
            for _ in range(50):  # the template must have no other connection
                try:
                    conn.execute(f"CREATE DATABASE {name} TEMPLATE bm_template")
                    break
                except psycopg.errors.ObjectInUse:
                    time.sleep(0.1)
        return self.dsn(name)

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                  "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def start_or_skip() -> PgServer:
    bindir = binaries()
    if bindir is None:
        pytest.skip(SKIP_REASON)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed: pip install -e '.[test]'")
    return PgServer(bindir).start()
