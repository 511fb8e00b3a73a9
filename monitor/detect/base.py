"""The detector interface and registry.

One detector instance runs per (rule, brand). The engine calls ``observe`` for
each post of that brand as it arrives (evaluate on arrival) and ``tick`` as time
passes (closing buckets, resolving). Detectors keep their state in memory and
hand it to the store through ``to_state``/``load_state`` so a restart is warm.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from monitor.config.schema import BrandConfig, Rule
from monitor.model import Post, Signal
from monitor.registry import Registry

if TYPE_CHECKING:
    from monitor.detect.outbound.runtime import OutboundRuntime


@dataclass(frozen=True, slots=True)
class EnrichedPost:
    post: Post
    brand: str
    compound: float
    label: str  # negative | neutral | positive
    tags: tuple[str, ...] = ()  # e.g. purchase_intent, churn_risk (monitor.enrich.intent)

    @property
    def negative(self) -> bool:
        return self.label == "negative"

    @property
    def reach(self) -> int:
        return self.post.author.followers or 0


@dataclass(frozen=True, slots=True)
class DetectorContext:
    """What the engine shares with every detector it builds, beyond rule and brand:
    ``outbound``, the watchlist and approved-posts ledger of the outbound screen;
    ``expect(brand, bucket_start, expected)``, where a volume detector reports the
    mention count it expected of each bucket it closes (stored with the per-brand
    aggregates: the dashboard's expected band)."""

    outbound: OutboundRuntime
    expect: Callable[[str, datetime, float], None] | None = None


@dataclass(frozen=True, slots=True)
class NoParams:
    """For detectors without parameters."""


class Detector(ABC):
    Params: ClassVar[type[Any]] = NoParams
    kinds: ClassVar[tuple[str, ...]] = ("mention",)  # post kinds this detector reads

    def __init__(self, rule: Rule, brand: BrandConfig,
                 ctx: DetectorContext | None = None) -> None:
        self.rule = rule
        self.brand = brand
        self.ctx = ctx
        self.params = rule.params
        self.late = 0  # posts that arrived after their window had closed

    @abstractmethod
    def observe(self, item: EnrichedPost, now: datetime) -> list[Signal]:
        """A post for this brand arrived; return signals (firing or resolved)."""

    def tick(self, now: datetime) -> list[Signal]:
        """Time moved on to ``now`` with no post; return signals."""
        return []

    def next_tick(self) -> datetime | None:
        """The earliest time at which :meth:`tick` may have work (None: not until a post
        arrives). The engine ticks a detector only then, so idle detectors of many
        brands and rules cost nothing; the default asks for every tick."""
        return ALWAYS

    def dirty(self) -> bool:
        """True when state changed in a way worth persisting now."""
        return False

    def to_state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what ``to_state`` returned (possibly from an older version)."""
        return None

    def state_time(self) -> datetime | None:
        """The newest event time the detector's state holds (its open bucket, last
        post...): state from the future is poisoned and discarded at load."""
        return None

    def resumed(self, now: datetime) -> None:
        """The engine has replayed what the store held after a restart; live time
        starts at ``now`` (e.g. silences are measured from here, not from the
        replayed posts)."""
        return None

    def resume_from(self) -> datetime | None:
        """After a restart, posts created from this time on are observed again."""
        return None

    def signal(self, item_at: datetime, state: str, summary: str, *, key: str = "",
               details: dict[str, Any] | None = None, severity: str | None = None) -> Signal:
        return Signal(rule=self.rule.name, kind=self.rule.signal, brand=self.brand.name,
                      at=item_at, state=state,  # type: ignore[arg-type]
                      summary=summary, key=key, details=details or {},
                      severity=severity)  # type: ignore[arg-type]


#: ``next_tick`` of a detector that wants every tick
ALWAYS = datetime.min.replace(tzinfo=UTC)

DETECTORS: Registry[type[Detector]] = Registry("signal")
