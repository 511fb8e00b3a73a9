"""Exception hierarchy.

BrandMonitorError            base of everything the daemon raises on purpose
├── ConfigError              config.yaml or a rules file is invalid; carries every
│                            problem found as ``file:line: key: message`` lines
├── PostError                one input post is malformed (counted and skipped)
├── StoreError               the state database cannot be used (locked, full, corrupt)
│   ├── StoreBusy            locked by another connection: retry shortly
│   └── LeaseLost            this process no longer holds the lease it writes under
└── DeliveryError            a channel failed to deliver; ``retryable`` says whether
                             the outbox should try again (False = configuration error)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from monitor.secrets import mask


class BrandMonitorError(Exception):
    """Base class for the daemon's own errors."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One configuration problem, located in a file."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        line = "?" if self.line is None else str(self.line)
        return f"{self.file}:{line}: {self.key or '<root>'}: {self.message}"


class ConfigError(BrandMonitorError):
    """Invalid configuration; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class PostError(BrandMonitorError):
    """A malformed post: the message says which field and why."""


class StoreError(BrandMonitorError):
    """The state store cannot be used."""


class StoreBusy(StoreError):
    """The state store is locked by another connection or process: try again shortly
    (HTTP answers 503 with Retry-After; the engine retries the batch)."""


class LeaseLost(StoreError):
    """Another process took over the lease (the active daemon's, or a partition's)
    that this one writes under: its transaction was refused, it must stand down."""


class DeliveryError(BrandMonitorError):
    """A notification could not be delivered. The message is masked
    (``monitor.secrets``): it is logged, stored in the outbox and printed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(mask(message))
        self.retryable = retryable
