"""Choosing alerts to act on in bulk, and checking matchers against what exists.

**Open episodes** (for ``ack``/``unack``) are chosen by any mix of:

- references: an alert id, a unique prefix of one (at least 6 characters, as the
  ``alerts`` table shows them), a dedup key, or a glob (``churn-risk*``) matched
  against the open episodes' dedup keys (``rule|brand|key``) and rule names;
- ``rule`` and ``brand``: exact names or globs, case-insensitive.

References widen the choice, ``rule`` and ``brand`` narrow it; with no reference
every open episode passing the filters is chosen. Nothing at all is never "every
alert": :class:`SelectError`.

**Matchers** (silences) are checked against the known rule names, brands, signal
kinds and severities: a value that matches nothing is reported with the closest
known name ("did you mean 'churn-risk'?"); an exact value in another case is
written as the configured name.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from monitor.model import SEVERITIES
from monitor.route.lifecycle import Episode, Lifecycle

GLOB_CHARS = frozenset("*?[")
MIN_PREFIX = 6


class SelectError(Exception):
    """Nothing to act on, or a selection that would be too broad."""


@dataclass
class Selection:
    episodes: list[Episode] = field(default_factory=list)
    #: references that matched no open episode, each with the reason
    unmatched: list[tuple[str, str]] = field(default_factory=list)


def is_glob(text: str) -> bool:
    return any(ch in GLOB_CHARS for ch in text)


def matches(value: str, pattern: str) -> bool:
    """Exact or glob, case-insensitive."""
    return fnmatch.fnmatchcase(value.casefold(), pattern.casefold())


def select_open(lifecycle: Lifecycle, refs: Sequence[str], *, rule: str | None = None,
                brand: str | None = None) -> Selection:
    """The open episodes chosen by ``refs``, ``rule`` and ``brand`` (module doc)."""
    if not refs and rule is None and brand is None:
        raise SelectError("give alert ids, dedup keys or a glob (e.g. 'churn-risk*'), "
                          "or --rule / --brand")
    store = lifecycle.store
    episodes = lifecycle.episodes()
    brands: dict[str, str] = {}
    for episode in episodes:
        alert = store.get_alert(episode.alert_id)
        brands[episode.dedup_key] = alert.brand if alert is not None else \
            episode.dedup_key.split("|")[1] if "|" in episode.dedup_key else ""
    by_key = {e.dedup_key: e for e in episodes}
    chosen: dict[str, Episode] = {}
    selection = Selection()
    if not refs:
        chosen = dict(by_key)
    for ref in refs:
        found = _resolve(lifecycle, ref, episodes, by_key)
        if isinstance(found, str):
            selection.unmatched.append((ref, found))
            continue
        for episode in found:
            chosen.setdefault(episode.dedup_key, episode)
    for key, episode in list(chosen.items()):
        wrong_rule = rule is not None and not matches(episode.rule, rule)
        if wrong_rule or (brand is not None and not matches(brands.get(key, ""), brand)):
            del chosen[key]
    selection.episodes = sorted(chosen.values(), key=lambda e: (e.started_at, e.dedup_key))
    return selection


def _resolve(lifecycle: Lifecycle, ref: str, episodes: list[Episode],
             by_key: Mapping[str, Episode]) -> list[Episode] | str:
    """The open episodes ``ref`` names, or why it names none."""
    if ref in by_key:
        return [by_key[ref]]
    if is_glob(ref):
        found = [e for e in episodes if matches(e.dedup_key, ref) or matches(e.rule, ref)]
        return found or "matches no firing alert"
    store = lifecycle.store
    alert = store.get_alert(ref)
    if alert is None and len(ref) >= MIN_PREFIX:
        ids = store.alert_ids_with_prefix(ref, limit=2)
        if len(ids) > 1:
            return "is the start of several alert ids: give more of it"
        alert = store.get_alert(ids[0]) if ids else None
    if alert is None:
        return "no such alert id or firing dedup key"
    episode = by_key.get(alert.dedup_key)
    if episode is None or alert.created_at < episode.started_at:
        return "is not firing (already resolved)"
    return [episode]


@dataclass
class MatcherCheck:
    matchers: dict[str, str]
    notes: list[str] = field(default_factory=list)  # e.g. a name written as configured
    problems: list[str] = field(default_factory=list)  # matchers that match nothing


def check_matchers(matchers: Mapping[str, str], known: Mapping[str, Sequence[str]]
                   ) -> MatcherCheck:
    """Check each matcher against ``known`` names (``rule``, ``brand``, ``kind``; severity
    is always known); matchers without known names are taken as they are."""
    known = {**known, "severity": SEVERITIES}
    check = MatcherCheck(dict(matchers))
    for key, value in matchers.items():
        names = list(known.get(key, ()))
        if key not in known:
            continue
        if is_glob(value):
            if not any(matches(n, value) for n in names):
                bare = value.replace("*", "").replace("?", "")
                check.problems.append(_nothing(key, value, names, bare))
            continue
        if value in names:
            continue
        same = [n for n in names if n.casefold() == value.casefold()]
        if same:
            check.matchers[key] = same[0]
            check.notes.append(f"{key} {value!r} is written {same[0]!r} in the configuration")
            continue
        check.problems.append(_nothing(key, value, names, value))
    return check


def _nothing(key: str, value: str, names: Sequence[str], probe: str) -> str:
    close = difflib.get_close_matches(probe.casefold(), [n.casefold() for n in names], n=1,
                                      cutoff=0.6)
    original = {n.casefold(): n for n in names}
    hint = f"; did you mean {original[close[0]]!r}?" if close else ""
    shown = ", ".join(sorted(names)[:12]) + (", ..." if len(names) > 12 else "")
    return f"{key} {value!r} matches no {key} (known: {shown or 'none'}){hint}"


__all__ = ["MatcherCheck", "SelectError", "Selection", "check_matchers", "is_glob", "matches",
           "select_open"]
