"""Domain sentiment: VADER (exact, fast) plus lexicon packs and brand neutralisation."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from monitor.enrich.lexicon import LexiconError, LexiconPack, load_packs, pack_paths, rule_params
from monitor.enrich.vader_fast import FastVader

__all__ = [
    "LexiconError",
    "LexiconPack",
    "SentimentAnalyzer",
    "SentimentScore",
    "load_packs",
    "pack_paths",
]

_URL_RE = re.compile(r"(?:\bhttps?://|\bwww\.)\S+", re.IGNORECASE)
_HANDLE_RE = re.compile(r"(?<![\w@])@\w+")
_DURATION_RE = re.compile(
    r"(?<![\w.])(?:\d+(?:[.,]\d+)?\+?|an?|one|two|three|four|five|six|seven|eight|nine|ten|"
    r"eleven|twelve|several|few|couple of)\s*(?:\+\s*)?"
    r"(?:hours?|hrs?|minutes?|mins?|days?|weeks?)(?!\w)",
    re.IGNORECASE)
DURATION_TOKEN = "xduration"


@dataclass(frozen=True, slots=True)
class SentimentScore:
    """VADER-style scores of one text; ``label`` derives from ``compound``."""

    compound: float
    pos: float
    neu: float
    neg: float
    label: str  # "negative" | "neutral" | "positive"


class SentimentAnalyzer:
    """Scores texts with VADER's rules, a domain lexicon and brand terms neutralised.

    ``packs`` are applied in order (later ones override); ``neutral_terms`` are the
    brand names, handles and hashtags from config: they never carry sentiment.
    """

    def __init__(self, packs: Sequence[LexiconPack] = (), neutral_terms: Iterable[str] = (),
                 *, positive_threshold: float = 0.05,
                 negative_threshold: float = -0.05) -> None:
        self.packs = tuple(packs)
        self.positive_threshold = positive_threshold
        self.negative_threshold = negative_threshold
        overrides: dict[str, float] = {}
        removals: set[str] = set()
        phrases: dict[str, float] = {}
        for pack in self.packs:
            for word in pack.neutral:
                removals.add(word)
                overrides.pop(word, None)
            for word, valence in pack.words.items():
                if valence == 0.0:  # 0 means "no sentiment": not a lexicon word at all
                    removals.add(word)
                    overrides.pop(word, None)
                else:
                    overrides[word] = valence
                    removals.discard(word)
            phrases.update(pack.phrases)
        self._phrase_re: re.Pattern[str] | None = None
        if phrases:
            for phrase, valence in phrases.items():
                if valence != 0.0:  # a 0 phrase is only joined, hiding its words
                    overrides[phrase.replace(" ", "_")] = valence
            alternatives = sorted(phrases, key=len, reverse=True)
            self._phrase_re = re.compile(
                r"(?<![\w'])(?:" + "|".join(
                    r"\s+".join(re.escape(w) for w in p.split()) for p in alternatives)
                + r")(?![\w'])", re.IGNORECASE)
        self._duration = rule_params(self.packs, "duration_complaint")
        if self._duration is not None:
            overrides[DURATION_TOKEN] = float(self._duration["valence"])
        polite = rule_params(self.packs, "polite_dampening")
        self._polite_words = frozenset(polite["words"]) if polite is not None else frozenset()
        self._polite_factor = float(polite["factor"]) if polite is not None else 1.0
        self._polite_questions = bool(polite["in_questions"]) if polite is not None else False
        dominance = rule_params(self.packs, "complaint_dominance")
        self._dominance = float(dominance["factor"]) if dominance is not None else None
        self._neutral_re = _terms_regex(neutral_terms)
        self._vader = FastVader(overrides, removals)

    def preprocess(self, text: str) -> str:
        """The text as VADER sees it: no URLs/handles/brands, phrases joined."""
        text = html.unescape(text)
        text = _URL_RE.sub(" ", text)
        text = _HANDLE_RE.sub(" ", text)
        if self._neutral_re is not None:
            text = self._neutral_re.sub(" ", text)
        if self._phrase_re is not None:
            text = self._phrase_re.sub(_join_phrase, text)
        if self._duration is not None:
            text = _DURATION_RE.sub(" " + DURATION_TOKEN + " ", text)
        return text

    def score(self, text: str) -> SentimentScore:
        clean = self.preprocess(text)
        words, sentiments, vader_text = self._vader.valences(clean)
        sentiments = self._apply_rules(words, sentiments, vader_text)
        scores = self._vader.score_valences(sentiments, vader_text)
        compound = scores["compound"]
        if compound >= self.positive_threshold:
            label = "positive"
        elif compound <= self.negative_threshold:
            label = "negative"
        else:
            label = "neutral"
        return SentimentScore(compound=compound, pos=scores["pos"], neu=scores["neu"],
                              neg=scores["neg"], label=label)

    def _apply_rules(self, words: list[str], sentiments: list[float], text: str) -> list[float]:
        """Domain rules on VADER's token valences (words are lower-cased tokens)."""
        complaint = any(s < 0 for s in sentiments)
        if self._polite_words and (complaint or (self._polite_questions and "?" in text)):
            polite, factor = self._polite_words, self._polite_factor
            sentiments = [s * factor if s > 0 and w in polite else s
                          for w, s in zip(words, sentiments, strict=True)]
        if complaint and self._dominance is not None:
            factor = self._dominance
            sentiments = [s * factor if s > 0 else s for s in sentiments]
        return sentiments


def _join_phrase(match: re.Match[str]) -> str:
    return "_".join(match.group(0).split())


def _terms_regex(terms: Iterable[str]) -> re.Pattern[str] | None:
    """Whole-word matcher for brand terms, with or without a leading @ or #."""
    bare: set[str] = set()
    for term in terms:
        words = term.strip().lstrip("@#").split()
        if words:
            bare.add(r"\s+".join(re.escape(w) for w in words))
    if not bare:
        return None
    alternatives = sorted(bare, key=len, reverse=True)
    return re.compile(r"(?<![\w@#])[@#]?(?:" + "|".join(alternatives) + r")(?!\w)",
                      re.IGNORECASE)
