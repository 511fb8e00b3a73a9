"""Domain sentiment: VADER (exact, fast) plus lexicon packs and brand neutralisation.

Scoring a post:

1. HTML entities are decoded; URLs, @handles and the configured brand terms (names,
   handles, hashtags) are removed, so "@united" or "Delta" never carry sentiment.
2. Multi-word pack entries ("on hold", "customer care") are joined into one token;
   stated durations ("3 hours", "45mins") become one duration token.
3. VADER's rules run with the packs' ``words`` merged into its lexicon.
4. ``signals`` (and the duration token) get their fixed valence, untouched by
   negation: "no refund" and "still haven't got my refund" are both complaints.
5. Rules: polite words inside a complaint or question, and positive words inside a
   complaint, are damped; then VADER's compound, pos/neu/neg are computed as usual.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.enrich.lexicon import (
    LexiconError,
    LexiconPack,
    TermMatcher,
    Vocabulary,
    load_packs,
    pack_paths,
    rule_params,
)
from monitor.enrich.vader_fast import NEGATE, FastVader

__all__ = [
    "LexiconError",
    "LexiconPack",
    "SentimentAnalyzer",
    "SentimentScore",
    "load_packs",
    "pack_paths",
]

# patterns start with a literal so that the regex engine can skip ahead to it
_URL_RE = re.compile(r"(?:http(?<!\w....)s?://|www(?<!\w...)\.)\S+", re.IGNORECASE)
_HANDLE_RE = re.compile(r"@(?<![\w@]@)\w+")
_NUMBER_WORDS = ("an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                 "fifteen|twenty|thirty|forty|fifty|several|few|couple(?: of)?")
_DURATION_RE = re.compile(
    r"(?<![\w.:$])(?:\d+(?:[.,]\d+)?\s*\+?|(?:" + _NUMBER_WORDS + r")\s+)\s*(?:more\s+)?"
    r"(?:hours?|hrs?|minutes?|mins?|days?|weeks?)(?![^\W\d_])",
    re.IGNORECASE)
_HASHTAG_RE = re.compile(r"#(?<![\w#]#)([A-Za-z][A-Za-z0-9]*)\b")
_DURATION_UNITS = ("hour", "hr", "min", "day", "week")
_HASHTAG_NEGATIONS = ("not", "no", "never")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+")
_CAMEL_RE = re.compile(r"[a-z][A-Z]")
_CAMEL_PART_RE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})  # "didn’t"
DURATION_TOKEN = "xduration"  # what a stated duration becomes (a token VADER ignores)


@dataclass(frozen=True, slots=True)
class SentimentScore:
    """VADER-style scores of one text; ``label`` derives from ``compound``."""

    compound: float
    pos: float
    neu: float
    neg: float
    label: str  # "negative" | "neutral" | "positive"


@dataclass(frozen=True, slots=True)
class _Rules:
    """The packs' rule settings, merged (later packs win); None/empty: rule off."""

    duration: float | None = None
    negation: float | None = None
    negation_in_questions: bool = False
    emphatic: float | None = None
    polite_words: frozenset[str] = frozenset()
    polite_factor: float = 1.0
    polite_in_questions: bool = False
    requests: frozenset[str] = frozenset()
    dominance: float | None = None
    question: float | None = None
    irrealis_words: frozenset[str] = frozenset()
    irrealis: float = 1.0
    hashtags: bool = False
    by_sentence: bool = False

    @classmethod
    def from_packs(cls, packs: Sequence[LexiconPack]) -> _Rules:
        def get(rule: str) -> dict[str, Any]:
            return rule_params(packs, rule) or {}

        duration, negation, emphatic = (get("duration_complaint"), get("negation_complaint"),
                                        get("emphatic_question"))
        polite, irrealis = get("polite_dampening"), get("irrealis_dampening")
        dominance, question = get("complaint_dominance"), get("question_dampening")
        return cls(
            duration=duration.get("valence"),
            negation=negation.get("valence"),
            negation_in_questions=negation.get("in_questions", False),
            emphatic=emphatic.get("valence"),
            polite_words=frozenset(polite.get("words", ())),
            polite_factor=polite.get("factor", 1.0),
            polite_in_questions=polite.get("in_questions", False),
            requests=frozenset(polite.get("requests", ())),
            dominance=dominance.get("factor"),
            question=question.get("factor"),
            irrealis_words=frozenset(irrealis.get("words", ())),
            irrealis=irrealis.get("factor", 1.0),
            hashtags=rule_params(packs, "hashtag_words") is not None,
            by_sentence=rule_params(packs, "sentence_scope") is not None,
        )


class SentimentAnalyzer:
    """Scores texts with VADER's rules, domain lexicon packs and brand terms neutralised.

    ``packs`` are applied in order (later ones override earlier ones); ``neutral_terms``
    are the brand names and handles from config ("united", "@united", "American Air"):
    they never carry sentiment, with or without a leading @ or #. Label cut-offs on
    compound: the arguments, else the last pack that sets them, else VADER's +-0.05.
    """

    def __init__(self, packs: Sequence[LexiconPack] = (), neutral_terms: Iterable[str] = (),
                 *, positive_threshold: float | None = None,
                 negative_threshold: float | None = None) -> None:
        self.packs = tuple(packs)
        self.positive_threshold = _last(
            positive_threshold, [p.positive_threshold for p in self.packs], 0.05)
        self.negative_threshold = _last(
            negative_threshold, [p.negative_threshold for p in self.packs], -0.05)
        if self.negative_threshold >= self.positive_threshold:
            raise ValueError("negative_threshold must be below positive_threshold")
        self._rules = rules = _Rules.from_packs(self.packs)
        vocabulary = Vocabulary.merge(self.packs)
        signals = dict(vocabulary.signals)
        if rules.duration is not None:
            signals[DURATION_TOKEN] = rules.duration
        removals = vocabulary.removals | set(signals)  # VADER must not score/negate these
        self._signals = {k: v for k, v in signals.items() if v != 0.0}
        self._phrases = TermMatcher(vocabulary.phrases)
        self._vader = FastVader(vocabulary.overrides, removals)
        brands = {" ".join(t.strip().lstrip("@#").split()) for t in neutral_terms} - {""}
        self._brands = TermMatcher(brands, boundary="@#", after=r"\w", prefixes="@#")
        self._brand_words = sorted({b.lower().replace(" ", "") for b in brands},
                                   key=len, reverse=True)
        # hashtag body -> the text it stands for (phrases are written without spaces)
        self._hashtag_words = {w: w for w in self._vader.lexicon if w.isalpha()}
        self._hashtag_words.update(
            (k.replace("_", ""), k.replace("_", " ")) for k in self._signals)

    def score(self, text: str) -> SentimentScore:
        """Score one post; ``label`` follows the analyser's thresholds on ``compound``."""
        _, sentiments, vader_text = self._analyse(text)
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

    def explain(self, text: str) -> list[tuple[str, float]]:
        """The tokens that carry sentiment and their final valences, in order."""
        words, sentiments, _ = self._analyse(text)
        return [(w, round(s, 3)) for w, s in zip(words, sentiments, strict=True) if s]

    def preprocess(self, text: str) -> str:
        """The text as VADER sees it: no URLs/handles/brands, phrases joined."""
        if "&" in text:
            text = html.unescape(text)
        if not text.isascii():  # emoji as words (as VADER would) so that packs can use them
            text = self._vader.replace_emoji(text.translate(_APOSTROPHES))
        if "http" in text or "www." in text or "HTTP" in text or "WWW." in text:
            text = _URL_RE.sub(" ", text)
        if "@" in text:
            text = _HANDLE_RE.sub(" ", text)
        if self._rules.hashtags and "#" in text:
            text = _HASHTAG_RE.sub(self._hashtag, text)
        text = self._brands.sub(text, _blank)
        text = self._phrases.sub(text, _join_phrase)
        if self._rules.duration is not None:
            low = text.lower()
            if any(unit in low for unit in _DURATION_UNITS):
                text = _DURATION_RE.sub(" " + DURATION_TOKEN + " ", text)
        return text

    def _analyse(self, text: str) -> tuple[list[str], list[float], str]:
        words, sentiments, vader_text = self._valences(self.preprocess(text))
        return words, self._apply_rules(words, sentiments, vader_text), vader_text

    def _valences(self, text: str) -> tuple[list[str], list[float], str]:
        """VADER's token valences, sentence by sentence if sentence_scope is on: then a
        negation or a "but" does not reach into the next sentence ("no seat?  WTF.")."""
        parts = _SENTENCE_END_RE.split(text) if self._rules.by_sentence else [text]
        if len(parts) == 1:
            return self._vader.valences(text)
        words: list[str] = []
        sentiments: list[float] = []
        texts: list[str] = []
        for part in parts:
            part_words, part_sentiments, part_text = self._vader.valences(part)
            words += part_words
            sentiments += part_sentiments
            if part_text:
                texts.append(part_text)
        return words, sentiments, " ".join(texts)

    def _hashtag(self, match: re.Match[str]) -> str:
        """Replace a hashtag by the words it is made of, when they can be told."""
        body = match.group(1)
        if _CAMEL_RE.search(body):
            return " " + " ".join(_CAMEL_PART_RE.findall(body)) + " "
        rest = body.lower()
        for brand in self._brand_words:  # "#unitedsucks" -> "sucks"
            if rest.startswith(brand) and len(rest) > len(brand):
                rest = rest[len(brand):]
            elif rest.endswith(brand) and len(rest) > len(brand):
                rest = rest[:-len(brand)]
        known = self._hashtag_words
        for size in range(len(rest), 2, -1):
            if rest[-size:] in known:  # the head of a compound comes last
                head = rest[:-size]
                negation = next((n for n in _HASHTAG_NEGATIONS if head.endswith(n)), "")
                return f" {negation} {known[rest[-size:]]} "  # "#nothappy"
            if rest[:size] in known:
                return " " + known[rest[:size]] + " "
        return match.group(0)

    def _apply_rules(self, words: list[str], sentiments: list[float], text: str) -> list[float]:
        """Signals and domain rules on VADER's token valences.

        ``words`` are the lower-cased tokens, ``text`` the text they were split from.
        """
        rules = self._rules
        signals = self._signals
        if signals and not signals.keys().isdisjoint(words):
            sentiments = [signals.get(w, s) for w, s in zip(words, sentiments, strict=True)]
        if rules.negation is not None:
            sentiments = self._negation_signals(words, sentiments, text, rules.negation)
        if rules.emphatic is not None and ("??" in text or "?!" in text or "!?" in text):
            sentiments = _emphatic_signal(text, sentiments, rules.emphatic)
        complaint = any(s < 0 for s in sentiments)
        if rules.polite_words and (complaint or (rules.polite_in_questions and "?" in text)
                                   or not rules.requests.isdisjoint(words)):
            polite, factor = rules.polite_words, rules.polite_factor
            sentiments = [s * factor if s > 0 and w in polite else s
                          for w, s in zip(words, sentiments, strict=True)]
        if complaint:
            if rules.dominance is not None:
                factor = rules.dominance
                sentiments = [s * factor if s > 0 else s for s in sentiments]
            return sentiments
        if rules.question is not None and "?" in text:
            sentiments = _damp_positive(sentiments, _in_question(text), rules.question)
        if rules.irrealis_words and not rules.irrealis_words.isdisjoint(words):
            wished = _in_sentence_with(text, words, rules.irrealis_words)
            sentiments = _damp_positive(sentiments, wished, rules.irrealis)
        return sentiments

    def _negation_signals(self, words: list[str], sentiments: list[float], text: str,
                          valence: float) -> list[float]:
        """Score negations that VADER left unused (no lexicon word in the 3 after)."""
        lexicon = self._vader.lexicon
        asked = (_in_question(text) if "?" in text and not self._rules.negation_in_questions
                 else None)
        out = sentiments
        for i, word in enumerate(words):
            if (word in NEGATE or "n't" in word) and not sentiments[i] and not any(
                    w in lexicon for w in words[i + 1:i + 4]) and not (asked and asked[i]):
                if out is sentiments:
                    out = list(sentiments)
                out[i] = valence
        return out


def _damp_positive(sentiments: list[float], where: list[bool], factor: float) -> list[float]:
    return [s * factor if s > 0 and w else s for s, w in zip(sentiments, where, strict=True)]


def _emphatic_signal(text: str, sentiments: list[float], valence: float) -> list[float]:
    """Give the first token carrying "??", "?!" or "!?" the valence, if it has none."""
    for i, token in enumerate(text.split()):
        if "??" in token or "?!" in token or "!?" in token:
            if sentiments[i]:
                return sentiments
            out = list(sentiments)
            out[i] = valence
            return out
    return sentiments


def _sentences(text: str) -> list[int]:
    """Sentence number of each whitespace token of ``text`` (split after . ! ?)."""
    out = []
    number = 0
    for token in text.split():
        out.append(number)
        if token.rstrip("\"')”’").endswith((".", "!", "?")):
            number += 1
    return out


def _in_sentence_with(text: str, words: list[str], markers: frozenset[str]) -> list[bool]:
    """For each token: does its sentence contain one of ``markers``?"""
    numbers = _sentences(text)
    marked = {n for n, w in zip(numbers, words, strict=True) if w in markers}
    return [n in marked for n in numbers]


def _in_question(text: str) -> list[bool]:
    """For each whitespace token of ``text``: is its sentence a question?"""
    tokens = text.split()
    out = [False] * len(tokens)
    asking = False
    for i in range(len(tokens) - 1, -1, -1):
        tail = tokens[i].rstrip("\"')”’")
        if tail.endswith(("?", "?!", "!?")):
            asking = True
        elif tail.endswith((".", "!")):
            asking = False
        out[i] = asking
    return out


def _last(explicit: float | None, from_packs: list[float | None], default: float) -> float:
    if explicit is not None:
        return explicit
    return next((v for v in reversed(from_packs) if v is not None), default)


def _join_phrase(phrase: str) -> str:
    return "_".join(phrase.split())


def _blank(_: str) -> str:
    return " "
