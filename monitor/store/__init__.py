"""Durable state behind one boundary: ``api`` (typed interfaces per concern), ``records``
(the values it hands out), two backends (``sqlite``, ``postgres``) and ``factory``
(``open_store``: the backend ``storage.backend`` names)."""

from monitor.store.api import Store
from monitor.store.records import OutboxItem

__all__ = ["OutboxItem", "Store"]
