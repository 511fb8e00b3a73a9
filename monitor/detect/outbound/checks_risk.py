"""Signs of a hijacked account or a leak: scams, phishing links, personal data."""

from __future__ import annotations

import ipaddress
import re
import unicodedata

from monitor.detect.outbound import lexicon as lx
from monitor.detect.outbound.context import ScreenContext, label_of
from monitor.detect.outbound.core import Hit, check
from monitor.detect.outbound.text import PhraseSet

# -- crypto and giveaway scams ------------------------------------------------------
_WALLETS = (
    ("bitcoin wallet address", re.compile(r"\b(?:bc1[ac-hj-np-z02-9]{11,71}|"
                                          r"[13][a-km-zA-HJ-NP-Z1-9]{25,34})\b")),
    ("ethereum wallet address", re.compile(r"\b0x[a-fA-F0-9]{40}\b")),
    ("tron wallet address", re.compile(r"\bT[1-9A-HJ-NP-Za-km-z]{33}\b")),
)
_DOUBLING = re.compile(
    r"\b(?:send|sending|transfer|deposit|contribute)\b.{0,160}?"
    r"\b(?:back|double|doubled|2x|x2|twice|triple|tripled)\b"
    r"|\b(?:double|2x|triple) (?:your|ur|the) (?:\w+ )?(?:btc|bitcoin|eth|crypto|money|coins)"
    r"|\breceive (?:double|2x|twice|triple)\b")
_CRYPTO = PhraseSet(lx.CRYPTO)
_GIVEAWAY = PhraseSet(["giveaway", "giving away", "giving back", "free", "claim", "airdrop",
                       "reward", "rewards", "bonus", "first 100", "first 500", "first 1000",
                       "limited", "instantly"])
_NEGATED = re.compile(r"\b(?:never|will not|wont|do not|dont|scam|scams|fraud|beware)\b")
_SCAM_WORDS = frozenset({w for phrase in lx.CRYPTO for w in phrase.split()} | {
    "send", "sending", "transfer", "deposit", "contribute", "double", "2x", "triple",
    "receive"})


def _affirmed(ctx: ScreenContext) -> str:
    """The post's normalised sentences that do not warn against something."""
    return " | ".join(s for s in ctx.view.sentences() if not _NEGATED.search(s))


@check("scam", category="spam_harmful", weight=1.0,
       reason="crypto or giveaway scam pattern", cap=1.5)
def scam(ctx: ScreenContext) -> list[Hit]:
    hits: list[Hit] = []
    for name, regex in _WALLETS:
        if regex.search(ctx.view.raw):
            hits.append(Hit(name, 0.8))
    if not hits and ctx.view.token_set.isdisjoint(_SCAM_WORDS) and "$" not in ctx.view.raw \
            and not ctx.params.tuned("scam").terms:
        return []  # no coin, no wallet, nothing to send or double
    affirmed = _affirmed(ctx)
    crypto = ctx.setup.phrases("scam", lx.CRYPTO).find_in(affirmed) or (
        [t for t in ctx.view.raw.split() if re.fullmatch(r"\$[A-Z]{3,6}", t)])
    for sentence in ctx.view.sentences():
        if _NEGATED.search(sentence):
            continue  # "we will never ask you to send crypto"
        match = _DOUBLING.search(sentence)
        if match and (_CRYPTO.find_in(sentence) or hits):
            hits.append(Hit("send crypto, get more back"))
            break
    if crypto:
        giveaway = _GIVEAWAY.find(ctx.view)
        if giveaway:
            hits.append(Hit(f"crypto {giveaway[0]}", 0.7))
        else:
            hits.append(Hit(f"mentions {crypto[0]}", 0.3))
    return hits


_LURE = re.compile("|".join(f"(?:{p})" for p in lx.CREDENTIAL_LURE))
_LURE_WORDS = frozenset({"verify", "confirm", "update", "validate", "activate", "reactivate",
                         "re", "account", "unusual", "within", "log", "login", "sign", "signin",
                         "claim", "enter", "send", "share", "dm"})
_DIGIT_OR_AT = re.compile(r"[\d@]")


@check("credential_lure", category="spam_harmful", weight=0.5, reason="phishing language", cap=2.0)
def credential_lure(ctx: ScreenContext) -> list[Hit]:
    extra = ctx.setup.phrases("credential_lure", ())
    if ctx.view.token_set.isdisjoint(_LURE_WORDS) and not extra:
        return []  # every lure needs one of these words
    affirmed = _affirmed(ctx)
    # a deadline alone is what customer care promises too ("we'll reply within 48 hours")
    hits = [Hit(m.group(0), 0.5 if m.group(0).startswith("within") else 1.0)
            for m in _LURE.finditer(affirmed)]
    return hits + [Hit(t) for t in ctx.setup.phrases("credential_lure", ()).find_in(affirmed)]


# -- links ----------------------------------------------------------------------
SHORTENERS = frozenset("""
bit.ly bitly.com tinyurl.com goo.gl ow.ly is.gd buff.ly t.ly rb.gy cutt.ly shorturl.at tiny.cc
rebrand.ly bl.ink s.id v.gd qr.ae soo.gd clck.ru shorte.st adf.ly bit.do mcaf.ee lnkd.in
tr.im x.co u.to short.io dub.sh ift.tt trib.al dlvr.it""".split())
_CONFUSABLE = str.maketrans({"0": "o", "1": "l", "3": "e", "5": "s", "4": "a", "7": "t",
                             "8": "b", "$": "s", "|": "l"})
_SECOND_LEVEL = frozenset({"co", "com", "org", "net", "gov", "ac", "edu", "ltd", "plc"})


def host_allowed(host: str, domains: tuple[str, ...]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _outside(ctx: ScreenContext) -> list[str]:
    hosts = [link.host for link in ctx.view.links]
    return list(dict.fromkeys(h for h in hosts if not host_allowed(h, ctx.setup.safe_domains)))


def _shorteners(ctx: ScreenContext) -> frozenset[str]:
    return SHORTENERS | {s.casefold() for s in ctx.params.shorteners}


@check("shortener", category="spam_harmful", weight=0.6,
       reason="link shortener hides the destination")
def shortener(ctx: ScreenContext) -> list[Hit]:
    short = _shorteners(ctx)
    return [Hit(h) for h in _outside(ctx) if h in short]


@check("link", category="spam_harmful", weight=0.6,
       reason="link outside the allowed domains", cap=1.5)
def link(ctx: ScreenContext) -> list[Hit]:
    short = _shorteners(ctx)
    hits = []
    for host in _outside(ctx):
        if _is_ip(host):
            hits.append(Hit(f"{host} (an IP address)", 1.34))
        elif host not in short and ctx.setup.allowed:
            hits.append(Hit(host))
    return hits


def _distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _ascii(host: str) -> str:
    folded = unicodedata.normalize("NFKD", host)
    return "".join(c for c in folded if not unicodedata.combining(c))


def _registrable(host: str) -> str:
    labels = host.split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL:
        return labels[-3]
    return labels[-2] if len(labels) >= 2 else labels[0]


@check("lookalike_domain", category="spam_harmful", weight=1.0,
       reason="lookalike of the brand's domain", cap=1.0)
def lookalike_domain(ctx: ScreenContext) -> list[Hit]:
    hits: list[Hit] = []
    for host in _outside(ctx):
        if _is_ip(host) or host in _shorteners(ctx):
            continue
        plain = _ascii(host)
        squashed = label_of(plain.translate(_CONFUSABLE).replace("rn", "m").replace("vv", "w"))
        main = label_of(_registrable(plain).translate(_CONFUSABLE))
        for brand in ctx.setup.brand_labels:
            limit = 1 if len(brand) < 8 else 2
            if brand in squashed or (len(main) >= 4 and _distance(main, brand) <= limit):
                hits.append(Hit(f"{host} imitates {brand}"))
                break
        else:
            word = next((w for w in ctx.setup.brand_words if w in squashed), None)
            if word is not None:
                hits.append(Hit(f"{host} uses the name {word!r}", 0.7))
            elif plain != host or not host.isascii():
                hits.append(Hit(f"{host} (international characters)", 0.6))
    return hits


# -- personal data --------------------------------------------------------------
_CARD = re.compile(r"(?<![\d.,])\d(?:[ -]?\d){12,18}(?![\d.,]\d)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_PHONE = re.compile(r"(?<![\w/+.,:$£€])\+?\(?\d[\d ().-]{6,18}\d(?![\w/%,]|\.\d)")
_EMAIL = re.compile(r"\b[\w.+-]+@([a-z0-9-]+(?:\.[a-z0-9-]+)+)\b", re.IGNORECASE)
_LABELLED = re.compile(
    r"\b(passport(?: no| number| #)?|dob|d\.o\.b|date of birth|birthday|ssn|social security"
    r"(?: number| no)?|sort code|account (?:no|number)|pin|cvv|cvc|password|"
    r"national insurance(?: number| no)?|ni number|driving licen[cs]e(?: number| no)?|"
    r"driver'?s licen[cs]e(?: number| no)?)\.?\s*(?:is\s*)?[:#]?\s*(?=[a-z0-9/.-]*\d)")
_TOLL_FREE = ("1800", "1888", "1877", "1866", "1855", "1844", "1833", "800", "888", "877",
              "866", "855", "844", "833", "0800", "0808", "0300", "0330", "0333", "0345",
              "0370", "1300")


def luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


@check("personal_data", category="crime_harmful_acts", weight=1.0,
       reason="personal data in a public post", cap=2.0)
def personal_data(ctx: ScreenContext) -> list[Hit]:
    raw = ctx.view.raw
    if not _DIGIT_OR_AT.search(raw):
        return []  # numbers and addresses need digits or an @
    for link in ctx.view.links:
        raw = raw.replace(link.text, " ")
    hits: list[Hit] = []
    cards = set()
    for match in _CARD.finditer(raw):
        digits = _digits(match.group(0))
        if 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn(digits):
            cards.add(digits)
            hits.append(Hit(f"payment card number (…{digits[-4:]})"))
    for match in _IBAN.finditer(raw.upper()):
        if iban_valid(match.group(0)):
            hits.append(Hit(f"IBAN ({match.group(0)[:4]}…)"))
    for match in _LABELLED.finditer(ctx.view.folded):
        hits.append(Hit(f"{match.group(1)} given", 0.8))
    own = {_digits(c) for c in ctx.setup.own_contacts if _digits(c)}
    for match in _PHONE.finditer(raw):
        digits = _digits(match.group(0))
        if not 9 <= len(digits) <= 15 or digits in cards or digits in own:
            continue
        if any(digits.startswith(p) for p in _TOLL_FREE) or len(set(digits)) < 3:
            continue
        hits.append(Hit(f"phone number (…{digits[-3:]})", 0.5))
    for match in _EMAIL.finditer(raw):
        domain = match.group(1).casefold()
        if match.group(0).casefold() in ctx.setup.own_contacts:
            continue
        if any(domain == d or domain.endswith("." + d) for d in ctx.setup.allowed):
            continue
        hits.append(Hit(f"e-mail address (…@{domain})", 0.5))
    return hits

