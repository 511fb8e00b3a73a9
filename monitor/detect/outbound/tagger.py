"""Tag a post's canonical words with the identity pack's classes.

The longest pack phrase at each position wins and becomes one :class:`Tok` with all
its classes (``"can not stand"`` is one ``HATE`` token, not a negation). Group
mentions (``GRP``) are recognised as:

- a listed noun phrase ("muslims", "trans people", "the elderly"); a noun that is
  also an adjective is not a group before a thing ("chinese food") and takes a
  following person noun with it ("muslim women");
- a group adjective before a person noun ("gay people", "black women");
- a capitalised-only noun written with a capital ("Poles", not "tent poles");
- a slur (also ``SLUR``).

Second-person words and @mentions are ``YOU``; "he/she/him/her", "that critic", "the
next customer" ... are ``PERSON`` (the targets of the threat check).
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.detect.outbound.canon import BOUNDARY, QUOTE, Word
from monitor.detect.outbound.vocab import FUNCTION_WORDS, Vocabulary

YOU_WORDS = frozenset({"you", "your", "yourself", "yourselves", "ya", "yall", "thee"})
PERSON_WORDS = frozenset({"him", "he", "his", "whoever", "himself", "herself"})
PERSON_HEADS = frozenset({"critic", "critics", "reporter", "reporters", "journalist",
                          "journalists", "reviewer", "reviewers", "blogger", "troll", "trolls",
                          "guy", "man", "woman", "person", "customer", "customers", "idiot",
                          "clown", "moron", "snitch", "leaker", "writer", "influencer"})
PERSON_DETS = frozenset({"that", "this", "the", "next", "first", "any", "every"})
SHE = frozenset({"she", "her", "hers"})
_RESOLVE = frozenset({"GRP", "ADJ", "CAP", "SLUR"})  # classes that depend on the words around


@dataclass(slots=True)
class Tok:
    text: str
    classes: frozenset[str] = frozenset()
    dim: str = ""  # the protected-group dimension of a GRP token
    changed: bool = False  # read through an obfuscation

    def has(self, *classes: str) -> bool:
        return not self.classes.isdisjoint(classes)


def _match(texts: list[str], i: int, vocab: Vocabulary) -> tuple[str, ...] | None:
    for length in vocab.first.get(texts[i], ()):
        candidate = tuple(texts[i:i + length])
        if len(candidate) == length and candidate in vocab.phrases:
            return candidate
    return None


def tag(seq: list[Word], vocab: Vocabulary, own: frozenset[str] = frozenset()) -> list[Tok]:
    """Tag ``seq``; ``own``: words of the brand's own names, never a group ("American")."""
    toks: list[Tok] = []
    texts = [w.text for w in seq]
    i, n = 0, len(seq)
    while i < n:
        word = seq[i]
        if word.text in (BOUNDARY, QUOTE):
            toks.append(Tok(word.text, frozenset({"BOUND" if word.text == BOUNDARY
                                                  else "QUOTE"})))
            i += 1
            continue
        if word.handle:
            toks.append(Tok("@" + word.text, frozenset({"YOU", "HANDLE"})))
            i += 1
            continue
        phrase = _match(texts, i, vocab)
        if phrase is None:
            toks.append(_plain(seq, i))
            i += 1
            continue
        frozen = vocab.frozen[phrase]
        end = i + len(phrase)
        changed = any(w.changed for w in seq[i:end])
        if not frozen & _RESOLVE:  # an ordinary pack word: nothing to decide
            toks.append(Tok(texts[i] if end == i + 1 else " ".join(texts[i:end]), frozen,
                            "", changed))
            i = end
            continue
        classes = set(frozen)
        nxt = seq[end].text if end < n else ""
        dim = vocab.groups.get(phrase, "")
        if "SLUR" in classes:
            classes.add("GRP")
            dim = dim or "slur"
        if "CAP" in classes and word.cap:
            classes.add("GRP")
            dim = vocab.capitalised.get(" ".join(phrase), "")
        if "ADJ" in classes or ("GRP" in classes and phrase in vocab.adjectives):
            if nxt in vocab.person_nouns:
                classes.add("GRP")
                dim = dim or vocab.adjectives.get(phrase, "")
                end += 1
            elif nxt in vocab.thing_nouns or (word.cap and end < n and seq[end].cap
                                              and nxt not in vocab.person_nouns
                                              and nxt not in FUNCTION_WORDS
                                              and nxt not in vocab.words):
                classes.discard("GRP")  # "Chinese food"; "American Eagle", "Indian Ocean"
            elif "ADJ" in classes and texts[max(0, i - 2):i] in (["you", "are"],
                                                                 ["you", "were"]):
                classes.add("GRP")  # "if you're gay, ...": the reader as a member
                dim = dim or vocab.adjectives.get(phrase, "")
        if "GRP" in classes and (" ".join(phrase) in own or (seq[end - 1].possessive and end < n
                                 and seq[end].text not in vocab.person_nouns)):
            classes.discard("GRP")  # "men's grooming range", "Women's Day": a kind of thing
        toks.append(Tok(" ".join(texts[i:end]), frozenset(classes), dim, changed))
        i = end
    _persons(toks)
    return toks


_YOU = frozenset({"YOU"})
_PERSON = frozenset({"PERSON"})
_SHE = frozenset({"PERSON", "SHE"})
_NONE: frozenset[str] = frozenset()


def _plain(seq: list[Word], i: int) -> Tok:
    text = seq[i].text
    if text in YOU_WORDS:
        return Tok(text, _YOU)
    if text in PERSON_WORDS:
        return Tok(text, _PERSON)
    if text in SHE:
        return Tok(text, _SHE)
    return Tok(text, _NONE, changed=seq[i].changed)


def _persons(toks: list[Tok]) -> None:
    """``that critic``, ``the next customer``: the head noun becomes a PERSON target."""
    for i, tok in enumerate(toks):
        if tok.text in PERSON_HEADS and i and toks[i - 1].text in PERSON_DETS:
            tok.classes = tok.classes | {"PERSON"}


def has_group(toks: list[Tok]) -> bool:
    return any("GRP" in t.classes for t in toks)


def sentences(toks: list[Tok]) -> list[tuple[int, int]]:
    """(start, end) index ranges of the sentences (boundaries excluded)."""
    out: list[tuple[int, int]] = []
    start = 0
    for i, tok in enumerate(toks):
        if "BOUND" in tok.classes:
            if i > start:
                out.append((start, i))
            start = i + 1
    if start < len(toks):
        out.append((start, len(toks)))
    return out
