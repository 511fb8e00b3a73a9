"""The outbound screen's functional test suite, generated from functional/src/*.yaml.

Each source file names functionalities (a family, an expected outcome and cases or
templates). Templates are expanded over protected groups (``groups.yaml``): ``{g}``
the plural ("Muslims"), ``{G}`` the same capitalised, ``{one}``/``{One}`` with an
article ("a Muslim"), ``{bare}`` the singular ("Muslim"); each template over
``per_template`` groups picked deterministically, so that every group is used and
no template dominates. ``obfuscation.yaml`` applies a spelling transform (leetspeak,
a deleted or swapped character, added or removed spaces, homoglyphs) to the group
term, the ``[marked]`` hostile word or both of its base sentences.

The split is deterministic by hash of the *unit* (a template, a base sentence or a
literal case): a quarter of the units, and every case made from them, go to
``heldout.jsonl``; the rest to ``dev.jsonl``. The screen was tuned on dev only.

Expected outcomes: ``critical``; ``warning`` (warning or critical); ``quiet`` (no
finding above info); ``not_critical`` (a warning asking for a human look is fine).

    python -m tests.functional_suite          # regenerate dev.jsonl and heldout.jsonl
    python -m tests.functional_suite --check  # exit 1 when they are out of date
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent / "fixtures" / "outbound" / "functional"
SOURCES = HERE / "src"
OUTPUTS = {"dev": HERE / "dev.jsonl", "heldout": HERE / "heldout.jsonl"}
EXPECTS = ("critical", "warning", "quiet", "not_critical")
HELDOUT_SHARE = 4  # one unit in four is held out
_MARK = re.compile(r"\[([^\]]+)\]")
_LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}
_HOMOGLYPHS = {"a": "а", "e": "е", "o": "о", "c": "с", "p": "р", "x": "х", "y": "у",
               "i": "і"}
_GROUP_FILLER = {"the", "people", "person", "with", "a", "an", "men", "women"}


def digest(*parts: str) -> int:
    return int(hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:12], 16)


def split_of(functionality: str, unit: str) -> str:
    return "heldout" if digest("split", functionality, unit) % HELDOUT_SHARE == 0 else "dev"


def load_groups() -> list[dict[str, str]]:
    data = yaml.safe_load((SOURCES / "groups.yaml").read_text(encoding="utf-8"))
    return list(data["groups"])


def pick_groups(groups: list[dict[str, str]], key: str, count: int) -> list[dict[str, str]]:
    start = digest("groups", key) % len(groups)
    step = 17  # coprime with the group count: picks spread over the dimensions
    picked = [groups[(start + i * step) % len(groups)] for i in range(count)]
    return list({g["plural"]: g for g in picked}.values())


def capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def fill(template: str, group: dict[str, str]) -> str:
    return (template.replace("{g}", group["plural"]).replace("{G}", capital(group["plural"]))
            .replace("{one}", group["one"]).replace("{One}", capital(group["one"]))
            .replace("{bare}", group["bare"]))


# -- obfuscations -----------------------------------------------------------------
def _positions(word: str, letters: str | None = None) -> list[int]:
    return [i for i, c in enumerate(word) if (letters is None or c.lower() in letters)]


def leet(word: str, seed: int) -> str:
    spots = _positions(word, "".join(_LEET))
    if not spots:
        return word
    chosen = {spots[seed % len(spots)], spots[(seed // 7) % len(spots)]}
    return "".join(_LEET[c.lower()] if i in chosen else c for i, c in enumerate(word))


def delete(word: str, seed: int) -> str:
    if len(word) < 4:
        return word
    at = 1 + seed % (len(word) - 2)
    return word[:at] + word[at + 1:]


def swap(word: str, seed: int) -> str:
    spots = [i for i in range(1, len(word) - 2) if word[i] != word[i + 1]]
    if not spots:
        return word
    at = spots[seed % len(spots)]
    return word[:at] + word[at + 1] + word[at] + word[at + 2:]


def space_add(word: str, seed: int) -> str:
    if seed % 2 or len(word) < 5:
        return " ".join(word)
    at = len(word) // 2
    return word[:at] + " " + word[at:]


def homoglyph(word: str, seed: int) -> str:
    spots = _positions(word, "".join(_HOMOGLYPHS))
    if not spots:
        return word
    chosen = {spots[seed % len(spots)], spots[(seed // 5) % len(spots)]}
    return "".join(_HOMOGLYPHS.get(c, c) if i in chosen else c for i, c in enumerate(word))


WORD_TRANSFORMS = {"leet": leet, "delete": delete, "swap": swap, "space_add": space_add,
                   "homoglyph": homoglyph}


def group_word(plural: str) -> str:
    words = [w for w in plural.split() if w.lower() not in _GROUP_FILLER]
    return words[0] if words else plural.split()[-1]


def obfuscate(base: str, group: dict[str, str], transform: str, seed: int) -> str:
    """Apply ``transform`` to the group term, the marked word or both (by ``seed``)."""
    sentence = fill(base, group)
    hostile = _MARK.search(sentence)
    assert hostile is not None, base
    target = seed % 3  # 0: group, 1: hostile word, 2: both
    gword = group_word(group["plural"])
    if transform == "space_remove":
        return _space_remove(sentence, gword, hostile.group(1), target, seed)
    fn = WORD_TRANSFORMS[transform]
    if target in (0, 2):
        index = sentence.lower().find(gword.lower())
        if index >= 0:
            original = sentence[index:index + len(gword)]
            sentence = sentence[:index] + fn(original, seed) + sentence[index + len(gword):]
    if target in (1, 2):
        sentence = _MARK.sub(lambda m: fn(m.group(1), seed // 3), sentence, count=1)
    return _MARK.sub(lambda m: m.group(1), sentence)


def _space_remove(sentence: str, gword: str, hostile: str, target: int, seed: int) -> str:
    plain = _MARK.sub(lambda m: m.group(1), sentence)
    if target == 2:  # the whole statement as one hashtag-like word
        return re.sub(r"\s+", "", plain.rstrip(".?!"))
    word = gword if target == 0 else hostile
    index = plain.lower().find(word.lower())
    before = index > 0 and plain[index - 1] == " "
    after = plain[index + len(word):index + len(word) + 1] == " "
    if before and (not after or seed % 2):
        return plain[:index - 1] + plain[index:]
    if after:
        end = index + len(word)
        return plain[:end] + plain[end + 1:]
    return plain


# -- the suite ----------------------------------------------------------------------
def _inbound(items: list[Any], background: list[str]) -> list[dict[str, Any]]:
    out = [{"text": t, "brand": False} for t in background]
    for item in items:
        if isinstance(item, str):
            out.append({"text": item, "brand": False})
        else:
            out.append({"text": item["text"], "brand": bool(item.get("brand"))})
    return out


def _case(functionality: str, family: str, expect: str, text: str, unit: str,
          **extra: Any) -> dict[str, Any]:
    if expect not in EXPECTS:
        raise ValueError(f"{functionality}: unknown expect {expect!r}")
    case_id = f"{functionality}-{digest('id', functionality, text) % 16**8:08x}"
    return {"id": case_id, "functionality": functionality, "family": family,
            "expect": expect, "text": text, **extra, "split": split_of(functionality, unit)}


def generate() -> Iterator[dict[str, Any]]:
    groups = load_groups()
    for path in sorted(SOURCES.glob("*.yaml")):
        if path.name == "groups.yaml":
            continue
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        background = data.get("background", [])
        for spec in data["functionalities"]:
            name = spec["name"]
            family = spec.get("family", data.get("family"))
            expect = spec.get("expect", data.get("expect"))
            per = int(spec.get("per_template", data.get("per_template", 3)))
            if "transform" in spec:
                for base in data["bases"]:
                    for group in pick_groups(groups, name + base, per):
                        seed = digest("seed", name, base, group["plural"])
                        text = obfuscate(base, group, spec["transform"], seed)
                        yield _case(name, family, expect, text, base, group=group["dim"])
                continue
            for template in spec.get("templates", []):
                for group in pick_groups(groups, name + template, per):
                    yield _case(name, family, expect, fill(template, group), template,
                                group=group["dim"])
            for item in spec.get("cases", []):
                if isinstance(item, str):
                    yield _case(name, family, expect, item, item)
                else:
                    yield _case(name, family, expect, item["text"], item["text"],
                                inbound=_inbound(item.get("inbound", []), background))


def render() -> dict[str, str]:
    out: dict[str, list[str]] = {name: [] for name in OUTPUTS}
    seen: set[str] = set()
    for case in generate():
        if case["id"] in seen:
            continue  # the same text twice in one functionality
        seen.add(case["id"])
        split = case.pop("split")
        out[split].append(json.dumps(case, ensure_ascii=False))
    return {name: "\n".join(lines) + "\n" for name, lines in out.items()}


def read(split: str) -> list[dict[str, Any]]:
    path = OUTPUTS[split]
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only check the files are current")
    args = parser.parse_args(argv)
    rendered = render()
    stale = [name for name, text in rendered.items()
             if not OUTPUTS[name].exists() or OUTPUTS[name].read_text(encoding="utf-8") != text]
    if args.check:
        for name in stale:
            print(f"{OUTPUTS[name]} is out of date: run python -m tests.functional_suite")
        return 1 if stale else 0
    for name, text in rendered.items():
        OUTPUTS[name].write_text(text, encoding="utf-8")
    counts = {name: text.count("\n") for name, text in rendered.items()}
    print(f"functional suite: {counts['dev']} dev, {counts['heldout']} held-out cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
