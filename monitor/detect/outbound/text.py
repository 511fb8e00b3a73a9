"""Text normalisation shared by the outbound checks.

A :class:`TextView` is built once per post: the case-folded text, its links, its
hashtags (also split at capitals: ``#WhyIStayed`` -> ``why i stayed``) and ``norm``,
the words joined by single spaces with apostrophes dropped and other punctuation
removed (``%``, currency signs and emoji stay as tokens). :class:`PhraseSet` matches
word lists on ``norm`` with whole-word boundaries. Every regex here is built from
escaped literals or fixed patterns without nested quantifiers, so matching is linear.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_SCAN = 5000  # characters of a post that the checks read (posts are at most 10,000)
_ZERO_WIDTH = re.compile("[\u00ad\u034f\u200b-\u200f\u2060-\u2064\ufeff]")
_APOSTROPHES = re.compile("['\u2018\u2019\u02bc`\u00b4]")
_TOKEN = re.compile(r"[^\W_]+|[%$£€]")
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'()\[\]{}]+", re.IGNORECASE)
_BARE = re.compile(r"(?<![\w@.\-])((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.){1,6}"
                   r"([a-z]{2,24}))(?::\d{1,5})?(/[^\s<>\"'()\[\]{}]*)?", re.IGNORECASE)
_HASHTAG = re.compile(r"(?<![\w#])#(\w{1,100})")
_DOTTED = re.compile(r"[a-zA-Z0-9]\.[a-zA-Z]{2}")  # what any bare domain has
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
_POSSESSIVE = re.compile(r"([^\W\d_]{2,})['\u2019]s\b")
_STRETCHED = re.compile(r"([^\W\d_])\1{2,}")  # "sooo", "lmaooo": letters said 3+ times
# generic TLDs accepted for links written without http:// (any 2-letter ccTLD is too)
BARE_TLDS = frozenset("""
com net org info biz io ai app dev xyz top site online shop store club live help link click
today win vip loan support wallet finance money bank crypto network services world email
page web website tech cloud digital group news life fun space icu buzz cyou rest bond sbs
example invalid test gov edu mobi name pro asia""".split())
_LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
         "@": "a", "$": "s", "!": "i", "|": "l", "€": "e", "+": "t"}
LEET_I = str.maketrans(_LEET)
LEET_L = str.maketrans({**_LEET, "1": "l", "!": "l"})
MASKS = frozenset("*#%_.")


def fold(text: str) -> str:
    """NFKC, case-folded, zero-width characters removed (homoglyph-safe enough for words)."""
    if text.isascii():
        return text.casefold()
    return _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text)).casefold()


def tokens(text: str) -> list[str]:
    """Words (letters/digits), ``%``/currency signs and emoji of already folded text."""
    if "'" in text or not text.isascii():
        text = _APOSTROPHES.sub("", text)
    return _TOKEN.findall(text)


def emoji(text: str) -> list[str]:
    if text.isascii():
        return []
    return [c for c in text if c > "\u2000" and unicodedata.category(c) == "So"]


def stretched(text: str) -> bool:
    """Whether a letter is said three times or more ("sooo")."""
    return any(c * 3 in text for c in set(text) if c.isalpha())


def unstretch(text: str) -> str:
    """``"sooo"`` -> ``"so"``, ``"yesss"`` -> ``"yes"``: a letter said three times or more, once."""
    return _STRETCHED.sub(r"\1", text) if stretched(text) else text


def norm(text: str) -> str:
    """The matching form of a phrase or a text: ``"It’s our page!"`` -> ``"its our page"``."""
    folded = unstretch(fold(text))
    return " ".join(tokens(folded) + emoji(folded))


def split_hashtag(tag: str) -> list[str]:
    """``WhyIStayed`` -> ``["why", "i", "stayed"]`` (no split when all one case)."""
    parts = _CAMEL.findall(tag)
    return [p.casefold() for p in parts] if len(parts) > 1 else [tag.casefold()]


@dataclass(frozen=True, slots=True)
class Link:
    text: str
    host: str
    path: str
    bare: bool  # written without a scheme or www.


def _host_of(url: str) -> tuple[str, str]:
    rest = url.split("://", 1)[1] if "://" in url else url
    host, _, path = rest.partition("/")
    host = host.rsplit("@", 1)[-1].split(":", 1)[0].strip(".").casefold()
    try:
        if "xn--" in host:
            host = host.encode("ascii").decode("idna")
    except UnicodeError:
        pass
    return host, "/" + path if path else ""


def find_links(text: str) -> list[Link]:
    links: list[Link] = []
    if "." not in text and "/" not in text:
        return links
    rest = text
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(".,;:!?…")
        host, path = _host_of(url)
        if host:
            links.append(Link(url, host, path, bare=False))
        rest = rest.replace(match.group(0), " ")
    if not _DOTTED.search(rest):
        return links
    for match in _BARE.finditer(rest):
        tld = match.group(2).casefold()
        if tld not in BARE_TLDS and len(tld) != 2:
            continue
        host = match.group(1).casefold()
        links.append(Link(match.group(0).rstrip(".,;:!?"), host, match.group(3) or "",
                          bare=True))
    return links


@dataclass(slots=True)
class TextView:
    raw: str
    folded: str = ""
    norm: str = ""
    token_set: frozenset[str] = frozenset()
    hashtags: tuple[str, ...] = ()
    hashtag_words: tuple[str, ...] = ()
    links: tuple[Link, ...] = ()
    emoji: tuple[str, ...] = ()
    memo: dict[str, object] = field(default_factory=dict)

    @classmethod
    def of(cls, text: str) -> TextView:
        raw = text[:MAX_SCAN]
        folded = fold(raw)
        links = tuple(find_links(raw))
        without_links = folded
        if links:
            without_links = _URL.sub(" ", folded)
            for link in links:
                if link.bare:
                    without_links = without_links.replace(link.text.casefold(), " ")
        tags = _HASHTAG.findall(raw) if "#" in raw else []
        split = [w for tag in tags for w in split_hashtag(tag)]
        drawn_out = stretched(without_links)
        words = tokens(_STRETCHED.sub(r"\1", without_links) if drawn_out else without_links)
        marks = emoji(folded)
        # hashtags appear as words in norm; their split form and possessive owners follow
        text_norm = " ".join(words + marks)
        owners = frozenset(m.group(1) for m in _POSSESSIVE.finditer(without_links)) if (
            "'" in without_links or "\u2019" in without_links) else frozenset()
        if split or owners:  # "governor's" is also "governor"
            text_norm += " | " + " ".join(split + sorted(owners))
        return cls(raw=raw, folded=folded, norm=text_norm,
                   token_set=frozenset(words) | frozenset(split) | frozenset(marks) | owners,
                   hashtags=tuple(t.casefold() for t in tags), hashtag_words=tuple(split),
                   links=links, emoji=tuple(marks), memo={"stretched": drawn_out})

    def sentences(self) -> list[str]:
        """Normalised sentences (a scam sentence must hold its whole offer; memoised)."""
        found = self.memo.get("sentences")
        if found is None:
            found = self.memo["sentences"] = [norm(s) for s in
                                              _SENTENCES.split(_URL.sub(" ", self.raw))
                                              if s.strip()]
        return found  # type: ignore[return-value]


class PhraseSet:
    """Whole-word phrases (``*`` suffix: any ending; ``#tag``/``#tag*``: hashtags only)."""

    def __init__(self, phrases: Iterable[str], allow: Iterable[str] = ()) -> None:
        self.words: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.tag_prefixes: dict[str, str] = {}
        patterns: list[str] = []
        self.labels: dict[str, str] = {}
        for phrase in phrases:
            if phrase.startswith("#"):
                key = phrase[1:].casefold()
                if key.endswith("*"):
                    self.tag_prefixes[key[:-1]] = phrase
                elif key:
                    self.tags[key] = phrase
                continue
            star = phrase.endswith("*")
            key = norm(phrase.rstrip("*"))
            if not key:
                continue
            if " " not in key and not star:
                self.words[key] = phrase
                continue
            body = re.escape(key) + (r"\w*" if star else "")
            patterns.append(body)
            self.labels[key] = phrase
        patterns.sort(key=len, reverse=True)
        self._regex = (re.compile(r"(?<!\S)(" + "|".join(patterns) + r")(?!\S)")
                       if patterns else None)
        allowed = sorted({norm(a) for a in allow if norm(a)}, key=len, reverse=True)
        self._allow = (re.compile(r"(?<!\S)(?:" + "|".join(map(re.escape, allowed)) + r")(?!\S)")
                       if allowed else None)
        # a text without any phrase's first word cannot hold the phrase: the regex is skipped
        self._wordset = frozenset(self.words)
        # the longest word of each phrase: a text without it cannot hold the phrase
        self._heads = frozenset(max(k.split(), key=len) for k in self.labels)
        self._empty = not (self.words or self.tags or self.tag_prefixes or patterns)
        self._starred = any(v.endswith("*") and " " not in norm(v.rstrip("*"))
                            for v in self.labels.values())
        self._allow_heads = frozenset(a.split()[0] for a in allowed)

    def __bool__(self) -> bool:
        return bool(self.words or self.tags or self.tag_prefixes or self._regex)

    def find(self, view: TextView) -> list[str]:
        """The phrases found in a post, in their configured spelling, each once."""
        if self._empty:
            return []
        present = view.token_set
        if present.isdisjoint(self._wordset) and not view.hashtags and (
                self._regex is None or (not self._starred and present.isdisjoint(self._heads))):
            return []  # nothing of this set can be in the post (the common case)
        found = self._find_text(view.norm, view.token_set)
        for tag in view.hashtags:
            if tag in self.tags:
                found.append(self.tags[tag])
            found += [label for prefix, label in self.tag_prefixes.items()
                      if tag.startswith(prefix)]
        return list(dict.fromkeys(found))

    def blank(self, text: str) -> str:
        """``text`` with this set's word phrases replaced by ``~`` (for allow-lists)."""
        for word in frozenset(text.split()) & self._wordset:
            text = re.sub(rf"(?<!\S){re.escape(word)}(?!\S)", "~", text)
        return self._regex.sub("~", text) if self._regex is not None else text

    def find_in(self, text: str) -> list[str]:
        """The word phrases found in already normalised text (no hashtags)."""
        return list(dict.fromkeys(self._find_text(text, None)))

    def _find_text(self, text: str, token_set: frozenset[str] | None) -> list[str]:
        present = frozenset(text.split()) if token_set is None else token_set
        if self._allow is not None and not present.isdisjoint(self._allow_heads):
            text = self._allow.sub(" ~ ", text)
            present = frozenset(text.split())
        hits: list[tuple[int, str]] = [(text.find(w), self.words[w])
                                       for w in present & self._wordset]
        if self._regex is not None and (self._starred or not present.isdisjoint(self._heads)):
            for match in self._regex.finditer(text):
                key = match.group(1)
                label = self.labels.get(key)
                if label is None:  # a starred phrase: find which prefix
                    label = next(v for k, v in self.labels.items()
                                 if v.endswith("*") and key.startswith(k))
                hits.append((match.start(), label))
        return [label for _, label in sorted(hits)]
