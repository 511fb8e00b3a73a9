"""What the live inbound stream says right now, for the outbound screen's trending context.

The engine hands every inbound post it stores to :meth:`TrendingContext.observe`
(one call, bounded work: the first :data:`SCAN` characters, at most
:data:`KEYS_PER_POST` keys). A post's *keys* are its hashtags, its capitalised
words (names: "Boston", "Aurora"), the stems of its death/violence/crime/tragedy
words ("~shoot" for "shooting", "shooters") and, for a post matched to a brand,
``@<brand>``. Each key keeps exponentially decayed counts (half-life
:data:`HALF_LIFE`, in event time) of the posts that carried it, of those that were
*dark* (a death, violence, crime or tragedy word) and of those strongly negative
(VADER compound <= -0.5), plus the dark words seen most with it.

:meth:`TrendingContext.lookup` answers for an outbound post: which of its keys
are trending (at least ``min_posts`` decayed posts) with a dark share of at least
``dark_share`` (or, for hashtags and names, three quarters strongly negative). The
brand's own key only counts when the post sells something (see checks_events).

Memory is bounded: at most :data:`MAX_KEYS` keys (least recently seen evicted,
O(1) with an ordered dict) and :data:`MAX_TERMS` dark words per key. The context
lives in memory only: after a restart it warms up again from the live stream.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache

from monitor.detect.outbound.context import TrendHit
from monitor.detect.outbound.text import PhraseSet, TextView
from monitor.detect.outbound.vocab import events_pack
from monitor.model import Post

HALF_LIFE = timedelta(hours=3)
MAX_KEYS = 10_000
MAX_TERMS = 6
KEYS_PER_POST = 12
SCAN = 400  # characters of an inbound post read
NEGATIVE = -0.5
REBASE_HALF_LIVES = 400  # (~50 days of 3-hour half-lives) then every key is rescaled once
_TOKEN = re.compile(r"#\w+|[^\W\d_][\w'’]*")
_STEM = re.compile(r"(?:ings|ing|ers|er|ed|es|s)$")
# capitalised words that are not names
_NOT_NAMES = frozenset("""
i a an the this that these those my our your his her its their we you he she it they me us
him them what why how who when where which there here and but or so if of in on at to for
with by from just not no yes rip omg lol wow please thanks thank happy good great best new
breaking update live today tonight tomorrow yesterday monday tuesday wednesday thursday friday
saturday sunday january february march april may june july august september october november
december can cant dont is are was were be been has have had do does did will would could
should all every some any one two three more most very really still so such
""".split())
DARK_TYPES = ("disaster", "terror", "shooting", "war_unrest", "death")
_EXTRA_DARK = ("dead", "death", "deaths", "died", "killed", "killing", "murder", "murdered",
               "murderer", "shooting", "shooter", "gunman", "stabbed", "stabbing", "bomb",
               "bombing", "explosion", "explosions", "victim", "victims", "massacre", "abuse",
               "abused", "rape", "raped", "hostage", "wounded", "injured", "crashed",
               "funeral", "vigil", "mourn", "mourning", "tragedy", "terror", "riots", "looted",
               "manhunt", "bodies", "flooding", "earthquake", "beat", "beaten", "bombers",
               "bombings", "shootings", "killer")


def stem(word: str) -> str:
    stemmed = _STEM.sub("", word)
    if len(stemmed) >= 3 and stemmed[-1] == stemmed[-2]:
        stemmed = stemmed[:-1]  # "shott" never; "stabb" -> "stab"
    return stemmed if len(stemmed) >= 3 else word


@lru_cache(maxsize=1)
def dark_words() -> tuple[frozenset[str], frozenset[str], PhraseSet]:
    """(dark words, their stems, the idioms that use them harmlessly)."""
    pack = events_pack()
    words: set[str] = set(_EXTRA_DARK)
    for name in DARK_TYPES:
        spec = pack["types"][name]
        for term in (*spec["strong"], *spec.get("weak", [])):
            if " " not in term and term.isalpha():
                words.add(term)
    # words that ordinary chat uses for other things ("I'd die for that", "a disaster of a
    # cake", "devastated my favourite went home") do not make a post dark
    words -= {"affected", "emergency", "loss", "lost", "legend", "border", "streets",
              "capital", "army", "military", "soldiers", "fighting", "trapped", "damage",
              "damaged", "rescue", "rescued", "homeless", "storm", "fires", "guns", "gun",
              "die", "dies", "dying", "disaster", "catastrophe", "devastated", "devastation",
              "heartbroken", "heartbreaking", "shocked", "saddened", "prayers", "destroyed",
              "beat", "attack", "attacks", "fire", "shot", "shots", "crash", "missing",
              "war", "conflict", "revolution", "protests", "blast", "lockdown", "violence"}
    return frozenset(words), frozenset(stem(w) for w in words), PhraseSet(pack["idioms"])


#: what :func:`extract` finds in a post: ((key, label), ...) and its dark words
Extracted = tuple[tuple[tuple[str, str], ...], tuple[str, ...]]


def extract(text: str) -> Extracted:
    """An inbound post's keys (hashtags, names, dark-word stems; at most KEYS_PER_POST,
    first SCAN characters) and dark words: a pure function of the text."""
    words, _, _ = dark_words()
    keys: dict[str, str] = {}
    dark: list[str] = []
    for index, match in enumerate(_TOKEN.finditer(text[:SCAN])):
        token = match.group(0)
        lower = token.casefold()
        if "'" in lower or "’" in lower:
            lower = lower.replace("'", "").replace("’", "")
        if lower[0] == "#":
            keys.setdefault(lower, token)
            if lower[1:] in words:
                dark.append(lower[1:])
        elif lower in words:
            dark.append(lower)
            keys.setdefault("~" + stem(lower), lower)
        elif token[0].isupper() and lower not in _NOT_NAMES and len(lower) >= 3 and (
                index or not token.isalpha() or len(token) > 1):
            keys.setdefault(lower, token)
        if len(keys) >= KEYS_PER_POST:
            break
    return tuple(keys.items()), tuple(dark)


class _Key:
    """Counts of one key in *scaled* units (see TrendingContext._gain): adding at time t
    adds gain(t), reading at time t divides by it, so nothing decays entry by entry."""

    __slots__ = ("dark", "label", "negative", "posts", "terms")

    def __init__(self, label: str) -> None:
        self.label = label
        self.posts = 0.0
        self.dark = 0.0
        self.negative = 0.0
        self.terms: dict[str, float] = {}

    def rescale(self, factor: float) -> None:
        self.posts *= factor
        self.dark *= factor
        self.negative *= factor
        for term in self.terms:
            self.terms[term] *= factor


class TrendingContext:
    """Bounded decayed counts of the inbound stream's keys (see the module docstring)."""

    def __init__(self, half_life: timedelta = HALF_LIFE, max_keys: int = MAX_KEYS) -> None:
        self.half_life = half_life.total_seconds()
        self.max_keys = max_keys
        self._keys: OrderedDict[str, _Key] = OrderedDict()
        self.latest = 0.0
        self.observed = 0
        self._ref: float | None = None  # event time at which the scale is 1

    def __len__(self) -> int:
        return len(self._keys)

    def clear(self) -> None:
        self._keys.clear()
        self.latest = 0.0
        self.observed = 0
        self._ref = None

    def _gain(self, now: float) -> float:
        """2 ** ((now - ref) / half-life): exponential decay as a growing weight for new
        posts; rebased (every key rescaled once) long before it could overflow."""
        if self._ref is None:
            self._ref = now
        exponent = (now - self._ref) / self.half_life
        if exponent > REBASE_HALF_LIVES:
            factor = math.exp2(-exponent) if exponent < 1000 else 0.0  # long gone
            for entry in self._keys.values():
                entry.rescale(factor)
            self._ref, exponent = now, 0.0
        return math.exp2(exponent)

    def observe(self, post: Post, compound: float | None = None,
                brands: tuple[str, ...] = ()) -> None:
        """One inbound post (the engine's hook): bounded work, bounded memory."""
        self.observe_keys(post.created_at.timestamp(), extract(post.text), compound, brands)

    def observe_keys(self, now: float, found: Extracted, compound: float | None = None,
                     brands: tuple[str, ...] = ()) -> None:
        """The same with the post's keys already extracted (:func:`extract` is pure: the
        enrichment worker runs it, the engine only counts)."""
        self.latest = max(self.latest, now)
        self.observed += 1
        keys, dark = found
        if brands:
            keys = (*keys, *(("@" + b.casefold(), b) for b in brands[:3]))
        negative = compound is not None and compound <= NEGATIVE
        gain = self._gain(now)
        for key, label in dict(keys).items():
            self._count(key, label, gain, dark, negative)
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)

    def _count(self, key: str, label: str, gain: float, dark: Sequence[str],
               negative: bool) -> None:
        entry = self._keys.get(key)
        if entry is None:
            entry = self._keys[key] = _Key(label)
        else:
            self._keys.move_to_end(key)
        entry.posts += gain
        if dark:
            entry.dark += gain
            for term in dict.fromkeys(dark):
                if term in entry.terms or len(entry.terms) < MAX_TERMS:
                    entry.terms[term] = entry.terms.get(term, 0.0) + gain
                else:  # full: the weakest term (decayed below one post) makes way
                    weakest = min(entry.terms, key=entry.terms.__getitem__)
                    if entry.terms[weakest] < gain:
                        del entry.terms[weakest]
                        entry.terms[term] = gain
        if negative:
            entry.negative += gain

    def keys_of(self, view: TextView) -> list[str]:
        """The keys an outbound post could match (idioms like "bath bombs" taken out)."""
        _, stems, idioms = dark_words()
        keys = [f"#{t}" for t in view.hashtags]
        for match in _TOKEN.finditer(view.raw):
            token = match.group(0)
            lower = token.casefold().replace("'", "").replace("’", "")
            if token[0].isupper() and lower not in _NOT_NAMES and len(lower) >= 3:
                keys.append(lower)
        idiom_words = {w for phrase in idioms.find(view) for w in phrase.split()}
        for word in view.token_set:
            if word.isalpha() and word not in idiom_words and stem(word) in stems:
                keys.append("~" + stem(word))
        return list(dict.fromkeys(keys))

    def lookup(self, view: TextView, brand: str | None, at: datetime | None,
               min_posts: float, dark_share: float) -> list[TrendHit]:
        now = at.timestamp() if at is not None else self.latest
        keys = self.keys_of(view)
        if brand:
            keys.append("@" + brand.casefold())
        hits = []
        scale = 1.0 / self._gain(now) if self._keys else 1.0
        for key in keys:
            entry = self._keys.get(key)
            if entry is None:
                continue
            posts = entry.posts * scale
            if posts < min_posts:
                continue
            named = key[0] not in "~@"
            if entry.dark / entry.posts >= dark_share or (
                    named and entry.negative / entry.posts >= 0.75):
                terms = tuple(sorted(entry.terms, key=lambda t: -entry.terms[t])[:3])
                hits.append(TrendHit(entry.label if key[0] != "~" else f"'{entry.label}'",
                                     posts, entry.dark * scale, entry.negative * scale,
                                     terms, brand=key[0] == "@"))
        return hits
