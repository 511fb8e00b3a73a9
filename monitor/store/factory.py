"""Where the backend is chosen: ``storage.backend`` names it, this opens it.

Each backend module offers ``open_from(config, base) -> Store``; the PostgreSQL one is
imported only when asked for (it needs the ``cluster`` extra: psycopg).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from monitor.config.schema import Config
from monitor.errors import StoreError
from monitor.store.api import Store
from monitor.store.sqlite import state_path

__all__ = ["BACKENDS", "open_store", "state_path", "store_exists"]

BACKENDS = {"sqlite": "monitor.store.sqlite", "postgres": "monitor.store.postgres"}


def open_store(config: Config, base: Path | None = None) -> Store:
    """Open (and migrate) the store ``config`` names."""
    name = config.storage.backend
    try:
        module = importlib.import_module(BACKENDS[name])
    except ImportError as exc:
        raise StoreError(f"storage.backend {name} needs the cluster extra: pip install "
                         f"'brand-monitor[cluster]' ({exc})") from exc
    store: Store = module.open_from(config, base)
    return store


def store_exists(config: Config, base: Path | None = None) -> bool:
    """Whether the store has been created (a server database always counts as created)."""
    return config.storage.backend != "sqlite" or state_path(config, base).exists()
