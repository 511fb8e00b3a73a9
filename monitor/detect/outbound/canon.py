"""The canonical word stream of a post: obfuscations undone before the identity rules read it.

Applied in order, each only where it changes something:

1. homoglyphs (Cyrillic and Greek look-alikes) and accents folded to Latin letters;
2. contractions expanded ("can't" -> "can not", "they're" -> "they are", "dont" -> "do not");
3. per word: leetspeak decoded ("h4te", "5cum"), masks filled ("m*slims"), stretched
   letters squeezed ("haaate"), and a dropped or swapped letter restored ("vrmin",
   "mulsims") through the vocabulary's obfuscation index;
4. spaced or dotted letters joined ("v e r m i n", "s.c.u.m"), a word split in two
   rejoined ("ver min");
5. glued words split ("ihatemuslims", "#KillAllX") when every part is a known word.

A changed word only counts when the result is a word of the vocabulary, so ordinary
text reads as written. Punctuation that ends a sentence or quotes someone is kept as
its own token ("." and '"').
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass

from monitor.detect.outbound.text import LEET_I, LEET_L
from monitor.detect.outbound.vocab import BARE, FUNCTION_WORDS, Vocabulary

_HOMOGLYPHS = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "х": "x", "у": "y", "і": "i", "ј": "j",
    "ѕ": "s", "ԁ": "d", "ɡ": "g", "һ": "h", "ӏ": "l", "ո": "n", "ս": "u", "ѵ": "v", "ԝ": "w",
    "к": "k", "м": "m", "т": "t", "в": "b", "н": "h", "г": "r", "п": "n", "ё": "e",
    "α": "a", "ε": "e", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "ν": "v", "ι": "i", "κ": "k",
    "χ": "x", "β": "b", "η": "n", "μ": "u", "ω": "w", "ѡ": "w", "ı": "i", "ł": "l", "ø": "o",
    "đ": "d", "ß": "ss", "æ": "ae", "œ": "oe", "ŀ": "l",
})
_APOSTROPHE = "['\u2019\u2018\u02bc`\u00b4]"
POSSESSIVE = "\ue000"  # "men's" -> "men" + this mark: the group word names a kind of thing
_CONTRACTION = re.compile(
    rf"\b(?P<special>can|won|shan|ain){_APOSTROPHE}t\b"
    rf"|(?<=\w)n{_APOSTROPHE}t\b"
    rf"|\b(?P<pronoun>he|she|it|that|what|there|who|here|where|everyone|nobody|someone)"
    rf"{_APOSTROPHE}s\b"
    rf"|{_APOSTROPHE}(?P<suffix>re|m|ll|d|ve|s)\b", re.IGNORECASE)
_SPECIAL = {"can": "can not", "won": "will not", "shan": "shall not", "ain": "is not"}
_SUFFIX = {"re": " are", "m": " am", "ll": " will", "d": " would", "ve": " have",
           "s": POSSESSIVE}


def _contraction(match: re.Match[str]) -> str:
    special, pronoun, suffix = match.group("special", "pronoun", "suffix")
    if special is not None:
        return _SPECIAL[special.casefold()]
    if pronoun is not None:
        return pronoun + " is"
    if suffix is not None:
        return _SUFFIX[suffix.casefold()]
    return " not"  # "don't", "isn't"
# words, @handles, leet/masked words, emoji, and the punctuation that matters
_TOKEN = re.compile(r"@\w+|[^\W_][\w@$!|€+*]*[^\W_*]\ue000?|[^\W_][\w@$!|€+*]*\ue000?"
                    r"|[.!?;\n\"“”«»:,=]|[\U0001F300-\U0001FAFF]")
_LEET_CHARS = frozenset("0134578@$!|€+")
_STRETCH = re.compile(r"(.)\1{2,}")
_QUOTES = frozenset('"“”«»')
BOUNDARY = "."
QUOTE = '"'


@dataclass(slots=True)
class Word:
    text: str  # canonical, lower case
    cap: bool = False  # written with a capital letter
    handle: bool = False  # an @mention
    changed: bool = False  # read through an obfuscation
    possessive: bool = False  # written with 's ("women's range")
    code: bool = False  # an upper-case code or acronym ("CLT", "K13")


def _fold(raw: str) -> str:
    if raw.isascii():
        return raw
    text = unicodedata.normalize("NFKC", raw).translate(_HOMOGLYPHS)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _expand(text: str) -> str:
    if "'" in text or "\u2019" in text or "`" in text or "\u02bc" in text or "´" in text:
        return _CONTRACTION.sub(_contraction, text)
    return text


def _masked(token: str, vocab: Vocabulary) -> str | None:
    """``m*slims`` -> ``muslims`` when exactly one vocabulary word fits the mask."""
    if not token[0].isalpha():
        return None
    pattern = re.compile("".join("[a-z]{1,2}" if c == "*" else re.escape(c) for c in token))
    fits = [w for w in vocab.salient if len(w) in (len(token), len(token) + 1)
            and pattern.fullmatch(w)]
    return fits[0] if len(fits) == 1 else None


def _word(token: str, vocab: Vocabulary) -> tuple[str, bool]:
    """The canonical form of one lower-case token and whether it was de-obfuscated."""
    if token in vocab.words:
        return token, False
    if token.isalpha() and not _STRETCH.search(token):
        slip = vocab.variants.get(token)
        return (token, False) if slip is None else (slip, True)
    if "*" in token:
        return (_masked(token, vocab) or token.replace("*", ""), True)
    letters = sum(c.isalpha() for c in token)
    if letters and not token.isalpha() and any(c in _LEET_CHARS for c in token):
        for table in (LEET_I, LEET_L):
            decoded = token.translate(table)
            if decoded.isalpha():
                # a slip on top of leetspeak needs letters to go on ("k13" is a gate)
                hit = decoded if decoded in vocab.words else (
                    vocab.variants.get(decoded) if letters >= 3 else None)
                if hit is not None:
                    return hit, True
    if _STRETCH.search(token):
        squeezed = _STRETCH.sub(r"\1", token)
        for form in (squeezed, re.sub(r"(.)\1", r"\1", squeezed)):
            if form in vocab.words:
                return form, True
    slip = vocab.variants.get(token)
    if slip is not None:
        return slip, True
    return token, False


def glued(token: str, vocab: Vocabulary) -> bool:
    """Whether ``token`` splits into pack words (cached per word: posts repeat words)."""
    cache = vocab.glue_cache
    found = cache.get(token)
    if found is None:
        if len(cache) > 50_000:
            cache.clear()
        found = cache[token] = _split_glued(token, vocab) is not None
    return found


MAX_GLUED = 48  # longer runs of letters are not read as glued words (bounded work)


def _split_glued(token: str, vocab: Vocabulary) -> list[str] | None:
    """``killallmuslims`` -> kill, all, muslims (every part known, one of them salient)."""
    n = len(token)
    if n > MAX_GLUED:
        return None
    glue = vocab.glue_words
    prefixes = vocab.glue_prefixes
    best: dict[int, list[str]] = {0: []}
    for start in range(n):  # positions in increasing order; fewest parts kept
        prefix = best.get(start)
        if prefix is None:
            continue
        for end in range(start + 1, min(n, start + 16) + 1):
            part = token[start:end]
            if part in glue and (end not in best or len(best[end]) > len(prefix) + 1):
                best[end] = [*prefix, part]
            if part not in prefixes:
                break  # no glue word goes on like this
    parts = best.get(n)
    if parts is None or len(parts) < 2 or not any(p in vocab.salient for p in parts):
        return None
    return parts


_DOTTED = re.compile(r"\b(?:[a-zA-Z][.\-_*/]){2,}[a-zA-Z]\b")  # "s.c.u.m", "v-e-r-m-i-n"


def _undot(text: str, vocab: Vocabulary) -> str:
    def join(match: re.Match[str]) -> str:
        letters = re.sub(r"[.\-_*/]", "", match.group(0))
        lower = letters.casefold()
        return letters if lower in vocab.words or lower in vocab.variant_keys else match.group(0)
    return _DOTTED.sub(join, text)


def words(raw: str, vocab: Vocabulary, stop: frozenset[str]) -> list[Word]:
    """The canonical words of ``raw`` (see the module docstring)."""
    text = _expand(_fold(raw))
    if _DOTTED.search(text):
        text = _undot(text, vocab)
    raw_words: list[Word] = []
    for token in _TOKEN.findall(text):
        first = token[0]
        if first.isalnum():
            if token[-1] == POSSESSIVE:
                raw_words.append(Word(token[:-1].casefold(), first.isupper(), possessive=True))
            elif len(token) <= 5 and token.isupper():  # "CLT", "K13": codes, read as written
                raw_words.append(Word(token.casefold(), True, possessive=False, code=True))
            else:
                raw_words.append(Word(token.casefold(), first.isupper()))
        elif first == "@" and len(token) > 1:
            raw_words.append(Word(token[1:].casefold(), handle=True))
        elif token in _QUOTES:
            raw_words.append(Word(QUOTE))
        elif len(token) == 1 and ord(token) >= 0x1F300:
            raw_words.append(Word(token))
        else:
            raw_words.append(Word(BOUNDARY if token in ".!?;\n" else token))
    out: list[Word] = []
    known = vocab.words
    for word in _rejoin(raw_words, vocab, stop):
        text = word.text
        bare = BARE.get(text)
        if bare is not None:
            out.extend(Word(w) for w in bare.split())
            continue
        if text in known or word.changed or word.handle or not text[0].isalnum() \
                or word.possessive or word.code:
            out.append(word)
            continue
        canonical, changed = _word(text, vocab)
        if not changed and len(canonical) >= 6 and canonical.isalpha() and \
                canonical not in stop:
            parts = _split_glued(canonical, vocab)  # glued words: "ihatemuslims"
            if parts is not None:
                out.extend(Word(p, word.cap and k == 0, changed=True)
                           for k, p in enumerate(parts))
                continue
        out.append(Word(canonical, word.cap, changed=changed) if changed else word)
    return out


def _known(word: str, vocab: Vocabulary) -> str | None:
    if word in vocab.words:
        return word
    slip = vocab.variants.get(word)
    if slip is None and not word.isalpha():
        for table in (LEET_I, LEET_L):
            decoded = word.translate(table)
            slip = decoded if decoded in vocab.words else vocab.variants.get(decoded)
            if slip is not None:
                break
    return slip


def _rejoin(seq: list[Word], vocab: Vocabulary, stop: frozenset[str]) -> list[Word]:
    """Spaced letters and words split in two, joined back (on the words as written)."""
    texts = [w.text for w in seq]
    known = vocab.words
    if not any(len(t) == 1 and t.isalnum() for t in texts) and not any(
            a + b in known or a + b in vocab.variants for a, b in itertools.pairwise(texts)):
        return seq  # nothing spaced out or split (the common case)
    out: list[Word] = []
    i = 0
    n = len(seq)
    while i < n:
        word = seq[i]
        # spaced letters: "v e r m i n" (the first letter may be a word of its own: "I")
        if len(word.text) == 1 and word.text.isalnum():
            j = i
            while j < n and len(seq[j].text) == 1 and seq[j].text.isalnum():
                j += 1
            if j - i >= 3:
                letters = "".join(w.text for w in seq[i:j])
                for skip in (0, 1):
                    hit = _known(letters[skip:], vocab)
                    if hit is not None:
                        out.extend(seq[i:i + skip])
                        out.append(Word(hit, seq[i + skip].cap, changed=True))
                        i = j
                        break
                else:
                    out.extend(seq[i:j])
                    i = j
                continue
        # a word split in two: "ver min", "Trans gender"
        if i + 1 < n and word.text.isalnum() and seq[i + 1].text.isalnum() and \
                not word.handle and not seq[i + 1].handle:
            second = seq[i + 1].text
            joined = word.text + second
            hit = _known(joined, vocab) if len(joined) >= 5 and min(
                len(word.text), len(second)) >= 2 and joined not in stop else None
            if hit is not None and hit in vocab.salient and not (
                    word.text in FUNCTION_WORDS and second in FUNCTION_WORDS):
                out.append(Word(hit, word.cap, changed=True))
                i += 2
                continue
        out.append(word)
        i += 1
    return out
