"""The detector interface and registries.

One detector instance runs per (rule, brand). The engine calls ``observe`` for
each post of that brand as it arrives (evaluate on arrival) and ``tick`` as time
passes (closing buckets, resolving). Detectors keep their state in memory and
hand it to the store through ``to_state``/``load_state`` so a restart is warm.

**Modes.** A detector whose signals are about single posts (``modes`` not empty:
intent, influencer) can be presented one alert per post (``per_post``) or as a
running digest per brand (``digest``, :mod:`monitor.detect.digest`); a rule picks
with ``mode:`` (default: the detector's first mode). Modes register in
:data:`MODES` where they are defined; :func:`build_detector` applies the rule's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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
    # derived once per post (every bucketed rule reads them)
    negative: bool = field(init=False, repr=False, compare=False)
    reach: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "negative", self.label == "negative")
        object.__setattr__(self, "reach", self.post.author.followers or 0)


@dataclass(frozen=True, slots=True)
class DetectorContext:
    """What the engine shares with every detector it builds, beyond rule and brand:
    ``outbound``, the watchlist and approved-posts ledger of the outbound screen;
    ``expect(brand, bucket_start, expected)``, where a volume detector reports the
    mention count it expected of each bucket it closes (stored with the per-brand
    aggregates: the dashboard's expected band), if its buckets are ``expect_bucket``
    long (the aggregates' own; a longer bucket's expectation is not one of theirs)."""

    outbound: OutboundRuntime
    expect: Callable[[str, datetime, float], None] | None = None
    expect_bucket: timedelta | None = None  # the aggregates' bucket that ``expect`` is per


@dataclass(frozen=True, slots=True)
class NoParams:
    """For detectors without parameters."""


class Detector(ABC):
    Params: ClassVar[type[Any]] = NoParams
    kinds: ClassVar[tuple[str, ...]] = ("mention",)  # post kinds this detector reads
    #: the ways a rule may present this detector's signals, the default first (see the
    #: module doc); empty: one episode per brand already, the rule takes no ``mode``
    modes: ClassVar[tuple[str, ...]] = ()
    #: nothing happens to it as time passes (one signal per post): ``next_tick`` is
    #: always None, and the engine need not ask it after every post
    timeless: ClassVar[bool] = False

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

    def digest_phrase(self, people: int) -> str:
        """What ``people`` distinct authors did, for the headline of a digest of this
        detector's per-post signals ("12 customers said they are leaving Acme Air")."""
        return f"{people:,} {'person' if people == 1 else 'people'} posted about " \
            f"{self.brand.name} ({self.rule.name})"

    def signal(self, item_at: datetime, state: str, summary: str, *, key: str = "",
               details: dict[str, Any] | None = None, severity: str | None = None,
               update: int = 0) -> Signal:
        return Signal(rule=self.rule.name, kind=self.rule.signal, brand=self.brand.name,
                      at=item_at, state=state,  # type: ignore[arg-type]
                      summary=summary, key=key, details=details or {},
                      severity=severity, update=update)  # type: ignore[arg-type]


#: ``next_tick`` of a detector that wants every tick
ALWAYS = datetime.min.replace(tzinfo=UTC)

DETECTORS: Registry[type[Detector]] = Registry("signal")


@dataclass(frozen=True, slots=True)
class Mode:
    """A way of presenting a per-post detector's signals: ``wrap`` turns the detector
    into the one the engine runs, given the rule's parameters for the mode (built from
    ``Params``, e.g. the rule's ``digest:`` mapping; None for a mode without any)."""

    wrap: Callable[[Detector, Any], Detector]
    Params: type[Any] | None = None


MODES: Registry[Mode] = Registry("mode")
MODES.register("per_post")(Mode(lambda detector, params: detector))


def build_detector(rule: Rule, brand: BrandConfig, ctx: DetectorContext | None = None
                   ) -> Detector:
    """The detector the engine runs for ``rule`` and ``brand``, in the rule's mode."""
    detector = DETECTORS.get(rule.signal)(rule, brand, ctx)
    mode = rule.mode or (detector.modes[0] if detector.modes else None)
    if mode is None:
        return detector
    found = MODES.get(mode)
    params = None
    if found.Params is not None:  # a mode's parameters are the rule key named after it
        params = getattr(rule, mode, None) or found.Params()
    return found.wrap(detector, params)
