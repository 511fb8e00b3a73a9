"""The identity and event packs (``packs/*.yaml``) loaded into lookup tables.

:class:`Vocabulary` holds every phrase of the identity pack under its classes
(``GRP`` a protected-group noun phrase, ``BAD`` negative evaluation, ``KILL``
violence, ...; see :data:`CLASSES`), the group-recognition tables (adjectives,
person nouns, capitalised-only nouns, slurs) and the obfuscation index: every
single word of the pack with one letter dropped or two neighbouring letters swapped
("vrmin", "mulsims") maps back to the word, unless that spelling is itself an
English word or another pack word (``packs/stoplist.txt``, made from a word list by
``python -m monitor.detect.outbound.vocab stoplist /usr/share/dict/words``).

Admins add group terms in the rule (``groups: {dimension: [terms]}``); a vocabulary
with them is built once per distinct set and cached.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from monitor.detect.outbound.text import norm

PACK_DIR = Path(__file__).resolve().parent / "packs"
# identity pack list -> tag class
CLASSES = {
    "references": "REF", "negative": "BAD", "dehumanising": "DEH", "negative_actions": "ACT",
    "hatred": "HATE", "disgust_me": "DISG", "violence": "KILL", "gone": "GONE",
    "exclusion": "EXCL", "positive": "POS", "positive_relations": "POSV", "negation": "NEG",
    "counter_frames": "CNEG", "reporting": "REP", "modal": "MOD", "copula": "COP",
    "victim_frames": "VIC", "stereotypes": "STEREO", "consent": "CONSENT", "curses": "CURSE",
    "slogans": "SLOGAN", "mild": "MILD",
    "dismissals": "DISMISS",
}
# words that hold a sentence together; the segmenter may split glued text into them
FUNCTION_WORDS = frozenset("""
i we you he she it they me us him her them my our your their all every each any some no
not never are is am was were be been being r so such really very just too the a an and or
but of to in on at for with by from as than that this these those there here why how what
who should must will would can could may might shall do does did have has had get got go
going gonna let lets make made want need needs deserve deserves ought back out off up down
away home like more most less one ones only even still also always ever again then now
""".split())
MIN_VARIANT = 4  # shorter words have too many look-alikes
# contractions written without an apostrophe, read as their words (text and pack alike)
BARE = {"dont": "do not", "doesnt": "does not", "didnt": "did not", "cant": "can not",
         "cannot": "can not", "isnt": "is not", "arent": "are not", "wasnt": "was not",
         "werent": "were not", "shouldnt": "should not", "wouldnt": "would not",
         "couldnt": "could not", "mustnt": "must not", "havent": "have not",
         "hasnt": "has not", "hadnt": "had not", "neednt": "need not", "aint": "is not",
         "im": "i am", "ive": "i have", "youre": "you are", "theyre": "they are",
         "youll": "you will", "theyll": "they will", "wont": "will not", "ur": "you are",
         "gonna": "going to", "wanna": "want to", "gotta": "got to", "u": "you",
         "shes": "she is", "hes": "he is", "thats": "that is", "theres": "there is",
         "whos": "who is", "whats": "what is", "h8": "hate", "h8s": "hates", "h8ers": "haters"}
BARE_KEYS = frozenset(BARE)


def _phrase(text: str) -> tuple[str, ...]:
    return tuple(w for word in norm(text).split() for w in BARE.get(word, word).split())


@dataclass(slots=True)
class Vocabulary:
    phrases: dict[tuple[str, ...], set[str]] = field(default_factory=dict)  # words -> classes
    first: dict[str, tuple[int, ...]] = field(default_factory=dict)  # first word -> lengths
    frozen: dict[tuple[str, ...], frozenset[str]] = field(default_factory=dict)  # final classes
    groups: dict[tuple[str, ...], str] = field(default_factory=dict)  # noun phrase -> dim
    adjectives: dict[tuple[str, ...], str] = field(default_factory=dict)
    capitalised: dict[str, str] = field(default_factory=dict)
    person_nouns: frozenset[str] = frozenset()
    thing_nouns: frozenset[str] = frozenset()
    slurs: dict[tuple[str, ...], str] = field(default_factory=dict)
    words: frozenset[str] = frozenset()  # every single word of the pack
    variants: dict[str, str] = field(default_factory=dict)
    variant_keys: frozenset[str] = frozenset()
    glue_words: frozenset[str] = frozenset()  # words the segmenter may split glued text into
    glue_prefixes: frozenset[str] = frozenset()  # every prefix of a glue word
    split_heads: frozenset[str] = frozenset()  # first halves of salient words ("ver" of "ver min")
    salient: frozenset[str] = frozenset()  # group and hostile words (a split must hold one)
    triggers: frozenset[str] = frozenset()  # a post with none of these is not tagged
    # distinctive word -> (all words, classes) of the phrases that need it (the prefilter)
    needs: dict[str, list[tuple[frozenset[str], frozenset[str]]]] = field(default_factory=dict)
    allow: frozenset[tuple[str, ...]] = frozenset()
    glue_cache: dict[str, bool] = field(default_factory=dict)  # word -> splits (bounded)

    def add(self, text: str, cls: str) -> None:
        words = _phrase(text)
        if not words or words in self.allow:
            return
        self.phrases.setdefault(words, set()).add(cls)

    def finish(self, stoplist: frozenset[str]) -> Vocabulary:
        by_first: dict[str, set[int]] = {}
        for words in self.phrases:
            by_first.setdefault(words[0], set()).add(len(words))
        self.first = {w: tuple(sorted(n, reverse=True)) for w, n in by_first.items()}
        self.frozen = {words: frozenset(classes) for words, classes in self.phrases.items()}
        singles = {w for words in self.phrases for w in words}
        self.words = frozenset(singles)
        hostile = {"BAD", "DEH", "ACT", "HATE", "DISG", "KILL", "GONE", "EXCL", "GRP", "SLUR",
                   "THREAT", "CONSENT", "ADJ", "CAP", "CURSE", "SLOGAN"}
        groups = {"GRP", "SLUR", "ADJ", "CAP"}
        # the words an obfuscation targets: a hostile word on its own, any word of a group name
        self.salient = frozenset(
            w for words, classes in self.phrases.items()
            if classes & hostile and (len(words) == 1 or classes & groups)
            for w in words if len(w) >= 3 and w not in FUNCTION_WORDS)
        self.glue_words = self.salient | FUNCTION_WORDS | {
            w for words, classes in self.phrases.items() if classes & {"POS", "POSV"}
            for w in words if len(w) >= 4}
        self.glue_prefixes = frozenset(w[:k] for w in self.glue_words for k in range(1, len(w)))
        self.split_heads = frozenset(w[:k] for w in self.salient for k in range(2, len(w) - 1))
        self.variants = variants(self.salient, self.words, stoplist)
        self.variant_keys = frozenset(self.variants)
        wanted = hostile | {"THREATW", "DISMISS", "STEREO"}
        # a phrase can only match where its most distinctive word is: the trigger set
        needs: dict[str, list[tuple[frozenset[str], frozenset[str]]]] = {}
        for words, classes in self.phrases.items():
            if classes & wanted and not set(words) <= FUNCTION_WORDS:
                needs.setdefault(_distinctive(words), []).append(
                    (frozenset(words), frozenset(classes & wanted)))
        self.needs = needs
        self.triggers = frozenset(needs) | frozenset(self.variants)
        return self


def _distinctive(words: tuple[str, ...]) -> str:
    content = [w for w in words if w not in FUNCTION_WORDS] or list(words)
    return max(reversed(content), key=len)


def _spelling_slips(word: str) -> set[str]:
    """``word`` with one letter dropped or two neighbours swapped (the first letter stays)."""
    out = {word[:i] + word[i + 1:] for i in range(1, len(word))}
    out |= {word[:i] + word[i + 1] + word[i] + word[i + 2:] for i in range(1, len(word) - 1)
            if word[i] != word[i + 1]}
    return out


def variants(salient: Iterable[str], known: frozenset[str],
             stoplist: frozenset[str]) -> dict[str, str]:
    """Misspelling -> word for the pack's words; a spelling two words share is dropped."""
    found: dict[str, str] = {}
    clash: set[str] = set()
    for word in salient:
        if len(word) < MIN_VARIANT or not word.isalpha():
            continue
        for slip in _spelling_slips(word):
            if slip in known or slip in stoplist or len(slip) < 3:
                continue
            if slip in found and found[slip] != word:
                clash.add(slip)
            found[slip] = word
    return {k: v for k, v in found.items() if k not in clash}


class _WordLoader(yaml.SafeLoader):
    """Every scalar is a string ("no", "on" and "off" are words here, not booleans)."""


_WordLoader.yaml_implicit_resolvers = {
    key: [(tag, regex) for tag, regex in resolvers if tag == "tag:yaml.org,2002:str"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def _read(name: str) -> dict[str, Any]:
    data = yaml.load((PACK_DIR / name).read_text(encoding="utf-8"), Loader=_WordLoader)
    if not isinstance(data, dict):
        raise ValueError(f"{name}: expected a mapping")
    return data


@lru_cache(maxsize=1)
def stoplist() -> frozenset[str]:
    path = PACK_DIR / "stoplist.txt"
    if not path.exists():
        return frozenset()
    return frozenset(line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                     if line.strip() and not line.startswith("#"))


@lru_cache(maxsize=1)
def identity_pack() -> dict[str, Any]:
    return _read("identity.yaml")


@lru_cache(maxsize=1)
def events_pack() -> dict[str, Any]:
    return _read("events.yaml")


def _groups(pack: Mapping[str, Any],
            extra: Iterable[tuple[str, tuple[str, ...]]]) -> dict[str, dict[str, list[str]]]:
    groups: dict[str, dict[str, list[str]]] = {
        dim: {k: list(v or []) for k, v in spec.items()} for dim, spec in pack["groups"].items()}
    for dim, terms in extra:
        groups.setdefault(dim, {}).setdefault("nouns", []).extend(terms)
    return groups


@lru_cache(maxsize=16)
def vocabulary(extra_groups: tuple[tuple[str, tuple[str, ...]], ...] = (),
               allow: tuple[str, ...] = ()) -> Vocabulary:
    """The identity vocabulary with an admin's extra group terms (cached per set)."""
    pack = identity_pack()
    vocab = Vocabulary(allow=frozenset(_phrase(a) for a in allow))
    for dim, spec in _groups(pack, extra_groups).items():
        for term in spec.get("nouns", []):
            vocab.add(term, "GRP")
            vocab.groups.setdefault(_phrase(term), dim)
        for term in spec.get("adjectives", []):
            vocab.adjectives.setdefault(_phrase(term), dim)
            vocab.add(term, "ADJ")
        for term in spec.get("capitalised", []):
            vocab.capitalised[norm(term)] = dim
            vocab.add(term, "CAP")
    for term in pack["slurs"]:
        vocab.add(term, "SLUR")
        vocab.slurs.setdefault(_phrase(term), "slur")
    for key, cls in CLASSES.items():
        for term in pack[key]:
            vocab.add(term, cls)
    for strength, cls in (("strong", "THREAT"), ("weak", "THREATW")):
        for term in pack["threats"][strength]:
            vocab.add(term, cls)
    vocab.person_nouns = frozenset(norm(w) for w in pack["person_nouns"])
    vocab.thing_nouns = frozenset(norm(w) for w in pack["thing_nouns"])
    return vocab.finish(stoplist())


# -- the stoplist --------------------------------------------------------------------
def segmentable(word: str, parts: frozenset[str]) -> bool:
    """Whether ``word`` splits into two or more of ``parts`` (whole)."""
    ends = {0}
    for end in range(1, len(word) + 1):
        if any(start in ends and word[start:end] in parts for start in range(max(0, end - 20),
                                                                             end)):
            ends.add(end)
    if len(word) not in ends:
        return False
    return word not in parts or segmentable_strict(word, parts)


def segmentable_strict(word: str, parts: frozenset[str]) -> bool:
    return any((word[:i] in parts and segmentable(word[i:], parts)) or
               (word[:i] in parts and word[i:] in parts) for i in range(1, len(word)))


def build_stoplist(dictionary: Iterable[str]) -> list[str]:
    """English words that a misspelling or a split of the pack would misread."""
    vocab = vocabulary()
    slips: set[str] = set()
    for word in vocab.salient:
        if len(word) >= MIN_VARIANT and word.isalpha():
            slips |= _spelling_slips(word)
    out = set()
    for raw in dictionary:
        word = norm(raw)
        if not word.isalpha() or word in vocab.words:
            continue
        if word in slips or (len(word) >= 6 and segmentable(word, vocab.glue_words)):
            out.add(word)
    return sorted(out)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "stoplist":
        sys.stderr.write("usage: python -m monitor.detect.outbound.vocab stoplist WORDLIST...\n")
        return 2
    words: list[str] = []
    for path in argv[1:]:
        words += Path(path).read_text(encoding="utf-8", errors="replace").split()
    stoplist.cache_clear()
    (PACK_DIR / "stoplist.txt").write_text(
        "# English words never read as a misspelling or a split of a pack word\n"
        "# (generated: python -m monitor.detect.outbound.vocab stoplist WORDLIST...)\n"
        + "\n".join(build_stoplist(words)) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
